//! The gossip figures of BENCHMARKS.md, measured in the simulator (virtual time, seeded):
//! failure detection at N = 10, 100, 1000; load per member at N = 100, 1000 and 10,000; false
//! suspicions under loss and with one lagging member, with Lifeguard on and off.
//!
//! Run: `cargo run --release -p swarmlab --example gossip_figures`
//! (`-- --quick` skips N >= 1000 and shortens the false-positive runs; `-- foca` prints
//! only the side-by-side table, `-- --false-positives` only that table, `-- --load N`
//! the load at one N, `-- --scale N` the scale run from a formed cluster,
//! `-- --join-scale N` the time for N members to join through one seed, and
//! `-- --fp-seeds` the 20%-loss false-positive row over seeds 13 to 20.)

use std::net::Ipv4Addr;
use swarmlab::lab::Lab;
use swarmlab::time::{Duration, Instant};
use swarmlab::trace::{MemberChange, TraceEvent};
use swarmlab::underlay::{HostId, LinkParams};

fn name(i: usize) -> String {
    format!("n{i}")
}

/// N members joined through n0, run until every member sees all N alive.
fn cluster(n: usize, seed: u64, config: gossip::Config) -> (Lab, Duration) {
    cluster_with(n, seed, config, true)
}

/// The same, without tracing every member's view of every join (N^2 events).
fn cluster_quiet(n: usize, seed: u64, config: gossip::Config) -> (Lab, Duration) {
    cluster_with(n, seed, config, false)
}

fn cluster_with(n: usize, seed: u64, config: gossip::Config, trace_joins: bool) -> (Lab, Duration) {
    let mut lab = Lab::new(seed);
    lab.trace_joins = trace_joins;
    lab.gossip_config = config;
    for i in 0..n {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 2, 0, 1)) + i as u32);
        lab.add_host(&name(i), ip, 1500);
    }
    for i in 1..n {
        lab.gossip_join(HostId(i), &[HostId(0)]);
    }
    let start = lab.now();
    loop {
        let next = lab.now() + Duration::from_millis(500);
        lab.run_until(next);
        if (0..n).all(|h| lab.gossip_alive_count(HostId(h)) == n) {
            let took = lab.now() - start;
            return (lab, took);
        }
        assert!(
            lab.now() - start < Duration::from_secs(300),
            "no convergence at N = {n}"
        );
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_nanos() as f64 / 1e9)
}

fn detection(n: usize) {
    let config = gossip::Config::memberlist_lan();
    let (mut lab, joined) = cluster(n, 7, config.clone());
    let victim = n - 1;
    let mark = lab.trace.events().len();
    let t0 = lab.now();
    lab.crash(HostId(victim));
    let vname = name(victim);
    let live = |lab: &Lab| {
        (0..victim).all(|h| lab.gossip_state(HostId(h), &vname) == Some(gossip::State::Dead))
    };
    lab.run_until_or(t0 + Duration::from_secs(300), live);
    let (mut first_suspect, mut last_dead): (Option<Instant>, Option<Instant>) = (None, None);
    let mut dead_seen = std::collections::BTreeSet::new();
    for (at, e) in &lab.trace.events()[mark..] {
        if let TraceEvent::Gossip {
            host, kind, member, ..
        } = e
        {
            if *member != vname {
                continue;
            }
            if *kind == MemberChange::Suspect && first_suspect.is_none() {
                first_suspect = Some(*at);
            }
            if *kind == MemberChange::Dead && dead_seen.insert(host.clone()) {
                last_dead = Some(*at);
            }
        }
    }
    let (min, max) = config.suspicion_timeout(n);
    let rounds = ((n as f64).log10().ceil() as u64).max(1) * u64::from(config.retransmit_mult);
    let dissemination = config.gossip_interval * rounds as u32;
    let bound = config.probe_interval + config.probe_timeout + max + dissemination;
    println!(
        "| {n} | {} | {} | {} of {} | {} – {} | {} | {} |",
        secs(joined),
        first_suspect.map_or("-".into(), |t| secs(t - t0)),
        dead_seen.len(),
        n - 1,
        secs(Duration(min.as_nanos() as u64)),
        secs(Duration(max.as_nanos() as u64)),
        last_dead.map_or("-".into(), |t| secs(t - t0)),
        secs(Duration(bound.as_nanos() as u64)),
    );
}

