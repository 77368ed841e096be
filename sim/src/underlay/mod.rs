//! The underlay: hosts' NICs on one LAN, links with latency, jitter, loss and bandwidth,
//! partitions (two-way and one-way), host crashes, and per-host inbound firewalls; and
//! the TCP segments the control streams put on the taps (`segments`).
//!
//! It decides whether and when an outer frame reaches another host. It does not look
//! inside VXLAN and knows nothing of containers.

pub mod segments;

use crate::engine::Rng;
use crate::time::{Duration, Instant};
use etherparse::{
    EtherType, Ethernet2Header, IpNumber, Ipv4HeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use vxlan::MacAddr;

/// Index of a host in the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub usize);

/// A transport protocol, as firewall rules name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        })
    }
}

/// An inbound firewall rule: drop `proto` traffic to `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRule {
    /// Protocol.
    pub proto: Proto,
    /// Destination port.
    pub port: u16,
}

impl fmt::Display for PortRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proto, self.port)
    }
}

/// Properties of the path between two hosts (the same in both directions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkParams {
    /// One-way latency.
    pub latency: Duration,
    /// Each frame's latency varies uniformly within ± this.
    pub jitter: Duration,
    /// Probability that a frame is lost, 0.0..=1.0.
    pub loss: f64,
    /// Bits per second; `None` is unlimited.
    pub bandwidth: Option<u64>,
}

impl Default for LinkParams {
    /// A switched LAN: 0.1 ms, no jitter, no loss, no bandwidth limit.
    fn default() -> LinkParams {
        LinkParams {
            latency: Duration::from_micros(100),
            jitter: Duration::ZERO,
            loss: 0.0,
            bandwidth: None,
        }
    }
}

/// One host's network interface.
#[derive(Clone, Debug)]
pub struct Nic {
    /// Host name.
    pub name: String,
    /// Underlay IPv4 address.
    pub ip: Ipv4Addr,
    /// Underlay MAC, derived from the IP (02:00 + the four octets).
    pub mac: MacAddr,
    /// Interface MTU.
    pub mtu: u16,
    /// Whether the host is running.
    pub up: bool,
    /// Inbound rules.
    pub blocked: BTreeSet<PortRule>,
}

/// Why the underlay did not deliver a frame.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum UnderlayDrop {
    /// No host owns the destination IP.
    NoRoute(Ipv4Addr),
    /// The sender or the receiver is crashed.
    HostDown(String),
    /// A partition separates the two hosts.
    Partitioned,
    /// Random loss on the link.
    Loss,
    /// The frame is larger than the sender's or receiver's MTU and DF forbids
    /// fragmenting it.
    Mtu {
        /// IP packet length.
        len: usize,
        /// The MTU it exceeded.
        mtu: u16,
    },
    /// The receiver's firewall blocks it.
    Firewall(PortRule),
}

impl fmt::Display for UnderlayDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnderlayDrop::NoRoute(ip) => write!(f, "no route to {ip}"),
            UnderlayDrop::HostDown(h) => write!(f, "host {h} is down"),
            UnderlayDrop::Partitioned => write!(f, "partitioned"),
            UnderlayDrop::Loss => write!(f, "lost on the link"),
            UnderlayDrop::Mtu { len, mtu } => {
                write!(f, "{len}-byte packet exceeds MTU {mtu} with DF set")
            }
            UnderlayDrop::Firewall(rule) => write!(f, "firewall blocks {rule}"),
        }
    }
}

/// A one-way cut: frames from any of `from` to any of `to` are dropped.
#[derive(Clone, Debug)]
struct Cut {
    from: BTreeSet<HostId>,
    to: BTreeSet<HostId>,
}

/// The LAN joining every host.
#[derive(Debug, Default)]
pub struct Underlay {
    nics: Vec<Nic>,
    names: BTreeMap<String, HostId>,
    ips: BTreeMap<Ipv4Addr, HostId>,
    links: BTreeMap<(HostId, HostId), LinkParams>,
    busy_until: BTreeMap<(HostId, HostId), Instant>,
    cuts: Vec<Cut>,
    default_link: LinkParams,
}

/// The outer IPv4 destination, protocol number, transport destination port and IPv4
/// total length of a frame, read with etherparse.
pub fn outer_flow(frame: &[u8]) -> Option<(Ipv4Addr, u8, Option<u16>, usize)> {
    let (eth, rest) = Ethernet2Header::from_slice(frame).ok()?;
    if eth.ether_type != EtherType::IPV4 {
        return None;
    }
    let ip = Ipv4HeaderSlice::from_slice(rest).ok()?;
    let l4 = &rest[ip.slice().len()..];
    let port = match ip.protocol() {
        IpNumber::UDP => UdpHeaderSlice::from_slice(l4)
            .ok()
            .map(|u| u.destination_port()),
        IpNumber::TCP => TcpHeaderSlice::from_slice(l4)
            .ok()
            .map(|t| t.destination_port()),
        _ => None,
    };
    Some((
        ip.destination_addr(),
        ip.protocol().0,
        port,
        usize::from(ip.total_len()),
    ))
}

impl Underlay {
    /// Add a host; returns its id.
    pub fn add_host(&mut self, name: &str, ip: Ipv4Addr, mtu: u16) -> HostId {
        let o = ip.octets();
        self.nics.push(Nic {
            name: name.to_string(),
            ip,
            mac: MacAddr([0x02, 0x00, o[0], o[1], o[2], o[3]]),
            mtu,
            up: true,
            blocked: BTreeSet::new(),
        });
        let id = HostId(self.nics.len() - 1);
        self.names.insert(name.to_string(), id);
        self.ips.insert(ip, id);
        id
    }

