//! The member core as a specification, driven by the tiny deterministic network of
//! `common`.

mod common;
use common::Net;
use gossip::{Config, EventKind, Member, State};
use std::time::Duration;

#[test]
fn members_joining_one_seed_all_see_each_other() {
    let mut net = Net::new(5, Config::memberlist_lan());
    net.join_all();
    net.run_for(Duration::from_secs(5));
    for v in 0..5 {
        assert_eq!(
            net.members[v].live_members(),
            vec!["m0", "m1", "m2", "m3", "m4"],
            "view of m{v}"
        );
    }
}

#[test]
fn crashed_member_is_suspected_then_declared_dead_within_memberlists_bound() {
    let config = Config::memberlist_lan();
    let mut net = Net::new(5, config.clone());
    net.join_all();
    net.run_for(Duration::from_secs(5));
    let crash_at = net.now;
    net.crashed.insert(4);
    net.run_for(Duration::from_secs(60));
    for v in 0..4 {
        assert!(
            net.first_event(v, EventKind::Dead, 4).is_some(),
            "m{v} must see m4 dead"
        );
    }
    let suspected = net
        .first_event(0, EventKind::Suspect, 4)
        .or(net.first_event(1, EventKind::Suspect, 4))
        .unwrap();
    let dead = (0..4)
        .filter_map(|v| net.first_event(v, EventKind::Dead, 4))
        .max()
        .unwrap();
    // Bound: a full probe round over 4 peers, the longest suspicion (6 x 4 s at n = 5),
    // and a few gossip rounds to spread the verdict.
    let (_, max) = config.suspicion_timeout(5);
    let bound = config.probe_interval * 5 + max + Duration::from_secs(2);
    assert!(
        suspected - crash_at <= config.probe_interval * 5,
        "first suspicion after {:?}",
        suspected - crash_at
    );
    assert!(
        dead - crash_at <= bound,
        "everyone knew after {:?}, bound {bound:?}",
        dead - crash_at
    );
}

#[test]
fn suspected_member_refutes_with_a_higher_incarnation() {
    let mut net = Net::new(4, Config::memberlist_lan());
    net.join_all();
    net.run_for(Duration::from_secs(5));
    // m3 hears nothing for a while: the others suspect it...
    net.isolated.insert(3);
    let mut t = 0;
    while !(0..3).any(|v| net.state(v, 3) == Some(State::Suspect)) {
        net.run_for(Duration::from_millis(100));
        t += 1;
        assert!(t < 100, "m3 never suspected");
    }
    // ...then hears again before the suspicion expires, and refutes.
    net.isolated.clear();
    net.run_for(Duration::from_secs(3));
    for v in 0..3 {
        assert_eq!(net.state(v, 3), Some(State::Alive), "m{v} view of m3");
    }
    let m3 = net.members[0]
        .members()
        .into_iter()
        .find(|m| m.name == "m3")
        .unwrap();
    assert!(
        m3.incarnation > 1,
        "refutation raises the incarnation: {}",
        m3.incarnation
    );
    assert!(
        net.first_event(0, EventKind::Alive, 3).is_some()
            || net.first_event(1, EventKind::Alive, 3).is_some()
    );
}

#[test]
fn leaving_member_is_recorded_as_left_not_dead() {
    let mut net = Net::new(4, Config::memberlist_lan());
    net.join_all();
    net.run_for(Duration::from_secs(5));
    net.members[2].leave(net.now);
    net.run_for(Duration::from_secs(2));
    assert!(net.members[2].leave_done());
    for v in [0, 1, 3] {
        assert_eq!(net.state(v, 2), Some(State::Left), "m{v} view of m2");
    }
    assert!(net.first_event(0, EventKind::Dead, 2).is_none());
}

#[test]
fn a_member_that_cannot_hear_raises_its_own_awareness() {
    let mut net = Net::new(5, Config::memberlist_lan());
    net.join_all();
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.members[0].awareness(), 0);
    // m0 is cut off: its probes fail and the nacks it expects never come.
    net.isolated.insert(0);
    net.run_for(Duration::from_secs(6));
    // Each failed probe misses all three expected nacks: +3.
    assert!(
        net.members[0].awareness() >= 3,
        "awareness {}",
        net.members[0].awareness()
    );
}

#[test]
fn a_recovered_member_probes_at_the_base_interval_while_its_probes_are_answered() {
    // memberlist's probe ticker runs at the base interval; awareness only stretches the
    // wait of a probe that gets no ack. So once m0 hears again, each tick's probe is
    // answered and awareness falls by one per second, not one per (awareness+1) s.
    let config = Config::memberlist_lan();
    let mut net = Net::new(5, config.clone());
    net.join_all();
    net.run_for(Duration::from_secs(5));
    net.isolated.insert(0);
    net.run_for(Duration::from_secs(6));
    net.isolated.remove(&0);
    let step = Duration::from_millis(100);
    let mut history = Vec::new();
    for _ in 0..200 {
        net.run_for(step);
        history.push((net.now, net.members[0].awareness()));
    }
    // The last moment awareness was at its peak: the probe open when m0 healed has ended.
    let peak = history.iter().map(|h| h.1).max().unwrap();
    assert!(peak >= 3, "m0's awareness rose while cut off: {peak}");
    let (at, _) = *history.iter().rev().find(|h| h.1 == peak).unwrap();
    let later = at + 4 * config.probe_interval + step;
    let (_, after) = *history.iter().find(|h| h.0 >= later).unwrap();
    assert!(
        after + 3 <= peak,
        "awareness {peak} at {at:?} fell only to {after} 4 probe intervals later"
    );
}

