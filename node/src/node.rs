//! The node's behaviour, independent of any transport: what staff can do to their own
//! library's node, and what a partner can do to it. The gRPC adapters in `transport` call
//! these methods with an already-authenticated caller.
//!
//! Every state change happens in one write transaction together with its timeline entries
//! and the outbound messages it emits (the transactional outbox, DESIGN §4).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rota_certs::{CaBundle, Card};
use sqlx::SqliteConnection;
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::config::Config;
use crate::directory::Directory;
use crate::domain::{
    Actor, Agreement, Citation, FieldError, Item, ItemStatus, Partner, PartnerStatus, Policy, ReasonUnfilled,
    StaffUser, Symbol, Tier, check_format, check_text,
};
use crate::error::{NodeError, Result};
use crate::machine::{
    BorrowerOut, BorrowingEffect, BorrowingEvent, BorrowingState, Decision, LendingEffect, LendingEvent, LendingState,
    Note, borrowing_step, lending_step,
};
use crate::message::{Body, Confirmation, ConfirmationError, Envelope, RequestBody, RequesterBody, SupplierBody};
use crate::store::{self, BorrowingRecord, LendingRecord, Store, TimelineEntry, Upsert};

/// Symbols of partners with new outbound messages, for the dispatcher.
pub type WakeReceiver = mpsc::UnboundedReceiver<Symbol>;

/// One library's node.
#[derive(Debug)]
pub struct Node {
    pub config: Config,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub directory: Arc<Directory>,
    ca: CaBundle,
    card: Card,
    wake_tx: mpsc::UnboundedSender<Symbol>,
    locator: std::sync::OnceLock<crate::rota::SharedLocator>,
}

/// Changes to one agreement; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct AgreementPatch {
    pub lend: Option<bool>,
    pub borrow: Option<bool>,
    pub loan_days: Option<u32>,
    pub renewals: Option<u32>,
    pub max_outstanding: Option<u32>,
    pub formats: Option<Vec<String>>,
    pub expiry_seconds: Option<u64>,
}

/// A partner with its agreement and delivery state, for staff.
#[derive(Clone, Debug)]
pub struct PartnerView {
    pub partner: Partner,
    pub agreement: Agreement,
    pub pending_messages: u64,
    /// Attempts made so far to deliver the pending messages.
    pub delivery_attempts: u64,
    pub last_delivery_error: Option<String>,
    /// Current and future closure periods.
    pub closures: Vec<crate::domain::Closure>,
}

/// A new borrowing request, as staff enter it.
#[derive(Clone, Debug)]
pub struct NewRequest {
    pub citation: Citation,
    pub patron_id: String,
    pub note: String,
    pub need_before: Option<NaiveDate>,
    /// Place it even though one of our own copies is on the shelf.
    pub force: bool,
}

/// The answer to a Locate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocateAnswer {
    pub available: bool,
    pub reason: Option<ReasonUnfilled>,
    pub copies: u32,
}

/// A partner node's answer to Hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloAnswer {
    pub protocol_version: String,
    pub name: String,
    /// The partner's terms with us, as it has configured them.
    pub agreement: Agreement,
}

/// Where our terms with `partner` and its terms with us (from its Hello) do not fit
/// together, or the two nodes speak different protocol versions: one sentence each, for
/// staff. Empty when the partnership will work as both sides expect.
pub fn partnership_problems(
    partner: &Symbol,
    ours: &Agreement,
    theirs: &HelloAnswer,
    our_version: &str,
) -> Vec<String> {
    let t = &theirs.agreement;
    let mut out = vec![];
    if theirs.protocol_version != our_version {
        out.push(format!(
            "{partner} speaks {}, this node speaks {our_version}: upgrade the older node",
            theirs.protocol_version
        ));
    }
    if !ours.configured {
        out.push(format!(
            "you have not set an agreement with {partner}: you neither lend to it nor ask it \
             (`rota agreement set {partner} --lend yes --borrow yes`)"
        ));
    }
    if !t.configured {
        out.push(format!("{partner} has not set an agreement with you yet: it neither lends to you nor asks you"));
    }
    if ours.configured && t.configured {
        if ours.borrow && !t.lend {
            out.push(format!(
                "you borrow from {partner}, but it does not lend to you: it will answer your requests Unfilled \
                 (PolicyProblem)"
            ));
        }
        if t.borrow && !ours.lend {
            out.push(format!(
                "{partner} borrows from you, but you do not lend to it: your node answers its requests Unfilled \
                 (PolicyProblem)"
            ));
        }
        if t.lend && !ours.borrow {
            out.push(format!("{partner} lends to you, but you do not borrow from it: it is left out of your rotas"));
        }
        if ours.lend && !t.borrow {
            out.push(format!("you lend to {partner}, but it does not borrow from you: it will not ask you"));
        }
    }
    out
}

