//! Containers' and hosts' TCP/IP stacks in the lab (the router's part): starting them
//! with their images' programs, feeding them packets and timers, the embedded DNS server
//! at 127.0.0.11, the VIP balancing inside a container's namespace, and the namespace
//! the programs see (`Ns`).

use super::cx::Cx;
use super::*;
use crate::netstack::{App, ClientEnd, Framing, Stack};
use crate::traffic::{EndpointRecord, Owner, ENDPOINT_TABLE, OVERLAY_MTU};
use std::net::SocketAddrV4;

impl Lab {
    /// A container starts: a fresh stack on its addresses, running its image's program.
    pub(crate) fn stack_start(&mut self, cid: ContainerId) {
        let seed = self.rng.next_u64();
        let now = self.now();
        let addrs: Vec<(Ipv4Addr, u8)> = self
            .ifaces(cid)
            .iter()
            .map(|i| (i.ip, self.nets[i.net.0].subnet.prefix))
            .collect();
        let mut stack = Stack::new(seed, &addrs, OVERLAY_MTU, now);
        if stack.addresses().len() < addrs.len() {
            let at = self.containers[cid.0].name.clone();
            self.trace.push(
                now,
                TraceEvent::StackDrop {
                    at,
                    reason: "swarmlab simulates at most 7 networks per container: some addresses have no TCP".into(),
                },
            );
        }
        let c = &mut self.containers[cid.0];
        stack.hostname = c.id.get(..12).unwrap_or_default().to_string();
        if crate::images::image_repo(&c.base) == "nginx" {
            stack.docroot = Some(c.fs.clone());
        }
        if let Some((app, port)) = App::of_image(&c.base) {
            stack.serve(port, app.with_args(&c.command));
        }
        stack.with_resolver();
        c.stack = Some(Box::new(stack));
    }

    fn stack_mut(&mut self, owner: Owner) -> Option<&mut Stack> {
        match owner {
            Owner::Container(c) => self.containers[c.0].stack.as_deref_mut(),
            Owner::Host(h) => self.hosts[h.0].stack.as_deref_mut(),
        }
    }

    /// An IP packet reaches a stack.
    pub(crate) fn stack_input(&mut self, owner: Owner, packet: Vec<u8>) {
        let Some(s) = self.stack_mut(owner) else {
            return;
        };
        s.input(packet);
        self.stack_poll(owner);
    }

    /// Let a stack run now, send what it wrote, and schedule its next wake-up.
    pub(crate) fn stack_poll(&mut self, owner: Owner) {
        let now = self.now();
        let Some(s) = self.stack_mut(owner) else {
            return;
        };
        let mut out = s.poll(now);
        // The programs' own connections (the counter's redis): resolved as the container's
        // embedded DNS answers, balanced over a VIP, then opened.
        let wants = s.take_wants();
        if !wants.is_empty() {
            if let Owner::Container(cid) = owner {
                for w in wants {
                    let remote = self
                        .dns_lookup(cid, &w.host)
                        .and_then(|v| v.first().copied());
                    let remote = remote.map(|ip| self.balance(cid, SocketAddrV4::new(ip, w.port)));
                    let port = self.ephemeral_port(owner);
                    if let Some(s) = self.stack_mut(owner) {
                        s.connect_for(w, remote.zip(port).map(|(r, _)| r), port.unwrap_or(0));
                    }
                }
            }
            let Some(s) = self.stack_mut(owner) else {
                return;
            };
            out.extend(s.poll(now));
        }
        let Some(s) = self.stack_mut(owner) else {
            return;
        };
        let next = s
            .poll_at(now)
            .map(|t| t.max(now + Duration::from_micros(1)));
        if let Some(t) = next {
            if s.wake.is_none_or(|w| t < w || w < now) {
                s.wake = Some(t);
                self.engine.schedule(t, Event::StackTimer { owner, at: t });
            }
        }
        for p in out {
            match owner {
                Owner::Container(c) => self.send_ip(c, p),
                Owner::Host(h) => self.host_send_ip(h, p),
            }
        }
    }

