//! Verifiable builder selection: the seed binds the first final checkpoint containing the
//! request and the artifact's coordinates; members are ranked by rendezvous score over that
//! seed. Anyone with the member list recomputes the order, and grinding the seed (a byzantine
//! proposer choosing which checkpoint comes first) only changes who is asked first, never what
//! commits (PROTOCOL case 35).

use alloc::vec::Vec;

use crate::digest::Hasher;
use crate::identity::{KeyId, PublicKey};
use crate::members::MemberSet;
use crate::rendezvous::score;
use crate::tlog::Hash;
use crate::tlog::entry::Coordinates;

/// Domain of the selection seed.
pub const SELECT_DOMAIN: &[u8] = b"pyrsia/select/v1\0";

/// Builders asked beyond f+1 at first (s in k = f+1+s).
pub const DEFAULT_SLACK: usize = 2;

/// SHA-256("pyrsia/select/v1" ‖ size ‖ root ‖ coordinates), each variable field length-prefixed.
pub fn selection_seed(size: u64, root: &Hash, coordinates: &Coordinates<'_>) -> [u8; 32] {
    let mut h = Hasher::new();
    h.update(SELECT_DOMAIN);
    h.update(&size.to_be_bytes());
    h.update(root);
    for field in [coordinates.ecosystem, coordinates.name, coordinates.version] {
        h.update(&(field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    *h.finish().as_bytes()
}

/// Every member of `members`, best-ranked first for `seed`.
pub fn builder_order(seed: &[u8; 32], members: &MemberSet) -> Vec<(KeyId, PublicKey)> {
    let mut ranked: Vec<([u8; 32], KeyId, PublicKey)> = members
        .keys()
        .map(|key| (score(seed, &key.to_bytes()), key.key_id(), key))
        .collect();
    ranked.sort_by_key(|r| core::cmp::Reverse(r.0));
    ranked.into_iter().map(|(_, id, key)| (id, key)).collect()
}
