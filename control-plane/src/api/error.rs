//! How an [`Error`] becomes an HTTP response:
//! `{"error": {"code": "...", "message": "...", "details": ...}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Error;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `validation_failed`, `not_found`, ...
    pub code: String,
    /// For people: what went wrong and what to do about it.
    pub message: String,
    /// Extra structure, for example `{"field": "email"}` for validation errors.
    #[schema(value_type = Object, nullable)]
    pub details: serde_json::Value,
}

/// The stable code of an error response, kept on the response so middleware
/// (the audit of refused requests) can read it without parsing the body.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unauthenticated(_) | Error::SecondFactorRequired(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::TwoFactorSetupRequired(_) | Error::SsoRequired { .. } => {
                StatusCode::FORBIDDEN
            }
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Gone { .. } => StatusCode::GONE,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::RateLimited { .. } | Error::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::SecondFactorRequired(_) => "two_factor_required",
            Error::TwoFactorSetupRequired(_) => "two_factor_setup_required",
            Error::SsoRequired { .. } => "sso_required",
            Error::NotFound(_) => "not_found",
            Error::Conflict { code, .. } | Error::Gone { code, .. } | Error::BadRequest { code, .. } => code,
            Error::Invalid { .. } => "validation_failed",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::RateLimited { .. } => "rate_limited",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal_error",
        }
    }

    fn details(&self) -> serde_json::Value {
        match self {
            Error::Invalid { field, .. } => serde_json::json!({ "field": field }),
            Error::PayloadTooLarge { limit } => serde_json::json!({ "limit_bytes": limit }),
            Error::RateLimited { retry_after } => {
                serde_json::json!({ "retry_after_seconds": retry_after.as_secs().max(1) })
            }
            Error::QuotaExceeded { retry_after, resets_at, .. } => serde_json::json!({
                "retry_after_seconds": retry_after.as_secs().max(1), "resets_at": resets_at,
            }),
            _ => serde_json::Value::Null,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Error::Internal(cause) = &self {
            // The caller sees a generic message; the cause goes to the log,
            // inside the request's span (which carries the request id).
            tracing::error!(error = ?cause, "internal error");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                details: self.details(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code()));
        if let Error::RateLimited { retry_after } | Error::QuotaExceeded { retry_after, .. } = &self
            && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let Error::Unauthenticated(_) = &self {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
