//! The pull API router (distribution-spec end-1 … end-14, plus `_catalog`).

use crate::digest::Digest;
use crate::percent;
use crate::reference::{HOST_LEN_MAX, Host, Name, Reference, Tag};

use super::error::{Code, OciError};

/// An HTTP request method, as far as the registry API cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// Anything else (OPTIONS, TRACE, ...).
    Other,
}

impl Method {
    /// Maps a method token (case-sensitive, as HTTP defines it).
    pub fn parse(token: &str) -> Self {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => Method::Other,
        }
    }

    const fn is_read(self) -> bool {
        matches!(self, Method::Get | Method::Head)
    }
}

/// A recognised endpoint that a read-only mirror does not serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Endpoint {
    /// PUT a manifest (end-7).
    ManifestPush,
    /// DELETE a manifest (end-9).
    ManifestDelete,
    /// DELETE a blob (end-10).
    BlobDelete,
    /// POST an upload, possibly monolithic or a cross-repository mount (end-4, end-11).
    UploadStart,
    /// PATCH, PUT, GET or DELETE an upload session (end-5, end-6, end-13, end-14).
    UploadSession,
    /// GET referrers of a manifest (end-12).
    Referrers,
    /// GET `/v2/_catalog`.
    Catalog,
}

impl Endpoint {
    /// The answer a read-only mirror gives: 405 UNSUPPORTED, except the referrers API, which
    /// the spec says to answer with 404 when unsupported so clients fall back to tag schemes.
    pub const fn error(self) -> OciError {
        match self {
            Endpoint::Referrers => OciError::new(
                Code::Unsupported,
                "the referrers API is not served by this mirror",
            )
            .with_status(404),
            Endpoint::Catalog => OciError::new(
                Code::Unsupported,
                "the catalog is not served by this mirror",
            ),
            _ => OciError::new(
                Code::Unsupported,
                "this mirror is read-only: push and delete are not supported",
            ),
        }
    }
}

/// A validated registry request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET|HEAD /v2/`: API version check.
    Base,
    /// `GET|HEAD /v2/<name>/manifests/<reference>`.
    Manifest {
        /// Repository.
        name: Name<'a>,
        /// Tag or digest.
        reference: Reference<'a>,
        /// HEAD: headers only.
        head: bool,
        /// Registry host from containerd's `?ns=`; `None` means the default upstream.
        registry: Option<Host>,
    },
    /// `GET|HEAD /v2/<name>/blobs/<digest>`.
    Blob {
        /// Repository.
        name: Name<'a>,
        /// Blob digest.
        digest: Digest,
        /// HEAD: headers only.
        head: bool,
        /// Registry host from `?ns=`.
        registry: Option<Host>,
    },
    /// `GET|HEAD /v2/<name>/tags/list?n=&last=`.
    TagsList {
        /// Repository.
        name: Name<'a>,
        /// Page size.
        n: Option<u32>,
        /// Return tags after this one.
        last: Option<Tag<'a>>,
        /// HEAD: headers only.
        head: bool,
        /// Registry host from `?ns=`.
        registry: Option<Host>,
    },
    /// A recognised endpoint this mirror does not serve; answer with [`Endpoint::error`].
    Unsupported(Endpoint),
}

/// Splits a request target (`/v2/x/manifests/y?ns=docker.io`) into path and query.
pub fn split_target(target: &str) -> (&str, &str) {
    target.split_once('?').unwrap_or((target, ""))
}

const UNKNOWN_ENDPOINT: OciError =
    OciError::new(Code::Unsupported, "unknown endpoint").with_status(404);
const METHOD_NOT_ALLOWED: OciError =
    OciError::new(Code::Unsupported, "method not allowed on this endpoint");

