//! The ingress routing mesh's core: a port published in ingress mode answers on every
//! node.
//!
//! Each swarm node has an ingress sandbox with an address on the `ingress` overlay
//! (VNI 4096). A TCP connection to a published port on the node's underlay address is
//! balanced there, as IPVS does, over the tasks listed for that port: the packet is
//! DNATed to the task's ingress address and SNATed to the sandbox's, then carried over
//! VXLAN; the reply comes back to the sandbox and is un-NATed through the connection
//! table, so a flow stays on its backend.
//!
//! Ports published in host mode go straight to the local task's container (through the
//! host, as `docker_gwbridge` does), and nowhere else. A host with nothing on a port
//! answers a SYN with a reset.
//!
//! No I/O: packets come in with the time, and what to send comes out as a `Verdict`.
//! The node's router looks the backends up (NetworkDB's `endpoint_table`, the agent's
//! tasks) and puts the verdicts on the wire. Every lookup of a packet's flow is an index
//! lookup, not a scan of the table.

use crate::ids::{ContainerId, NetId};
use crate::time::{Duration, Instant};
use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, TcpHeader};
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use vxlan::{MacAddr, Vni};

/// IPVS schedulers the mesh offers (a service chooses with the `swarmlab.lb` label).
pub const SCHEDULERS: &[&str] = &["rr", "wrr", "lc", "sh"];

/// The ingress sandbox of a node.
#[derive(Clone, Copy, Debug)]
pub struct Sandbox {
    /// The lab overlay `ingress`.
    pub net: NetId,
    /// Its VNI.
    pub vni: Vni,
    /// Its address there.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: MacAddr,
}

/// Where a tracked connection goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// A task's ingress address, through the sandbox (SNAT to `nat_port`).
    Ingress { nat_port: u16 },
    /// A local container (host mode), no SNAT.
    Local(ContainerId),
}

/// A tracked connection.
#[derive(Clone, Debug)]
struct Flow {
    client: SocketAddrV4,
    published: u16,
    backend: SocketAddrV4,
    via: Backend,
    /// The sequence number of the client's FIN, once sent.
    fin_in: Option<u32>,
    /// The sequence number of the backend's FIN, once sent.
    fin_out: Option<u32>,
    /// Whether each side's FIN has been acknowledged (client's, backend's).
    fin_acked: (bool, bool),
    /// The last packet either way.
    last_seen: Instant,
}

/// How long a closed connection counts as inactive (IPVS's TIME_WAIT: 2 minutes).
const INACTIVE_FOR: Duration = Duration::from_secs(120);
/// How long an established connection may stay idle (IPVS's TCP timeout: 15 minutes).
const IDLE_FOR: Duration = Duration::from_secs(900);
/// How often the table is swept for idle connections.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The backends a new connection to a published port may go to, as the node's router
/// found them.
#[derive(Clone, Debug, Default)]
pub struct Backends {
    /// A local task publishing the port in host mode: its container, its address, the
    /// target port and its name (host mode wins over ingress).
    pub host_mode: Option<(ContainerId, Ipv4Addr, u16, String)>,
    /// Tasks publishing it in ingress mode: (ingress address, target port), in order.
    pub ingress: Vec<SocketAddrV4>,
    /// The IPVS scheduler of the service.
    pub scheduler: String,
}

/// What to do with a packet the mesh took.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// An Ethernet frame for a task, from the sandbox, on the ingress overlay `vni`.
    ToTask {
        /// The overlay.
        vni: Vni,
        /// The frame.
        frame: Vec<u8>,
    },
    /// An IP packet for a local container (host mode).
    ToContainer {
        /// The container.
        to: ContainerId,
        /// The packet, DNATed.
        packet: Vec<u8>,
    },
    /// An IP packet back to the client, from the node's address.
    ToClient(Vec<u8>),
}

/// A node's mesh state: its sandbox and connection table.
#[derive(Debug, Default)]
pub struct Mesh {
    /// The ingress sandbox, once the node has one.
    pub sandbox: Option<Sandbox>,
    /// Open connections, by id.
    flows: BTreeMap<u64, Flow>,
    next_flow: u64,
    /// Indexes: (client, published port), (backend, NAT port), (container, client).
    by_client: BTreeMap<(SocketAddrV4, u16), u64>,
    by_nat: BTreeMap<(SocketAddrV4, u16), u64>,
    by_local: BTreeMap<(ContainerId, SocketAddrV4, SocketAddrV4), u64>,
    /// Open connections per backend (IPVS's active count).
    active: BTreeMap<SocketAddrV4, usize>,
    /// Recently closed connections per backend (IPVS's inactive count), by close time.
    inactive: BTreeMap<SocketAddrV4, VecDeque<Instant>>,
    /// Round-robin positions, by published port.
    rr: BTreeMap<u16, u64>,
    swept: Option<Instant>,
}

