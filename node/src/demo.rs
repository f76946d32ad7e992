//! `rota-node demo`: a local network of three libraries on loopback, each a real
//! `rota-node run` process with its own data directory and certificates, set up through
//! the staff API exactly as staff would with the CLI.
//!
//! - DGW (George Washington University Libraries) borrows.
//! - DGU (Georgetown University Library) is DGW's consortium partner. It holds the book, but
//!   its copy is on loan, so it answers Unfilled (NotOnShelf).
//! - UVA (University of Virginia Library) is a peer-to-peer partner. It supplies.
//!
//! Holdings come from 2,000 real Library of Congress records (`node/demo/loc-books.csv`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use rota_certs::profile::Profile;
use rota_proto::staff::staff_client::StaffClient;
use rota_proto::staff::{self as pb};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

/// The sample holdings, converted from `loc-books-2k.mrc`.
pub const LOC_BOOKS_CSV: &str = include_str!("../demo/loc-books.csv");

const MARKER: &str = ".rota-demo";

struct Library {
    symbol: &'static str,
    name: &'static str,
    /// Which rows of the sample file this library holds.
    rows: std::ops::Range<usize>,
}

const LIBRARIES: [Library; 3] = [
    Library { symbol: "DGW", name: "George Washington University Libraries", rows: 0..700 },
    Library { symbol: "DGU", name: "Georgetown University Library", rows: 500..1300 },
    Library { symbol: "UVA", name: "University of Virginia Library", rows: 1000..2000 },
];

/// Tiers each library gives the others: (library, partner, tier).
const TIERS: [(&str, &str, &str); 6] = [
    ("DGW", "DGU", "consortium"),
    ("DGW", "UVA", "p2p"),
    ("DGU", "DGW", "consortium"),
    ("DGU", "UVA", "p2p"),
    ("UVA", "DGW", "p2p"),
    ("UVA", "DGU", "p2p"),
];

/// A running demo library.
struct Running {
    symbol: &'static str,
    profile: PathBuf,
    child: Child,
    staff: StaffClient<Channel>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Parse the sample CSV into staff-API items.
pub fn sample_items() -> anyhow::Result<Vec<pb::Item>> {
    let mut rdr = csv::Reader::from_reader(LOC_BOOKS_CSV.as_bytes());
    let headers = rdr.headers()?.clone();
    let col =
        |name: &str| headers.iter().position(|h| h == name).with_context(|| format!("sample CSV has no {name} column"));
    let idx: Vec<usize> = [
        "barcode",
        "title",
        "author",
        "publisher",
        "year",
        "isbn",
        "issn",
        "oclc",
        "lccn",
        "format",
        "call_number",
        "location",
        "policy",
        "status",
    ]
    .iter()
    .map(|c| col(c))
    .collect::<anyhow::Result<_>>()?;
    let mut out = vec![];
    for rec in rdr.records() {
        let r = rec?;
        let f = |i: usize| r.get(idx[i]).unwrap_or("").to_owned();
        out.push(pb::Item {
            barcode: f(0),
            title: f(1),
            author: f(2),
            publisher: f(3),
            year: f(4),
            isbn: f(5),
            issn: f(6),
            oclc: f(7),
            lccn: f(8),
            format: f(9),
            call_number: f(10),
            location: f(11),
            policy: f(12),
            status: f(13),
            updated_at_unix_ms: 0,
        });
    }
    Ok(out)
}

async fn connect(profile: &Path) -> anyhow::Result<StaffClient<Channel>> {
    let p = Profile::load(profile)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let ch = rota_proto::channel::connect(&p.node_url, p.client_config()?, Duration::from_secs(60))
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            let mut c = StaffClient::new(ch);
            c.node_info(pb::Empty {}).await?;
            anyhow::Ok(c)
        };
        match attempt.await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e.context(format!("node at {} did not come up", p.node_url)));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if dir.join(MARKER).exists() {
            std::fs::remove_dir_all(dir)?;
        } else if std::fs::read_dir(dir)?.next().is_some() {
            bail!("{} exists and is not a Rota demo directory; choose another with --dir", dir.display());
        }
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(MARKER), "This directory is recreated by `rota-node demo`.\n")?;
    Ok(())
}

fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%H:%M:%S%.3f").to_string()).unwrap_or_default()
}

fn print_timeline(title: &str, events: &[pb::TimelineEvent]) {
    println!("\n{title}");
    for e in events {
        println!("  {}  {:<13} {:<17} {:<18} {}", ts(e.at_unix_ms), e.actor, e.event, e.state, e.detail);
    }
}

