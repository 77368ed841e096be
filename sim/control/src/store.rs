//! The cluster store that the managers replicate with Raft: nodes, services, tasks,
//! networks and the cluster object (join tokens). Each Raft entry carries a batch of
//! whole-object writes, as swarmkit's store actions do, so replaying entries over a
//! newer copy of the store converges to the same state.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Virtual time in nanoseconds since the lab started (kept plain for serialisation).
pub type Nanos = u64;

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A manager: a Raft member.
    Manager,
    /// A worker.
    Worker,
}

impl Role {
    /// Docker's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }
}

/// `docker node update --availability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Availability {
    /// Takes new tasks.
    Active,
    /// Keeps its tasks, takes no new ones.
    Pause,
    /// Its tasks move elsewhere.
    Drain,
}

impl Availability {
    /// Docker's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
    /// Parse Docker's word.
    pub fn parse(s: &str) -> Option<Availability> {
        match s {
            "active" => Some(Availability::Active),
            "pause" => Some(Availability::Pause),
            "drain" => Some(Availability::Drain),
            _ => None,
        }
    }
}

/// What the dispatcher knows of a node's agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    /// Heartbeats arrive.
    Ready,
    /// Heartbeats stopped.
    Down,
    /// Left the swarm.
    Unknown,
}

impl NodeStatus {
    /// As `docker node ls` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Ready => "Ready",
            NodeStatus::Down => "Down",
            NodeStatus::Unknown => "Unknown",
        }
    }
}

/// A node of the swarm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// 25 characters of base 36.
    pub id: String,
    /// The host name.
    pub hostname: String,
    /// The address it advertises.
    pub addr: Ipv4Addr,
    /// Manager or worker.
    pub role: Role,
    /// Availability.
    pub availability: Availability,
    /// Status.
    pub status: NodeStatus,
    /// Why it is in that status (`heartbeat failure`, ...).
    pub message: String,
    /// `node.labels.*`.
    pub labels: BTreeMap<String, String>,
    /// Its Raft member id, while it is a manager.
    pub raft_id: Option<u64>,
    /// Its ingress sandbox's address on the ingress network (the routing mesh).
    #[serde(default)]
    pub ingress_ip: Option<Ipv4Addr>,
    /// When it joined.
    pub created: Nanos,
    /// When it last changed.
    pub updated: Nanos,
    /// The Raft index of its last write (the API's `Version.Index`).
    #[serde(default)]
    pub version_index: u64,
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// N replicas.
    Replicated(u64),
    /// One task per eligible node.
    Global,
}

/// One `--constraint`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    /// `node.role`, `node.hostname`, `node.id` or `node.labels.X`.
    pub key: String,
    /// `==` (true) or `!=`.
    pub equal: bool,
    /// The value.
    pub value: String,
}

impl Constraint {
    /// Parse `KEY==VALUE` or `KEY!=VALUE`, as swarmkit does.
    pub fn parse(s: &str) -> Result<Constraint, String> {
        let (key, equal, value) = if let Some((k, v)) = s.split_once("==") {
            (k, true, v)
        } else if let Some((k, v)) = s.split_once("!=") {
            (k, false, v)
        } else {
            return Err("constraint expected one operator from ==, !=".to_string());
        };
        let key = key.trim().to_string();
        let value = value.trim().to_string();
        // A key swarmkit does not know is accepted; no node satisfies it (`matches`).
        if value.is_empty() {
            return Err(format!("constraint value is empty: {s}"));
        }
        if key == "node.role" && value != "manager" && value != "worker" {
            return Err(format!(
                "constraint value {value} is not valid for node.role"
            ));
        }
        Ok(Constraint { key, equal, value })
    }

