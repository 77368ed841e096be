//! The swarm control plane on 2377: Raft managers (`raftnode`), the replicated store
//! (`store`), the leader's orchestrator, scheduler and dispatcher (`orchestrator`), the
//! agents on every node, and the `docker swarm|node|service` commands (`cli`).
//!
//! Messages between hosts travel over tcp/2377 through the underlay: a broken path
//! (host down, partition, firewall) drops them, loss delays them by TCP retransmissions.
//! Command-line requests that a manager forwards to the leader are modelled as direct
//! calls after a round trip over a working path.

pub mod overlay;

// The control plane's core is its own crate (`sim/control`), which nothing of the
// simulator's can reach into; these names keep its rooms where the driver finds them.
pub use swarmlab_control::{controlapi, orchestrator, raftnode, store};

use crate::time::{Duration, Instant};
use crate::underlay::HostId;
use orchestrator::Duties;
use raftnode::RaftNode;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use store::{Role, Store, TaskState};

/// The swarm's management port.
pub const SWARM_PORT: u16 = 2377;
/// swarmkit's dispatcher heartbeat period.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_secs(5);
/// The jitter around it (± 0.5 s).
pub const HEARTBEAT_EPSILON: Duration = Duration::from_millis(500);
/// How long the dispatcher gathers task statuses before writing them in one batch
/// (swarmkit's dispatcher: `maxBatchInterval`, 100 ms).
pub const STATUS_BATCH: Duration = Duration::from_millis(100);
/// Missed periods before a node is Down.
pub const HEARTBEAT_GRACE: u64 = 3;
/// The engine version `docker node ls` shows.
pub const ENGINE_VERSION: &str = "20.10.24";
macro_rules! no_leader_desc {
    () => {
        "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online."
    };
}
/// What the control API answers when no leader can be reached.
pub const NO_LEADER_DESC: &str = no_leader_desc!();
/// What every write and read says when no leader can be reached.
pub const NO_LEADER: &str = concat!(
    "Error response from daemon: rpc error: code = Unknown desc = ",
    no_leader_desc!()
);
/// A worker asked for cluster state.
pub const NOT_MANAGER_WORKER: &str = "Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
/// A node outside any swarm asked for cluster state.
pub const NOT_IN_SWARM: &str = "Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

// The messages on 2377 and their bytes are the control plane's core's (`api`).
pub use swarmlab_control::api::{Assignment, Endpoint, Msg, Status};

