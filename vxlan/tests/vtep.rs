//! The VTEP's behaviour, as a specification: what it sends, what it accepts, what it
//! drops and why.

mod common;
use common::*;
use etherparse::{PacketBuilder, SlicedPacket};
use vxlan::{DropReason, Forward, MacAddr, ReservedBits, Vni, Vtep, OUTER_LEN};

fn encap(a: &mut Vtep, inner: &[u8]) -> Vec<u8> {
    let mut buf = with_headroom(inner);
    match a
        .encapsulate(vni(), &mut buf, OUTER_LEN, inner.len())
        .unwrap()
    {
        Forward::Unicast(e) => buf[e.range()].to_vec(),
        Forward::Flood => panic!("expected unicast"),
    }
}

#[test]
fn encapsulated_frame_has_correct_outer_headers() {
    let (mut a, _) = pair();
    let inner = echo_frame(98);
    let outer = encap(&mut a, &inner);
    assert_eq!(outer.len(), inner.len() + 50);
    let p = SlicedPacket::from_ethernet(&outer).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
        panic!()
    };
    assert_eq!(eth.source(), A_MAC.0);
    assert_eq!(eth.destination(), B_MAC.0);
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!()
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert!(h.dont_fragment);
    assert_eq!(h.time_to_live, 64);
    assert_eq!(h.source, A_IP.octets());
    assert_eq!(h.destination, B_IP.octets());
    let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else {
        panic!()
    };
    assert_eq!(udp.destination_port(), 4789);
    assert!(udp.source_port() >= 49152);
    assert_eq!(udp.checksum(), 0);
    let payload = udp.payload();
    assert_eq!(&payload[..8], &[0x08, 0, 0, 0, 0x00, 0x10, 0x01, 0]);
    assert_eq!(&payload[8..], &inner[..]);
    assert_eq!(a.counters().encapsulated, 1);
}

#[test]
fn decapsulation_returns_the_inner_frame_and_its_sender() {
    let (mut a, mut b) = pair();
    let inner = echo_frame(64);
    let outer = encap(&mut a, &inner);
    let d = b.decapsulate(&outer).unwrap();
    assert_eq!(d.inner, &inner[..]);
    assert_eq!(d.vni, vni());
    assert_eq!(d.remote, A_IP);
    assert_eq!(b.counters().decapsulated, 1);
}

fn expect_drop(b: &mut Vtep, frame: &[u8], reason: DropReason) {
    let before = b.counters().dropped(reason);
    assert_eq!(b.decapsulate(frame).unwrap_err(), reason);
    assert_eq!(
        b.counters().dropped(reason),
        before + 1,
        "{reason:?} not counted"
    );
}

