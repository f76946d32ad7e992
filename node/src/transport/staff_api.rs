//! The staff API adapter: CLI RPCs → [`Node`].

use std::sync::Arc;

use futures::StreamExt;
use rota_proto::staff as pb;
use rota_proto::staff::staff_server::Staff;
use tonic::{Request, Response, Status, Streaming};

use crate::domain::{FieldError, PartnerStatus, ReasonUnfilled, Symbol, Tier, check_date};
use crate::import::{ImportMode, IncomingRow};
use crate::machine::{BorrowingState, LendingState};
use crate::node::{AgreementPatch, NewRequest, Node};
use crate::transport::convert;
use crate::transport::server::staff_user;
use crate::transport::status::invalid;

pub struct StaffApi {
    node: Arc<Node>,
    identity: crate::transport::server::OwnIdentity,
}

/// Drops an import's staging rows if its handler is dropped before the import finished:
/// when the client goes away (Ctrl-C, a lost connection), the server drops the handler
/// rather than handing it an error, so the clean-up cannot wait for one.
struct AbortOnDrop {
    node: Arc<Node>,
    id: Option<String>,
}

impl AbortOnDrop {
    fn disarm(mut self) {
        self.id = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let node = self.node.clone();
            tokio::spawn(async move {
                node.import_abort(&id).await;
                tracing::info!(import = %id, "holdings import cut off by the client; nothing applied");
            });
        }
    }
}

impl StaffApi {
    pub fn new(node: Arc<Node>, identity: crate::transport::server::OwnIdentity) -> Self {
        StaffApi { node, identity }
    }
}

