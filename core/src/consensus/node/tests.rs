//! The member node's rules, one by one, on members exchanging their real sealed messages.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use super::*;
use crate::consensus::limits::VALUES_PER_MEMBER;
use crate::consensus::wire::Vote;
use crate::digest::Digest;
use crate::members::faults_for;
use crate::tlog::entry::{Coordinates, Dispute, ECOSYSTEM_DOCKER, Entry, Genesis, KeyList};
use crate::tlog::state::Offer;

mod relay;

const WALL: u64 = 1_800_000_000;

fn key(i: usize) -> SecretKey {
    SecretKey::from_seed([i as u8 + 1; 32])
}

fn genesis(n: usize) -> LogState {
    let keys: Vec<u8> = (0..n).flat_map(|i| key(i).public().to_bytes()).collect();
    let genesis = Entry::Genesis(Genesis {
        origin: "pyrsia.test/node",
        faults: faults_for(n) as u32,
        members: KeyList(&keys),
        created: WALL,
    })
    .encode();
    LogState::new(genesis).unwrap()
}

fn at(millis: u64) -> Now {
    Now {
        mono: Instant::from_millis(millis),
        wall_secs: WALL + millis / 1000,
    }
}

/// `n` members on one network that delivers everything at once; a member persists at once.
struct Net {
    nodes: Vec<MemberNode>,
    logs: Vec<LogState>,
    builds: Vec<(usize, u64, Vec<u8>)>,
    decided: usize,
    /// Members whose upstream serves another digest for every tag (the tag moved for them).
    moved_for: Vec<usize>,
    /// The entries member 0 stored, in order.
    ordered: Vec<Vec<u8>>,
    /// The digests of the sealed messages each member sent or received: as gossipsub, a
    /// member publishes nothing it has seen and takes nothing twice.
    seen: Vec<BTreeSet<[u8; 32]>>,
    /// Which messages the network loses: `(from, to, message)` → lost.
    lose: Option<fn(usize, usize, &MemberMessage<'_>) -> bool>,
    /// The evidence each member kept: `(member, kind)`.
    evidence: Vec<(usize, EvidenceKind)>,
}

/// The version every package tag names upstream (`9.9.9` once the tag moved).
const PACKAGE_VERSION: &str = "1.0.0";

/// What an upstream serves for any tag of `name`: the artifact's digest, or another one once
/// the tag moved.
fn upstream_tag(name: &str, moved: bool) -> Digest {
    if moved {
        Digest::sha256(b"the tag moved")
    } else {
        Digest::sha256(name.as_bytes())
    }
}

impl Net {
    fn new(n: usize) -> Net {
        Net {
            nodes: (0..n)
                .map(|i| MemberNode::new(key(i), NodeConfig::default(), 1, None))
                .collect(),
            logs: (0..n).map(|_| genesis(n)).collect(),
            builds: Vec::new(),
            decided: 0,
            moved_for: Vec::new(),
            ordered: Vec::new(),
            seen: (0..n).map(|_| BTreeSet::new()).collect(),
            lose: None,
            evidence: Vec::new(),
        }
    }

    /// Delivers `sealed`, published by member `from`, to every other member: as gossipsub
    /// does, not at all when `from` has seen those bytes, and to no member twice.
    fn publish(&mut self, now: Now, from: usize, sealed: &[u8]) {
        let id = *Digest::sha256(sealed).as_bytes();
        if !self.seen[from].insert(id) {
            return;
        }
        let message = Envelope::decode(sealed)
            .and_then(|e| e.open(self.logs[from].members()))
            .ok();
        for to in 0..self.nodes.len() {
            let lost = match (self.lose, &message) {
                (Some(lose), Some(message)) => lose(from, to, message),
                _ => false,
            };
            if to != from && !lost && self.seen[to].insert(id) {
                let _ = self.nodes[to].handle_message(&self.logs[to], now, sealed);
            }
        }
    }

    /// Carries out every output until nothing is left, delivering broadcasts to the others.
    fn settle(&mut self, now: Now) {
        let mut progress = true;
        while progress {
            progress = false;
            for i in 0..self.nodes.len() {
                while let Some(output) = self.nodes[i].poll_output() {
                    progress = true;
                    match output {
                        NodeOutput::Persist { ticket, state } => {
                            self.nodes[i].persisted(&self.logs[i], now, ticket, state)
                        }
                        NodeOutput::Broadcast(sealed) => self.publish(now, i, &sealed),
                        NodeOutput::Build { index, request } => {
                            self.builds.push((i, index, request))
                        }
                        NodeOutput::Decided {
                            checkpoint,
                            entries,
                        } => {
                            let Ok(Offer::Extend(checked)) =
                                self.logs[i].check_offer(&checkpoint, &entries)
                            else {
                                panic!("member {i} decided a batch its log refuses");
                            };
                            self.logs[i].extend(checked, *checkpoint, &entries);
                            if i == 0 {
                                self.ordered.extend(entries);
                            }
                            self.decided += 1;
                            self.nodes[i].tick(&self.logs[i], now);
                        }
                        NodeOutput::ResolveTag {
                            ecosystem,
                            name,
                            ticket,
                            ..
                        } => {
                            let moved = self.moved_for.contains(&i);
                            let named = if ecosystem == ECOSYSTEM_DOCKER {
                                upstream_tag(&name, moved).to_string()
                            } else {
                                String::from(if moved { "9.9.9" } else { PACKAGE_VERSION })
                            };
                            self.nodes[i].tag_resolved(&self.logs[i], now, &ticket, Some(&named));
                        }
                        NodeOutput::Evidence { kind, .. } => self.evidence.push((i, kind)),
                    }
                }
            }
        }
    }

