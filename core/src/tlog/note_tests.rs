//! Checkpoint notes and log entries: round trips and every malformed form refused.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::checkpoint::*;
use super::entry::*;
use crate::digest::Digest;
use crate::identity::{PublicKey, SecretKey};
use proptest::prelude::*;

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

fn signed(signers: &[u8]) -> SignedCheckpoint {
    let cp = Checkpoint::new("pyrsia.test/log", 42, [7; 32], 1_795_694_400).unwrap();
    let mut note = SignedCheckpoint::unsigned(cp.clone());
    for &s in signers {
        note.add(cp.sign(&key(s))).unwrap();
    }
    note
}

#[test]
fn note_round_trips_and_signatures_verify() {
    let note = signed(&[1, 2, 3]);
    let text = note.to_string();
    assert!(text.starts_with("pyrsia.test/log\n42\n"), "{text}");
    assert!(
        text.contains("\ntimestamp 1795694400\n\n\u{2014} "),
        "{text}"
    );
    let parsed = SignedCheckpoint::parse(&text).unwrap();
    assert_eq!(parsed, note);
    for (c, seed) in parsed.cosignatures.iter().zip([1, 2, 3]) {
        assert!(parsed.checkpoint.verify(&key(seed).public(), c));
        assert!(!parsed.checkpoint.verify(&key(9).public(), c));
    }
    // A signature is over the whole body: another size does not verify.
    let mut other = parsed.checkpoint.clone();
    other.size += 1;
    assert!(!other.verify(&key(1).public(), &parsed.cosignatures[0]));
}

#[test]
fn malformed_notes_are_refused() {
    let good = signed(&[1, 2]).to_string();
    let cases: Vec<(String, NoteError)> = alloc::vec![
        (good.replace("\n\n", "\n"), NoteError::Malformed),
        (good.replace("\n42\n", "\n042\n"), NoteError::BadNumber),
        (good.replace("\n42\n", "\n+42\n"), NoteError::BadNumber),
        (
            good.replace("\n42\n", "\n99999999999999999999\n"),
            NoteError::BadNumber
        ),
        (good.replace("timestamp ", "time "), NoteError::Malformed),
        (
            good.replace("pyrsia.test/log\n", "\n"),
            NoteError::BadOrigin
        ),
        (
            good.replace("pyrsia.test/log", "bad\torigin"),
            NoteError::BadOrigin
        ),
        (good.replace("BwcH", "B!cH"), NoteError::BadBase64),
        (good.trim_end().to_string(), NoteError::Malformed),
        (
            good.split("\n\n").next().unwrap().to_string() + "\n\n",
            NoteError::Malformed
        ),
        ("x".repeat(MAX_NOTE_LEN + 1), NoteError::TooLong),
    ];
    for (text, expected) in cases {
        assert_eq!(SignedCheckpoint::parse(&text), Err(expected), "{text:?}");
    }
    // A signature line claiming another key than its hint.
    let line = good.lines().last().unwrap();
    let forged = good.replace(line, &format!("{}ffff{}", &line[..4], &line[8..]));
    assert_eq!(
        SignedCheckpoint::parse(&forged),
        Err(NoteError::KeyHintMismatch)
    );
    // The same signer twice.
    let doubled = format!("{good}{line}\n");
    assert_eq!(
        SignedCheckpoint::parse(&doubled),
        Err(NoteError::DuplicateSigner)
    );
}

fn genesis_bytes(members: &[PublicKey]) -> Vec<u8> {
    let keys: Vec<u8> = members.iter().flat_map(|k| k.to_bytes()).collect();
    Entry::Genesis(Genesis {
        origin: "pyrsia.test/log",
        faults: 0,
        members: KeyList(&keys),
        created: 5,
    })
    .encode()
}

