//! `rota holdings import` with the real binaries: MARC21 and MARCXML with item mappings, bad
//! records reported with their position, a refused `--replace`, dry runs, and files that are
//! not holdings at all.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use rota_tests::{PATIENCE, bin_dir, eventually};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../holdings/tests/fixtures").join(name)
}

struct Node {
    child: Child,
    profile: PathBuf,
    bins: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    async fn start(root: &Path) -> Node {
        let bins = bin_dir();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let data = root.join("lib");
        let out = Command::new(bins.join("rota-node"))
            .args(["init", "--data-dir"])
            .arg(&data)
            .args(["--symbol", "UVA", "--name", "UVA Library"])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--public-url", &format!("https://127.0.0.1:{port}")])
            .output()
            .unwrap();
        assert!(out.status.success());
        let child = Command::new(bins.join("rota-node"))
            .args(["run", "--data-dir"])
            .arg(&data)
            .env("ROTA_LOG", "warn")
            .spawn()
            .unwrap();
        let node = Node { child, profile: data.join("profiles/admin/profile.toml"), bins };
        eventually("node to answer", PATIENCE, || {
            let ok = node.rota().arg("whoami").output().map(|o| o.status.success()).unwrap_or(false);
            async move { ok.then_some(()) }
        })
        .await;
        node
    }

    fn rota(&self) -> Command {
        let mut c = Command::new(self.bins.join("rota"));
        c.arg("--profile").arg(&self.profile);
        c
    }

    fn json(&self, args: &[&str]) -> (Output, serde_json::Value) {
        let out = self.rota().arg("--json").args(args).output().unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out, v)
    }

    fn items(&self) -> u64 {
        self.json(&["holdings", "stats"]).1["items"].as_u64().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marc_and_marcxml_with_item_mappings() {
    let root = tempfile::tempdir().unwrap();
    let n = Node::start(root.path()).await;
    // Koha exports: items in 952 ($p barcode, $c location, $o call number).
    let (out, r) = n.json(&["holdings", "import", fixture("koha.mrc").to_str().unwrap(), "--items", "koha"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r["format"], "MARC21");
    assert_eq!(r["records"], 20, "{r}");
    let (_, item) = n.json(&["holdings", "show", "39000101"]);
    assert!(!item["title"].as_str().unwrap().is_empty(), "{item}");
    // A record with no item fields: one item, barcode from 001.
    let (out, r) = n.json(&["holdings", "import", fixture("loc-20.mrc").to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(r["created"], 20, "{r}");
    let (_, item) = n.json(&["holdings", "show", "00000002"]);
    assert_eq!(item["lccn"], "00000002");
    // The same records as MARCXML change nothing.
    let (out, r) = n.json(&["holdings", "import", fixture("loc-20-collection.xml").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((r["format"].as_str(), r["unchanged"].as_u64()), (Some("MARCXML"), Some(20)), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_is_skipped_and_located_but_a_replace_with_one_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let n = Node::start(root.path()).await;
    let (out, r) = n.json(&["holdings", "import", fixture("corrupt-middle.mrc").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((r["created"].as_u64(), r["skipped"].as_u64()), (Some(4), Some(1)), "{r}");
    let skip = &r["skips"][0];
    assert_eq!(skip["record"], 3, "{skip}");
    assert!(skip["offset"].as_u64().unwrap() > 0 && !skip["reason"].as_str().unwrap().is_empty(), "{skip}");

    // A dry run writes nothing.
    let before = n.items();
    let (out, r) = n.json(&["holdings", "import", fixture("loc-20.mrc").to_str().unwrap(), "--dry-run"]);
    assert!(out.status.success());
    assert_eq!(r["dry_run"].as_bool(), Some(true), "{r}");
    assert_eq!(r["created"].as_u64().unwrap() + r["unchanged"].as_u64().unwrap(), 20, "{r}");
    assert_eq!(n.items(), before);

    // A full sync from a file with an unreadable record would withdraw that record's items:
    // it is refused, and nothing is written.
    let out = n.rota().args(["holdings", "import", "--replace"]).arg(fixture("corrupt-middle.mrc")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--replace") && err.contains("nothing was written"), "{err}");
    assert_eq!(n.items(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_holdings_gets_one_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let n = Node::start(root.path()).await;
    let pdf = root.path().join("catalogue.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n").unwrap();
    let out = n.rota().args(["holdings", "import"]).arg(&pdf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("catalogue.pdf") && err.contains("PDF"), "{err}");
    assert_eq!(n.items(), 0);
}