    /// Whether `node` satisfies it. No node satisfies a key swarmkit does not know,
    /// whatever the operator.
    pub fn matches(&self, node: &Node) -> bool {
        let known = matches!(
            self.key.as_str(),
            "node.role" | "node.hostname" | "node.id" | "node.platform.os" | "node.platform.arch"
        ) || self.key.starts_with("node.labels.")
            || self.key.starts_with("engine.labels.");
        if !known {
            return false;
        }
        let actual: Option<String> = match self.key.as_str() {
            "node.role" => Some(node.role.as_str().to_string()),
            "node.hostname" => Some(node.hostname.clone()),
            "node.id" => Some(node.id.clone()),
            "node.platform.os" => Some("linux".into()),
            "node.platform.arch" => Some("x86_64".into()),
            k => k
                .strip_prefix("node.labels.")
                .and_then(|l| node.labels.get(l).cloned()),
        };
        // Labels compare case-sensitively, the rest case-insensitively, as swarmkit does.
        let eq = match &actual {
            Some(a) if self.key.starts_with("node.labels.") => *a == self.value,
            Some(a) => a.eq_ignore_ascii_case(&self.value),
            None => false,
        };
        eq == self.equal
    }
}

impl std::fmt::Display for Constraint {
    /// As written on the command line: `node.role==worker`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = if self.equal { "==" } else { "!=" };
        write!(f, "{}{op}{}", self.key, self.value)
    }
}

/// A published port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// On the nodes.
    pub published: u16,
    /// In the container.
    pub target: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// `ingress` or `host`.
    pub mode: String,
}

fn default_update_order() -> String {
    "stop-first".into()
}

fn default_failure_action() -> String {
    "pause".into()
}

fn default_monitor() -> Nanos {
    5_000_000_000
}

/// How a rolling update, or a rollback, goes (swarmkit's `UpdateConfig`, which a
/// service holds twice: `UpdateConfig` and `RollbackConfig`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Tasks replaced at once (0: all).
    pub parallelism: u64,
    /// Wait between batches.
    pub delay: Nanos,
    /// `pause`, `continue` or `rollback`.
    pub failure_action: String,
    /// How long after its start a task's failure still counts.
    pub monitor: Nanos,
    /// The share of failed tasks tolerated before the failure action.
    pub max_failure_ratio: f64,
    /// `stop-first` or `start-first`.
    pub order: String,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay: 0,
            failure_action: default_failure_action(),
            monitor: default_monitor(),
            max_failure_ratio: 0.0,
            order: default_update_order(),
        }
    }
}

/// Where a rolling update stands (swarmkit's `UpdateStatus`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// `updating`, `paused`, `completed`, `rollback_started` or `rollback_completed`.
    pub state: String,
    /// When it started.
    pub started: Nanos,
    /// When it completed.
    pub completed: Option<Nanos>,
    /// swarmkit's message: `update in progress`, `update completed`, or why it paused.
    pub message: String,
    /// The service version it updates to (swarmlab's bookkeeping, not shown).
    pub version: u64,
}

/// A service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// 25 characters of base 36.
    pub id: String,
    /// Name.
    pub name: String,
    /// Image, as given.
    pub image: String,
    /// Command and arguments.
    pub args: Vec<String>,
    /// Replicated or global.
    pub mode: Mode,
    /// Placement constraints.
    pub constraints: Vec<Constraint>,
    /// Networks by name.
    pub networks: Vec<String>,
    /// Published ports.
    pub ports: Vec<PortSpec>,
    /// `vip` or `dnsrr`.
    pub endpoint_mode: String,
    /// `none`, `on-failure` or `any`.
    pub restart_condition: String,
    /// Restart delay.
    pub restart_delay: Nanos,
    /// Update parallelism.
    pub update_parallelism: u64,
    /// Update delay.
    pub update_delay: Nanos,
    /// Service labels.
    pub labels: BTreeMap<String, String>,
    /// When created.
    pub created: Nanos,
    /// When last updated.
    pub updated: Nanos,
    /// The task template's version: a new one when it changes (image, command,
    /// networks, ports, stop grace, `--force`); tasks of another version are replaced
    /// by a rolling update.
    #[serde(default)]
    pub version: u64,
    /// Its virtual IPs (endpoint mode vip): (network id, address), one per network,
    /// ingress included when it publishes ingress ports.
    #[serde(default)]
    pub vips: Vec<(String, Ipv4Addr)>,
    /// `--stop-grace-period`: how long a stop waits before SIGKILL (None: 10 s).
    #[serde(default)]
    pub stop_grace: Option<Nanos>,
    /// `--update-order`: `stop-first` (swarmkit's default) or `start-first`.
    #[serde(default = "default_update_order")]
    pub update_order: String,
    /// `--update-failure-action`: `pause` (swarmkit's default) or `continue`.
    #[serde(default = "default_failure_action")]
    pub update_failure_action: String,
    /// `--update-monitor`.
    #[serde(default = "default_monitor")]
    pub update_monitor: Nanos,
    /// `--update-max-failure-ratio`.
    #[serde(default)]
    pub update_max_failure_ratio: f64,
    /// The `--rollback-*` settings.
    #[serde(default)]
    pub rollback_config: UpdateConfig,
    /// The highest task-template version this service has had: a new template takes the
    /// next one, and a rollback returns to its previous spec's own (so the tasks that
    /// already run that template stay).
    #[serde(default)]
    pub top_version: u64,
    /// The last rolling update's progress, as `inspect` shows `UpdateStatus`.
    #[serde(default)]
    pub update_status: Option<UpdateStatus>,
    /// The spec before the last update (`PreviousSpec`), which `service rollback`
    /// returns to.
    #[serde(default)]
    pub previous: Option<Box<Service>>,
    /// `TaskTemplate.ForceUpdate`: bumped by each `--force`.
    #[serde(default)]
    pub force_update: u64,
    /// The Raft index of its last write (the API's `Version.Index`).
    #[serde(default)]
    pub version_index: u64,
}

