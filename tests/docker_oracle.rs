//! Real Docker as the oracle: a single-node swarm on this machine's engine answers the
//! same commands as a one-host swarmlab lab, and the texts must match (headers,
//! `--format` output, refusals), with node ids masked.
//!
//! Needs a running Docker engine that is not already in a swarm. Skipped (with the reason)
//! elsewhere; under `CI=true` it must run.

use std::process::Command;
use swarmlab::docker::CommandOutput;
use swarmlab::lab::Lab;
use swarmlab::session::execute;
use swarmlab_tests::can_run;

fn docker(args: &[&str]) -> CommandOutput {
    let o = Command::new("docker")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("docker runs");
    CommandOutput {
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        exit_code: o.status.code().unwrap_or(-1),
    }
}

fn swarm_state() -> Option<String> {
    let o = Command::new("docker")
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Leaves the real swarm when the test ends, whatever happens.
struct Leave;
impl Drop for Leave {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["swarm", "leave", "--force"])
            .output();
    }
}

/// The node's IDs given, then any other object ID (25 characters of base 36, as
/// swarmkit makes them: networks and services created by a case).
fn mask(text: &str, ids: &[&str]) -> String {
    let mut t = text.to_string();
    for id in ids {
        if !id.is_empty() {
            t = t.replace(id, "<ID>");
        }
    }
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.len() == 25 {
            out.push_str("<ID>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in t.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[test]
fn swarmlab_answers_as_a_real_single_node_swarm() {
    let state = swarm_state();
    if !can_run(
        "docker oracle",
        state.as_deref() == Some("inactive"),
        &match &state {
            None => "no Docker engine answers `docker info`".to_string(),
            Some(s) => format!("the engine's swarm state is {s:?}, not \"inactive\" (refusing to touch an existing swarm)"),
        },
    ) {
        return;
    }
    let _leave = Leave;
    let init = docker(&["swarm", "init"]);
    let init = if init.exit_code == 0 {
        init
    } else {
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"])
    };
    assert_eq!(init.exit_code, 0, "{init:?}");
    let real_id = docker(&["info", "--format", "{{.Swarm.NodeID}}"])
        .stdout
        .trim()
        .to_string();
    let real_host = docker(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{.Description.Hostname}}",
    ])
    .stdout
    .trim()
    .to_string();

    let mut lab = Lab::new(1);
    let h = lab.add_host("vm", "192.0.2.2".parse().unwrap(), 1500);
    let run = |lab: &mut Lab, args: &[&str]| {
        let argv: Vec<String> = std::iter::once("docker")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        execute(lab, h, &argv)
    };
    let ours = run(&mut lab, &["swarm", "init"]);
    assert_eq!(ours.exit_code, 0, "{ours:?}");
    let our_id = lab.swarm_of(h).node_id.clone().unwrap();

    // The first lines of `swarm init` (the token differs).
    let first = |o: &CommandOutput| o.stdout.lines().take(4).collect::<Vec<_>>().join("\n");
    assert_eq!(
        mask(&first(&ours), &[&our_id]),
        mask(&first(&init), &[&real_id])
    );

    let cases: Vec<Vec<String>> = vec![
        vec![
            "node".into(),
            "ls".into(),
            "--format".into(),
            "{{.Status}} {{.Availability}} {{.ManagerStatus}} {{.Self}}".into(),
        ],
        vec!["service".into(), "ls".into()],
        vec!["swarm".into(), "init".into()],
        vec!["swarm".into(), "join-token".into(), "foo".into()],
        vec!["swarm".into(), "join-token".into()],
        vec!["node".into(), "demote".into(), "ID".into()],
        vec!["node".into(), "rm".into(), "ID".into()],
        vec!["node".into(), "promote".into(), "ID".into()],
        vec!["node".into(), "rm".into(), "nosuchnode".into()],
        vec![
            "node".into(),
            "update".into(),
            "--availability".into(),
            "bogus".into(),
            "ID".into(),
        ],
        vec![
            "node".into(),
            "update".into(),
            "--label-rm".into(),
            "nosuchlabel".into(),
            "ID".into(),
        ],
        vec![
            "service".into(),
            "create".into(),
            "--replcas".into(),
            "2".into(),
            "busybox".into(),
        ],
        vec![
            "service".into(),
            "create".into(),
            "--replicas".into(),
            "abc".into(),
            "busybox".into(),
        ],
        vec!["service".into(), "scale".into(), "nosuch=2".into()],
        vec!["service".into(), "ps".into(), "nosuch".into()],
        vec!["service".into(), "rm".into(), "nosuch".into()],
        vec!["service".into(), "rm".into()],
        vec!["network".into(), "rm".into()],
        "service create --name a --publish 70000:80 busybox".split(' ').map(String::from).collect(),
        "service create --name a --constraint node.role~manager busybox".split(' ').map(String::from).collect(),
        "service create --name a --mode bogus busybox".split(' ').map(String::from).collect(),
        "service create --name a --restart-condition sometimes busybox".split(' ').map(String::from).collect(),
        "network create -d overlay --subnet bogus n1".split(' ').map(String::from).collect(),
        "service create --name a --network nosuchnet busybox".split(' ').map(String::from).collect(),
        vec!["node".into(), "promote".into(), "ID".into()],
        vec![
            "service".into(),
            "create".into(),
            "--endpoint-mode".into(),
            "dnsrr".into(),
            "--publish".into(),
            "8080:80".into(),
            "busybox".into(),
        ],
        vec!["swarm".into(), "leave".into()],
        vec!["network".into(), "rm".into(), "ingress".into()],
        vec!["network".into(), "inspect".into(), "ingress".into(), "--format".into(), "{{json .IPAM.Config}} {{.Ingress}} {{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}".into()],
        // Rolling updates' settings and the commands of this round (issue 13).
        "service create --update-order bogus busybox".split(' ').map(String::from).collect(),
        "service create --update-failure-action bogus busybox".split(' ').map(String::from).collect(),
        "service create --stop-grace-period bogus busybox".split(' ').map(String::from).collect(),
        "service rollback nosuch".split(' ').map(String::from).collect(),
        "service rollback".split(' ').map(String::from).collect(),
        "node ps".split(' ').map(String::from).collect(),
        "node ps -q".split(' ').map(String::from).collect(),
        "node ps nosuch".split(' ').map(String::from).collect(),
        "node ps self --format {{.Name}}".split(' ').map(String::from).collect(),
        vec!["info".into(), "--format".into(), "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Managers}} {{.Swarm.Nodes}} {{.Swarm.NodeID}} {{.Swarm.NodeAddr}}".into()],
        "info --bogus".split(' ').map(String::from).collect(),
        "info -x".split(' ').map(String::from).collect(),
        "info extra".split(' ').map(String::from).collect(),
        "service ls --format {{.Name}}".split(' ').map(String::from).collect(),
        "service ls -q".split(' ').map(String::from).collect(),
        "node ls -q --filter role=worker".split(' ').map(String::from).collect(),
        "node inspect self --format {{.Spec.Role}}/{{.Spec.Availability}}/{{.Status.State}}".split(' ').map(String::from).collect(),
        "node inspect nosuch".split(' ').map(String::from).collect(),
        "service inspect nosuch".split(' ').map(String::from).collect(),
        "network inspect nosuch".split(' ').map(String::from).collect(),
        "service update nosuch".split(' ').map(String::from).collect(),
        "service update --image busybox nosuch".split(' ').map(String::from).collect(),
        "service scale web".split(' ').map(String::from).collect(),
        "service scale web=x".split(' ').map(String::from).collect(),
        "service create --name x --replicas -1 busybox".split(' ').map(String::from).collect(),
        "network ls --filter driver=overlay --format {{.Name}}".split(' ').map(String::from).collect(),
        "network ls --filter bogus=1".split(' ').map(String::from).collect(),
        "network create -d overlay --subnet 10.99.0.0/24 ingress".split(' ').map(String::from).collect(),
        "network rm nosuch".split(' ').map(String::from).collect(),
        "node update".split(' ').map(String::from).collect(),
        "node demote".split(' ').map(String::from).collect(),
        "swarm join-token bogus".split(' ').map(String::from).collect(),
        "swarm join --token SWMTKN-1-x 10.0.0.1:2377".split(' ').map(String::from).collect(),
        "service ps --filter bogus=1 nosuch".split(' ').map(String::from).collect(),
        "node ls --filter role=manager --format {{.Hostname}}/{{.ManagerStatus}}".split(' ').map(String::from).collect(),
        "node ls --filter bogus=x".split(' ').map(String::from).collect(),
        "node ls --format {{.Self}}".split(' ').map(String::from).collect(),
        "node inspect self --format {{.ManagerStatus.Leader}}".split(' ').map(String::from).collect(),
        "node inspect --pretty nosuch".split(' ').map(String::from).collect(),
        "node update --role bogus ID".split(' ').map(String::from).collect(),
        "node update --role bogus self".split(' ').map(String::from).collect(),
        "node update --label-add a=b --label-add c ID".split(' ').map(String::from).collect(),
        vec!["node".into(), "inspect".into(), "self".into(), "--format".into(), "{{json .Spec.Labels}}".into()],
        "node update --label-rm c ID".split(' ').map(String::from).collect(),
        vec!["node".into(), "inspect".into(), "self".into(), "--format".into(), "{{json .Spec.Labels}}".into()],
        "node update --availability drain ID".split(' ').map(String::from).collect(),
        "node ls --format {{.Availability}}".split(' ').map(String::from).collect(),
        "node update --availability active ID".split(' ').map(String::from).collect(),
        "node promote self".split(' ').map(String::from).collect(),
        "service ls --filter bogus=1".split(' ').map(String::from).collect(),
        "service ls --filter name=nosuch".split(' ').map(String::from).collect(),
        "service create --name bad_name! busybox".split(' ').map(String::from).collect(),
        "service create --replicas 2 --mode global busybox".split(' ').map(String::from).collect(),
        "service ls --format {{.Name}}/{{.Mode}}/{{.Replicas}}".split(' ').map(String::from).collect(),
        "network ls --format {{.Name}}/{{.Driver}}/{{.Scope}}".split(' ').map(String::from).collect(),
        "swarm join-token -q bogus".split(' ').map(String::from).collect(),
        "swarm leave --bogus".split(' ').map(String::from).collect(),
        "swarm init --bogus".split(' ').map(String::from).collect(),
        // Refusals, network and node life, pflag's shorthand message (session 8).
        "ps -v".split(' ').map(String::from).collect(),
        "ps --bogus".split(' ').map(String::from).collect(),
        "ps -q --bogus".split(' ').map(String::from).collect(),
        "network ls -z".split(' ').map(String::from).collect(),
        "service ls -x".split(' ').map(String::from).collect(),
        "node ls --bogus".split(' ').map(String::from).collect(),
        "service create".split(' ').map(String::from).collect(),
        "service update".split(' ').map(String::from).collect(),
        "service scale".split(' ').map(String::from).collect(),
        "service scale web".split(' ').map(String::from).collect(),
        "service scale web=".split(' ').map(String::from).collect(),
        "service scale =3".split(' ').map(String::from).collect(),
        "service inspect".split(' ').map(String::from).collect(),
        "node inspect".split(' ').map(String::from).collect(),
        "network inspect".split(' ').map(String::from).collect(),
        "network create".split(' ').map(String::from).collect(),
        "service ps".split(' ').map(String::from).collect(),
        "node rm".split(' ').map(String::from).collect(),
        "node promote".split(' ').map(String::from).collect(),
        "swarm join".split(' ').map(String::from).collect(),
        "swarm join-token worker --bogus".split(' ').map(String::from).collect(),
        "swarm join-token --rotate bogus".split(' ').map(String::from).collect(),
        "service update --image busybox nosuch".split(' ').map(String::from).collect(),
        "service update --replicas 2 nosuch".split(' ').map(String::from).collect(),
        "service update --replicas abc nosuch".split(' ').map(String::from).collect(),
        "service update --rollback nosuch".split(' ').map(String::from).collect(),
        "service scale nosuch=abc".split(' ').map(String::from).collect(),
        "service scale nosuch1=1 nosuch2=2".split(' ').map(String::from).collect(),
        "service scale --bogus nosuch=1".split(' ').map(String::from).collect(),
        "service rm nosuch1 nosuch2".split(' ').map(String::from).collect(),
        "network create -d overlay --attachable n2".split(' ').map(String::from).collect(),
        "network create -d overlay n2".split(' ').map(String::from).collect(),
        "network ls --filter name=n2 --format {{.Name}}/{{.Driver}}/{{.Scope}}".split(' ').map(String::from).collect(),
        "network inspect n2 --format {{.Driver}}/{{.Scope}}/{{.Attachable}}/{{.Internal}}/{{.Ingress}}".split(' ').map(String::from).collect(),
        "network ls --filter driver=overlay --format {{.Name}}".split(' ').map(String::from).collect(),
        "network ls --filter scope=swarm --format {{.Name}}".split(' ').map(String::from).collect(),
        "network ls --format {{.Name}}".split(' ').map(String::from).collect(),
        "network rm n2 nosuch".split(' ').map(String::from).collect(),
        "network rm n2".split(' ').map(String::from).collect(),
        "network inspect n2".split(' ').map(String::from).collect(),
        "node update --availability pause ID".split(' ').map(String::from).collect(),
        "node ls --format {{.Availability}}/{{.Status}}".split(' ').map(String::from).collect(),
        "node inspect self --format {{.Spec.Availability}}".split(' ').map(String::from).collect(),
        "node update --availability active ID".split(' ').map(String::from).collect(),
        "node update --bogus ID".split(' ').map(String::from).collect(),
        "node update ID nosuch".split(' ').map(String::from).collect(),
        "node inspect self nosuch --format {{.Spec.Role}}".split(' ').map(String::from).collect(),
        "node ls -q --filter role=manager --filter role=worker".split(' ').map(String::from).collect(),
        "service create --update-max-failure-ratio 2 busybox".split(' ').map(String::from).collect(),
        "service create --update-monitor bogus busybox".split(' ').map(String::from).collect(),
        "service create --rollback-parallelism x busybox".split(' ').map(String::from).collect(),
        "service create --rollback-failure-action bogus busybox".split(' ').map(String::from).collect(),
        "service create --rollback-order bogus busybox".split(' ').map(String::from).collect(),
        "service update --update-max-failure-ratio abc nosuch".split(' ').map(String::from).collect(),
        "service update --rollback-delay 1x nosuch".split(' ').map(String::from).collect(),
        "version --bogus".split(' ').map(String::from).collect(),
        "version extra".split(' ').map(String::from).collect(),
        "version -x".split(' ').map(String::from).collect(),
        "container bogus".split(' ').map(String::from).collect(),
        "container ls --filter name=nosuch --format {{.Names}}".split(' ').map(String::from).collect(),
        "container ps -q --filter name=nosuch".split(' ').map(String::from).collect(),
        vec!["version".into(), "--format".into(), "{{.Client.Version}} {{.Client.APIVersion}} {{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Os}}/{{.Server.Arch}} {{.Server.Experimental}}".into()],
        // `--format table ...`: the header row and the CLI's tabwriter; `\t` written out.
        vec!["node".into(), "ls".into(), "--format".into(), "table {{.Hostname}}\\t{{.Status}}\\t{{.ManagerStatus}}".into()],
        vec!["node".into(), "ls".into(), "--format".into(), "table {{.ID}}\\t{{.Status}}".into()],
        vec!["network".into(), "ls".into(), "--filter".into(), "driver=overlay".into(), "--format".into(), "table {{.Name}}\\t{{.Driver}}\\t{{.Scope}}".into()],
        vec!["service".into(), "ls".into(), "--format".into(), "table".into()],
        vec!["service".into(), "ls".into(), "--format".into(), "table {{.Name}}\\t{{.Replicas}}".into()],
        vec!["node".into(), "ls".into(), "--format".into(), "  {{.Status}}\\t{{.Availability}}  ".into()],
        vec!["node".into(), "ps".into(), "--format".into(), "table {{.Name}}\\t{{.DesiredState}}".into()],
        vec!["ps".into(), "--filter".into(), "name=nosuch".into(), "--format".into(), "table {{.Names}}\\t{{.Status}}".into()],
        "run -d -p 70000:80 nosuchimage".split(' ').map(String::from).collect(),
        "run -d -p abc nosuchimage".split(' ').map(String::from).collect(),
        "run -d -p 80/bogus nosuchimage".split(' ').map(String::from).collect(),
        "run -d -p 1:2:3:4 nosuchimage".split(' ').map(String::from).collect(),
        // The host's own networks, answered without the leader.
        vec!["network".into(), "inspect".into(), "bridge".into(), "--format".into(), "{{.Name}} {{.Scope}} {{.Driver}} {{json .IPAM}} {{.Internal}} {{.Attachable}} {{.Ingress}}".into()],
        vec!["network".into(), "inspect".into(), "host".into(), "none".into(), "--format".into(), "{{.Name}} {{.Driver}} {{json .IPAM}} {{json .Options}} {{json .Labels}}".into()],
        vec!["network".into(), "inspect".into(), "docker_gwbridge".into(), "--format".into(), "{{json .IPAM.Config}} {{json .Options}}".into()],
        vec!["network".into(), "inspect".into(), "bridge".into(), "nosuch".into(), "--format".into(), "{{.Name}}".into()],
        // (Not `--filter membership=...`: after a `node update`, the real daemon's spec
        // holds membership PENDING, its zero value, so the filter answers the opposite.)
        "node ls --filter membership=bogus".split(' ').map(String::from).collect(),
        "node ls --filter role=bogus".split(' ').map(String::from).collect(),
        "service ls --filter mode=replicated".split(' ').map(String::from).collect(),
        "service ls --filter mode=bogus".split(' ').map(String::from).collect(),
        "service create --name x --update-parallelism abc busybox".split(' ').map(String::from).collect(),
        "service create --name x --update-delay abc busybox".split(' ').map(String::from).collect(),
        "service create --name x --restart-delay abc busybox".split(' ').map(String::from).collect(),
        "service create --name x --replicas -1 busybox".split(' ').map(String::from).collect(),
        "service create --name x --publish 80:abc busybox".split(' ').map(String::from).collect(),
        "service create --name x --publish abc busybox".split(' ').map(String::from).collect(),
        "service create --name x --endpoint-mode bogus busybox".split(' ').map(String::from).collect(),
        "service create --name x --constraint bogus busybox".split(' ').map(String::from).collect(),
        "service create --name x --mode global --replicas 1 busybox".split(' ').map(String::from).collect(),
        "swarm leave --force --bogus".split(' ').map(String::from).collect(),
        "swarm init --advertise-addr 1.2.3.4".split(' ').map(String::from).collect(),
        "info -f {{.Swarm.LocalNodeState}}".split(' ').map(String::from).collect(),
        "info --format={{.Swarm.ControlAvailable}}".split(' ').map(String::from).collect(),
        "network inspect ingress --format {{.Scope}}/{{.Driver}}/{{.Attachable}}".split(' ').map(String::from).collect(),
        "network inspect ingress nosuch --format {{.Name}}".split(' ').map(String::from).collect(),
    ];
    let mut mismatches = Vec::new();
    for case in &cases {
        let with = |id: &str| -> Vec<String> {
            case.iter()
                .map(|a| if a == "ID" { id.to_string() } else { a.clone() })
                .collect()
        };
        let real_args = with(&real_id);
        let our_args = with(&our_id);
        let real = docker(&real_args.iter().map(String::as_str).collect::<Vec<_>>());
        let ours = run(
            &mut lab,
            &our_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        // The real CLI warns on stderr that it cannot reach a registry: not ours to copy.
        let real_err: String = real
            .stderr
            .lines()
            .filter(|l| {
                !l.contains("could not be accessed on a registry")
                    && !l.starts_with("its digest.")
                    && !l.starts_with("possibly leading")
                    && !l.starts_with("versions of the image")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let norm = |o: &str, id: &str, host: &str| {
            mask(o, &[id])
                .replace(host, "<HOST>")
                .trim_end()
                .to_string()
        };
        let r = (
            norm(&real.stdout, &real_id, &real_host),
            norm(&real_err, &real_id, &real_host),
            real.exit_code == 0,
        );
        let o = (
            norm(&ours.stdout, &our_id, "vm"),
            norm(&ours.stderr, &our_id, "vm"),
            ours.exit_code == 0,
        );
        if r != o {
            mismatches.push(format!(
                "docker {}\n  real: {r:?}\n  ours: {o:?}",
                case.join(" ")
            ));
        }
    }
    // An image no registry has: the same warning, then the same endpoint (ports, VIP mode).
    let create = [
        "service",
        "create",
        "--detach",
        "--name",
        "pub",
        "--publish",
        "8080:80",
        "nosuchimage",
    ];
    let real = docker(&create);
    let ours = run(&mut lab, &create);
    if real.stderr != ours.stderr || (real.exit_code == 0) != (ours.exit_code == 0) {
        mismatches.push(format!(
            "docker {}\n  real: {real:?}\n  ours: {ours:?}",
            create.join(" ")
        ));
    }
    for field in ["{{json .Endpoint.Spec}}", "{{json .Endpoint.Ports}}"] {
        let args = ["service", "inspect", "pub", "--format", field];
        let (real, ours) = (docker(&args), run(&mut lab, &args));
        if real.stdout != ours.stdout {
            mismatches.push(format!(
                "docker {}\n  real: {real:?}\n  ours: {ours:?}",
                args.join(" ")
            ));
        }
    }
    // The inspect objects have the real ones' fields, in their order (values aside),
    // once the node's ingress sandbox is up, as the real one's is by now.
    let until = lab.now() + swarmlab::time::Duration::from_secs(2);
    while lab.step_until(until) {}
    for args in [
        &["node", "inspect", "self"][..],
        &["service", "inspect", "pub"][..],
        &["network", "inspect", "ingress"][..],
        &["network", "inspect", "bridge"][..],
    ] {
        let (real, ours) = (docker(args), run(&mut lab, args));
        let shape = |o: &CommandOutput| {
            serde_json::from_str::<serde_json::Value>(&o.stdout)
                .map(|v| paths(&v, ""))
                .unwrap_or_else(|e| vec![format!("not JSON: {e}")])
        };
        let (r, o) = (shape(&real), shape(&ours));
        if r != o {
            mismatches.push(format!(
                "docker {} (fields)\n  real: {r:?}\n  ours: {o:?}",
                args.join(" ")
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The field paths of a JSON value, in order: objects by key (a map keyed by IDs or
/// names, as `Containers`, counts as one entry), arrays by their first element.
fn paths(v: &serde_json::Value, at: &str) -> Vec<String> {
    let mut out = vec![at.to_string()];
    match v {
        serde_json::Value::Object(m) => {
            let keyed_by_data = at.ends_with(".Containers") || at.ends_with(".Labels");
            for (k, x) in m {
                let k = if keyed_by_data { "*" } else { k.as_str() };
                let sub = paths(x, &format!("{at}.{k}"));
                if !out.contains(&sub[0]) {
                    out.extend(sub);
                }
            }
        }
        serde_json::Value::Array(a) => {
            if let Some(first) = a.first() {
                out.extend(paths(first, &format!("{at}[]")));
            }
        }
        _ => {}
    }
    out
}
