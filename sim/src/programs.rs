//! The client programs of the built-in images, run with `docker exec` (or on a host):
//! busybox's `wget` and `nslookup`, `curl`, and `redis-cli`, each printing what the real
//! program prints, errors included.
//!
//! A program sees only its network namespace (`Netns`): names to resolve, connections
//! to make, its interfaces and the time. It never sees the lab; the node's router
//! implements `Netns` for a container or a host.

use crate::netstack::{http_parts, resp_complete, resp_encode, ClientEnd, Framing};
use crate::output::CommandOutput;
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddrV4};
use vxlan::MacAddr;

/// One interface of a namespace, as `ip addr` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// Its MAC.
    pub mac: MacAddr,
    /// Its MTU.
    pub mtu: usize,
}

/// What a program sees from inside its network namespace.
pub trait Netns {
    /// The current time.
    fn now(&self) -> Instant;
    /// Where a name leads: a container asks its embedded DNS server (127.0.0.11), a host
    /// its `/etc/hosts`. `None` is "not found".
    fn resolve(&mut self, name: &str) -> impl Future<Output = Option<Vec<Ipv4Addr>>>;
    /// The namespace's own address (what `localhost` reaches).
    fn own_ip(&self) -> Ipv4Addr;
    /// Open a TCP connection to `dst`, send `request`, and read the answer until it is
    /// complete (`framing`), the connection fails, or `timeout` passes. The program
    /// blocks meanwhile, as a real one does.
    fn request(
        &mut self,
        dst: SocketAddrV4,
        request: Vec<u8>,
        framing: Framing,
        timeout: Duration,
    ) -> impl Future<Output = (ClientEnd, Vec<u8>)>;
    /// The namespace's interfaces, eth0 first.
    fn interfaces(&self) -> Vec<Interface>;
    /// The name of the container whose ID starts with `id` (swarmlab's note on which
    /// replica answered), if the lab knows it.
    fn container_named_by_id(&self, id: &str) -> Option<String>;
    /// Write a file (relative paths from the working directory).
    fn write_file(&mut self, path: &str, bytes: Vec<u8>) -> Result<(), crate::fs::FsError>;
}

/// The longest a client may be told to wait: a lab runs every event until then.
const MAX_WAIT: u64 = 3600;

fn too_long() -> String {
    format!(
        "swarmlab: a timeout above {MAX_WAIT} s would run the lab that long; use a shorter one\n"
    )
}

/// A parsed `http://host[:port][/path]`.
struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(s: &str) -> Result<Url, String> {
    let rest = match s.split_once("://") {
        Some(("http", r)) => r,
        Some((scheme, _)) => return Err(format!("unsupported protocol {scheme}")),
        None => s,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "bad port".to_string())?),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok(Url {
        host: host.to_string(),
        port,
        path,
    })
}

/// The first address a name leads to from the namespace.
async fn lookup(ns: &mut impl Netns, name: &str) -> Option<Ipv4Addr> {
    ns.resolve(name).await?.first().copied()
}

/// The programs an image has. `whoami` is built FROM scratch: nothing to exec.
pub fn has_program(image: &str, program: &str) -> bool {
    crate::images::has_program(image, program)
}

/// A request's outcome, for the programs' messages.
struct Fetch {
    end: ClientEnd,
    response: Vec<u8>,
    ip: Ipv4Addr,
    elapsed: Duration,
}

