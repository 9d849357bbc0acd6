//! TLS 1.3 record protection on an established piece link (RFC 8446, sections 5.2 and 5.3),
//! with the traffic keys that rustls negotiated in the link's handshake. rustls hands them over
//! through `dangerous_extract_secrets`, its interface for kernel TLS; this is that record
//! layer in user space. rustls's own copies every record it reads into its deframing buffer
//! and then into a fresh allocation for the plaintext, and allocates every record it writes;
//! here a record is opened where it was read and sealed where it is written, and nothing is
//! allocated per record.
//!
//! What a link carries is application data. A session ticket (TLS 1.3's `NewSessionTicket`,
//! which a peer may send after its handshake) is skipped, `close_notify` ends the stream, and
//! any other alert or handshake message (a key update among them) is an error that closes
//! the link. Keys are never updated: a link ends before either direction protects
//! [`RECORDS_PER_KEY`] records, far below AES-GCM's limit (RFC 8446, section 5.5).

use std::io;
use std::ops::Range;

use aws_lc_rs::aead::{
    AES_128_GCM, AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey,
};
use rustls::ConnectionTrafficSecrets;

/// A record's header: content type, legacy version, length.
pub(crate) const HEADER_LEN: usize = 5;
/// The most plaintext one record carries (2^14 bytes).
pub(crate) const MAX_PLAINTEXT: usize = 1 << 14;
/// The authentication tag of every AEAD TLS 1.3 uses.
const TAG_LEN: usize = 16;
/// The largest ciphertext a record may carry: 2^14 + 256 bytes (RFC 8446, section 5.2).
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
/// The largest record, header included.
pub(crate) const MAX_RECORD: usize = HEADER_LEN + MAX_CIPHERTEXT;
/// Records one direction of a link protects before the link ends (2^24, about 256 GiB of
/// full records; AES-GCM's limit is 2^24.5).
pub(crate) const RECORDS_PER_KEY: u64 = 1 << 24;

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const NEW_SESSION_TICKET: u8 = 4;
const CLOSE_NOTIFY: u8 = 0;

/// One direction's key, IV and sequence number.
struct Keys {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    seq: u64,
}

impl Keys {
    fn new((seq, secrets): (u64, ConnectionTrafficSecrets)) -> io::Result<Keys> {
        let (algorithm, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&CHACHA20_POLY1305, key, iv),
            _ => {
                return Err(io::Error::other(
                    "the link's handshake chose a cipher that piece links do not protect records with",
                ));
            }
        };
        let key = UnboundKey::new(algorithm, key.as_ref())
            .map_err(|_| io::Error::other("the link's traffic key has the wrong length"))?;
        let iv = <[u8; NONCE_LEN]>::try_from(iv.as_ref())
            .map_err(|_| io::Error::other("the link's traffic IV has the wrong length"))?;
        Ok(Keys {
            key: LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// The next record's nonce: the IV with the sequence number XORed into its last 8 bytes.
    fn next_nonce(&mut self) -> io::Result<Nonce> {
        if self.seq >= RECORDS_PER_KEY {
            return Err(io::Error::other(
                "the link protected as many records as one key may; a new link takes over",
            ));
        }
        let mut nonce = self.iv;
        for (byte, seq) in nonce[NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *byte ^= seq;
        }
        self.seq += 1;
        Ok(Nonce::assume_unique_for_key(nonce))
    }
}

/// Seals what this end sends.
pub(crate) struct Sealer {
    keys: Keys,
}

impl Sealer {
    /// The sealer for the "tx" half of a connection's extracted secrets.
    pub(crate) fn new(tx: (u64, ConnectionTrafficSecrets)) -> io::Result<Sealer> {
        Ok(Sealer {
            keys: Keys::new(tx)?,
        })
    }

    /// Appends one application-data record carrying `plaintext` (at most [`MAX_PLAINTEXT`]
    /// bytes) to `out`, sealed.
    pub(crate) fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(io::Error::other(
                "more plaintext than one TLS record carries",
            ));
        }
        let nonce = self.keys.next_nonce()?;
        let len = plaintext.len() + 1 + TAG_LEN;
        let header = [APPLICATION_DATA, 3, 3, (len >> 8) as u8, (len & 0xff) as u8];
        out.extend_from_slice(&header);
        let start = out.len();
        out.extend_from_slice(plaintext);
        out.push(APPLICATION_DATA);
        let tag = self
            .keys
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), &mut out[start..])
            .map_err(|_| io::Error::other("sealing a TLS record failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }
}

/// What one opened record holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    /// Application data: where its plaintext lies in the record as given.
    Data(Range<usize>),
    /// A message to skip (a session ticket, or a compatibility change_cipher_spec).
    Skip,
    /// The peer's `close_notify`: nothing follows.
    Closed,
}

/// Opens what the peer sends.
pub(crate) struct Opener {
    keys: Keys,
}

impl Opener {
    /// The opener for the "rx" half of a connection's extracted secrets.
    pub(crate) fn new(rx: (u64, ConnectionTrafficSecrets)) -> io::Result<Opener> {
        Ok(Opener {
            keys: Keys::new(rx)?,
        })
    }

