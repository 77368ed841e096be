//! The lab: hosts with their VTEPs and bridges, overlays, containers and their network
//! stacks, all driven by the engine in virtual time.
//!
//! A packet's path: container -> host bridge -> local container, or `vxlan::Vtep`
//! encapsulation -> underlay (MTU, partitions, loss, latency, firewall, pcap taps) ->
//! remote host -> `Vtep` decapsulation -> bridge -> container. Everything observable goes
//! into the trace. The scenario language lives in `scenario`; this module has no syntax.

use crate::engine::{Engine, Rng};
use crate::ping::{Ping, PingId, PingOptions};
use crate::time::{Duration, Instant};
use crate::trace::{Trace, TraceEvent};
use crate::underlay::{HostId, LinkParams, Underlay};
use etherparse::{
    ArpOperation, ArpPacketSlice, EtherType, Ethernet2Header, IcmpEchoHeader, Icmpv4Header,
    Icmpv4Slice, Icmpv4Type, IpNumber, Ipv4Header, Ipv4HeaderSlice,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use vxlan::{Forward, MacAddr, Vni, Vtep, OUTER_LEN};

/// The capacity of a pooled frame buffer: a 1500-byte Ethernet frame, its VXLAN
/// headers, and room to spare for a jumbo-less LAN.
const FRAME_BUF: usize = 2048;

pub use crate::ids::{ContainerId, NetId};

pub mod cx;
mod ingress;
mod members;
mod overlay;
mod stacks;
mod swarm;

pub(crate) use overlay::ATTACH_TIME;
pub(crate) use stacks::{dns_resolve, tcp_request, Ns};

/// An IPv4 subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    /// Network address.
    pub base: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl Subnet {
    /// The `i`-th address after the network address, if inside the subnet (and not the
    /// broadcast address).
    pub fn host(&self, i: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        (u64::from(i) < size - 1).then(|| Ipv4Addr::from(u32::from(self.base) + i))
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        };
        u32::from(ip) & mask == u32::from(self.base) & mask
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl Overlay {
    /// Mark an address as taken (by an endpoint the lab does not model as a container).
    pub(crate) fn used_insert(&mut self, ip: Ipv4Addr) {
        self.used.insert(ip);
    }
}

/// An overlay network.
#[derive(Clone, Debug)]
pub struct Overlay {
    /// Name.
    pub name: String,
    /// VXLAN network identifier.
    pub vni: Vni,
    /// Subnet; the gateway takes the first address.
    pub subnet: Subnet,
    /// Hosts that have the network.
    pub hosts: BTreeSet<HostId>,
    used: BTreeSet<Ipv4Addr>,
    /// A swarm network: present on a node only while something there uses it.
    pub swarm: bool,
}

impl Overlay {
    /// One host's own bridge (`bridge`, `docker_gwbridge`): MTU 1500, never tunnelled.
    pub fn local_bridge(&self) -> bool {
        self.name.starts_with("docker_gwbridge@") || self.name.starts_with("bridge@")
    }
}

/// What Docker does with a container when its engine comes back after a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    /// `no` (the default): it stays exited.
    No,
    /// `always`: started again, even if it had been stopped by hand.
    Always,
    /// `unless-stopped`: started again unless it had been stopped by hand.
    UnlessStopped,
    /// `on-failure[:N]`: restarted when it exits non-zero, not when the engine restarts.
    OnFailure,
}

/// One of a container's interfaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iface {
    /// Its network.
    pub net: NetId,
    /// Its address.
    pub ip: Ipv4Addr,
    /// 02:42 and the four octets of the IP, as Docker derives it.
    pub mac: MacAddr,
}

/// A container: interfaces on overlays (eth0 first), ARP and ICMP echo answered by the
/// lab, and TCP in a smoltcp stack (`netstack`) with the image's programs.
#[derive(Debug)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// Name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Command, as `docker ps` quotes it.
    pub command: String,
    /// Host it runs on.
    pub host: HostId,
    /// Its network.
    pub net: NetId,
    /// Address on that network.
    pub ip: Ipv4Addr,
    /// MAC: 02:42 and the four octets of the IP, as Docker derives it.
    pub mac: MacAddr,
    /// Running or exited.
    pub running: bool,
    /// Exit code once exited.
    pub exit_code: Option<i32>,
    /// When it was created.
    pub created: Instant,
    /// When it last started or stopped.
    pub since: Instant,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// A swarm task's container: its peers are spread by NetworkDB, not programmed here.
    pub swarm_task: bool,
    /// Stopped with `docker stop` (matters to `unless-stopped`).
    pub stopped_by_user: bool,
    /// Interfaces after eth0 (eth1, ...).
    pub more: Vec<Iface>,
    /// Ports published on its host (`docker run -p`): host port, container port,
    /// protocol.
    pub published: Vec<(u16, u16, &'static str)>,
    /// Its filesystem: the image's files and what was written since (lost with the
    /// container).
    pub fs: crate::fs::Fs,
    /// The built-in image its programs come from (its image, or what that was built
    /// FROM).
    pub base: String,
    /// Its TCP stack and programs, while it runs.
    pub stack: Option<Box<crate::netstack::Stack>>,
    /// Round-robin positions of its VIP balancer, by VIP.
    pub(crate) lb: BTreeMap<Ipv4Addr, u64>,
    arp: BTreeMap<Ipv4Addr, MacAddr>,
    /// Frames waiting for ARP resolution, by next hop.
    arp_pending: BTreeMap<Ipv4Addr, Vec<Vec<u8>>>,
}

impl Container {
    /// Its `k`-th interface (eth0 first), without allocating.
    pub fn iface(&self, k: usize) -> Option<Iface> {
        match k {
            0 => Some(Iface {
                net: self.net,
                ip: self.ip,
                mac: self.mac,
            }),
            k => self.more.get(k - 1).copied(),
        }
    }

    /// Its interfaces, eth0 first.
    pub fn iface_iter(&self) -> impl Iterator<Item = Iface> + '_ {
        (0..=self.more.len()).filter_map(|k| self.iface(k))
    }
}

/// Events of the lab.
#[derive(Debug)]
pub enum Event {
    /// A host's gossip member asked to be woken now.
    GossipTimer {
        /// The host.
        host: HostId,
        /// The wake-up time it asked for.
        at: Instant,
    },
    /// A gossip stream's request reaches its peer.
    GossipStream {
        /// The host that opened it.
        from: HostId,
        /// The peer.
        to: HostId,
        /// The stream.
        id: gossip::StreamId,
        /// The request.
        bytes: Vec<u8>,
    },
    /// A gossip stream's reply comes back.
    GossipStreamReply {
        /// The host that opened it.
        host: HostId,
        /// The stream.
        id: gossip::StreamId,
        /// The reply.
        bytes: Vec<u8>,
    },
    /// A `foca` timer fires (baseline experiments).
    FocaTimer {
        /// The host.
        host: HostId,
        /// foca's timer.
        timer: foca::Timer<std::net::SocketAddrV4>,
    },
    /// A gossip packet reaches a lagging member's processing.
    GossipDeliver {
        /// The host.
        host: HostId,
        /// The frame.
        frame: Vec<u8>,
    },
    /// A gossip stream could not be completed.
    GossipStreamFailed {
        /// The host that opened it.
        host: HostId,
        /// The stream.
        id: gossip::StreamId,
    },
    /// An outer frame arrives at a host's NIC.
    Underlay {
        /// Receiving host.
        to: HostId,
        /// The frame.
        frame: Vec<u8>,
    },
    /// An inner frame arrives at a container's interface.
    Container {
        /// Receiving container.
        to: ContainerId,
        /// The frame.
        frame: Vec<u8>,
    },
    /// A ping sends its next echo request.
    PingSend(PingId),
    /// A ping stops waiting.
    PingDeadline(PingId),
    /// The swarm control plane.
    Swarm(crate::swarm::SwarmEvent),
    /// An IP packet reaches a stack without crossing a network (the engine's DNS answer).
    StackPacket {
        /// Whose stack.
        owner: crate::traffic::Owner,
        /// The packet.
        packet: Vec<u8>,
    },
    /// A frame reaches a node's ingress sandbox.
    Sandbox {
        /// The node.
        host: HostId,
        /// The frame.
        frame: Vec<u8>,
    },
    /// A TCP stack asked to be polled (retransmissions, delayed ACKs, TIME-WAIT).
    StackTimer {
        /// Whose stack.
        owner: crate::traffic::Owner,
        /// The time it asked for.
        at: Instant,
    },
    /// ARP resolution gives up (3 requests, 1 s apart, as Linux's defaults).
    ArpRetry {
        /// The asking container.
        from: ContainerId,
        /// The address asked for.
        ip: Ipv4Addr,
        /// How many requests have been sent.
        tries: u8,
    },
}

