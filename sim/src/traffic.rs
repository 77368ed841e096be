//! What traffic in the lab is addressed by: whose stack (`Owner`), the overlay MTU, and
//! NetworkDB's `endpoint_table` records, encoded and decoded in one place. The router
//! (`lab::stacks`) polls the stacks, answers DNS and balances VIPs.
//!
//! Service discovery reads what libnetwork reads: the `endpoint_table` of NetworkDB on the
//! container's node, one record per task and network (service, VIP, task address, published
//! ports), gossiped on 7946. A node that has not heard of a task cannot resolve or balance
//! to it.

use crate::ids::ContainerId;
use crate::underlay::HostId;
use std::net::Ipv4Addr;

/// NetworkDB's table of service endpoints (libnetwork's name).
pub const ENDPOINT_TABLE: &str = "endpoint_table";

/// The IP MTU of a container on an overlay: 1450, as Docker sets it for a 1500 underlay.
pub const OVERLAY_MTU: usize = 1450;

/// Whose stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A container's.
    Container(ContainerId),
    /// A host's own (host-side clients such as `curl`).
    Host(HostId),
}

/// A task's record in `endpoint_table`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointRecord {
    /// Service name.
    pub service: String,
    /// The service's virtual IP on this network (none under dnsrr).
    pub vip: Option<Ipv4Addr>,
    /// The task's address on this network.
    pub ip: Ipv4Addr,
    /// The task's container name.
    pub task: String,
    /// Published ports: (published, target).
    pub ports: Vec<(u16, u16)>,
    /// The ingress scheduler (`rr` unless the service's `swarmlab.lb` label says).
    pub scheduler: String,
}

impl EndpointRecord {
    /// The value stored in NetworkDB.
    pub fn encode(&self) -> String {
        let ports: Vec<String> = self.ports.iter().map(|(p, t)| format!("{p}:{t}")).collect();
        format!(
            "svc={} vip={} ip={} task={} ports={} lb={}",
            self.service,
            self.vip.map_or("-".to_string(), |v| v.to_string()),
            self.ip,
            self.task,
            if ports.is_empty() {
                "-".to_string()
            } else {
                ports.join(",")
            },
            self.scheduler
        )
    }

    /// Read a stored value back.
    pub fn decode(bytes: &[u8]) -> Option<EndpointRecord> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut rec = EndpointRecord {
            service: String::new(),
            vip: None,
            ip: Ipv4Addr::UNSPECIFIED,
            task: String::new(),
            ports: Vec::new(),
            scheduler: "rr".into(),
        };
        for field in text.split(' ') {
            let (k, v) = field.split_once('=')?;
            match k {
                "svc" => rec.service = v.to_string(),
                "vip" => rec.vip = v.parse().ok(),
                "ip" => rec.ip = v.parse().ok()?,
                "task" => rec.task = v.to_string(),
                "ports" if v != "-" => {
                    for p in v.split(',') {
                        let (a, b) = p.split_once(':')?;
                        rec.ports.push((a.parse().ok()?, b.parse().ok()?));
                    }
                }
                "lb" => rec.scheduler = v.to_string(),
                _ => {}
            }
        }
        Some(rec)
    }
}

/// A DNS answer as the timeline shows it: the addresses, or NXDOMAIN.
pub fn shown_answer(answer: &Option<Vec<Ipv4Addr>>) -> String {
    match answer {
        Some(v) => v
            .iter()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        None => "NXDOMAIN".to_string(),
    }
}
