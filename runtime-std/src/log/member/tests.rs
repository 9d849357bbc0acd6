//! The log of a member of a four-member network (f = 1): batches checked as every member
//! checks them before voting, then applied with three members' cosignatures.

use pyrsia_core::consensus::wire::Batch;
use pyrsia_core::identity::SecretKey;
use pyrsia_core::tlog::checkpoint::SignedCheckpoint;
use pyrsia_core::tlog::entry::{
    BuildRequest, Commit, Coordinates, DOCKER_FETCH_V1, DigestList, ECOSYSTEM_DOCKER, Entry,
    Genesis, KeyList, PieceRootList, SignatureList, Statement,
};

use crate::log::{Applied, Log, LogError};

const NOW: u64 = 1_795_694_400;
const NAME: &str = "docker.io/library/small";
const VERSION: &str = "sha256:0101010101010101010101010101010101010101010101010101010101010101";

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

fn coordinates() -> Coordinates<'static> {
    Coordinates {
        ecosystem: ECOSYSTEM_DOCKER,
        name: NAME,
        version: VERSION,
    }
}

/// Member 1's log of a four-member network, with the genesis batch applied.
fn member_log(dir: &std::path::Path) -> Log {
    let keys: Vec<u8> = (1..=4).flat_map(|s| key(s).public().to_bytes()).collect();
    let genesis = Entry::Genesis(Genesis {
        origin: "pyrsia.test/members",
        faults: 1,
        members: KeyList(&keys),
        created: NOW,
    })
    .encode();
    let log = Log::open(dir, key(1), Some(genesis.clone()), NOW).unwrap();
    assert!(log.is_member() && !log.is_sole_member());
    assert_eq!(log.consensus_height(), 0);
    apply(&log, &[&genesis], NOW, 3).unwrap();
    log
}

/// Checks `entries` as a batch timed `timestamp`, then applies it with `signers` cosignatures.
fn apply(log: &Log, entries: &[&[u8]], timestamp: u64, signers: u8) -> Result<Applied, LogError> {
    let head = log.batch_head(entries, timestamp)?;
    let batch = Batch {
        head,
        entries: entries.to_vec(),
    };
    log.check_batch(&batch)?;
    let checkpoint = head.checkpoint(&log.origin()).unwrap();
    let mut note = SignedCheckpoint::unsigned(checkpoint.clone());
    for s in 1..=signers {
        note.add(checkpoint.sign(&key(s))).unwrap();
    }
    let owned: Vec<Vec<u8>> = entries.iter().map(|e| e.to_vec()).collect();
    log.apply_checkpoint(&note, &owned)
}

fn request() -> Vec<u8> {
    Entry::BuildRequest(BuildRequest {
        coordinates: coordinates(),
        build_type: DOCKER_FETCH_V1,
        source: "http://127.0.0.1:5000",
        requester: key(1).public().key_id(),
    })
    .encode()
}

/// A commit of the request at `index` attested by `attesters`, selected by `selection`.
fn commit(log: &Log, index: u64, attesters: &[u8], selection: (u64, [u8; 32])) -> Vec<u8> {
    let outputs = [7u8; 32];
    let statement = Statement {
        request_index: index,
        coordinates: coordinates(),
        build_type: DOCKER_FETCH_V1,
        outputs: DigestList(&outputs),
        epoch: log.members().epoch(),
        selection_size: selection.0,
        selection_root: selection.1,
        piece_roots: PieceRootList(&[]),
    };
    let signatures: Vec<u8> = attesters
        .iter()
        .flat_map(|s| statement.sign(&key(*s)).to_bytes())
        .collect();
    Entry::Commit(Commit {
        statement,
        attestations: SignatureList(&signatures),
    })
    .encode()
}

#[test]
fn members_order_a_request_then_its_commit_under_cosigned_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let log = member_log(dir.path());
    assert_eq!(log.size(), 1);
    assert_eq!(
        log.consensus_height(),
        NOW,
        "the height is the last checkpoint's time"
    );

    let request = request();
    assert_eq!(
        apply(&log, &[&request], NOW + 1, 3).unwrap(),
        Applied::Extended(2)
    );
    assert_eq!(log.find_request(NAME, VERSION), Some(1));
    assert_eq!(log.open_requests().len(), 1);
    let selection = log.selection_checkpoint(1).unwrap();
    assert_eq!(selection.0, 2, "the tree that ends with the request");

    let commit = commit(&log, 1, &[2, 3], selection);
    assert_eq!(
        apply(&log, &[&commit], NOW + 2, 3).unwrap(),
        Applied::Extended(3)
    );
    assert_eq!(log.find_commit(NAME, VERSION), Some(2));
    assert!(log.open_requests().is_empty());

    // A heartbeat: no entries, a later time.
    assert_eq!(apply(&log, &[], NOW + 3600, 3).unwrap(), Applied::Refreshed);
    assert_eq!(log.consensus_height(), NOW + 3600);
}

