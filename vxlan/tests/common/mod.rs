//! Two VTEPs wired to each other, and inner frames to send between them.
#![allow(dead_code)]

use etherparse::PacketBuilder;
use std::net::Ipv4Addr;
use vxlan::{Config, MacAddr, Vni, Vtep};

pub const VNI: u32 = 4097;
pub const A_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 11);
pub const B_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 12);
pub const A_MAC: MacAddr = MacAddr([0x02, 0, 0xc0, 0xa8, 1, 11]);
pub const B_MAC: MacAddr = MacAddr([0x02, 0, 0xc0, 0xa8, 1, 12]);
pub const C1_MAC: MacAddr = MacAddr([0x02, 0x42, 10, 0, 1, 2]);
pub const C2_MAC: MacAddr = MacAddr([0x02, 0x42, 10, 0, 1, 3]);
pub const C1_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
pub const C2_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 3);

pub fn vni() -> Vni {
    Vni::new(VNI).unwrap()
}

/// VTEPs on A (hosting c1) and B (hosting c2), programmed as Docker would.
pub fn pair() -> (Vtep, Vtep) {
    let mut a = Vtep::new(Config::docker(A_IP, A_MAC));
    let mut b = Vtep::new(Config::docker(B_IP, B_MAC));
    for v in [&mut a, &mut b] {
        v.add_network(vni());
        v.set_neighbor(A_IP, A_MAC);
        v.set_neighbor(B_IP, B_MAC);
        v.add_arp(vni(), C1_IP, C1_MAC).unwrap();
        v.add_arp(vni(), C2_IP, C2_MAC).unwrap();
    }
    a.add_fdb(vni(), C2_MAC, B_IP).unwrap();
    b.add_fdb(vni(), C1_MAC, A_IP).unwrap();
    (a, b)
}

/// An ICMP echo request frame c1 -> c2 whose Ethernet frame is `len` bytes long.
pub fn echo_frame(len: usize) -> Vec<u8> {
    let payload = vec![0x5a; len - 14 - 20 - 8];
    let builder = PacketBuilder::ethernet2(C1_MAC.0, C2_MAC.0)
        .ipv4(C1_IP.octets(), C2_IP.octets(), 64)
        .icmpv4_echo_request(7, 1);
    let mut out = Vec::with_capacity(len);
    builder.write(&mut out, &payload).unwrap();
    assert_eq!(out.len(), len);
    out
}

/// `frame` placed after `vxlan::OUTER_LEN` bytes of headroom.
pub fn with_headroom(frame: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; vxlan::OUTER_LEN];
    buf.extend_from_slice(frame);
    buf
}
