//! Gossip on 7946 in the lab (the router's part): every host's `gossip::Member` sends
//! its UDP packets as real Ethernet/IPv4/UDP frames through the underlay (so firewalls,
//! loss, latency, partitions and pcaps apply), and its TCP streams (push/pull, fallback
//! pings) are delivered as request and reply after a connection's round trips, subject
//! to the same host states, partitions and tcp/7946 firewall rules; the taps show them
//! as TCP segments.

use super::*;
use crate::membership::{since_start, FocaHost, HostGossip};
use crate::trace::TraceEvent;
use crate::underlay::{PortRule, Proto};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use gossip::member::StreamInput;
use gossip::{StreamId, Transmit, GOSSIP_PORT};
use std::net::SocketAddrV4;

impl Lab {
    /// `gossip HOSTS formed`: the hosts' members start as one formed cluster (see
    /// `Member::assume_formed`).
    pub fn gossip_formed(&mut self, hosts: &[HostId]) {
        let members = hosts
            .iter()
            .map(|h| self.host_name(*h).to_string())
            .collect();
        let now = self.now();
        self.trace
            .push(now, crate::trace::TraceEvent::GossipFormed { members });
        let idents: Vec<_> = hosts
            .iter()
            .map(|h| self.hosts[h.0].gossip.member.identity())
            .collect();
        let now = since_start(self.now());
        // After a restart a member joins again through the first of the others, as if
        // it had joined through it.
        let addr = |h: &HostId| SocketAddrV4::new(self.underlay.nic(*h).ip, GOSSIP_PORT);
        let seeds: Vec<Vec<SocketAddrV4>> = hosts
            .iter()
            .map(|h| {
                hosts
                    .iter()
                    .find(|o| *o != h)
                    .map(addr)
                    .into_iter()
                    .collect()
            })
            .collect();
        for (h, seeds) in hosts.iter().zip(seeds) {
            let g = &mut self.hosts[h.0].gossip;
            g.member.assume_formed(now, &idents);
            if g.seeds.is_empty() {
                g.seeds = seeds;
            }
            g.db.set_bootstrap(&g.seeds);
            // Its bootstrap peers are in the cluster it starts in.
            let peers: Vec<(String, SocketAddrV4)> = g
                .seeds
                .iter()
                .filter_map(|a| {
                    let peer = self.underlay.by_ip(*a.ip())?;
                    Some((self.underlay.nic(peer).name.clone(), *a))
                })
                .collect();
            let g = &mut self.hosts[h.0].gossip;
            for (name, a) in &peers {
                g.db.node_alive(now, name, *a);
            }
            self.gossip_flush(*h);
        }
    }

    /// `gossip HOST join SEEDS`.
    pub fn gossip_join(&mut self, host: HostId, seeds: &[HostId]) {
        let addrs: Vec<SocketAddrV4> = seeds
            .iter()
            .map(|s| SocketAddrV4::new(self.underlay.nic(*s).ip, GOSSIP_PORT))
            .collect();
        let now = since_start(self.now());
        let g = &mut self.hosts[host.0].gossip;
        g.seeds = addrs.clone();
        g.db.set_bootstrap(&addrs);
        g.member.join(now, &addrs);
        self.gossip_flush(host);
    }