async fn stop_all(libs: &mut [Running]) {
    for l in libs.iter() {
        if let Some(pid) = l.child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
        }
    }
    for l in libs.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(10), l.child.wait()).await.is_err() {
            let _ = l.child.kill().await;
        }
    }
}

/// Run the demo in `dir`.
pub async fn run(dir: &Path, once: bool) -> anyhow::Result<()> {
    prepare_dir(dir)?;
    let dir = std::fs::canonicalize(dir)?;
    let exe = std::env::current_exe()?;
    println!("Starting three libraries in {}", dir.display());
    let mut libs: Vec<Running> = vec![];
    for lib in &LIBRARIES {
        let port = free_port()?;
        let data_dir = dir.join(lib.symbol.to_lowercase());
        let report = crate::init::init(&crate::init::InitOptions {
            data_dir: data_dir.clone(),
            symbol: lib.symbol.into(),
            name: lib.name.into(),
            listen: format!("127.0.0.1:{port}"),
            public_url: format!("https://127.0.0.1:{port}"),
        })
        .await?;
        let log = std::fs::File::create(data_dir.join("node.log"))?;
        let child = Command::new(&exe)
            .args(["run", "--data-dir"])
            .arg(&data_dir)
            .env("ROTA_LOG", std::env::var("ROTA_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        println!(
            "  {} {:<40} https://127.0.0.1:{port}  (log: {})",
            lib.symbol,
            lib.name,
            data_dir.join("node.log").display()
        );
        let staff = match connect(&report.profile).await {
            Ok(s) => s,
            Err(e) => {
                stop_all(&mut libs).await;
                return Err(e);
            }
        };
        libs.push(Running { symbol: lib.symbol, profile: report.profile, child, staff });
    }
    let result = setup_and_request(&mut libs).await;
    if let Err(e) = result {
        stop_all(&mut libs).await;
        return Err(e);
    }
    if once {
        stop_all(&mut libs).await;
        return Ok(());
    }
    let dgw = &libs[0].profile;
    let dgu = &libs[1].profile;
    let uva = &libs[2].profile;
    println!("\nThe demo network is running. Try, in another terminal:");
    println!("  rota --profile {} request list", dgw.display());
    println!("  rota --profile {} partner list", dgw.display());
    println!("  rota --profile {} holdings search \"history\"", dgu.display());
    println!("  rota --profile {} lending list", uva.display());
    println!(
        "  rota --profile {} request create --title \"Glad reunion\" --isbn 0914520407 --patron P-1002",
        dgw.display()
    );
    println!("(`rota` is built by `cargo build --release --bin rota` and lives in target/release/.)");
    println!("\nPress Ctrl-C to stop the three nodes.");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("Stopping…");
    stop_all(&mut libs).await;
    Ok(())
}

async fn setup_and_request(libs: &mut [Running]) -> anyhow::Result<()> {
    // 1. Exchange cards: every library adds the others, checking the fingerprint.
    let mut cards = std::collections::HashMap::new();
    for l in libs.iter_mut() {
        cards.insert(l.symbol, l.staff.export_card(pb::Empty {}).await?.into_inner());
    }
    for (me, them, tier) in TIERS {
        let card = &cards[them];
        let l = libs.iter_mut().find(|l| l.symbol == me).context("library")?;
        l.staff
            .add_partner(pb::AddPartnerRequest {
                card_text: card.text.clone(),
                tier: tier.into(),
                priority: 100,
                expected_fingerprint: card.fingerprint.clone(),
            })
            .await
            .with_context(|| format!("{me} adding {them}"))?;
        l.staff
            .set_agreement(pb::SetAgreementRequest {
                partner: them.into(),
                lend: Some(true),
                borrow: Some(true),
                loan_days: Some(28),
                renewals: Some(1),
                max_outstanding: Some(50),
                formats: vec![],
                set_formats: false,
                expiry_seconds: Some(4 * 86400),
            })
            .await
            .with_context(|| format!("{me} agreement with {them}"))?;
    }
    println!("Cards exchanged and agreements set: DGU is DGW's consortium partner, UVA its peer-to-peer partner.");

    // 2. Holdings. The book DGW wants is one DGU holds but has out on loan.
    let items = sample_items()?;
    let target =
        items[1000..1300].iter().find(|i| !i.isbn.is_empty()).context("no sample record with an ISBN")?.clone();
    for (l, spec) in libs.iter_mut().zip(LIBRARIES.iter()) {
        let rows: Vec<pb::ImportRow> = items[spec.rows.clone()]
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let mut it = it.clone();
                it.barcode = format!("{}-{}", spec.symbol, it.barcode);
                if spec.symbol == "DGU" && it.isbn == target.isbn {
                    it.status = "on_loan".into();
                }
                let line = (spec.rows.start + i + 2) as u64;
                pb::ImportRow { source: format!("line {line}"), item: Some(it), record: line - 1, ..Default::default() }
            })
            .collect();
        let mut msgs = vec![pb::ImportMessage {
            body: Some(pb::import_message::Body::Start(pb::ImportStart { mode: "upsert".into(), dry_run: false })),
        }];
        for chunk in rows.chunks(500) {
            msgs.push(pb::ImportMessage {
                body: Some(pb::import_message::Body::Batch(pb::ImportBatch { rows: chunk.to_vec() })),
            });
        }
        let s = l.staff.import(tokio_stream::iter(msgs)).await?.into_inner();
        println!(
            "  {} imported {} items from Library of Congress records ({} malformed identifiers ignored)",
            spec.symbol,
            s.created + s.updated + s.unchanged,
            s.warnings
        );
    }

    // 3. A patron at DGW asks for the book.
    println!("\nA DGW patron asks for \"{}\" (ISBN {}).", target.title, target.isbn);
    let created = libs[0]
        .staff
        .create_request(pb::CreateRequestRequest {
            citation: Some(pb::Citation {
                title: target.title.clone(),
                author: target.author.clone(),
                isbn: target.isbn.clone(),
                ..Default::default()
            }),
            patron_id: "P-1001".into(),
            note: "demo request".into(),
            need_before: String::new(),
            force: false,
        })
        .await?
        .into_inner();
    let id = created.id.clone();
    let req = wait_borrowing(&mut libs[0].staff, &id, &["will_supply", "unfilled"]).await?;
    println!(
        "Request {} is now {}{}.",
        req.id,
        req.state,
        if req.supplier.is_empty() { String::new() } else { format!(": {} will supply it", req.supplier) }
    );
    if req.state != "will_supply" || req.supplier != "UVA" {
        bail!("expected UVA to supply the request, but it is {} (supplier {:?})", req.state, req.supplier);
    }

    // 4. The book's journey, as staff at each library would record it.
    let lend = |action: &str| pb::LendingActionRequest { id: id.clone(), action: action.into(), ..Default::default() };
    let borrow =
        |action: &str| pb::BorrowingActionRequest { id: id.clone(), action: action.into(), ..Default::default() };
    let shipped = libs[2].staff.lending_action(lend("ship")).await?.into_inner();
    println!("UVA pulls {} from the shelf and ships it, due {}.", shipped.item_barcode, shipped.due_date);
    wait_borrowing(&mut libs[0].staff, &id, &["shipped"]).await?;
    let arrived = pb::BorrowingActionRequest { barcode: shipped.item_barcode.clone(), ..borrow("receive") };
    libs[0].staff.borrowing_action(arrived).await?;
    println!("DGW receives it (barcode checked), lends it to the patron, gets it back and ships it home.");
    for action in ["loan", "return", "ship-return"] {
        libs[0].staff.borrowing_action(borrow(action)).await?;
    }
    wait_lending(&mut libs[2].staff, &id, "return_shipped").await?;
    libs[2].staff.lending_action(lend("check-in")).await?;
    println!("UVA checks it in: the copy is back on the shelf.");
    let req = wait_borrowing(&mut libs[0].staff, &id, &["completed"]).await?;
    println!("Request {} is now {}.", req.id, req.state);

    print_timeline(&format!("Timeline at DGW (borrower), request {}:", req.id), &req.timeline);
    for l in libs.iter_mut().skip(1) {
        if let Ok(r) = l.staff.get_lending(pb::IdRequest { id: req.id.clone() }).await {
            let r = r.into_inner();
            print_timeline(&format!("Timeline at {} (lender):", l.symbol), &r.timeline);
        }
    }
    Ok(())
}

/// Wait (at most 30 s) until borrowing request `id` is in one of `states`.
async fn wait_borrowing(
    staff: &mut StaffClient<Channel>,
    id: &str,
    states: &[&str],
) -> anyhow::Result<pb::BorrowingRequest> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = staff.get_request(pb::IdRequest { id: id.into() }).await?.into_inner();
        if states.contains(&r.state.as_str()) {
            return Ok(r);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("request {id} is still {} after 30 s (waiting for {})", r.state, states.join(" or "));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait (at most 30 s) until lending request `id` is in `state`.
async fn wait_lending(staff: &mut StaffClient<Channel>, id: &str, state: &str) -> anyhow::Result<pb::LendingRequest> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = staff.get_lending(pb::IdRequest { id: id.into() }).await?.into_inner();
        if r.state == state {
            return Ok(r);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("lending request {id} is still {} after 30 s (waiting for {state})", r.state);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
