//! The `rota` binary against a mock node: a real Staff gRPC server over mutual TLS, with
//! certificates from rota-certs, that records what the CLI sends and answers canned data.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rota_certs::issue::CaBundle;
use rota_certs::profile::Profile;
use rota_certs::tls::{InboundVerifier, TrustSource};
use rota_certs::{Card, StaffUser, Symbol};
use rota_proto::staff::staff_server::{Staff, StaffServer};
use rota_proto::staff::*;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::{Request, Response, Status, Streaming};

type Reply<T> = Result<Response<T>, Status>;

/// 2024-05-01T12:34:56.789Z
const T0: i64 = 1_714_566_896_789;

#[derive(Debug)]
struct NoPartners;

impl TrustSource for NoPartners {
    fn active_partner_ca(&self, _: &Symbol) -> Option<Arc<Vec<u8>>> {
        None
    }
}

/// What the mock node was sent.
#[derive(Default)]
struct Seen {
    import: Option<SeenImport>,
    add_partner: Option<AddPartnerRequest>,
    set_agreement: Option<SetAgreementRequest>,
    partner_status: Option<SetPartnerStatusRequest>,
    create_request: Option<CreateRequestRequest>,
    close_partner: Option<ClosePartnerRequest>,
    preview: Option<PreviewRequest>,
    borrowing_actions: Vec<BorrowingActionRequest>,
    lending_actions: Vec<LendingActionRequest>,
    stats: Option<StatsRequest>,
    lists: Vec<ListRequest>,
}

/// What the mock node was sent by `rota holdings import`.
#[derive(Clone, Debug, Default)]
struct SeenImport {
    start: ImportStart,
    rows: Vec<ImportRow>,
    /// The stream carried something other than a batch after the start, which the node
    /// refuses: nothing is applied.
    cancelled: bool,
}

impl SeenImport {
    fn sources(&self) -> Vec<String> {
        self.rows.iter().map(|r| r.source.clone()).collect()
    }

    fn barcodes(&self) -> Vec<String> {
        self.rows.iter().map(|r| r.item.clone().unwrap_or_default().barcode).collect()
    }
}

struct Mock {
    ca: CaBundle,
    url: String,
    seen: Arc<Mutex<Seen>>,
}

fn agreement() -> Agreement {
    Agreement {
        partner: "ABC".into(),
        configured: true,
        lend: true,
        borrow: false,
        loan_days: 28,
        renewals: 1,
        max_outstanding: 10,
        formats: vec!["book".into(), "dvd".into()],
        expiry_seconds: 345_600,
        updated_at_unix_ms: T0,
    }
}

fn partner() -> Partner {
    Partner {
        symbol: "ABC".into(),
        name: "Alphabet College".into(),
        endpoint: "https://abc.example:7443".into(),
        tier: "p2p".into(),
        priority: 100,
        status: "active".into(),
        fingerprint: "SHA256:00".into(),
        added_at_unix_ms: T0,
        updated_at_unix_ms: T0,
        agreement: Some(agreement()),
        pending_messages: 3,
        delivery_attempts: 0,
        last_delivery_error: String::new(),
        closures: vec![],
    }
}

fn closure(from: &str, to: &str, note: &str) -> Closure {
    Closure { from: from.into(), to: to.into(), note: note.into() }
}

fn preview_entry(partner: &str, tier: &str, included: bool, locate: &str, reason: &str, copies: u32) -> PreviewEntry {
    PreviewEntry {
        partner: partner.into(),
        tier: tier.into(),
        priority: 10,
        included,
        locate: locate.into(),
        reason: reason.into(),
        copies,
    }
}

fn borrowing() -> BorrowingRequest {
    BorrowingRequest {
        id: "req-1".into(),
        state: "requested".into(),
        citation: Some(Citation { title: "Moby Dick".into(), isbn: "9780142437247".into(), ..Default::default() }),
        patron_id: "P123".into(),
        rota: vec![
            RotaEntry {
                partner: "ABC".into(),
                tier: "consortium".into(),
                priority: 10,
                outcome: "unfilled".into(),
                reason: "not on shelf".into(),
            },
            RotaEntry {
                partner: "XYZ".into(),
                tier: "p2p".into(),
                priority: 100,
                outcome: "current".into(),
                reason: String::new(),
            },
        ],
        position: 1,
        created_at_unix_ms: T0,
        updated_at_unix_ms: T0,
        timeline: vec![TimelineEvent {
            at_unix_ms: T0,
            actor: "staff:admin".into(),
            event: "created".into(),
            state: "new".into(),
            detail: "by hand".into(),
            partner: String::new(),
        }],
        ..Default::default()
    }
}

fn lending(id: &str, location: &str, call_number: &str, barcode: &str, title: &str) -> LendingRequest {
    LendingRequest {
        id: id.into(),
        borrower: "ABC".into(),
        state: "will_supply".into(),
        citation: Some(Citation { title: title.into(), ..Default::default() }),
        item_barcode: barcode.into(),
        item_title: title.into(),
        item_call_number: call_number.into(),
        item_location: location.into(),
        created_at_unix_ms: T0,
        updated_at_unix_ms: T0,
        ..Default::default()
    }
}

fn stats(partner: &str, requests: u64, filled: u64) -> PartnerStats {
    PartnerStats {
        partner: partner.into(),
        requests,
        filled,
        fill_rate: if requests == 0 { 0.0 } else { filled as f64 / requests as f64 },
        // 2 days 3 hours, 45 minutes, none; nothing at all for a partner never asked.
        created_to_shipped_s: if requests == 0 { 0.0 } else { 183_600.0 },
        shipped_to_received_s: if requests == 0 { 0.0 } else { 2_700.0 },
        loaned_to_returned_s: 0.0,
        lent: 7,
        borrowed: filled,
    }
}

fn unimplemented<T>() -> Reply<T> {
    Err(Status::unimplemented("not in the mock"))
}

