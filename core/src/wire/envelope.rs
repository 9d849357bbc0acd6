//! Signed envelopes: a postcard payload, the signer's public key, the purpose, and an ed25519
//! signature over exactly those payload bytes (see [`crate::identity`] for the domain
//! separation). Opening one checks the signature *before* decoding, then that the payload is
//! the canonical encoding of what it decodes to, so one message has one signed form.

use serde::{Deserialize, Serialize};

use super::frame::{WireError, decode_payload};
use crate::identity::{PublicKey, Purpose, SecretKey, Signature};

/// A signed message as it travels inside a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<'a> {
    /// Who signed.
    pub signer: PublicKey,
    /// What the signature is for.
    pub purpose: Purpose,
    /// The postcard encoding of the message.
    #[serde(borrow)]
    pub payload: &'a [u8],
    /// Signature over `payload` for `purpose`.
    pub signature: Signature,
}

impl<'a> Envelope<'a> {
    /// Encodes `message` into `payload_buf` and signs it.
    pub fn seal<T: Serialize>(
        key: &SecretKey,
        purpose: Purpose,
        message: &T,
        payload_buf: &'a mut [u8],
    ) -> Result<Self, WireError> {
        let payload: &'a [u8] =
            postcard::to_slice(message, payload_buf).map_err(|_| WireError::BufferFull)?;
        Ok(Envelope {
            signer: key.public(),
            purpose,
            payload,
            signature: key.sign(purpose, payload),
        })
    }

    /// Verifies the signature for `purpose`, decodes the payload and checks it is canonical.
    /// Returns the message; the signer is `self.signer`.
    pub fn open<T: Deserialize<'a> + Serialize>(&self, purpose: Purpose) -> Result<T, WireError> {
        if self.purpose != purpose {
            return Err(WireError::WrongPurpose);
        }
        self.signer
            .verify(purpose, self.payload, &self.signature)
            .map_err(|_| WireError::BadSignature)?;
        let message: T = decode_payload(self.payload)?;
        if !is_canonical(&message, self.payload) {
            return Err(WireError::NonCanonical);
        }
        Ok(message)
    }
}

/// Whether `bytes` is exactly the postcard encoding of `message`: one value, one byte form.
pub(crate) fn is_canonical<T: Serialize>(message: &T, bytes: &[u8]) -> bool {
    postcard::serialize_with_flavor(message, Compare::new(bytes)).unwrap_or(false)
}

/// A postcard output "flavor" that compares the encoding against expected bytes as it is
/// produced, so the canonical check needs no second buffer.
struct Compare<'e> {
    expected: &'e [u8],
    position: usize,
    equal: bool,
}

impl<'e> Compare<'e> {
    fn new(expected: &'e [u8]) -> Self {
        Compare {
            expected,
            position: 0,
            equal: true,
        }
    }
}

impl postcard::ser_flavors::Flavor for Compare<'_> {
    type Output = bool;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.equal &= self.expected.get(self.position) == Some(&byte);
        self.position += 1;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<bool> {
        Ok(self.equal && self.position == self.expected.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{FRAME_LEN_MAX, decode, encode_vec};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Vote {
        height: u64,
        round: u32,
    }

    #[test]
    fn seal_and_open() {
        let key = SecretKey::from_seed([1; 32]);
        let mut buf = [0u8; 32];
        let env = Envelope::seal(
            &key,
            Purpose::Vote,
            &Vote {
                height: 7,
                round: 1,
            },
            &mut buf,
        )
        .unwrap();
        let frame = encode_vec(&env).unwrap();
        let received: Envelope = decode(&frame, FRAME_LEN_MAX).unwrap();
        assert_eq!(received.signer, key.public());
        assert_eq!(
            received.open::<Vote>(Purpose::Vote),
            Ok(Vote {
                height: 7,
                round: 1
            })
        );
        assert_eq!(
            received.open::<Vote>(Purpose::Attestation),
            Err(WireError::WrongPurpose)
        );
    }

    #[test]
    fn rejects_tampering_and_non_canonical_payloads() {
        let key = SecretKey::from_seed([2; 32]);
        let mut buf = [0u8; 32];
        let env = Envelope::seal(
            &key,
            Purpose::Vote,
            &Vote {
                height: 300,
                round: 1,
            },
            &mut buf,
        )
        .unwrap();

        let mut tampered_bytes = env.payload.to_vec();
        tampered_bytes[0] ^= 1;
        let tampered = Envelope {
            payload: &tampered_bytes,
            ..env
        };
        assert_eq!(
            tampered.open::<Vote>(Purpose::Vote),
            Err(WireError::BadSignature)
        );

        let impostor = Envelope {
            signer: SecretKey::from_seed([3; 32]).public(),
            ..env
        };
        assert_eq!(
            impostor.open::<Vote>(Purpose::Vote),
            Err(WireError::BadSignature)
        );

        // An over-long varint for `round` (1 encoded as 0x81 0x00) decodes to the same value
        // but is not canonical: signed, yet refused.
        let mut overlong = postcard::to_allocvec(&300u64).unwrap();
        overlong.extend_from_slice(&[0x81, 0x00]);
        let signature = key.sign(Purpose::Vote, &overlong);
        let sneaky = Envelope {
            signer: key.public(),
            purpose: Purpose::Vote,
            payload: &overlong,
            signature,
        };
        let result = sneaky.open::<Vote>(Purpose::Vote);
        assert!(
            matches!(result, Err(WireError::NonCanonical | WireError::Malformed)),
            "{result:?}"
        );

        // Trailing bytes inside a signed payload.
        let mut long = env.payload.to_vec();
        long.push(0);
        let signature = key.sign(Purpose::Vote, &long);
        let padded = Envelope {
            payload: &long,
            signature,
            ..env
        };
        assert_eq!(
            padded.open::<Vote>(Purpose::Vote),
            Err(WireError::TrailingBytes)
        );
    }
}
