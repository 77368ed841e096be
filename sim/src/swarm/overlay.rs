//! Swarm overlays in the data plane: a network appears on a node when a task there needs
//! it; the task's container gets the address the leader allocated; and its peer entry
//! (network, IP, MAC, VTEP) is written into NetworkDB's `overlay_peer_table` on 7946, from
//! which every other node of the network programs its VTEP's FDB and ARP proxy, as
//! libnetwork's overlay driver does. Nothing is programmed directly across hosts.

use super::store::Network;
use crate::lab::{ContainerId, Lab, NetId, Subnet};
use crate::traffic::{EndpointRecord, ENDPOINT_TABLE};
use crate::underlay::HostId;
use gossip::tables::{Change, TableEvent};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use vxlan::{MacAddr, Vni};

/// libnetwork's table of overlay peers.
pub const PEER_TABLE: &str = "overlay_peer_table";

fn since_start(lab: &Lab) -> std::time::Duration {
    std::time::Duration::from_nanos(lab.now().0)
}

impl Lab {
    /// The lab overlay of a swarm network on `host`, created or extended on demand.
    pub(crate) fn swarm_overlay(&mut self, host: HostId, net: &Network) -> Option<NetId> {
        let (base, prefix) = crate::scenario::parse_cidr(&net.subnet)?;
        let vni = Vni::new(net.vni)?;
        let Some(id) = self.net_by_name(&net.name) else {
            return Some(self.add_overlay(
                &net.name,
                vni,
                Subnet { base, prefix },
                BTreeSet::from([host]),
            ));
        };
        if !self.nets[id.0].hosts.contains(&host) {
            self.hosts[host.0].vtep.add_network(vni);
            self.nets[id.0].hosts.insert(host);
        }
        Some(id)
    }

    /// Start a task's container with an interface on each of its networks (eth0 first),
    /// and publish, on each, its peer entry (`overlay_peer_table`) and its service record
    /// (`endpoint_table`) in NetworkDB.
    pub(crate) fn task_attach(
        &mut self,
        host: HostId,
        t: &super::AgentTask,
    ) -> Option<ContainerId> {
        let mut cid: Option<ContainerId> = None;
        let command = t.args.join(" ");
        if t.networks.is_empty() {
            // No overlay: the task sits on the node's docker_gwbridge only.
            let (nid, ip) = self.gwbridge(host)?;
            return Some(self.run_task_container(host, &t.name, nid, ip, &t.image, &command));
        }
        for (net, ip) in &t.networks {
            let nid = self.swarm_overlay(host, net)?;
            let c = match cid {
                None => {
                    let c = self.run_task_container(host, &t.name, nid, *ip, &t.image, &command);
                    cid = Some(c);
                    c
                }
                Some(c) => {
                    self.add_interface(c, nid, *ip);
                    c
                }
            };
            let mac = self
                .ifaces(c)
                .into_iter()
                .find(|i| i.ip == *ip)
                .map(|i| i.mac)?;
            let vtep = self.underlay.nic(host).ip;
            let record = EndpointRecord {
                service: t.service.clone(),
                vip: t
                    .endpoint
                    .vips
                    .iter()
                    .find(|(n, _)| *n == net.id)
                    .map(|(_, v)| *v),
                ip: *ip,
                task: t.name.clone(),
                ports: if net.ingress {
                    t.endpoint.ingress_ports.clone()
                } else {
                    Vec::new()
                },
                scheduler: t.endpoint.scheduler.clone(),
            };
            let now = since_start(self);
            let db = &mut self.hosts[host.0].gossip.db;
            if !db.my_networks().any(|n| *n == net.name) {
                db.join_network(&net.name);
            }
            let value = format!("{mac} {vtep}");
            db.put(
                now,
                &net.name,
                PEER_TABLE,
                &ip.to_string(),
                value.as_bytes(),
            );
            db.put(
                now,
                &net.name,
                ENDPOINT_TABLE,
                &ip.to_string(),
                record.encode().as_bytes(),
            );
        }
        self.gossip_flush(host);
        cid
    }

