//! One node's swarm mode, without I/O: its agent, and its manager when it is one (Raft
//! member, applied store, the leader's dispatcher and loops).
//!
//! The driver feeds it what arrives and what is due, and takes out what it wants done:
//! - `handle_message(now, from, msg)`: a message on 2377 from the address `from`;
//! - `handle_timer(now, timer)`: a timer it asked for is due;
//! - commands from the node's own engine (`init`, `join`, `leave`, a crash...);
//! - `poll_output()`: messages to send (by address), timers to set, timeline notes, and
//!   what the container engine must do (start a task's container, stop it...).
//!
//! It never sees another node, the world or a clock. What it knows of the others is what
//! their messages said: the dispatcher remembers what it last told each agent rather
//! than looking at the agent. Randomness (heartbeat jitter, tick phases, ids, Raft's
//! election timeouts) comes from its own generator, seeded by the driver.

use crate::api::{Assignment, Endpoint, Msg, Status};
use crate::controlapi;
use crate::draws::Draws;
use crate::orchestrator::{self, Duties};
use crate::raftnode::RaftNode;
use crate::store::{Action, Network, Node, NodeStatus, Role, Store, TaskState};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;

/// Nanoseconds of the driver's clock.
pub type Nanos = u64;

const SECOND: Nanos = 1_000_000_000;
const MILLI: Nanos = 1_000_000;

/// swarmkit's dispatcher heartbeat period.
pub const HEARTBEAT_PERIOD: Nanos = 5 * SECOND;
/// The jitter around it (± 0.5 s).
pub const HEARTBEAT_EPSILON: Nanos = 500 * MILLI;
/// How long the dispatcher gathers task statuses before writing them in one batch
/// (swarmkit's dispatcher: `maxBatchInterval`, 100 ms).
pub const STATUS_BATCH: Nanos = 100 * MILLI;
/// Missed periods before a node is Down.
pub const HEARTBEAT_GRACE: u64 = 3;
/// Raft's tick.
pub const TICK: Nanos = SECOND;
/// Docker's default stop grace period.
pub const STOP_GRACE: Nanos = 10 * SECOND;

/// What the control API answers when no leader can be reached.
pub const NO_LEADER_DESC: &str = "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.";

/// A write that cannot be proposed: this node runs no manager, or Raft refused it (no
/// leader, or not this one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", NO_LEADER_DESC)]
pub struct NoLeader;

/// What the node's container engine knows of images and commands (swarmkit's executor
/// interface, the part the agent asks).
pub trait Executor {
    /// Whether the image can be had (pulled or present).
    fn has_image(&self, image: &str) -> bool;
    /// How long the command runs by itself and its exit status (None: until stopped).
    fn lifetime(&self, image: &str, args: &[String]) -> Option<(Nanos, i32)>;
    /// Whether the image's program stops on SIGTERM (else it is killed after the grace).
    fn stops_on_sigterm(&self, image: &str) -> bool;
}

/// A timer the node asked for, handed back by `handle_timer` when due. Timers of an
/// earlier life of the node (before a crash or a role change) are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer {
    epoch: u64,
    kind: TimerKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TimerKind {
    /// Raft's tick (every second, with a per-node phase).
    Tick,
    /// The leader's timers (heartbeat expiry, restart delays, status batches).
    Wake,
    /// The agent's heartbeat (a newer schedule cancels older ones).
    Heartbeat { token: u64 },
    /// A task's container reaches a state.
    TaskStep { task: String, state: TaskState },
}

/// What the node wants done.
#[derive(Debug)]
pub enum Output {
    /// Send a message on 2377 to the node at this address.
    Send {
        /// The receiver.
        to: Ipv4Addr,
        /// The message.
        msg: Msg,
    },
    /// Call `handle_timer` with `timer` at `at`.
    Timer {
        /// When.
        at: Nanos,
        /// What to hand back.
        timer: Timer,
    },
    /// A line for the timeline.
    Note(String),
    /// A task's container reached a state (what `docker service ps` shows).
    TaskState {
        /// The task's container name (`SERVICE.SLOT.ID`).
        name: String,
        /// The state.
        state: TaskState,
    },
    /// This node's manager became the Raft leader, in this term.
    Elected {
        /// The term.
        term: u64,
    },
    /// Start the task's container (its networks and endpoint are in the agent's task);
    /// answer with `set_container`.
    StartTask {
        /// The task.
        task: String,
    },
    /// The task's container exits with this status.
    StopTask {
        /// The engine's container.
        container: u64,
        /// Its exit status.
        exit: i32,
    },
    /// The container leaves its services' load balancing and DNS.
    Withdraw {
        /// The engine's container.
        container: u64,
    },
    /// Remove the container (the node leaves the swarm).
    Remove {
        /// The engine's container.
        container: u64,
    },
    /// The node's ingress sandbox, as the leader allocated it.
    Ingress {
        /// The ingress network.
        net: Network,
        /// The sandbox's address on it.
        ip: Ipv4Addr,
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
    pub stop_grace: Option<Nanos>,
    /// The exit status, once exited.
    pub exit: Option<i32>,
    /// Its service's name.
    pub service: String,
    /// Its networks and its address on each, eth0 first.
    pub networks: Vec<(Network, Ipv4Addr)>,
    /// Its service's endpoint.
    pub endpoint: Endpoint,
    /// Its container in the engine, once started.
    pub container: Option<u64>,
    /// When created.
    pub created: Nanos,
    /// When it last changed state.
    pub since: Nanos,
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
    target: usize,
    /// Heartbeats sent without an answer.
    unanswered: u32,
    /// Statuses waiting to be acknowledged.
    pending: Vec<Status>,
    /// The heartbeat period the dispatcher last gave (5 s ± 0.5 s).
    period: Option<Nanos>,
    /// The current heartbeat schedule.
    token: u64,
}

/// A manager: its Raft member, its copy of the store, and the leader's duties.
pub struct Manager {
    /// Raft.
    pub raft: RaftNode,
    /// The applied store.
    pub store: Store,
    /// Leader-only state.
    duties: Option<Duties>,
    /// Batches proposed while leading (to wait for them).
    proposed: u64,
    /// Statuses received, to write.
    statuses: Vec<Status>,
    /// Nodes that were heard from and are Down in the store.
    revived: Vec<String>,
    /// The term at the last tick (a new term redraws the tick phase).
    tick_term: u64,
    /// Batches applied when the leader last reconciled.
    reconciled: u64,
    /// The leader's next timer.
    wake_at: Option<Nanos>,
    /// Whether a write of the statuses received is already scheduled (the dispatcher
    /// batches them, as swarmkit's does, for `STATUS_BATCH`).
    status_flush: bool,
    /// The managers' addresses the leader last sent the agents (a change is pushed at
    /// once, as swarmkit's session streams its manager list).
    pushed_managers: Vec<Ipv4Addr>,
    /// What the dispatcher last told each node of its tasks (the desired state of
    /// each): a change is pushed at once, as swarmkit's assignment stream does.
    told: BTreeMap<String, Vec<(String, TaskState)>>,
}

impl Manager {
    fn new(raft: RaftNode, store: Store) -> Manager {
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
            told: BTreeMap::new(),
        }
    }

