//! Network-scoped tables on top of membership, as libnetwork's NetworkDB does for the
//! overlay: members join and leave named networks; each (table, network, key) holds a
//! value with a Lamport time and an owner; changes are gossiped every 200 ms to 3 random
//! members of the same network and ride on memberlist user messages; a member that joins
//! a network bulk-syncs over TCP with every member of it, then with one random member
//! every 30 s; deletes are tombstones reaped after 30 minutes; a dead member's entries
//! disappear.
//!
//! A member that fails (rather than leaves) is remembered for 24 hours, and once a second
//! one of the failed members is picked at random and joined again (NetworkDB's
//! `reconnectNode`); once a minute, when none of the members it joined through
//! (its bootstrap peers) is in the cluster, it joins them again, once a second for 10 s
//! (`rejoinClusterBootStrap`). So two halves of a healed partition merge again. A member
//! that comes back is bulk-synced on every network both are in.
//!
//! Like `Member`, this core has no I/O: a driver passes what `Member` received as user
//! messages to `handle_message`, sends what `poll_send` asks through the member, reports
//! members alive with `node_alive`, failed with `node_failed` and gone with `node_gone`. The message format is ours (msgpack), behind
//! a magic byte; it needs no compatibility with Go.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddrV4;
use std::time::Duration;

const MAGIC: u8 = 0xd7;

/// How often table events are gossiped within a network.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(200);
/// How many network members each gossip round reaches.
pub const GOSSIP_FANOUT: usize = 3;
/// How often a network is synced in bulk with one random member of it.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(30);
/// How long a delete is remembered.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(30 * 60);
/// How often a failed member is joined again (libnetwork's `retryInterval`).
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);
/// How long a failed member is remembered (libnetwork's `nodeReapInterval`).
pub const FAILED_NODE_TTL: Duration = Duration::from_secs(24 * 3600);
/// How often the bootstrap peers are checked (libnetwork's `rejoinClusterInterval`).
pub const REJOIN_INTERVAL: Duration = Duration::from_secs(60);
/// How long the bootstrap peers are then joined again, once a second
/// (`rejoinClusterDuration`).
pub const REJOIN_DURATION: Duration = Duration::from_secs(10);

/// What happened to an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A new key.
    Create,
    /// A new value for a known key.
    Update,
    /// The key was deleted (or its owner left or died).
    Delete,
}

/// A change to a table, as this member saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableEvent {
    /// What happened.
    pub change: Change,
    /// Table name.
    pub table: String,
    /// Network.
    pub network: String,
    /// Key.
    pub key: String,
    /// Value (empty for a delete).
    pub value: Vec<u8>,
    /// The member that owns the entry.
    pub owner: String,
}