    /// `docker run --network NET` on an attachable swarm network: a container at the
    /// address the leader gave, published in NetworkDB like a task (its name resolves).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attach_container(
        &mut self,
        host: HostId,
        name: &str,
        net: &Network,
        ip: Ipv4Addr,
        image: &str,
        command: &str,
        restart: crate::lab::RestartPolicy,
    ) -> Option<ContainerId> {
        let nid = self.swarm_overlay(host, net)?;
        let cid = self.create_container(host, name, nid, ip, image, command, restart, true);
        self.publish_endpoint(host, cid);
        // The engine creates and starts the container while NetworkDB syncs the network.
        let until = self.now() + crate::time::Duration::from_millis(200);
        self.run_until(until);
        Some(cid)
    }

    /// Write a standalone attached container's entries (peer, name) into NetworkDB.
    pub(crate) fn publish_endpoint(&mut self, host: HostId, cid: ContainerId) {
        let now = since_start(self);
        let vtep = self.underlay.nic(host).ip;
        let name = self.containers[cid.0].name.clone();
        for i in self.ifaces(cid) {
            let net = self.nets[i.net.0].name.clone();
            let record = EndpointRecord {
                service: String::new(),
                vip: None,
                ip: i.ip,
                task: name.clone(),
                ports: Vec::new(),
                scheduler: "rr".into(),
            };
            let db = &mut self.hosts[host.0].gossip.db;
            if !db.my_networks().any(|n| *n == net) {
                db.join_network(&net);
            }
            let value = format!("{} {vtep}", i.mac);
            db.put(now, &net, PEER_TABLE, &i.ip.to_string(), value.as_bytes());
            db.put(
                now,
                &net,
                ENDPOINT_TABLE,
                &i.ip.to_string(),
                record.encode().as_bytes(),
            );
        }
        self.gossip_flush(host);
    }

    /// Withdraw a swarm container's entries from NetworkDB (it stopped).
    pub(crate) fn withdraw_endpoint(&mut self, cid: ContainerId) {
        let host = self.containers[cid.0].host;
        let now = since_start(self);
        for i in self.ifaces(cid) {
            let network = self.nets[i.net.0].name.clone();
            let db = &mut self.hosts[host.0].gossip.db;
            db.delete(now, &network, PEER_TABLE, &i.ip.to_string());
            db.delete(now, &network, ENDPOINT_TABLE, &i.ip.to_string());
        }
        self.gossip_flush(host);
    }

    /// A task's container stopped: withdraw its entries on every network.
    pub(crate) fn task_detach(&mut self, _host: HostId, cid: ContainerId, exit_code: i32) {
        // Stopping withdraws its NetworkDB entries (see `Lab::kill`).
        self.stop_container(cid, exit_code, "task stopped");
    }

    /// A NetworkDB change seen by `host`: program or withdraw a remote peer.
    pub(crate) fn overlay_table_event(&mut self, host: HostId, ev: TableEvent) {
        if ev.table != PEER_TABLE || ev.owner == self.host_name(host) {
            return;
        }
        let Some(nid) = self.net_by_name(&ev.network) else {
            return;
        };
        if !self.nets[nid.0].hosts.contains(&host) {
            return;
        }
        let vni = self.nets[nid.0].vni;
        let Ok(ip) = ev.key.parse::<Ipv4Addr>() else {
            return;
        };
        let text = String::from_utf8_lossy(&ev.value).to_string();
        let mut parts = text.split(' ');
        let (mac, vtep) = match (parts.next(), parts.next()) {
            (Some(m), Some(v)) => (parse_mac(m), v.parse::<Ipv4Addr>().ok()),
            _ => (None, None),
        };
        let v = &mut self.hosts[host.0].vtep;
        match ev.change {
            Change::Create | Change::Update => {
                let (Some(mac), Some(vtep)) = (mac, vtep) else {
                    return;
                };
                if let Some(peer) = self.underlay.by_ip(vtep) {
                    let nic = self.underlay.nic(peer);
                    let (pip, pmac) = (nic.ip, nic.mac);
                    self.hosts[host.0].vtep.set_neighbor(pip, pmac);
                }
                let v = &mut self.hosts[host.0].vtep;
                let _ = v.add_fdb(vni, mac, vtep);
                let _ = v.add_arp(vni, ip, mac);
            }
            Change::Delete => {
                if let Some(mac) = v.remove_arp(vni, ip) {
                    v.remove_fdb(vni, mac);
                }
            }
        }
    }
}

fn parse_mac(s: &str) -> Option<MacAddr> {
    let mut b = [0u8; 6];
    let mut parts = s.split(':');
    for x in b.iter_mut() {
        *x = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(MacAddr(b))
}
