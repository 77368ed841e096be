//! `Vtep`: one VXLAN tunnel endpoint, without I/O.
//!
//! It owns, per VNI, a forwarding database (inner MAC -> remote VTEP IPv4) and an ARP
//! proxy table (inner IP -> MAC), as Docker's overlay driver programs them into the
//! kernel (static entries, `proxy`, no learning). Encapsulation writes the outer
//! Ethernet/IPv4/UDP/VXLAN headers into headroom in front of the inner frame; decapsulation
//! validates every layer and returns a view of the inner frame. Every refusal is a typed
//! `DropReason` and a counter. Nothing here allocates per packet or can panic on input.

use crate::flow;
use crate::mac::MacAddr;
use crate::wire::{self, Header, HeaderRepr, ReservedBits, Vni};
use etherparse::{
    checksum::Sum16BitWords, ArpOperation, ArpPacketSlice, EtherType, Ethernet2Header,
    Ethernet2HeaderSlice, IpNumber, Ipv4Header, Ipv4HeaderSlice, UdpHeader, UdpHeaderSlice,
};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv4Addr;

/// A fixed multiplicative hasher for the packet path's small keys (VNI, IPv4, MAC).
/// SipHash with a random key costs more than the whole encapsulation; these maps are only
/// ever looked up on the packet path, and anything iterated is sorted first, so the
/// simulator's output never depends on hash order.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // The low bits of a product depend only on the low bits of the key (for Docker's
        // MACs, the constant 02:42); hashbrown indexes buckets by the low bits, so bring
        // the well-mixed high bits down.
        self.0.rotate_left(26)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut x = [0u8; 8];
            x[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(x));
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// The IANA port for VXLAN (RFC 7348 §5).
pub const VXLAN_PORT: u16 = 4789;

const ETH_LEN: usize = Ethernet2Header::LEN;
const IPV4_LEN: usize = Ipv4Header::MIN_LEN;
const UDP_LEN: usize = UdpHeader::LEN;

/// Bytes of outer headers in front of the inner frame: Ethernet 14 + IPv4 20 + UDP 8 +
/// VXLAN 8. The inner IP MTU is the underlay MTU minus this (1450 under 1500), because the
/// inner Ethernet header also rides inside the outer IP packet.
pub const OUTER_LEN: usize = ETH_LEN + IPV4_LEN + UDP_LEN + wire::HEADER_LEN;

/// What to do with a frame whose destination MAC has no FDB entry (or is broadcast).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownDestination {
    /// Drop and count it. Docker's overlay does this: its FDB is fully programmed and
    /// ARP is answered by the proxy, so a miss means the peer is not (yet) known.
    Drop,
    /// Tell the caller to replicate the frame to every VTEP of the VNI (head-end
    /// replication, as a kernel vxlan device with an all-zeros FDB entry does).
    Flood,
}

/// How a VTEP behaves. Field defaults follow `Config::docker`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// This VTEP's underlay address (the outer source IP).
    pub local_ip: Ipv4Addr,
    /// This VTEP's underlay MAC (the outer source MAC).
    pub local_mac: MacAddr,
    /// UDP destination port: 4789, or a swarm's `--data-path-port`.
    pub port: u16,
    /// The underlay MTU; inner IP packets above `underlay_mtu - 50` are refused.
    pub underlay_mtu: u16,
    /// Outer IPv4 TTL.
    pub ttl: u8,
    /// Whether the outer IPv4 header carries DF.
    pub dont_fragment: bool,
    /// What to do with reserved bits on receive.
    pub reserved_bits: ReservedBits,
    /// Learn inner source MAC -> outer source IP from received frames.
    pub learning: bool,
    /// What to do on an FDB miss.
    pub unknown_destination: UnknownDestination,
}

impl Config {
    /// The settings Docker's overlay driver gives its vxlan devices: port 4789, static
    /// FDB and ARP proxy (`proxy`, `nolearning`), a 1500-byte underlay, TTL 64, DF set,
    /// RFC reserved-bits handling.
    pub fn docker(local_ip: Ipv4Addr, local_mac: MacAddr) -> Config {
        Config {
            local_ip,
            local_mac,
            port: VXLAN_PORT,
            underlay_mtu: 1500,
            ttl: 64,
            dont_fragment: true,
            reserved_bits: ReservedBits::Ignore,
            learning: false,
            unknown_destination: UnknownDestination::Drop,
        }
    }