    pub(crate) fn stack_timer(&mut self, owner: Owner, at: Instant) {
        let Some(s) = self.stack_mut(owner) else {
            return;
        };
        if s.wake != Some(at) {
            return;
        }
        s.wake = None;
        self.stack_poll(owner);
    }

    /// ARP for `ip` failed: connections still opening to it fail with "Host is
    /// unreachable", as Linux reports EHOSTUNREACH.
    pub(crate) fn stack_unreachable(&mut self, owner: Owner, ip: Ipv4Addr) {
        let Some(s) = self.stack_mut(owner) else {
            return;
        };
        let hit: Vec<usize> = s
            .clients
            .iter()
            .filter(|(_, c)| c.end.is_none() && !c.established && *c.remote.ip() == ip)
            .map(|(i, _)| *i)
            .collect();
        for i in hit {
            s.end_client(i, ClientEnd::Unreachable);
        }
        self.stack_poll(owner);
    }

    /// Open a TCP connection from `owner` to `dst` and send `request`. A container
    /// connecting to a service VIP is balanced to a task first, as IPVS does in its
    /// namespace. Returns the client's index and where it really goes, or how it ended
    /// at once.
    fn tcp_open(
        &mut self,
        owner: Owner,
        dst: SocketAddrV4,
        request: Vec<u8>,
        framing: Framing,
    ) -> Result<(usize, SocketAddrV4), (ClientEnd, SocketAddrV4)> {
        let real = match owner {
            Owner::Container(cid) => self.balance(cid, dst),
            Owner::Host(_) => dst,
        };
        if let Owner::Host(h) = owner {
            if self.hosts[h.0].stack.is_none() {
                let seed = self.rng.next_u64();
                let now = self.now();
                let nic = self.underlay.nic(h);
                let stack = Stack::new(seed, &[(nic.ip, 0)], usize::from(nic.mtu), now);
                self.hosts[h.0].stack = Some(Box::new(stack));
            }
        }
        let Some(port) = self.ephemeral_port(owner) else {
            return Err((ClientEnd::NoPort, real));
        };
        let Some(s) = self.stack_mut(owner) else {
            return Err((ClientEnd::Unreachable, real));
        };
        let i = s.connect(real, port, request, framing);
        self.stack_poll(owner);
        Ok((i, real))
    }

    /// Whether client `i` of `owner` has ended (or its namespace is gone).
    fn tcp_ended(&self, owner: Owner, i: usize) -> bool {
        let stack = match owner {
            Owner::Container(c) => self.containers[c.0].stack.as_ref(),
            Owner::Host(h) => self.hosts[h.0].stack.as_ref(),
        };
        stack.is_none_or(|s| s.client_ended(i))
    }

    /// Client `i`'s end and the bytes it received; one still open is timed out.
    fn tcp_close(&mut self, owner: Owner, i: usize) -> (ClientEnd, Vec<u8>) {
        let Some(s) = self.stack_mut(owner) else {
            // The container died under the client.
            return (ClientEnd::Reset, Vec::new());
        };
        if !s.client_ended(i) {
            s.end_client(i, ClientEnd::TimedOut);
        }
        let result = s
            .take_result(i)
            .unwrap_or((ClientEnd::TimedOut, Vec::new()));
        self.stack_poll(owner);
        result
    }

    /// Linux's ephemeral port range, a port chosen at random among the free ones.
    fn ephemeral_port(&mut self, owner: Owner) -> Option<u16> {
        let first = 32768 + self.rng.below(61000 - 32768) as u16;
        // From a random start, the next free port (wrapping) as Linux does.
        (0..61000 - 32768)
            .map(|k| 32768 + (first - 32768 + k) % (61000 - 32768))
            .find(|p| self.stack_mut(owner).is_none_or(|s| !s.port_in_use(*p)))
    }