impl Mesh {
    /// Open connections.
    pub fn open_flows(&self) -> usize {
        self.flows.len()
    }

    /// The backend of the connection `client` opened to the published `port`.
    pub fn backend_for(&self, client: SocketAddrV4, port: u16) -> Option<SocketAddrV4> {
        let id = self.by_client.get(&(client, port))?;
        self.flows.get(id).map(|f| f.backend)
    }

    fn insert(&mut self, f: Flow) -> u64 {
        let id = self.next_flow;
        self.next_flow += 1;
        self.by_client.insert((f.client, f.published), id);
        match f.via {
            Backend::Ingress { nat_port } => {
                self.by_nat.insert((f.backend, nat_port), id);
            }
            Backend::Local(cid) => {
                self.by_local.insert((cid, f.backend, f.client), id);
            }
        }
        *self.active.entry(f.backend).or_default() += 1;
        self.flows.insert(id, f);
        id
    }

    fn remove(&mut self, id: u64) -> Option<Flow> {
        let f = self.flows.remove(&id)?;
        self.by_client.remove(&(f.client, f.published));
        match f.via {
            Backend::Ingress { nat_port } => self.by_nat.remove(&(f.backend, nat_port)),
            Backend::Local(cid) => self.by_local.remove(&(cid, f.backend, f.client)),
        };
        if let Some(n) = self.active.get_mut(&f.backend) {
            *n -= 1;
            if *n == 0 {
                self.active.remove(&f.backend);
            }
        }
        Some(f)
    }

    /// Connection `id` closed: it leaves the table and counts as inactive for a while.
    fn close(&mut self, id: u64, now: Instant) {
        if let Some(f) = self.remove(id) {
            self.inactive.entry(f.backend).or_default().push_back(now);
        }
    }