    /// The largest inner IP packet this VTEP carries: 1450 under a 1500 underlay.
    pub fn inner_mtu(&self) -> usize {
        usize::from(self.underlay_mtu).saturating_sub(OUTER_LEN)
    }
}

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $name:ident => $text:literal,)*) => {
        /// Why a frame was not encapsulated or decapsulated.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
        pub enum DropReason {
            $($(#[$doc])* #[error($text)] $name,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];

            /// A short stable name, for counters and traces.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(DropReason::$name => $text,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// A header, or the frame, is shorter than its lengths say.
    Truncated => "truncated",
    /// The outer EtherType is not IPv4.
    NotIpv4 => "not-ipv4",
    /// The outer Ethernet destination is neither this VTEP nor broadcast.
    WrongMac => "wrong-mac",
    /// The IPv4 version field is not 4.
    BadIpVersion => "bad-ip-version",
    /// The IPv4 IHL is below 5 or beyond the total length.
    BadIhl => "bad-ihl",
    /// The IPv4 header checksum does not verify.
    BadIpChecksum => "bad-ip-checksum",
    /// The outer IPv4 destination is not this VTEP.
    NotForUs => "not-for-us",
    /// The outer IPv4 packet is a fragment (we do not reassemble).
    Fragment => "fragment",
    /// The outer IPv4 protocol is not UDP.
    NotUdp => "not-udp",
    /// The UDP destination port is not the VXLAN port.
    WrongPort => "wrong-port",
    /// The UDP length field disagrees with the packet.
    BadUdpLength => "bad-udp-length",
    /// The UDP checksum is non-zero and does not verify.
    BadUdpChecksum => "bad-udp-checksum",
    /// The VXLAN I flag is unset.
    NoVniFlag => "no-vni-flag",
    /// Reserved VXLAN bits are set under the Linux policy.
    ReservedBits => "reserved-bits",
    /// The VNI is not configured on this VTEP.
    UnknownVni => "unknown-vni",
    /// The sending VTEP is not a known peer of this VNI and learning is off.
    UnknownVtep => "unknown-vtep",
    /// No FDB entry for the inner destination, and the policy is to drop.
    UnknownDestination => "unknown-destination",
    /// No underlay MAC is known for the remote VTEP.
    NoNeighbor => "no-neighbor",
    /// The inner frame exceeds the underlay MTU minus the 50 bytes of encapsulation.
    TooBig => "too-big",
    /// The buffer has fewer than 50 bytes of headroom in front of the inner frame.
    NoHeadroom => "no-headroom",
}

impl From<wire::Error> for DropReason {
    fn from(e: wire::Error) -> DropReason {
        match e {
            wire::Error::Truncated => DropReason::Truncated,
            wire::Error::NoVniFlag => DropReason::NoVniFlag,
            wire::Error::ReservedBits => DropReason::ReservedBits,
        }
    }
}

/// Packet counters of one VTEP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames encapsulated.
    pub encapsulated: u64,
    /// Frames decapsulated.
    pub decapsulated: u64,
    /// ARP requests answered by the proxy.
    pub arp_proxied: u64,
    dropped: [u64; DropReason::ALL.len()],
}

impl Counters {
    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }

    /// Frames dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Non-zero drop counters, in a fixed order.
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.dropped[*r as usize]))
            .filter(|(_, n)| *n > 0)
    }
}

/// The result of encapsulating one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encapsulated {
    /// Where the outer frame starts in the buffer.
    pub start: usize,
    /// Its length in bytes (inner + 50).
    pub len: usize,
    /// The remote VTEP it goes to.
    pub remote: Ipv4Addr,
}

impl Encapsulated {
    /// The byte range of the outer frame in the buffer.
    pub fn range(&self) -> core::ops::Range<usize> {
        self.start..self.start + self.len
    }