    /// The leader's memory outside the store (None unless leading).
    pub fn duties(&self) -> Option<&Duties> {
        self.duties.as_ref()
    }

    /// Where a Raft peer lives: the address it joined with, or the store's record.
    fn raft_addr(&self, id: u64) -> Option<Ipv4Addr> {
        self.raft.peers.get(&id).copied().or_else(|| {
            self.store
                .nodes
                .values()
                .find(|n| n.raft_id == Some(id))
                .map(|n| n.addr)
        })
    }

    /// The address of the leader this manager knows of.
    fn leader_addr(&self, own: Ipv4Addr) -> Option<Ipv4Addr> {
        let id = self.raft.leader()?;
        if id == self.raft.id {
            return Some(own);
        }
        self.raft_addr(id)
    }

    /// The MANAGER STATUS of a node, as `docker node ls` prints it from this manager.
    pub fn manager_status(&self, node: &Node) -> &'static str {
        let Some(id) = node.raft_id else { return "" };
        if self.raft.leader() == Some(id) && self.raft.id == id {
            "Leader"
        } else if self.raft.recently_active(id) && self.raft.voters().contains(&id) {
            "Reachable"
        } else {
            "Unreachable"
        }
    }

    /// The Raft members this manager knows, with their addresses (its peers, and the
    /// managers in its store).
    pub fn members(&self) -> BTreeMap<u64, Ipv4Addr> {
        let mut all = self.raft.peers.clone();
        for n in self.store.nodes.values() {
            if let Some(id) = n.raft_id {
                all.entry(id).or_insert(n.addr);
            }
        }
        all
    }
}

/// A crashed manager's disk: Raft id, log and applied store.
type Disk = (u64, raft::storage::MemStorage, Store);

/// One node's engine in swarm mode.
pub struct SwarmNode {
    /// The node's address (its 2377 and its agent's source).
    addr: Ipv4Addr,
    /// Bumped when the node crashes, restarts, or changes role.
    epoch: u64,
    /// Its node id, once in a swarm.
    pub node_id: Option<String>,
    /// Its manager, if it is one.
    pub manager: Option<Manager>,
    /// Its agent, once in a swarm.
    pub agent: Option<Agent>,
    /// A crashed manager's disk.
    disk: Option<Disk>,
    /// The last leader this node saw, for the timeline.
    seen_leader: Option<u64>,
    /// The driver's clock at the call being served.
    now: Nanos,
    /// What the node wants done, in order.
    out: VecDeque<Output>,
    /// Its random draws.
    draws: Draws,
}

impl std::fmt::Debug for SwarmNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmNode")
            .field("node_id", &self.node_id)
            .field("manager", &self.manager.is_some())
            .finish()
    }
}

/// Every manager's address.
pub fn manager_addrs(store: &Store) -> Vec<Ipv4Addr> {
    store
        .nodes
        .values()
        .filter(|n| n.role == Role::Manager)
        .map(|n| n.addr)
        .collect()
}

/// A node's ingress attachment, as the leader allocated it.
pub fn ingress_of(store: &Store, node: &str) -> Option<(Network, Ipv4Addr)> {
    let ip = store.nodes.get(node)?.ingress_ip?;
    let net = store.networks.values().find(|n| n.ingress)?.clone();
    Some((net, ip))
}

/// The tasks of a node, as the leader's dispatcher sends them.
fn assignments(store: &Store, node: &str) -> Vec<Assignment> {
    store
        .tasks
        .values()
        .filter(|t| t.node_id.as_deref() == Some(node))
        .map(|t| {
            let s = store.services.get(&t.service_id);
            Assignment {
                task: t.clone(),
                service: s.map_or_else(String::new, |s| s.name.clone()),
                image: if t.image.is_empty() {
                    s.map_or_else(String::new, |s| s.image.clone())
                } else {
                    t.image.clone()
                },
                args: s.map_or_else(Vec::new, |s| s.args.clone()),
                networks: t
                    .addresses
                    .iter()
                    .filter_map(|(n, _)| store.networks.get(n).cloned())
                    .collect(),
                endpoint: s.map(Endpoint::of).unwrap_or_default(),
                stop_grace: s.and_then(|s| s.stop_grace),
            }
        })
        .collect()
}

/// What an agent is told of its tasks: each live task and what it should become.
fn told_of(tasks: &[Assignment]) -> Vec<(String, TaskState)> {
    tasks
        .iter()
        .filter(|a| !a.task.state.terminal())
        .map(|a| {
            let want = if a.task.desired.terminal() {
                TaskState::Shutdown
            } else if a.task.desired == TaskState::Ready {
                TaskState::Ready
            } else {
                TaskState::Running
            };
            (a.task.id.clone(), want)
        })
        .collect()
}