impl Service {
    /// The settings of the update under way: `RollbackConfig` while rolling back.
    pub fn config(&self) -> UpdateConfig {
        if self.rolling_back() {
            return self.rollback_config.clone();
        }
        self.update_config()
    }

    /// Its `UpdateConfig`.
    pub fn update_config(&self) -> UpdateConfig {
        UpdateConfig {
            parallelism: self.update_parallelism,
            delay: self.update_delay,
            failure_action: self.update_failure_action.clone(),
            monitor: self.update_monitor,
            max_failure_ratio: self.update_max_failure_ratio,
            order: self.update_order.clone(),
        }
    }

    /// Whether its last update is a rollback.
    pub fn rolling_back(&self) -> bool {
        self.update_status
            .as_ref()
            .is_some_and(|u| u.state.starts_with("rollback"))
    }

    /// The networks its tasks attach to, in order: its own, then `ingress` when it
    /// publishes a port in ingress mode (as Docker attaches the routing mesh).
    pub fn attached_networks<'a>(&self, store: &'a Store) -> Vec<&'a Network> {
        let mut out: Vec<&Network> = self
            .networks
            .iter()
            .filter_map(|n| store.find_network(n))
            .collect();
        if self.ports.iter().any(|p| p.mode == "ingress") {
            if let Some(ing) = store.networks.values().find(|n| n.ingress) {
                if !out.iter().any(|n| n.id == ing.id) {
                    out.push(ing);
                }
            }
        }
        out
    }

    /// The lowest free address of `net` from .2 up: not the gateway, no live task's, no
    /// service's VIP.
    pub fn free_address(store: &Store, net: &Network, tasks: &[Task]) -> Option<Ipv4Addr> {
        let (base, prefix) = net
            .subnet
            .split_once('/')
            .and_then(|(b, p)| Some((b.parse::<Ipv4Addr>().ok()?, p.parse::<u32>().ok()?)))?;
        let size = 1u64 << (32 - prefix.min(30));
        let used: std::collections::BTreeSet<Ipv4Addr> = tasks
            .iter()
            .filter(|t| !(t.state.terminal() && t.desired.terminal()))
            .flat_map(|t| t.addresses.iter())
            .chain(store.services.values().flat_map(|s| s.vips.iter()))
            .chain(store.attachments.values())
            .chain(
                store
                    .nodes
                    .values()
                    .filter(|_| net.ingress)
                    .filter_map(|n| Some((net.id.clone(), n.ingress_ip?)))
                    .collect::<Vec<_>>()
                    .iter(),
            )
            .filter(|(n, _)| *n == net.id)
            .map(|(_, ip)| *ip)
            .collect();
        (2..size - 1)
            .map(|i| Ipv4Addr::from(u32::from(base) + i as u32))
            .find(|ip| !used.contains(ip) && *ip != net.gateway)
    }
}

