//! `rota lending …`: requests partners have sent to this library.

use rota_proto::staff::{IdRequest, LendingRequest, ListRequest};

use super::or_empty;
use crate::LendingCmd;
use crate::context::{Ctx, RpcResult};
use crate::output::{identifiers, lending_json, print_fields, print_json, table, time};

/// The title to show: the matched item's, else the borrower's citation's.
fn title(r: &LendingRequest) -> String {
    if r.item_title.is_empty() {
        r.citation.as_ref().map(|c| c.title.clone()).unwrap_or_default()
    } else {
        r.item_title.clone()
    }
}

pub async fn run(ctx: &Ctx, cmd: LendingCmd) -> anyhow::Result<()> {
    match cmd {
        LendingCmd::List { status } => {
            let mut node = ctx.connect().await?;
            let request = ListRequest { status: or_empty(status), limit: 0 };
            let list = node.client.list_lending(request).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&list.requests.iter().map(lending_json).collect());
            }
            if list.requests.is_empty() {
                println!("No lending requests.");
                return Ok(());
            }
            let mut t =
                table(["id", "borrower", "state", "title", "item barcode", "call number", "location", "created"]);
            for r in &list.requests {
                t.add_row([
                    r.id.clone(),
                    r.borrower.clone(),
                    r.state.clone(),
                    title(r),
                    r.item_barcode.clone(),
                    r.item_call_number.clone(),
                    r.item_location.clone(),
                    time(r.created_at_unix_ms),
                ]);
            }
            println!("{t}");
        }
        LendingCmd::Show { id } => {
            let mut node = ctx.connect().await?;
            let r = node.client.get_lending(IdRequest { id }).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&lending_json(&r));
            }
            let c = r.citation.clone().unwrap_or_default();
            print_fields(&[
                ("id", r.id.clone()),
                ("borrower", r.borrower.clone()),
                ("state", r.state.clone()),
                ("title", c.title.clone()),
                ("author", c.author.clone()),
                ("identifiers", identifiers(&c)),
                ("format", c.format.clone()),
                ("note", r.note.clone()),
                ("item barcode", r.item_barcode.clone()),
                ("item title", r.item_title.clone()),
                ("call number", r.item_call_number.clone()),
                ("location", r.item_location.clone()),
                ("unfilled because", r.reason_unfilled.clone()),
                ("created", time(r.created_at_unix_ms)),
                ("updated", time(r.updated_at_unix_ms)),
            ]);
            crate::output::print_timeline(&r.timeline);
        }
    }
    Ok(())
}
