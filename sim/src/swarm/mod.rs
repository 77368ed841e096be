//! The swarm control plane on 2377, as the driver names the core's rooms: Raft managers
//! (`raftnode`), the replicated store (`store`), the leader's orchestrator and scheduler
//! (`orchestrator`), the control API (`controlapi`), each node's agent, manager and
//! dispatcher (`node`); and the constants and texts of 2377 the CLI shares.
//!
//! Messages between hosts travel over tcp/2377 through the underlay: a broken path
//! (host down, partition, firewall) drops them, loss delays them by TCP retransmissions.
//! Command-line requests that a manager forwards to the leader are modelled as direct
//! calls after a round trip over a working path.

pub mod overlay;

// The control plane's core is its own crate (`sim/control`), which nothing of the
// simulator's can reach into; these names keep its rooms where the driver finds them.
pub use swarmlab_control::{controlapi, node, orchestrator, raftnode, store};

use crate::time::Duration;
use crate::underlay::HostId;

/// The swarm's management port.
pub const SWARM_PORT: u16 = 2377;
/// swarmkit's dispatcher heartbeat period.
pub const HEARTBEAT_PERIOD: Duration = Duration(node::HEARTBEAT_PERIOD);
/// The engine version `docker node ls` shows.
pub const ENGINE_VERSION: &str = "20.10.24";
macro_rules! no_leader_desc {
    () => {
        "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online."
    };
}
/// What every write and read says when no leader can be reached.
pub const NO_LEADER: &str = concat!(
    "Error response from daemon: rpc error: code = Unknown desc = ",
    no_leader_desc!()
);
/// A worker asked for cluster state.
pub const NOT_MANAGER_WORKER: &str = "Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
/// A node outside any swarm asked for cluster state.
pub const NOT_IN_SWARM: &str = "Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

// The messages on 2377 and their bytes are the control plane's core's (`api`), and so
// is each node's swarm mode (`node`: agent, manager, dispatcher).
pub use swarmlab_control::api::{Assignment, Endpoint, Msg, Status};
pub use swarmlab_control::node::{
    ingress_of, manager_addrs, Agent, AgentTask, Manager, SwarmNode, NO_LEADER_DESC,
};

/// Swarm events of the lab's queue.
#[derive(Debug)]
pub enum SwarmEvent {
    /// A timer a node's swarm mode asked for is due.
    Timer {
        /// The host.
        host: HostId,
        /// What to hand back.
        timer: node::Timer,
    },
    /// A message arrives on 2377.
    Deliver {
        /// Sender.
        from: HostId,
        /// Receiver.
        to: HostId,
        /// Its bytes (`api::encode`), decoded by the receiver.
        bytes: Vec<u8>,
    },
}

/// How long a task's command runs by itself, and its exit status: `sleep N` (busybox's
/// suffixes s, m, h, d), `true`, `false`, `sh -c 'exit N'`, and no command at all (the
/// image's `sh` exits at once without a terminal). `None` runs until stopped, as do the
/// server images (whoami, nginx, redis) without a command.
pub fn lifetime(image: &str, args: &[String]) -> Option<(Duration, i32)> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        [] if crate::netstack::App::of_image(image).is_some() => None,
        [] => Some((Duration::ZERO, 0)),
        ["true"] => Some((Duration::ZERO, 0)),
        ["false"] => Some((Duration::ZERO, 1)),
        ["sh" | "/bin/sh", "-c", cmd] => {
            let code = cmd.strip_prefix("exit ")?.trim().parse().ok()?;
            Some((Duration::ZERO, code))
        }
        ["sleep", n] => {
            let (num, unit) = match n.char_indices().last()? {
                (i, c) if c.is_ascii_alphabetic() => (&n[..i], c),
                _ => (*n, 's'),
            };
            let secs: f64 = num.parse().ok()?;
            let scale = match unit {
                's' => 1.0,
                'm' => 60.0,
                'h' => 3600.0,
                'd' => 86400.0,
                _ => return None,
            };
            Some((Duration((secs * scale * 1e9) as u64), 0))
        }
        _ => None,
    }
}