/// Where a rotation writes the new key and certificate before moving them into place.
fn next_paths(config: &Config) -> (std::path::PathBuf, std::path::PathBuf) {
    (config.tls_dir().join("node.key.next"), config.tls_dir().join("node.pem.next"))
}

/// Move a fully written rotation into place: the key, then the certificate. Also run at
/// start, so a rotation cut short by a crash never leaves a key and certificate that differ.
fn finish_rotation(config: &Config) -> std::io::Result<()> {
    let (key_next, cert_next) = next_paths(config);
    if !cert_next.exists() {
        // Not both written yet: the old pair is still whole. Drop any half of a new one.
        let _ = std::fs::remove_file(&key_next);
        return Ok(());
    }
    if key_next.exists() {
        std::fs::rename(&key_next, config.node_key_path())?;
    }
    std::fs::rename(&cert_next, config.node_cert_path())
}

fn cause_actor(event: &str, cause: &Actor) -> String {
    // What the node does by itself in reaction to an event is the node's act.
    match (event, cause) {
        ("request_sent" | "rolled" | "unfilled" | "cancel_sent", _) => Actor::Node.to_string(),
        ("answer_sent" | "decided" | "reserved" | "released", Actor::Partner(_)) => Actor::Node.to_string(),
        _ => cause.to_string(),
    }
}

impl Node {
    /// Open a node from a checked configuration: refuses key files others can read, opens
    /// (and migrates) the database, and loads the live partner table.
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<(Arc<Node>, WakeReceiver)> {
        let ca_pem = std::fs::read_to_string(config.ca_cert_path())
            .map_err(|e| anyhow::anyhow!("{}: {e}", config.ca_cert_path().display()))?;
        finish_rotation(&config)
            .map_err(|e| anyhow::anyhow!("{}: finishing a certificate rotation: {e}", config.tls_dir().display()))?;
        let ca_key = rota_certs::files::read_secret(&config.ca_key_path())?;
        rota_certs::files::read_secret(&config.node_key_path())?;
        let ca = CaBundle::from_pem(&ca_pem, &ca_key)
            .map_err(|e| anyhow::anyhow!("{}: {e}", config.ca_key_path().display()))?;
        let card = Card::new(config.symbol.clone(), config.name.clone(), config.public_url.clone(), ca_pem)?;
        let store = Store::open_with(&config.db_path(), config.busy_timeout)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", config.db_path().display()))?;
        let directory = Arc::new(Directory::default());
        directory.load(&store.partners().await?);
        let (wake_tx, wake_rx) = mpsc::unbounded_channel();
        Ok((
            Arc::new(Node { config, store, clock, directory, ca, card, wake_tx, locator: std::sync::OnceLock::new() }),
            wake_rx,
        ))
    }

    pub fn symbol(&self) -> &Symbol {
        &self.config.symbol
    }

    pub fn card(&self) -> &Card {
        &self.card
    }

    /// Install the transport's Locate client (once).
    pub fn set_locator(&self, l: crate::rota::SharedLocator) {
        let _ = self.locator.set(l);
    }

    pub(crate) fn locator(&self) -> Option<&crate::rota::SharedLocator> {
        self.locator.get()
    }

    pub(crate) fn wake(&self, partner: &Symbol) {
        let _ = self.wake_tx.send(partner.clone());
    }

    async fn reload_directory(&self) -> Result<()> {
        self.directory.load(&self.store.partners().await?);
        Ok(())
    }

    // ===================================================================================
    // Staff: partners

    pub async fn add_partner(
        &self,
        by: &StaffUser,
        card_text: &str,
        tier: Tier,
        priority: u32,
        expected_fingerprint: Option<&str>,
    ) -> Result<PartnerView> {
        let card = Card::parse(card_text).map_err(|e| FieldError::new("card", e.to_string()))?;
        if let Some(fp) = expected_fingerprint.filter(|f| !f.trim().is_empty()) {
            let fp = rota_certs::card::normalise_fingerprint(fp);
            if fp != card.fingerprint() {
                return Err(FieldError::new(
                    "fingerprint",
                    format!("the card's fingerprint is {} but you expected {fp}: do not add this partner until you have checked the card with {}", card.fingerprint(), card.symbol),
                )
                .into());
            }
        }
        if &card.symbol == self.symbol() {
            return Err(FieldError::new(
                "card",
                format!("this is our own card ({}): a library cannot partner with itself", card.symbol),
            )
            .into());
        }
        if priority > 1_000_000 {
            return Err(FieldError::new("priority", "must be at most 1000000").into());
        }
        let existing = self.store.partners().await?;
        if let Some(p) = existing.iter().find(|p| p.symbol == card.symbol) {
            return Err(NodeError::Conflict(format!(
                "partner {} already exists (added {}); remove it first to replace its card",
                p.symbol,
                p.added_at.format("%Y-%m-%d")
            )));
        }
        if let Some(p) = existing.iter().find(|p| p.fingerprint == card.fingerprint()) {
            return Err(NodeError::Conflict(format!(
                "this card's CA ({}) already belongs to partner {}",
                card.fingerprint(),
                p.symbol
            )));
        }
        let now = self.clock.now();
        let partner = Partner {
            symbol: card.symbol.clone(),
            name: card.name.clone(),
            endpoint: card.endpoint.clone(),
            fingerprint: card.fingerprint(),
            ca_pem: card.ca_pem.clone(),
            tier,
            priority,
            status: PartnerStatus::Active,
            added_at: now,
            updated_at: now,
        };
        let mut tx = self.store.begin().await?;
        store::insert_partner(&mut tx, &partner).await?;
        tx.commit().await?;
        self.reload_directory().await?;
        tracing::info!(partner = %partner.symbol, staff = %by, fingerprint = %partner.fingerprint, "partner added");
        self.partner(&partner.symbol).await
    }

