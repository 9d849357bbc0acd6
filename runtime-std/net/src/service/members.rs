//! The member topic: consensus messages between the log's members, sealed by their senders
//! (see `pyrsia_core::consensus::wire`). The network relays what a current member signed and
//! hands it to this node's member thread; anything else is rejected and its relay struck.

use libp2p::{PeerId, gossipsub};
use pyrsia_core::consensus::wire::{Envelope, WireError};
use pyrsia_std::consensus::MemberLink;

use super::content::Command;
use super::{EventLoop, Network};

/// What the node logs when gossip refused to publish a member message as one it has seen
/// (never expected: every message core sends, relays included, is sealed anew).
pub const DUPLICATE_MEMBER_MESSAGE: &str =
    "member message not sent: gossip has seen these exact bytes";

/// The gossipsub topic of a log's member messages.
pub fn member_topic(origin: &str) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("pyrsia/log/{origin}/members"))
}

impl MemberLink for Network {
    fn broadcast(&self, message: Vec<u8>) {
        let _ = self.commands.try_send(Command::PublishMember(message));
    }
}

impl EventLoop {
    pub(super) fn publish_member(&mut self, message: Vec<u8>) {
        let topic = member_topic(&self.log.origin());
        match self.swarm.behaviour_mut().gossipsub.publish(topic, message) {
            Ok(_) => {}
            // Gossip refuses bytes it has seen: core seals every message it sends, relays
            // included, anew, so this is a bug that silently loses the message.
            Err(gossipsub::PublishError::Duplicate) => {
                tracing::error!("{DUPLICATE_MEMBER_MESSAGE}")
            }
            // Lost messages are sent again by the consensus' own timers.
            Err(e) => tracing::debug!(error = %e, "could not publish a member message"),
        }
    }

    /// A member message from the topic: accepted (and delivered) when a current member sealed
    /// it. A sender this node does not know as a member is ignored without blame (member sets
    /// change, and nodes learn of a change at different times); a forged or malformed message
    /// is rejected and its relay struck.
    pub(super) fn on_member_message(
        &mut self,
        source: PeerId,
        data: Vec<u8>,
    ) -> gossipsub::MessageAcceptance {
        let checked = Envelope::decode(&data)
            .and_then(|e| e.open(&self.log.members()).map(|m| (e.sender, m.class())));
        match checked {
            Ok((sender, class)) => {
                let now_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
                if !self.member_rate.allow(sender, class, now_us) {
                    // Over its rate: neither relayed nor handled; a burst is no offence.
                    tracing::debug!(member = %sender, "member over its message rate: ignored");
                    return gossipsub::MessageAcceptance::Ignore;
                }
                if let Some(member) = &self.member {
                    member.deliver(data);
                }
                gossipsub::MessageAcceptance::Accept
            }
            Err(WireError::NotAMember) => gossipsub::MessageAcceptance::Ignore,
            Err(e) => {
                self.strike(source, &e.to_string());
                gossipsub::MessageAcceptance::Reject
            }
        }
    }
}