impl SwarmNode {
    /// A node at `addr`, outside any swarm, drawing from `seed`.
    pub fn new(addr: Ipv4Addr, seed: u64) -> SwarmNode {
        SwarmNode {
            addr,
            epoch: 0,
            node_id: None,
            manager: None,
            agent: None,
            disk: None,
            seen_leader: None,
            now: 0,
            out: VecDeque::new(),
            draws: Draws(seed),
        }
    }

    /// The next thing the node wants done.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// A draw for the driver to seed what it builds for this node (a Raft member).
    pub fn seed(&mut self) -> u64 {
        self.draws.next_u64()
    }

    fn note(&mut self, text: String) {
        self.out.push_back(Output::Note(text));
    }

    fn send(&mut self, to: Ipv4Addr, msg: Msg) {
        self.out.push_back(Output::Send { to, msg });
    }

    fn timer_at(&mut self, at: Nanos, kind: TimerKind) {
        let timer = Timer {
            epoch: self.epoch,
            kind,
        };
        self.out.push_back(Output::Timer { at, timer });
    }

    /// The address of the leader this node's manager knows of (None when it is no
    /// manager, or knows none).
    pub fn leader_addr(&self) -> Option<Ipv4Addr> {
        self.manager.as_ref()?.leader_addr(self.addr)
    }

    /// The container a task's engine started for it.
    pub fn set_container(&mut self, task: &str, container: Option<u64>) {
        if let Some(t) = self.agent.as_mut().and_then(|a| a.tasks.get_mut(task)) {
            t.container = container;
        }
    }

    // ---- inputs ------------------------------------------------------------------

    /// A timer is due.
    pub fn handle_timer(&mut self, now: Nanos, timer: Timer, exec: &dyn Executor) {
        self.now = now;
        if timer.epoch != self.epoch {
            return;
        }
        match timer.kind {
            TimerKind::Tick => {
                let Some(m) = self.manager.as_mut() else {
                    return;
                };
                m.raft.tick();
                // Election timeouts are drawn in 10-20 ticks (see raftnode); the tick
                // phase, redrawn whenever a member sees a new term without leading it,
                // also breaks ties between equal draws.
                let term = m.raft.term();
                let redraw = term != m.tick_term && !m.raft.is_leader();
                m.tick_term = term;
                let extra = if redraw { self.draws.below(TICK) } else { 0 };
                self.timer_at(now + TICK + extra, TimerKind::Tick);
                self.manager_poll();
            }
            TimerKind::Wake => self.leader_duties(),
            TimerKind::Heartbeat { token } => {
                if self.agent.as_ref().is_some_and(|a| a.token == token) {
                    self.agent_heartbeat();
                }
            }
            TimerKind::TaskStep { task, state } => self.agent_task_step(&task, state, exec),
        }
    }

    /// A message on 2377 from the node at `from`.
    pub fn handle_message(&mut self, now: Nanos, from: Ipv4Addr, msg: Msg, exec: &dyn Executor) {
        self.now = now;
        match msg {
            Msg::Raft(bytes) => {
                let Some(m) = self.manager.as_mut() else {
                    return;
                };
                if let Err(e) = m.raft.step(&bytes) {
                    self.note(format!("raft message from {from} refused: {e}"));
                }
                self.manager_poll();
            }
            Msg::Heartbeat {
                node,
                statuses,
                relay,
            } => self.dispatcher_heartbeat(from, node, statuses, relay),
            Msg::Status { statuses } => self.dispatcher_status(statuses),
            Msg::Ack {
                period_ns,
                leader,
                managers,
                tasks,
                ingress,
                relay: Some(agent),
            } => {
                // A follower passes the leader's answer back to the agent.
                self.send(
                    agent,
                    Msg::Ack {
                        period_ns,
                        leader,
                        managers,
                        tasks,
                        ingress,
                        relay: None,
                    },
                );
            }
            Msg::Ack {
                period_ns,
                managers,
                tasks,
                ingress,
                relay: None,
                ..
            } => {
                if let Some((net, ip)) = ingress {
                    self.out.push_back(Output::Ingress { net, ip });
                }
                self.agent_ack(from, period_ns, managers, tasks, exec)
            }
            Msg::NotLeader { leader } => {
                if let Some(a) = self.agent.as_mut() {
                    // An answer, if not the one it wanted: the session did not time out.
                    a.unanswered = 0;
                    a.leader = leader;
                    if leader.is_none() {
                        a.target += 1;
                    }
                    // Try again shortly at the leader, or after a period if none is known.
                    let after = match leader {
                        Some(_) => 100 * MILLI,
                        None => a.period.unwrap_or(HEARTBEAT_PERIOD),
                    };
                    self.agent_schedule_heartbeat(after);
                }
            }
        }
    }

    // ---- the manager -------------------------------------------------------------