/// Routes a request. `path` is the raw (still percent-encoded) path, `query` the raw query
/// without `?`. Names, references and digests are validated before the method is looked at,
/// so a bad one is a 400 with its code whatever the method (a manifest reference that is
/// neither a tag nor a digest: 404 `MANIFEST_UNKNOWN`).
pub fn route<'a>(method: Method, path: &'a str, query: &'a str) -> Result<Route<'a>, OciError> {
    let rest = match path {
        "/v2" | "/v2/" => return base(method),
        _ => path.strip_prefix("/v2/").ok_or(UNKNOWN_ENDPOINT)?,
    };
    if rest == "_catalog" {
        return read_only(method, Route::Unsupported(Endpoint::Catalog));
    }
    let (head, last) = rest.rsplit_once('/').ok_or(UNKNOWN_ENDPOINT)?;
    if let Some(name) = head.strip_suffix("/manifests") {
        let name = parse_name(name)?;
        let reference = parse_reference(last)?;
        return match method {
            Method::Get | Method::Head => Ok(Route::Manifest {
                name,
                reference,
                head: method == Method::Head,
                registry: registry_from_query(query)?,
            }),
            Method::Put => Ok(Route::Unsupported(Endpoint::ManifestPush)),
            Method::Delete => Ok(Route::Unsupported(Endpoint::ManifestDelete)),
            _ => Err(METHOD_NOT_ALLOWED),
        };
    }
    if let Some(name) = head.strip_suffix("/blobs/uploads") {
        parse_name(name)?;
        return match (method, last) {
            (Method::Post, "") => Ok(Route::Unsupported(Endpoint::UploadStart)),
            (Method::Patch | Method::Put | Method::Get | Method::Delete, session)
                if !session.is_empty() =>
            {
                Ok(Route::Unsupported(Endpoint::UploadSession))
            }
            _ => Err(METHOD_NOT_ALLOWED),
        };
    }
    if let Some(name) = head.strip_suffix("/blobs") {
        let name = parse_name(name)?;
        if last == "uploads" {
            return match method {
                Method::Post => Ok(Route::Unsupported(Endpoint::UploadStart)),
                _ => Err(METHOD_NOT_ALLOWED),
            };
        }
        let digest = parse_digest(last)?;
        return match method {
            Method::Get | Method::Head => Ok(Route::Blob {
                name,
                digest,
                head: method == Method::Head,
                registry: registry_from_query(query)?,
            }),
            Method::Delete => Ok(Route::Unsupported(Endpoint::BlobDelete)),
            _ => Err(METHOD_NOT_ALLOWED),
        };
    }
    if let Some(name) = head.strip_suffix("/tags") {
        if last != "list" {
            return Err(UNKNOWN_ENDPOINT);
        }
        let name = parse_name(name)?;
        let (n, after) = pagination(query)?;
        if !method.is_read() {
            return Err(METHOD_NOT_ALLOWED);
        }
        return Ok(Route::TagsList {
            name,
            n,
            last: after,
            head: method == Method::Head,
            registry: registry_from_query(query)?,
        });
    }
    if let Some(name) = head.strip_suffix("/referrers") {
        parse_name(name)?;
        parse_digest(last)?;
        return read_only(method, Route::Unsupported(Endpoint::Referrers));
    }
    Err(UNKNOWN_ENDPOINT)
}

fn base<'a>(method: Method) -> Result<Route<'a>, OciError> {
    read_only(method, Route::Base)
}

fn read_only(method: Method, route: Route<'_>) -> Result<Route<'_>, OciError> {
    if method.is_read() {
        Ok(route)
    } else {
        Err(METHOD_NOT_ALLOWED)
    }
}

fn parse_name(text: &str) -> Result<Name<'_>, OciError> {
    Name::parse(text).map_err(|e| OciError::new(Code::NameInvalid, e.reason()))
}

fn parse_digest(text: &str) -> Result<Digest, OciError> {
    Digest::parse(text).map_err(|e| OciError::new(Code::DigestInvalid, e.reason()))
}

/// A manifest reference: a malformed digest is 400 `DIGEST_INVALID`; anything else that is not
/// a tag names no manifest, so it is 404 `MANIFEST_UNKNOWN`, as distribution answers and the
/// OCI conformance suite's pull workflow expects (e.g. `.INVALID_MANIFEST_NAME`).
fn parse_reference(text: &str) -> Result<Reference<'_>, OciError> {
    use crate::reference::ReferenceError;
    Reference::parse(text).map_err(|e| match e {
        ReferenceError::Digest(e) => OciError::new(Code::DigestInvalid, e.reason()),
        ReferenceError::Tag(_) => OciError::new(
            Code::ManifestUnknown,
            "manifest unknown: the reference is neither a tag nor a digest",
        ),
    })
}

/// The query's `key=value` pairs, raw.
fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// containerd's `ns` parameter: which registry the client means. Only the first counts.
fn registry_from_query(query: &str) -> Result<Option<Host>, OciError> {
    let Some((_, raw)) = query_pairs(query).find(|(k, _)| *k == "ns") else {
        return Ok(None);
    };
    const BAD_NS: OciError = OciError::new(
        Code::NameInvalid,
        "the ns parameter is not a valid registry host",
    );
    let decoded = percent::decode::<HOST_LEN_MAX>(raw).map_err(|_| BAD_NS)?;
    Host::parse(&decoded).map(Some).map_err(|_| BAD_NS)
}

fn pagination(query: &str) -> Result<(Option<u32>, Option<Tag<'_>>), OciError> {
    let mut n = None;
    let mut last = None;
    for (key, value) in query_pairs(query) {
        match key {
            "n" if n.is_none() => {
                let valid = !value.is_empty()
                    && value.len() <= 10
                    && value.bytes().all(|c| c.is_ascii_digit());
                let parsed = value.parse::<u32>().ok().filter(|_| valid);
                n = Some(parsed.ok_or(OciError::new(
                    Code::PaginationNumberInvalid,
                    "n must be a decimal number",
                ))?);
            }
            "last" if last.is_none() => {
                last = Some(
                    Tag::parse(value).map_err(|e| OciError::new(Code::TagInvalid, e.reason()))?,
                );
            }
            _ => {}
        }
    }
    Ok((n, last))
}

#[cfg(test)]
mod tests;