    /// A connection from a container to a service VIP goes to one of its tasks, round
    /// robin, as IPVS does in the container's namespace; anything else goes where it was
    /// addressed.
    pub(crate) fn balance(&mut self, cid: ContainerId, dst: SocketAddrV4) -> SocketAddrV4 {
        let Some((svc, backends)) = self.vip_backends(cid, *dst.ip()) else {
            return dst;
        };
        let c = &mut self.containers[cid.0];
        let k = c.lb.entry(*dst.ip()).or_insert(0);
        let pick = backends[(*k % backends.len() as u64) as usize];
        *k += 1;
        let at = c.name.clone();
        self.trace.push(
            self.engine.now(),
            TraceEvent::Balance {
                at,
                what: format!("VIP {dst} of {svc} -> task {pick} (rr)"),
                backend: Some(SocketAddrV4::new(pick, dst.port()).to_string()),
            },
        );
        SocketAddrV4::new(pick, dst.port())
    }

    /// Send an A query for `name` from a container's stack to the embedded DNS server
    /// at 127.0.0.11: the query's number, or `None` when it cannot be asked.
    fn dns_ask(&mut self, cid: ContainerId, name: &str) -> Option<usize> {
        let owner = Owner::Container(cid);
        let q = self.stack_mut(owner)?.resolve(name)?;
        self.stack_poll(owner);
        Some(q)
    }

    /// The answer to query `q`, which is given up if it has none yet.
    fn dns_answer(&mut self, cid: ContainerId, q: usize) -> Option<Vec<Ipv4Addr>> {
        let s = self.stack_mut(Owner::Container(cid))?;
        match s.resolved(q) {
            Some(r) => r,
            None => {
                s.cancel_query(q);
                None
            }
        }
    }