/// N members started as a formed cluster (`gossip n[..] formed`): no join traffic.
fn formed(n: usize, seed: u64, config: gossip::Config) -> Lab {
    let mut lab = Lab::new(seed);
    lab.trace_joins = false;
    lab.gossip_config = config;
    for i in 0..n {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 2, 0, 1)) + i as u32);
        lab.add_host(&name(i), ip, 1500);
    }
    let hosts: Vec<HostId> = (0..n).map(HostId).collect();
    lab.gossip_formed(&hosts);
    lab
}

fn load(n: usize) {
    let config = gossip::Config::memberlist_lan();
    let scaled = config.push_pull_scaled(n);
    let mut lab = formed(n, 11, config);
    // Past memberlist's push/pull stagger (up to 30 s), then one whole scaled push/pull
    // interval (90 s at N = 100, 180 s at 1000, 300 s at 10,000): each member makes
    // about one push/pull in the window.
    let settle = lab.now() + Duration::from_secs(30);
    lab.run_until(settle);
    lab.gossip_load = Default::default();
    let span = scaled.as_secs_f64();
    let end = lab.now() + Duration(scaled.as_nanos() as u64);
    lab.run_until(end);
    let l = lab.gossip_load;
    let per = |x: u64| x as f64 / n as f64 / span;
    println!(
        "| {n} | {:.2} | {:.0} | {:.3} | {:.0} |",
        per(l.packets),
        per(l.bytes),
        per(l.streams),
        per(l.stream_bytes)
    );
}

/// Gossip rounds until a broadcast reaches 99.99% of N, next to serf's convergence
/// model: the fraction reached after r rounds is 1 / (1 + (N+1) e^(-fanout r)).
fn dissemination(n: usize) {
    let config = gossip::Config::memberlist_lan();
    let (mut lab, _) = cluster(n, 17, config.clone());
    let settle = lab.now() + Duration::from_secs(20);
    lab.run_until(settle);
    // Accuse member 1 to its face: it refutes with a new incarnation, broadcast by gossip.
    let target = name(1);
    let before = lab.hosts[0]
        .gossip
        .member
        .info(&target)
        .map_or(1, |m| m.incarnation);
    let accusation = gossip::wire::encode(
        gossip::wire::MessageType::Suspect,
        &gossip::wire::Accusation {
            from: name(0),
            incarnation: before,
            node: target.clone(),
        },
    );
    let from = std::net::SocketAddrV4::new(lab.underlay.nic(HostId(0)).ip, gossip::GOSSIP_PORT);
    let t0 = lab.now();
    lab.gossip_inject(HostId(1), from, &accusation);
    let need = ((n as f64) * 0.9999).ceil() as usize;
    let knows = |lab: &Lab| {
        (0..n)
            .filter(|h| {
                lab.hosts[*h]
                    .gossip
                    .member
                    .info(&target)
                    .is_some_and(|m| m.incarnation > before)
            })
            .count()
    };
    lab.run_until_or(t0 + Duration::from_secs(60), |lab| knows(lab) >= need);
    let took = lab.now() - t0;
    let rounds = took.as_nanos() as f64 / config.gossip_interval.as_nanos() as f64;
    let fanout = config.gossip_nodes as f64;
    let model = (((n as f64) + 1.0) / (1.0 / 0.9999 - 1.0)).ln() / fanout;
    println!("| {n} | {} | {rounds:.1} | {model:.1} |", secs(took));
}

fn lifeguard_off() -> gossip::Config {
    // memberlist's way to switch Lifeguard off: no awareness, no dynamic suspicion.
    gossip::Config {
        awareness_max_multiplier: 1,
        suspicion_max_timeout_mult: 1,
        ..gossip::Config::memberlist_lan()
    }
}

