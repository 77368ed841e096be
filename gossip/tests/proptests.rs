//! Bad input never panics: arbitrary bytes, truncated msgpack, wrong types, huge
//! push/pulls, 255-part compounds and unknown types are typed errors plus counters.

use gossip::member::StreamInput;
use gossip::wire::{self, MessageType};
use gossip::{Config, Member};
use proptest::prelude::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

fn member() -> Member {
    Member::new(
        Config::memberlist_lan(),
        "m0",
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 7946),
        Duration::ZERO,
        1,
    )
}

fn from() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7946)
}

fn dropped(m: &Member) -> u64 {
    m.counters().dropped.values().sum()
}

proptest! {
    #[test]
    fn arbitrary_packets_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut m = member();
        m.handle_packet(Duration::ZERO, from(), &bytes);
        let _ = m.handle_stream(Duration::ZERO, &bytes);
    }

    #[test]
    fn every_message_type_with_garbage_never_panics(ty in 0u8..=14, body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut m = member();
        let mut msg = vec![ty];
        msg.extend_from_slice(&body);
        m.handle_packet(Duration::ZERO, from(), &msg);
        m.handle_packet(Duration::ZERO, from(), &wire::with_crc(&msg));
        m.handle_packet(Duration::ZERO, from(), &wire::compress(&msg));
    }
}

#[test]
fn unknown_type_and_truncated_msgpack_are_counted() {
    let mut m = member();
    m.handle_packet(Duration::ZERO, from(), &[200, 1, 2]);
    assert_eq!(m.counters().dropped.get("unknown-type"), Some(&1));
    let ping = wire::encode(
        MessageType::Ping,
        &wire::Ping {
            node: "m0".into(),
            seq_no: 5,
            ..Default::default()
        },
    );
    m.handle_packet(Duration::ZERO, from(), &ping[..ping.len() - 3]);
    assert_eq!(m.counters().dropped.get("truncated"), Some(&1));
    let mut bad_crc = wire::with_crc(&ping);
    bad_crc[2] ^= 0xff;
    m.handle_packet(Duration::ZERO, from(), &bad_crc);
    assert_eq!(m.counters().dropped.get("bad-crc"), Some(&1));
}

#[test]
fn a_wrong_type_in_a_field_is_malformed() {
    let mut m = member();
    // An ack whose SeqNo is a string.
    let mut msg = vec![MessageType::Ack as u8, 0x81, 0xa5];
    msg.extend_from_slice(b"SeqNo");
    msg.extend_from_slice(&[0xa3, b'x', b'y', b'z']);
    m.handle_packet(Duration::ZERO, from(), &msg);
    assert_eq!(m.counters().dropped.get("malformed"), Some(&1));
}

#[test]
fn compound_of_255_parts_is_handled() {
    let mut m = member();
    let ping = wire::encode(
        MessageType::Ping,
        &wire::Ping {
            node: "m0".into(),
            seq_no: 5,
            ..Default::default()
        },
    );
    let parts = vec![ping; 300];
    let c = wire::compound(&parts);
    assert_eq!(c[1], 255, "capped at 255 parts");
    m.handle_packet(Duration::ZERO, from(), &c);
    let mut acks = 0;
    while let Some(t) = m.poll_transmit() {
        if matches!(t, gossip::Transmit::Packet { .. }) {
            acks += 1;
        }
    }
    assert_eq!(acks, 255, "one ack per ping part");
}

#[test]
fn oversized_push_pull_is_refused() {
    let mut m = member();
    let mut msg = wire::encode(
        MessageType::PushPull,
        &wire::PushPullHeader {
            join: true,
            nodes: u32::MAX,
            user_state_len: 0,
        },
    );
    msg.extend_from_slice(&[0; 8]);
    assert_eq!(m.handle_stream(Duration::ZERO, &msg), StreamInput::Close);
    assert_eq!(m.counters().dropped.get("too-large"), Some(&1));
    // An encrypted envelope that claims more than 20 MiB is refused before reading it.
    let mut cfg = Config::memberlist_lan();
    cfg.keyring = gossip::security::Keyring::new(gossip::security::Key::new(&[1; 16]).unwrap());
    let mut enc = Member::new(
        cfg,
        "m0",
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1),
        Duration::ZERO,
        1,
    );
    let mut big = vec![MessageType::Encrypt as u8];
    big.extend_from_slice(&(30u32 << 20).to_be_bytes());
    // Refused before reading it, with an error reply as memberlist's handleConn sends.
    assert!(matches!(
        enc.handle_stream(Duration::ZERO, &big),
        StreamInput::Reply(_)
    ));
    assert_eq!(enc.counters().dropped.get("too-large"), Some(&1));
    assert!(dropped(&enc) >= 1);
}

