//! The swarm control plane on 2377 (the router's part): each host's swarm mode
//! (`swarm::SwarmNode`, the control plane's core: agent, manager, dispatcher) gets the
//! messages that reach it and its timers, and what it asks for is done here: messages
//! carried as bytes on tcp/2377 through the underlay, timers set, task containers
//! started and stopped by the host's engine, notes in the timeline.

use super::*;
use crate::swarm::node::Output;
use crate::swarm::raftnode::RaftNode;
use crate::swarm::store::{Action, Node, Store};
use crate::swarm::*;
use crate::trace::TraceEvent;

/// A task state as the trace names it.
fn task_state_text(s: crate::swarm::store::TaskState) -> &'static str {
    use crate::swarm::store::TaskState as T;
    match s {
        T::New => "new",
        T::Pending => "pending",
        T::Assigned => "assigned",
        T::Accepted => "accepted",
        T::Preparing => "preparing",
        T::Ready => "ready",
        T::Starting => "starting",
        T::Running => "running",
        T::Complete => "complete",
        T::Shutdown => "shutdown",
        T::Failed => "failed",
        T::Rejected => "rejected",
        T::Orphaned => "orphaned",
        T::Remove => "remove",
    }
}

/// A node's images and the catalog, as its agent's executor asks them.
struct Catalog<'a>(&'a crate::imagestore::ImageStore);

impl Catalog<'_> {
    /// The built-in image a task's image runs as (what a local image was built FROM).
    fn base<'b>(&'b self, image: &'b str) -> &'b str {
        self.0.get(image).map_or(image, |i| i.base.as_str())
    }
}

impl node::Executor for Catalog<'_> {
    fn has_image(&self, image: &str) -> bool {
        self.0.get(image).is_some() || crate::images::lookup(image).is_some()
    }
    fn lifetime(&self, image: &str, args: &[String]) -> Option<(u64, i32)> {
        lifetime(self.base(image), args).map(|(d, code)| (d.as_nanos(), code))
    }
    fn stops_on_sigterm(&self, image: &str) -> bool {
        crate::images::stops_on_sigterm(self.base(image))
    }
}

/// `n` random characters of base 36 from `rng`.
fn base36(rng: &mut Rng, n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..n)
        .map(|_| ALPHABET[rng.below(36) as usize] as char)
        .collect()
}

impl Lab {
    /// A new swarm object id: 25 characters of base 36, as swarmkit's identity package.
    pub fn swarm_id(&mut self) -> String {
        self.base36(25)
    }

    /// `n` random characters of base 36 (ids, token secrets, the CA digest).
    pub fn base36(&mut self, n: usize) -> String {
        base36(&mut self.rng, n)
    }

    pub(crate) fn swarm_note(&mut self, host: HostId, event: String) {
        let name = self.host_name(host).to_string();
        let now = self.now();
        self.trace.push(
            now,
            TraceEvent::Swarm {
                host: name,
                what: event,
            },
        );
    }

    /// The host that holds an address.
    fn host_of(&self, ip: Ipv4Addr) -> Option<HostId> {
        self.underlay.by_ip(ip)
    }

    /// Whether the TCP connection carrying `msg` works now. Connections go to a
    /// manager's 2377: agents connect to managers (so replies travel on the agent's
    /// connection, and only the manager's firewall matters), managers to each other.
    fn swarm_path(&self, from: HostId, to: HostId, msg: &Msg) -> Result<Duration, String> {
        match msg {
            Msg::Ack { relay: None, .. } | Msg::NotLeader { .. } => {
                self.tcp_path(to, from, SWARM_PORT)
            }
            _ => self.tcp_path(from, to, SWARM_PORT),
        }
    }

