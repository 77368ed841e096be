//! The control plane's figures, measured in the simulator, for BENCHMARKS.md:
//! crash to Down, crash to replacement running, leader crash to new leader (over many
//! seeds), and the wall time of a 3-manager, 20-worker, 100-task swarm run for 10
//! virtual minutes.
//!
//! `cargo run --release -p swarmlab --example swarm_figures [-- --quick]`

use std::time::Instant as Wall;
use swarmlab::lab::Lab;
use swarmlab::scenario::{parse, run::run};
use swarmlab::swarm::store::{NodeStatus, TaskState};
use swarmlab::time::Duration;

const SWARM: &str = "
hosts m[1-3] 10.2.0.0/24
hosts w[1-20] 10.2.1.0/24
m1$ docker swarm init
m1$ M=$(docker swarm join-token -q manager)
m1$ W=$(docker swarm join-token -q worker)
m2$ docker swarm join --token $M 10.2.0.1:2377
m3$ docker swarm join --token $M 10.2.0.1:2377
";

fn swarm(seed: u64, tasks: u64) -> Lab {
    let mut text = SWARM.to_string();
    for i in 1..=20 {
        text.push_str(&format!(
            "w{i}$ docker swarm join --token $W 10.2.0.1:2377\n"
        ));
    }
    text.push_str(&format!(
        "m1$ docker service create --name web --replicas {tasks} --constraint node.role==worker --detach busybox sleep 1d\n\
         expect service web running {tasks} within 30s\nsleep 20s\n"
    ));
    let o = run(&parse("figures.lab", &text).expect("valid"), seed, false);
    assert_eq!(o.failed, 0, "{}", o.timeline);
    o.lab
}

/// Seconds from a new task's container starting until every other host of its network
/// has programmed its peer entry.
fn overlay_convergence(n: usize, seed: u64) -> f64 {
    let mut text = format!(
        "hosts h[1-{n}] 10.3.0.0/16\nh1$ docker swarm init\nh1$ W=$(docker swarm join-token -q worker)\n"
    );
    for i in 2..=n {
        text.push_str(&format!(
            "h{i}$ docker swarm join --token $W 10.3.0.1:2377\n"
        ));
    }
    text.push_str(
        "h1$ docker network create --driver overlay mynet\n\
         h1$ docker service create --name all --mode global --network mynet --detach busybox sleep 1d\n",
    );
    text.push_str(&format!(
        "expect service all running {n} within 60s\nsleep 30s\n"
    ));
    let o = run(&parse("overlay.lab", &text).expect("valid"), seed, false);
    assert_eq!(o.failed, 0, "{}", o.timeline);
    let mut lab = o.lab;
    let h1 = lab.underlay.by_name("h1").expect("declared");
    let argv: Vec<String> =
        "docker service create --name probe --network mynet --detach busybox sleep 1d"
            .split(' ')
            .map(String::from)
            .collect();
    let out = swarmlab::session::execute(&mut lab, h1, &argv);
    assert_eq!(out.exit_code, 0, "{out:?}");
    let started = |lab: &Lab| {
        lab.containers
            .iter()
            .position(|c| c.name.starts_with("probe."))
    };
    lab.run_until_or(lab.now() + Duration::from_secs(30), |lab| {
        started(lab).is_some()
    });
    let c = &lab.containers[started(&lab).expect("the probe task started")];
    let (t0, net, host, ip, mac) = (c.created, c.net, c.host, c.ip, c.mac);
    let programmed = |lab: &Lab| {
        let vni = lab.nets[net.0].vni;
        lab.nets[net.0]
            .hosts
            .iter()
            .filter(|h| **h != host)
            .all(|h| lab.hosts[h.0].vtep.arp_lookup(vni, ip) == Some(mac))
    };
    let done = lab.run_until_or(t0 + Duration::from_secs(60), programmed);
    assert!(done, "not every host was programmed within 60 s");
    lab.now().since(t0).as_millis() as f64 / 1000.0
}

