//! One module per command group. Each does its local checks first, then connects.

pub mod agreement;
pub mod card;
pub mod holdings;
pub mod lending;
pub mod node;
pub mod partner;
pub mod request;
pub mod staff;
pub mod worklist;

/// `Some(s)` → `s`, `None` → empty (proto3 strings have no "unset").
pub fn or_empty(s: Option<String>) -> String {
    s.unwrap_or_default()
}
