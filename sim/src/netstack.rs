//! A container's (or a host's) TCP: smoltcp's IPv4/TCP over a queue of IP packets, driven
//! in virtual time, with the programs of the built-in images on top: the servers
//! (`whoami` on 80, `nginx` on 80, `redis` on 6379) and the clients of `wget`, `curl` and
//! `redis-cli`.
//!
//! The lab does Ethernet and ARP (see `lab`), so smoltcp runs with `Medium::Ip`: packets
//! in are IP packets addressed to one of the stack's addresses, packets out are IP packets
//! the lab routes to an interface. Nothing here knows the clock: every call takes `now`.

use crate::time::Instant;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Per-socket buffers (each direction): ample for the lab's requests and replies, small
/// enough for thousands of connections in TIME-WAIT.
const BUF: usize = 16 * 1024;

fn at(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros((now.0 / 1_000) as i64)
}

/// The packet queues between smoltcp and the lab.
#[derive(Default)]
struct Queues {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
    mtu: usize,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Device for Queues {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(Rx, Tx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((Rx(p), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

/// A server program listening in the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum App {
    /// traefik/whoami: replies with the hostname, the IPs and the request.
    Whoami,
    /// nginx: a static page on `/`, 404 elsewhere.
    Nginx,
    /// redis: RESP commands over TCP.
    Redis,
    /// swarmlab/counter, for the sessions lesson: counts visits in its own memory, or in
    /// redis with `--redis HOST[:PORT]` (`INCR visits`).
    Counter {
        /// Where the count is kept, if not in memory.
        redis: Option<(String, u16)>,
    },
}

impl App {
    /// The program an image runs, and its port.
    pub fn of_image(image: &str) -> Option<(App, u16)> {
        use crate::images::Server;
        let (server, port) = crate::images::lookup(image)?.server?;
        let app = match server {
            Server::Whoami => App::Whoami,
            Server::Nginx => App::Nginx,
            Server::Redis => App::Redis,
            Server::Counter => App::Counter { redis: None },
        };
        Some((app, port))
    }

    /// The program with its command-line options (`swarmlab/counter --redis HOST[:PORT]`).
    pub fn with_args(self, args: &str) -> App {
        match self {
            App::Counter { .. } => {
                let mut it = args.split_whitespace();
                let mut redis = None;
                while let Some(a) = it.next() {
                    let v = match a.strip_prefix("--redis=") {
                        Some(v) => Some(v.to_string()),
                        None if a == "--redis" => it.next().map(String::from),
                        None => None,
                    };
                    if let Some(v) = v {
                        redis = Some(match v.rsplit_once(':') {
                            Some((h, p)) => (h.to_string(), p.parse().unwrap_or(6379)),
                            None => (v, 6379),
                        });
                    }
                }
                App::Counter { redis }
            }
            other => other,
        }
    }
}

/// How a client knows its reply is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// An HTTP/1.1 response: headers, then Content-Length bytes (or until the close).
    Http,
    /// One RESP reply.
    Resp,
    /// Nothing to wait for: done once the handshake completes.
    Connect,
}

/// How a client connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEnd {
    /// The whole reply arrived.
    Done,
    /// The peer answered the SYN with a reset.
    Refused,
    /// The connection was reset after it was established.
    Reset,
    /// The caller's deadline passed.
    TimedOut,
    /// ARP for the next hop failed.
    Unreachable,
    /// Every ephemeral port is taken (most in TIME-WAIT): EADDRNOTAVAIL.
    NoPort,
}

/// A client connection and what it has received.
#[derive(Debug)]
pub struct Client {
    /// Its socket, until the socket has closed (then freed).
    handle: Option<SocketHandle>,
    /// Where it connects (after any load balancing).
    pub remote: SocketAddrV4,
    /// Its own port.
    pub local_port: u16,
    request: Vec<u8>,
    sent: usize,
    framing: Framing,
    /// The bytes received.
    pub response: Vec<u8>,
    /// The server connection waiting for this client's reply (a program's own request).
    for_conn: Option<u64>,
    /// When it ended (a socket stuck closing is freed after a while).
    ended_at: Option<Instant>,
    /// Whether the handshake completed.
    pub established: bool,
    /// How it ended, once it has.
    pub end: Option<ClientEnd>,
    /// Its outcome has been taken: it is forgotten once its socket has closed.
    collected: bool,
}

/// A connection a program asks the lab to open for it.
#[derive(Debug)]
pub struct Want {
    /// The server connection that waits.
    conn: u64,
    /// The name to resolve.
    pub host: String,
    /// The port.
    pub port: u16,
    request: Vec<u8>,
}

/// A server-side connection.
struct Conn {
    /// Serial number (smoltcp reuses socket handles).
    id: u64,
    handle: SocketHandle,
    app: App,
    inbuf: Vec<u8>,
    remote: Option<IpEndpoint>,
}

/// The stack of one container or host.
pub struct Stack {
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: Queues,
    /// Listening programs: (port, program, the socket listening now).
    listeners: Vec<(u16, App, SocketHandle)>,
    conns: Vec<Conn>,
    /// Client connections, by number.
    pub clients: BTreeMap<usize, Client>,
    next_client: usize,
    /// The hostname the programs report.
    pub hostname: String,
    /// redis's keys: value and expiry.
    kv: BTreeMap<String, (String, Option<Instant>)>,
    /// The counter's visits, in memory.
    visits: u64,
    /// Connections the programs want opened.
    wants: Vec<Want>,
    next_conn: u64,
    /// The wake-up the lab has scheduled, if any.
    pub wake: Option<Instant>,
    /// The container's files, as nginx serves them from `/usr/share/nginx/html` (None:
    /// its built-in page).
    pub docroot: Option<crate::fs::Fs>,
    /// Local ports in TIME-WAIT, and when they are free again. Like the kernel, which
    /// keeps TIME-WAIT connections in a cheap table, the stack drops their sockets and
    /// only reserves the ports.
    time_wait: BTreeMap<u16, Instant>,
    now: Instant,
    /// The resolver (a container's: queries to the embedded DNS server at 127.0.0.11).
    dns: Option<SocketHandle>,
    /// Name queries in flight, by number.
    queries: BTreeMap<usize, smoltcp::socket::dns::QueryHandle>,
    /// Answers taken from smoltcp and not yet collected.
    answers: BTreeMap<usize, Option<Vec<Ipv4Addr>>>,
    next_query: usize,
}

/// The embedded DNS server's address in every container.
pub const EMBEDDED_DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// Linux's TIME-WAIT length.
const TIME_WAIT: crate::time::Duration = crate::time::Duration::from_secs(60);

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("addresses", &self.addresses())
            .field("listeners", &self.listeners.len())
            .field("clients", &self.clients.len())
            .finish()
    }
}

