//! `Member`: one memberlist-compatible SWIM member, without I/O.
//!
//! It owns the member list, the probe round (ping, indirect ping through k members with
//! nacks, TCP fallback), suspicion with Lifeguard's confirmations and awareness, the
//! broadcast queue, push/pull state exchange and join, and leave. A driver calls the
//! `handle_*` methods with the time since it started, sends what `poll_transmit` gives,
//! and reports what `poll_event` says. Nothing here reads a clock or touches a socket;
//! randomness comes from the seed.

use crate::config::Config;
use crate::registry::{Ident, Registry};
use crate::security;
use crate::wire::{self, *};
use serde_bytes::ByteBuf;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

/// A member's state, as memberlist numbers it in push/pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Answering probes.
    Alive,
    /// Failed a probe; may refute.
    Suspect,
    /// Declared dead by others.
    Dead,
    /// Left voluntarily.
    Left,
}

impl State {
    fn code(self) -> u8 {
        self as u8
    }
}

/// A member as this member sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Name.
    pub name: String,
    /// Gossip address.
    pub addr: SocketAddrV4,
    /// State.
    pub state: State,
    /// Incarnation.
    pub incarnation: u32,
}

/// What changed. (Serialised by its variant's name, as traces record it.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum EventKind {
    /// A member joined (or came back from dead/left).
    Joined,
    /// A member is suspected.
    Suspect,
    /// A suspected member proved alive.
    Alive,
    /// A member was declared dead.
    Dead,
    /// A member left.
    Left,
    /// A member's metadata changed.
    Updated,
    /// A probe failed over UDP but the TCP fallback ping got through: memberlist's
    /// "was able to connect over TCP but UDP probes failed, network may be misconfigured".
    ReachableOnlyOverTcp,
}

/// A membership event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// To whom.
    pub member: String,
    /// At which incarnation.
    pub incarnation: u32,
    /// When (driver time).
    pub at: Duration,
    /// Why, in words (which probes failed, who accused).
    pub reason: String,
}

/// Identifies an outgoing stream, to match its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// Something to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// One UDP datagram.
    Packet {
        /// Destination.
        to: SocketAddrV4,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Open a TCP stream, write `bytes`, read the reply until the peer closes, and give
    /// it to `handle_stream_reply` (or call `stream_failed`).
    Stream {
        /// To match the reply.
        id: StreamId,
        /// Destination.
        to: SocketAddrV4,
        /// Request bytes.
        bytes: Vec<u8>,
    },
}

/// What to do with bytes received on an incoming stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamInput {
    /// The request is not complete yet: read more.
    NeedMore,
    /// Write this reply, then close.
    Reply(Vec<u8>),
    /// Close without a reply.
    Close,
}

/// One entry of the member list: 24 bytes, the identity shared with every other view.
#[derive(Clone, Debug)]
struct Node {
    ident: Arc<Ident>,
    incarnation: u32,
    state: State,
    /// When the state last changed, in nanoseconds of the driver's time (`nanos`).
    state_change: u64,
}

/// A driver's time as the member list stores it (584 years of nanoseconds).
fn nanos(t: Duration) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
}

impl Node {
    fn name(&self) -> &str {
        &self.ident.name
    }
    fn sock(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.ident.ip, self.ident.port)
    }
    fn pmax(&self) -> u8 {
        self.ident.vsn[1]
    }
}

#[derive(Debug)]
struct Suspicion {
    confirmations: BTreeSet<String>,
    k: u32,
    start: Duration,
    min: Duration,
    max: Duration,
    deadline: Duration,
    state_change: u64,
}

#[derive(Debug)]
struct Probe {
    seq: u32,
    target: String,
    /// The target's incarnation when the probe started: a refutation during the probe
    /// makes our accusation stale, as in memberlist.
    incarnation: u32,
    /// The TCP fallback ping was answered.
    tcp_ok: bool,
    through: Vec<String>,
    expected_nacks: u32,
    nacks: u32,
}

#[derive(Debug)]
struct Relay {
    requester: SocketAddrV4,
    seq: u32,
    nack: bool,
}

#[derive(Debug)]
struct Broadcast {
    key: String,
    msg: Vec<u8>,
    transmits: u32,
    id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    Probe,
    ProbeTimeout(u32),
    ProbeDeadline(u32),
    Gossip,
    PushPullStagger,
    PushPull,
    Suspicion(String),
    RelayNack(u32),
}

#[derive(Debug)]
enum Purpose {
    PushPull,
    TcpPing(u32),
    User,
}

/// Counters of refused input, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages dropped, by reason.
    pub dropped: BTreeMap<&'static str, u64>,
    /// Probes that got no ack at all, by target: each is memberlist's "Suspect X has
    /// failed, no acks received", whether it starts a suspicion or confirms one.
    pub failed_probes: BTreeMap<String, u64>,
}

/// One SWIM member.
#[derive(Debug)]
pub struct Member {
    config: Config,
    name: String,
    ip: Ipv4Addr,
    port: u16,
    incarnation: u32,
    leaving: bool,
    nodes: Vec<Node>,
    /// Names and identities, shared with the other members the driver runs.
    registry: Registry,
    /// Registry id -> position in `nodes`.
    slots: crate::slots::Slots,
    probe_index: usize,
    seq: u32,
    awareness: u32,
    probe: Option<Probe>,
    /// A probe tick came while a probe was still open: like a Go ticker's one buffered
    /// tick, it starts the next probe as soon as this one ends.
    probe_tick_missed: bool,
    relays: BTreeMap<u32, Relay>,
    suspicions: BTreeMap<String, Suspicion>,
    broadcasts: Vec<Broadcast>,
    broadcast_seq: u64,
    timers: BTreeMap<(Duration, u64), Timer>,
    timer_seq: u64,
    streams: BTreeMap<u64, Purpose>,
    stream_seq: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    rng: u64,
    counters: Counters,
    user_messages: VecDeque<Vec<u8>>,
    /// What push/pull carries after the node states (memberlist's delegate LocalState).
    local_state: Vec<u8>,
}

