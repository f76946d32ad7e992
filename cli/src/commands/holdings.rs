//! `rota holdings …`.

use rota_proto::staff::{BarcodeRequest, Count, Empty, Item, SearchItemsRequest};
use serde_json::json;

use super::or_empty;
use crate::HoldingsCmd;
use crate::context::{Ctx, RpcResult};
use crate::output::{item_json, print_fields, print_item, print_json, table};

pub async fn run(ctx: &Ctx, cmd: HoldingsCmd) -> anyhow::Result<()> {
    match cmd {
        HoldingsCmd::Add(a) => {
            let item = Item {
                barcode: a.barcode,
                title: a.title,
                author: or_empty(a.author),
                publisher: or_empty(a.publisher),
                year: or_empty(a.year),
                isbn: or_empty(a.isbn),
                issn: or_empty(a.issn),
                oclc: or_empty(a.oclc),
                lccn: or_empty(a.lccn),
                format: a.format,
                location: or_empty(a.location),
                call_number: or_empty(a.call_number),
                policy: a.policy,
                status: a.status,
                updated_at_unix_ms: 0,
            };
            let mut node = ctx.connect().await?;
            let item = node.client.add_item(item).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&item_json(&item));
            }
            print_item(&item);
        }
        HoldingsCmd::Import(args) => crate::import::run(ctx, args).await?,
        HoldingsCmd::Search { query, limit } => {
            let mut node = ctx.connect().await?;
            let request = SearchItemsRequest { query: query.clone(), limit };
            let list = node.client.search_items(request).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&list.items.iter().map(item_json).collect());
            }
            if list.items.is_empty() {
                println!("No items match {query:?}.");
                return Ok(());
            }
            let mut t =
                table(["barcode", "title", "author", "year", "format", "call number", "location", "policy", "status"]);
            for i in &list.items {
                t.add_row([
                    i.barcode.clone(),
                    i.title.clone(),
                    i.author.clone(),
                    i.year.clone(),
                    i.format.clone(),
                    i.call_number.clone(),
                    i.location.clone(),
                    i.policy.clone(),
                    i.status.clone(),
                ]);
            }
            println!("{t}");
        }
        HoldingsCmd::Stats => {
            let mut node = ctx.connect().await?;
            let s = node.client.holdings_stats(Empty {}).await.rpc(&node.url)?;
            let counts =
                |v: &[Count]| v.iter().map(|c| (c.key.clone(), json!(c.count))).collect::<serde_json::Map<_, _>>();
            if ctx.json {
                return print_json(&json!({
                    "items": s.items,
                    "withdrawn": s.withdrawn,
                    "by_status": counts(&s.by_status),
                    "by_policy": counts(&s.by_policy),
                    "by_format": counts(&s.by_format),
                    "with_isbn": s.with_isbn,
                    "with_oclc": s.with_oclc,
                    "with_lccn": s.with_lccn,
                }));
            }
            print_fields(&[
                ("items", s.items.to_string()),
                ("withdrawn", s.withdrawn.to_string()),
                ("with ISBN", s.with_isbn.to_string()),
                ("with OCLC number", s.with_oclc.to_string()),
                ("with LCCN", s.with_lccn.to_string()),
            ]);
            for (title, v) in [("status", &s.by_status), ("policy", &s.by_policy), ("format", &s.by_format)] {
                let mut t = table([title, "items"]);
                for c in v {
                    t.add_row([c.key.clone(), c.count.to_string()]);
                }
                println!("{t}");
            }
        }
        HoldingsCmd::Show { barcode } => {
            let mut node = ctx.connect().await?;
            let item = node.client.get_item(BarcodeRequest { barcode }).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&item_json(&item));
            }
            print_item(&item);
        }
    }
    Ok(())
}