    /// Forget inactive connections older than IPVS keeps them, and idle open ones; at
    /// most once a second.
    fn expire(&mut self, now: Instant) {
        if self.swept.is_some_and(|t| now.since(t) < SWEEP_EVERY) {
            return;
        }
        self.swept = Some(now);
        for q in self.inactive.values_mut() {
            while q.front().is_some_and(|t| now.since(*t) >= INACTIVE_FOR) {
                q.pop_front();
            }
        }
        self.inactive.retain(|_, q| !q.is_empty());
        let idle: Vec<u64> = self
            .flows
            .iter()
            .filter(|(_, f)| now.since(f.last_seen) >= IDLE_FOR)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.remove(id);
        }
    }

    /// The ingress tasks listed now: connections to any other task through the sandbox
    /// expire at once (IPVS's `expire_nodest_conn`, which Docker's ingress sets).
    /// Host-mode connections are left alone.
    pub fn keep_backends(&mut self, live: &std::collections::BTreeSet<Ipv4Addr>) {
        let gone: Vec<u64> = self
            .flows
            .iter()
            .filter(|(_, f)| {
                matches!(f.via, Backend::Ingress { .. }) && !live.contains(f.backend.ip())
            })
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove(id);
        }
    }

    /// A packet from a client to the node's published `port`, on a connection the mesh
    /// already tracks: where it goes. `None` when it is not one of the mesh's.
    pub fn from_client(&mut self, now: Instant, packet: &[u8]) -> Option<Verdict> {
        let t = parse_tcp(packet)?;
        let id = *self.by_client.get(&(t.src, t.dst.port()))?;
        self.forward(now, id, &t, packet)
    }

    /// A SYN from a client to a published port, with the backends the router found:
    /// opens a connection and says where the SYN goes, and (for the trace) what was
    /// balanced. `None` when no backend can take it.
    pub fn open(
        &mut self,
        now: Instant,
        node_ip: Ipv4Addr,
        packet: &[u8],
        backends: &Backends,
    ) -> Option<(Verdict, String)> {
        let t = parse_tcp(packet)?;
        let port = t.dst.port();
        self.expire(now);
        if let Some((cid, ip, target, name)) = &backends.host_mode {
            let id = self.insert(Flow {
                client: t.src,
                published: port,
                backend: SocketAddrV4::new(*ip, *target),
                via: Backend::Local(*cid),
                fin_in: None,
                fin_out: None,
                fin_acked: (false, false),
                last_seen: now,
            });
            let what = format!("{}:{port} (host mode) from {} -> {name}", t.dst, t.src);
            return Some((self.forward(now, id, &t, packet)?, what));
        }
        let sandbox = self.sandbox?;
        let list = &backends.ingress;
        if list.is_empty() {
            return None;
        }
        let sched = backends.scheduler.as_str();
        let pick = match sched {
            "sh" => list[(fnv(*t.src.ip()) % list.len() as u64) as usize],
            // IPVS's least-connection overhead: active * 256 + inactive.
            "lc" => *list
                .iter()
                .min_by_key(|b| {
                    let active = self.active.get(b).copied().unwrap_or(0);
                    let inactive = self.inactive.get(b).map_or(0, |q| q.len());
                    active * 256 + inactive
                })
                .unwrap_or(&list[0]),
            // rr, and wrr with Docker's weight of 1 for every task.
            _ => {
                let k = self.rr.entry(port).or_insert(0);
                let b = list[(*k % list.len() as u64) as usize];
                *k += 1;
                b
            }
        };
        // Masquerading keeps the client's port unless the sandbox already uses it there.
        let mut nat_port = t.src.port();
        let mut tries = 0;
        while self.by_nat.contains_key(&(pick, nat_port)) {
            tries += 1;
            if tries > 64_512 {
                return None; // every port is taken towards this task
            }
            nat_port = nat_port.wrapping_add(1).max(1024);
        }
        let id = self.insert(Flow {
            client: t.src,
            published: port,
            backend: pick,
            via: Backend::Ingress { nat_port },
            fin_in: None,
            fin_out: None,
            fin_acked: (false, false),
            last_seen: now,
        });
        let what = format!(
            "{node_ip}:{port} from {} -> task {pick} ({sched}, SNAT {}:{nat_port})",
            t.src, sandbox.ip
        );
        Some((self.forward(now, id, &t, packet)?, what))
    }

    /// Client to backend, through connection `id`.
    fn forward(&mut self, now: Instant, id: u64, t: &Tcp, packet: &[u8]) -> Option<Verdict> {
        let f = self.flows.get_mut(&id)?;
        if t.fin {
            f.fin_in = Some(t.seq.wrapping_add(t.data_len as u32));
        }
        f.last_seen = now;
        if t.ack && f.fin_out.is_some_and(|fin| t.ack_no == fin.wrapping_add(1)) {
            f.fin_acked.1 = true;
        }
        // Closed once both FINs are acknowledged (or on a reset).
        let closes = t.rst || f.fin_acked == (true, true);
        let (backend, via) = (f.backend, f.via);
        if closes {
            self.close(id, now);
        }
        match via {
            Backend::Local(cid) => Some(Verdict::ToContainer {
                to: cid,
                packet: rewrite(packet, t.src, backend)?,
            }),
            Backend::Ingress { nat_port } => {
                let sb = self.sandbox?;
                let p = rewrite(packet, SocketAddrV4::new(sb.ip, nat_port), backend)?;
                let o = backend.ip().octets();
                let eth = Ethernet2Header {
                    source: sb.mac.0,
                    // Docker derives a container's MAC from its address.
                    destination: [0x02, 0x42, o[0], o[1], o[2], o[3]],
                    ether_type: EtherType::IPV4,
                };
                let mut frame = Vec::with_capacity(Ethernet2Header::LEN + p.len());
                frame.extend_from_slice(&eth.to_bytes());
                frame.extend_from_slice(&p);
                Some(Verdict::ToTask { vni: sb.vni, frame })
            }
        }
    }

    /// A task's reply reaching the sandbox (an IP packet): un-NATed back to its client
    /// from the node's address. `None` when it belongs to no connection.
    pub fn from_task(&mut self, now: Instant, node_ip: Ipv4Addr, packet: &[u8]) -> Option<Vec<u8>> {
        let t = parse_tcp(packet)?;
        let id = *self.by_nat.get(&(t.src, t.dst.port()))?;
        self.reply(now, node_ip, id, &t, packet)
    }

    /// A host-mode container's reply: un-NATed back to its client. `None` when it
    /// belongs to no connection.
    pub fn from_local(
        &mut self,
        now: Instant,
        node_ip: Ipv4Addr,
        from: ContainerId,
        packet: &[u8],
    ) -> Option<Vec<u8>> {
        let t = parse_tcp(packet)?;
        let id = *self.by_local.get(&(from, t.src, t.dst))?;
        self.reply(now, node_ip, id, &t, packet)
    }

    fn reply(
        &mut self,
        now: Instant,
        node_ip: Ipv4Addr,
        id: u64,
        t: &Tcp,
        packet: &[u8],
    ) -> Option<Vec<u8>> {
        let f = self.flows.get_mut(&id)?;
        if t.fin {
            f.fin_out = Some(t.seq.wrapping_add(t.data_len as u32));
        }
        f.last_seen = now;
        let (client, published) = (f.client, f.published);
        if t.ack && f.fin_in.is_some_and(|fin| t.ack_no == fin.wrapping_add(1)) {
            f.fin_acked.0 = true;
        }
        if t.rst || f.fin_acked == (true, true) {
            self.close(id, now);
        }
        rewrite(packet, SocketAddrV4::new(node_ip, published), client)
    }
}

