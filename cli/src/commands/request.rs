//! `rota request …`: borrowing requests.

use rota_proto::staff::{
    BorrowingActionRequest, Citation, CreateRequestRequest, IdRequest, ListRequest, PreviewRequest,
};

use super::or_empty;
use crate::context::{Ctx, RpcResult};
use crate::output::{
    borrowing_brief, borrowing_json, current_lender, identifiers, local_copies_warning, preview_json, preview_table,
    print_fields, print_json, rota_table, table, time,
};
use crate::{PreviewArgs, RequestCmd};

/// Send one staff action on a borrowing request and print the request as it now is.
async fn action(ctx: &Ctx, request: BorrowingActionRequest) -> anyhow::Result<()> {
    let mut node = ctx.connect().await?;
    let r = node.client.borrowing_action(request).await.rpc(&node.url)?;
    if ctx.json {
        return print_json(&borrowing_json(&r));
    }
    print_fields(&borrowing_brief(&r));
    Ok(())
}

/// An action that takes nothing but the request id.
fn plain(id: String, action: &str) -> BorrowingActionRequest {
    BorrowingActionRequest { id, action: action.to_owned(), ..Default::default() }
}

pub async fn run(ctx: &Ctx, cmd: RequestCmd) -> anyhow::Result<()> {
    match cmd {
        RequestCmd::Create(a) => {
            let request = CreateRequestRequest {
                citation: Some(Citation {
                    title: a.title,
                    author: or_empty(a.author),
                    isbn: or_empty(a.isbn),
                    issn: or_empty(a.issn),
                    oclc: or_empty(a.oclc),
                    lccn: or_empty(a.lccn),
                    format: a.format,
                }),
                patron_id: a.patron,
                note: or_empty(a.note),
                need_before: a.need_before.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default(),
                force: a.force,
            };
            let mut node = ctx.connect().await?;
            let r = node.client.create_request(request).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&borrowing_json(&r));
            }
            let rota = if r.rota.is_empty() {
                "empty: no active partner has an agreement that lets us borrow from it".to_owned()
            } else {
                r.rota.iter().map(|e| e.partner.as_str()).collect::<Vec<_>>().join(" → ")
            };
            print_fields(&[
                ("id", r.id.clone()),
                ("state", r.state.clone()),
                ("title", r.citation.as_ref().map(|c| c.title.clone()).unwrap_or_default()),
                ("rota", rota),
                ("asking now", r.rota.get(r.position as usize).map(|e| e.partner.clone()).unwrap_or_default()),
                ("supplier", r.supplier.clone()),
            ]);
            println!("\nFollow it with:\n  rota request show {}", r.id);
        }
        RequestCmd::List { status, limit } => {
            let mut node = ctx.connect().await?;
            let request = ListRequest { status: or_empty(status), limit };
            let list = node.client.list_requests(request).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&list.requests.iter().map(borrowing_json).collect());
            }
            if list.requests.is_empty() {
                println!("No borrowing requests.");
                return Ok(());
            }
            let mut t = table(["id", "state", "title", "lender", "created"]);
            for r in &list.requests {
                t.add_row([
                    r.id.clone(),
                    r.state.clone(),
                    r.citation.as_ref().map(|c| c.title.clone()).unwrap_or_default(),
                    current_lender(r),
                    time(r.created_at_unix_ms),
                ]);
            }
            println!("{t}");
            crate::output::note_if_cut(list.requests.len(), limit);
        }
        RequestCmd::Show { id } => {
            let mut node = ctx.connect().await?;
            let r = node.client.get_request(IdRequest { id }).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&borrowing_json(&r));
            }
            let c = r.citation.clone().unwrap_or_default();
            print_fields(&[
                ("id", r.id.clone()),
                ("state", r.state.clone()),
                ("title", c.title.clone()),
                ("author", c.author.clone()),
                ("identifiers", identifiers(&c)),
                ("format", c.format.clone()),
                ("patron", r.patron_id.clone()),
                ("note", r.note.clone()),
                ("need before", r.need_before.clone()),
                ("supplier", r.supplier.clone()),
                ("supplier item", r.supplier_item.clone()),
                ("due date", r.due_date.clone()),
                ("created", time(r.created_at_unix_ms)),
                ("updated", time(r.updated_at_unix_ms)),
            ]);
            println!("\nRota:");
            if r.rota.is_empty() {
                println!("(empty: no partner could be asked)");
            } else {
                println!("{}", rota_table(&r));
            }
            crate::output::print_timeline(&r.timeline);
        }
        RequestCmd::Receive { id, barcode } => {
            let request = BorrowingActionRequest {
                id,
                action: "receive".to_owned(),
                barcode: or_empty(barcode),
                ..Default::default()
            };
            return action(ctx, request).await;
        }
        RequestCmd::Cancel { id, reason } => {
            let request = BorrowingActionRequest { id, action: "cancel".to_owned(), reason, ..Default::default() };
            return action(ctx, request).await;
        }
        RequestCmd::Loan { id } => return action(ctx, plain(id, "loan")).await,
        RequestCmd::Return { id } => return action(ctx, plain(id, "return")).await,
        RequestCmd::ShipReturn { id } => return action(ctx, plain(id, "ship-return")).await,
        RequestCmd::Renew { id } => return action(ctx, plain(id, "renew")).await,
        RequestCmd::Accept { id } => return action(ctx, plain(id, "accept")).await,
        RequestCmd::Decline { id } => return action(ctx, plain(id, "decline")).await,
        RequestCmd::Lost { id } => return action(ctx, plain(id, "lost")).await,
    }
    Ok(())
}

/// `rota preview`: the rota a request for this citation would get. Nothing is sent to lenders.
pub async fn preview(ctx: &Ctx, a: PreviewArgs) -> anyhow::Result<()> {
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    if [&a.title, &a.isbn, &a.oclc, &a.lccn, &a.issn].into_iter().all(blank) {
        crate::usage_error("give a --title or at least one identifier (--isbn, --oclc, --lccn, --issn)");
    }
    let citation = Citation {
        title: or_empty(a.title),
        author: or_empty(a.author),
        isbn: or_empty(a.isbn),
        issn: or_empty(a.issn),
        oclc: or_empty(a.oclc),
        lccn: or_empty(a.lccn),
        format: a.format,
    };
    let mut node = ctx.connect().await?;
    let r = node.client.preview(PreviewRequest { citation: Some(citation) }).await.rpc(&node.url)?;
    if ctx.json {
        return print_json(&preview_json(&r));
    }
    print_fields(&[("strategy", r.strategy.clone())]);
    if let Some(warning) = local_copies_warning(&r) {
        println!("{warning}");
    }
    if r.entries.is_empty() {
        println!("\nNo partners to ask: add one with `rota partner add CARD_FILE --tier p2p`.");
        return Ok(());
    }
    println!("{}", preview_table(&r));
    if !r.entries.iter().any(|e| e.included) {
        println!("No partner would be asked: a request would be unfilled at once.");
    }
    Ok(())
}
