//! Secrets never reach the logs, even at the most verbose level.

use std::path::Path;
use std::process::{Command, Stdio};

use rota_tests::{PATIENCE, bin_dir, eventually};

/// A distinctive piece of a PEM key's base64 body.
fn key_fragment(path: &Path) -> String {
    let pem = std::fs::read_to_string(path).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    body[body.len() / 2..body.len() / 2 + 32].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_appear_in_the_log_at_trace_level() {
    let bins = bin_dir();
    let root = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let data = root.path().join("dgw");
    let init = |dir: &Path, sym: &str, port: u16| {
        let out = Command::new(bins.join("rota-node"))
            .args(["init", "--data-dir"])
            .arg(dir)
            .args(["--symbol", sym, "--name", sym, "--listen", &format!("127.0.0.1:{port}")])
            .args(["--public-url", &format!("https://127.0.0.1:{port}")])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let init_out = init(&data, "DGW", port);
    assert!(!init_out.contains("PRIVATE KEY"));
    let log_path = root.path().join("node.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut node = Command::new(bins.join("rota-node"))
        .args(["run", "--data-dir"])
        .arg(&data)
        .env("ROTA_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let profile = data.join("profiles/admin/profile.toml");
    let rota = || {
        let mut c = Command::new(bins.join("rota"));
        c.arg("--profile").arg(&profile);
        c
    };
    eventually("node to answer", PATIENCE, || {
        let ok = rota().arg("whoami").output().map(|o| o.status.success()).unwrap_or(false);
        async move { ok.then_some(()) }
    })
    .await;
    // Work that handles keys and certificates: a partner's card, a new staff member, an import.
    let other = root.path().join("uva");
    init(&other, "UVA", 1);
    let card = rota_certs::Card::new(
        rota_certs::Symbol::parse("UVA").unwrap(),
        "UVA".into(),
        "https://127.0.0.1:1".into(),
        std::fs::read_to_string(other.join("tls/ca.pem")).unwrap(),
    )
    .unwrap();
    let card_path = root.path().join("uva.card");
    std::fs::write(&card_path, card.to_text()).unwrap();
    assert!(rota().args(["partner", "add"]).arg(&card_path).args(["--tier", "p2p"]).output().unwrap().status.success());
    let jane = root.path().join("jane");
    let out = rota().args(["staff", "issue", "jane", "-o"]).arg(&jane).output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"));
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/loc-books-50.csv");
    assert!(rota().args(["holdings", "import"]).arg(&fixture).output().unwrap().status.success());
    let _ = Command::new("kill").arg("-TERM").arg(node.id().to_string()).status();
    node.wait().unwrap();

    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.lines().count() > 20, "the log should have trace lines:\n{text}");
    assert!(!text.contains("PRIVATE KEY"));
    for key in
        [data.join("tls/ca.key"), data.join("tls/node.key"), data.join("profiles/admin/key.pem"), jane.join("key.pem")]
    {
        assert!(!text.contains(&key_fragment(&key)), "{} leaked into the log", key.display());
    }
}