/// A task's state, in swarmkit's order: a task only moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskState {
    /// Created.
    New,
    /// Waiting for a node.
    Pending,
    /// Given to a node.
    Assigned,
    /// The node took it.
    Accepted,
    /// Preparing (image, networks).
    Preparing,
    /// Prepared, waiting to be started (as desired state: prepare, do not start yet).
    Ready,
    /// Starting the container.
    Starting,
    /// Running.
    Running,
    /// Exited 0.
    Complete,
    /// Stopped on request.
    Shutdown,
    /// Exited non-zero.
    Failed,
    /// The node refused it.
    Rejected,
    /// Its node has been gone too long.
    Orphaned,
    /// Desired only: the task goes away (scaled down).
    Remove,
}

impl TaskState {
    /// As `docker service ps` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "New",
            TaskState::Pending => "Pending",
            TaskState::Assigned => "Assigned",
            TaskState::Accepted => "Accepted",
            TaskState::Preparing => "Preparing",
            TaskState::Ready => "Ready",
            TaskState::Starting => "Starting",
            TaskState::Running => "Running",
            TaskState::Complete => "Complete",
            TaskState::Shutdown => "Shutdown",
            TaskState::Failed => "Failed",
            TaskState::Rejected => "Rejected",
            TaskState::Orphaned => "Orphaned",
            TaskState::Remove => "Remove",
        }
    }

    /// A final state.
    pub fn terminal(self) -> bool {
        self > TaskState::Running
    }
}

/// A task: one slot of a service on one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// 25 characters of base 36.
    pub id: String,
    /// Its service.
    pub service_id: String,
    /// Slot (replicated), 0 for global.
    pub slot: u64,
    /// The node it runs on, once assigned (global tasks are created with it).
    pub node_id: Option<String>,
    /// The state the orchestrator wants.
    pub desired: TaskState,
    /// The state the agent reported.
    pub state: TaskState,
    /// The state's message (`running`, `assigned`...).
    pub message: String,
    /// Why it is not running (the ERROR column).
    pub err: String,
    /// When its state last changed.
    pub since: Nanos,
    /// When it was created.
    pub created: Nanos,
    /// The service version it runs.
    #[serde(default)]
    pub version: u64,
    /// The image it runs (the service's image when it was created).
    #[serde(default)]
    pub image: String,
    /// Its address on each of its networks (network id, IPv4), allocated by the leader.
    #[serde(default)]
    pub addresses: Vec<(String, Ipv4Addr)>,
}

/// An overlay network of the swarm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// 25 characters of base 36.
    pub id: String,
    /// Name.
    pub name: String,
    /// VXLAN id.
    pub vni: u32,
    /// Subnet, as `10.0.1.0/24`.
    pub subnet: String,
    /// Gateway.
    pub gateway: Ipv4Addr,
    /// `--attachable`.
    pub attachable: bool,
    /// `--opt encrypted`.
    pub encrypted: bool,
    /// The routing-mesh network.
    pub ingress: bool,
    /// When created.
    pub created: Nanos,
    /// The Raft index of its last write (the API's `Version.Index`).
    #[serde(default)]
    pub version_index: u64,
}

/// The cluster object: its identity and join tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// 25 characters of base 36.
    pub id: String,
    /// The root CA's digest, as the token's third field carries it (base 36, 50 chars).
    pub ca_digest: String,
    /// Worker token secret (25 chars).
    pub worker_secret: String,
    /// Manager token secret (25 chars).
    pub manager_secret: String,
    /// The default address pool.
    pub pool: String,
    /// The Raft member the current Raft group was bootstrapped with: every member
    /// starts its log from the same initial configuration.
    #[serde(default)]
    pub raft_origin: u64,
    /// When created.
    pub created: Nanos,
}

impl Cluster {
    /// `SWMTKN-1-<digest>-<secret>` for a role.
    pub fn token(&self, role: Role) -> String {
        let secret = match role {
            Role::Manager => &self.manager_secret,
            Role::Worker => &self.worker_secret,
        };
        format!("SWMTKN-1-{}-{}", self.ca_digest, secret)
    }
}