fn tcp_socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; BUF]),
        tcp::SocketBuffer::new(vec![0; BUF]),
    );
    // Linux sends small writes at once (the programs here write whole messages).
    s.set_nagle_enabled(false);
    s
}

impl Stack {
    /// A stack with these addresses (address, prefix) and IP MTU.
    pub fn new(seed: u64, addrs: &[(Ipv4Addr, u8)], mtu: usize, now: Instant) -> Stack {
        let mut dev = Queues {
            mtu,
            ..Default::default()
        };
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut dev, at(now));
        iface.update_ip_addrs(|a| {
            for (ip, prefix) in addrs {
                let _ = a.push(IpCidr::new(IpAddress::Ipv4(*ip), *prefix));
            }
        });
        Stack {
            iface,
            sockets: SocketSet::new(Vec::new()),
            dev,
            listeners: Vec::new(),
            conns: Vec::new(),
            clients: BTreeMap::new(),
            next_client: 0,
            hostname: String::new(),
            kv: BTreeMap::new(),
            visits: 0,
            wants: Vec::new(),
            next_conn: 0,
            wake: None,
            docroot: None,
            time_wait: BTreeMap::new(),
            now,
            dns: None,
            queries: BTreeMap::new(),
            answers: BTreeMap::new(),
            next_query: 0,
        }
    }

    /// The stack's addresses (not loopback).
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        self.iface
            .ip_addrs()
            .iter()
            .map(|c| match c.address() {
                IpAddress::Ipv4(a) => a,
            })
            .filter(|a| !a.is_loopback())
            .collect()
    }

    /// Give the stack a loopback address and a resolver that asks the embedded DNS server
    /// (127.0.0.11), as Docker writes `nameserver 127.0.0.11` into every container.
    pub fn with_resolver(&mut self) {
        self.iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(Ipv4Addr::LOCALHOST), 8));
        });
        let socket = smoltcp::socket::dns::Socket::new(
            &[IpAddress::Ipv4(EMBEDDED_DNS)],
            vec![None, None, None, None],
        );
        self.dns = Some(self.sockets.add(socket));
    }

    /// Start resolving `name` (an A query over UDP). `None` when the name is invalid or
    /// the stack has no resolver.
    pub fn resolve(&mut self, name: &str) -> Option<usize> {
        let h = self.dns?;
        let q = self
            .sockets
            .get_mut::<smoltcp::socket::dns::Socket>(h)
            .start_query(self.iface.context(), name, smoltcp::wire::DnsQueryType::A)
            .ok()?;
        let id = self.next_query;
        self.next_query += 1;
        self.queries.insert(id, q);
        Some(id)
    }

    /// A query's outcome once it has one: the addresses, or `None` (NXDOMAIN, timeout).
    pub fn resolved(&mut self, id: usize) -> Option<Option<Vec<Ipv4Addr>>> {
        self.collect_answers();
        self.answers.remove(&id)
    }

    /// Whether a query is still waiting for its answer.
    pub fn query_pending(&self, id: usize) -> bool {
        self.queries.contains_key(&id)
    }

    /// Move finished queries' answers out of smoltcp (after a poll).
    fn collect_answers(&mut self) {
        use smoltcp::socket::dns::GetQueryResultError;
        let Some(h) = self.dns else {
            return;
        };
        let ids: Vec<usize> = self.queries.keys().copied().collect();
        for id in ids {
            let q = self.queries[&id];
            let s = self.sockets.get_mut::<smoltcp::socket::dns::Socket>(h);
            let out = match s.get_query_result(q) {
                Err(GetQueryResultError::Pending) => continue,
                Err(GetQueryResultError::Failed) => None,
                Ok(v) => Some(
                    v.iter()
                        .map(|a| match a {
                            IpAddress::Ipv4(ip) => *ip,
                        })
                        .collect(),
                ),
            };
            self.queries.remove(&id);
            self.answers.insert(id, out);
        }
    }

    /// Give up a query (the caller's deadline passed).
    pub fn cancel_query(&mut self, id: usize) {
        if let (Some(h), Some(q)) = (self.dns, self.queries.remove(&id)) {
            self.sockets
                .get_mut::<smoltcp::socket::dns::Socket>(h)
                .cancel_query(q);
        }
    }

    /// Add an address (a new interface of the container). False when the stack already
    /// has as many as it can hold (8, loopback included).
    pub fn add_address(&mut self, ip: Ipv4Addr, prefix: u8) -> bool {
        let mut ok = true;
        self.iface.update_ip_addrs(|a| {
            if !a.iter().any(|c| c.address() == IpAddress::Ipv4(ip)) {
                ok = a.push(IpCidr::new(IpAddress::Ipv4(ip), prefix)).is_ok();
            }
        });
        ok
    }

    /// Run `app` on `port`.
    pub fn serve(&mut self, port: u16, app: App) {
        let mut s = tcp_socket();
        // A fresh socket with a non-zero port always listens.
        let _ = s.listen(port);
        let h = self.sockets.add(s);
        self.listeners.push((port, app, h));
    }

    /// Whether something listens on `port`.
    pub fn listens(&self, port: u16) -> bool {
        self.listeners.iter().any(|(p, _, _)| *p == port)
    }

    /// An IP packet for this stack.
    pub fn input(&mut self, packet: Vec<u8>) {
        self.dev.rx.push_back(packet);
    }

    /// Open a client connection and queue `request` on it. Returns its index.
    pub fn connect(
        &mut self,
        remote: SocketAddrV4,
        local_port: u16,
        request: Vec<u8>,
        framing: Framing,
    ) -> usize {
        let mut s = tcp_socket();
        let ok = s
            .connect(
                self.iface.context(),
                (IpAddress::Ipv4(*remote.ip()), remote.port()),
                local_port,
            )
            .is_ok();
        let handle = self.sockets.add(s);
        let id = self.next_client;
        self.next_client += 1;
        self.clients.insert(
            id,
            Client {
                handle: Some(handle),
                remote,
                local_port,
                request,
                sent: 0,
                framing,
                response: Vec::new(),
                for_conn: None,
                ended_at: None,
                established: false,
                end: (!ok).then_some(ClientEnd::Unreachable),
                collected: false,
            },
        );
        id
    }

    /// Whether client connection `i` has ended (or is gone).
    pub fn client_ended(&self, i: usize) -> bool {
        self.clients.get(&i).is_none_or(|c| c.end.is_some())
    }

    /// Take client `i`'s outcome (once it has ended): how, and the bytes received.
    pub fn take_result(&mut self, i: usize) -> Option<(ClientEnd, Vec<u8>)> {
        let c = self.clients.get_mut(&i)?;
        let end = c.end.clone()?;
        c.collected = true;
        Some((end, std::mem::take(&mut c.response)))
    }

    /// Open a program's own connection for server connection `conn` (see `wants`).
    pub fn connect_for(&mut self, want: Want, remote: Option<SocketAddrV4>, local_port: u16) {
        match remote {
            Some(r) => {
                let i = self.connect(r, local_port, want.request, Framing::Resp);
                if let Some(c) = self.clients.get_mut(&i) {
                    c.for_conn = Some(want.conn);
                    // Linux gives up a connection after about 127 s of retransmissions.
                    if let Some(h) = c.handle {
                        self.sockets
                            .get_mut::<tcp::Socket>(h)
                            .set_timeout(Some(smoltcp::time::Duration::from_secs(127)));
                    }
                }
            }
            None => self.answer_counter(want.conn, Err("could not resolve")),
        }
    }

    /// Requests the programs want to make: the lab resolves the name and connects.
    pub fn take_wants(&mut self) -> Vec<Want> {
        std::mem::take(&mut self.wants)
    }

    /// Whether a client connection uses `port` (for choosing a free ephemeral port).
    pub fn port_in_use(&self, port: u16) -> bool {
        // A socket in TIME-WAIT still holds its port.
        self.time_wait.get(&port).is_some_and(|t| *t > self.now)
            || self
                .clients
                .values()
                .any(|c| c.local_port == port && c.handle.is_some())
    }

    /// Whether a live client connection is the one `remote` answers on `port`.
    pub fn owns(&self, port: u16, remote: SocketAddrV4) -> bool {
        self.clients
            .values()
            .any(|c| c.local_port == port && c.remote == remote && c.handle.is_some())
    }

    /// End a client connection from outside (deadline, ARP failure): abort its socket.
    pub fn end_client(&mut self, i: usize, end: ClientEnd) {
        let Some(c) = self.clients.get_mut(&i) else {
            return;
        };
        if c.end.is_none() {
            c.end = Some(end);
            if let Some(h) = c.handle {
                self.sockets.get_mut::<tcp::Socket>(h).abort();
            }
        }
    }

    /// Let smoltcp and the programs run until nothing more happens at `now`; returns the
    /// IP packets to send.
    pub fn poll(&mut self, now: Instant) -> Vec<Vec<u8>> {
        self.now = now;
        self.time_wait.retain(|_, t| *t > now);
        for _ in 0..16 {
            self.iface.poll(at(now), &mut self.dev, &mut self.sockets);
            if !self.run_programs(now) {
                break;
            }
        }
        self.collect_answers();
        std::mem::take(&mut self.dev.tx)
    }

    /// When smoltcp next needs a poll (retransmissions, delayed ACKs, TIME-WAIT).
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.iface
            .poll_at(at(now), &self.sockets)
            .map(|t| Instant(t.total_micros().max(0) as u64 * 1_000))
    }

    /// The programs' turn. Returns whether any wrote or closed something.
    fn run_programs(&mut self, now: Instant) -> bool {
        let mut acted = false;
        // Listeners that accepted become connections; a new socket listens in their place.
        for i in 0..self.listeners.len() {
            let (port, app, h) = self.listeners[i].clone();
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            if !s.is_listening() {
                let remote = s.remote_endpoint();
                self.next_conn += 1;
                self.conns.push(Conn {
                    id: self.next_conn,
                    handle: h,
                    app: app.clone(),
                    inbuf: Vec::new(),
                    remote,
                });
                let mut fresh = tcp_socket();
                let _ = fresh.listen(port);
                self.listeners[i].2 = self.sockets.add(fresh);
            }
        }
        let mut k = 0;
        while k < self.conns.len() {
            let h = self.conns[k].handle;
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            if s.remote_endpoint().is_some() {
                self.conns[k].remote = s.remote_endpoint();
            }
            if s.can_recv() {
                let mut buf = vec![0u8; BUF];
                if let Ok(n) = s.recv_slice(&mut buf) {
                    self.conns[k].inbuf.extend_from_slice(&buf[..n]);
                }
            }
            let replies = self.serve_requests(k, now);
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            for r in &replies {
                let _ = s.send_slice(r);
                acted = true;
            }
            if !s.may_recv() && s.may_send() && s.send_queue() == 0 {
                // The client closed its side and everything is answered.
                s.close();
                acted = true;
            }
            if s.state() == tcp::State::Closed {
                self.sockets.remove(h);
                let gone = self.conns.remove(k).id;
                // Its program's own requests are no longer wanted.
                for c in self.clients.values_mut() {
                    if c.for_conn == Some(gone) && c.end.is_none() {
                        c.end = Some(ClientEnd::Reset);
                        c.ended_at = Some(now);
                        c.for_conn = None;
                        c.collected = true;
                        if let Some(h) = c.handle {
                            self.sockets.get_mut::<tcp::Socket>(h).abort();
                        }
                    }
                }
                continue;
            }
            k += 1;
        }
        for c in self.clients.values_mut() {
            let Some(h) = c.handle else {
                continue;
            };
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            if c.end.is_some() {
                // Done: free the socket once it has closed or entered TIME-WAIT (whose
                // port stays reserved), or when it has been stuck closing for 2 minutes
                // (a peer that vanished without a reset).
                let ended = *c.ended_at.get_or_insert(now);
                if now.since(ended) > crate::time::Duration::from_secs(120) {
                    s.abort();
                    self.sockets.remove(h);
                    c.handle = None;
                    continue;
                }
                match s.state() {
                    tcp::State::Closed => {
                        self.sockets.remove(h);
                        c.handle = None;
                    }
                    tcp::State::TimeWait => {
                        self.sockets.remove(h);
                        c.handle = None;
                        self.time_wait.insert(c.local_port, now + TIME_WAIT);
                    }
                    _ => {}
                }
                continue;
            }
            if s.state() == tcp::State::Established || s.may_send() {
                c.established = true;
            }
            if c.established && c.sent < c.request.len() && s.can_send() {
                if let Ok(n) = s.send_slice(&c.request[c.sent..]) {
                    c.sent += n;
                    acted |= n > 0;
                }
            }
            while s.can_recv() {
                let mut buf = vec![0u8; BUF];
                match s.recv_slice(&mut buf) {
                    Ok(n) if n > 0 => c.response.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let complete = match c.framing {
                Framing::Http => http_complete(&c.response),
                Framing::Resp => resp_complete(&c.response).is_some(),
                Framing::Connect => c.established,
            };
            if complete || (c.established && !s.may_recv()) {
                c.end = Some(ClientEnd::Done);
                s.close();
                acted = true;
            } else if s.state() == tcp::State::Closed {
                c.end = Some(if c.established {
                    ClientEnd::Reset
                } else {
                    ClientEnd::Refused
                });
            }
        }
        // Programs' own requests that ended: answer the connections that waited.
        let done: Vec<(u64, Result<String, &'static str>)> = self
            .clients
            .values_mut()
            .filter(|c| c.end.is_some() && c.for_conn.is_some())
            .filter_map(|c| {
                let conn = c.for_conn.take()?;
                c.collected = true;
                let r = match (&c.end, resp_complete(&c.response)) {
                    (Some(ClientEnd::Done), Some(v)) => Ok(v),
                    _ => Err("redis did not answer"),
                };
                Some((conn, r))
            })
            .collect();
        for (conn, r) in done {
            self.answer_counter(conn, r.as_deref().map_err(|e| *e));
            acted = true;
        }
        self.clients
            .retain(|_, c| !(c.collected && c.handle.is_none()));
        acted
    }

    /// The counter's reply on `conn`: the count redis returned, or a 502.
    fn answer_counter(&mut self, conn: u64, count: Result<&str, &str>) {
        let body = match count {
            Ok(n) => format!("Hostname: {}\nvisits: {n}\n", self.hostname),
            Err(e) => format!("Hostname: {}\nerror: {e}\n", self.hostname),
        };
        let reply = match count {
            Ok(_) => http_response(200, "OK", "text/plain; charset=utf-8", None, &body),
            Err(_) => http_response(502, "Bad Gateway", "text/plain; charset=utf-8", None, &body),
        };
        if let Some(c) = self.conns.iter().find(|c| c.id == conn) {
            let _ = self
                .sockets
                .get_mut::<tcp::Socket>(c.handle)
                .send_slice(&reply);
        }
    }

    /// Answer the complete requests buffered on connection `k`.
    fn serve_requests(&mut self, k: usize, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let conn = &self.conns[k];
            match conn.app {
                App::Counter { .. } => {
                    let Some(end) = find(&conn.inbuf, b"\r\n\r\n") else {
                        break;
                    };
                    self.conns[k].inbuf.drain(..end + 4);
                    let handle = self.conns[k].id;
                    match self.conns[k].app.clone() {
                        App::Counter {
                            redis: Some((host, port)),
                        } => self.wants.push(Want {
                            conn: handle,
                            host,
                            port,
                            request: resp_encode(&["INCR".into(), "visits".into()]),
                        }),
                        _ => {
                            self.visits += 1;
                            let body =
                                format!("Hostname: {}\nvisits: {}\n", self.hostname, self.visits);
                            out.push(http_response(
                                200,
                                "OK",
                                "text/plain; charset=utf-8",
                                None,
                                &body,
                            ));
                        }
                    }
                }
                App::Whoami | App::Nginx => {
                    let Some(end) = find(&conn.inbuf, b"\r\n\r\n") else {
                        break;
                    };
                    let head = String::from_utf8_lossy(&conn.inbuf[..end]).to_string();
                    self.conns[k].inbuf.drain(..end + 4);
                    let remote = self.conns[k].remote;
                    out.push(match self.conns[k].app {
                        App::Whoami => self.whoami(&head, remote),
                        _ => nginx(&head, self.docroot.as_ref()),
                    });
                }
                App::Redis => {
                    let Some((args, used)) = resp_command(&conn.inbuf) else {
                        break;
                    };
                    self.conns[k].inbuf.drain(..used);
                    if !args.is_empty() {
                        out.push(self.redis(&args, now).into_bytes());
                    }
                }
            }
        }
        out
    }

    fn whoami(&self, head: &str, remote: Option<IpEndpoint>) -> Vec<u8> {
        let mut body = format!("Hostname: {}\nIP: 127.0.0.1\n", self.hostname);
        for ip in self.addresses() {
            body.push_str(&format!("IP: {ip}\n"));
        }
        if let Some(r) = remote {
            body.push_str(&format!("RemoteAddr: {}:{}\n", r.addr, r.port));
        }
        for line in head.split("\r\n") {
            body.push_str(line);
            body.push('\n');
        }
        body.push('\n');
        http_response(200, "OK", "text/plain; charset=utf-8", None, &body)
    }

    fn redis(&mut self, args: &[String], now: Instant) -> String {
        let cmd = args[0].to_ascii_uppercase();
        self.kv
            .retain(|_, (_, exp)| exp.is_none_or(|deadline| deadline > now));
        let wrong = || {
            format!(
                "-ERR wrong number of arguments for '{}' command\r\n",
                args[0].to_ascii_lowercase()
            )
        };
        match (cmd.as_str(), args.len()) {
            ("PING", 1) => "+PONG\r\n".into(),
            ("SET", 3) => {
                self.kv.insert(args[1].clone(), (args[2].clone(), None));
                "+OK\r\n".into()
            }
            ("GET", 2) => match self.kv.get(&args[1]) {
                Some((v, _)) => format!("${}\r\n{v}\r\n", v.len()),
                None => "$-1\r\n".into(),
            },
            ("INCR", 2) => {
                let entry = self.kv.entry(args[1].clone()).or_insert(("0".into(), None));
                match entry.0.parse::<i64>().map(|n| n.checked_add(1)) {
                    Ok(Some(n)) => {
                        entry.0 = n.to_string();
                        format!(":{n}\r\n")
                    }
                    Ok(None) => "-ERR increment or decrement would overflow\r\n".into(),
                    Err(_) => "-ERR value is not an integer or out of range\r\n".into(),
                }
            }
            ("DEL", n) if n >= 2 => {
                let gone = args[1..]
                    .iter()
                    .filter(|k| self.kv.remove(*k).is_some())
                    .count();
                format!(":{gone}\r\n")
            }
            ("EXPIRE", 3) => {
                let Ok(secs) = args[2].parse::<i64>() else {
                    return "-ERR value is not an integer or out of range\r\n".into();
                };
                match self.kv.get_mut(&args[1]) {
                    Some(e) => {
                        if secs <= 0 {
                            self.kv.remove(&args[1]);
                        } else {
                            e.1 = Some(now + crate::time::Duration::from_secs(secs as u64));
                        }
                        ":1\r\n".into()
                    }
                    None => ":0\r\n".into(),
                }
            }
            ("TTL", 2) => match self.kv.get(&args[1]) {
                None => ":-2\r\n".into(),
                Some((_, None)) => ":-1\r\n".into(),
                Some((_, Some(d))) => format!(":{}\r\n", (d.0 - now.0).div_ceil(1_000_000_000)),
            },
            ("PING" | "SET" | "GET" | "INCR" | "DEL" | "EXPIRE" | "TTL", _) => wrong(),
            _ => {
                let shown: Vec<String> = args[1..].iter().map(|a| format!("'{a}' ")).collect();
                format!(
                    "-ERR unknown command '{}', with args beginning with: {}\r\n",
                    args[0],
                    shown.concat()
                )
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP/1.1 response with a Content-Length.
pub fn http_response(
    code: u16,
    reason: &str,
    content_type: &str,
    server: Option<&str>,
    body: &str,
) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {code} {reason}\r\n");
    if let Some(s) = server {
        head.push_str(&format!("Server: {s}\r\n"));
    }
    head.push_str(&format!(
        "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// nginx's default server: files of `/usr/share/nginx/html` (`/` is its `index.html`).
fn nginx(head: &str, docroot: Option<&crate::fs::Fs>) -> Vec<u8> {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    const SERVER: Option<&str> = Some("nginx/1.27.3");
    if method != "GET" && method != "HEAD" {
        let body = "<html>\r\n<head><title>405 Not Allowed</title></head>\r\n<body>\r\n<center><h1>405 Not Allowed</h1></center>\r\n<hr><center>nginx/1.27.3</center>\r\n</body>\r\n</html>\r\n";
        return http_response(405, "Not Allowed", "text/html", SERVER, body);
    }
    let file = if path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_string()
    };
    match docroot {
        Some(fs) => {
            let at = crate::fs::resolve("/usr/share/nginx/html", file.trim_start_matches('/'));
            if at.starts_with("/usr/share/nginx/html/") {
                if let Ok(bytes) = fs.read(&at) {
                    let kind = if at.ends_with(".html") {
                        "text/html"
                    } else {
                        "text/plain"
                    };
                    let body = String::from_utf8_lossy(bytes);
                    return http_response(200, "OK", kind, SERVER, &body);
                }
            }
        }
        None if file == "/index.html" => {
            return http_response(200, "OK", "text/html", SERVER, crate::images::NGINX_INDEX);
        }
        None => {}
    }
    let body = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.27.3</center>\r\n</body>\r\n</html>\r\n";
    http_response(404, "Not Found", "text/html", SERVER, body)
}

/// Whether `buf` holds a whole HTTP response (headers and Content-Length bytes).
pub fn http_complete(buf: &[u8]) -> bool {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    len.and_then(|n| n.checked_add(end + 4))
        .is_some_and(|total| buf.len() >= total)
}

/// Split an HTTP response into (status code, headers, body).
pub fn http_parts(buf: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, head, buf[end + 4..].to_vec()))
}

/// One RESP command (array of bulk strings, or an inline command) at the start of `buf`,
/// and the bytes it took.
fn resp_command(buf: &[u8]) -> Option<(Vec<String>, usize)> {
    if buf.first() != Some(&b'*') {
        let end = find(buf, b"\r\n")?;
        let line = String::from_utf8_lossy(&buf[..end]);
        return Some((line.split_whitespace().map(String::from).collect(), end + 2));
    }
    let mut pos = 0;
    let line = |pos: &mut usize| -> Option<String> {
        let end = find(&buf[*pos..], b"\r\n")? + *pos;
        let s = String::from_utf8_lossy(&buf[*pos..end]).to_string();
        *pos = end + 2;
        Some(s)
    };
    let n: usize = line(&mut pos)?.get(1..)?.parse().ok()?;
    // redis refuses more than 1024*1024 arguments ("invalid multibulk length"); here such
    // a command can never complete, so the connection just waits (as for a partial one).
    if n > 1024 * 1024 {
        return None;
    }
    let mut args = Vec::new();
    for _ in 0..n {
        let len: usize = line(&mut pos)?.strip_prefix('$')?.parse().ok()?;
        let end = pos.checked_add(len)?;
        let data = buf.get(pos..end)?;
        args.push(String::from_utf8_lossy(data).to_string());
        pos = end.checked_add(2)?;
        if pos > buf.len() {
            return None;
        }
    }
    Some((args, pos))
}

/// A RESP command as redis-cli sends it.
pub fn resp_encode(args: &[String]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    out.into_bytes()
}

/// A whole RESP reply at the start of `buf`, as redis-cli prints it without a terminal.
pub fn resp_complete(buf: &[u8]) -> Option<String> {
    let end = find(buf, b"\r\n")?;
    let line = String::from_utf8_lossy(buf.get(1..end)?).to_string();
    match buf.first()? {
        b'+' | b':' => Some(line),
        b'-' => Some(line),
        b'$' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some(String::new());
            }
            let start = end + 2;
            let data = buf.get(start..start.checked_add(usize::try_from(n).ok()?)?)?;
            Some(String::from_utf8_lossy(data).to_string())
        }
        _ => Some(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pump(a: &mut Stack, b: &mut Stack, now: Instant) {
        for _ in 0..50 {
            let out_a = a.poll(now);
            let out_b = b.poll(now);
            if out_a.is_empty() && out_b.is_empty() {
                return;
            }
            for p in out_a {
                b.input(p);
            }
            for p in out_b {
                a.input(p);
            }
        }
    }

    fn pair() -> (Stack, Stack) {
        let now = Instant(1_000_000_000);
        let a = Stack::new(1, &[(Ipv4Addr::new(10, 0, 1, 2), 24)], 1450, now);
        let b = Stack::new(2, &[(Ipv4Addr::new(10, 0, 1, 3), 24)], 1450, now);
        (a, b)
    }

    #[test]
    fn whoami_answers_with_hostname_addresses_and_request() {
        let (mut client, mut server) = pair();
        server.hostname = "abc123".into();
        server.serve(80, App::Whoami);
        let req = b"GET / HTTP/1.1\r\nHost: web\r\nUser-Agent: Wget\r\n\r\n".to_vec();
        let i = client.connect(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 3), 80),
            40000,
            req,
            Framing::Http,
        );
        pump(&mut client, &mut server, Instant(1_000_000_000));
        let c = &client.clients[&i];
        assert_eq!(c.end, Some(ClientEnd::Done));
        let (code, _, body) = http_parts(&c.response).unwrap();
        assert_eq!(code, 200);
        let body = String::from_utf8(body).unwrap();
        assert!(body.starts_with("Hostname: abc123\nIP: 127.0.0.1\nIP: 10.0.1.3\n"));
        assert!(body.contains("RemoteAddr: 10.0.1.2:40000\n"));
        assert!(body.contains("GET / HTTP/1.1\nHost: web\n"));
    }

    #[test]
    fn a_closed_port_refuses() {
        let (mut client, mut server) = pair();
        let i = client.connect(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 3), 81),
            40001,
            b"x".to_vec(),
            Framing::Http,
        );
        pump(&mut client, &mut server, Instant(1_000_000_000));
        assert_eq!(client.clients[&i].end, Some(ClientEnd::Refused));
    }

    #[test]
    fn redis_counts_and_expires() {
        let (mut client, mut server) = pair();
        server.serve(6379, App::Redis);
        let mut last = String::new();
        for (n, cmd) in [
            vec!["INCR", "hits"],
            vec!["INCR", "hits"],
            vec!["EXPIRE", "hits", "10"],
            vec!["GET", "hits"],
        ]
        .into_iter()
        .enumerate()
        {
            let args: Vec<String> = cmd.into_iter().map(String::from).collect();
            let i = client.connect(
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 3), 6379),
                41000 + n as u16,
                resp_encode(&args),
                Framing::Resp,
            );
            pump(&mut client, &mut server, Instant(1_000_000_000));
            last = resp_complete(&client.clients[&i].response).unwrap();
        }
        assert_eq!(last, "2");
        let i = client.connect(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 3), 6379),
            42000,
            resp_encode(&["GET".into(), "hits".into()]),
            Framing::Resp,
        );
        pump(&mut client, &mut server, Instant(12_000_000_000));
        assert_eq!(resp_complete(&client.clients[&i].response).unwrap(), "");
    }

    #[test]
    fn hostile_redis_input_is_refused_without_allocating_or_overflowing() {
        assert!(resp_command(b"*99999999999999\r\n").is_none());
        assert!(resp_command(b"*1\r\n$18446744073709551615\r\nx\r\n").is_none());
        assert!(!http_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n"
        ));
        assert_eq!(resp_complete(b"\r\n"), None);
        let mut s = Stack::new(1, &[(Ipv4Addr::new(10, 0, 1, 3), 24)], 1450, Instant(0));
        let args = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            s.redis(&args(&["SET", "k", "9223372036854775807"]), Instant(0)),
            "+OK\r\n"
        );
        assert_eq!(
            s.redis(&args(&["INCR", "k"]), Instant(0)),
            "-ERR increment or decrement would overflow\r\n"
        );
        assert_eq!(
            s.redis(&args(&["EXPIRE", "k", "99999999999"]), Instant(0)),
            ":1\r\n"
        );
        assert_eq!(
            s.redis(&args(&["GET", "k"]), Instant(5)),
            "$19\r\n9223372036854775807\r\n"
        );
    }

    proptest::proptest! {
        /// The programs' parsers take any bytes without panicking.
        #[test]
        fn parsers_take_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = resp_command(&bytes);
            let _ = resp_complete(&bytes);
            let _ = http_complete(&bytes);
            let _ = http_parts(&bytes);
            let mut server = Stack::new(3, &[(Ipv4Addr::new(10, 0, 1, 3), 24)], 1450, Instant(0));
            server.serve(6379, App::Redis);
            server.serve(80, App::Whoami);
            server.input(bytes);
            let _ = server.poll(Instant(1_000));
        }
    }

    #[test]
    fn only_server_images_run_an_app() {
        assert!(App::of_image("busybox").is_none());
        assert_eq!(App::of_image("redis:7"), Some((App::Redis, 6379)));
    }
}
