//! One manager's Raft member: TiKV's raft-rs (`RawNode` over `MemStorage`) with
//! swarmkit's timings, and no I/O. The driver calls `tick` every second, hands it the
//! messages that arrive (`step`), and takes what to send (`take_outbox`) and what was
//! committed (`poll`), which this module applies to the `Store`.
//!
//! swarmkit runs etcd's raft with check-quorum and without pre-vote, and etcd draws
//! each election timeout in `[ElectionTick, 2 x ElectionTick)` ticks, at every change of
//! term or role. So does this member, with one difference of means: raft-rs draws from
//! `thread_rng`, so after every call that may have changed the term or the role, the
//! member replaces that draw by one from its own generator, seeded by the driver (the
//! simulator's seeded RNG). No tick ever sees raft-rs's own draw. The driver also
//! staggers the members' tick phases (drawn from its RNG).

use crate::store::{Action, Store};
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// swarmkit: an election after 10 ticks without a leader.
pub const ELECTION_TICK: usize = 10;
/// swarmkit: the leader heartbeats every tick.
pub const HEARTBEAT_TICK: usize = 1;

/// A membership change that was committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberChange {
    /// The Raft id.
    pub id: u64,
    /// Added (true) or removed.
    pub added: bool,
    /// Its address, for an addition.
    pub addr: Option<Ipv4Addr>,
}

/// A Raft member.
pub struct RaftNode {
    raw: RawNode<MemStorage>,
    storage: MemStorage,
    /// This member's id.
    pub id: u64,
    /// Addresses learnt from committed membership changes.
    pub peers: BTreeMap<u64, Ipv4Addr>,
    outbox: Vec<(u64, Vec<u8>)>,
    changes: Vec<MemberChange>,
    applied_batches: u64,
    /// The generator of election timeouts (splitmix64), seeded by the driver.
    draws: crate::draws::Draws,
    /// The term and role the current election timeout was drawn for.
    drawn_for: (u64, StateRole),
}

