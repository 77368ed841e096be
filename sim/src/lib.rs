//! swarmlab: a lab simulator of Docker Swarm's overlay networking.
//!
//! The simulator side of the workspace: the deterministic engine (`engine`, `time`), the
//! underlay (`underlay`), hosts, overlays and containers (`lab`), the applications
//! (`ping`, `docker`), the scenario language (`scenario`), the outputs (`trace`,
//! `report`), and the live driver (`live`). Protocol cores live in the `vxlan` and
//! `gossip` crates and never touch time or sockets themselves.

pub mod cli;
pub mod dockerref;

/// The docker client, where it has always been.
pub use cli::docker;
pub mod engine;
pub mod fs;
pub mod ids;
pub mod images;
pub mod imagestore;
pub mod lab;
pub mod live;
pub mod live_gossip;
pub mod membership;
pub mod mesh;
pub mod netstack;
pub mod observe;
pub mod output;
pub mod ping;
pub mod programs;
pub mod report;
pub mod scenario;
pub mod session;
pub mod sh;
pub mod shell;
pub mod stack;
pub mod swarm;
pub mod time;
pub mod trace;
pub mod traffic;
pub mod underlay;