    /// Run Raft's ready loop: send, apply, follow leadership changes.
    fn manager_poll(&mut self) {
        let Some(m) = self.manager.as_mut() else {
            return;
        };
        let before = m.raft.applied_batches();
        m.raft.poll(&mut m.store);
        let applied = m.raft.applied_batches() != before;
        let outbox = m.raft.take_outbox();
        let changes = m.raft.take_changes();
        let self_id = m.raft.id;
        let leader_now = m.raft.leader();
        let is_leader = m.raft.is_leader();
        let term = m.raft.term();
        let sends: Vec<(Ipv4Addr, Vec<u8>)> = outbox
            .into_iter()
            .filter_map(|(to, bytes)| m.raft_addr(to).map(|a| (a, bytes)))
            .collect();
        for (to, bytes) in sends {
            self.send(to, Msg::Raft(bytes));
        }
        if changes.iter().any(|c| c.id == self_id && !c.added) {
            // Demoted: this node is no longer a Raft member.
            self.manager = None;
            self.epoch += 1;
            self.note("left the Raft cluster (demoted)".into());
            self.agent_schedule_heartbeat(0);
            return;
        }
        if self.seen_leader != leader_now {
            self.seen_leader = leader_now;
            if is_leader {
                self.note(format!("elected Raft leader (term {term})"));
                self.out.push_back(Output::Elected { term });
            }
        }
        let now = self.now;
        let m = self.manager.as_mut().expect("still a manager");
        let became_leader = is_leader && m.duties.is_none();
        match (is_leader, m.duties.is_some()) {
            (true, false) => {
                // A new leader gives every node a full grace period before judging it.
                let grace = now + HEARTBEAT_GRACE * HEARTBEAT_PERIOD;
                let deadlines = m.store.nodes.keys().map(|id| (id.clone(), grace)).collect();
                m.duties = Some(Duties {
                    deadlines,
                    ..Default::default()
                });
                m.proposed = m.raft.applied_batches();
                m.reconciled = u64::MAX;
                m.wake_at = None;
                m.told.clear();
            }
            (false, true) => m.duties = None,
            _ => {}
        }
        // Timers wake the leader by themselves; here only new writes or a new
        // leadership call for its loops.
        if is_leader && (applied || became_leader) {
            self.leader_duties();
        }
    }

    /// The control API serves a request: it is checked and allocated against this
    /// manager's store (the leader's, for the driver asks the leader), and its writes
    /// are proposed. Returns the answer and the batch count to wait for before giving
    /// it (0 for a read).
    pub fn api(
        &mut self,
        now: Nanos,
        request: &controlapi::Request,
    ) -> Result<(controlapi::Response, u64), controlapi::ApiError> {
        self.now = now;
        let no_leader = || controlapi::ApiError::Rpc {
            code: controlapi::Code::Unknown,
            desc: NO_LEADER_DESC.to_string(),
        };
        let reply = {
            let store = &self.manager.as_ref().ok_or_else(no_leader)?.store;
            let draws = &mut self.draws;
            controlapi::handle(store, now, request, &mut || draws.id())?
        };
        if reply.actions.is_empty() {
            return Ok((reply.response, 0));
        }
        let target = self.propose(now, &reply.actions).map_err(|_| no_leader())?;
        Ok((reply.response, target))
    }

    /// Propose a batch (this node leads). Returns the batch count to wait for.
    pub fn propose(&mut self, now: Nanos, actions: &[Action]) -> Result<u64, NoLeader> {
        self.now = now;
        let m = self.manager.as_mut().ok_or(NoLeader)?;
        m.raft.propose(actions).map_err(|_| NoLeader)?;
        m.proposed = m.proposed.max(m.raft.applied_batches()) + 1;
        let target = m.proposed;
        self.manager_poll();
        Ok(target)
    }

    /// The leader's loops: write statuses, reconcile, schedule its next wake-up, and
    /// send each agent its tasks when they changed.
    fn leader_duties(&mut self) {
        let now = self.now;
        let Some(m) = self.manager.as_mut() else {
            return;
        };
        if !m.raft.is_leader() || m.duties.is_none() {
            return;
        }
        if m.proposed > m.raft.applied_batches() {
            return; // wait for the batch in flight
        }
        m.status_flush = false;
        let mut actions = Vec::new();
        // Agents' statuses, forward only (they may arrive out of order).
        let mut raised: BTreeMap<String, crate::store::Task> = BTreeMap::new();
        for s in std::mem::take(&mut m.statuses) {
            let Some(current) = raised.get(&s.task).or_else(|| m.store.tasks.get(&s.task)) else {
                continue;
            };
            if s.state > current.state {
                let mut t = current.clone();
                t.state = s.state;
                t.message = s.state.as_str().to_lowercase();
                t.err = s.err;
                t.since = now;
                raised.insert(t.id.clone(), t);
            }
        }
        actions.extend(raised.into_values().map(Action::PutTask));
        for id in std::mem::take(&mut m.revived) {
            if let Some(n) = m.store.nodes.get(&id) {
                if n.status == NodeStatus::Down {
                    let mut n = n.clone();
                    n.status = NodeStatus::Ready;
                    n.message.clear();
                    n.updated = now;
                    actions.push(Action::PutNode(n));
                }
            }
        }
        if !actions.is_empty() {
            // Statuses and revivals first; reconciliation runs once they are applied.
            let _ = self.propose(now, &actions);
            return;
        }
        let m = self.manager.as_mut().expect("checked above");
        let duties = m.duties.as_ref().expect("checked above");
        let ready = |id: &String| {
            m.store
                .nodes
                .get(id)
                .is_some_and(|n| n.status == NodeStatus::Ready)
        };
        let due = duties
            .deadlines
            .iter()
            .any(|(id, &t)| t <= now && ready(id))
            || duties.restarts.values().any(|&t| t <= now)
            || duties.updates.values().any(|&t| t <= now)
            || duties.orphans.values().any(|&t| t <= now)
            || m.store
                .nodes
                .keys()
                .any(|id| !duties.deadlines.contains_key(id));
        let changed = m.raft.applied_batches() != m.reconciled;
        if !due && !changed {
            self.schedule_wake();
            return;
        }
        m.reconciled = m.raft.applied_batches();
        let mut duties = m.duties.take().expect("checked above");
        let draws = &mut self.draws;
        let more = orchestrator::reconcile(&m.store, &mut duties, now, &mut || draws.id());
        m.duties = Some(duties);
        for a in &more {
            if let Action::PutNode(n) = a {
                if n.status == NodeStatus::Down {
                    let text = format!("node {} is down (heartbeat failure)", n.hostname);
                    self.note(text);
                }
            }
        }
        self.schedule_wake();
        if !more.is_empty() {
            let _ = self.propose(now, &more);
        }
        if changed {
            self.push_assignments();
        }
    }

