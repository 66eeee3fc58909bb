//! What a failed call means: throttled, transient, refused for an item's
//! sake, or terminal; and its message, with every cause, for people.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

pub use crate::error::Class;

/// Error codes DynamoDB answers a whole request with because of one of its
/// items (the others would be written without it).
pub const REFUSED_CODES: &[&str] = &[
    "ValidationException",
    "ItemCollectionSizeLimitExceededException",
];

/// Error codes DynamoDB uses for throttling.
pub const THROTTLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
];

/// Classifies an SDK error.
pub fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Class
where
    R: HttpStatus + std::fmt::Debug,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Class::Transient
        }
        SdkError::ConstructionFailure(_) => Class::Terminal,
        _ => classify_code(err.code(), status_of(err)),
    }
}

/// The HTTP status of a raw response, where there is one.
pub trait HttpStatus {
    fn http_status(&self) -> Option<u16>;
}

impl HttpStatus for aws_sdk_dynamodb::config::http::HttpResponse {
    fn http_status(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }
}

/// Test doubles build errors without a response.
impl HttpStatus for () {
    fn http_status(&self) -> Option<u16> {
        None
    }
}

pub(super) fn status_of<E, R: HttpStatus>(err: &SdkError<E, R>) -> Option<u16> {
    err.raw_response().and_then(HttpStatus::http_status)
}

/// Classifies by error code and HTTP status.
pub fn classify_code(code: Option<&str>, status: Option<u16>) -> Class {
    match code {
        Some(c) if THROTTLE_CODES.contains(&c) => Class::Throttled,
        Some(c) if REFUSED_CODES.contains(&c) => Class::Refused,
        Some(
            "InternalServerError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ServiceUnavailableException",
        ) => Class::Transient,
        _ if status.is_some_and(|s| s >= 500) => Class::Transient,
        _ => Class::Terminal,
    }
}

/// Whether a failed attempt timed out (rather than getting a 5xx answer).
pub fn is_timeout<E, R>(err: &SdkError<E, R>) -> bool {
    match err {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_timeout(),
        _ => false,
    }
}

/// One line for an SDK error: code and message when the service gave them.
pub fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    err: &SdkError<E, R>,
) -> String {
    match (err.code(), err.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_string(),
        _ => {
            let mut msg = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(s) = source {
                msg = format!("{msg}: {s}");
                source = s.source();
            }
            msg
        }
    }
}
