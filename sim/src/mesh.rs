//! The ingress routing mesh: a port published in ingress mode answers on every node.
//!
//! Each swarm node has an ingress sandbox with an address on the `ingress` overlay
//! (VNI 4096). A TCP connection to a published port on the node's underlay address is
//! balanced there, as IPVS does, over the tasks that NetworkDB's `endpoint_table` (ingress
//! network) lists for that port: the packet is DNATed to the task's ingress address and
//! SNATed to the sandbox's, then carried over VXLAN; the reply comes back to the sandbox
//! and is un-NATed through the connection table, so a flow stays on its backend.
//!
//! Ports published in host mode go straight to the local task's container (through the
//! host, as `docker_gwbridge` does), and nowhere else. A host with nothing on a port
//! answers a SYN with a reset.

use crate::lab::{ContainerId, Lab, NetId};
use crate::time::{Duration, Instant};
use crate::trace::TraceEvent;
use crate::traffic::{EndpointRecord, Owner, ENDPOINT_TABLE};
use crate::underlay::HostId;
use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, TcpHeader};
use std::collections::BTreeMap;
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

/// A node's mesh state: its sandbox and connection table.
#[derive(Debug, Default)]
pub struct Mesh {
    /// The ingress sandbox, once the node has one.
    pub sandbox: Option<Sandbox>,
    /// Open connections.
    flows: Vec<Flow>,
    /// Recently closed connections per backend (IPVS's inactive count), by close time.
    inactive: BTreeMap<SocketAddrV4, std::collections::VecDeque<Instant>>,
    /// Round-robin positions, by published port.
    rr: BTreeMap<u16, u64>,
}

impl Mesh {
    /// Connection `i` closed: it leaves the table and counts as inactive for a while.
    fn close(&mut self, i: usize, now: Instant) {
        let f = self.flows.swap_remove(i);
        self.inactive.entry(f.backend).or_default().push_back(now);
    }

    /// Forget inactive connections older than IPVS keeps them, and idle open ones.
    fn expire(&mut self, now: Instant) {
        for q in self.inactive.values_mut() {
            while q.front().is_some_and(|t| now.since(*t) >= INACTIVE_FOR) {
                q.pop_front();
            }
        }
        self.inactive.retain(|_, q| !q.is_empty());
        self.flows.retain(|f| now.since(f.last_seen) < IDLE_FOR);
    }

    /// Open connections.
    pub fn open_flows(&self) -> usize {
        self.flows.len()
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

/// The reset a host with no listener sends back.
fn reset_for(t: &Tcp) -> Option<Vec<u8>> {
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

impl Lab {
    /// Set up (or keep) a node's ingress sandbox at `ip` on the ingress network, and publish
    /// it in NetworkDB's peer table so that every node's VTEP can reach it.
    pub(crate) fn ingress_sandbox(
        &mut self,
        host: HostId,
        net: &crate::swarm::store::Network,
        ip: Ipv4Addr,
    ) {
        if self.hosts[host.0].mesh.sandbox.is_some_and(|s| s.ip == ip) {
            return;
        }
        let Some(nid) = self.swarm_overlay(host, net) else {
            return;
        };
        let o = ip.octets();
        let mac = MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]]);
        self.nets[nid.0].used_insert(ip);
        let vni = self.nets[nid.0].vni;
        self.hosts[host.0].mesh.sandbox = Some(Sandbox {
            net: nid,
            vni,
            ip,
            mac,
        });
        let vtep = self.underlay.nic(host).ip;
        let now = std::time::Duration::from_nanos(self.now().0);
        let db = &mut self.hosts[host.0].gossip.db;
        if !db.my_networks().any(|n| *n == net.name) {
            db.join_network(&net.name);
        }
        let value = format!("{ip} {mac} {vtep}");
        let key = format!("ingress-sbox.{}", self.host_name(host));
        let db = &mut self.hosts[host.0].gossip.db;
        db.put(
            now,
            &net.name,
            crate::swarm::overlay::PEER_TABLE,
            &key,
            value.as_bytes(),
        );
        self.gossip_flush(host);
        self.swarm_note(host, format!("ingress sandbox up at {ip} (ingress-sbox)"));
    }