async fn fetch(
    ns: &mut impl Netns,
    ip: Ipv4Addr,
    url: &Url,
    agent: &str,
    extra: &[String],
    timeout: Duration,
) -> Fetch {
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}{}\r\nUser-Agent: {agent}\r\nAccept: */*\r\n",
        url.path,
        url.host,
        if url.port == 80 {
            String::new()
        } else {
            format!(":{}", url.port)
        }
    );
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let start = ns.now();
    let (end, response) = ns
        .request(
            SocketAddrV4::new(ip, url.port),
            req.into_bytes(),
            Framing::Http,
            timeout,
        )
        .await;
    Fetch {
        end,
        response,
        ip,
        elapsed: ns.now() - start,
    }
}

/// busybox `wget [-q] [-O FILE] [-T SEC] URL`.
pub async fn wget(ns: &mut impl Netns, args: &[String]) -> CommandOutput {
    let (mut quiet, mut timeout, mut out_file, mut url) = (
        false,
        Duration::from_secs(900),
        None::<String>,
        None::<String>,
    );
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-q" => quiet = true,
            "-qO-" | "-qO" => {
                quiet = true;
                out_file = Some(if a == "-qO-" {
                    "-".into()
                } else {
                    i += 1;
                    args.get(i).cloned().unwrap_or_default()
                });
            }
            "-O" | "-T" => {
                i += 1;
                let Some(v) = args.get(i) else {
                    return CommandOutput::err(
                        format!("wget: option requires an argument -- '{}'\n", &a[1..]),
                        1,
                    );
                };
                if a == "-O" {
                    out_file = Some(v.clone());
                } else {
                    match v.parse::<u64>() {
                        Ok(s) if s > MAX_WAIT => {
                            return CommandOutput::err(too_long(), 1)
                        }
                        Ok(s) => timeout = Duration::from_secs(s),
                        Err(_) => {
                            return CommandOutput::err(format!("wget: invalid number '{v}'\n"), 1)
                        }
                    }
                }
            }
            "-O-" => out_file = Some("-".into()),
            s if s.starts_with('-') => {
                return CommandOutput::err(
                    format!(
                        "wget: unrecognized option '{s}'\nBusyBox v1.36.1 multi-call binary.\n\nUsage: wget [-cqS] [--spider] [-O FILE] [-o LOGFILE] [--header STR]\n\t[--post-data STR | --post-file FILE] [-Y on/off]\n\t[-P DIR] [-U AGENT] [-T SEC] URL...\n"
                    ),
                    1,
                )
            }
            s => url = Some(s.to_string()),
        }
        i += 1;
    }
    let Some(url) = url else {
        return CommandOutput::err("BusyBox v1.36.1 multi-call binary.\n\nUsage: wget [-cqS] [--spider] [-O FILE] [-o LOGFILE] [--header STR]\n\t[--post-data STR | --post-file FILE] [-Y on/off]\n\t[-P DIR] [-U AGENT] [-T SEC] URL...\n", 1);
    };
    let url = match parse_url(&url) {
        Ok(u) => u,
        Err(e) => return CommandOutput::err(format!("wget: {e}\n"), 1),
    };
    let Some(ip) = lookup(ns, &url.host).await else {
        return CommandOutput::err(format!("wget: bad address '{}'\n", url.host), 1);
    };
    let f = fetch(ns, ip, &url, "Wget", &["Connection: close".into()], timeout).await;
    let mut stderr = String::new();
    if !quiet {
        stderr.push_str(&format!(
            "Connecting to {} ({}:{})\n",
            url.host, ip, url.port
        ));
    }
    let fail = |mut stderr: String, msg: String| {
        stderr.push_str(&msg);
        CommandOutput {
            stdout: String::new(),
            stderr,
            exit_code: 1,
        }
    };
    match f.end {
        ClientEnd::Done => {}
        ClientEnd::Refused => {
            return fail(
                stderr,
                format!(
                    "wget: can't connect to remote host ({}): Connection refused\n",
                    f.ip
                ),
            )
        }
        ClientEnd::NoPort => {
            return fail(
                stderr,
                format!(
                    "wget: can't connect to remote host ({}): Cannot assign requested address\n",
                    f.ip
                ),
            )
        }
        ClientEnd::Unreachable => {
            return fail(
                stderr,
                format!(
                    "wget: can't connect to remote host ({}): Host is unreachable\n",
                    f.ip
                ),
            )
        }
        ClientEnd::TimedOut => return fail(stderr, "wget: download timed out\n".into()),
        ClientEnd::Reset => {
            return fail(
                stderr,
                "wget: error getting response: Connection reset by peer\n".into(),
            )
        }
    }
    let Some((code, head, body)) = http_parts(&f.response) else {
        return fail(stderr, "wget: error getting response\n".into());
    };
    if code >= 400 {
        let status = head.lines().next().unwrap_or_default().to_string();
        return fail(stderr, format!("wget: server returned error: {status}\n"));
    }
    // `-O FILE`: busybox's wget saves the body there.
    if let Some(file) = out_file.as_deref().filter(|f| *f != "-") {
        if !quiet {
            stderr.push_str(&format!("saving to '{file}'\n"));
        }
        let len = body.len();
        if let Err(e) = ns.write_file(file, body) {
            return fail(stderr, format!("wget: can't open '{file}': {e}\n"));
        }
        if !quiet {
            let base = file.rsplit('/').next().unwrap_or(file);
            stderr.push_str(&format!(
                "{base:<20} 100% |********************************| {len:>5}  0:00:00 ETA\n'{file}' saved\n"
            ));
        }
        return CommandOutput {
            stdout: String::new(),
            stderr,
            exit_code: 0,
        };
    }
    if !quiet {
        stderr.push_str("writing to stdout\n");
    }
    let body = String::from_utf8_lossy(&body).to_string();
    if !quiet {
        stderr.push_str(&format!(
            "-                    100% |********************************| {:>5}  0:00:00 ETA\nwritten to stdout\n",
            body.len()
        ));
    }
    CommandOutput {
        stdout: body,
        stderr,
        exit_code: 0,
    }
}

/// Parsed `curl` options.
#[derive(Clone)]
struct CurlArgs {
    silent: bool,
    show_error: bool,
    include: bool,
    fail: bool,
    null_output: bool,
    max_time: Option<Duration>,
    connect_timeout: Duration,
    headers: Vec<String>,
    repeat: u32,
    url: String,
}

fn curl_args(args: &[String]) -> Result<CurlArgs, CommandOutput> {
    let mut c = CurlArgs {
        silent: false,
        show_error: false,
        include: false,
        fail: false,
        null_output: false,
        max_time: None,
        connect_timeout: Duration::from_secs(300),
        headers: Vec::new(),
        repeat: 1,
        url: String::new(),
    };
    let secs = |v: &str, opt: &str| -> Result<Duration, CommandOutput> {
        if v.parse::<f64>().is_ok_and(|s| s > MAX_WAIT as f64) {
            return Err(CommandOutput::err(too_long(), 2));
        }
        v.parse::<f64>()
            .ok()
            .filter(|s| *s >= 0.0 && s.is_finite())
            .map(|s| Duration((s * 1e9) as u64))
            .ok_or_else(|| {
                CommandOutput::err(
                    format!("curl: option {opt}: expected a proper numerical parameter\ncurl: try 'curl --help' or 'curl --manual' for more information\n"),
                    2,
                )
            })
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let mut value = || {
            i += 1;
            args.get(i).cloned().ok_or_else(|| {
                CommandOutput::err(
                    format!("curl: option {a}: requires parameter\ncurl: try 'curl --help' or 'curl --manual' for more information\n"),
                    2,
                )
            })
        };
        match a {
            "-s" | "--silent" => c.silent = true,
            "-S" | "--show-error" => c.show_error = true,
            "-sS" | "-Ss" => (c.silent, c.show_error) = (true, true),
            "-i" | "--include" => c.include = true,
            "-f" | "--fail" => c.fail = true,
            "-sf" | "-fs" => (c.silent, c.fail) = (true, true),
            "-o" | "--output" => {
                let v = value()?;
                if v != "/dev/null" {
                    return Err(CommandOutput::err(
                        "swarmlab: files are not simulated; curl -o takes only /dev/null\n",
                        2,
                    ));
                }
                c.null_output = true;
            }
            "-m" | "--max-time" => c.max_time = Some(secs(&value()?, a)?),
            "--connect-timeout" => c.connect_timeout = secs(&value()?, a)?,
            "-H" | "--header" => c.headers.push(value()?),
            "--repeat" => {
                let v = value()?;
                c.repeat = v.parse().ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| {
                    CommandOutput::err(
                        format!("swarmlab: curl --repeat takes a count from 1 to 10000, not '{v}'\n"),
                        2,
                    )
                })?;
            }
            s if s.starts_with('-') => {
                return Err(CommandOutput::err(
                    format!("curl: option {s}: is unknown\ncurl: try 'curl --help' or 'curl --manual' for more information\n"),
                    2,
                ))
            }
            s => c.url = s.to_string(),
        }
        i += 1;
    }
    if c.url.is_empty() {
        return Err(CommandOutput::err(
            "curl: no URL specified\ncurl: try 'curl --help' or 'curl --manual' for more information\n",
            2,
        ));
    }
    Ok(c)
}

/// `curl [-s] [-S] [-i] [-f] [-o /dev/null] [-m SEC] [--connect-timeout SEC] [-H H] URL`,
/// plus swarmlab's `--repeat N`: N requests, one reply line each, then a count of the
/// replies per replica (the `Hostname:` a whoami answers with).
pub async fn curl(ns: &mut impl Netns, args: &[String]) -> CommandOutput {
    let c = match curl_args(args) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let url = match parse_url(&c.url) {
        Ok(u) => u,
        Err(e) if e.starts_with("unsupported") => {
            return curl_error(&c, 1, &format!("Protocol \"{}\" not supported", &e[21..]))
        }
        Err(_) => return curl_error(&c, 3, "URL rejected: Bad hostname"),
    };
    let Some(ip) = lookup(ns, &url.host).await else {
        return curl_error(&c, 6, &format!("Could not resolve host: {}", url.host));
    };
    if c.repeat > 1 {
        return curl_repeat(ns, &c, &url, ip).await;
    }
    let timeout = c.max_time.unwrap_or(c.connect_timeout);
    let f = fetch(ns, ip, &url, "curl/8.14.1", &c.headers, timeout).await;
    curl_result(&c, &url, &f)
}

fn curl_error(c: &CurlArgs, code: i32, msg: &str) -> CommandOutput {
    let stderr = if c.silent && !c.show_error {
        String::new()
    } else {
        format!("curl: ({code}) {msg}\n")
    };
    CommandOutput {
        stdout: String::new(),
        stderr,
        exit_code: code,
    }
}

fn curl_result(c: &CurlArgs, url: &Url, f: &Fetch) -> CommandOutput {
    let ms = f.elapsed.as_millis();
    match f.end {
        ClientEnd::Done => {}
        ClientEnd::Refused => {
            return curl_error(
                c,
                7,
                &format!(
                    "Failed to connect to {} port {} after {ms} ms: Could not connect to server",
                    url.host, url.port
                ),
            )
        }
        ClientEnd::Unreachable | ClientEnd::NoPort => {
            return curl_error(
                c,
                7,
                &format!(
                    "Failed to connect to {} port {} after {ms} ms: Could not connect to server",
                    url.host, url.port
                ),
            )
        }
        ClientEnd::TimedOut => {
            let msg = if c.max_time.is_some() {
                format!(
                    "Operation timed out after {ms} milliseconds with {} bytes received",
                    f.response.len()
                )
            } else {
                format!("Connection timed out after {ms} milliseconds")
            };
            return curl_error(c, 28, &msg);
        }
        ClientEnd::Reset => return curl_error(c, 56, "Recv failure: Connection reset by peer"),
    }
    let Some((code, head, body)) = http_parts(&f.response) else {
        return curl_error(c, 52, "Empty reply from server");
    };
    if c.fail && code >= 400 {
        return curl_error(c, 22, &format!("The requested URL returned error: {code}"));
    }
    let mut stdout = String::new();
    if c.null_output {
        return CommandOutput::default();
    }
    if c.include {
        stdout.push_str(&head.replace("\r\n", "\n"));
        stdout.push_str("\n\n");
    }
    stdout.push_str(&String::from_utf8_lossy(&body));
    CommandOutput::out(stdout)
}

/// swarmlab's `--repeat N`.
async fn curl_repeat(ns: &mut impl Netns, c: &CurlArgs, url: &Url, ip: Ipv4Addr) -> CommandOutput {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let (mut stdout, mut failures, mut last_err) = (String::new(), 0u32, String::new());
    let timeout = c.max_time.unwrap_or(c.connect_timeout);
    for n in 1..=c.repeat {
        let f = fetch(ns, ip, url, "curl/8.14.1", &c.headers, timeout).await;
        let loud = CurlArgs {
            silent: false,
            ..c.clone()
        };
        let r = curl_result(&loud, url, &f);
        if r.exit_code != 0 {
            failures += 1;
            last_err = format!("curl exit status {}", r.exit_code);
            stdout.push_str(&format!(
                "{n}: failed ({})\n",
                r.stderr.trim_end().trim_start_matches("curl: ")
            ));
            continue;
        }
        let who = replica_of(ns, &r.stdout);
        stdout.push_str(&format!("{n}: {who}\n"));
        *counts.entry(who).or_default() += 1;
    }
    stdout.push_str(&format!("--- {} requests to {}\n", c.repeat, c.url));
    for (who, n) in &counts {
        stdout.push_str(&format!("{n:>6}  {who}\n"));
    }
    if failures > 0 {
        stdout.push_str(&format!("{failures:>6}  failed ({last_err})\n"));
    }
    CommandOutput {
        stdout,
        stderr: String::new(),
        exit_code: if failures == 0 { 0 } else { 1 },
    }
}

/// Which replica answered: the `Hostname:` of a whoami reply (with the task's container
/// name when the lab knows it), or the reply's first line.
pub fn replica_of(ns: &impl Netns, body: &str) -> String {
    let Some(h) = body.lines().find_map(|l| l.strip_prefix("Hostname: ")) else {
        return body.lines().next().unwrap_or("(empty reply)").to_string();
    };
    match ns.container_named_by_id(h) {
        Some(name) => format!("{h} ({name})"),
        None => h.to_string(),
    }
}

/// busybox `nslookup NAME`, answered by the embedded DNS server at 127.0.0.11.
pub async fn nslookup(ns: &mut impl Netns, args: &[String]) -> CommandOutput {
    let Some(name) = args.iter().find(|a| !a.starts_with('-')) else {
        return CommandOutput::err(
            "BusyBox v1.36.1 multi-call binary.\n\nUsage: nslookup [-type=QUERY_TYPE] [-debug] HOST [DNS_SERVER]\n\nQuery DNS about HOST\n\nQUERY_TYPE: soa,ns,a,aaaa,cname,mx,txt,any,srv,ptr\n",
            1,
        );
    };
    let mut out = "Server:\t\t127.0.0.11\nAddress:\t127.0.0.11:53\n\n".to_string();
    match ns.resolve(name).await {
        Some(ips) => {
            // busybox asks for A and AAAA: the overlay has no IPv6, so the second answer
            // is empty.
            out.push_str("Non-authoritative answer:\n");
            for ip in ips {
                out.push_str(&format!("Name:\t{name}\nAddress: {ip}\n"));
            }
            out.push_str("\nNon-authoritative answer:\n\n");
            CommandOutput::out(out)
        }
        None => {
            let line = format!("** server can't find {name}: NXDOMAIN\n\n");
            out.push_str(&line);
            out.push_str(&line);
            CommandOutput {
                stdout: out,
                stderr: String::new(),
                exit_code: 1,
            }
        }
    }
}

/// `redis-cli [-h HOST] [-p PORT] COMMAND [ARG...]`, printing as it does without a
/// terminal (raw replies).
pub async fn redis_cli(ns: &mut impl Netns, args: &[String]) -> CommandOutput {
    let (mut host, mut port, mut i) = ("127.0.0.1".to_string(), 6379u16, 0);
    while i < args.len() && args[i].starts_with('-') {
        match args[i].as_str() {
            "-h" => host = args.get(i + 1).cloned().unwrap_or_default(),
            "-p" => {
                port = match args.get(i + 1).and_then(|p| p.parse().ok()) {
                    Some(p) => p,
                    None => {
                        return CommandOutput::err("Invalid server port.\n", 1);
                    }
                }
            }
            other => {
                return CommandOutput::err(
                    format!("Unrecognized option or bad number of args for: '{other}'\n"),
                    1,
                )
            }
        }
        i += 2;
    }
    let cmd = args.get(i..).unwrap_or_default().to_vec();
    if cmd.is_empty() {
        return CommandOutput::err(
            "swarmlab: redis-cli's interactive mode is not simulated; give a command (redis-cli -h HOST INCR key)\n",
            1,
        );
    }
    let target = if host == "127.0.0.1" || host == "localhost" {
        Some(ns.own_ip())
    } else {
        lookup(ns, &host).await
    };
    let Some(ip) = target else {
        return CommandOutput::err(
            format!("Could not connect to Redis at {host}:{port}: Name or service not known\n"),
            1,
        );
    };
    let (end, response) = ns
        .request(
            SocketAddrV4::new(ip, port),
            resp_encode(&cmd),
            Framing::Resp,
            Duration::from_secs(30),
        )
        .await;
    let why = match end {
        ClientEnd::Done => None,
        ClientEnd::Refused => Some("Connection refused"),
        ClientEnd::Unreachable => Some("No route to host"),
        ClientEnd::NoPort => Some("Cannot assign requested address"),
        ClientEnd::TimedOut => Some("Connection timed out"),
        ClientEnd::Reset => Some("Connection reset by peer"),
    };
    if let Some(why) = why {
        return CommandOutput::err(
            format!("Could not connect to Redis at {host}:{port}: {why}\n"),
            1,
        );
    }
    match resp_complete(&response) {
        Some(text) => CommandOutput::out(format!("{text}\n")),
        None => CommandOutput::err("Error: Server closed the connection\n", 1),
    }
}

/// busybox `ip addr`: loopback, then each interface with the overlay's 1450 MTU.
pub fn ip(ns: &mut impl Netns, args: &[String]) -> CommandOutput {
    let sub = args.first().map(String::as_str).unwrap_or("");
    let show_only = args.len() == 1 || (args.len() == 2 && args[1] == "show");
    if !matches!(sub, "a" | "addr" | "address") || !show_only {
        return CommandOutput::err("swarmlab: only `ip addr` is simulated here\n", 1);
    }
    let mut out = String::from("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n    inet 127.0.0.1/8 scope host lo\n       valid_lft forever preferred_lft forever\n");
    for (k, i) in ns.interfaces().iter().enumerate() {
        let size = 1u64 << (32 - u32::from(i.prefix.min(32)));
        let mask = !((size - 1) as u32);
        let base = u32::from(i.ip) & mask;
        let brd = Ipv4Addr::from((u64::from(base) + size - 1).min(u64::from(u32::MAX)) as u32);
        let index = 2 * k + 10;
        out.push_str(&format!(
            "{index}: eth{k}@if{}: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu {} qdisc noqueue \n    link/ether {} brd ff:ff:ff:ff:ff:ff\n    inet {}/{} brd {brd} scope global eth{k}\n       valid_lft forever preferred_lft forever\n",
            index + 1,
            i.mtu,
            i.mac,
            i.ip,
            i.prefix
        ));
    }
    CommandOutput::out(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A namespace with one name, one interface, and a server that answers `PONG`.
    struct Fake {
        requests: Vec<SocketAddrV4>,
    }

    impl Netns for Fake {
        fn now(&self) -> Instant {
            Instant(0)
        }
        async fn resolve(&mut self, name: &str) -> Option<Vec<Ipv4Addr>> {
            (name == "db").then(|| vec![Ipv4Addr::new(10, 0, 1, 7)])
        }
        fn own_ip(&self) -> Ipv4Addr {
            Ipv4Addr::new(10, 0, 1, 3)
        }
        async fn request(
            &mut self,
            dst: SocketAddrV4,
            _request: Vec<u8>,
            _framing: Framing,
            _timeout: Duration,
        ) -> (ClientEnd, Vec<u8>) {
            self.requests.push(dst);
            (ClientEnd::Done, b"+PONG\r\n".to_vec())
        }
        fn interfaces(&self) -> Vec<Interface> {
            vec![Interface {
                ip: Ipv4Addr::new(10, 0, 1, 3),
                prefix: 24,
                mac: MacAddr([2, 0x42, 10, 0, 1, 3]),
                mtu: 1450,
            }]
        }
        fn container_named_by_id(&self, _id: &str) -> Option<String> {
            None
        }
        fn write_file(&mut self, _: &str, _: Vec<u8>) -> Result<(), crate::fs::FsError> {
            Err(crate::fs::FsError::NotFound)
        }
    }

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    /// A program's result against `Fake`, which answers at once: one poll ends it.
    fn at_once<T>(program: impl Future<Output = T>) -> T {
        let mut program = std::pin::pin!(program);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match program.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("a program waited on a namespace that never waits"),
        }
    }

    #[test]
    fn programs_see_only_their_namespace() {
        let mut ns = Fake {
            requests: Vec::new(),
        };
        let out = at_once(nslookup(&mut ns, &args("db")));
        assert!(
            out.stdout.contains("Name:\tdb\nAddress: 10.0.1.7"),
            "{out:?}"
        );
        let out = at_once(nslookup(&mut ns, &args("nope")));
        assert_eq!(out.exit_code, 1);
        assert!(out.stdout.contains("can't find nope: NXDOMAIN"), "{out:?}");
        let out = at_once(redis_cli(&mut ns, &args("-h db PING")));
        assert_eq!(out.stdout, "PONG\n", "{out:?}");
        assert_eq!(ns.requests, vec!["10.0.1.7:6379".parse().unwrap()]);
        let out = ip(&mut ns, &args("addr"));
        assert!(
            out.stdout
                .contains("inet 10.0.1.3/24 brd 10.0.1.255 scope global eth0"),
            "{out:?}"
        );
        assert!(out.stdout.contains("mtu 1450"), "{out:?}");
    }
}
