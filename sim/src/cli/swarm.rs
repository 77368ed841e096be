//! `docker swarm|node|service|network` on a simulated host, with Docker's tables, texts
//! and refusals (CLI 28 against a 20.10 engine). Flags are parsed with clap.

use crate::cli::text::{ellipsis, human_duration, table, usage_error};
use crate::lab::cx::Cx;
use crate::lab::Lab;
use crate::output::CommandOutput;
use crate::swarm::controlapi::{valid_object_name, ApiError, NetworkSpec, Request, Response};
use crate::swarm::orchestrator::natural_cmp;
use crate::swarm::raftnode::RaftNode;
use crate::swarm::store::{
    Action, Availability, Cluster, Constraint, Mode, Network, Node, NodeStatus, PortSpec, Role,
    Service, Store, TaskState,
};
use crate::swarm::{NOT_IN_SWARM, NOT_MANAGER_WORKER, NO_LEADER, SWARM_PORT};
use crate::time::{Duration, Instant};
use crate::underlay::HostId;
use clap::Parser;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

type Res<T> = Result<T, CommandOutput>;

fn fail(text: impl Into<String>) -> CommandOutput {
    let mut t: String = text.into();
    if !t.ends_with('\n') {
        t.push('\n');
    }
    CommandOutput::err(t, 1)
}

/// The leader that serves `host`'s request, after the round trip to it.
async fn leader_for(cx: &Cx<'_>, host: HostId) -> Res<HostId> {
    {
        let lab = cx.lab();
        let s = &lab.swarm_of(host);
        if s.node_id.is_none() {
            return Err(fail(NOT_IN_SWARM));
        }
        if s.manager.is_none() {
            return Err(fail(NOT_MANAGER_WORKER));
        }
    }
    let known = cx.lab().swarm_leader_of(host).is_some();
    if !known {
        // A manager that has just seen an election learns the new leader from its first
        // message: the request waits a moment for one before giving up.
        let until = cx.now() + Duration::from_secs(2);
        cx.wait_until(until, |lab: &Lab| lab.swarm_leader_of(host).is_some())
            .await;
    }
    let (leader, back) = {
        let lab = cx.lab();
        let leader = lab.swarm_leader_of(host).ok_or_else(|| fail(NO_LEADER))?;
        let leads = lab
            .swarm_of(leader)
            .manager
            .as_ref()
            .is_some_and(|m| m.raft.is_leader());
        if !leads {
            return Err(fail(NO_LEADER));
        }
        let back = if leader == host {
            None
        } else {
            let latency = lab
                .tcp_path(host, leader, SWARM_PORT)
                .map_err(|_| fail(NO_LEADER))?;
            Some(lab.now() + Duration(2 * latency.as_nanos()))
        };
        (leader, back)
    };
    if let Some(back) = back {
        cx.sleep_until(back).await;
    }
    Ok(leader)
}

fn leader_store(lab: &Lab, leader: HostId) -> Store {
    lab.swarm_of(leader)
        .manager
        .as_ref()
        .map(|m| m.store.clone())
        .unwrap_or_default()
}

/// Propose on the leader and wait until it has applied the batch.
async fn commit(cx: &Cx<'_>, leader: HostId, actions: &[Action]) -> Res<()> {
    if actions.is_empty() {
        return Ok(());
    }
    let proposed = cx.lab().swarm_propose(leader, actions);
    let target = proposed.map_err(|e| fail(&e))?;
    committed(cx, leader, target).await
}

/// Wait until the leader has applied `target` batches (or lost its leadership).
async fn committed(cx: &Cx<'_>, leader: HostId, target: u64) -> Res<()> {
    let deadline = cx.now() + Duration::from_secs(30);
    let done = |lab: &Lab| {
        lab.swarm_of(leader)
            .manager
            .as_ref()
            .is_none_or(|m| m.raft.applied_batches() >= target || !m.raft.is_leader())
    };
    cx.wait_until(deadline, done).await;
    let ok = cx
        .lab()
        .swarm_of(leader)
        .manager
        .as_ref()
        .is_some_and(|m| m.raft.applied_batches() >= target);
    if ok {
        Ok(())
    } else {
        Err(fail(NO_LEADER))
    }
}

/// A request to the control API, as this node's daemon relays it to the leader: the
/// round trip, the leader's answer, and (for a write) the wait until it is committed.
/// The outer error is the relay's (not in a swarm, a worker, no leader); the inner one is
/// the API's answer.
async fn call(
    cx: &Cx<'_>,
    host: HostId,
    request: &Request,
) -> Res<Result<(HostId, Response), ApiError>> {
    let leader = leader_for(cx, host).await?;
    let answer = cx.lab().swarm_api(leader, request);
    match answer {
        Ok((response, target)) => {
            if target > 0 {
                committed(cx, leader, target).await?;
            }
            Ok(Ok((leader, response)))
        }
        Err(e) => Ok(Err(e)),
    }
}

/// A control API request whose error ends the command as the daemon's.
async fn request(cx: &Cx<'_>, host: HostId, request: &Request) -> Res<(HostId, Response)> {
    call(cx, host, request).await?.map_err(daemon)
}

/// How the CLI prints the daemon's error.
fn daemon(e: ApiError) -> CommandOutput {
    fail(format!("Error response from daemon: {e}"))
}

/// A network as the API answers it, or `None` when there is none of that name.
async fn get_network(cx: &Cx<'_>, host: HostId, r: &str) -> Res<Option<Network>> {
    match call(cx, host, &Request::GetNetwork(r.to_string())).await? {
        Ok((_, Response::Network(n))) => Ok(Some(n)),
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(daemon(e)),
    }
}

/// A service as the API answers it.
async fn get_service(cx: &Cx<'_>, host: HostId, r: &str) -> Res<Result<Service, ApiError>> {
    let res = call(cx, host, &Request::GetService(r.to_string())).await?;
    Ok(res.and_then(|(_, answer)| match answer {
        Response::Service(s) => Ok(s),
        _ => Err(ApiError::Invalid(
            "swarmlab: the API answered GetService with no service".into(),
        )),
    }))
}

fn now_ns(lab: &Lab) -> u64 {
    lab.now().0
}

fn ago(lab: &Lab, since: u64) -> String {
    let d = Duration(lab.now().0.saturating_sub(since));
    format!("{} ago", human_duration(d).to_lowercase())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A `{{.Field}}` template over named fields (the Go-template subset labs need:
/// `{{.X}}`, `{{.X.Y}}` on inspect objects, and `{{json .X}}`).
pub fn render(template: &str, fields: &serde_json::Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            return Err(format!("template: :1: unclosed action in {template}"));
        };
        let expr = rest[start + 2..start + end].trim();
        // `{{index .Options "key"}}`: a map entry.
        let (expr, index_key) = match expr.strip_prefix("index ") {
            Some(p) => match p.trim().split_once(' ') {
                Some((path, key)) => (path, Some(key.trim().trim_matches('"').to_string())),
                None => return Err(format!("template: :1: wrong number of args for index: want at least 1 got 0 in {template}")),
            },
            None => (expr, None),
        };
        let (json, path) = match expr.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, expr),
        };
        let Some(path) = path.strip_prefix('.') else {
            return Err(format!("template: :1: function \"{path}\" not defined"));
        };
        let mut v = fields;
        if !path.is_empty() {
            for part in path.split('.') {
                v = v.get(part).ok_or_else(|| {
                    format!(
                        "template: :1:{}: executing \"\" at <.{path}>: can't evaluate field {part}",
                        start + 3
                    )
                })?;
            }
        }
        if let Some(k) = &index_key {
            v = v.get(k.as_str()).unwrap_or(&serde_json::Value::Null);
        }
        let text = match (json, v) {
            (true, v) => v.to_string(),
            (false, serde_json::Value::String(s)) => s.clone(),
            (false, serde_json::Value::Null) => "<no value>".into(),
            (false, v) => v.to_string(),
        };
        out.push_str(&text);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A listing's `--format`, as the Docker CLI writes it: `\t` and `\n` written out in the
/// template stand for a tab and a newline; a template starting with `table` gets a header
/// row (each field's header from `headers`) and its columns aligned as the CLI's
/// tabwriter does (at least 10 wide, 3 apart). `table` alone is the default table, which
/// the caller prints: it gets `None` from [`custom_format`].
pub(crate) fn listing(
    rows: &[serde_json::Value],
    format: &str,
    headers: &[(&str, &str)],
) -> Result<String, String> {
    let format = format.replace("\\t", "\t").replace("\\n", "\n");
    let Some(body) = format.strip_prefix("table") else {
        let body = format.trim_matches(' ');
        let mut out = String::new();
        for r in rows {
            out.push_str(&render(body, r)?);
            out.push('\n');
        }
        return Ok(out);
    };
    let body = body.trim_matches(' ');
    let names: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(field, header)| (field.to_string(), serde_json::Value::from(*header)))
        .collect();
    let mut lines = vec![render(body, &serde_json::Value::Object(names))?];
    for r in rows {
        lines.push(render(body, r)?);
    }
    let cells: Vec<Vec<String>> = lines
        .iter()
        .flat_map(|l| l.split('\n'))
        .map(|l| l.split('\t').map(String::from).collect())
        .collect();
    Ok(table(&cells))
}

/// A `--format` the listing applies itself: not `table` alone, which means the default.
fn custom_format(format: Option<&String>) -> Option<&str> {
    format.map(String::as_str).filter(|f| f.trim() != "table")
}

const NODE_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Self", ""),
    ("Hostname", "HOSTNAME"),
    ("Status", "STATUS"),
    ("Availability", "AVAILABILITY"),
    ("ManagerStatus", "MANAGER STATUS"),
    ("EngineVersion", "ENGINE VERSION"),
    ("TLSStatus", "TLS STATUS"),
];
const SERVICE_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Name", "NAME"),
    ("Mode", "MODE"),
    ("Replicas", "REPLICAS"),
    ("Image", "IMAGE"),
    ("Ports", "PORTS"),
];
const TASK_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Name", "NAME"),
    ("Image", "IMAGE"),
    ("Node", "NODE"),
    ("DesiredState", "DESIRED STATE"),
    ("CurrentState", "CURRENT STATE"),
    ("Error", "ERROR"),
    ("Ports", "PORTS"),
];
const NETWORK_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
];
/// `docker ps`'s.
pub(crate) const CONTAINER_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("Ports", "PORTS"),
    ("Names", "NAMES"),
];

fn formatted(rows: &[serde_json::Value], format: &str) -> Res<String> {
    let mut out = String::new();
    for r in rows {
        out.push_str(&render(format, r).map_err(fail)?);
        out.push('\n');
    }
    Ok(out)
}

/// JSON as `docker inspect` prints it: 4-space indentation, fields in Docker's order.
fn pretty_json<T: serde::Serialize>(v: &T) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    match v.serialize(&mut ser) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(e) => format!("{{\"error\": \"{e}\"}}"),
    }
}

/// Parse a subcommand's flags as the Docker CLI does: clap, with Docker's messages.
fn parse<A: clap::Parser>(args: &[String], cmd: &str, usage: &str) -> Res<A> {
    A::command()
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .try_get_matches_from(args)
        .and_then(|m| A::from_arg_matches(&m))
        .map_err(|e| usage_error(cmd, usage, &e))
}

/// One reference's outcome in a command that takes several (`rm a b c`): a success prints
/// on stdout; a failure prints on stderr and makes the status 1 (a refusal with status 0,
/// such as an unanswered confirmation, prints on stdout).
fn collect(out: &mut CommandOutput, res: Res<String>) {
    match res {
        Ok(text) => out.stdout.push_str(&text),
        Err(e) if e.exit_code == 0 => out.stdout.push_str(&e.stdout),
        Err(e) => {
            out.stderr.push_str(&e.stderr);
            out.exit_code = 1;
        }
    }
}

/// The subcommand and its arguments.
fn split_sub(args: &[String]) -> (&str, &[String]) {
    match args.split_first() {
        Some((s, r)) => (s.as_str(), r),
        None => ("", args),
    }
}

/// Refuse filter keys a command does not know, as the daemon does.
fn check_filters(fl: &[(String, String)], known: &[&str]) -> Res<()> {
    match fl.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(fail(format!(
            "Error response from daemon: Invalid filter '{k}'"
        ))),
        None => Ok(()),
    }
}

/// An inspect's output: what was found on stdout, then what was not (exit 1).
fn with_missing(text: String, missing: String) -> CommandOutput {
    if missing.is_empty() {
        CommandOutput::out(text)
    } else {
        CommandOutput {
            stdout: text,
            stderr: missing,
            exit_code: 1,
        }
    }
}

/// `--filter key=value` pairs.
fn filters(list: &[String]) -> Res<Vec<(String, String)>> {
    list.iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| fail("bad format of filter (expected name=value)"))
        })
        .collect()
}

// ---- docker swarm ------------------------------------------------------------------

#[derive(Parser, Debug)]
struct InitArgs {
    #[arg(long)]
    advertise_addr: Option<String>,
    #[arg(long)]
    default_addr_pool: Vec<String>,
    #[arg(long)]
    force_new_cluster: bool,
    #[arg(long)]
    listen_addr: Option<String>,
}

#[derive(Parser, Debug)]
struct JoinArgs {
    #[arg(long)]
    token: Option<String>,
    #[arg(long)]
    advertise_addr: Option<String>,
    #[arg(long)]
    listen_addr: Option<String>,
    addr: Option<String>,
}

#[derive(Parser, Debug)]
struct JoinTokenArgs {
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    rotate: bool,
    role: Option<String>,
}

#[derive(Parser, Debug)]
struct LeaveArgs {
    #[arg(short, long)]
    force: bool,
}

const ALREADY_IN_SWARM: &str = "Error response from daemon: This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.";

/// `docker swarm ...`
pub async fn swarm(cx: &Cx<'_>, host: HostId, args: &[String]) -> CommandOutput {
    swarm_cmd(cx, host, args).await.unwrap_or_else(|e| e)
}

async fn swarm_cmd(cx: &Cx<'_>, host: HostId, args: &[String]) -> Res<CommandOutput> {
    let (sub, rest) = split_sub(args);
    match sub {
        "init" => swarm_init(cx, host, parse::<InitArgs>(rest, "swarm init", "[OPTIONS]")?).await,
        "join" => swarm_join(cx, host, parse::<JoinArgs>(rest, "swarm join", "[OPTIONS] HOST:PORT")?).await,
        "join-token" => {
            join_token(cx, host, parse::<JoinTokenArgs>(rest, "swarm join-token", "[OPTIONS] (worker|manager)")?).await
        }
        "leave" => parse::<LeaveArgs>(rest, "swarm leave", "[OPTIONS]")
            .and_then(|a| swarm_leave(&mut cx.lab(), host, a)),
        other if crate::dockerref::has_subcommand("swarm", other) => Err(CommandOutput::err(
            format!("swarmlab: docker swarm {other} is not simulated yet\n"),
            1,
        )),
        other => Err(fail(format!(
            "docker: unknown command: docker swarm {other}\n\nRun 'docker swarm --help' for more information"
        ))),
    }
}

