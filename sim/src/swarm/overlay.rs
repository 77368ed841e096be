//! Swarm overlays' records: the name of NetworkDB's peer table and the MAC text its
//! entries carry. The router (`lab::overlay`) does the rest: a network appears on a node
//! when a task there needs it; the task's container gets the address the leader
//! allocated; and its peer entry (network, IP, MAC, VTEP) is written into NetworkDB's
//! `overlay_peer_table` on 7946, from which every other node of the network programs its
//! VTEP's FDB and ARP proxy, as libnetwork's overlay driver does. Nothing is programmed
//! directly across hosts.

use vxlan::MacAddr;

/// libnetwork's table of overlay peers.
pub const PEER_TABLE: &str = "overlay_peer_table";

/// A MAC as NetworkDB entries write it (`02:42:0a:00:01:05`).
pub(crate) fn parse_mac(s: &str) -> Option<MacAddr> {
    let mut b = [0u8; 6];
    let mut parts = s.split(':');
    for x in b.iter_mut() {
        *x = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(MacAddr(b))
}