    /// The embedded DNS server: a query a container sent to 127.0.0.11:53 is answered
    /// from the node's NetworkDB view (see `dns_lookup`), as a real DNS response.
    pub(crate) fn embedded_dns(&mut self, cid: ContainerId, packet: &[u8]) {
        use smoltcp::wire::{DnsPacket, DnsQuestion, Ipv4Packet, UdpPacket};
        let Ok(ip) = Ipv4Packet::new_checked(packet) else {
            return;
        };
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
            return;
        };
        if udp.dst_port() != 53 {
            return;
        }
        let Ok(query) = DnsPacket::new_checked(udp.payload()) else {
            return;
        };
        let Ok((_, question)) = DnsQuestion::parse(query.payload()) else {
            return;
        };
        let name = wire_name(question.name);
        let answers = self.dns_lookup(cid, &name);
        let is_a = question.type_ == smoltcp::wire::DnsQueryType::A;
        let mut dns = Vec::with_capacity(64);
        dns.extend_from_slice(&query.transaction_id().to_be_bytes());
        // QR, RD copied, RA; NXDOMAIN (3) when the name is unknown.
        let rd = udp.payload().get(2).copied().unwrap_or(0) & 0x01;
        dns.push(0x80 | rd);
        dns.push(0x80 | if answers.is_none() { 3 } else { 0 });
        let ips: Vec<Ipv4Addr> = if is_a {
            answers.clone().unwrap_or_default()
        } else {
            Vec::new()
        };
        for n in [1u16, ips.len() as u16, 0, 0] {
            dns.extend_from_slice(&n.to_be_bytes());
        }
        dns.extend_from_slice(question.name);
        dns.extend_from_slice(&u16::from(question.type_).to_be_bytes());
        dns.extend_from_slice(&1u16.to_be_bytes());
        for a in &ips {
            // A pointer to the question's name (offset 12), type A, class IN, TTL 600.
            dns.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x02, 0x58, 0, 4]);
            dns.extend_from_slice(&a.octets());
        }
        let src = SocketAddrV4::new(ip.dst_addr(), 53);
        let dst = SocketAddrV4::new(ip.src_addr(), udp.src_port());
        let at = self.containers[cid.0].name.clone();
        self.trace.push(
            self.engine.now(),
            TraceEvent::Balance {
                at,
                what: format!(
                    "embedded DNS 127.0.0.11: {name} -> {}",
                    crate::traffic::shown_answer(&answers)
                ),
                backend: None,
            },
        );
        if let Some(reply) = udp_packet(src, dst, &dns) {
            // The engine's resolver answers within the container's namespace.
            self.engine.schedule_in(
                Duration::from_micros(20),
                Event::StackPacket {
                    owner: Owner::Container(cid),
                    packet: reply,
                },
            );
        }
    }

    /// The service records a container's node holds for its networks (not ingress, which
    /// has no service discovery), network by network in interface order.
    fn endpoint_records(&self, cid: ContainerId) -> Vec<EndpointRecord> {
        let c = &self.containers[cid.0];
        let db = &self.hosts[c.host.0].gossip.db;
        let mut out = Vec::new();
        for i in self.ifaces(cid) {
            let net = &self.nets[i.net.0].name;
            if net == "ingress" {
                continue;
            }
            for (_, _, v) in db.entries(net, ENDPOINT_TABLE) {
                if let Some(r) = EndpointRecord::decode(&v) {
                    out.push(r);
                }
            }
        }
        out
    }

    /// What the embedded DNS server (127.0.0.11) answers a container for `name`: the
    /// service's VIP (or its tasks' addresses under dnsrr), every task's address for
    /// `tasks.NAME`, a container's address for its name. `None` is NXDOMAIN.
    pub fn dns_lookup(&self, cid: ContainerId, name: &str) -> Option<Vec<Ipv4Addr>> {
        if let Ok(ip) = name.parse::<Ipv4Addr>() {
            return Some(vec![ip]);
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        for i in self.ifaces(cid) {
            // Docker's default bridge has no name resolution between containers.
            if self.nets[i.net.0].name.starts_with("bridge@") {
                continue;
            }
            let found: Vec<Ipv4Addr> = self
                .containers_named(&name)
                .iter()
                .copied()
                .filter(|k| {
                    let c = &self.containers[k.0];
                    c.running && !c.swarm_task
                })
                .flat_map(|k| self.ifaces(k))
                .filter(|j| j.net == i.net)
                .map(|j| j.ip)
                .collect();
            if !found.is_empty() {
                return Some(found);
            }
        }
        let recs = self.endpoint_records(cid);
        let mut tasks: Vec<Ipv4Addr> = Vec::new();
        for r in &recs {
            if r.service.to_ascii_lowercase() == name {
                if let Some(vip) = r.vip {
                    return Some(vec![vip]);
                }
                tasks.push(r.ip);
            } else if format!("tasks.{}", r.service.to_ascii_lowercase()) == name
                || r.task.to_ascii_lowercase() == name
            {
                tasks.push(r.ip);
            }
        }
        tasks.sort();
        tasks.dedup();
        (!tasks.is_empty()).then_some(tasks)
    }

    /// If `ip` is a service VIP on one of the container's networks: the service and its
    /// tasks' addresses there, in address order.
    pub fn vip_backends(&self, cid: ContainerId, ip: Ipv4Addr) -> Option<(String, Vec<Ipv4Addr>)> {
        let recs = self.endpoint_records(cid);
        let svc = recs.iter().find(|r| r.vip == Some(ip))?.service.clone();
        let mut ips: Vec<Ipv4Addr> = recs
            .iter()
            .filter(|r| r.vip == Some(ip))
            .map(|r| r.ip)
            .collect();
        ips.sort();
        ips.dedup();
        Some((svc, ips))
    }
}

