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