#[test]
fn dead_members_are_reaped_after_gossip_to_the_dead() {
    let config = Config::memberlist_lan();
    let mut net = Net::new(4, config.clone());
    net.join_all();
    net.run_for(Duration::from_secs(5));
    net.crashed.insert(3);
    net.run_for(Duration::from_secs(20));
    assert_eq!(net.state(0, 3), Some(State::Dead));
    net.run_for(config.gossip_to_the_dead + Duration::from_secs(10));
    assert_eq!(net.state(0, 3), None, "reaped");
}

#[test]
fn blocked_udp_with_working_tcp_is_not_a_failure_but_is_reported() {
    let mut net = Net::new(4, Config::memberlist_lan());
    net.join_all();
    net.run_for(Duration::from_secs(5));
    net.udp_blocked.insert(3);
    net.run_for(Duration::from_secs(10));
    for v in 0..3 {
        assert_eq!(
            net.state(v, 3),
            Some(State::Alive),
            "TCP fallback keeps m3 alive for m{v}"
        );
    }
    let warned = net
        .events
        .iter()
        .any(|(_, e)| e.kind == EventKind::ReachableOnlyOverTcp && e.member == "m3");
    assert!(warned, "the trace says m3 answers over TCP but not UDP");
}

#[test]
fn encrypted_members_talk_and_a_wrong_key_is_refused_and_counted() {
    use gossip::security::{Key, Keyring};
    let mut config = Config::memberlist_lan();
    config.keyring = Keyring::new(Key::new(&[3u8; 32]).unwrap());
    let mut net = Net::new(3, config.clone());
    let mut other = config.clone();
    other.keyring = Keyring::new(Key::new(&[4u8; 32]).unwrap());
    net.members[2] = Member::new(other, "m2", net.addrs[2], Duration::ZERO, 9);
    net.join_all();
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.members[0].live_members(), vec!["m0", "m1"]);
    let refused = net.members[0]
        .counters()
        .dropped
        .get("decrypt")
        .copied()
        .unwrap_or(0)
        + net.members[0]
            .counters()
            .dropped
            .get("not-encrypted")
            .copied()
            .unwrap_or(0);
    assert!(refused > 0 || net.members[2].counters().dropped.contains_key("decrypt"));
}

#[test]
fn members_with_different_labels_ignore_each_other() {
    let mut a = Config::memberlist_lan();
    a.label = Some("swarm-a".into());
    let mut b = a.clone();
    b.label = Some("swarm-b".into());
    let mut net = Net::new(3, a);
    net.members[2] = Member::new(b, "m2", net.addrs[2], Duration::ZERO, 5);
    net.join_all();
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.members[0].live_members(), vec!["m0", "m1"]);
    assert!(
        net.members[0]
            .counters()
            .dropped
            .get("label-mismatch")
            .copied()
            .unwrap_or(0)
            > 0
    );
}

#[test]
fn members_sharing_a_registry_share_identities_and_a_formed_view_needs_no_join() {
    use gossip::registry::Registry;
    use std::net::{Ipv4Addr, SocketAddrV4};
    let reg = Registry::new();
    let mut ms: Vec<Member> = (0..4u8)
        .map(|i| {
            let addr = SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 1 + i), 7946);
            let name = format!("f{i}");
            Member::with_registry(
                Config::memberlist_lan(),
                &name,
                addr,
                Duration::ZERO,
                7 + u64::from(i),
                reg.clone(),
            )
        })
        .collect();
    let idents: Vec<_> = ms.iter().map(Member::identity).collect();
    for m in &mut ms {
        m.assume_formed(Duration::ZERO, &idents);
        // Twice changes nothing: members already known are left as they are.
        m.assume_formed(Duration::ZERO, &idents);
    }
    for m in &ms {
        let names: Vec<String> = m.members().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["f0", "f1", "f2", "f3"]);
        assert_eq!(m.alive_count(), 4);
        assert_eq!(
            m.info("f2").map(|i| i.addr.to_string()),
            Some("10.9.0.3:7946".into())
        );
        assert_eq!(m.info("f9"), None);
    }
    assert!(std::sync::Arc::ptr_eq(&ms[0].identity(), &idents[0]));
    assert_eq!(reg.names(), 4);
    // A member with a registry of its own interns them anew instead of trusting ids.
    let addr = SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 9), 7946);
    let mut alone = Member::new(Config::memberlist_lan(), "other", addr, Duration::ZERO, 3);
    alone.assume_formed(Duration::ZERO, &idents[1..]);
    assert_eq!(alone.live_members(), ["f1", "f2", "f3", "other"]);
}
