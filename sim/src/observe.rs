//! Probes and views for expectations: read-only looks at the lab, and the probes a lab's
//! `expect http|reach|spread` sends (real requests through the mesh, as a student's
//! `curl` would).

use crate::ids::ContainerId;
use crate::lab::cx::Cx;
use crate::lab::Lab;
use crate::netstack::{ClientEnd, Framing};
use crate::time::Duration;
use crate::traffic::Owner;
use crate::underlay::HostId;
use std::collections::BTreeMap;
use std::net::SocketAddrV4;

/// A running container by name, ID prefix, or a task's `SERVICE.SLOT` (the task container
/// named `SERVICE.SLOT.TASKID`).
pub fn find_container(lab: &Lab, r: &str) -> Option<ContainerId> {
    let running = |c: &ContainerId| lab.exists(*c) && lab.containers[c.0].running;
    if let Some(c) = lab.container_by_ref(r).filter(running) {
        return Some(c);
    }
    let prefix = format!("{r}.");
    (0..lab.containers.len())
        .map(ContainerId)
        .filter(running)
        .find(|c| lab.containers[c.0].name.starts_with(&prefix))
}

/// One `GET /` from host `h` to its own address and `port`, with a 2 s deadline.
async fn self_get(cx: &Cx<'_>, h: HostId, port: u16) -> (ClientEnd, Vec<u8>) {
    let (ip, name) = {
        let lab = cx.lab();
        (lab.underlay.nic(h).ip, lab.host_name(h).to_string())
    };
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {name}:{port}\r\nUser-Agent: swarmlab\r\nAccept: */*\r\n\r\n"
    );
    let (end, response, _) = crate::lab::tcp_request(
        cx,
        Owner::Host(h),
        SocketAddrV4::new(ip, port),
        request.into_bytes(),
        Framing::Http,
        Duration::from_secs(2),
    )
    .await;
    (end, response)
}

pub use crate::traffic::shown_answer;

fn end_text(end: &ClientEnd) -> &'static str {
    match end {
        ClientEnd::Done => "done",
        ClientEnd::Refused => "connection refused",
        ClientEnd::Reset => "connection reset",
        ClientEnd::TimedOut => "no answer within 2 s",
        ClientEnd::Unreachable => "host unreachable (ARP failed)",
        ClientEnd::NoPort => "no free ephemeral port (all in TIME-WAIT)",
    }
}

/// One HTTP GET from host `h` to its own `port`: Ok(status line) or Err(why not).
pub async fn http_probe(cx: &Cx<'_>, h: HostId, port: u16) -> Result<String, String> {
    let name = cx.lab().host_name(h).to_string();
    if !cx.lab().underlay.nic(h).up {
        return Err(format!("{name} is down"));
    }
    let (end, response) = self_get(cx, h, port).await;
    if end != ClientEnd::Done {
        return Err(format!("GET http://{name}:{port}/: {}", end_text(&end)));
    }
    match crate::netstack::http_parts(&response) {
        Some((code, head, body)) => {
            let status = head.lines().next().unwrap_or_default().to_string();
            let body = String::from_utf8_lossy(&body);
            let who = if body.contains("Hostname: ") {
                format!(
                    " from {}",
                    crate::programs::replica_of(&crate::lab::Ns::new(cx, Owner::Host(h)), &body)
                )
            } else {
                format!(" ({} bytes)", body.len())
            };
            if code < 500 {
                Ok(format!("{status}{who}"))
            } else {
                Err(format!("{status}{who}"))
            }
        }
        None => Err(format!("GET http://{name}:{port}/: no HTTP reply")),
    }
}

/// One TCP handshake from container `from` to `to:port`.
pub async fn reach_probe(cx: &Cx<'_>, from: &str, to: &str, port: u16) -> Result<String, String> {
    let found = find_container(&cx.lab(), from);
    let Some(c) = found else {
        return Err(format!("container {from} is not running"));
    };
    let resolved = crate::lab::dns_resolve(cx, c, to).await;
    let Some(ip) = resolved.and_then(|v| v.first().copied()) else {
        return Err(format!("{to} does not resolve (NXDOMAIN)"));
    };
    let (end, _, real) = crate::lab::tcp_request(
        cx,
        Owner::Container(c),
        SocketAddrV4::new(ip, port),
        Vec::new(),
        Framing::Connect,
        Duration::from_secs(2),
    )
    .await;
    let via = if real.ip() != &ip {
        format!(" (VIP {ip} -> {real})")
    } else {
        String::new()
    };
    match end {
        ClientEnd::Done => Ok(format!("connected to {to}:{port}{via}")),
        e => Err(format!("{to}:{port}{via}: {}", end_text(&e))),
    }
}

/// How many tasks of `service` the leader sees running (desired running, on a Ready
/// node).
pub fn running_replicas(lab: &Lab, service: &str) -> usize {
    let Some((_, store)) = lab.swarm_view() else {
        return 0;
    };
    let Some(svc) = store.find_service(service) else {
        return 0;
    };
    serving(store, &svc.id).count()
}

/// The tasks of a service that serve: running, meant to run, on a Ready node.
fn serving<'a>(
    store: &'a crate::swarm::store::Store,
    service_id: &'a str,
) -> impl Iterator<Item = &'a crate::swarm::store::Task> + 'a {
    use crate::swarm::store::{NodeStatus, TaskState};
    store
        .tasks_of(service_id)
        .filter(|t| t.state == TaskState::Running && t.desired == TaskState::Running)
        .filter(|t| {
            t.node_id
                .as_ref()
                .and_then(|n| store.nodes.get(n))
                .is_some_and(|n| n.status == NodeStatus::Ready)
        })
}

/// Requests from host `h` to its own `port`: every running replica of `service` must
/// answer, and under rr (and wrr, all weights 1) the counts differ by at most 1.
pub async fn spread_probe(
    cx: &Cx<'_>,
    h: HostId,
    port: u16,
    service: &str,
    requests: Option<u32>,
) -> Result<String, String> {
    // The replicas that run, as the nodes report them (no leader needed).
    let tasks = task_containers(&cx.lab(), service);
    let sched = tasks
        .first()
        .map_or_else(|| "rr".to_string(), |(_, _, s)| s.clone());
    let mut replicas: BTreeMap<String, u32> = BTreeMap::new();
    for (_, c, _) in &tasks {
        replicas.insert(cx.lab().containers[c.0].id[..12].to_string(), 0);
    }
    if replicas.is_empty() {
        return Err(format!("service {service} has no running replica"));
    }
    let n = requests.unwrap_or(3 * replicas.len() as u32);
    let (mut others, mut failed) = (0u32, Vec::new());
    for _ in 0..n {
        let (end, response) = self_get(cx, h, port).await;
        let body = crate::netstack::http_parts(&response).map(|p| p.2);
        let who = body.as_ref().and_then(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .find_map(|l| l.strip_prefix("Hostname: ").map(String::from))
        });
        match (end, who) {
            (ClientEnd::Done, Some(w)) => match replicas.get_mut(&w) {
                Some(k) => *k += 1,
                None => others += 1,
            },
            (e, _) => failed.push(end_text(&e)),
        }
    }
    let lab = cx.lab();
    let mut shown: Vec<String> = replicas
        .iter()
        .map(|(id, k)| {
            let task = lab
                .containers
                .iter()
                .find(|c| c.id.starts_with(id.as_str()))
                .map_or(id.clone(), |c| {
                    c.name.split('.').take(2).collect::<Vec<_>>().join(".")
                });
            format!("{task} {k}")
        })
        .collect();
    shown.sort();
    let summary = format!("{n} requests ({sched}): {}", shown.join(", "));
    let (min, max) = (
        replicas.values().min().copied().unwrap_or(0),
        replicas.values().max().copied().unwrap_or(0),
    );
    if !failed.is_empty() {
        return Err(format!(
            "{summary}; {} failed ({})",
            failed.len(),
            failed[0]
        ));
    }
    if others > 0 {
        return Err(format!("{summary}; {others} answered by something else"));
    }
    if min == 0 {
        return Err(format!("{summary}; a running replica never answered"));
    }
    if (sched == "rr" || sched == "wrr") && max - min > 1 {
        return Err(format!(
            "{summary}; counts differ by more than 1 under {sched}"
        ));
    }
    Ok(summary)
}

/// Whether a write proposed now would commit: the leader, and whether it reaches a
/// majority of the Raft voters (itself included) over tcp/2377 right now. A leader cut
/// off from the majority still believes it leads until check-quorum steps it down
/// (an election timeout later); meanwhile writes block, so this is what `expect quorum`
/// reads.
pub fn quorum(lab: &Lab) -> (Option<HostId>, bool) {
    let Some((leader, _)) = lab.swarm_view() else {
        return (None, false);
    };
    let Some(m) = lab.swarm_of(leader).manager.as_ref() else {
        return (Some(leader), false);
    };
    let voters = m.raft.voters();
    let reached = voters
        .iter()
        .filter(|id| {
            if **id == m.raft.id {
                return true;
            }
            m.raft
                .peers
                .get(id)
                .and_then(|ip| lab.underlay.by_ip(*ip))
                .is_some_and(|h| lab.tcp_path(leader, h, crate::swarm::SWARM_PORT).is_ok())
        })
        .count();
    (Some(leader), reached * 2 > voters.len())
}

/// The ground truth about a service's tasks: the hosts where one of its task containers
/// runs now (a host once per task), whatever any manager believes. It reads the nodes,
/// so it holds with no leader, and a crashed host's tasks are not counted.
pub fn running_tasks(lab: &Lab, service: &str) -> Vec<String> {
    task_containers(lab, service)
        .into_iter()
        .map(|(h, _, _)| lab.host_name(h).to_string())
        .collect()
}

/// A service's task containers that run now, as the nodes' engines report them: host,
/// container, and the service's ingress scheduler. A task the node's agent still
/// follows counts once it has started and until it is being stopped; a task container
/// no agent follows any more (its node left the swarm, its engine lost the manager's
/// state) counts while it runs.
fn task_containers(lab: &Lab, service: &str) -> Vec<(HostId, ContainerId, String)> {
    use crate::swarm::store::TaskState;
    let mut out = Vec::new();
    for i in 0..lab.hosts.len() {
        let host = HostId(i);
        if !lab.underlay.nic(host).up {
            continue;
        }
        let followed: BTreeMap<ContainerId, &crate::swarm::AgentTask> = lab
            .swarm_of(host)
            .agent
            .iter()
            .flat_map(|a| a.tasks.values())
            .filter_map(|t| t.container.map(|c| (ContainerId(c as usize), t)))
            .collect();
        for &c in lab.containers_on(host) {
            let k = &lab.containers[c.0];
            // A task's container is named SERVICE.SLOT.TASKID (25-character task id).
            let parts: Vec<&str> = k.name.split('.').collect();
            let of_service = parts.len() == 3 && parts[0] == service && parts[2].len() == 25;
            if !(k.swarm_task && k.running && of_service) {
                continue;
            }
            match followed.get(&c) {
                Some(t) if t.state != TaskState::Running || t.stopping => {}
                Some(t) => out.push((host, c, t.endpoint.scheduler.clone())),
                None => out.push((host, c, "rr".to_string())),
            }
        }
    }
    out
}
