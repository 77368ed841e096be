//! The leader's reconciliation: node heartbeat expiry, the replicated and global
//! orchestrators, the restart supervisor and the spread scheduler. Pure functions of the
//! store and the time: what to write comes out as store actions.

use crate::store::{
    Action, Availability, Mode, Nanos, Node, NodeStatus, Service, Store, Task, TaskState,
    UpdateStatus,
};
use std::collections::BTreeMap;

/// swarmkit's task history retention (`TaskHistoryRetentionLimit`).
pub const TASK_HISTORY: usize = 5;

/// How long a node may take to send its first heartbeat (3 periods of 5 s).
pub const FIRST_HEARTBEAT_GRACE: Nanos = 15_000_000_000;

/// The leader's memory that is not in the store (rebuilt when a new leader takes over).
#[derive(Debug, Default)]
pub struct Duties {
    /// When each node's heartbeat expires.
    pub deadlines: BTreeMap<String, Nanos>,
    /// Replacement tasks waiting for the restart delay: (service, slot or node) -> due.
    pub restarts: BTreeMap<(String, String), Nanos>,
    /// Rolling updates: when a service may replace its next batch of tasks.
    pub updates: BTreeMap<String, Nanos>,
    /// Down nodes: when their tasks become orphaned.
    pub orphans: BTreeMap<String, Nanos>,
    /// Slots being updated stop-first: their replacement waits for the old task.
    pub stop_first: std::collections::BTreeSet<(String, String)>,
    /// Services whose update batch is in flight: its replacements are not all running.
    pub batches: std::collections::BTreeSet<String>,
    /// Slots being updated start-first: their old task stops once the new one runs.
    pub start_first: std::collections::BTreeSet<(String, String)>,
    /// When each task of an update in progress was first seen running: its failure
    /// counts against the update within the monitoring period from then.
    pub running_at: BTreeMap<String, Nanos>,
}

/// swarmkit orphans the tasks of a node that has been Down for 24 hours.
pub const ORPHAN_AFTER: Nanos = 24 * 3600 * 1_000_000_000;

/// Natural order of host names (w2 before w10), as the Docker CLI sorts them.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(s: &str) -> (String, u64) {
        let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (head, tail) = s.split_at(s.len() - digits);
        (head.to_string(), tail.parse().unwrap_or(0))
    }
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "node"
    } else {
        "nodes"
    }
}

/// Why a task could not be placed, in swarmkit's words.
fn no_suitable_node(unavailable: usize, constraints: usize, ports: usize) -> String {
    let mut parts = Vec::new();
    if unavailable > 0 {
        parts.push(format!(
            "{unavailable} {} not available for new tasks",
            plural(unavailable)
        ));
    }
    if constraints > 0 {
        parts.push(format!(
            "scheduling constraints not satisfied on {constraints} {}",
            plural(constraints)
        ));
    }
    if ports > 0 {
        parts.push(format!(
            "host-mode port already in use on {ports} {}",
            plural(ports)
        ));
    }
    format!("no suitable node ({})", parts.join("; "))
}

/// The addresses of a new task of `svc`: on each of its networks, the lowest address from
/// .2 up (the gateway has .1) that no live task holds.
fn allocate(store: &Store, svc: &Service, tasks: &[Task]) -> Vec<(String, std::net::Ipv4Addr)> {
    svc.attached_networks(store)
        .into_iter()
        .filter_map(|net| Some((net.id.clone(), Service::free_address(store, net, tasks)?)))
        .collect()
}

fn outdated_done(tasks: &[Task], svc: &Service) -> bool {
    !tasks
        .iter()
        .any(|t| t.service_id == svc.id && live(t) && t.version != svc.version)
}

fn position_of(tasks: &[Task]) -> BTreeMap<String, usize> {
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.clone(), i))
        .collect()
}

fn live(t: &Task) -> bool {
    t.desired <= TaskState::Running
}

fn counts(tasks: &[Task], service: &str) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let (mut mine, mut all) = (BTreeMap::new(), BTreeMap::new());
    for t in tasks.iter().filter(|t| live(t) && !t.state.terminal()) {
        if let Some(n) = &t.node_id {
            *all.entry(n.clone()).or_insert(0) += 1;
            if t.service_id == service {
                *mine.entry(n.clone()).or_insert(0) += 1;
            }
        }
    }
    (mine, all)
}

/// swarmkit's scheduler puts last the nodes where a service's tasks failed this many
/// times (`maxFailures`) within `MONITOR_FAILURES` (`monitorFailures`, 5 minutes).
const MAX_FAILURES: usize = 5;
const MONITOR_FAILURES: Nanos = 5 * 60 * 1_000_000_000;

