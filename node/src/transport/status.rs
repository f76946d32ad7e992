//! Node errors become gRPC statuses here and nowhere else. Internal details (database
//! errors) are logged, never sent.

use tonic::Status;

use crate::domain::FieldError;
use crate::error::NodeError;

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Status {
        match e {
            NodeError::Invalid(f) => Status::invalid_argument(f.to_string()),
            NodeError::NotFound(m) => Status::not_found(m),
            NodeError::Conflict(m) => Status::already_exists(m),
            NodeError::Forbidden(m) => Status::permission_denied(m),
            NodeError::Illegal(i) => Status::failed_precondition(i.to_string()),
            NodeError::Precondition(m) => Status::failed_precondition(m),
            NodeError::Store(e) if e.is_busy() => {
                tracing::warn!(error = %e, "database busy");
                Status::unavailable(
                    "the node's database is busy (another program has it locked); nothing was changed, try again",
                )
            }
            NodeError::Store(e) if e.is_full() => {
                tracing::error!(error = %e, "disk full");
                Status::unavailable("the node's disk is full; nothing was changed. Free some space and try again")
            }
            NodeError::Store(e) => {
                tracing::error!(error = %e, "storage error");
                Status::internal("internal storage error; the node's log has the details")
            }
            NodeError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Status::internal("internal error; the node's log has the details")
            }
        }
    }
}

/// A field that failed validation on the wire.
pub fn invalid(e: FieldError) -> Status {
    Status::invalid_argument(e.to_string())
}