#[test]
fn every_bad_layer_is_dropped_with_its_reason() {
    let (mut a, mut b) = pair();
    let good = encap(&mut a, &echo_frame(64));

    expect_drop(&mut b, &good[..10], DropReason::Truncated);
    expect_drop(&mut b, &good[..40], DropReason::Truncated);

    let mut f = good.clone();
    f[14] = 0x65; // version 6
    expect_drop(&mut b, &f, DropReason::BadIpVersion);

    let mut f = good.clone();
    f[14] = 0x44; // IHL 4
    expect_drop(&mut b, &f, DropReason::BadIhl);

    let mut f = good.clone();
    f[14 + 10] ^= 0xff; // checksum
    expect_drop(&mut b, &f, DropReason::BadIpChecksum);

    let mut f = good.clone();
    f[34 + 2..34 + 4].copy_from_slice(&8472u16.to_be_bytes());
    expect_drop(&mut b, &f, DropReason::WrongPort);

    let mut f = good.clone();
    f[42] = 0x00; // I flag unset
    expect_drop(&mut b, &f, DropReason::NoVniFlag);

    let mut f = good.clone();
    f[42 + 4..42 + 7].copy_from_slice(&[0, 0x10, 0x02]); // VNI 4098
    expect_drop(&mut b, &f, DropReason::UnknownVni);

    let mut f = good.clone();
    f[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
    expect_drop(&mut b, &f, DropReason::WrongMac);

    let mut f = good.clone();
    f[34 + 6..34 + 8].copy_from_slice(&[0x12, 0x34]); // bogus UDP checksum
    expect_drop(&mut b, &f, DropReason::BadUdpChecksum);
}

#[test]
fn unknown_vtep_is_dropped_when_learning_is_off_and_learned_when_on() {
    let (mut a, mut b) = pair();
    b.remove_fdb(vni(), C1_MAC);
    let outer = encap(&mut a, &echo_frame(64));
    expect_drop(&mut b, &outer, DropReason::UnknownVtep);

    let mut cfg = *b.config();
    cfg.learning = true;
    let mut learner = Vtep::new(cfg);
    learner.add_network(vni());
    assert!(learner.decapsulate(&outer).is_ok());
    assert_eq!(learner.fdb_lookup(vni(), C1_MAC), Some(A_IP));
}

#[test]
fn reserved_bits_follow_the_configured_policy() {
    let (mut a, mut b) = pair();
    let mut outer = encap(&mut a, &echo_frame(64));
    outer[42 + 7] = 0x01;
    assert!(
        b.decapsulate(&outer).is_ok(),
        "RFC policy ignores reserved bits"
    );
    let mut cfg = *b.config();
    cfg.reserved_bits = ReservedBits::Drop;
    let mut linux = Vtep::new(cfg);
    linux.add_network(vni());
    linux.add_peer(vni(), A_IP).unwrap();
    expect_drop(&mut linux, &outer, DropReason::ReservedBits);
}

#[test]
fn inner_frame_beyond_underlay_mtu_minus_50_is_refused() {
    let (mut a, _) = pair();
    // Inner IP 1450 fits a 1500 underlay; 1451 does not.
    let fits = echo_frame(14 + 1450);
    let mut buf = with_headroom(&fits);
    assert!(a
        .encapsulate(vni(), &mut buf, OUTER_LEN, fits.len())
        .is_ok());
    let too_big = echo_frame(14 + 1451);
    let mut buf = with_headroom(&too_big);
    assert_eq!(
        a.encapsulate(vni(), &mut buf, OUTER_LEN, too_big.len()),
        Err(DropReason::TooBig)
    );
    assert_eq!(a.counters().dropped(DropReason::TooBig), 1);
}

#[test]
fn fdb_miss_is_dropped_under_docker_policy_and_flooded_when_asked() {
    let (mut a, _) = pair();
    let mut inner = echo_frame(64);
    inner[..6].copy_from_slice(&[2, 0x42, 10, 0, 1, 99]);
    let mut buf = with_headroom(&inner);
    assert_eq!(
        a.encapsulate(vni(), &mut buf, OUTER_LEN, inner.len()),
        Err(DropReason::UnknownDestination)
    );
    let mut cfg = *a.config();
    cfg.unknown_destination = vxlan::UnknownDestination::Flood;
    let mut flood = Vtep::new(cfg);
    flood.add_network(vni());
    flood.add_peer(vni(), B_IP).unwrap();
    assert_eq!(
        flood.encapsulate(vni(), &mut buf, OUTER_LEN, inner.len()),
        Ok(Forward::Flood)
    );
    assert_eq!(flood.peers(vni()), vec![B_IP]);
}

#[test]
fn missing_headroom_is_an_error_not_a_panic() {
    let (mut a, _) = pair();
    let inner = echo_frame(64);
    let mut buf = inner.clone();
    assert_eq!(
        a.encapsulate_to(vni(), B_IP, &mut buf, 0, inner.len()),
        Err(DropReason::NoHeadroom)
    );
}

#[test]
fn arp_proxy_answers_for_known_peers_only() {
    let (mut a, _) = pair();
    let request = |target: [u8; 4]| {
        let arp = etherparse::ArpEthIpv4Packet {
            operation: etherparse::ArpOperation::REQUEST,
            sender_mac: C1_MAC.0,
            sender_ipv4: C1_IP.octets(),
            target_mac: [0; 6],
            target_ipv4: target,
        };
        let mut f = etherparse::Ethernet2Header {
            source: C1_MAC.0,
            destination: MacAddr::BROADCAST.0,
            ether_type: etherparse::EtherType::ARP,
        }
        .to_bytes()
        .to_vec();
        f.extend_from_slice(&arp.to_bytes());
        f
    };
    let mut out = [0u8; 64];
    let n = a
        .arp_proxy(vni(), &request(C2_IP.octets()), &mut out)
        .unwrap();
    let reply = etherparse::ArpPacketSlice::from_slice(&out[14..n])
        .unwrap()
        .to_packet()
        .try_eth_ipv4()
        .unwrap();
    assert_eq!(reply.operation, etherparse::ArpOperation::REPLY);
    assert_eq!(reply.sender_mac, C2_MAC.0);
    assert_eq!(reply.target_ipv4, C1_IP.octets());
    assert_eq!(a.arp_proxy(vni(), &request([10, 0, 1, 77]), &mut out), None);
    assert_eq!(a.counters().arp_proxied, 1);
}

#[test]
fn datagram_decap_serves_a_live_socket() {
    let (mut a, mut b) = pair();
    let inner = echo_frame(64);
    let mut buf = with_headroom(&inner);
    let Forward::Unicast(e) = a
        .encapsulate(vni(), &mut buf, OUTER_LEN, inner.len())
        .unwrap()
    else {
        panic!()
    };
    let d = b.decapsulate_datagram(A_IP, &buf[e.udp_payload()]).unwrap();
    assert_eq!(d.inner, &inner[..]);
    let other = Vni::new(5000).unwrap();
    assert!(!b.has_network(other));
    let _ = PacketBuilder::ethernet2([0; 6], [0; 6]); // etherparse builder stays in use
}