#[tonic::async_trait]
impl Staff for Mock {
    async fn node_info(&self, request: Request<Empty>) -> Reply<NodeInfoReply> {
        // The staff user comes from the client certificate the CLI presented.
        let user = request
            .extensions()
            .get::<PeerCert>()
            .and_then(|c| c.0.as_ref())
            .and_then(|der| rota_certs::Identity::from_cert_der(der).ok())
            .map(|id| id.to_string())
            .unwrap_or_default();
        Ok(Response::new(NodeInfoReply {
            symbol: "DGW".into(),
            name: "Test Library".into(),
            public_url: self.url.clone(),
            staff_user: user,
            version: "0.1.0".into(),
            fingerprint: "SHA256:ab".into(),
        }))
    }
    async fn export_card(&self, _: Request<Empty>) -> Reply<rota_proto::staff::Card> {
        unimplemented()
    }
    async fn add_partner(&self, r: Request<AddPartnerRequest>) -> Reply<Partner> {
        self.seen.lock().unwrap().add_partner = Some(r.into_inner());
        Ok(Response::new(partner()))
    }
    async fn list_partners(&self, _: Request<Empty>) -> Reply<PartnerList> {
        let mut other = partner();
        other.symbol = "XYZ".into();
        other.agreement = None;
        Ok(Response::new(PartnerList { partners: vec![partner(), other] }))
    }
    async fn get_partner(&self, r: Request<SymbolRequest>) -> Reply<Partner> {
        let symbol = r.into_inner().symbol;
        if symbol != "ABC" {
            return Err(Status::not_found(format!("no partner {symbol}")));
        }
        let mut p = partner();
        p.closures =
            vec![closure("2026-12-24", "2027-01-02", "winter holidays"), closure("2027-03-01", "2027-03-01", "")];
        Ok(Response::new(p))
    }
    async fn check_partner(&self, r: Request<SymbolRequest>) -> Reply<PartnerCheck> {
        let symbol = r.into_inner().symbol;
        let ours = Some(agreement());
        Ok(Response::new(match symbol.as_str() {
            "ABC" => PartnerCheck {
                partner: symbol,
                reachable: true,
                protocol_version: "rota-peer/1".into(),
                name: "Alphabet College".into(),
                round_trip_ms: 3,
                theirs: Some(Agreement { lend: false, ..agreement() }),
                ours,
                problems: vec!["you borrow from ABC, but it does not lend to you".into()],
                ..Default::default()
            },
            _ => PartnerCheck {
                partner: symbol,
                error: "XYZ at https://xyz.example:7443 did not answer: Unavailable".into(),
                ours,
                ..Default::default()
            },
        }))
    }
    async fn close_partner(&self, r: Request<ClosePartnerRequest>) -> Reply<Partner> {
        let r = r.into_inner();
        let mut p = partner();
        p.closures = vec![closure(&r.from, &r.to, &r.note)];
        self.seen.lock().unwrap().close_partner = Some(r);
        Ok(Response::new(p))
    }
    async fn set_partner_status(&self, r: Request<SetPartnerStatusRequest>) -> Reply<Partner> {
        let r = r.into_inner();
        let mut p = partner();
        p.status = r.status.clone();
        self.seen.lock().unwrap().partner_status = Some(r);
        Ok(Response::new(p))
    }
    async fn remove_partner(&self, _: Request<SymbolRequest>) -> Reply<Partner> {
        Err(Status::permission_denied("only admin may remove partners"))
    }
    async fn issue_staff(&self, r: Request<IssueStaffRequest>) -> Reply<IssuedStaff> {
        let r = r.into_inner();
        let symbol = Symbol::parse("DGW").unwrap();
        let user = StaffUser::parse(&r.user).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let cert_pem =
            self.ca.sign_staff_csr(&symbol, &user, &r.csr_pem).map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(IssuedStaff {
            user: r.user,
            cert_pem,
            ca_pem: self.ca.cert_pem.clone(),
            symbol: "DGW".into(),
            node_url: self.url.clone(),
        }))
    }
    async fn add_item(&self, r: Request<Item>) -> Reply<Item> {
        let mut item = r.into_inner();
        item.updated_at_unix_ms = T0;
        Ok(Response::new(item))
    }
    async fn import(&self, r: Request<Streaming<ImportMessage>>) -> Reply<ImportReport> {
        // As the node does: an ImportStart, then batches; anything else cancels the import.
        let mut stream = r.into_inner();
        let start = match stream.message().await? {
            Some(ImportMessage { body: Some(import_message::Body::Start(s)) }) => s,
            _ => return Err(Status::invalid_argument("the first message of an import must be ImportStart")),
        };
        let mut seen = SeenImport { start: start.clone(), ..Default::default() };
        let mut report = ImportReport { mode: start.mode.clone(), dry_run: start.dry_run, ..Default::default() };
        while let Some(msg) = stream.message().await? {
            let Some(import_message::Body::Batch(batch)) = msg.body else {
                seen.cancelled = true;
                self.seen.lock().unwrap().import = Some(seen);
                return Err(Status::invalid_argument("after ImportStart, only ImportBatch messages may follow"));
            };
            for row in batch.rows {
                let item = row.item.clone().unwrap_or_default();
                if item.policy == "bogus" {
                    return Err(Status::invalid_argument(format!(
                        "{}: policy \"bogus\" is not one of lendable, not_lendable, library_use_only",
                        row.source
                    )));
                }
                let issue = |reason: &str| ImportIssue {
                    source: row.source.clone(),
                    record: row.record,
                    offset: row.offset,
                    reason: reason.into(),
                };
                report.rows += 1;
                if start.mode != "delete" && item.status == "gone" {
                    report.skipped += 1;
                    report
                        .skips
                        .push(issue("status \"gone\" is not one of available, on_loan, reserved, missing, in_process"));
                } else if item.isbn == "0000000000" {
                    report.warnings += 1;
                    report.warning_samples.push(issue("ISBN \"0000000000\" dropped: wrong check digit"));
                }
                seen.rows.push(row);
            }
        }
        let applied = report.rows - report.skipped;
        match start.mode.as_str() {
            "delete" => report.withdrawn = applied,
            _ => {
                report.created = applied.saturating_sub(1);
                report.updated = applied.min(1);
            }
        }
        if start.mode == "replace" {
            report.withdrawn = 2;
            report.kept = vec![KeptItem { barcode: "K-ONLOAN".into(), status: "on_loan".into() }];
        }
        self.seen.lock().unwrap().import = Some(seen);
        Ok(Response::new(report))
    }
    async fn search_items(&self, _: Request<SearchItemsRequest>) -> Reply<ItemList> {
        Ok(Response::new(ItemList::default()))
    }
    async fn get_item(&self, _: Request<BarcodeRequest>) -> Reply<Item> {
        unimplemented()
    }
    async fn rotate_certificate(&self, _: Request<Empty>) -> Reply<CertificateInfo> {
        Ok(Response::new(CertificateInfo {
            fingerprint: "SHA256:ab".into(),
            serial: "01".into(),
            not_after_unix_ms: T0,
        }))
    }
    async fn holdings_stats(&self, _: Request<Empty>) -> Reply<HoldingsStatsReply> {
        Ok(Response::new(HoldingsStatsReply {
            items: 3,
            by_status: vec![Count { key: "available".into(), count: 2 }, Count { key: "on_loan".into(), count: 1 }],
            by_policy: vec![Count { key: "lendable".into(), count: 3 }],
            by_format: vec![Count { key: "book".into(), count: 3 }],
            with_isbn: 1,
            ..Default::default()
        }))
    }
    async fn set_agreement(&self, r: Request<SetAgreementRequest>) -> Reply<Agreement> {
        self.seen.lock().unwrap().set_agreement = Some(r.into_inner());
        Ok(Response::new(agreement()))
    }
    async fn get_agreement(&self, _: Request<SymbolRequest>) -> Reply<Agreement> {
        Ok(Response::new(agreement()))
    }
    async fn create_request(&self, r: Request<CreateRequestRequest>) -> Reply<BorrowingRequest> {
        self.seen.lock().unwrap().create_request = Some(r.into_inner());
        Ok(Response::new(borrowing()))
    }
    async fn preview(&self, r: Request<PreviewRequest>) -> Reply<PreviewReply> {
        let r = r.into_inner();
        // Our own copies are on the shelf for Moby Dick only.
        let title = r.citation.as_ref().map(|c| c.title.clone()).unwrap_or_default();
        let local_copies = if title == "Moby Dick" { vec!["B1".into(), "B2".into()] } else { vec![] };
        self.seen.lock().unwrap().preview = Some(r);
        Ok(Response::new(PreviewReply {
            entries: vec![
                preview_entry("ABC", "consortium", true, "available", "", 2),
                preview_entry("XYZ", "p2p", true, "unreachable", "timed out", 0),
                preview_entry("QQQ", "p2p", false, "not_asked", "closed until 2027-01-02", 0),
                preview_entry("NNN", "last_resort", false, "not_available", "NotHeld", 0),
            ],
            local_copies,
            strategy: "balance".into(),
        }))
    }
    async fn list_requests(&self, r: Request<ListRequest>) -> Reply<BorrowingRequestList> {
        self.seen.lock().unwrap().lists.push(r.into_inner());
        Ok(Response::new(BorrowingRequestList { requests: vec![borrowing()] }))
    }
    async fn get_request(&self, _: Request<IdRequest>) -> Reply<BorrowingRequest> {
        Ok(Response::new(borrowing()))
    }
    async fn borrowing_action(&self, r: Request<BorrowingActionRequest>) -> Reply<BorrowingRequest> {
        let r = r.into_inner();
        let mut b = borrowing();
        b.id = r.id.clone();
        b.state = match r.action.as_str() {
            "receive" => "received".into(),
            "cancel" => "cancelled".into(),
            other => format!("after {other}"),
        };
        b.supplier = "XYZ".into();
        b.supplier_item = "3901".into();
        b.due_date = "2026-07-31".into();
        self.seen.lock().unwrap().borrowing_actions.push(r);
        Ok(Response::new(b))
    }
    async fn list_lending(&self, r: Request<ListRequest>) -> Reply<LendingRequestList> {
        self.seen.lock().unwrap().lists.push(r.into_inner());
        Ok(Response::new(LendingRequestList {
            requests: vec![lending("DGW-7", "Main Stacks", "PS2384 .M6", "3901", "Moby Dick")],
        }))
    }
    async fn get_lending(&self, _: Request<IdRequest>) -> Reply<LendingRequest> {
        unimplemented()
    }
    async fn lending_action(&self, r: Request<LendingActionRequest>) -> Reply<LendingRequest> {
        let r = r.into_inner();
        let mut l = lending(&r.id, "Main Stacks", "PS2384 .M6", "3901", "Moby Dick");
        match r.action.as_str() {
            "reject" => {
                l.state = "unfilled".into();
                l.reason_unfilled = r.reason.clone();
            }
            "renew-answer" => {
                l.state = "shipped".into();
                l.due_date = r.due.clone();
            }
            _ => l.state = format!("after {}", r.action),
        }
        self.seen.lock().unwrap().lending_actions.push(r);
        Ok(Response::new(l))
    }
    async fn pick_list(&self, _: Request<Empty>) -> Reply<LendingRequestList> {
        // Already in shelf order; the CLI must keep it.
        Ok(Response::new(LendingRequestList {
            requests: vec![
                lending("ZZZ-9", "Annex", "QA76 .K6", "B-77", "The Art of Computer Programming"),
                lending("AAA-1", "Main Stacks", "PS2384 .M6", "3901", "Moby Dick"),
            ],
        }))
    }
    async fn todo(&self, _: Request<Empty>) -> Reply<TodoReply> {
        Ok(Response::new(TodoReply {
            items: vec![
                TodoItem {
                    side: "borrowing".into(),
                    id: "DGW-17".into(),
                    state: "shipped".into(),
                    action: "receive the item".into(),
                    title: "Moby Dick".into(),
                    partner: "XYZ".into(),
                    since_unix_ms: T0,
                },
                TodoItem {
                    side: "lending".into(),
                    id: "ABC-4".into(),
                    state: "shipped".into(),
                    action: "answer the renewal request".into(),
                    title: "Ulysses".into(),
                    partner: "ABC".into(),
                    since_unix_ms: T0,
                },
            ],
        }))
    }
    async fn stats(&self, r: Request<StatsRequest>) -> Reply<StatsReply> {
        self.seen.lock().unwrap().stats = Some(r.into_inner());
        Ok(Response::new(StatsReply {
            partners: vec![stats("ABC", 4, 2), stats("XYZ", 0, 0)],
            overall: Some(stats("", 4, 2)),
        }))
    }
}