fn join_text(role: Role, token: &str, addr: Ipv4Addr) -> String {
    format!(
        "To add a {} to this swarm, run the following command:\n\n    docker swarm join --token {token} {addr}:{SWARM_PORT}\n",
        role.as_str()
    )
}

async fn swarm_init(cx: &Cx<'_>, host: HostId, a: InitArgs) -> Res<CommandOutput> {
    if !a.force_new_cluster && cx.lab().swarm_of(host).node_id.is_some() {
        return Err(fail(ALREADY_IN_SWARM));
    }
    let ip = cx.lab().underlay.nic(host).ip;
    let addr = match &a.advertise_addr {
        None => ip,
        Some(s) => {
            let s = s.split(':').next().unwrap_or(s);
            match s.parse::<Ipv4Addr>() {
                Ok(x) if x == ip => x,
                Ok(_) | Err(_) => {
                    return Err(fail(format!(
                        "Error response from daemon: must specify a listening address because the address to advertise is not recognized as a system address, and a system's IP address to use could not be uniquely identified ({s})"
                    )))
                }
            }
        }
    };
    if a.force_new_cluster {
        return force_new_cluster(cx, host, addr).await;
    }
    let (cluster, node, ingress, node_id, token) = {
        let mut g = cx.lab();
        let lab = &mut *g;
        if lab.swarm_of(host).node_id.is_some() {
            return Err(fail(ALREADY_IN_SWARM));
        }
        let pool = a
            .default_addr_pool
            .first()
            .cloned()
            .unwrap_or_else(|| "10.0.0.0/8".into());
        let Some((base, prefix)) = crate::underlay::parse_cidr(&pool) else {
            return Err(fail(format!(
                "Error response from daemon: invalid default address pool {pool}: invalid CIDR address: {pool}"
            )));
        };
        let now = now_ns(lab);
        let node_id = lab.swarm_id();
        let raft_id = 1 + lab.rng.below(u64::MAX / 2);
        let cluster = Cluster {
            id: lab.swarm_id(),
            ca_digest: lab.base36(50),
            worker_secret: lab.base36(25),
            manager_secret: lab.base36(25),
            pool: format!("{base}/{prefix}"),
            raft_origin: raft_id,
            created: now,
        };
        let o = base.octets();
        let ingress = Network {
            id: lab.swarm_id(),
            name: "ingress".into(),
            vni: 4096,
            subnet: format!("{}.{}.0.0/24", o[0], o[1]),
            gateway: Ipv4Addr::new(o[0], o[1], 0, 1),
            attachable: false,
            encrypted: false,
            ingress: true,
            created: now,
            version_index: 0,
        };
        let node = Node {
            id: node_id.clone(),
            hostname: lab.host_name(host).to_string(),
            addr,
            role: Role::Manager,
            availability: Availability::Active,
            status: NodeStatus::Ready,
            message: String::new(),
            labels: BTreeMap::new(),
            raft_id: Some(raft_id),
            // The first node's ingress sandbox takes the ingress network's first address.
            ingress_ip: Some(Ipv4Addr::new(o[0], o[1], 0, 2)),
            created: now,
            updated: now,
            version_index: 0,
        };
        let raft =
            RaftNode::bootstrap(raft_id, addr, lab.swarm_seed(host)).map_err(|e| fail(&e))?;
        let token = cluster.token(Role::Worker);
        lab.swarm_start_first_manager(host, node_id.clone(), raft);
        (cluster, node, ingress, node_id, token)
    };
    commit(
        cx,
        host,
        &[
            Action::Cluster(cluster),
            Action::PutNode(node),
            Action::PutNetwork(ingress),
        ],
    )
    .await?;
    let mut g = cx.lab();
    let lab = &mut *g;
    lab.manager_ticks(host);
    lab.agent_start(host, vec![addr]);
    lab.swarm_note(
        host,
        format!(
            "swarm initialised; {} is the first manager",
            lab.host_name(host)
        ),
    );
    Ok(CommandOutput::out(format!(
        "Swarm initialized: current node ({node_id}) is now a manager.\n\n{}\nTo add a manager to this swarm, run 'docker swarm join-token manager' and follow the instructions.\n",
        join_text(Role::Worker, &token, addr)
    )))
}

/// `--force-new-cluster`: a surviving manager becomes the only voter of a new Raft
/// group, keeping the store (services, workers, tasks).
async fn force_new_cluster(cx: &Cx<'_>, host: HostId, addr: Ipv4Addr) -> Res<CommandOutput> {
    let force_actions = cx.lab().swarm_force_new_cluster(host).map_err(fail)?;
    commit(cx, host, &force_actions).await?;
    let mut g = cx.lab();
    let lab = &mut *g;
    lab.manager_ticks(host);
    let node_id = lab.swarm_of(host).node_id.clone().unwrap_or_default();
    let token = lab
        .swarm_of(host)
        .manager
        .as_ref()
        .and_then(|m| m.store.cluster.as_ref().map(|c| c.token(Role::Worker)))
        .unwrap_or_default();
    // The epoch changed: the agent starts a new heartbeat schedule, to itself.
    lab.agent_start(host, vec![addr]);
    lab.swarm_note(
        host,
        "forced a new cluster with itself as the only manager".into(),
    );
    Ok(CommandOutput::out(format!(
        "Swarm initialized: current node ({node_id}) is now a manager.\n\n{}\nTo add a manager to this swarm, run 'docker swarm join-token manager' and follow the instructions.\n",
        join_text(Role::Worker, &token, addr)
    )))
}

const JOIN_TIMEOUT: &str = "Error response from daemon: Timeout was reached before node joined. The attempt to join the swarm will continue in the background. Use the \"docker info\" command to see the current swarm status of your node.";
const BAD_TOKEN: &str = "Error response from daemon: rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster";

async fn swarm_join(cx: &Cx<'_>, host: HostId, a: JoinArgs) -> Res<CommandOutput> {
    let Some(target) = a.addr else {
        return Err(fail("docker: 'docker swarm join' requires 1 argument\n\nUsage:  docker swarm join [OPTIONS] HOST:PORT\n\nRun 'docker swarm join --help' for more information"));
    };
    if cx.lab().swarm_of(host).node_id.is_some() {
        return Err(fail(ALREADY_IN_SWARM));
    }
    let token = a.token.unwrap_or_default();
    let parts: Vec<&str> = token.split('-').collect();
    if parts.len() != 4
        || parts[0] != "SWMTKN"
        || parts[1] != "1"
        || parts[2].len() != 50
        || parts[3].len() != 25
    {
        return Err(fail("Error response from daemon: invalid join token"));
    }
    let (ip_text, port) = match target.split_once(':') {
        Some((i, p)) => (i, p.parse::<u16>().unwrap_or(0)),
        None => (target.as_str(), SWARM_PORT),
    };
    let refused = || {
        fail(format!(
            "Error response from daemon: rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing dial tcp {ip_text}:{port}: connect: connection refused\""
        ))
    };
    let ip: Ipv4Addr = ip_text.parse().map_err(|_| {
        fail(format!(
            "Error response from daemon: rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing dial tcp: lookup {ip_text}: no such host\""
        ))
    })?;
    let found = cx.lab().underlay.by_ip(ip);
    let Some(mgr) = found else {
        cx.sleep_until(cx.now() + Duration::from_secs(20)).await;
        return Err(fail(JOIN_TIMEOUT));
    };
    let path = cx.lab().tcp_path(host, mgr, SWARM_PORT);
    let latency = match path {
        Ok(l) => l,
        Err(why) => {
            cx.lab()
                .swarm_note(host, format!("cannot reach {ip}:{SWARM_PORT}: {why}"));
            cx.sleep_until(cx.now() + Duration::from_secs(20)).await;
            return Err(fail(JOIN_TIMEOUT));
        }
    };
    if port != SWARM_PORT || cx.lab().swarm_of(mgr).manager.is_none() {
        return Err(refused());
    }
    // TLS handshake and the CA's certificate issuance: a few round trips.
    cx.sleep_until(cx.now() + Duration(6 * latency.as_nanos()))
        .await;
    let (cluster, role, leader, now, node_id, addr, raft_id, hostname) = {
        let mut g = cx.lab();
        let lab = &mut *g;
        let store = leader_store(lab, mgr);
        let Some(cluster) = store.cluster.clone() else {
            return Err(fail(BAD_TOKEN));
        };
        let role = if parts[2] != cluster.ca_digest {
            return Err(fail(BAD_TOKEN));
        } else if parts[3] == cluster.worker_secret {
            Role::Worker
        } else if parts[3] == cluster.manager_secret {
            Role::Manager
        } else {
            return Err(fail(BAD_TOKEN));
        };
        let leader = lab.swarm_leader_of(mgr).ok_or_else(|| fail(NO_LEADER))?;
        if leader != mgr && lab.tcp_path(mgr, leader, SWARM_PORT).is_err() {
            return Err(fail(NO_LEADER));
        }
        let now = now_ns(lab);
        let node_id = lab.swarm_id();
        let addr = lab.underlay.nic(host).ip;
        let raft_id = (role == Role::Manager).then(|| 1 + lab.rng.below(u64::MAX / 2));
        let hostname = lab.host_name(host).to_string();
        (cluster, role, leader, now, node_id, addr, raft_id, hostname)
    };
    if let Some(rid) = raft_id {
        add_voter(cx, leader, rid, addr).await?;
        // The new member must run before anything else can commit with it counted.
        start_manager(&mut cx.lab(), host, rid, cluster.raft_origin, leader)?;
    }
    let ingress_ip = {
        let lab = cx.lab();
        let store = leader_store(&lab, leader);
        let tasks: Vec<_> = store.tasks.values().cloned().collect();
        store
            .networks
            .values()
            .find(|n| n.ingress)
            .and_then(|n| Service::free_address(&store, n, &tasks))
    };
    let node = Node {
        id: node_id.clone(),
        hostname,
        addr,
        role,
        availability: Availability::Active,
        status: NodeStatus::Ready,
        message: String::new(),
        labels: BTreeMap::new(),
        raft_id,
        ingress_ip,
        created: now,
        updated: now,
        version_index: 0,
    };
    commit(cx, leader, &[Action::PutNode(node)]).await?;
    let mut g = cx.lab();
    let lab = &mut *g;
    let store = leader_store(lab, leader);
    lab.swarm_joined(host, node_id, crate::swarm::manager_addrs(&store), mgr);
    lab.swarm_note(host, format!("joined the swarm as a {}", role.as_str()));
    Ok(CommandOutput::out(format!(
        "This node joined a swarm as a {}.\n",
        role.as_str()
    )))
}

/// Add a Raft voter through the leader and wait for the change to commit.
async fn add_voter(cx: &Cx<'_>, leader: HostId, rid: u64, addr: Ipv4Addr) -> Res<()> {
    let proposed = cx.lab().swarm_propose_member(leader, rid, Some(addr));
    proposed.map_err(|_| fail(NO_LEADER))?;
    let deadline = cx.now() + Duration::from_secs(30);
    let voted = |lab: &Lab| {
        lab.swarm_of(leader)
            .manager
            .as_ref()
            .is_none_or(|m| m.raft.voters().contains(&rid) || !m.raft.is_leader())
    };
    cx.wait_until(deadline, voted).await;
    let ok = cx
        .lab()
        .swarm_of(leader)
        .manager
        .as_ref()
        .is_some_and(|m| m.raft.voters().contains(&rid));
    if ok {
        Ok(())
    } else {
        Err(fail(NO_LEADER))
    }
}

/// Start a manager that joins the Raft group whose first member was `origin`. It starts
/// with an empty store and learns it through Raft: the leader replays its log to it
/// (swarmkit's new managers catch up from the leader's log or a snapshot, never by a
/// copy made outside Raft).
///
/// What it knows at start is what swarmkit's `JoinResponse` carries: the Raft members
/// and their addresses, as the leader (`leader`) knows them.
fn start_manager(lab: &mut Lab, host: HostId, rid: u64, origin: u64, leader: HostId) -> Res<()> {
    let members = lab.swarm_members(leader);
    lab.swarm_start_joining_manager(host, rid, origin, members)
        .map_err(fail)
}

async fn join_token(cx: &Cx<'_>, host: HostId, a: JoinTokenArgs) -> Res<CommandOutput> {
    let Some(role_text) = a.role else {
        return Err(fail("docker: 'docker swarm join-token' requires 1 argument\n\nUsage:  docker swarm join-token [OPTIONS] (worker|manager)\n\nRun 'docker swarm join-token --help' for more information"));
    };
    let role = match role_text.as_str() {
        "worker" => Role::Worker,
        "manager" => Role::Manager,
        other => return Err(fail(format!("unknown role {other}"))),
    };
    let leader = if a.rotate {
        request(cx, host, &Request::RotateToken(role)).await?.0
    } else {
        leader_for(cx, host).await?
    };
    let lab = cx.lab();
    let store = leader_store(&lab, leader);
    let token = store
        .cluster
        .as_ref()
        .map(|c| c.token(role))
        .unwrap_or_default();
    let addr = lab
        .swarm_of(host)
        .node_id
        .as_ref()
        .and_then(|id| store.nodes.get(id))
        .map_or(lab.underlay.nic(host).ip, |n| n.addr);
    if a.quiet {
        return Ok(CommandOutput::out(format!("{token}\n")));
    }
    let mut out = String::new();
    if a.rotate {
        out.push_str(&format!(
            "Successfully rotated {} join token.\n\n",
            role.as_str()
        ));
    }
    out.push_str(&join_text(role, &token, addr));
    out.push('\n');
    Ok(CommandOutput::out(out))
}

fn swarm_leave(lab: &mut Lab, host: HostId, a: LeaveArgs) -> Res<CommandOutput> {
    let s = &lab.swarm_of(host);
    if s.node_id.is_none() {
        return Err(fail(
            "Error response from daemon: This node is not part of a swarm",
        ));
    }
    if let (Some(m), false) = (s.manager.as_ref(), a.force) {
        let voters = m.raft.voters();
        let total = voters.len().max(1);
        let reachable = if m.raft.is_leader() {
            voters
                .iter()
                .filter(|v| m.raft.recently_active(**v))
                .count()
        } else {
            total
        };
        let mut msg = "Error response from daemon: You are attempting to leave the swarm on a node that is participating as a manager. ".to_string();
        if total <= 1 {
            msg.push_str("Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.");
        } else {
            msg.push_str(&format!(
                "Removing this node leaves {} managers out of {total}. ",
                reachable.saturating_sub(1)
            ));
            if reachable.saturating_sub(1) <= total / 2 {
                msg.push_str("Without a Raft quorum your swarm will be inaccessible. ");
            }
            msg.push_str("The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.");
        }
        return Err(fail(&msg));
    }
    lab.swarm_leave(host);
    Ok(CommandOutput::out("Node left the swarm.\n"))
}

// ---- docker node -------------------------------------------------------------------

#[derive(Parser, Debug)]
struct NodeLsArgs {
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    format: Option<String>,
    #[arg(short, long)]
    filter: Vec<String>,
}

#[derive(Parser, Debug)]
struct NodePsArgs {
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    no_trunc: bool,
    #[arg(long)]
    format: Option<String>,
    #[arg(short, long)]
    filter: Vec<String>,
    nodes: Vec<String>,
}