    /// A TCP packet arrives at a host's own address.
    pub(crate) fn host_tcp(&mut self, host: HostId, packet: Vec<u8>) {
        let Some(t) = parse_tcp(&packet) else {
            return;
        };
        let port = t.dst.port();
        let existing = self.hosts[host.0]
            .mesh
            .flows
            .iter()
            .position(|f| f.client == t.src && f.published == port);
        if let Some(i) = existing {
            return self.mesh_forward(host, i, &t, &packet);
        }
        // A host client's own connection (its replies come back here).
        let own = self.hosts[host.0]
            .stack
            .as_ref()
            .is_some_and(|s| s.owns(port, t.src));
        if own {
            return self.stack_input(Owner::Host(host), packet);
        }
        if t.syn && !t.ack {
            if let Some(i) = self.mesh_new_flow(host, &t) {
                return self.mesh_forward(host, i, &t, &packet);
            }
        }
        if !t.rst {
            if let Some(rst) = reset_for(&t) {
                self.host_send_or_loop(host, rst);
            }
        }
    }

    /// The ingress records this node knows for a published port: (task address, target
    /// port), in address order, and the scheduler.
    fn ingress_backends(&self, host: HostId, port: u16) -> (Vec<SocketAddrV4>, String) {
        let db = &self.hosts[host.0].gossip.db;
        let mut out = Vec::new();
        let mut sched = "rr".to_string();
        for (_, _, v) in db.entries("ingress", ENDPOINT_TABLE) {
            let Some(r) = EndpointRecord::decode(&v) else {
                continue;
            };
            if let Some((_, target)) = r.ports.iter().find(|(p, _)| *p == port) {
                out.push(SocketAddrV4::new(r.ip, *target));
                sched = r.scheduler.clone();
            }
        }
        out.sort();
        out.dedup();
        (out, sched)
    }

    /// A host-mode port: the local task container publishing it, and its target port.
    fn host_mode_backend(&self, host: HostId, port: u16) -> Option<(ContainerId, u16)> {
        let agent = self.hosts[host.0].swarm.agent.as_ref()?;
        agent.tasks.values().find_map(|t| {
            let cid = t.container?;
            let c = &self.containers[cid.0];
            if !c.running {
                return None;
            }
            t.endpoint
                .host_ports
                .iter()
                .find(|(p, _)| *p == port)
                .map(|(_, target)| (cid, *target))
        })
    }

    fn mesh_new_flow(&mut self, host: HostId, t: &Tcp) -> Option<usize> {
        let port = t.dst.port();
        let name = self.host_name(host).to_string();
        if let Some((cid, target)) = self.host_mode_backend(host, port) {
            let ip = self.containers[cid.0].ip;
            let now = self.now();
            let m = &mut self.hosts[host.0].mesh;
            m.expire(now);
            m.flows.push(Flow {
                client: t.src,
                published: port,
                backend: SocketAddrV4::new(ip, target),
                via: Backend::Local(cid),
                fin_in: None,
                fin_out: None,
                fin_acked: (false, false),
                last_seen: now,
            });
            let what = format!(
                "{}:{port} (host mode) from {} -> {}",
                t.dst, t.src, self.containers[cid.0].name
            );
            self.record_balance(name, what);
            return Some(self.hosts[host.0].mesh.flows.len() - 1);
        }
        let sandbox = self.hosts[host.0].mesh.sandbox?;
        let (backends, sched) = self.ingress_backends(host, port);
        if backends.is_empty() {
            return None;
        }
        let now = self.now();
        let m = &mut self.hosts[host.0].mesh;
        m.expire(now);
        let pick = match sched.as_str() {
            "sh" => backends[(fnv(*t.src.ip()) % backends.len() as u64) as usize],
            // IPVS's least-connection overhead: active * 256 + inactive.
            "lc" => *backends
                .iter()
                .min_by_key(|b| {
                    let active = m.flows.iter().filter(|f| f.backend == **b).count();
                    let inactive = m.inactive.get(b).map_or(0, |q| q.len());
                    active * 256 + inactive
                })
                .unwrap_or(&backends[0]),
            // rr, and wrr with Docker's weight of 1 for every task.
            _ => {
                let k = m.rr.entry(port).or_insert(0);
                let b = backends[(*k % backends.len() as u64) as usize];
                *k += 1;
                b
            }
        };
        // Masquerading keeps the client's port unless the sandbox already uses it there.
        let mut nat_port = t.src.port();
        let mut tries = 0;
        while m
            .flows
            .iter()
            .any(|f| f.via == Backend::Ingress { nat_port } && f.backend == pick)
        {
            tries += 1;
            if tries > 64_512 {
                return None; // every port is taken towards this task
            }
            nat_port = nat_port.wrapping_add(1).max(1024);
        }
        m.flows.push(Flow {
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
            "{}:{port} from {} -> task {pick} ({sched}, SNAT {}:{nat_port})",
            self.underlay.nic(host).ip,
            t.src,
            sandbox.ip
        );
        self.record_balance(name, what);
        Some(self.hosts[host.0].mesh.flows.len() - 1)
    }

    fn record_balance(&mut self, at: String, what: String) {
        let now = self.now();
        self.trace.push(now, TraceEvent::Balance { at, what });
    }

    /// Client to backend, through flow `i`.
    fn mesh_forward(&mut self, host: HostId, i: usize, t: &Tcp, packet: &[u8]) {
        let now = self.now();
        let f = &mut self.hosts[host.0].mesh.flows[i];
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
            self.hosts[host.0].mesh.close(i, now);
        }
        match via {
            Backend::Local(cid) => {
                let Some(p) = rewrite(packet, t.src, backend) else {
                    return;
                };
                if self.containers[cid.0].running {
                    self.stack_input(Owner::Container(cid), p);
                }
            }
            Backend::Ingress { nat_port } => {
                let Some(sb) = self.hosts[host.0].mesh.sandbox else {
                    return;
                };
                let Some(p) = rewrite(packet, SocketAddrV4::new(sb.ip, nat_port), backend) else {
                    return;
                };
                let o = backend.ip().octets();
                let eth = Ethernet2Header {
                    source: sb.mac.0,
                    destination: [0x02, 0x42, o[0], o[1], o[2], o[3]],
                    ether_type: EtherType::IPV4,
                };
                let mut frame = eth.to_bytes().to_vec();
                frame.extend_from_slice(&p);
                self.bridge_or_tunnel(host, sb.vni, frame, None);
            }
        }
    }

