//! The leader's control API (swarmkit's `ControlServer`): typed requests from the
//! daemons of the swarm, validated and allocated against the store, answered with the
//! writes to propose and a typed response. Its errors print as the daemon relays them
//! (the CLI adds `Error response from daemon: `).
//!
//! Requests are objects and specs, as the Docker API carries them: the CLI reads an
//! object, changes its spec and sends it back; the server checks names, ports and
//! networks, allocates virtual IPs, published ports, subnets and VNIs, keeps the
//! previous spec, and decides whether the tasks must be redeployed.

use crate::store::{Action, Availability, Network, Node, NodeStatus, Role, Service, Store};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The range swarmkit's allocator draws published ports from when a spec leaves one to
/// the swarm.
pub const DYNAMIC_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// A request to the control API.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Request {
    /// A service by ID, ID prefix or name.
    GetService(String),
    /// A network by ID, ID prefix or name.
    GetNetwork(String),
    /// A node by ID, ID prefix or host name.
    GetNode(String),
    /// A new service from its spec (ID, times, VIPs and status are the server's).
    CreateService(Service),
    /// A service's new spec, read before with `GetService`.
    UpdateService {
        /// The service's ID.
        id: String,
        /// Its new spec.
        spec: Service,
        /// Bumped by `--force`: redeploys the tasks whatever else changed.
        force: bool,
    },
    /// Return a service to its previous spec (`service rollback`).
    RollbackService(String),
    /// Remove a service.
    RemoveService(String),
    /// A node's new spec: availability and labels.
    UpdateNode {
        /// The node's ID.
        id: String,
        /// `active`, `pause` or `drain`.
        availability: Availability,
        /// Its labels.
        labels: BTreeMap<String, String>,
    },
    /// Remove a node (`--force` removes one that is not down).
    RemoveNode {
        /// The node, by reference.
        node: String,
        /// `--force`.
        force: bool,
    },
    /// A new overlay network.
    CreateNetwork(NetworkSpec),
    /// Remove a network.
    RemoveNetwork(String),
    /// A new join token secret for a role (`join-token --rotate`).
    RotateToken(Role),
}

/// What `docker network create` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Its name.
    pub name: String,
    /// `--subnet`, as given.
    pub subnet: Option<String>,
    /// `--attachable`.
    pub attachable: bool,
    /// `--opt encrypted`.
    pub encrypted: bool,
}

/// What the control API answers.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Response {
    /// A service.
    Service(Service),
    /// A network.
    Network(Network),
    /// A node.
    Node(Node),
    /// The ID of what was created.
    Created(String),
    /// Done.
    Done,
}

/// A gRPC status code, as swarmkit answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// `Unknown`.
    Unknown,
    /// `InvalidArgument`.
    InvalidArgument,
    /// `AlreadyExists`.
    AlreadyExists,
    /// `FailedPrecondition`.
    FailedPrecondition,
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Code::Unknown => "Unknown",
            Code::InvalidArgument => "InvalidArgument",
            Code::AlreadyExists => "AlreadyExists",
            Code::FailedPrecondition => "FailedPrecondition",
        })
    }
}

/// An error of the control API, printed as the daemon relays it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A gRPC status from swarmkit.
    #[error("rpc error: code = {code} desc = {desc}")]
    Rpc {
        /// Its code.
        code: Code,
        /// Its description.
        desc: String,
    },
    /// The daemon's own lookup failed: `service web not found`.
    #[error("{kind} {name} not found")]
    NotFound {
        /// `service`, `network` or `node`.
        kind: &'static str,
        /// As it was asked for.
        name: String,
    },
    /// A reference matches more than one object.
    #[error("{kind} {name} is ambiguous ({matches} matches found)")]
    Ambiguous {
        /// `node`.
        kind: &'static str,
        /// As it was asked for.
        name: String,
        /// How many matched.
        matches: usize,
    },
    /// A spec the daemon cannot convert: `invalid RestartCondition: "x"`.
    #[error("{0}")]
    Invalid(String),
}

fn rpc(code: Code, desc: impl Into<String>) -> ApiError {
    ApiError::Rpc {
        code,
        desc: desc.into(),
    }
}

/// What the leader does for a request: the writes to propose (none for a read) and the
/// answer to send once they are committed.
#[derive(Debug)]
pub struct Reply {
    /// The writes, in one batch.
    pub actions: Vec<Action>,
    /// The answer.
    pub response: Response,
}

