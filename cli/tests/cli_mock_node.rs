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
    import_sources: Vec<String>,
    add_partner: Option<AddPartnerRequest>,
    set_agreement: Option<SetAgreementRequest>,
    partner_status: Option<SetPartnerStatusRequest>,
    create_request: Option<CreateRequestRequest>,
    close_partner: Option<ClosePartnerRequest>,
    preview: Option<PreviewRequest>,
    borrowing_actions: Vec<BorrowingActionRequest>,
    lending_actions: Vec<LendingActionRequest>,
    stats: Option<StatsRequest>,
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
        let mut stream = r.into_inner();
        let mut sources = Vec::new();
        let mut mode = String::new();
        while let Some(msg) = stream.message().await? {
            let rows = match msg.body {
                Some(import_message::Body::Start(s)) => {
                    mode = s.mode;
                    continue;
                }
                Some(import_message::Body::Batch(b)) => b.rows,
                None => continue,
            };
            for row in rows {
                let item = row.item.unwrap_or_default();
                if item.policy == "bogus" {
                    return Err(Status::invalid_argument(format!(
                        "{}: policy \"bogus\" is not one of lendable, not_lendable, library_use_only",
                        row.source
                    )));
                }
                sources.push(row.source);
            }
        }
        let rows = sources.len() as u64;
        self.seen.lock().unwrap().import_sources = sources;
        Ok(Response::new(ImportReport { mode, rows, created: rows - 1, updated: 1, ..Default::default() }))
    }
    async fn search_items(&self, _: Request<SearchItemsRequest>) -> Reply<ItemList> {
        Ok(Response::new(ItemList::default()))
    }
    async fn get_item(&self, _: Request<BarcodeRequest>) -> Reply<Item> {
        unimplemented()
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
    async fn list_requests(&self, _: Request<ListRequest>) -> Reply<BorrowingRequestList> {
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
    async fn list_lending(&self, _: Request<ListRequest>) -> Reply<LendingRequestList> {
        unimplemented()
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
    let config = rota_certs::tls::server_config(&node_cert.cert_pem, &node_cert.key_pem, Arc::new(verifier)).unwrap();
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
    assert!(out.contains("rows:") && out.contains("50"), "{out}");
    let sources = node.seen.lock().unwrap().import_sources.clone();
    assert_eq!(sources.len(), 50);
    assert_eq!(sources[0], "line 2");
    assert_eq!(sources[49], "line 51");
    let v = json(&node.rota(&["holdings", "import", sample.to_str().unwrap(), "--json"]));
    assert_eq!((v["rows"].as_u64(), v["created"].as_u64(), v["updated"].as_u64()), (Some(50), Some(49), Some(1)));

    // A row the node refuses: nothing written, and the node's message names the line.
    let bad = node.dir.path().join("bad.csv");
    std::fs::write(&bad, "barcode,title,policy\nB1,One,\nB2,Two,bogus\n").unwrap();
    let err = fails(&node.rota(&["holdings", "import", bad.to_str().unwrap()]));
    assert!(err.starts_with("error: import of "), "{err}");
    assert!(err.contains("nothing was written: line 3: policy \"bogus\""), "{err}");
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
    let v = json(&node.rota(&["request", "list", "--json"]));
    assert_eq!(v[0]["created_at"], "2024-05-01T12:34:56.789Z");
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