    /// After any input to a host's member: send what it wants sent, record its events,
    /// and make sure it is woken for its next timer.
    pub(crate) fn gossip_flush(&mut self, host: HostId) {
        // NetworkDB rides on the member: user messages in, its sends out.
        let now = since_start(self.now());
        let mut joins = Vec::new();
        let g = &mut self.hosts[host.0].gossip;
        while let Some(m) = g.member.poll_user_message() {
            g.db.handle_message(now, &m);
        }
        while let Some(send) = g.db.poll_send() {
            match send {
                gossip::tables::Send::Unreliable { to, bytes } => {
                    g.member.send_user(&to, &bytes);
                }
                gossip::tables::Send::Reliable { to, bytes } => {
                    g.member.send_user_reliable(&to, &bytes);
                }
                gossip::tables::Send::Broadcast { key, bytes } => {
                    g.member.broadcast_user(&key, &bytes)
                }
                gossip::tables::Send::Join { to } => joins.push(to),
            }
        }
        // memberlist's Join dials first and sends its state only once connected: a
        // member that cannot be reached now (crashed, cut off, 7946 blocked) costs
        // nothing but the failed dial.
        for to in joins {
            let reachable: Vec<SocketAddrV4> = to
                .into_iter()
                .filter(|a| {
                    self.underlay
                        .by_ip(*a.ip())
                        .is_some_and(|peer| self.tcp_path(host, peer, GOSSIP_PORT).is_ok())
                })
                .collect();
            if !reachable.is_empty() {
                self.hosts[host.0].gossip.member.join(now, &reachable);
            }
        }
        if let Some(state) = self.hosts[host.0].gossip.db.local_state_if_changed() {
            self.hosts[host.0].gossip.member.set_local_state(state);
        }
        // Table changes this member learnt: the overlay programs its peers from them.
        let mut ingress_changed = false;
        while let Some(ev) = self.hosts[host.0].gossip.db.poll_event() {
            ingress_changed |=
                ev.table == crate::traffic::ENDPOINT_TABLE && ev.network == "ingress";
            self.overlay_table_event(host, ev);
        }
        if ingress_changed {
            self.mesh_backends_changed(host);
        }
        while let Some(t) = self.hosts[host.0].gossip.member.poll_transmit() {
            match t {
                Transmit::Packet { to, bytes } => self.gossip_send_packet(host, to, &bytes),
                Transmit::Stream { id, to, bytes } => self.gossip_open_stream(host, id, to, bytes),
            }
        }
        while let Some(e) = self.hosts[host.0].gossip.member.poll_event() {
            let g = &mut self.hosts[host.0].gossip;
            match (e.kind, g.member.addr_of(&e.member)) {
                (gossip::EventKind::Dead, Some(addr)) => g.db.node_failed(now, &e.member, addr),
                (gossip::EventKind::Dead | gossip::EventKind::Left, _) => g.db.node_left(&e.member),
                (gossip::EventKind::Joined | gossip::EventKind::Alive, Some(addr)) => {
                    g.db.node_alive(now, &e.member, addr)
                }
                _ => {}
            }
            if !self.trace_joins && e.kind == gossip::EventKind::Joined {
                continue;
            }
            let at = self.now();
            self.trace.push(
                at,
                TraceEvent::Gossip {
                    host: self.host_name(host).to_string(),
                    kind: e.kind,
                    member: e.member,
                    incarnation: e.incarnation,
                    reason: e.reason,
                },
            );
        }
        let db_next = self.hosts[host.0].gossip.db.next_timeout();
        let member_next = self.hosts[host.0].gossip.member.next_timeout();
        if let Some(next) = member_next.map(|t| t.min(db_next)) {
            let at = Instant(next.as_nanos() as u64);
            let g = &mut self.hosts[host.0].gossip;
            if g.armed.is_none_or(|a| at < a || a < self.engine.now()) {
                g.armed = Some(at);
                self.engine.schedule(at, Event::GossipTimer { host, at });
            }
        }
    }

    /// A scheduled wake-up of a host's member.
    pub(crate) fn gossip_timer(&mut self, host: HostId, at: Instant) {
        let g = &mut self.hosts[host.0].gossip;
        if g.armed != Some(at) {
            return; // superseded by an earlier wake-up
        }
        g.armed = None;
        if !self.underlay.nic(host).up {
            return;
        }
        let now = since_start(self.now());
        self.hosts[host.0].gossip.member.handle_timeout(now);
        self.hosts[host.0].gossip.db.handle_timeout(now);
        self.gossip_flush(host);
    }

    pub(crate) fn gossip_send_packet(&mut self, host: HostId, to: SocketAddrV4, bytes: &[u8]) {
        self.gossip_load.packets += 1;
        self.gossip_load.bytes += bytes.len() as u64;
        let nic = self.underlay.nic(host).clone();
        let dst_mac = self
            .underlay
            .by_ip(*to.ip())
            .map(|h| self.underlay.nic(h).mac)
            .unwrap_or_default();
        let builder = PacketBuilder::ethernet2(nic.mac.0, dst_mac.0)
            .ipv4(nic.ip.octets(), to.ip().octets(), 64)
            .udp(GOSSIP_PORT, to.port());
        let mut frame = Vec::with_capacity(builder.size(bytes.len()));
        if builder.write(&mut frame, bytes).is_ok() {
            self.transmit(host, frame);
        }
    }