fn read(response: Response) -> Result<Reply, ApiError> {
    Ok(Reply {
        actions: Vec::new(),
        response,
    })
}

fn write(actions: Vec<Action>, response: Response) -> Result<Reply, ApiError> {
    Ok(Reply { actions, response })
}

/// Serve one request against the leader's store at `now` (nanoseconds). `new_id` gives
/// fresh 25-character identities (object IDs and token secrets).
pub fn handle(
    store: &Store,
    now: u64,
    request: &Request,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Reply, ApiError> {
    match request {
        Request::GetService(r) => read(Response::Service(service(store, r)?.clone())),
        Request::GetNetwork(r) => read(Response::Network(network(store, r)?.clone())),
        Request::GetNode(r) => read(Response::Node(node(store, r)?.clone())),
        Request::CreateService(spec) => create_service(store, now, spec, new_id),
        Request::UpdateService { id, spec, force } => update_service(store, now, id, spec, *force),
        Request::RollbackService(r) => rollback_service(store, now, r),
        Request::RemoveService(r) => {
            let s = service(store, r)?;
            write(vec![Action::DelService(s.id.clone())], Response::Done)
        }
        Request::UpdateNode {
            id,
            availability,
            labels,
        } => {
            let mut n = node(store, id)?.clone();
            n.availability = *availability;
            n.labels = labels.clone();
            n.updated = now;
            write(vec![Action::PutNode(n)], Response::Done)
        }
        Request::RemoveNode { node: r, force } => remove_node(store, r, *force),
        Request::CreateNetwork(spec) => create_network(store, now, spec, new_id),
        Request::RemoveNetwork(r) => {
            let n = network(store, r)?;
            if let Some(s) = store
                .services
                .values()
                .find(|s| s.networks.iter().any(|x| x == &n.name || x == &n.id))
            {
                return Err(rpc(
                    Code::FailedPrecondition,
                    format!("network {} is in use by service {}", n.id, s.id),
                ));
            }
            write(vec![Action::DelNetwork(n.id.clone())], Response::Done)
        }
        Request::RotateToken(role) => {
            let mut c = store
                .cluster
                .clone()
                .ok_or_else(|| rpc(Code::Unknown, "the cluster object is missing"))?;
            match role {
                Role::Worker => c.worker_secret = new_id(),
                Role::Manager => c.manager_secret = new_id(),
            }
            write(vec![Action::Cluster(c)], Response::Done)
        }
    }
}

fn service<'a>(store: &'a Store, r: &str) -> Result<&'a Service, ApiError> {
    store.find_service(r).ok_or_else(|| ApiError::NotFound {
        kind: "service",
        name: r.to_string(),
    })
}

fn network<'a>(store: &'a Store, r: &str) -> Result<&'a Network, ApiError> {
    store.find_network(r).ok_or_else(|| ApiError::NotFound {
        kind: "network",
        name: r.to_string(),
    })
}

/// A node by ID, host name or ID prefix, as the daemon looks them up.
fn node<'a>(store: &'a Store, r: &str) -> Result<&'a Node, ApiError> {
    store.lookup_node(r).map_err(|matches| match matches {
        0 => ApiError::NotFound {
            kind: "node",
            name: r.to_string(),
        },
        n => ApiError::Ambiguous {
            kind: "node",
            name: r.to_string(),
            matches: n,
        },
    })
}

/// swarmkit's rule for service and network names: a DNS label (letters, digits, `-`,
/// `_`, at most 63, starting and ending with a letter or digit).
pub fn valid_object_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The checks swarmkit's `validateServiceSpec` (and the daemon's conversion before it)
/// make on a spec.
fn validate_spec(spec: &Service) -> Result<(), ApiError> {
    if !matches!(
        spec.restart_condition.as_str(),
        "none" | "on-failure" | "any"
    ) {
        return Err(ApiError::Invalid(format!(
            "invalid RestartCondition: \"{}\"",
            spec.restart_condition
        )));
    }
    if !valid_object_name(&spec.name) {
        return Err(rpc(
            Code::InvalidArgument,
            "name must be valid as a DNS name component",
        ));
    }
    if !(0.0..=1.0).contains(&spec.update_max_failure_ratio) {
        return Err(rpc(
            Code::InvalidArgument,
            "TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1",
        ));
    }
    if spec.endpoint_mode != "vip" && spec.endpoint_mode != "dnsrr" {
        return Err(ApiError::Invalid(format!(
            "invalid resolution mode: \"{}\"",
            spec.endpoint_mode
        )));
    }
    if spec.endpoint_mode == "dnsrr" && spec.ports.iter().any(|p| p.mode == "ingress") {
        return Err(rpc(
            Code::InvalidArgument,
            "EndpointSpec: port published with ingress mode can't be used with dnsrr mode",
        ));
    }
    Ok(())
}