    /// Make sure the leader wakes at its next timer (a heartbeat deadline or a restart).
    fn schedule_wake(&mut self) {
        let now = self.now;
        let Some(m) = self.manager.as_mut() else {
            return;
        };
        let Some(d) = m.duties.as_ref() else { return };
        let next = d
            .deadlines
            .values()
            .chain(d.restarts.values())
            .chain(d.updates.values())
            .chain(d.orphans.values())
            .copied()
            .filter(|&t| t > now)
            .min();
        if let Some(at) = next {
            if m.wake_at.is_none_or(|w| w <= now || at < w) {
                m.wake_at = Some(at);
                self.timer_at(at, TimerKind::Wake);
            }
        }
    }

    /// After a change, the leader tells each Ready node its tasks at once when they
    /// differ from what it last told it (swarmkit's dispatcher streams assignments;
    /// the next heartbeat would carry them anyway).
    fn push_assignments(&mut self) {
        let leader = self.addr;
        let Some(m) = self.manager.as_mut() else {
            return;
        };
        let managers = manager_addrs(&m.store);
        let managers_changed = m.pushed_managers != managers;
        let mut sends = Vec::new();
        for n in m.store.nodes.values() {
            if n.status != NodeStatus::Ready {
                continue;
            }
            let tasks = assignments(&m.store, &n.id);
            let wanted = told_of(&tasks);
            let before = m.told.get(&n.id).map_or(&[][..], Vec::as_slice);
            if before != wanted.as_slice() || managers_changed {
                m.told.insert(n.id.clone(), wanted);
                sends.push((
                    n.addr,
                    Msg::Ack {
                        period_ns: HEARTBEAT_PERIOD,
                        leader,
                        managers: managers.clone(),
                        tasks,
                        ingress: ingress_of(&m.store, &n.id),
                        relay: None,
                    },
                ));
            }
        }
        m.pushed_managers = managers;
        for (to, msg) in sends {
            self.send(to, msg);
        }
    }

    /// The dispatcher (on the leader) hears from an agent.
    fn dispatcher_heartbeat(
        &mut self,
        from: Ipv4Addr,
        node: String,
        statuses: Vec<Status>,
        relay: Option<Ipv4Addr>,
    ) {
        let leader = self.leader_addr();
        if leader != Some(self.addr) {
            match leader {
                // A follower passes an agent's heartbeat on to the leader.
                Some(l) if relay.is_none() && self.manager.is_some() => {
                    self.send(
                        l,
                        Msg::Heartbeat {
                            node,
                            statuses,
                            relay: Some(from),
                        },
                    );
                }
                _ if relay.is_none() => self.send(from, Msg::NotLeader { leader }),
                _ => {}
            }
            return;
        }
        // 5 s ± 0.5 s, drawn per heartbeat; Down after 3 periods without one.
        let jitter = self.draws.below(2 * HEARTBEAT_EPSILON + 1);
        let period = HEARTBEAT_PERIOD - HEARTBEAT_EPSILON + jitter;
        let now = self.now;
        let ip = self.addr;
        let m = self.manager.as_mut().expect("the leader is a manager");
        if let Some(d) = m.duties.as_mut() {
            d.deadlines
                .insert(node.clone(), now + HEARTBEAT_GRACE * period);
        }
        if m.store
            .nodes
            .get(&node)
            .is_some_and(|n| n.status == NodeStatus::Down)
        {
            m.revived.push(node.clone());
        }
        m.statuses.extend(statuses);
        let tasks = assignments(&m.store, &node);
        // The answer carries the node's tasks: the agent has been told them.
        m.told.insert(node.clone(), told_of(&tasks));
        let managers = manager_addrs(&m.store);
        let ingress = ingress_of(&m.store, &node);
        // The answer goes back the way the heartbeat came: to the agent, or to the
        // follower that passed it on.
        self.send(
            from,
            Msg::Ack {
                period_ns: period,
                leader: ip,
                managers,
                tasks,
                ingress,
                relay,
            },
        );
        self.leader_duties();
    }

    /// Task statuses reach a manager: the leader batches them for `STATUS_BATCH`, a
    /// follower passes them on to the leader (the agent also repeats them on its
    /// heartbeats until the leader shows them, so nothing is lost when there is none).
    fn dispatcher_status(&mut self, statuses: Vec<Status>) {
        let leader = self.leader_addr();
        if leader != Some(self.addr) {
            if let Some(l) = leader.filter(|_| self.manager.is_some()) {
                self.send(l, Msg::Status { statuses });
            }
            return;
        }
        let Some(m) = self.manager.as_mut() else {
            return;
        };
        m.statuses.extend(statuses);
        if !std::mem::replace(&mut m.status_flush, true) {
            self.timer_at(self.now + STATUS_BATCH, TimerKind::Wake);
        }
    }

    // ---- the agent ---------------------------------------------------------------

    /// Start the agent (after init, join, or a restart) with the managers it knows.
    pub fn agent_start(&mut self, now: Nanos, managers: Vec<Ipv4Addr>) {
        self.now = now;
        let keep = self.agent.take();
        self.agent = Some(Agent {
            managers,
            // The containers' state survives a change of role (not a crash, which
            // clears it first).
            tasks: keep.map(|a| a.tasks).unwrap_or_default(),
            ..Default::default()
        });
        self.agent_schedule_heartbeat(0);
    }

    /// Start a new heartbeat schedule for the agent (cancelling the previous one).
    fn agent_schedule_heartbeat(&mut self, after: Nanos) {
        let Some(a) = self.agent.as_mut() else { return };
        a.token += 1;
        let token = a.token;
        self.timer_at(self.now + after, TimerKind::Heartbeat { token });
    }