    /// Opens `record` (exactly one record, header included, as [`record_len`] measured it)
    /// in place. An error is `InvalidData`: the link cannot go on.
    pub(crate) fn open(&mut self, record: &mut [u8]) -> io::Result<Opened> {
        let (header, body) = record.split_at_mut(HEADER_LEN);
        let header = <[u8; HEADER_LEN]>::try_from(&*header).map_err(|_| invalid("a cut record"))?;
        match header[0] {
            APPLICATION_DATA => {}
            // Sent unencrypted around the handshake by implementations that mimic TLS 1.2
            // (RFC 8446, section 5), and never protected: skipped without counting.
            CHANGE_CIPHER_SPEC if body == [1] => return Ok(Opened::Skip),
            other => {
                return Err(invalid(&format!(
                    "an unprotected record of content type {other} after the handshake"
                )));
            }
        }
        let nonce = self.keys.next_nonce()?;
        let plaintext = self
            .keys
            .key
            .open_in_place(nonce, Aad::from(header), body)
            .map_err(|_| {
                invalid("a record that does not decrypt (altered, or not from the peer)")
            })?;
        // The content type is the last byte that is not zero padding.
        let Some(typed) = plaintext.iter().rposition(|&b| b != 0) else {
            return Err(invalid("a record with no content type"));
        };
        let content = &plaintext[..typed];
        match plaintext[typed] {
            APPLICATION_DATA => Ok(Opened::Data(HEADER_LEN..HEADER_LEN + typed)),
            HANDSHAKE if content.first() == Some(&NEW_SESSION_TICKET) => Ok(Opened::Skip),
            HANDSHAKE => Err(invalid(
                "a handshake message after the handshake (piece links do not update keys)",
            )),
            ALERT if content.get(1) == Some(&CLOSE_NOTIFY) => Ok(Opened::Closed),
            ALERT => Err(invalid(&format!(
                "the peer sent TLS alert {}",
                content.get(1).copied().unwrap_or_default()
            ))),
            other => Err(invalid(&format!("a record of content type {other}"))),
        }
    }
}

/// The length of the record whose header is `header`, header included; `InvalidData` when
/// it is over TLS's limit or too short to hold a tag.
pub(crate) fn record_len(header: &[u8]) -> io::Result<usize> {
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if len > MAX_CIPHERTEXT {
        return Err(invalid("a record over TLS's size limit"));
    }
    if len == 0 {
        return Err(invalid("an empty record"));
    }
    Ok(HEADER_LEN + len)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("TLS on the piece link: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::cipher::{AeadKey, Iv};

    fn pair(seq: u64) -> (Sealer, Opener) {
        let secrets = || ConnectionTrafficSecrets::Aes256Gcm {
            key: AeadKey::from([7u8; 32]),
            iv: Iv::from([9u8; NONCE_LEN]),
        };
        (
            Sealer::new((seq, secrets())).unwrap(),
            Opener::new((seq, secrets())).unwrap(),
        )
    }

    #[test]
    fn a_sealed_record_opens_to_its_plaintext_in_order() {
        let (mut sealer, mut opener) = pair(0);
        let mut wire = Vec::new();
        sealer.seal(b"first", &mut wire).unwrap();
        sealer.seal(&[5; MAX_PLAINTEXT], &mut wire).unwrap();
        let first = record_len(&wire[..HEADER_LEN]).unwrap();
        let (one, two) = wire.split_at_mut(first);
        let opened = opener.open(one).unwrap();
        assert_eq!(opened, Opened::Data(HEADER_LEN..HEADER_LEN + 5));
        assert_eq!(&one[HEADER_LEN..HEADER_LEN + 5], b"first");
        assert_eq!(record_len(&two[..HEADER_LEN]).unwrap(), two.len());
        assert_eq!(
            opener.open(two).unwrap(),
            Opened::Data(HEADER_LEN..HEADER_LEN + MAX_PLAINTEXT)
        );
        assert!(
            two[HEADER_LEN..HEADER_LEN + MAX_PLAINTEXT]
                .iter()
                .all(|&b| b == 5)
        );
    }

    #[test]
    fn an_altered_replayed_or_reordered_record_does_not_open() {
        let (mut sealer, mut opener) = pair(0);
        let mut first = Vec::new();
        sealer.seal(b"one", &mut first).unwrap();
        let mut second = Vec::new();
        sealer.seal(b"two", &mut second).unwrap();
        // Out of order: the second record under the first's sequence number.
        let error = opener.open(&mut second.clone()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        // Altered: one bit of the ciphertext.
        let (_, mut opener) = pair(0);
        let mut altered = first.clone();
        altered[HEADER_LEN] ^= 1;
        assert!(opener.open(&mut altered).is_err());
        // Altered header (authenticated as associated data).
        let (_, mut opener) = pair(0);
        let mut header = first.clone();
        header[2] = 4;
        assert!(opener.open(&mut header).is_err());
        // Replayed: the first record twice.
        let (_, mut opener) = pair(0);
        assert!(opener.open(&mut first.clone()).is_ok());
        assert!(opener.open(&mut first.clone()).is_err());
    }

    #[test]
    fn oversized_and_empty_records_are_refused_before_reading_them() {
        assert!(record_len(&[23, 3, 3, 0x41, 0x01]).is_err());
        assert!(record_len(&[23, 3, 3, 0, 0]).is_err());
        assert_eq!(
            record_len(&[23, 3, 3, 0x41, 0x00]).unwrap(),
            HEADER_LEN + MAX_CIPHERTEXT
        );
    }

    #[test]
    fn a_link_ends_before_its_key_is_worn_out() {
        let (mut sealer, _) = pair(RECORDS_PER_KEY - 1);
        let mut wire = Vec::new();
        sealer.seal(b"last", &mut wire).unwrap();
        assert!(sealer.seal(b"one more", &mut wire).is_err());
    }
}