/// One host: its VTEP; its NIC is in the underlay.
#[derive(Debug)]
pub struct Host {
    /// The tunnel endpoint, serving the host's overlays.
    pub vtep: Vtep,
    /// The gossip member on 7946.
    pub gossip: crate::membership::HostGossip,
    /// Frames seen on the NIC (both ways), for pcap.
    pub capture: Vec<(Instant, Vec<u8>)>,
    /// The engine's swarm mode (manager, agent). Private to the world's rooms: the
    /// clients read it through `Lab::swarm_of` and change it only by asking the world.
    swarm: crate::swarm::SwarmNode,
    /// The host's disk (what its shell reads and writes).
    fs: crate::fs::Fs,
    /// The images its engine has.
    images: crate::imagestore::ImageStore,
    /// The host's own TCP stack (host-side clients), made when first used.
    pub stack: Option<Box<crate::netstack::Stack>>,
    /// The routing mesh: ingress sandbox and connection table.
    pub mesh: crate::mesh::Mesh,
    /// Remote peers programmed from NetworkDB: (network, endpoint key) -> (IP, MAC, VTEP).
    pub(crate) peers: BTreeMap<(String, String), (Ipv4Addr, MacAddr, Ipv4Addr)>,
}

/// Errors Docker would print.
pub type DockerError = String;

/// The whole lab.
pub struct Lab {
    /// The event queue and clock.
    pub engine: Engine<Event>,
    /// The one random source.
    pub rng: Rng,
    /// The underlay.
    pub underlay: Underlay,
    /// Hosts, indexed by `HostId`.
    pub hosts: Vec<Host>,
    /// Overlays, indexed by `NetId`.
    pub nets: Vec<Overlay>,
    /// Containers, indexed by `ContainerId`.
    pub containers: Vec<Container>,
    /// The containers of each host, by `HostId` (a container never moves or goes).
    by_host: Vec<Vec<ContainerId>>,
    /// Containers by lower-case name (what the embedded DNS answers for).
    by_name: BTreeMap<String, Vec<ContainerId>>,
    /// Frame buffers to reuse, so that the overlay path allocates nothing per frame.
    frame_pool: Vec<Vec<u8>>,
    /// Ping sessions, indexed by `PingId`.
    pub pings: Vec<Ping>,
    /// The event trace.
    pub trace: Trace,
    /// Whether hosts capture frames for pcap output.
    pub capture: bool,
    /// The control streams' TCP connections, for the taps (only kept while capturing).
    pub streams: crate::underlay::segments::Streams,
    /// The configuration new gossip members get (memberlist's LAN profile by default).
    pub gossip_config: gossip::Config,
    /// Member names and identities, shared by every host's member (one copy of each).
    pub gossip_names: gossip::registry::Registry,
    /// Gossip traffic counters, for the load figures.
    pub gossip_load: crate::membership::GossipLoad,
    /// Told the virtual time and the events handled so far every `PROGRESS_EVERY`
    /// events (a progress display; it cannot change the lab).
    pub progress: Option<Box<dyn FnMut(Instant, u64)>>,
    /// Whether every member's view of every join goes into the trace (N^2 events: large
    /// experiments turn it off; the other membership changes are always traced).
    pub trace_joins: bool,
}

/// The UDP or TCP ports of an IPv4 frame on the underlay, if it is one.
fn frame_ports(frame: &[u8]) -> Option<(u16, u16)> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || !matches!(ip.get(9)?, 6 | 17) {
        return None;
    }
    let l4 = ip.get(usize::from(ip[0] & 0x0f) * 4..)?;
    Some((
        u16::from_be_bytes([*l4.first()?, *l4.get(1)?]),
        u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]),
    ))
}

/// How often (in events handled) the lab tells its progress display.
pub const PROGRESS_EVERY: u64 = 1 << 14;

/// The ICMP echo identifier a ping session uses. Identifiers repeat after 57344
/// sessions; replies are matched only against unfinished sessions of the container.
fn echo_ident(ping: PingId) -> u16 {
    (0x1000 + ping.0 % 0xe000) as u16
}