#[test]
fn members_refuse_batches_that_break_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let log = member_log(dir.path());
    let request = request();
    apply(&log, &[&request], NOW + 1, 3).unwrap();
    let selection = log.selection_checkpoint(1).unwrap();

    // Only f = 1 attestation (PROTOCOL case 4): refused.
    let weak = commit(&log, 1, &[2], selection);
    assert!(apply(&log, &[&weak], NOW + 2, 3).is_err());
    // Bound to another selection checkpoint, or another request index (case 12): refused.
    let reselected = commit(&log, 1, &[2, 3], (2, [9; 32]));
    assert!(apply(&log, &[&reselected], NOW + 2, 3).is_err());
    let elsewhere = commit(&log, 0, &[2, 3], selection);
    assert!(apply(&log, &[&elsewhere], NOW + 2, 3).is_err());
    // The same coordinates committed twice in one batch, or again later (case 13): refused.
    let good = commit(&log, 1, &[2, 3], selection);
    let other = commit(&log, 1, &[3, 4], selection);
    assert!(apply(&log, &[&good, &other], NOW + 2, 3).is_err());
    apply(&log, &[&good], NOW + 2, 3).unwrap();
    assert!(apply(&log, &[&other], NOW + 3, 3).is_err());
    // A batch not later than the last final checkpoint: refused.
    assert!(apply(&log, &[&request], NOW + 2, 3).is_err());
    // Two cosignatures are not a quorum (3 of 4): nothing is stored.
    let size = log.size();
    assert!(apply(&log, &[], NOW + 10, 2).is_err());
    assert_eq!(log.size(), size);
}

#[test]
fn a_proposer_leaves_invalid_entries_out_of_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = member_log(dir.path());
    let request = request();
    apply(&log, &[&request], NOW + 1, 3).unwrap();
    let selection = log.selection_checkpoint(1).unwrap();
    let weak = commit(&log, 1, &[2], selection);
    let good = commit(&log, 1, &[2, 3], selection);
    let second = commit(&log, 1, &[3, 4], selection);
    let (chosen, head) = log.with_state(|state| {
        let (chosen, head) = state.choose_batch(&[&weak, &good, &second, &request], NOW + 2);
        (
            chosen.into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>(),
            head,
        )
    });
    let chosen: Vec<&[u8]> = chosen.iter().map(Vec::as_slice).collect();
    // The weak commit and the second commit of the same coordinates are left out; the
    // repeated request is valid (duplicates are ignored by the rounds) and stays.
    assert_eq!(chosen, [good.as_slice(), request.as_slice()]);
    assert_eq!(head, log.batch_head(&chosen, NOW + 2).unwrap());
}

#[test]
fn the_voting_state_and_evidence_survive_a_reopen() {
    use pyrsia_core::consensus::ordering::{CastVote, VotingState};
    let dir = tempfile::tempdir().unwrap();
    let state = VotingState {
        height: NOW,
        round: 2,
        locked: Some((1, [4; 32])),
        votes: vec![CastVote {
            round: 2,
            precommit: false,
            id: None,
        }],
        proposed: false,
        valid: Some((1, b"the batch locked on".to_vec())),
    };
    {
        let log = member_log(dir.path());
        assert_eq!(log.voting_state(), None);
        log.save_voting_state(&state).unwrap();
        log.keep_evidence(b"attestation/1", b"statement").unwrap();
    }
    let log = Log::open(dir.path(), key(1), None, NOW).unwrap();
    assert_eq!(log.voting_state(), Some(state));
    assert_eq!(log.evidence_count(), 1);
}

#[test]
fn a_voting_state_written_before_the_valid_value_was_kept_still_reads() {
    use pyrsia_core::consensus::ordering::{CastVote, VotingState};
    let dir = tempfile::tempdir().unwrap();
    let votes = vec![CastVote {
        round: 3,
        precommit: true,
        id: Some([9; 32]),
    }];
    // The former layout: height, round, lock, votes, proposed.
    let old = postcard::to_allocvec(&(NOW, 3u32, Some((3u32, [9u8; 32])), &votes, true)).unwrap();
    let log = member_log(dir.path());
    log.tables
        .get()
        .unwrap()
        .state
        .insert(super::VOTING_KEY, old)
        .unwrap();
    assert_eq!(
        log.voting_state(),
        Some(VotingState {
            height: NOW,
            round: 3,
            locked: Some((3, [9; 32])),
            votes,
            proposed: true,
            valid: None,
        })
    );
}
