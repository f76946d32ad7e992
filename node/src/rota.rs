//! The rota engine (DESIGN §5): which partners a request is sent to, and in what order.
//!
//! 1. Candidates are active partners whose agreement lets us borrow, that are not in a
//!    closure period and not at their maximum outstanding loans to us.
//! 2. They are grouped by tier (consortium → p2p → last_resort) and ordered within a tier
//!    by the node's strategy: `priority`, `balance` or `performance`.
//! 3. Every candidate of a tier is asked Locate in parallel, each with a timeout. A lender
//!    that does not hold the item or never lends it (NotHeld, NonCirculating,
//!    NotAvailableForILL) is dropped. One whose copy is only out now (NotOnShelf) or whose
//!    terms say no today (PolicyProblem) stays, and is asked in its turn: it will answer for
//!    itself. One that cannot be reached is kept but moved to the end of its tier.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::domain::{Citation, Item, ItemStatus, PartnerStatus, ReasonUnfilled, Strategy, Symbol, Tier};
use crate::error::Result;
use crate::lifecycle::{PartnerStats, median};
use crate::machine::SlotOutcome;
use crate::node::{LocateAnswer, Node};
use crate::store::{RotaEntry, Store};

/// Asks a partner's node Locate. Implemented by the transport.
pub trait Locator: Send + Sync + std::fmt::Debug {
    fn locate<'a>(&'a self, partner: &'a Symbol, citation: &'a Citation)
    -> BoxFuture<'a, Result<LocateAnswer, String>>;
}

/// What Locate said about a lender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocateResult {
    Available,
    NotAvailable,
    Unreachable,
    /// Left out before locating (closed, suspended, at its maximum, no agreement).
    NotAsked,
}

impl LocateResult {
    pub fn as_str(self) -> &'static str {
        match self {
            LocateResult::Available => "available",
            LocateResult::NotAvailable => "not_available",
            LocateResult::Unreachable => "unreachable",
            LocateResult::NotAsked => "not_asked",
        }
    }
}

/// One partner's place in a planned rota.
#[derive(Clone, Debug)]
pub struct Planned {
    pub partner: Symbol,
    pub tier: Tier,
    pub priority: u32,
    pub included: bool,
    pub locate: LocateResult,
    pub reason: String,
    pub copies: u32,
}

impl Planned {
    fn entry(&self) -> RotaEntry {
        RotaEntry {
            partner: self.partner.clone(),
            tier: self.tier,
            priority: self.priority,
            outcome: SlotOutcome::Pending,
            reason: None,
        }
    }
}

/// The rota for a request: the lenders to ask, in order.
pub fn rota_of(plan: &[Planned]) -> Vec<RotaEntry> {
    plan.iter().filter(|p| p.included).map(Planned::entry).collect()
}

fn excluded(partner: Symbol, tier: Tier, priority: u32, reason: String) -> Planned {
    Planned { partner, tier, priority, included: false, locate: LocateResult::NotAsked, reason, copies: 0 }
}

/// Order within a tier, per strategy. `stats` are our figures per partner.
fn compare(strategy: Strategy, stats: &HashMap<String, PartnerStats>, a: &Planned, b: &Planned) -> Ordering {
    let sa = stats.get(a.partner.as_str());
    let sb = stats.get(b.partner.as_str());
    let by_priority = (a.priority, &a.partner).cmp(&(b.priority, &b.partner));
    match strategy {
        Strategy::Priority => by_priority,
        Strategy::Balance => {
            // What they lent us relative to what we lent them: ask the least burdened first.
            let ratio = |s: Option<&PartnerStats>| s.map_or(0.0, |s| s.borrowed as f64 / (s.lent as f64 + 1.0));
            ratio(sa).total_cmp(&ratio(sb)).then(by_priority)
        }
        Strategy::Performance => {
            let fill = |s: Option<&PartnerStats>| s.map_or(0.0, PartnerStats::fill_rate);
            let speed = |s: Option<&PartnerStats>| {
                s.map(|s| median(&s.created_to_shipped_s)).filter(|m| *m > 0.0).unwrap_or(f64::INFINITY)
            };
            fill(sb).total_cmp(&fill(sa)).then(speed(sa).total_cmp(&speed(sb))).then(by_priority)
        }
    }
}

impl Node {
    /// Our own available copies of a citation.
    pub async fn local_copies(&self, c: &Citation) -> Result<Vec<Item>> {
        let mut conn = self.store.read_conn().await?;
        Ok(Store::matching_items(&mut conn, c)
            .await?
            .into_iter()
            .filter(|i| i.status == ItemStatus::Available)
            .collect())
    }