    fn tick(&mut self, now: Now) {
        for i in 0..self.nodes.len() {
            self.nodes[i].tick(&self.logs[i], now);
        }
        self.settle(now);
    }
}

fn artifact(name: &str) -> ArtifactRequest<'_> {
    ArtifactRequest {
        name,
        manifest: Digest::sha256(name.as_bytes()),
        tag: None,
        source: "https://registry.test",
    }
}

#[test]
fn four_members_order_the_genesis_then_a_request_with_a_quorum_certificate() {
    let mut net = Net::new(4);
    net.tick(at(0));
    assert!(
        net.logs.iter().all(|l| l.final_size() == 1),
        "genesis ordered"
    );
    net.nodes[2].request(&net.logs[2], at(1000), &artifact("docker.io/a/b"));
    net.settle(at(1000));
    for log in &net.logs {
        assert_eq!(log.final_size(), 2);
        let note = log.latest().unwrap();
        assert!(log.members().checkpoint_signers(note) >= log.members().quorum());
        assert!(
            log.index()
                .request(
                    "docker.io/a/b",
                    &Digest::sha256(b"docker.io/a/b").to_string()
                )
                .is_some()
        );
    }
    // Every member follows the request's build round; the selected ones are asked to build.
    assert!(!net.builds.is_empty());
}

#[test]
fn a_vote_leaves_only_after_its_state_is_persisted() {
    let mut net = Net::new(1);
    let log = &net.logs[0];
    net.nodes[0].tick(log, at(0));
    let outputs: Vec<NodeOutput> = core::iter::from_fn(|| net.nodes[0].poll_output()).collect();
    let persist = outputs
        .iter()
        .position(|o| matches!(o, NodeOutput::Persist { .. }))
        .expect("the proposal's state is persisted first");
    let is_vote = |o: &NodeOutput| match o {
        NodeOutput::Broadcast(sealed) => {
            let envelope = Envelope::decode(sealed).unwrap();
            matches!(
                envelope.open(net.logs[0].members()),
                Ok(MemberMessage::Vote(_))
            )
        }
        _ => false,
    };
    assert!(
        !outputs[..persist].iter().any(is_vote),
        "no vote is sent before the state it depends on is on disk"
    );
    assert!(
        outputs[persist..].iter().all(|o| !is_vote(o)),
        "nor before persisted() says so"
    );
}

#[test]
fn a_sole_member_decides_alone_and_builds_its_requests() {
    let mut net = Net::new(1);
    net.tick(at(0));
    net.nodes[0].request(&net.logs[0], at(10), &artifact("docker.io/x/y"));
    net.settle(at(10));
    assert_eq!(net.logs[0].final_size(), 2);
    let (_, index, _) = net.builds.pop().expect("the sole member builds");
    let outputs = alloc::vec![Digest::sha256(b"docker.io/x/y")];
    net.nodes[0].built(
        &net.logs[0],
        at(20),
        index,
        Ok(BuildResult {
            outputs,
            piece_roots: Vec::new(),
        }),
    );
    net.settle(at(20));
    let version = Digest::sha256(b"docker.io/x/y").to_string();
    assert!(
        net.logs[0]
            .index()
            .commit("docker.io/x/y", &version)
            .is_some()
    );
    assert_eq!(net.nodes[0].pending(), 0);
}