fn symbol(field: &str, s: &str) -> Result<Symbol, Status> {
    Symbol::parse(s).map_err(|e| invalid(FieldError::new(field, e.to_string())))
}

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Staff for StaffApi {
    async fn node_info(&self, req: Request<pb::Empty>) -> R<pb::NodeInfoReply> {
        let user = staff_user(&req)?;
        let n = &self.node;
        Ok(Response::new(pb::NodeInfoReply {
            symbol: n.symbol().to_string(),
            name: n.config.name.clone(),
            public_url: n.config.public_url.clone(),
            staff_user: user.to_string(),
            version: env!("CARGO_PKG_VERSION").into(),
            fingerprint: n.card().fingerprint(),
        }))
    }

    async fn export_card(&self, req: Request<pb::Empty>) -> R<pb::Card> {
        staff_user(&req)?;
        let c = self.node.card();
        Ok(Response::new(pb::Card {
            text: c.to_text(),
            symbol: c.symbol.to_string(),
            name: c.name.clone(),
            endpoint: c.endpoint.clone(),
            fingerprint: c.fingerprint(),
        }))
    }

    async fn add_partner(&self, req: Request<pb::AddPartnerRequest>) -> R<pb::Partner> {
        let user = staff_user(&req)?;
        let pb::AddPartnerRequest { card_text, tier, priority, expected_fingerprint } = req.into_inner();
        let tier = Tier::parse_field(&tier, "tier").map_err(invalid)?;
        let v = self.node.add_partner(&user, &card_text, tier, priority, Some(&expected_fingerprint)).await?;
        Ok(Response::new(convert::partner_to_proto(&v)))
    }

    async fn list_partners(&self, req: Request<pb::Empty>) -> R<pb::PartnerList> {
        staff_user(&req)?;
        let partners = self.node.partners().await?;
        Ok(Response::new(pb::PartnerList { partners: partners.iter().map(convert::partner_to_proto).collect() }))
    }

    async fn get_partner(&self, req: Request<pb::SymbolRequest>) -> R<pb::Partner> {
        staff_user(&req)?;
        let sym = symbol("symbol", &req.into_inner().symbol)?;
        Ok(Response::new(convert::partner_to_proto(&self.node.partner(&sym).await?)))
    }

    async fn set_partner_status(&self, req: Request<pb::SetPartnerStatusRequest>) -> R<pb::Partner> {
        let user = staff_user(&req)?;
        let pb::SetPartnerStatusRequest { symbol: s, status } = req.into_inner();
        let sym = symbol("symbol", &s)?;
        let status = PartnerStatus::parse_field(&status, "status").map_err(invalid)?;
        Ok(Response::new(convert::partner_to_proto(&self.node.set_partner_status(&user, &sym, status).await?)))
    }

    async fn remove_partner(&self, req: Request<pb::SymbolRequest>) -> R<pb::Partner> {
        let user = staff_user(&req)?;
        let sym = symbol("symbol", &req.into_inner().symbol)?;
        Ok(Response::new(convert::partner_to_proto(&self.node.remove_partner(&user, &sym).await?)))
    }

    async fn issue_staff(&self, req: Request<pb::IssueStaffRequest>) -> R<pb::IssuedStaff> {
        let by = staff_user(&req)?;
        let pb::IssueStaffRequest { user, csr_pem } = req.into_inner();
        let cert_pem = self.node.issue_staff(&by, &user, &csr_pem)?;
        Ok(Response::new(pb::IssuedStaff {
            user,
            cert_pem,
            ca_pem: self.node.card().ca_pem.clone(),
            symbol: self.node.symbol().to_string(),
            node_url: self.node.config.public_url.clone(),
        }))
    }

    async fn add_item(&self, req: Request<pb::Item>) -> R<pb::Item> {
        staff_user(&req)?;
        let item = convert::item_from_proto(req.into_inner()).map_err(invalid)?;
        let (_, item) = self.node.add_item(&item).await?;
        Ok(Response::new(convert::item_to_proto(&item)))
    }

    async fn import(&self, req: Request<Streaming<pb::ImportMessage>>) -> R<pb::ImportReport> {
        let user = staff_user(&req)?;
        let mut stream = req.into_inner();
        let start = match stream.next().await {
            Some(Ok(pb::ImportMessage { body: Some(pb::import_message::Body::Start(s)) })) => s,
            Some(Err(e)) => return Err(e),
            _ => return Err(Status::invalid_argument("the first message of an import must be ImportStart")),
        };
        let pb::ImportStart { mode, dry_run } = start;
        let mode = if mode.is_empty() {
            ImportMode::Upsert
        } else {
            ImportMode::parse_field(&mode, "mode").map_err(invalid)?
        };
        let mut session = self.node.import_begin(mode, dry_run).await?;
        let id = session.id.clone();
        let guard = AbortOnDrop { node: self.node.clone(), id: Some(id.clone()) };
        tracing::info!(import = %id, staff = %user, %mode, dry_run, "holdings import started");
        let fed: Result<(), Status> = async {
            while let Some(msg) = stream.next().await {
                let rows = match msg?.body {
                    Some(pb::import_message::Body::Batch(b)) => b.rows,
                    _ => {
                        return Err(Status::invalid_argument(
                            "after ImportStart, only ImportBatch messages may follow",
                        ));
                    }
                };
                let rows: Vec<IncomingRow> = rows.into_iter().map(convert::incoming_row).collect();
                self.node.import_rows(&mut session, rows).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = fed {
            // Cut off or refused: nothing is applied.
            guard.disarm();
            self.node.import_abort(&id).await;
            tracing::info!(import = %id, error = %e, "holdings import abandoned; nothing applied");
            return Err(e);
        }
        // If this is dropped half-way, its transaction rolls back and the guard clears up.
        let report = self.node.import_finish(session).await;
        if report.is_ok() {
            guard.disarm();
        }
        Ok(Response::new(convert::import_report_to_proto(&report?)))
    }

    async fn search_items(&self, req: Request<pb::SearchItemsRequest>) -> R<pb::ItemList> {
        staff_user(&req)?;
        let pb::SearchItemsRequest { query, limit } = req.into_inner();
        let items = self.node.search_items(&query, if limit == 0 { 20 } else { limit }).await?;
        Ok(Response::new(pb::ItemList { items: items.iter().map(convert::item_to_proto).collect() }))
    }

    async fn get_item(&self, req: Request<pb::BarcodeRequest>) -> R<pb::Item> {
        staff_user(&req)?;
        let item = self.node.item(&req.into_inner().barcode).await?;
        Ok(Response::new(convert::item_to_proto(&item)))
    }

    async fn set_agreement(&self, req: Request<pb::SetAgreementRequest>) -> R<pb::Agreement> {
        let user = staff_user(&req)?;
        let pb::SetAgreementRequest {
            partner,
            lend,
            borrow,
            loan_days,
            renewals,
            max_outstanding,
            formats,
            set_formats,
            expiry_seconds,
        } = req.into_inner();
        let sym = symbol("partner", &partner)?;
        let patch = AgreementPatch {
            lend,
            borrow,
            loan_days,
            renewals,
            max_outstanding,
            formats: set_formats.then_some(formats),
            expiry_seconds,
        };
        let a = self.node.set_agreement(&user, &sym, patch).await?;
        Ok(Response::new(convert::staff_agreement(sym.as_str(), &a)))
    }

    async fn get_agreement(&self, req: Request<pb::SymbolRequest>) -> R<pb::Agreement> {
        staff_user(&req)?;
        let sym = symbol("symbol", &req.into_inner().symbol)?;
        let a = self.node.agreement(&sym).await?;
        Ok(Response::new(convert::staff_agreement(sym.as_str(), &a)))
    }

    async fn create_request(&self, req: Request<pb::CreateRequestRequest>) -> R<pb::BorrowingRequest> {
        let user = staff_user(&req)?;
        let pb::CreateRequestRequest { citation, patron_id, note, need_before, force } = req.into_inner();
        let citation = convert::staff_citation_from_proto(
            citation.ok_or_else(|| Status::invalid_argument("citation: is required"))?,
        )
        .map_err(invalid)?;
        let need_before = check_date("need_before", &need_before).map_err(invalid)?;
        let rec = self.node.create_request(&user, NewRequest { citation, patron_id, note, need_before, force }).await?;
        let (rec, tl) = self.node.request(&rec.id).await?;
        Ok(Response::new(convert::borrowing_to_proto(&rec, &tl)))
    }

    async fn list_requests(&self, req: Request<pb::ListRequest>) -> R<pb::BorrowingRequestList> {
        staff_user(&req)?;
        let pb::ListRequest { status, limit } = req.into_inner();
        let state = if status.is_empty() {
            None
        } else {
            Some(BorrowingState::parse_field(&status, "status").map_err(invalid)?)
        };
        let list = self.node.requests(state, if limit == 0 { 100 } else { limit }).await?;
        Ok(Response::new(pb::BorrowingRequestList {
            requests: list.iter().map(|r| convert::borrowing_to_proto(r, &[])).collect(),
        }))
    }

    async fn get_request(&self, req: Request<pb::IdRequest>) -> R<pb::BorrowingRequest> {
        staff_user(&req)?;
        let (rec, tl) = self.node.request(&req.into_inner().id).await?;
        Ok(Response::new(convert::borrowing_to_proto(&rec, &tl)))
    }

    async fn list_lending(&self, req: Request<pb::ListRequest>) -> R<pb::LendingRequestList> {
        staff_user(&req)?;
        let pb::ListRequest { status, limit } = req.into_inner();
        let state =
            if status.is_empty() { None } else { Some(LendingState::parse_field(&status, "status").map_err(invalid)?) };
        let list = self.node.lending_requests(state, if limit == 0 { 100 } else { limit }).await?;
        Ok(Response::new(pb::LendingRequestList {
            requests: list.iter().map(|(r, i)| convert::lending_to_proto(r, i.as_ref(), &[])).collect(),
        }))
    }

    async fn get_lending(&self, req: Request<pb::IdRequest>) -> R<pb::LendingRequest> {
        staff_user(&req)?;
        let (rec, item, tl) = self.node.lending_request(&req.into_inner().id).await?;
        Ok(Response::new(convert::lending_to_proto(&rec, item.as_ref(), &tl)))
    }

    async fn borrowing_action(&self, req: Request<pb::BorrowingActionRequest>) -> R<pb::BorrowingRequest> {
        let user = staff_user(&req)?;
        let pb::BorrowingActionRequest { id, action, barcode, reason } = req.into_inner();
        use crate::machine::BorrowingAction as A;
        let action = match action.as_str() {
            "receive" => A::Receive { barcode: (!barcode.trim().is_empty()).then(|| barcode.trim().to_owned()) },
            "loan" => A::Loan,
            "return" => A::Return,
            "ship-return" => A::ShipReturn,
            "cancel" => {
                A::Cancel { reason: if reason.trim().is_empty() { "cancelled by staff".into() } else { reason } }
            }
            "renew" => A::Renew,
            "accept" => A::Accept,
            "decline" => A::Decline,
            "lost" => A::Lost,
            other => {
                return Err(invalid(FieldError::new(
                    "action",
                    format!(
                        "{other:?} is not one of receive, loan, return, ship-return, cancel, renew, accept, decline, lost"
                    ),
                )));
            }
        };
        let rec = self.node.borrowing_action(&user, &id, action).await?;
        let (rec, tl) = self.node.request(&rec.id).await?;
        Ok(Response::new(convert::borrowing_to_proto(&rec, &tl)))
    }

    async fn lending_action(&self, req: Request<pb::LendingActionRequest>) -> R<pb::LendingRequest> {
        let user = staff_user(&req)?;
        let pb::LendingActionRequest { id, action, due, note, reason, code, answer } = req.into_inner();
        use crate::lifecycle::LendingInput as I;
        let due = check_date("due", &due).map_err(invalid)?;
        let input = match action.as_str() {
            "ship" => I::Ship { due, note },
            "check-in" => I::CheckIn,
            "reject" => {
                I::Reject { reason: ReasonUnfilled::parse_field(reason.trim(), "reason").map_err(invalid)?, note }
            }
            "condition" => I::Condition { code, note },
            "renew-answer" => I::RenewAnswer {
                yes: match answer.as_str() {
                    "yes" => true,
                    "no" => false,
                    other => return Err(invalid(FieldError::new("answer", format!("{other:?} is not yes or no")))),
                },
                due,
            },
            "recall" => I::Recall { note },
            other => {
                return Err(invalid(FieldError::new(
                    "action",
                    format!("{other:?} is not one of ship, check-in, reject, condition, renew-answer, recall"),
                )));
            }
        };
        let rec = self.node.lending_action(&user, &id, input).await?;
        let (rec, item, tl) = self.node.lending_request(&rec.id).await?;
        Ok(Response::new(convert::lending_to_proto(&rec, item.as_ref(), &tl)))
    }

    async fn pick_list(&self, req: Request<pb::Empty>) -> R<pb::LendingRequestList> {
        staff_user(&req)?;
        let list = self.node.pick_list().await?;
        Ok(Response::new(pb::LendingRequestList {
            requests: list.iter().map(|(r, i)| convert::lending_to_proto(r, i.as_ref(), &[])).collect(),
        }))
    }

    async fn todo(&self, req: Request<pb::Empty>) -> R<pb::TodoReply> {
        staff_user(&req)?;
        let items = self.node.todo().await?;
        Ok(Response::new(pb::TodoReply { items: items.iter().map(convert::todo_to_proto).collect() }))
    }

    async fn stats(&self, req: Request<pb::StatsRequest>) -> R<pb::StatsReply> {
        staff_user(&req)?;
        let partner = req.into_inner().partner;
        let only = if partner.is_empty() { None } else { Some(symbol("partner", &partner)?) };
        let (rows, all) = self.node.stats(only.as_ref()).await?;
        Ok(Response::new(pb::StatsReply {
            partners: rows.iter().map(convert::stats_to_proto).collect(),
            overall: Some(convert::stats_to_proto(&all)),
        }))
    }

    async fn check_partner(&self, req: Request<pb::SymbolRequest>) -> R<pb::PartnerCheck> {
        staff_user(&req)?;
        let sym = symbol("symbol", &req.into_inner().symbol)?;
        let view = self.node.partner(&sym).await?;
        let ours = view.agreement.clone();
        let answer = match self.identity.channels.get(&sym) {
            None => Err(format!("{sym} is {}: resume it first with `rota partner resume {sym}`", view.partner.status)),
            Some(channel) => {
                let hello = rota_proto::peer::HelloRequest {
                    protocol_version: rota_proto::PROTOCOL_VERSION.into(),
                    symbol: self.node.symbol().to_string(),
                    agreement: Some(convert::agreement_view(&ours)),
                };
                let started = std::time::Instant::now();
                match rota_proto::peer::peer_client::PeerClient::new(channel).hello(hello).await {
                    Ok(r) => convert::hello_from_proto(r.into_inner(), &sym)
                        .map(|h| (h, u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX)))
                        .map_err(|e| format!("{sym} answered with a malformed Hello: {e}")),
                    Err(s) => Err(format!("{sym} at {} did not answer: {:?}: {}", view.partner.endpoint, s.code(), {
                        s.message().chars().take(300).collect::<String>()
                    })),
                }
            }
        };
        let problems = match &answer {
            Ok((h, _)) => crate::node::partnership_problems(&sym, &ours, h, rota_proto::PROTOCOL_VERSION),
            Err(_) => vec![],
        };
        tracing::info!(partner = %sym, reachable = answer.is_ok(), problems = problems.len(), "partner checked");
        Ok(Response::new(convert::staff_partner_check(&sym, &ours, &answer, problems)))
    }

    async fn close_partner(&self, req: Request<pb::ClosePartnerRequest>) -> R<pb::Partner> {
        let user = staff_user(&req)?;
        let pb::ClosePartnerRequest { symbol: s, from, to, note } = req.into_inner();
        let sym = symbol("symbol", &s)?;
        let from = check_date("from", &from)
            .map_err(invalid)?
            .ok_or_else(|| invalid(FieldError::new("from", "is required")))?;
        let to =
            check_date("to", &to).map_err(invalid)?.ok_or_else(|| invalid(FieldError::new("to", "is required")))?;
        let v = self.node.close_partner(&user, &sym, crate::domain::Closure { from, to, note }).await?;
        Ok(Response::new(convert::partner_to_proto(&v)))
    }

    async fn preview(&self, req: Request<pb::PreviewRequest>) -> R<pb::PreviewReply> {
        staff_user(&req)?;
        let c = req.into_inner().citation.ok_or_else(|| Status::invalid_argument("citation: is required"))?;
        let citation = convert::staff_citation_from_proto(c).map_err(invalid)?;
        let (plan, own) = self.node.preview(&citation).await?;
        Ok(Response::new(pb::PreviewReply {
            entries: plan
                .iter()
                .map(|p| pb::PreviewEntry {
                    partner: p.partner.to_string(),
                    tier: p.tier.to_string(),
                    priority: p.priority,
                    included: p.included,
                    locate: p.locate.as_str().into(),
                    reason: p.reason.clone(),
                    copies: p.copies,
                })
                .collect(),
            local_copies: own.iter().map(|i| i.barcode.clone()).collect(),
            strategy: self.node.config.strategy.to_string(),
        }))
    }

    async fn holdings_stats(&self, req: Request<pb::Empty>) -> R<pb::HoldingsStatsReply> {
        staff_user(&req)?;
        let s = self.node.store.holdings_stats().await.map_err(crate::error::NodeError::from)?;
        let counts = |v: &[(String, u64)]| v.iter().map(|(k, n)| pb::Count { key: k.clone(), count: *n }).collect();
        Ok(Response::new(pb::HoldingsStatsReply {
            items: s.items,
            withdrawn: s.withdrawn,
            by_status: counts(&s.by_status),
            by_policy: counts(&s.by_policy),
            by_format: counts(&s.by_format),
            with_isbn: s.with_isbn,
            with_oclc: s.with_oclc,
            with_lccn: s.with_lccn,
        }))
    }

    async fn rotate_certificate(&self, req: Request<pb::Empty>) -> R<pb::CertificateInfo> {
        let user = staff_user(&req)?;
        let (cert_pem, key_pem) = self.node.rotate_node_cert(&user)?;
        let internal =
            |e: rota_certs::tls::TlsError| Status::internal(format!("the new certificate could not be loaded: {e}"));
        self.identity.server.swap(&cert_pem, &key_pem).map_err(internal)?;
        self.identity.channels.set_identity(&cert_pem, &key_pem);
        let der = rota_certs::tls::certs_from_pem(&cert_pem).map_err(internal)?.remove(0);
        let (serial, not_after) = rota_certs::issue::serial_and_expiry(&der).unwrap_or_default();
        Ok(Response::new(pb::CertificateInfo {
            fingerprint: rota_certs::fingerprint_of_der(&der),
            serial,
            not_after_unix_ms: not_after,
        }))
    }
}