    /// The range of the UDP payload (VXLAN header + inner frame): what a live driver
    /// hands to a UDP socket, the kernel adding the outer headers itself.
    pub fn udp_payload(&self) -> core::ops::Range<usize> {
        self.start + ETH_LEN + IPV4_LEN + UDP_LEN..self.start + self.len
    }
}

/// What `Vtep::encapsulate` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Encapsulated to one remote VTEP.
    Unicast(Encapsulated),
    /// Broadcast or FDB miss under `UnknownDestination::Flood`: replicate the frame with
    /// `encapsulate_to` for each of `peers(vni)`.
    Flood,
}

/// A decapsulated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decapsulated<'a> {
    /// Its network.
    pub vni: Vni,
    /// The VTEP that sent it.
    pub remote: Ipv4Addr,
    /// The inner Ethernet frame, borrowed from the input.
    pub inner: &'a [u8],
}

#[derive(Debug, Default)]
struct Network {
    fdb: FastMap<MacAddr, Ipv4Addr>,
    arp: BTreeMap<Ipv4Addr, MacAddr>,
    /// Known VTEPs of this VNI (keyed by address as u32), with how many reasons each is
    /// known (FDB entries plus an explicit `add_peer`).
    peers: FastMap<u32, u32>,
}

impl Network {
    fn retain_peer(&mut self, ip: Ipv4Addr) {
        *self.peers.entry(u32::from(ip)).or_insert(0) += 1;
    }

    fn release_peer(&mut self, ip: Ipv4Addr) {
        if let Some(n) = self.peers.get_mut(&u32::from(ip)) {
            *n -= 1;
            if *n == 0 {
                self.peers.remove(&u32::from(ip));
            }
        }
    }
}

/// The networks of one VTEP, sorted by VNI. A host serves a handful of networks, so a
/// binary search over a short vector beats hashing on the packet path, and iteration is
/// in VNI order for free.
#[derive(Debug, Default)]
struct VniTable(Vec<(Vni, Network)>);

impl VniTable {
    #[inline]
    fn get(&self, vni: &Vni) -> Option<&Network> {
        let i = self.0.binary_search_by_key(vni, |(v, _)| *v).ok()?;
        Some(&self.0[i].1)
    }

    #[inline]
    fn get_mut(&mut self, vni: &Vni) -> Option<&mut Network> {
        let i = self.0.binary_search_by_key(vni, |(v, _)| *v).ok()?;
        Some(&mut self.0[i].1)
    }

    #[inline]
    fn contains_key(&self, vni: &Vni) -> bool {
        self.get(vni).is_some()
    }