#[derive(Parser, Debug)]
struct NodeUpdateArgs {
    #[arg(long)]
    availability: Option<String>,
    #[arg(long)]
    label_add: Vec<String>,
    #[arg(long)]
    label_rm: Vec<String>,
    #[arg(long)]
    role: Option<String>,
    node: Vec<String>,
}

#[derive(Parser, Debug)]
struct NodesArgs {
    #[arg(short, long)]
    force: bool,
    #[arg(long)]
    pretty: bool,
    #[arg(long)]
    format: Option<String>,
    nodes: Vec<String>,
}

/// `docker node ...`
pub async fn node(cx: &Cx<'_>, host: HostId, args: &[String]) -> CommandOutput {
    node_cmd(cx, host, args).await.unwrap_or_else(|e| e)
}

async fn node_cmd(cx: &Cx<'_>, host: HostId, args: &[String]) -> Res<CommandOutput> {
    let (sub, rest) = split_sub(args);
    match sub {
        "ls" | "list" => node_ls(cx, host, parse::<NodeLsArgs>(rest, "node ls", "[OPTIONS]")?).await,
        "ps" => node_ps(cx, host, parse::<NodePsArgs>(rest, "node ps", "[OPTIONS] [NODE...]")?).await,
        "update" => node_update(cx, host, parse::<NodeUpdateArgs>(rest, "node update", "[OPTIONS] NODE")?).await,
        "promote" | "demote" | "rm" | "remove" | "inspect" => {
            let usage = match sub {
                "inspect" => "[OPTIONS] self|NODE [NODE...]",
                "rm" | "remove" => "[OPTIONS] NODE [NODE...]",
                _ => "NODE [NODE...]",
            };
            match parse::<NodesArgs>(rest, &format!("node {sub}"), usage)? {
                a if a.nodes.is_empty() => Err(fail(format!("docker: 'docker node {sub}' requires at least 1 argument\n\nUsage:  docker node {sub} {usage}\n\nSee 'docker node {sub} --help' for more information"))),
                a => match sub {
                    "promote" => node_role(cx, host, &a.nodes, Role::Manager).await,
                    "demote" => node_role(cx, host, &a.nodes, Role::Worker).await,
                    "inspect" => node_inspect(cx, host, a).await,
                    _ => node_rm(cx, host, &a.nodes, a.force).await,
                },
            }
        }
        other if crate::dockerref::has_subcommand("node", other) => Err(CommandOutput::err(
            format!("swarmlab: docker node {other} is not simulated yet\n"),
            1,
        )),
        other => Err(fail(format!(
            "docker: unknown command: docker node {other}\n\nRun 'docker node --help' for more information"
        ))),
    }
}

fn node_fields(lab: &Lab, leader: HostId, n: &Node, me: Option<&String>) -> serde_json::Value {
    serde_json::json!({
        "ID": n.id,
        "Self": Some(&n.id) == me,
        "Hostname": n.hostname,
        "Status": n.status.as_str(),
        "Availability": capitalise(n.availability.as_str()),
        "ManagerStatus": lab.manager_status(leader, n),
        "EngineVersion": crate::swarm::ENGINE_VERSION,
        "TLSStatus": "Ready",
    })
}

async fn node_ls(cx: &Cx<'_>, host: HostId, a: NodeLsArgs) -> Res<CommandOutput> {
    let leader = leader_for(cx, host).await?;
    let lab = &*cx.lab();
    let store = leader_store(lab, leader);
    let me = lab.swarm_of(host).node_id.clone();
    let fl = filters(&a.filter)?;
    check_filters(
        &fl,
        &["role", "name", "id", "node.label", "label", "membership"],
    )?;
    // The daemon checks the values it knows, case-insensitively.
    for (k, v) in &fl {
        let known: &[&str] = match k.as_str() {
            "role" => &["manager", "worker"],
            "membership" => &["accepted", "pending"],
            _ => continue,
        };
        if !known.contains(&v.to_lowercase().as_str()) {
            return Err(fail(format!(
                "Error response from daemon: Invalid {k} filter: '{v}'"
            )));
        }
    }
    let matches = |n: &Node, k: &str, v: &str| match k {
        "role" => n.role.as_str() == v.to_lowercase(),
        "name" => n.hostname.contains(v),
        "id" => n.id.starts_with(v),
        "node.label" | "label" => match v.split_once('=') {
            Some((lk, lv)) => n.labels.get(lk).is_some_and(|x| x == lv),
            None => n.labels.contains_key(v),
        },
        "membership" => v.eq_ignore_ascii_case("accepted"),
        _ => true,
    };
    // Values of one key are alternatives; different keys must all hold.
    let mut nodes: Vec<&Node> = store
        .nodes
        .values()
        .filter(|n| {
            fl.iter().all(|(k, _)| {
                fl.iter()
                    .filter(|(k2, _)| k2 == k)
                    .any(|(_, v)| matches(n, k, v))
            })
        })
        .collect();
    nodes.sort_by(|x, y| natural_cmp(&x.hostname, &y.hostname));
    if a.quiet {
        return Ok(CommandOutput::out(
            nodes
                .iter()
                .map(|n| format!("{}\n", n.id))
                .collect::<String>(),
        ));
    }
    let rows: Vec<serde_json::Value> = nodes
        .iter()
        .map(|n| node_fields(lab, leader, n, me.as_ref()))
        .collect();
    if let Some(f) = custom_format(a.format.as_ref()) {
        return Ok(CommandOutput::out(
            listing(&rows, f, NODE_HEADERS).map_err(fail)?,
        ));
    }
    let mut table_rows = vec![vec![
        "ID".to_string(),
        "HOSTNAME".into(),
        "STATUS".into(),
        "AVAILABILITY".into(),
        "MANAGER STATUS".into(),
        "ENGINE VERSION".into(),
    ]];
    for (n, f) in nodes.iter().zip(&rows) {
        let id = if Some(&n.id) == me.as_ref() {
            format!("{} *", n.id)
        } else {
            n.id.clone()
        };
        table_rows.push(vec![
            id,
            n.hostname.clone(),
            n.status.as_str().into(),
            capitalise(n.availability.as_str()),
            f["ManagerStatus"].as_str().unwrap_or("").into(),
            crate::swarm::ENGINE_VERSION.into(),
        ]);
    }
    Ok(CommandOutput::out(table(&table_rows)))
}

/// A node by ID, name or ID prefix, or `self` (which `node inspect` and `node ps` take).
fn find_node<'a>(lab: &Lab, host: HostId, store: &'a Store, r: &str) -> Res<&'a Node> {
    if r == "self" {
        let me = lab.swarm_of(host).node_id.clone().unwrap_or_default();
        return store.find_node(&me).map_err(fail);
    }
    store.find_node(r).map_err(fail)
}

async fn node_update(cx: &Cx<'_>, host: HostId, a: NodeUpdateArgs) -> Res<CommandOutput> {
    let [r] = a.node.as_slice() else {
        return Err(fail("docker: 'docker node update' requires 1 argument\n\nUsage:  docker node update [OPTIONS] NODE\n\nRun 'docker node update --help' for more information"));
    };
    // The CLI reads the node, changes its spec and sends it back. `self` names this
    // node for inspect and ps only: the daemon refuses it here.
    let (_, answer) = request(cx, host, &Request::GetNode(r.clone())).await?;
    let Response::Node(n) = answer else {
        return Err(fail("swarmlab: the API answered GetNode with no node"));
    };
    let mut availability = n.availability;
    let mut labels = n.labels.clone();
    if let Some(av) = &a.availability {
        availability = Availability::parse(av).ok_or_else(|| {
            fail(format!(
                "Error response from daemon: invalid Availability: \"{av}\""
            ))
        })?;
    }
    for l in &a.label_add {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    for k in &a.label_rm {
        if labels.remove(k).is_none() {
            return Err(fail(format!("key {k} doesn't exist in node's labels")));
        }
    }
    let mut role_change = None;
    if let Some(role) = &a.role {
        role_change = Some(match role.as_str() {
            "manager" => Role::Manager,
            "worker" => Role::Worker,
            other => {
                return Err(fail(format!(
                    "Error response from daemon: invalid Role: \"{other}\""
                )))
            }
        });
    }
    let update = Request::UpdateNode {
        id: n.id.clone(),
        availability,
        labels,
    };
    request(cx, host, &update).await?;
    if a.availability.is_some() {
        let text = format!(
            "node {} availability set to {}",
            n.hostname,
            availability.as_str()
        );
        cx.lab().swarm_note(host, text);
    }
    if let Some(role) = role_change {
        Box::pin(node_role(cx, host, std::slice::from_ref(r), role)).await?;
    }
    Ok(CommandOutput::out(format!("{r}\n")))
}

async fn node_role(cx: &Cx<'_>, host: HostId, refs: &[String], role: Role) -> Res<CommandOutput> {
    let mut out = String::new();
    for r in refs {
        let leader = leader_for(cx, host).await?;
        let (store, n, target) = {
            let lab = cx.lab();
            let store = leader_store(&lab, leader);
            let n = store.find_node(r).map_err(fail)?.clone();
            let target = lab.underlay.by_ip(n.addr);
            (store, n, target)
        };
        if n.role == role {
            out.push_str(&match role {
                // The CLI names the node by its ID, whatever reference was given.
                Role::Manager => format!("Node {} is already a manager.\n", n.id),
                Role::Worker => format!("Node {} is already a worker.\n", n.id),
            });
            continue;
        }
        match role {
            Role::Manager => {
                let rid = 1 + cx.lab().rng.below(u64::MAX / 2);
                add_voter(cx, leader, rid, n.addr).await?;
                {
                    let mut lab = cx.lab();
                    // The node's engine starts its manager when the dispatcher tells it.
                    if let Some(t) = target.filter(|t| lab.underlay.nic(*t).up) {
                        let origin = store.cluster.as_ref().map_or(0, |c| c.raft_origin);
                        start_manager(&mut lab, t, rid, origin, leader)?;
                    }
                }
                let mut m = n.clone();
                m.role = Role::Manager;
                m.raft_id = Some(rid);
                commit(cx, leader, &[Action::PutNode(m)]).await?;
                cx.lab()
                    .swarm_note(host, format!("node {} promoted", n.hostname));
                out.push_str(&format!("Node {r} promoted to a manager in the swarm.\n"));
            }
            Role::Worker => {
                if store.manager_count() <= 1 {
                    return Err(fail("Error response from daemon: rpc error: code = FailedPrecondition desc = attempting to demote the last manager of the swarm"));
                }
                let Some(rid) = n.raft_id else { continue };
                let leader = demote_from_raft(cx, leader, rid).await?;
                let mut w = n.clone();
                w.role = Role::Worker;
                w.raft_id = None;
                commit(cx, leader, &[Action::PutNode(w)]).await?;
                remove_voter(cx, leader, rid).await?;
                let mut g = cx.lab();
                let lab = &mut *g;
                if let Some(t) = target {
                    lab.swarm_stop_manager(t, rid);
                }
                lab.swarm_note(host, format!("node {} demoted", n.hostname));
                out.push_str(&format!("Manager {r} demoted in the swarm.\n"));
            }
        }
    }
    Ok(CommandOutput::out(out))
}

/// Before Raft member `rid` is demoted: swarmkit refuses a demotion that would leave the
/// rest without quorum, and a leader demoting itself first hands leadership to a live
/// manager. Returns the leader that will remove it.
async fn demote_from_raft(cx: &Cx<'_>, leader: HostId, rid: u64) -> Res<HostId> {
    let until = {
        let mut lab = cx.lab();
        let m = lab
            .swarm_of(leader)
            .manager
            .as_ref()
            .ok_or_else(|| fail(NO_LEADER))?;
        let voters = m.raft.voters();
        let reachable = voters
            .iter()
            .filter(|v| **v != rid && m.raft.recently_active(**v))
            .count();
        if reachable <= (voters.len() - 1) / 2 {
            return Err(fail("Error response from daemon: rpc error: code = FailedPrecondition desc = can't remove member from the raft: this would result in a loss of quorum"));
        }
        if m.raft.id != rid {
            return Ok(leader);
        }
        let Some(next) = voters
            .iter()
            .copied()
            .find(|v| *v != rid && m.raft.recently_active(*v))
        else {
            return Err(fail(NO_LEADER));
        };
        lab.swarm_transfer_leader(leader, next);
        lab.now() + Duration::from_secs(10)
    };
    cx.wait_until(until, |lab: &Lab| {
        lab.swarm_view().is_some_and(|(l, _)| l != leader)
    })
    .await;
    let view = cx.lab().swarm_view().map(|(l, _)| l);
    match view {
        Some(l) if l != leader => Ok(l),
        _ => Err(fail(NO_LEADER)),
    }
}

/// Remove Raft member `rid` through the leader and wait until the change is applied.
async fn remove_voter(cx: &Cx<'_>, leader: HostId, rid: u64) -> Res<()> {
    let proposed = cx.lab().swarm_propose_member(leader, rid, None);
    proposed.map_err(|_| fail(NO_LEADER))?;
    let deadline = cx.now() + Duration::from_secs(30);
    cx.wait_until(deadline, |lab: &Lab| {
        lab.swarm_of(leader)
            .manager
            .as_ref()
            .is_none_or(|m| !m.raft.voters().contains(&rid))
    })
    .await;
    Ok(())
}

async fn node_rm(cx: &Cx<'_>, host: HostId, refs: &[String], force: bool) -> Res<CommandOutput> {
    let mut out = CommandOutput::default();
    for r in refs {
        let rm = Request::RemoveNode {
            node: r.clone(),
            force,
        };
        let res = request(cx, host, &rm).await;
        collect(&mut out, res.map(|_| format!("{r}\n")));
    }
    Ok(out)
}

/// A simulated host's nominal size, as its node describes it: 2 CPUs and 4 GiB (lab
/// hosts have no size of their own; nothing is scheduled by it).
const HOST_NANO_CPUS: u64 = 2_000_000_000;
const HOST_MEMORY_BYTES: u64 = 4 << 30;

/// The engine's plugins, as a 20.10 node describes them.
const PLUGINS: &[(&str, &str)] = &[
    ("Log", "awslogs"),
    ("Log", "fluentd"),
    ("Log", "gcplogs"),
    ("Log", "gelf"),
    ("Log", "journald"),
    ("Log", "json-file"),
    ("Log", "local"),
    ("Log", "logentries"),
    ("Log", "splunk"),
    ("Log", "syslog"),
    ("Network", "bridge"),
    ("Network", "host"),
    ("Network", "ipvlan"),
    ("Network", "macvlan"),
    ("Network", "null"),
    ("Network", "overlay"),
    ("Volume", "local"),
];

/// What swarmlab says of a swarm object's facts it does not simulate (its CA).
const NOT_SIMULATED: &str = "swarmlab (not simulated)";

fn node_json(lab: &Lab, leader: HostId, n: &Node) -> serde_json::Value {
    use crate::cli::text::rfc3339;
    let ms = lab.manager_status(leader, n);
    let plugins: Vec<serde_json::Value> = PLUGINS
        .iter()
        .map(|(t, name)| serde_json::json!({"Type": t, "Name": name}))
        .collect();
    let mut status = serde_json::json!({"State": n.status.as_str().to_lowercase()});
    if !n.message.is_empty() {
        status["Message"] = n.message.clone().into();
    }
    status["Addr"] = n.addr.to_string().into();
    let mut v = serde_json::json!({
        "ID": n.id,
        "Version": {"Index": n.version_index},
        "CreatedAt": rfc3339(n.created),
        "UpdatedAt": rfc3339(n.updated),
        "Spec": {
            "Labels": n.labels,
            "Role": n.role.as_str(),
            "Availability": n.availability.as_str(),
        },
        "Description": {
            "Hostname": n.hostname,
            "Platform": {"Architecture": "x86_64", "OS": "linux"},
            "Resources": {"NanoCPUs": HOST_NANO_CPUS, "MemoryBytes": HOST_MEMORY_BYTES},
            "Engine": {"EngineVersion": crate::swarm::ENGINE_VERSION, "Plugins": plugins},
            "TLSInfo": {
                "TrustRoot": NOT_SIMULATED,
                "CertIssuerSubject": NOT_SIMULATED,
                "CertIssuerPublicKey": NOT_SIMULATED,
            },
        },
        "Status": status,
    });
    if n.role == Role::Manager {
        v["ManagerStatus"] = serde_json::json!({
            "Leader": ms == "Leader",
            "Reachability": if ms == "Unreachable" { "unreachable" } else { "reachable" },
            "Addr": format!("{}:{SWARM_PORT}", n.addr),
        });
    }
    v
}

async fn node_inspect(cx: &Cx<'_>, host: HostId, a: NodesArgs) -> Res<CommandOutput> {
    let leader = leader_for(cx, host).await?;
    let lab = &*cx.lab();
    let store = leader_store(lab, leader);
    // What is found is printed, what is not is refused: both, as the CLI does.
    let mut found = Vec::new();
    let mut missing = String::new();
    for r in &a.nodes {
        match find_node(lab, host, &store, r) {
            Ok(n) => found.push(n.clone()),
            Err(e) => missing.push_str(&e.stderr),
        }
    }
    let mut text = String::new();
    for n in &found {
        let v = node_json(lab, leader, n);
        if let Some(f) = &a.format {
            text.push_str(&render(f, &v).map_err(fail)?);
            text.push('\n');
        } else if a.pretty {
            text.push_str(&format!("ID:\t\t\t{}\n", n.id));
            if !n.labels.is_empty() {
                text.push_str("Labels:\n");
                for (k, v) in &n.labels {
                    text.push_str(&format!(" - {k}={v}\n"));
                }
            }
            text.push_str(&format!("Hostname:              \t{}\n", n.hostname));
            text.push_str(&format!(
                "Status:\n State:\t\t\t{}\n Availability:         \t{}\n Address:\t\t{}\n",
                n.status.as_str(),
                capitalise(n.availability.as_str()),
                n.addr
            ));
            if n.role == Role::Manager {
                let ms = lab.manager_status(leader, n);
                text.push_str(&format!(
                    "Manager Status:\n Address:\t\t{}:{SWARM_PORT}\n Raft Status:\t\t{}\n Leader:\t\t{}\n",
                    n.addr,
                    if ms == "Unreachable" { "Unreachable" } else { "Reachable" },
                    if ms == "Leader" { "Yes" } else { "No" }
                ));
            }
            text.push_str(&format!(
                "Platform:\n Operating System:\tlinux\n Architecture:\t\tx86_64\nEngine Version:\t\t{}\n",
                crate::swarm::ENGINE_VERSION
            ));
        }
    }
    if a.format.is_none() && !a.pretty {
        let arr: Vec<_> = found.iter().map(|n| node_json(lab, leader, n)).collect();
        text = pretty_json(&arr);
        text.push('\n');
    }
    Ok(with_missing(text, missing))
}

// ---- docker service ----------------------------------------------------------------

#[derive(Parser, Debug)]
struct ServiceCreateArgs {
    #[arg(long)]
    name: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    replicas: Option<String>,
    #[arg(long)]
    mode: Option<String>,
    #[arg(long)]
    constraint: Vec<String>,
    #[arg(long, visible_alias = "net")]
    network: Vec<String>,
    #[arg(short = 'p', long)]
    publish: Vec<String>,
    #[arg(long)]
    endpoint_mode: Option<String>,
    #[arg(long)]
    restart_condition: Option<String>,
    #[arg(long)]
    restart_delay: Option<String>,
    #[command(flatten)]
    rolling: RollingFlags,
    #[arg(long)]
    stop_grace_period: Option<String>,
    #[arg(short = 'l', long)]
    label: Vec<String>,
    #[arg(short, long)]
    detach: bool,
    #[arg(short, long)]
    quiet: bool,
    image: Option<String>,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Parser, Debug)]
