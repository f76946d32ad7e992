//! `rota lending …`: requests partners have sent to this library, and what staff do with them.

use rota_proto::staff::{Empty, IdRequest, LendingActionRequest, ListRequest};

use super::or_empty;
use crate::LendingCmd;
use crate::context::{Ctx, RpcResult};
use crate::output::{
    identifiers, lending_brief, lending_json, lending_title, print_fields, print_json, renewal_asked, table, time,
};

/// A date as sent to the node: `YYYY-MM-DD`, or empty for the node's default.
fn date(d: Option<chrono::NaiveDate>) -> String {
    d.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// Send one staff action on a lending request and print the request as it now is.
async fn action(ctx: &Ctx, request: LendingActionRequest) -> anyhow::Result<()> {
    let mut node = ctx.connect().await?;
    let r = node.client.lending_action(request).await.rpc(&node.url)?;
    if ctx.json {
        return print_json(&lending_json(&r));
    }
    print_fields(&lending_brief(&r));
    Ok(())
}

fn request(id: String, action: &str) -> LendingActionRequest {
    LendingActionRequest { id, action: action.to_owned(), ..Default::default() }
}

pub async fn run(ctx: &Ctx, cmd: LendingCmd) -> anyhow::Result<()> {
    match cmd {
        LendingCmd::List { status, limit } => {
            let mut node = ctx.connect().await?;
            let request = ListRequest { status: or_empty(status), limit };
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
                    lending_title(r),
                    r.item_barcode.clone(),
                    r.item_call_number.clone(),
                    r.item_location.clone(),
                    time(r.created_at_unix_ms),
                ]);
            }
            println!("{t}");
            crate::output::note_if_cut(list.requests.len(), limit);
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
                ("due date", r.due_date.clone()),
                ("renewal asked", renewal_asked(&r)),
                ("unfilled because", r.reason_unfilled.clone()),
                ("created", time(r.created_at_unix_ms)),
                ("updated", time(r.updated_at_unix_ms)),
            ]);
            crate::output::print_timeline(&r.timeline);
        }
        LendingCmd::PickList => {
            let mut node = ctx.connect().await?;
            let list = node.client.pick_list(Empty {}).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&list.requests.iter().map(lending_json).collect());
            }
            if list.requests.is_empty() {
                println!("Nothing to pull from the shelf.");
                return Ok(());
            }
            // In the node's order: sorted by location, then call number.
            let mut t = table(["location", "call number", "barcode", "title", "borrower", "request"]);
            for r in &list.requests {
                t.add_row([
                    r.item_location.clone(),
                    r.item_call_number.clone(),
                    r.item_barcode.clone(),
                    lending_title(r),
                    r.borrower.clone(),
                    r.id.clone(),
                ]);
            }
            println!("{t}");
            println!("\nShip each with:\n  rota lending ship ID");
        }
        LendingCmd::Ship { id, due, note } => {
            let request = LendingActionRequest { due: date(due), note: or_empty(note), ..request(id, "ship") };
            return action(ctx, request).await;
        }
        LendingCmd::CheckIn { id } => return action(ctx, request(id, "check-in")).await,
        LendingCmd::Reject { id, reason, note } => {
            let request = LendingActionRequest {
                reason: reason.code().to_owned(),
                note: or_empty(note),
                ..request(id, "reject")
            };
            return action(ctx, request).await;
        }
        LendingCmd::Condition { id, code, note } => {
            let request = LendingActionRequest { code, note, ..request(id, "condition") };
            return action(ctx, request).await;
        }
        LendingCmd::RenewAnswer { id, answer, due } => {
            if !answer && due.is_some() {
                crate::usage_error("--due goes only with a yes: a refused renewal keeps the current due date");
            }
            let answer = if answer { "yes" } else { "no" }.to_owned();
            let request = LendingActionRequest { answer, due: date(due), ..request(id, "renew-answer") };
            return action(ctx, request).await;
        }
        LendingCmd::Recall { id, note } => {
            let request = LendingActionRequest { note: or_empty(note), ..request(id, "recall") };
            return action(ctx, request).await;
        }
    }
    Ok(())
}