    fn get_or_insert(&mut self, vni: Vni) -> &mut Network {
        let i = match self.0.binary_search_by_key(&vni, |(v, _)| *v) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (vni, Network::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    fn remove(&mut self, vni: &Vni) -> Option<Network> {
        let i = self.0.binary_search_by_key(vni, |(v, _)| *v).ok()?;
        Some(self.0.remove(i).1)
    }
}

/// One VXLAN tunnel endpoint.
#[derive(Debug)]
pub struct Vtep {
    config: Config,
    networks: VniTable,
    /// Per remote VTEP, its outer Ethernet/IPv4/UDP headers prepared once with etherparse,
    /// so that encapsulation copies 42 bytes and patches the lengths, the IPv4 checksum
    /// and the source port instead of building three headers per packet.
    remotes: FastMap<u32, OuterTemplate>,
    counters: Counters,
}

/// Outer headers towards one remote VTEP, with zero lengths and zero source port.
#[derive(Debug, Clone, Copy)]
struct OuterTemplate {
    bytes: [u8; ETH_LEN + IPV4_LEN + UDP_LEN],
    /// The IPv4 checksum of the template (total length 0), to patch incrementally.
    ip_checksum: u16,
}

mod outer {
    use super::{ETH_LEN, IPV4_LEN};
    pub const IP_TOTAL_LEN: usize = ETH_LEN + 2;
    pub const IP_CHECKSUM: usize = ETH_LEN + 10;
    pub const UDP_SRC_PORT: usize = ETH_LEN + IPV4_LEN;
    pub const UDP_LEN: usize = ETH_LEN + IPV4_LEN + 4;
}

impl OuterTemplate {
    fn new(config: &Config, remote: Ipv4Addr, next_hop: MacAddr) -> OuterTemplate {
        let mut bytes = [0u8; ETH_LEN + IPV4_LEN + UDP_LEN];
        let eth = Ethernet2Header {
            source: config.local_mac.0,
            destination: next_hop.0,
            ether_type: EtherType::IPV4,
        };
        bytes[..ETH_LEN].copy_from_slice(&eth.to_bytes());
        let mut ip = Ipv4Header {
            time_to_live: config.ttl,
            protocol: IpNumber::UDP,
            source: config.local_ip.octets(),
            destination: remote.octets(),
            // Linux leaves the IP ID 0 on DF tunnel packets that have no socket behind them.
            dont_fragment: config.dont_fragment,
            ..Default::default()
        };
        ip.total_len = 0;
        ip.header_checksum = ip.calc_header_checksum();
        bytes[ETH_LEN..ETH_LEN + IPV4_LEN].copy_from_slice(&ip.to_bytes());
        // UDP checksum 0: allowed for IPv4 (RFC 7348 §5, RFC 768).
        let udp = UdpHeader {
            source_port: 0,
            destination_port: config.port,
            length: 0,
            checksum: 0,
        };
        bytes[ETH_LEN + IPV4_LEN..].copy_from_slice(&udp.to_bytes());
        OuterTemplate {
            bytes,
            ip_checksum: ip.header_checksum,
        }
    }

    /// Write the outer headers for an IPv4 total length and UDP source port. The
    /// checksum is updated as RFC 1624 eqn. 3 says: the template's total length was 0.
    #[inline]
    fn write(&self, out: &mut [u8], ip_total_len: u16, src_port: u16) {
        out[..self.bytes.len()].copy_from_slice(&self.bytes);
        let sum = u32::from(!self.ip_checksum) + u32::from(ip_total_len);
        let sum = (sum & 0xffff) + (sum >> 16);
        let checksum = !(sum as u16);
        let udp_len = ip_total_len - IPV4_LEN as u16;
        out[outer::IP_TOTAL_LEN..outer::IP_TOTAL_LEN + 2]
            .copy_from_slice(&ip_total_len.to_be_bytes());
        out[outer::IP_CHECKSUM..outer::IP_CHECKSUM + 2].copy_from_slice(&checksum.to_be_bytes());
        out[outer::UDP_SRC_PORT..outer::UDP_SRC_PORT + 2].copy_from_slice(&src_port.to_be_bytes());
        out[outer::UDP_LEN..outer::UDP_LEN + 2].copy_from_slice(&udp_len.to_be_bytes());
    }
}

impl Vtep {
    /// A VTEP with no networks.
    pub fn new(config: Config) -> Vtep {
        Vtep {
            config,
            networks: VniTable::default(),
            remotes: FastMap::default(),
            counters: Counters::default(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Its counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Serve a VNI (idempotent).
    pub fn add_network(&mut self, vni: Vni) {
        self.networks.get_or_insert(vni);
    }

    /// Stop serving a VNI, forgetting its FDB and ARP entries.
    pub fn remove_network(&mut self, vni: Vni) -> bool {
        self.networks.remove(&vni).is_some()
    }

    /// Whether a VNI is served.
    pub fn has_network(&self, vni: Vni) -> bool {
        self.networks.contains_key(&vni)
    }

    /// Served VNIs, in ascending order.
    pub fn networks(&self) -> Vec<Vni> {
        self.networks.0.iter().map(|(vni, _)| *vni).collect()
    }

    /// Record the underlay MAC of a remote VTEP (what underlay ARP would resolve), and
    /// prepare the outer headers towards it.
    pub fn set_neighbor(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        self.remotes
            .insert(u32::from(ip), OuterTemplate::new(&self.config, ip, mac));
    }

    /// Program a static FDB entry: inner `mac` on `vni` lives behind VTEP `remote`.
    pub fn add_fdb(&mut self, vni: Vni, mac: MacAddr, remote: Ipv4Addr) -> Result<(), DropReason> {
        let net = self.networks.get_mut(&vni).ok_or(DropReason::UnknownVni)?;
        if let Some(old) = net.fdb.insert(mac, remote) {
            net.release_peer(old);
        }
        net.retain_peer(remote);
        Ok(())
    }

    /// Remove an FDB entry; returns the VTEP it pointed to.
    pub fn remove_fdb(&mut self, vni: Vni, mac: MacAddr) -> Option<Ipv4Addr> {
        let net = self.networks.get_mut(&vni)?;
        let old = net.fdb.remove(&mac)?;
        net.release_peer(old);
        Some(old)
    }

    /// The VTEP behind an inner MAC.
    pub fn fdb_lookup(&self, vni: Vni, mac: MacAddr) -> Option<Ipv4Addr> {
        self.networks.get(&vni)?.fdb.get(&mac).copied()
    }

    /// Declare `remote` a VTEP of `vni` without an FDB entry (a flood target, and a
    /// sender accepted when learning is off).
    pub fn add_peer(&mut self, vni: Vni, remote: Ipv4Addr) -> Result<(), DropReason> {
        self.networks
            .get_mut(&vni)
            .ok_or(DropReason::UnknownVni)?
            .retain_peer(remote);
        Ok(())
    }

    /// The known VTEPs of a VNI, in address order.
    pub fn peers(&self, vni: Vni) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self
            .networks
            .get(&vni)
            .into_iter()
            .flat_map(|n| n.peers.keys().map(|ip| Ipv4Addr::from(*ip)))
            .collect();
        v.sort();
        v
    }

    /// Program an ARP proxy entry: `ip` on `vni` has inner MAC `mac`.
    pub fn add_arp(&mut self, vni: Vni, ip: Ipv4Addr, mac: MacAddr) -> Result<(), DropReason> {
        self.networks
            .get_mut(&vni)
            .ok_or(DropReason::UnknownVni)?
            .arp
            .insert(ip, mac);
        Ok(())
    }

    /// Remove an ARP proxy entry.
    pub fn remove_arp(&mut self, vni: Vni, ip: Ipv4Addr) -> Option<MacAddr> {
        self.networks.get_mut(&vni)?.arp.remove(&ip)
    }

    /// The MAC the ARP proxy gives for `ip`.
    pub fn arp_lookup(&self, vni: Vni, ip: Ipv4Addr) -> Option<MacAddr> {
        self.networks.get(&vni)?.arp.get(&ip).copied()
    }

    fn drop(&mut self, reason: DropReason) -> DropReason {
        self.counters.dropped[reason as usize] += 1;
        reason
    }

    /// Encapsulate the inner frame at `buf[inner_start..inner_start + inner_len]` towards
    /// whatever VTEP the FDB names for its destination MAC.
    pub fn encapsulate(
        &mut self,
        vni: Vni,
        buf: &mut [u8],
        inner_start: usize,
        inner_len: usize,
    ) -> Result<Forward, DropReason> {
        let Some(dst) = buf
            .get(inner_start..inner_start.saturating_add(inner_len))
            .and_then(MacAddr::from_slice)
        else {
            return Err(self.drop(DropReason::Truncated));
        };
        let remote = match self.networks.get(&vni) {
            None => return Err(self.drop(DropReason::UnknownVni)),
            Some(_) if dst.is_multicast() => None,
            Some(net) => net.fdb.get(&dst).copied(),
        };
        match (remote, self.config.unknown_destination) {
            (Some(remote), _) => self
                .encapsulate_to(vni, remote, buf, inner_start, inner_len)
                .map(Forward::Unicast),
            (None, UnknownDestination::Flood) => Ok(Forward::Flood),
            (None, UnknownDestination::Drop) => Err(self.drop(DropReason::UnknownDestination)),
        }
    }

    /// Encapsulate the inner frame at `buf[inner_start..inner_start + inner_len]` to a
    /// given remote VTEP, writing the 50 bytes of outer headers just in front of it.
    pub fn encapsulate_to(
        &mut self,
        vni: Vni,
        remote: Ipv4Addr,
        buf: &mut [u8],
        inner_start: usize,
        inner_len: usize,
    ) -> Result<Encapsulated, DropReason> {
        if inner_start < OUTER_LEN {
            return Err(self.drop(DropReason::NoHeadroom));
        }
        let start = inner_start - OUTER_LEN;
        let end = inner_start.saturating_add(inner_len);
        if end > buf.len() || inner_len < ETH_LEN {
            return Err(self.drop(DropReason::Truncated));
        }
        if inner_len - ETH_LEN > self.config.inner_mtu() {
            return Err(self.drop(DropReason::TooBig));
        }
        if !self.networks.contains_key(&vni) {
            return Err(self.drop(DropReason::UnknownVni));
        }
        let Some(template) = self.remotes.get(&u32::from(remote)) else {
            return Err(self.drop(DropReason::NoNeighbor));
        };
        let (outer, inner) = buf[start..end].split_at_mut(OUTER_LEN);
        // The MTU check above bounds this far below u16::MAX.
        let ip_total_len = (IPV4_LEN + UDP_LEN + wire::HEADER_LEN + inner_len) as u16;
        // Assemble the 50 bytes on the stack and store them once.
        let mut headers = [0u8; OUTER_LEN];
        template.write(&mut headers, ip_total_len, flow::source_port(inner));
        let mut vxlan = Header::new_unchecked(&mut headers[ETH_LEN + IPV4_LEN + UDP_LEN..]);
        HeaderRepr::new(vni).emit(&mut vxlan);
        outer.copy_from_slice(&headers);

        self.counters.encapsulated += 1;
        Ok(Encapsulated {
            start,
            len: OUTER_LEN + inner_len,
            remote,
        })
    }

    /// Validate an outer Ethernet frame layer by layer and return its inner frame.
    pub fn decapsulate<'a>(&mut self, frame: &'a [u8]) -> Result<Decapsulated<'a>, DropReason> {
        match self.check_outer(frame) {
            Ok((src, payload)) => self.decapsulate_datagram(src, payload),
            Err(reason) => Err(self.drop(reason)),
        }
    }

    fn check_outer<'a>(&self, frame: &'a [u8]) -> Result<(Ipv4Addr, &'a [u8]), DropReason> {
        let eth = Ethernet2HeaderSlice::from_slice(frame).map_err(|_| DropReason::Truncated)?;
        if eth.ether_type() != EtherType::IPV4 {
            return Err(DropReason::NotIpv4);
        }
        let dst_mac = MacAddr(eth.destination());
        if dst_mac != self.config.local_mac && dst_mac != MacAddr::BROADCAST {
            return Err(DropReason::WrongMac);
        }
        let l3 = &frame[ETH_LEN..];
        let ip = Ipv4HeaderSlice::from_slice(l3).map_err(|e| {
            use etherparse::err::ipv4::{HeaderError, HeaderSliceError};
            match e {
                HeaderSliceError::Len(_) => DropReason::Truncated,
                HeaderSliceError::Content(HeaderError::UnexpectedVersion { .. }) => {
                    DropReason::BadIpVersion
                }
                HeaderSliceError::Content(_) => DropReason::BadIhl,
            }
        })?;
        let header = ip.slice();
        if Sum16BitWords::new().add_slice(header).ones_complement() != 0 {
            return Err(DropReason::BadIpChecksum);
        }
        let total = usize::from(ip.total_len());
        if total > l3.len() {
            return Err(DropReason::Truncated);
        }
        if total < header.len() {
            return Err(DropReason::BadIhl);
        }
        if ip.destination_addr() != self.config.local_ip {
            return Err(DropReason::NotForUs);
        }
        if ip.more_fragments() || ip.fragments_offset().value() != 0 {
            return Err(DropReason::Fragment);
        }
        if ip.protocol() != IpNumber::UDP {
            return Err(DropReason::NotUdp);
        }
        let l4 = &l3[header.len()..total];
        let udp = UdpHeaderSlice::from_slice(l4).map_err(|_| DropReason::Truncated)?;
        if udp.destination_port() != self.config.port {
            return Err(DropReason::WrongPort);
        }
        let udp_len = usize::from(udp.length());
        if udp_len < UDP_LEN || udp_len > l4.len() {
            return Err(DropReason::BadUdpLength);
        }
        let payload = &l4[UDP_LEN..udp_len];
        if udp.checksum() != 0 {
            let ok = udp
                .to_header()
                .calc_checksum_ipv4_raw(ip.source(), ip.destination(), payload)
                .map(|c| c == udp.checksum())
                .unwrap_or(false);
            if !ok {
                return Err(DropReason::BadUdpChecksum);
            }
        }
        Ok((ip.source_addr(), payload))
    }

    /// Decapsulate a UDP payload (VXLAN header + inner frame) received from `src`: what a
    /// live driver reads from a socket on 4789, the kernel having checked the outer layers.
    pub fn decapsulate_datagram<'a>(
        &mut self,
        src: Ipv4Addr,
        payload: &'a [u8],
    ) -> Result<Decapsulated<'a>, DropReason> {
        let reserved = self.config.reserved_bits;
        let header = Header::new_checked(payload).map_err(|e| self.drop(e.into()))?;
        let repr = HeaderRepr::parse(&header, reserved).map_err(|e| self.drop(e.into()))?;
        let inner = &payload[wire::HEADER_LEN..];
        if inner.len() < ETH_LEN {
            return Err(self.drop(DropReason::Truncated));
        }
        let learning = self.config.learning;
        let Some(net) = self.networks.get_mut(&repr.vni) else {
            return Err(self.drop(DropReason::UnknownVni));
        };
        if !learning && !net.peers.contains_key(&u32::from(src)) {
            return Err(self.drop(DropReason::UnknownVtep));
        }
        if learning {
            // Learn inner source MAC -> sending VTEP, as a kernel vxlan device with
            // `learning` does (RFC 7348 §4).
            if let Some(src_mac) = MacAddr::from_slice(&inner[6..]) {
                if !src_mac.is_multicast() && net.fdb.get(&src_mac) != Some(&src) {
                    if let Some(old) = net.fdb.insert(src_mac, src) {
                        net.release_peer(old);
                    }
                    net.retain_peer(src);
                }
            }
        }
        self.counters.decapsulated += 1;
        Ok(Decapsulated {
            vni: repr.vni,
            remote: src,
            inner,
        })
    }

    /// Answer an ARP request from the proxy table, as a kernel vxlan device with `proxy`
    /// does: when `request` (an inner Ethernet frame on `vni`) asks for an IP the table
    /// knows, write the reply frame into `out` and return its length.
    pub fn arp_proxy(&mut self, vni: Vni, request: &[u8], out: &mut [u8]) -> Option<usize> {
        let eth = Ethernet2HeaderSlice::from_slice(request).ok()?;
        if eth.ether_type() != EtherType::ARP {
            return None;
        }
        let arp = ArpPacketSlice::from_slice(&request[ETH_LEN..])
            .ok()?
            .to_packet()
            .try_eth_ipv4()
            .ok()?;
        if arp.operation != ArpOperation::REQUEST {
            return None;
        }
        let mac = self.arp_lookup(vni, arp.target_ipv4_addr())?;
        let len = arp_reply(
            out,
            mac,
            arp.target_ipv4_addr(),
            MacAddr(arp.sender_mac),
            arp.sender_ipv4_addr(),
        )?;
        self.counters.arp_proxied += 1;
        Some(len)
    }
}

/// Write an ARP reply frame ("`ip` is at `mac`", to `to_mac`/`to_ip`) into `out`;
/// returns its length, or `None` when `out` is too small.
pub fn arp_reply(
    out: &mut [u8],
    mac: MacAddr,
    ip: Ipv4Addr,
    to_mac: MacAddr,
    to_ip: Ipv4Addr,
) -> Option<usize> {
    let eth = Ethernet2Header {
        source: mac.0,
        destination: to_mac.0,
        ether_type: EtherType::ARP,
    };
    let reply = etherparse::ArpEthIpv4Packet {
        operation: ArpOperation::REPLY,
        sender_mac: mac.0,
        sender_ipv4: ip.octets(),
        target_mac: to_mac.0,
        target_ipv4: to_ip.octets(),
    };
    let len = ETH_LEN + etherparse::ArpEthIpv4Packet::LEN;
    let out = out.get_mut(..len)?;
    out[..ETH_LEN].copy_from_slice(&eth.to_bytes());
    out[ETH_LEN..].copy_from_slice(&reply.to_bytes());
    Some(len)
}
