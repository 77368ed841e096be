//! Gossip on 7946: each host's member state (a `gossip::Member` with its NetworkDB
//! tables) and the load counters. The router (`lab::members`) drives them.

use crate::time::{Duration, Instant};
use gossip::Member;
use std::net::SocketAddrV4;

/// A host's gossip member and its timer bookkeeping.
#[derive(Debug)]
pub struct HostGossip {
    /// The member.
    pub member: Member,
    /// Its network-scoped tables (what NetworkDB keeps for the overlay).
    pub db: gossip::tables::NetworkDb,
    /// The wake-up already scheduled for it.
    pub(crate) armed: Option<Instant>,
    /// Who it joined through, to join again after a restart.
    pub seeds: Vec<SocketAddrV4>,
    /// An overloaded host: every gossip packet waits this long before it is processed.
    pub lag: Duration,
    /// `foca` running instead of the member (baseline experiments only).
    pub foca: Option<FocaHost>,
}

/// Gossip traffic sent in the lab, for the load figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GossipLoad {
    /// UDP packets sent.
    pub packets: u64,
    /// Bytes of UDP payload sent.
    pub bytes: u64,
    /// TCP streams opened.
    pub streams: u64,
    /// Bytes of stream requests and replies.
    pub stream_bytes: u64,
}

pub(crate) fn since_start(t: Instant) -> std::time::Duration {
    std::time::Duration::from_nanos(t.0)
}

impl HostGossip {
    /// A member for a host named `name` at `addr`, seeded from the lab's RNG.
    pub fn new(
        config: gossip::Config,
        name: &str,
        addr: SocketAddrV4,
        now: Instant,
        seed: u64,
        names: gossip::registry::Registry,
    ) -> HostGossip {
        HostGossip {
            member: Member::with_registry(config, name, addr, since_start(now), seed, names),
            db: gossip::tables::NetworkDb::new(name, since_start(now), seed.rotate_left(17)),
            armed: None,
            lag: Duration::ZERO,
            foca: None,
            seeds: Vec::new(),
        }
    }
}

/// The `foca` crate (a sans-IO SWIM, without memberlist's wire format) on a host, as
/// a baseline for the gossip figures: same simulated network, same frames on 7946.
pub struct FocaHost {
    pub(crate) foca:
        foca::Foca<SocketAddrV4, foca::PostcardCodec, rand::rngs::StdRng, foca::NoCustomBroadcast>,
    pub(crate) rt: foca::AccumulatingRuntime<SocketAddrV4>,
}

impl std::fmt::Debug for FocaHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FocaHost({} members)", self.foca.num_members())
    }
}
