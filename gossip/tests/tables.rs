//! NetworkDB on top of membership, as a specification: entries spread within their
//! network only, late joiners catch up by bulk sync, deletes are tombstones, newer
//! Lamport times win, and a dead member's entries vanish.

mod common;
use common::Net;
use gossip::tables::Change;
use gossip::Config;
use std::time::Duration;

fn entries(net: &Net, i: usize, network: &str) -> Vec<(String, String, Vec<u8>)> {
    net.dbs[i].entries(network, "endpoint_table")
}

fn cluster(n: usize) -> Net {
    let mut net = Net::new(n, Config::memberlist_lan());
    net.join_all();
    net.run_for(Duration::from_secs(3));
    net
}

#[test]
fn entries_spread_to_the_members_of_their_network_only() {
    let mut net = cluster(5);
    for i in 0..4 {
        net.dbs[i].join_network("ov1");
        net.pump(i);
    }
    net.run_for(Duration::from_secs(2));
    assert_eq!(
        net.dbs[4].participants("ov1"),
        vec!["m0", "m1", "m2", "m3"],
        "network membership is gossiped cluster-wide"
    );
    let now = net.now;
    assert!(net.dbs[1].put(
        now,
        "ov1",
        "endpoint_table",
        "10.0.1.5",
        b"02:42:0a:00:01:05 192.168.1.12"
    ));
    net.pump(1);
    net.run_for(Duration::from_secs(2));
    for i in 0..4 {
        assert_eq!(
            entries(&net, i, "ov1"),
            vec![(
                "10.0.1.5".to_string(),
                "m1".to_string(),
                b"02:42:0a:00:01:05 192.168.1.12".to_vec()
            )],
            "m{i}"
        );
    }
    assert!(entries(&net, 4, "ov1").is_empty(), "m4 is not in ov1");
    let created = std::iter::from_fn(|| net.dbs[3].poll_event())
        .filter(|e| e.change == Change::Create)
        .count();
    assert_eq!(created, 1);
}

#[test]
fn a_late_joiner_gets_the_table_by_bulk_sync() {
    let mut net = cluster(4);
    for i in 0..3 {
        net.dbs[i].join_network("ov1");
        net.pump(i);
    }
    net.run_for(Duration::from_secs(1));
    let now = net.now;
    net.dbs[0].put(now, "ov1", "endpoint_table", "a", b"1");
    net.dbs[2].put(now, "ov1", "endpoint_table", "b", b"2");
    net.pump(0);
    net.pump(2);
    // Long enough for the gossip of these entries to stop (retransmit limit).
    net.run_for(Duration::from_secs(10));
    net.dbs[3].join_network("ov1");
    net.pump(3);
    net.run_for(Duration::from_secs(1));
    let keys: Vec<String> = entries(&net, 3, "ov1").into_iter().map(|e| e.0).collect();
    assert_eq!(keys, vec!["a", "b"]);
}

#[test]
fn deletes_are_tombstones_and_newer_writes_win() {
    let mut net = cluster(3);
    for i in 0..3 {
        net.dbs[i].join_network("ov1");
        net.pump(i);
    }
    net.run_for(Duration::from_secs(1));
    let now = net.now;
    net.dbs[0].put(now, "ov1", "endpoint_table", "k", b"v1");
    net.pump(0);
    net.run_for(Duration::from_secs(1));
    let now = net.now;
    net.dbs[0].put(now, "ov1", "endpoint_table", "k", b"v2");
    net.pump(0);
    net.run_for(Duration::from_secs(1));
    assert_eq!(entries(&net, 2, "ov1")[0].2, b"v2".to_vec());
    let now = net.now;
    net.dbs[0].delete(now, "ov1", "endpoint_table", "k");
    net.pump(0);
    net.run_for(Duration::from_secs(1));
    for i in 0..3 {
        assert!(
            entries(&net, i, "ov1").is_empty(),
            "m{i} still has the entry"
        );
    }
    let changes: Vec<Change> = std::iter::from_fn(|| net.dbs[2].poll_event())
        .map(|e| e.change)
        .collect();
    assert_eq!(
        changes,
        vec![Change::Create, Change::Update, Change::Delete]
    );
}

