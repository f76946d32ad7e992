//! The CLI round trip with the real binaries: two `rota-node` processes and the `rota` CLI.
//! init, card export, partner add, agreement set, holdings import, request create and show.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use rota_tests::{PATIENCE, bin_dir, eventually};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

struct Library {
    profile: PathBuf,
    proc: Proc,
}

fn start(bins: &Path, root: &Path, symbol: &str) -> Library {
    let port = free_port();
    let data = root.join(symbol.to_lowercase());
    run(Command::new(bins.join("rota-node"))
        .args(["init", "--data-dir"])
        .arg(&data)
        .args(["--symbol", symbol, "--name", &format!("{symbol} Library")])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--public-url", &format!("https://127.0.0.1:{port}")]));
    let child = Command::new(bins.join("rota-node"))
        .args(["run", "--data-dir"])
        .arg(&data)
        .env("ROTA_LOG", "warn")
        .spawn()
        .unwrap();
    Library { profile: data.join("profiles/admin/profile.toml"), proc: Proc(child) }
}

fn rota(bins: &Path, lib: &Library) -> Command {
    let mut c = Command::new(bins.join("rota"));
    c.arg("--profile").arg(&lib.profile);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_round_trip_with_real_processes() {
    let bins = bin_dir();
    let root = tempfile::tempdir().unwrap();
    let dgw = start(&bins, root.path(), "DGW");
    let uva = start(&bins, root.path(), "UVA");
    for lib in [&dgw, &uva] {
        eventually("node answers whoami", PATIENCE, || {
            let ok = rota(&bins, lib).arg("whoami").output().map(|o| o.status.success()).unwrap_or(false);
            async move { ok.then_some(()) }
        })
        .await;
    }

    // Exchange cards, checking fingerprints, and agree to lend and borrow.
    for (me, them, sym) in [(&dgw, &uva, "UVA"), (&uva, &dgw, "DGW")] {
        let card = root.path().join(format!("{sym}-card.txt"));
        run(rota(&bins, them).args(["card", "export", "-o"]).arg(&card));
        let fp = json(&run(rota(&bins, them).args(["--json", "whoami"])))["fingerprint"].as_str().unwrap().to_owned();
        let added = json(&run(rota(&bins, me).args(["--json", "partner", "add"]).arg(&card).args([
            "--tier",
            "p2p",
            "--fingerprint",
            &fp,
        ])));
        assert_eq!((&added["id"], &added["symbol"]), (&serde_json::json!(sym), &serde_json::json!(sym)));
        run(rota(&bins, me).args([
            "agreement",
            "set",
            sym,
            "--lend",
            "yes",
            "--borrow",
            "yes",
            "--loan-days",
            "21",
            "--expiry",
            "4d",
        ]));
    }

    // UVA imports 50 real Library of Congress records.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/loc-books-50.csv");
    let summary = json(&run(rota(&bins, &uva).arg("--json").args(["holdings", "import"]).arg(&fixture)));
    assert_eq!((summary["records"].as_u64(), summary["created"].as_u64()), (Some(50), Some(50)), "{summary}");
    let shown = json(&run(rota(&bins, &uva).args(["--json", "holdings", "show", "00000002"])));
    assert_eq!(shown["status"], "available");

    // DGW asks for the first record by LCCN.
    let created = json(&run(rota(&bins, &dgw).args([
        "--json",
        "request",
        "create",
        "--title",
        "Botanical materia medica",
        "--lccn",
        "00000002",
        "--patron",
        "P-77",
    ])));
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(id, "DGW-1");
    let shown = eventually("request to be will_supply", PATIENCE, || {
        let out = rota(&bins, &dgw).args(["--json", "request", "show", &id]).output().unwrap();
        async move {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (v["state"] == "will_supply").then_some(v)
        }
    })
    .await;
    assert_eq!(shown["supplier"], "UVA");
    let events: Vec<&str> =
        shown["timeline"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["created", "located", "request_sent", "answer_received"]);
    let text = String::from_utf8_lossy(&run(rota(&bins, &dgw).args(["request", "show", &id])).stdout).to_string();
    assert!(text.contains("WillSupply") && text.contains("partner:UVA"), "{text}");
    let lending = json(&run(rota(&bins, &uva).args(["--json", "lending", "list"])));
    assert_eq!(
        lending.as_array().map(Vec::len).or_else(|| lending["requests"].as_array().map(Vec::len)),
        Some(1),
        "{lending}"
    );

    // The journey continues through the CLI: pick list, ship, receive, worklist, stats.
    let picks = json(&run(rota(&bins, &uva).args(["--json", "lending", "pick-list"])));
    assert_eq!(picks.as_array().map(Vec::len), Some(1), "{picks}");
    let text = String::from_utf8_lossy(&run(rota(&bins, &uva).args(["lending", "pick-list"])).stdout).to_string();
    assert!(text.contains("00000002") && text.contains("Main Stacks"), "{text}");
    let shipped = json(&run(rota(&bins, &uva).args(["--json", "lending", "ship", &id, "--note", "media mail"])));
    assert_eq!(shipped["state"], "shipped", "{shipped}");
    eventually("DGW to see the shipment", PATIENCE, || {
        let out = rota(&bins, &dgw).args(["--json", "request", "show", &id]).output().unwrap();
        async move {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (v["state"] == "shipped").then_some(())
        }
    })
    .await;
    let todo = json(&run(rota(&bins, &dgw).args(["--json", "todo"])));
    assert!(todo.to_string().contains(&id), "{todo}");
    let received = json(&run(rota(&bins, &dgw).args(["--json", "request", "receive", &id, "--barcode", "00000002"])));
    assert_eq!(received["state"], "received", "{received}");
    let refused = rota(&bins, &dgw).args(["request", "loan", "DGW-99"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("DGW-99"));
    let stats = json(&run(rota(&bins, &dgw).args(["--json", "stats"])));
    assert_eq!(stats["overall"]["filled"], 1, "{stats}");
    let preview = json(&run(rota(&bins, &dgw).args(["--json", "preview", "--lccn", "00000002"])));
    assert_eq!(preview["entries"][0]["partner"], "UVA", "{preview}");

    // The admin issues a certificate for another staff member, whose profile then works.
    let jane = root.path().join("jane");
    let issued = json(&run(rota(&bins, &dgw).args(["--json", "staff", "issue", "jane", "-o"]).arg(&jane)));
    assert_eq!(issued["id"], "urn:rota:staff:DGW:jane", "{issued}");
    let as_jane = || {
        let mut c = Command::new(bins.join("rota"));
        c.arg("--profile").arg(jane.join("profile.toml"));
        c
    };
    let who = json(&run(as_jane().args(["--json", "whoami"])));
    assert_eq!(who["staff_user"], "jane", "{who}");
    // Jane can work, but only the admin issues certificates.
    let added =
        json(&run(as_jane().args(["--json", "holdings", "add", "--barcode", "DGW-J1", "--title", "Moby Dick"])));
    assert_eq!((&added["id"], &added["status"]), (&serde_json::json!("DGW-J1"), &serde_json::json!("available")));
    let refused = as_jane().args(["staff", "issue", "joe", "-o"]).arg(root.path().join("joe")).output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("admin"), "{err}");
    assert!(!root.path().join("joe").exists(), "nothing left behind after a refusal");

    // Only the admin rotates the node certificate; the node then presents the new one, and
    // the CLI, which trusts the CA, carries on.
    let refused = as_jane().args(["certs", "rotate"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("only the admin"), "{refused:?}");
    let node_pem = || std::fs::read_to_string(root.path().join("dgw/tls/node.pem")).unwrap();
    let before = node_pem();
    let rotated = json(&run(rota(&bins, &dgw).args(["--json", "certs", "rotate"])));
    let after = node_pem();
    assert_ne!(before, after, "a new certificate is written");
    let der = rota_certs::tls::certs_from_pem(&after).unwrap().remove(0);
    assert_eq!(rotated["fingerprint"], rota_certs::fingerprint_of_der(&der), "{rotated}");
    let who = json(&run(as_jane().args(["--json", "whoami"])));
    assert_eq!(who["symbol"], "DGW", "{who}");

    // SIGTERM (from a service manager) and SIGINT (Ctrl-C) both shut a node down cleanly.
    use nix::sys::signal::Signal;
    for (mut lib, signal) in [(dgw, Signal::SIGTERM), (uva, Signal::SIGINT)] {
        let pid = nix::unistd::Pid::from_raw(lib.proc.0.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
        let status = eventually("node to exit", Duration::from_secs(15), || {
            let s = lib.proc.0.try_wait().unwrap();
            async move { s }
        })
        .await;
        assert!(status.success(), "exit status {status:?}");
    }
}