    pub async fn partners(&self) -> Result<Vec<PartnerView>> {
        let mut out = vec![];
        for p in self.store.partners().await? {
            out.push(self.view_of(p).await?);
        }
        Ok(out)
    }

    async fn view_of(&self, partner: Partner) -> Result<PartnerView> {
        let agreement = self.store.agreement(&partner.symbol).await?;
        let d = self.store.delivery_state(&partner.symbol).await?;
        let (pending_messages, delivery_attempts, last_delivery_error) = (d.pending, d.attempts, d.last_error);
        let closures = self.store.closures(&partner.symbol, self.clock.now().date_naive()).await?;
        Ok(PartnerView { partner, agreement, pending_messages, delivery_attempts, last_delivery_error, closures })
    }

    pub async fn partner(&self, symbol: &Symbol) -> Result<PartnerView> {
        let p = self.store.partner(symbol).await?.ok_or_else(|| NodeError::NotFound(format!("no partner {symbol}")))?;
        self.view_of(p).await
    }

    pub async fn set_partner_status(
        &self,
        by: &StaffUser,
        symbol: &Symbol,
        status: PartnerStatus,
    ) -> Result<PartnerView> {
        let mut tx = self.store.begin().await?;
        if !store::set_partner_status(&mut tx, symbol, status, self.clock.now()).await? {
            return Err(NodeError::NotFound(format!("no partner {symbol}")));
        }
        tx.commit().await?;
        self.reload_directory().await?;
        tracing::info!(partner = %symbol, staff = %by, status = %status, "partner status changed");
        if status == PartnerStatus::Active {
            self.wake(symbol);
        }
        self.partner(symbol).await
    }

    pub async fn remove_partner(&self, by: &StaffUser, symbol: &Symbol) -> Result<PartnerView> {
        let view = self.partner(symbol).await?;
        let mut tx = self.store.begin().await?;
        store::delete_partner(&mut tx, symbol).await?;
        tx.commit().await?;
        self.reload_directory().await?;
        tracing::info!(partner = %symbol, staff = %by, "partner removed");
        Ok(view)
    }

    // ===================================================================================
    // Staff: certificates

    /// Sign a staff certificate for `user` from a CSR. Only `admin` may do this.
    pub fn issue_staff(&self, by: &StaffUser, user: &str, csr_pem: &str) -> Result<String> {
        if by.as_str() != "admin" {
            return Err(NodeError::Forbidden(format!(
                "only the admin staff user may issue staff certificates (you are {by})"
            )));
        }
        let user = StaffUser::parse(user).map_err(|e| FieldError::new("user", e.to_string()))?;
        let cert = self
            .ca
            .sign_staff_csr(self.symbol(), &user, csr_pem)
            .map_err(|e| FieldError::new("csr_pem", e.to_string()))?;
        tracing::info!(staff = %by, new_user = %user, "staff certificate issued");
        Ok(cert)
    }

    /// Issue a new node certificate from our CA and write it (key first, each file replaced
    /// atomically). Only `admin` may do this. Returns the new certificate and key, PEM.
    pub fn rotate_node_cert(&self, by: &StaffUser) -> Result<(String, String)> {
        if by.as_str() != "admin" {
            return Err(NodeError::Forbidden(format!(
                "only the admin staff user may rotate the node certificate (you are {by})"
            )));
        }
        let host = crate::init::url_host(&self.config.public_url);
        let issued = self.ca.issue_node(self.symbol(), &[host]).map_err(|e| NodeError::Internal(e.to_string()))?;
        let io = |e: std::io::Error| NodeError::Internal(format!("writing the new node certificate: {e}"));
        // Both new files are written in full before either replaces the old one; a crash
        // between the two renames is finished at the next start (`finish_rotation`).
        let (key_next, cert_next) = next_paths(&self.config);
        rota_certs::files::write_secret(&key_next, issued.key_pem.as_bytes()).map_err(io)?;
        rota_certs::files::write_public(&cert_next, issued.cert_pem.as_bytes()).map_err(io)?;
        finish_rotation(&self.config).map_err(io)?;
        tracing::info!(staff = %by, "node certificate rotated");
        Ok((issued.cert_pem, issued.key_pem))
    }

