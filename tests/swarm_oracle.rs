//! A real multi-node swarm as the oracle: `../shared/oracle/swarm-up.sh` starts three
//! real Docker engines (20.10) in containers, as managers m1, m2 and worker m3, with an
//! attachable overlay and a 3-replica dnsrr service. The same swarm is built in
//! swarmlab, the same commands are typed on the same nodes, and the texts must match
//! (IDs masked; Debian's `+dfsg1` version suffix dropped). Then two multi-node
//! behaviours are timed on both: demoting the leader of two managers (real: the other
//! leads within about 10 ms), and a worker killed until the remaining manager shows it
//! Down (real: 11.7-14.1 s).
//!
//! Needs the machine's Docker engine and the Debian packages the oracle copies
//! (docker.io, containerd, runc, iptables, iproute2, tini, busybox-static); `.ci/run`
//! installs the last ones. Skipped elsewhere, with the reason; under `CI=true` it must run.

use std::path::Path;
use std::process::Command;
use std::time::Instant as WallClock;
use swarmlab::docker::CommandOutput;
use swarmlab::session::Session;
use swarmlab::time::Duration;
use swarmlab::underlay::HostId;
use swarmlab_tests::can_run;

/// The oracle's script: beside the repository (`../shared`), or where this workplace
/// keeps it.
fn oracle() -> Option<String> {
    [
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/oracle/swarm-up.sh"
        ),
        "/work/shared/oracle/swarm-up.sh",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .map(String::from)
}

/// Removes the real nodes, their network and images when the test ends, whatever
/// happens.
struct TearDown;
impl Drop for TearDown {
    fn drop(&mut self) {
        if let Some(script) = oracle() {
            let _ = Command::new("bash")
                .args([script.as_str(), "down"])
                .output();
        }
    }
}

/// `docker ARGS` on the real node `node`.
fn real(node: &str, args: &[&str]) -> CommandOutput {
    let o = Command::new("docker")
        .args(["exec", node, "docker"])
        .args(args)
        .output()
        .expect("docker runs");
    CommandOutput {
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        exit_code: o.status.code().unwrap_or(-1),
    }
}

/// What a comparison looks at: both streams, with IDs (25 characters of base 36) masked
/// and Debian's version suffix dropped, and whether the command succeeded.
fn seen(o: &CommandOutput) -> (String, String, bool) {
    let norm = |t: &str| {
        let mut out = String::new();
        for word in t
            .replace("+dfsg1", "")
            .split_inclusive(|c: char| !c.is_ascii_alphanumeric())
        {
            let (w, rest) = word.split_at(
                word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                    .len(),
            );
            let id = w.len() == 25
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            out.push_str(if id { "<ID>" } else { w });
            out.push_str(rest);
        }
        out.trim_end().to_string()
    };
    (norm(&o.stdout), norm(&o.stderr), o.exit_code == 0)
}

struct Lab {
    s: Session,
    hosts: Vec<HostId>,
}

impl Lab {
    fn docker(&mut self, node: usize, args: &[&str]) -> CommandOutput {
        let argv: Vec<String> = std::iter::once("docker")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        self.s.command(self.hosts[node - 1], &argv)
    }
}

