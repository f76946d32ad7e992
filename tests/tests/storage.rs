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