/// What the driver must send through the member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Send {
    /// `Member::send_user` to this member.
    Unreliable {
        /// Member name.
        to: String,
        /// Payload.
        bytes: Vec<u8>,
    },
    /// `Member::send_user_reliable` to this member.
    Reliable {
        /// Member name.
        to: String,
        /// Payload.
        bytes: Vec<u8>,
    },
    /// `Member::broadcast_user` to the whole cluster.
    Broadcast {
        /// Invalidation key.
        key: String,
        /// Payload.
        bytes: Vec<u8>,
    },
    /// `Member::join` through these addresses (a failed member, or the bootstrap peers).
    Join {
        /// Gossip addresses.
        to: Vec<SocketAddrV4>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct WireEntry {
    table: String,
    key: String,
    owner: String,
    value: ByteBuf,
    ltime: u64,
    deleted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Msg {
    NetworkJoin {
        node: String,
        network: String,
        ltime: u64,
    },
    NetworkLeave {
        node: String,
        network: String,
        ltime: u64,
    },
    Table {
        network: String,
        entry: WireEntry,
    },
    BulkSync {
        node: String,
        network: String,
        reply: bool,
        entries: Vec<WireEntry>,
    },
    /// A member's own network participations, carried as memberlist push/pull user
    /// state (NetworkDB's LocalState), so that a member that joins the cluster later
    /// learns who is in which network.
    Networks {
        node: String,
        networks: Vec<(String, u64, bool)>,
    },
}

/// splitmix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A ticker's first delay: below its interval, drawn from the seed and the ticker's
/// number.
fn stagger(seed: u64, which: u64, interval: Duration) -> Duration {
    let z = mix(seed ^ which.wrapping_mul(0xd6e8_feb8_6659_fd93));
    let nanos = interval.as_nanos() as u64;
    Duration::from_nanos(((u128::from(z) * u128::from(nanos)) >> 64) as u64)
}

fn encode(msg: &Msg) -> Vec<u8> {
    let mut out = vec![MAGIC];
    let _ = rmp_serde::encode::write_named(&mut out, msg);
    out
}

#[derive(Clone, Debug)]
struct Entry {
    owner: String,
    value: Vec<u8>,
    ltime: u64,
    deleted: bool,
    reap_at: Option<Duration>,
}

#[derive(Clone, Debug)]
struct Participant {
    ltime: u64,
    leaving: bool,
}

/// One member's NetworkDB.
/// Table messages a network's queue keeps while it has no other member.
const MAX_QUEUED: usize = 4096;

#[derive(Debug)]
pub struct NetworkDb {
    node: String,
    clock: u64,
    /// network -> member -> participation.
    networks: BTreeMap<String, BTreeMap<String, Participant>>,
    mine: BTreeSet<String>,
    /// (network, table, key) -> entry.
    entries: BTreeMap<(String, String, String), Entry>,
    /// network -> queued table messages and how often each was sent.
    queues: BTreeMap<String, Vec<(Vec<u8>, u32)>>,
    events: VecDeque<TableEvent>,
    sends: VecDeque<Send>,
    next_gossip: Duration,
    next_sync: Duration,
    rng: u64,
    /// Messages that did not decode.
    pub malformed: u64,
    /// Our participations changed since `local_state` was last taken.
    state_dirty: bool,
    /// The members alive at a bootstrap address.
    bootstrap_alive: BTreeSet<String>,
    /// Members that failed: their address, and when they are forgotten.
    failed: BTreeMap<String, (SocketAddrV4, Duration)>,
    /// Members back from failure, to bulk-sync once their networks are known, until when.
    resync: BTreeMap<String, Duration>,
    /// The addresses this member joined through.
    bootstrap: Vec<SocketAddrV4>,
    next_reconnect: Duration,
    next_rejoin: Duration,
    /// Joining the bootstrap peers again until then.
    rejoin_until: Option<Duration>,
    next_rejoin_retry: Duration,
    /// Its own random stream (staggers and picks), apart from the gossip targets'.
    reconnect_rng: u64,
}

impl NetworkDb {
    /// A database for member `node`.
    pub fn new(node: &str, now: Duration, seed: u64) -> NetworkDb {
        NetworkDb {
            node: node.to_string(),
            clock: 0,
            networks: BTreeMap::new(),
            mine: BTreeSet::new(),
            entries: BTreeMap::new(),
            queues: BTreeMap::new(),
            events: VecDeque::new(),
            sends: VecDeque::new(),
            next_gossip: now + GOSSIP_INTERVAL,
            next_sync: now + SYNC_INTERVAL,
            rng: seed ^ 0x3c6e_f372_fe94_f82b,
            malformed: 0,
            state_dirty: true,
            bootstrap_alive: BTreeSet::new(),
            failed: BTreeMap::new(),
            resync: BTreeMap::new(),
            bootstrap: Vec::new(),
            // Each ticker starts after a random stagger below its interval, as
            // NetworkDB's triggerFunc does.
            next_reconnect: now + stagger(seed, 1, RECONNECT_INTERVAL),
            next_rejoin: now + stagger(seed, 2, REJOIN_INTERVAL),
            rejoin_until: None,
            next_rejoin_retry: now,
            reconnect_rng: seed ^ 0x5be0_cd19_137e_2179,
        }
    }

    /// The members it joined through, to join again when none of them is in the cluster.
    pub fn set_bootstrap(&mut self, addrs: &[SocketAddrV4]) {
        self.bootstrap = addrs.to_vec();
    }

    /// Member `node` is alive at `addr` (joined, or back). One that had failed is
    /// forgotten as failed, and bulk-synced on the networks both are in. (Only the
    /// bootstrap peers' liveness is kept: a driver need not report every member.)
    pub fn node_alive(&mut self, now: Duration, node: &str, addr: SocketAddrV4) {
        if node == self.node {
            return;
        }
        if self.bootstrap.contains(&addr) {
            self.bootstrap_alive.insert(node.to_string());
        }
        if self.failed.remove(node).is_some() {
            // Its networks come with its push/pull state (ours every 30 s at the latest).
            self.resync
                .insert(node.to_string(), now + 2 * SYNC_INTERVAL);
        }
    }

    /// Member `node` failed (declared dead, not left): it is joined again now and then.
    /// Its participations and entries go as with `node_gone`.
    pub fn node_failed(&mut self, now: Duration, node: &str, addr: SocketAddrV4) {
        self.bootstrap_alive.remove(node);
        if node != self.node {
            self.failed
                .insert(node.to_string(), (addr, now + FAILED_NODE_TTL));
        }
        self.node_gone(node);
    }

    /// Member `node` left on purpose: it is not joined again.
    pub fn node_left(&mut self, node: &str) {
        self.bootstrap_alive.remove(node);
        self.failed.remove(node);
        self.node_gone(node);
    }

    /// The members it would join again, by name.
    pub fn failed_nodes(&self) -> impl Iterator<Item = &String> {
        self.failed.keys()
    }

    fn reconnect_below(&mut self, n: usize) -> usize {
        self.reconnect_rng = self.reconnect_rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = mix(self.reconnect_rng);
        ((u128::from(z) * n as u128) >> 64) as usize
    }

    /// NetworkDB's reconnect, rejoin and resync tickers.
    fn reconnect_timers(&mut self, now: Duration) {
        if now >= self.next_reconnect {
            // The ticker keeps its phase however long it was not needed.
            let behind = (now - self.next_reconnect).as_nanos() / RECONNECT_INTERVAL.as_nanos();
            self.next_reconnect += RECONNECT_INTERVAL * (behind as u32 + 1);
            self.failed.retain(|_, (_, until)| *until > now);
            if !self.failed.is_empty() {
                let k = self.reconnect_below(self.failed.len());
                if let Some((_, (addr, _))) = self.failed.iter().nth(k) {
                    self.sends.push_back(Send::Join { to: vec![*addr] });
                }
            }
        }
        if now >= self.next_rejoin {
            let behind = (now - self.next_rejoin).as_nanos() / REJOIN_INTERVAL.as_nanos();
            self.next_rejoin += REJOIN_INTERVAL * (behind as u32 + 1);
            let in_cluster = !self.bootstrap_alive.is_empty();
            if !self.bootstrap.is_empty() && !in_cluster {
                self.rejoin_until = Some(now + REJOIN_DURATION);
                self.next_rejoin_retry = now + RECONNECT_INTERVAL;
            }
        }
        if let Some(until) = self.rejoin_until {
            let in_cluster = !self.bootstrap_alive.is_empty();
            if in_cluster || now >= until {
                self.rejoin_until = None;
            } else if now >= self.next_rejoin_retry {
                // retryJoin: its own ticker, once a second from the window's start.
                let behind =
                    (now - self.next_rejoin_retry).as_nanos() / RECONNECT_INTERVAL.as_nanos();
                self.next_rejoin_retry += RECONNECT_INTERVAL * (behind as u32 + 1);
                self.sends.push_back(Send::Join {
                    to: self.bootstrap.clone(),
                });
            }
        }
        let back: Vec<(String, Duration)> =
            self.resync.iter().map(|(n, t)| (n.clone(), *t)).collect();
        for (node, until) in back {
            let common: Vec<String> = self
                .mine
                .iter()
                .filter(|net| {
                    self.networks
                        .get(*net)
                        .is_some_and(|m| m.contains_key(&node))
                })
                .cloned()
                .collect();
            if !common.is_empty() {
                for net in &common {
                    self.request_sync(net, &node);
                }
                self.resync.remove(&node);
            } else if now >= until {
                self.resync.remove(&node);
            }
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn witness(&mut self, t: u64) {
        self.clock = self.clock.max(t);
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = mix(self.rng);
        ((u128::from(z) * n as u128) >> 64) as usize
    }

    /// The next thing to send.
    pub fn poll_send(&mut self) -> Option<Send> {
        self.sends.pop_front()
    }

    /// The next table event.
    pub fn poll_event(&mut self) -> Option<TableEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` wants to run.
    pub fn next_timeout(&self) -> Duration {
        let mut next = self.next_gossip.min(self.next_sync).min(self.next_rejoin);
        if !self.failed.is_empty() {
            next = next.min(self.next_reconnect);
        }
        if self.rejoin_until.is_some() {
            next = next.min(self.next_rejoin_retry);
        }
        next
    }

    /// Networks this member has joined.
    pub fn my_networks(&self) -> impl Iterator<Item = &String> {
        self.mine.iter()
    }

    /// Members of a network as this member knows them (itself included), sorted.
    pub fn participants(&self, network: &str) -> Vec<String> {
        self.networks
            .get(network)
            .map(|m| {
                m.iter()
                    .filter(|(_, p)| !p.leaving)
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Live entries of a table in a network: (key, owner, value), sorted by key.
    pub fn entries(&self, network: &str, table: &str) -> Vec<(String, String, Vec<u8>)> {
        self.entries
            .iter()
            .filter(|((n, t, _), e)| n == network && t == table && !e.deleted)
            .map(|((_, _, k), e)| (k.clone(), e.owner.clone(), e.value.clone()))
            .collect()
    }

    fn others(&self, network: &str) -> Vec<String> {
        self.participants(network)
            .into_iter()
            .filter(|n| *n != self.node)
            .collect()
    }

    fn entries_of(&self, network: &str) -> Vec<WireEntry> {
        self.entries
            .iter()
            .filter(|((n, _, _), _)| n == network)
            .map(|((_, t, k), e)| WireEntry {
                table: t.clone(),
                key: k.clone(),
                owner: e.owner.clone(),
                value: ByteBuf::from(e.value.clone()),
                ltime: e.ltime,
                deleted: e.deleted,
            })
            .collect()
    }

    /// Join a network: announce it cluster-wide and bulk-sync with every member of it.
    pub fn join_network(&mut self, network: &str) {
        self.mine.insert(network.to_string());
        self.announce(network, false);
        for peer in self.others(network) {
            self.request_sync(network, &peer);
        }
    }

    /// Record our own (non-)participation and broadcast it cluster-wide; a newer
    /// announcement about the same network replaces an older one in the queue.
    fn announce(&mut self, network: &str, leaving: bool) {
        self.state_dirty = true;
        let ltime = self.tick();
        self.networks
            .entry(network.to_string())
            .or_default()
            .insert(self.node.clone(), Participant { ltime, leaving });
        let (node, network_s) = (self.node.clone(), network.to_string());
        let msg = if leaving {
            Msg::NetworkLeave {
                node,
                network: network_s,
                ltime,
            }
        } else {
            Msg::NetworkJoin {
                node,
                network: network_s,
                ltime,
            }
        };
        self.sends.push_back(Send::Broadcast {
            key: format!("net:{}:{network}", self.node),
            bytes: encode(&msg),
        });
    }

    /// Leave a network: announce it, and forget its entries.
    pub fn leave_network(&mut self, network: &str) {
        self.mine.remove(network);
        self.announce(network, true);
        self.entries.retain(|(n, _, _), _| n != network);
        self.queues.remove(network);
    }

    fn request_sync(&mut self, network: &str, peer: &str) {
        let msg = Msg::BulkSync {
            node: self.node.clone(),
            network: network.into(),
            reply: true,
            entries: self.entries_of(network),
        };
        self.sends.push_back(Send::Reliable {
            to: peer.to_string(),
            bytes: encode(&msg),
        });
    }

    /// Create or update our entry `(table, network, key)`.
    pub fn put(
        &mut self,
        now: Duration,
        network: &str,
        table: &str,
        key: &str,
        value: &[u8],
    ) -> bool {
        self.write(now, network, table, key, value, false)
    }

    /// Delete our entry: a tombstone, gossiped like any change.
    pub fn delete(&mut self, now: Duration, network: &str, table: &str, key: &str) -> bool {
        self.write(now, network, table, key, &[], true)
    }

    fn write(
        &mut self,
        now: Duration,
        network: &str,
        table: &str,
        key: &str,
        value: &[u8],
        deleted: bool,
    ) -> bool {
        if !self.mine.contains(network) {
            return false;
        }
        let entry = WireEntry {
            table: table.into(),
            key: key.into(),
            owner: self.node.clone(),
            value: ByteBuf::from(value.to_vec()),
            ltime: self.tick(),
            deleted,
        };
        self.apply(now, network, entry.clone());
        let msg = encode(&Msg::Table {
            network: network.into(),
            entry,
        });
        self.queues
            .entry(network.to_string())
            .or_default()
            .push((msg, 0));
        true
    }

    /// Merge one entry; newer Lamport time wins (ties broken by owner name). Returns
    /// whether it changed anything.
    fn apply(&mut self, now: Duration, network: &str, e: WireEntry) -> bool {
        self.witness(e.ltime);
        let k = (network.to_string(), e.table.clone(), e.key.clone());
        let change = match self.entries.get(&k) {
            Some(old) if (old.ltime, &old.owner) >= (e.ltime, &e.owner) => return false,
            Some(old) if old.deleted && e.deleted => None,
            Some(old) if old.deleted => Some(Change::Create),
            Some(_) if e.deleted => Some(Change::Delete),
            Some(_) => Some(Change::Update),
            None if e.deleted => None,
            None => Some(Change::Create),
        };
        self.entries.insert(
            k,
            Entry {
                owner: e.owner.clone(),
                value: e.value.to_vec(),
                ltime: e.ltime,
                deleted: e.deleted,
                reap_at: e.deleted.then_some(now + TOMBSTONE_TTL),
            },
        );
        if let Some(change) = change {
            self.events.push_back(TableEvent {
                change,
                table: e.table,
                network: network.into(),
                key: e.key,
                value: if e.deleted {
                    Vec::new()
                } else {
                    e.value.into_vec()
                },
                owner: e.owner,
            });
        }
        true
    }

    /// A member died or left the cluster: its entries vanish from our view.
    pub fn node_gone(&mut self, node: &str) {
        for m in self.networks.values_mut() {
            m.remove(node);
        }
        self.remove_owned(node, None);
    }

    /// Drop the live entries `owner` holds (in one network, or all), as deletes.
    fn remove_owned(&mut self, owner: &str, network: Option<&str>) {
        let gone: Vec<_> = self
            .entries
            .iter()
            .filter(|((n, _, _), e)| {
                e.owner == owner && !e.deleted && network.is_none_or(|w| w == n)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(e) = self.entries.remove(&k) {
                let (network, table, key) = k;
                self.events.push_back(TableEvent {
                    change: Change::Delete,
                    table,
                    network,
                    key,
                    value: Vec::new(),
                    owner: e.owner,
                });
            }
        }
    }

    /// A user message from the member (ours start with a magic byte; others are ignored).
    pub fn handle_message(&mut self, now: Duration, bytes: &[u8]) {
        let Some((&MAGIC, body)) = bytes.split_first() else {
            return;
        };
        let msg: Msg = match rmp_serde::from_slice(body) {
            Ok(m) => m,
            Err(_) => {
                self.malformed += 1;
                return;
            }
        };
        match msg {
            Msg::NetworkJoin {
                node,
                network,
                ltime,
            }
            | Msg::NetworkLeave {
                node,
                network,
                ltime,
            } if node == self.node => {
                let _ = (network, ltime);
            }
            Msg::NetworkJoin {
                node,
                network,
                ltime,
            } => {
                if self.participation(&node, &network, ltime, false) {
                    self.rebroadcast(Msg::NetworkJoin {
                        node,
                        network,
                        ltime,
                    });
                }
            }
            Msg::NetworkLeave {
                node,
                network,
                ltime,
            } => {
                if self.participation(&node, &network, ltime, true) {
                    self.rebroadcast(Msg::NetworkLeave {
                        node,
                        network,
                        ltime,
                    });
                }
            }
            Msg::Networks { node, networks } => {
                if node != self.node {
                    for (network, ltime, leaving) in networks {
                        // Push/pull state is merged, not passed on.
                        let _ = self.participation(&node, &network, ltime, leaving);
                    }
                }
            }
            Msg::Table { network, entry } => {
                if !self.mine.contains(&network) {
                    return;
                }
                let msg = encode(&Msg::Table {
                    network: network.clone(),
                    entry: entry.clone(),
                });
                if self.apply(now, &network, entry) {
                    // Pass news on, as NetworkDB rebroadcasts what it learns.
                    self.queues.entry(network).or_default().push((msg, 0));
                }
            }
            Msg::BulkSync {
                node,
                network,
                reply,
                entries,
            } => {
                if !self.mine.contains(&network) {
                    return;
                }
                self.networks
                    .entry(network.clone())
                    .or_default()
                    .entry(node.clone())
                    .or_insert(Participant {
                        ltime: 0,
                        leaving: false,
                    });
                for e in entries {
                    self.apply(now, &network, e);
                }
                if reply {
                    let msg = Msg::BulkSync {
                        node: self.node.clone(),
                        network: network.clone(),
                        reply: false,
                        entries: self.entries_of(&network),
                    };
                    self.sends.push_back(Send::Reliable {
                        to: node,
                        bytes: encode(&msg),
                    });
                }
            }
        }
    }

    /// A member joined or left a network at `ltime` (ignored when older than what we know).
    /// Returns whether it was news.
    fn participation(&mut self, node: &str, network: &str, ltime: u64, leaving: bool) -> bool {
        self.witness(ltime);
        let m = self.networks.entry(network.to_string()).or_default();
        if m.get(node).is_none_or(|p| p.ltime < ltime) {
            m.insert(node.to_string(), Participant { ltime, leaving });
            if leaving {
                self.remove_owned(node, Some(network));
            }
            return true;
        }
        false
    }

    /// Pass a network event on, as NetworkDB rebroadcasts a join or leave it learns
    /// (`handleNetworkEvent` returning true): memberlist hands a broadcast to a few random
    /// members only, so without this two members that join a network at once can miss
    /// each other's join until a push/pull. Keyed as the originator's own broadcast, so a
    /// queued older one is replaced.
    fn rebroadcast(&mut self, msg: Msg) {
        let (Msg::NetworkJoin { node, network, .. } | Msg::NetworkLeave { node, network, .. }) =
            &msg
        else {
            return;
        };
        let key = format!("net:{node}:{network}");
        self.sends.push_back(Send::Broadcast {
            key,
            bytes: encode(&msg),
        });
    }

    /// Our participations as push/pull user state, if they changed since the last call.
    pub fn local_state_if_changed(&mut self) -> Option<Vec<u8>> {
        std::mem::take(&mut self.state_dirty).then(|| self.local_state())
    }

    /// Our own network participations, as push/pull user state (see `handle_message`).
    pub fn local_state(&self) -> Vec<u8> {
        let networks = self
            .networks
            .iter()
            .filter_map(|(n, m)| {
                let p = m.get(&self.node)?;
                Some((n.clone(), p.ltime, p.leaving))
            })
            .collect();
        encode(&Msg::Networks {
            node: self.node.clone(),
            networks,
        })
    }

    /// Gossip rounds, periodic bulk sync and tombstone reaping.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.reconnect_timers(now);
        if now >= self.next_gossip {
            self.next_gossip = now + GOSSIP_INTERVAL;
            let networks: Vec<String> = self.mine.iter().cloned().collect();
            for net in networks {
                let peers = self.others(&net);
                let queue = self.queues.entry(net.clone()).or_default();
                if peers.is_empty() || queue.is_empty() {
                    // With nobody to tell yet, messages wait (as in NetworkDB's
                    // broadcast queue), up to a bound: the oldest go first, and a later
                    // bulk sync carries their entries anyway.
                    if queue.len() > MAX_QUEUED {
                        let excess = queue.len() - MAX_QUEUED;
                        queue.drain(..excess);
                    }
                    continue;
                }
                let n = peers.len() + 1;
                let limit = 4 * (((n as f64) + 1.0).log10().ceil() as u32).max(1);
                let msgs: Vec<Vec<u8>> = queue.iter().map(|(m, _)| m.clone()).collect();
                for (_, sent) in queue.iter_mut() {
                    *sent += 1;
                }
                queue.retain(|(_, sent)| *sent < limit);
                let mut targets = peers;
                for _ in 0..GOSSIP_FANOUT.min(targets.len()) {
                    let i = self.below(targets.len());
                    let to = targets.swap_remove(i);
                    for m in &msgs {
                        self.sends.push_back(Send::Unreliable {
                            to: to.clone(),
                            bytes: m.clone(),
                        });
                    }
                }
            }
        }
        if now >= self.next_sync {
            self.next_sync = now + SYNC_INTERVAL;
            let networks: Vec<String> = self.mine.iter().cloned().collect();
            for net in networks {
                let peers = self.others(&net);
                if !peers.is_empty() {
                    let peer = peers[self.below(peers.len())].clone();
                    self.request_sync(&net, &peer);
                }
            }
            self.entries
                .retain(|_, e| e.reap_at.is_none_or(|t| t > now));
        }
    }
}