/// Pick a node for a task of `svc`: Ready, Active, meeting the constraints; nodes where
/// the service failed too often lately last; the fewest tasks of this service, then the
/// fewest tasks in all, then host name order.
pub fn place(
    nodes: &[Node],
    svc: &Service,
    tasks: &[Task],
    services: &BTreeMap<String, Service>,
    now: Nanos,
) -> Result<String, String> {
    let (mine, all) = counts(tasks, &svc.id);
    let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
    for t in tasks.iter().filter(|t| {
        t.service_id == svc.id
            && matches!(t.state, TaskState::Failed | TaskState::Rejected)
            && now.saturating_sub(t.since) <= MONITOR_FAILURES
    }) {
        if let Some(n) = t.node_id.as_deref() {
            *failures.entry(n).or_insert(0) += 1;
        }
    }
    let (mut unavailable, mut constrained, mut ports) = (0, 0, 0);
    let host_ports: Vec<(u16, &str)> = svc
        .ports
        .iter()
        .filter(|p| p.mode == "host" && p.published != 0)
        .map(|p| (p.published, p.protocol.as_str()))
        .collect();
    let port_taken = |node: &str| {
        !host_ports.is_empty()
            && tasks.iter().any(|t| {
                t.node_id.as_deref() == Some(node)
                    && live(t)
                    && !t.state.terminal()
                    && services.get(&t.service_id).is_some_and(|s| {
                        s.ports.iter().any(|p| {
                            p.mode == "host"
                                && host_ports.contains(&(p.published, p.protocol.as_str()))
                        })
                    })
            })
    };
    let mut best: Option<(bool, usize, usize, &Node)> = None;
    for n in nodes {
        if n.status != NodeStatus::Ready || n.availability != Availability::Active {
            unavailable += 1;
            continue;
        }
        if !svc.constraints.iter().all(|c| c.matches(n)) {
            constrained += 1;
            continue;
        }
        if port_taken(&n.id) {
            ports += 1;
            continue;
        }
        let key = (
            failures.get(n.id.as_str()).copied().unwrap_or(0) >= MAX_FAILURES,
            mine.get(&n.id).copied().unwrap_or(0),
            all.get(&n.id).copied().unwrap_or(0),
        );
        let better = match best {
            None => true,
            Some((f, m, a, b)) => {
                key < (f, m, a)
                    || (key == (f, m, a) && natural_cmp(&n.hostname, &b.hostname).is_lt())
            }
        };
        if better {
            best = Some((key.0, key.1, key.2, n));
        }
    }
    best.map(|(_, _, _, n)| n.id.clone())
        .ok_or_else(|| no_suitable_node(unavailable, constrained, ports))
}

/// One pass of the leader's control loops. `new_id` mints object ids.
/// What a new task of a slot (or node) is made from.
struct NewTask<'a> {
    store: &'a Store,
    svc: &'a Service,
    key: &'a str,
    node: Option<String>,
    desired: TaskState,
    now: Nanos,
    id: String,
    tasks: &'a [Task],
    nodes: &'a [Node],
}

/// A new task for a slot (replicated) or a node (global), with its addresses, placed
/// by the scheduler when it has no node yet.
fn new_task(n: NewTask<'_>) -> Task {
    let svc = n.svc;
    let mut t = Task {
        id: n.id,
        service_id: svc.id.clone(),
        slot: match svc.mode {
            Mode::Replicated(_) => n.key.parse().unwrap_or(0),
            Mode::Global => 0,
        },
        node_id: n.node,
        desired: n.desired,
        state: TaskState::Pending,
        message: "pending task scheduling".into(),
        err: String::new(),
        since: n.now,
        created: n.now,
        version: svc.version,
        image: svc.image.clone(),
        addresses: Vec::new(),
    };
    t.addresses = allocate(n.store, svc, n.tasks);
    if t.node_id.is_some() {
        t.state = TaskState::Assigned;
        t.message = "assigned".into();
    } else {
        match place(n.nodes, svc, n.tasks, &n.store.services, n.now) {
            Ok(node) => {
                t.node_id = Some(node);
                t.state = TaskState::Assigned;
                t.message = "assigned".into();
            }
            Err(e) => t.err = e,
        }
    }
    t
}

