//! `POST /pyrsia/members/endorse?op=add&key=HEX`: this node's operator endorses a membership
//! change (what `pyrsia authorize` calls). The member signs it for the next epoch and sends
//! the signature to the others; a quorum of endorsements put the change in the log. Only the
//! operator may: the request carries the data dir's operator token and no `Origin`.

use pyrsia_core::identity::PublicKey;
use pyrsia_core::registry::{Code, OciError};
use pyrsia_core::tlog::entry::MembershipOp;
use serde_json::json;

use crate::node::Node;

/// The endpoint's path.
pub(crate) const ENDORSE: &str = "/pyrsia/members/endorse";

const NOT_A_MEMBER: OciError = OciError::new(
    Code::Denied,
    "this node is not one of several members; only members endorse membership changes",
)
.with_status(409);
const BAD_KEY: OciError = OciError::new(
    Code::Unsupported,
    "key must be a 64-digit hex ed25519 public key and op add or remove",
)
.with_status(400);
const POST_ONLY: OciError = OciError::new(Code::Unsupported, "endorse with POST").with_status(405);
const NOT_THE_OPERATOR: OciError = OciError::new(
    Code::Denied,
    "endorsing needs the operator token (Authorization: Bearer, from the data dir's operator-token) and no cross-site Origin",
)
.with_status(403);

/// Whether the request comes from this node's operator: it presents the operator token and is
/// not a browser's cross-site request (no `Origin`: a page cannot read the token, and DNS
/// rebinding does not get it one).
fn from_operator(node: &Node, request: &tiny_http::Request) -> bool {
    let header = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().trim().to_string())
    };
    if header("Origin").is_some() {
        return false;
    }
    let Ok(token) = pyrsia_std::operator::load_or_create(&node.data_dir) else {
        return false;
    };
    header("Authorization")
        .and_then(|value| value.strip_prefix("Bearer ").map(str::to_string))
        .is_some_and(|presented| pyrsia_std::operator::matches(&token, presented.trim()))
}

/// Endorses the change `query` names; answers what was endorsed.
pub(crate) fn endorse(
    node: &Node,
    request: &tiny_http::Request,
    query: &str,
) -> Result<Vec<u8>, OciError> {
    if *request.method() != tiny_http::Method::Post {
        return Err(POST_ONLY);
    }
    if !from_operator(node, request) {
        return Err(NOT_THE_OPERATOR);
    }
    let member = node
        .member
        .as_ref()
        .filter(|_| node.log.is_member())
        .ok_or(NOT_A_MEMBER)?;
    let value = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    };
    let op = match value("op").unwrap_or("add") {
        "add" => MembershipOp::Add,
        "remove" => MembershipOp::Remove,
        _ => return Err(BAD_KEY),
    };
    let key = value("key").and_then(parse_key).ok_or(BAD_KEY)?;
    member.endorse(op, key);
    let epoch = node.log.members().epoch() + 1;
    Ok(json!({
        "op": if op == MembershipOp::Add { "add" } else { "remove" },
        "key_id": key.key_id().to_string(),
        "epoch": epoch,
    })
    .to_string()
    .into_bytes())
}

/// A public key from 64 hex digits.
pub(crate) fn parse_key(text: &str) -> Option<PublicKey> {
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    PublicKey::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_64_hex_digits_of_a_valid_point() {
        let key = pyrsia_core::identity::SecretKey::from_seed([3; 32]).public();
        let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_key(&hex), Some(key));
        assert_eq!(parse_key(&hex[1..]), None);
        assert_eq!(parse_key(&format!("{}zz", &hex[..62])), None);
    }
}
