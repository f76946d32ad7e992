//! `rota partner …`.

use anyhow::{anyhow, bail};
use rota_certs::Card;
use rota_certs::card::normalise_fingerprint;
use rota_proto::staff::{AddPartnerRequest, ClosePartnerRequest, Empty, SetPartnerStatusRequest, SymbolRequest};

use super::or_empty;

use crate::PartnerCmd;
use crate::context::{Ctx, RpcResult};
use crate::output::{agreement_json, formats, partner_json, print_fields, print_json, print_partner, table, yes_no};

pub async fn run(ctx: &Ctx, cmd: PartnerCmd) -> anyhow::Result<()> {
    match cmd {
        PartnerCmd::Add { card, tier, priority, fingerprint } => {
            let text =
                std::fs::read_to_string(&card).map_err(|e| anyhow!("cannot read card file {}: {e}", card.display()))?;
            let parsed = Card::parse(&text).map_err(|e| anyhow!("{}: not a valid card: {e}", card.display()))?;
            let actual = parsed.fingerprint();
            let intro = format!(
                "Partner card: {} ({}) at {}\nFingerprint: {actual}",
                parsed.symbol, parsed.name, parsed.endpoint
            );
            if ctx.json {
                eprintln!("{intro}")
            } else {
                println!("{intro}")
            }
            let expected = match fingerprint {
                Some(given) => {
                    let given = normalise_fingerprint(&given);
                    if given != normalise_fingerprint(&actual) {
                        bail!(
                            "fingerprint mismatch: you expected {given} but the card {} has {actual}; \
                             do not add this card until you have checked it with the partner",
                            card.display()
                        );
                    }
                    given
                }
                None => String::new(),
            };
            let mut node = ctx.connect().await?;
            let request = AddPartnerRequest { card_text: text, tier, priority, expected_fingerprint: expected };
            let partner = node.client.add_partner(request).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&partner_json(&partner));
            }
            println!();
            print_partner(&partner);
            println!("\nNext, say what you lend to and borrow from it, e.g.:");
            println!("  rota agreement set {} --lend yes --borrow yes", partner.symbol);
        }
        PartnerCmd::List => {
            let mut node = ctx.connect().await?;
            let list = node.client.list_partners(Empty {}).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&list.partners.iter().map(partner_json).collect());
            }
            if list.partners.is_empty() {
                println!("No partners yet. Add one from its card with `rota partner add CARD_FILE --tier p2p`.");
                return Ok(());
            }
            let mut t = table(["symbol", "name", "tier", "priority", "status", "lend", "borrow", "pending"]);
            for p in &list.partners {
                let (lend, borrow) = match &p.agreement {
                    Some(a) if a.configured => (yes_no(a.lend), yes_no(a.borrow)),
                    _ => ("-".to_owned(), "-".to_owned()),
                };
                t.add_row([
                    p.symbol.clone(),
                    p.name.clone(),
                    p.tier.clone(),
                    p.priority.to_string(),
                    p.status.clone(),
                    lend,
                    borrow,
                    p.pending_messages.to_string(),
                ]);
            }
            println!("{t}");
        }
        PartnerCmd::Show { symbol } => {
            let mut node = ctx.connect().await?;
            let p = node.client.get_partner(SymbolRequest { symbol }).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&partner_json(&p));
            }
            print_partner(&p);
        }
        PartnerCmd::Suspend { symbol } => set_status(ctx, symbol, "suspended").await?,
        PartnerCmd::Resume { symbol } => set_status(ctx, symbol, "active").await?,
        PartnerCmd::Close { symbol, from, to, note } => {
            if to < from {
                crate::usage_error(format!(
                    "--to {to} is before --from {from}: a closure runs from its first day to its last"
                ));
            }
            let mut node = ctx.connect().await?;
            let request = ClosePartnerRequest {
                symbol,
                from: from.format("%Y-%m-%d").to_string(),
                to: to.format("%Y-%m-%d").to_string(),
                note: or_empty(note),
            };
            let p = node.client.close_partner(request).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&partner_json(&p));
            }
            println!("partner {} ({}) is left out of new rotas from {from} to {to}\n", p.symbol, p.name);
            print_partner(&p);
        }
        PartnerCmd::Check { symbol } => check(ctx, symbol).await?,
        PartnerCmd::Remove { symbol } => {
            let mut node = ctx.connect().await?;
            let p = node.client.remove_partner(SymbolRequest { symbol }).await.rpc(&node.url)?;
            if ctx.json {
                return print_json(&partner_json(&p));
            }
            println!("removed partner {} ({})", p.symbol, p.name);
        }
    }
    Ok(())
}