    fn agent_heartbeat(&mut self) {
        let Some(node) = self.node_id.clone() else {
            return;
        };
        // A manager's agent talks to its own manager, as swarmkit's connection broker
        // prefers the local one (a follower passes the heartbeat on to the leader), so
        // a manager is never Down for want of reaching another one. A manager that
        // knows no leader (cut off, or left out of a new cluster) cannot pass anything
        // on: its agent tries the others.
        let own = self.leader_addr().map(|_| self.addr);
        let Some(a) = self.agent.as_mut() else {
            return;
        };
        a.unanswered += 1;
        if a.unanswered > 1 {
            // The last heartbeat went unanswered for a period: swarmkit's heartbeat RPC
            // times out after 5 s (`dispatcherRPCTimeout`), which ends the session, and
            // the agent opens a new one with another manager.
            a.leader = None;
            a.target += 1;
            a.unanswered = 1;
        }
        let target = own
            .or(a.leader)
            .or_else(|| (!a.managers.is_empty()).then(|| a.managers[a.target % a.managers.len()]));
        let statuses = a.pending.clone();
        let period = a.period.unwrap_or(HEARTBEAT_PERIOD);
        // Heartbeat again after the period the dispatcher gave.
        self.agent_schedule_heartbeat(period);
        if let Some(to) = target {
            self.send(
                to,
                Msg::Heartbeat {
                    node,
                    statuses,
                    relay: None,
                },
            );
        }
    }

    fn agent_ack(
        &mut self,
        answered: Ipv4Addr,
        period: Nanos,
        managers: Vec<Ipv4Addr>,
        tasks: Vec<Assignment>,
        exec: &dyn Executor,
    ) {
        let now = self.now;
        let Some(a) = self.agent.as_mut() else {
            return;
        };
        // The agent stays with the manager that answered (a follower passes its
        // heartbeats on to the leader, as swarmkit's dispatcher proxy does).
        a.unanswered = 0;
        if a.leader.is_none() {
            a.leader = Some(answered);
        }
        a.period = Some(period);
        a.managers = managers;
        // A manager that is one no longer (demoted, removed) is not talked to again.
        if a.leader.is_some_and(|l| !a.managers.contains(&l)) {
            a.leader = None;
        }
        // The leader's view of each task, looked up by id (a node may run thousands).
        let shown: BTreeMap<&str, TaskState> = tasks
            .iter()
            .map(|x| (x.task.id.as_str(), x.task.state))
            .collect();
        // Acknowledged statuses are those the leader now shows.
        a.pending
            .retain(|s| shown.get(s.task.as_str()).is_none_or(|st| *st < s.state));
        let mut pending: BTreeSet<String> = a.pending.iter().map(|s| s.task.clone()).collect();
        let mut steps: Vec<(String, TaskState, Nanos)> = Vec::new();
        let mut withdraw: Vec<u64> = Vec::new();
        for asg in &tasks {
            let t = &asg.task;
            // A task the leader believes started here but that this engine does not have
            // (it died with the host): report it failed, so that it is replaced.
            if t.desired == TaskState::Running
                && (TaskState::Accepted..=TaskState::Running).contains(&t.state)
                && !a.tasks.contains_key(&t.id)
                && !pending.contains(&t.id)
            {
                pending.insert(t.id.clone());
                a.pending.push(Status {
                    task: t.id.clone(),
                    state: TaskState::Failed,
                    err: "task: non-zero exit (255)".into(),
                });
                continue;
            }
            match a.tasks.get_mut(&t.id) {
                None if matches!(t.desired, TaskState::Ready | TaskState::Running)
                    && t.state <= TaskState::Assigned =>
                {
                    a.tasks.insert(
                        t.id.clone(),
                        AgentTask {
                            name: format!(
                                "{}.{}.{}",
                                asg.service,
                                if t.slot > 0 {
                                    t.slot.to_string()
                                } else {
                                    t.node_id.clone().unwrap_or_default()
                                },
                                t.id
                            ),
                            image: asg.image.clone(),
                            args: asg.args.clone(),
                            state: TaskState::Assigned,
                            stopping: false,
                            held: t.desired == TaskState::Ready,
                            stop_grace: asg.stop_grace,
                            exit: None,
                            service: asg.service.clone(),
                            networks: asg
                                .networks
                                .iter()
                                .cloned()
                                .zip(t.addresses.iter().map(|(_, ip)| *ip))
                                .collect(),
                            endpoint: asg.endpoint.clone(),
                            container: None,
                            created: now,
                            since: now,
                        },
                    );
                    // Accepted and preparing at once, the container starts shortly after;
                    // a task desired Ready is prepared and waits to be started.
                    steps.push((t.id.clone(), TaskState::Accepted, 0));
                    steps.push((t.id.clone(), TaskState::Preparing, 50 * MILLI));
                    if t.desired == TaskState::Ready {
                        steps.push((t.id.clone(), TaskState::Ready, 150 * MILLI));
                    } else {
                        steps.push((t.id.clone(), TaskState::Starting, 150 * MILLI));
                        steps.push((t.id.clone(), TaskState::Running, 650 * MILLI));
                    }
                }
                // Prepared and now desired Running: start it.
                // (A second push meanwhile schedules the same steps; the later ones are
                // ignored, as states only move forward.)
                Some(mine) if t.desired == TaskState::Running && mine.held && !mine.stopping => {
                    mine.held = false;
                    steps.push((t.id.clone(), TaskState::Starting, 0));
                    steps.push((t.id.clone(), TaskState::Running, 500 * MILLI));
                }
                Some(mine) if t.desired.terminal() && !mine.stopping && !mine.state.terminal() => {
                    mine.stopping = true;
                    // The task leaves its services' load balancing and DNS before the
                    // signal (libnetwork disables the service on the endpoint first).
                    withdraw.extend(mine.container);
                    // `sleep`, `ping` and Go servers (whoami) as PID 1 ignore SIGTERM:
                    // killed after the 10 s grace. nginx and redis stop on the signal.
                    let grace = mine.stop_grace.unwrap_or(STOP_GRACE);
                    let grace = if mine.state != TaskState::Running {
                        0
                    } else if exec.stops_on_sigterm(&mine.image) {
                        grace.min(100 * MILLI)
                    } else {
                        grace
                    };
                    steps.push((t.id.clone(), TaskState::Shutdown, grace));
                }
                _ => {}
            }
        }
        // Tasks the leader no longer lists are forgotten once they have stopped.
        a.tasks
            .retain(|id, t| !t.state.terminal() || shown.contains_key(id.as_str()));
        for container in withdraw {
            self.out.push_back(Output::Withdraw { container });
        }
        for (task, state, after) in steps {
            self.timer_at(now + after, TimerKind::TaskStep { task, state });
        }
    }

