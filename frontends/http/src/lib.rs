//! # pyrsia-http
//!
//! The registry-mirror frontend: it turns HTTP requests into calls to
//! [`pyrsia_core::registry::route`] and the core's answers back into HTTP. The tiny_http
//! server and the lite mirror binary arrive with the registry-mirror issue; what is here is the
//! part every server shares: how an OCI error becomes a response.

use pyrsia_core::registry::OciError;

/// The `Content-Type` of OCI error bodies.
pub const ERROR_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// An HTTP response for an [`OciError`]: status, content type and the spec's JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header value.
    pub content_type: &'static str,
    /// `{"errors":[{"code":…,"message":…}]}`.
    pub body: String,
}

impl From<&OciError> for ErrorResponse {
    fn from(error: &OciError) -> Self {
        ErrorResponse {
            status: error.status(),
            content_type: ERROR_CONTENT_TYPE,
            body: error.json().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrsia_core::registry::{Method, route};

    #[test]
    fn router_errors_become_spec_json() {
        let error = route(Method::Get, "/v2/%2e%2e/manifests/latest", "").unwrap_err();
        let response = ErrorResponse::from(&error);
        assert_eq!(response.status, 400);
        assert!(
            response
                .body
                .starts_with("{\"errors\":[{\"code\":\"NAME_INVALID\""),
            "{}",
            response.body
        );
    }
}