#[test]
fn forged_verdicts_and_tags_and_implausible_heights_are_refused() {
    let mut net = Net::new(4);
    net.tick(at(0));
    net.nodes[0].request(&net.logs[0], at(1000), &artifact("docker.io/a/b"));
    net.settle(at(1000));
    let (index, bytes) = net.logs[1]
        .index()
        .open_requests()
        .map(|(i, b)| (i, b.to_vec()))
        .next()
        .unwrap();
    let Ok(Entry::BuildRequest(request)) = Entry::decode(&bytes) else {
        panic!()
    };
    let forged = Entry::Unverifiable(Dispute {
        request_index: index,
        coordinates: Coordinates {
            ecosystem: ECOSYSTEM_DOCKER,
            ..request.coordinates
        },
        evidence: &[0],
    })
    .encode();
    let sealed = Envelope::seal(&key(3), 99, &MemberMessage::Submit { entry: &forged });
    assert_eq!(
        net.nodes[1].handle_message(&net.logs[1], at(1100), &sealed),
        Err(Rejection::UnwantedEntry)
    );
    // A tag pointed at a digest nobody committed: refused, even with every member's word.
    let tag = tag_observation(
        "docker.io/a/b",
        Digest::sha256(b"not what the builders found"),
        1,
        &[0, 1, 2, 3],
    );
    let sealed = Envelope::seal(&key(3), 98, &MemberMessage::Submit { entry: &tag });
    assert_eq!(
        net.nodes[1].handle_message(&net.logs[1], at(1100), &sealed),
        Err(Rejection::UnwantedEntry)
    );
    let far = Envelope::seal(
        &key(3),
        100,
        &MemberMessage::Vote(Vote::Prevote {
            height: u64::MAX - 5,
            round: 0,
            id: None,
        }),
    );
    assert_eq!(
        net.nodes[1].handle_message(&net.logs[1], at(1100), &far),
        Err(Rejection::ImplausibleHeight)
    );
    let stranger = Envelope::seal(&key(9), 1, &MemberMessage::Submit { entry: &forged });
    assert!(matches!(
        net.nodes[1].handle_message(&net.logs[1], at(1100), &stranger),
        Err(Rejection::Wire(_))
    ));
}

#[test]
fn one_members_proposals_fill_only_its_share_of_the_value_table() {
    let mut net = Net::new(4);
    net.tick(at(0));
    let height = net.logs[1].consensus_height();
    for n in 0..(VALUES_PER_MEMBER as u64 + 10) {
        let value = Batch {
            head: CheckpointHead {
                size: n,
                root: [n as u8; 32],
                timestamp: height + 1 + n,
            },
            entries: Vec::new(),
        }
        .encode();
        let sealed = Envelope::seal(
            &key(3),
            1000 + n,
            &MemberMessage::Vote(Vote::Proposal {
                height: height + 1 + n,
                round: 0,
                value: &value,
                valid_round: None,
            }),
        );
        let _ = net.nodes[1].handle_message(&net.logs[1], at(1000), &sealed);
    }
    assert!(net.nodes[1].values.len() <= VALUES_PER_MEMBER + 1);
    // The honest members still order a request.
    net.nodes[0].request(&net.logs[0], at(2000), &artifact("docker.io/a/c"));
    net.settle(at(2000));
    assert!(net.logs.iter().all(|l| l.final_size() == 2));
}

#[test]
fn builds_run_at_most_the_cap_at_once_and_the_next_starts_when_one_ends() {
    builds_run_at_most(crate::consensus::limits::MAX_CONCURRENT_BUILDS);
    builds_run_at_most(1);
    builds_run_at_most(7);
}

/// Twelve selections for a member whose `max_builds` is `cap`.
fn builds_run_at_most(cap: usize) {
    let config = NodeConfig {
        max_builds: cap,
        ..NodeConfig::default()
    };
    let mut node = MemberNode::new(key(0), config, 1, None);
    let mut log = genesis(1);
    node.tick(&log, at(0));
    let mut net = Net {
        nodes: alloc::vec![node],
        logs: alloc::vec![log.clone()],
        builds: Vec::new(),
        decided: 0,
        moved_for: Vec::new(),
        ordered: Vec::new(),
        seen: alloc::vec![BTreeSet::new()],
        lose: None,
        evidence: Vec::new(),
    };
    net.settle(at(0));
    for i in 0..12 {
        let name = alloc::format!("docker.io/junk/{i}");
        net.nodes[0].request(&net.logs[0], at(10 + i), &artifact(&name));
        net.settle(at(10 + i));
    }
    // Entries that arrived together are ordered once the candidate is chosen again.
    net.tick(at(1200));
    log = net.logs[0].clone();
    assert_eq!(log.index().open_requests().count(), 12);
    assert_eq!(net.builds.len(), cap, "at most the cap of builds at once");
    // A finished build starts the next queued one.
    let (_, index, _) = net.builds.remove(0);
    net.nodes[0].built(&net.logs[0], at(1300), index, Err(()));
    net.settle(at(1300));
    assert_eq!(net.builds.len(), cap);
}