    fn agent_task_step(&mut self, task: &str, state: TaskState, exec: &dyn Executor) {
        let now = self.now;
        let Some(a) = self.agent.as_mut() else {
            return;
        };
        let Some(t) = a.tasks.get_mut(task) else {
            return;
        };
        if state <= t.state || t.state.terminal() || (t.stopping && state <= TaskState::Running) {
            return;
        }
        // Preparing pulls the image: one that no registry has is rejected.
        let mut state = state;
        let mut err = String::new();
        if state == TaskState::Preparing && !exec.has_image(&t.image) {
            state = TaskState::Rejected;
            err = format!("No such image: {}", t.image);
        }
        t.state = state;
        t.since = now;
        match state {
            TaskState::Shutdown => t.exit = Some(137),
            TaskState::Complete => t.exit = Some(0),
            TaskState::Failed => {
                let code = exec.lifetime(&t.image, &t.args).map_or(1, |(_, c)| c);
                t.exit = Some(code);
                err = format!("task: non-zero exit ({code})");
            }
            _ => {}
        }
        let t = t.clone();
        // A command that ends by itself (`sleep 30`, `true`, a shell without a TTY)
        // exits: 0 is Complete, anything else Failed.
        if state == TaskState::Running {
            if let Some((after, code)) = exec.lifetime(&t.image, &t.args) {
                let end = if code == 0 {
                    TaskState::Complete
                } else {
                    TaskState::Failed
                };
                self.timer_at(
                    now + after,
                    TimerKind::TaskStep {
                        task: task.to_string(),
                        state: end,
                    },
                );
            }
        }
        // The container joins its network as it starts, and leaves it when it ends.
        if state == TaskState::Starting {
            self.out.push_back(Output::StartTask {
                task: task.to_string(),
            });
        }
        if state.terminal() {
            if let Some(container) = t.container {
                let exit = t.exit.unwrap_or(137);
                self.out.push_back(Output::StopTask { container, exit });
            }
        }
        let Some(a) = self.agent.as_mut() else {
            return;
        };
        let status = Status {
            task: task.to_string(),
            state,
            err,
        };
        a.pending.retain(|s| s.task != task);
        a.pending.push(status.clone());
        let target = a.leader;
        self.out.push_back(Output::TaskState {
            name: t.name.clone(),
            state,
        });
        if state >= TaskState::Running {
            self.note(format!("task {} {}", t.name, state.as_str().to_lowercase()));
        }
        // Statuses go to the leader at once (and ride on heartbeats until acknowledged).
        if let Some(to) = target {
            self.send(
                to,
                Msg::Status {
                    statuses: vec![status],
                },
            );
        }
    }

    // ---- commands from the node's engine -------------------------------------------

    /// The node crashed: its agent's containers die; a manager keeps its disk.
    pub fn crash(&mut self) {
        self.epoch += 1;
        if let Some(m) = self.manager.take() {
            self.disk = Some((m.raft.id, m.raft.storage(), m.store));
        }
        if let Some(a) = self.agent.as_mut() {
            a.tasks.clear();
            a.pending.clear();
            a.leader = None;
        }
        self.seen_leader = None;
    }

    /// The node came back: the manager restarts from its disk, the agent reconnects.
    pub fn restart(&mut self, now: Nanos) {
        self.now = now;
        let seed = self.draws.next_u64();
        if let Some((id, storage, store)) = self.disk.take() {
            match RaftNode::restart(id, storage, store.applied, seed) {
                Ok(raft) => {
                    self.manager = Some(Manager::new(raft, store));
                    self.start_ticks(self.now);
                }
                Err(e) => self.note(format!("raft failed to restart: {e}")),
            }
        }
        self.agent_restart();
    }

    /// `docker swarm init`: the node gets its id and runs the first manager, whose Raft
    /// group has only itself.
    pub fn start_first_manager(&mut self, now: Nanos, node_id: String, raft: RaftNode) {
        self.now = now;
        self.node_id = Some(node_id);
        self.manager = Some(Manager::new(raft, Store::default()));
        self.manager_poll();
    }

    /// `--force-new-cluster`: the manager becomes the only voter of a new Raft group,
    /// keeping the applied store. Returns the new log's first batch, the whole store
    /// again, so that a manager joining later learns it by replaying the log.
    pub fn force_new_cluster(&mut self, now: Nanos) -> Result<Vec<Action>, String> {
        self.now = now;
        const NOT_IN_SWARM: &str = "Error response from daemon: This node is not part of a swarm";
        let Some(id) = self.manager.as_ref().map(|m| m.raft.id) else {
            return Err(NOT_IN_SWARM.into());
        };
        let raft = RaftNode::bootstrap(id, self.addr, self.draws.next_u64())?;
        let Some(old) = self.manager.take() else {
            return Err(NOT_IN_SWARM.into());
        };
        let mut store = old.store;
        // The new group's log starts afresh; the applied store carries over, and records
        // this member as the new group's origin.
        store.applied = 0;
        if let Some(c) = store.cluster.as_mut() {
            c.raft_origin = id;
        }
        let actions = store.as_actions();
        self.epoch += 1;
        self.manager = Some(Manager::new(raft, store));
        self.seen_leader = None;
        self.manager_poll();
        Ok(actions)
    }

    /// `docker swarm join`: the node's id, and its agent connected to `managers`.
    pub fn joined(&mut self, now: Nanos, node_id: String, managers: Vec<Ipv4Addr>) {
        self.node_id = Some(node_id);
        self.agent_start(now, managers);
    }