/// The addresses and ports of a TCP packet.
struct Tcp {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    seq: u32,
    ack_no: u32,
    data_len: usize,
}

fn parse_tcp(packet: &[u8]) -> Option<Tcp> {
    let (ip, _) = Ipv4Header::from_slice(packet).ok()?;
    if ip.protocol != IpNumber::TCP {
        return None;
    }
    let total = usize::from(ip.total_len).min(packet.len());
    let (tcp, data) = TcpHeader::from_slice(packet.get(ip.header_len()..total)?).ok()?;
    Some(Tcp {
        src: SocketAddrV4::new(ip.source.into(), tcp.source_port),
        dst: SocketAddrV4::new(ip.destination.into(), tcp.destination_port),
        syn: tcp.syn,
        ack: tcp.ack,
        fin: tcp.fin,
        rst: tcp.rst,
        seq: tcp.sequence_number,
        ack_no: tcp.acknowledgment_number,
        data_len: data.len(),
    })
}

/// The destination port of a TCP SYN that opens a connection (no ACK), if it is one.
pub fn opening_port(packet: &[u8]) -> Option<u16> {
    parse_tcp(packet)
        .filter(|t| t.syn && !t.ack)
        .map(|t| t.dst.port())
}

/// The TCP source and destination of a packet, if it is TCP.
pub fn tcp_ends(packet: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4)> {
    parse_tcp(packet).map(|t| (t.src, t.dst))
}

/// The packet with new addresses and ports, checksums recomputed: the mesh's NAT of one
/// TCP packet (DNAT towards a task, SNAT to the sandbox, and back).
pub fn rewrite(packet: &[u8], src: SocketAddrV4, dst: SocketAddrV4) -> Option<Vec<u8>> {
    let (mut ip, _) = Ipv4Header::from_slice(packet).ok()?;
    let total = usize::from(ip.total_len).min(packet.len());
    let (mut tcp, data) = TcpHeader::from_slice(packet.get(ip.header_len()..total)?).ok()?;
    ip.source = src.ip().octets();
    ip.destination = dst.ip().octets();
    ip.header_checksum = ip.calc_header_checksum();
    tcp.source_port = src.port();
    tcp.destination_port = dst.port();
    tcp.checksum = tcp.calc_checksum_ipv4(&ip, data).ok()?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&ip.to_bytes());
    out.extend_from_slice(&tcp.to_bytes());
    out.extend_from_slice(data);
    Some(out)
}

/// The reset a host with no listener sends back for `packet` (none for a reset).
pub fn reset_for(packet: &[u8]) -> Option<Vec<u8>> {
    let t = parse_tcp(packet)?;
    if t.rst {
        return None;
    }
    let (seq, ack_no, ack) = if t.ack {
        (t.ack_no, 0, false)
    } else {
        let len = t.data_len as u32 + u32::from(t.syn) + u32::from(t.fin);
        (0, t.seq.wrapping_add(len), true)
    };
    let mut tcp = TcpHeader::new(t.dst.port(), t.src.port(), seq, 0);
    tcp.rst = true;
    tcp.ack = ack;
    tcp.acknowledgment_number = ack_no;
    let ip = Ipv4Header::new(
        tcp.header_len() as u16,
        64,
        IpNumber::TCP,
        t.dst.ip().octets(),
        t.src.ip().octets(),
    )
    .ok()?;
    let mut ip = ip;
    ip.header_checksum = ip.calc_header_checksum();
    tcp.checksum = tcp.calc_checksum_ipv4(&ip, &[]).ok()?;
    let mut out = ip.to_bytes().to_vec();
    out.extend_from_slice(&tcp.to_bytes());
    Some(out)
}

