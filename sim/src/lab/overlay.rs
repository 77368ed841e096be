//! Swarm overlays in the lab (the router's part): tasks' containers on swarm networks
//! and attachable containers, their peers and service records published in NetworkDB's
//! `overlay_peer_table` and `endpoint_table`, and the VTEPs programmed from what
//! NetworkDB spreads, never directly across hosts.

use super::*;
use crate::swarm::overlay::{parse_mac, PEER_TABLE};
use crate::swarm::store::Network;
use crate::traffic::{EndpointRecord, ENDPOINT_TABLE};
use gossip::tables::{Change, TableEvent};

/// How long the engine takes to create and start a container attached to a swarm
/// network, while NetworkDB syncs the network.
pub(crate) const ATTACH_TIME: crate::time::Duration = crate::time::Duration::from_millis(200);

fn since_start(lab: &Lab) -> std::time::Duration {
    std::time::Duration::from_nanos(lab.now().0)
}

impl Lab {
    /// The lab overlay of a swarm network on `host`, created or extended on demand.
    pub(crate) fn swarm_overlay(&mut self, host: HostId, net: &Network) -> Option<NetId> {
        let (base, prefix) = crate::underlay::parse_cidr(&net.subnet)?;
        let vni = Vni::new(net.vni)?;
        let Some(id) = self.net_by_name(&net.name) else {
            let id = self.add_overlay(
                &net.name,
                vni,
                Subnet { base, prefix },
                BTreeSet::from([host]),
            );
            self.nets[id.0].swarm = true;
            return Some(id);
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
        t: &crate::swarm::AgentTask,
    ) -> Option<ContainerId> {
        let mut cid: Option<ContainerId> = None;
        let command = t.args.join(" ");
        if t.networks.is_empty() {
            // No overlay: the task sits on the node's docker_gwbridge only.
            let (nid, ip) = self.gwbridge(host)?;
            return Some(self.run_task_container(host, &t.name, nid, ip, &t.image, &command));
        }
        for (net, ip) in &t.networks {
            let Some(nid) = self.swarm_overlay(host, net) else {
                // The leader sent a network this engine cannot build: the task fails.
                if let Some(c) = cid {
                    self.stop_container(c, 128, &format!("network {} unusable", net.name));
                }
                return None;
            };
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
            self.publish_iface(host, c, &net.name, &record);
        }
        // Like Docker, a task also gets an interface on the node's docker_gwbridge (last).
        if let (Some(c), Some((nid, ip))) = (cid, self.gwbridge(host)) {
            self.add_interface(c, nid, ip);
        }
        self.gossip_flush(host);
        cid
    }

    /// NetworkDB's key for a container's interface on `ip`: an endpoint id (the
    /// container's id and the interface), as libnetwork keys its tables, so that an
    /// address reused by another endpoint is a different entry.
    pub(crate) fn endpoint_key(&self, cid: ContainerId, ip: Ipv4Addr) -> String {
        let c = &self.containers[cid.0];
        let k = self
            .ifaces(cid)
            .iter()
            .position(|i| i.ip == ip)
            .unwrap_or(0);
        format!("{}.eth{k}", c.id.get(..24).unwrap_or(&c.id))
    }

    /// Write one interface's peer entry (IP, MAC, VTEP) and service record into
    /// `network`'s tables.
    fn publish_iface(&mut self, host: HostId, cid: ContainerId, network: &str, r: &EndpointRecord) {
        let Some(mac) = self
            .ifaces(cid)
            .iter()
            .find(|i| i.ip == r.ip)
            .map(|i| i.mac)
        else {
            return;
        };
        let key = self.endpoint_key(cid, r.ip);
        let vtep = self.underlay.nic(host).ip;
        let now = since_start(self);
        let db = &mut self.hosts[host.0].gossip.db;
        if !db.my_networks().any(|n| n == network) {
            db.join_network(network);
        }
        let peer = format!("{} {mac} {vtep}", r.ip);
        db.put(now, network, PEER_TABLE, &key, peer.as_bytes());
        db.put(now, network, ENDPOINT_TABLE, &key, r.encode().as_bytes());
    }

    /// `docker run --network NET` on an attachable swarm network: a container at the
    /// address the leader gave, published in NetworkDB like a task (its name resolves).
    /// The engine then takes `ATTACH_TIME` to start it while NetworkDB syncs the network:
    /// `docker run` waits that long.
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
        Some(cid)
    }

    /// Write a standalone attached container's entries (peer, name) into NetworkDB.
    pub(crate) fn publish_endpoint(&mut self, host: HostId, cid: ContainerId) {
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
            self.publish_iface(host, cid, &net, &record);
        }
        self.gossip_flush(host);
    }

    /// Withdraw a swarm container's entries from NetworkDB (it stopped).
    pub(crate) fn withdraw_endpoint(&mut self, cid: ContainerId) {
        let host = self.containers[cid.0].host;
        let now = since_start(self);
        for i in self.ifaces(cid) {
            let network = self.nets[i.net.0].name.clone();
            let key = self.endpoint_key(cid, i.ip);
            let db = &mut self.hosts[host.0].gossip.db;
            db.delete(now, &network, PEER_TABLE, &key);
            db.delete(now, &network, ENDPOINT_TABLE, &key);
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
        let slot = (ev.network.clone(), ev.key.clone());
        match ev.change {
            Change::Create | Change::Update => {
                let text = String::from_utf8_lossy(&ev.value).to_string();
                let mut parts = text.split(' ');
                let (Some(ip), Some(mac), Some(vtep)) = (
                    parts.next().and_then(|p| p.parse::<Ipv4Addr>().ok()),
                    parts.next().and_then(parse_mac),
                    parts.next().and_then(|p| p.parse::<Ipv4Addr>().ok()),
                ) else {
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
                self.hosts[host.0].peers.insert(slot, (ip, mac, vtep));
            }
            Change::Delete => {
                // Withdraw what this entry programmed, unless another endpoint has
                // taken the address since (then the FDB points elsewhere).
                let Some((ip, mac, vtep)) = self.hosts[host.0].peers.remove(&slot) else {
                    return;
                };
                // Another endpoint of this network may hold the address now (the entries
                // of a bulk sync arrive in key order, so its create can come first).
                let taken = self.hosts[host.0]
                    .peers
                    .iter()
                    .any(|((n, _), (i, m, _))| *n == ev.network && (*i == ip || *m == mac));
                let v = &mut self.hosts[host.0].vtep;
                if !taken && v.fdb_lookup(vni, mac) == Some(vtep) {
                    v.remove_fdb(vni, mac);
                    v.remove_arp(vni, ip);
                }
            }
        }
    }
}