    /// Start a manager that joins the Raft group whose first member was `origin`,
    /// knowing the members' addresses (`members`) as swarmkit's JoinResponse carries
    /// them. It starts with an empty store and learns it through Raft.
    pub fn start_joining_manager(
        &mut self,
        now: Nanos,
        rid: u64,
        origin: u64,
        members: BTreeMap<u64, Ipv4Addr>,
    ) -> Result<(), String> {
        self.now = now;
        let mut raft = RaftNode::joining(rid, origin, self.draws.next_u64())?;
        raft.peers = members;
        self.epoch += 1;
        self.manager = Some(Manager::new(raft, Store::default()));
        self.start_ticks(self.now);
        self.agent_restart();
        Ok(())
    }

    /// Propose adding Raft member `rid` at `addr` (or removing it, with `None`). Err
    /// when this node runs no manager or Raft refuses the proposal.
    pub fn propose_member(
        &mut self,
        now: Nanos,
        rid: u64,
        addr: Option<Ipv4Addr>,
    ) -> Result<(), NoLeader> {
        self.now = now;
        let m = self.manager.as_mut().ok_or(NoLeader)?;
        m.raft.propose_member(rid, addr).map_err(|_| NoLeader)?;
        self.manager_poll();
        Ok(())
    }

    /// Hand leadership to member `to`.
    pub fn transfer_leader(&mut self, now: Nanos, to: u64) {
        self.now = now;
        if let Some(m) = self.manager.as_mut() {
            m.raft.transfer_leader(to);
        }
        self.manager_poll();
    }

    /// A demoted node's engine stops its manager (Raft member `rid`) and keeps its agent.
    pub fn stop_manager(&mut self, now: Nanos, rid: u64) {
        self.now = now;
        if self.manager.as_ref().is_some_and(|m| m.raft.id == rid) {
            self.manager = None;
            self.epoch += 1;
            self.agent_restart();
        }
    }

    /// The agent, if any, starts a new session with the managers it knew (after the
    /// node's epoch changed).
    fn agent_restart(&mut self) {
        let Some(managers) = self.agent.as_ref().map(|a| a.managers.clone()) else {
            return;
        };
        self.agent_start(self.now, managers);
    }

    /// `docker swarm leave`: the engine removes its task containers, as Docker's
    /// executor does, and the node forgets the swarm.
    pub fn leave(&mut self, now: Nanos) {
        self.now = now;
        let containers: Vec<u64> = self
            .agent
            .as_ref()
            .map(|a| a.tasks.values().filter_map(|t| t.container).collect())
            .unwrap_or_default();
        for container in containers {
            self.out.push_back(Output::Remove { container });
        }
        self.epoch += 1;
        self.node_id = None;
        self.manager = None;
        self.agent = None;
        self.disk = None;
        self.seen_leader = None;
        self.note("left the swarm".into());
    }

    /// Start the manager's ticks, at a phase drawn in the first second.
    pub fn start_ticks(&mut self, now: Nanos) {
        self.now = now;
        let phase = self.draws.below(TICK);
        self.timer_at(self.now + phase, TimerKind::Tick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Catalog;
    impl Executor for Catalog {
        fn has_image(&self, image: &str) -> bool {
            image != "nope"
        }
        fn lifetime(&self, _: &str, _: &[String]) -> Option<(Nanos, i32)> {
            None
        }
        fn stops_on_sigterm(&self, _: &str) -> bool {
            false
        }
    }

    fn drain(n: &mut SwarmNode) -> Vec<Output> {
        std::iter::from_fn(|| n.poll_output()).collect()
    }

    #[test]
    fn a_first_manager_leads_alone_and_its_agent_heartbeats_to_itself() {
        let addr = Ipv4Addr::new(10, 0, 0, 1);
        let mut n = SwarmNode::new(addr, 7);
        let raft = RaftNode::bootstrap(1, addr, 3).expect("raft");
        n.start_first_manager(0, "node1".into(), raft);
        n.start_ticks(0);
        n.agent_start(0, vec![addr]);
        // Tick until Raft elects this lone member.
        let mut now = 0;
        let mut led = false;
        for _ in 0..60 {
            for o in drain(&mut n) {
                if let Output::Timer { at, timer } = o {
                    if timer.kind == TimerKind::Tick {
                        now = at;
                        n.handle_timer(now, timer, &Catalog);
                    }
                }
            }
            if n.leader_addr() == Some(addr) {
                led = true;
                break;
            }
        }
        assert!(led, "a lone manager elects itself");
        // Its agent's heartbeat goes to its own manager.
        n.agent_schedule_heartbeat(0);
        let hb = drain(&mut n).into_iter().find_map(|o| match o {
            Output::Timer { timer, .. } if matches!(timer.kind, TimerKind::Heartbeat { .. }) => {
                Some(timer)
            }
            _ => None,
        });
        n.node_id = Some("node1".into());
        n.handle_timer(now, hb.expect("a heartbeat timer"), &Catalog);
        let sent = drain(&mut n);
        assert!(sent
            .iter()
            .any(|o| matches!(o, Output::Send { to, msg: Msg::Heartbeat { .. } } if *to == addr)));
    }

    #[test]
    fn timers_of_an_earlier_life_are_ignored() {
        let addr = Ipv4Addr::new(10, 0, 0, 2);
        let mut n = SwarmNode::new(addr, 1);
        n.joined(0, "w".into(), vec![Ipv4Addr::new(10, 0, 0, 1)]);
        let old = drain(&mut n)
            .into_iter()
            .find_map(|o| match o {
                Output::Timer { timer, .. } => Some(timer),
                _ => None,
            })
            .expect("a heartbeat timer");
        n.crash();
        n.handle_timer(1, old, &Catalog);
        assert!(
            drain(&mut n).is_empty(),
            "a crashed life's heartbeat sends nothing"
        );
    }
}