#[test]
fn stale_and_unknown_accusations_are_ignored() {
    let mut m = member();
    let s = wire::encode(
        MessageType::Suspect,
        &wire::Accusation {
            from: "x".into(),
            incarnation: 9,
            node: "nobody".into(),
        },
    );
    m.handle_packet(Duration::ZERO, from(), &s);
    assert!(
        m.poll_event().is_some_and(|e| e.member == "m0"),
        "only our own join event"
    );
    assert!(
        m.poll_event().is_none(),
        "an accusation about an unknown member changes nothing"
    );
    // About ourselves at an old incarnation: ignored; at ours: refuted.
    let me = wire::encode(
        MessageType::Suspect,
        &wire::Accusation {
            from: "x".into(),
            incarnation: 1,
            node: "m0".into(),
        },
    );
    m.handle_packet(Duration::ZERO, from(), &me);
    assert_eq!(m.members()[0].incarnation, 2, "refuted with incarnation 2");
}

#[test]
fn an_lzw_bomb_is_cut_off_and_counted() {
    let mut m = member();
    // 4 MiB of one byte compresses to a few KiB; a UDP packet may expand to 1 MiB at most.
    let inner = vec![b'a'; 4 << 20];
    let bomb = wire::compress(&inner);
    assert!(
        bomb.len() < 64 * 1024,
        "the bomb fits a datagram ({} bytes)",
        bomb.len()
    );
    m.handle_packet(Duration::ZERO, from(), &bomb);
    assert_eq!(m.counters().dropped.get("too-large"), Some(&1));
}

#[test]
fn an_alive_at_incarnation_zero_registers_nothing_alive() {
    let mut m = member();
    let a = wire::Alive {
        addr: serde_bytes::ByteBuf::from(vec![10, 0, 0, 9]),
        incarnation: 0,
        meta: None,
        node: "ghost".into(),
        port: 7946,
        vsn: serde_bytes::ByteBuf::from(wire::VSN.to_vec()),
    };
    m.handle_packet(
        Duration::ZERO,
        from(),
        &wire::encode(MessageType::Alive, &a),
    );
    assert_eq!(
        m.state_of("ghost"),
        Some(gossip::State::Dead),
        "registered as dead, as memberlist does"
    );
    assert_eq!(m.live_members(), vec!["m0"]);
    // At incarnation 1 it is alive; a left member may come back at a new address.
    let a1 = wire::Alive {
        incarnation: 1,
        ..a.clone()
    };
    m.handle_packet(
        Duration::ZERO,
        from(),
        &wire::encode(MessageType::Alive, &a1),
    );
    assert_eq!(m.state_of("ghost"), Some(gossip::State::Alive));
    let leave = wire::Accusation {
        from: "ghost".into(),
        incarnation: 1,
        node: "ghost".into(),
    };
    m.handle_packet(
        Duration::ZERO,
        from(),
        &wire::encode(MessageType::Dead, &leave),
    );
    assert_eq!(m.state_of("ghost"), Some(gossip::State::Left));
    let moved = wire::Alive {
        addr: serde_bytes::ByteBuf::from(vec![10, 0, 0, 10]),
        ..a1
    };
    m.handle_packet(
        Duration::ZERO,
        from(),
        &wire::encode(MessageType::Alive, &moved),
    );
    assert_eq!(m.state_of("ghost"), Some(gossip::State::Alive));
}

proptest! {
    /// Whatever members come, go, move, are suspected, die or leave and are reaped, a
    /// lookup by name finds exactly the entry the member list holds for that name.
    #[test]
    fn lookups_by_name_always_agree_with_the_member_list(
        ops in proptest::collection::vec((0u8..4, 0usize..6, 0u32..4, 0u8..2, 0u64..40), 1..60)
    ) {
        let names = ["m0", "a", "b", "c", "d", "e"];
        let mut m = member();
        let mut now = Duration::ZERO;
        for (op, who, inc, variant, advance) in ops {
            let node = names[who].to_string();
            let msg = match op {
                0 => wire::encode(MessageType::Alive, &wire::Alive {
                    addr: serde_bytes::ByteBuf::from(vec![10, 0, 1, who as u8 * 2 + variant]),
                    incarnation: inc,
                    meta: (variant == 1).then(|| serde_bytes::ByteBuf::from(b"x".to_vec())),
                    node,
                    port: 7946,
                    vsn: serde_bytes::ByteBuf::from(wire::VSN.to_vec()),
                }),
                1 | 2 => {
                    let from = if op == 2 { node.clone() } else { "e".to_string() };
                    let ty = if op == 1 { MessageType::Suspect } else { MessageType::Dead };
                    wire::encode(ty, &wire::Accusation { from, incarnation: inc, node })
                }
                _ => wire::encode(MessageType::Dead, &wire::Accusation {
                    from: "e".into(),
                    incarnation: inc,
                    node,
                }),
            };
            m.handle_packet(now, from(), &msg);
            now += Duration::from_secs(advance);
            m.handle_timeout(now);
            while m.poll_transmit().is_some() {}
            while m.poll_event().is_some() {}
            let list = m.members();
            let mut listed: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
            listed.dedup();
            prop_assert_eq!(listed.len(), list.len(), "a name listed twice");
            prop_assert!(listed.contains(&"m0"));
            for info in &list {
                prop_assert_eq!(m.info(&info.name), Some(info.clone()));
                prop_assert_eq!(m.state_of(&info.name), Some(info.state));
            }
            for name in names {
                if !listed.contains(&name) {
                    prop_assert_eq!(m.info(name), None);
                }
            }
        }
    }
}
