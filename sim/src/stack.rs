//! The answering half of a container's IPv4 stack, shared by the simulator and the live
//! driver: ARP requests for our address and ICMP echo requests to it get their replies.

use etherparse::{
    ArpOperation, ArpPacketSlice, EtherType, Ethernet2Header, Icmpv4Header, Icmpv4Slice,
    Icmpv4Type, IpNumber, Ipv4Header, Ipv4HeaderSlice,
};
use std::net::Ipv4Addr;
use vxlan::MacAddr;

/// The reply an interface with `ip`/`mac` owes to `frame`, if any.
pub fn reply_to(ip: Ipv4Addr, mac: MacAddr, frame: &[u8]) -> Option<Vec<u8>> {
    let (eth, rest) = Ethernet2Header::from_slice(frame).ok()?;
    if eth.destination != mac.0 && !MacAddr(eth.destination).is_multicast() {
        return None;
    }
    match eth.ether_type {
        EtherType::ARP => {
            let arp = ArpPacketSlice::from_slice(rest)
                .ok()?
                .to_packet()
                .try_eth_ipv4()
                .ok()?;
            if arp.operation != ArpOperation::REQUEST || arp.target_ipv4_addr() != ip {
                return None;
            }
            let mut out = [0u8; 64];
            let n = vxlan::vtep::arp_reply(
                &mut out,
                mac,
                ip,
                MacAddr(arp.sender_mac),
                arp.sender_ipv4_addr(),
            )?;
            Some(out[..n].to_vec())
        }
        EtherType::IPV4 => {
            let req = Ipv4HeaderSlice::from_slice(rest).ok()?;
            if req.destination_addr() != ip || req.protocol() != IpNumber::ICMP {
                return None;
            }
            let total = usize::from(req.total_len()).min(rest.len());
            let body = rest.get(req.slice().len()..total)?;
            let icmp = Icmpv4Slice::from_slice(body).ok()?;
            let Icmpv4Type::EchoRequest(echo) = icmp.icmp_type() else {
                return None;
            };
            let data = icmp.payload();
            let reply = Icmpv4Header::with_checksum(Icmpv4Type::EchoReply(echo), data);
            let mut ip_h = Ipv4Header::new(
                (reply.header_len() + data.len()) as u16,
                64,
                IpNumber::ICMP,
                ip.octets(),
                req.source(),
            )
            .ok()?;
            ip_h.dont_fragment = req.dont_fragment();
            ip_h.header_checksum = ip_h.calc_header_checksum();
            let eth = Ethernet2Header {
                source: mac.0,
                destination: eth.source,
                ether_type: EtherType::IPV4,
            };
            let mut out = Vec::with_capacity(14 + 20 + reply.header_len() + data.len());
            out.extend_from_slice(&eth.to_bytes());
            out.extend_from_slice(&ip_h.to_bytes());
            out.extend_from_slice(&reply.to_bytes());
            out.extend_from_slice(data);
            Some(out)
        }
        _ => None,
    }
}