impl Lab {
    /// A host sends an IP packet on its NIC, to the underlay host with that address.
    pub(crate) fn host_send_ip(&mut self, host: HostId, packet: Vec<u8>) {
        let Some(dst) = packet
            .get(16..20)
            .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        else {
            return;
        };
        let Some(to) = self.underlay.by_ip(dst) else {
            let at = self.host_name(host).to_string();
            self.trace.push(
                self.engine.now(),
                TraceEvent::StackDrop {
                    at,
                    reason: format!("no host has address {dst}"),
                },
            );
            return;
        };
        let eth = etherparse::Ethernet2Header {
            source: self.underlay.nic(host).mac.0,
            destination: self.underlay.nic(to).mac.0,
            ether_type: etherparse::EtherType::IPV4,
        };
        let mut frame = eth.to_bytes().to_vec();
        frame.extend_from_slice(&packet);
        self.transmit(host, frame);
    }
}

/// Open a TCP connection from `owner` to `dst`, send `request`, and wait until the
/// reply is complete (`framing`), the connection fails, or `timeout` passes. Returns how
/// it ended, the bytes received and where it really went (a VIP is balanced to a task).
pub(crate) async fn tcp_request(
    cx: &Cx<'_>,
    owner: Owner,
    dst: SocketAddrV4,
    request: Vec<u8>,
    framing: Framing,
    timeout: Duration,
) -> (ClientEnd, Vec<u8>, SocketAddrV4) {
    let opened = cx.lab().tcp_open(owner, dst, request, framing);
    let (i, real) = match opened {
        Ok(o) => o,
        Err((end, real)) => return (end, Vec::new(), real),
    };
    let deadline = cx.now() + timeout;
    cx.wait_until(deadline, |lab: &Lab| lab.tcp_ended(owner, i))
        .await;
    let (end, response) = cx.lab().tcp_close(owner, i);
    (end, response, real)
}

/// Resolve `name` from a container as its programs do: an A query over UDP from its
/// stack to the embedded DNS server at 127.0.0.11, answered by the node's engine.
/// `None` for NXDOMAIN (or no answer within 5 s).
pub async fn dns_resolve(cx: &Cx<'_>, cid: ContainerId, name: &str) -> Option<Vec<Ipv4Addr>> {
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Some(vec![ip]);
    }
    let q = cx.lab().dns_ask(cid, name)?;
    let deadline = cx.now() + Duration::from_secs(5);
    cx.wait_until(deadline, |lab: &Lab| {
        lab.containers[cid.0]
            .stack
            .as_ref()
            .is_none_or(|s| !s.query_pending(q))
    })
    .await;
    cx.lab().dns_answer(cid, q)
}

/// A container's or a host's network namespace, as its programs see it.
pub(crate) struct Ns<'c, 'a> {
    cx: &'c Cx<'a>,
    owner: Owner,
}

impl<'c, 'a> Ns<'c, 'a> {
    /// The namespace of `owner`, for a command running in `cx`.
    pub(crate) fn new(cx: &'c Cx<'a>, owner: Owner) -> Ns<'c, 'a> {
        Ns { cx, owner }
    }
}

impl crate::programs::Netns for Ns<'_, '_> {
    fn now(&self) -> Instant {
        self.cx.now()
    }

    async fn resolve(&mut self, name: &str) -> Option<Vec<Ipv4Addr>> {
        match self.owner {
            Owner::Container(c) => dns_resolve(self.cx, c, name).await,
            Owner::Host(h) => {
                let lab = self.cx.lab();
                let own = lab.underlay.nic(h).ip;
                let ip = match name {
                    // The node itself: Docker's iptables rules send a published port's
                    // traffic from the host's own processes to the ingress sandbox too.
                    "localhost" => Some(own),
                    _ => name
                        .parse::<Ipv4Addr>()
                        .ok()
                        .map(|ip| if ip.is_loopback() { own } else { ip })
                        .or_else(|| lab.underlay.by_name(name).map(|h| lab.underlay.nic(h).ip)),
                };
                ip.map(|ip| vec![ip])
            }
        }
    }

