//! The event trace: everything observable that happened, with its virtual time, written
//! as JSON lines by `--out`. Later reports (HTML timeline, membership views) draw on it,
//! so each event carries the names a reader needs, not internal ids.

use crate::time::Instant;
use serde::Serialize;
use std::io::{self, Write};

/// A change in one member's view of another: memberlist's event kinds, recorded by
/// name (`"Joined"`, `"Suspect"`, ...).
pub use gossip::EventKind as MemberChange;

/// As the timeline says a membership change.
pub fn change_text(k: MemberChange) -> &'static str {
    match k {
        MemberChange::Joined => "joined",
        MemberChange::Suspect => "suspect",
        MemberChange::Alive => "alive again",
        MemberChange::Dead => "dead",
        MemberChange::Left => "left",
        MemberChange::Updated => "updated",
        MemberChange::ReachableOnlyOverTcp => "reachable over TCP but not UDP",
    }
}

/// One observable event.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent {
    /// A host joined the LAN.
    HostAdded {
        /// Name.
        host: String,
        /// Underlay IPv4.
        ip: String,
        /// MTU.
        mtu: u16,
    },
    /// An overlay was declared.
    OverlayCreated {
        /// Name.
        network: String,
        /// VNI.
        vni: u32,
        /// Subnet.
        subnet: String,
        /// Hosts that have it.
        hosts: Vec<String>,
    },
    /// A container started (its peers are now programmed).
    ContainerStarted {
        /// Name.
        container: String,
        /// Host.
        host: String,
        /// Network.
        network: String,
        /// Address.
        ip: String,
        /// MAC.
        mac: String,
    },
    /// A container stopped.
    ContainerStopped {
        /// Name.
        container: String,
        /// Exit code.
        exit_code: i32,
        /// Why.
        reason: String,
    },
    /// A host crashed.
    HostCrashed {
        /// Name.
        host: String,
    },
    /// A host came back.
    HostRestarted {
        /// Name.
        host: String,
    },
    /// The underlay did not deliver a frame.
    UnderlayDrop {
        /// Where it was dropped.
        host: String,
        /// Why.
        reason: String,
        /// Frame size.
        bytes: usize,
    },
    /// A VTEP refused a frame.
    VtepDrop {
        /// Which host's VTEP.
        host: String,
        /// The counted reason.
        reason: String,
    },
    /// ARP resolution failed in a container.
    ArpFailed {
        /// The container.
        container: String,
        /// The address it asked for.
        ip: String,
    },
    /// A container's or host's TCP/IP stack dropped a packet.
    StackDrop {
        /// The container or host.
        at: String,
        /// Why.
        reason: String,
    },
    /// A load-balancing decision: the ingress mesh or a VIP chose a backend.
    Balance {
        /// Where it was taken (host, or container).
        at: String,
        /// What was chosen, for which flow.
        what: String,
        /// The backend chosen (task address and port), when one was.
        #[serde(skip_serializing_if = "Option::is_none")]
        backend: Option<String>,
    },
    /// A task reached a state on its node (as `docker service ps` shows it).
    Task {
        /// The node.
        host: String,
        /// The task's container name (`SERVICE.SLOT.ID`).
        task: String,
        /// The state, in lower case.
        state: &'static str,
    },
    /// A manager became the Raft leader.
    Leader {
        /// The host.
        host: String,
        /// Its term.
        term: u64,
    },
    /// A host's gossip member saw a membership change.
    Gossip {
        /// Whose view.
        host: String,
        /// What changed.
        kind: MemberChange,
        /// About whom.
        member: String,
        /// At which incarnation.
        incarnation: u32,
        /// Why (which probes failed, through whom; who accused).
        reason: String,
    },
    /// Members started as one formed cluster: each lists every other alive.
    GossipFormed {
        /// The members.
        members: Vec<String>,
    },
    /// Something the swarm control plane did (elections, node status, tasks).
    Swarm {
        /// The host where it happened.
        host: String,
        /// What happened.
        what: String,
    },
    /// A scenario step ran.
    Step {
        /// Scenario line number.
        line: usize,
        /// The line as written.
        text: String,
    },
    /// A command printed this.
    Output {
        /// Host the command ran on.
        host: String,
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The text.
        text: String,
        /// Exit code.
        exit_code: i32,
    },
    /// An expectation was checked.
    Expectation {
        /// Scenario line number.
        line: usize,
        /// The expectation as written.
        text: String,
        /// Whether it held.
        held: bool,
        /// What was observed.
        detail: String,
    },
}

