//! The control plane's error type: every failure a caller can see, with the
//! HTTP status it maps to (see `api::error`). Services return it, the JSON API
//! and (later) the web UI render it.

use std::time::Duration;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401: no credentials, or credentials that are not valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 401: the password was right and the account signs in with a second
    /// factor too: send its code (`two_factor_required`).
    #[error("{0}")]
    SecondFactorRequired(String),
    /// 403: the tenant requires two-factor sign-in and the person has not
    /// turned it on (`two_factor_setup_required`).
    #[error("{0}")]
    TwoFactorSetupRequired(String),
    /// 403: the tenant requires single sign-on and the session is not one
    /// of its provider's (`sso_required`).
    #[error("{message}")]
    SsoRequired { tenant_id: uuid::Uuid, message: String },
    /// 404: no such resource, or one the caller must not know exists.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: conflicts with the current state (duplicate, last owner, ...).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 410: existed once and is no longer usable (expired, revoked).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// 422: a well-formed request with an invalid value, attributed to a field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// 400: a request the server cannot interpret.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 413: the body is over the configured limit.
    #[error("request body is larger than the {limit}-byte limit")]
    PayloadTooLarge { limit: usize },
    /// 415
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 405
    #[error("method not allowed for this resource")]
    MethodNotAllowed,
    /// 429
    #[error("too many attempts: try again in {} seconds", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    /// 429: a plan's quota is used up until `resets_at`.
    #[error("{message}")]
    QuotaExceeded { message: String, retry_after: Duration, resets_at: crate::domain::Timestamp },
    /// 503: a dependency (the database) is not reachable.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an infrastructure failure. The message shown to the
    /// caller is generic; the cause is logged.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Error::NotFound("resource"),
            StoreError::Conflict { code, message } => Error::Conflict { code, message },
            StoreError::Invalid { field, message } => Error::invalid(field, message),
            // The audit log's trigger: the tenant was erased under the
            // request (migration 0037).
            e if e.tenant_gone() => Error::NotFound("tenant"),
            // PostgreSQL broke a deadlock by failing this transaction (a
            // request racing its organisation's erasure): nothing was
            // written, and trying again is safe.
            e if e.deadlock() => Error::Conflict {
                code: "try_again",
                message: "the database broke a deadlock with another change; nothing was saved, try again"
                    .into(),
            },
            other => Error::Internal(other.into()),
        }
    }
}

/// Names the missing resource when a store call reports `NotFound`.
pub trait NotFoundExt<T> {
    fn or_not_found(self, what: &'static str) -> Result<T>;
}

impl<T> NotFoundExt<T> for std::result::Result<T, StoreError> {
    fn or_not_found(self, what: &'static str) -> Result<T> {
        self.map_err(|e| match e {
            StoreError::NotFound => Error::NotFound(what),
            other => other.into(),
        })
    }
}

/// Turns a lookup's `None` (or a store `NotFound`) into a named 404.
pub trait FoundExt<T> {
    fn found(self, what: &'static str) -> Result<T>;
}

impl<T> FoundExt<T> for std::result::Result<Option<T>, StoreError> {
    fn found(self, what: &'static str) -> Result<T> {
        match self {
            Ok(Some(v)) => Ok(v),
            Ok(None) | Err(StoreError::NotFound) => Err(Error::NotFound(what)),
            Err(other) => Err(other.into()),
        }
    }
}