    // ===================================================================================
    // Staff: holdings

    pub async fn add_item(&self, item: &Item) -> Result<(Upsert, Item)> {
        let mut tx = self.store.begin().await?;
        let outcome = Store::upsert_item(&mut tx, item, self.clock.now()).await?;
        tx.commit().await?;
        // What was stored: an item lent or reserved through Rota keeps its status.
        let stored = self.store.item(&item.barcode).await?.unwrap_or_else(|| item.clone());
        Ok((outcome, stored))
    }

    pub async fn item(&self, barcode: &str) -> Result<Item> {
        self.store.item(barcode).await?.ok_or_else(|| NodeError::NotFound(format!("no item with barcode {barcode:?}")))
    }

    pub async fn search_items(&self, query: &str, limit: u32) -> Result<Vec<Item>> {
        let q = check_text("query", query, 200, true)?;
        Ok(self.store.search_items(&q, limit.clamp(1, 500)).await?)
    }

    // ===================================================================================
    // Staff: agreements

    pub async fn set_agreement(&self, by: &StaffUser, symbol: &Symbol, patch: AgreementPatch) -> Result<Agreement> {
        if self.store.partner(symbol).await?.is_none() {
            return Err(NodeError::NotFound(format!(
                "no partner {symbol}: add its card first with `rota partner add`"
            )));
        }
        let mut a = self.store.agreement(symbol).await?;
        let range = |field: &str, v: Option<u32>, lo: u32, hi: u32| -> Result<Option<u32>> {
            match v {
                Some(n) if !(lo..=hi).contains(&n) => {
                    Err(FieldError::new(field, format!("{n} is outside {lo}..={hi}")).into())
                }
                v => Ok(v),
            }
        };
        if let Some(v) = patch.lend {
            a.lend = v;
        }
        if let Some(v) = patch.borrow {
            a.borrow = v;
        }
        if let Some(v) = range("loan_days", patch.loan_days, 1, 365)? {
            a.loan_days = v;
        }
        if let Some(v) = range("renewals", patch.renewals, 0, 20)? {
            a.renewals = v;
        }
        if let Some(v) = range("max_outstanding", patch.max_outstanding, 1, 100_000)? {
            a.max_outstanding = v;
        }
        if let Some(formats) = patch.formats {
            a.formats = formats.iter().map(|f| check_format("formats", f)).collect::<Result<_, _>>()?;
        }
        if let Some(v) = patch.expiry_seconds {
            if !(1..=90 * 86400).contains(&v) {
                return Err(FieldError::new("expiry", "must be between 1 second and 90 days").into());
            }
            a.expiry_seconds = v;
        }
        a.configured = true;
        let mut tx = self.store.begin().await?;
        store::put_agreement(&mut tx, symbol, &a, self.clock.now()).await?;
        tx.commit().await?;
        tracing::info!(partner = %symbol, staff = %by, lend = a.lend, borrow = a.borrow, "agreement set");
        Ok(a)
    }

    pub async fn agreement(&self, symbol: &Symbol) -> Result<Agreement> {
        if self.store.partner(symbol).await?.is_none() {
            return Err(NodeError::NotFound(format!("no partner {symbol}")));
        }
        Ok(self.store.agreement(symbol).await?)
    }

    // ===================================================================================
    // Staff: borrowing

    /// Add a closure period for a partner: it is left out of new rotas meanwhile.
    pub async fn close_partner(
        &self,
        by: &StaffUser,
        symbol: &Symbol,
        closure: crate::domain::Closure,
    ) -> Result<PartnerView> {
        if closure.to < closure.from {
            return Err(FieldError::new("to", format!("{} is before from ({})", closure.to, closure.from)).into());
        }
        check_text("note", &closure.note, 500, false)?;
        if self.store.partner(symbol).await?.is_none() {
            return Err(NodeError::NotFound(format!("no partner {symbol}")));
        }
        let mut tx = self.store.begin().await?;
        Store::add_closure(&mut tx, symbol, &closure).await?;
        tx.commit().await?;
        tracing::info!(partner = %symbol, staff = %by, from = %closure.from, to = %closure.to, "partner closure added");
        self.partner(symbol).await
    }

    /// The rota a citation would get and our own available copies. Sends nothing.
    pub async fn preview(&self, c: &Citation) -> Result<(Vec<crate::rota::Planned>, Vec<Item>)> {
        Ok((self.plan_rota(c).await?, self.local_copies(c).await?))
    }

