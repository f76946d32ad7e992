//! The node's own error type. The transport maps it to a gRPC status in one place
//! (`transport::status`); storage details never reach a partner.

use crate::domain::FieldError;
use crate::machine::Illegal;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad input: names the field.
    #[error("{0}")]
    Invalid(#[from] FieldError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Illegal(#[from] Illegal),
    /// A request that cannot go ahead as asked (for example, our own copy is on the shelf).
    #[error("{0}")]
    Precondition(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<sqlx::Error> for NodeError {
    fn from(e: sqlx::Error) -> Self {
        NodeError::Store(StoreError::Db(e))
    }
}

pub type Result<T, E = NodeError> = std::result::Result<T, E>;