/// What degrades the cluster in a false-positive run.
#[derive(Clone, Copy)]
enum Degraded {
    /// Random loss on every link.
    Everywhere(f64),
    /// Random loss on every link of member n0 (its NIC), in both directions.
    OneMember(f64),
    /// Member n0 processes gossip 1.5 s late.
    Lagging,
}

/// False suspicions and false deaths of healthy members over `minutes`, as distinct
/// (member, incarnation) episodes. With loss everywhere every member counts; when one
/// member is degraded, only the others do.
fn false_positives(
    n: usize,
    degraded: Degraded,
    config: gossip::Config,
    minutes: u64,
) -> FalsePositives {
    false_positives_seeded(n, degraded, config, minutes, 13)
}

fn false_positives_seeded(
    n: usize,
    degraded: Degraded,
    config: gossip::Config,
    minutes: u64,
    seed: u64,
) -> FalsePositives {
    let (mut lab, _) = cluster(n, seed, config);
    let slow = name(0);
    let mut lagging = false;
    match degraded {
        Degraded::Everywhere(loss) => lab.underlay.set_default_link(LinkParams {
            loss,
            ..LinkParams::default()
        }),
        Degraded::OneMember(loss) => {
            for h in 1..n {
                let params = LinkParams {
                    loss,
                    ..LinkParams::default()
                };
                lab.underlay.set_link(HostId(0), HostId(h), params);
            }
            lagging = true;
        }
        Degraded::Lagging => {
            lab.hosts[0].gossip.lag = Duration::from_millis(1500);
            lagging = true;
        }
    }
    let mark = lab.trace.events().len();
    // Failed probes as memberlist logs them ("Suspect X has failed, no acks received"),
    // whether they start a suspicion or confirm one: (of the degraded member, of others).
    let failed = |lab: &Lab| {
        let (mut own, mut others) = (0, 0);
        for h in &lab.hosts {
            for (target, count) in &h.gossip.member.counters().failed_probes {
                if lagging && *target == slow {
                    own += *count as usize;
                } else {
                    others += *count as usize;
                }
            }
        }
        (own, others)
    };
    let before = failed(&lab);
    let end = lab.now() + Duration::from_secs(60 * minutes);
    lab.run_until(end);
    let after = failed(&lab);
    // Distinct episodes: a suspicion (or death) of one member at one incarnation, however
    // many members heard of it.
    let mut suspicions = std::collections::BTreeSet::new();
    let mut deaths = std::collections::BTreeSet::new();
    let mut counts = FalsePositives::default();
    for (_, e) in &lab.trace.events()[mark..] {
        if let TraceEvent::Gossip {
            kind,
            member,
            incarnation,
            reason,
            ..
        } = e
        {
            if lagging && *member == slow {
                // Only healthy members count; the degraded one's own are kept apart.
                if *kind == MemberChange::Dead && reason.starts_with("suspicion timed out") {
                    counts.own_timeouts += 1;
                }
                continue;
            }
            match kind {
                MemberChange::Suspect => {
                    suspicions.insert((member.clone(), *incarnation));
                }
                MemberChange::Dead => {
                    deaths.insert((member.clone(), *incarnation));
                    if reason.starts_with("suspicion timed out") {
                        counts.timeouts += 1;
                    }
                }
                _ => {}
            }
        }
    }
    counts.own_probes = after.0 - before.0;
    counts.probes = after.1 - before.1;
    counts.suspicions = suspicions.len();
    counts.deaths = deaths.len();
    counts
}