/// Every network a spec names exists.
fn networks_exist(store: &Store, spec: &Service) -> Result<(), ApiError> {
    for n in &spec.networks {
        network(store, n)?;
    }
    Ok(())
}

/// A published port is taken cluster-wide by one service.
fn ingress_ports_free(store: &Store, svc: &Service) -> Result<(), ApiError> {
    for p in svc
        .ports
        .iter()
        .filter(|p| p.mode == "ingress" && p.published != 0)
    {
        if let Some(other) = store.services.values().find(|o| {
            o.id != svc.id
                && o.ports.iter().any(|q| {
                    q.mode == "ingress" && q.published == p.published && q.protocol == p.protocol
                })
        }) {
            return Err(rpc(
                Code::InvalidArgument,
                format!(
                    "port '{}' is already in use by service '{}' ({}) as an ingress port",
                    p.published, other.name, other.id
                ),
            ));
        }
    }
    Ok(())
}

/// The allocator: a virtual IP on each of the service's networks (endpoint mode vip),
/// kept where it had one, new where it joined, released where it left; and a published
/// port left to the swarm takes the lowest free one from 30000.
fn allocate(store: &Store, svc: &mut Service) {
    let nets: Vec<Network> = svc.attached_networks(store).into_iter().cloned().collect();
    svc.vips.retain(|(n, _)| nets.iter().any(|x| &x.id == n));
    if svc.endpoint_mode == "dnsrr" {
        svc.vips.clear();
    } else {
        let tasks: Vec<_> = store.tasks.values().cloned().collect();
        for net in &nets {
            if svc.vips.iter().any(|(n, _)| *n == net.id) {
                continue;
            }
            if let Some(ip) = Service::free_address(store, net, &tasks) {
                svc.vips.push((net.id.clone(), ip));
            }
        }
    }
    for i in 0..svc.ports.len() {
        if svc.ports[i].mode == "ingress" && svc.ports[i].published == 0 {
            let taken = |p: u16| {
                store
                    .services
                    .values()
                    .filter(|o| o.id != svc.id)
                    .chain(std::iter::once(&*svc))
                    .any(|o| o.ports.iter().any(|q| q.published == p))
            };
            if let Some(p) = DYNAMIC_PORTS.clone().find(|p| !taken(*p)) {
                svc.ports[i].published = p;
            }
        }
    }
}

/// A service's spec as `PreviousSpec` keeps it: without its own history or status.
fn spec_of(s: &Service) -> Box<Service> {
    let mut spec = s.clone();
    spec.previous = None;
    spec.update_status = None;
    Box::new(spec)
}

