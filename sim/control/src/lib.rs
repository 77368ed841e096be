//! The swarm control plane's core, as swarmkit divides it: the replicated store
//! (`store`), one manager's Raft member (`raftnode`), the leader's reconciliation,
//! orchestrators and scheduler (`orchestrator`), the control API that validates and
//! allocates what the daemons ask for (`controlapi`), one node's swarm mode with its
//! agent, manager and the leader's dispatcher (`node`), and the messages between agents
//! and managers with their protobuf bytes (`api`).
//!
//! No I/O, no clock and no simulator type: time comes in as nanoseconds, ids from a
//! closure, messages as bytes. The crate boundary is what keeps it so: it depends on
//! nothing of swarmlab's, and `sim` (the simulator now, the live driver later) drives it.

pub mod api;
pub mod controlapi;
pub mod draws;
pub mod node;
pub mod orchestrator;
pub mod raftnode;
pub mod store;