fn ip_from_bytes(b: &[u8]) -> Option<Ipv4Addr> {
    match b.len() {
        4 => Some(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        // IPv4-mapped IPv6 (::ffff:a.b.c.d), as memberlist sends when bound to 0.0.0.0.
        16 if b[..10].iter().all(|x| *x == 0) && b[10] == 0xff && b[11] == 0xff => {
            Some(Ipv4Addr::new(b[12], b[13], b[14], b[15]))
        }
        _ => None,
    }
}

impl Member {
    /// A member named `name` gossiping on `addr`, alive at incarnation 1.
    pub fn new(config: Config, name: &str, addr: SocketAddrV4, now: Duration, seed: u64) -> Member {
        Member::with_registry(config, name, addr, now, seed, Registry::new())
    }

    /// The same, sharing names and identities with the other members in `registry`: a
    /// driver that runs many members in one process keeps one copy of each identity.
    pub fn with_registry(
        config: Config,
        name: &str,
        addr: SocketAddrV4,
        now: Duration,
        seed: u64,
        registry: Registry,
    ) -> Member {
        let mut m = Member {
            config,
            name: name.to_string(),
            ip: *addr.ip(),
            port: addr.port(),
            incarnation: 1,
            leaving: false,
            nodes: Vec::new(),
            registry,
            slots: Default::default(),
            probe_index: 0,
            seq: 0,
            awareness: 0,
            probe: None,
            probe_tick_missed: false,
            relays: BTreeMap::new(),
            suspicions: BTreeMap::new(),
            broadcasts: Vec::new(),
            broadcast_seq: 0,
            timers: BTreeMap::new(),
            timer_seq: 0,
            streams: BTreeMap::new(),
            stream_seq: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rng: seed ^ 0x6a09_e667_f3bc_c908,
            counters: Counters::default(),
            user_messages: VecDeque::new(),
            local_state: Vec::new(),
        };
        let me = m.self_alive();
        m.alive_node(now, me, true, "started");
        // Stagger the periodic work, as memberlist does, so members do not beat in step.
        let p = m.jitter(m.config.probe_interval);
        m.schedule(now + p, Timer::Probe);
        let g = m.jitter(m.config.gossip_interval);
        m.schedule(now + g, Timer::Gossip);
        let pp = m.jitter(m.config.push_pull_interval);
        m.schedule(now + pp, Timer::PushPullStagger);
        m
    }

    /// This member's identity as its registry holds it.
    pub fn identity(&self) -> Arc<Ident> {
        match self.find(&self.name) {
            Some(i) => self.nodes[i].ident.clone(),
            // Never reached while our own entry stays in the list (a leaving member
            // stops probing, so it never reaps itself); kept so this cannot panic.
            None => {
                self.registry
                    .intern(&self.name, &self.ip.octets(), self.ip, self.port, None, VSN)
            }
        }
    }

    /// Start as a member of a cluster that has already formed: every identity in
    /// `members` is known alive at incarnation 1, with no events and nothing left to
    /// gossip about them. This is the view each member holds once a cluster's joins have
    /// converged and their broadcasts have run out; experiments at scales where forming
    /// the cluster alone would take minutes of gossip start from it. Members already
    /// known are left as they are. Identities from members sharing this member's
    /// registry are taken as they are; others are interned here first (slower).
    pub fn assume_formed(&mut self, now: Duration, members: &[Arc<Ident>]) {
        self.nodes.reserve_exact(members.len());
        let mut added = Vec::new();
        for ident in members {
            let ident = if self.registry.owns(ident) {
                ident.clone()
            } else {
                let i = &**ident;
                let meta = i.meta.as_deref();
                self.registry
                    .intern(&i.name, &i.addr, i.ip, i.port, meta, i.vsn)
            };
            if self.slots.get(ident.id).is_some() {
                continue;
            }
            added.push(ident.id);
            self.nodes.push(Node {
                ident,
                incarnation: 1,
                state: State::Alive,
                state_change: nanos(now),
            });
            self.place(self.nodes.len() - 1);
        }
        for i in (1..self.nodes.len()).rev() {
            let j = self.below(i + 1);
            self.nodes.swap(i, j);
        }
        self.reindex();
        // What each of them said on starting (its own alive, as ours) has long been heard.
        let mut heard = vec![false; self.registry.names()];
        for id in added {
            heard[id as usize] = true;
        }
        let registry = self.registry.clone();
        let (me, fresh) = (self.name.clone(), self.incarnation == 1);
        self.broadcasts.retain(|b| {
            let about_added = registry
                .id(&b.key)
                .is_some_and(|id| heard.get(id as usize) == Some(&true));
            !(about_added || (fresh && b.key == me))
        });
    }

    // ---- getters ------------------------------------------------------------------------

    /// This member's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lifeguard's awareness score (0 is healthy).
    pub fn awareness(&self) -> u32 {
        self.awareness
    }

    /// Refused input, by reason.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Every known member (dead and left ones too, until reaped), sorted by name.
    /// How many members this member sees alive, itself included.
    pub fn alive_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.state == State::Alive)
            .count()
    }

    pub fn members(&self) -> Vec<MemberInfo> {
        let mut v: Vec<MemberInfo> = self
            .nodes
            .iter()
            .map(|n| MemberInfo {
                name: n.name().to_string(),
                addr: n.sock(),
                state: n.state,
                incarnation: n.incarnation,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Names of the members seen alive or suspect (memberlist's `Members()`), sorted.
    pub fn live_members(&self) -> Vec<String> {
        self.members()
            .into_iter()
            .filter(|m| matches!(m.state, State::Alive | State::Suspect))
            .map(|m| m.name)
            .collect()
    }

    /// One member as this member sees it.
    pub fn info(&self, name: &str) -> Option<MemberInfo> {
        self.find(name).map(|i| {
            let n = &self.nodes[i];
            MemberInfo {
                name: n.name().to_string(),
                addr: n.sock(),
                state: n.state,
                incarnation: n.incarnation,
            }
        })
    }

    /// The state of one member, if known.
    pub fn state_of(&self, name: &str) -> Option<State> {
        self.find(name).map(|i| self.nodes[i].state)
    }

    /// The gossip address of member `name`, alive or not, if known.
    pub fn addr_of(&self, name: &str) -> Option<SocketAddrV4> {
        self.find(name).map(|i| self.nodes[i].sock())
    }

    /// Whether a leave has been announced enough times to stop.
    pub fn leave_done(&self) -> bool {
        self.leaving
            && (!self.broadcasts.iter().any(|b| b.key == self.name)
                || !self
                    .nodes
                    .iter()
                    .any(|n| n.name() != self.name && n.state == State::Alive))
    }

    /// Where `name` is in `nodes`.
    fn find(&self, name: &str) -> Option<usize> {
        let id = self.registry.id(name)?;
        self.slots.get(id)
    }

    /// Record that the node at `pos` is there.
    fn place(&mut self, pos: usize) {
        let id = self.nodes[pos].ident.id;
        self.slots.set(id, pos, self.nodes.len());
    }

    // ---- driver interface ---------------------------------------------------------------

    /// When `handle_timeout` wants to be called.
    pub fn next_timeout(&self) -> Option<Duration> {
        self.timers.keys().next().map(|(t, _)| *t)
    }

    /// The next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next user message received (what memberlist hands its delegate's NotifyMsg).
    /// Set the user state sent with every push/pull (memberlist's `LocalState`); the
    /// other side's user state arrives through `poll_user_message`.
    pub fn set_local_state(&mut self, state: Vec<u8>) {
        self.local_state = state;
    }

    pub fn poll_user_message(&mut self) -> Option<Vec<u8>> {
        self.user_messages.pop_front()
    }

    /// Send a user message to a member over UDP (`[8][bytes]`, memberlist's
    /// SendBestEffort); false when the member is not known alive.
    pub fn send_user(&mut self, to: &str, bytes: &[u8]) -> bool {
        let Some(node) = self
            .find(to)
            .map(|i| &self.nodes[i])
            .filter(|n| n.state == State::Alive)
        else {
            return false;
        };
        let (sock, pmax) = (node.sock(), node.pmax());
        let mut msg = vec![MessageType::User as u8];
        msg.extend_from_slice(bytes);
        self.send_packet(sock, msg, Some(pmax), false);
        true
    }

    /// Send a user message to a member over a TCP stream (memberlist's SendReliable).
    pub fn send_user_reliable(&mut self, to: &str, bytes: &[u8]) -> bool {
        let Some(sock) = self
            .find(to)
            .map(|i| &self.nodes[i])
            .filter(|n| n.state == State::Alive)
            .map(Node::sock)
        else {
            return false;
        };
        let mut msg = encode(
            MessageType::User,
            &UserMsgHeader {
                user_msg_len: bytes.len() as u32,
            },
        );
        msg.extend_from_slice(bytes);
        self.open_stream(sock, msg, Purpose::User);
        true
    }

    /// Gossip a user message to the whole cluster, piggybacked like memberlist's own
    /// broadcasts; a newer one with the same key replaces an older one.
    pub fn broadcast_user(&mut self, key: &str, bytes: &[u8]) {
        let mut msg = vec![MessageType::User as u8];
        msg.extend_from_slice(bytes);
        self.queue_broadcast(&format!("user:{key}"), msg);
    }

    /// Join through the members at `addrs`: a push/pull with each.
    pub fn join(&mut self, _now: Duration, addrs: &[SocketAddrV4]) {
        for a in addrs {
            let msg = self.push_pull_message(true);
            self.open_stream(*a, msg, Purpose::PushPull);
        }
    }

    /// Leave: announce our own death (Node == From), which others record as left.
    pub fn leave(&mut self, now: Duration) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        let d = Accusation {
            from: self.name.clone(),
            incarnation: self.incarnation,
            node: self.name.clone(),
        };
        self.dead_node(now, d, "left");
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Duration) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            match timer {
                Timer::Probe => self.probe_tick(now),
                Timer::ProbeTimeout(seq) => self.probe_timeout(now, seq),
                Timer::ProbeDeadline(seq) => self.probe_deadline(now, seq),
                Timer::Gossip => self.gossip_tick(now),
                Timer::PushPullStagger => {
                    // memberlist waits a random stagger, then a whole scaled interval,
                    // before its first periodic push/pull.
                    let next = now + self.config.push_pull_scaled(self.nodes.len());
                    self.schedule(next, Timer::PushPull);
                }
                Timer::PushPull => self.push_pull_tick(now),
                Timer::Suspicion(name) => self.suspicion_expired(now, &name),
                Timer::RelayNack(seq) => {
                    if let Some(r) = self.relays.remove(&seq) {
                        if r.nack {
                            let nack = encode(MessageType::Nack, &Nack { seq_no: r.seq });
                            self.send_packet(r.requester, nack, None, true);
                        }
                    }
                }
            }
        }
    }

    /// A UDP datagram arrived from `from`.
    pub fn handle_packet(&mut self, now: Duration, from: SocketAddrV4, bytes: &[u8]) {
        let bytes = match self.check_label(bytes) {
            Ok(rest) => rest,
            Err(e) => return self.count(&e),
        };
        let aad = self.label_bytes();
        let plain;
        let mut buf = bytes;
        if self.config.keyring.enabled() {
            match self.config.keyring.decrypt(bytes, &aad) {
                Ok(p) => {
                    plain = p;
                    buf = &plain;
                }
                Err(e) => return self.count(&e),
            }
        }
        match wire::strip_crc(buf) {
            Ok(msg) => {
                let mut budget = wire::MAX_PACKET_EXPANSION;
                self.handle_command(now, from, msg, 0, &mut budget)
            }
            Err(e) => self.count(&e),
        }
    }

    /// Bytes arrived on a stream someone opened to us (all bytes so far).
    pub fn handle_stream(&mut self, now: Duration, bytes: &[u8]) -> StreamInput {
        if bytes.len() > MAX_PUSH_STATE + 64 {
            self.count(&WireError::TooLarge(bytes.len()));
            return StreamInput::Close;
        }
        let msg = match self.open_stream_message(bytes) {
            Ok(Some(m)) => m,
            Ok(None) => return StreamInput::NeedMore,
            // As memberlist's handleConn: a stream that cannot be read (decryption,
            // decompression, size) is answered with an error message, then closed.
            Err(e) => {
                self.count(&e);
                let text = match e {
                    WireError::NotEncrypted => {
                        "Encryption is configured but remote state is not encrypted".to_string()
                    }
                    other => other.to_string(),
                };
                let e = encode(MessageType::Err, &ErrResp { error: text });
                return StreamInput::Reply(self.seal_stream(e));
            }
        };
        match MessageType::from_u8(msg[0]) {
            Some(MessageType::PushPull) => match parse_push_pull(&msg[1..]) {
                Ok(Some((header, states, user))) => {
                    // memberlist answers with its own state before merging the other's.
                    let reply = self.push_pull_message(header.join);
                    self.merge(now, states, "push/pull");
                    if !user.is_empty() {
                        self.user_messages.push_back(user);
                    }
                    StreamInput::Reply(self.seal_stream(reply))
                }
                Ok(None) => StreamInput::NeedMore,
                Err(e) => {
                    self.count(&e);
                    StreamInput::Close
                }
            },
            Some(MessageType::Ping) => match decode::<Ping>(&msg[1..]) {
                Ok(p) if p.node.is_empty() || p.node == self.name => {
                    let ack = encode(
                        MessageType::Ack,
                        &Ack {
                            payload: None,
                            seq_no: p.seq_no,
                        },
                    );
                    StreamInput::Reply(self.seal_stream(ack))
                }
                Ok(_) => {
                    self.count_reason("ping-for-another-node");
                    StreamInput::Close
                }
                Err(WireError::Truncated) => StreamInput::NeedMore,
                Err(e) => {
                    self.count(&e);
                    StreamInput::Close
                }
            },
            Some(MessageType::User) => {
                let mut rd = &msg[1..];
                match decode_next::<UserMsgHeader>(&mut rd) {
                    Ok(h) if rd.len() >= h.user_msg_len as usize => {
                        self.user_messages
                            .push_back(rd[..h.user_msg_len as usize].to_vec());
                        StreamInput::Close
                    }
                    Ok(_) | Err(WireError::Truncated) => StreamInput::NeedMore,
                    Err(e) => {
                        self.count(&e);
                        StreamInput::Close
                    }
                }
            }
            Some(t) => {
                self.count(&WireError::Unexpected(t));
                StreamInput::Close
            }
            None => {
                self.count(&WireError::UnknownType(msg[0]));
                StreamInput::Close
            }
        }
    }

    /// The whole reply to a stream we opened.
    pub fn handle_stream_reply(&mut self, now: Duration, id: StreamId, bytes: &[u8]) {
        let Some(purpose) = self.streams.remove(&id.0) else {
            return;
        };
        if matches!(purpose, Purpose::User) {
            return; // memberlist closes a user stream without a reply
        }
        let msg = match self.open_stream_message(bytes) {
            Ok(Some(m)) => m,
            Ok(None) => return self.count(&WireError::Truncated),
            Err(e) => return self.count(&e),
        };
        match (purpose, MessageType::from_u8(msg[0])) {
            (Purpose::PushPull, Some(MessageType::PushPull)) => match parse_push_pull(&msg[1..]) {
                Ok(Some((_, states, user))) => {
                    self.merge(now, states, "push/pull");
                    if !user.is_empty() {
                        self.user_messages.push_back(user);
                    }
                }
                Ok(None) => self.count(&WireError::Truncated),
                Err(e) => self.count(&e),
            },
            (Purpose::TcpPing(seq), Some(MessageType::Ack)) => {
                if let Ok(a) = decode::<Ack>(&msg[1..]) {
                    if a.seq_no == seq {
                        self.handle_ack(now, seq, true);
                    }
                }
            }
            (Purpose::User, _) => {}
            (_, Some(MessageType::Err)) => self.count_reason("remote-error"),
            _ => self.count_reason("unexpected-stream-reply"),
        }
    }

    /// A stream we opened could not be completed.
    pub fn stream_failed(&mut self, _now: Duration, id: StreamId) {
        if self.streams.remove(&id.0).is_some() {
            self.count_reason("stream-failed");
        }
    }

    // ---- internals: plumbing ------------------------------------------------------------

    fn count(&mut self, e: &WireError) {
        let reason = match e {
            WireError::Truncated => "truncated",
            WireError::UnknownType(_) => "unknown-type",
            WireError::Malformed(_) => "malformed",
            WireError::BadCrc => "bad-crc",
            WireError::Decrypt => "decrypt",
            WireError::NotEncrypted => "not-encrypted",
            WireError::Compression(_) => "compression",
            WireError::TooLarge(_) => "too-large",
            WireError::Unexpected(_) => "unexpected-type",
            WireError::Label => "label-mismatch",
        };
        self.count_reason(reason);
    }

    fn count_reason(&mut self, reason: &'static str) {
        *self.counters.dropped.entry(reason).or_default() += 1;
    }

    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
        }
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        Duration::from_nanos(self.next_u64() % (d.as_nanos() as u64).max(1))
    }

    fn schedule(&mut self, at: Duration, t: Timer) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), t);
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn event(&mut self, now: Duration, kind: EventKind, node: &str, inc: u32, reason: &str) {
        self.events.push_back(Event {
            kind,
            member: node.to_string(),
            incarnation: inc,
            at: now,
            reason: reason.to_string(),
        });
    }

    fn self_alive(&self) -> Alive {
        Alive {
            addr: ByteBuf::from(self.ip.octets().to_vec()),
            incarnation: self.incarnation,
            meta: None,
            node: self.name.clone(),
            port: self.port,
            vsn: ByteBuf::from(VSN.to_vec()),
        }
    }

    fn nonce(&mut self) -> [u8; 12] {
        let a = self.next_u64().to_le_bytes();
        let b = self.next_u64().to_le_bytes();
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&a);
        n[8..].copy_from_slice(&b[..4]);
        n
    }

    fn encryption_overhead(&self) -> usize {
        if self.config.keyring.enabled() {
            security::OVERHEAD
        } else {
            0
        }
    }

    /// Compress if smaller, add a CRC for peers that speak protocol 5, encrypt.
    fn send_packet(&mut self, to: SocketAddrV4, msg: Vec<u8>, pmax: Option<u8>, piggyback: bool) {
        let mut msg = msg;
        if piggyback {
            let budget = self
                .config
                .udp_buffer_size
                .saturating_sub(msg.len() + 2 + self.encryption_overhead());
            let extra = self.take_broadcasts(budget);
            if !extra.is_empty() {
                let mut parts = vec![msg];
                parts.extend(extra);
                msg = wire::compound(&parts);
            }
        }
        if self.config.enable_compression {
            let c = wire::compress(&msg);
            if c.len() < msg.len() {
                msg = c;
            }
        }
        if pmax.is_some_and(|p| p >= 5) {
            msg = wire::with_crc(&msg);
        }
        let label = self.label_bytes();
        if self.config.keyring.enabled() {
            let nonce = self.nonce();
            msg = self.config.keyring.encrypt(nonce, &msg, &label);
        }
        if !label.is_empty() {
            msg = wire::with_label(&label, &msg);
        }
        self.transmits
            .push_back(Transmit::Packet { to, bytes: msg });
    }

    /// Streams are always compressed (when enabled) and then encrypted as
    /// `[10][len][envelope]`, the 5-byte header authenticated.
    fn seal_stream(&mut self, msg: Vec<u8>) -> Vec<u8> {
        let mut msg = msg;
        if self.config.enable_compression {
            msg = wire::compress(&msg);
        }
        let label = self.label_bytes();
        if self.config.keyring.enabled() {
            let len = (security::OVERHEAD + msg.len()) as u32;
            let mut header = vec![MessageType::Encrypt as u8];
            header.extend_from_slice(&len.to_be_bytes());
            let nonce = self.nonce();
            let aad = [&header[..], &label[..]].concat();
            let env = self.config.keyring.encrypt(nonce, &msg, &aad);
            header.extend_from_slice(&env);
            msg = header;
        }
        if !label.is_empty() {
            msg = wire::with_label(&label, &msg);
        }
        msg
    }

    fn label_bytes(&self) -> Vec<u8> {
        self.config
            .label
            .as_deref()
            .unwrap_or("")
            .as_bytes()
            .to_vec()
    }

    /// Strip the label header, which must match ours (or be absent when we have none).
    fn check_label<'a>(&self, bytes: &'a [u8]) -> Result<&'a [u8], WireError> {
        let (label, rest) = wire::strip_label(bytes)?;
        match (label, self.config.label.as_deref()) {
            (None, None) => Ok(rest),
            (Some(l), Some(ours)) if l == ours.as_bytes() => Ok(rest),
            _ => Err(WireError::Label),
        }
    }

    /// Undo `seal_stream` on what was read so far: `Ok(None)` when more bytes are needed.
    fn open_stream_message(&self, bytes: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
        let bytes = match self.check_label(bytes) {
            Ok(rest) => rest,
            Err(WireError::Truncated) => return Ok(None),
            Err(e) => return Err(e),
        };
        let label = self.label_bytes();
        let Some(&first) = bytes.first() else {
            return Ok(None);
        };
        let mut msg = if first == MessageType::Encrypt as u8 {
            if !self.config.keyring.enabled() {
                return Err(WireError::Unexpected(MessageType::Encrypt));
            }
            let Some(len) = bytes.get(1..5) else {
                return Ok(None);
            };
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if len > MAX_PUSH_STATE {
                return Err(WireError::TooLarge(len));
            }
            let Some(env) = bytes.get(5..5 + len) else {
                return Ok(None);
            };
            self.config
                .keyring
                .decrypt(env, &[&bytes[..5], &label[..]].concat())?
        } else if self.config.keyring.enabled() {
            return Err(WireError::NotEncrypted);
        } else {
            bytes.to_vec()
        };
        if msg.first() == Some(&(MessageType::Compress as u8)) {
            msg = match wire::decompress(&msg[1..], MAX_PUSH_STATE) {
                Ok(m) => m,
                Err(WireError::Truncated) if first != MessageType::Encrypt as u8 => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            };
        }
        if msg.is_empty() {
            return Ok(None);
        }
        Ok(Some(msg))
    }

    fn open_stream(&mut self, to: SocketAddrV4, msg: Vec<u8>, purpose: Purpose) {
        self.stream_seq += 1;
        let id = self.stream_seq;
        self.streams.insert(id, purpose);
        let bytes = self.seal_stream(msg);
        self.transmits.push_back(Transmit::Stream {
            id: StreamId(id),
            to,
            bytes,
        });
    }

    // ---- broadcasts ---------------------------------------------------------------------

    /// Queue a broadcast about `key`, replacing any older one about the same member.
    fn queue_broadcast(&mut self, key: &str, msg: Vec<u8>) {
        self.broadcasts.retain(|b| b.key != key);
        self.broadcast_seq += 1;
        self.broadcasts.push(Broadcast {
            key: key.to_string(),
            msg,
            transmits: 0,
            id: self.broadcast_seq,
        });
    }

    /// Take the broadcasts that fit `budget` bytes (2 bytes of compound overhead each),
    /// fewest-transmitted first, newest first among equals.
    fn take_broadcasts(&mut self, budget: usize) -> Vec<Vec<u8>> {
        let limit = self.config.retransmit_limit(self.nodes.len());
        // memberlist's order: fewest transmits first, then larger messages, then newer.
        self.broadcasts.sort_by(|a, b| {
            a.transmits
                .cmp(&b.transmits)
                .then(b.msg.len().cmp(&a.msg.len()))
                .then(b.id.cmp(&a.id))
        });
        let mut used = 0;
        let mut out = Vec::new();
        for b in &mut self.broadcasts {
            if used + b.msg.len() + 2 > budget {
                continue;
            }
            used += b.msg.len() + 2;
            b.transmits += 1;
            out.push(b.msg.clone());
        }
        self.broadcasts.retain(|b| b.transmits < limit);
        out
    }

    // ---- incoming messages ------------------------------------------------------------

    /// One message of a packet. `budget` is what decompression may still produce for
    /// this packet, across every nesting level.
    fn handle_command(
        &mut self,
        now: Duration,
        from: SocketAddrV4,
        msg: &[u8],
        depth: u8,
        budget: &mut usize,
    ) {
        let Some(&ty) = msg.first() else {
            return self.count(&WireError::Truncated);
        };
        let body = &msg[1..];
        let Some(ty) = MessageType::from_u8(ty) else {
            return self.count(&WireError::UnknownType(ty));
        };
        if depth > 4 {
            return self.count_reason("nested-too-deep");
        }
        match ty {
            MessageType::Compound => {
                let (parts, truncated) = wire::split_compound(body);
                if truncated {
                    self.count(&WireError::Truncated);
                }
                for p in parts {
                    self.handle_command(now, from, p, depth + 1, budget);
                }
            }
            MessageType::Compress => match wire::decompress(body, *budget) {
                Ok(inner) => {
                    *budget -= inner.len();
                    self.handle_command(now, from, &inner, depth + 1, budget)
                }
                Err(e) => self.count(&e),
            },
            MessageType::Ping => match decode::<Ping>(body) {
                Ok(p) => self.handle_ping(from, p),
                Err(e) => self.count(&e),
            },
            MessageType::IndirectPing => match decode::<IndirectPing>(body) {
                Ok(p) => self.handle_indirect_ping(now, from, p),
                Err(e) => self.count(&e),
            },
            MessageType::Ack => match decode::<Ack>(body) {
                Ok(a) => self.handle_ack(now, a.seq_no, false),
                Err(e) => self.count(&e),
            },
            MessageType::Nack => match decode::<Nack>(body) {
                Ok(n) => {
                    if let Some(p) = self.probe.as_mut().filter(|p| p.seq == n.seq_no) {
                        p.nacks += 1;
                    }
                }
                Err(e) => self.count(&e),
            },
            MessageType::Alive => match decode::<Alive>(body) {
                Ok(a) => self.alive_node(now, a, false, "gossip"),
                Err(e) => self.count(&e),
            },
            MessageType::Suspect => match decode::<Accusation>(body) {
                Ok(s) => {
                    let reason = format!("{} suspects it", s.from);
                    self.suspect_node(now, s, &reason)
                }
                Err(e) => self.count(&e),
            },
            MessageType::Dead => match decode::<Accusation>(body) {
                Ok(d) => {
                    let reason = if d.from == d.node {
                        "left".to_string()
                    } else {
                        format!("{} declared it dead", d.from)
                    };
                    self.dead_node(now, d, &reason)
                }
                Err(e) => self.count(&e),
            },
            MessageType::User => {
                if self.user_messages.len() < 1024 {
                    self.user_messages.push_back(body.to_vec());
                } else {
                    self.count_reason("user-queue-full");
                }
            }
            other => self.count(&WireError::Unexpected(other)),
        }
    }

    fn handle_ping(&mut self, from: SocketAddrV4, p: Ping) {
        if !p.node.is_empty() && p.node != self.name {
            return self.count_reason("ping-for-another-node");
        }
        let to = match (&p.source_addr, p.source_port) {
            (Some(a), Some(port)) if port > 0 => match ip_from_bytes(a) {
                Some(ip) => SocketAddrV4::new(ip, port),
                None => from,
            },
            _ => from,
        };
        let ack = encode(
            MessageType::Ack,
            &Ack {
                payload: None,
                seq_no: p.seq_no,
            },
        );
        self.send_packet(to, ack, None, true);
    }

    fn handle_indirect_ping(&mut self, now: Duration, from: SocketAddrV4, p: IndirectPing) {
        let Some(ip) = ip_from_bytes(&p.target) else {
            return self.count_reason("bad-target-address");
        };
        let port = if p.port == 0 { self.port } else { p.port };
        let requester = match (&p.source_addr, p.source_port) {
            (Some(a), Some(sp)) if sp > 0 => ip_from_bytes(a)
                .map(|ip| SocketAddrV4::new(ip, sp))
                .unwrap_or(from),
            _ => from,
        };
        let seq = self.next_seq();
        self.relays.insert(
            seq,
            Relay {
                requester,
                seq: p.seq_no,
                nack: p.nack,
            },
        );
        let ping = self.ping_message(seq, &p.node);
        self.send_packet(SocketAddrV4::new(ip, port), ping, None, true);
        self.schedule(now + self.config.probe_timeout, Timer::RelayNack(seq));
    }

    fn handle_ack(&mut self, now: Duration, seq: u32, via_tcp: bool) {
        if let Some(r) = self.relays.remove(&seq) {
            let ack = encode(
                MessageType::Ack,
                &Ack {
                    payload: None,
                    seq_no: r.seq,
                },
            );
            self.send_packet(r.requester, ack, None, true);
            return;
        }
        if via_tcp {
            // Like memberlist, wait for the probe's deadline: only if UDP has failed by
            // then does the TCP answer count (and get reported).
            if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
                p.tcp_ok = true;
            }
            return;
        }
        if self.probe.take_if(|p| p.seq == seq).is_some() {
            self.awareness = self.awareness.saturating_sub(1);
            self.probe_ended(now);
        }
    }

    fn ping_message(&self, seq: u32, target: &str) -> Vec<u8> {
        encode(
            MessageType::Ping,
            &Ping {
                node: target.to_string(),
                seq_no: seq,
                source_addr: Some(ByteBuf::from(self.ip.octets().to_vec())),
                source_node: Some(self.name.clone()),
                source_port: Some(self.port),
            },
        )
    }

    // ---- probing ------------------------------------------------------------------------

    fn probe_interval(&self) -> Duration {
        self.config.probe_interval * (self.awareness + 1)
    }

    /// memberlist's probe ticker runs at the base interval whatever the awareness. A
    /// probe lasts until an ack or its awareness-scaled deadline, and ticks that come
    /// meanwhile collapse into one that starts the next probe when it ends. So awareness
    /// slows probing only while probes fail; answered probes follow one another at the
    /// base interval (or at the speed of the acks, if those are slower).
    fn probe_tick(&mut self, now: Duration) {
        self.schedule(now + self.config.probe_interval, Timer::Probe);
        if self.probe.is_some() {
            self.probe_tick_missed = true;
            return;
        }
        self.start_probe(now);
    }

    /// The open probe has ended (answered or failed).
    fn probe_ended(&mut self, now: Duration) {
        if std::mem::take(&mut self.probe_tick_missed) {
            self.start_probe(now);
        }
    }

    fn start_probe(&mut self, now: Duration) {
        if self.leaving {
            return;
        }
        let n = self.nodes.len();
        let mut target = None;
        for _ in 0..n {
            if self.probe_index >= self.nodes.len() {
                self.probe_index = 0;
                self.reap_and_shuffle(now);
                if self.nodes.is_empty() {
                    break;
                }
            }
            let node = &self.nodes[self.probe_index];
            self.probe_index += 1;
            if node.name() != self.name && matches!(node.state, State::Alive | State::Suspect) {
                target = Some(node.clone());
                break;
            }
        }
        let Some(node) = target else { return };
        let seq = self.next_seq();
        let ping = self.ping_message(seq, node.name());
        if node.state == State::Alive {
            self.send_packet(node.sock(), ping, None, true);
        } else {
            // Let a suspect refute: the accusation rides with the ping (the buddy system).
            let s = encode(
                MessageType::Suspect,
                &Accusation {
                    from: self.name.clone(),
                    incarnation: node.incarnation,
                    node: node.name().to_string(),
                },
            );
            let msg = wire::compound(&[ping, s]);
            self.send_packet(node.sock(), msg, Some(node.pmax()), false);
        }
        self.probe = Some(Probe {
            seq,
            target: node.name().to_string(),
            incarnation: node.incarnation,
            tcp_ok: false,
            through: Vec::new(),
            expected_nacks: 0,
            nacks: 0,
        });
        self.schedule(now + self.config.probe_timeout, Timer::ProbeTimeout(seq));
        self.schedule(now + self.probe_interval(), Timer::ProbeDeadline(seq));
    }

    fn probe_timeout(&mut self, _now: Duration, seq: u32) {
        let Some(target) = self
            .probe
            .as_ref()
            .filter(|p| p.seq == seq)
            .map(|p| p.target.clone())
        else {
            return;
        };
        let Some(node) = self.find(&target).map(|i| self.nodes[i].clone()) else {
            return;
        };
        let chosen = self.random_nodes(self.config.indirect_checks, |n| {
            n.ident.id != node.ident.id && n.state == State::Alive
        });
        let mut expected = 0;
        for h in &chosen {
            let nack = h.pmax() >= 4;
            expected += u32::from(nack);
            let req = encode(
                MessageType::IndirectPing,
                &IndirectPing {
                    nack,
                    node: node.name().to_string(),
                    port: node.ident.port,
                    seq_no: seq,
                    source_addr: Some(ByteBuf::from(self.ip.octets().to_vec())),
                    source_node: Some(self.name.clone()),
                    source_port: Some(self.port),
                    target: ByteBuf::from(node.ident.addr.to_vec()),
                },
            );
            self.send_packet(h.sock(), req, None, true);
        }
        if let Some(p) = self.probe.as_mut() {
            p.expected_nacks = expected;
            p.through = chosen.iter().map(|h| h.name().to_string()).collect();
        }
        if node.pmax() >= 3 {
            let ping = self.ping_message(seq, node.name());
            self.open_stream(node.sock(), ping, Purpose::TcpPing(seq));
        }
    }

    fn probe_deadline(&mut self, now: Duration, seq: u32) {
        let Some(p) = self.probe.take_if(|p| p.seq == seq) else {
            return;
        };
        self.probe_failed(now, p);
        self.probe_ended(now);
    }

    /// No ack over UDP by the deadline: a suspicion, unless the TCP fallback got through.
    fn probe_failed(&mut self, now: Duration, p: Probe) {
        let seq = p.seq;
        if p.tcp_ok {
            // memberlist counts this probe as answered (awareness goes down).
            self.awareness = self.awareness.saturating_sub(1);
        } else {
            // Lifeguard: missed nacks mean *we* may be the slow one.
            let max = self.config.awareness_max_multiplier.saturating_sub(1);
            let delta = if p.expected_nacks > 0 {
                p.expected_nacks - p.nacks.min(p.expected_nacks)
            } else {
                1
            };
            self.awareness = (self.awareness + delta).min(max);
            *self
                .counters
                .failed_probes
                .entry(p.target.clone())
                .or_default() += 1;
        }
        let inc = p.incarnation;
        let through = if p.through.is_empty() {
            "nobody".to_string()
        } else {
            p.through.join(", ")
        };
        if p.tcp_ok {
            let reason = format!(
                "ping seq {seq} got no ack over UDP (direct or through {through}) but did over TCP: UDP to {} may be blocked",
                p.target
            );
            self.event(
                now,
                EventKind::ReachableOnlyOverTcp,
                &p.target,
                inc,
                &reason,
            );
            return;
        }
        let reason = format!(
            "no ack to ping seq {seq}: direct, through {through} ({} of {} nacks), and over TCP",
            p.nacks, p.expected_nacks
        );
        let s = Accusation {
            from: self.name.clone(),
            incarnation: inc,
            node: p.target,
        };
        self.suspect_node(now, s, &reason);
    }

    fn reap_and_shuffle(&mut self, now: Duration) {
        let keep = self.config.gossip_to_the_dead;
        let before = self.nodes.len();
        self.nodes.retain(|n| {
            !(matches!(n.state, State::Dead | State::Left)
                && now.saturating_sub(Duration::from_nanos(n.state_change)) > keep)
        });
        if self.nodes.len() != before {
            self.count_reason("reaped");
        }
        for i in (1..self.nodes.len()).rev() {
            let j = self.below(i + 1);
            self.nodes.swap(i, j);
        }
        self.reindex();
    }

    fn reindex(&mut self) {
        self.slots.clear();
        for i in 0..self.nodes.len() {
            self.place(i);
        }
    }

    /// memberlist's kRandomNodes: up to `k` distinct members other than ourselves that
    /// `ok` accepts, by random picks (at most 3N tries): O(k), not a scan of every member.
    fn random_nodes(&mut self, k: usize, ok: impl Fn(&Node) -> bool) -> Vec<Node> {
        let n = self.nodes.len();
        let me = self.find(&self.name.clone());
        let mut picked: Vec<usize> = Vec::new();
        for _ in 0..3 * n {
            if picked.len() >= k {
                break;
            }
            let i = self.below(n);
            if Some(i) != me && !picked.contains(&i) && ok(&self.nodes[i]) {
                picked.push(i);
            }
        }
        picked.into_iter().map(|i| self.nodes[i].clone()).collect()
    }

    // ---- gossip and push/pull -----------------------------------------------------------

    fn gossip_tick(&mut self, now: Duration) {
        self.schedule(now + self.config.gossip_interval, Timer::Gossip);
        if self.broadcasts.is_empty() {
            return; // nothing to say: no packet (memberlist sends none either)
        }
        let dead_window = self.config.gossip_to_the_dead;
        // Skipping the left and the long dead.
        let picked = self.random_nodes(self.config.gossip_nodes, |node| match node.state {
            State::Alive | State::Suspect => true,
            State::Dead => {
                now.saturating_sub(Duration::from_nanos(node.state_change)) < dead_window
            }
            State::Left => false,
        });
        let candidates: Vec<(SocketAddrV4, u8)> =
            picked.iter().map(|n| (n.sock(), n.pmax())).collect();
        let budget = self
            .config
            .udp_buffer_size
            .saturating_sub(2 + self.encryption_overhead());
        for node in candidates {
            let msgs = self.take_broadcasts(budget);
            if msgs.is_empty() {
                return;
            }
            let msg = if msgs.len() == 1 {
                msgs.into_iter().next().unwrap_or_default()
            } else {
                wire::compound(&msgs)
            };
            self.send_packet(node.0, msg, Some(node.1), false);
        }
    }

    fn push_pull_tick(&mut self, now: Duration) {
        let n = self.nodes.len();
        self.schedule(now + self.config.push_pull_scaled(n), Timer::PushPull);
        let alive: Vec<SocketAddrV4> = self
            .nodes
            .iter()
            .filter(|x| x.name() != self.name && x.state == State::Alive)
            .map(Node::sock)
            .collect();
        if alive.is_empty() || self.leaving {
            return;
        }
        let to = alive[self.below(alive.len())];
        let msg = self.push_pull_message(false);
        self.open_stream(to, msg, Purpose::PushPull);
    }

    fn push_pull_message(&self, join: bool) -> Vec<u8> {
        let mut out = encode(
            MessageType::PushPull,
            &PushPullHeader {
                join,
                nodes: self.nodes.len() as u32,
                user_state_len: self.local_state.len() as u32,
            },
        );
        for n in &self.nodes {
            let id = &n.ident;
            wire::append(
                &mut out,
                &PushNodeState {
                    addr: ByteBuf::from(id.addr.to_vec()),
                    incarnation: n.incarnation,
                    meta: id.meta.as_deref().map(|m| ByteBuf::from(m.to_vec())),
                    name: id.name.to_string(),
                    port: id.port,
                    state: n.state.code(),
                    vsn: ByteBuf::from(id.vsn.to_vec()),
                },
            );
        }
        out.extend_from_slice(&self.local_state);
        out
    }

    /// memberlist's `verifyProtocol`: every member's current protocol version must lie in
    /// what all alive members support; otherwise the whole state is refused.
    fn protocol_compatible(&self, states: &[PushNodeState]) -> bool {
        let remote: Vec<[u8; 6]> = states
            .iter()
            .filter_map(|s| s.vsn[..].try_into().ok())
            .collect();
        if remote.len() != states.len() {
            return false;
        }
        let alive_remote = states
            .iter()
            .zip(&remote)
            .filter(|(s, _)| s.state == 0)
            .map(|(_, v)| *v);
        let alive_local = self
            .nodes
            .iter()
            .filter(|n| n.state == State::Alive)
            .map(|n| n.ident.vsn);
        let alive: Vec<[u8; 6]> = alive_remote.chain(alive_local).collect();
        let (max_pmin, min_pmax) = (
            alive.iter().map(|v| v[0]).max().unwrap_or(0),
            alive.iter().map(|v| v[1]).min().unwrap_or(u8::MAX),
        );
        let (max_dmin, min_dmax) = (
            alive.iter().map(|v| v[3]).max().unwrap_or(0),
            alive.iter().map(|v| v[4]).min().unwrap_or(u8::MAX),
        );
        remote
            .iter()
            .copied()
            .chain(self.nodes.iter().map(|n| n.ident.vsn))
            .all(|v| (max_pmin..=min_pmax).contains(&v[2]) && (max_dmin..=min_dmax).contains(&v[5]))
    }

    fn merge(&mut self, now: Duration, states: Vec<PushNodeState>, how: &str) {
        if !self.protocol_compatible(&states) {
            return self.count_reason("protocol-mismatch");
        }
        for s in states {
            match s.state {
                0 => {
                    let a = Alive {
                        addr: s.addr,
                        incarnation: s.incarnation,
                        meta: s.meta,
                        node: s.name,
                        port: s.port,
                        vsn: s.vsn,
                    };
                    self.alive_node(now, a, false, how);
                }
                3 => {
                    let d = Accusation {
                        from: s.name.clone(),
                        incarnation: s.incarnation,
                        node: s.name,
                    };
                    self.dead_node(now, d, "left (learned by push/pull)");
                }
                4..=u8::MAX => self.count_reason("unknown-node-state"),
                _ => {
                    // A remote "dead" only makes it suspect here: we check for ourselves.
                    let a = Accusation {
                        from: self.name.clone(),
                        incarnation: s.incarnation,
                        node: s.name,
                    };
                    self.suspect_node(now, a, "dead or suspect in a peer's state");
                }
            }
        }
    }

    // ---- the state machine --------------------------------------------------------------

    fn alive_node(&mut self, now: Duration, a: Alive, bootstrap: bool, how: &str) {
        if self.leaving && a.node == self.name {
            return;
        }
        if a.node.is_empty() {
            return self.count_reason("empty-name");
        }
        let vsn: [u8; 6] = match a.vsn[..].try_into() {
            Ok(v) => v,
            Err(_) => return self.count_reason("bad-vsn"),
        };
        if vsn[0] == 0 || vsn[1] == 0 || vsn[0] > vsn[1] {
            return self.count_reason("bad-vsn");
        }
        let Some(ip) = ip_from_bytes(&a.addr) else {
            return self.count_reason("bad-address");
        };
        let port = if a.port == 0 { self.port } else { a.port };
        let meta = a.meta.as_deref().map(|m| &m[..]).filter(|m| !m.is_empty());
        let same = |id: &Ident| {
            id.addr[..] == a.addr[..]
                && id.port == port
                && id.meta.as_deref() == meta
                && id.vsn == vsn
        };
        let i = match self.find(&a.node) {
            Some(i) => i,
            None => {
                // Unknown: inserted as dead at incarnation 0 at a random place, then
                // treated like any other alive (so incarnations start at 1).
                let ident = self.registry.intern(&a.node, &a.addr, ip, port, meta, vsn);
                let node = Node {
                    ident,
                    incarnation: 0,
                    state: State::Dead,
                    state_change: nanos(now),
                };
                // Append, then swap into a random place (as memberlist does), so that
                // only two positions change, not the whole index.
                let last = self.nodes.len();
                self.nodes.push(node);
                let at = self.below(last + 1);
                self.nodes.swap(at, last);
                self.place(last);
                self.place(at);
                at
            }
        };
        let old = self.nodes[i].clone();
        // A known member at a new address: allowed only once it has left (memberlist's
        // DeadNodeReclaimTime of 0 never reclaims a dead name).
        let moved = old.ident.addr[..] != a.addr[..] || old.ident.port != port;
        if moved && old.state != State::Left {
            return self.count_reason("address-conflict");
        }
        // A left member may come back at a new address with any incarnation.
        let comes_back = moved && old.state == State::Left;
        if a.node == self.name {
            if a.incarnation < self.incarnation {
                return;
            }
            if !bootstrap {
                if a.incarnation == self.incarnation
                    && old.ident.meta.as_deref() == meta
                    && vsn == old.ident.vsn
                {
                    return;
                }
                return self.refute(now, a.incarnation);
            }
        } else if a.incarnation <= old.incarnation && !comes_back {
            // Stale (this also drops an alive at incarnation 0 for a new member, which
            // memberlist only registers as dead).
            return;
        }
        self.suspicions.remove(&a.node);
        let msg = encode(MessageType::Alive, &a);
        self.queue_broadcast(&a.node, msg);
        let meta_changed = old.ident.meta.as_deref() != meta;
        if !same(&old.ident) {
            let ident = self.registry.intern(&a.node, &a.addr, ip, port, meta, vsn);
            self.nodes[i].ident = ident;
        }
        let n = &mut self.nodes[i];
        n.incarnation = a.incarnation;
        let was = n.state;
        if was != State::Alive {
            n.state = State::Alive;
            n.state_change = nanos(now);
        }
        let inc = a.incarnation;
        match was {
            State::Dead | State::Left => self.event(now, EventKind::Joined, &a.node, inc, how),
            State::Suspect => {
                self.event(now, EventKind::Alive, &a.node, inc, "refuted the suspicion")
            }
            State::Alive if meta_changed => self.event(now, EventKind::Updated, &a.node, inc, how),
            State::Alive => {}
        }
    }

    fn suspect_node(&mut self, now: Duration, s: Accusation, reason: &str) {
        let Some(i) = self.find(&s.node) else {
            return;
        };
        if s.incarnation < self.nodes[i].incarnation {
            return;
        }
        if let Some(sus) = self.suspicions.get_mut(&s.node) {
            // Lifeguard: an independent confirmation shortens the timeout.
            // The set holds the first accuser too, who cannot confirm its own suspicion.
            let confirmed = sus.confirmations.len() as u32 - 1;
            if confirmed >= sus.k || !sus.confirmations.insert(s.from.clone()) {
                return;
            }
            let timeout = crate::config::suspicion_after(sus.min, sus.max, sus.k, confirmed + 1);
            sus.deadline = sus.start + timeout;
            let deadline = sus.deadline;
            let name = s.node.clone();
            self.schedule(deadline.max(now), Timer::Suspicion(name));
            let msg = encode(MessageType::Suspect, &s);
            self.queue_broadcast(&s.node, msg);
            return;
        }
        if self.nodes[i].state != State::Alive {
            return;
        }
        if s.node == self.name {
            return self.refute(now, s.incarnation);
        }
        let msg = encode(MessageType::Suspect, &s);
        self.queue_broadcast(&s.node, msg);
        let n = self.nodes.len();
        let node = &mut self.nodes[i];
        node.incarnation = s.incarnation;
        node.state = State::Suspect;
        node.state_change = nanos(now);
        let (min, max) = self.config.suspicion_timeout(n);
        let mut k = self.config.suspicion_mult.saturating_sub(2);
        if (n as u32).saturating_sub(2) < k {
            k = 0;
        }
        let first = if k >= 1 { max } else { min };
        let mut confirmations = BTreeSet::new();
        confirmations.insert(s.from.clone());
        self.suspicions.insert(
            s.node.clone(),
            Suspicion {
                confirmations,
                k,
                start: now,
                min,
                max,
                deadline: now + first,
                state_change: nanos(now),
            },
        );
        self.schedule(now + first, Timer::Suspicion(s.node.clone()));
        self.event(now, EventKind::Suspect, &s.node, s.incarnation, reason);
    }

    fn suspicion_expired(&mut self, now: Duration, name: &str) {
        let Some(sus) = self.suspicions.get(name) else {
            return;
        };
        if sus.deadline > now {
            return; // rescheduled by a confirmation
        }
        let (start, state_change, n) = (sus.start, sus.state_change, sus.confirmations.len());
        let Some(i) = self.find(name) else {
            return;
        };
        let node = &self.nodes[i];
        if node.state != State::Suspect || node.state_change != state_change {
            return;
        }
        let d = Accusation {
            from: self.name.clone(),
            incarnation: node.incarnation,
            node: name.to_string(),
        };
        let reason = format!(
            "suspicion timed out after {:.3}s ({} confirmation{})",
            now.saturating_sub(start).as_secs_f64(),
            n.saturating_sub(1),
            if n == 2 { "" } else { "s" }
        );
        self.dead_node(now, d, &reason);
    }

    fn dead_node(&mut self, now: Duration, d: Accusation, reason: &str) {
        let Some(i) = self.find(&d.node) else {
            return;
        };
        if d.incarnation < self.nodes[i].incarnation {
            return;
        }
        self.suspicions.remove(&d.node);
        if matches!(self.nodes[i].state, State::Dead | State::Left) {
            return;
        }
        if d.node == self.name && !self.leaving {
            return self.refute(now, d.incarnation);
        }
        let msg = encode(MessageType::Dead, &d);
        self.queue_broadcast(&d.node, msg);
        let left = d.node == d.from;
        let node = &mut self.nodes[i];
        node.incarnation = d.incarnation;
        node.state = if left { State::Left } else { State::Dead };
        node.state_change = nanos(now);
        let kind = if left {
            EventKind::Left
        } else {
            EventKind::Dead
        };
        self.event(now, kind, &d.node, d.incarnation, reason);
    }

    fn refute(&mut self, now: Duration, accused: u32) {
        // u32 arithmetic wraps in Go; here too, without a panic.
        self.incarnation = self.incarnation.wrapping_add(1);
        if accused >= self.incarnation {
            self.incarnation = accused.wrapping_add(1);
        }
        let max = self.config.awareness_max_multiplier.saturating_sub(1);
        self.awareness = (self.awareness + 1).min(max);
        let me = self.self_alive();
        if let Some(i) = self.find(&self.name) {
            self.nodes[i].incarnation = self.incarnation;
        }
        let msg = encode(MessageType::Alive, &me);
        self.queue_broadcast(&self.name.clone(), msg);
        let _ = now;
    }
}

