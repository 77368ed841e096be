//! The routing mesh's figures, measured in the simulator, for BENCHMARKS.md:
//! requests per second through the mesh (virtual time against wall time), and the time
//! from a node crash until the mesh answers every request again (over many seeds).
//!
//! `cargo run --release -p swarmlab --example mesh_figures [-- --quick]`

use std::time::Instant as Wall;
use swarmlab::lab::Lab;
use swarmlab::scenario::{parse, run::run};
use swarmlab::session::execute;
use swarmlab::time::Duration;

const TOUR: &str = "
hosts m[1-3] 10.10.0.0/24
hosts w[1-3] 10.10.1.0/24
m1$ docker swarm init
m1$ M=$(docker swarm join-token -q manager)
m1$ W=$(docker swarm join-token -q worker)
m2$ docker swarm join --token $M 10.10.0.1:2377
m3$ docker swarm join --token $M 10.10.0.1:2377
w1$ docker swarm join --token $W 10.10.0.1:2377
w2$ docker swarm join --token $W 10.10.0.1:2377
w3$ docker swarm join --token $W 10.10.0.1:2377
m1$ docker service create -d --name web --replicas 3 --publish 8080:80 --constraint node.role==worker traefik/whoami
expect service web running 3 within 10s
expect spread m1:8080 over web
sleep 5s
";

fn swarm(seed: u64) -> Lab {
    let o = run(&parse("mesh.lab", TOUR).expect("valid"), seed, false);
    assert_eq!(o.failed, 0, "{}", o.timeline);
    o.lab
}

use swarmlab::report::percentile as pct;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // Throughput: sequential requests from a manager (no task there) through its mesh.
    let requests = if quick { 200 } else { 10000 };
    let mut lab = swarm(1);
    let m1 = lab.underlay.by_name("m1").expect("declared");
    let argv: Vec<String> = format!("curl -s --repeat {requests} http://m1:8080/")
        .split(' ')
        .map(String::from)
        .collect();
    let (v0, w0) = (lab.now(), Wall::now());
    let out = execute(&mut lab, m1, &argv);
    let (virt, wall) = (
        (lab.now() - v0).as_nanos() as f64 / 1e9,
        w0.elapsed().as_secs_f64(),
    );
    let tail = &out.stdout[out.stdout.len().saturating_sub(400)..];
    assert_eq!(out.exit_code, 0, "{tail}");
    println!(
        "mesh: {requests} sequential HTTP requests m1 -> m1:8080 -> 3 whoami tasks: {virt:.3} s virtual ({:.0} req/s), {wall:.3} s wall ({:.0} req/s simulated)",
        requests as f64 / virt,
        requests as f64 / wall
    );

    // Crash a worker running a replica: until gossip declares it dead and NetworkDB
    // withdraws its endpoint, one request in three goes to the dead task.
    let seeds = if quick { 3 } else { 30 };
    let (mut healed, mut replaced) = (Vec::new(), Vec::new());
    for seed in 1..=seeds {
        let mut lab = swarm(seed);
        let w3 = lab.underlay.by_name("w3").expect("declared");
        let m1 = lab.underlay.by_name("m1").expect("declared");
        let offset = Duration::from_millis(lab.rng.below(1000));
        lab.run_until(lab.now() + offset);
        let t0 = lab.now();
        lab.crash(w3);
        // Probe every 250 ms: a round of 3 requests, each with a 200 ms timeout.
        let mut first_ok: Option<f64> = None;
        while first_ok.is_none() && lab.now().since(t0) < Duration::from_secs(60) {
            let start = lab.now();
            let ok = (0..3).all(|_| {
                execute(
                    &mut lab,
                    m1,
                    &["curl", "-s", "-m", "0.2", "http://m1:8080/"].map(String::from),
                )
                .exit_code
                    == 0
            });
            if ok {
                first_ok = Some(start.since(t0).as_nanos() as f64 / 1e9);
            } else {
                lab.run_until(start + Duration::from_millis(250));
            }
        }
        healed.push(first_ok.expect("the mesh answers again within 60 s"));
        // The leader sees w3 Down, then starts its task elsewhere.
        let w3_node = lab.swarm_of(w3).node_id.clone().expect("joined");
        let back = lab.run_until_or(t0 + Duration::from_secs(90), |lab: &Lab| {
            let down = lab.swarm_view().is_some_and(|(_, s)| {
                s.nodes
                    .get(&w3_node)
                    .is_some_and(|n| n.status == swarmlab::swarm::store::NodeStatus::Down)
            });
            down && swarmlab::observe::running_replicas(lab, "web") == 3
        });
        assert!(back, "3 replicas again within 90 s");
        replaced.push(lab.now().since(t0).as_nanos() as f64 / 1e9);
    }
    println!(
        "crash of a node with a replica -> every mesh request answered again: median {:.2} s, p90 {:.2} s, max {:.2} s ({seeds} seeds)",
        pct(&mut healed, 0.5),
        pct(&mut healed, 0.9),
        pct(&mut healed, 1.0)
    );
    println!(
        "crash of a node with a replica -> 3 replicas running again: median {:.2} s, p90 {:.2} s ({seeds} seeds)",
        pct(&mut replaced, 0.5),
        pct(&mut replaced, 0.9)
    );
}