/// What a false-positive run counts.
#[derive(Clone, Copy, Debug, Default)]
struct FalsePositives {
    /// Distinct (member, incarnation) suspicions.
    suspicions: usize,
    /// Distinct (member, incarnation) deaths.
    deaths: usize,
    /// Probes that got no ack, whether they started a suspicion or confirmed one
    /// (memberlist logs each: "Suspect X has failed, no acks received").
    probes: usize,
    /// Suspicions that timed out into a death, at each member where they did (memberlist
    /// logs each: "Marking X as failed, suspect timeout reached").
    timeouts: usize,
    /// The same two for the degraded member itself.
    own_probes: usize,
    own_timeouts: usize,
}

/// The same experiments with the `foca` crate on every host instead of our member.
fn foca_cluster(n: usize, seed: u64) -> Lab {
    let mut lab = Lab::new(seed);
    for i in 0..n {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 2, 0, 1)) + i as u32);
        lab.add_host(&name(i), ip, 1500);
        lab.use_foca(HostId(i), n as u32);
    }
    for i in 1..n {
        lab.foca_join(HostId(i), &[HostId(0)]);
    }
    let start = lab.now();
    loop {
        let next = lab.now() + Duration::from_millis(500);
        lab.run_until(next);
        if (0..n).all(|h| lab.foca_alive_count(HostId(h)) == Some(n)) {
            return lab;
        }
        assert!(
            lab.now() - start < Duration::from_secs(300),
            "foca: no convergence at N = {n}"
        );
    }
}

/// (time until every live member dropped a crashed one, packets per member per second,
/// distinct healthy members declared down over 10 minutes at 20% loss)
fn side_by_side(n: usize, foca: bool, minutes: u64, seed: u64) -> (Option<Duration>, f64, usize) {
    let mut lab = if foca {
        foca_cluster(n, seed)
    } else {
        cluster(n, seed, gossip::Config::memberlist_lan()).0
    };
    // Load over a steady minute.
    let settle = lab.now() + Duration::from_secs(20);
    lab.run_until(settle);
    lab.gossip_load = Default::default();
    let end = lab.now() + Duration::from_secs(60);
    lab.run_until(end);
    let load = lab.gossip_load.packets as f64 / n as f64 / 60.0;
    // Detection.
    let victim = HostId(n - 1);
    let t0 = lab.now();
    lab.crash(victim);
    let vname = name(n - 1);
    let gone = |lab: &Lab| {
        (0..n - 1).all(|h| match lab.foca_sees(HostId(h), victim) {
            Some(sees) => !sees,
            None => lab.gossip_state(HostId(h), &vname) == Some(gossip::State::Dead),
        })
    };
    let done = lab.run_until_or(t0 + Duration::from_secs(120), gone);
    let detection = done.then(|| lab.now() - t0);
    if minutes == 0 {
        return (detection, load, 0);
    }
    // False deaths under 20% loss, among the n - 1 healthy members.
    lab.underlay.set_default_link(LinkParams {
        loss: 0.2,
        ..LinkParams::default()
    });
    let mark = lab.trace.events().len();
    let end = lab.now() + Duration::from_secs(60 * minutes);
    lab.run_until(end);
    let mut downed = std::collections::BTreeSet::new();
    for (_, e) in &lab.trace.events()[mark..] {
        if let TraceEvent::Gossip { kind, member, .. } = e {
            if *kind == MemberChange::Dead && *member != vname {
                downed.insert(member.clone());
            }
        }
    }
    (detection, load, downed.len())
}

/// Peak resident memory of this process, from /proc (Linux), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// `--scale N`: N members start as a formed cluster, run 60 virtual seconds with one
/// crash at 20 s; wall time, peak memory, and whether every live member saw the death.
fn scale(n: usize) {
    let wall = std::time::Instant::now();
    let mut lab = formed(n, 23, gossip::Config::memberlist_lan());
    let setup = wall.elapsed();
    let steady = std::time::Instant::now();
    let t20 = lab.now() + Duration::from_secs(20);
    lab.run_until(t20);
    let victim = HostId(n / 2);
    lab.crash(victim);
    let end = lab.now() + Duration::from_secs(40);
    lab.run_until(end);
    let run = steady.elapsed();
    let vname = name(n / 2);
    let saw = (0..n)
        .filter(|h| *h != n / 2)
        .filter(|h| lab.gossip_state(HostId(*h), &vname) == Some(gossip::State::Dead))
        .count();
    println!(
        "| {n} | {:.1} s | {:.1} s | {} of {} | {} MiB |",
        setup.as_secs_f64(),
        run.as_secs_f64(),
        saw,
        n - 1,
        peak_rss_mib().map_or("?".into(), |m| m.to_string())
    );
}