    /// A frame on the ingress overlay for this node's sandbox: answer ARP, or send a
    /// backend's reply back to its client.
    pub(crate) fn sandbox_input(&mut self, host: HostId, frame: &[u8]) {
        let Some(sb) = self.hosts[host.0].mesh.sandbox else {
            return;
        };
        if let Some(reply) = crate::stack::reply_to(sb.ip, sb.mac, frame) {
            self.bridge_or_tunnel(host, sb.vni, reply, None);
            return;
        }
        let Some(payload) = frame.get(14..) else {
            return;
        };
        let Some(t) = parse_tcp(payload) else {
            return;
        };
        let m = &self.hosts[host.0].mesh;
        let Some(i) = m.flows.iter().position(|f| {
            f.backend == t.src
                && f.via
                    == Backend::Ingress {
                        nat_port: t.dst.port(),
                    }
        }) else {
            return;
        };
        self.mesh_reply(host, i, &t, payload);
    }

    /// A reply from a host-mode container (sent through the host): un-NAT it.
    pub(crate) fn host_mode_reply(&mut self, from: ContainerId, packet: &[u8]) -> bool {
        let host = self.containers[from.0].host;
        let Some(t) = parse_tcp(packet) else {
            return false;
        };
        let Some(i) =
            self.hosts[host.0].mesh.flows.iter().position(|f| {
                f.via == Backend::Local(from) && f.backend == t.src && f.client == t.dst
            })
        else {
            return false;
        };
        self.mesh_reply(host, i, &t, packet);
        true
    }

    fn mesh_reply(&mut self, host: HostId, i: usize, t: &Tcp, packet: &[u8]) {
        let node_ip = self.underlay.nic(host).ip;
        let now = self.now();
        let f = &mut self.hosts[host.0].mesh.flows[i];
        if t.fin {
            f.fin_out = Some(t.seq.wrapping_add(t.data_len as u32));
        }
        f.last_seen = now;
        let (client, published) = (f.client, f.published);
        if t.ack && f.fin_in.is_some_and(|fin| t.ack_no == fin.wrapping_add(1)) {
            f.fin_acked.0 = true;
        }
        let closes = t.rst || f.fin_acked == (true, true);
        if closes {
            self.hosts[host.0].mesh.close(i, now);
        }
        if let Some(p) = rewrite(packet, SocketAddrV4::new(node_ip, published), client) {
            self.host_send_or_loop(host, p);
        }
    }

    /// Send from a host's own address: to its own stack if the client is itself.
    fn host_send_or_loop(&mut self, host: HostId, packet: Vec<u8>) {
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        if dst == self.underlay.nic(host).ip {
            self.stack_input(Owner::Host(host), packet);
        } else {
            self.host_send_ip(host, packet);
        }
    }
}