#[test]
fn a_dead_members_entries_disappear_from_the_others_view() {
    let mut net = cluster(4);
    for i in 0..4 {
        net.dbs[i].join_network("ov1");
        net.pump(i);
    }
    net.run_for(Duration::from_secs(1));
    let now = net.now;
    net.dbs[3].put(now, "ov1", "endpoint_table", "10.0.1.9", b"x");
    net.pump(3);
    net.run_for(Duration::from_secs(1));
    assert_eq!(entries(&net, 0, "ov1").len(), 1);
    net.crashed.insert(3);
    net.run_for(Duration::from_secs(40));
    for i in 0..3 {
        assert!(
            entries(&net, i, "ov1").is_empty(),
            "m{i} still shows the dead member's entry"
        );
    }
}

#[test]
fn garbage_table_messages_are_counted_not_fatal() {
    let mut net = cluster(2);
    net.dbs[0].handle_message(net.now, &[0xd7, 0xc1, 0xff]);
    net.dbs[0].handle_message(net.now, b"not ours");
    assert_eq!(net.dbs[0].malformed, 1);
}

/// A member passes on a network join it learns, as NetworkDB rebroadcasts news: a join
/// that reached only one member still reaches the others through it (memberlist hands a
/// broadcast to a few random members only).
#[test]
fn a_join_heard_by_one_member_is_passed_on_to_the_others() {
    use gossip::tables::{NetworkDb, Send};
    let t = Duration::ZERO;
    let (mut a, mut c) = (NetworkDb::new("a", t, 1), NetworkDb::new("c", t, 3));
    let mut b = NetworkDb::new("b", t, 2);
    a.join_network("ov1");
    let join = std::iter::from_fn(|| a.poll_send())
        .find_map(|s| match s {
            Send::Broadcast { bytes, .. } => Some(bytes),
            _ => None,
        })
        .expect("a broadcasts its join");
    // Only c hears a's join.
    c.handle_message(t, &join);
    assert_eq!(c.participants("ov1"), vec!["a"]);
    let passed: Vec<Vec<u8>> = std::iter::from_fn(|| c.poll_send())
        .filter_map(|s| match s {
            Send::Broadcast { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(passed.len(), 1, "c passes the join on");
    for bytes in &passed {
        b.handle_message(t, bytes);
    }
    assert_eq!(b.participants("ov1"), vec!["a"], "b learns of a through c");
    // Old news is not passed on again.
    c.handle_message(t, &join);
    assert!(std::iter::from_fn(|| c.poll_send()).next().is_none());
}

/// A member cut off long enough to be declared dead is joined again once a second
/// (NetworkDB's `reconnectNode`) once it can be reached: the others see it alive again
/// within seconds, and its entries come back by bulk sync once its networks are known,
/// without anyone restarting.
#[test]
fn a_failed_member_is_reconnected_after_a_partition_and_its_entries_return() {
    let mut net = cluster(4);
    for i in 0..4 {
        net.dbs[i].join_network("ov1");
        net.pump(i);
    }
    net.run_for(Duration::from_secs(1));
    let now = net.now;
    net.dbs[3].put(now, "ov1", "endpoint_table", "10.0.1.9", b"x");
    net.pump(3);
    net.run_for(Duration::from_secs(1));
    net.isolated.insert(3);
    net.run_for(Duration::from_secs(60));
    assert!(entries(&net, 0, "ov1").is_empty(), "the entry went with m3");
    assert_eq!(
        net.dbs[0].failed_nodes().count(),
        1,
        "m0 remembers m3 as failed"
    );
    net.isolated.remove(&3);
    net.run_for(Duration::from_secs(3));
    for i in 0..3 {
        assert_eq!(
            net.members[i].state_of("m3"),
            Some(gossip::State::Alive),
            "m{i} sees m3 again"
        );
        assert_eq!(net.dbs[i].failed_nodes().count(), 0);
    }
    // A member that heard of m3's return by gossip learns its networks at the next
    // push/pull (every 30 s), then bulk-syncs with it.
    net.run_for(Duration::from_secs(40));
    for i in 0..3 {
        assert_eq!(entries(&net, i, "ov1").len(), 1, "m{i} has m3's entry back");
    }
}

/// The reconnect ticker runs once a second: a failed member is asked for at each tick,
/// one that left is never asked for, and one that came back no longer is.
#[test]
fn reconnects_are_once_a_second_and_never_to_a_member_that_left() {
    use gossip::tables::{NetworkDb, Send};
    use std::net::{Ipv4Addr, SocketAddrV4};
    let t0 = Duration::ZERO;
    let mut db = NetworkDb::new("a", t0, 7);
    let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7946);
    let c = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 7946);
    db.node_alive(t0, "b", b);
    db.node_alive(t0, "c", c);
    db.node_failed(t0, "b", b);
    db.node_left("c");
    let joins = |db: &mut NetworkDb| -> Vec<Vec<SocketAddrV4>> {
        std::iter::from_fn(|| db.poll_send())
            .filter_map(|s| match s {
                Send::Join { to } => Some(to),
                _ => None,
            })
            .collect()
    };
    let mut asked = Vec::new();
    let mut t = t0;
    while t < Duration::from_secs(5) {
        t = db.next_timeout().max(t + Duration::from_millis(1));
        db.handle_timeout(t);
        for j in joins(&mut db) {
            asked.push((t, j));
        }
    }
    assert!(
        (4..=5).contains(&asked.len()),
        "one join a second: {asked:?}"
    );
    assert!(asked.iter().all(|(_, to)| to == &vec![b]), "{asked:?}");
    for w in asked.windows(2) {
        assert_eq!(w[1].0 - w[0].0, Duration::from_secs(1), "{asked:?}");
    }
    db.node_alive(t, "b", b);
    let until = t + Duration::from_secs(5);
    while t < until {
        t = db.next_timeout().max(t + Duration::from_millis(1));
        db.handle_timeout(t);
        assert!(joins(&mut db).is_empty(), "b is back: no more joins");
    }
}

/// When none of the members it joined through is in the cluster, a member joins them
/// again: checked once a minute, then once a second for 10 s (NetworkDB's
/// `rejoinClusterBootStrap`).
#[test]
fn a_member_rejoins_its_bootstrap_peers_when_none_is_in_the_cluster() {
    use gossip::tables::{NetworkDb, Send};
    use std::net::{Ipv4Addr, SocketAddrV4};
    let t0 = Duration::ZERO;
    let mut db = NetworkDb::new("a", t0, 11);
    let seed = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 7946);
    db.set_bootstrap(&[seed]);
    // The bootstrap peer left (no reconnect for it): only the rejoin brings it back.
    db.node_alive(t0, "s", seed);
    db.node_left("s");
    let mut rejoins = Vec::new();
    let mut t = t0;
    while t < Duration::from_secs(130) {
        t = db.next_timeout().max(t + Duration::from_millis(1));
        db.handle_timeout(t);
        while let Some(s) = db.poll_send() {
            if let Send::Join { to } = s {
                assert_eq!(to, vec![seed]);
                rejoins.push(t);
            }
        }
    }
    // Two windows (one per minute), of about ten joins each, a second apart.
    assert!((18..=22).contains(&rejoins.len()), "{rejoins:?}");
    let first = rejoins[0];
    assert!(first < Duration::from_secs(61), "{rejoins:?}");
    let window: Vec<_> = rejoins
        .iter()
        .filter(|t| **t < first + Duration::from_secs(30))
        .collect();
    assert!((9..=11).contains(&window.len()), "{rejoins:?}");
    // Once the peer is in the cluster, no more.
    db.node_alive(t, "s", seed);
    let until = t + Duration::from_secs(130);
    while t < until {
        t = db.next_timeout().max(t + Duration::from_millis(1));
        db.handle_timeout(t);
        while let Some(s) = db.poll_send() {
            assert!(!matches!(s, Send::Join { .. }), "the peer is back: {s:?}");
        }
    }
}