    /// Create a borrowing request: refuse it if our own copy is on the shelf (unless
    /// `force`), locate candidate lenders, fix the rota and send to the first lender.
    pub async fn create_request(&self, by: &StaffUser, req: NewRequest) -> Result<BorrowingRecord> {
        let patron_id = check_text("patron_id", &req.patron_id, 64, true)?;
        let note = check_text("note", &req.note, 1000, false)?;
        if !req.force {
            let own = self.local_copies(&req.citation).await?;
            if let Some(i) = own.first() {
                return Err(NodeError::Precondition(format!(
                    "our own copy is on the shelf: barcode {} ({}{}); lend it locally, or place the request with --force",
                    i.barcode,
                    if i.location.is_empty() { "no location" } else { &i.location },
                    if i.call_number.is_empty() { String::new() } else { format!(", {}", i.call_number) },
                )));
            }
        }
        let now = self.clock.now();
        let cause = Actor::Staff(by.to_string());
        let mut tx = self.store.begin().await?;
        let id = Store::next_request_id(&mut tx, self.symbol()).await?;
        let rec = BorrowingRecord {
            id: id.clone(),
            state: BorrowingState::Created,
            citation: req.citation,
            patron_id,
            note,
            need_before: req.need_before,
            position: 0,
            supplier: None,
            created_at: now,
            updated_at: now,
            rota: vec![],
            due: None,
            resume: None,
            supplier_item: None,
            asked_at: None,
        };
        Store::insert_borrowing(&mut tx, &rec).await?;
        let created = Note {
            event: "created",
            detail: format!(
                "request for {} for patron {}{}",
                rec.citation.label(),
                rec.patron_id,
                if req.force { " (placed although our own copy is on the shelf)" } else { "" }
            ),
            partner: None,
        };
        Store::add_note(&mut tx, "borrowing", &id, now, &cause.to_string(), BorrowingState::Created.as_str(), &created)
            .await?;
        let step = borrowing_step(&rec.view(), &BorrowingEvent::StartLocating)?;
        let mut wake = vec![];
        self.apply_borrowing(&mut tx, &rec, step, &cause, now, &mut wake).await?;
        tx.commit().await?;
        tracing::info!(request = %id, staff = %by, "borrowing request created");
        self.locate_and_submit(&id, &cause).await?;
        self.store.borrowing_read(&id).await?.ok_or_else(|| NodeError::Internal(format!("request {id} vanished")))
    }

    /// Locate, fix the rota of a request in `locating`, and send to the first lender. Also
    /// used to finish a request the node was locating when it stopped.
    pub(crate) async fn locate_and_submit(&self, id: &str, cause: &Actor) -> Result<()> {
        let Some(rec) = self.store.borrowing_read(id).await? else {
            return Err(NodeError::NotFound(format!("no borrowing request {id:?}")));
        };
        let plan = self.plan_rota(&rec.citation).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let Some(mut rec) = Store::borrowing(&mut tx, id).await?.filter(|r| r.state == BorrowingState::Locating) else {
            return Ok(()); // someone else finished it
        };
        rec.rota = crate::rota::rota_of(&plan);
        Store::set_rota(&mut tx, id, &rec.rota).await?;
        let summary: Vec<String> = plan
            .iter()
            .map(|p| {
                let what = if p.included { p.locate.as_str().to_owned() } else { format!("left out: {}", p.reason) };
                format!("{} ({}) {what}", p.partner, p.tier)
            })
            .collect();
        let located = Note {
            event: "located",
            detail: if summary.is_empty() { "no partner to ask".into() } else { summary.join("; ") },
            partner: None,
        };
        Store::add_note(
            &mut tx,
            "borrowing",
            id,
            now,
            &Actor::Node.to_string(),
            BorrowingState::Locating.as_str(),
            &located,
        )
        .await?;
        let step = borrowing_step(&rec.view(), &BorrowingEvent::Submit)?;
        let mut wake = vec![];
        self.apply_borrowing(&mut tx, &rec, step, cause, now, &mut wake).await?;
        tx.commit().await?;
        for p in &wake {
            self.wake(p);
        }
        Ok(())
    }