/// One write. (A service is the largest variant; writes are made per command and per
/// reconcile pass, never per packet, so they are not boxed.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Action {
    /// Create or replace the cluster object.
    Cluster(Cluster),
    /// Create or replace a node.
    PutNode(Node),
    /// Remove a node.
    DelNode(String),
    /// Create or replace a service.
    PutService(Service),
    /// Remove a service (its tasks are removed by their own actions).
    DelService(String),
    /// The updater's progress on a service (only that field: a user's write to the
    /// service meanwhile is kept).
    SetUpdateStatus(String, Option<UpdateStatus>),
    /// Create or replace a task.
    PutTask(Task),
    /// Remove a task.
    DelTask(String),
    /// Create or replace a network.
    PutNetwork(Network),
    /// Remove a network.
    DelNetwork(String),
    /// A standalone container's attachment to an attachable network: (container id,
    /// network id, address).
    PutAttachment(String, String, Ipv4Addr),
    /// The container is gone.
    DelAttachment(String),
}

/// The replicated state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Store {
    /// The cluster object, once `swarm init` has run.
    pub cluster: Option<Cluster>,
    /// Nodes by id.
    pub nodes: BTreeMap<String, Node>,
    /// Services by id.
    pub services: BTreeMap<String, Service>,
    /// Tasks by id.
    pub tasks: BTreeMap<String, Task>,
    /// Networks by id.
    pub networks: BTreeMap<String, Network>,
    /// Standalone containers' addresses on attachable networks, by container id.
    #[serde(default)]
    pub attachments: BTreeMap<String, (String, Ipv4Addr)>,
    /// The Raft index applied last.
    pub applied: u64,
}

impl Store {
    /// The writes that build this store from an empty one (the first batch of a new
    /// Raft log that keeps an existing store, `--force-new-cluster`).
    pub fn as_actions(&self) -> Vec<Action> {
        let mut out: Vec<Action> = self.cluster.iter().cloned().map(Action::Cluster).collect();
        out.extend(self.networks.values().cloned().map(Action::PutNetwork));
        out.extend(self.nodes.values().cloned().map(Action::PutNode));
        out.extend(self.services.values().cloned().map(Action::PutService));
        out.extend(self.tasks.values().cloned().map(Action::PutTask));
        out.extend(
            self.attachments
                .iter()
                .map(|(c, (n, ip))| Action::PutAttachment(c.clone(), n.clone(), *ip)),
        );
        out
    }

    /// Apply one write.
    pub fn apply(&mut self, a: &Action) {
        match a {
            Action::Cluster(c) => self.cluster = Some(c.clone()),
            Action::PutNode(n) => {
                let mut n = n.clone();
                n.version_index = self.applied;
                self.nodes.insert(n.id.clone(), n);
            }
            Action::DelNode(id) => {
                self.nodes.remove(id);
            }
            Action::PutService(s) => {
                let mut s = s.clone();
                s.version_index = self.applied;
                self.services.insert(s.id.clone(), s);
            }
            Action::DelService(id) => {
                self.services.remove(id);
            }
            Action::SetUpdateStatus(id, status) => {
                if let Some(s) = self.services.get_mut(id) {
                    s.update_status = status.clone();
                    s.version_index = self.applied;
                }
            }
            Action::PutTask(t) => {
                self.tasks.insert(t.id.clone(), t.clone());
            }
            Action::DelTask(id) => {
                self.tasks.remove(id);
            }
            Action::PutNetwork(n) => {
                let mut n = n.clone();
                n.version_index = self.applied;
                self.networks.insert(n.id.clone(), n);
            }
            Action::DelNetwork(id) => {
                self.networks.remove(id);
            }
            Action::PutAttachment(c, n, ip) => {
                self.attachments.insert(c.clone(), (n.clone(), *ip));
            }
            Action::DelAttachment(c) => {
                self.attachments.remove(c);
            }
        }
    }

    /// Encode a batch for a Raft entry.
    pub fn encode(actions: &[Action]) -> Vec<u8> {
        serde_json::to_vec(actions).expect("store actions always serialise")
    }

    /// Decode a Raft entry's batch.
    pub fn decode(bytes: &[u8]) -> Result<Vec<Action>, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// A node by id, by id prefix, or by host name, as the Docker CLI looks them up.
    pub fn find_node(&self, r: &str) -> Result<&Node, String> {
        self.lookup_node(r).map_err(|matches| match matches {
            0 => format!("Error response from daemon: node {r} not found"),
            n => format!("Error response from daemon: node {r} is ambiguous ({n} matches found)"),
        })
    }