use swarmlab::report::percentile as pct;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seeds = if quick { 1 } else { 40 };
    let (mut down, mut replaced, mut elected) = (Vec::new(), Vec::new(), Vec::new());
    for seed in 1..=seeds {
        // A worker crash: time to Down, and to its tasks running elsewhere.
        let mut lab = swarm(seed, 40);
        let w = lab.underlay.by_name("w7").expect("declared");
        let node = lab.swarm_of(w).node_id.clone().expect("joined");
        let offset = Duration::from_millis(lab.rng.below(5000));
        lab.run_until(lab.now() + offset);
        let t0 = lab.now();
        lab.crash(w);
        let view = |lab: &Lab| lab.swarm_view().map(|(_, s)| s.clone()).expect("leader");
        lab.run_until_or(t0 + Duration::from_secs(60), |lab| {
            view(lab).nodes[&node].status == NodeStatus::Down
        });
        down.push(lab.now().since(t0).as_millis() as f64 / 1000.0);
        lab.run_until_or(t0 + Duration::from_secs(90), |lab| {
            let s = view(lab);
            s.tasks
                .values()
                .filter(|t| t.desired == TaskState::Running && t.state == TaskState::Running)
                .filter(|t| t.node_id.as_deref() != Some(node.as_str()))
                .count()
                == 40
        });
        replaced.push(lab.now().since(t0).as_millis() as f64 / 1000.0);

        // A leader crash: time until another manager leads.
        let mut lab = swarm(seed, 10);
        let (leader, _) = lab.swarm_view().expect("leader");
        let offset = Duration::from_millis(lab.rng.below(1000));
        lab.run_until(lab.now() + offset);
        let t0 = lab.now();
        lab.crash(leader);
        lab.run_until_or(t0 + Duration::from_secs(60), |lab| {
            lab.swarm_view().is_some_and(|(l, _)| l != leader)
        });
        elected.push(lab.now().since(t0).as_millis() as f64 / 1000.0);
    }
    println!("over {seeds} seeds (3 managers, 20 workers, 0.1 ms links):");
    for (name, v, docker) in [
        (
            "worker crash -> Down",
            &mut down,
            "3 x 5 s heartbeat periods after the last heartbeat",
        ),
        (
            "worker crash -> replacement running",
            &mut replaced,
            "Down + 5 s restart delay",
        ),
        (
            "leader crash -> new leader",
            &mut elected,
            "election timeout 10-20 ticks of 1 s",
        ),
    ] {
        let (p5, p50, p95) = (pct(v, 0.05), pct(v, 0.5), pct(v, 0.95));
        let max = v.iter().copied().fold(0.0, f64::max);
        println!("  {name:<38} p5 {p5:6.2} s  median {p50:6.2} s  p95 {p95:6.2} s  max {max:6.2} s   (swarmkit: {docker})");
    }

    // Overlay convergence: from a task's container starting to every other node of its
    // network having its peer entry (FDB + ARP), spread by NetworkDB on 7946.
    for n in [10usize, 100] {
        let mut samples = Vec::new();
        for seed in 1..=(if quick { 1 } else { 10 }) {
            samples.push(overlay_convergence(n, seed));
        }
        let max = samples.iter().copied().fold(0.0, f64::max);
        println!(
            "overlay convergence at {n} hosts: median {:.3} s, max {max:.3} s ({} seeds)",
            pct(&mut samples, 0.5),
            samples.len()
        );
    }

    // The load target: 3 managers, 20 workers, 100 tasks, 10 virtual minutes.
    let wall = Wall::now();
    let mut lab = swarm(1, 100);
    let setup = wall.elapsed();
    let t0 = lab.now();
    let events0 = lab.engine.processed();
    let run_wall = Wall::now();
    lab.run_until(t0 + Duration::from_secs(600));
    let took = run_wall.elapsed();
    println!(
        "3 managers + 20 workers + 100 tasks: 10 virtual minutes in {:.3} s wall ({} events; set-up {:.3} s)",
        took.as_secs_f64(),
        lab.engine.processed() - events0,
        setup.as_secs_f64()
    );
}