/// A `TagObservation` of `name:latest` by member `signers[0]`, signed by `signers`.
fn tag_observation(name: &str, digest: Digest, checkpoint_size: u64, signers: &[usize]) -> Vec<u8> {
    let statement = crate::tlog::entry::TagStatement {
        tag: Coordinates {
            ecosystem: ECOSYSTEM_DOCKER,
            name,
            version: "latest",
        },
        digest,
        epoch: 0,
        checkpoint_size,
        observer: key(signers[0]).public().key_id(),
        observed_at: WALL,
    };
    let signatures: Vec<u8> = signers
        .iter()
        .flat_map(|i| statement.sign(&key(*i)).to_bytes())
        .collect();
    Entry::TagObservation(crate::tlog::entry::TagObservation {
        statement,
        attestations: crate::tlog::entry::SignatureList(&signatures),
    })
    .encode()
}

/// Requests `name` by tag at member 0 of four and builds it on every selected member.
fn commit_by_tag(net: &mut Net, name: &str) {
    net.tick(at(0));
    let request = ArtifactRequest {
        tag: Some("latest"),
        ..artifact(name)
    };
    net.nodes[0].request(&net.logs[0], at(1000), &request);
    net.settle(at(1000));
    build_everywhere(net, name);
    net.tick(at(2200));
}

/// Member `i` attesting a wrong digest for every build ([`Misbehaviour::WrongDigest`]).
fn wrong_digest_member(i: usize) -> MemberNode {
    let config = NodeConfig {
        misbehaviour: Some(Misbehaviour::WrongDigest),
        ..NodeConfig::default()
    };
    MemberNode::new(key(i), config, 1, None)
}

/// Every selected member builds what it was asked for at 2 s, its one output the sha256 of
/// `name`.
fn build_everywhere(net: &mut Net, name: &str) {
    for (i, index, _) in core::mem::take(&mut net.builds) {
        let outputs = alloc::vec![Digest::sha256(name.as_bytes())];
        let result = Ok(BuildResult {
            outputs,
            piece_roots: Vec::new(),
        });
        net.nodes[i].built(&net.logs[i], at(2000), index, result);
    }
    net.settle(at(2000));
}

#[test]
fn a_wrong_digest_member_whose_build_ends_after_the_commit_still_attests_and_is_kept_as_evidence() {
    let mut net = Net::new(4);
    net.nodes[3] = wrong_digest_member(3);
    net.tick(at(0));
    // A name whose selection asks the liar to build.
    let name = (0..64)
        .map(|i| alloc::format!("docker.io/slow/liar-{i}"))
        .find(|name| {
            net.nodes[0].request(&net.logs[0], at(1000), &artifact(name));
            net.settle(at(1000));
            net.builds.iter().any(|(i, _, _)| *i == 3)
        })
        .expect("some selection asks member 3");
    let liar_builds: Vec<_> = net.builds.iter().filter(|b| b.0 == 3).cloned().collect();
    net.builds.retain(|b| b.0 != 3);
    build_everywhere(&mut net, &name);
    net.tick(at(2200));
    let digest = Digest::sha256(name.as_bytes()).to_string();
    assert!(net.logs[0].index().commit(&name, &digest).is_some());
    assert!(net.evidence.is_empty());
    // The liar's build ends after the commit: it attests all the same, and every honest
    // member keeps the contradiction.
    for (_, index, _) in liar_builds {
        let outputs = alloc::vec![Digest::sha256(name.as_bytes())];
        let result = Ok(BuildResult {
            outputs,
            piece_roots: Vec::new(),
        });
        net.nodes[3].built(&net.logs[3], at(2400), index, result);
    }
    net.settle(at(2400));
    let keepers: BTreeSet<usize> = net.evidence.iter().map(|(i, _)| *i).collect();
    assert!(
        keepers.is_superset(&BTreeSet::from([0, 1, 2])),
        "{keepers:?}"
    );
    assert!(
        net.evidence
            .iter()
            .all(|(_, kind)| *kind == EvidenceKind::ContradictingAttestation)
    );
}

#[test]
fn a_tag_is_ordered_with_f_plus_one_members_who_resolved_it() {
    let mut net = Net::new(4);
    commit_by_tag(&mut net, "docker.io/a/t");
    let digest = Digest::sha256(b"docker.io/a/t");
    for log in &net.logs {
        assert!(
            log.index()
                .commit("docker.io/a/t", &digest.to_string())
                .is_some()
        );
        let (_, seen) = log
            .index()
            .tag("docker.io/a/t", "latest")
            .expect("tag observed");
        assert_eq!(seen, digest);
    }
    let (index, _) = net.logs[0].index().tag("docker.io/a/t", "latest").unwrap();
    let Ok(Entry::TagObservation(observation)) = Entry::decode(&net.ordered[index as usize]) else {
        panic!("the tag's entry is a TagObservation");
    };
    let (attesters, observer_signed) = net.logs[0].members().tag_attesters(&observation);
    assert!(
        attesters >= 2 && observer_signed,
        "f+1 = 2 vouched, the observer among them"
    );
    // A replay of an older statement of the tag (made before that observation) pointing it
    // elsewhere is refused, even signed by f+1 members; so is one member's word alone.
    let log = &net.logs[1];
    let latest = log.index().tag("docker.io/a/t", "latest").unwrap().0;
    let replay = tag_observation("docker.io/a/t", digest, latest, &[2, 3]);
    assert!(!pool::still_wanted(log, &replay));
    let fresh_alone = tag_observation("docker.io/a/t", digest, log.final_size(), &[3]);
    let sealed = Envelope::seal(
        &key(3),
        77,
        &MemberMessage::Submit {
            entry: &fresh_alone,
        },
    );
    assert_eq!(
        net.nodes[1].handle_message(&net.logs[1], at(3000), &sealed),
        Err(Rejection::UnwantedEntry)
    );
}