struct ServiceLsArgs {
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    format: Option<String>,
    #[arg(short, long)]
    filter: Vec<String>,
}

#[derive(Parser, Debug)]
struct ServicePsArgs {
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    no_trunc: bool,
    #[arg(long)]
    format: Option<String>,
    #[arg(short, long)]
    filter: Vec<String>,
    services: Vec<String>,
}

#[derive(Parser, Debug)]
struct ServiceUpdateArgs {
    #[arg(long)]
    rollback: bool,
    #[arg(long, allow_hyphen_values = true)]
    replicas: Option<String>,
    #[arg(long)]
    constraint_add: Vec<String>,
    #[arg(long)]
    constraint_rm: Vec<String>,
    #[arg(long)]
    label_add: Vec<String>,
    #[arg(long)]
    restart_delay: Option<String>,
    #[arg(long)]
    restart_condition: Option<String>,
    #[arg(long)]
    image: Option<String>,
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    rolling: RollingFlags,
    #[arg(long)]
    stop_grace_period: Option<String>,
    #[arg(long)]
    network_add: Vec<String>,
    #[arg(long)]
    network_rm: Vec<String>,
    #[arg(long)]
    publish_add: Vec<String>,
    #[arg(long)]
    publish_rm: Vec<String>,
    #[arg(short, long)]
    detach: bool,
    #[arg(short, long)]
    quiet: bool,
    service: Option<String>,
}

#[derive(Parser, Debug)]
struct ServicesArgs {
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    pretty: bool,
    #[arg(short = 'f', long)]
    format: Option<String>,
    names: Vec<String>,
}

/// `docker service ...`
pub async fn service(cx: &Cx<'_>, host: HostId, args: &[String]) -> CommandOutput {
    service_cmd(cx, host, args).await.unwrap_or_else(|e| e)
}

async fn service_cmd(cx: &Cx<'_>, host: HostId, args: &[String]) -> Res<CommandOutput> {
    let (sub, rest) = split_sub(args);
    match sub {
        "create" => service_create(cx, host, parse::<ServiceCreateArgs>(rest, "service create", "[OPTIONS] IMAGE [COMMAND] [ARG...]")?).await,
        "ls" | "list" => service_ls(cx, host, parse::<ServiceLsArgs>(rest, "service ls", "[OPTIONS]")?).await,
        "ps" => service_ps(cx, host, parse::<ServicePsArgs>(rest, "service ps", "[OPTIONS] SERVICE [SERVICE...]")?).await,
        "update" => service_update(cx, host, parse::<ServiceUpdateArgs>(rest, "service update", "[OPTIONS] SERVICE")?).await,
        "rollback" => match parse::<RollbackArgs>(rest, "service rollback", "[OPTIONS] SERVICE")? {
            RollbackArgs { service: None, .. } => Err(fail("docker: 'docker service rollback' requires 1 argument\n\nUsage:  docker service rollback [OPTIONS] SERVICE\n\nRun 'docker service rollback --help' for more information")),
            RollbackArgs { service: Some(name), detach, quiet } => {
                service_rollback(cx, host, &name, detach, quiet).await
            }
        },
        "scale" | "rm" | "remove" | "inspect" => {
            let usage = match sub {
                "scale" => "SERVICE=REPLICAS [SERVICE=REPLICAS...]",
                "inspect" => "[OPTIONS] SERVICE [SERVICE...]",
                _ => "SERVICE [SERVICE...]",
            };
            let a = parse::<ServicesArgs>(rest, &format!("service {sub}"), usage)?;
            match sub {
                "scale" => service_scale(cx, host, a).await,
                "inspect" => service_inspect(cx, host, a).await,
                _ => service_rm(cx, host, a).await,
            }
        }
        other if crate::dockerref::has_subcommand("service", other) => Err(CommandOutput::err(
            format!("swarmlab: docker service {other} is not simulated yet\n"),
            1,
        )),
        other => Err(fail(format!(
            "docker: unknown command: docker service {other}\n\nRun 'docker service --help' for more information"
        ))),
    }
}

/// A Go duration, as the Docker CLI reads flags (`0`, `10s`, `1m30s`, `1.5h`, `300ms`),
/// refused with Go's `time.ParseDuration` texts. Negative durations are refused too
/// (swarmlab's: the daemon would refuse them later, as negative).
fn parse_go_duration(orig: &str) -> Result<u64, String> {
    let invalid = || format!("time: invalid duration \"{orig}\"");
    let s = orig.strip_prefix('+').unwrap_or(orig);
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let scale = match unit {
            "" => return Err(format!("time: missing unit in duration \"{orig}\"")),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => {
                return Err(format!(
                    "time: unknown unit \"{unit}\" in duration \"{orig}\""
                ))
            }
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    // Go's time.Duration holds about 292 years.
    if total < i64::MAX as f64 {
        Ok(total as u64)
    } else {
        Err(invalid())
    }
}

/// The most replicas of one service swarmlab simulates. Docker takes any uint64; a lab
/// holds every task in memory, so a larger count is refused before anything is made.
pub const MAX_REPLICAS: u64 = 100_000;

fn too_many_replicas(n: u64) -> CommandOutput {
    fail(format!(
        "swarmlab: {n} replicas is more than swarmlab simulates for one service (at most {MAX_REPLICAS})"
    ))
}

/// `--replicas N`, as Docker parses it, within swarmlab's limit.
fn parse_replicas(cmd: Svc, r: &str) -> Res<u64> {
    let n = uint_flag(cmd, r, "--replicas")?;
    if n > MAX_REPLICAS {
        return Err(too_many_replicas(n));
    }
    Ok(n)
}

/// `--update-failure-action` and `--rollback-failure-action`: swarmkit's values.
fn failure_action(v: &str) -> Res<String> {
    match v {
        "pause" | "continue" | "rollback" => Ok(v.to_string()),
        other => Err(fail(format!(
            "Error response from daemon: unrecognized update failure action {other}"
        ))),
    }
}

/// The `--update-*` and `--rollback-*` flags, which `service create` and `service
/// update` share.
#[derive(clap::Args, Debug)]
struct RollingFlags {
    #[arg(long, allow_hyphen_values = true)]
    update_parallelism: Option<String>,
    #[arg(long)]
    update_delay: Option<String>,
    #[arg(long)]
    update_failure_action: Option<String>,
    #[arg(long)]
    update_order: Option<String>,
    #[arg(long)]
    update_monitor: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    update_max_failure_ratio: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    rollback_parallelism: Option<String>,
    #[arg(long)]
    rollback_delay: Option<String>,
    #[arg(long)]
    rollback_failure_action: Option<String>,
    #[arg(long)]
    rollback_order: Option<String>,
    #[arg(long)]
    rollback_monitor: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    rollback_max_failure_ratio: Option<String>,
}

/// The numbers and durations of the `RollingFlags`, as pflag reads them (before the
/// daemon is asked anything).
#[derive(Default)]
struct Rolling {
    update: [Option<u64>; 3],
    update_ratio: Option<f64>,
    rollback: [Option<u64>; 3],
    rollback_ratio: Option<f64>,
}

impl RollingFlags {
    fn read(&self, cmd: Svc) -> Res<Rolling> {
        let uint =
            |v: &Option<String>, name| v.as_deref().map(|v| uint_flag(cmd, v, name)).transpose();
        let dur = |v: &Option<String>, name| {
            v.as_deref()
                .map(|v| duration_flag(cmd, v, name))
                .transpose()
        };
        let ratio =
            |v: &Option<String>, name| v.as_deref().map(|v| float_flag(cmd, v, name)).transpose();
        Ok(Rolling {
            update: [
                uint(&self.update_parallelism, "--update-parallelism")?,
                dur(&self.update_delay, "--update-delay")?,
                dur(&self.update_monitor, "--update-monitor")?,
            ],
            update_ratio: ratio(&self.update_max_failure_ratio, "--update-max-failure-ratio")?,
            rollback: [
                uint(&self.rollback_parallelism, "--rollback-parallelism")?,
                dur(&self.rollback_delay, "--rollback-delay")?,
                dur(&self.rollback_monitor, "--rollback-monitor")?,
            ],
            rollback_ratio: ratio(
                &self.rollback_max_failure_ratio,
                "--rollback-max-failure-ratio",
            )?,
        })
    }

    /// Set what was given on a spec; the actions and orders are the daemon's to refuse.
    fn apply(&self, read: &Rolling, s: &mut Service) -> Res<()> {
        let [p, d, m] = read.update;
        s.update_parallelism = p.unwrap_or(s.update_parallelism);
        s.update_delay = d.unwrap_or(s.update_delay);
        s.update_monitor = m.unwrap_or(s.update_monitor);
        s.update_max_failure_ratio = read.update_ratio.unwrap_or(s.update_max_failure_ratio);
        let [p, d, m] = read.rollback;
        let r = &mut s.rollback_config;
        r.parallelism = p.unwrap_or(r.parallelism);
        r.delay = d.unwrap_or(r.delay);
        r.monitor = m.unwrap_or(r.monitor);
        r.max_failure_ratio = read.rollback_ratio.unwrap_or(r.max_failure_ratio);
        if let Some(v) = &self.update_failure_action {
            s.update_failure_action = failure_action(v)?;
        }
        if let Some(v) = &self.update_order {
            s.update_order = update_order(v)?;
        }
        if let Some(v) = &self.rollback_failure_action {
            s.rollback_config.failure_action = failure_action(v)?;
        }
        if let Some(v) = &self.rollback_order {
            s.rollback_config.order = update_order(v)?;
        }
        Ok(())
    }
}

/// `--update-order`: swarmkit's two orders.
fn update_order(v: &str) -> Res<String> {
    match v {
        "stop-first" | "start-first" => Ok(v.to_string()),
        other => Err(fail(format!(
            "Error response from daemon: unrecognized update order {other}"
        ))),
    }
}

/// The command whose flags are being read, for pflag's usage line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Svc {
    Create,
    Update,
}

fn invalid_flag(cmd: Svc, value: &str, flag: &str, why: &str) -> CommandOutput {
    let (name, usage) = match cmd {
        Svc::Create => ("create", "[OPTIONS] IMAGE [COMMAND] [ARG...]"),
        Svc::Update => ("update", "[OPTIONS] SERVICE"),
    };
    CommandOutput::err(
        format!("invalid argument \"{value}\" for \"{flag}\" flag: {why}\n\nUsage:  docker service {name} {usage}\n\nRun 'docker service {name} --help' for more information\n"),
        125,
    )
}

/// A Go duration flag.
fn duration_flag(cmd: Svc, v: &str, flag: &str) -> Res<u64> {
    parse_go_duration(v).map_err(|why| invalid_flag(cmd, v, flag, &why))
}