async fn set_status(ctx: &Ctx, symbol: String, status: &str) -> anyhow::Result<()> {
    let mut node = ctx.connect().await?;
    let request = SetPartnerStatusRequest { symbol, status: status.to_owned() };
    let p = node.client.set_partner_status(request).await.rpc(&node.url)?;
    if ctx.json {
        return print_json(&partner_json(&p));
    }
    println!("partner {} ({}) is now {}", p.symbol, p.name, p.status);
    Ok(())
}

async fn check(ctx: &Ctx, symbol: String) -> anyhow::Result<()> {
    let mut node = ctx.connect().await?;
    let c = node.client.check_partner(SymbolRequest { symbol }).await.rpc(&node.url)?;
    if ctx.json {
        print_json(&serde_json::json!({
            "partner": c.partner,
            "reachable": c.reachable,
            "error": c.error,
            "protocol_version": c.protocol_version,
            "name": c.name,
            "round_trip_ms": c.round_trip_ms,
            "ours": c.ours.as_ref().map(agreement_json),
            "theirs": c.theirs.as_ref().map(agreement_json),
            "problems": c.problems,
        }))?;
    } else {
        print_check(&c);
    }
    if !c.reachable {
        bail!("{} could not be reached: {}", c.partner, c.error);
    }
    if !c.problems.is_empty() {
        let n = c.problems.len();
        bail!("{n} problem{} with {}: see above", if n == 1 { "" } else { "s" }, c.partner);
    }
    Ok(())
}

fn print_check(c: &rota_proto::staff::PartnerCheck) {
    if !c.reachable {
        print_fields(&[("partner", c.partner.clone()), ("reachable", format!("no: {}", c.error))]);
        return;
    }
    print_fields(&[
        ("partner", format!("{} ({})", c.partner, c.name)),
        ("reachable", format!("yes, in {} ms", c.round_trip_ms)),
        ("protocol", c.protocol_version.clone()),
    ]);
    let (Some(ours), Some(theirs)) = (&c.ours, &c.theirs) else { return };
    let terms = |a: &rota_proto::staff::Agreement| -> [String; 7] {
        if !a.configured {
            return std::array::from_fn(|i| if i == 0 { "no agreement yet".to_owned() } else { "-".to_owned() });
        }
        [
            yes_no(a.lend),
            yes_no(a.borrow),
            a.loan_days.to_string(),
            a.renewals.to_string(),
            a.max_outstanding.to_string(),
            formats(&a.formats),
            crate::duration::format_duration(a.expiry_seconds),
        ]
    };
    let mut t = table(["", "you", c.partner.as_str()]);
    let labels = [
        "lends to the other",
        "borrows from the other",
        "loan days",
        "renewals",
        "max outstanding",
        "formats lent",
        "expiry",
    ];
    for ((label, you), them) in labels.iter().zip(terms(ours)).zip(terms(theirs)) {
        t.add_row([label.to_string(), you, them]);
    }
    println!("\n{t}");
    if c.problems.is_empty() {
        println!("\nThe two agreements fit together.");
    } else {
        println!("\nProblems:");
        for p in &c.problems {
            println!("  - {p}");
        }
    }
}