    /// Plan the rota for `c`: included lenders first, in the order they would be asked,
    /// then the ones left out, each with its reason.
    pub async fn plan_rota(&self, c: &Citation) -> Result<Vec<Planned>> {
        let today = self.clock.now().date_naive();
        let mut out_of_rota = vec![];
        let mut tiers: [Vec<Planned>; 3] = Default::default();
        for p in self.store.partners().await? {
            let (sym, tier, prio) = (p.symbol.clone(), p.tier, p.priority);
            if p.status != PartnerStatus::Active {
                out_of_rota.push(excluded(sym, tier, prio, "suspended".into()));
                continue;
            }
            let a = self.store.agreement(&sym).await?;
            if !a.configured || !a.borrow {
                out_of_rota.push(excluded(sym, tier, prio, "our agreement does not borrow from it".into()));
                continue;
            }
            if let Some(cl) = self.store.closures(&sym, today).await?.into_iter().find(|cl| cl.covers(today)) {
                out_of_rota.push(excluded(sym, tier, prio, format!("closed from {} to {}", cl.from, cl.to)));
                continue;
            }
            let outstanding = self.store.outstanding_from(&sym).await?;
            if outstanding >= a.max_outstanding {
                out_of_rota.push(excluded(
                    sym,
                    tier,
                    prio,
                    format!("at its maximum of {} outstanding loans to us", a.max_outstanding),
                ));
                continue;
            }
            tiers[usize::from(tier.rank())].push(Planned {
                partner: sym,
                tier,
                priority: prio,
                included: true,
                locate: LocateResult::NotAsked,
                reason: String::new(),
                copies: 0,
            });
        }
        let strategy = self.config.strategy;
        let stats: HashMap<String, PartnerStats> = if strategy == Strategy::Priority {
            HashMap::new()
        } else {
            self.stats(None).await?.0.into_iter().filter_map(|s| s.partner.clone().map(|p| (p, s))).collect()
        };
        let mut plan = vec![];
        for mut tier in tiers {
            tier.sort_by(|a, b| compare(strategy, &stats, a, b));
            let answers = futures::future::join_all(tier.iter().map(|p| self.locate_one(&p.partner, c))).await;
            let mut reachable = vec![];
            let mut unreachable = vec![];
            for (mut p, answer) in tier.into_iter().zip(answers) {
                match answer {
                    Ok(a) if a.available => {
                        p.locate = LocateResult::Available;
                        p.copies = a.copies;
                        reachable.push(p);
                    }
                    Ok(a) => {
                        p.locate = LocateResult::NotAvailable;
                        p.reason = a.reason.map(|r| r.to_string()).unwrap_or_else(|| "not available".into());
                        if matches!(
                            a.reason,
                            Some(
                                ReasonUnfilled::NotHeld
                                    | ReasonUnfilled::NonCirculating
                                    | ReasonUnfilled::NotAvailableForIll
                            ) | None
                        ) {
                            p.included = false;
                            out_of_rota.push(p);
                        } else {
                            reachable.push(p);
                        }
                    }
                    Err(e) => {
                        p.locate = LocateResult::Unreachable;
                        p.reason = format!("unreachable ({e}); asked last in its tier");
                        unreachable.push(p);
                    }
                }
            }
            plan.extend(reachable);
            plan.extend(unreachable);
        }
        plan.extend(out_of_rota);
        Ok(plan)
    }

    async fn locate_one(&self, partner: &Symbol, c: &Citation) -> Result<LocateAnswer, String> {
        let Some(locator) = self.locator() else { return Err("no transport".into()) };
        match tokio::time::timeout(self.config.locate_timeout, locator.locate(partner, c)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", self.config.locate_timeout.as_millis())),
        }
    }
}

/// Shared handle type for a locator.
pub type SharedLocator = Arc<dyn Locator>;

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(p: &str, priority: u32) -> Planned {
        Planned {
            partner: Symbol::parse(p).unwrap(),
            tier: Tier::P2p,
            priority,
            included: true,
            locate: LocateResult::NotAsked,
            reason: String::new(),
            copies: 0,
        }
    }

    fn stats(requests: u64, filled: u64, lent: u64, borrowed: u64, shipped_after: &[f64]) -> PartnerStats {
        PartnerStats {
            requests,
            filled,
            lent,
            borrowed,
            created_to_shipped_s: shipped_after.to_vec(),
            ..Default::default()
        }
    }

    fn order(strategy: Strategy, stats: &HashMap<String, PartnerStats>) -> Vec<String> {
        let mut v = [planned("AAA", 1), planned("BBB", 2), planned("CCC", 3)];
        v.sort_by(|a, b| compare(strategy, stats, a, b));
        v.iter().map(|p| p.partner.to_string()).collect()
    }

    #[test]
    fn strategies_order_lenders_within_a_tier() {
        let mut s = HashMap::new();
        // AAA lent us much and we lent it little; BBB fills everything fast; CCC fills half, slowly.
        s.insert("AAA".to_owned(), stats(10, 5, 0, 9, &[86_400.0]));
        s.insert("BBB".to_owned(), stats(4, 4, 3, 2, &[3_600.0]));
        s.insert("CCC".to_owned(), stats(4, 2, 5, 0, &[172_800.0]));
        assert_eq!(order(Strategy::Priority, &s), ["AAA", "BBB", "CCC"]);
        assert_eq!(order(Strategy::Balance, &s), ["CCC", "BBB", "AAA"]);
        assert_eq!(order(Strategy::Performance, &s), ["BBB", "AAA", "CCC"]);
        // Equal fill rate: the faster lender first.
        s.insert("CCC".to_owned(), stats(10, 5, 0, 0, &[3_600.0]));
        assert_eq!(order(Strategy::Performance, &s), ["BBB", "CCC", "AAA"]);
    }
}