#[test]
fn a_tag_the_other_members_resolve_elsewhere_is_never_ordered() {
    let mut net = Net::new(4);
    net.moved_for = alloc::vec![1, 2, 3];
    commit_by_tag(&mut net, "docker.io/a/m");
    let version = Digest::sha256(b"docker.io/a/m").to_string();
    // The image is committed (its builders fetched it by digest); its tag is not observed.
    assert!(
        net.logs[0]
            .index()
            .commit("docker.io/a/m", &version)
            .is_some()
    );
    assert_eq!(net.logs[0].index().tag("docker.io/a/m", "latest"), None);
    // The observer asks again when its query expires, then gives the tag up.
    for minute in 1..=4 {
        net.tick(at(2200 + minute * TAG_QUERY_TIMEOUT.as_millis()));
    }
    assert!(net.nodes[0].pending_tags.is_empty());
    assert_eq!(net.nodes[0].tag_deadline(), None);
    assert!(
        net.logs
            .iter()
            .all(|l| l.index().tag("docker.io/a/m", "latest").is_none())
    );
}

#[test]
fn tag_queries_of_one_member_are_resolved_within_its_share() {
    let mut net = Net::new(4);
    net.tick(at(0));
    let mut asked = 0;
    for i in 0..(TAG_CHECKS_PER_MEMBER + 4) {
        let name = alloc::format!("docker.io/junk/{i}");
        let statement = crate::tlog::entry::TagStatement {
            tag: Coordinates {
                ecosystem: ECOSYSTEM_DOCKER,
                name: &name,
                version: "latest",
            },
            digest: Digest::sha256(name.as_bytes()),
            epoch: 0,
            checkpoint_size: 1,
            observer: key(3).public().key_id(),
            observed_at: WALL,
        };
        let signature = statement.sign(&key(3)).signature;
        let bytes = statement.to_bytes();
        let sealed = Envelope::seal(
            &key(3),
            500 + i as u64,
            &MemberMessage::TagVouch {
                statement: &bytes,
                signature,
            },
        );
        if net.nodes[1]
            .handle_message(&net.logs[1], at(100), &sealed)
            .is_ok()
        {
            asked += 1;
        }
    }
    let lookups = core::iter::from_fn(|| net.nodes[1].poll_output())
        .filter(|o| matches!(o, NodeOutput::ResolveTag { .. }))
        .count();
    assert_eq!(
        (asked, lookups),
        (TAG_CHECKS_PER_MEMBER, TAG_CHECKS_PER_MEMBER)
    );
    // A vouch signed by someone other than its sender is refused.
    let tag = Coordinates {
        ecosystem: ECOSYSTEM_DOCKER,
        name: "docker.io/a/x",
        version: "latest",
    };
    let sealed = tag_query(tag, 2, 3, 900);
    assert_eq!(
        net.nodes[1].handle_message(&net.logs[1], at(200), &sealed),
        Err(Rejection::BadTagVouch)
    );
}

/// A query about `tag` observed and signed by member `observer`, sent by member `sender`.
fn tag_query(tag: Coordinates<'_>, observer: usize, sender: usize, nonce: u64) -> Vec<u8> {
    let statement = crate::tlog::entry::TagStatement {
        tag,
        digest: Digest::sha256(b"x"),
        epoch: 0,
        checkpoint_size: 1,
        observer: key(observer).public().key_id(),
        observed_at: WALL,
    };
    let bytes = statement.to_bytes();
    Envelope::seal(
        &key(sender),
        nonce,
        &MemberMessage::TagVouch {
            statement: &bytes,
            signature: statement.sign(&key(observer)).signature,
        },
    )
}

