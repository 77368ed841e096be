//! The messages between agents and managers on tcp/2377, and their bytes.
//!
//! `Msg` is what the dispatcher and the agents exchange (swarmkit's `api` package: the
//! only thing both sides share). On the wire every message is protobuf, framed as gRPC
//! frames it (a flag byte, then the big-endian length). Raft messages are raft-rs's
//! protobuf `Message` as they are. The dispatcher's messages follow a schema of
//! swarmlab's own, in swarmkit's shapes: a heartbeat, task status updates, assignments.
//! The receiver decodes the bytes; malformed bytes are refused with a typed error.

use crate::store::{Network, Task, TaskState};
use prost::Message as _;
use std::net::Ipv4Addr;

/// A task as the dispatcher hands it to an agent.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    /// The task.
    pub task: Task,
    /// Its service's name.
    pub service: String,
    /// The image.
    pub image: String,
    /// The command.
    pub args: Vec<String>,
    /// The networks of its addresses, in the same order.
    pub networks: Vec<Network>,
    /// Its service's endpoint: VIPs by network id, ingress ports, scheduler.
    pub endpoint: Endpoint,
    /// How long a stop waits for the task to exit before SIGKILL (`--stop-grace-period`;
    /// None for Docker's 10 s).
    pub stop_grace: Option<u64>,
}

/// What a task's container publishes about its service in NetworkDB's `endpoint_table`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Endpoint {
    /// The service's VIPs: (network id, address).
    pub vips: Vec<(String, Ipv4Addr)>,
    /// Ports published in ingress mode: (published, target).
    pub ingress_ports: Vec<(u16, u16)>,
    /// Ports published in host mode: (published, target).
    pub host_ports: Vec<(u16, u16)>,
    /// The ingress scheduler: the `swarmlab.lb` label, `rr` by default.
    pub scheduler: String,
}

impl Endpoint {
    /// A service's endpoint as its tasks publish it.
    pub fn of(s: &crate::store::Service) -> Endpoint {
        let ports = |mode: &str| {
            s.ports
                .iter()
                .filter(|p| p.mode == mode && p.protocol == "tcp")
                .map(|p| (p.published, p.target))
                .collect()
        };
        Endpoint {
            vips: s.vips.clone(),
            ingress_ports: ports("ingress"),
            host_ports: ports("host"),
            scheduler: s
                .labels
                .get("swarmlab.lb")
                .cloned()
                .unwrap_or_else(|| "rr".into()),
        }
    }
}

/// A task status an agent reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// The task.
    pub task: String,
    /// Its new state.
    pub state: TaskState,
    /// Error text, if it failed.
    pub err: String,
}

/// Messages on 2377.
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    /// Raft, between managers (raft-rs's protobuf bytes).
    Raft(Vec<u8>),
    /// Agent to manager: alive, with task statuses.
    Heartbeat {
        /// The node.
        node: String,
        /// Statuses not yet acknowledged.
        statuses: Vec<Status>,
        /// Set when a follower passes the heartbeat on to the leader: the agent's
        /// address.
        relay: Option<Ipv4Addr>,
    },
    /// Agent to manager: task statuses, sent as they change (swarmkit's
    /// `UpdateTaskStatus`); not a heartbeat, and answered by nothing but TCP.
    Status {
        /// The statuses.
        statuses: Vec<Status>,
    },
    /// Leader to agent: the next period, the managers, and the node's tasks.
    Ack {
        /// Next heartbeat period, in nanoseconds.
        period_ns: u64,
        /// The leader's address.
        leader: Ipv4Addr,
        /// Every manager's address.
        managers: Vec<Ipv4Addr>,
        /// The node's tasks.
        tasks: Vec<Assignment>,
        /// The node's attachment to the ingress network (its ingress sandbox), once
        /// allocated.
        ingress: Option<(Network, Ipv4Addr)>,
        /// Set when the answer goes back through a follower: the agent's address.
        relay: Option<Ipv4Addr>,
    },
    /// A follower tells an agent where the leader is.
    NotLeader {
        /// The leader, if known.
        leader: Option<Ipv4Addr>,
    },
}