    /// A UDP frame for 7946 reached a host that accepted it.
    pub(crate) fn gossip_packet_arrival(&mut self, host: HostId, frame: &[u8]) {
        let Ok(p) = SlicedPacket::from_ethernet(frame) else {
            return;
        };
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(udp))) =
            (p.net, p.transport)
        else {
            return;
        };
        let from = SocketAddrV4::new(ip.header().source_addr(), udp.source_port());
        if self.foca_packet(host, udp.payload()) {
            return;
        }
        let now = since_start(self.now());
        self.hosts[host.0]
            .gossip
            .member
            .handle_packet(now, from, udp.payload());
        self.gossip_flush(host);
    }

    /// Whether a TCP connection from `a` to `b`'s 7946 can be made now, and if not why.
    fn stream_path(&self, a: HostId, b: HostId) -> Result<Duration, String> {
        self.tcp_path(a, b, GOSSIP_PORT)
    }

    /// Whether a TCP connection from `a` to `b`'s `port` can be made now (both up, not
    /// partitioned, not firewalled), and the one-way latency if so.
    pub(crate) fn tcp_path(&self, a: HostId, b: HostId, port: u16) -> Result<Duration, String> {
        let (na, nb) = (self.underlay.nic(a), self.underlay.nic(b));
        if !na.up || !nb.up {
            return Err(format!(
                "host {} is down",
                if na.up { &nb.name } else { &na.name }
            ));
        }
        if a == b {
            // A host talking to itself goes over loopback: the NIC's firewall and the
            // network never see it.
            return Ok(Duration::ZERO);
        }
        if self.underlay.is_cut(a, b) || self.underlay.is_cut(b, a) {
            return Err("partitioned".into());
        }
        let rule = PortRule {
            proto: Proto::Tcp,
            port,
        };
        if nb.blocked.contains(&rule) {
            return Err(format!("firewall on {} blocks tcp/{port}", nb.name));
        }
        Ok(self.underlay.link(a, b).latency)
    }

    fn gossip_open_stream(&mut self, host: HostId, id: StreamId, to: SocketAddrV4, bytes: Vec<u8>) {
        self.gossip_load.streams += 1;
        self.gossip_load.stream_bytes += bytes.len() as u64;
        let Some(peer) = self.underlay.by_ip(*to.ip()) else {
            self.engine
                .schedule_in(Duration::ZERO, Event::GossipStreamFailed { host, id });
            return;
        };
        match self.stream_path(host, peer) {
            // SYN, SYN-ACK, then the request rides with the handshake's ACK: 1.5 RTT.
            Ok(latency) => {
                self.tap_stream(host, peer, GOSSIP_PORT, true, &bytes);
                // SYN, SYN-ACK, then the request with the handshake's ACK: 1.5 RTT, plus
                // a retransmission for every segment the link loses (Linux: 1 s for a
                // SYN, 200 ms for data, doubling), plus the processing lag of either end.
                let loss = self.underlay.link(host, peer).loss;
                let retries = self.tcp_retransmit_delay(loss, 2, Duration::from_secs(1))
                    + self.tcp_retransmit_delay(loss, 1, Duration::from_millis(200));
                let lag = self.hosts[peer.0].gossip.lag;
                self.engine.schedule_in(
                    Duration(latency.as_nanos() * 3) + retries + lag,
                    Event::GossipStream {
                        from: host,
                        to: peer,
                        id,
                        bytes,
                    },
                )
            }
            Err(why) => {
                let name = self.host_name(host).to_string();
                self.trace.push(
                    self.now(),
                    TraceEvent::UnderlayDrop {
                        host: name,
                        reason: format!("tcp/{GOSSIP_PORT} stream: {why}"),
                        bytes: bytes.len(),
                    },
                );
                // A dropped SYN: the connect gives up at the member's TCP timeout.
                let timeout = self.gossip_config.tcp_timeout;
                self.engine.schedule_in(
                    Duration(timeout.as_nanos() as u64),
                    Event::GossipStreamFailed { host, id },
                );
            }
        }
    }

    /// Extra delay for `segments` TCP segments crossing a link with `loss`: each loss
    /// costs a retransmission timeout, starting at `rto` and doubling.
    pub(crate) fn tcp_retransmit_delay(
        &mut self,
        loss: f64,
        segments: u32,
        rto: Duration,
    ) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..segments {
            let mut wait = rto;
            while self.rng.chance(loss) && wait < Duration::from_secs(64) {
                total = total + wait;
                wait = wait + wait;
            }
        }
        total
    }

    /// A stream's request reached the peer: it answers, and the reply travels back.
    pub(crate) fn gossip_stream_arrival(
        &mut self,
        from: HostId,
        to: HostId,
        id: StreamId,
        bytes: &[u8],
    ) {
        if self.stream_path(from, to).is_err() {
            self.engine
                .schedule_in(Duration::ZERO, Event::GossipStreamFailed { host: from, id });
            return;
        }
        let now = since_start(self.now());
        let reply = match self.hosts[to.0].gossip.member.handle_stream(now, bytes) {
            StreamInput::Reply(r) => Some(r),
            // A complete request answered by closing (a user message): an empty reply.
            StreamInput::Close => Some(Vec::new()),
            StreamInput::NeedMore => None,
        };
        self.gossip_flush(to);
        let loss = self.underlay.link(from, to).loss;
        let latency = self.underlay.link(from, to).latency
            + self.tcp_retransmit_delay(loss, 1, Duration::from_millis(200))
            + self.hosts[from.0].gossip.lag;
        self.gossip_load.stream_bytes += reply.as_ref().map_or(0, |r| r.len() as u64);
        // memberlist answers on the stream and closes it.
        let answer = reply.as_deref().unwrap_or_default();
        self.tap_stream_then_close(from, to, GOSSIP_PORT, false, answer, true);
        match reply {
            Some(r) => self.engine.schedule_in(
                latency,
                Event::GossipStreamReply {
                    host: from,
                    id,
                    bytes: r,
                },
            ),
            None => self
                .engine
                .schedule_in(latency, Event::GossipStreamFailed { host: from, id }),
        }
    }

    /// The reply of a stream came back.
    pub(crate) fn gossip_stream_reply(&mut self, host: HostId, id: StreamId, bytes: &[u8]) {
        if !self.underlay.nic(host).up {
            return;
        }
        let now = since_start(self.now());
        self.hosts[host.0]
            .gossip
            .member
            .handle_stream_reply(now, id, bytes);
        self.gossip_flush(host);
    }

    /// A stream could not be completed.
    pub(crate) fn gossip_stream_failed(&mut self, host: HostId, id: StreamId) {
        if !self.underlay.nic(host).up {
            return;
        }
        let now = since_start(self.now());
        self.hosts[host.0].gossip.member.stream_failed(now, id);
        self.gossip_flush(host);
    }

    /// A restarted host's member starts afresh (incarnation 1) and joins again through
    /// the members it had joined, as the engine does when it comes back.
    pub(crate) fn gossip_restart(&mut self, host: HostId) {
        let nic = self.underlay.nic(host).clone();
        let seed = self.rng.next_u64();
        let seeds = std::mem::take(&mut self.hosts[host.0].gossip.seeds);
        self.hosts[host.0].gossip = HostGossip::new(
            self.gossip_config.clone(),
            &nic.name,
            SocketAddrV4::new(nic.ip, GOSSIP_PORT),
            self.now(),
            seed,
            self.gossip_names.clone(),
        );
        if seeds.is_empty() {
            self.gossip_flush(host);
        } else {
            let ids: Vec<HostId> = seeds
                .iter()
                .filter_map(|a| self.underlay.by_ip(*a.ip()))
                .collect();
            self.gossip_join(host, &ids);
        }
    }

    /// Hand a host's member a UDP payload as if `from` had sent it (for experiments).
    pub fn gossip_inject(&mut self, host: HostId, from: SocketAddrV4, payload: &[u8]) {
        let now = since_start(self.now());
        self.hosts[host.0]
            .gossip
            .member
            .handle_packet(now, from, payload);
        self.gossip_flush(host);
    }

    /// How `viewer` sees `member`.
    pub fn gossip_state(&self, viewer: HostId, member: &str) -> Option<gossip::State> {
        self.hosts[viewer.0].gossip.member.state_of(member)
    }

    /// How many members `viewer` sees alive, itself included.
    pub fn gossip_alive_count(&self, viewer: HostId) -> usize {
        self.hosts[viewer.0].gossip.member.alive_count()
    }
}