    fn own_ip(&self) -> Ipv4Addr {
        let lab = self.cx.lab();
        match self.owner {
            Owner::Container(c) => lab.containers[c.0].ip,
            Owner::Host(h) => lab.underlay.nic(h).ip,
        }
    }

    async fn request(
        &mut self,
        dst: SocketAddrV4,
        request: Vec<u8>,
        framing: Framing,
        timeout: Duration,
    ) -> (ClientEnd, Vec<u8>) {
        let (end, response, _) =
            tcp_request(self.cx, self.owner, dst, request, framing, timeout).await;
        (end, response)
    }

    fn interfaces(&self) -> Vec<crate::programs::Interface> {
        // `ip` runs in containers; a host's own `ip` is not simulated.
        let Owner::Container(cid) = self.owner else {
            return Vec::new();
        };
        let lab = self.cx.lab();
        lab.ifaces(cid)
            .into_iter()
            .map(|i| {
                let net = &lab.nets[i.net.0];
                crate::programs::Interface {
                    ip: i.ip,
                    prefix: net.subnet.prefix,
                    mac: i.mac,
                    mtu: if net.local_bridge() {
                        1500
                    } else {
                        OVERLAY_MTU
                    },
                }
            })
            .collect()
    }

    fn container_named_by_id(&self, id: &str) -> Option<String> {
        self.cx
            .lab()
            .containers
            .iter()
            .find(|c| !c.id.is_empty() && c.id.starts_with(id))
            .map(|c| c.name.clone())
    }

    fn write_file(&mut self, path: &str, bytes: Vec<u8>) -> Result<(), crate::fs::FsError> {
        let mut lab = self.cx.lab();
        match self.owner {
            Owner::Container(cid) => {
                let p = crate::fs::resolve("/", path);
                let mut fs = lab.containers[cid.0].fs.clone();
                fs.write(&p, bytes)?;
                lab.set_container_fs(cid, fs);
                Ok(())
            }
            Owner::Host(h) => {
                let p = crate::fs::resolve("/root", path);
                let mut fs = lab.host_fs(h).clone();
                fs.write(&p, bytes)?;
                lab.set_host_fs(h, fs);
                Ok(())
            }
        }
    }
}

/// A DNS wire name (`\x03web\x00`) as text.
fn wire_name(raw: &[u8]) -> String {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0 || usize::from(len) > tail.len() {
            break;
        }
        out.push(String::from_utf8_lossy(&tail[..usize::from(len)]).to_string());
        rest = &tail[usize::from(len)..];
    }
    out.join(".")
}

