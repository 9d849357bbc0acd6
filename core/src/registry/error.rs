//! OCI error responses: the spec's codes, their HTTP statuses, and the JSON body
//! `{"errors":[{"code":…,"message":…}]}` written without an allocator.

use core::fmt;

/// An error code from the OCI distribution spec (plus the few that distribution, the reference
/// registry, also sends and clients understand: `TAG_INVALID`, `PAGINATION_NUMBER_INVALID`,
/// `UNAVAILABLE`, `UNKNOWN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Code {
    /// Blob unknown to registry.
    BlobUnknown,
    /// Blob upload invalid.
    BlobUploadInvalid,
    /// Blob upload unknown to registry.
    BlobUploadUnknown,
    /// Provided digest did not match uploaded content, or is malformed.
    DigestInvalid,
    /// Manifest references a manifest or blob unknown to registry.
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown to registry.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// Repository name not known to registry.
    NameUnknown,
    /// Provided length did not match content length.
    SizeInvalid,
    /// Authentication required.
    Unauthorized,
    /// Requested access to the resource is denied.
    Denied,
    /// The operation is unsupported.
    Unsupported,
    /// Too many requests.
    TooManyRequests,
    /// Manifest tag is malformed (distribution).
    TagInvalid,
    /// Invalid `n` query parameter (distribution).
    PaginationNumberInvalid,
    /// The service (here: the upstream, with nothing cached) is unavailable (distribution).
    Unavailable,
    /// An unexpected internal error (distribution).
    Unknown,
}

impl Code {
    /// The code as it appears in the JSON body.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::TagInvalid => "TAG_INVALID",
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::Unavailable => "UNAVAILABLE",
            Code::Unknown => "UNKNOWN",
        }
    }

    /// The HTTP status the spec (or distribution) pairs with the code.
    pub const fn default_status(self) -> u16 {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => 404,
            Code::Unauthorized => 401,
            Code::Denied => 403,
            Code::Unsupported => 405,
            Code::TooManyRequests => 429,
            Code::Unavailable => 503,
            Code::Unknown => 500,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid
            | Code::TagInvalid
            | Code::PaginationNumberInvalid => 400,
        }
    }
}

/// An error to send to a registry client: HTTP status, OCI code and a human message.
///
/// Build one with [`OciError::new`] (the code's usual status) and adjust the status with
/// [`OciError::with_status`] where the spec says otherwise (e.g. 404 for referrers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OciError {
    status: u16,
    code: Code,
    message: &'static str,
}

impl OciError {
    /// An error with the code's default status.
    pub const fn new(code: Code, message: &'static str) -> Self {
        OciError {
            status: code.default_status(),
            code,
            message,
        }
    }

    /// The same error with another HTTP status.
    pub const fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The HTTP status code.
    pub const fn status(&self) -> u16 {
        self.status
    }

    /// The OCI error code.
    pub const fn code(&self) -> Code {
        self.code
    }

    /// The human-readable message.
    pub const fn message(&self) -> &'static str {
        self.message
    }

    /// The response body, `{"errors":[{"code":"…","message":"…"}]}`, as a [`fmt::Display`]
    /// so it can be written to any buffer or stream without allocating.
    pub const fn json(&self) -> ErrorBody<'_> {
        ErrorBody(self)
    }
}

impl fmt::Display for OciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            self.code.as_str(),
            self.message
        )
    }
}

impl core::error::Error for OciError {}

/// The JSON body of an [`OciError`]; see [`OciError::json`].
pub struct ErrorBody<'a>(&'a OciError);

impl fmt::Display for ErrorBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{\"errors\":[{\"code\":\"")?;
        f.write_str(self.0.code.as_str())?;
        f.write_str("\",\"message\":\"")?;
        write_json_escaped(f, self.0.message)?;
        f.write_str("\"}]}")
    }
}

fn write_json_escaped(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_spec_json() {
        let e = OciError::new(Code::NameInvalid, "repository name has a \"bad\"\nname");
        assert_eq!(e.status(), 400);
        let body = e.json().to_string();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["errors"][0]["code"], "NAME_INVALID");
        assert_eq!(
            v["errors"][0]["message"],
            "repository name has a \"bad\"\nname"
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(OciError::new(Code::BlobUnknown, "").status(), 404);
        assert_eq!(OciError::new(Code::Unsupported, "").status(), 405);
        assert_eq!(
            OciError::new(Code::Unsupported, "")
                .with_status(404)
                .status(),
            404
        );
    }
}
