//! The redesign's cost figures, for BENCHMARKS.md: wall time for 1000 replicas of one
//! service to converge on 1 node and on 20 nodes, and wall time and peak memory of
//! `hosts n[1-100000] 10.0.0.0/8` alone. Each size is run three ways so that the growth
//! shows as a slope (cost per replica, per host).
//!
//! `cargo run --release -p swarmlab --example scale_figures [-- hosts|replicas]`
//! (`hosts` first and alone gives a clean peak-memory figure: the peak is per process.)

use std::time::Instant as Wall;
use swarmlab::scenario::{parse, run::run};

fn replicas_lab(nodes: usize, replicas: usize) -> String {
    let mut t = format!("hosts n[1-{nodes}] 10.0.0.0/16\nn1$ docker swarm init\n");
    t.push_str("n1$ W=$(docker swarm join-token -q worker)\n");
    for i in 2..=nodes {
        t.push_str(&format!(
            "n{i}$ docker swarm join --token $W 10.0.0.1:2377\n"
        ));
    }
    t.push_str(&format!(
        "n1$ docker service create --name web --replicas {replicas} --detach busybox sleep 1d\n\
         expect service web running {replicas} within 60s\n"
    ));
    t
}

fn timed(text: &str) -> f64 {
    let s = parse("scale.lab", text).expect("valid");
    let start = Wall::now();
    let o = run(&s, 1, false);
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(o.failed, 0, "{}", o.timeline);
    wall
}

fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    if which.is_empty() || which == "hosts" {
        println!("| hosts | wall (s) | µs per host | peak RSS (MiB) |");
        println!("|---|---|---|---|");
        for n in [10_000usize, 30_000, 100_000] {
            let wall = timed(&format!("hosts n[1-{n}] 10.0.0.0/8\n"));
            println!(
                "| {n} | {wall:.2} | {:.1} | {} |",
                wall * 1e6 / n as f64,
                peak_rss_mib().map_or("?".into(), |m| m.to_string())
            );
        }
    }
    if which.is_empty() || which == "replicas" {
        println!("| nodes | replicas | wall (s) | µs per replica |");
        println!("|---|---|---|---|");
        for nodes in [1usize, 20] {
            for r in [250usize, 500, 1000] {
                let wall = timed(&replicas_lab(nodes, r));
                println!(
                    "| {nodes} | {r} | {wall:.3} | {:.0} |",
                    wall * 1e6 / r as f64
                );
            }
        }
    }
}