    /// Send a message on tcp/2377: dropped on a broken path, delayed by losses.
    pub(crate) fn swarm_send(&mut self, from: HostId, to: HostId, msg: Msg) {
        match self.swarm_path(from, to, &msg) {
            Ok(latency) => {
                // Agents dial managers; a manager's answers go back on the agent's
                // connection. Managers dial each other.
                let answer = matches!(msg, Msg::Ack { relay: None, .. } | Msg::NotLeader { .. });
                let (client, server) = if answer { (to, from) } else { (from, to) };
                // A new connection costs the handshake first: SYN, SYN-ACK, then the
                // data with the last ACK, one round trip more than an open one.
                let (cip, sip) = (self.underlay.nic(client).ip, self.underlay.nic(server).ip);
                // (The server's first message waits one turn more: the client opens.)
                let handshake = if client != server && !self.streams.is_open(cip, sip, SWARM_PORT) {
                    Duration(if answer { 3 } else { 2 } * latency.as_nanos())
                } else {
                    Duration::ZERO
                };
                let bytes = swarmlab_control::api::encode(&msg);
                self.tap_stream(client, server, SWARM_PORT, !answer, &bytes);
                let loss = self.underlay.link(from, to).loss;
                let delay = latency
                    + handshake
                    + self.tcp_retransmit_delay(loss, 1, Duration::from_millis(200));
                self.engine
                    .schedule_in(delay, Event::Swarm(SwarmEvent::Deliver { from, to, bytes }));
            }
            Err(why) => {
                let name = self.host_name(from).to_string();
                let now = self.now();
                self.trace.push(
                    now,
                    TraceEvent::UnderlayDrop {
                        host: name,
                        reason: format!("tcp/{SWARM_PORT}: {why}"),
                        bytes: 0,
                    },
                );
            }
        }
    }

    /// Handle a swarm event.
    pub(crate) fn swarm_event(&mut self, ev: SwarmEvent) {
        match ev {
            SwarmEvent::Timer { host, timer } => {
                let now = self.now().0;
                let h = &mut self.hosts[host.0];
                h.swarm.handle_timer(now, timer, &Catalog(&h.images));
                self.swarm_drain(host);
            }
            SwarmEvent::Deliver { from, to, bytes } => {
                let msg = match swarmlab_control::api::decode(&bytes) {
                    Ok(m) => m,
                    Err(e) => {
                        let text =
                            format!("message on 2377 from {} refused: {e}", self.host_name(from));
                        self.swarm_note(to, text);
                        return;
                    }
                };
                if self.swarm_path(from, to, &msg).is_err() {
                    return; // the connection broke while the message was in flight
                }
                let (now, ip) = (self.now().0, self.underlay.nic(from).ip);
                let h = &mut self.hosts[to.0];
                h.swarm.handle_message(now, ip, msg, &Catalog(&h.images));
                self.swarm_drain(to);
            }
        }
    }

    /// Do what `host`'s swarm mode asked for, in the order it asked.
    fn swarm_drain(&mut self, host: HostId) {
        while let Some(out) = self.hosts[host.0].swarm.poll_output() {
            match out {
                Output::Send { to, msg } => {
                    if let Some(to) = self.host_of(to) {
                        self.swarm_send(host, to, msg);
                    }
                }
                Output::Timer { at, timer } => {
                    self.engine
                        .schedule(Instant(at), Event::Swarm(SwarmEvent::Timer { host, timer }));
                }
                Output::Note(text) => self.swarm_note(host, text),
                Output::TaskState { name, state } => {
                    let node = self.host_name(host).to_string();
                    self.record(TraceEvent::Task {
                        host: node,
                        task: name,
                        state: task_state_text(state),
                    });
                }
                Output::Elected { term } => {
                    let name = self.host_name(host).to_string();
                    self.record(TraceEvent::Leader { host: name, term });
                }
                Output::StartTask { task } => {
                    let Some(t) = self.hosts[host.0]
                        .swarm
                        .agent
                        .as_ref()
                        .and_then(|a| a.tasks.get(&task))
                        .cloned()
                    else {
                        continue;
                    };
                    let cid = self.task_attach(host, &t);
                    self.hosts[host.0]
                        .swarm
                        .set_container(&task, cid.map(|c| c.0 as u64));
                }
                Output::StopTask { container, exit } => {
                    self.task_detach(host, ContainerId(container as usize), exit);
                }
                Output::Withdraw { container } => {
                    self.withdraw_endpoint(ContainerId(container as usize));
                }
                Output::Remove { container } => {
                    let cid = ContainerId(container as usize);
                    if self.exists(cid) {
                        self.withdraw_endpoint(cid);
                        self.remove_container(cid);
                    }
                }
                Output::Ingress { net, ip } => self.ingress_sandbox(host, &net, ip),
            }
        }
    }