/// A TLS stream tonic can serve on.
struct Tls(tokio_rustls::server::TlsStream<TcpStream>);

/// The client certificate (DER) of a connection.
#[derive(Clone)]
struct PeerCert(Option<Vec<u8>>);

impl tonic::transport::server::Connected for Tls {
    type ConnectInfo = PeerCert;
    fn connect_info(&self) -> Self::ConnectInfo {
        PeerCert(self.0.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()))
    }
}

impl AsyncRead for Tls {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A running mock node and an admin profile for it.
struct Node {
    dir: tempfile::TempDir,
    profile: PathBuf,
    seen: Arc<Mutex<Seen>>,
}

fn start_node() -> Node {
    rota_certs::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let symbol = Symbol::parse("DGW").unwrap();
    let ca = CaBundle::generate(&symbol, "Test Library").unwrap();
    let node_cert = ca.issue_node(&symbol, &["127.0.0.1".to_owned()]).unwrap();
    let admin = ca.issue_staff(&symbol, &StaffUser::parse("admin").unwrap()).unwrap();
    let ca_der = rota_certs::tls::certs_from_pem(&ca.cert_pem).unwrap().remove(0);
    let verifier = InboundVerifier::new(symbol, &ca_der, Arc::new(NoPartners)).unwrap();
    let own = rota_certs::tls::SwappableCert::new(&node_cert.cert_pem, &node_cert.key_pem).unwrap();
    let config = rota_certs::tls::server_config(own, Arc::new(verifier)).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());

    rota_certs::files::write_public(&dir.path().join("ca.pem"), ca.cert_pem.as_bytes()).unwrap();
    rota_certs::files::write_public(&dir.path().join("admin.pem"), admin.cert_pem.as_bytes()).unwrap();
    rota_certs::files::write_secret(&dir.path().join("admin.key"), admin.key_pem.as_bytes()).unwrap();
    let profile = dir.path().join("profile.toml");
    Profile {
        node_url: url.clone(),
        symbol: "DGW".into(),
        user: "admin".into(),
        cert: "admin.pem".into(),
        key: "admin.key".into(),
        ca: "ca.pem".into(),
    }
    .save(&profile)
    .unwrap();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let mock = Mock { ca, url, seen: seen.clone() };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (tx, rx) = tokio::sync::mpsc::channel::<Tls>(16);
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = tx.send(Tls(tls)).await;
                        }
                    });
                }
            });
            let incoming = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|s| (Ok::<_, std::io::Error>(s), rx))
            });
            tonic::transport::Server::builder()
                .add_service(StaffServer::new(mock))
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
    });
    Node { dir, profile, seen }
}

impl Node {
    fn rota(&self, args: &[&str]) -> Output {
        rota_with(&self.profile, args)
    }
}

fn rota_with(profile: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rota")).args(args).env("ROTA_PROFILE", profile).output().expect("run rota")
}

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn fails(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "stdout: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&ok(o)).expect("stdout is JSON")
}

#[test]
fn whoami_over_mutual_tls() {
    let node = start_node();
    let out = ok(&node.rota(&["whoami"]));
    assert!(out.contains("DGW (Test Library)"), "{out}");
    assert!(out.contains("admin"), "{out}");
    let v = json(&node.rota(&["whoami", "--json"]));
    assert_eq!(v["symbol"], "DGW");
    assert!(v["staff_user"].as_str().unwrap().contains("admin"), "{v}");
}

