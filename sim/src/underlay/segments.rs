//! The TCP segments of the control streams, as the pcap taps show them: tcp/2377
//! (managers and agents) and tcp/7946 (memberlist's push/pull and fallback pings).
//!
//! The streams' timing (round trips, retransmissions, a broken path) is modelled by the
//! senders; this room only writes the frames a NIC would have seen for them: the
//! three-way handshake when a connection opens, each message as data segments of at most
//! one MSS with PSH on the last, the peer's ACK, and FIN when a connection closes. It
//! owns sequence numbers and ephemeral ports and never advances time.

use etherparse::PacketBuilder;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use vxlan::MacAddr;

/// Linux's default MSS on a 1500-byte Ethernet link with timestamps off.
const MSS: usize = 1460;
/// The receive window every side advertises.
const WINDOW: u16 = 64240;
/// Linux's default ephemeral port range (`ip_local_port_range`).
const EPHEMERAL: (u16, u16) = (32768, 60999);

/// One end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct End {
    /// Address.
    pub ip: Ipv4Addr,
    /// MAC on the LAN.
    pub mac: MacAddr,
}

#[derive(Clone, Copy, Debug)]
struct Conn {
    client_port: u16,
    /// Next sequence number of the client and of the server.
    seq: [u32; 2],
    /// When its last frame reached the far end, in nanoseconds: the next message's
    /// frames come after it, as a byte stream's do.
    free_at: u64,
}

/// A frame and which end puts it on the wire (`true`: the client).
pub type Frame = (bool, Vec<u8>);

/// The open connections of the whole LAN, by (client, server, server port).
#[derive(Debug, Default)]
pub struct Streams {
    conns: BTreeMap<(Ipv4Addr, Ipv4Addr, u16), Conn>,
    next_port: u16,
}

impl Streams {
    /// The frames of `payload` sent on the connection from `client` to `server`'s
    /// `port` (by the client when `from_client`, else by the server): the handshake
    /// first if the connection is new, then the data and the peer's ACK.
    pub fn message(
        &mut self,
        client: End,
        server: End,
        port: u16,
        from_client: bool,
        payload: &[u8],
    ) -> Vec<Frame> {
        let mut out = Vec::new();
        let key = (client.ip, server.ip, port);
        let conn = match self.conns.get(&key) {
            Some(c) => *c,
            None => {
                let c = self.open(client, server, port, &mut out);
                self.conns.insert(key, c);
                c
            }
        };
        let mut c = conn;
        let (s, r) = if from_client { (0, 1) } else { (1, 0) };
        let chunks: Vec<&[u8]> = if payload.is_empty() {
            Vec::new()
        } else {
            payload.chunks(MSS).collect()
        };
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.iter().enumerate() {
            let b =
                builder(client, server, c.client_port, port, from_client, c.seq[s]).ack(c.seq[r]);
            let b = if i == last { b.psh() } else { b };
            out.push((from_client, write(b, chunk)));
            c.seq[s] = c.seq[s].wrapping_add(chunk.len() as u32);
        }
        if !chunks.is_empty() {
            // The receiver's (delayed) ACK of everything.
            let b =
                builder(client, server, c.client_port, port, !from_client, c.seq[r]).ack(c.seq[s]);
            out.push((!from_client, write(b, &[])));
        }
        self.conns.insert(key, c);
        out
    }