    /// The host of the leader that `host` (a manager) knows of.
    pub fn swarm_leader_of(&self, host: HostId) -> Option<HostId> {
        self.hosts[host.0]
            .swarm
            .leader_addr()
            .and_then(|a| self.host_of(a))
    }

    /// The leader `host`'s control API serves a request: it is checked and allocated
    /// against the leader's store, and its writes are proposed. Returns the answer and
    /// the batch count to wait for before giving it (0 for a read).
    pub(crate) fn swarm_api(
        &mut self,
        host: HostId,
        request: &controlapi::Request,
    ) -> Result<(controlapi::Response, u64), controlapi::ApiError> {
        let now = self.now().0;
        let answer = self.hosts[host.0].swarm.api(now, request);
        self.swarm_drain(host);
        answer
    }

    /// Propose a batch on the leader `host`. Returns the batch count to wait for.
    pub(crate) fn swarm_propose(
        &mut self,
        host: HostId,
        actions: &[Action],
    ) -> Result<u64, String> {
        let now = self.now().0;
        let target = self.hosts[host.0].swarm.propose(now, actions);
        self.swarm_drain(host);
        target.map_err(|_| NO_LEADER.to_string())
    }

    /// Start a host's agent (after init or join) with the managers it knows.
    pub(crate) fn agent_start(&mut self, host: HostId, managers: Vec<Ipv4Addr>) {
        let now = self.now().0;
        self.hosts[host.0].swarm.agent_start(now, managers);
        self.swarm_drain(host);
    }

    /// A host crashed: its agent's containers die; a manager keeps its disk.
    pub(crate) fn swarm_crash(&mut self, host: HostId) {
        self.hosts[host.0].swarm.crash();
        self.swarm_drain(host);
    }

    /// A host came back: the manager restarts from its disk, the agent reconnects.
    pub(crate) fn swarm_restart(&mut self, host: HostId) {
        let now = self.now().0;
        self.hosts[host.0].swarm.restart(now);
        self.swarm_drain(host);
    }

    /// A seed for what is built for `host`'s swarm mode (its Raft member).
    pub(crate) fn swarm_seed(&mut self, host: HostId) -> u64 {
        self.hosts[host.0].swarm.seed()
    }

    /// `docker swarm init` on `host`: the node gets its id and runs the first manager,
    /// whose Raft group has only itself.
    pub(crate) fn swarm_start_first_manager(
        &mut self,
        host: HostId,
        node_id: String,
        raft: RaftNode,
    ) {
        let now = self.now().0;
        self.hosts[host.0]
            .swarm
            .start_first_manager(now, node_id, raft);
        self.swarm_drain(host);
    }

    /// `--force-new-cluster` on `host`: its manager becomes the only voter of a new Raft
    /// group, keeping the applied store. Returns the new log's first batch, the whole
    /// store again, so that a manager joining later learns it by replaying the log.
    pub(crate) fn swarm_force_new_cluster(&mut self, host: HostId) -> Result<Vec<Action>, String> {
        let now = self.now().0;
        let actions = self.hosts[host.0].swarm.force_new_cluster(now);
        self.swarm_drain(host);
        actions
    }