#[test]
fn staff_issue_writes_a_working_profile() {
    let node = start_node();
    let out_dir = node.dir.path().join("alice");
    let out = ok(&node.rota(&["staff", "issue", "alice", "-o", out_dir.to_str().unwrap()]));
    let profile = out_dir.join("profile.toml");
    assert!(out.contains(&format!("rota --profile {} whoami", profile.display())), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out_dir.join("key.pem")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.contains("cert = \"cert.pem\"") && text.contains("user = \"alice\""), "{text}");
    // The new profile works, as alice.
    let v = json(&rota_with(&profile, &["whoami", "--json"]));
    assert!(v["staff_user"].as_str().unwrap().contains("alice"), "{v}");
    // A second time into the same folder is refused.
    let err = fails(&node.rota(&["staff", "issue", "alice", "-o", out_dir.to_str().unwrap()]));
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn import_streams_every_row_with_its_line() {
    let node = start_node();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/loc-books-50.csv");
    let out = ok(&node.rota(&["holdings", "import", sample.to_str().unwrap()]));
    assert_eq!((field(&out, "format"), field(&out, "mode"), field(&out, "records read")), ("CSV", "upsert", "50"));
    assert_eq!((field(&out, "items"), field(&out, "created"), field(&out, "skipped")), ("50", "49", "0"));
    let seen = node.seen.lock().unwrap().import.clone().unwrap();
    assert_eq!((seen.start.mode.as_str(), seen.start.dry_run), ("upsert", false));
    let sources = seen.sources();
    assert_eq!(sources.len(), 50);
    assert_eq!(sources[0], "line 2");
    assert_eq!(sources[49], "line 51");
    assert_eq!((seen.rows[0].record, seen.rows[49].record), (1, 50));
    // The first data row starts right after the header line.
    let text = std::fs::read_to_string(&sample).unwrap();
    assert_eq!(seen.rows[0].offset, text.find('\n').unwrap() as u64 + 1);
    let v = json(&node.rota(&["holdings", "import", sample.to_str().unwrap(), "--json"]));
    assert_eq!((v["items"].as_u64(), v["created"].as_u64(), v["updated"].as_u64()), (Some(50), Some(49), Some(1)));
    assert_eq!(
        (v["format"].as_str(), v["mode"].as_str(), v["dry_run"].as_bool()),
        (Some("CSV"), Some("upsert"), Some(false))
    );
    assert_eq!(v["skips"], serde_json::json!([]));

    // A row the node refuses: nothing written, and the node's message names the line.
    let bad = node.dir.path().join("bad.csv");
    std::fs::write(&bad, "barcode,title,policy\nB1,One,\nB2,Two,bogus\n").unwrap();
    let err = fails(&node.rota(&["holdings", "import", bad.to_str().unwrap()]));
    assert!(err.starts_with("error: import of "), "{err}");
    assert!(err.contains("nothing was written: line 3: policy \"bogus\""), "{err}");
}

#[test]
fn csv_rows_with_several_isbns_and_skips_from_both_sides() {
    let node = start_node();
    let file = node.dir.path().join("books.csv");
    std::fs::write(
        &file,
        "barcode,title,isbn,status\n\
         B1,One,9780142437247;0-19-852663-6 | 0914520407,\n\
         B2,Two,,gone\n\
         ,No barcode,,\n\
         B4,Four,0000000000,\n",
    )
    .unwrap();
    let v = json(&node.rota(&["holdings", "import", file.to_str().unwrap(), "--json"]));
    let seen = node.seen.lock().unwrap().import.clone().unwrap();
    let item = seen.rows[0].item.clone().unwrap();
    assert_eq!(item.isbn, "9780142437247");
    assert_eq!(seen.rows[0].more_isbns, ["0-19-852663-6", "0914520407"]);
    // The row without a barcode is skipped here; the one with a status that is not a Rota
    // word by the node.
    assert_eq!(seen.sources(), ["line 2", "line 3", "line 5"]);
    assert_eq!(v["records"], 4);
    assert_eq!(v["skipped"], 2);
    let skips = v["skips"].as_array().unwrap();
    assert_eq!((skips[0]["source"].as_str(), skips[0]["record"].as_u64()), (Some("line 3"), Some(2)));
    assert!(skips[0]["reason"].as_str().unwrap().starts_with("status \"gone\""), "{v}");
    assert_eq!((skips[1]["source"].as_str(), skips[1]["record"].as_u64()), (Some("line 4"), Some(3)));
    assert!(skips[1]["reason"].as_str().unwrap().contains("barcode is empty"), "{v}");
    assert_eq!(v["warnings"], 1);
    assert_eq!(v["warning_samples"][0]["source"], "line 5");

    let out = ok(&node.rota(&["holdings", "import", file.to_str().unwrap()]));
    let offset = |line: usize| -> usize {
        let text = std::fs::read_to_string(&file).unwrap();
        text.split_inclusive('\n').take(line - 1).map(str::len).sum()
    };
    assert!(out.contains(&format!("line 3 (byte {}): status \"gone\"", offset(3))), "{out}");
    assert!(out.contains(&format!("line 4 (byte {}): the barcode is empty", offset(4))), "{out}");
    assert!(out.contains("Warnings:") && out.contains("line 5 (byte"), "{out}");
    assert!(out.find("line 3 (byte").unwrap() < out.find("line 4 (byte").unwrap(), "{out}");
}

/// A MARC data field: tag, indicators, subfields.
type DataField<'a> = (&'a str, &'a str, &'a [(char, &'a str)]);

/// A MARC21 (ISO 2709) record with these control fields and data fields.
fn marc_record(controls: &[(&str, &str)], fields: &[DataField]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut directory = Vec::new();
    let mut entry = |tag: &str, body: &[u8], data: &mut Vec<u8>| {
        directory.extend(format!("{tag}{:04}{:05}", body.len() + 1, data.len()).bytes());
        data.extend_from_slice(body);
        data.push(0x1E);
    };
    for (tag, value) in controls {
        entry(tag, value.as_bytes(), &mut data);
    }
    for (tag, indicators, subfields) in fields {
        let mut body = indicators.as_bytes().to_vec();
        for (code, value) in *subfields {
            body.push(0x1F);
            body.push(*code as u8);
            body.extend(value.as_bytes());
        }
        entry(tag, &body, &mut data);
    }
    directory.push(0x1E);
    let base = 24 + directory.len();
    let len = base + data.len() + 1;
    let mut record = format!("{len:05}nam a22{base:05}   4500").into_bytes();
    record.extend(directory);
    record.extend(data);
    record.push(0x1D);
    record
}

/// A book: 001, 008 with a year, two ISBNs, a title and an author.
fn book(id: &str, title: &str, isbns: &[&str]) -> Vec<u8> {
    let isbns: Vec<(char, &str)> = isbns.iter().map(|i| ('a', *i)).collect();
    marc_record(
        &[("001", id), ("008", "850101s1851    nyu           000 1 eng d")],
        &[("020", "  ", &isbns), ("100", "1 ", &[('a', "Melville, Herman.")]), ("245", "10", &[('a', title)])],
    )
}

#[test]
fn marc21_records_stream_with_their_numbers_and_offsets() {
    let node = start_node();
    let records = [
        book("B1", "Moby Dick /", &["9780142437247", "0-19-852663-6 (pbk.)"]),
        book("B2", "Typee", &[]),
        book("B3", "Omoo", &["0914520407"]),
    ];
    let file = node.dir.path().join("export.mrc");
    std::fs::write(&file, records.concat()).unwrap();
    let out = ok(&node.rota(&["holdings", "import", file.to_str().unwrap()]));
    assert_eq!((field(&out, "format"), field(&out, "mode"), field(&out, "records read")), ("MARC21", "upsert", "3"));
    let seen = node.seen.lock().unwrap().import.clone().unwrap();
    assert_eq!(seen.sources(), ["record 1", "record 2", "record 3"]);
    let offsets: Vec<u64> = seen.rows.iter().map(|r| r.offset).collect();
    let (a, b) = (records[0].len() as u64, records[1].len() as u64);
    assert_eq!(offsets, [0, a, a + b]);
    assert_eq!(seen.rows.iter().map(|r| r.record).collect::<Vec<_>>(), [1, 2, 3]);
    // Without --items, each record is one item whose barcode is its 001.
    assert_eq!(seen.barcodes(), ["B1", "B2", "B3"]);
    let item = seen.rows[0].item.clone().unwrap();
    assert_eq!(
        (item.title.as_str(), item.author.as_str(), item.year.as_str()),
        ("Moby Dick", "Melville, Herman", "1851")
    );
    assert_eq!(item.isbn, "9780142437247");
    assert_eq!(seen.rows[0].more_isbns, ["0-19-852663-6 (pbk.)"]);
    assert_eq!((seen.rows[1].item.clone().unwrap().isbn.as_str(), seen.rows[1].more_isbns.len()), ("", 0));
}

#[test]
fn koha_items_come_from_952() {
    let node = start_node();
    let record = marc_record(
        &[("001", "bib-1")],
        &[
            ("245", "10", &[('a', "Moby Dick")]),
            ("952", "  ", &[('p', "31234000001"), ('c', "STACKS"), ('o', "PS2384 .M6")]),
            ("952", "  ", &[('p', "31234000002"), ('c', "ANNEX"), ('q', "2026-07-01")]),
            ("952", "  ", &[('c', "LOST")]),
        ],
    );
    let file = node.dir.path().join("koha.mrc");
    std::fs::write(&file, [record.clone(), book("B2", "Typee", &[])].concat()).unwrap();
    let v = json(&node.rota(&["holdings", "import", file.to_str().unwrap(), "--items", "koha", "--json"]));
    let seen = node.seen.lock().unwrap().import.clone().unwrap();
    // Two items from 952s of record 1, none from its 952 without a barcode, and record 2's
    // 001 as it has no 952.
    assert_eq!(seen.barcodes(), ["31234000001", "31234000002", "B2"]);
    assert_eq!(seen.sources(), ["record 1", "record 1", "record 2"]);
    assert_eq!((seen.rows[1].offset, seen.rows[2].offset), (0, record.len() as u64));
    let items: Vec<Item> = seen.rows.iter().map(|r| r.item.clone().unwrap()).collect();
    assert_eq!((items[0].location.as_str(), items[0].call_number.as_str()), ("STACKS", "PS2384 .M6"));
    assert_eq!((items[1].status.as_str(), items[0].status.as_str()), ("on_loan", "available"));
    assert_eq!(items[1].title, "Moby Dick");
    assert_eq!((v["records"].as_u64(), v["skipped"].as_u64()), (Some(2), Some(1)));
    assert_eq!((v["skips"][0]["record"].as_u64(), v["skips"][0]["offset"].as_u64()), (Some(1), Some(0)));
    assert!(v["skips"][0]["reason"].as_str().unwrap().contains("no barcode"), "{v}");
}

#[test]
fn replace_dry_run_is_sent_and_shown() {
    let node = start_node();
    let file = node.dir.path().join("all.mrc");
    std::fs::write(&file, [book("B1", "Moby Dick", &[]), book("B2", "Typee", &[])].concat()).unwrap();
    let out = ok(&node.rota(&["holdings", "import", file.to_str().unwrap(), "--replace", "--dry-run"]));
    let seen = node.seen.lock().unwrap().import.clone().unwrap();
    assert_eq!((seen.start.mode.as_str(), seen.start.dry_run), ("replace", true));
    assert_eq!(field(&out, "mode"), "replace (dry run: nothing was written)");
    assert_eq!(field(&out, "withdrawn"), "2");
    assert!(out.contains("K-ONLOAN") && out.contains("on_loan"), "{out}");
    let v = json(&node.rota(&["holdings", "import", file.to_str().unwrap(), "--replace", "--json"]));
    assert_eq!(
        (v["mode"].as_str(), v["dry_run"].as_bool(), v["withdrawn"].as_u64()),
        (Some("replace"), Some(false), Some(2))
    );
    assert_eq!(v["kept"], serde_json::json!([{"barcode": "K-ONLOAN", "status": "on_loan"}]));
    assert!(!node.seen.lock().unwrap().import.clone().unwrap().start.dry_run);
}

#[test]
fn delete_sends_one_row_per_barcode() {
    let node = start_node();
    let list = node.dir.path().join("barcodes.txt");
    std::fs::write(&list, "# withdrawn in June\n31234000001\n\n  31234000002  \n# end\n31234000003\n").unwrap();
    let out = ok(&node.rota(&["holdings", "import", "--delete", list.to_str().unwrap()]));
    let seen = node.seen.lock().unwrap().import.clone().unwrap();
    assert_eq!((seen.start.mode.as_str(), seen.start.dry_run), ("delete", false));
    assert_eq!(seen.barcodes(), ["31234000001", "31234000002", "31234000003"]);
    assert_eq!(seen.sources(), ["line 2", "line 4", "line 6"]);
    assert_eq!(seen.rows.iter().map(|r| r.offset).collect::<Vec<_>>(), [20, 33, 55]);
    assert_eq!((field(&out, "mode"), field(&out, "withdrawn"), field(&out, "records read")), ("delete", "3", "3"));

    // A CSV file with a barcode column, as a dry run.
    let csv = node.dir.path().join("barcodes.csv");
    std::fs::write(&csv, "title,barcode\nMoby Dick,B1\n\"Typee, or a Peep\",B2\n").unwrap();
    let v = json(&node.rota(&["holdings", "import", "--delete", csv.to_str().unwrap(), "--dry-run", "--json"]));
    let seen = node.seen.lock().unwrap().import.clone().unwrap();
    assert_eq!((seen.start.mode.as_str(), seen.start.dry_run), ("delete", true));
    assert_eq!(seen.barcodes(), ["B1", "B2"]);
    assert_eq!(seen.sources(), ["line 2", "line 3"]);
    assert_eq!((v["mode"].as_str(), v["withdrawn"].as_u64()), (Some("delete"), Some(2)));
}

#[test]
fn a_file_that_is_not_holdings_is_refused_before_anything_is_sent() {
    let node = start_node();
    let pdf = node.dir.path().join("report.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n").unwrap();
    let err = fails(&node.rota(&["holdings", "import", pdf.to_str().unwrap()]));
    assert!(err.starts_with(&format!("error: {}: ", pdf.display())), "{err}");
    assert!(err.contains("PDF document"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(node.seen.lock().unwrap().import.is_none());

    // Nor is a PDF a list of barcodes.
    let err = fails(&node.rota(&["holdings", "import", "--delete", pdf.to_str().unwrap()]));
    assert!(err.contains("report.pdf") && err.contains("not a list of barcodes"), "{err}");
    assert!(node.seen.lock().unwrap().import.is_none());
}

#[test]
fn a_corrupt_record_is_skipped_and_the_others_are_sent() {
    let node = start_node();
    let mut corrupt = book("B2", "Typee", &[]);
    // The leader's record length no longer matches where the record ends.
    corrupt[..5].copy_from_slice(b"00999");
    let records = [book("B1", "Moby Dick", &[]), corrupt, book("B3", "Omoo", &[])];
    let file = node.dir.path().join("damaged.mrc");
    std::fs::write(&file, records.concat()).unwrap();
    let out = ok(&node.rota(&["holdings", "import", file.to_str().unwrap()]));
    let seen = node.seen.lock().unwrap().import.clone().unwrap();
    assert!(!seen.cancelled);
    assert_eq!(seen.barcodes(), ["B1", "B3"]);
    assert_eq!(seen.sources(), ["record 1", "record 3"]);
    let at = records[0].len();
    assert_eq!((field(&out, "records read"), field(&out, "skipped")), ("3", "1"));
    assert!(out.contains(&format!("record 2 (byte {at}): bad leader: record length is 999")), "{out}");
    let v = json(&node.rota(&["holdings", "import", file.to_str().unwrap(), "--json"]));
    assert_eq!((v["skips"][0]["record"].as_u64(), v["skips"][0]["offset"].as_u64()), (Some(2), Some(at as u64)));
}

#[test]
fn an_error_that_stops_reading_cancels_the_import() {
    let node = start_node();
    // Enough records for whole batches to reach the node; then a second XML document, in an
    // encoding Rota does not read, pasted on: reading stops there.
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<collection xmlns=\"http://www.loc.gov/MARC21/slim\">\n",
    );
    for n in 1..=1200 {
        xml.push_str(&format!(
            "<record><leader>00000nam a2200000   4500</leader><controlfield tag=\"001\">B{n}</controlfield>\
             <datafield tag=\"245\" ind1=\"1\" ind2=\"0\"><subfield code=\"a\">Book {n}</subfield></datafield></record>\n"
        ));
    }
    xml.push_str("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<collection>\n");
    let file = node.dir.path().join("broken.xml");
    std::fs::write(&file, &xml).unwrap();
    let err = fails(&node.rota(&["holdings", "import", file.to_str().unwrap()]));
    assert!(err.starts_with(&format!("error: {}: byte ", file.display())), "{err}");
    assert!(err.contains("ISO-8859-1") && err.contains("nothing was written"), "{err}");
    let seen = node.seen.lock().unwrap().import.clone().unwrap();
    assert!(seen.cancelled, "the node was not told to cancel");
    assert_eq!(seen.rows.len() % 500, 0);
}

/// The value of a `key: value` line.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}:");
    out.lines().find_map(|l| l.strip_prefix(&prefix)).map(str::trim).unwrap_or_else(|| panic!("no {key}: {out}"))
}

#[test]
fn agreement_sends_only_the_options_given() {
    let node = start_node();
    let out = ok(&node.rota(&["agreement", "set", "ABC", "--lend", "no", "--formats", "all", "--expiry", "96h"]));
    assert!(out.contains("formats:") && out.contains("book, dvd") && out.contains("4d"), "{out}");
    let sent = node.seen.lock().unwrap().set_agreement.clone().unwrap();
    assert_eq!(sent.partner, "ABC");
    assert_eq!(sent.lend, Some(false));
    assert_eq!((sent.borrow, sent.loan_days, sent.renewals, sent.max_outstanding), (None, None, None, None));
    assert!(sent.set_formats && sent.formats.is_empty());
    assert_eq!(sent.expiry_seconds, Some(345_600));

    ok(&node.rota(&["agreement", "set", "ABC", "--formats", "book, dvd"]));
    let sent = node.seen.lock().unwrap().set_agreement.clone().unwrap();
    assert_eq!(sent.formats, vec!["book", "dvd"]);
    assert!(sent.set_formats);
    assert_eq!((sent.lend, sent.expiry_seconds), (None, None));

    let v = json(&node.rota(&["agreement", "show", "ABC", "--json"]));
    assert_eq!(v["updated_at"], "2024-05-01T12:34:56.789Z");
    assert_eq!(v["expiry_seconds"], 345_600);
}

#[test]
fn partners() {
    let node = start_node();
    let out = ok(&node.rota(&["partner", "list"]));
    for want in ["ABC", "Alphabet College", "p2p", "active", "XYZ"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let v = json(&node.rota(&["--json", "partner", "list"]));
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["agreement"]["formats"][1], "dvd");
    assert_eq!(v[0]["added_at"], "2024-05-01T12:34:56.789Z");
    assert_eq!(v[1]["agreement"], Value::Null);

    ok(&node.rota(&["partner", "suspend", "ABC"]));
    assert_eq!(node.seen.lock().unwrap().partner_status.as_ref().unwrap().status, "suspended");
    let out = ok(&node.rota(&["partner", "resume", "ABC"]));
    assert!(out.contains("is now active"), "{out}");

    let out = ok(&node.rota(&["partner", "show", "ABC"]));
    assert!(out.contains("2026-12-24 to 2027-01-02 (winter holidays)"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("closed:")).count(), 2, "{out}");
    let v = json(&node.rota(&["partner", "show", "ABC", "--json"]));
    assert_eq!(
        v["closures"][0],
        serde_json::json!({"from": "2026-12-24", "to": "2027-01-02", "note": "winter holidays"})
    );
    assert_eq!(v["closures"][1]["from"], "2027-03-01");
    let v = json(&node.rota(&["partner", "list", "--json"]));
    assert_eq!(v[0]["closures"], serde_json::json!([]));

    // A check prints both sides' terms and the problems, and fails so that scripts notice.
    let out = node.rota(&["partner", "check", "ABC"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    for want in ["Alphabet College", "yes, in 3 ms", "rota-peer/1", "lends to the other", "you borrow from ABC"] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 problem with ABC"), "{out:?}");
    let out = node.rota(&["--json", "partner", "check", "XYZ"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["reachable"].as_bool(), v["theirs"].is_null()), (Some(false), true), "{v}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("XYZ could not be reached"), "{out:?}");

    let err = fails(&node.rota(&["partner", "show", "QQQ"]));
    assert_eq!(err.trim_end(), "error: no partner QQQ");
    let err = fails(&node.rota(&["partner", "remove", "ABC"]));
    assert_eq!(err.trim_end(), "error: not allowed: only admin may remove partners");

    // A card whose fingerprint matches goes to the node with the expected fingerprint.
    let symbol = Symbol::parse("ABC").unwrap();
    let their_ca = CaBundle::generate(&symbol, "Alphabet College").unwrap();
    let card =
        Card::new(symbol, "Alphabet College".into(), "https://abc.example:7443".into(), their_ca.cert_pem).unwrap();
    let card_path = node.dir.path().join("abc.card");
    std::fs::write(&card_path, card.to_text()).unwrap();
    let typed = card.fingerprint().to_ascii_uppercase();
    let o = node.rota(&[
        "partner",
        "add",
        card_path.to_str().unwrap(),
        "--tier",
        "last_resort",
        "--priority",
        "5",
        "--fingerprint",
        &typed,
        "--json",
    ]);
    let v = json(&o);
    assert_eq!(v["symbol"], "ABC");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Partner card: ABC (Alphabet College)"));
    let sent = node.seen.lock().unwrap().add_partner.clone().unwrap();
    assert_eq!((sent.tier.as_str(), sent.priority), ("last_resort", 5));
    assert_eq!(sent.expected_fingerprint, card.fingerprint());
    assert_eq!(sent.card_text, card.to_text());
}

#[test]
fn requests() {
    let node = start_node();
    let out = ok(&node.rota(&[
        "request",
        "create",
        "--title",
        "Moby Dick",
        "--isbn",
        "9780142437247",
        "--patron",
        "P123",
        "--need-before",
        "2025-06-30",
    ]));
    assert!(out.contains("req-1") && out.contains("ABC → XYZ") && out.contains("rota request show req-1"), "{out}");
    let sent = node.seen.lock().unwrap().create_request.clone().unwrap();
    assert!(!sent.force);
    assert_eq!(sent.need_before, "2025-06-30");
    assert_eq!(sent.patron_id, "P123");
    let c = sent.citation.unwrap();
    assert_eq!((c.title.as_str(), c.isbn.as_str(), c.format.as_str()), ("Moby Dick", "9780142437247", "book"));

    let out = ok(&node.rota(&["request", "show", "req-1"]));
    for want in ["ISBN 9780142437247", "not on shelf", "consortium", "2024-05-01 12:34:56Z", "staff:admin", "by hand"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let out = ok(&node.rota(&["request", "list"]));
    assert!(out.contains("XYZ (asked)") && out.contains("2024-05-01 12:34:56Z"), "{out}");
    assert!(!out.contains("there may be more"), "one request, limit 50: {out}");
    let v = json(&node.rota(&["request", "list", "--json"]));
    assert_eq!(v[0]["created_at"], "2024-05-01T12:34:56.789Z");
    // A list cut at its limit says so; both lists send their filter and limit.
    let out = ok(&node.rota(&["request", "list", "--status", "shipped", "--limit", "1"]));
    assert!(out.contains("there may be more"), "{out}");
    let out = ok(&node.rota(&["lending", "list", "--limit", "1"]));
    assert!(out.contains("DGW-7") && out.contains("there may be more"), "{out}");
    ok(&node.rota(&["lending", "list", "--status", "will_supply"]));
    let lists: Vec<(String, u32)> =
        node.seen.lock().unwrap().lists.iter().map(|l| (l.status.clone(), l.limit)).collect();
    assert_eq!(
        lists[lists.len() - 3..],
        [("shipped".to_owned(), 1), (String::new(), 1), ("will_supply".to_owned(), 50)],
        "{lists:?}"
    );
    assert_eq!(v[0]["timeline"][0]["at"], "2024-05-01T12:34:56.789Z");
    assert!(v[0].get("created_at_unix_ms").is_none());
}

#[test]
fn holdings_add_and_empty_search() {
    let node = start_node();
    let v = json(&node.rota(&[
        "holdings",
        "add",
        "--barcode",
        "B1",
        "--title",
        "Moby Dick",
        "--policy",
        "library_use_only",
        "--json",
    ]));
    assert_eq!(v["barcode"], "B1");
    assert_eq!(v["policy"], "library_use_only");
    assert_eq!((v["status"].as_str(), v["format"].as_str()), (Some("available"), Some("book")));
    assert_eq!(v["updated_at"], "2024-05-01T12:34:56.789Z");
    let out = ok(&node.rota(&["holdings", "search", "nothing"]));
    assert!(out.contains("No items match"), "{out}");
    assert_eq!(json(&node.rota(&["holdings", "search", "nothing", "--json"])), serde_json::json!([]));
}

#[test]
fn borrowing_actions_send_the_action_and_barcode() {
    let node = start_node();
    let out = ok(&node.rota(&["request", "receive", "DGW-17", "--barcode", "3901"]));
    for want in ["DGW-17", "received", "2026-07-31", "XYZ", "3901"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let sent = node.seen.lock().unwrap().borrowing_actions.pop().unwrap();
    assert_eq!((sent.id.as_str(), sent.action.as_str(), sent.barcode.as_str()), ("DGW-17", "receive", "3901"));

    ok(&node.rota(&["request", "cancel", "DGW-17"]));
    let sent = node.seen.lock().unwrap().borrowing_actions.pop().unwrap();
    assert_eq!((sent.action.as_str(), sent.reason.as_str()), ("cancel", "cancelled by staff"));

    for (command, action) in [
        ("loan", "loan"),
        ("return", "return"),
        ("ship-return", "ship-return"),
        ("renew", "renew"),
        ("accept", "accept"),
        ("decline", "decline"),
        ("lost", "lost"),
    ] {
        let v = json(&node.rota(&["request", command, "DGW-17", "--json"]));
        assert_eq!(v["state"], format!("after {action}"));
        assert_eq!((v["due_date"].as_str(), v["supplier_item"].as_str()), (Some("2026-07-31"), Some("3901")));
        let sent = node.seen.lock().unwrap().borrowing_actions.pop().unwrap();
        assert_eq!((sent.action.as_str(), sent.barcode.as_str()), (action, ""));
    }
}

#[test]
fn lending_actions_send_reason_note_answer_and_due() {
    let node = start_node();
    let out = ok(&node.rota(&["lending", "reject", "ABC-4", "--reason", "NotOnShelf", "--note", "at the bindery"]));
    assert!(out.contains("unfilled") && out.contains("NotOnShelf") && out.contains("ABC-4"), "{out}");
    let sent = node.seen.lock().unwrap().lending_actions.pop().unwrap();
    assert_eq!(
        (sent.id.as_str(), sent.action.as_str(), sent.reason.as_str(), sent.note.as_str()),
        ("ABC-4", "reject", "NotOnShelf", "at the bindery")
    );

    let v = json(&node.rota(&["lending", "renew-answer", "ABC-4", "yes", "--due", "2026-08-31", "--json"]));
    assert_eq!((v["state"].as_str(), v["due_date"].as_str()), (Some("shipped"), Some("2026-08-31")));
    assert_eq!(v["renew_pending"], false);
    let sent = node.seen.lock().unwrap().lending_actions.pop().unwrap();
    assert_eq!((sent.action.as_str(), sent.answer.as_str(), sent.due.as_str()), ("renew-answer", "yes", "2026-08-31"));

    // Without --due, ship leaves the due date to the node.
    ok(&node.rota(&["lending", "ship", "ABC-4"]));
    let sent = node.seen.lock().unwrap().lending_actions.pop().unwrap();
    assert_eq!((sent.action.as_str(), sent.due.as_str()), ("ship", ""));

    ok(&node.rota(&["lending", "condition", "ABC-4", "--code", "LibraryUseOnly", "--note", "reading room"]));
    let sent = node.seen.lock().unwrap().lending_actions.pop().unwrap();
    assert_eq!((sent.code.as_str(), sent.note.as_str()), ("LibraryUseOnly", "reading room"));
}

#[test]
fn pick_list_keeps_the_node_order() {
    let node = start_node();
    let out = ok(&node.rota(&["lending", "pick-list"]));
    let header = out.lines().find(|l| l.contains("location")).unwrap();
    let columns = ["location", "call number", "barcode", "title", "borrower", "request"];
    let at: Vec<usize> = columns.iter().map(|c| header.find(c).unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{header}");
    let annex = out.find("Annex").unwrap();
    let main = out.find("Main Stacks").unwrap();
    assert!(annex < main, "{out}");
    for want in ["QA76 .K6", "B-77", "ZZZ-9", "AAA-1", "ABC"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let v = json(&node.rota(&["lending", "pick-list", "--json"]));
    assert_eq!((v[0]["id"].as_str(), v[1]["id"].as_str()), (Some("ZZZ-9"), Some("AAA-1")));
    assert_eq!(v[1]["item_call_number"], "PS2384 .M6");
}

#[test]
fn todo_lists_both_sides() {
    let node = start_node();
    let out = ok(&node.rota(&["todo"]));
    for want in ["borrowing", "DGW-17", "receive the item", "lending", "ABC-4", "renewal", "2024-05-01 12:34:56Z"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let v = json(&node.rota(&["todo", "--json"]));
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["action"], "receive the item");
    assert_eq!(v[1]["since"], "2024-05-01T12:34:56.789Z");
    assert!(v[1].get("since_unix_ms").is_none());
}

#[test]
fn stats_per_partner_and_overall() {
    let node = start_node();
    let v = json(&node.rota(&["stats", "--partner", "ABC", "--json"]));
    assert_eq!(node.seen.lock().unwrap().stats.as_ref().unwrap().partner, "ABC");
    assert_eq!(v["partners"].as_array().unwrap().len(), 2);
    assert_eq!(v["partners"][0]["partner"], "ABC");
    assert_eq!((v["partners"][0]["requests"].as_u64(), v["partners"][0]["filled"].as_u64()), (Some(4), Some(2)));
    assert_eq!(v["partners"][0]["fill_rate"], 0.5);
    assert_eq!(v["partners"][0]["created_to_shipped_s"], 183_600.0);
    assert_eq!(v["overall"]["lent"], 7);
    assert_eq!(v["overall"]["partner"], "");

    let out = ok(&node.rota(&["stats"]));
    assert_eq!(node.seen.lock().unwrap().stats.as_ref().unwrap().partner, "");
    for want in ["all partners", "50%", "2d 3h", "45m", "fill rate"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    // XYZ was never asked: no fill rate, no times.
    let xyz = out.lines().find(|l| l.contains("XYZ")).unwrap();
    assert!(!xyz.contains('%') && !xyz.contains("2d") && xyz.matches(" - ").count() == 4, "{xyz}");
}

#[test]
fn partner_close_sends_the_dates_and_prints_the_closures() {
    let node = start_node();
    let out = ok(&node.rota(&[
        "partner",
        "close",
        "ABC",
        "--from",
        "2026-12-24",
        "--to",
        "2027-01-02",
        "--note",
        "winter holidays",
    ]));
    let sent = node.seen.lock().unwrap().close_partner.clone().unwrap();
    assert_eq!(
        (sent.symbol.as_str(), sent.from.as_str(), sent.to.as_str(), sent.note.as_str()),
        ("ABC", "2026-12-24", "2027-01-02", "winter holidays")
    );
    assert!(out.contains("from 2026-12-24 to 2027-01-02"), "{out}");
    assert!(out.contains("closed:") && out.contains("2026-12-24 to 2027-01-02 (winter holidays)"), "{out}");
    assert!(out.contains("Alphabet College"), "{out}");

    // A single day, no note, as JSON.
    let v = json(&node.rota(&["partner", "close", "ABC", "--from", "2027-03-01", "--to", "2027-03-01", "--json"]));
    assert_eq!(v["closures"], serde_json::json!([{"from": "2027-03-01", "to": "2027-03-01", "note": ""}]));
    let sent = node.seen.lock().unwrap().close_partner.clone().unwrap();
    assert_eq!((sent.from.as_str(), sent.to.as_str(), sent.note.as_str()), ("2027-03-01", "2027-03-01", ""));
}

#[test]
fn preview_table_numbers_the_rota_and_warns_of_our_own_copies() {
    let node = start_node();
    let out = ok(&node.rota(&["preview", "--title", "Moby Dick", "--isbn", "9780142437247"]));
    let sent = node.seen.lock().unwrap().preview.clone().unwrap().citation.unwrap();
    assert_eq!(
        (sent.title.as_str(), sent.isbn.as_str(), sent.format.as_str(), sent.oclc.as_str()),
        ("Moby Dick", "9780142437247", "book", "")
    );
    assert!(out.lines().next().unwrap().contains("balance"), "{out}");
    assert!(
        out.contains("Our own copies are on the shelf: B1, B2 (a request would be refused without --force)"),
        "{out}"
    );
    let header = out.lines().find(|l| l.contains("partner") && l.contains("locate")).unwrap();
    let columns = ["#", "partner", "tier", "priority", "in rota", "locate", "copies", "reason"];
    let at: Vec<usize> = columns.iter().map(|c| header.find(c).unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{header}");
    // Cells of a row, without the table's borders.
    let row = |partner: &str| -> Vec<String> {
        let line = out.lines().find(|l| l.contains(&format!(" {partner} "))).unwrap_or_else(|| panic!("{out}"));
        line.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
    };
    assert_eq!(row("ABC"), ["1", "ABC", "consortium", "10", "yes", "available", "2"]);
    assert_eq!(row("XYZ"), ["2", "XYZ", "p2p", "10", "yes", "unreachable", "-", "timed out"]);
    assert_eq!(row("QQQ"), ["-", "QQQ", "p2p", "10", "no", "not_asked", "-", "closed until 2027-01-02"]);
    assert_eq!(row("NNN"), ["-", "NNN", "last_resort", "10", "no", "not_available", "0", "NotHeld"]);

    // No copy of our own: no warning.
    let out = ok(&node.rota(&["preview", "--oclc", "1234567", "--format", "dvd"]));
    assert!(!out.contains("Our own copies"), "{out}");
    let sent = node.seen.lock().unwrap().preview.clone().unwrap().citation.unwrap();
    assert_eq!((sent.title.as_str(), sent.oclc.as_str(), sent.format.as_str()), ("", "1234567", "dvd"));
}

#[test]
fn preview_json_is_the_reply() {
    let node = start_node();
    let v = json(&node.rota(&["preview", "--title", "Moby Dick", "--json"]));
    assert_eq!(v["strategy"], "balance");
    assert_eq!(v["local_copies"], serde_json::json!(["B1", "B2"]));
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(
        v["entries"][0],
        serde_json::json!({
            "partner": "ABC", "tier": "consortium", "priority": 10, "included": true,
            "locate": "available", "reason": "", "copies": 2
        })
    );
    assert_eq!(
        (v["entries"][2]["included"].as_bool(), v["entries"][2]["locate"].as_str()),
        (Some(false), Some("not_asked"))
    );
    let v = json(&node.rota(&["preview", "--isbn", "9780000000000", "--json"]));
    assert_eq!(v["local_copies"], serde_json::json!([]));
}

#[test]
fn request_create_force_sends_force() {
    let node = start_node();
    ok(&node.rota(&["request", "create", "--title", "Moby Dick", "--patron", "P123", "--force"]));
    let sent = node.seen.lock().unwrap().create_request.clone().unwrap();
    assert!(sent.force);
    assert_eq!(sent.citation.unwrap().title, "Moby Dick");
}
