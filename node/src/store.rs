//! Storage: SQLite through sqlx, with embedded migrations (`node/migrations`).
//!
//! One writer connection serialises every state change, so a transaction's reads and
//! writes see one consistent database and never race another writer; reads use a separate
//! pool. Queries are checked at run time (no live database is needed to build). Only
//! domain types cross this module's boundary: no protobuf type is ever seen here.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{ConnectOptions, Row, SqliteConnection, SqlitePool};
use uuid::Uuid;

use crate::domain::{Agreement, Citation, Item, ItemStatus, Partner, PartnerStatus, Policy, Symbol, Tier};
use crate::machine::{
    BorrowingState, BorrowingStep, BorrowingView, LendingState, LendingStep, LendingView, Note, SlotOutcome,
};
use crate::message::{Body, Confirmation, Envelope};

impl StoreError {
    /// The database is locked by someone else (SQLITE_BUSY, SQLITE_LOCKED): worth retrying.
    pub fn is_busy(&self) -> bool {
        self.sqlite_code().is_some_and(|c| matches!(c & 0xff, 5 | 6))
    }

    /// The disk is full (SQLITE_FULL).
    pub fn is_full(&self) -> bool {
        self.sqlite_code().is_some_and(|c| c & 0xff == 13)
    }

    fn sqlite_code(&self) -> Option<i64> {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => e.code().and_then(|c| c.parse().ok()),
            _ => None,
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Milliseconds since the epoch, as stored.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

fn parse<T: FromStr>(what: &str, s: &str) -> Result<T> {
    s.parse().map_err(|_| StoreError::Corrupt(format!("{what} {s:?}")))
}

fn json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The node's database.
#[derive(Clone, Debug)]
pub struct Store {
    writer: SqlitePool,
    reader: SqlitePool,
}

/// What an upsert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsert {
    Created,
    Updated,
    Unchanged,
}

/// Undelivered messages to one partner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryState {
    pub pending: u64,
    /// Delivery attempts made so far for the pending messages.
    pub attempts: u64,
    pub last_error: Option<String>,
}

/// Counts over the holdings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HoldingsStats {
    pub items: u64,
    pub withdrawn: u64,
    pub by_status: Vec<(String, u64)>,
    pub by_policy: Vec<(String, u64)>,
    pub by_format: Vec<(String, u64)>,
    pub with_isbn: u64,
    pub with_oclc: u64,
    pub with_lccn: u64,
}

/// One lender in a stored rota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotaEntry {
    pub partner: Symbol,
    pub tier: Tier,
    pub priority: u32,
    pub outcome: SlotOutcome,
    pub reason: Option<String>,
}

/// A timeline entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub event: String,
    pub state: String,
    pub detail: String,
    pub partner: Option<String>,
}

/// A borrowing request as stored.
#[derive(Clone, Debug)]
pub struct BorrowingRecord {
    pub id: String,
    pub state: BorrowingState,
    pub citation: Citation,
    pub patron_id: String,
    pub note: String,
    pub need_before: Option<chrono::NaiveDate>,
    pub position: usize,
    pub supplier: Option<Symbol>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub rota: Vec<RotaEntry>,
    pub due: Option<NaiveDate>,
    pub resume: Option<BorrowingState>,
    pub supplier_item: Option<String>,
    /// When the current lender was asked.
    pub asked_at: Option<DateTime<Utc>>,
}

impl BorrowingRecord {
    /// The state machine's view of this request.
    pub fn view(&self) -> BorrowingView {
        BorrowingView {
            state: self.state,
            rota: self.rota.iter().map(|e| e.partner.clone()).collect(),
            position: self.position,
            due: self.due,
            resume: self.resume,
            supplier_item: self.supplier_item.clone(),
        }
    }
}

/// A lending request as stored.
#[derive(Clone, Debug)]
pub struct LendingRecord {
    pub id: String,
    pub borrower: Symbol,
    pub state: LendingState,
    pub citation: Citation,
    pub item_barcode: Option<String>,
    pub reason_unfilled: Option<String>,
    pub note: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub due: Option<NaiveDate>,
    pub renew_pending: bool,
    /// Renewals granted so far on this loan.
    pub renewals: u32,
}

impl LendingRecord {
    /// The state machine's view of this request, without the agreement's renewal limit.
    pub fn view(&self) -> LendingView {
        LendingView {
            state: self.state,
            item_barcode: self.item_barcode.clone(),
            due: self.due,
            renew_pending: self.renew_pending,
            renewals: self.renewals,
            renewal_limit: None,
        }
    }

    /// The state machine's view under the agreement with the borrower, so renewals are
    /// counted against its limit.
    pub fn view_under(&self, agreement: &crate::domain::Agreement) -> LendingView {
        LendingView { renewal_limit: Some(agreement.renewals), ..self.view() }
    }
}

/// Whether a request's conversation with a partner is settled (see
/// [`Store::conversation_settled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    Yes,
    /// This many of our messages are not confirmed yet.
    Unconfirmed(u64),
    /// The partner said it had queued messages up to `announced`; we have `received`.
    Awaiting {
        announced: u64,
        received: u64,
    },
}

/// An outbound message waiting for delivery.
#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub id: i64,
    pub partner: String,
    pub attempts: i64,
    pub envelope: Envelope,
}

/// Added to an import's id to name the staging rows that hold the barcodes of the rows a
/// replace skipped (see `Store::stage_skipped`).
const SKIPPED: &str = "/skipped";

/// The stored first answer to an inbound message.
#[derive(Clone, Debug)]
pub struct InboxRow {
    pub payload_hash: String,
    pub confirmation: Confirmation,
}