    /// A host's NIC.
    pub fn nic(&self, id: HostId) -> &Nic {
        &self.nics[id.0]
    }

    /// Every NIC, by id.
    pub fn nics(&self) -> impl Iterator<Item = (HostId, &Nic)> {
        self.nics.iter().enumerate().map(|(i, n)| (HostId(i), n))
    }

    /// The host with this name.
    pub fn by_name(&self, name: &str) -> Option<HostId> {
        self.names.get(name).copied()
    }

    /// The host with this underlay IP.
    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<HostId> {
        self.ips.get(&ip).copied()
    }

    /// Set the path between every pair of hosts without a `link` of their own.
    pub fn set_default_link(&mut self, params: LinkParams) {
        self.default_link = params;
    }

    /// Set the path between `a` and `b`.
    pub fn set_link(&mut self, a: HostId, b: HostId, params: LinkParams) {
        self.links.insert((a.min(b), a.max(b)), params);
    }

    /// The path between `a` and `b`.
    pub fn link(&self, a: HostId, b: HostId) -> LinkParams {
        self.links
            .get(&(a.min(b), a.max(b)))
            .copied()
            .unwrap_or(self.default_link)
    }

    /// Crash or restart a host.
    pub fn set_up(&mut self, host: HostId, up: bool) {
        self.nics[host.0].up = up;
    }

    /// Add or remove an inbound rule; returns whether anything changed.
    pub fn set_blocked(&mut self, host: HostId, rule: PortRule, blocked: bool) -> bool {
        let set = &mut self.nics[host.0].blocked;
        if blocked {
            set.insert(rule)
        } else {
            set.remove(&rule)
        }
    }

    /// Cut traffic from every host of `from` to every host of `to`.
    pub fn cut(&mut self, from: BTreeSet<HostId>, to: BTreeSet<HostId>) {
        self.cuts.push(Cut { from, to });
    }

    /// Remove every partition.
    pub fn heal(&mut self) {
        self.cuts.clear();
    }

    /// Whether a partition stops frames from `a` to `b`.
    pub fn is_cut(&self, a: HostId, b: HostId) -> bool {
        self.cuts
            .iter()
            .any(|c| c.from.contains(&a) && c.to.contains(&b))
    }

    /// Send an outer frame from `from`: where and when it arrives, or why it never will.
    /// The receiver's firewall and state are checked on arrival, by `accept`.
    pub fn transmit(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        from: HostId,
        frame: &[u8],
    ) -> Result<(HostId, Instant), UnderlayDrop> {
        let src = &self.nics[from.0];
        if !src.up {
            return Err(UnderlayDrop::HostDown(src.name.clone()));
        }
        let Some((dst_ip, _, _, ip_len)) = outer_flow(frame) else {
            return Err(UnderlayDrop::NoRoute(Ipv4Addr::UNSPECIFIED));
        };
        let to = self.by_ip(dst_ip).ok_or(UnderlayDrop::NoRoute(dst_ip))?;
        let mtu = src.mtu.min(self.nics[to.0].mtu);
        if ip_len > usize::from(mtu) {
            return Err(UnderlayDrop::Mtu { len: ip_len, mtu });
        }
        if self.is_cut(from, to) {
            return Err(UnderlayDrop::Partitioned);
        }
        let link = self.link(from, to);
        if rng.chance(link.loss) {
            return Err(UnderlayDrop::Loss);
        }
        // Serialization: a frame waits for the previous one on this direction to finish.
        let mut depart = now;
        if let Some(bps) = link.bandwidth {
            let busy = self.busy_until.entry((from, to)).or_insert(now);
            depart = (*busy).max(now);
            let bits = (frame.len() as u64 + 24) * 8; // preamble, SFD, FCS and gap
            *busy = depart + Duration(bits * 1_000_000_000 / bps.max(1));
            depart = *busy;
        }
        let mut latency = i128::from(link.latency.as_nanos());
        if link.jitter > Duration::ZERO {
            let j = link.jitter.as_nanos().min(u64::MAX / 4);
            latency += i128::from(rng.below(2 * j + 1)) - i128::from(j);
        }
        let latency = u64::try_from(latency.max(0)).unwrap_or(u64::MAX);
        Ok((to, depart + Duration(latency)))
    }

    /// Whether `host` takes in an arriving frame: it must be up and its firewall must let
    /// the frame's protocol and port through.
    pub fn accept(&self, host: HostId, frame: &[u8]) -> Result<(), UnderlayDrop> {
        let nic = &self.nics[host.0];
        if !nic.up {
            return Err(UnderlayDrop::HostDown(nic.name.clone()));
        }
        if let Some((_, proto, Some(port), _)) = outer_flow(frame) {
            let proto = match proto {
                17 => Some(Proto::Udp),
                6 => Some(Proto::Tcp),
                _ => None,
            };
            if let Some(proto) = proto {
                let rule = PortRule { proto, port };
                if nic.blocked.contains(&rule) {
                    return Err(UnderlayDrop::Firewall(rule));
                }
            }
        }
        Ok(())
    }
}

/// `A.B.C.D/N` with N at most 30 (a subnet with room for hosts), as the scenario
/// language and Docker's `--subnet` write it.
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, prefix) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    (prefix <= 30).then_some((ip, prefix))
}
