//! Gossip membership on 7946: SWIM + Lifeguard, wire-compatible with HashiCorp
//! memberlist (v0.2), as a core without I/O.
//!
//! `wire` and `security` own memberlist's bytes; `member::Member` owns the protocol state
//! of one member (probes, suspicion, broadcasts, push/pull). A driver feeds it packets,
//! stream requests and timeouts, and sends what it returns; time and randomness come in
//! as arguments. The network-scoped tables that NetworkDB builds on top are not here yet.

pub mod config;
pub mod member;
pub mod registry;
pub mod security;
mod slots;
pub mod tables;
pub mod wire;

pub use config::Config;
pub use member::{Event, EventKind, Member, MemberInfo, State, StreamId, Transmit};

/// The port memberlist listens on in Docker Swarm, UDP and TCP.
pub const GOSSIP_PORT: u16 = 7946;