/// `--join-scale N`: N members join through one seed; virtual and wall time until every
/// member lists all N alive, and peak memory.
fn join_scale(n: usize) {
    let wall = std::time::Instant::now();
    let (_lab, joined) = cluster_quiet(n, 23, gossip::Config::memberlist_lan());
    println!(
        "| {n} | {} | {:.1} s | {} MiB |",
        secs(joined),
        wall.elapsed().as_secs_f64(),
        peak_rss_mib().map_or("?".into(), |m| m.to_string())
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--fp-seeds") {
        false_positive_seeds();
        return;
    }
    if args.iter().any(|a| a == "--false-positives") {
        false_positive_table(args.iter().any(|a| a == "--quick"));
        return;
    }
    // `--FLAG N`: one figure at one N, under its table's header.
    type Figure = fn(usize);
    let single: [(&str, usize, &str, Figure); 3] = [
        (
            "--load",
            100,
            "| N | UDP packets | UDP bytes | TCP streams (push/pull) | stream bytes |",
            load,
        ),
        (
            "--join-scale",
            1000,
            "| N | join converged (virtual) | join (wall) | peak memory |",
            join_scale,
        ),
        (
            "--scale",
            1000,
            "| N | formed cluster set up (wall) | 60 virtual s, one crash at 20 s (wall) | live members that marked it dead | peak memory |",
            scale,
        ),
    ];
    for (flag, default, header, figure) in single {
        if let Some(i) = args.iter().position(|a| a == flag) {
            let n = args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default);
            println!("{header}");
            println!("{}|", "|---".repeat(header.matches(" | ").count() + 1));
            figure(n);
            return;
        }
    }
    let quick = std::env::args().any(|a| a == "--quick");
    // `--only foca` prints just the side-by-side table.
    let only_foca = std::env::args().any(|a| a == "foca");
    let sizes: &[usize] = if quick { &[10, 100] } else { &[10, 100, 1000] };

    if !only_foca {
        ours(quick, sizes);
    }
    let fp_minutes = if quick { 2 } else { 10 };
    side_by_side_table(quick, fp_minutes);
    if !only_foca {
        false_positive_table(quick);
    }
}

fn ours(quick: bool, sizes: &[usize]) {
    println!("### Failure detection (one member crashes; memberlist LAN profile)\n");
    println!("| N | join converged | first suspicion | members that marked it dead | suspicion timeout (min – max) | last member marks it dead | memberlist bound |");
    println!("|---|---|---|---|---|---|---|");
    for &n in sizes {
        detection(n);
    }

    println!("\n### Dissemination (a refutation's alive broadcast reaching 99.99% of N)\n");
    println!("| N | time | gossip rounds (200 ms) | serf model, fanout 3 |");
    println!("|---|---|---|---|");
    for &n in sizes {
        dissemination(n);
    }

    println!("\n### Load per member per second (steady state, no failures)\n");
    println!("| N | UDP packets | UDP bytes | TCP streams (push/pull) | stream bytes |");
    println!("|---|---|---|---|---|");
    for &n in if quick {
        &[100usize][..]
    } else {
        &[100usize, 1000, 10_000][..]
    } {
        load(n);
    }
}

