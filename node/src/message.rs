//! The peer protocol's business messages as domain values (ISO 18626 meaning, DESIGN §4).
//! The transport converts protobuf to these at the edge; the outbox stores them as JSON.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::{Citation, ReasonForMessage, ReasonUnfilled, RequesterAction, SupplierStatus};

/// Borrower → lender: please supply this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestBody {
    pub citation: Citation,
    pub need_before: Option<NaiveDate>,
    pub note: String,
}

/// Lender → borrower.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplierBody {
    pub reason: ReasonForMessage,
    pub status: SupplierStatus,
    pub reason_unfilled: Option<ReasonUnfilled>,
    pub due_date: Option<NaiveDate>,
    pub item_id: String,
    pub answer: Option<bool>,
    pub condition: String,
    pub note: String,
}

impl SupplierBody {
    pub fn new(reason: ReasonForMessage, status: SupplierStatus) -> Self {
        SupplierBody {
            reason,
            status,
            reason_unfilled: None,
            due_date: None,
            item_id: String::new(),
            answer: None,
            condition: String::new(),
            note: String::new(),
        }
    }

    /// One line for timelines: `WillSupply (item 3901)`, `Unfilled: NotOnShelf`.
    pub fn summary(&self) -> String {
        let mut s = self.status.to_string();
        if let Some(r) = self.reason_unfilled {
            s.push_str(&format!(": {r}"));
        }
        if !self.item_id.is_empty() {
            s.push_str(&format!(" (item {})", self.item_id));
        }
        if let Some(d) = self.due_date {
            s.push_str(&format!(", due {d}"));
        }
        if let Some(a) = self.answer {
            s.push_str(if a { ", answer yes" } else { ", answer no" });
        }
        s
    }
}

/// Borrower → lender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequesterBody {
    pub action: RequesterAction,
    pub note: String,
    /// With `Notification`: `Some(true)` accepts a conditional offer.
    pub answer: Option<bool>,
}

/// One business message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Request(RequestBody),
    Supplier(SupplierBody),
    Requester(RequesterBody),
}

impl Body {
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Request(_) => "Request",
            Body::Supplier(_) => "SupplierMessage",
            Body::Requester(_) => "RequesterMessage",
        }
    }

    pub fn summary(&self) -> String {
        match self {
            Body::Request(r) => format!("Request for {}", r.citation.label()),
            Body::Supplier(s) => s.summary(),
            Body::Requester(r) => r.action.to_string(),
        }
    }
}

/// A message with its ISO 18626 header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub message_id: Uuid,
    pub request_id: String,
    pub sequence: u64,
    pub sent_at: DateTime<Utc>,
    pub body: Body,
}

impl Envelope {
    /// A digest of everything that must be identical on a retry (the send time may differ).
    pub fn payload_hash(&self) -> String {
        let canon = serde_json::to_vec(&(&self.request_id, self.sequence, &self.body)).unwrap_or_default();
        hex::encode(Sha256::digest(canon))
    }
}

/// The receiver's answer to a delivered message. Never the business answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Confirmation {
    Accepted {
        received_at: DateTime<Utc>,
        /// The highest sequence the receiver had queued back to the sender for this request
        /// when it accepted (see `Confirmation.sent_through` in peer.proto).
        #[serde(default)]
        sent_through: u64,
    },
    /// A sequence gap: deliver the earlier messages first.
    RetryLater {
        reason: String,
    },
    Error {
        kind: ConfirmationError,
        detail: String,
    },
}

/// ISO 18626 confirmation error types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfirmationError {
    BadlyFormedMessage,
    UnrecognisedDataValue,
    UnsupportedAction,
    UnrecognisedRequestId,
    DuplicateMessageId,
    IllegalInState,
}
