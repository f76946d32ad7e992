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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_mapping_a_full_sync_and_a_withdrawal_list() {
    let root = tempfile::tempdir().unwrap();
    let n = Node::start(root.path()).await;
    let import = |file: &str, extra: &[&str]| {
        let path = fixture(file);
        let mut args = vec!["holdings", "import", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (out, r) = n.json(&args);
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        r
    };
    let show = |barcode: &str| n.json(&["holdings", "show", barcode]).1;

    // Alma publishing: ITM wins over AVA; record 11's ITM has no barcode and is located.
    let r = import("alma.mrc", &["--items", "alma"]);
    assert_eq!((r["records"].as_u64(), r["skipped"].as_u64()), (Some(20), Some(1)), "{r}");
    assert_eq!(r["skips"][0]["record"], 11, "{r}");
    let i = show("39000101");
    assert_eq!((i["location"].as_str(), i["call_number"].as_str()), (Some("STACKS"), Some("ALMA 1")), "{i}");
    // Sierra 945: record 10 has no barcode; record 11 has two items.
    let r = import("sierra.mrc", &["--items", "sierra"]);
    assert_eq!(r["skips"][0]["record"], 10, "{r}");
    assert!(show("39001102")["barcode"] == "39001102", "the second 945 of record 11 is an item");
    assert_eq!(show("39000101")["call_number"], "SIERRA A");
    // 949: every record one item in the Main Library.
    let r = import("generic.mrc", &["--items", "generic"]);
    assert_eq!(r["skipped"], 0, "{r}");
    let i = show("39000101");
    assert_eq!((i["location"].as_str(), i["call_number"].as_str()), (Some("Main Library"), Some("GEN 949")), "{i}");
    // The same layout as a custom mapping reads the same items: nothing changes.
    let r = import("generic.mrc", &["--items", "tag=949,barcode=i,location=l,call=a,status=s,policy=p"]);
    assert_eq!((r["unchanged"].as_u64(), r["created"].as_u64()), (Some(20), Some(0)), "{r}");

    // A full sync from the 20 records as one item each, then from 19 of them: the missing
    // record's item is withdrawn, and so are the items of the earlier mappings.
    // Items on loan from the earlier imports are kept, and listed.
    let r = import("loc-20.mrc", &["--replace"]);
    assert_eq!(r["records"], 20, "{r}");
    let kept = r["kept"].as_array().unwrap().len() as u64;
    assert!(kept > 0 && r["withdrawn"].as_u64().unwrap() > 0, "{r}");
    assert!(r["kept"].as_array().unwrap().iter().all(|k| k["status"] == "on_loan" || k["status"] == "reserved"), "{r}");
    assert_eq!(n.items(), 20 + kept);
    let bytes = std::fs::read(fixture("loc-20.mrc")).unwrap();
    let records: Vec<&[u8]> = bytes.split_inclusive(|&b| b == 0x1D).collect();
    assert_eq!(records.len(), 20);
    let nineteen = root.path().join("loc-19.mrc");
    std::fs::write(&nineteen, records[..19].concat()).unwrap();
    let (out, r) = n.json(&["holdings", "import", "--replace", nineteen.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((r["unchanged"].as_u64(), r["withdrawn"].as_u64()), (Some(19), Some(1)), "{r}");
    assert_eq!(n.items(), 19 + kept);

    // A withdrawal list: two barcodes we hold and one we don't, which is located by line.
    let list = root.path().join("withdrawn.txt");
    std::fs::write(&list, "# weeded 2026-12\n00000002\n\n00000004\n99999999\n").unwrap();
    let (out, r) = n.json(&["holdings", "import", "--delete", list.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((r["withdrawn"].as_u64(), r["skipped"].as_u64()), (Some(2), Some(1)), "{r}");
    let skip = &r["skips"][0];
    assert_eq!(skip["reason"], "no item with barcode 99999999", "{skip}");
    assert_eq!(
        (skip["source"].as_str(), skip["record"].as_u64()),
        (Some("line 5"), Some(3)),
        "the third barcode: {skip}"
    );
    assert_eq!(n.items(), 17 + kept);
    let out = n.rota().args(["holdings", "show", "00000002"]).output().unwrap();
    assert!(!out.status.success(), "a withdrawn item is gone from the holdings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_interrupted_with_ctrl_c_applies_nothing_and_a_rerun_completes() {
    let root = tempfile::tempdir().unwrap();
    let n = Node::start(root.path()).await;
    // A catalogue big enough to take a while: 150,000 rows of CSV.
    let csv = root.path().join("big.csv");
    let mut text = String::from("barcode,title,author,isbn\n");
    for i in 0..150_000 {
        text.push_str(&format!("B{i:07},Book number {i},Author {},\n", i % 977));
    }
    std::fs::write(&csv, text).unwrap();
    let db = root.path().join("lib/rota.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display())).await.unwrap();
    let staged = || {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM import_staging").fetch_one(&pool).await.unwrap() }
    };

    // Ctrl-C once the node has staged some rows.
    let child = n.rota().args(["holdings", "import"]).arg(&csv).stderr(std::process::Stdio::piped()).spawn().unwrap();
    eventually("the node to stage rows", PATIENCE, || async { (staged().await > 0).then_some(()) }).await;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{:?}", out.status);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interrupted") && err.contains("nothing was written"), "{err}");
    // Nothing was applied, and the node drops what it had staged.
    eventually("the staged rows to be dropped", PATIENCE, || async { (staged().await == 0).then_some(()) }).await;
    assert_eq!(n.items(), 0);

    // Running it again imports everything.
    let (out, r) = n.json(&["holdings", "import", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r["created"], 150_000, "{r}");
    assert_eq!(n.items(), 150_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_bar_shows_on_a_terminal_and_stays_out_of_pipes() {
    let root = tempfile::tempdir().unwrap();
    let n = Node::start(root.path()).await;
    let file = fixture("loc-20.mrc");
    // Output to a pipe or a file (a script, cron): no progress bar, only the report.
    let out = n.rota().args(["holdings", "import", "--dry-run"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("ETA") && !err.contains('\r'), "no bar when stderr is not a terminal: {err:?}");
    // On a terminal (`script` runs the command on a pseudo-terminal and copies what it shows).
    let command = format!(
        "{} --profile {} holdings import --dry-run {}",
        n.bins.join("rota").display(),
        n.profile.display(),
        file.display()
    );
    let out = Command::new("script").args(["-qec", &command, "/dev/null"]).output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("ETA"), "the bar is drawn on a terminal: {screen:?}");
    assert!(screen.contains("records read: 20"), "{screen:?}");
}