#[test]
fn every_entry_kind_round_trips() {
    let coordinates = Coordinates {
        ecosystem: ECOSYSTEM_DOCKER,
        name: "docker.io/library/alpine",
        version: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    };
    let digests: Vec<u8> = [Digest::sha256(b"a"), Digest::sha256(b"b")]
        .iter()
        .flat_map(|d| *d.as_bytes())
        .collect();
    let roots: Vec<u8> = Digest::sha256(b"b")
        .as_bytes()
        .iter()
        .chain(&[9u8; 32])
        .copied()
        .collect();
    let statement = Statement {
        request_index: 3,
        coordinates,
        build_type: DOCKER_FETCH_V1,
        outputs: DigestList(&digests),
        epoch: 0,
        selection_size: 3,
        selection_root: [1; 32],
        piece_roots: PieceRootList(&roots),
    };
    let attestation = statement.sign(&key(1)).to_bytes();
    let change = MembershipChange {
        epoch: 1,
        key: key(2).public(),
        signatures: SignatureList(&attestation),
    };
    let genesis = genesis_bytes(&[key(1).public()]);
    let entries = [
        Entry::decode(&genesis).unwrap(),
        Entry::BuildRequest(BuildRequest {
            coordinates,
            build_type: DOCKER_FETCH_V1,
            source: "https://registry-1.docker.io",
            requester: key(1).public().key_id(),
        }),
        Entry::Commit(Commit {
            statement,
            attestations: SignatureList(&attestation),
        }),
        Entry::Dispute(Dispute {
            request_index: 3,
            coordinates,
            evidence: b"evidence",
        }),
        Entry::Unverifiable(Dispute {
            request_index: 3,
            coordinates,
            evidence: b"",
        }),
        Entry::UnattestedTag(UnattestedTag {
            tag: Coordinates {
                version: "latest",
                ..coordinates
            },
            digest: Digest::sha256(b"m"),
            checkpoint_size: 4,
            observer: key(1).public().key_id(),
            observed_at: 9,
        }),
        Entry::AddMember(change),
        Entry::RemoveMember(change),
        Entry::TagObservation(TagObservation {
            statement: TagStatement {
                tag: Coordinates {
                    version: "latest",
                    ..coordinates
                },
                digest: Digest::sha256(b"m"),
                epoch: 0,
                checkpoint_size: 4,
                observer: key(1).public().key_id(),
                observed_at: 9,
            },
            attestations: SignatureList(&attestation),
        }),
    ];
    for entry in entries {
        let bytes = entry.encode();
        assert_eq!(Entry::decode(&bytes), Ok(entry));
        let mut buf = [0u8; 1024];
        assert_eq!(entry.encode_into(&mut buf).unwrap(), &bytes[..]);
        assert_eq!(
            entry.encode_into(&mut [0u8; 8]),
            Err(EntryError::BufferFull)
        );
    }
    let Entry::Commit(commit) = entries[2] else {
        unreachable!()
    };
    assert!(commit.statement.outputs.contains(&Digest::sha256(b"b")));
    assert!(!commit.statement.outputs.contains(&Digest::sha256(b"c")));
    assert_eq!(
        commit.statement.piece_roots.root_of(&Digest::sha256(b"b")),
        Some([9; 32])
    );
    assert_eq!(
        commit.statement.piece_roots.root_of(&Digest::sha256(b"a")),
        None
    );
    let signed = commit.attestations.iter().next().unwrap();
    assert!(commit.statement.verify(&key(1).public(), &signed.signature));
    let replayed = Statement {
        request_index: 4,
        ..commit.statement
    };
    assert!(!replayed.verify(&key(1).public(), &signed.signature));
}

#[test]
fn malformed_entries_are_refused() {
    let genesis = genesis_bytes(&[key(1).public()]);
    let mut wrong_format = genesis.clone();
    wrong_format[0] = 2;
    assert_eq!(Entry::decode(&wrong_format), Err(EntryError::UnknownFormat));
    let mut trailing = genesis.clone();
    trailing.push(0);
    assert_eq!(Entry::decode(&trailing), Err(EntryError::Malformed));
    assert_eq!(Entry::decode(&[]), Err(EntryError::Malformed));
    assert_eq!(
        Entry::decode(&[ENTRY_FORMAT, 200]),
        Err(EntryError::Malformed)
    );
    let partial = Entry::Genesis(Genesis {
        origin: "o",
        faults: 0,
        members: KeyList(&[1; 33]),
        created: 0,
    })
    .encode();
    assert_eq!(Entry::decode(&partial), Err(EntryError::BadList));
    assert_eq!(
        Entry::decode(&alloc::vec![ENTRY_FORMAT; MAX_ENTRY_LEN + 1]),
        Err(EntryError::TooLong)
    );
    // An overlong varint for `created` (5 encoded as 0x85 0x00) is not canonical.
    let mut overlong = genesis.clone();
    let last = overlong.pop().unwrap();
    assert_eq!(last, 5);
    overlong.extend([0x85, 0x00]);
    assert_eq!(Entry::decode(&overlong), Err(EntryError::Malformed));
}

proptest! {
    #[test]
    fn arbitrary_note_text_never_panics(text in "\\PC{0,400}") {
        let _ = SignedCheckpoint::parse(&text);
    }

    #[test]
    fn arbitrary_entry_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(entry) = Entry::decode(&bytes) {
            prop_assert_eq!(entry.encode(), bytes);
        }
    }
}