pub fn reconcile(
    store: &Store,
    duties: &mut Duties,
    now: Nanos,
    new_id: &mut dyn FnMut() -> String,
) -> Vec<Action> {
    let mut out = Vec::new();
    // Nodes whose heartbeat expired go Down.
    let mut nodes: Vec<Node> = store.nodes.values().cloned().collect();
    for n in nodes.iter_mut() {
        // A node that has not sent its first heartbeat yet gets a full grace period.
        duties
            .deadlines
            .entry(n.id.clone())
            .or_insert(now.saturating_add(FIRST_HEARTBEAT_GRACE));
        if n.status == NodeStatus::Ready && duties.deadlines.get(&n.id).is_some_and(|&d| d <= now) {
            n.status = NodeStatus::Down;
            n.message = "heartbeat failure".into();
            n.updated = now;
            out.push(Action::PutNode(n.clone()));
        }
        match n.status {
            NodeStatus::Down => {
                duties
                    .orphans
                    .entry(n.id.clone())
                    .or_insert(n.updated.saturating_add(ORPHAN_AFTER));
            }
            _ => {
                duties.orphans.remove(&n.id);
            }
        }
    }
    nodes.sort_by(|a, b| natural_cmp(&a.hostname, &b.hostname));
    let node_of = |id: &Option<String>| -> Option<&Node> {
        id.as_ref().and_then(|i| nodes.iter().find(|n| &n.id == i))
    };
    let mut tasks: Vec<Task> = store.tasks.values().cloned().collect();
    let mut changed: BTreeMap<String, Task> = BTreeMap::new();
    // Where each task is in `tasks` (rebuilt after removals), so that a write is a
    // lookup, not a scan: a pass over N tasks stays N log N.
    let mut pos: BTreeMap<String, usize> = position_of(&tasks);
    let put = |t: Task,
               tasks: &mut Vec<Task>,
               pos: &mut BTreeMap<String, usize>,
               changed: &mut BTreeMap<String, Task>| {
        match pos.get(&t.id) {
            Some(&i) => tasks[i] = t.clone(),
            None => {
                pos.insert(t.id.clone(), tasks.len());
                tasks.push(t.clone());
            }
        }
        changed.insert(t.id.clone(), t);
    };

    // Tasks of nodes Down for 24 hours are orphaned.
    let due: Vec<String> = duties
        .orphans
        .iter()
        .filter(|(_, &t)| t <= now)
        .map(|(n, _)| n.clone())
        .collect();
    for node in due {
        duties.orphans.remove(&node);
        for t in tasks.clone() {
            if t.node_id.as_deref() == Some(node.as_str()) && !t.state.terminal() {
                let mut t = t;
                t.state = TaskState::Orphaned;
                t.message = "orphaned".into();
                t.since = now;
                put(t, &mut tasks, &mut pos, &mut changed);
            }
        }
    }

    // Tasks of removed services shut down, then go.
    let mut gone_ids = std::collections::BTreeSet::new();
    for t in tasks.clone() {
        if store.services.contains_key(&t.service_id) {
            continue;
        }
        let gone = node_of(&t.node_id).is_none_or(|n| n.status != NodeStatus::Ready);
        if t.state.terminal() || gone || t.node_id.is_none() {
            out.push(Action::DelTask(t.id.clone()));
            gone_ids.insert(t.id.clone());
        } else if t.desired != TaskState::Shutdown {
            let mut t = t;
            t.desired = TaskState::Shutdown;
            put(t, &mut tasks, &mut pos, &mut changed);
        }
    }
    if !gone_ids.is_empty() {
        tasks.retain(|x| !gone_ids.contains(&x.id));
        pos = position_of(&tasks);
    }

    for svc in store.services.values() {
        // Group the live tasks by slot (replicated) or node (global).
        let key_of = |t: &Task| match svc.mode {
            Mode::Replicated(_) => t.slot.to_string(),
            Mode::Global => t.node_id.clone().unwrap_or_default(),
        };
        let wanted: Vec<(String, Option<String>)> = match svc.mode {
            Mode::Replicated(n) => (1..=n).map(|s| (s.to_string(), None)).collect(),
            Mode::Global => nodes
                .iter()
                .filter(|n| {
                    n.availability != Availability::Drain
                        && svc.constraints.iter().all(|c| c.matches(n))
                })
                .map(|n| (n.id.clone(), Some(n.id.clone())))
                .collect(),
        };
        let wanted_keys: std::collections::BTreeSet<&str> =
            wanted.iter().map(|(k, _)| k.as_str()).collect();
        // Live tasks that are no longer wanted stop (scale down, drained global node).
        for t in tasks.clone() {
            if t.service_id != svc.id || !live(&t) {
                continue;
            }
            if !wanted_keys.contains(key_of(&t).as_str()) {
                let mut t = t;
                // Scaled-down replicas are removed once stopped (20.10 shows `Remove`).
                t.desired = match svc.mode {
                    Mode::Replicated(_) => TaskState::Remove,
                    Mode::Global => TaskState::Shutdown,
                };
                put(t, &mut tasks, &mut pos, &mut changed);
            }
        }
        // The service's tasks by slot (or node), in `tasks` order; a task's key never
        // changes, and new tasks are added as they are made.
        let mut by_slot: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, t) in tasks.iter().enumerate() {
            if t.service_id == svc.id {
                by_slot.entry(key_of(t)).or_default().push(i);
            }
        }
        for (key, global_node) in &wanted {
            let slot: Vec<usize> = by_slot.get(key).cloned().unwrap_or_default();
            let current = slot.iter().map(|&i| &tasks[i]).find(|t| live(t)).cloned();
            let rkey = (svc.id.clone(), key.clone());
            match current {
                Some(mut t) => {
                    if t.desired == TaskState::Ready && !t.state.terminal() {
                        // An update's replacement starts once the old task has stopped.
                        let old_running = slot.iter().map(|&i| &tasks[i]).any(|o| {
                            o.id != t.id
                                && !o.state.terminal()
                                && node_of(&o.node_id)
                                    .is_some_and(|n| n.status == NodeStatus::Ready)
                        });
                        if !old_running {
                            duties.stop_first.remove(&rkey);
                            t.desired = TaskState::Running;
                            put(t.clone(), &mut tasks, &mut pos, &mut changed);
                        }
                    }
                    let node = node_of(&t.node_id);
                    let down = node.is_some_and(|n| n.status == NodeStatus::Down);
                    let drained = node.is_some_and(|n| n.availability == Availability::Drain)
                        || (t.node_id.is_some()
                            && node.is_some_and(|n| !svc.constraints.iter().all(|c| c.matches(n))));
                    let failed = t.state.terminal();
                    if t.node_id.is_none() {
                        // Pending: try to place it.
                        match place(&nodes, svc, &tasks, &store.services, now) {
                            Ok(n) => {
                                t.node_id = Some(n);
                                t.state = TaskState::Assigned;
                                t.message = "assigned".into();
                                t.err.clear();
                                t.since = now;
                                put(t, &mut tasks, &mut pos, &mut changed);
                            }
                            Err(e) => {
                                if t.err != e {
                                    t.err = e;
                                    put(t, &mut tasks, &mut pos, &mut changed);
                                }
                            }
                        }
                    } else if down || drained || failed {
                        // swarmkit's restart supervisor: `none` never replaces a task,
                        // `on-failure` only a failed one or one whose node is gone.
                        let restart = match svc.restart_condition.as_str() {
                            "none" => false,
                            "on-failure" => {
                                !failed
                                    || matches!(t.state, TaskState::Failed | TaskState::Rejected)
                            }
                            _ => true,
                        };
                        t.desired = TaskState::Shutdown;
                        put(t, &mut tasks, &mut pos, &mut changed);
                        if restart && !(global_node.is_some() && drained) {
                            // Drain moves at once; failures wait for the restart delay.
                            let delay = if drained && !failed {
                                0
                            } else {
                                svc.restart_delay
                            };
                            duties
                                .restarts
                                .insert(rkey.clone(), now.saturating_add(delay));
                        }
                    }
                }
                None => {
                    // A restart waits for its delay, and for the old task to stop
                    // (swarmkit's waitStop). An update's replacement (stop-first) is
                    // made at once with desired state Ready, placed and prepared while
                    // the old task stops, then set to Running (as swarmkit's updater).
                    let due = duties.restarts.get(&rkey).copied();
                    if due.is_some_and(|d| d > now) {
                        continue;
                    }
                    let updating_slot = duties.stop_first.contains(&rkey);
                    let old_running = slot.iter().map(|&i| &tasks[i]).any(|t| {
                        !t.state.terminal()
                            && node_of(&t.node_id).is_some_and(|n| n.status == NodeStatus::Ready)
                    });
                    if due.is_some() && updating_slot && old_running {
                        continue;
                    }
                    let wait = updating_slot && old_running;
                    if !wait {
                        duties.stop_first.remove(&rkey);
                    }
                    duties.restarts.remove(&rkey);
                    let restarting = due.is_some() || updating_slot;
                    // A replicated slot that has never run, or a restart, gets a new task.
                    let history = !slot.is_empty();
                    if history && !restarting && svc.restart_condition != "any" {
                        // `none`/`on-failure` leave a finished slot alone.
                        let last_ok = slot
                            .iter()
                            .map(|&i| &tasks[i])
                            .max_by_key(|t| t.created)
                            .is_some_and(|t| {
                                svc.restart_condition == "none" || t.state == TaskState::Complete
                            });
                        if last_ok {
                            continue;
                        }
                    }
                    if let Some(n) = global_node {
                        let node = nodes.iter().find(|x| &x.id == n);
                        // Global tasks start only on Ready, Active nodes.
                        if node.is_none_or(|x| {
                            x.status != NodeStatus::Ready || x.availability != Availability::Active
                        }) {
                            continue;
                        }
                    }
                    let desired = if wait {
                        TaskState::Ready
                    } else {
                        TaskState::Running
                    };
                    let t = new_task(NewTask {
                        store,
                        svc,
                        key,
                        node: global_node.clone(),
                        desired,
                        now,
                        id: new_id(),
                        tasks: &tasks,
                        nodes: &nodes,
                    });
                    by_slot.entry(key.clone()).or_default().push(tasks.len());
                    put(t, &mut tasks, &mut pos, &mut changed);
                }
            }
        }
        // Start-first slots: once the new task runs, the old one stops; if the new one
        // fails, the old one keeps running (and the failure pauses the update).
        let slots: Vec<(String, String)> = duties
            .start_first
            .iter()
            .filter(|(s, _)| *s == svc.id)
            .cloned()
            .collect();
        for rkey in slots {
            let in_slot = |t: &Task| t.service_id == svc.id && key_of(t) == rkey.1;
            let new = tasks
                .iter()
                .find(|t| in_slot(t) && t.version == svc.version && live(t))
                .map(|t| t.state);
            match new {
                Some(TaskState::Running) => {
                    let old: Vec<Task> = tasks
                        .iter()
                        .filter(|t| in_slot(t) && t.version != svc.version && live(t))
                        .cloned()
                        .collect();
                    for mut t in old {
                        t.desired = TaskState::Shutdown;
                        put(t, &mut tasks, &mut pos, &mut changed);
                    }
                    duties.start_first.remove(&rkey);
                }
                Some(_) => {}
                None => {
                    duties.start_first.remove(&rkey);
                }
            }
        }
        // Rolling update: tasks of an older version are replaced `update_parallelism` at
        // a time (stop-first, or start-first); as swarmkit's updater, the next batch
        // starts `update_delay` after the previous batch's replacements run.
        let outdated: Vec<Task> = tasks
            .iter()
            .filter(|t| t.service_id == svc.id && live(t) && t.version != svc.version)
            .cloned()
            .collect();
        let cfg = svc.config();
        let updating = tasks.iter().any(|t| {
            t.service_id == svc.id
                && live(t)
                && t.version == svc.version
                && t.state < TaskState::Running
        }) || duties.stop_first.iter().any(|(s, _)| *s == svc.id)
            || duties.start_first.iter().any(|(s, _)| *s == svc.id);
        if !updating && duties.batches.remove(&svc.id) {
            duties.updates.insert(svc.id.clone(), now + cfg.delay);
        }
        // The update's status, as swarmkit's updater keeps it in the service: in
        // progress while old tasks remain; paused (the default failure action) once a
        // replacement is rejected or fails, and then no further batch starts.
        // A rollback is also in flight while the slots it refills start.
        let in_flight = !outdated.is_empty()
            || duties.batches.contains(&svc.id)
            || (updating && svc.rolling_back());
        let mut status = svc.update_status.clone();
        let current = status.as_ref().filter(|u| u.version == svc.version);
        if in_flight && current.is_none() {
            status = Some(UpdateStatus {
                state: "updating".into(),
                started: now,
                completed: None,
                message: "update in progress".into(),
                version: svc.version,
            });
        }
        // swarmkit's updater counts the replacements that fail (rejected, or failed
        // within the monitoring period of their start); past the tolerated ratio it
        // pauses, or rolls back (a rollback that fails pauses).
        for t in tasks.iter().filter(|t| {
            t.service_id == svc.id && t.version == svc.version && t.state == TaskState::Running
        }) {
            duties.running_at.entry(t.id.clone()).or_insert(now);
        }
        let mut rolled_back = None;
        if let Some(u) = status.as_mut().filter(|u| u.version == svc.version) {
            let watching = u.state == "updating" || u.state == "rollback_started";
            if watching && cfg.failure_action != "continue" {
                let mut failed: Vec<&Task> = tasks
                    .iter()
                    .filter(|t| {
                        t.service_id == svc.id
                            && t.version == svc.version
                            && t.created >= u.started
                            && matches!(t.state, TaskState::Rejected | TaskState::Failed)
                            && duties
                                .running_at
                                .get(&t.id)
                                .is_none_or(|r| t.since.saturating_sub(*r) <= cfg.monitor)
                    })
                    .collect();
                failed.sort_by_key(|t| (t.since, t.created));
                let total = match svc.mode {
                    Mode::Replicated(n) => n,
                    Mode::Global => wanted.len() as u64,
                }
                .max(1);
                if let Some(first) = failed.first() {
                    if failed.len() as f64 / total as f64 > cfg.max_failure_ratio {
                        let rolling_back = u.state == "rollback_started";
                        let why =
                            format!("due to failure or early termination of task {}", first.id);
                        if cfg.failure_action == "rollback" && !rolling_back {
                            rolled_back = Some(format!("update rolled back {why}"));
                        } else if rolling_back {
                            u.state = "rollback_paused".into();
                            u.message = format!("rollback paused {why}");
                        } else {
                            u.state = "paused".into();
                            u.message = format!("update paused {why}");
                        }
                    }
                }
            }
            if u.state == "updating" && !in_flight {
                u.state = "completed".into();
                u.completed = Some(now);
                u.message = "update completed".into();
            }
            if u.state == "rollback_started" && !in_flight {
                u.state = "rollback_completed".into();
                u.completed = Some(now);
                u.message = "rollback completed".into();
            }
        }
        if let Some(message) = rolled_back {
            // swarmkit's rollbackUpdate: the previous spec comes back, and is no longer
            // kept as previous.
            if let Some(prev) = &svc.previous {
                let mut back = (**prev).clone();
                back.id = svc.id.clone();
                back.created = svc.created;
                back.updated = now;
                back.vips = svc.vips.clone();
                back.top_version = svc.top_version;
                back.previous = None;
                back.update_status = Some(UpdateStatus {
                    state: "rollback_started".into(),
                    started: now,
                    completed: None,
                    message,
                    version: back.version,
                });
                out.push(Action::PutService(back));
                // The failed update's pending batch is dropped: the rollback's
                // replacements start at once, beside old tasks still stopping (as the
                // real updater does).
                duties.stop_first.retain(|(s, _)| *s != svc.id);
                duties.start_first.retain(|(s, _)| *s != svc.id);
                duties.batches.remove(&svc.id);
                duties.updates.remove(&svc.id);
                duties.restarts.retain(|(s, _), _| *s != svc.id);
                continue;
            }
        }
        let paused = status.as_ref().is_some_and(|u| {
            u.version == svc.version && (u.state == "paused" || u.state == "rollback_paused")
        });
        if status != svc.update_status {
            out.push(Action::SetUpdateStatus(svc.id.clone(), status));
        }
        let gate = duties.updates.get(&svc.id).copied().unwrap_or(0);
        if !outdated.is_empty()
            && !updating
            && !paused
            && !duties.batches.contains(&svc.id)
            && gate <= now
        {
            // Parallelism 0 replaces every task at once.
            let batch = match cfg.parallelism {
                0 => usize::MAX,
                n => n as usize,
            };
            let mut sorted = outdated;
            sorted.sort_by_key(|t| (t.slot, t.node_id.clone()));
            for mut t in sorted.into_iter().take(batch) {
                if cfg.order == "start-first" {
                    // The replacement starts now, beside the old task.
                    let key = key_of(&t);
                    let new = new_task(NewTask {
                        store,
                        svc,
                        key: &key,
                        node: match svc.mode {
                            Mode::Global => t.node_id.clone(),
                            Mode::Replicated(_) => None,
                        },
                        desired: TaskState::Running,
                        now,
                        id: new_id(),
                        tasks: &tasks,
                        nodes: &nodes,
                    });
                    put(new, &mut tasks, &mut pos, &mut changed);
                    duties.start_first.insert((svc.id.clone(), key));
                    continue;
                }
                t.desired = TaskState::Shutdown;
                // The slot's replacement is created by the next pass, without delay.
                duties.stop_first.insert((svc.id.clone(), key_of(&t)));
                put(t, &mut tasks, &mut pos, &mut changed);
            }
            duties.batches.insert(svc.id.clone());
        }
        if outdated_done(&tasks, svc) {
            duties.updates.remove(&svc.id);
        }
        // Removed replicas disappear once stopped (or once their node is gone).
        let mut removed = std::collections::BTreeSet::new();
        for t in &tasks {
            if t.service_id == svc.id
                && t.desired == TaskState::Remove
                && (t.state.terminal()
                    || node_of(&t.node_id).is_none_or(|n| n.status != NodeStatus::Ready))
            {
                out.push(Action::DelTask(t.id.clone()));
                changed.remove(&t.id);
                removed.insert(t.id.clone());
            }
        }
        // History: keep the newest TASK_HISTORY tasks per slot (or node).
        let mut pruned = Vec::new();
        let mut by_key: BTreeMap<String, Vec<&Task>> = BTreeMap::new();
        for t in tasks
            .iter()
            .filter(|t| t.service_id == svc.id && !removed.contains(&t.id))
        {
            by_key.entry(key_of(t)).or_default().push(t);
        }
        for list in by_key.values_mut() {
            list.sort_by_key(|t| std::cmp::Reverse(t.created));
            for old in list.iter().skip(TASK_HISTORY) {
                if !live(old) && (old.state.terminal() || node_of(&old.node_id).is_none()) {
                    out.push(Action::DelTask(old.id.clone()));
                    pruned.push(old.id.clone());
                }
            }
        }
        for id in pruned {
            changed.remove(&id);
            removed.insert(id);
        }
        if !removed.is_empty() {
            tasks.retain(|t| !removed.contains(&t.id));
            pos = position_of(&tasks);
        }
    }
    // Timers whose slot, node or service went away (scaled down, removed, drained)
    // would otherwise stay due for ever.
    let stop_first = &duties.stop_first;
    duties
        .restarts
        .retain(|k, due| *due > now || stop_first.contains(k));
    duties
        .stop_first
        .retain(|(s, _)| store.services.contains_key(s));
    duties.updates.retain(|s, _| store.services.contains_key(s));
    duties.batches.retain(|s| store.services.contains_key(s));
    duties.running_at.retain(|t, _| store.tasks.contains_key(t));
    duties
        .start_first
        .retain(|(s, _)| store.services.contains_key(s));
    out.extend(changed.into_values().map(Action::PutTask));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Constraint, Role};
    use std::net::Ipv4Addr;

    fn node(name: &str, role: Role) -> Node {
        Node {
            id: format!("id-{name}"),
            hostname: name.into(),
            addr: Ipv4Addr::new(10, 0, 0, 1),
            role,
            availability: Availability::Active,
            status: NodeStatus::Ready,
            message: String::new(),
            labels: Default::default(),
            raft_id: None,
            ingress_ip: None,
            created: 0,
            updated: 0,
            version_index: 0,
        }
    }

    fn service(mode: Mode, constraints: &[&str]) -> Service {
        Service {
            id: "svc".into(),
            name: "web".into(),
            image: "busybox".into(),
            args: vec![],
            mode,
            constraints: constraints
                .iter()
                .map(|c| Constraint::parse(c).unwrap())
                .collect(),
            networks: vec![],
            ports: vec![],
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

    fn run(store: &mut Store, duties: &mut Duties, now: Nanos) -> Vec<Action> {
        let mut n = 0;
        let acts = reconcile(store, duties, now, &mut || {
            n += 1;
            format!("t{n}-{now}")
        });
        for a in &acts {
            store.apply(a);
        }
        acts
    }

    fn placement(store: &Store) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for t in store
            .tasks
            .values()
            .filter(|t| t.desired == TaskState::Running)
        {
            *m.entry(store.nodes[t.node_id.as_ref().unwrap()].hostname.clone())
                .or_insert(0) += 1;
        }
        m
    }

    #[test]
    fn spread_then_drain_then_down() {
        let mut store = Store::default();
        for n in ["m1", "w1", "w2"] {
            let role = if n == "m1" {
                Role::Manager
            } else {
                Role::Worker
            };
            let nd = node(n, role);
            store.nodes.insert(nd.id.clone(), nd);
        }
        store
            .services
            .insert("svc".into(), service(Mode::Replicated(6), &[]));
        let mut duties = Duties::default();
        run(&mut store, &mut duties, 0);
        assert_eq!(
            placement(&store).values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2]
        );
        // Drain w1: its two tasks move at once, to the others.
        store.nodes.get_mut("id-w1").unwrap().availability = Availability::Drain;
        run(&mut store, &mut duties, 1);
        run(&mut store, &mut duties, 1);
        let p = placement(&store);
        assert_eq!(p.get("w1"), None);
        assert_eq!(p["m1"] + p["w2"], 6);
        // w2's heartbeat expires: Down, and its tasks come back 5 s later.
        duties.deadlines.insert("id-w2".into(), 10);
        run(&mut store, &mut duties, 10);
        assert_eq!(store.nodes["id-w2"].status, NodeStatus::Down);
        assert!(!placement(&store).contains_key("w2"));
        run(&mut store, &mut duties, 5_000_000_009);
        assert_eq!(placement(&store).values().sum::<usize>(), 3, "not yet");
        run(&mut store, &mut duties, 5_000_000_010);
        assert_eq!(placement(&store), BTreeMap::from([("m1".to_string(), 6)]));
        // A day later, w2's old tasks are orphaned.
        run(&mut store, &mut duties, 10 + ORPHAN_AFTER);
        let on_w2: Vec<TaskState> = store
            .tasks
            .values()
            .filter(|t| t.node_id.as_deref() == Some("id-w2"))
            .map(|t| t.state)
            .collect();
        assert!(!on_w2.is_empty() && on_w2.iter().all(|s| *s == TaskState::Orphaned));
    }

    #[test]
    fn unplaceable_tasks_stay_pending_with_the_reason() {
        let mut store = Store::default();
        let m = node("m1", Role::Manager);
        store.nodes.insert(m.id.clone(), m);
        let mut w = node("w1", Role::Worker);
        w.availability = Availability::Pause;
        store.nodes.insert(w.id.clone(), w);
        store.services.insert(
            "svc".into(),
            service(Mode::Replicated(1), &["node.role==worker"]),
        );
        run(&mut store, &mut Duties::default(), 0);
        let t = store.tasks.values().next().unwrap();
        assert_eq!(t.state, TaskState::Pending);
        assert_eq!(
            t.err,
            "no suitable node (1 node not available for new tasks; scheduling constraints not satisfied on 1 node)"
        );
    }

    #[test]
    fn an_update_replaces_tasks_batch_by_batch() {
        let mut store = Store::default();
        for n in ["a", "b"] {
            let nd = node(n, Role::Worker);
            store.nodes.insert(nd.id.clone(), nd);
        }
        let mut svc = service(Mode::Replicated(4), &[]);
        svc.update_parallelism = 2;
        svc.update_delay = 10;
        store.services.insert("svc".into(), svc.clone());
        let mut d = Duties::default();
        run(&mut store, &mut d, 0);
        // The agents: tasks to run run, tasks to stop stop.
        let running = |store: &mut Store| {
            for t in store.tasks.values_mut() {
                t.state = if t.desired == TaskState::Running {
                    TaskState::Running
                } else {
                    TaskState::Shutdown
                };
            }
        };
        running(&mut store);
        svc.version = 1;
        store.services.insert("svc".into(), svc);
        let new = |store: &Store| {
            store
                .tasks
                .values()
                .filter(|t| t.desired == TaskState::Running && t.version == 1)
                .count()
        };
        run(&mut store, &mut d, 1);
        assert_eq!(new(&store), 0, "stop-first: the old tasks stop first");
        running(&mut store);
        run(&mut store, &mut d, 2);
        assert_eq!(new(&store), 2, "first batch of 2");
        running(&mut store);
        // The batch runs at 5: the delay counts from there, as swarmkit's updater waits
        // `Delay` after a slot's new task runs.
        run(&mut store, &mut d, 5);
        assert_eq!(new(&store), 2, "waits for the update delay");
        run(&mut store, &mut d, 14);
        running(&mut store);
        run(&mut store, &mut d, 14);
        assert_eq!(new(&store), 2, "still within the delay after the batch ran");
        run(&mut store, &mut d, 15);
        running(&mut store);
        run(&mut store, &mut d, 16);
        assert_eq!(new(&store), 4);
    }

    #[test]
    fn global_runs_one_per_active_node() {
        let mut store = Store::default();
        for n in ["a", "b", "c"] {
            let nd = node(n, Role::Worker);
            store.nodes.insert(nd.id.clone(), nd);
        }
        store.nodes.get_mut("id-c").unwrap().availability = Availability::Pause;
        store
            .services
            .insert("svc".into(), service(Mode::Global, &[]));
        let mut d = Duties::default();
        run(&mut store, &mut d, 0);
        assert_eq!(
            placement(&store).keys().cloned().collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        let late = node("d", Role::Worker);
        store.nodes.insert(late.id.clone(), late);
        run(&mut store, &mut d, 1);
        assert_eq!(placement(&store).len(), 3);
        assert!(natural_cmp("w2", "w10").is_lt());
    }
}
