//! Holdings imports through the staff API: modes, dry runs, bad rows (and a full sync that
//! keeps the items of the rows it skipped), and an import that is cut off (DESIGN §3, §7).

use rota_proto::staff::{self as spb, import_message::Body};
use rota_tests::{TestNode, partner_up, request_isbn, start_node};

/// The 50 real Library of Congress rows in tests/fixtures/loc-books-50.csv.
fn fixture_rows() -> Vec<spb::ImportRow> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/loc-books-50.csv");
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let headers = rdr.headers().unwrap().clone();
    rdr.records()
        .enumerate()
        .map(|(i, rec)| {
            let rec = rec.unwrap();
            let f = |name: &str| rec.get(headers.iter().position(|h| h == name).unwrap()).unwrap().to_owned();
            spb::ImportRow {
                source: format!("line {}", i + 2),
                record: i as u64 + 1,
                item: Some(spb::Item {
                    barcode: f("barcode"),
                    title: f("title"),
                    author: f("author"),
                    publisher: f("publisher"),
                    year: f("year"),
                    isbn: f("isbn"),
                    issn: f("issn"),
                    oclc: f("oclc"),
                    lccn: f("lccn"),
                    format: f("format"),
                    call_number: f("call_number"),
                    location: f("location"),
                    policy: f("policy"),
                    status: f("status"),
                    updated_at_unix_ms: 0,
                }),
                ..Default::default()
            }
        })
        .collect()
}

fn messages(mode: &str, dry_run: bool, rows: Vec<spb::ImportRow>) -> Vec<spb::ImportMessage> {
    let mut v = vec![spb::ImportMessage { body: Some(Body::Start(spb::ImportStart { mode: mode.into(), dry_run })) }];
    for c in rows.chunks(7) {
        v.push(spb::ImportMessage { body: Some(Body::Batch(spb::ImportBatch { rows: c.to_vec() })) });
    }
    v
}

async fn import(node: &mut TestNode, mode: &str, dry_run: bool, rows: Vec<spb::ImportRow>) -> spb::ImportReport {
    node.staff.import(tokio_stream::iter(messages(mode, dry_run, rows))).await.unwrap().into_inner()
}

async fn count(node: &mut TestNode, query: &str) -> usize {
    node.staff
        .search_items(spb::SearchItemsRequest { query: query.into(), limit: 500 })
        .await
        .unwrap()
        .into_inner()
        .items
        .len()
}

