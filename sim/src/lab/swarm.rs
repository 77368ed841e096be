//! The swarm control plane on 2377 (the router's part): each host's agent and manager
//! driven by events, messages on 2377 as bytes through the underlay, the leader's
//! dispatcher and loops, task containers started and stopped.

use super::*;
use crate::swarm::orchestrator::{self, Duties};
use crate::swarm::raftnode::RaftNode;
use crate::swarm::store::{self, Action, Node, NodeStatus, Store, TaskState};
use crate::swarm::*;
use crate::trace::TraceEvent;

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
            SwarmEvent::Tick { host, epoch } => {
                if self.hosts[host.0].swarm.epoch != epoch {
                    return;
                }
                let Some(m) = self.hosts[host.0].swarm.manager.as_mut() else {
                    return;
                };
                m.raft.tick();
                // Election timeouts are drawn in 10-20 ticks (see raftnode); the tick
                // phase, redrawn from the seeded RNG whenever a member sees a new term
                // without leading it, also breaks ties between equal draws.
                let term = m.raft.term();
                let redraw = term != m.tick_term && !m.raft.is_leader();
                m.tick_term = term;
                let extra = if redraw {
                    Duration(self.rng.below(Duration::from_secs(1).as_nanos()))
                } else {
                    Duration::ZERO
                };
                self.engine.schedule_in(
                    Duration::from_secs(1) + extra,
                    Event::Swarm(SwarmEvent::Tick { host, epoch }),
                );
                self.manager_poll(host);
            }
            SwarmEvent::Wake { host, epoch } => {
                if self.hosts[host.0].swarm.epoch == epoch {
                    self.leader_duties(host);
                }
            }
            SwarmEvent::Heartbeat { host, epoch, token } => {
                let s = &self.hosts[host.0].swarm;
                if s.epoch == epoch && s.agent.as_ref().is_some_and(|a| a.token == token) {
                    self.agent_heartbeat(host);
                }
            }
            SwarmEvent::TaskStep {
                host,
                epoch,
                task,
                state,
            } => {
                if self.hosts[host.0].swarm.epoch == epoch {
                    self.agent_task_step(host, &task, state);
                }
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
                self.swarm_receive(from, to, msg);
            }
        }
    }

    fn swarm_receive(&mut self, from: HostId, to: HostId, msg: Msg) {
        match msg {
            Msg::Raft(bytes) => {
                let Some(m) = self.hosts[to.0].swarm.manager.as_mut() else {
                    return;
                };
                if let Err(e) = m.raft.step(&bytes) {
                    let text = format!("raft message from {} refused: {e}", self.host_name(from));
                    self.swarm_note(to, text);
                }
                self.manager_poll(to);
            }
            Msg::Heartbeat {
                node,
                statuses,
                relay,
            } => self.dispatcher_heartbeat(from, to, node, statuses, relay),
            Msg::Status { statuses } => self.dispatcher_status(to, statuses),
            Msg::Ack {
                period_ns,
                leader,
                managers,
                tasks,
                ingress,
                relay: Some(agent),
            } => {
                // A follower passes the leader's answer back to the agent.
                let Some(agent) = self.host_of(agent) else {
                    return;
                };
                self.swarm_send(
                    to,
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
                    self.ingress_sandbox(to, &net, ip);
                }
                self.agent_ack(to, from, Duration(period_ns), managers, tasks)
            }
            Msg::NotLeader { leader } => {
                if let Some(a) = self.hosts[to.0].swarm.agent.as_mut() {
                    a.leader = leader;
                    if leader.is_none() {
                        a.target += 1;
                    }
                    // Try again shortly at the leader, or after a period if none is known.
                    let after = match leader {
                        Some(_) => Duration::from_millis(100),
                        None => a.period.unwrap_or(HEARTBEAT_PERIOD),
                    };
                    self.agent_schedule_heartbeat(to, after);
                }
            }
        }
    }

    /// Where a manager's Raft peer lives.
    fn raft_addr(&self, host: HostId, id: u64) -> Option<Ipv4Addr> {
        let m = self.hosts[host.0].swarm.manager.as_ref()?;
        m.raft.peers.get(&id).copied().or_else(|| {
            m.store
                .nodes
                .values()
                .find(|n| n.raft_id == Some(id))
                .map(|n| n.addr)
        })
    }

    /// The host of the leader that `host` (a manager) knows of.
    pub fn swarm_leader_of(&self, host: HostId) -> Option<HostId> {
        let m = self.hosts[host.0].swarm.manager.as_ref()?;
        let id = m.raft.leader()?;
        if id == m.raft.id {
            return Some(host);
        }
        self.raft_addr(host, id).and_then(|a| self.host_of(a))
    }

    /// Run Raft's ready loop on a manager: send, apply, follow leadership changes.
    pub(crate) fn manager_poll(&mut self, host: HostId) {
        let Some(m) = self.hosts[host.0].swarm.manager.as_mut() else {
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
        for (to, bytes) in outbox {
            if let Some(peer) = self.raft_addr(host, to).and_then(|a| self.host_of(a)) {
                self.swarm_send(host, peer, Msg::Raft(bytes));
            }
        }
        if changes.iter().any(|c| c.id == self_id && !c.added) {
            // Demoted: this host is no longer a Raft member.
            self.hosts[host.0].swarm.manager = None;
            self.hosts[host.0].swarm.epoch += 1;
            self.swarm_note(host, "left the Raft cluster (demoted)".into());
            self.agent_schedule_heartbeat(host, Duration::ZERO);
            return;
        }
        if self.hosts[host.0].swarm.seen_leader != leader_now {
            self.hosts[host.0].swarm.seen_leader = leader_now;
            if is_leader {
                let term = self.hosts[host.0]
                    .swarm
                    .manager
                    .as_ref()
                    .map_or(0, |m| m.raft.term());
                self.swarm_note(host, format!("elected Raft leader (term {term})"));
            }
        }
        let now = self.now();
        let m = self.hosts[host.0]
            .swarm
            .manager
            .as_mut()
            .expect("still a manager");
        let became_leader = is_leader && m.duties.is_none();
        match (is_leader, m.duties.is_some()) {
            (true, false) => {
                // A new leader gives every node a full grace period before judging it.
                let grace = nanos(now) + HEARTBEAT_GRACE * HEARTBEAT_PERIOD.as_nanos();
                let deadlines = m.store.nodes.keys().map(|id| (id.clone(), grace)).collect();
                m.duties = Some(Duties {
                    deadlines,
                    ..Default::default()
                });
                m.proposed = m.raft.applied_batches();
                m.reconciled = u64::MAX;
                m.wake_at = None;
            }
            (false, true) => m.duties = None,
            _ => {}
        }
        // Timers wake the leader by themselves; here only new writes or a new
        // leadership call for its loops.
        if is_leader && (applied || became_leader) {
            self.leader_duties(host);
        }
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
        let no_leader = || controlapi::ApiError::Rpc {
            code: controlapi::Code::Unknown,
            desc: NO_LEADER_DESC.to_string(),
        };
        let reply = {
            let store = &self.hosts[host.0]
                .swarm
                .manager
                .as_ref()
                .ok_or_else(no_leader)?
                .store;
            let rng = &mut self.rng;
            controlapi::handle(store, now, request, &mut || base36(rng, 25))?
        };
        if reply.actions.is_empty() {
            return Ok((reply.response, 0));
        }
        let target = self
            .swarm_propose(host, &reply.actions)
            .map_err(|_| no_leader())?;
        Ok((reply.response, target))
    }

    /// Propose a batch on the leader `host`. Returns the batch count to wait for.
    pub(crate) fn swarm_propose(
        &mut self,
        host: HostId,
        actions: &[Action],
    ) -> Result<u64, String> {
        let m = self.hosts[host.0]
            .swarm
            .manager
            .as_mut()
            .ok_or_else(|| NO_LEADER.to_string())?;
        m.raft.propose(actions).map_err(|_| NO_LEADER.to_string())?;
        m.proposed = m.proposed.max(m.raft.applied_batches()) + 1;
        let target = m.proposed;
        self.manager_poll(host);
        Ok(target)
    }

    /// The leader's loops: write statuses, reconcile, schedule its next wake-up, and
    /// send each agent its tasks when they changed.
    pub(crate) fn leader_duties(&mut self, host: HostId) {
        let now = nanos(self.now());
        let Some(m) = self.hosts[host.0].swarm.manager.as_mut() else {
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
        let mut raised: BTreeMap<String, store::Task> = BTreeMap::new();
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
            let _ = self.swarm_propose(host, &actions);
            return;
        }
        let m = self.hosts[host.0]
            .swarm
            .manager
            .as_mut()
            .expect("checked above");
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
            self.schedule_wake(host, now);
            return;
        }
        m.reconciled = m.raft.applied_batches();
        // The store is lent out while the RNG mints ids for new tasks.
        let store = std::mem::take(&mut m.store);
        let mut duties = m.duties.take().expect("checked above");
        let more = orchestrator::reconcile(&store, &mut duties, now, &mut || self.swarm_id());
        for a in &more {
            if let Action::PutNode(n) = a {
                if n.status == NodeStatus::Down {
                    let text = format!("node {} is down (heartbeat failure)", n.hostname);
                    self.swarm_note(host, text);
                }
            }
        }
        let m = self.hosts[host.0]
            .swarm
            .manager
            .as_mut()
            .expect("checked above");
        m.store = store;
        m.duties = Some(duties);
        self.schedule_wake(host, now);
        if !more.is_empty() {
            let _ = self.swarm_propose(host, &more);
        }
        if changed {
            self.push_assignments(host);
        }
    }

    /// Make sure the leader wakes at its next timer (a heartbeat deadline or a restart).
    fn schedule_wake(&mut self, host: HostId, now: u64) {
        let epoch = self.hosts[host.0].swarm.epoch;
        let Some(m) = self.hosts[host.0].swarm.manager.as_mut() else {
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
                self.engine
                    .schedule(Instant(at), Event::Swarm(SwarmEvent::Wake { host, epoch }));
            }
        }
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

    /// After a change, the leader tells each Ready node its tasks at once (swarmkit's
    /// dispatcher streams assignments; the next heartbeat would carry them anyway).
    fn push_assignments(&mut self, host: HostId) {
        let Some(m) = self.hosts[host.0].swarm.manager.as_ref() else {
            return;
        };
        let nodes: Vec<Node> = m.store.nodes.values().cloned().collect();
        let store = m.store.clone();
        let managers = manager_addrs(&store);
        let managers_changed = m.pushed_managers != managers;
        let leader = self.underlay.nic(host).ip;
        for n in nodes {
            if n.status != NodeStatus::Ready {
                continue;
            }
            let tasks = Self::assignments(&store, &n.id);
            let Some(to) = self.host_of(n.addr) else {
                continue;
            };
            let agent_view: Vec<(String, TaskState)> = self.hosts[to.0]
                .swarm
                .agent
                .as_ref()
                .map(|a| {
                    a.tasks
                        .iter()
                        .filter(|(_, t)| !t.state.terminal())
                        .map(|(id, t)| {
                            (
                                id.clone(),
                                if t.stopping {
                                    TaskState::Shutdown
                                } else if t.held {
                                    TaskState::Ready
                                } else {
                                    TaskState::Running
                                },
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let wanted: Vec<(String, TaskState)> = tasks
                .iter()
                .filter(|a| !(a.task.desired.terminal() && self.agent_lacks(to, &a.task.id)))
                .map(|a| {
                    (
                        a.task.id.clone(),
                        if a.task.desired.terminal() {
                            TaskState::Shutdown
                        } else if a.task.desired == TaskState::Ready {
                            TaskState::Ready
                        } else {
                            TaskState::Running
                        },
                    )
                })
                .collect();
            if agent_view != wanted || managers_changed {
                self.swarm_send(
                    host,
                    to,
                    Msg::Ack {
                        period_ns: HEARTBEAT_PERIOD.as_nanos(),
                        leader,
                        managers: managers.clone(),
                        tasks,
                        ingress: ingress_of(&store, &n.id),
                        relay: None,
                    },
                );
            }
        }
        if let Some(m) = self.hosts[host.0].swarm.manager.as_mut() {
            m.pushed_managers = managers;
        }
    }

    fn agent_lacks(&self, host: HostId, task: &str) -> bool {
        self.hosts[host.0]
            .swarm
            .agent
            .as_ref()
            .is_none_or(|a| a.tasks.get(task).is_none_or(|t| t.state.terminal()))
    }

    /// The dispatcher (on the leader) hears from an agent.
    fn dispatcher_heartbeat(
        &mut self,
        from: HostId,
        to: HostId,
        node: String,
        statuses: Vec<Status>,
        relay: Option<Ipv4Addr>,
    ) {
        let leader = self.swarm_leader_of(to);
        if leader != Some(to) {
            match leader {
                // A follower passes an agent's heartbeat on to the leader.
                Some(l) if relay.is_none() && self.hosts[to.0].swarm.manager.is_some() => {
                    self.swarm_send(
                        to,
                        l,
                        Msg::Heartbeat {
                            node,
                            statuses,
                            relay: Some(self.underlay.nic(from).ip),
                        },
                    );
                }
                _ if relay.is_none() => {
                    let addr = leader.map(|l| self.underlay.nic(l).ip);
                    self.swarm_send(to, from, Msg::NotLeader { leader: addr });
                }
                _ => {}
            }
            return;
        }
        // 5 s ± 0.5 s, drawn per heartbeat; Down after 3 periods without one.
        let jitter = self.rng.below(2 * HEARTBEAT_EPSILON.as_nanos() + 1);
        let period = Duration(HEARTBEAT_PERIOD.as_nanos() - HEARTBEAT_EPSILON.as_nanos() + jitter);
        let now = nanos(self.now());
        let ip = self.underlay.nic(to).ip;
        let m = self.hosts[to.0]
            .swarm
            .manager
            .as_mut()
            .expect("the leader is a manager");
        if let Some(d) = m.duties.as_mut() {
            d.deadlines
                .insert(node.clone(), now + HEARTBEAT_GRACE * period.as_nanos());
        }
        if m.store
            .nodes
            .get(&node)
            .is_some_and(|n| n.status == NodeStatus::Down)
        {
            m.revived.push(node.clone());
        }
        m.statuses.extend(statuses);
        let tasks = Self::assignments(&m.store, &node);
        let managers = manager_addrs(&m.store);
        let ingress = ingress_of(&m.store, &node);
        self.swarm_send(
            to,
            from,
            Msg::Ack {
                period_ns: period.as_nanos(),
                leader: ip,
                managers,
                tasks,
                ingress,
                relay,
            },
        );
        self.leader_duties(to);
    }

    /// Start a host's agent (after init, join, or a restart).
    pub(crate) fn agent_start(&mut self, host: HostId, managers: Vec<Ipv4Addr>) {
        let s = &mut self.hosts[host.0].swarm;
        let keep = s.agent.take();
        s.agent = Some(Agent {
            managers,
            // The containers' state survives a change of role (not a crash, which
            // clears it first).
            tasks: keep.map(|a| a.tasks).unwrap_or_default(),
            ..Default::default()
        });
        self.agent_schedule_heartbeat(host, Duration::ZERO);
    }

    /// Start a new heartbeat schedule for the agent (cancelling the previous one).
    pub(crate) fn agent_schedule_heartbeat(&mut self, host: HostId, after: Duration) {
        let s = &mut self.hosts[host.0].swarm;
        let epoch = s.epoch;
        let Some(a) = s.agent.as_mut() else { return };
        a.token += 1;
        let token = a.token;
        self.engine.schedule_in(
            after,
            Event::Swarm(SwarmEvent::Heartbeat { host, epoch, token }),
        );
    }

    fn agent_heartbeat(&mut self, host: HostId) {
        let Some(node) = self.hosts[host.0].swarm.node_id.clone() else {
            return;
        };
        let Some(a) = self.hosts[host.0].swarm.agent.as_mut() else {
            return;
        };
        a.unanswered += 1;
        if a.unanswered > 2 {
            // No answer: try another manager.
            a.leader = None;
            a.target += 1;
            a.unanswered = 1;
        }
        // A manager's agent talks to its own manager, as swarmkit's connection broker
        // prefers the local one (a follower passes the heartbeat on to the leader), so
        // a manager is never Down for want of reaching another one. A manager that
        // knows no leader (cut off, or left out of a new cluster) cannot pass anything
        // on: its agent tries the others.
        let own = self
            .swarm_leader_of(host)
            .map(|_| self.underlay.nic(host).ip);
        let Some(a) = self.hosts[host.0].swarm.agent.as_mut() else {
            return;
        };
        let target = own
            .or(a.leader)
            .or_else(|| (!a.managers.is_empty()).then(|| a.managers[a.target % a.managers.len()]));
        let statuses = a.pending.clone();
        let period = a.period.unwrap_or(HEARTBEAT_PERIOD);
        // Heartbeat again after the period the dispatcher gave.
        self.agent_schedule_heartbeat(host, period);
        let Some(to) = target.and_then(|ip| self.host_of(ip)) else {
            return;
        };
        self.swarm_send(
            host,
            to,
            Msg::Heartbeat {
                node,
                statuses,
                relay: None,
            },
        );
    }

    fn agent_ack(
        &mut self,
        host: HostId,
        from: HostId,
        period: Duration,
        managers: Vec<Ipv4Addr>,
        tasks: Vec<Assignment>,
    ) {
        // The agent stays with the manager that answered (a follower passes its
        // heartbeats on to the leader, as swarmkit's dispatcher proxy does).
        let answered = self.underlay.nic(from).ip;
        let now = self.now();
        let epoch = self.hosts[host.0].swarm.epoch;
        let Some(a) = self.hosts[host.0].swarm.agent.as_mut() else {
            return;
        };
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
        let mut pending: std::collections::BTreeSet<String> =
            a.pending.iter().map(|s| s.task.clone()).collect();
        let mut steps = Vec::new();
        let mut withdraw: Vec<crate::lab::ContainerId> = Vec::new();
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
                            stop_grace: asg.stop_grace.map(Duration),
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
                    steps.push((t.id.clone(), TaskState::Accepted, Duration::ZERO));
                    steps.push((
                        t.id.clone(),
                        TaskState::Preparing,
                        Duration::from_millis(50),
                    ));
                    if t.desired == TaskState::Ready {
                        steps.push((t.id.clone(), TaskState::Ready, Duration::from_millis(150)));
                    } else {
                        steps.push((
                            t.id.clone(),
                            TaskState::Starting,
                            Duration::from_millis(150),
                        ));
                        steps.push((t.id.clone(), TaskState::Running, Duration::from_millis(650)));
                    }
                }
                // Prepared and now desired Running: start it.
                // (A second push meanwhile schedules the same steps; the later ones are
                // ignored, as states only move forward.)
                Some(mine) if t.desired == TaskState::Running && mine.held && !mine.stopping => {
                    mine.held = false;
                    steps.push((t.id.clone(), TaskState::Starting, Duration::ZERO));
                    steps.push((t.id.clone(), TaskState::Running, Duration::from_millis(500)));
                }
                Some(mine) if t.desired.terminal() && !mine.stopping && !mine.state.terminal() => {
                    mine.stopping = true;
                    // The task leaves its services' load balancing and DNS before the
                    // signal (libnetwork disables the service on the endpoint first).
                    withdraw.extend(mine.container);
                    // `sleep`, `ping` and Go servers (whoami) as PID 1 ignore SIGTERM:
                    // killed after the 10 s grace. nginx and redis stop on the signal.
                    let grace = mine.stop_grace.unwrap_or(Duration::from_secs(10));
                    let grace = if mine.state != TaskState::Running {
                        Duration::ZERO
                    } else if crate::images::stops_on_sigterm(&mine.image) {
                        Duration::from_millis(100).min(grace)
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
        for cid in withdraw {
            self.withdraw_endpoint(cid);
        }
        for (task, state, after) in steps {
            self.engine.schedule_in(
                after,
                Event::Swarm(SwarmEvent::TaskStep {
                    host,
                    epoch,
                    task,
                    state,
                }),
            );
        }
    }

    fn agent_task_step(&mut self, host: HostId, task: &str, state: TaskState) {
        let now = self.now();
        let Some(a) = self.hosts[host.0].swarm.agent.as_mut() else {
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
        if state == TaskState::Preparing && crate::images::lookup(&t.image).is_none() {
            state = TaskState::Rejected;
            err = format!("No such image: {}", t.image);
        }
        t.state = state;
        t.since = now;
        match state {
            TaskState::Shutdown => t.exit = Some(137),
            TaskState::Complete => t.exit = Some(0),
            TaskState::Failed => {
                let code = lifetime(&t.image, &t.args).map_or(1, |(_, c)| c);
                t.exit = Some(code);
                err = format!("task: non-zero exit ({code})");
            }
            _ => {}
        }
        // A command that ends by itself (`sleep 30`, `true`, a shell without a TTY)
        // exits: 0 is Complete, anything else Failed.
        if state == TaskState::Running {
            if let Some((after, code)) = lifetime(&t.image, &t.args) {
                let epoch = self.hosts[host.0].swarm.epoch;
                let end = if code == 0 {
                    TaskState::Complete
                } else {
                    TaskState::Failed
                };
                self.engine.schedule_in(
                    after,
                    Event::Swarm(SwarmEvent::TaskStep {
                        host,
                        epoch,
                        task: task.to_string(),
                        state: end,
                    }),
                );
            }
        }
        // The container joins its network as it starts, and leaves it when it ends.
        let Some(t) = self.hosts[host.0]
            .swarm
            .agent
            .as_ref()
            .and_then(|a| a.tasks.get(task))
            .cloned()
        else {
            return;
        };
        if state == TaskState::Starting {
            {
                let cid = self.task_attach(host, &t);
                if let Some(x) = self.hosts[host.0]
                    .swarm
                    .agent
                    .as_mut()
                    .and_then(|a| a.tasks.get_mut(task))
                {
                    x.container = cid;
                }
            }
        }
        if state.terminal() {
            if let Some(cid) = t.container {
                self.task_detach(host, cid, t.exit.unwrap_or(137));
            }
        }
        let Some(a) = self.hosts[host.0].swarm.agent.as_mut() else {
            return;
        };
        let Some(t) = a.tasks.get_mut(task) else {
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
        let name = t.name.clone();
        if state >= TaskState::Running {
            self.swarm_note(
                host,
                format!("task {name} {}", state.as_str().to_lowercase()),
            );
        }
        // Statuses go to the leader at once (and ride on heartbeats until acknowledged).
        if let Some(to) = target.and_then(|ip| self.host_of(ip)) {
            self.swarm_send(
                host,
                to,
                Msg::Status {
                    statuses: vec![status],
                },
            );
        }
    }

    /// Task statuses reach a manager: the leader batches them for `STATUS_BATCH`, a
    /// follower passes them on to the leader (the agent also repeats them on its
    /// heartbeats until the leader shows them, so nothing is lost when there is none).
    fn dispatcher_status(&mut self, to: HostId, statuses: Vec<Status>) {
        let leader = self.swarm_leader_of(to);
        if leader != Some(to) {
            if let Some(l) = leader.filter(|_| self.hosts[to.0].swarm.manager.is_some()) {
                self.swarm_send(to, l, Msg::Status { statuses });
            }
            return;
        }
        let epoch = self.hosts[to.0].swarm.epoch;
        let Some(m) = self.hosts[to.0].swarm.manager.as_mut() else {
            return;
        };
        m.statuses.extend(statuses);
        if !std::mem::replace(&mut m.status_flush, true) {
            self.engine.schedule_in(
                STATUS_BATCH,
                Event::Swarm(SwarmEvent::Wake { host: to, epoch }),
            );
        }
    }

    /// A host crashed: its agent's containers die; a manager keeps its disk.
    pub(crate) fn swarm_crash(&mut self, host: HostId) {
        let s = &mut self.hosts[host.0].swarm;
        s.epoch += 1;
        if let Some(m) = s.manager.take() {
            s.disk = Some((m.raft.id, m.raft.storage(), m.store));
        }
        if let Some(a) = s.agent.as_mut() {
            a.tasks.clear();
            a.pending.clear();
            a.leader = None;
        }
        s.seen_leader = None;
    }

    /// A host came back: the manager restarts from its disk, the agent reconnects.
    pub(crate) fn swarm_restart(&mut self, host: HostId) {
        let seed = self.rng.next_u64();
        let s = &mut self.hosts[host.0].swarm;
        if let Some((id, storage, store)) = s.disk.take() {
            match RaftNode::restart(id, storage, store.applied, seed) {
                Ok(raft) => {
                    s.manager = Some(Manager::new(raft, store));
                    self.manager_ticks(host);
                }
                Err(e) => self.swarm_note(host, format!("raft failed to restart: {e}")),
            }
        }
        self.agent_restart(host);
    }

    /// `docker swarm init` on `host`: the node gets its id and runs the first manager,
    /// whose Raft group has only itself.
    pub(crate) fn swarm_start_first_manager(
        &mut self,
        host: HostId,
        node_id: String,
        raft: RaftNode,
    ) {
        let s = &mut self.hosts[host.0].swarm;
        s.node_id = Some(node_id);
        s.manager = Some(Manager::new(raft, Store::default()));
        self.manager_poll(host);
    }

    /// `--force-new-cluster` on `host`: its manager becomes the only voter of a new Raft
    /// group, keeping the applied store. Returns the new log's first batch, the whole
    /// store again, so that a manager joining later learns it by replaying the log.
    pub(crate) fn swarm_force_new_cluster(
        &mut self,
        host: HostId,
        addr: Ipv4Addr,
    ) -> Result<Vec<Action>, String> {
        let s = &mut self.hosts[host.0].swarm;
        let Some(id) = s.manager.as_ref().map(|m| m.raft.id) else {
            return Err("Error response from daemon: This node is not part of a swarm".into());
        };
        let raft = RaftNode::bootstrap(id, addr, self.rng.next_u64())?;
        let Some(old) = s.manager.take() else {
            return Err("Error response from daemon: This node is not part of a swarm".into());
        };
        let mut store = old.store;
        // The new group's log starts afresh; the applied store carries over, and records
        // this member as the new group's origin.
        store.applied = 0;
        if let Some(c) = store.cluster.as_mut() {
            c.raft_origin = id;
        }
        let actions = store.as_actions();
        s.epoch += 1;
        s.manager = Some(Manager::new(raft, store));
        s.seen_leader = None;
        self.manager_poll(host);
        Ok(actions)
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
        self.hosts[host.0].swarm.node_id = Some(node_id);
        self.agent_start(host, managers);
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
        let mut raft = RaftNode::joining(rid, origin, self.rng.next_u64())?;
        raft.peers = members;
        let s = &mut self.hosts[host.0].swarm;
        s.epoch += 1;
        s.manager = Some(Manager::new(raft, Store::default()));
        self.manager_ticks(host);
        self.agent_restart(host);
        Ok(())
    }

    /// The Raft members `leader` knows, with their addresses (its peers, and the managers
    /// in its store).
    pub(crate) fn swarm_members(&self, leader: HostId) -> BTreeMap<u64, Ipv4Addr> {
        self.hosts[leader.0]
            .swarm
            .manager
            .as_ref()
            .map(|m| {
                let mut all = m.raft.peers.clone();
                for n in m.store.nodes.values() {
                    if let Some(id) = n.raft_id {
                        all.entry(id).or_insert(n.addr);
                    }
                }
                all
            })
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
        let m = self.hosts[leader.0].swarm.manager.as_mut().ok_or(())?;
        m.raft.propose_member(rid, addr).map_err(|_| ())?;
        self.manager_poll(leader);
        Ok(())
    }

    /// `leader` hands leadership to member `to`.
    pub(crate) fn swarm_transfer_leader(&mut self, leader: HostId, to: u64) {
        if let Some(m) = self.hosts[leader.0].swarm.manager.as_mut() {
            m.raft.transfer_leader(to);
        }
        self.manager_poll(leader);
    }

    /// A demoted node's engine stops its manager (Raft member `rid`) and keeps its agent.
    pub(crate) fn swarm_stop_manager(&mut self, host: HostId, rid: u64) {
        let s = &mut self.hosts[host.0].swarm;
        if s.manager.as_ref().is_some_and(|m| m.raft.id == rid) {
            s.manager = None;
            s.epoch += 1;
            self.agent_restart(host);
        }
    }

    /// The agent, if any, starts a new session with the managers it knew (after its
    /// node's epoch changed).
    fn agent_restart(&mut self, host: HostId) {
        let Some(managers) = self.hosts[host.0]
            .swarm
            .agent
            .as_ref()
            .map(|a| a.managers.clone())
        else {
            return;
        };
        self.agent_start(host, managers);
    }

    /// `docker swarm leave` on `host`: the engine removes its task containers, as
    /// Docker's executor does, and the node forgets the swarm.
    pub(crate) fn swarm_leave(&mut self, host: HostId) {
        let tasks: Vec<ContainerId> = self.hosts[host.0]
            .swarm
            .agent
            .as_ref()
            .map(|ag| ag.tasks.values().filter_map(|t| t.container).collect())
            .unwrap_or_default();
        for cid in tasks {
            if self.exists(cid) {
                self.withdraw_endpoint(cid);
                self.remove_container(cid);
            }
        }
        let s = &mut self.hosts[host.0].swarm;
        s.epoch += 1;
        s.node_id = None;
        s.manager = None;
        s.agent = None;
        s.disk = None;
        s.seen_leader = None;
        self.swarm_note(host, "left the swarm".into());
    }

    /// Start a manager's ticks, at a phase drawn from the seeded RNG.
    pub(crate) fn manager_ticks(&mut self, host: HostId) {
        let epoch = self.hosts[host.0].swarm.epoch;
        let phase = Duration(self.rng.below(Duration::from_secs(1).as_nanos()));
        self.engine
            .schedule_in(phase, Event::Swarm(SwarmEvent::Tick { host, epoch }));
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
        let Some(id) = node.raft_id else { return "" };
        let Some(m) = self.hosts[leader.0].swarm.manager.as_ref() else {
            return "";
        };
        if m.raft.leader() == Some(id) && m.raft.id == id {
            "Leader"
        } else if m.raft.recently_active(id) && m.raft.voters().contains(&id) {
            "Reachable"
        } else {
            "Unreachable"
        }
    }
}