fn side_by_side_table(quick: bool, fp_minutes: u64) {
    println!("\n### Side by side with foca (same simulated LAN, memberlist LAN profile vs foca's `Config::new_lan(N)`)\n");
    println!("| N | implementation | crash to dropped by all: median of 11 seeds (min – max) | seed 21 | UDP packets per member per second | healthy members declared down in {fp_minutes} min at 20% loss |");
    println!("|---|---|---|---|---|---|");
    for &n in if quick {
        &[10usize][..]
    } else {
        &[10usize, 100][..]
    } {
        for (label, foca) in [("swarmlab (memberlist)", false), ("foca 2.0", true)] {
            let (d, load, down) = side_by_side(n, foca, fp_minutes, 21);
            // Detection over more seeds: one crash of one member is one draw.
            let mut all: Vec<Option<Duration>> = vec![d];
            all.extend((22..32).map(|seed| side_by_side(n, foca, 0, seed).0));
            let missed = all.iter().filter(|d| d.is_none()).count();
            let mut found: Vec<Duration> = all.into_iter().flatten().collect();
            found.sort();
            let spread = match (found.first(), found.get(found.len() / 2), found.last()) {
                (Some(lo), Some(mid), Some(hi)) => {
                    format!("{} ({} – {})", secs(*mid), secs(*lo), secs(*hi))
                }
                _ => "-".into(),
            };
            let spread = if missed > 0 {
                format!("{spread}; {missed} not within 120 s")
            } else {
                spread
            };
            println!(
                "| {n} | {label} | {spread} | {} | {load:.2} | {down} of {} |",
                d.map_or("not within 120 s".into(), secs),
                n - 1
            );
        }
    }
}

/// The 20%-loss row over several seeds: how much its counts vary from run to run.
fn false_positive_seeds() {
    println!("\n### 20% loss on every link, N = 100, 10 virtual minutes, seeds 13 to 20\n");
    println!("| seed | on: suspicions / deaths | off: suspicions / deaths | on: failed probes / suspicion timeouts | off: the same |");
    println!("|---|---|---|---|---|");
    for seed in 13..=20 {
        let d = Degraded::Everywhere(0.20);
        let on = false_positives_seeded(100, d, gossip::Config::memberlist_lan(), 10, seed);
        let off = false_positives_seeded(100, d, lifeguard_off(), 10, seed);
        println!("{}", false_positive_row(&seed.to_string(), &on, &off));
    }
}

/// One row of the false-positive tables: Lifeguard on and off, distinct episodes then
/// memberlist-log counts.
fn false_positive_row(label: &str, on: &FalsePositives, off: &FalsePositives) -> String {
    format!(
        "| {label} | {} / {} | {} / {} | {} / {} | {} / {} |",
        on.suspicions,
        on.deaths,
        off.suspicions,
        off.deaths,
        on.probes,
        on.timeouts,
        off.probes,
        off.timeouts
    )
}

fn false_positive_table(quick: bool) {
    let minutes = if quick { 2 } else { 10 };
    println!("\n### False positives at N = 100 over {minutes} virtual minutes (distinct suspicions / deaths of healthy members)\n");
    println!("| condition | Lifeguard on | Lifeguard off | on: failed probes / suspicion timeouts | off: the same |");
    println!("|---|---|---|---|---|");
    let mut own = Vec::new();
    for (label, degraded) in [
        ("10% loss on every link", Degraded::Everywhere(0.10)),
        ("20% loss on every link", Degraded::Everywhere(0.20)),
        ("10% loss at one member", Degraded::OneMember(0.10)),
        ("20% loss at one member", Degraded::OneMember(0.20)),
        ("one member lags 1.5 s", Degraded::Lagging),
    ] {
        let on = false_positives(100, degraded, gossip::Config::memberlist_lan(), minutes);
        let off = false_positives(100, degraded, lifeguard_off(), minutes);
        if !matches!(degraded, Degraded::Everywhere(_)) {
            own.push((label, on, off));
        }
        println!("{}", false_positive_row(label, &on, &off));
    }
    println!("\nThe degraded member itself (failed probes of it / suspicion timeouts), on | off:");
    for (label, on, off) in own {
        println!(
            "- {label}: {} / {} | {} / {}",
            on.own_probes, on.own_timeouts, off.own_probes, off.own_timeouts
        );
    }
}