/// An IPv4/UDP packet with checksums.
fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Option<Vec<u8>> {
    let udp = etherparse::UdpHeader::with_ipv4_checksum(
        src.port(),
        dst.port(),
        &etherparse::Ipv4Header::new(
            (8 + payload.len()) as u16,
            64,
            etherparse::IpNumber::UDP,
            src.ip().octets(),
            dst.ip().octets(),
        )
        .ok()?,
        payload,
    )
    .ok()?;
    let mut ip = etherparse::Ipv4Header::new(
        (8 + payload.len()) as u16,
        64,
        etherparse::IpNumber::UDP,
        src.ip().octets(),
        dst.ip().octets(),
    )
    .ok()?;
    ip.header_checksum = ip.calc_header_checksum();
    let mut out = ip.to_bytes().to_vec();
    out.extend_from_slice(&udp.to_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::cx::drive;
    use crate::lab::{Lab, RestartPolicy, Subnet};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Two hosts, an overlay, a whoami and a redis on one, a client on the other.
    fn lab() -> (Lab, ContainerId, ContainerId) {
        let mut lab = Lab::new(1);
        let a = lab.add_host("a", Ipv4Addr::new(192, 168, 9, 1), 1500);
        let b = lab.add_host("b", Ipv4Addr::new(192, 168, 9, 2), 1500);
        let subnet = Subnet {
            base: Ipv4Addr::new(10, 9, 0, 0),
            prefix: 24,
        };
        let net = lab.add_overlay(
            "n",
            vxlan::Vni::new(4097).unwrap(),
            subnet,
            BTreeSet::from([a, b]),
        );
        let web = lab
            .run_container(a, "web", net, "traefik/whoami", "", RestartPolicy::No)
            .unwrap();
        lab.run_container(a, "db", net, "redis", "", RestartPolicy::No)
            .unwrap();
        let client = lab
            .run_container(b, "client", net, "alpine", "sleep 1d", RestartPolicy::No)
            .unwrap();
        (lab, web, client)
    }

    /// `GET /` from `client` to the whoami at 10.9.0.2.
    fn get_web(lab: &mut Lab, client: ContainerId) -> (ClientEnd, Vec<u8>) {
        let cx = Cx::new(lab);
        let get = tcp_request(
            &cx,
            Owner::Container(client),
            SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 2), 80),
            b"GET / HTTP/1.1\r\nHost: web\r\n\r\n".to_vec(),
            Framing::Http,
            Duration::from_secs(5),
        );
        let (end, response, _) = drive(&cx, get);
        (end, response)
    }

    #[test]
    fn a_client_fetches_across_the_overlay_and_resolves_over_udp() {
        let (mut lab, _, client) = lab();
        let resolve = |lab: &mut Lab, name: &str| {
            let cx = Cx::new(lab);
            drive(&cx, dns_resolve(&cx, client, name))
        };
        assert_eq!(
            resolve(&mut lab, "web"),
            Some(vec![Ipv4Addr::new(10, 9, 0, 2)])
        );
        assert_eq!(resolve(&mut lab, "nothing"), None);
        let (end, response) = get_web(&mut lab, client);
        assert_eq!(end, ClientEnd::Done);
        assert!(String::from_utf8_lossy(&response).contains("Hostname: "));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Arbitrary bytes as a container's frame, a container's outgoing IP packet
        /// (including to the embedded DNS server), a host's NIC frame and a stack's
        /// packet: nothing panics, and the lab still serves a request afterwards.
        #[test]
        fn garbage_anywhere_in_the_data_plane_is_dropped(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..8),
            dns_tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let (mut lab, web, client) = lab();
            let a = lab.underlay.by_name("a").unwrap();
            for f in &frames {
                lab.engine.schedule_in(Duration::ZERO, Event::Container { to: web, frame: f.clone() });
                lab.engine.schedule_in(Duration::ZERO, Event::Underlay { to: a, frame: f.clone() });
                lab.stack_input(Owner::Container(client), f.clone());
                lab.send_ip(client, f.clone());
            }
            // A UDP packet to 127.0.0.11:53 whose DNS part is garbage.
            let mut dns = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 11];
            dns.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 0, 0, 0]);
            dns.extend_from_slice(&dns_tail);
            lab.send_ip(client, dns);
            let until = lab.now() + Duration::from_secs(2);
            lab.run_until(until);
            prop_assert_eq!(get_web(&mut lab, client).0, ClientEnd::Done);
        }

        /// The record format survives any service, task and ports.
        #[test]
        fn endpoint_records_round_trip(
            service in "[a-z][a-z0-9-]{0,20}",
            task in "[a-z][a-z0-9.]{0,30}",
            ports in proptest::collection::vec((1u16.., 1u16..), 0..4),
            vip in proptest::option::of(any::<u32>()),
            ip in any::<u32>(),
        ) {
            let r = EndpointRecord {
                service,
                vip: vip.map(Ipv4Addr::from),
                ip: Ipv4Addr::from(ip),
                task,
                ports,
                scheduler: "sh".into(),
            };
            prop_assert_eq!(EndpointRecord::decode(r.encode().as_bytes()), Some(r));
        }

        /// Decoding never panics on arbitrary bytes.
        #[test]
        fn endpoint_records_reject_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = EndpointRecord::decode(&bytes);
        }
    }
}