    pub(crate) async fn apply_borrowing(
        &self,
        tx: &mut SqliteConnection,
        rec: &BorrowingRecord,
        step: crate::machine::BorrowingStep,
        cause: &Actor,
        now: DateTime<Utc>,
        wake: &mut Vec<Symbol>,
    ) -> Result<()> {
        let mut supplier = None;
        let mut asked = false;
        for e in &step.effects {
            match e {
                BorrowingEffect::Slot { index, outcome, reason } => {
                    Store::set_slot(tx, &rec.id, *index, *outcome, reason.as_deref()).await?
                }
                BorrowingEffect::Supplier(s) => supplier = Some(s.clone()),
                BorrowingEffect::Asked => asked = true,
                BorrowingEffect::Withdraw(l) => {
                    let n = Store::withdraw(tx, l, &rec.id).await?;
                    tracing::info!(request = %rec.id, partner = %l, withdrawn = n, "undelivered messages withdrawn");
                }
            }
        }
        Store::update_borrowing(tx, &rec.id, &step, supplier.as_ref(), asked, now).await?;
        for n in &step.notes {
            Store::add_note(tx, "borrowing", &rec.id, now, &cause_actor(n.event, cause), step.state.as_str(), n)
                .await?;
        }
        for out in step.out {
            let (to, body) = match out {
                BorrowerOut::Request { to } => (
                    to,
                    Body::Request(RequestBody {
                        citation: rec.citation.clone(),
                        need_before: rec.need_before,
                        note: rec.note.clone(),
                    }),
                ),
                BorrowerOut::Action { to, action, note, answer } => {
                    (to, Body::Requester(RequesterBody { action, note, answer }))
                }
            };
            Store::enqueue(tx, &to, &rec.id, body, now).await?;
            wake.push(to);
        }
        Ok(())
    }

    pub async fn request(&self, id: &str) -> Result<(BorrowingRecord, Vec<TimelineEntry>)> {
        let rec = self
            .store
            .borrowing_read(id)
            .await?
            .ok_or_else(|| NodeError::NotFound(format!("no borrowing request {id:?}")))?;
        let tl = self.store.timeline("borrowing", id).await?;
        Ok((rec, tl))
    }

    pub async fn requests(&self, state: Option<BorrowingState>, limit: u32) -> Result<Vec<BorrowingRecord>> {
        Ok(self.store.list_borrowing(state, limit.clamp(1, 10_000)).await?)
    }

    pub async fn lending_request(&self, id: &str) -> Result<(LendingRecord, Option<Item>, Vec<TimelineEntry>)> {
        let rec = self
            .store
            .lending_read(id)
            .await?
            .ok_or_else(|| NodeError::NotFound(format!("no lending request {id:?}")))?;
        let item = match &rec.item_barcode {
            Some(b) => self.store.item(b).await?,
            None => None,
        };
        let tl = self.store.timeline("lending", id).await?;
        Ok((rec, item, tl))
    }

    pub async fn lending_requests(
        &self,
        state: Option<LendingState>,
        limit: u32,
    ) -> Result<Vec<(LendingRecord, Option<Item>)>> {
        let mut out = vec![];
        for r in self.store.list_lending(state, limit.clamp(1, 10_000)).await? {
            let item = match &r.item_barcode {
                Some(b) => self.store.item(b).await?,
                None => None,
            };
            out.push((r, item));
        }
        Ok(out)
    }

    // ===================================================================================
    // Peer: the lender's automatic check

    /// Decide whether we can lend `citation` to `borrower`, checking in order: a holdings
    /// match by identifier, a lendable and available copy, and the agreement.
    async fn decide(conn: &mut SqliteConnection, borrower: &Symbol, c: &Citation) -> Result<(Decision, u32)> {
        let items = Store::matching_items(conn, c).await?;
        if items.is_empty() {
            return Ok((
                Decision::Unfilled {
                    reason: ReasonUnfilled::NotHeld,
                    note: format!("{} is not in our holdings", c.label()),
                },
                0,
            ));
        }
        let lendable: Vec<&Item> = items.iter().filter(|i| i.policy == Policy::Lendable).collect();
        if lendable.is_empty() {
            let policies: Vec<&str> = items.iter().map(|i| i.policy.as_str()).collect();
            return Ok((
                Decision::Unfilled {
                    reason: ReasonUnfilled::NonCirculating,
                    note: format!("our copies are {}", policies.join(", ")),
                },
                0,
            ));
        }
        let available: Vec<&&Item> = lendable.iter().filter(|i| i.status == ItemStatus::Available).collect();
        if available.is_empty() {
            let statuses: Vec<&str> = lendable.iter().map(|i| i.status.as_str()).collect();
            return Ok((
                Decision::Unfilled {
                    reason: ReasonUnfilled::NotOnShelf,
                    note: format!("no copy on the shelf ({})", statuses.join(", ")),
                },
                0,
            ));
        }
        let a = store::agreement_in(conn, borrower).await?;
        let policy = |note: String| Ok((Decision::Unfilled { reason: ReasonUnfilled::PolicyProblem, note }, 0));
        if !a.configured || !a.lend {
            return policy(format!("we have no lending agreement with {borrower}"));
        }
        if !a.lends_format(&c.format) {
            return policy(format!("we do not lend the format {:?} to {borrower}", c.format));
        }
        let outstanding = Store::outstanding_to(conn, borrower).await?;
        if outstanding >= a.max_outstanding {
            return policy(format!(
                "{borrower} already has {outstanding} of at most {} loans outstanding",
                a.max_outstanding
            ));
        }
        Ok((Decision::Supply { barcode: available[0].barcode.clone() }, available.len() as u32))
    }

