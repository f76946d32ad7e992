//! Storage faults: a database another program has locked. The operation fails with a clear
//! status, nothing half-written, the node keeps serving, and the database stays sound.

use rota_proto::staff as spb;
use rota_tests::{NodeOptions, start_node_with};
use sqlx::{Connection, Executor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_gives_a_clear_error_and_the_node_keeps_serving() {
    let opts = NodeOptions {
        config_edits: vec![("tick_ms = 1000", "tick_ms = 25"), ("busy_timeout_ms = 10000", "busy_timeout_ms = 200")],
        ..Default::default()
    };
    let mut n = start_node_with("DGW", opts).await;
    n.add_item("B-1", "Glad reunion", "0914520407", "available").await;

    // Another program takes the write lock and keeps it.
    let db = n.data_dir.join("rota.db");
    let mut other =
        sqlx::SqliteConnection::connect_with(&sqlx::sqlite::SqliteConnectOptions::new().filename(&db)).await.unwrap();
    other.execute("BEGIN EXCLUSIVE").await.unwrap();

    let e = n
        .staff
        .add_item(spb::Item { barcode: "B-2".into(), title: "Another".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("busy") && e.message().contains("nothing was changed"), "{}", e.message());
    // Reading goes on meanwhile.
    let found =
        n.staff.search_items(spb::SearchItemsRequest { query: "Glad".into(), limit: 5 }).await.unwrap().into_inner();
    assert_eq!(found.items.len(), 1);

    other.execute("ROLLBACK").await.unwrap();
    // Nothing of the failed write is there, and writing works again.
    assert!(n.staff.get_item(spb::BarcodeRequest { barcode: "B-2".into() }).await.is_err());
    n.add_item("B-2", "Another", "", "available").await;
    let ok: (String,) = sqlx::query_as("PRAGMA integrity_check").fetch_one(&mut other).await.unwrap();
    assert_eq!(ok.0, "ok");
}

/// A small filesystem of our own for the node's data directory, removed on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_a_clear_error_writes_nothing_and_the_node_recovers_without_a_restart() {
    use std::sync::Arc;
    let Some(disk) = SmallDisk::mount("1500k") else {
        rota_tests::skip_unless_ci("cannot mount a small filesystem here (needs root)");
        return;
    };
    rota_tests::setup();
    let (data_dir, listener, _) = rota_tests::init_node(disk.dir.path(), "DGW").await;
    let config = rota_node::config::Config::load(&data_dir).unwrap();
    let running =
        rota_node::runtime::RunningNode::start_with(config, listener, Arc::new(rota_node::clock::SystemClock))
            .await
            .unwrap();
    let profile = rota_certs::profile::Profile::load(&data_dir.join("profiles/admin/profile.toml")).unwrap();
    let mut staff = rota_tests::staff_client(&profile).await;

    // An import far larger than the disk: ~600 rows of 4 KB each.
    let rows: Vec<spb::ImportRow> = (0..600)
        .map(|i| spb::ImportRow {
            source: format!("row {i}"),
            item: Some(spb::Item {
                barcode: format!("B-{i}"),
                title: format!("{i} {}", "x".repeat(1990)),
                author: "y".repeat(490),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let mut msgs =
        vec![spb::ImportMessage { body: Some(spb::import_message::Body::Start(spb::ImportStart::default())) }];
    for c in rows.chunks(50) {
        msgs.push(spb::ImportMessage {
            body: Some(spb::import_message::Body::Batch(spb::ImportBatch { rows: c.to_vec() })),
        });
    }
    let e = staff.import(tokio_stream::iter(msgs.clone())).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("disk is full") && e.message().contains("nothing was changed"), "{}", e.message());
    // The node keeps serving, and nothing of the import is there.
    let stats = staff.holdings_stats(spb::Empty {}).await.unwrap().into_inner();
    assert_eq!(stats.items, 0);

    // Once there is room again, the same import goes through, without a restart.
    disk.resize("64m");
    let report = staff.import(tokio_stream::iter(msgs)).await.unwrap().into_inner();
    assert_eq!(report.created, 600);
    running.stop().await.unwrap();
    // The database came through the full disk intact.
    let db = format!("sqlite://{}?mode=ro", data_dir.join("rota.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&pool).await.unwrap();
    assert_eq!(check, "ok");
}