/// A floating-point flag.
fn float_flag(cmd: Svc, v: &str, flag: &str) -> Res<f64> {
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| {
            invalid_flag(
                cmd,
                v,
                flag,
                &format!("strconv.ParseFloat: parsing \"{v}\": invalid syntax"),
            )
        })
}

/// An unsigned integer flag.
fn uint_flag(cmd: Svc, v: &str, flag: &str) -> Res<u64> {
    v.parse().map_err(|_| {
        invalid_flag(
            cmd,
            v,
            flag,
            &format!("strconv.ParseUint: parsing \"{v}\": invalid syntax"),
        )
    })
}

fn parse_publish(p: &str) -> Result<PortSpec, String> {
    if p.contains('=') {
        let mut spec = PortSpec {
            published: 0,
            target: 0,
            protocol: "tcp".into(),
            mode: "ingress".into(),
        };
        for kv in p.split(',') {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("invalid field '{kv}' must be a key=value pair"))?;
            match k {
                "published" => {
                    spec.published = v
                        .parse()
                        .map_err(|_| format!("invalid published port {v}"))?
                }
                "target" => {
                    spec.target = v.parse().map_err(|_| format!("invalid target port {v}"))?
                }
                "protocol" => spec.protocol = v.to_string(),
                "mode" => {
                    if v != "ingress" && v != "host" {
                        return Err(format!(
                            "invalid publish mode value ({v}): must be either 'ingress' or 'host'"
                        ));
                    }
                    spec.mode = v.to_string()
                }
                _ => return Err(format!("invalid field key {k}")),
            }
        }
        if spec.target == 0 {
            return Err("missing mandatory field \"target\"".into());
        }
        return Ok(spec);
    }
    let (ports, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let (published, target) = ports.split_once(':').unwrap_or(("0", ports));
    Ok(PortSpec {
        published: published
            .parse()
            .map_err(|_| format!("invalid hostPort: {published}"))?,
        target: target
            .parse()
            .map_err(|_| format!("invalid containerPort: {target}"))?,
        protocol: proto.to_string(),
        mode: "ingress".into(),
    })
}

fn image_ref(image: &str) -> String {
    if image.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

async fn service_create(cx: &Cx<'_>, host: HostId, a: ServiceCreateArgs) -> Res<CommandOutput> {
    let Some(image) = a.image.clone() else {
        return Err(CommandOutput::err("docker: 'docker service create' requires at least 1 argument\n\nUsage:  docker service create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nSee 'docker service create --help' for more information\n", 125));
    };
    let replicas = match &a.replicas {
        None => None,
        Some(r) => Some(parse_replicas(Svc::Create, r)?),
    };
    let mode = match a.mode.as_deref() {
        None | Some("replicated") => Mode::Replicated(replicas.unwrap_or(1)),
        Some("global") => {
            if replicas.is_some() {
                return Err(fail(
                    "replicas can only be used with replicated or replicated-job mode",
                ));
            }
            Mode::Global
        }
        Some(other) => {
            return Err(fail(format!(
                "Unknown mode: {other}, only replicated and global supported"
            )))
        }
    };
    let constraints = a
        .constraint
        .iter()
        .map(|c| Constraint::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            fail(format!(
                "Error response from daemon: rpc error: code = Unknown desc = {e}"
            ))
        })?;
    let ports = a
        .publish
        .iter()
        .map(|p| parse_publish(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            invalid_flag(
                Svc::Create,
                a.publish.join(",").as_str(),
                "-p, --publish",
                &e,
            )
        })?;
    let endpoint_mode = a.endpoint_mode.clone().unwrap_or_else(|| "vip".into());
    let restart_condition = a.restart_condition.clone().unwrap_or_else(|| "any".into());
    let dur = |v: &Option<String>, flag: &str, default: u64| -> Res<u64> {
        match v {
            None => Ok(default),
            Some(s) => duration_flag(Svc::Create, s, flag),
        }
    };
    let restart_delay = dur(&a.restart_delay, "--restart-delay", 5_000_000_000)?;
    let rolling = a.rolling.read(Svc::Create)?;
    let name = match a.name.clone() {
        Some(n) => n,
        None => crate::cli::text::random_name(&mut cx.lab()),
    };
    let labels = a
        .label
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let defaults = crate::swarm::store::UpdateConfig::default();
    let mut svc = Service {
        id: String::new(),
        name: name.clone(),
        image: image_ref(&image),
        args: a.args.clone(),
        mode,
        constraints,
        networks: a.network.clone(),
        ports,
        endpoint_mode,
        restart_condition,
        restart_delay,
        update_parallelism: defaults.parallelism,
        update_delay: defaults.delay,
        labels,
        created: 0,
        updated: 0,
        version: 0,
        vips: Vec::new(),
        update_failure_action: defaults.failure_action.clone(),
        update_order: defaults.order.clone(),
        update_monitor: defaults.monitor,
        update_max_failure_ratio: defaults.max_failure_ratio,
        rollback_config: defaults,
        top_version: 0,
        stop_grace: match &a.stop_grace_period {
            Some(v) => Some(duration_flag(Svc::Create, v, "--stop-grace-period")?),
            None => None,
        },
        update_status: None,
        previous: None,
        force_update: 0,
        version_index: 0,
    };
    a.rolling.apply(&rolling, &mut svc)?;
    if let Some(v) = svc.labels.get("swarmlab.lb") {
        if !crate::mesh::SCHEDULERS.contains(&v.as_str()) {
            return Err(fail(format!(
                "swarmlab: label swarmlab.lb={v}: the routing mesh's schedulers are {} (rr is Docker's)",
                crate::mesh::SCHEDULERS.join(", ")
            )));
        }
    }
    let (leader, answer) = request(cx, host, &Request::CreateService(svc)).await?;
    let Response::Created(id) = answer else {
        return Err(fail("swarmlab: the API answered CreateService with no ID"));
    };
    cx.lab().swarm_note(host, format!("service {name} created"));
    // The built-in images stand for a registry's; any other cannot be resolved.
    let warning = if crate::images::lookup(&image).is_some() {
        String::new()
    } else {
        let r = image_ref(&image);
        format!("image {r} could not be accessed on a registry to record\nits digest. Each node will access {r} independently,\npossibly leading to different nodes running different\nversions of the image.\n\n")
    };
    let mut out = format!("{id}\n");
    if !a.detach {
        out.push_str(
            &converge(cx, leader, &id, &id, a.quiet, Follow::Tasks)
                .await
                .0,
        );
    }
    Ok(CommandOutput {
        stdout: out,
        stderr: warning,
        exit_code: 0,
    })
}

/// What `docker service create` (without `--detach`) prints while it waits for the
/// tasks, polled every 200 ms as the CLI does, then the 5-second stability check.
/// `shown` is how the last line names the service: `create` gives its ID, `scale` and
/// `update` the name they were given, as the Docker CLI does.
/// The most replicas the CLI draws a progress bar for.
const MAX_PROGRESS_BARS: usize = 20;

/// What `converge` follows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// `create` or `scale`.
    Tasks,
    /// `update`: a paused rolling update ends the wait with the CLI's error.
    Update,
    /// `rollback`: the progress says it rolls back.
    Rollback,
}

/// For an update, a paused rolling update ends the wait with the CLI's error (`service
/// update paused: ...`), returned apart from the progress.
async fn converge(
    cx: &Cx<'_>,
    leader: HostId,
    id: &str,
    shown: &str,
    quiet: bool,
    follow: Follow,
) -> (String, Option<String>) {
    let update = follow == Follow::Update;
    let mut rolling_back = follow == Follow::Rollback;
    const ROLLING_BACK: &str = "overall progress: rolling back update: ";
    let mut label = if rolling_back {
        ROLLING_BACK
    } else {
        "overall progress: "
    };
    let mut out = String::new();
    let deadline = cx.now() + Duration::from_secs(120);
    let mut stable_since: Option<Instant> = None;
    let mut first = true;
    let mut last_progress = String::new();
    loop {
        let now = cx.now();
        let store = leader_store(&cx.lab(), leader);
        let Some(svc) = store.services.get(id) else {
            break;
        };
        let tasks: Vec<_> = store
            .tasks_of(id)
            .filter(|t| t.desired == TaskState::Running)
            .collect();
        let want = match svc.mode {
            Mode::Replicated(n) => n as usize,
            Mode::Global => tasks.len(),
        };
        // Progress counts the tasks of the service's current version that run: during
        // an update, the ones already updated.
        let running = tasks
            .iter()
            .filter(|t| t.state == TaskState::Running && t.version == svc.version)
            .count();
        if first {
            // The CLI's first lines: nothing counted yet, and one bar per replica when
            // there are at most 20 (measured on the real CLI: 21 replicas get none).
            out.push_str(&format!("{label}0 out of {want} tasks\n"));
            if want <= MAX_PROGRESS_BARS {
                for i in 1..=want {
                    out.push_str(&format!("{i}/{want}:  \n"));
                }
            }
            first = false;
        }
        // An update that fails with `--update-failure-action rollback` turns into a
        // rollback: the CLI says why, then follows it.
        let status = svc
            .update_status
            .as_ref()
            .filter(|u| u.version == svc.version);
        if let Some(u) = status.filter(|u| u.state == "rollback_started" && !rolling_back) {
            out.push_str(&format!("rollback: {}\n", u.message));
            rolling_back = true;
            label = ROLLING_BACK;
        }
        let progress = format!("{label}{running} out of {want} tasks\n");
        let paused = status.and_then(|u| match u.state.as_str() {
            "paused" if update => Some("service update paused"),
            "rollback_paused" if update || rolling_back => Some("service rollback paused"),
            _ => None,
        });
        if let (Some(what), Some(u)) = (paused, status) {
            out.push_str(&progress);
            let error = format!("{what}: {}\n", u.message);
            return (if quiet { String::new() } else { out }, Some(error));
        }
        if running == want && want > 0 || want == 0 {
            let since = *stable_since.get_or_insert(now);
            let waited = now.since(since);
            if waited >= Duration::from_secs(5) {
                out.push_str(&format!("verify: Service {shown} converged\n"));
                break;
            }
            if last_progress != progress {
                out.push_str(&progress);
                last_progress = progress;
            }
            let left = 5 - waited.as_millis() / 1000;
            out.push_str(&format!(
                "verify: Waiting {left} seconds to verify that tasks are stable...\n"
            ));
        } else {
            stable_since = None;
            out.push_str(&progress);
            last_progress = progress;
        }
        if now >= deadline {
            out.push_str(
                "swarmlab: stopped waiting after 2m (Docker would keep waiting; use --detach)\n",
            );
            break;
        }
        cx.sleep_until(now + Duration::from_millis(200)).await;
    }
    (if quiet { String::new() } else { out }, None)
}

fn ports_column(svc: &Service) -> String {
    svc.ports
        .iter()
        .filter(|p| p.mode == "ingress")
        .map(|p| format!("*:{}->{}/{}", p.published, p.target, p.protocol))
        .collect::<Vec<_>>()
        .join(", ")
}

fn replicas_column(store: &Store, svc: &Service) -> String {
    let up = |nid: &Option<String>| {
        nid.as_ref()
            .and_then(|n| store.nodes.get(n))
            .is_some_and(|n| n.status != NodeStatus::Down)
    };
    let running = store
        .tasks_of(&svc.id)
        .filter(|t| t.state == TaskState::Running && up(&t.node_id))
        .count();
    let want = match svc.mode {
        Mode::Replicated(n) => n as usize,
        Mode::Global => store
            .tasks_of(&svc.id)
            .filter(|t| t.desired == TaskState::Running)
            .count(),
    };
    format!("{running}/{want}")
}