/// Swarm events of the lab's queue.
#[derive(Debug)]
pub enum SwarmEvent {
    /// A manager's Raft tick (every second, with a per-host phase).
    Tick {
        /// The host.
        host: HostId,
        /// Its life (bumped by crashes and role changes).
        epoch: u64,
    },
    /// The leader's timers (heartbeat expiry, restart delays).
    Wake {
        /// The host.
        host: HostId,
        /// Its life.
        epoch: u64,
    },
    /// An agent's heartbeat is due.
    Heartbeat {
        /// The host.
        host: HostId,
        /// Its life.
        epoch: u64,
        /// Which of the agent's heartbeat schedules (a newer one cancels older ones).
        token: u64,
    },
    /// A task's container reaches a state.
    TaskStep {
        /// The host.
        host: HostId,
        /// Its life.
        epoch: u64,
        /// The task.
        task: String,
        /// The state reached.
        state: TaskState,
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

/// A task as the agent runs it.
#[derive(Clone, Debug)]
pub struct AgentTask {
    /// The container's name: `SERVICE.SLOT.TASKID`.
    pub name: String,
    /// Image.
    pub image: String,
    /// Command.
    pub args: Vec<String>,
    /// State reached.
    pub state: TaskState,
    /// Being stopped.
    pub stopping: bool,
    /// Given with desired state Ready: prepared, it waits to be started.
    pub held: bool,
    /// Its service's `--stop-grace-period` (None: Docker's 10 s).
    pub stop_grace: Option<Duration>,
    /// The exit status, once exited.
    pub exit: Option<i32>,
    /// Its service's name.
    pub service: String,
    /// Its networks and its address on each, eth0 first.
    pub networks: Vec<(store::Network, Ipv4Addr)>,
    /// Its service's endpoint.
    pub endpoint: Endpoint,
    /// Its container in the data plane, once started.
    pub container: Option<crate::ids::ContainerId>,
    /// When created.
    pub created: Instant,
    /// When it last changed state.
    pub since: Instant,
}

/// A node's agent.
#[derive(Debug, Default)]
pub struct Agent {
    /// Its tasks.
    pub tasks: BTreeMap<String, AgentTask>,
    /// Known managers.
    pub managers: Vec<Ipv4Addr>,
    /// The leader, as last told.
    pub leader: Option<Ipv4Addr>,
    /// Which manager it talks to when no leader is known.
    pub target: usize,
    /// Heartbeats sent without an answer.
    pub unanswered: u32,
    /// Statuses waiting to be acknowledged.
    pub pending: Vec<Status>,
    /// The heartbeat period the dispatcher last gave (5 s ± 0.5 s).
    pub period: Option<Duration>,
    /// The current heartbeat schedule.
    pub token: u64,
}

/// A manager: its Raft member, its copy of the store, and the leader's duties.
pub struct Manager {
    /// Raft.
    pub raft: RaftNode,
    /// The applied store.
    pub store: Store,
    /// Leader-only state.
    pub duties: Option<Duties>,
    /// Batches proposed while leading (to wait for them).
    pub proposed: u64,
    /// Statuses received, to write.
    pub statuses: Vec<Status>,
    /// Nodes that were heard from and are Down in the store.
    pub revived: Vec<String>,
    /// The term at the last tick (a new term redraws the tick phase).
    pub tick_term: u64,
    /// Batches applied when the leader last reconciled.
    pub reconciled: u64,
    /// The leader's next timer.
    pub wake_at: Option<u64>,
    /// Whether a write of the statuses received is already scheduled (the dispatcher
    /// batches them, as swarmkit's does, for `STATUS_BATCH`).
    pub status_flush: bool,
    /// The managers' addresses the leader last sent the agents (a change is pushed at
    /// once, as swarmkit's session streams its manager list).
    pub pushed_managers: Vec<Ipv4Addr>,
}

impl Manager {
    /// A manager around a Raft member and its store.
    pub fn new(raft: RaftNode, store: Store) -> Manager {
        Manager {
            raft,
            store,
            duties: None,
            proposed: 0,
            statuses: Vec::new(),
            revived: Vec::new(),
            tick_term: 0,
            reconciled: u64::MAX,
            wake_at: None,
            status_flush: false,
            pushed_managers: Vec::new(),
        }
    }
}

/// A host's engine in swarm mode.
#[derive(Default)]
pub struct HostSwarm {
    /// Bumped when the host crashes, restarts, or changes role.
    pub epoch: u64,
    /// Its node id, once in a swarm.
    pub node_id: Option<String>,
    /// Its manager, if it is one.
    pub manager: Option<Manager>,
    /// Its agent, once in a swarm.
    pub agent: Option<Agent>,
    /// A crashed manager's disk: Raft id, log and applied store.
    pub disk: Option<(u64, raft::storage::MemStorage, Store)>,
    /// The last leader this host saw, for the timeline.
    pub seen_leader: Option<u64>,
}

impl std::fmt::Debug for HostSwarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSwarm")
            .field("node_id", &self.node_id)
            .field("manager", &self.manager.is_some())
            .finish()
    }
}

pub(crate) fn nanos(t: Instant) -> u64 {
    t.0
}

/// Every manager's address.
/// A node's ingress attachment, as the leader allocated it.
pub(crate) fn ingress_of(store: &Store, node: &str) -> Option<(store::Network, Ipv4Addr)> {
    let ip = store.nodes.get(node)?.ingress_ip?;
    let net = store.networks.values().find(|n| n.ingress)?.clone();
    Some((net, ip))
}

pub fn manager_addrs(store: &Store) -> Vec<Ipv4Addr> {
    store
        .nodes
        .values()
        .filter(|n| n.role == Role::Manager)
        .map(|n| n.addr)
        .collect()
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
