//! A tiny deterministic network for the core's tests: packets take 1 ms, streams are
//! answered at once, and a test can crash a member, cut its inbound UDP, or isolate it.
//! Each member has a NetworkDB wired to it as a driver would.
#![allow(dead_code)]

use gossip::member::StreamInput;
use gossip::tables::{NetworkDb, Send};
use gossip::{Config, EventKind, Member, State, Transmit};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

pub struct Net {
    pub now: Duration,
    pub members: Vec<Member>,
    pub dbs: Vec<NetworkDb>,
    pub addrs: Vec<SocketAddrV4>,
    pub crashed: BTreeSet<usize>,
    pub udp_blocked: BTreeSet<usize>,
    /// Inbound UDP cut and every stream to or from it failing.
    pub isolated: BTreeSet<usize>,
    in_flight: BTreeMap<(Duration, u64), (usize, SocketAddrV4, Vec<u8>)>,
    seq: u64,
    pub events: Vec<(usize, gossip::Event)>,
    pub packets: u64,
}

pub const LATENCY: Duration = Duration::from_millis(1);

impl Net {
    pub fn new(n: usize, config: Config) -> Net {
        let addrs: Vec<SocketAddrV4> = (0..n)
            .map(|i| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1 + i as u8), 7946))
            .collect();
        let members = (0..n)
            .map(|i| {
                Member::new(
                    config.clone(),
                    &format!("m{i}"),
                    addrs[i],
                    Duration::ZERO,
                    42 + i as u64,
                )
            })
            .collect();
        let dbs = (0..n)
            .map(|i| NetworkDb::new(&format!("m{i}"), Duration::ZERO, 7 + i as u64))
            .collect();
        Net {
            now: Duration::ZERO,
            members,
            dbs,
            addrs,
            crashed: BTreeSet::new(),
            udp_blocked: BTreeSet::new(),
            isolated: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            events: Vec::new(),
            packets: 0,
        }
    }

    fn who(&self, a: SocketAddrV4) -> Option<usize> {
        self.addrs.iter().position(|x| *x == a)
    }

    pub fn pump(&mut self, i: usize) {
        // NetworkDB glue: user messages in, sends out, deaths reported.
        while let Some(m) = self.members[i].poll_user_message() {
            self.dbs[i].handle_message(self.now, &m);
        }
        while let Some(s) = self.dbs[i].poll_send() {
            match s {
                Send::Unreliable { to, bytes } => {
                    self.members[i].send_user(&to, &bytes);
                }
                Send::Reliable { to, bytes } => {
                    self.members[i].send_user_reliable(&to, &bytes);
                }
                Send::Broadcast { key, bytes } => self.members[i].broadcast_user(&key, &bytes),
                Send::Join { to } => self.members[i].join(self.now, &to),
            }
        }
        // Its networks ride on push/pull as the member's local state.
        if let Some(state) = self.dbs[i].local_state_if_changed() {
            self.members[i].set_local_state(state);
        }
        while let Some(t) = self.members[i].poll_transmit() {
            match t {
                Transmit::Packet { to, bytes } => {
                    self.packets += 1;
                    self.seq += 1;
                    if let Some(j) = self.who(to) {
                        self.in_flight
                            .insert((self.now + LATENCY, self.seq), (j, self.addrs[i], bytes));
                    }
                }
                Transmit::Stream { id, to, bytes } => {
                    let cut = |k: usize| self.crashed.contains(&k) || self.isolated.contains(&k);
                    let reply = match self.who(to) {
                        Some(j) if !cut(j) && !cut(i) => {
                            match self.members[j].handle_stream(self.now, &bytes) {
                                StreamInput::Reply(r) => Some(r),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    match reply {
                        Some(r) => self.members[i].handle_stream_reply(self.now, id, &r),
                        None => self.members[i].stream_failed(self.now, id),
                    }
                    if let Some(j) = self.who(to) {
                        self.pump(j);
                    }
                }
            }
        }
        while let Some(e) = self.members[i].poll_event() {
            match (e.kind, self.members[i].addr_of(&e.member)) {
                (EventKind::Dead, Some(a)) => self.dbs[i].node_failed(self.now, &e.member, a),
                (EventKind::Dead | EventKind::Left, _) => self.dbs[i].node_left(&e.member),
                (EventKind::Joined | EventKind::Alive, Some(a)) => {
                    self.dbs[i].node_alive(self.now, &e.member, a)
                }
                _ => {}
            }
            self.events.push((i, e));
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            for i in 0..self.members.len() {
                if !self.crashed.contains(&i) {
                    self.pump(i);
                }
            }
            let next_timer = (0..self.members.len())
                .filter(|i| !self.crashed.contains(i))
                .map(|i| {
                    let db = self.dbs[i].next_timeout();
                    (self.members[i].next_timeout().map_or(db, |t| t.min(db)), i)
                })
                .min();
            let next_packet = self.in_flight.keys().next().map(|k| k.0);
            let next = match (next_timer.map(|t| t.0), next_packet) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.now = next;
            if next_packet == Some(next) {
                let (_, (to, from, bytes)) = self.in_flight.pop_first().unwrap();
                if !self.crashed.contains(&to)
                    && !self.udp_blocked.contains(&to)
                    && !self.isolated.contains(&to)
                {
                    self.members[to].handle_packet(self.now, from, &bytes);
                }
            } else if let Some((_, i)) = next_timer {
                self.members[i].handle_timeout(self.now);
                self.dbs[i].handle_timeout(self.now);
            }
        }
        self.now = end;
    }

    pub fn join_all(&mut self) {
        for i in 1..self.members.len() {
            let seed = self.addrs[0];
            self.members[i].join(self.now, &[seed]);
            self.pump(i);
        }
    }

    pub fn state(&self, viewer: usize, of: usize) -> Option<State> {
        self.members[viewer].state_of(&format!("m{of}"))
    }

    pub fn first_event(&self, viewer: usize, kind: EventKind, of: usize) -> Option<Duration> {
        let name = format!("m{of}");
        self.events
            .iter()
            .find(|(v, e)| *v == viewer && e.kind == kind && e.member == name)
            .map(|(_, e)| e.at)
    }
}
