//! Gossip membership on 7946: SWIM + Lifeguard, wire-compatible with HashiCorp
//! memberlist, and network-scoped tables on top (what libnetwork's NetworkDB does).
//!
//! Not built yet: this crate only reserves the name and the place in the workspace so
//! that `sim` can depend on it when the gossip issue lands. It exports nothing that could
//! be mistaken for a working member.

/// The port memberlist listens on in Docker Swarm, UDP and TCP.
pub const GOSSIP_PORT: u16 = 7946;