impl Store {
    /// Open (creating if needed) the database at `path` and bring its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, Duration::from_secs(10)).await
    }

    /// Open with a given wait for a database another program has locked.
    pub async fn open_with(path: &Path, busy_timeout: Duration) -> Result<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a confirmation we send a partner must survive a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(busy_timeout)
            // Applying a large import takes seconds by design: not a warning.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&writer).await?;
        Self::refresh_title_keys(&writer).await?;
        // No import survives a restart: whatever was staged when the node stopped is dropped.
        sqlx::query("DELETE FROM import_staging").execute(&writer).await?;
        sqlx::query("DELETE FROM import_staging_isbns").execute(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Store { writer, reader })
    }

    /// Rebuild stored title+author keys made under older matching rules (once per rules change).
    async fn refresh_title_keys(writer: &SqlitePool) -> Result<()> {
        let want = rota_holdings::ids::TITLE_KEY_VERSION.to_string();
        let have: Option<String> = sqlx::query_scalar("SELECT value FROM node_meta WHERE key = 'title_key_version'")
            .fetch_optional(writer)
            .await?;
        if have.as_deref() == Some(want.as_str()) {
            return Ok(());
        }
        let mut tx = writer.begin().await?;
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT barcode, title, author FROM items").fetch_all(&mut *tx).await?;
        for (barcode, title, author) in &rows {
            sqlx::query("UPDATE items SET title_key = ? WHERE barcode = ?")
                .bind(rota_holdings::ids::title_key(title, author))
                .bind(barcode)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO node_meta (key, value) VALUES ('title_key_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(&want)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if !rows.is_empty() {
            tracing::info!(items = rows.len(), version = %want, "title+author match keys rebuilt");
        }
        Ok(())
    }

    /// Begin a write transaction. Every state change goes through one of these.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin().await?)
    }

    /// A connection from the read pool, for read-only checks such as Locate.
    pub async fn read_conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        Ok(self.reader.acquire().await?)
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    // -- partners and agreements ---------------------------------------------------------

    pub async fn partners(&self) -> Result<Vec<Partner>> {
        let rows = sqlx::query("SELECT * FROM partners ORDER BY symbol").fetch_all(&self.reader).await?;
        rows.iter().map(partner_from_row).collect()
    }

    pub async fn partner(&self, symbol: &Symbol) -> Result<Option<Partner>> {
        let row = sqlx::query("SELECT * FROM partners WHERE symbol = ?")
            .bind(symbol.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(partner_from_row).transpose()
    }

    pub async fn agreement(&self, symbol: &Symbol) -> Result<Agreement> {
        let row = sqlx::query("SELECT * FROM agreements WHERE partner = ?")
            .bind(symbol.as_str())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(agreement_from_row).unwrap_or_default())
    }

    /// Pending outbound messages and the last delivery error, per partner.
    pub async fn delivery_state(&self, symbol: &Symbol) -> Result<DeliveryState> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(attempts), 0) AS attempts,
               (SELECT last_error FROM outbox WHERE partner = ?1 AND delivered_at IS NULL AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1) AS err
             FROM outbox WHERE partner = ?1 AND delivered_at IS NULL",
        )
        .bind(symbol.as_str())
        .fetch_one(&self.reader)
        .await?;
        Ok(DeliveryState {
            pending: row.get::<i64, _>("n") as u64,
            attempts: row.get::<i64, _>("attempts") as u64,
            last_error: row.get("err"),
        })
    }

    // -- items --------------------------------------------------------------------------
    //
    // Withdrawn items (gone from the catalogue by a `--replace` or `--delete` import) stay in
    // the table for the lending history that names them, but nothing else sees them.

    pub async fn item(&self, barcode: &str) -> Result<Option<Item>> {
        let row = sqlx::query("SELECT * FROM items WHERE barcode = ? AND withdrawn = 0")
            .bind(barcode)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(item_from_row).transpose()
    }

    /// Items whose barcode or normalised identifier equals `query`, or whose title or author
    /// contains every word of it.
    pub async fn search_items(&self, query: &str, limit: u32) -> Result<Vec<Item>> {
        let q = query.trim();
        let isbn = crate::domain::normalise_isbn(q).ok();
        let oclc = crate::domain::normalise_oclc(q).ok();
        let lccn = crate::domain::normalise_lccn(q).ok();
        let issn = crate::domain::normalise_issn(q).ok();
        let words: Vec<String> = q
            .split_whitespace()
            .take(8)
            .map(|w| format!("%{}%", w.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")))
            .collect();
        let mut sql = String::from(
            "SELECT * FROM items WHERE withdrawn = 0 AND (barcode = ?1
               OR barcode IN (SELECT barcode FROM item_isbns WHERE isbn = ?2)
               OR oclc = ?3 OR lccn = ?4 OR issn = ?5",
        );
        if !words.is_empty() {
            let per_word: Vec<String> = (0..words.len())
                .map(|k| format!("(title LIKE ?{n} ESCAPE '\\' OR author LIKE ?{n} ESCAPE '\\')", n = k + 7))
                .collect();
            sql.push_str(&format!(" OR ({})", per_word.join(" AND ")));
        }
        sql.push_str(") ORDER BY title, barcode LIMIT ?6");
        let mut query = sqlx::query(&sql).bind(q).bind(isbn).bind(oclc).bind(lccn).bind(issn).bind(i64::from(limit));
        for w in &words {
            query = query.bind(w);
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter().map(item_from_row).collect()
    }

    /// Items matching a citation: by normalised identifier when it has any, otherwise by
    /// title+author key (DESIGN §3).
    pub async fn matching_items(conn: &mut SqliteConnection, c: &Citation) -> Result<Vec<Item>> {
        let rows = if c.has_identifier() {
            sqlx::query(
                "SELECT * FROM items WHERE withdrawn = 0 AND (
                    barcode IN (SELECT barcode FROM item_isbns WHERE isbn = ?1)
                    OR (oclc = ?2 AND ?2 IS NOT NULL) OR (lccn = ?3 AND ?3 IS NOT NULL) OR (issn = ?4 AND ?4 IS NOT NULL))
                 ORDER BY barcode",
            )
            .bind(&c.isbn)
            .bind(&c.oclc)
            .bind(&c.lccn)
            .bind(&c.issn)
            .fetch_all(&mut *conn)
            .await?
        } else {
            sqlx::query("SELECT * FROM items WHERE title_key = ? AND withdrawn = 0 ORDER BY barcode")
                .bind(crate::domain::title_key(&c.title, &c.author))
                .fetch_all(&mut *conn)
                .await?
        };
        rows.iter().map(item_from_row).collect()
    }

    /// Read-only matching on the reader pool (Locate).
    pub async fn matching_items_read(&self, c: &Citation) -> Result<Vec<Item>> {
        let mut conn = self.reader.acquire().await?;
        Self::matching_items(&mut conn, c).await
    }

    /// Insert or update one item (staff adding a single item by hand).
    pub async fn upsert_item(conn: &mut SqliteConnection, item: &Item, now: DateTime<Utc>) -> Result<Upsert> {
        let existing = sqlx::query("SELECT * FROM items WHERE barcode = ? AND withdrawn = 0")
            .bind(&item.barcode)
            .fetch_optional(&mut *conn)
            .await?;
        let outcome = match existing.as_ref().map(item_from_row).transpose()? {
            Some(old) if &old == item => return Ok(Upsert::Unchanged),
            Some(_) => Upsert::Updated,
            None => Upsert::Created,
        };
        sqlx::query(
            "INSERT INTO items (barcode, title, author, publisher, year, isbn, isbns, issn, oclc, lccn, format, location,
               call_number, policy, status, title_key, updated_at, withdrawn)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, 0)
             ON CONFLICT (barcode) DO UPDATE SET title = ?2, author = ?3, publisher = ?4, year = ?5, isbn = ?6, isbns = ?7,
               issn = ?8, oclc = ?9, lccn = ?10, format = ?11, location = ?12, call_number = ?13, policy = ?14,
               status = CASE WHEN EXISTS (SELECT 1 FROM lending l WHERE l.item_barcode = items.barcode
                                          AND l.state NOT IN ('unfilled', 'cancelled', 'completed', 'expired'))
                             THEN items.status ELSE ?15 END,
               title_key = ?16, updated_at = ?17, withdrawn = 0",
        )
        .bind(&item.barcode)
        .bind(&item.title)
        .bind(&item.author)
        .bind(&item.publisher)
        .bind(&item.year)
        .bind(&item.isbn)
        .bind(item.isbns.join(" "))
        .bind(&item.issn)
        .bind(&item.oclc)
        .bind(&item.lccn)
        .bind(&item.format)
        .bind(&item.location)
        .bind(&item.call_number)
        .bind(item.policy.as_str())
        .bind(item.status.as_str())
        .bind(item.title_key())
        .bind(ms(now))
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM item_isbns WHERE barcode = ?").bind(&item.barcode).execute(&mut *conn).await?;
        for isbn in &item.isbns {
            sqlx::query("INSERT OR IGNORE INTO item_isbns (isbn, barcode) VALUES (?, ?)")
                .bind(isbn)
                .bind(&item.barcode)
                .execute(&mut *conn)
                .await?;
        }
        Ok(outcome)
    }

    /// Holdings counts: (items, withdrawn, by status, by policy, by format, with isbn, oclc, lccn).
    pub async fn holdings_stats(&self) -> Result<HoldingsStats> {
        let group = |col: &str| {
            format!(
                "SELECT {col}, COUNT(*) FROM items WHERE withdrawn = 0 GROUP BY {col} ORDER BY COUNT(*) DESC, {col}"
            )
        };
        let counts = |rows: Vec<(String, i64)>| rows.into_iter().map(|(k, n)| (k, n as u64)).collect::<Vec<_>>();
        let (items, withdrawn, isbn, oclc, lccn): (i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(withdrawn = 0), 0), COALESCE(SUM(withdrawn = 1), 0), COALESCE(SUM(withdrawn = 0 AND isbns <> ''), 0),
               COALESCE(SUM(withdrawn = 0 AND oclc IS NOT NULL), 0), COALESCE(SUM(withdrawn = 0 AND lccn IS NOT NULL), 0) FROM items",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(HoldingsStats {
            items: items as u64,
            withdrawn: withdrawn as u64,
            by_status: counts(sqlx::query_as(&group("status")).fetch_all(&self.reader).await?),
            by_policy: counts(sqlx::query_as(&group("policy")).fetch_all(&self.reader).await?),
            by_format: counts(sqlx::query_as(&group("format")).fetch_all(&self.reader).await?),
            with_isbn: isbn as u64,
            with_oclc: oclc as u64,
            with_lccn: lccn as u64,
        })
    }

    // -- imports ------------------------------------------------------------------------
    //
    // An import stages its good rows in `import_staging` under its id. In a replace, the
    // barcodes of rows the node skipped are staged too, under `{id}/skipped` (see
    // `SKIPPED`), with every other field empty: they are only ever compared by barcode, so a
    // full sync keeps those items instead of withdrawing them as missing from the file.

    /// Stage validated items of import `id` (one multi-row statement per call).
    pub async fn stage_items(conn: &mut SqliteConnection, id: &str, items: &[Item]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO import_staging (import_id, barcode, title, author, publisher, year, isbn, isbns, issn, oclc, lccn,
               format, location, call_number, policy, status, title_key) ",
        );
        qb.push_values(items, |mut b, i| {
            b.push_bind(id)
                .push_bind(&i.barcode)
                .push_bind(&i.title)
                .push_bind(&i.author)
                .push_bind(&i.publisher)
                .push_bind(&i.year)
                .push_bind(&i.isbn)
                .push_bind(i.isbns.join(" "))
                .push_bind(&i.issn)
                .push_bind(&i.oclc)
                .push_bind(&i.lccn)
                .push_bind(&i.format)
                .push_bind(&i.location)
                .push_bind(&i.call_number)
                .push_bind(i.policy.as_str())
                .push_bind(i.status.as_str())
                .push_bind(i.title_key());
        });
        qb.build().execute(&mut *conn).await?;
        let pairs: Vec<(&str, &str)> =
            items.iter().flat_map(|i| i.isbns.iter().map(move |n| (i.barcode.as_str(), n.as_str()))).collect();
        for chunk in pairs.chunks(2000) {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT OR IGNORE INTO import_staging_isbns (import_id, barcode, isbn) ",
            );
            qb.push_values(chunk, |mut b, (barcode, isbn)| {
                b.push_bind(id).push_bind(*barcode).push_bind(*isbn);
            });
            qb.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Remember the barcodes of rows a replace skipped (see `SKIPPED`). A barcode already
    /// remembered is ignored.
    pub async fn stage_skipped(conn: &mut SqliteConnection, id: &str, barcodes: &[String]) -> Result<()> {
        let ns = format!("{id}{SKIPPED}");
        for chunk in barcodes.chunks(5000) {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO import_staging (import_id, barcode, title, author, publisher, year, isbns, format,
                   location, call_number, policy, status, title_key) ",
            );
            qb.push_values(chunk, |mut b, barcode| {
                b.push_bind(&ns).push_bind(barcode);
                for _ in 0..11 {
                    b.push("''");
                }
            });
            qb.push(" ON CONFLICT (import_id, barcode) DO NOTHING");
            qb.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Apply staged rows as an upsert. Returns (created, updated, unchanged). An item with
    /// a live lending request keeps its status.
    pub async fn apply_staged_upsert(
        conn: &mut SqliteConnection,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(u64, u64, u64)> {
        const LIVE: &str = "EXISTS (SELECT 1 FROM lending l WHERE l.item_barcode = i.barcode
                              AND l.state NOT IN ('unfilled', 'cancelled', 'completed', 'expired'))";
        sqlx::query(
            "CREATE TEMP TABLE IF NOT EXISTS import_changed (barcode TEXT PRIMARY KEY, is_new INTEGER NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM import_changed").execute(&mut *conn).await?;
        sqlx::query(&format!(
            "INSERT INTO import_changed (barcode, is_new)
             SELECT s.barcode, i.barcode IS NULL OR i.withdrawn = 1
             FROM import_staging s LEFT JOIN items i ON i.barcode = s.barcode
             WHERE s.import_id = ?1 AND (i.barcode IS NULL OR i.withdrawn = 1 OR NOT (
                 i.title IS s.title AND i.author IS s.author AND i.publisher IS s.publisher AND i.year IS s.year
                 AND i.isbns IS s.isbns AND i.issn IS s.issn AND i.oclc IS s.oclc AND i.lccn IS s.lccn
                 AND i.format IS s.format AND i.location IS s.location AND i.call_number IS s.call_number
                 AND i.policy IS s.policy AND (i.status IS s.status OR {LIVE})))"
        ))
        .bind(id)
        .execute(&mut *conn)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM import_staging WHERE import_id = ?")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        let (created, changed): (i64, i64) =
            sqlx::query_as("SELECT COALESCE(SUM(is_new), 0), COUNT(*) FROM import_changed")
                .fetch_one(&mut *conn)
                .await?;
        sqlx::query(
            "INSERT INTO items (barcode, title, author, publisher, year, isbn, isbns, issn, oclc, lccn, format, location,
               call_number, policy, status, title_key, updated_at, withdrawn)
             SELECT s.barcode, s.title, s.author, s.publisher, s.year, s.isbn, s.isbns, s.issn, s.oclc, s.lccn, s.format,
               s.location, s.call_number, s.policy, s.status, s.title_key, ?2, 0
             FROM import_staging s JOIN import_changed c ON c.barcode = s.barcode WHERE s.import_id = ?1
             ON CONFLICT (barcode) DO UPDATE SET title = excluded.title, author = excluded.author,
               publisher = excluded.publisher, year = excluded.year, isbn = excluded.isbn, isbns = excluded.isbns,
               issn = excluded.issn, oclc = excluded.oclc, lccn = excluded.lccn, format = excluded.format,
               location = excluded.location, call_number = excluded.call_number, policy = excluded.policy,
               status = CASE WHEN EXISTS (SELECT 1 FROM lending l WHERE l.item_barcode = items.barcode
                                          AND l.state NOT IN ('unfilled', 'cancelled', 'completed', 'expired'))
                             THEN items.status ELSE excluded.status END,
               title_key = excluded.title_key, updated_at = excluded.updated_at, withdrawn = 0",
        )
        .bind(id)
        .bind(ms(now))
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM item_isbns WHERE barcode IN (SELECT barcode FROM import_changed)")
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT OR IGNORE INTO item_isbns (isbn, barcode)
             SELECT si.isbn, si.barcode FROM import_staging_isbns si JOIN import_changed c ON c.barcode = si.barcode
             WHERE si.import_id = ?",
        )
        .bind(id)
        .execute(&mut *conn)
        .await?;
        Ok((created as u64, (changed - created) as u64, (total - changed) as u64))
    }

    /// Withdraw live items that import `id` did not list (a full sync). Items on loan or
    /// reserved are kept and returned instead, and so are items whose row was skipped:
    /// those are counted by `kept_as_skipped`.
    pub async fn withdraw_missing(
        conn: &mut SqliteConnection,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(u64, Vec<(String, ItemStatus)>)> {
        let missing = format!(
            "withdrawn = 0 AND NOT EXISTS (SELECT 1 FROM import_staging s
               WHERE s.import_id IN (?1, ?1 || '{SKIPPED}') AND s.barcode = items.barcode)"
        );
        Self::withdraw_where(conn, id, &missing, now).await
    }

    /// The live items that a replace keeps only because their row was skipped (the barcode
    /// was in the file, but no row with it was staged). Returns how many there are, and
    /// which of `listed` are among them.
    pub async fn kept_as_skipped(conn: &mut SqliteConnection, id: &str, listed: &[&str]) -> Result<(u64, Vec<String>)> {
        let ns = format!("{id}{SKIPPED}");
        // Each call binds the skipped namespace, then the import id, then any barcodes.
        let kept = |select: &str| {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(select);
            qb.push(
                " FROM import_staging k JOIN items i ON i.barcode = k.barcode AND i.withdrawn = 0 WHERE k.import_id = ",
            );
            qb.push_bind(ns.clone());
            qb.push(" AND NOT EXISTS (SELECT 1 FROM import_staging s WHERE s.import_id = ");
            qb.push_bind(id.to_owned());
            qb.push(" AND s.barcode = k.barcode)");
            qb
        };
        let count: i64 = kept("SELECT COUNT(*)").build_query_scalar().fetch_one(&mut *conn).await?;
        if count == 0 || listed.is_empty() {
            return Ok((count as u64, vec![]));
        }
        let mut qb = kept("SELECT k.barcode");
        qb.push(" AND k.barcode IN (");
        let mut args = qb.separated(", ");
        for b in listed {
            args.push_bind(b.to_string());
        }
        qb.push(")");
        let found: Vec<String> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
        Ok((count as u64, found))
    }

    /// Withdraw the items import `id` listed. Returns (withdrawn, kept, barcodes not found).
    pub async fn withdraw_listed(
        conn: &mut SqliteConnection,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(u64, Vec<(String, ItemStatus)>, Vec<String>)> {
        let missing: Vec<String> = sqlx::query_scalar(
            "SELECT s.barcode FROM import_staging s WHERE s.import_id = ?
               AND NOT EXISTS (SELECT 1 FROM items i WHERE i.barcode = s.barcode AND i.withdrawn = 0) ORDER BY s.barcode",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        let listed = "withdrawn = 0 AND EXISTS (SELECT 1 FROM import_staging s WHERE s.import_id = ?1 AND s.barcode = items.barcode)";
        let (n, kept) = Self::withdraw_where(conn, id, listed, now).await?;
        Ok((n, kept, missing))
    }

    async fn withdraw_where(
        conn: &mut SqliteConnection,
        id: &str,
        cond: &str,
        now: DateTime<Utc>,
    ) -> Result<(u64, Vec<(String, ItemStatus)>)> {
        let kept_rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT barcode, status FROM items WHERE {cond} AND status IN ('on_loan', 'reserved') ORDER BY barcode"
        ))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        let kept = kept_rows
            .into_iter()
            .map(|(b, s)| Ok((b, parse::<ItemStatus>("item status", &s)?)))
            .collect::<Result<Vec<_>>>()?;
        let r = sqlx::query(&format!(
            "UPDATE items SET withdrawn = 1, updated_at = ?2 WHERE {cond} AND status NOT IN ('on_loan', 'reserved')"
        ))
        .bind(id)
        .bind(ms(now))
        .execute(&mut *conn)
        .await?;
        Ok((r.rows_affected(), kept))
    }

    /// Remove an import's staging rows (the skipped barcodes too).
    pub async fn clear_staging(conn: &mut SqliteConnection, id: &str) -> Result<()> {
        sqlx::query(&format!("DELETE FROM import_staging WHERE import_id IN (?1, ?1 || '{SKIPPED}')"))
            .bind(id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM import_staging_isbns WHERE import_id = ?").bind(id).execute(&mut *conn).await?;
        Ok(())
    }

    /// Set an item's status only if it is `from` now. Returns whether it changed.
    pub async fn move_item(
        conn: &mut SqliteConnection,
        barcode: &str,
        from: ItemStatus,
        to: ItemStatus,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query("UPDATE items SET status = ?, updated_at = ? WHERE barcode = ? AND status = ?")
            .bind(to.as_str())
            .bind(ms(now))
            .bind(barcode)
            .bind(from.as_str())
            .execute(&mut *conn)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    // -- borrowing ----------------------------------------------------------------------

    /// The next borrowing request id: `<SYMBOL>-<n>`.
    pub async fn next_request_id(conn: &mut SqliteConnection, own: &Symbol) -> Result<String> {
        let n: i64 = sqlx::query_scalar(
            "INSERT INTO node_meta (key, value) VALUES ('next_request', '2')
             ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1
             RETURNING CAST(value AS INTEGER) - 1",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(format!("{own}-{n}"))
    }

    pub async fn insert_borrowing(conn: &mut SqliteConnection, r: &BorrowingRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO borrowing (id, state, citation, title, patron_id, note, need_before, position, supplier, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.id)
        .bind(r.state.as_str())
        .bind(to_json(&r.citation))
        .bind(&r.citation.title)
        .bind(&r.patron_id)
        .bind(&r.note)
        .bind(r.need_before.map(|d| d.to_string()))
        .bind(r.position as i64)
        .bind(r.supplier.as_ref().map(Symbol::as_str))
        .bind(ms(r.created_at))
        .bind(ms(r.updated_at))
        .execute(&mut *conn)
        .await?;
        Self::set_rota(conn, &r.id, &r.rota).await?;
        Ok(())
    }

    /// Replace a request's rota (while it is being located).
    pub async fn set_rota(conn: &mut SqliteConnection, id: &str, rota: &[RotaEntry]) -> Result<()> {
        sqlx::query("DELETE FROM rota_entries WHERE request_id = ?").bind(id).execute(&mut *conn).await?;
        for (i, e) in rota.iter().enumerate() {
            sqlx::query("INSERT INTO rota_entries (request_id, idx, partner, tier, priority, outcome, reason) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(id)
                .bind(i as i64)
                .bind(e.partner.as_str())
                .bind(e.tier.as_str())
                .bind(i64::from(e.priority))
                .bind(e.outcome.as_str())
                .bind(&e.reason)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    pub async fn borrowing(conn: &mut SqliteConnection, id: &str) -> Result<Option<BorrowingRecord>> {
        let Some(row) = sqlx::query("SELECT * FROM borrowing WHERE id = ?").bind(id).fetch_optional(&mut *conn).await?
        else {
            return Ok(None);
        };
        let rota_rows = sqlx::query("SELECT * FROM rota_entries WHERE request_id = ? ORDER BY idx")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
        let rota = rota_rows
            .iter()
            .map(|r| {
                Ok(RotaEntry {
                    partner: Symbol::parse(r.get("partner")).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    tier: parse("tier", r.get("tier"))?,
                    priority: r.get::<i64, _>("priority") as u32,
                    outcome: parse("outcome", r.get("outcome"))?,
                    reason: r.get("reason"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let supplier: Option<String> = row.get("supplier");
        Ok(Some(BorrowingRecord {
            id: row.get("id"),
            state: parse("borrowing state", row.get("state"))?,
            citation: json("citation", row.get("citation"))?,
            patron_id: row.get("patron_id"),
            note: row.get("note"),
            need_before: row.get::<Option<String>, _>("need_before").and_then(|d| d.parse().ok()),
            position: row.get::<i64, _>("position") as usize,
            supplier: supplier.and_then(|s| Symbol::parse(&s).ok()),
            created_at: from_ms(row.get("created_at")),
            updated_at: from_ms(row.get("updated_at")),
            rota,
            due: row.get::<Option<String>, _>("due_date").and_then(|d| d.parse().ok()),
            resume: row.get::<Option<String>, _>("resume_state").map(|s| parse("resume state", &s)).transpose()?,
            supplier_item: row.get("supplier_item"),
            asked_at: row.get::<Option<i64>, _>("asked_at").map(from_ms),
        }))
    }

    pub async fn borrowing_read(&self, id: &str) -> Result<Option<BorrowingRecord>> {
        let mut conn = self.reader.acquire().await?;
        Self::borrowing(&mut conn, id).await
    }

    pub async fn list_borrowing(&self, state: Option<BorrowingState>, limit: u32) -> Result<Vec<BorrowingRecord>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM borrowing WHERE (?1 IS NULL OR state = ?1) ORDER BY created_at DESC, id DESC LIMIT ?2",
        )
        .bind(state.map(BorrowingState::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        let mut conn = self.reader.acquire().await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = Self::borrowing(&mut conn, &id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Store the outcome of a borrowing transition (state and the fields it carries).
    pub async fn update_borrowing(
        conn: &mut SqliteConnection,
        id: &str,
        step: &BorrowingStep,
        supplier: Option<&Symbol>,
        asked: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE borrowing SET state = ?, position = ?, supplier = COALESCE(?, supplier), due_date = ?, resume_state = ?,
               supplier_item = ?, asked_at = CASE WHEN ? THEN ? ELSE asked_at END, updated_at = ? WHERE id = ?",
        )
        .bind(step.state.as_str())
        .bind(step.position as i64)
        .bind(supplier.map(Symbol::as_str))
        .bind(step.due.map(|d| d.to_string()))
        .bind(step.resume.map(BorrowingState::as_str))
        .bind(&step.supplier_item)
        .bind(asked)
        .bind(ms(now))
        .bind(ms(now))
        .bind(id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn set_slot(
        conn: &mut SqliteConnection,
        id: &str,
        idx: usize,
        outcome: SlotOutcome,
        reason: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE rota_entries SET outcome = ?, reason = COALESCE(?, reason) WHERE request_id = ? AND idx = ?",
        )
        .bind(outcome.as_str())
        .bind(reason)
        .bind(id)
        .bind(idx as i64)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    // -- lending ------------------------------------------------------------------------

    pub async fn insert_lending(conn: &mut SqliteConnection, r: &LendingRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO lending (id, borrower, state, citation, title, item_barcode, reason_unfilled, note, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.id)
        .bind(r.borrower.as_str())
        .bind(r.state.as_str())
        .bind(to_json(&r.citation))
        .bind(&r.citation.title)
        .bind(&r.item_barcode)
        .bind(&r.reason_unfilled)
        .bind(&r.note)
        .bind(ms(r.created_at))
        .bind(ms(r.updated_at))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn lending(conn: &mut SqliteConnection, id: &str) -> Result<Option<LendingRecord>> {
        let row = sqlx::query("SELECT * FROM lending WHERE id = ?").bind(id).fetch_optional(&mut *conn).await?;
        row.as_ref().map(lending_from_row).transpose()
    }

    pub async fn lending_read(&self, id: &str) -> Result<Option<LendingRecord>> {
        let mut conn = self.reader.acquire().await?;
        Self::lending(&mut conn, id).await
    }

    pub async fn list_lending(&self, state: Option<LendingState>, limit: u32) -> Result<Vec<LendingRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM lending WHERE (?1 IS NULL OR state = ?1) ORDER BY created_at DESC, id DESC LIMIT ?2",
        )
        .bind(state.map(LendingState::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(lending_from_row).collect()
    }

    /// Borrowing requests in any of `states`.
    pub async fn borrowing_in(&self, states: &[BorrowingState]) -> Result<Vec<BorrowingRecord>> {
        let mut out = vec![];
        let mut conn = self.reader.acquire().await?;
        for s in states {
            let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM borrowing WHERE state = ? ORDER BY updated_at")
                .bind(s.as_str())
                .fetch_all(&mut *conn)
                .await?;
            for id in ids {
                if let Some(r) = Self::borrowing(&mut conn, &id).await? {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Lending requests in any of `states`.
    pub async fn lending_in(&self, states: &[LendingState]) -> Result<Vec<LendingRecord>> {
        let mut out = vec![];
        for s in states {
            let rows = sqlx::query("SELECT * FROM lending WHERE state = ? ORDER BY updated_at")
                .bind(s.as_str())
                .fetch_all(&self.reader)
                .await?;
            for r in &rows {
                out.push(lending_from_row(r)?);
            }
        }
        Ok(out)
    }

    /// When each request of `side` first reached each state, from its timeline.
    pub async fn first_state_times(
        &self,
        side: &str,
    ) -> Result<std::collections::HashMap<(String, String), DateTime<Utc>>> {
        let rows = sqlx::query(
            "SELECT request_id, state, MIN(at) AS at FROM timeline WHERE side = ? GROUP BY request_id, state",
        )
        .bind(side)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(|r| ((r.get("request_id"), r.get("state")), from_ms(r.get("at")))).collect())
    }

    /// Closure periods of `partner` ending on or after `from`.
    pub async fn closures(&self, partner: &Symbol, from: NaiveDate) -> Result<Vec<crate::domain::Closure>> {
        let rows = sqlx::query("SELECT * FROM partner_closures WHERE partner = ? AND to_date >= ? ORDER BY from_date")
            .bind(partner.as_str())
            .bind(from.to_string())
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::domain::Closure {
                    from: parse("closure date", r.get("from_date"))?,
                    to: parse("closure date", r.get("to_date"))?,
                    note: r.get("note"),
                })
            })
            .collect()
    }

    pub async fn add_closure(conn: &mut SqliteConnection, partner: &Symbol, c: &crate::domain::Closure) -> Result<()> {
        sqlx::query("INSERT OR REPLACE INTO partner_closures (partner, from_date, to_date, note) VALUES (?, ?, ?, ?)")
            .bind(partner.as_str())
            .bind(c.from.to_string())
            .bind(c.to.to_string())
            .bind(&c.note)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Our live borrowing requests that `lender` is supplying (for its maximum outstanding).
    pub async fn outstanding_from(&self, lender: &Symbol) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM borrowing WHERE supplier = ? AND state NOT IN ('created', 'locating', 'sent', 'unfilled', 'cancelled', 'completed', 'lost')",
        )
        .bind(lender.as_str())
        .fetch_one(&self.reader)
        .await?;
        Ok(n as u32)
    }

    /// Live loans and reservations to `borrower` (for the agreement's maximum outstanding).
    pub async fn outstanding_to(conn: &mut SqliteConnection, borrower: &Symbol) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM lending WHERE borrower = ? AND state NOT IN ('received', 'unfilled', 'cancelled', 'completed', 'expired', 'lost')",
        )
        .bind(borrower.as_str())
        .fetch_one(&mut *conn)
        .await?;
        Ok(n as u32)
    }

    /// Store the outcome of a lending transition.
    pub async fn update_lending(
        conn: &mut SqliteConnection,
        id: &str,
        step: &LendingStep,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE lending SET state = ?, item_barcode = ?, reason_unfilled = COALESCE(?, reason_unfilled), due_date = ?,
               renew_pending = ?, renewals = ?, updated_at = ? WHERE id = ?",
        )
        .bind(step.state.as_str())
        .bind(&step.item_barcode)
        .bind(step.reason_unfilled.map(|r| r.as_str()))
        .bind(step.due.map(|d| d.to_string()))
        .bind(step.renew_pending)
        .bind(i64::from(step.renewals))
        .bind(ms(now))
        .bind(id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    // -- timeline -----------------------------------------------------------------------

    pub async fn add_note(
        conn: &mut SqliteConnection,
        side: &str,
        request_id: &str,
        at: DateTime<Utc>,
        actor: &str,
        state: &str,
        note: &Note,
    ) -> Result<()> {
        sqlx::query("INSERT INTO timeline (side, request_id, at, actor, event, state, detail, partner) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(side)
            .bind(request_id)
            .bind(ms(at))
            .bind(actor)
            .bind(note.event)
            .bind(state)
            .bind(&note.detail)
            .bind(note.partner.as_ref().map(Symbol::as_str))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    pub async fn timeline(&self, side: &str, request_id: &str) -> Result<Vec<TimelineEntry>> {
        let rows = sqlx::query("SELECT * FROM timeline WHERE side = ? AND request_id = ? ORDER BY seq")
            .bind(side)
            .bind(request_id)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows
            .iter()
            .map(|r| TimelineEntry {
                at: from_ms(r.get("at")),
                actor: r.get("actor"),
                event: r.get("event"),
                state: r.get("state"),
                detail: r.get("detail"),
                partner: r.get("partner"),
            })
            .collect())
    }

    // -- outbox -------------------------------------------------------------------------

    /// Queue a message to `partner` in the caller's transaction: assigns its message id
    /// and the next sequence number of this request's conversation with that partner.
    pub async fn enqueue(
        conn: &mut SqliteConnection,
        partner: &Symbol,
        request_id: &str,
        body: Body,
        now: DateTime<Utc>,
    ) -> Result<Envelope> {
        let sequence = Self::bump_sequence(conn, request_id, partner, "out").await?;
        let env =
            Envelope { message_id: Uuid::new_v4(), request_id: request_id.to_owned(), sequence, sent_at: now, body };
        sqlx::query(
            "INSERT INTO outbox (partner, request_id, message_id, sequence, envelope, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(partner.as_str())
        .bind(request_id)
        .bind(env.message_id.to_string())
        .bind(sequence as i64)
        .bind(to_json(&env))
        .bind(ms(now))
        .bind(ms(now))
        .execute(&mut *conn)
        .await?;
        Ok(env)
    }

    async fn bump_sequence(
        conn: &mut SqliteConnection,
        request_id: &str,
        peer: &Symbol,
        direction: &str,
    ) -> Result<u64> {
        let v: i64 = sqlx::query_scalar(
            "INSERT INTO sequences (request_id, peer, direction, last) VALUES (?, ?, ?, 1)
             ON CONFLICT (request_id, peer, direction) DO UPDATE SET last = last + 1 RETURNING last",
        )
        .bind(request_id)
        .bind(peer.as_str())
        .bind(direction)
        .fetch_one(&mut *conn)
        .await?;
        Ok(v as u64)
    }

    /// The last sequence we queued to `peer` for this request (0 if none).
    pub async fn last_outbound_sequence(conn: &mut SqliteConnection, request_id: &str, peer: &Symbol) -> Result<u64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT last FROM sequences WHERE request_id = ? AND peer = ? AND direction = 'out'")
                .bind(request_id)
                .bind(peer.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        Ok(v.unwrap_or(0) as u64)
    }

    /// Whether this request's conversation with `partner` is settled, so a lender may ship:
    /// the partner has confirmed every message we sent it, and we have received every
    /// message it told us (in those confirmations) it had queued to us.
    pub async fn conversation_settled(
        conn: &mut SqliteConnection,
        partner: &Symbol,
        request_id: &str,
    ) -> Result<Settled> {
        let (unconfirmed, announced): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE delivered_at IS NULL), COALESCE(MAX(peer_sent_through), 0)
             FROM outbox WHERE partner = ? AND request_id = ?",
        )
        .bind(partner.as_str())
        .bind(request_id)
        .fetch_one(&mut *conn)
        .await?;
        if unconfirmed > 0 {
            return Ok(Settled::Unconfirmed(unconfirmed as u64));
        }
        let received = Self::last_inbound_sequence(conn, request_id, partner).await?;
        if (received as i64) < announced {
            return Ok(Settled::Awaiting { announced: announced as u64, received });
        }
        Ok(Settled::Yes)
    }

    /// The last sequence received from `peer` for this request (0 if none).
    pub async fn last_inbound_sequence(conn: &mut SqliteConnection, request_id: &str, peer: &Symbol) -> Result<u64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT last FROM sequences WHERE request_id = ? AND peer = ? AND direction = 'in'")
                .bind(request_id)
                .bind(peer.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        Ok(v.unwrap_or(0) as u64)
    }

    pub async fn set_inbound_sequence(
        conn: &mut SqliteConnection,
        request_id: &str,
        peer: &Symbol,
        seq: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sequences (request_id, peer, direction, last) VALUES (?, ?, 'in', ?)
             ON CONFLICT (request_id, peer, direction) DO UPDATE SET last = excluded.last",
        )
        .bind(request_id)
        .bind(peer.as_str())
        .bind(seq as i64)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Messages to `partner` that are due now, oldest first, never one whose request has an
    /// earlier message still undelivered (each request's messages stay in order).
    pub async fn due_outbox(&self, partner: &str, now: DateTime<Utc>, limit: u32) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT id, partner, attempts, envelope FROM outbox o
             WHERE partner = ?1 AND delivered_at IS NULL AND next_attempt_at <= ?2
               AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.partner = o.partner AND p.request_id = o.request_id
                               AND p.delivered_at IS NULL AND p.id < o.id)
             ORDER BY id LIMIT ?3",
        )
        .bind(partner)
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.get("id"),
                    partner: r.get("partner"),
                    attempts: r.get("attempts"),
                    envelope: json("outbox envelope", r.get("envelope"))?,
                })
            })
            .collect()
    }

    /// Whether `partner` has confirmed every message we sent it for this request.
    pub async fn all_delivered(conn: &mut SqliteConnection, partner: &Symbol, request_id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE partner = ? AND request_id = ? AND delivered_at IS NULL",
        )
        .bind(partner.as_str())
        .bind(request_id)
        .fetch_one(&mut *conn)
        .await?;
        Ok(n == 0)
    }

    /// Delete this request's undelivered messages to `partner` (it never got them).
    pub async fn withdraw(conn: &mut SqliteConnection, partner: &Symbol, request_id: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM outbox WHERE partner = ? AND request_id = ? AND delivered_at IS NULL")
            .bind(partner.as_str())
            .bind(request_id)
            .execute(&mut *conn)
            .await?;
        Ok(r.rows_affected())
    }

    /// When the next undelivered message to `partner` falls due, if any.
    pub async fn next_due(&self, partner: &str) -> Result<Option<DateTime<Utc>>> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox WHERE partner = ? AND delivered_at IS NULL")
                .bind(partner)
                .fetch_one(&self.reader)
                .await?;
        Ok(v.map(from_ms))
    }

    /// Partners with undelivered messages.
    pub async fn partners_with_pending(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT DISTINCT partner FROM outbox WHERE delivered_at IS NULL")
            .fetch_all(&self.reader)
            .await?)
    }

    /// Record the partner's confirmation of message `id`; `sent_through` is what its
    /// confirmation said it had queued back to us (0 for a refusal).
    pub async fn mark_delivered(&self, id: i64, outcome: &str, sent_through: u64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET delivered_at = ?, outcome = ?, attempts = attempts + 1, last_error = NULL,
               peer_sent_through = ? WHERE id = ?",
        )
        .bind(ms(now))
        .bind(outcome)
        .bind(i64::try_from(sent_through).unwrap_or(i64::MAX))
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn mark_retry(&self, id: i64, error: &str, next: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?")
            .bind(error)
            .bind(ms(next))
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    // -- inbox --------------------------------------------------------------------------

    pub async fn inbox(conn: &mut SqliteConnection, sender: &Symbol, message_id: &Uuid) -> Result<Option<InboxRow>> {
        let row = sqlx::query("SELECT payload_hash, confirmation FROM inbox WHERE sender = ? AND message_id = ?")
            .bind(sender.as_str())
            .bind(message_id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|r| {
            Ok(InboxRow {
                payload_hash: r.get("payload_hash"),
                confirmation: json("inbox confirmation", r.get("confirmation"))?,
            })
        })
        .transpose()
    }

    pub async fn record_inbox(
        conn: &mut SqliteConnection,
        sender: &Symbol,
        env: &Envelope,
        confirmation: &Confirmation,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO inbox (sender, message_id, request_id, sequence, payload_hash, confirmation, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(sender.as_str())
            .bind(env.message_id.to_string())
            .bind(&env.request_id)
            .bind(env.sequence as i64)
            .bind(env.payload_hash())
            .bind(to_json(confirmation))
            .bind(ms(now))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

// -- partner writes (in a transaction) ----------------------------------------------------

pub async fn insert_partner(conn: &mut SqliteConnection, p: &Partner) -> Result<()> {
    sqlx::query(
        "INSERT INTO partners (symbol, name, endpoint, ca_pem, fingerprint, tier, priority, status, added_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(p.symbol.as_str())
    .bind(&p.name)
    .bind(&p.endpoint)
    .bind(&p.ca_pem)
    .bind(&p.fingerprint)
    .bind(p.tier.as_str())
    .bind(i64::from(p.priority))
    .bind(p.status.as_str())
    .bind(ms(p.added_at))
    .bind(ms(p.updated_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn set_partner_status(
    conn: &mut SqliteConnection,
    symbol: &Symbol,
    status: PartnerStatus,
    now: DateTime<Utc>,
) -> Result<bool> {
    let r = sqlx::query("UPDATE partners SET status = ?, updated_at = ? WHERE symbol = ?")
        .bind(status.as_str())
        .bind(ms(now))
        .bind(symbol.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn delete_partner(conn: &mut SqliteConnection, symbol: &Symbol) -> Result<bool> {
    let r = sqlx::query("DELETE FROM partners WHERE symbol = ?").bind(symbol.as_str()).execute(&mut *conn).await?;
    Ok(r.rows_affected() == 1)
}

pub async fn put_agreement(
    conn: &mut SqliteConnection,
    symbol: &Symbol,
    a: &Agreement,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO agreements (partner, lend, borrow, loan_days, renewals, max_outstanding, formats, expiry_seconds, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (partner) DO UPDATE SET lend = ?2, borrow = ?3, loan_days = ?4, renewals = ?5, max_outstanding = ?6,
           formats = ?7, expiry_seconds = ?8, updated_at = ?9",
    )
    .bind(symbol.as_str())
    .bind(a.lend)
    .bind(a.borrow)
    .bind(i64::from(a.loan_days))
    .bind(i64::from(a.renewals))
    .bind(i64::from(a.max_outstanding))
    .bind(a.formats.join(","))
    .bind(a.expiry_seconds as i64)
    .bind(ms(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn agreement_in(conn: &mut SqliteConnection, symbol: &Symbol) -> Result<Agreement> {
    let row = sqlx::query("SELECT * FROM agreements WHERE partner = ?")
        .bind(symbol.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(agreement_from_row).unwrap_or_default())
}

// -- row mapping --------------------------------------------------------------------------

fn partner_from_row(r: &SqliteRow) -> Result<Partner> {
    Ok(Partner {
        symbol: Symbol::parse(r.get("symbol")).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        name: r.get("name"),
        endpoint: r.get("endpoint"),
        ca_pem: r.get("ca_pem"),
        fingerprint: r.get("fingerprint"),
        tier: parse("tier", r.get("tier"))?,
        priority: r.get::<i64, _>("priority") as u32,
        status: parse("partner status", r.get("status"))?,
        added_at: from_ms(r.get("added_at")),
        updated_at: from_ms(r.get("updated_at")),
    })
}

fn agreement_from_row(r: &SqliteRow) -> Agreement {
    let formats: String = r.get("formats");
    Agreement {
        configured: true,
        lend: r.get("lend"),
        borrow: r.get("borrow"),
        loan_days: r.get::<i64, _>("loan_days") as u32,
        renewals: r.get::<i64, _>("renewals") as u32,
        max_outstanding: r.get::<i64, _>("max_outstanding") as u32,
        formats: formats.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        expiry_seconds: r.get::<i64, _>("expiry_seconds") as u64,
    }
}

fn item_from_row(r: &SqliteRow) -> Result<Item> {
    Ok(Item {
        barcode: r.get("barcode"),
        title: r.get("title"),
        author: r.get("author"),
        publisher: r.get("publisher"),
        year: r.get("year"),
        isbn: r.get("isbn"),
        isbns: r.get::<String, _>("isbns").split_whitespace().map(str::to_owned).collect(),
        issn: r.get("issn"),
        oclc: r.get("oclc"),
        lccn: r.get("lccn"),
        format: r.get("format"),
        location: r.get("location"),
        call_number: r.get("call_number"),
        policy: parse::<Policy>("policy", r.get("policy"))?,
        status: parse::<ItemStatus>("item status", r.get("status"))?,
    })
}

fn lending_from_row(r: &SqliteRow) -> Result<LendingRecord> {
    Ok(LendingRecord {
        id: r.get("id"),
        borrower: Symbol::parse(r.get("borrower")).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        state: parse("lending state", r.get("state"))?,
        citation: json("citation", r.get("citation"))?,
        item_barcode: r.get("item_barcode"),
        reason_unfilled: r.get("reason_unfilled"),
        note: r.get("note"),
        created_at: from_ms(r.get("created_at")),
        updated_at: from_ms(r.get("updated_at")),
        due: r.get::<Option<String>, _>("due_date").and_then(|d| d.parse().ok()),
        renew_pending: r.get("renew_pending"),
        renewals: r
            .get::<i64, _>("renewals")
            .try_into()
            .map_err(|_| StoreError::Corrupt("negative renewal count".into()))?,
    })
}