#[test]
fn two_different_votes_for_one_round_are_kept_as_evidence_and_a_resend_is_not() {
    let mut net = Net::new(4);
    net.tick(at(0));
    let height = net.logs[1].consensus_height();
    let prevote = |nonce, id| {
        Envelope::seal(
            &key(3),
            nonce,
            &MemberMessage::Vote(Vote::Prevote {
                height,
                round: 0,
                id,
            }),
        )
    };
    let evidence = |node: &mut MemberNode| {
        core::iter::from_fn(|| node.poll_output())
            .filter_map(|o| match o {
                NodeOutput::Evidence { kind, key, bytes } => Some((kind, key, bytes)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let node = &mut net.nodes[1];
    let log = &net.logs[1];
    // The same vote sent again (another nonce): no evidence.
    node.handle_message(log, at(100), &prevote(700, Some([1; 32])))
        .unwrap();
    node.handle_message(log, at(150), &prevote(701, Some([1; 32])))
        .unwrap();
    assert!(evidence(node).is_empty());
    // Another value in the same round: both sealed votes are kept, once.
    let second = prevote(702, Some([2; 32]));
    node.handle_message(log, at(200), &second).unwrap();
    node.handle_message(log, at(250), &prevote(703, None))
        .unwrap();
    let kept = evidence(node);
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (kind, key, bytes) = &kept[0];
    assert_eq!(*kind, EvidenceKind::Equivocation);
    assert_eq!(&key[13..45], &key_id_bytes(3));
    let pair: [&[u8]; 2] = postcard::from_bytes(bytes).unwrap();
    assert_eq!(pair[1], second.as_slice());
    for sealed in pair {
        let envelope = Envelope::decode(sealed).unwrap();
        assert!(envelope.open(log.members()).is_ok(), "each vote checks out");
    }
}

fn key_id_bytes(i: usize) -> [u8; 32] {
    key(i).public().key_id().0
}

#[test]
fn package_versions_are_requested_built_and_committed_under_their_ecosystem() {
    use crate::tlog::entry::{ECOSYSTEM_NPM, ECOSYSTEM_PYPI, NPM_FETCH_V1};
    let mut net = Net::new(4);
    net.tick(at(0));
    let npm = Coordinates {
        ecosystem: ECOSYSTEM_NPM,
        name: "requests",
        version: "1.0.0",
    };
    // The same name in another ecosystem is another artifact.
    let pypi = Coordinates {
        ecosystem: ECOSYSTEM_PYPI,
        name: "requests",
        version: "1.0.0",
    };
    for (who, coordinates) in [(0, npm), (1, pypi)] {
        let request = PackageRequest {
            coordinates,
            source: "https://registry.test/",
        };
        net.nodes[who].request_package(&net.logs[who], at(1000), &request);
    }
    // Coordinates outside their grammar are never requested.
    let bad = PackageRequest {
        coordinates: Coordinates {
            ecosystem: ECOSYSTEM_PYPI,
            name: "Not Normal",
            version: "1.0",
        },
        source: "https://registry.test/",
    };
    net.nodes[2].request_package(&net.logs[2], at(1000), &bad);
    net.settle(at(1000));
    let builds = core::mem::take(&mut net.builds);
    assert!(!builds.is_empty());
    for (i, index, request) in builds {
        let Ok(Entry::BuildRequest(request)) = Entry::decode(&request) else {
            panic!("a build of something other than a request");
        };
        assert_ne!(request.coordinates.name, "Not Normal");
        if request.coordinates.ecosystem == ECOSYSTEM_NPM {
            assert_eq!(request.build_type, NPM_FETCH_V1);
        }
        let outputs = alloc::vec![Digest::sha256(request.coordinates.ecosystem.as_bytes())];
        let result = Ok(BuildResult {
            outputs,
            piece_roots: Vec::new(),
        });
        net.nodes[i].built(&net.logs[i], at(2000), index, result);
    }
    net.settle(at(2000));
    net.tick(at(2200));
    for log in &net.logs {
        for coordinates in [npm, pypi] {
            let subject = coordinates.subject();
            let (index, _) = log
                .index()
                .commit_outputs(&subject, "1.0.0")
                .expect("committed");
            assert!(
                log.index()
                    .committing(&Digest::sha256(coordinates.ecosystem.as_bytes()))
                    .is_some()
            );
            assert!(index > 0);
        }
        // An image lookup by the bare name finds neither.
        assert!(log.index().commit("requests", "1.0.0").is_none());
        assert!(log.index().request("pypi:not normal", "1.0").is_none());
    }
}

/// Member 0's mirror serves `name`'s packument, whose `latest` names [`PACKAGE_VERSION`],
/// then its tarball; every selected member builds the version.
fn commit_package_with_tag(net: &mut Net, name: &str) {
    net.tick(at(0));
    let tag = Coordinates {
        ecosystem: "npm",
        name,
        version: "latest",
    };
    net.nodes[0].saw_package_tag(&net.logs[0], at(500), tag, PACKAGE_VERSION);
    let request = PackageRequest {
        coordinates: Coordinates {
            version: PACKAGE_VERSION,
            ..tag
        },
        source: "https://registry.npmjs.test",
    };
    net.nodes[0].request_package(&net.logs[0], at(1000), &request);
    net.settle(at(1000));
    build_everywhere(net, name);
    for step in 1..=4 {
        net.tick(at(2000 + step * 200));
    }
}

#[test]
fn a_package_tag_is_ordered_once_its_version_is_committed_and_f_plus_one_resolved_it() {
    let mut net = Net::new(4);
    commit_package_with_tag(&mut net, "left-pad");
    for log in &net.logs {
        let index = log.index();
        let (commit, _) = index
            .commit_outputs("npm:left-pad", PACKAGE_VERSION)
            .expect("the version is committed");
        let (_, digest) = index.tag("npm:left-pad", "latest").expect("tag observed");
        // The tag names the version's commit by its outputs list digest.
        assert_eq!(
            index.tagged("npm:left-pad", &digest),
            Some((commit, PACKAGE_VERSION))
        );
        assert_eq!(
            index.tag_target("npm", "npm:left-pad", PACKAGE_VERSION),
            Some(digest)
        );
    }
    let (index, _) = net.logs[0].index().tag("npm:left-pad", "latest").unwrap();
    let Ok(Entry::TagObservation(observation)) = Entry::decode(&net.ordered[index as usize]) else {
        panic!("the tag's entry is a TagObservation");
    };
    assert_eq!(observation.statement.tag.name, "left-pad");
    assert!(net.logs[0].members().tag_attesters(&observation).0 >= 2);
    assert!(net.nodes[0].pending_tags.is_empty());
}

#[test]
fn a_package_tag_the_other_members_resolve_to_another_version_is_never_ordered() {
    let mut net = Net::new(4);
    net.moved_for = alloc::vec![1, 2, 3];
    commit_package_with_tag(&mut net, "moved-pkg");
    let index = net.logs[0].index();
    assert!(index.commit("npm:moved-pkg", PACKAGE_VERSION).is_some());
    assert_eq!(index.tag("npm:moved-pkg", "latest"), None);
    for minute in 1..=4 {
        net.tick(at(3000 + minute * TAG_QUERY_TIMEOUT.as_millis()));
    }
    assert!(net.nodes[0].pending_tags.is_empty());
    assert!(
        net.logs
            .iter()
            .all(|l| l.index().tag("npm:moved-pkg", "latest").is_none())
    );
}

#[test]
fn a_package_tag_waits_for_its_version_then_is_forgotten_and_bad_tags_are_ignored() {
    let mut net = Net::new(4);
    net.tick(at(0));
    let tag = |ecosystem, name, tag| Coordinates {
        ecosystem,
        name,
        version: tag,
    };
    // Nothing requested the version: the tag waits, asking nobody, then is forgotten.
    net.nodes[0].saw_package_tag(&net.logs[0], at(100), tag("npm", "idle", "next"), "2.0.0");
    net.settle(at(100));
    assert_eq!(net.nodes[0].pending_tags.len(), 1);
    assert!(net.builds.is_empty());
    net.tick(at(100 + TAG_COMMIT_WAIT.as_millis()));
    assert!(net.nodes[0].pending_tags.is_empty());
    // Outside the grammars: a tag that reads as a version, a PyPI tag, an image through
    // the package door, a bad version, a Maven tag Maven has not.
    for (coordinates, version) in [
        (tag("npm", "idle", "1.0.0"), "1.0.0"),
        (tag("pypi", "requests", "latest"), "2.0.0"),
        (
            tag(ECOSYSTEM_DOCKER, "docker.io/a/b", "latest"),
            "sha256:00",
        ),
        (tag("npm", "idle", "latest"), "not-a-version"),
        (tag("maven", "org.example:lib", "newest"), "1.0"),
    ] {
        net.nodes[0].saw_package_tag(&net.logs[0], at(200), coordinates, version);
    }
    assert!(net.nodes[0].pending_tags.is_empty());
    // A query about a PyPI tag is refused as a bad vouch.
    let sealed = tag_query(tag("pypi", "requests", "latest"), 3, 3, 901);
    assert_eq!(
        net.nodes[1].handle_message(&net.logs[1], at(300), &sealed),
        Err(Rejection::BadTagVouch)
    );
}

#[test]
fn when_pending_tags_are_full_the_package_tag_waiting_longest_makes_room() {
    let mut net = Net::new(4);
    net.tick(at(0));
    for i in 0..MAX_PENDING_TAGS {
        let name = alloc::format!("pkg-{i}");
        let tag = Coordinates {
            ecosystem: "npm",
            name: &name,
            version: "latest",
        };
        net.nodes[0].saw_package_tag(&net.logs[0], at(100 + i as u64), tag, "1.0.0");
    }
    assert_eq!(net.nodes[0].pending_tags.len(), MAX_PENDING_TAGS);
    let newest = Coordinates {
        ecosystem: "npm",
        name: "newest",
        version: "latest",
    };
    net.nodes[0].saw_package_tag(&net.logs[0], at(5000), newest, "1.0.0");
    let pending = &net.nodes[0].pending_tags;
    assert_eq!(pending.len(), MAX_PENDING_TAGS);
    assert!(pending.contains_key(&("npm:newest".into(), "latest".into())));
    assert!(!pending.contains_key(&("npm:pkg-0".into(), "latest".into())));
}

/// An honest rebuilder's result for the tampered wheel: not reproduced, the injected module
/// named in the diff.
fn not_reproduced() -> RebuildResult {
    use crate::package::rebuild::{Diff, EntryDiff, Side, encode_diff};
    use crate::tlog::rebuilt::RebuildVerdict;
    let diff = Diff {
        entries: alloc::vec![EntryDiff {
            name: String::from("demo/injected.py"),
            upstream: Some(Side {
                size: 10,
                sha256: Digest::sha256(b"import os"),
            }),
            rebuilt: None,
        }],
        more: 0,
    };
    RebuildResult {
        artifact: String::from("demo-1.0.0-py3-none-any.whl"),
        upstream: Digest::sha256(b"wheel"),
        rebuilt: Some(Digest::sha256(b"rebuilt")),
        stabilized: Some(Digest::sha256(b"stabilized")),
        verdict: RebuildVerdict::NotReproduced,
        recipe: String::from("flit_core 3.9.0; CPython 3.11"),
        diff: encode_diff(&diff),
        failure: String::new(),
    }
}

#[test]
fn a_rebuild_waits_for_its_fetch_then_the_honest_verdict_commits_over_a_byzantine_one() {
    use crate::tlog::entry::ECOSYSTEM_PYPI;
    use crate::tlog::rebuilt::{ECOSYSTEM_PYPI_REBUILD, PYPI_REBUILD_V1, RebuildVerdict};
    let mut net = Net::new(4);
    net.nodes[3] = wrong_digest_member(3);
    net.tick(at(0));
    let fetch = Coordinates {
        ecosystem: ECOSYSTEM_PYPI,
        name: "demo",
        version: "1.0.0",
    };
    let rebuild = Coordinates {
        ecosystem: ECOSYSTEM_PYPI_REBUILD,
        ..fetch
    };
    for coordinates in [fetch, rebuild] {
        let request = PackageRequest {
            coordinates,
            source: "https://pypi.test/simple/",
        };
        net.nodes[0].request_package(&net.logs[0], at(1000), &request);
    }
    net.settle(at(1000));
    // Only the fetch is requested while it is not committed.
    let requests = net
        .builds
        .iter()
        .filter_map(|(_, _, r)| match Entry::decode(r) {
            Ok(Entry::BuildRequest(r)) => Some(r.build_type),
            _ => None,
        });
    assert!(requests.clone().all(|t| t != PYPI_REBUILD_V1));
    assert!(requests.count() > 0);
    build_everywhere(&mut net, "demo");
    for step in 1..=4 {
        net.tick(at(2000 + step * 200));
    }
    assert!(net.logs[0].index().commit("pypi:demo", "1.0.0").is_some());
    // The fetch committed: the awaited rebuild is requested, and every selected member
    // rebuilds (the byzantine one attests `Reproduced` whatever it found).
    for step in 1..=4 {
        net.tick(at(3000 + step * 200));
    }
    let rebuilds = core::mem::take(&mut net.builds);
    assert!(rebuilds.len() >= 2, "rebuilders asked: {}", rebuilds.len());
    for (i, index, request) in rebuilds {
        let Ok(Entry::BuildRequest(request)) = Entry::decode(&request) else {
            panic!("a build of something other than a request");
        };
        assert_eq!(request.build_type, PYPI_REBUILD_V1);
        net.nodes[i].rebuilt(&net.logs[i], at(4000), index, Ok(not_reproduced()));
    }
    net.settle(at(4000));
    for step in 1..=4 {
        net.tick(at(4000 + step * 200));
    }
    for log in &net.logs {
        let committed = log.index().commit_outputs("pypi-rebuild:demo", "1.0.0");
        assert!(committed.is_some(), "the rebuild verdict is committed");
    }
    let rebuilt: Vec<&Vec<u8>> = net
        .ordered
        .iter()
        .filter(|e| matches!(Entry::decode(e), Ok(Entry::Rebuilt(_))))
        .collect();
    assert_eq!(rebuilt.len(), 1);
    let Ok(Entry::Rebuilt(rebuilt)) = Entry::decode(rebuilt[0]) else {
        unreachable!()
    };
    assert_eq!(rebuilt.statement.verdict, RebuildVerdict::NotReproduced);
    let diff = crate::package::rebuild::decode_diff(rebuilt.statement.diff).unwrap();
    assert_eq!(diff.missing().next().unwrap().name, "demo/injected.py");
    let liar = key(3).public().key_id();
    assert!(rebuilt.attestations.iter().all(|s| s.signer != liar));
    assert!(rebuilt.attestations.iter().count() >= 2);
}