/// Rows left in the node's staging tables (read straight from its database).
async fn staged_rows(node: &TestNode) -> i64 {
    let db = format!("sqlite://{}?mode=ro", node.data_dir.join("rota.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let n = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM import_staging) + (SELECT COUNT(*) FROM import_staging_isbns)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_then_reimport_then_change_one() {
    let mut n = start_node("DGW").await;
    let r = import(&mut n, "upsert", false, fixture_rows()).await;
    assert_eq!((r.rows, r.created, r.updated, r.unchanged, r.skipped), (50, 50, 0, 0, 0), "{r:?}");
    let item = n.staff.get_item(spb::BarcodeRequest { barcode: "00000002".into() }).await.unwrap().into_inner();
    assert_eq!((item.lccn.as_str(), item.oclc.as_str()), ("00000002", "5853149"));
    let stats = n.staff.holdings_stats(spb::Empty {}).await.unwrap().into_inner();
    assert_eq!((stats.items, stats.with_lccn, stats.with_oclc), (50, 50, 41));
    assert_eq!(stats.by_status[0].key, "available");
    // The same file again changes nothing.
    let r = import(&mut n, "upsert", false, fixture_rows()).await;
    assert_eq!((r.created, r.updated, r.unchanged), (0, 0, 50));
    // One changed row is one update.
    let mut rows = fixture_rows();
    rows[3].item.as_mut().unwrap().location = "Annex".into();
    let r = import(&mut n, "upsert", false, rows).await;
    assert_eq!((r.created, r.updated, r.unchanged), (0, 1, 49));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_skipped_and_located_and_bad_identifiers_are_dropped() {
    let mut n = start_node("DGW").await;
    let mut rows = fixture_rows();
    rows[4].item.as_mut().unwrap().title = String::new();
    rows[6].item.as_mut().unwrap().policy = "sometimes".into();
    rows[7].item.as_mut().unwrap().barcode = rows[1].item.as_ref().unwrap().barcode.clone();
    rows[8].item.as_mut().unwrap().isbn = "0874669951".into(); // wrong check digit: dropped, item kept
    rows[9].more_isbns = vec!["978-0-19-852663-6".into(), "9780198526636".into()];
    let r = import(&mut n, "upsert", false, rows.clone()).await;
    assert_eq!((r.rows, r.created, r.skipped, r.warnings), (50, 47, 3, 1), "{r:#?}");
    let reasons: Vec<(&str, &str)> = r.skips.iter().map(|s| (s.source.as_str(), s.reason.as_str())).collect();
    assert_eq!(reasons[0], ("line 6", "title: is required"));
    assert!(reasons[1].0 == "line 8" && reasons[1].1.starts_with("policy:"), "{reasons:?}");
    assert!(reasons[2].0 == "line 9" && reasons[2].1.contains("already appears at line 3"), "{reasons:?}");
    assert_eq!(r.skips[0].record, 5);
    assert!(r.warning_samples[0].reason.contains("check digit"), "{:?}", r.warning_samples);
    let b8 = rows[8].item.as_ref().unwrap().barcode.clone();
    let kept = n.staff.get_item(spb::BarcodeRequest { barcode: b8 }).await.unwrap().into_inner();
    assert_eq!(kept.isbn, "");
    // Several ISBNs: either one finds the item.
    assert_eq!(count(&mut n, "0198526636").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_withdraws_what_is_gone_but_keeps_what_is_lent_and_dry_runs_write_nothing() {
    let mut uva = start_node("UVA").await;
    let mut dgw = start_node("DGW").await;
    partner_up(&mut uva, &mut dgw, "p2p", "p2p").await;
    let mut rows = fixture_rows();
    rows[0].item.as_mut().unwrap().isbn = "0914520407".into();
    import(&mut uva, "upsert", false, rows.clone()).await;
    // DGW borrows the first item: UVA reserves it.
    let id = request_isbn(&mut dgw, "Botanical materia medica", "0914520407").await;
    dgw.wait_state(&id, "will_supply").await;
    assert_eq!(uva.item_status("00000002").await, "reserved");

    // A full sync without the first two rows: row 1 is reserved (kept), row 2 is withdrawn.
    let later: Vec<_> = rows[2..].to_vec();
    let dry = import(&mut uva, "replace", true, later.clone()).await;
    assert!(dry.dry_run);
    assert_eq!((dry.withdrawn, dry.kept.len(), dry.unchanged), (1, 1, 48), "{dry:?}");
    assert!(
        uva.staff
            .get_item(spb::BarcodeRequest { barcode: rows[1].item.as_ref().unwrap().barcode.clone() })
            .await
            .is_ok(),
        "dry run wrote"
    );
    let r = import(&mut uva, "replace", false, later).await;
    assert_eq!((r.withdrawn, r.kept[0].barcode.as_str(), r.kept[0].status.as_str()), (1, "00000002", "reserved"));
    let gone =
        uva.staff.get_item(spb::BarcodeRequest { barcode: rows[1].item.as_ref().unwrap().barcode.clone() }).await;
    assert_eq!(gone.unwrap_err().code(), tonic::Code::NotFound);

    // A re-import never un-reserves a copy promised to a partner.
    let r = import(&mut uva, "upsert", false, rows[..1].to_vec()).await;
    assert_eq!(r.unchanged, 1, "{r:?}");
    assert_eq!(uva.item_status("00000002").await, "reserved");

    // Delete mode: listed barcodes are withdrawn; unknown ones are reported.
    let del = |b: &str| spb::ImportRow {
        source: format!("line for {b}"),
        item: Some(spb::Item { barcode: b.into(), ..Default::default() }),
        ..Default::default()
    };
    let b3 = rows[3].item.as_ref().unwrap().barcode.clone();
    let r = import(&mut uva, "delete", false, vec![del(&b3), del("NO-SUCH"), del("00000002")]).await;
    assert_eq!((r.withdrawn, r.skipped, r.kept.len()), (1, 1, 1), "{r:?}");
    assert!(r.skips[0].reason.contains("NO-SUCH"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_keeps_an_item_whose_row_the_node_skipped_and_says_why() {
    let mut n = start_node("DGW").await;
    let rows = fixture_rows();
    let barcode = |i: usize| rows[i].item.as_ref().unwrap().barcode.clone();
    let (a, b, c, d) = (barcode(0), barcode(1), barcode(2), barcode(3));
    let r = import(&mut n, "upsert", false, rows[..4].to_vec()).await;
    assert_eq!(r.created, 4, "{r:?}");
    let before = n.staff.get_item(spb::BarcodeRequest { barcode: b.clone() }).await.unwrap().into_inner();

    // The full sync lists A, B (with a policy the node refuses), C twice (first without a
    // title, then moved to the annex) and a new barcode with a bad status. D is not in it.
    let mut file = vec![rows[0].clone(), rows[1].clone(), rows[2].clone(), rows[2].clone(), rows[4].clone()];
    file[1].item.as_mut().unwrap().policy = "sometimes".into();
    file[1].item.as_mut().unwrap().location = "Annex".into();
    file[2].item.as_mut().unwrap().title = String::new();
    file[3].item.as_mut().unwrap().location = "Annex".into();
    file[4].item.as_mut().unwrap().status = "lost_forever".into();
    for (i, row) in file.iter_mut().enumerate() {
        row.source = format!("line {}", i + 2);
    }
    for dry_run in [true, false] {
        let r = import(&mut n, "replace", dry_run, file.clone()).await;
        // Only D is withdrawn: B's row was skipped, so B is kept as it is.
        assert_eq!((r.rows, r.created, r.updated, r.unchanged, r.withdrawn), (5, 0, 1, 1, 1), "{r:#?}");
        assert_eq!(r.skipped, 3, "{r:#?}");
        assert!(r.kept.is_empty(), "{r:#?}");
        let reasons: Vec<(&str, &str)> = r.skips.iter().map(|s| (s.source.as_str(), s.reason.as_str())).collect();
        assert_eq!(reasons.len(), 3);
        assert_eq!(reasons[0].0, "line 3");
        assert!(reasons[0].1.starts_with("policy: \"sometimes\" is not one of"), "{reasons:?}");
        assert!(reasons[0].1.ends_with(&format!("(item {b} kept as it is, not withdrawn)")), "{reasons:?}");
        // C was staged from its later row, and the new barcode names no item: nothing kept.
        assert_eq!(reasons[1], ("line 4", "title: is required"));
        assert_eq!(reasons[2].0, "line 6");
        assert!(reasons[2].1.starts_with("status:") && !reasons[2].1.contains("kept"), "{reasons:?}");
        // The skipped barcodes were staged apart, and are dropped with the rest.
        assert_eq!(staged_rows(&n).await, 0, "dry run: {dry_run}");
    }
    // B is exactly as it was before the sync; C moved; D is gone; A is still there.
    let kept = n.staff.get_item(spb::BarcodeRequest { barcode: b.clone() }).await.unwrap().into_inner();
    assert_eq!(kept, before);
    let moved = n.staff.get_item(spb::BarcodeRequest { barcode: c }).await.unwrap().into_inner();
    assert_eq!(moved.location, "Annex");
    let gone = n.staff.get_item(spb::BarcodeRequest { barcode: d }).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    assert!(n.staff.get_item(spb::BarcodeRequest { barcode: a }).await.is_ok());

    // The skipped barcodes are forgotten with the import: the next full sync without B
    // withdraws it.
    let r = import(&mut n, "replace", false, vec![rows[0].clone(), rows[2].clone()]).await;
    assert_eq!((r.withdrawn, r.skipped), (1, 0), "{r:#?}");
    let gone = n.staff.get_item(spb::BarcodeRequest { barcode: b }).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_whose_rows_are_all_skipped_withdraws_nothing() {
    let mut n = start_node("DGW").await;
    // More skipped rows than one staging batch (1,500), each barcode twice.
    let row = |i: usize, policy: &str| spb::ImportRow {
        source: format!("line {i}"),
        record: i as u64,
        item: Some(spb::Item {
            barcode: format!("BULK{:05}", i % 2000),
            title: format!("Title {}", i % 2000),
            policy: policy.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = import(&mut n, "upsert", false, (0..2000).map(|i| row(i, "")).collect()).await;
    assert_eq!(r.created, 2000, "{r:?}");
    let r = import(&mut n, "replace", false, (0..4000).map(|i| row(i, "sometimes")).collect()).await;
    assert_eq!((r.rows, r.skipped, r.withdrawn, r.updated, r.unchanged), (4000, 4000, 0, 0, 0), "{r:?}");
    assert!(r.skips[0].reason.ends_with("(item BULK00000 kept as it is, not withdrawn)"), "{:?}", r.skips[0]);
    let stats = n.staff.holdings_stats(spb::Empty {}).await.unwrap().into_inner();
    assert_eq!((stats.items, stats.withdrawn), (2000, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_cut_off_midway_applies_nothing() {
    let mut n = start_node("DGW").await;
    let (tx, rx) = tokio::sync::mpsc::channel::<spb::ImportMessage>(8);
    let mut staff = n.staff.clone();
    let call = tokio::spawn(async move { staff.import(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
    for m in messages("upsert", false, fixture_rows()).into_iter().take(4) {
        tx.send(m).await.unwrap();
    }
    // The client goes away before the end of the file.
    call.abort();
    drop(tx);
    let _ = call.await;
    // The stream never ended normally, so nothing is applied: none of the rows shows.
    assert_eq!(count(&mut n, "00000002").await, 0);
    // A complete import afterwards works normally.
    let r = import(&mut n, "upsert", false, fixture_rows()).await;
    assert_eq!(r.created, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_message_must_say_how_to_import() {
    let mut n = start_node("DGW").await;
    let only_rows = vec![spb::ImportMessage { body: Some(Body::Batch(spb::ImportBatch { rows: fixture_rows() })) }];
    let e = n.staff.import(tokio_stream::iter(only_rows)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let bad_mode = messages("merge", false, vec![]);
    let e = n.staff.import(tokio_stream::iter(bad_mode)).await.unwrap_err();
    assert!(e.message().contains("mode"), "{}", e.message());
}