type PushPull = (PushPullHeader, Vec<PushNodeState>, Vec<u8>);

/// Parse a push/pull body (header, node states, user state): `Ok(None)` when more bytes
/// are needed.
fn parse_push_pull(body: &[u8]) -> Result<Option<PushPull>, WireError> {
    let mut rd = body;
    let header: PushPullHeader = match decode_next(&mut rd) {
        Ok(h) => h,
        Err(WireError::Truncated) => return Ok(None),
        Err(e) => return Err(e),
    };
    if header.nodes as usize > MAX_PUSH_STATE / 16 {
        return Err(WireError::TooLarge(header.nodes as usize));
    }
    let mut states = Vec::with_capacity((header.nodes as usize).min(1024));
    for _ in 0..header.nodes {
        match decode_next::<PushNodeState>(&mut rd) {
            Ok(s) => states.push(s),
            Err(WireError::Truncated) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    if header.user_state_len as usize > MAX_PUSH_STATE {
        return Err(WireError::TooLarge(header.user_state_len as usize));
    }
    if rd.len() < header.user_state_len as usize {
        return Ok(None);
    }
    let user = rd[..header.user_state_len as usize].to_vec();
    Ok(Some((header, states, user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_list_entry_is_24_bytes() {
        // N members hold N^2 entries: at 10,000 members each byte here is 100 MB.
        assert_eq!(std::mem::size_of::<Node>(), 24);
    }
}