/// Poll `node ls` on `node` every 250 ms until `line` shows in `{{.Hostname}}
/// {{.Status}} {{.ManagerStatus}}`, for at most `limit` seconds: how long it took.
fn poll_real(node: &str, line: &str, limit: f64) -> Option<f64> {
    let start = WallClock::now();
    while start.elapsed().as_secs_f64() < limit {
        let o = real(node, &["node", "ls", "--format", FIELDS]);
        if o.stdout.lines().any(|l| l.trim_end() == line) {
            return Some(start.elapsed().as_secs_f64());
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    None
}

fn poll_ours(lab: &mut Lab, node: usize, line: &str, limit: f64) -> Option<f64> {
    let start = lab.s.now();
    while lab.s.now().since(start).as_nanos() as f64 / 1e9 < limit {
        let o = lab.docker(node, &["node", "ls", "--format", FIELDS]);
        if o.stdout.lines().any(|l| l.trim_end() == line) {
            return Some(lab.s.now().since(start).as_nanos() as f64 / 1e9);
        }
        lab.s.sleep(Duration::from_millis(250));
    }
    None
}

const FIELDS: &str = "{{.Hostname}} {{.Status}} {{.ManagerStatus}}";

#[test]
fn a_real_three_node_swarm_and_swarmlab_agree() {
    let docker_ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    let tools = [
        "/usr/bin/busybox",
        "/usr/bin/tini-static",
        "/usr/sbin/dockerd",
    ];
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|p| !Path::new(p).exists())
        .collect();
    let script = oracle();
    if !can_run(
        "multi-node docker oracle",
        docker_ok && missing.is_empty() && script.is_some(),
        &format!(
            "needs a Docker engine, ../shared/oracle/swarm-up.sh (found: {}) and the packages it copies (missing: {})",
            script.is_some(),
            missing.join(", ")
        ),
    ) {
        return;
    }
    let script = script.unwrap_or_default();
    let _down = TearDown;
    let up = Command::new("bash")
        .args([script.as_str(), "3", "2"])
        .output()
        .expect("bash runs");
    assert!(
        up.status.success(),
        "swarm-up.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );

    // The same swarm in swarmlab: the oracle's addresses, its joins, network and service.
    let mut lab = Lab {
        s: Session::new(1, false, None),
        hosts: Vec::new(),
    };
    lab.hosts = lab.s.run(async |cx| {
        (1..=3)
            .map(|i| {
                cx.lab().add_host(
                    &format!("m{i}"),
                    format!("192.168.77.{}", 10 + i).parse().unwrap(),
                    1500,
                )
            })
            .collect()
    });
    assert_eq!(
        lab.docker(1, &["swarm", "init", "--advertise-addr", "192.168.77.11"])
            .exit_code,
        0
    );
    let manager = lab
        .docker(1, &["swarm", "join-token", "-q", "manager"])
        .stdout;
    let worker = lab
        .docker(1, &["swarm", "join-token", "-q", "worker"])
        .stdout;
    for (node, token) in [(2, manager.trim()), (3, worker.trim())] {
        let addr = format!("192.168.77.{}", 10 + node);
        let o = lab.docker(
            node,
            &[
                "swarm",
                "join",
                "--advertise-addr",
                &addr,
                "--token",
                token,
                "192.168.77.11:2377",
            ],
        );
        assert_eq!(o.exit_code, 0, "{o:?}");
    }
    lab.docker(
        1,
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "appnet",
        ],
    );
    lab.docker(
        1,
        &[
            "service",
            "create",
            "-d",
            "--name",
            "web",
            "--replicas",
            "3",
            "--endpoint-mode",
            "dnsrr",
            "--network",
            "appnet",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    );
    lab.s.sleep(Duration::from_secs(5));

    let mut mismatches = Vec::new();
    let mut compare = |lab: &mut Lab, node: usize, args: &[&str]| {
        let r = seen(&real(&format!("m{node}"), args));
        let o = seen(&lab.docker(node, args));
        if r != o {
            mismatches.push(format!(
                "m{node}$ docker {}\n  real: {r:?}\n  ours: {o:?}",
                args.join(" ")
            ));
        }
    };
    // Both sides let `secs` pass: the real one on the wall clock.
    let settle = |lab: &mut Lab, secs: u64| {
        std::thread::sleep(std::time::Duration::from_secs(secs));
        lab.s.sleep(Duration::from_secs(secs));
    };
    let cases: &[(usize, &[&str])] = &[
        (
            1,
            &[
                "node",
                "ls",
                "--format",
                "{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}} {{.EngineVersion}}",
            ],
        ),
        (
            2,
            &[
                "node",
                "ls",
                "--format",
                "{{.Hostname}} {{.ManagerStatus}} {{.Self}}",
            ],
        ),
        (
            1,
            &[
                "service",
                "ls",
                "--format",
                "{{.Name}} {{.Mode}} {{.Replicas}}",
            ],
        ),
        (
            1,
            &[
                "network",
                "ls",
                "--filter",
                "driver=overlay",
                "--format",
                "{{.Name}} {{.Scope}}",
            ],
        ),
        (
            1,
            &[
                "network",
                "inspect",
                "appnet",
                "--format",
                "{{.Driver}} {{.Scope}} {{.Attachable}}",
            ],
        ),
        (2, &["service", "ls", "--format", "{{.Name}} {{.Replicas}}"]),
        (3, &["node", "ls"]),
        (3, &["service", "ls"]),
        (3, &["swarm", "join-token", "worker"]),
        (
            1,
            &[
                "node",
                "inspect",
                "m3",
                "--format",
                "{{.Spec.Role}} {{.Spec.Availability}} {{.Status.State}}",
            ],
        ),
        (
            1,
            &[
                "node",
                "inspect",
                "m2",
                "--format",
                "{{.Spec.Role}} {{.ManagerStatus.Reachability}} {{.ManagerStatus.Leader}}",
            ],
        ),
        (2, &["node", "rm", "m1"]),
        (2, &["node", "rm", "m3"]),
        (1, &["node", "promote", "m2"]),
        (1, &["node", "demote", "m3"]),
        (1, &["node", "update", "--availability", "drain", "m3"]),
        (
            1,
            &[
                "node",
                "ls",
                "--filter",
                "role=worker",
                "--format",
                "{{.Hostname}} {{.Availability}}",
            ],
        ),
        (1, &["node", "update", "--availability", "active", "m3"]),
    ];
    for (node, args) in cases {
        compare(&mut lab, *node, args);
    }
    // A third manager, then back to two, each given time to join or leave Raft.
    compare(&mut lab, 1, &["node", "promote", "m3"]);
    settle(&mut lab, 4);
    compare(&mut lab, 2, &["node", "ls", "--format", FIELDS]);
    compare(&mut lab, 2, &["node", "demote", "m3"]);
    settle(&mut lab, 4);
    compare(&mut lab, 1, &["node", "ls", "--format", FIELDS]);

    // Demoting the leader of two managers: the real one hands leadership over at once.
    compare(&mut lab, 1, &["node", "demote", "m1"]);
    let real_lead = poll_real("m2", "m2 Ready Leader", 20.0);
    let our_lead = poll_ours(&mut lab, 2, "m2 Ready Leader", 20.0);
    // The demoted node's agent reconnects as a worker: the real one shows `Unknown` for
    // 5 s or more (swarmlab's is Ready at once: a known difference); compare once the
    // real one is Ready again.
    let real_ready = poll_real("m2", "m1 Ready", 40.0);
    let our_ready = poll_ours(&mut lab, 2, "m1 Ready", 40.0);
    eprintln!("demoted m1 Ready again: real {real_ready:?} s, ours {our_ready:?} s");
    compare(&mut lab, 2, &["node", "ls", "--format", FIELDS]);
    assert!(
        real_lead.is_some() && our_lead.is_some(),
        "m2 leads: real {real_lead:?}, ours {our_lead:?}\n{}",
        mismatches.join("\n")
    );

    // A worker killed: how long until the remaining manager shows it Down.
    let kill = Command::new("docker")
        .args(["kill", "m3"])
        .output()
        .expect("docker runs");
    assert!(kill.status.success());
    let real_down = poll_real("m2", "m3 Down", 40.0);
    let m3 = lab.hosts[2];
    lab.s.run(async |cx| cx.lab().crash(m3));
    let our_down = poll_ours(&mut lab, 2, "m3 Down", 40.0);
    let (Some(real_down), Some(our_down)) = (real_down, our_down) else {
        panic!(
            "m3 Down: real {real_down:?}, ours {our_down:?}\n{}",
            mismatches.join("\n")
        );
    };
    eprintln!("leader demoted -> m2 leads: real {real_lead:?} s, ours {our_lead:?} s; worker killed -> Down: real {real_down:.1} s, ours {our_down:.1} s");
    // swarmkit: 3 missed heartbeat periods of 5 s (± 0.5 s) after the last heartbeat.
    // The real leader took over a few seconds before the kill: its dispatcher first
    // gives the nodes it has not heard from yet a grace of its own (3 periods), so the
    // real Down can come one grace later (31.5 s was seen once in CI; 10.7-12.7 s
    // otherwise). swarmlab's new leader gives one grace, so ours keeps the tight bound.
    assert!(
        (8.0..=34.0).contains(&real_down),
        "real: m3 Down after {real_down:.1} s"
    );
    assert!(
        (8.0..=18.0).contains(&our_down),
        "ours: m3 Down after {our_down:.1} s"
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