    /// A node by id, host name or id prefix; otherwise how many nodes matched (0 or
    /// more than one).
    pub fn lookup_node(&self, r: &str) -> Result<&Node, usize> {
        if let Some(n) = self.nodes.get(r) {
            return Ok(n);
        }
        let by_name: Vec<&Node> = self.nodes.values().filter(|n| n.hostname == r).collect();
        if by_name.len() == 1 {
            return Ok(by_name[0]);
        }
        let by_prefix: Vec<&Node> = self
            .nodes
            .values()
            .filter(|n| n.id.starts_with(r))
            .collect();
        match (by_name.len(), by_prefix.len()) {
            (0, 1) => Ok(by_prefix[0]),
            (a, b) => Err(a.max(b)),
        }
    }

    /// A service by id, id prefix or name.
    pub fn find_service(&self, r: &str) -> Option<&Service> {
        self.services
            .get(r)
            .or_else(|| self.services.values().find(|s| s.name == r))
            .or_else(|| {
                let m: Vec<_> = self
                    .services
                    .values()
                    .filter(|s| s.id.starts_with(r))
                    .collect();
                (m.len() == 1).then(|| m[0])
            })
    }

    /// A network by id, id prefix or name.
    pub fn find_network(&self, r: &str) -> Option<&Network> {
        self.networks
            .get(r)
            .or_else(|| self.networks.values().find(|n| n.name == r))
            .or_else(|| {
                let m: Vec<_> = self
                    .networks
                    .values()
                    .filter(|n| n.id.starts_with(r))
                    .collect();
                (m.len() == 1).then(|| m[0])
            })
    }

    /// The tasks of a service.
    pub fn tasks_of<'a>(&'a self, service_id: &'a str) -> impl Iterator<Item = &'a Task> + 'a {
        self.tasks
            .values()
            .filter(move |t| t.service_id == service_id)
    }

    /// Number of managers.
    pub fn manager_count(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| n.role == Role::Manager)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(role: Role, labels: &[(&str, &str)]) -> Node {
        Node {
            id: "abc".into(),
            hostname: "w1".into(),
            addr: Ipv4Addr::new(10, 0, 0, 1),
            role,
            availability: Availability::Active,
            status: NodeStatus::Ready,
            message: String::new(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            raft_id: None,
            ingress_ip: None,
            created: 0,
            updated: 0,
            version_index: 0,
        }
    }

    #[test]
    fn constraints_match_role_hostname_and_labels() {
        let w = node(Role::Worker, &[("zone", "a")]);
        let c = |s: &str| Constraint::parse(s).unwrap();
        assert!(c("node.role==worker").matches(&w));
        assert!(!c("node.role==manager").matches(&w));
        assert!(c("node.role!=manager").matches(&w));
        assert!(c("node.hostname==W1").matches(&w));
        assert!(c("node.labels.zone==a").matches(&w));
        assert!(!c("node.labels.zone==A").matches(&w));
        assert!(!c("node.labels.rack==1").matches(&w));
        assert!(c("node.labels.rack!=1").matches(&w));
        assert!(Constraint::parse("node.role=worker").is_err());
        // An unknown key is accepted (as the real engine does) and matches no node.
        assert!(!c("node.colour==red").matches(&w));
        assert!(!c("node.colour!=red").matches(&w));
        assert!(Constraint::parse("node.role==boss").is_err());
    }

    #[test]
    fn actions_round_trip_and_replay_converges() {
        let mut a = Store::default();
        let mut n = node(Role::Worker, &[]);
        let batch1 = vec![Action::PutNode(n.clone())];
        n.availability = Availability::Drain;
        let batch2 = vec![Action::PutNode(n.clone())];
        for b in [&batch1, &batch2] {
            for x in Store::decode(&Store::encode(b)).unwrap() {
                a.apply(&x);
            }
        }
        // Replaying both batches over the newer copy ends in the same state.
        let mut b = a.clone();
        for x in batch1.iter().chain(&batch2) {
            b.apply(x);
        }
        assert_eq!(a, b);
        assert_eq!(a.nodes["abc"].availability, Availability::Drain);
        assert!(Store::decode(b"not json").is_err());
    }
}