fn create_service(
    store: &Store,
    now: u64,
    spec: &Service,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Reply, ApiError> {
    validate_spec(spec)?;
    if store.services.values().any(|s| s.name == spec.name) {
        return Err(rpc(
            Code::AlreadyExists,
            format!(
                "name conflicts with an existing object: service {} already exists",
                spec.name
            ),
        ));
    }
    ingress_ports_free(store, spec)?;
    networks_exist(store, spec)?;
    let mut svc = spec.clone();
    svc.id = new_id();
    svc.created = now;
    svc.updated = now;
    svc.version = 0;
    svc.top_version = 0;
    svc.vips.clear();
    svc.update_status = None;
    svc.previous = None;
    allocate(store, &mut svc);
    let id = svc.id.clone();
    write(vec![Action::PutService(svc)], Response::Created(id))
}

/// Whether a new spec changes what the tasks run (their template): they are then
/// redeployed by a rolling update.
fn template_changed(old: &Service, new: &Service) -> bool {
    old.image != new.image
        || old.args != new.args
        || old.networks != new.networks
        || old.ports != new.ports
        || old.stop_grace != new.stop_grace
}

fn update_service(
    store: &Store,
    now: u64,
    id: &str,
    spec: &Service,
    force: bool,
) -> Result<Reply, ApiError> {
    let cur = service(store, id)?;
    validate_spec(spec)?;
    networks_exist(store, spec)?;
    let mut s = spec.clone();
    s.id = cur.id.clone();
    s.created = cur.created;
    s.vips = cur.vips.clone();
    s.update_status = cur.update_status.clone();
    s.previous = Some(spec_of(cur));
    s.version = cur.version;
    s.top_version = cur.top_version;
    s.force_update = cur.force_update + u64::from(force);
    if template_changed(cur, &s) || force {
        s.top_version += 1;
        s.version = s.top_version;
    }
    if s.networks != cur.networks || s.ports != cur.ports {
        ingress_ports_free(store, &s)?;
        allocate(store, &mut s);
    }
    s.updated = now;
    write(vec![Action::PutService(s)], Response::Done)
}

fn rollback_service(store: &Store, now: u64, r: &str) -> Result<Reply, ApiError> {
    let cur = service(store, r)?;
    let Some(prev) = cur.previous.as_ref() else {
        return Err(rpc(
            Code::FailedPrecondition,
            format!("service {} does not have a previous spec", cur.id),
        ));
    };
    let mut s = (**prev).clone();
    s.id = cur.id.clone();
    s.created = cur.created;
    s.updated = now;
    s.vips = cur.vips.clone();
    // The previous spec's own template: the tasks that still run it stay.
    s.top_version = cur.top_version;
    s.previous = Some(spec_of(cur));
    s.update_status = Some(crate::store::UpdateStatus {
        state: "rollback_started".into(),
        started: now,
        completed: None,
        message: "manually requested rollback".into(),
        version: s.version,
    });
    allocate(store, &mut s);
    write(vec![Action::PutService(s)], Response::Done)
}

fn remove_node(store: &Store, r: &str, force: bool) -> Result<Reply, ApiError> {
    let n = node(store, r)?;
    if n.role == Role::Manager {
        return Err(rpc(
            Code::FailedPrecondition,
            format!(
                "node {} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal",
                n.id
            ),
        ));
    }
    if n.status != NodeStatus::Down && !force {
        return Err(rpc(
            Code::FailedPrecondition,
            format!("node {} is not down and can't be removed", n.id),
        ));
    }
    let mut acts = vec![Action::DelNode(n.id.clone())];
    for t in store
        .tasks
        .values()
        .filter(|t| t.node_id.as_ref() == Some(&n.id))
    {
        acts.push(Action::DelTask(t.id.clone()));
    }
    write(acts, Response::Done)
}

/// `A.B.C.D/N` with N at most 30.
fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, prefix) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    (prefix <= 30).then_some((ip, prefix))
}