    /// Close the connection (FIN from the client, FIN from the server, last ACK), as
    /// memberlist does after each stream. Nothing when it is not open.
    pub fn close(&mut self, client: End, server: End, port: u16) -> Vec<Frame> {
        let Some(mut c) = self.conns.remove(&(client.ip, server.ip, port)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let fin = builder(client, server, c.client_port, port, true, c.seq[0])
            .fin()
            .ack(c.seq[1]);
        out.push((true, write(fin, &[])));
        c.seq[0] = c.seq[0].wrapping_add(1);
        let fin = builder(client, server, c.client_port, port, false, c.seq[1])
            .fin()
            .ack(c.seq[0]);
        out.push((false, write(fin, &[])));
        c.seq[1] = c.seq[1].wrapping_add(1);
        let ack = builder(client, server, c.client_port, port, true, c.seq[0]).ack(c.seq[1]);
        out.push((true, write(ack, &[])));
        out
    }

    /// When the connection's last frame arrived (nanoseconds; 0 when it is not open).
    pub fn free_at(&self, client: Ipv4Addr, server: Ipv4Addr, port: u16) -> u64 {
        self.conns
            .get(&(client, server, port))
            .map_or(0, |c| c.free_at)
    }

    /// Record when the connection's last frame arrived.
    pub fn set_free_at(&mut self, client: Ipv4Addr, server: Ipv4Addr, port: u16, at: u64) {
        if let Some(c) = self.conns.get_mut(&(client, server, port)) {
            c.free_at = c.free_at.max(at);
        }
    }

    /// Whether the connection from `client` to `server`'s `port` is open.
    pub fn is_open(&self, client: Ipv4Addr, server: Ipv4Addr, port: u16) -> bool {
        self.conns.contains_key(&(client, server, port))
    }

    /// Open the connection if it is not, without writing its frames (when no tap
    /// records them, the connections' state is still kept: a new one costs a handshake).
    pub fn ensure_open(&mut self, client: End, server: End, port: u16) {
        let key = (client.ip, server.ip, port);
        if !self.conns.contains_key(&key) {
            let c = self.open(client, server, port, &mut Vec::new());
            self.conns.insert(key, c);
        }
    }

    /// A host went down: its connections are gone without a FIN (the peers find out by
    /// their timeouts), and new ones start with a handshake.
    pub fn forget(&mut self, ip: Ipv4Addr) {
        self.conns.retain(|(c, s, _), _| *c != ip && *s != ip);
    }

    fn open(&mut self, client: End, server: End, port: u16, out: &mut Vec<Frame>) -> Conn {
        let span = EPHEMERAL.1 - EPHEMERAL.0 + 1;
        let client_port = EPHEMERAL.0 + self.next_port % span;
        self.next_port = (self.next_port + 1) % span;
        // Initial sequence numbers: a fixed function of the connection, so that runs
        // are reproducible (Linux hashes the 4-tuple with a secret and a clock).
        let isn = |a: Ipv4Addr, b: Ipv4Addr, p: u16| {
            u32::from(a).rotate_left(13) ^ u32::from(b).rotate_right(7) ^ (u32::from(p) << 16)
        };
        let mut c = Conn {
            client_port,
            seq: [
                isn(client.ip, server.ip, client_port),
                isn(server.ip, client.ip, port),
            ],
            free_at: 0,
        };
        let syn = builder(client, server, client_port, port, true, c.seq[0]).syn();
        out.push((true, write(syn, &[])));
        c.seq[0] = c.seq[0].wrapping_add(1);
        let syn_ack = builder(client, server, client_port, port, false, c.seq[1])
            .syn()
            .ack(c.seq[0]);
        out.push((false, write(syn_ack, &[])));
        c.seq[1] = c.seq[1].wrapping_add(1);
        let ack = builder(client, server, client_port, port, true, c.seq[0]).ack(c.seq[1]);
        out.push((true, write(ack, &[])));
        c
    }
}

fn builder(
    client: End,
    server: End,
    client_port: u16,
    port: u16,
    from_client: bool,
    seq: u32,
) -> etherparse::PacketBuilderStep<etherparse::TcpHeader> {
    let (src, dst, sp, dp) = if from_client {
        (client, server, client_port, port)
    } else {
        (server, client, port, client_port)
    };
    PacketBuilder::ethernet2(src.mac.0, dst.mac.0)
        .ipv4(src.ip.octets(), dst.ip.octets(), 64)
        .tcp(sp, dp, seq, WINDOW)
}

fn write(b: etherparse::PacketBuilderStep<etherparse::TcpHeader>, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.size(payload.len()));
    // Writing into a Vec cannot fail, and the sizes are far below IPv4's limit (one MSS).
    b.write(&mut v, payload)
        .expect("a segment of at most one MSS fits");
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::SlicedPacket;

    fn end(last: u8) -> End {
        End {
            ip: Ipv4Addr::new(10, 0, 0, last),
            mac: MacAddr([2, 0, 10, 0, 0, last]),
        }
    }

    fn tcp(frame: &[u8]) -> etherparse::TcpHeader {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        match p.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => t.to_header(),
            other => panic!("not TCP: {other:?}"),
        }
    }

    #[test]
    fn a_new_connection_shakes_hands_then_carries_data_in_order() {
        let mut s = Streams::default();
        let (a, m) = (end(1), end(2));
        let f = s.message(a, m, 2377, true, &[7u8; 3000]);
        let h: Vec<_> = f.iter().map(|(_, b)| tcp(b)).collect();
        assert!(h[0].syn && !h[0].ack && h[0].destination_port == 2377);
        assert!(h[1].syn && h[1].ack && h[1].acknowledgment_number == h[0].sequence_number + 1);
        assert!(!h[2].syn && h[2].ack);
        // 3000 bytes: 1460 + 1460 + 80, PSH on the last, then the server's ACK.
        assert_eq!(h.len(), 7);
        assert_eq!(h[4].sequence_number, h[3].sequence_number + 1460);
        assert!(h[5].psh && !h[4].psh);
        assert_eq!(h[6].acknowledgment_number, h[5].sequence_number + 80);
        // The same connection again: no handshake, the server answers on it.
        let g = s.message(a, m, 2377, false, b"ok");
        let h2: Vec<_> = g.iter().map(|(_, b)| tcp(b)).collect();
        assert_eq!(h2.len(), 2);
        assert_eq!(h2[0].source_port, 2377);
        assert_eq!(h2[0].destination_port, h[0].source_port);
        // Closing: FIN each way; a crash forgets, and the next message shakes hands.
        assert_eq!(s.close(a, m, 2377).len(), 3);
        assert!(s.close(a, m, 2377).is_empty());
        s.message(a, m, 2377, true, b"x");
        s.forget(m.ip);
        assert!(tcp(&s.message(a, m, 2377, true, b"x")[0].1).syn);
    }
}