impl Lab {
    /// An empty lab.
    pub fn new(seed: u64) -> Lab {
        Lab {
            engine: Engine::new(),
            rng: Rng::new(seed),
            underlay: Underlay::default(),
            hosts: Vec::new(),
            nets: Vec::new(),
            containers: Vec::new(),
            by_host: Vec::new(),
            by_name: BTreeMap::new(),
            frame_pool: Vec::new(),
            pings: Vec::new(),
            trace: Trace::default(),
            capture: false,
            streams: Default::default(),
            gossip_config: gossip::Config::memberlist_lan(),
            gossip_names: gossip::registry::Registry::new(),
            gossip_load: Default::default(),
            trace_joins: true,
            progress: None,
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.engine.now()
    }

    fn record(&mut self, event: TraceEvent) {
        self.trace.push(self.engine.now(), event);
    }

    /// Add a host on the LAN.
    pub fn add_host(&mut self, name: &str, ip: Ipv4Addr, mtu: u16) -> HostId {
        let id = self.underlay.add_host(name, ip, mtu);
        let nic = self.underlay.nic(id).clone();
        let mut cfg = vxlan::Config::docker(ip, nic.mac);
        cfg.underlay_mtu = mtu;
        // Underlay neighbours are resolved when an overlay spans the hosts (see
        // `add_overlay`), so that a large lab does not hold N^2 entries.
        let vtep = Vtep::new(cfg);
        let seed = self.rng.next_u64();
        let gossip = crate::membership::HostGossip::new(
            self.gossip_config.clone(),
            name,
            std::net::SocketAddrV4::new(ip, gossip::GOSSIP_PORT),
            self.now(),
            seed,
            self.gossip_names.clone(),
        );
        self.by_host.push(Vec::new());
        self.hosts.push(Host {
            vtep,
            gossip,
            capture: Vec::new(),
            // The swarm mode draws from its own stream, derived from the host's seed.
            swarm: crate::swarm::SwarmNode::new(ip, seed ^ 0x5357_4152_4d32_3337),
            fs: crate::fs::Fs::with_files([
                ("/etc/hostname", format!("{name}\n").as_bytes()),
                ("/root/.profile", b"".as_slice()),
                ("/tmp/.keep", b"".as_slice()),
            ]),
            images: Default::default(),
            stack: None,
            mesh: Default::default(),
            peers: BTreeMap::new(),
        });
        // The host first, then what its member says of itself.
        self.record(TraceEvent::HostAdded {
            host: name.to_string(),
            ip: ip.to_string(),
            mtu,
        });
        self.gossip_flush(id);
        id
    }

    /// Set link properties between two hosts.
    pub fn set_link(&mut self, a: HostId, b: HostId, params: LinkParams) {
        self.underlay.set_link(a, b, params);
    }

    /// Host name.
    pub fn host_name(&self, h: HostId) -> &str {
        &self.underlay.nic(h).name
    }

    /// Declare an overlay on some hosts.
    pub fn add_overlay(
        &mut self,
        name: &str,
        vni: Vni,
        subnet: Subnet,
        hosts: BTreeSet<HostId>,
    ) -> NetId {
        let id = NetId(self.nets.len());
        // Underlay ARP on one LAN: the VTEPs of the overlay's hosts know each other.
        for a in &hosts {
            for b in &hosts {
                if a != b {
                    let nic = self.underlay.nic(*b);
                    let (ip, mac) = (nic.ip, nic.mac);
                    self.hosts[a.0].vtep.set_neighbor(ip, mac);
                }
            }
        }
        for h in &hosts {
            self.hosts[h.0].vtep.add_network(vni);
        }
        let gateway = subnet.host(1);
        self.nets.push(Overlay {
            name: name.to_string(),
            vni,
            subnet,
            hosts: hosts.clone(),
            used: gateway.into_iter().collect(),
            swarm: false,
        });
        self.record(TraceEvent::OverlayCreated {
            network: name.to_string(),
            vni: vni.get(),
            subnet: subnet.to_string(),
            hosts: hosts
                .iter()
                .map(|h| self.host_name(*h).to_string())
                .collect(),
        });
        id
    }

    /// A host's `docker_gwbridge`: a local bridge (172.18.0.0/16, never tunnelled) for
    /// swarm tasks that join no overlay. Returns it and the next free address on it.
    pub(crate) fn gwbridge(&mut self, host: HostId) -> Option<(NetId, Ipv4Addr)> {
        self.local_bridge(host, "docker_gwbridge", 18, 0x00ff_0000)
    }

    /// A host's default `bridge` network (docker0, 172.17.0.0/16), which `docker run`
    /// uses without `--network`. Returns it and the next free address on it.
    pub(crate) fn default_bridge(&mut self, host: HostId) -> Option<(NetId, Ipv4Addr)> {
        self.local_bridge(host, "bridge", 17, 0x00fe_0000)
    }

    /// A local bridge of one host: `NAME@HOST`, 172.`second`.0.0/16, never tunnelled.
    fn local_bridge(
        &mut self,
        host: HostId,
        kind: &str,
        second: u8,
        vni_base: u32,
    ) -> Option<(NetId, Ipv4Addr)> {
        let name = format!("{kind}@{}", self.host_name(host));
        let id = match self.net_by_name(&name) {
            Some(id) => id,
            None => {
                let subnet = Subnet {
                    base: Ipv4Addr::new(172, second, 0, 0),
                    prefix: 16,
                };
                self.nets.push(Overlay {
                    name,
                    // Local only: no VTEP serves it, so nothing is ever encapsulated.
                    vni: Vni::new(vni_base + host.0 as u32 % 0xffff)?,
                    subnet,
                    hosts: BTreeSet::from([host]),
                    used: subnet.host(1).into_iter().collect(),
                    swarm: false,
                });
                NetId(self.nets.len() - 1)
            }
        };
        let n = &self.nets[id.0];
        let ip = (2..)
            .map_while(|i| n.subnet.host(i))
            .find(|ip| !n.used.contains(ip))?;
        Some((id, ip))
    }

    /// Swarm overlays no running container on `host` uses (all of them after a crash)
    /// leave the host: its VTEP stops serving the VNI and its NetworkDB leaves the
    /// network, as a Docker engine removes an overlay's namespace when its last local
    /// endpoint goes. The ingress network stays while the node has its sandbox.
    pub(crate) fn release_swarm_networks(&mut self, host: HostId, all: bool) {
        let ids: Vec<NetId> = (0..self.nets.len())
            .map(NetId)
            .filter(|n| self.nets[n.0].swarm && self.nets[n.0].hosts.contains(&host))
            .collect();
        for n in ids {
            let in_use = !all
                && ((0..self.containers.len()).map(ContainerId).any(|c| {
                    let k = &self.containers[c.0];
                    k.running && k.host == host && self.ifaces(c).iter().any(|i| i.net == n)
                }) || self.hosts[host.0].mesh.sandbox.is_some_and(|s| s.net == n));
            if in_use {
                continue;
            }
            let (name, vni) = (self.nets[n.0].name.clone(), self.nets[n.0].vni);
            self.nets[n.0].hosts.remove(&host);
            self.hosts[host.0].vtep.remove_network(vni);
            self.hosts[host.0].peers.retain(|(net, _), _| *net != name);
            if !all {
                self.hosts[host.0].gossip.db.leave_network(&name);
                self.gossip_flush(host);
                self.swarm_note(host, format!("network {name} removed (no local endpoint)"));
            }
        }
    }

    /// The overlay with this name.
    pub fn net_by_name(&self, name: &str) -> Option<NetId> {
        self.nets.iter().position(|n| n.name == name).map(NetId)
    }

    /// The container with this name or (prefix of an) ID, as Docker resolves it.
    pub fn container_by_ref(&self, r: &str) -> Option<ContainerId> {
        let by_name = self.containers.iter().position(|c| c.name == r);
        by_name
            .or_else(|| {
                (!r.is_empty())
                    .then(|| self.containers.iter().position(|c| c.id.starts_with(r)))
                    .flatten()
            })
            .map(ContainerId)
    }

    fn random_id(&mut self) -> String {
        let mut s = String::with_capacity(64);
        for _ in 0..4 {
            s.push_str(&format!("{:016x}", self.rng.next_u64()));
        }
        s
    }

    /// `docker run -d`: create and start a container on `host` attached to `net`.
    pub fn run_container(
        &mut self,
        host: HostId,
        name: &str,
        net: NetId,
        image: &str,
        command: &str,
        restart: RestartPolicy,
    ) -> Result<ContainerId, DockerError> {
        if let Some(c) = self.containers.iter().find(|c| c.name == name) {
            return Err(format!(
                "docker: Error response from daemon: Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                c.id
            ));
        }
        let overlay = &self.nets[net.0];
        if !overlay.hosts.contains(&host) {
            return Err(format!(
                "docker: Error response from daemon: network {} not found",
                overlay.name
            ));
        }
        let Some(ip) = (2..)
            .map_while(|i| overlay.subnet.host(i))
            .find(|ip| !overlay.used.contains(ip))
        else {
            return Err(format!(
                "docker: Error response from daemon: no available IPv4 addresses on this network's address pools: {} ({})",
                overlay.name, overlay.subnet
            ));
        };
        let cid = self.create_container(host, name, net, ip, image, command, restart, false);
        self.program_peer(cid, true);
        Ok(cid)
    }

    /// Create a running container with a given address (the caller programs its peers).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create_container(
        &mut self,
        host: HostId,
        name: &str,
        net: NetId,
        ip: Ipv4Addr,
        image: &str,
        command: &str,
        restart: RestartPolicy,
        swarm_task: bool,
    ) -> ContainerId {
        let o = ip.octets();
        let mac = MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]]);
        let id = self.random_id();
        let now = self.now();
        self.nets[net.0].used.insert(ip);
        let cid = ContainerId(self.containers.len());
        let (mut fs, base) = match self.hosts[host.0].images.get_or_pull(image) {
            Some(img) => (img.files.clone(), img.base.clone()),
            None => (
                crate::fs::Fs::with_files(crate::images::files(image)),
                image.to_string(),
            ),
        };
        let _ = fs.write("/etc/hostname", format!("{}\n", &id[..12]).into_bytes());
        self.containers.push(Container {
            fs,
            base,
            id,
            name: name.to_string(),
            image: image.to_string(),
            command: command.to_string(),
            host,
            net,
            ip,
            mac,
            running: true,
            exit_code: None,
            created: now,
            since: now,
            restart,
            swarm_task,
            stopped_by_user: false,
            more: Vec::new(),
            published: Vec::new(),
            stack: None,
            lb: BTreeMap::new(),
            arp: BTreeMap::new(),
            arp_pending: BTreeMap::new(),
        });
        self.by_host[host.0].push(cid);
        self.by_name
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(cid);
        self.record(TraceEvent::ContainerStarted {
            container: name.to_string(),
            host: self.host_name(host).to_string(),
            network: self.nets[net.0].name.clone(),
            ip: ip.to_string(),
            mac: mac.to_string(),
        });
        self.stack_start(cid);
        cid
    }

    /// A swarm task's container on `net`, at the address the leader allocated. Its peers
    /// learn of it through NetworkDB (see `swarm::overlay`), not from here.
    pub(crate) fn run_task_container(
        &mut self,
        host: HostId,
        name: &str,
        net: NetId,
        ip: Ipv4Addr,
        image: &str,
        command: &str,
    ) -> ContainerId {
        self.create_container(host, name, net, ip, image, command, RestartPolicy::No, true)
    }

    /// Add or remove a container's FDB and ARP-proxy entries on every other host of its
    /// network, as Docker's overlay driver does for a peer (static entries, no learning).
    fn program_peer(&mut self, cid: ContainerId, add: bool) {
        let c = &self.containers[cid.0];
        if c.swarm_task {
            // Swarm containers' peers come from NetworkDB.
            if add {
                let host = c.host;
                self.publish_endpoint(host, cid);
            }
            return;
        }
        let (vni, ip, mac, host) = (self.nets[c.net.0].vni, c.ip, c.mac, c.host);
        let vtep_ip = self.underlay.nic(host).ip;
        let hosts: Vec<HostId> = self.nets[c.net.0].hosts.iter().copied().collect();
        for h in hosts {
            if h == host {
                continue;
            }
            let vtep = &mut self.hosts[h.0].vtep;
            if add {
                // The network exists on every host in `hosts`, so these cannot fail.
                let _ = vtep.add_fdb(vni, mac, vtep_ip);
                let _ = vtep.add_arp(vni, ip, mac);
            } else {
                vtep.remove_fdb(vni, mac);
                vtep.remove_arp(vni, ip);
            }
        }
    }

    /// Stop a container (exit code as Docker reports it), withdrawing it from peers.
    pub fn stop_container(&mut self, cid: ContainerId, exit_code: i32, reason: &str) {
        self.kill(cid, exit_code, reason, true);
    }

    fn kill(&mut self, cid: ContainerId, exit_code: i32, reason: &str, withdraw: bool) {
        if !self.containers[cid.0].running {
            return;
        }
        if withdraw && !self.containers[cid.0].swarm_task {
            self.program_peer(cid, false);
        }
        if withdraw && self.containers[cid.0].swarm_task {
            self.withdraw_endpoint(cid);
        }
        let now = self.now();
        let c = &mut self.containers[cid.0];
        c.running = false;
        c.exit_code = Some(exit_code);
        c.since = now;
        c.arp.clear();
        c.arp_pending.clear();
        c.stack = None;
        c.lb.clear();
        let event = TraceEvent::ContainerStopped {
            container: c.name.clone(),
            exit_code,
            reason: reason.to_string(),
        };
        self.record(event);
        if self.containers[cid.0].swarm_task {
            // A task's container is never started again: its docker_gwbridge address
            // is free.
            for i in self.ifaces(cid) {
                if self.nets[i.net.0].name.starts_with("docker_gwbridge@") {
                    self.nets[i.net.0].used.remove(&i.ip);
                }
            }
        }
        if withdraw {
            let host = self.containers[cid.0].host;
            self.release_swarm_networks(host, false);
        }
    }

    /// `docker stop` (SIGKILL after the grace period, hence 137): a restart policy of
    /// `unless-stopped` leaves it stopped.
    pub fn user_stop_container(&mut self, cid: ContainerId) {
        self.stop_container(cid, 137, "docker stop");
        self.containers[cid.0].stopped_by_user = true;
    }

    /// `docker start`: the container runs again, and its restart policy applies again.
    pub fn user_start_container(&mut self, cid: ContainerId) {
        self.containers[cid.0].stopped_by_user = false;
        self.start_container(cid);
    }

    /// Start an exited container again.
    pub fn start_container(&mut self, cid: ContainerId) {
        if self.containers[cid.0].running {
            return;
        }
        let now = self.now();
        let c = &mut self.containers[cid.0];
        c.running = true;
        c.exit_code = None;
        c.since = now;
        self.program_peer(cid, true);
        self.stack_start(cid);
        let c = &self.containers[cid.0];
        let event = TraceEvent::ContainerStarted {
            container: c.name.clone(),
            host: self.host_name(c.host).to_string(),
            network: self.nets[c.net.0].name.clone(),
            ip: c.ip.to_string(),
            mac: c.mac.to_string(),
        };
        self.record(event);
    }

    /// Remove a (stopped) container and free its address.
    pub fn remove_container(&mut self, cid: ContainerId) {
        self.stop_container(cid, 137, "removed");
        let c = &mut self.containers[cid.0];
        let ip = c.ip;
        let net = c.net;
        // Keep the slot so ids stay stable; an empty name can never be looked up.
        c.name.clear();
        c.id.clear();
        let more = std::mem::take(&mut c.more);
        self.nets[net.0].used.remove(&ip);
        for i in more {
            self.nets[i.net.0].used.remove(&i.ip);
        }
    }

    /// Whether a container slot still holds a container.
    pub fn exists(&self, cid: ContainerId) -> bool {
        !self.containers[cid.0].id.is_empty()
    }

    /// Crash a host: its NIC goes silent and its containers die.
    pub fn crash(&mut self, host: HostId) {
        self.underlay.set_up(host, false);
        let ip = self.underlay.nic(host).ip;
        self.streams.forget(ip);
        self.hosts[host.0].mesh = Default::default();
        self.hosts[host.0].stack = None;
        self.release_swarm_networks(host, true);
        // A reboot loses what NetworkDB programmed into the kernel's VXLAN device; the
        // new NetworkDB programs it again from the tables.
        let peers = std::mem::take(&mut self.hosts[host.0].peers);
        for ((network, _), (ip, mac, _)) in peers {
            if let Some(n) = self.net_by_name(&network) {
                let vni = self.nets[n.0].vni;
                let v = &mut self.hosts[host.0].vtep;
                v.remove_fdb(vni, mac);
                v.remove_arp(vni, ip);
            }
        }
        let name = self.host_name(host).to_string();
        self.record(TraceEvent::HostCrashed { host: name });
        self.swarm_crash(host);
        let on_host: Vec<ContainerId> = (0..self.containers.len())
            .map(ContainerId)
            .filter(|c| self.containers[c.0].host == host && self.exists(*c))
            .collect();
        for c in on_host {
            // Docker reports 255 for containers whose engine died under them. Nobody
            // withdraws their peer entries: with no control plane, the other hosts keep
            // tunnelling to the dead VTEP, and the underlay drops the frames.
            self.kill(c, 255, "host crashed", false);
        }
    }

    /// Restart a crashed host; containers with a restart policy come back.
    pub fn restart(&mut self, host: HostId) {
        self.underlay.set_up(host, true);
        let name = self.host_name(host).to_string();
        self.record(TraceEvent::HostRestarted { host: name });
        self.gossip_restart(host);
        self.swarm_restart(host);
        let on_host: Vec<ContainerId> = (0..self.containers.len())
            .map(ContainerId)
            .filter(|c| self.containers[c.0].host == host && self.exists(*c))
            .collect();
        for c in on_host {
            let k = &self.containers[c.0];
            let back = match k.restart {
                RestartPolicy::Always => true,
                RestartPolicy::UnlessStopped => !k.stopped_by_user,
                RestartPolicy::No | RestartPolicy::OnFailure => false,
            };
            if back && !k.running {
                self.start_container(c);
            } else if !k.running {
                // The engine cleans up the endpoints of containers that stay down.
                self.program_peer(c, false);
            }
        }
    }

    /// Whether `dst` is on the container's network (overlay-only containers have no
    /// default route).
    pub fn on_link(&self, cid: ContainerId, dst: Ipv4Addr) -> bool {
        self.iface_for(cid, dst).is_some()
    }

    /// A container's interfaces, eth0 first.
    pub fn ifaces(&self, cid: ContainerId) -> Vec<Iface> {
        let c = &self.containers[cid.0];
        let mut v = vec![Iface {
            net: c.net,
            ip: c.ip,
            mac: c.mac,
        }];
        v.extend(c.more.iter().copied());
        v
    }

    /// The interface a container sends to `dst` through (its own address: that one).
    pub fn iface_for(&self, cid: ContainerId, dst: Ipv4Addr) -> Option<Iface> {
        let all = self.ifaces(cid);
        all.iter()
            .find(|i| i.ip == dst)
            .or_else(|| all.iter().find(|i| self.nets[i.net.0].subnet.contains(dst)))
            .copied()
    }

    /// Give a running container another interface (eth1, ...), on `net` at `ip`.
    pub(crate) fn add_interface(&mut self, cid: ContainerId, net: NetId, ip: Ipv4Addr) {
        let o = ip.octets();
        let mac = MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]]);
        self.nets[net.0].used.insert(ip);
        let prefix = self.nets[net.0].subnet.prefix;
        let c = &mut self.containers[cid.0];
        c.more.push(Iface { net, ip, mac });
        let fits = c.stack.as_mut().is_none_or(|s| s.add_address(ip, prefix));
        if !fits {
            let at = c.name.clone();
            self.record(TraceEvent::StackDrop {
                at,
                reason: format!(
                    "swarmlab simulates at most 7 networks per container: no TCP on {ip}"
                ),
            });
        }
        let c = &self.containers[cid.0];
        let (container, host) = (format!("{} (eth{})", c.name, c.more.len()), c.host);
        let event = TraceEvent::ContainerStarted {
            container,
            host: self.host_name(host).to_string(),
            network: self.nets[net.0].name.clone(),
            ip: ip.to_string(),
            mac: mac.to_string(),
        };
        self.record(event);
    }

    /// A host's disk.
    pub fn host_fs(&self, host: HostId) -> &crate::fs::Fs {
        &self.hosts[host.0].fs
    }

    /// A container's files after a program wrote them (nginx serves what they hold).
    pub fn set_container_fs(&mut self, cid: ContainerId, fs: crate::fs::Fs) {
        let c = &mut self.containers[cid.0];
        if let Some(root) = c.stack.as_mut().and_then(|s| s.docroot.as_mut()) {
            *root = fs.clone();
        }
        c.fs = fs;
    }

    /// A host's images.
    pub fn images_of(&self, host: HostId) -> &crate::imagestore::ImageStore {
        &self.hosts[host.0].images
    }

    /// The image a reference names on `host`, pulled if a registry has it and the node
    /// does not yet.
    pub fn image_pull(
        &mut self,
        host: HostId,
        reference: &str,
    ) -> Option<&crate::imagestore::LocalImage> {
        self.hosts[host.0].images.get_or_pull(reference)
    }

    /// Store an image on `host` under `name` (what `docker build` made there).
    pub fn image_add(&mut self, host: HostId, image: crate::imagestore::LocalImage, name: &str) {
        self.hosts[host.0].images.add(image, name);
    }

    /// A host's disk after its shell wrote to it.
    pub fn set_host_fs(&mut self, host: HostId, fs: crate::fs::Fs) {
        self.hosts[host.0].fs = fs;
    }

    /// What `host`'s engine knows of the swarm: its node id, manager and agent. Read
    /// only: the swarm room (`lab/swarm.rs`) is the one that changes it.
    pub fn swarm_of(&self, host: HostId) -> &crate::swarm::SwarmNode {
        &self.hosts[host.0].swarm
    }

    /// Resolve a name as the container's embedded DNS would: containers on its network.
    pub fn resolve(&self, from: ContainerId, name: &str) -> Option<Ipv4Addr> {
        self.dns_lookup(from, name)?.first().copied()
    }

    // ---- running the clock ----------------------------------------------------------

    /// Run events until `until` (inclusive), then set the clock there.
    pub fn run_until(&mut self, until: Instant) {
        while let Some((_, ev)) = self.engine.pop_until(until) {
            self.handle(ev);
        }
        self.engine.advance_to(until);
    }

    /// Run one event due by `until` and return true; when none is left, set the clock to
    /// `until` and return false.
    pub fn step_until(&mut self, until: Instant) -> bool {
        match self.engine.pop_until(until) {
            Some((_, ev)) => {
                self.handle(ev);
                true
            }
            None => {
                self.engine.advance_to(until);
                false
            }
        }
    }

    /// Run events until `done` holds or `until` passes; returns whether `done` held.
    pub fn run_until_or(&mut self, until: Instant, mut done: impl FnMut(&Lab) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            match self.engine.pop_until(until) {
                Some((_, ev)) => self.handle(ev),
                None => {
                    self.engine.advance_to(until);
                    return done(self);
                }
            }
        }
    }

    fn handle(&mut self, ev: Event) {
        let handled = self.engine.processed();
        if handled > 0 && handled.is_multiple_of(PROGRESS_EVERY) {
            if let Some(p) = self.progress.as_mut() {
                p(self.engine.now(), self.engine.processed());
            }
        }
        match ev {
            Event::Underlay { to, frame } => self.underlay_arrival(to, frame),
            Event::Container { to, frame } => {
                self.container_input(to, &frame);
                self.recycle(frame);
            }
            Event::PingSend(p) => self.ping_send(p),
            Event::PingDeadline(p) => self.ping_finish(p),
            Event::ArpRetry { from, ip, tries } => self.arp_retry(from, ip, tries),
            Event::StackTimer { owner, at } => self.stack_timer(owner, at),
            Event::Sandbox { host, frame } => self.sandbox_input(host, &frame),
            Event::StackPacket { owner, packet } => self.stack_input(owner, packet),
            Event::GossipTimer { host, at } => self.gossip_timer(host, at),
            Event::GossipStream {
                from,
                to,
                id,
                bytes,
            } => self.gossip_stream_arrival(from, to, id, &bytes),
            Event::GossipStreamReply { host, id, bytes } => {
                self.gossip_stream_reply(host, id, &bytes)
            }
            Event::GossipStreamFailed { host, id } => self.gossip_stream_failed(host, id),
            Event::GossipDeliver { host, frame } => self.gossip_packet_arrival(host, &frame),
            Event::FocaTimer { host, timer } => self.foca_timer(host, timer),
            Event::Swarm(ev) => self.swarm_event(ev),
        }
    }

    // ---- underlay ---------------------------------------------------------------------

    /// A control stream's message, as the taps see it: `payload` from the client (or
    /// the server) of the connection `client` -> `server`:`port`, opened first if needed.
    /// Each frame is on its sender's tap now and on its receiver's one latency later.
    pub(crate) fn tap_stream(
        &mut self,
        client: HostId,
        server: HostId,
        port: u16,
        from_client: bool,
        payload: &[u8],
    ) {
        self.tap_stream_then_close(client, server, port, from_client, payload, false);
    }

    /// The same, then the connection closes (FIN both ways), as memberlist closes a
    /// stream once it has answered.
    pub(crate) fn tap_stream_then_close(
        &mut self,
        client: HostId,
        server: HostId,
        port: u16,
        from_client: bool,
        payload: &[u8],
        close: bool,
    ) {
        // A host talking to itself does it on `lo`, which no tap shows.
        if client == server {
            return;
        }
        if self.trace.traffic().is_some() {
            let sender = if from_client { client } else { server };
            let now = self.now();
            // The payload and its TCP/IP and Ethernet headers.
            let class = crate::trace::Traffic::class(port, port);
            self.trace.count(now, sender.0, class, payload.len() + 54);
        }
        let (c, s) = (self.stream_end(client), self.stream_end(server));
        if !self.capture {
            // No frames, but the connection's state: a new one costs a handshake.
            self.streams.ensure_open(c, s, port);
            if close {
                self.streams.close(c, s, port);
            }
            return;
        }
        // After the connection's previous message, as a byte stream orders them.
        let start = Instant(self.streams.free_at(c.ip, s.ip, port)).max(self.now());
        let mut frames = self.streams.message(c, s, port, from_client, payload);
        if close {
            frames.extend(self.streams.close(c, s, port));
        }
        let end = self.tap_frames(client, server, start, frames);
        self.streams.set_free_at(c.ip, s.ip, port, end.0);
    }

    fn stream_end(&self, h: HostId) -> crate::underlay::segments::End {
        let nic = self.underlay.nic(h);
        crate::underlay::segments::End {
            ip: nic.ip,
            mac: nic.mac,
        }
    }

    /// Put frames on both taps from `start` on; returns when the last one arrived.
    fn tap_frames(
        &mut self,
        client: HostId,
        server: HostId,
        start: Instant,
        frames: Vec<crate::underlay::segments::Frame>,
    ) -> Instant {
        let latency = self.underlay.link(client, server).latency;
        let mut at = start;
        let mut last_dir = None;
        for (from_client, frame) in frames {
            // A segment that answers the other side's leaves one latency after it.
            if last_dir.is_some_and(|d| d != from_client) {
                at = at + latency;
            }
            last_dir = Some(from_client);
            let (tx, rx) = if from_client {
                (client, server)
            } else {
                (server, client)
            };
            self.hosts[rx.0].capture.push((at + latency, frame.clone()));
            self.hosts[tx.0].capture.push((at, frame));
        }
        at + latency
    }

    pub(crate) fn transmit(&mut self, from: HostId, frame: Vec<u8>) {
        let now = self.now();
        if self.capture {
            self.hosts[from.0].capture.push((now, frame.clone()));
        }
        if self.trace.traffic().is_some() {
            let class = frame_ports(&frame).map_or(3, |(s, d)| crate::trace::Traffic::class(s, d));
            self.trace.count(now, from.0, class, frame.len());
        }
        match self.underlay.transmit(now, &mut self.rng, from, &frame) {
            Ok((to, at)) => self.engine.schedule(at, Event::Underlay { to, frame }),
            Err(why) => {
                let host = self.host_name(from).to_string();
                self.record(TraceEvent::UnderlayDrop {
                    host,
                    reason: why.to_string(),
                    bytes: frame.len(),
                });
            }
        }
    }

    fn underlay_arrival(&mut self, to: HostId, frame: Vec<u8>) {
        if self.capture && self.underlay.nic(to).up {
            let now = self.now();
            self.hosts[to.0].capture.push((now, frame.clone()));
        }
        if let Err(why) = self.underlay.accept(to, &frame) {
            let host = self.host_name(to).to_string();
            self.record(TraceEvent::UnderlayDrop {
                host,
                reason: why.to_string(),
                bytes: frame.len(),
            });
            return;
        }
        let vtep = &mut self.hosts[to.0].vtep;
        let port = vtep.config().port;
        let is_vxlan = crate::underlay::outer_flow(&frame)
            .is_some_and(|(_, proto, p, _)| proto == 17 && p == Some(port));
        let is_gossip = crate::underlay::outer_flow(&frame)
            .is_some_and(|(_, proto, p, _)| proto == 17 && p == Some(gossip::GOSSIP_PORT));
        if is_gossip {
            let lag = self.hosts[to.0].gossip.lag;
            if lag > Duration::ZERO {
                self.engine
                    .schedule_in(lag, Event::GossipDeliver { host: to, frame });
            } else {
                self.gossip_packet_arrival(to, &frame);
            }
            return;
        }
        let is_tcp = crate::underlay::outer_flow(&frame).is_some_and(|(_, proto, _, _)| proto == 6);
        if is_tcp {
            self.host_tcp(to, frame[14..].to_vec());
            return;
        }
        if !is_vxlan {
            let host = self.host_name(to).to_string();
            self.record(TraceEvent::UnderlayDrop {
                host,
                reason: "no listener for this protocol/port".into(),
                bytes: frame.len(),
            });
            return;
        }
        match vtep.decapsulate(&frame) {
            Ok(d) => {
                // Where the inner frame sits in the outer one (`inner` borrows it).
                let start = (d.inner.as_ptr() as usize).wrapping_sub(frame.as_ptr() as usize);
                let (vni, end) = (d.vni, start + d.inner.len());
                self.bridge_deliver(to, vni, &frame[start..end], None);
                self.recycle(frame);
            }
            Err(reason) => {
                let host = self.host_name(to).to_string();
                self.record(TraceEvent::VtepDrop {
                    host,
                    reason: reason.as_str().to_string(),
                });
            }
        }
    }

    // ---- frame buffers ----------------------------------------------------------------

    /// A buffer of at least `len` bytes' capacity, from the pool when one is free. Pooled
    /// buffers all hold a whole Ethernet frame with its VXLAN headers, so a reused one
    /// never grows.
    fn frame_buf(&mut self, len: usize) -> Vec<u8> {
        match self.frame_pool.pop() {
            Some(mut v) if v.capacity() >= len => {
                v.clear();
                v
            }
            _ => Vec::with_capacity(len.max(FRAME_BUF)),
        }
    }

    /// A buffer holding a copy of `bytes`.
    fn frame_copy(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut v = self.frame_buf(bytes.len());
        v.extend_from_slice(bytes);
        v
    }

    /// A zeroed buffer of `len` bytes.
    fn frame_zeroed(&mut self, len: usize) -> Vec<u8> {
        let mut v = self.frame_buf(len);
        v.resize(len, 0);
        v
    }

    /// Give a frame's buffer back. The pool is bounded, and keeps only buffers of the
    /// standard size (made elsewhere, e.g. by a container's stack, they may be small).
    fn recycle(&mut self, frame: Vec<u8>) {
        const POOL: usize = 4096;
        if self.frame_pool.len() < POOL && frame.capacity() >= FRAME_BUF {
            self.frame_pool.push(frame);
        }
    }

    /// The containers of a host.
    pub fn containers_on(&self, host: HostId) -> &[ContainerId] {
        &self.by_host[host.0]
    }

    /// The containers ever given a name (lower case), running or not.
    pub fn containers_named(&self, name: &str) -> &[ContainerId] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    // ---- host bridge ------------------------------------------------------------------

    /// Deliver an inner frame to the local containers of `vni` it is addressed to
    /// (all of them for broadcast), except the sender.
    fn bridge_deliver(
        &mut self,
        host: HostId,
        vni: Vni,
        frame: &[u8],
        except: Option<ContainerId>,
    ) -> bool {
        let Some(dst) = MacAddr::from_slice(frame) else {
            return false;
        };
        let to_sandbox = self.hosts[host.0]
            .mesh
            .sandbox
            .is_some_and(|s| s.vni == vni && (dst.is_multicast() || s.mac == dst));
        if to_sandbox {
            let frame = self.frame_copy(frame);
            self.engine
                .schedule_in(Duration::from_micros(5), Event::Sandbox { host, frame });
        }
        // Only this host's containers: the bridge is the host's.
        let mut delivered = false;
        for i in 0..self.by_host[host.0].len() {
            let id = self.by_host[host.0][i];
            if Some(id) == except {
                continue;
            }
            let c = &self.containers[id.0];
            let on = |net: NetId, mac: MacAddr| {
                self.nets[net.0].vni == vni && (dst.is_multicast() || mac == dst)
            };
            if !(c.running && (on(c.net, c.mac) || c.more.iter().any(|i| on(i.net, i.mac)))) {
                continue;
            }
            delivered = true;
            // veth + bridge: a few microseconds.
            let frame = self.frame_copy(frame);
            self.engine
                .schedule_in(Duration::from_micros(5), Event::Container { to: id, frame });
        }
        delivered || (to_sandbox && !dst.is_multicast())
    }

    /// A container writes `frame` on one of its interfaces (the one whose MAC is the
    /// source), as a raw socket inside it would.
    pub fn container_send(&mut self, from: ContainerId, frame: Vec<u8>) {
        self.container_output(from, frame);
    }

    /// A container sends a frame: the host's bridge delivers it locally, the VTEP's ARP
    /// proxy answers it, or the VTEP tunnels it.
    fn container_output(&mut self, from: ContainerId, frame: Vec<u8>) {
        let c = &self.containers[from.0];
        if !c.running {
            return;
        }
        let src = MacAddr::from_slice(frame.get(6..).unwrap_or_default()).unwrap_or(c.mac);
        let iface = c.iface_iter().find(|i| i.mac == src).unwrap_or(Iface {
            net: c.net,
            ip: c.ip,
            mac: c.mac,
        });
        let (host, vni) = (c.host, self.nets[iface.net.0].vni);
        if frame.get(..6) == Some(&iface.mac.0[..]) {
            // Addressed to itself (a loopback reply): never leaves the namespace.
            self.engine.schedule_in(
                Duration::from_micros(10),
                Event::Container { to: from, frame },
            );
            return;
        }
        self.bridge_or_tunnel(host, vni, frame, Some(from));
    }

    /// Switch a frame on a host's bridge for `vni`: to local endpoints, to the VTEP's ARP
    /// proxy (broadcasts), or through the tunnel.
    pub(crate) fn bridge_or_tunnel(
        &mut self,
        host: HostId,
        vni: Vni,
        frame: Vec<u8>,
        from: Option<ContainerId>,
    ) {
        let local = self.bridge_deliver(host, vni, &frame, from);
        let dst = MacAddr::from_slice(&frame).unwrap_or_default();
        if dst.is_multicast() {
            let Some(from) = from else {
                return;
            };
            let mut reply = [0u8; 64];
            if let Some(n) = self.hosts[host.0].vtep.arp_proxy(vni, &frame, &mut reply) {
                self.engine.schedule_in(
                    Duration::from_micros(5),
                    Event::Container {
                        to: from,
                        frame: reply[..n].to_vec(),
                    },
                );
            }
            return;
        }
        if local {
            self.recycle(frame);
            return;
        }
        // The outer headers go into headroom in front of the inner frame.
        let mut buf = self.frame_zeroed(OUTER_LEN + frame.len());
        buf[OUTER_LEN..].copy_from_slice(&frame);
        let vtep = &mut self.hosts[host.0].vtep;
        let len = frame.len();
        match vtep.encapsulate(vni, &mut buf, OUTER_LEN, len) {
            Ok(Forward::Unicast(e)) => {
                self.recycle(frame);
                if e.start > 0 {
                    buf.drain(..e.start);
                }
                self.transmit(host, buf);
            }
            Ok(Forward::Flood) => {
                self.recycle(frame);
                self.recycle(buf);
            }
            Err(reason) => {
                let mut why = reason.as_str().to_string();
                if reason == vxlan::DropReason::TooBig {
                    let mtu = self.hosts[host.0].vtep.config().underlay_mtu;
                    why = format!(
                        "{why}: a {}-byte inner packet does not fit underlay MTU {mtu} minus 50 bytes of VXLAN",
                        frame.len() - 14
                    );
                }
                let host = self.host_name(host).to_string();
                self.record(TraceEvent::VtepDrop { host, reason: why });
            }
        }
    }

    // ---- container IPv4 stack -------------------------------------------------------

    fn container_input(&mut self, to: ContainerId, frame: &[u8]) {
        if !self.containers[to.0].running {
            return;
        }
        let c = &self.containers[to.0];
        let n_ifaces = c.more.len() + 1;
        // An echo request to a service VIP, turned around in the namespace.
        let vip = frame
            .get(30..34)
            .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            .filter(|d| {
                frame.get(12..14) == Some(&[0x08, 0x00]) && !c.iface_iter().any(|i| i.ip == *d)
            })
            .filter(|d| self.vip_backends(to, *d).is_some());
        if let (Some(vip), Some(mac)) = (vip, MacAddr::from_slice(frame)) {
            if let Some(reply) = crate::stack::reply_to(vip, mac, frame) {
                self.container_output(to, reply);
                return;
            }
        }
        for k in 0..n_ifaces {
            let Some(i) = self.containers[to.0].iface(k) else {
                break;
            };
            if let Some(reply) = crate::stack::reply_to(i.ip, i.mac, frame) {
                // Linux also learns the asker from an ARP request it answers.
                if let Ok((eth, rest)) = Ethernet2Header::from_slice(frame) {
                    if eth.ether_type == EtherType::ARP {
                        self.learn_arp(to, rest);
                    }
                }
                self.container_output(to, reply);
                return;
            }
        }
        let Ok((eth, rest)) = Ethernet2Header::from_slice(frame) else {
            return;
        };
        if !self.containers[to.0]
            .iface_iter()
            .any(|i| eth.destination == i.mac.0)
        {
            return;
        }
        match eth.ether_type {
            EtherType::ARP => self.learn_arp(to, rest),
            EtherType::IPV4 => {
                let proto = Ipv4HeaderSlice::from_slice(rest).map(|h| h.protocol());
                if proto == Ok(IpNumber::ICMP) {
                    self.container_echo_reply(to, rest);
                } else {
                    self.stack_input(crate::traffic::Owner::Container(to), rest.to_vec());
                }
            }
            _ => {}
        }
    }

    /// Cache the sender of an ARP packet and release the frames that waited for it.
    fn learn_arp(&mut self, to: ContainerId, payload: &[u8]) {
        let Ok(arp) = ArpPacketSlice::from_slice(payload) else {
            return;
        };
        let Ok(arp) = arp.to_packet().try_eth_ipv4() else {
            return;
        };
        let sender_ip = arp.sender_ipv4_addr();
        let sender_mac = MacAddr(arp.sender_mac);
        let c = &mut self.containers[to.0];
        c.arp.insert(sender_ip, sender_mac);
        let waiting = c.arp_pending.remove(&sender_ip).unwrap_or_default();
        for mut f in waiting {
            f[..6].copy_from_slice(&sender_mac.0);
            self.container_output(to, f);
        }
    }

    fn container_echo_reply(&mut self, to: ContainerId, payload: &[u8]) {
        let Ok(ip) = Ipv4HeaderSlice::from_slice(payload) else {
            return;
        };
        if !self
            .ifaces(to)
            .iter()
            .any(|i| i.ip == ip.destination_addr())
            || ip.protocol() != IpNumber::ICMP
        {
            return;
        }
        let total = usize::from(ip.total_len()).min(payload.len());
        let Some(body) = payload.get(ip.slice().len()..total) else {
            return;
        };
        let Ok(icmp) = Icmpv4Slice::from_slice(body) else {
            return;
        };
        if let Icmpv4Type::EchoReply(echo) = icmp.icmp_type() {
            let (ttl, len, from) = (ip.ttl(), body.len(), ip.source_addr());
            let numeric = self
                .session(to, echo.id)
                .is_some_and(|p| self.pings[p].numeric);
            let ptr = if numeric {
                None
            } else {
                self.ptr_name(to, from)
            };
            let shown = match ptr {
                Some(name) => format!("{name} ({from})"),
                None => from.to_string(),
            };
            if let Some(p) = self.session(to, echo.id) {
                let now = self.now();
                if self.pings[p].on_reply(now, echo.seq, &shown, ttl, len) {
                    self.ping_finish(PingId(p));
                }
            }
        }
    }

    /// Send an ICMP message from a container, resolving the next hop with ARP.
    fn send_ipv4_icmp(
        &mut self,
        from: ContainerId,
        dst: Ipv4Addr,
        icmp: Icmpv4Header,
        data: &[u8],
    ) {
        let src = self
            .iface_for(from, dst)
            .map_or(self.containers[from.0].ip, |i| i.ip);
        let payload_len = (icmp.header_len() + data.len()) as u16;
        let Ok(mut ip) =
            Ipv4Header::new(payload_len, 64, IpNumber::ICMP, src.octets(), dst.octets())
        else {
            return;
        };
        // Linux pings set DF (path MTU discovery), IP ID left to the stack.
        ip.dont_fragment = true;
        ip.header_checksum = ip.calc_header_checksum();
        let mut packet = Vec::with_capacity(20 + usize::from(payload_len));
        packet.extend_from_slice(&ip.to_bytes());
        packet.extend_from_slice(&icmp.to_bytes());
        packet.extend_from_slice(data);
        self.send_ip(from, packet);
    }

    /// Send an IP packet from a container: out of the interface whose subnet holds the
    /// destination, to the MAC ARP gives for it (the packet waits while ARP asks).
    pub(crate) fn send_ip(&mut self, from: ContainerId, packet: Vec<u8>) {
        let Some(dst) = packet
            .get(16..20)
            .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        else {
            return;
        };
        if dst == crate::netstack::EMBEDDED_DNS {
            // Docker's rules in the container's namespace hand 127.0.0.11:53 to the engine.
            return self.embedded_dns(from, &packet);
        }
        // Only a ping can be addressed to a VIP (connections are balanced when opened).
        let vip = packet.get(9) == Some(&1) && self.vip_backends(from, dst).is_some();
        let Some(iface) = self.iface_for(from, dst) else {
            if self.host_mode_reply(from, &packet) {
                return;
            }
            let c = &self.containers[from.0];
            let reason = if self.nets[c.net.0].name.starts_with("bridge@") {
                format!("no route to {dst} (swarmlab: the bridge network's outbound NAT is not simulated)")
            } else {
                format!("no route to {dst} (overlay-only containers have no default route)")
            };
            let name = c.name.clone();
            self.record(TraceEvent::StackDrop { at: name, reason });
            return;
        };
        let c = &self.containers[from.0];
        let dst_mac = c.arp.get(&dst).copied();
        let eth = Ethernet2Header {
            source: iface.mac.0,
            destination: dst_mac.unwrap_or_default().0,
            ether_type: EtherType::IPV4,
        };
        let mut frame = Vec::with_capacity(14 + packet.len());
        frame.extend_from_slice(&eth.to_bytes());
        frame.extend_from_slice(&packet);
        if dst == iface.ip || vip {
            // Loopback: the kernel turns it around without touching the interface. A
            // service VIP is configured in the container's own namespace (for IPVS), so
            // a ping to it is answered there too.
            frame[..6].copy_from_slice(&iface.mac.0);
            self.engine.schedule_in(
                Duration::from_micros(10),
                Event::Container { to: from, frame },
            );
            return;
        }
        if dst_mac.is_some() {
            self.container_output(from, frame);
            return;
        }
        let c = &mut self.containers[from.0];
        let first = !c.arp_pending.contains_key(&dst);
        c.arp_pending.entry(dst).or_default().push(frame);
        if first {
            self.arp_request(from, dst);
            self.engine.schedule_in(
                Duration::from_secs(1),
                Event::ArpRetry {
                    from,
                    ip: dst,
                    tries: 1,
                },
            );
        }
    }

    fn arp_request(&mut self, from: ContainerId, ip: Ipv4Addr) {
        let c = &self.containers[from.0];
        let i = self.iface_for(from, ip).unwrap_or(Iface {
            net: c.net,
            ip: c.ip,
            mac: c.mac,
        });
        let arp = etherparse::ArpEthIpv4Packet {
            operation: ArpOperation::REQUEST,
            sender_mac: i.mac.0,
            sender_ipv4: i.ip.octets(),
            target_mac: [0; 6],
            target_ipv4: ip.octets(),
        };
        let eth = Ethernet2Header {
            source: i.mac.0,
            destination: MacAddr::BROADCAST.0,
            ether_type: EtherType::ARP,
        };
        let mut frame = eth.to_bytes().to_vec();
        frame.extend_from_slice(&arp.to_bytes());
        self.container_output(from, frame);
    }

    fn arp_retry(&mut self, from: ContainerId, ip: Ipv4Addr, tries: u8) {
        if !self.containers[from.0].arp_pending.contains_key(&ip) {
            return;
        }
        if tries < 3 {
            self.arp_request(from, ip);
            self.engine.schedule_in(
                Duration::from_secs(1),
                Event::ArpRetry {
                    from,
                    ip,
                    tries: tries + 1,
                },
            );
            return;
        }
        // Resolution failed: the stack reports "Destination Host Unreachable" to the
        // sockets whose packets were waiting.
        let waiting = self.containers[from.0]
            .arp_pending
            .remove(&ip)
            .unwrap_or_default();
        let name = self.containers[from.0].name.clone();
        self.record(TraceEvent::ArpFailed {
            container: name,
            ip: ip.to_string(),
        });
        let src = self
            .iface_for(from, ip)
            .map_or(self.containers[from.0].ip, |i| i.ip);
        self.stack_unreachable(crate::traffic::Owner::Container(from), ip);
        for f in waiting {
            let Some(body) = f.get(34..) else { continue };
            let Ok(icmp) = Icmpv4Slice::from_slice(body) else {
                continue;
            };
            if let Icmpv4Type::EchoRequest(IcmpEchoHeader { id, seq }) = icmp.icmp_type() {
                if let Some(p) = self.session(from, id) {
                    let now = self.now();
                    if self.pings[p].on_unreachable(now, seq, src) {
                        self.ping_finish(PingId(p));
                    }
                }
            }
        }
    }

    // ---- ping -------------------------------------------------------------------------

    /// The unfinished ping session of `container` using echo identifier `ident`.
    fn session(&self, container: ContainerId, ident: u16) -> Option<usize> {
        self.pings
            .iter()
            .rposition(|p| !p.finished && p.container == container && echo_ident(p.id) == ident)
    }

    /// The name Docker's embedded DNS gives `ip` in a PTR answer: `NAME.NETWORK` for a
    /// running container on the asker's network.
    pub fn ptr_name(&self, asker: ContainerId, ip: Ipv4Addr) -> Option<String> {
        let net = self.containers[asker.0].net;
        self.containers
            .iter()
            .find(|c| c.running && c.net == net && c.ip == ip)
            .map(|c| format!("{}.{}", c.name, self.nets[net.0].name))
    }

    /// Start `ping` in a container. The session's output accumulates in `pings[id]`.
    pub fn start_ping(
        &mut self,
        from: ContainerId,
        target: &str,
        dst: Ipv4Addr,
        options: PingOptions,
    ) -> PingId {
        let id = PingId(self.pings.len());
        let now = self.now();
        self.pings
            .push(Ping::new(id, from, target, dst, options, now));
        self.ping_send(id);
        id
    }

    fn ping_send(&mut self, id: PingId) {
        let p = &mut self.pings[id.0];
        if p.finished {
            return;
        }
        let now = self.engine.now();
        let Some(seq) = p.next_seq(now) else { return };
        let (from, dst, size, interval, more) =
            (p.container, p.dst, p.size, p.interval, p.has_more());
        let data: Vec<u8> = (0..size).map(|i| (i % 256) as u8).collect();
        let header = Icmpv4Header::with_checksum(
            Icmpv4Type::EchoRequest(IcmpEchoHeader {
                id: echo_ident(id),
                seq,
            }),
            &data,
        );
        self.send_ipv4_icmp(from, dst, header, &data);
        if more {
            self.engine.schedule_in(interval, Event::PingSend(id));
        } else {
            let wait = self.pings[id.0].linger();
            self.engine.schedule_in(wait, Event::PingDeadline(id));
        }
    }

    fn ping_finish(&mut self, id: PingId) {
        let now = self.now();
        let p = &mut self.pings[id.0];
        if p.finished {
            return;
        }
        p.finish(now);
    }
}