fn fnv(ip: Ipv4Addr) -> u64 {
    ip.octets().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn a(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    fn tcp(
        src: SocketAddrV4,
        dst: SocketAddrV4,
        f: impl Fn(etherparse::PacketBuilderStep<TcpHeader>) -> etherparse::PacketBuilderStep<TcpHeader>,
    ) -> Vec<u8> {
        let b = PacketBuilder::ipv4(src.ip().octets(), dst.ip().octets(), 64).tcp(
            src.port(),
            dst.port(),
            100,
            1000,
        );
        let b = f(b);
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    fn mesh() -> Mesh {
        Mesh {
            sandbox: Some(Sandbox {
                net: NetId(0),
                vni: Vni::new(4096).unwrap(),
                ip: Ipv4Addr::new(10, 0, 0, 2),
                mac: MacAddr([2, 0x42, 10, 0, 0, 2]),
            }),
            ..Default::default()
        }
    }

    fn backends() -> Backends {
        Backends {
            host_mode: None,
            ingress: vec![a("10.0.0.5:80"), a("10.0.0.6:80")],
            scheduler: "rr".into(),
        }
    }

    fn dst_of(v: &Verdict) -> SocketAddrV4 {
        match v {
            Verdict::ToTask { frame, .. } => tcp_ends(&frame[14..]).unwrap().1,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn round_robin_spreads_new_connections_and_a_flow_stays_on_its_task() {
        let mut m = mesh();
        let node = Ipv4Addr::new(192, 168, 1, 1);
        let t0 = Instant(0);
        let svc = a("192.168.1.1:8080");
        let c1 = a("192.168.1.9:40000");
        let c2 = a("192.168.1.9:40001");
        let (v1, what) = m
            .open(t0, node, &tcp(c1, svc, |b| b.syn()), &backends())
            .unwrap();
        assert!(what.contains("rr, SNAT 10.0.0.2:40000"), "{what}");
        let (v2, _) = m
            .open(t0, node, &tcp(c2, svc, |b| b.syn()), &backends())
            .unwrap();
        assert_eq!(
            (dst_of(&v1), dst_of(&v2)),
            (a("10.0.0.5:80"), a("10.0.0.6:80"))
        );
        // c1's next packet follows its flow; a stranger's does not belong to any.
        let next = m.from_client(t0, &tcp(c1, svc, |b| b.ack(1))).unwrap();
        assert_eq!(dst_of(&next), a("10.0.0.5:80"));
        assert!(m
            .from_client(t0, &tcp(a("192.168.1.7:1"), svc, |b| b.ack(1)))
            .is_none());
        // The task's answer, to the sandbox's NAT port, goes back to c1 from the node.
        let back = m
            .from_task(
                t0,
                node,
                &tcp(a("10.0.0.5:80"), a("10.0.0.2:40000"), |b| b.syn().ack(101)),
            )
            .unwrap();
        assert_eq!(tcp_ends(&back).unwrap(), (svc, c1));
        assert_eq!(m.open_flows(), 2);
    }

    #[test]
    fn a_reset_closes_the_flow_and_its_ports_are_free_again() {
        let mut m = mesh();
        let node = Ipv4Addr::new(192, 168, 1, 1);
        let svc = a("192.168.1.1:8080");
        let c = a("192.168.1.9:40000");
        let one = Backends {
            ingress: vec![a("10.0.0.5:80")],
            ..backends()
        };
        m.open(Instant(0), node, &tcp(c, svc, |b| b.syn()), &one)
            .unwrap();
        // Another client with the same port towards the same task: the NAT port moves.
        let other = a("192.168.1.8:40000");
        let (_, what) = m
            .open(Instant(0), node, &tcp(other, svc, |b| b.syn()), &one)
            .unwrap();
        assert!(what.contains("SNAT 10.0.0.2:40001"), "{what}");
        m.from_client(Instant(1), &tcp(c, svc, |b| b.rst()))
            .unwrap();
        assert_eq!(m.open_flows(), 1);
        assert!(m
            .from_client(Instant(2), &tcp(c, svc, |b| b.ack(1)))
            .is_none());
        assert!(
            reset_for(&tcp(c, svc, |b| b.rst())).is_none(),
            "no reset for a reset"
        );
    }
}