/// Something that reads events as they are recorded (a streaming report).
pub type Watcher = Box<dyn FnMut(Instant, &TraceEvent)>;

/// The traffic classes the report shows: VXLAN, gossip, the swarm's control plane, and
/// the rest (published ports, clients).
pub const TRAFFIC_PORTS: [(u16, &str); 3] = [
    (4789, "4789 vxlan"),
    (7946, "7946 gossip"),
    (2377, "2377 swarm"),
];

/// Bytes sent on the underlay, by host and by second, per traffic class (the three of
/// `TRAFFIC_PORTS`, then the rest). Counted only when asked for (a report).
#[derive(Debug, Default, Clone)]
pub struct Traffic {
    /// Per host (in the order hosts were added), bytes per class.
    pub per_host: Vec<[u64; 4]>,
    /// Per second of virtual time, bytes per class, all hosts together.
    pub per_second: Vec<[u64; 4]>,
}

impl Traffic {
    /// The class of a port pair: a known port on either side, else the rest.
    pub fn class(src: u16, dst: u16) -> usize {
        TRAFFIC_PORTS
            .iter()
            .position(|(p, _)| *p == dst || *p == src)
            .unwrap_or(3)
    }
}

/// The recorded events, in order.
#[derive(Default)]
pub struct Trace {
    events: Vec<(Instant, TraceEvent)>,
    watcher: Option<Watcher>,
    traffic: Option<Traffic>,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("events", &self.events.len())
            .field("watched", &self.watcher.is_some())
            .finish()
    }
}

#[derive(Serialize)]
struct Line<'a> {
    t_ns: u64,
    #[serde(flatten)]
    event: &'a TraceEvent,
}

impl Trace {
    /// Record an event.
    pub fn push(&mut self, at: Instant, event: TraceEvent) {
        if let Some(w) = self.watcher.as_mut() {
            w(at, &event);
        }
        self.events.push((at, event));
    }

    /// Have `w` read every event from now on, when it is recorded: this is how the
    /// timeline streams while a step's events happen.
    pub fn watch(&mut self, w: Watcher) {
        self.watcher = Some(w);
    }

    /// Every event so far.
    pub fn events(&self) -> &[(Instant, TraceEvent)] {
        &self.events
    }

    /// Count the underlay's bytes from now on (for a report).
    pub fn count_traffic(&mut self) {
        self.traffic.get_or_insert_with(Traffic::default);
    }

    /// The underlay's bytes counted so far, when counting.
    pub fn traffic(&self) -> Option<&Traffic> {
        self.traffic.as_ref()
    }

    /// `bytes` sent by host number `host` in traffic class `class`, at `at`.
    pub fn count(&mut self, at: Instant, host: usize, class: usize, bytes: usize) {
        let Some(t) = self.traffic.as_mut() else {
            return;
        };
        let class = class.min(3);
        if t.per_host.len() <= host {
            t.per_host.resize(host + 1, [0; 4]);
        }
        t.per_host[host][class] += bytes as u64;
        let sec = (at.0 / 1_000_000_000) as usize;
        if t.per_second.len() <= sec {
            t.per_second.resize(sec + 1, [0; 4]);
        }
        t.per_second[sec][class] += bytes as u64;
    }

    /// One event as a line of the JSON-lines trace (without its newline).
    pub fn json_line(at: Instant, event: &TraceEvent) -> String {
        serde_json::to_string(&Line { t_ns: at.0, event }).unwrap_or_default()
    }

    /// Write the trace as JSON lines.
    pub fn write_jsonl(&self, mut w: impl Write) -> io::Result<()> {
        for (at, event) in &self.events {
            serde_json::to_writer(&mut w, &Line { t_ns: at.0, event })?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}