/// Why bytes on 2377 are not a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than its gRPC frame says.
    #[error("truncated message")]
    Truncated,
    /// Not a protobuf message of ours.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A compressed frame, or a kind this version does not know.
    #[error("unsupported message: {0}")]
    Unsupported(String),
}

// The protobuf schema. Field numbers are swarmlab's own.
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Envelope {
        #[prost(oneof = "Body", tags = "1, 2, 3, 4, 5")]
        pub body: Option<Body>,
    }
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Body {
        #[prost(bytes, tag = "1")]
        Raft(Vec<u8>),
        #[prost(message, tag = "2")]
        Heartbeat(Heartbeat),
        #[prost(message, tag = "3")]
        Status(StatusUpdate),
        #[prost(message, tag = "4")]
        Ack(Ack),
        #[prost(message, tag = "5")]
        NotLeader(NotLeader),
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Heartbeat {
        #[prost(string, tag = "1")]
        pub node: String,
        #[prost(message, repeated, tag = "2")]
        pub statuses: Vec<Status>,
        #[prost(fixed32, optional, tag = "3")]
        pub relay: Option<u32>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusUpdate {
        #[prost(message, repeated, tag = "1")]
        pub statuses: Vec<Status>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(string, tag = "1")]
        pub task: String,
        #[prost(uint32, tag = "2")]
        pub state: u32,
        #[prost(string, tag = "3")]
        pub err: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Ack {
        #[prost(uint64, tag = "1")]
        pub period_ns: u64,
        #[prost(fixed32, tag = "2")]
        pub leader: u32,
        #[prost(fixed32, repeated, tag = "3")]
        pub managers: Vec<u32>,
        #[prost(message, repeated, tag = "4")]
        pub tasks: Vec<Assignment>,
        #[prost(message, optional, tag = "5")]
        pub ingress: Option<Network>,
        #[prost(fixed32, optional, tag = "6")]
        pub ingress_ip: Option<u32>,
        #[prost(fixed32, optional, tag = "7")]
        pub relay: Option<u32>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NotLeader {
        #[prost(fixed32, optional, tag = "1")]
        pub leader: Option<u32>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Assignment {
        #[prost(message, optional, tag = "1")]
        pub task: Option<Task>,
        #[prost(string, tag = "2")]
        pub service: String,
        #[prost(string, tag = "3")]
        pub image: String,
        #[prost(string, repeated, tag = "4")]
        pub args: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        pub networks: Vec<Network>,
        #[prost(message, optional, tag = "6")]
        pub endpoint: Option<Endpoint>,
        #[prost(uint64, optional, tag = "7")]
        pub stop_grace_ns: Option<u64>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Task {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, tag = "2")]
        pub service_id: String,
        #[prost(uint64, tag = "3")]
        pub slot: u64,
        #[prost(string, optional, tag = "4")]
        pub node_id: Option<String>,
        #[prost(uint32, tag = "5")]
        pub desired: u32,
        #[prost(uint32, tag = "6")]
        pub state: u32,
        #[prost(string, tag = "7")]
        pub message: String,
        #[prost(string, tag = "8")]
        pub err: String,
        #[prost(uint64, tag = "9")]
        pub since: u64,
        #[prost(uint64, tag = "10")]
        pub created: u64,
        #[prost(uint64, tag = "11")]
        pub version: u64,
        #[prost(string, tag = "12")]
        pub image: String,
        #[prost(message, repeated, tag = "13")]
        pub addresses: Vec<Address>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Address {
        #[prost(string, tag = "1")]
        pub network: String,
        #[prost(fixed32, tag = "2")]
        pub ip: u32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Network {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(uint32, tag = "3")]
        pub vni: u32,
        #[prost(string, tag = "4")]
        pub subnet: String,
        #[prost(fixed32, tag = "5")]
        pub gateway: u32,
        #[prost(bool, tag = "6")]
        pub attachable: bool,
        #[prost(bool, tag = "7")]
        pub encrypted: bool,
        #[prost(bool, tag = "8")]
        pub ingress: bool,
        #[prost(uint64, tag = "9")]
        pub created: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Endpoint {
        #[prost(message, repeated, tag = "1")]
        pub vips: Vec<Address>,
        #[prost(uint32, repeated, tag = "2")]
        pub ingress_ports: Vec<u32>,
        #[prost(uint32, repeated, tag = "3")]
        pub host_ports: Vec<u32>,
        #[prost(string, tag = "4")]
        pub scheduler: String,
    }
}

/// Task states as swarmkit's protobuf numbers them (`api.TaskState`).
const STATES: [(TaskState, u32); 14] = [
    (TaskState::New, 0),
    (TaskState::Pending, 64),
    (TaskState::Assigned, 192),
    (TaskState::Accepted, 256),
    (TaskState::Preparing, 320),
    (TaskState::Ready, 384),
    (TaskState::Starting, 448),
    (TaskState::Running, 512),
    (TaskState::Complete, 576),
    (TaskState::Shutdown, 640),
    (TaskState::Failed, 704),
    (TaskState::Rejected, 768),
    (TaskState::Remove, 800),
    (TaskState::Orphaned, 832),
];

fn state_code(s: TaskState) -> u32 {
    STATES.iter().find(|(x, _)| *x == s).map_or(0, |(_, c)| *c)
}

fn state_of(code: u32) -> Result<TaskState, WireError> {
    STATES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(s, _)| *s)
        .ok_or_else(|| WireError::Malformed(format!("task state {code}")))
}

fn ip(v: u32) -> Ipv4Addr {
    Ipv4Addr::from(v)
}

/// Ports travel as one number: published << 16 | target.
fn ports_to(v: &[(u16, u16)]) -> Vec<u32> {
    v.iter()
        .map(|(p, t)| (u32::from(*p) << 16) | u32::from(*t))
        .collect()
}

fn ports_from(v: &[u32]) -> Vec<(u16, u16)> {
    v.iter().map(|x| ((x >> 16) as u16, *x as u16)).collect()
}

fn status_to(s: &Status) -> pb::Status {
    pb::Status {
        task: s.task.clone(),
        state: state_code(s.state),
        err: s.err.clone(),
    }
}

fn status_from(s: pb::Status) -> Result<Status, WireError> {
    Ok(Status {
        task: s.task,
        state: state_of(s.state)?,
        err: s.err,
    })
}

fn network_to(n: &Network) -> pb::Network {
    pb::Network {
        id: n.id.clone(),
        name: n.name.clone(),
        vni: n.vni,
        subnet: n.subnet.clone(),
        gateway: u32::from(n.gateway),
        attachable: n.attachable,
        encrypted: n.encrypted,
        ingress: n.ingress,
        created: n.created,
    }
}

fn network_from(n: pb::Network) -> Network {
    Network {
        id: n.id,
        name: n.name,
        vni: n.vni,
        subnet: n.subnet,
        gateway: ip(n.gateway),
        attachable: n.attachable,
        encrypted: n.encrypted,
        ingress: n.ingress,
        created: n.created,
        version_index: 0,
    }
}

fn task_to(t: &Task) -> pb::Task {
    pb::Task {
        id: t.id.clone(),
        service_id: t.service_id.clone(),
        slot: t.slot,
        node_id: t.node_id.clone(),
        desired: state_code(t.desired),
        state: state_code(t.state),
        message: t.message.clone(),
        err: t.err.clone(),
        since: t.since,
        created: t.created,
        version: t.version,
        image: t.image.clone(),
        addresses: t
            .addresses
            .iter()
            .map(|(n, a)| pb::Address {
                network: n.clone(),
                ip: u32::from(*a),
            })
            .collect(),
    }
}

fn task_from(t: pb::Task) -> Result<Task, WireError> {
    Ok(Task {
        id: t.id,
        service_id: t.service_id,
        slot: t.slot,
        node_id: t.node_id,
        desired: state_of(t.desired)?,
        state: state_of(t.state)?,
        message: t.message,
        err: t.err,
        since: t.since,
        created: t.created,
        version: t.version,
        image: t.image,
        addresses: t
            .addresses
            .into_iter()
            .map(|a| (a.network, ip(a.ip)))
            .collect(),
    })
}

fn assignment_to(a: &Assignment) -> pb::Assignment {
    pb::Assignment {
        task: Some(task_to(&a.task)),
        service: a.service.clone(),
        image: a.image.clone(),
        args: a.args.clone(),
        networks: a.networks.iter().map(network_to).collect(),
        endpoint: Some(pb::Endpoint {
            vips: a
                .endpoint
                .vips
                .iter()
                .map(|(n, v)| pb::Address {
                    network: n.clone(),
                    ip: u32::from(*v),
                })
                .collect(),
            ingress_ports: ports_to(&a.endpoint.ingress_ports),
            host_ports: ports_to(&a.endpoint.host_ports),
            scheduler: a.endpoint.scheduler.clone(),
        }),
        stop_grace_ns: a.stop_grace,
    }
}

fn assignment_from(a: pb::Assignment) -> Result<Assignment, WireError> {
    let task = a
        .task
        .ok_or_else(|| WireError::Malformed("an assignment without its task".into()))?;
    let e = a.endpoint.unwrap_or_default();
    Ok(Assignment {
        task: task_from(task)?,
        service: a.service,
        image: a.image,
        args: a.args,
        networks: a.networks.into_iter().map(network_from).collect(),
        endpoint: Endpoint {
            vips: e.vips.into_iter().map(|v| (v.network, ip(v.ip))).collect(),
            ingress_ports: ports_from(&e.ingress_ports),
            host_ports: ports_from(&e.host_ports),
            scheduler: e.scheduler,
        },
        stop_grace: a.stop_grace_ns,
    })
}

/// The message's bytes on the stream: a gRPC frame holding the protobuf.
pub fn encode(msg: &Msg) -> Vec<u8> {
    use pb::Body;
    let body = match msg {
        Msg::Raft(b) => Body::Raft(b.clone()),
        Msg::Heartbeat {
            node,
            statuses,
            relay,
        } => Body::Heartbeat(pb::Heartbeat {
            node: node.clone(),
            statuses: statuses.iter().map(status_to).collect(),
            relay: relay.map(u32::from),
        }),
        Msg::Status { statuses } => Body::Status(pb::StatusUpdate {
            statuses: statuses.iter().map(status_to).collect(),
        }),
        Msg::Ack {
            period_ns,
            leader,
            managers,
            tasks,
            ingress,
            relay,
        } => Body::Ack(pb::Ack {
            period_ns: *period_ns,
            leader: u32::from(*leader),
            managers: managers.iter().map(|m| u32::from(*m)).collect(),
            tasks: tasks.iter().map(assignment_to).collect(),
            ingress: ingress.as_ref().map(|(n, _)| network_to(n)),
            ingress_ip: ingress.as_ref().map(|(_, a)| u32::from(*a)),
            relay: relay.map(u32::from),
        }),
        Msg::NotLeader { leader } => Body::NotLeader(pb::NotLeader {
            leader: leader.map(u32::from),
        }),
    };
    let body = pb::Envelope { body: Some(body) }.encode_to_vec();
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0); // not compressed
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Read one message from its bytes (a whole gRPC frame).
pub fn decode(bytes: &[u8]) -> Result<Msg, WireError> {
    use pb::Body;
    let (head, rest) = bytes.split_at_checked(5).ok_or(WireError::Truncated)?;
    if head[0] != 0 {
        return Err(WireError::Unsupported("compressed frame".into()));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let body = rest.get(..len).ok_or(WireError::Truncated)?;
    if rest.len() != len {
        return Err(WireError::Malformed(format!(
            "{} bytes after the message",
            rest.len() - len
        )));
    }
    let env = pb::Envelope::decode(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    let statuses = |v: Vec<pb::Status>| -> Result<Vec<Status>, WireError> {
        v.into_iter().map(status_from).collect()
    };
    Ok(match env.body {
        None => return Err(WireError::Unsupported("an empty envelope".into())),
        Some(Body::Raft(b)) => Msg::Raft(b),
        Some(Body::Heartbeat(h)) => Msg::Heartbeat {
            node: h.node,
            statuses: statuses(h.statuses)?,
            relay: h.relay.map(ip),
        },
        Some(Body::Status(s)) => Msg::Status {
            statuses: statuses(s.statuses)?,
        },
        Some(Body::Ack(a)) => Msg::Ack {
            period_ns: a.period_ns,
            leader: ip(a.leader),
            managers: a.managers.into_iter().map(ip).collect(),
            tasks: a
                .tasks
                .into_iter()
                .map(assignment_from)
                .collect::<Result<_, _>>()?,
            ingress: match (a.ingress, a.ingress_ip) {
                (Some(n), Some(i)) => Some((network_from(n), ip(i))),
                (None, None) => None,
                _ => return Err(WireError::Malformed("half an ingress attachment".into())),
            },
            relay: a.relay.map(ip),
        },
        Some(Body::NotLeader(n)) => Msg::NotLeader {
            leader: n.leader.map(ip),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task {
            id: "t1".into(),
            service_id: "s1".into(),
            slot: 3,
            node_id: Some("n1".into()),
            desired: TaskState::Running,
            state: TaskState::Starting,
            message: "starting".into(),
            err: String::new(),
            since: 7,
            created: 5,
            version: 2,
            image: "busybox".into(),
            addresses: vec![("net1".into(), Ipv4Addr::new(10, 0, 1, 5))],
        }
    }

    fn network() -> Network {
        Network {
            id: "net1".into(),
            name: "appnet".into(),
            vni: 4097,
            subnet: "10.0.1.0/24".into(),
            gateway: Ipv4Addr::new(10, 0, 1, 1),
            attachable: true,
            encrypted: false,
            ingress: false,
            created: 1,
            version_index: 0,
        }
    }

    fn every_kind() -> Vec<Msg> {
        let status = Status {
            task: "t1".into(),
            state: TaskState::Failed,
            err: "task: non-zero exit (255)".into(),
        };
        vec![
            Msg::Raft(vec![8, 1, 16, 2]),
            Msg::Heartbeat {
                node: "n1".into(),
                statuses: vec![status.clone()],
                relay: Some(Ipv4Addr::new(10, 0, 0, 9)),
            },
            Msg::Status {
                statuses: vec![status],
            },
            Msg::Ack {
                period_ns: 5_123_000_000,
                leader: Ipv4Addr::new(10, 0, 0, 1),
                managers: vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)],
                tasks: vec![Assignment {
                    task: task(),
                    service: "web".into(),
                    image: "busybox".into(),
                    args: vec!["sleep".into(), "1d".into()],
                    networks: vec![network()],
                    endpoint: Endpoint {
                        vips: vec![("net1".into(), Ipv4Addr::new(10, 0, 1, 2))],
                        ingress_ports: vec![(8080, 80)],
                        host_ports: vec![(9000, 90)],
                        scheduler: "rr".into(),
                    },
                    stop_grace: Some(2_000_000_000),
                }],
                ingress: Some((network(), Ipv4Addr::new(10, 0, 0, 3))),
                relay: None,
            },
            Msg::NotLeader { leader: None },
        ]
    }

    #[test]
    fn every_message_kind_survives_its_bytes() {
        for m in every_kind() {
            let b = encode(&m);
            assert_eq!(b[0], 0);
            assert_eq!(
                u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize,
                b.len() - 5
            );
            assert_eq!(decode(&b), Ok(m));
        }
    }

    #[test]
    fn truncated_compressed_or_garbled_bytes_are_refused_not_panicked_on() {
        let good = encode(&every_kind()[3]);
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut compressed = good.clone();
        compressed[0] = 1;
        assert!(matches!(
            decode(&compressed),
            Err(WireError::Unsupported(_))
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        assert!(matches!(
            decode(&[0, 0, 0, 0, 2, 0xff, 0xff]),
            Err(WireError::Malformed(_))
        ));
    }
}
