//! Node identities: ed25519 keys, their short [`KeyId`]s, and domain-separated signatures.
//!
//! Every signature the core makes or checks covers `SHA-256(DOMAIN ‖ purpose ‖ message)`, so a
//! signature made for one purpose (a vote, an attestation) can never be replayed as another.
//! Key material comes from the runtime (its CSPRNG, a key file); the core only computes.

use core::fmt;

use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};

use crate::digest::Hasher;

/// The prefix of every signed message: names the protocol and its version.
pub const SIGNATURE_DOMAIN: &[u8] = b"pyrsia/signature/v1\0";

/// What a signature is for. Part of the signed bytes, so purposes never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Purpose {
    /// A peer-to-peer protocol message (announcements, piece requests).
    PeerMessage,
    /// A builder's attestation of build outputs.
    Attestation,
    /// A cosignature of a transparency-log checkpoint.
    Checkpoint,
    /// A consensus vote (prevote, precommit).
    Vote,
    /// A membership change (AddMember, RemoveMember).
    Membership,
    /// A member's word that a tag resolved to a digest at its upstream.
    TagObservation,
    /// A rebuilder's attestation of a rebuild verdict.
    RebuildAttestation,
}

impl Purpose {
    const fn tag(self) -> u8 {
        self as u8
    }
}

/// A node's public key.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

/// A node's secret signing key. Not `Clone` or `Debug`: it is not meant to travel.
pub struct SecretKey(ed25519_dalek::SigningKey);

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature(ed25519_dalek::Signature);

/// A key's short, stable identifier: SHA-256 of the public key bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KeyId(pub [u8; 32]);

/// Why a key or signature was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum IdentityError {
    /// The bytes are not a valid ed25519 public key (not a curve point).
    InvalidPublicKey,
    /// The signature does not verify for this key, purpose and message.
    BadSignature,
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentityError::InvalidPublicKey => "invalid ed25519 public key",
            IdentityError::BadSignature => "signature does not verify",
        })
    }
}

impl core::error::Error for IdentityError {}

fn signed_digest(purpose: Purpose, message: &[u8]) -> [u8; 32] {
    let mut h = Hasher::new();
    h.update(SIGNATURE_DOMAIN);
    h.update(&[purpose.tag()]);
    h.update(message);
    *h.finish().as_bytes()
}

impl SecretKey {
    /// The key for a 32-byte seed. The runtime draws the seed from its CSPRNG once and keeps
    /// it in the node's data dir; tests and the simulation derive it from their seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SecretKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The seed, for persisting the key.
    pub fn to_seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `message` for `purpose`.
    pub fn sign(&self, purpose: Purpose, message: &[u8]) -> Signature {
        Signature(self.0.sign(&signed_digest(purpose, message)))
    }
}

impl PublicKey {
    /// Parses the 32-byte compressed form; rejects bytes that are not a curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, IdentityError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| IdentityError::InvalidPublicKey)
    }

    /// The 32-byte compressed form.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key's identifier.
    pub fn key_id(&self) -> KeyId {
        let mut h = Hasher::new();
        h.update(self.0.as_bytes());
        KeyId(*h.finish().as_bytes())
    }

    /// Checks `signature` over `message` for `purpose` (strict verification: rejects
    /// malleable signatures and small-order keys).
    pub fn verify(
        &self,
        purpose: Purpose,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), IdentityError> {
        self.0
            .verify_strict(&signed_digest(purpose, message), &signature.0)
            .map_err(|_| IdentityError::BadSignature)
    }
}

impl Signature {
    /// The 64-byte form.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0.to_bytes()
    }

    /// From the 64-byte form (any bytes; validity is decided by [`PublicKey::verify`]).
    pub fn from_bytes(bytes: &[u8; 64]) -> Self {
        Signature(ed25519_dalek::Signature::from_bytes(bytes))
    }
}

impl fmt::Display for KeyId {
    /// The first 8 bytes in hex: enough to tell members apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        write!(f, "Signature(")?;
        for b in &bytes[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_with_domain_separation() {
        let key = SecretKey::from_seed([7; 32]);
        let public = key.public();
        let sig = key.sign(Purpose::Vote, b"height 1");
        assert_eq!(public.verify(Purpose::Vote, b"height 1", &sig), Ok(()));
        assert_eq!(
            public.verify(Purpose::Attestation, b"height 1", &sig),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(
            public.verify(Purpose::Vote, b"height 2", &sig),
            Err(IdentityError::BadSignature)
        );
        let other = SecretKey::from_seed([8; 32]).public();
        assert_eq!(
            other.verify(Purpose::Vote, b"height 1", &sig),
            Err(IdentityError::BadSignature)
        );
        assert_ne!(public.key_id(), other.key_id());
    }

    #[test]
    fn keys_round_trip() {
        let key = SecretKey::from_seed([9; 32]);
        assert_eq!(SecretKey::from_seed(key.to_seed()).public(), key.public());
        let public = PublicKey::from_bytes(&key.public().to_bytes()).unwrap();
        assert_eq!(public, key.public());
        let sig = key.sign(Purpose::PeerMessage, b"x");
        assert_eq!(Signature::from_bytes(&sig.to_bytes()), sig);
    }

    #[test]
    fn rejects_non_points() {
        // y = 2 is not on the curve: decompression fails.
        let mut bytes = [0u8; 32];
        bytes[0] = 2;
        assert_eq!(
            PublicKey::from_bytes(&bytes),
            Err(IdentityError::InvalidPublicKey)
        );
    }
}