async fn service_ls(cx: &Cx<'_>, host: HostId, a: ServiceLsArgs) -> Res<CommandOutput> {
    let leader = leader_for(cx, host).await?;
    let lab = &*cx.lab();
    let store = leader_store(lab, leader);
    let fl = filters(&a.filter)?;
    check_filters(&fl, &["name", "id", "mode", "label"])?;
    let mut svcs: Vec<&Service> = store
        .services
        .values()
        .filter(|s| {
            fl.iter().all(|(k, v)| match k.as_str() {
                "name" => s.name.starts_with(v.as_str()),
                "id" => s.id.starts_with(v.as_str()),
                "mode" => match s.mode {
                    Mode::Global => v == "global",
                    Mode::Replicated(_) => v == "replicated",
                },
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => s.labels.get(lk).is_some_and(|x| x == lv),
                    None => s.labels.contains_key(v),
                },
                _ => true,
            })
        })
        .collect();
    svcs.sort_by(|x, y| natural_cmp(&x.name, &y.name));
    if a.quiet {
        // `service ls -q` prints the short IDs (12 characters), as the Docker CLI does.
        return Ok(CommandOutput::out(
            svcs.iter()
                .map(|s| format!("{}\n", &s.id[..s.id.len().min(12)]))
                .collect::<String>(),
        ));
    }
    let rows: Vec<serde_json::Value> = svcs
        .iter()
        .map(|s| {
            serde_json::json!({
                "ID": s.id[..12],
                "Name": s.name,
                "Mode": match s.mode { Mode::Global => "global", Mode::Replicated(_) => "replicated" },
                "Replicas": replicas_column(&store, s),
                "Image": s.image,
                "Ports": ports_column(s),
            })
        })
        .collect();
    if let Some(f) = custom_format(a.format.as_ref()) {
        return Ok(CommandOutput::out(
            listing(&rows, f, SERVICE_HEADERS).map_err(fail)?,
        ));
    }
    let mut t = vec![["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
    for r in &rows {
        t.push(
            ["ID", "Name", "Mode", "Replicas", "Image", "Ports"]
                .iter()
                .map(|k| r[*k].as_str().unwrap_or("").to_string())
                .collect(),
        );
    }
    Ok(CommandOutput::out(table(&t)))
}

/// Whether a task passes `service ps`'s and `node ps`'s filters.
fn task_matches(
    store: &Store,
    svc: &Service,
    t: &crate::swarm::store::Task,
    fl: &[(String, String)],
) -> bool {
    fl.iter().all(|(k, v)| match k.as_str() {
        "desired-state" => match v.as_str() {
            "running" => t.desired <= TaskState::Running,
            "shutdown" => t.desired > TaskState::Running,
            "accepted" => t.desired == TaskState::Accepted,
            _ => false,
        },
        "node" => t
            .node_id
            .as_ref()
            .and_then(|n| store.nodes.get(n))
            .is_some_and(|n| n.hostname == *v || n.id.starts_with(v.as_str())),
        "name" => format!("{}.{}", svc.name, t.slot).starts_with(v.as_str()),
        "id" => t.id.starts_with(v.as_str()),
        _ => true,
    })
}

/// `docker node ps [NODE...]`: the tasks on each node (this node by default), by
/// service name.
async fn node_ps(cx: &Cx<'_>, host: HostId, a: NodePsArgs) -> Res<CommandOutput> {
    let leader = leader_for(cx, host).await?;
    let lab = &*cx.lab();
    let store = leader_store(lab, leader);
    let fl = filters(&a.filter)?;
    check_filters(&fl, &["desired-state", "node", "name", "id", "label"])?;
    let refs = if a.nodes.is_empty() {
        vec!["self".to_string()]
    } else {
        a.nodes.clone()
    };
    let mut services: Vec<&Service> = store.services.values().collect();
    services.sort_by(|x, y| x.name.cmp(&y.name));
    let mut out = CommandOutput::default();
    let mut rows = Vec::new();
    for r in &refs {
        let n = match find_node(lab, host, &store, r) {
            Ok(n) => n.id.clone(),
            Err(e) => {
                out.stderr.push_str(&e.stderr);
                out.exit_code = 1;
                continue;
            }
        };
        for svc in &services {
            let tasks: Vec<_> = store
                .tasks_of(&svc.id)
                .filter(|t| t.node_id.as_ref() == Some(&n) && task_matches(&store, svc, t, &fl))
                .cloned()
                .collect();
            push_task_rows(
                lab,
                &store,
                svc,
                tasks,
                !fl.is_empty(),
                a.no_trunc,
                &mut rows,
            );
        }
    }
    out.stdout = print_task_rows(rows, &out, a.quiet, false, a.format.as_ref())?;
    Ok(out)
}

/// `service ps` and `node ps` rows for one service's tasks (newest first within a slot,
/// older ones as `\_` history unless filtered), with each task's whole ID in `FullID`.
fn push_task_rows(
    lab: &Lab,
    store: &Store,
    svc: &Service,
    mut tasks: Vec<crate::swarm::store::Task>,
    filtered: bool,
    no_trunc: bool,
    rows: &mut Vec<serde_json::Value>,
) {
    let key = |t: &crate::swarm::store::Task| -> String {
        match svc.mode {
            Mode::Replicated(_) => format!("{:010}", t.slot),
            Mode::Global => t.node_id.clone().unwrap_or_default(),
        }
    };
    tasks.sort_by(|x, y| {
        key(x)
            .cmp(&key(y))
            .then(y.created.cmp(&x.created))
            .then(x.id.cmp(&y.id))
    });
    let mut prev = String::new();
    for t in &tasks {
        let k = key(t);
        let name = match svc.mode {
            Mode::Replicated(_) => format!("{}.{}", svc.name, t.slot),
            Mode::Global => format!("{}.{}", svc.name, t.node_id.clone().unwrap_or_default()),
        };
        let shown = if k == prev && !filtered {
            format!(" \\_ {name}")
        } else {
            name.clone()
        };
        prev = k;
        let node = t
            .node_id
            .as_ref()
            .and_then(|n| store.nodes.get(n))
            .map(|n| n.hostname.clone())
            .unwrap_or_default();
        let err = if t.err.is_empty() {
            String::new()
        } else if no_trunc {
            format!("\"{}\"", t.err)
        } else {
            format!("\"{}\"", ellipsis(&t.err, 30))
        };
        let ports = svc
            .ports
            .iter()
            .filter(|p| p.mode == "host" && t.state == TaskState::Running)
            .map(|p| format!("*:{}->{}/{}", p.published, p.target, p.protocol))
            .collect::<Vec<_>>()
            .join(",");
        rows.push(serde_json::json!({
            "ID": if no_trunc { t.id.clone() } else { t.id[..12].to_string() },
            // `-q` prints whole task IDs, as the Docker CLI does.
            "FullID": t.id.clone(),
            "Name": shown,
            "Image": if t.image.is_empty() { &svc.image } else { &t.image },
            "Node": node,
            "DesiredState": t.desired.as_str(),
            "CurrentState": format!("{} {}", t.state.as_str(), ago(lab, t.since)),
            "Error": err,
            "Ports": ports,
        }));
    }
}

/// Print task rows as `service ps` and `node ps` do: `-q` gives whole IDs (`full_ids`)
/// or 12-character ones, `--format` a template, else the table (none when nothing was
/// found and `so_far` already failed).
fn print_task_rows(
    mut rows: Vec<serde_json::Value>,
    so_far: &CommandOutput,
    quiet: bool,
    full_ids: bool,
    format: Option<&String>,
) -> Res<String> {
    // The whole IDs are for `-q` only: no template sees them.
    let ids: Vec<String> = rows
        .iter_mut()
        .map(|r| {
            r.as_object_mut()
                .and_then(|o| o.remove("FullID"))
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        })
        .collect();
    if quiet {
        return Ok(ids
            .iter()
            .map(|id| {
                format!(
                    "{}\n",
                    if full_ids {
                        id
                    } else {
                        &id[..12.min(id.len())]
                    }
                )
            })
            .collect());
    }
    if let Some(f) = custom_format(format) {
        return listing(&rows, f, TASK_HEADERS).map_err(fail);
    }
    if rows.is_empty() && so_far.exit_code != 0 {
        return Ok(String::new());
    }
    let cols = [
        "ID",
        "Name",
        "Image",
        "Node",
        "DesiredState",
        "CurrentState",
        "Error",
        "Ports",
    ];
    let mut t = vec![[
        "ID",
        "NAME",
        "IMAGE",
        "NODE",
        "DESIRED STATE",
        "CURRENT STATE",
        "ERROR",
        "PORTS",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for r in &rows {
        t.push(
            cols.iter()
                .map(|k| r[*k].as_str().unwrap_or("").to_string())
                .collect(),
        );
    }
    Ok(table(&t))
}

async fn service_ps(cx: &Cx<'_>, host: HostId, a: ServicePsArgs) -> Res<CommandOutput> {
    let leader = leader_for(cx, host).await?;
    let lab = &*cx.lab();
    let store = leader_store(lab, leader);
    if a.services.is_empty() {
        return Err(fail("docker: 'docker service ps' requires at least 1 argument\n\nUsage:  docker service ps [OPTIONS] SERVICE [SERVICE...]\n\nSee 'docker service ps --help' for more information"));
    }
    let fl = filters(&a.filter)?;
    let mut rows = Vec::new();
    let mut out = CommandOutput::default();
    // The tasks are listed by service name, whatever the order of the arguments.
    let mut found: Vec<&Service> = Vec::new();
    for r in &a.services {
        match store.find_service(r) {
            Some(svc) if !found.iter().any(|f| f.id == svc.id) => found.push(svc),
            Some(_) => {}
            None => {
                out.stderr.push_str(&format!("no such service: {r}\n"));
                out.exit_code = 1;
            }
        }
    }
    // The CLI resolves the services first: the daemon sees the filters only then.
    if !found.is_empty() {
        check_filters(&fl, &["desired-state", "node", "name", "id"])?;
    }
    found.sort_by(|x, y| x.name.cmp(&y.name));
    for svc in found {
        let mut tasks: Vec<_> = store.tasks_of(&svc.id).cloned().collect();
        tasks.retain(|t| task_matches(&store, svc, t, &fl));
        push_task_rows(
            lab,
            &store,
            svc,
            tasks,
            !fl.is_empty(),
            a.no_trunc,
            &mut rows,
        );
    }
    out.stdout = print_task_rows(rows, &out, a.quiet, true, a.format.as_ref())?;
    Ok(out)
}

async fn service_scale(cx: &Cx<'_>, host: HostId, a: ServicesArgs) -> Res<CommandOutput> {
    let mut out = CommandOutput::default();
    if a.names.is_empty() {
        return Err(fail("docker: 'docker service scale' requires at least 1 argument\n\nUsage:  docker service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]\n\nSee 'docker service scale --help' for more information"));
    }
    for spec in &a.names {
        if let Some((name, v)) = spec
            .split_once('=')
            .filter(|(s, v)| !s.is_empty() && !v.is_empty())
        {
            if v.parse::<u64>().is_err() {
                // As the CLI's strconv.ParseUint says it, for this argument only.
                let why = if !v.bytes().all(|b| b.is_ascii_digit()) {
                    "invalid syntax"
                } else {
                    "value out of range"
                };
                collect(
                    &mut out,
                    Err(fail(format!(
                        "{name}: invalid replicas value {v}: strconv.ParseUint: parsing \"{v}\": {why}"
                    ))),
                );
                continue;
            }
        }
        let Some((name, n)) = spec
            .split_once('=')
            .filter(|(s, _)| !s.is_empty())
            .and_then(|(s, n)| n.parse::<u64>().ok().map(|n| (s, n)))
        else {
            return Err(fail(format!("invalid scale specifier '{spec}'.\nSee 'docker service scale --help'.\n\nUsage:  docker service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]\n\nScale one or multiple replicated services")));
        };
        if n > MAX_REPLICAS {
            return Err(too_many_replicas(n));
        }
        let res = scale_one(cx, host, name, n).await;
        let res = match res {
            Ok(leader) => {
                cx.lab()
                    .swarm_note(host, format!("service {name} scaled to {n}"));
                let mut text = format!("{name} scaled to {n}\n");
                if !a.detach {
                    let id = leader_store(&cx.lab(), leader)
                        .find_service(name)
                        .map(|s| s.id.clone());
                    if let Some(id) = id {
                        text.push_str(
                            &converge(cx, leader, &id, name, false, Follow::Tasks)
                                .await
                                .0,
                        );
                    }
                }
                Ok(text)
            }
            Err(e) => Err(e),
        };
        collect(&mut out, res);
    }
    Ok(out)
}

/// One `SERVICE=REPLICAS` of `docker service scale`: the CLI reads the service,
/// refuses a global one, and sends the spec back with its new count.
async fn scale_one(cx: &Cx<'_>, host: HostId, name: &str, n: u64) -> Res<HostId> {
    let named = |e: ApiError| fail(format!("{name}: Error response from daemon: {e}"));
    let s = get_service(cx, host, name).await?.map_err(named)?;
    if s.mode == Mode::Global {
        return Err(fail(format!(
            "{name}: scale can only be used with replicated or replicated-job mode"
        )));
    }
    let mut spec = s.clone();
    spec.mode = Mode::Replicated(n);
    let update = Request::UpdateService {
        id: s.id,
        spec,
        force: false,
    };
    let (leader, _) = call(cx, host, &update).await?.map_err(named)?;
    Ok(leader)
}

async fn service_update(cx: &Cx<'_>, host: HostId, a: ServiceUpdateArgs) -> Res<CommandOutput> {
    let Some(name) = a.service.clone() else {
        return Err(fail("docker: 'docker service update' requires 1 argument\n\nUsage:  docker service update [OPTIONS] SERVICE\n\nRun 'docker service update --help' for more information"));
    };
    if a.rollback {
        return Box::pin(service_rollback(cx, host, &name, a.detach, a.quiet)).await;
    }
    // pflag reads the flags' values before anything is asked of the daemon.
    let flag = |v: &Option<String>, f: fn(Svc, &str, &str) -> Res<u64>, name: &str| {
        v.as_deref().map(|v| f(Svc::Update, v, name)).transpose()
    };
    let replicas = a
        .replicas
        .as_deref()
        .map(|r| parse_replicas(Svc::Update, r))
        .transpose()?;
    let restart_delay = flag(&a.restart_delay, duration_flag, "--restart-delay")?;
    let stop_grace = flag(&a.stop_grace_period, duration_flag, "--stop-grace-period")?;
    let rolling = a.rolling.read(Svc::Update)?;
    let mut published = Vec::new();
    for p in &a.publish_add {
        let spec =
            parse_publish(p).map_err(|e| invalid_flag(Svc::Update, p, "--publish-add", &e))?;
        published.push(spec);
    }
    // The CLI reads the service, changes its spec and sends it back; the control API
    // checks it, allocates, and decides whether the tasks are redeployed.
    let cur = get_service(cx, host, &name).await?.map_err(daemon)?;
    let mut s = cur.clone();
    if let Some(n) = replicas {
        if s.mode == Mode::Global {
            return Err(fail("replicas can only be used with replicated mode"));
        }
        s.mode = Mode::Replicated(n);
    }
    for c in &a.constraint_add {
        s.constraints.push(Constraint::parse(c).map_err(|e| {
            fail(format!(
                "Error response from daemon: rpc error: code = Unknown desc = {e}"
            ))
        })?);
    }
    for c in &a.constraint_rm {
        s.constraints.retain(|x| x.to_string() != *c);
    }
    for l in &a.label_add {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        s.labels.insert(k.to_string(), v.to_string());
    }
    if let Some(c) = &a.restart_condition {
        s.restart_condition = c.clone();
    }
    if let Some(i) = &a.image {
        s.image = image_ref(i);
    }
    a.rolling.apply(&rolling, &mut s)?;
    s.restart_delay = restart_delay.unwrap_or(s.restart_delay);
    s.stop_grace = stop_grace.or(s.stop_grace);
    // Networks and published ports: the CLI resolves the networks it is given.
    for n in &a.network_rm {
        let net = get_network(cx, host, n).await?;
        s.networks
            .retain(|x| x != n && net.as_ref().is_none_or(|y| x != &y.id && x != &y.name));
    }
    for n in &a.network_add {
        let net = get_network(cx, host, n).await?;
        let Some(net) = net else {
            return Err(fail(format!(
                "Error response from daemon: network {n} not found"
            )));
        };
        if s.networks.iter().any(|x| x == &net.id || x == &net.name) {
            return Err(fail(format!("service is already attached to network {n}")));
        }
        s.networks.push(n.clone());
    }
    for p in &a.publish_rm {
        let (port, _) = p.split_once('/').unwrap_or((p.as_str(), ""));
        s.ports
            .retain(|x| x.target.to_string() != port && x.published.to_string() != port);
    }
    s.ports.extend(published);
    let update = Request::UpdateService {
        id: cur.id.clone(),
        spec: s,
        force: a.force,
    };
    let (leader, _) = request(cx, host, &update).await?;
    cx.lab().swarm_note(host, format!("service {name} updated"));
    let mut out = format!("{name}\n");
    if a.detach {
        return Ok(CommandOutput::out(out));
    }
    let (progress, paused) = converge(cx, leader, &cur.id, &name, a.quiet, Follow::Update).await;
    out.push_str(&progress);
    Ok(followed(out, paused))
}

/// What a command that followed a rolling update prints: its progress, then the CLI's
/// error (status 1) when the update or rollback paused.
fn followed(stdout: String, paused: Option<String>) -> CommandOutput {
    match paused {
        Some(stderr) => CommandOutput {
            stdout,
            stderr,
            exit_code: 1,
        },
        None => CommandOutput::out(stdout),
    }
}

#[derive(Parser, Debug)]
struct RollbackArgs {
    #[arg(short, long)]
    detach: bool,
    #[arg(short, long)]
    quiet: bool,
    service: Option<String>,
}

/// `docker service rollback SERVICE` (and `service update --rollback`): the service
/// returns to its previous spec, whose own previous spec becomes the current one, by a
/// rolling update that inspect shows as `rollback_started`, then `rollback_completed`.
async fn service_rollback(
    cx: &Cx<'_>,
    host: HostId,
    name: &str,
    detach: bool,
    quiet: bool,
) -> Res<CommandOutput> {
    let (leader, _) = request(cx, host, &Request::RollbackService(name.to_string())).await?;
    cx.lab()
        .swarm_note(host, format!("service {name} rolled back"));
    let mut out = format!("{name}\n");
    if !detach {
        let id = leader_store(&cx.lab(), leader)
            .find_service(name)
            .map(|s| s.id.clone());
        if let Some(id) = id {
            if !quiet {
                out.push_str("rollback: manually requested rollback\n");
            }
            let (progress, paused) = converge(cx, leader, &id, name, quiet, Follow::Rollback).await;
            out.push_str(&progress);
            return Ok(followed(out, paused));
        }
    }
    Ok(CommandOutput::out(out))
}

async fn service_rm(cx: &Cx<'_>, host: HostId, a: ServicesArgs) -> Res<CommandOutput> {
    if a.names.is_empty() {
        return Err(fail("docker: 'docker service rm' requires at least 1 argument\n\nUsage:  docker service rm SERVICE [SERVICE...]\n\nSee 'docker service rm --help' for more information"));
    }
    let mut out = CommandOutput::default();
    for name in &a.names {
        let res = request(cx, host, &Request::RemoveService(name.clone())).await;
        let res = res.map(|_| {
            cx.lab().swarm_note(host, format!("service {name} removed"));
            format!("{name}\n")
        });
        collect(&mut out, res);
    }
    Ok(out)
}

/// `UpdateConfig` or `RollbackConfig` as the API shows it (`Delay` only when set).
fn config_json(c: &crate::swarm::store::UpdateConfig) -> serde_json::Value {
    let mut v = serde_json::json!({"Parallelism": c.parallelism});
    if c.delay > 0 {
        v["Delay"] = c.delay.into();
    }
    v["FailureAction"] = c.failure_action.clone().into();
    v["Monitor"] = c.monitor.into();
    v["MaxFailureRatio"] = crate::cli::text::go_float(c.max_failure_ratio);
    v["Order"] = c.order.clone().into();
    v
}

/// A service's spec as the API shows it (`Spec`, and `PreviousSpec` after an update),
/// with the defaults the Docker CLI sends (a 10 s stop grace period, no limits).
fn spec_json(s: &Service, store: &Store) -> serde_json::Value {
    let mut container = serde_json::json!({"Image": s.image});
    if !s.args.is_empty() {
        container["Args"] = serde_json::json!(s.args);
    }
    container["Init"] = false.into();
    container["StopGracePeriod"] = s.stop_grace.unwrap_or(10_000_000_000).into();
    container["DNSConfig"] = serde_json::json!({});
    container["Isolation"] = "default".into();
    let mut placement = serde_json::json!({});
    if !s.constraints.is_empty() {
        placement["Constraints"] = s
            .constraints
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .into();
    }
    let mut template = serde_json::json!({
        "ContainerSpec": container,
        "Resources": {"Limits": {}, "Reservations": {}},
        "RestartPolicy": {"Condition": s.restart_condition, "Delay": s.restart_delay, "MaxAttempts": 0},
        "Placement": placement,
    });
    let networks: Vec<serde_json::Value> = s
        .networks
        .iter()
        .map(|n| {
            let id = store.find_network(n).map_or(n.as_str(), |x| x.id.as_str());
            serde_json::json!({"Target": id})
        })
        .collect();
    if !networks.is_empty() {
        template["Networks"] = networks.into();
    }
    template["ForceUpdate"] = s.force_update.into();
    template["Runtime"] = "container".into();
    let mut endpoint = serde_json::json!({"Mode": s.endpoint_mode});
    if !s.ports.is_empty() {
        endpoint["Ports"] = ports_json(s).into();
    }
    serde_json::json!({
        "Name": s.name,
        "Labels": s.labels,
        "TaskTemplate": template,
        "Mode": match s.mode {
            Mode::Replicated(n) => serde_json::json!({"Replicated": {"Replicas": n}}),
            Mode::Global => serde_json::json!({"Global": {}}),
        },
        "UpdateConfig": config_json(&s.update_config()),
        "RollbackConfig": config_json(&s.rollback_config),
        "EndpointSpec": endpoint,
    })
}

/// Published ports as the API lists them.
fn ports_json(s: &Service) -> Vec<serde_json::Value> {
    s.ports
        .iter()
        .map(|p| {
            serde_json::json!({
                "Protocol": p.protocol,
                "TargetPort": p.target,
                "PublishedPort": p.published,
                "PublishMode": p.mode,
            })
        })
        .collect()
}

fn service_json(s: &Service, store: &Store) -> serde_json::Value {
    use crate::cli::text::rfc3339;
    let mut v = serde_json::json!({
        "ID": s.id,
        "Version": {"Index": s.version_index},
        "CreatedAt": rfc3339(s.created),
        "UpdatedAt": rfc3339(s.updated),
        "Spec": spec_json(s, store),
    });
    if let Some(prev) = &s.previous {
        v["PreviousSpec"] = spec_json(prev, store);
    }
    v["Endpoint"] = endpoint_json(s, store);
    if let Some(u) = &s.update_status {
        let mut status = serde_json::json!({
            "State": u.state,
            "StartedAt": crate::cli::text::rfc3339(u.started),
        });
        if let Some(c) = u.completed {
            status["CompletedAt"] = crate::cli::text::rfc3339(c).into();
        }
        status["Message"] = u.message.clone().into();
        v["UpdateStatus"] = status;
    }
    v
}

/// The `Endpoint` of `service inspect`: the spec's ports and the allocated VIPs.
fn endpoint_json(s: &Service, store: &Store) -> serde_json::Value {
    let ports = ports_json(s);
    // The ingress VIP first, as swarmkit's allocator lists them.
    let ingress = |n: &String| !store.networks.get(n).is_some_and(|x| x.ingress);
    let mut ordered: Vec<&(String, Ipv4Addr)> = s.vips.iter().collect();
    ordered.sort_by_key(|(n, _)| ingress(n));
    let vips: Vec<serde_json::Value> = ordered
        .into_iter()
        .map(|(n, ip)| {
            let prefix = store
                .networks
                .get(n)
                .and_then(|net| net.subnet.split_once('/').map(|(_, p)| p.to_string()))
                .unwrap_or_else(|| "24".into());
            serde_json::json!({"NetworkID": n, "Addr": format!("{ip}/{prefix}")})
        })
        .collect();
    let mut spec = serde_json::json!({"Mode": s.endpoint_mode});
    let mut out = serde_json::json!({"Spec": {}});
    if !ports.is_empty() {
        spec["Ports"] = serde_json::json!(ports);
        out["Ports"] = serde_json::json!(ports);
    }
    out["Spec"] = spec;
    if !vips.is_empty() {
        out["VirtualIPs"] = serde_json::json!(vips);
    }
    out
}

async fn service_inspect(cx: &Cx<'_>, host: HostId, a: ServicesArgs) -> Res<CommandOutput> {
    let leader = leader_for(cx, host).await?;
    let lab = &*cx.lab();
    let store = leader_store(lab, leader);
    if a.names.is_empty() {
        return Err(fail("docker: 'docker service inspect' requires at least 1 argument\n\nUsage:  docker service inspect [OPTIONS] SERVICE [SERVICE...]\n\nSee 'docker service inspect --help' for more information"));
    }
    let mut found = Vec::new();
    let mut missing = String::new();
    for n in &a.names {
        match store.find_service(n) {
            Some(s) => found.push(s.clone()),
            None => missing.push_str(&format!("Error: no such service: {n}\n")),
        }
    }
    let mut text = String::new();
    if let Some(f) = &a.format {
        for s in &found {
            text.push_str(&render(f, &service_json(s, &store)).map_err(fail)?);
            text.push('\n');
        }
    } else if a.pretty {
        for s in &found {
            text.push_str(&format!("\nID:\t\t{}\nName:\t\t{}\n", s.id, s.name));
            match s.mode {
                Mode::Replicated(n) => {
                    text.push_str(&format!("Service Mode:\tReplicated\n Replicas:\t{n}\n"))
                }
                Mode::Global => text.push_str("Service Mode:\tGlobal\n"),
            }
            if let Some(u) = &s.update_status {
                text.push_str(&format!(
                    "UpdateStatus:\n State:\t\t{}\n Started:\t{}\n",
                    u.state,
                    ago(lab, u.started)
                ));
                if let Some(c) = u.completed {
                    text.push_str(&format!(" Completed:\t{}\n", ago(lab, c)));
                }
                text.push_str(&format!(" Message:\t{}\n", u.message));
            }
            text.push_str("Placement:\n");
            if !s.constraints.is_empty() {
                let cs: Vec<String> = s.constraints.iter().map(ToString::to_string).collect();
                text.push_str(&format!(" Constraints:\t[{}]\n", cs.join(" ")));
            }
            let update = s.update_config();
            for (title, c, order) in [
                ("UpdateConfig", &update, "Update order:     "),
                ("RollbackConfig", &s.rollback_config, "Rollback order:   "),
            ] {
                text.push_str(&format!("{title}:\n Parallelism:\t{}\n", c.parallelism));
                if c.delay > 0 {
                    text.push_str(&format!(
                        " Delay:\t\t{}\n",
                        crate::cli::text::go_duration(c.delay)
                    ));
                }
                text.push_str(&format!(
                    " On failure:\t{}\n Monitoring Period: {}\n Max failure ratio: {}\n {order} {}\n",
                    c.failure_action,
                    crate::cli::text::go_duration(c.monitor),
                    c.max_failure_ratio,
                    c.order
                ));
            }
            text.push_str(&format!(
                "ContainerSpec:\n Image:\t\t{}\n Args:\t\t{} \n Init:\t\tfalse\nResources:\nEndpoint Mode:\t{}\n",
                s.image,
                s.args.join(" "),
                s.endpoint_mode
            ));
            if !s.ports.is_empty() {
                text.push_str("Ports:\n");
                for p in &s.ports {
                    text.push_str(&format!(
                        " PublishedPort = {}\n  Protocol = {}\n  TargetPort = {}\n  PublishMode = {} \n",
                        p.published, p.protocol, p.target, p.mode
                    ));
                }
            }
            text.push('\n');
        }
    } else {
        let arr: Vec<_> = found.iter().map(|s| service_json(s, &store)).collect();
        text = pretty_json(&arr);
        text.push('\n');
    }
    Ok(with_missing(text, missing))
}

// ---- docker network (swarm scope) --------------------------------------------------

#[derive(Parser, Debug)]
struct NetworkCreateArgs {
    #[arg(short, long)]
    driver: Option<String>,
    #[arg(long)]
    attachable: bool,
    #[arg(long)]
    subnet: Option<String>,
    #[arg(short, long)]
    opt: Vec<String>,
    name: Option<String>,
}

/// `docker network create|ls|rm` for swarm-scoped overlays.
pub async fn network(cx: &Cx<'_>, host: HostId, args: &[String]) -> CommandOutput {
    network_cmd(cx, host, args).await.unwrap_or_else(|e| e)
}

async fn network_cmd(cx: &Cx<'_>, host: HostId, args: &[String]) -> Res<CommandOutput> {
    let (sub, rest) = split_sub(args);
    match sub {
        "create" => network_create(cx, host, parse::<NetworkCreateArgs>(rest, "network create", "[OPTIONS] NETWORK")?).await,
        "ls" | "list" => network_ls(cx, host, parse::<NetworkLsArgs>(rest, "network ls", "[OPTIONS]")?).await,
        "rm" | "remove" => network_rm(cx, host, rest).await,
        "inspect" => network_inspect(cx, host, parse::<NetworkInspectArgs>(rest, "network inspect", "[OPTIONS] NETWORK [NETWORK...]")?).await,
        other if crate::dockerref::has_subcommand("network", other) => Err(CommandOutput::err(
            format!("swarmlab: docker network {other} is not simulated yet\n"),
            1,
        )),
        other => Err(fail(format!(
            "docker: unknown command: docker network {other}\n\nRun 'docker network --help' for more information"
        ))),
    }
}

#[derive(Parser, Debug)]
struct NetworkInspectArgs {
    #[arg(short, long)]
    format: Option<String>,
    names: Vec<String>,
}

fn network_json(n: &Network) -> serde_json::Value {
    let mut v = serde_json::json!({
        "Name": n.name,
        "Id": n.id,
        "Created": crate::cli::text::rfc3339(n.created),
        "Scope": "swarm",
        "Driver": "overlay",
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": [{"Subnet": n.subnet, "Gateway": n.gateway.to_string()}],
        },
        "Internal": false,
        "Attachable": n.attachable,
        "Ingress": n.ingress,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": null,
        "Options": if n.encrypted {
            serde_json::json!({
                "com.docker.network.driver.overlay.vxlanid_list": n.vni.to_string(),
                "encrypted": "",
            })
        } else {
            serde_json::json!({
                "com.docker.network.driver.overlay.vxlanid_list": n.vni.to_string(),
            })
        },
    });
    v["Labels"] = serde_json::Value::Null;
    v
}

/// A 64-hex endpoint id, stable for what it names.
fn endpoint_id(seed: &str) -> String {
    (0..6)
        .map(|k| crate::cli::text::hash_id(format!("{seed}/{k}").as_bytes()))
        .collect::<String>()[..64]
        .to_string()
}

fn local_network_view(
    lab: &Lab,
    host: HostId,
    name: &str,
) -> Option<(serde_json::Value, serde_json::Value)> {
    let nid = lab.net_by_name(name)?;
    if !lab.nets[nid.0].hosts.contains(&host) {
        return None;
    }
    let prefix = lab.nets[nid.0].subnet.prefix;
    let mut containers = serde_json::Map::new();
    for (k, c) in lab.containers.iter().enumerate() {
        if !c.running || c.host != host {
            continue;
        }
        for i in lab.ifaces(crate::lab::ContainerId(k)) {
            if i.net == nid {
                containers.insert(
                    c.id.clone(),
                    serde_json::json!({
                        "Name": c.name,
                        "EndpointID": endpoint_id(&format!("{}{}", c.id, i.ip)),
                        "MacAddress": i.mac.to_string(),
                        "IPv4Address": format!("{}/{prefix}", i.ip),
                        "IPv6Address": "",
                    }),
                );
            }
        }
    }
    if let Some(sb) = lab.hosts[host.0].mesh.sandbox.filter(|s| s.net == nid) {
        containers.insert(
            "ingress-sbox".into(),
            serde_json::json!({
                "Name": "ingress-endpoint",
                "EndpointID": endpoint_id(&format!("ingress-sbox{}", sb.ip)),
                "MacAddress": sb.mac.to_string(),
                "IPv4Address": format!("{}/{prefix}", sb.ip),
                "IPv6Address": "",
            }),
        );
    }
    let peers: Vec<serde_json::Value> = lab.hosts[host.0]
        .gossip
        .db
        .participants(name)
        .into_iter()
        .filter_map(|p| {
            let h = lab.underlay.by_name(&p)?;
            Some(serde_json::json!({"Name": p, "IP": lab.underlay.nic(h).ip.to_string()}))
        })
        .collect();
    Some((
        serde_json::Value::Object(containers),
        serde_json::json!(peers),
    ))
}

async fn network_inspect(cx: &Cx<'_>, host: HostId, a: NetworkInspectArgs) -> Res<CommandOutput> {
    if a.names.is_empty() {
        return Err(fail("docker: 'docker network inspect' requires at least 1 argument\n\nUsage:  docker network inspect [OPTIONS] NETWORK [NETWORK...]\n\nSee 'docker network inspect --help' for more information"));
    }
    let (in_swarm, manager) = {
        let lab = cx.lab();
        let s = lab.swarm_of(host);
        (s.node_id.is_some(), s.manager.is_some())
    };
    // The host's own networks answer anywhere; the swarm's come from the leader (a
    // worker still refuses them, which a real worker does not: swarmlab's gap).
    let all_local = a
        .names
        .iter()
        .all(|n| local_network_json(&cx.lab(), host, n, in_swarm).is_some());
    let leader = if in_swarm && (manager || !all_local) {
        Some(leader_for(cx, host).await?)
    } else {
        None
    };
    let lab = &*cx.lab();
    let store = leader.map(|l| leader_store(lab, l)).unwrap_or_default();
    let mut found = Vec::new();
    let mut missing = String::new();
    for n in &a.names {
        if let Some(j) = local_network_json(lab, host, n, in_swarm) {
            found.push(j);
            continue;
        }
        match store.find_network(n) {
            Some(x) => {
                let mut j = network_json(x);
                // Where the network is present on this node: its local endpoints, and the
                // nodes NetworkDB lists in it (Docker's "Containers" and "Peers").
                if let Some((containers, peers)) = local_network_view(lab, host, &x.name) {
                    j["Containers"] = containers;
                    j["Labels"] = serde_json::json!({});
                    j["Peers"] = peers;
                }
                found.push(j)
            }
            None => missing.push_str(&format!(
                "Error response from daemon: network {n} not found\n"
            )),
        }
    }
    let text = match &a.format {
        Some(f) => formatted(&found, f)?,
        None => format!("{}\n", pretty_json(&found)),
    };
    Ok(with_missing(text, missing))
}

async fn network_create(cx: &Cx<'_>, host: HostId, a: NetworkCreateArgs) -> Res<CommandOutput> {
    if a.name.as_deref().is_some_and(|n| !valid_object_name(n)) {
        return Err(fail(
            "Error response from daemon: rpc error: code = InvalidArgument desc = name must be valid as a DNS name component",
        ));
    }
    let Some(name) = a.name.clone() else {
        return Err(fail("docker: 'docker network create' requires 1 argument\n\nUsage:  docker network create [OPTIONS] NETWORK\n\nRun 'docker network create --help' for more information"));
    };
    if a.driver.as_deref() != Some("overlay") {
        return Err(fail(format!(
            "Error response from daemon: swarmlab simulates overlay networks only (driver {})",
            a.driver.as_deref().unwrap_or("bridge")
        )));
    }
    let encrypted = a
        .opt
        .iter()
        .any(|o| o == "encrypted" || o.starts_with("encrypted="));
    let spec = NetworkSpec {
        name,
        subnet: a.subnet.clone(),
        attachable: a.attachable,
        encrypted,
    };
    let (_, answer) = request(cx, host, &Request::CreateNetwork(spec)).await?;
    let Response::Created(id) = answer else {
        return Err(fail("swarmlab: the API answered CreateNetwork with no ID"));
    };
    Ok(CommandOutput::out(format!("{id}\n")))
}

#[derive(Parser, Debug)]
struct NetworkLsArgs {
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    format: Option<String>,
    #[arg(short, long)]
    filter: Vec<String>,
}

/// A local network's ID: 64 hex digits, stable per host and name.
fn local_network_id(lab: &Lab, host: HostId, name: &str) -> String {
    let mut seed = lab.underlay.nic(host).ip.octets().to_vec();
    seed.extend_from_slice(name.as_bytes());
    let mut id = crate::cli::text::hash_id(&seed);
    for k in 1u8.. {
        if id.len() >= 64 {
            break;
        }
        seed.push(k);
        id.push_str(&crate::cli::text::hash_id(&seed));
    }
    id.truncate(64);
    id
}

/// `network inspect` of the host's own networks (`bridge`, `host`, `none`, and
/// `docker_gwbridge` on a swarm node), by name or ID prefix, as a 20.10 engine shows
/// them; `bridge` lists the containers on it.
fn local_network_json(
    lab: &Lab,
    host: HostId,
    r: &str,
    in_swarm: bool,
) -> Option<serde_json::Value> {
    let names: &[&str] = if in_swarm {
        &["bridge", "docker_gwbridge", "host", "none"]
    } else {
        &["bridge", "host", "none"]
    };
    let name = names
        .iter()
        .copied()
        .find(|n| *n == r || (r.len() >= 2 && local_network_id(lab, host, n).starts_with(r)))?;
    let id = local_network_id(lab, host, name);
    let (driver, config, options) = match name {
        "bridge" => (
            "bridge",
            serde_json::json!([{"Subnet": "172.17.0.0/16"}]),
            serde_json::json!({
                "com.docker.network.bridge.default_bridge": "true",
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                "com.docker.network.bridge.name": "docker0",
                "com.docker.network.driver.mtu": "1500",
            }),
        ),
        "docker_gwbridge" => (
            "bridge",
            serde_json::json!([{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]),
            serde_json::json!({
                "com.docker.network.bridge.enable_icc": "false",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.name": "docker_gwbridge",
            }),
        ),
        "host" => ("host", serde_json::json!([]), serde_json::json!({})),
        _ => ("null", serde_json::json!([]), serde_json::json!({})),
    };
    let mut containers = serde_json::Map::new();
    let net = format!("{name}@{}", lab.host_name(host));
    for c in lab
        .containers
        .iter()
        .filter(|c| c.host == host && c.running)
    {
        if lab.nets.get(c.net.0).is_some_and(|n| n.name == net) {
            let endpoint = local_network_id(lab, host, &format!("{}{}", c.id, name));
            containers.insert(
                c.id.clone(),
                serde_json::json!({
                    "Name": c.name,
                    "EndpointID": endpoint,
                    "MacAddress": c.mac.to_string(),
                    "IPv4Address": format!("{}/16", c.ip),
                    "IPv6Address": "",
                }),
            );
        }
    }
    Some(serde_json::json!({
        "Name": name,
        "Id": id,
        "Created": crate::cli::text::rfc3339(0),
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": config},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": {},
    }))
}

async fn network_ls(cx: &Cx<'_>, host: HostId, a: NetworkLsArgs) -> Res<CommandOutput> {
    let fl = filters(&a.filter)?;
    check_filters(&fl, &["name", "driver", "scope"])?;
    let mut rows: Vec<(String, String, String, String)> = vec![
        ("bridge".into(), "bridge".into(), "local".into(), "b".into()),
        ("host".into(), "host".into(), "local".into(), "h".into()),
        ("none".into(), "null".into(), "local".into(), "n".into()),
    ];
    let (in_swarm, manager) = {
        let lab = cx.lab();
        let s = lab.swarm_of(host);
        (s.node_id.is_some(), s.manager.is_some())
    };
    let leader = if in_swarm && manager {
        Some(leader_for(cx, host).await?)
    } else {
        None
    };
    let lab = &*cx.lab();
    if in_swarm {
        rows.push((
            "docker_gwbridge".into(),
            "bridge".into(),
            "local".into(),
            "g".into(),
        ));
        if let Some(leader) = leader {
            for n in leader_store(lab, leader).networks.values() {
                rows.push((
                    n.name.clone(),
                    "overlay".into(),
                    "swarm".into(),
                    n.id[..12].to_string(),
                ));
            }
        } else {
            // A worker lists the swarm networks it has: ingress (its sandbox) and the
            // overlays its tasks or containers use now.
            let ids: BTreeMap<String, String> = lab
                .swarm_view()
                .map(|(_, s)| {
                    s.networks
                        .values()
                        .map(|n| (n.name.clone(), n.id[..12].to_string()))
                        .collect()
                })
                .unwrap_or_default();
            for n in lab
                .nets
                .iter()
                .filter(|n| n.swarm && n.hosts.contains(&host))
            {
                if let Some(id) = ids.get(&n.name) {
                    rows.push((n.name.clone(), "overlay".into(), "swarm".into(), id.clone()));
                }
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.retain(|(name, driver, scope, _)| {
        fl.iter().all(|(k, v)| match k.as_str() {
            "name" => name.contains(v.as_str()),
            "driver" => driver == v,
            "scope" => scope == v,
            _ => true,
        })
    });
    let mut t = vec![vec![
        "NETWORK ID".to_string(),
        "NAME".into(),
        "DRIVER".into(),
        "SCOPE".into(),
    ]];
    for (name, driver, scope, id) in rows {
        let id = if id.len() == 12 {
            id
        } else {
            local_network_id(lab, host, &name)[..12].to_string()
        };
        t.push(vec![id, name, driver, scope]);
    }
    if a.quiet {
        return Ok(CommandOutput::out(
            t[1..]
                .iter()
                .map(|r| format!("{}\n", r[0]))
                .collect::<String>(),
        ));
    }
    if let Some(f) = custom_format(a.format.as_ref()) {
        let rows: Vec<serde_json::Value> = t[1..]
            .iter()
            .map(|r| serde_json::json!({"ID": r[0], "Name": r[1], "Driver": r[2], "Scope": r[3]}))
            .collect();
        return Ok(CommandOutput::out(
            listing(&rows, f, NETWORK_HEADERS).map_err(fail)?,
        ));
    }
    Ok(CommandOutput::out(table(&t)))
}

async fn network_rm(cx: &Cx<'_>, host: HostId, names: &[String]) -> Res<CommandOutput> {
    if names.is_empty() {
        return Err(fail("docker: 'docker network rm' requires at least 1 argument\n\nUsage:  docker network rm NETWORK [NETWORK...]\n\nSee 'docker network rm --help' for more information"));
    }
    let mut out = CommandOutput::default();
    for name in names {
        // The CLI asks before removing the routing-mesh network; a lab has no one to
        // answer, which counts as no.
        let res = match get_network(cx, host, name).await? {
            Some(n) if n.ingress => Err(CommandOutput {
                stdout: "WARNING! Before removing the routing-mesh network, make sure all the nodes in your swarm run the same docker engine version. Otherwise, removal may not be effective and functionality of newly create ingress networks will be impaired.\nAre you sure you want to continue? [y/N] ".into(),
                stderr: String::new(),
                exit_code: 0,
            }),
            _ => request(cx, host, &Request::RemoveNetwork(name.clone())).await,
        };
        collect(&mut out, res.map(|_| format!("{name}\n")));
    }
    if out.exit_code != 0 {
        out.stderr.push_str("exit status 1\n");
    }
    Ok(out)
}

/// `docker run --network NET` on a swarm node, where NET is a swarm network: the node asks
/// the leader (through its dispatcher on 2377) for an address. `Ok(None)` when NET is not a
/// swarm network.
pub(crate) async fn attachment(
    cx: &Cx<'_>,
    host: HostId,
    network: &str,
    container: &str,
) -> Result<Option<(Network, Ipv4Addr)>, String> {
    let (leader, net, ip) = {
        let lab = cx.lab();
        if lab.swarm_of(host).node_id.is_none() {
            return Ok(None);
        }
        let Some((leader, store)) = lab.swarm_view().map(|(l, s)| (l, s.clone())) else {
            return Ok(None);
        };
        let Some(net) = store.find_network(network).cloned() else {
            return Ok(None);
        };
        if net.ingress || !net.attachable {
            return Err(format!("docker: Error response from daemon: Could not attach to network {network}: rpc error: code = PermissionDenied desc = network {network} not manually attachable."));
        }
        if host != leader && lab.tcp_path(host, leader, SWARM_PORT).is_err() {
            return Err(format!("docker: Error response from daemon: Could not attach to network {network}: context deadline exceeded."));
        }
        let tasks: Vec<_> = store.tasks.values().cloned().collect();
        let Some(ip) = Service::free_address(&store, &net, &tasks) else {
            return Err(format!("docker: Error response from daemon: could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network {network}"));
        };
        (leader, net, ip)
    };
    commit(
        cx,
        leader,
        &[Action::PutAttachment(
            container.to_string(),
            net.id.clone(),
            ip,
        )],
    )
    .await
    .map_err(|o| o.stderr.trim_end().to_string())?;
    Ok(Some((net, ip)))
}

/// The attachment of a removed container is released.
pub(crate) async fn detach(cx: &Cx<'_>, container: &str) {
    let view = cx
        .lab()
        .swarm_view()
        .map(|(l, s)| (l, s.attachments.contains_key(container)));
    let Some((leader, attached)) = view else {
        return;
    };
    if attached {
        let _ = commit(cx, leader, &[Action::DelAttachment(container.to_string())]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_and_fail_as_go_does() {
        let ok = [
            ("0", 0),
            ("10s", 10_000_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("300ms", 300_000_000),
        ];
        for (text, ns) in ok {
            assert_eq!(parse_go_duration(text), Ok(ns), "{text}");
        }
        let bad = [
            ("1x", "time: unknown unit \"x\" in duration \"1x\""),
            ("5", "time: missing unit in duration \"5\""),
            ("bogus", "time: invalid duration \"bogus\""),
            ("", "time: invalid duration \"\""),
            ("1..2s", "time: invalid duration \"1..2s\""),
            ("9999999h", "time: invalid duration \"9999999h\""),
        ];
        for (text, why) in bad {
            assert_eq!(parse_go_duration(text), Err(why.to_string()), "{text}");
        }
    }

    #[test]
    fn templates_render_fields_paths_and_json() {
        let v = serde_json::json!({"Name": "web", "Spec": {"Role": "manager"}, "L": {"a": "b"}});
        assert_eq!(
            render("{{.Name}} {{.Spec.Role}}", &v).unwrap(),
            "web manager"
        );
        assert_eq!(render("{{json .L}}", &v).unwrap(), "{\"a\":\"b\"}");
        assert!(render("{{.Nope}}", &v).is_err());
        assert_eq!(render("{{index .L \"a\"}}", &v).unwrap(), "b");
        assert!(render("{{.Name", &v).is_err());
        assert_eq!(
            ellipsis(
                "no suitable node (scheduling constraints not satisfied on 1 node)",
                30
            ),
            "no suitable node (scheduling …"
        );
    }

    #[test]
    fn every_command_definition_is_valid_for_clap() {
        use clap::CommandFactory;
        InitArgs::command().debug_assert();
        JoinArgs::command().debug_assert();
        JoinTokenArgs::command().debug_assert();
        LeaveArgs::command().debug_assert();
        NodeLsArgs::command().debug_assert();
        NodeUpdateArgs::command().debug_assert();
        NodesArgs::command().debug_assert();
        ServiceCreateArgs::command().debug_assert();
        ServiceLsArgs::command().debug_assert();
        ServicePsArgs::command().debug_assert();
        ServiceUpdateArgs::command().debug_assert();
        ServicesArgs::command().debug_assert();
        NetworkCreateArgs::command().debug_assert();
        NetworkInspectArgs::command().debug_assert();
        NetworkLsArgs::command().debug_assert();
    }

    #[test]
    fn publish_specs_parse_both_forms() {
        let p = parse_publish("8080:80").unwrap();
        assert_eq!(
            (p.published, p.target, p.mode.as_str()),
            (8080, 80, "ingress")
        );
        let p = parse_publish("published=8081,target=80,mode=host").unwrap();
        assert_eq!((p.published, p.target, p.mode.as_str()), (8081, 80, "host"));
        assert!(parse_publish("published=1,mode=weird,target=2").is_err());
        assert!(parse_publish("x:80").is_err());
    }
}
