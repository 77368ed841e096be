//! Property tests: every `Repr` round-trips, and no input makes the VTEP panic.

mod common;
use common::*;
use proptest::prelude::*;
use vxlan::{Header, HeaderRepr, ReservedBits, Vni, OUTER_LEN};

proptest! {
    #[test]
    fn vxlan_header_round_trips(
        vni in 0u32..=Vni::MAX,
        reserved_flags in any::<u8>(),
        reserved1 in 0u32..=0x00ff_ffff,
        reserved2 in any::<u8>(),
    ) {
        let repr = HeaderRepr { vni: Vni::new(vni).unwrap(), reserved_flags: reserved_flags & !0x08, reserved1, reserved2 };
        let mut buf = [0xa5u8; 8];
        repr.emit(&mut Header::new_unchecked(&mut buf[..]));
        let parsed = HeaderRepr::parse(&Header::new_checked(&buf[..]).unwrap(), ReservedBits::Ignore);
        prop_assert_eq!(parsed, Ok(repr));
        // A sender's header has every reserved bit zero and passes the strict policy.
        let clean = HeaderRepr::new(repr.vni);
        clean.emit(&mut Header::new_unchecked(&mut buf[..]));
        let strict = HeaderRepr::parse(&Header::new_checked(&buf[..]).unwrap(), ReservedBits::Drop);
        prop_assert_eq!(strict, Ok(clean));
    }

    #[test]
    fn parsing_arbitrary_header_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
        if let Ok(h) = Header::new_checked(&bytes[..]) {
            let _ = HeaderRepr::parse(&h, ReservedBits::Ignore);
            let _ = HeaderRepr::parse(&h, ReservedBits::Drop);
            prop_assert_eq!(h.vni().get() >> 24, 0);
        }
    }

    #[test]
    fn encap_then_decap_round_trips(len in 14usize..=1464, fill in any::<u8>()) {
        let (mut a, mut b) = pair();
        let mut inner = vec![fill; len];
        inner[..6].copy_from_slice(&C2_MAC.0);
        inner[6..12].copy_from_slice(&C1_MAC.0);
        let mut buf = with_headroom(&inner);
        let e = a.encapsulate_to(vni(), B_IP, &mut buf, OUTER_LEN, len).unwrap();
        let d = b.decapsulate(&buf[e.range()]).unwrap();
        prop_assert_eq!(d.inner, &inner[..]);
        prop_assert_eq!(d.remote, A_IP);
    }

    #[test]
    fn decapsulating_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (_, mut b) = pair();
        let _ = b.decapsulate(&bytes);
        let _ = b.decapsulate_datagram(A_IP, &bytes);
        let mut out = [0u8; 64];
        let _ = b.arp_proxy(vni(), &bytes, &mut out);
        prop_assert_eq!(b.counters().decapsulated + b.counters().dropped_total(), 2);
    }

    #[test]
    fn corrupting_a_valid_frame_never_panics(pos in 0usize..114, byte in any::<u8>(), cut in 0usize..114) {
        let (mut a, mut b) = pair();
        let inner = echo_frame(64);
        let mut buf = with_headroom(&inner);
        let e = a.encapsulate_to(vni(), B_IP, &mut buf, OUTER_LEN, 64).unwrap();
        let mut frame = buf[e.range()].to_vec();
        frame[pos] = byte;
        frame.truncate(cut.max(1));
        let _ = b.decapsulate(&frame);
    }
}