fn config(id: u64, applied: u64) -> Config {
    Config {
        id,
        election_tick: ELECTION_TICK,
        heartbeat_tick: HEARTBEAT_TICK,
        min_election_tick: ELECTION_TICK,
        max_election_tick: 2 * ELECTION_TICK,
        check_quorum: true,
        pre_vote: false,
        applied,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        ..Default::default()
    }
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

impl RaftNode {
    /// The first manager of a new cluster (`swarm init`, or `--force-new-cluster`): the
    /// only voter, which elects itself at once.
    pub fn bootstrap(id: u64, addr: Ipv4Addr, seed: u64) -> Result<RaftNode, String> {
        let storage = MemStorage::new_with_conf_state(ConfState::from((vec![id], vec![])));
        let mut node = RaftNode::with_storage(id, storage, 0, seed)?;
        node.peers.insert(id, addr);
        node.raw.campaign().map_err(|e| e.to_string())?;
        node.redraw_if_reset();
        Ok(node)
    }

    /// A manager that joins: an empty log from the group's initial configuration
    /// (`origin`, its first member), filled in by the leader.
    pub fn joining(id: u64, origin: u64, seed: u64) -> Result<RaftNode, String> {
        let storage = MemStorage::new_with_conf_state(ConfState::from((vec![origin], vec![])));
        RaftNode::with_storage(id, storage, 0, seed)
    }

    /// A manager restarting from its log (the disk survives a crash).
    pub fn restart(
        id: u64,
        storage: MemStorage,
        applied: u64,
        seed: u64,
    ) -> Result<RaftNode, String> {
        RaftNode::with_storage(id, storage, applied, seed)
    }

    fn with_storage(
        id: u64,
        storage: MemStorage,
        applied: u64,
        seed: u64,
    ) -> Result<RaftNode, String> {
        let raw = RawNode::new(&config(id, applied), storage.clone(), &logger())
            .map_err(|e| e.to_string())?;
        let drawn_for = (raw.raft.term, raw.raft.state);
        let mut node = RaftNode {
            raw,
            storage,
            id,
            peers: BTreeMap::new(),
            outbox: Vec::new(),
            changes: Vec::new(),
            applied_batches: 0,
            draws: crate::draws::Draws(seed),
            drawn_for,
        };
        node.redraw();
        Ok(node)
    }

    /// A new election timeout in `[ElectionTick, 2 x ElectionTick)`, from the seeded
    /// generator (splitmix64).
    fn redraw(&mut self) {
        let z = self.draws.next_u64();
        let ticks = ELECTION_TICK + (z % ELECTION_TICK as u64) as usize;
        self.raw.raft.set_randomized_election_timeout(ticks);
        self.drawn_for = (self.raw.raft.term, self.raw.raft.state);
    }

    /// raft-rs redraws the timeout (from `thread_rng`) whenever the term or the role
    /// changes: replace that draw before any tick can use it.
    fn redraw_if_reset(&mut self) {
        if (self.raw.raft.term, self.raw.raft.state) != self.drawn_for {
            self.redraw();
        }
    }

    /// The log, as it would be on disk.
    pub fn storage(&self) -> MemStorage {
        self.storage.clone()
    }

    /// One tick (one second).
    pub fn tick(&mut self) {
        self.raw.tick();
        self.redraw_if_reset();
    }

    /// A message from a peer. Malformed bytes are refused.
    pub fn step(&mut self, bytes: &[u8]) -> Result<(), String> {
        let m =
            Message::parse_from_bytes(bytes).map_err(|e| format!("malformed raft message: {e}"))?;
        let res = self.raw.step(m).map_err(|e| e.to_string());
        self.redraw_if_reset();
        res
    }

    /// Propose a batch of writes (leader only).
    pub fn propose(&mut self, actions: &[Action]) -> Result<(), String> {
        if !self.is_leader() {
            return Err("not the leader".into());
        }
        self.raw
            .propose(Vec::new(), Store::encode(actions))
            .map_err(|e| e.to_string())
    }

    /// Propose adding (`Some(addr)`) or removing a voter.
    pub fn propose_member(&mut self, id: u64, addr: Option<Ipv4Addr>) -> Result<(), String> {
        if !self.is_leader() {
            return Err("not the leader".into());
        }
        let mut cc = ConfChange {
            node_id: id,
            ..Default::default()
        };
        match addr {
            Some(a) => {
                cc.set_change_type(ConfChangeType::AddNode);
                cc.context = a.to_string().into_bytes().into();
            }
            None => cc.set_change_type(ConfChangeType::RemoveNode),
        }
        self.raw
            .propose_conf_change(Vec::new(), cc)
            .map_err(|e| e.to_string())
    }

    /// Hand leadership to another voter (used before the leader demotes itself).
    pub fn transfer_leader(&mut self, to: u64) {
        self.raw.transfer_leader(to);
        self.redraw_if_reset();
    }

    /// Whether this member leads.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this member knows of.
    pub fn leader(&self) -> Option<u64> {
        let l = self.raw.raft.leader_id;
        (l != 0).then_some(l)
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The voters.
    pub fn voters(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.raw.raft.prs().conf().voters().ids().iter().collect();
        v.sort_unstable();
        v
    }

    /// On the leader: whether a voter was heard from in the current check-quorum window.
    pub fn recently_active(&self, id: u64) -> bool {
        id == self.id || self.raw.raft.prs().get(id).is_some_and(|p| p.recent_active)
    }

    /// Messages to send, as (Raft id, bytes).
    pub fn take_outbox(&mut self) -> Vec<(u64, Vec<u8>)> {
        std::mem::take(&mut self.outbox)
    }

    /// Membership changes committed since the last call.
    pub fn take_changes(&mut self) -> Vec<MemberChange> {
        std::mem::take(&mut self.changes)
    }

    /// How many write batches this member has applied since it started.
    pub fn applied_batches(&self) -> u64 {
        self.applied_batches
    }

    fn queue(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            let bytes = m.write_to_bytes().expect("raft messages always encode");
            self.outbox.push((m.to, bytes));
        }
    }

    /// Persist, send and apply whatever raft-rs has ready. Committed writes go into `store`.
    pub fn poll(&mut self, store: &mut Store) {
        while self.raw.has_ready() {
            let mut rd = self.raw.ready();
            self.queue(rd.take_messages());
            if !rd.snapshot().is_empty() {
                let snap = rd.snapshot().clone();
                let index = snap.get_metadata().index;
                if let Err(e) = self.storage.wl().apply_snapshot(snap) {
                    tracing_like(&format!("raft snapshot refused: {e}"));
                }
                store.applied = store.applied.max(index);
            }
            let committed = rd.take_committed_entries();
            self.apply(committed, store);
            if let Err(e) = self.storage.wl().append(rd.entries()) {
                tracing_like(&format!("raft append refused: {e}"));
            }
            if let Some(hs) = rd.hs() {
                self.storage.wl().set_hardstate(hs.clone());
            }
            self.queue(rd.take_persisted_messages());
            let mut light = self.raw.advance(rd);
            if let Some(c) = light.commit_index() {
                self.storage.wl().mut_hard_state().set_commit(c);
            }
            self.queue(light.take_messages());
            let committed = light.take_committed_entries();
            self.apply(committed, store);
            self.raw.advance_apply();
        }
        // A membership change applied may have changed the role.
        self.redraw_if_reset();
    }

    fn apply(&mut self, entries: Vec<Entry>, store: &mut Store) {
        for e in entries {
            // A member restarting from its disk holds the writes up to `applied`: those
            // are skipped, but every membership change is applied, in order, for
            // Raft's own configuration. A joining member starts empty and applies all.
            let seen = e.index <= store.applied;
            store.applied = store.applied.max(e.index);
            if e.data.is_empty() {
                continue; // the empty entry a new leader appends
            }
            match e.get_entry_type() {
                EntryType::EntryNormal if seen => {}
                EntryType::EntryNormal => match Store::decode(&e.data) {
                    Ok(actions) => {
                        for a in &actions {
                            store.apply(a);
                        }
                        self.applied_batches += 1;
                    }
                    Err(err) => tracing_like(&format!("undecodable store entry: {err}")),
                },
                EntryType::EntryConfChange => {
                    let Ok(cc) = ConfChange::parse_from_bytes(&e.data) else {
                        tracing_like("undecodable membership change");
                        continue;
                    };
                    match self.raw.apply_conf_change(&cc) {
                        Ok(cs) => self.storage.wl().set_conf_state(cs),
                        Err(err) => {
                            tracing_like(&format!("membership change refused: {err}"));
                            continue;
                        }
                    }
                    let added = cc.get_change_type() == ConfChangeType::AddNode;
                    let addr = std::str::from_utf8(&cc.context)
                        .ok()
                        .and_then(|s| s.parse().ok());
                    if added {
                        if let Some(a) = addr {
                            self.peers.insert(cc.node_id, a);
                        }
                    } else {
                        self.peers.remove(&cc.node_id);
                    }
                    self.changes.push(MemberChange {
                        id: cc.node_id,
                        added,
                        addr,
                    });
                }
                EntryType::EntryConfChangeV2 => {
                    tracing_like("joint-consensus changes are not used by swarmlab")
                }
            }
        }
    }
}

/// Internal inconsistencies are not expected; they are kept visible on stderr rather than
/// silently ignored (the simulator's trace records the consequences).
fn tracing_like(msg: &str) {
    eprintln!("swarmlab: raft: {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Action, Cluster};

    fn cluster(secret: &str) -> Action {
        Action::Cluster(Cluster {
            id: "c".into(),
            ca_digest: "d".into(),
            worker_secret: secret.into(),
            manager_secret: "m".into(),
            pool: "10.0.0.0/8".into(),
            raft_origin: 1,
            created: 0,
        })
    }

    /// Three members exchanging messages instantly: a write on the leader reaches all.
    #[test]
    fn three_members_replicate_and_reelect() {
        let ip = |i: u8| Ipv4Addr::new(10, 0, 0, i);
        let mut nodes = vec![RaftNode::bootstrap(1, ip(1), 1).unwrap()];
        let mut stores = vec![Store::default()];
        nodes[0].poll(&mut stores[0]);
        assert!(nodes[0].is_leader());
        fn pump(nodes: &mut [RaftNode], stores: &mut [Store], down: &[u64]) {
            for _ in 0..50 {
                let mut moved = false;
                for i in 0..nodes.len() {
                    nodes[i].poll(&mut stores[i]);
                    for (to, bytes) in nodes[i].take_outbox() {
                        moved = true;
                        if down.contains(&to) || down.contains(&nodes[i].id) {
                            continue;
                        }
                        let j = nodes.iter().position(|n| n.id == to).unwrap();
                        nodes[j].step(&bytes).unwrap();
                    }
                }
                if !moved {
                    return;
                }
            }
        }
        for id in [2, 3] {
            nodes[0].propose_member(id, Some(ip(id as u8))).unwrap();
            nodes.push(RaftNode::joining(id, 1, id).unwrap());
            stores.push(Store::default());
            pump(&mut nodes, &mut stores, &[]);
        }
        assert_eq!(nodes[0].voters(), vec![1, 2, 3]);
        nodes[0].propose(&[cluster("w1")]).unwrap();
        pump(&mut nodes, &mut stores, &[]);
        for s in &stores {
            assert_eq!(s.cluster.as_ref().unwrap().worker_secret, "w1");
        }
        // The leader goes silent: after the election timeout another member leads.
        // Members tick at different phases: each tick's messages land before the next.
        for _ in 0..(2 * ELECTION_TICK + 2) {
            for i in 1..nodes.len() {
                nodes[i].tick();
                pump(&mut nodes, &mut stores, &[1]);
            }
        }
        let leaders: Vec<u64> = nodes[1..]
            .iter()
            .filter(|n| n.is_leader())
            .map(|n| n.id)
            .collect();
        assert_eq!(leaders.len(), 1, "exactly one new leader");
        assert!(nodes[1].step(b"\xff\xff garbage").is_err());
    }
}