    /// Locate: read-only, answers in milliseconds.
    pub async fn locate(&self, from: &Symbol, c: &Citation) -> Result<LocateAnswer> {
        let mut conn = self.store.read_conn().await?;
        let (d, copies) = Self::decide(&mut conn, from, c).await?;
        Ok(match d {
            Decision::Supply { .. } => LocateAnswer { available: true, reason: None, copies },
            Decision::Unfilled { reason, .. } => LocateAnswer { available: false, reason: Some(reason), copies: 0 },
        })
    }

    /// Hello: our view of the agreement with the caller.
    pub async fn hello(&self, from: &Symbol) -> Result<Agreement> {
        Ok(self.store.agreement(from).await?)
    }

    // ===================================================================================
    // Peer: receiving messages (DESIGN §4 receiving rules)

    /// Receive one message from partner `from`. Exactly-once effect: a redelivery gets the
    /// first confirmation back and changes nothing.
    pub async fn deliver(&self, from: &Symbol, env: Envelope) -> Result<Confirmation> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if let Some(prev) = Store::inbox(&mut tx, from, &env.message_id).await? {
            if prev.payload_hash == env.payload_hash() {
                return Ok(prev.confirmation);
            }
            return Ok(Confirmation::Error {
                kind: ConfirmationError::DuplicateMessageId,
                detail: format!("message_id {} was already used for a different message", env.message_id),
            });
        }
        let last = Store::last_inbound_sequence(&mut tx, &env.request_id, from).await?;
        if env.sequence <= last {
            return Ok(Confirmation::Error {
                kind: ConfirmationError::BadlyFormedMessage,
                detail: format!(
                    "sequence {} of request {} was already used (last received {last})",
                    env.sequence, env.request_id
                ),
            });
        }
        if env.sequence > last + 1 {
            return Ok(Confirmation::RetryLater {
                reason: format!("expected sequence {} of request {}, got {}", last + 1, env.request_id, env.sequence),
            });
        }
        let mut wake = vec![];
        let error = |kind, detail: String| Confirmation::Error { kind, detail };
        let own_prefix = format!("{}-", self.symbol());
        let their_prefix = format!("{from}-");
        let confirmation = match &env.body {
            Body::Request(_) | Body::Requester(_) if !env.request_id.starts_with(&their_prefix) => error(
                ConfirmationError::BadlyFormedMessage,
                format!("request_id {:?} must begin with the borrower's symbol {their_prefix}", env.request_id),
            ),
            Body::Supplier(_) if !env.request_id.starts_with(&own_prefix) => error(
                ConfirmationError::UnrecognisedRequestId,
                format!("request {} is not one of ours", env.request_id),
            ),
            Body::Request(r) => self.lender_receive(&mut tx, from, &env, r, now, &mut wake).await?,
            Body::Requester(r) => self.lender_requester(&mut tx, from, &env, r, now, &mut wake).await?,
            Body::Supplier(s) => self.borrower_answer(&mut tx, from, &env, s, now, &mut wake).await?,
        };
        let confirmation = match confirmation {
            // Tell the sender what we have queued back to it so far, in this same
            // transaction: it covers every message this one made us send.
            Confirmation::Accepted { .. } => Confirmation::Accepted {
                received_at: now,
                sent_through: Store::last_outbound_sequence(&mut tx, &env.request_id, from).await?,
            },
            other => other,
        };
        Store::record_inbox(&mut tx, from, &env, &confirmation, now).await?;
        Store::set_inbound_sequence(&mut tx, &env.request_id, from, env.sequence).await?;
        tx.commit().await?;
        for p in &wake {
            self.wake(p);
        }
        Ok(confirmation)
    }

    async fn lender_receive(
        &self,
        tx: &mut SqliteConnection,
        from: &Symbol,
        env: &Envelope,
        r: &RequestBody,
        now: DateTime<Utc>,
        wake: &mut Vec<Symbol>,
    ) -> Result<Confirmation> {
        if let Some(existing) = Store::lending(tx, &env.request_id).await? {
            return Ok(Confirmation::Error {
                kind: ConfirmationError::IllegalInState,
                detail: format!("request {} was already received and is {}", env.request_id, existing.state),
            });
        }
        let rec = LendingRecord {
            id: env.request_id.clone(),
            borrower: from.clone(),
            state: LendingState::Received,
            citation: r.citation.clone(),
            item_barcode: None,
            reason_unfilled: None,
            note: r.note.clone(),
            created_at: now,
            updated_at: now,
            due: None,
            renew_pending: false,
            renewals: 0,
        };
        Store::insert_lending(tx, &rec).await?;
        let cause = Actor::Partner(from.clone());
        let received = Note {
            event: "request_received",
            detail: format!("Request for {} from {from}", r.citation.label()),
            partner: Some(from.clone()),
        };
        Store::add_note(tx, "lending", &rec.id, now, &cause.to_string(), LendingState::Received.as_str(), &received)
            .await?;
        let (decision, _) = Self::decide(tx, from, &r.citation).await?;
        let step = lending_step(&rec.view(), &LendingEvent::Decide(decision))?;
        self.apply_lending(tx, &rec, step, &cause, now, wake).await?;
        Ok(Confirmation::Accepted { received_at: now, sent_through: 0 })
    }

    async fn lender_requester(
        &self,
        tx: &mut SqliteConnection,
        from: &Symbol,
        env: &Envelope,
        r: &RequesterBody,
        now: DateTime<Utc>,
        wake: &mut Vec<Symbol>,
    ) -> Result<Confirmation> {
        let Some(rec) = Store::lending(tx, &env.request_id).await?.filter(|rec| &rec.borrower == from) else {
            return Ok(Confirmation::Error {
                kind: ConfirmationError::UnrecognisedRequestId,
                detail: format!("no request {} from {from}", env.request_id),
            });
        };
        let event = LendingEvent::Requester { action: r.action, note: r.note.clone(), answer: r.answer };
        let view = rec.view_under(&crate::store::agreement_in(tx, from).await?);
        match lending_step(&view, &event) {
            Ok(step) => {
                self.apply_lending(tx, &rec, step, &Actor::Partner(from.clone()), now, wake).await?;
                Ok(Confirmation::Accepted { received_at: now, sent_through: 0 })
            }
            Err(illegal) => {
                Ok(Confirmation::Error { kind: ConfirmationError::IllegalInState, detail: illegal.to_string() })
            }
        }
    }

    pub(crate) async fn apply_lending(
        &self,
        tx: &mut SqliteConnection,
        rec: &LendingRecord,
        step: crate::machine::LendingStep,
        cause: &Actor,
        now: DateTime<Utc>,
        wake: &mut Vec<Symbol>,
    ) -> Result<()> {
        for e in &step.effects {
            match e {
                LendingEffect::Reserve { barcode } => {
                    if !Store::move_item(tx, barcode, ItemStatus::Available, ItemStatus::Reserved, now).await? {
                        return Err(NodeError::Internal(format!("item {barcode} was not available to reserve")));
                    }
                }
                LendingEffect::Release { barcode } => {
                    Store::move_item(tx, barcode, ItemStatus::Reserved, ItemStatus::Available, now).await?;
                }
                LendingEffect::Lend { barcode } => {
                    if !Store::move_item(tx, barcode, ItemStatus::Reserved, ItemStatus::OnLoan, now).await? {
                        return Err(NodeError::Conflict(format!(
                            "item {barcode} is no longer reserved for this request; check its status with `rota holdings show {barcode}`"
                        )));
                    }
                }
                LendingEffect::Return { barcode } => {
                    Store::move_item(tx, barcode, ItemStatus::OnLoan, ItemStatus::Available, now).await?;
                }
                LendingEffect::Missing { barcode } => {
                    Store::move_item(tx, barcode, ItemStatus::OnLoan, ItemStatus::Missing, now).await?;
                }
            }
        }
        Store::update_lending(tx, &rec.id, &step, now).await?;
        for n in &step.notes {
            Store::add_note(tx, "lending", &rec.id, now, &cause_actor(n.event, cause), step.state.as_str(), n).await?;
        }
        for body in step.out {
            Store::enqueue(tx, &rec.borrower, &rec.id, Body::Supplier(body), now).await?;
            wake.push(rec.borrower.clone());
        }
        Ok(())
    }

    async fn borrower_answer(
        &self,
        tx: &mut SqliteConnection,
        from: &Symbol,
        env: &Envelope,
        s: &SupplierBody,
        now: DateTime<Utc>,
        wake: &mut Vec<Symbol>,
    ) -> Result<Confirmation> {
        let Some(rec) =
            Store::borrowing(tx, &env.request_id).await?.filter(|rec| rec.rota.iter().any(|e| &e.partner == from))
        else {
            return Ok(Confirmation::Error {
                kind: ConfirmationError::UnrecognisedRequestId,
                detail: format!("request {} was never sent to {from}", env.request_id),
            });
        };
        match borrowing_step(&rec.view(), &BorrowingEvent::Answer { from: from.clone(), body: s.clone() }) {
            Ok(step) => {
                self.apply_borrowing(tx, &rec, step, &Actor::Partner(from.clone()), now, wake).await?;
                Ok(Confirmation::Accepted { received_at: now, sent_through: 0 })
            }
            Err(illegal) => {
                Ok(Confirmation::Error { kind: ConfirmationError::IllegalInState, detail: illegal.to_string() })
            }
        }
    }
}