fn create_network(
    store: &Store,
    now: u64,
    spec: &NetworkSpec,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Reply, ApiError> {
    let name = &spec.name;
    if !valid_object_name(name) {
        return Err(rpc(
            Code::InvalidArgument,
            "name must be valid as a DNS name component",
        ));
    }
    if store.networks.values().any(|n| &n.name == name) {
        return Err(ApiError::Invalid(format!(
            "network with name {name} already exists"
        )));
    }
    let vni = store.networks.values().map(|n| n.vni).max().unwrap_or(4096) + 1;
    let (subnet, gateway) = match &spec.subnet {
        Some(s) => {
            let (base, prefix) = parse_cidr(s).ok_or_else(|| {
                ApiError::Invalid(format!("Invalid subnet {s} : invalid CIDR address: {s}"))
            })?;
            let mask = u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0);
            let net = u32::from(base) & mask;
            if net != u32::from(base) {
                return Err(ApiError::Invalid(format!(
                    "invalid subnet {s}: it should be {}/{prefix}",
                    Ipv4Addr::from(net)
                )));
            }
            (format!("{base}/{prefix}"), Ipv4Addr::from(net + 1))
        }
        None => {
            let pool = store
                .cluster
                .as_ref()
                .map(|c| c.pool.clone())
                .unwrap_or_else(|| "10.0.0.0/8".into());
            let (base, _) = parse_cidr(&pool).unwrap_or((Ipv4Addr::new(10, 0, 0, 0), 8));
            let o = base.octets();
            let used: Vec<&str> = store.networks.values().map(|n| n.subnet.as_str()).collect();
            let third = (0..=255u8)
                .find(|k| !used.contains(&format!("{}.{}.{k}.0/24", o[0], o[1]).as_str()))
                .ok_or_else(|| {
                    ApiError::Invalid("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into())
                })?;
            (
                format!("{}.{}.{third}.0/24", o[0], o[1]),
                Ipv4Addr::new(o[0], o[1], third, 1),
            )
        }
    };
    let id = new_id();
    let net = Network {
        id: id.clone(),
        name: name.clone(),
        vni,
        subnet,
        gateway,
        attachable: spec.attachable,
        encrypted: spec.encrypted,
        ingress: false,
        created: now,
        version_index: 0,
    };
    write(vec![Action::PutNetwork(net)], Response::Created(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Mode, PortSpec};

    fn store() -> Store {
        let mut s = Store::default();
        let ingress = Network {
            id: "ingressid".into(),
            name: "ingress".into(),
            vni: 4096,
            subnet: "10.0.0.0/24".into(),
            gateway: Ipv4Addr::new(10, 0, 0, 1),
            attachable: false,
            encrypted: false,
            ingress: true,
            created: 0,
            version_index: 0,
        };
        s.apply(&Action::PutNetwork(ingress));
        s
    }

    fn spec(name: &str, published: u16) -> Service {
        Service {
            id: String::new(),
            name: name.into(),
            image: "nginx:latest".into(),
            args: vec![],
            mode: Mode::Replicated(1),
            constraints: vec![],
            networks: vec![],
            ports: vec![PortSpec {
                published,
                target: 80,
                protocol: "tcp".into(),
                mode: "ingress".into(),
            }],
            endpoint_mode: "vip".into(),
            restart_condition: "any".into(),
            restart_delay: 5_000_000_000,
            update_parallelism: 1,
            update_delay: 0,
            labels: Default::default(),
            created: 0,
            updated: 0,
            version: 0,
            vips: vec![],
            update_failure_action: "pause".into(),
            update_order: "stop-first".into(),
            stop_grace: None,
            update_monitor: 5_000_000_000,
            update_max_failure_ratio: 0.0,
            rollback_config: Default::default(),
            top_version: 0,
            update_status: None,
            previous: None,
            force_update: 0,
            version_index: 0,
        }
    }

    /// Serves a request and applies its writes, as a committed batch would.
    fn serve(s: &mut Store, now: u64, r: &Request) -> Result<Response, ApiError> {
        let mut n = 0;
        let reply = handle(s, now, r, &mut || {
            n += 1;
            format!("id{now}x{n}")
        })?;
        for a in &reply.actions {
            s.apply(a);
        }
        Ok(reply.response)
    }

    fn created(r: Result<Response, ApiError>) -> String {
        match r {
            Ok(Response::Created(id)) => id,
            other => panic!("not created: {other:?}"),
        }
    }

    #[test]
    fn a_created_service_gets_an_id_a_vip_and_a_free_port_and_a_taken_port_is_refused() {
        let mut s = store();
        let a = created(serve(&mut s, 7, &Request::CreateService(spec("a", 0))));
        let svc = &s.services[&a];
        assert_eq!((svc.created, svc.ports[0].published), (7, 30000));
        assert_eq!(
            svc.vips,
            vec![("ingressid".into(), Ipv4Addr::new(10, 0, 0, 2))]
        );
        let b = created(serve(&mut s, 8, &Request::CreateService(spec("b", 0))));
        assert_eq!(s.services[&b].ports[0].published, 30001);
        let e = serve(&mut s, 9, &Request::CreateService(spec("c", 30000))).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("rpc error: code = InvalidArgument desc = port '30000' is already in use by service 'a' ({a}) as an ingress port")
        );
        let e = serve(&mut s, 9, &Request::CreateService(spec("a", 8080))).unwrap_err();
        assert_eq!(e.to_string(), "rpc error: code = AlreadyExists desc = name conflicts with an existing object: service a already exists");
        let mut bad = spec("d", 8080);
        bad.restart_condition = "sometimes".into();
        let e = serve(&mut s, 9, &Request::CreateService(bad)).unwrap_err();
        assert_eq!(e.to_string(), "invalid RestartCondition: \"sometimes\"");
        let mut bad = spec("e", 8080);
        bad.networks = vec!["nope".into()];
        let e = serve(&mut s, 9, &Request::CreateService(bad)).unwrap_err();
        assert_eq!(e.to_string(), "network nope not found");
    }

    #[test]
    fn an_update_redeploys_only_when_the_task_template_changes_and_keeps_the_previous_spec() {
        let mut s = store();
        let id = created(serve(&mut s, 1, &Request::CreateService(spec("web", 8080))));
        let update = |s: &Store, f: &dyn Fn(&mut Service), force| {
            let mut spec = s.services[&id].clone();
            f(&mut spec);
            Request::UpdateService {
                id: id.clone(),
                spec,
                force,
            }
        };
        let r = update(&s, &|x| x.mode = Mode::Replicated(3), false);
        serve(&mut s, 2, &r).unwrap();
        assert_eq!(s.services[&id].version, 0, "a scale redeploys nothing");
        assert_eq!(
            s.services[&id].previous.as_ref().map(|p| p.mode),
            Some(Mode::Replicated(1))
        );
        let r = update(&s, &|x| x.image = "nginx:latest".into(), false);
        serve(&mut s, 3, &r).unwrap();
        assert_eq!(
            s.services[&id].version, 0,
            "the same image redeploys nothing"
        );
        let r = update(&s, &|x| x.image = "nginx:1.25".into(), false);
        serve(&mut s, 4, &r).unwrap();
        assert_eq!((s.services[&id].version, s.services[&id].updated), (1, 4));
        let r = update(&s, &|_| {}, true);
        serve(&mut s, 5, &r).unwrap();
        assert_eq!(s.services[&id].version, 2, "--force redeploys");
        serve(&mut s, 6, &Request::RollbackService("web".into())).unwrap();
        let svc = &s.services[&id];
        // Back to the template before --force: the tasks of that one stay.
        assert_eq!(
            (svc.image.as_str(), svc.version, svc.top_version),
            ("nginx:1.25", 1, 2)
        );
        assert_eq!(
            svc.update_status.as_ref().map(|u| u.state.as_str()),
            Some("rollback_started")
        );
    }

    #[test]
    fn a_rollback_needs_a_previous_spec_and_a_removal_names_what_it_cannot_find() {
        let mut s = store();
        let id = created(serve(&mut s, 1, &Request::CreateService(spec("web", 8080))));
        let e = serve(&mut s, 2, &Request::RollbackService("web".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("rpc error: code = FailedPrecondition desc = service {id} does not have a previous spec")
        );
        let e = serve(&mut s, 2, &Request::RemoveService("nope".into())).unwrap_err();
        assert_eq!(e.to_string(), "service nope not found");
        serve(&mut s, 2, &Request::RemoveService(id[..4].to_string())).unwrap();
        assert!(s.services.is_empty(), "removed by an ID prefix");
    }

    #[test]
    fn networks_get_the_next_subnet_and_vni_and_bad_subnets_and_names_are_refused() {
        let mut s = store();
        let net = |name: &str, subnet: Option<&str>| {
            Request::CreateNetwork(NetworkSpec {
                name: name.into(),
                subnet: subnet.map(Into::into),
                attachable: false,
                encrypted: false,
            })
        };
        let a = created(serve(&mut s, 1, &net("appnet", None)));
        assert_eq!(
            (s.networks[&a].subnet.as_str(), s.networks[&a].vni),
            ("10.0.1.0/24", 4097)
        );
        let e = serve(&mut s, 2, &net("appnet", None)).unwrap_err();
        assert_eq!(e.to_string(), "network with name appnet already exists");
        let e = serve(&mut s, 2, &net("other", Some("10.9.9.1/24"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid subnet 10.9.9.1/24: it should be 10.9.9.0/24"
        );
        let e = serve(&mut s, 2, &net("bad name", None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rpc error: code = InvalidArgument desc = name must be valid as a DNS name component"
        );
        let mut web = spec("web", 8080);
        web.networks = vec!["appnet".into()];
        let w = created(serve(&mut s, 3, &Request::CreateService(web)));
        let e = serve(&mut s, 4, &Request::RemoveNetwork("appnet".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "rpc error: code = FailedPrecondition desc = network {a} is in use by service {w}"
            )
        );
    }
}
