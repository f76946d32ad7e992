//! `rota todo` and `rota stats`: what needs a person, and how the partnerships are going.

use rota_proto::staff::{Empty, PartnerStats, StatsRequest};
use serde_json::json;

use super::or_empty;
use crate::context::{Ctx, RpcResult};
use crate::duration::format_span;
use crate::output::{percent, print_json, stats_json, table, time, todo_json};

pub async fn todo(ctx: &Ctx) -> anyhow::Result<()> {
    let mut node = ctx.connect().await?;
    let reply = node.client.todo(Empty {}).await.rpc(&node.url)?;
    if ctx.json {
        return print_json(&reply.items.iter().map(todo_json).collect());
    }
    if reply.items.is_empty() {
        println!("Nothing to do: no request is waiting for staff.");
        return Ok(());
    }
    let mut t = table(["side", "id", "state", "what to do", "title", "partner", "since"]);
    for i in &reply.items {
        t.add_row([
            i.side.clone(),
            i.id.clone(),
            i.state.clone(),
            i.action.clone(),
            i.title.clone(),
            i.partner.clone(),
            time(i.since_unix_ms),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn stats_row(name: String, p: &PartnerStats) -> [String; 9] {
    [
        name,
        p.requests.to_string(),
        p.filled.to_string(),
        percent(p.fill_rate, p.requests),
        format_span(p.created_to_shipped_s),
        format_span(p.shipped_to_received_s),
        format_span(p.loaned_to_returned_s),
        p.lent.to_string(),
        p.borrowed.to_string(),
    ]
}

pub async fn stats(ctx: &Ctx, partner: Option<String>) -> anyhow::Result<()> {
    let mut node = ctx.connect().await?;
    let reply = node.client.stats(StatsRequest { partner: or_empty(partner) }).await.rpc(&node.url)?;
    if ctx.json {
        return print_json(&json!({
            "partners": reply.partners.iter().map(stats_json).collect::<Vec<_>>(),
            "overall": reply.overall.as_ref().map(stats_json),
        }));
    }
    if reply.partners.is_empty() && reply.overall.is_none() {
        println!("No statistics yet.");
        return Ok(());
    }
    let mut t = table([
        "partner",
        "requests",
        "filled",
        "fill rate",
        "created→shipped",
        "shipped→received",
        "loaned→returned",
        "lent",
        "borrowed",
    ]);
    for p in &reply.partners {
        t.add_row(stats_row(p.partner.clone(), p));
    }
    if let Some(overall) = &reply.overall {
        t.add_row(stats_row("all partners".to_owned(), overall));
    }
    println!("{t}");
    println!("\nrequests and filled count what you asked each partner for; times are medians.");
    Ok(())
}