impl Lab {
    /// Run `foca` instead of our member on `host` (for baseline experiments; the host's
    /// own member stays idle). `cluster_size` feeds foca's LAN profile.
    pub fn use_foca(&mut self, host: HostId, cluster_size: u32) {
        use rand::SeedableRng;
        let nic = self.underlay.nic(host);
        let id = SocketAddrV4::new(nic.ip, GOSSIP_PORT);
        let size =
            std::num::NonZeroU32::new(cluster_size.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let rng = rand::rngs::StdRng::seed_from_u64(self.rng.next_u64());
        let foca = foca::Foca::new(id, foca::Config::new_lan(size), rng, foca::PostcardCodec);
        self.hosts[host.0].gossip.foca = Some(FocaHost {
            foca,
            rt: foca::AccumulatingRuntime::new(),
        });
    }

    /// Send what foca asked for, schedule its timers, record its notifications.
    fn foca_drain(&mut self, host: HostId) {
        let name = self.host_name(host).to_string();
        loop {
            let Some(f) = self.hosts[host.0].gossip.foca.as_mut() else {
                return;
            };
            if let Some((to, data)) = f.rt.to_send() {
                self.gossip_send_packet(host, to, &data);
                continue;
            }
            if let Some((after, timer)) = f.rt.to_schedule() {
                self.engine.schedule_in(
                    Duration(after.as_nanos() as u64),
                    Event::FocaTimer { host, timer },
                );
                continue;
            }
            if let Some(n) = f.rt.to_notify() {
                let (kind, who) = match n {
                    foca::OwnedNotification::MemberUp(id) => {
                        (crate::trace::MemberChange::Joined, id)
                    }
                    foca::OwnedNotification::MemberDown(id) => {
                        (crate::trace::MemberChange::Dead, id)
                    }
                    _ => continue,
                };
                let member = self
                    .underlay
                    .by_ip(*who.ip())
                    .map(|h| self.host_name(h).to_string())
                    .unwrap_or_default();
                let at = self.now();
                self.trace.push(
                    at,
                    TraceEvent::Gossip {
                        host: name.clone(),
                        kind,
                        member,
                        incarnation: 0,
                        reason: "foca".into(),
                    },
                );
                continue;
            }
            return;
        }
    }

    pub(crate) fn foca_timer(&mut self, host: HostId, timer: foca::Timer<SocketAddrV4>) {
        if !self.underlay.nic(host).up {
            return;
        }
        if let Some(f) = self.hosts[host.0].gossip.foca.as_mut() {
            let _ = f.foca.handle_timer(timer, &mut f.rt);
        }
        self.foca_drain(host);
    }

    /// Whether `host` runs foca; if so, hand it the datagram.
    pub(crate) fn foca_packet(&mut self, host: HostId, payload: &[u8]) -> bool {
        let Some(f) = self.hosts[host.0].gossip.foca.as_mut() else {
            return false;
        };
        let _ = f.foca.handle_data(payload, &mut f.rt);
        self.foca_drain(host);
        true
    }

    /// foca's join: announce to the seeds.
    pub fn foca_join(&mut self, host: HostId, seeds: &[HostId]) {
        for s in seeds {
            let to = SocketAddrV4::new(self.underlay.nic(*s).ip, GOSSIP_PORT);
            if let Some(f) = self.hosts[host.0].gossip.foca.as_mut() {
                let _ = f.foca.announce(to, &mut f.rt);
            }
        }
        self.foca_drain(host);
    }

    /// Members a foca host sees active, itself included.
    pub fn foca_alive_count(&self, host: HostId) -> Option<usize> {
        self.hosts[host.0]
            .gossip
            .foca
            .as_ref()
            .map(|f| f.foca.num_members() + 1)
    }

    /// Whether a foca host still lists `member` as active.
    pub fn foca_sees(&self, host: HostId, member: HostId) -> Option<bool> {
        let ip = self.underlay.nic(member).ip;
        self.hosts[host.0]
            .gossip
            .foca
            .as_ref()
            .map(|f| f.foca.iter_members().any(|m| m.id().ip() == &ip))
    }
}
