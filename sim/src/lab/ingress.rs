//! The ingress routing mesh's router: where the mesh core's packets come from and go.

// ---- the ingress routing mesh's router --------------------------------------------
//
// The mesh's core (`mesh`) decides; this is where its packets come from and go: the
// host's address, the ingress sandbox's frames, host-mode containers, and the backends
// NetworkDB's `endpoint_table` and the agent's tasks list.

use super::*;
use crate::mesh::{Backends, Sandbox, Verdict};
use crate::traffic::{EndpointRecord, Owner, ENDPOINT_TABLE};

impl Lab {
    /// Set up (or keep) a node's ingress sandbox at `ip` on the ingress network, and publish
    /// it in NetworkDB's peer table so that every node's VTEP can reach it.
    pub(crate) fn ingress_sandbox(
        &mut self,
        host: HostId,
        net: &crate::swarm::store::Network,
        ip: Ipv4Addr,
    ) {
        if self.hosts[host.0].mesh.sandbox.is_some_and(|s| s.ip == ip) {
            return;
        }
        let Some(nid) = self.swarm_overlay(host, net) else {
            return;
        };
        let o = ip.octets();
        let mac = MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]]);
        self.nets[nid.0].used_insert(ip);
        let vni = self.nets[nid.0].vni;
        self.hosts[host.0].mesh.sandbox = Some(Sandbox {
            net: nid,
            vni,
            ip,
            mac,
        });
        let vtep = self.underlay.nic(host).ip;
        let now = std::time::Duration::from_nanos(self.now().0);
        let db = &mut self.hosts[host.0].gossip.db;
        if !db.my_networks().any(|n| *n == net.name) {
            db.join_network(&net.name);
        }
        let value = format!("{ip} {mac} {vtep}");
        let key = format!("ingress-sbox.{}", self.host_name(host));
        let db = &mut self.hosts[host.0].gossip.db;
        db.put(
            now,
            &net.name,
            crate::swarm::overlay::PEER_TABLE,
            &key,
            value.as_bytes(),
        );
        self.gossip_flush(host);
        self.swarm_note(host, format!("ingress sandbox up at {ip} (ingress-sbox)"));
    }

    /// A TCP packet arrives at a host's own address.
    pub(crate) fn host_tcp(&mut self, host: HostId, packet: Vec<u8>) {
        let now = self.now();
        if let Some(v) = self.hosts[host.0].mesh.from_client(now, &packet) {
            return self.mesh_act(host, v);
        }
        // A host client's own connection (its replies come back here).
        if let Some((src, dst)) = crate::mesh::tcp_ends(&packet) {
            let own = self.hosts[host.0]
                .stack
                .as_ref()
                .is_some_and(|s| s.owns(dst.port(), src));
            if own {
                return self.stack_input(Owner::Host(host), packet);
            }
        }
        if let Some(port) = crate::mesh::opening_port(&packet) {
            let backends = self.mesh_backends(host, port);
            let node_ip = self.underlay.nic(host).ip;
            let opened = self.hosts[host.0]
                .mesh
                .open(now, node_ip, &packet, &backends);
            if let Some((v, what)) = opened {
                let at = self.host_name(host).to_string();
                let backend = crate::mesh::tcp_ends(&packet)
                    .and_then(|(src, _)| self.hosts[host.0].mesh.backend_for(src, port))
                    .map(|b| b.to_string());
                self.trace
                    .push(now, TraceEvent::Balance { at, what, backend });
                return self.mesh_act(host, v);
            }
        }
        if let Some(rst) = crate::mesh::reset_for(&packet) {
            self.host_send_or_loop(host, rst);
        }
    }

    /// The ingress records this node knows changed: connections to a task that is no
    /// longer listed are expired at once, as Docker's ingress sandbox sets IPVS's
    /// `expire_nodest_conn=1`, so a client's retransmitted SYN goes to a live task.
    pub(crate) fn mesh_backends_changed(&mut self, host: HostId) {
        if self.hosts[host.0].mesh.open_flows() == 0 {
            return;
        }
        let live: std::collections::BTreeSet<Ipv4Addr> = self.hosts[host.0]
            .gossip
            .db
            .entries("ingress", ENDPOINT_TABLE)
            .into_iter()
            .filter_map(|(_, _, v)| EndpointRecord::decode(&v))
            .map(|r| r.ip)
            .collect();
        self.hosts[host.0].mesh.keep_backends(&live);
    }

    /// Put a mesh verdict on its way.
    fn mesh_act(&mut self, host: HostId, v: Verdict) {
        match v {
            Verdict::ToTask { vni, frame } => self.bridge_or_tunnel(host, vni, frame, None),
            Verdict::ToContainer { to, packet } => {
                if self.containers[to.0].running {
                    self.stack_input(Owner::Container(to), packet);
                }
            }
            Verdict::ToClient(packet) => self.host_send_or_loop(host, packet),
        }
    }

    /// Where a new connection to `port` on this node may go: a local host-mode task
    /// first, else the ingress records this node knows (task address and target port,
    /// in address order) with their scheduler.
    fn mesh_backends(&self, host: HostId, port: u16) -> Backends {
        let mut b = Backends {
            scheduler: "rr".to_string(),
            ..Default::default()
        };
        // `docker run -p`: a running container of this host that published the port.
        b.host_mode = self.by_host[host.0].iter().find_map(|&cid| {
            let c = &self.containers[cid.0];
            let (_, target, _) = c.published.iter().find(|(p, _, _)| *p == port)?;
            c.running.then(|| (cid, c.ip, *target, c.name.clone()))
        });
        if b.host_mode.is_some() {
            return b;
        }
        if let Some(agent) = self.hosts[host.0].swarm.agent.as_ref() {
            b.host_mode = agent.tasks.values().find_map(|t| {
                let cid = ContainerId(t.container? as usize);
                let c = &self.containers[cid.0];
                if !c.running {
                    return None;
                }
                t.endpoint
                    .host_ports
                    .iter()
                    .find(|(p, _)| *p == port)
                    .map(|(_, target)| (cid, c.ip, *target, c.name.clone()))
            });
        }
        if b.host_mode.is_some() {
            return b;
        }
        let db = &self.hosts[host.0].gossip.db;
        for (_, _, v) in db.entries("ingress", ENDPOINT_TABLE) {
            let Some(r) = EndpointRecord::decode(&v) else {
                continue;
            };
            if let Some((_, target)) = r.ports.iter().find(|(p, _)| *p == port) {
                b.ingress.push(std::net::SocketAddrV4::new(r.ip, *target));
                b.scheduler = r.scheduler.clone();
            }
        }
        b.ingress.sort();
        b.ingress.dedup();
        b
    }

    /// A frame on the ingress overlay for this node's sandbox: answer ARP, or send a
    /// backend's reply back to its client.
    pub(crate) fn sandbox_input(&mut self, host: HostId, frame: &[u8]) {
        let Some(sb) = self.hosts[host.0].mesh.sandbox else {
            return;
        };
        if let Some(reply) = crate::stack::reply_to(sb.ip, sb.mac, frame) {
            self.bridge_or_tunnel(host, sb.vni, reply, None);
            return;
        }
        let Some(payload) = frame.get(14..) else {
            return;
        };
        let (now, node_ip) = (self.now(), self.underlay.nic(host).ip);
        if let Some(p) = self.hosts[host.0].mesh.from_task(now, node_ip, payload) {
            self.host_send_or_loop(host, p);
        }
    }

    /// A reply from a host-mode container (sent through the host): un-NAT it.
    pub(crate) fn host_mode_reply(&mut self, from: ContainerId, packet: &[u8]) -> bool {
        let host = self.containers[from.0].host;
        let (now, node_ip) = (self.now(), self.underlay.nic(host).ip);
        match self.hosts[host.0]
            .mesh
            .from_local(now, node_ip, from, packet)
        {
            Some(p) => {
                self.host_send_or_loop(host, p);
                true
            }
            None => false,
        }
    }

    /// Send from a host's own address: to its own stack if the client is itself.
    fn host_send_or_loop(&mut self, host: HostId, packet: Vec<u8>) {
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        if dst == self.underlay.nic(host).ip {
            self.stack_input(Owner::Host(host), packet);
        } else {
            self.host_send_ip(host, packet);
        }
    }
}