    /// A node that joined: its id, its agent connected to `managers`, and its gossip
    /// member joining the cluster through `via`, as libnetwork's NetworkDB does on
    /// `swarm join`.
    pub(crate) fn swarm_joined(
        &mut self,
        host: HostId,
        node_id: String,
        managers: Vec<Ipv4Addr>,
        via: HostId,
    ) {
        let now = self.now().0;
        self.hosts[host.0].swarm.joined(now, node_id, managers);
        self.swarm_drain(host);
        self.gossip_join(host, &[via]);
    }

    /// Start a manager on `host` that joins the Raft group whose first member was
    /// `origin`, knowing the members' addresses (`members`) as swarmkit's JoinResponse
    /// carries them. It starts with an empty store and learns it through Raft. This is
    /// the node's engine acting on what the dispatcher told it.
    pub(crate) fn swarm_start_joining_manager(
        &mut self,
        host: HostId,
        rid: u64,
        origin: u64,
        members: BTreeMap<u64, Ipv4Addr>,
    ) -> Result<(), String> {
        let now = self.now().0;
        let started = self.hosts[host.0]
            .swarm
            .start_joining_manager(now, rid, origin, members);
        self.swarm_drain(host);
        started
    }

    /// The Raft members `leader` knows, with their addresses (its peers, and the managers
    /// in its store).
    pub(crate) fn swarm_members(&self, leader: HostId) -> BTreeMap<u64, Ipv4Addr> {
        self.hosts[leader.0]
            .swarm
            .manager
            .as_ref()
            .map(Manager::members)
            .unwrap_or_default()
    }

    /// Propose, on `leader`, adding Raft member `rid` at `addr` (or removing it, with
    /// `None`). Err when `leader` runs no manager or Raft refuses the proposal.
    pub(crate) fn swarm_propose_member(
        &mut self,
        leader: HostId,
        rid: u64,
        addr: Option<Ipv4Addr>,
    ) -> Result<(), ()> {
        let now = self.now().0;
        let done = self.hosts[leader.0].swarm.propose_member(now, rid, addr);
        self.swarm_drain(leader);
        done.map_err(|_| ())
    }

    /// `leader` hands leadership to member `to`.
    pub(crate) fn swarm_transfer_leader(&mut self, leader: HostId, to: u64) {
        let now = self.now().0;
        self.hosts[leader.0].swarm.transfer_leader(now, to);
        self.swarm_drain(leader);
    }

    /// A demoted node's engine stops its manager (Raft member `rid`) and keeps its agent.
    pub(crate) fn swarm_stop_manager(&mut self, host: HostId, rid: u64) {
        let now = self.now().0;
        self.hosts[host.0].swarm.stop_manager(now, rid);
        self.swarm_drain(host);
    }

    /// `docker swarm leave` on `host`: the engine removes its task containers, as
    /// Docker's executor does, and the node forgets the swarm.
    pub(crate) fn swarm_leave(&mut self, host: HostId) {
        let now = self.now().0;
        self.hosts[host.0].swarm.leave(now);
        self.swarm_drain(host);
    }

    /// Start a manager's ticks, at a phase drawn by the node.
    pub(crate) fn manager_ticks(&mut self, host: HostId) {
        let now = self.now().0;
        self.hosts[host.0].swarm.start_ticks(now);
        self.swarm_drain(host);
    }

    /// What `expect node H status|manager` and `node ls` see: the leader's store, via
    /// any manager that knows a leader.
    pub fn swarm_view(&self) -> Option<(HostId, &Store)> {
        let leader = self
            .hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.swarm.manager.as_ref().map(|m| (i, m)))
            .filter(|(i, m)| m.raft.is_leader() && self.underlay.nic(HostId(*i)).up)
            .max_by_key(|(_, m)| m.raft.term())?;
        Some((HostId(leader.0), &leader.1.store))
    }

    /// The MANAGER STATUS of a node, as `docker node ls` prints it.
    pub fn manager_status(&self, leader: HostId, node: &Node) -> &'static str {
        self.hosts[leader.0]
            .swarm
            .manager
            .as_ref()
            .map_or("", |m| m.manager_status(node))
    }
}
