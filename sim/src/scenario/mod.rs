//! The scenario language: a lab sheet, one statement per line.
//!
//! `parse` turns text into `Step`s or a `ParseError` that points at file:line:col, says
//! what was expected and gives a hint. `check` validates names across lines (hosts
//! declared before use, containers that exist). `run` plays the steps on a `Lab`. New
//! directives are added in three places: the `StepKind` enum, the `parse_directive`
//! table, and `run::Runner::step`.

mod parse;
pub mod run;

pub use parse::{check_commands, expand_vars, parse, ParseError, DIRECTIVE_NAMES};

use crate::time::Duration;
use crate::underlay::{LinkParams, PortRule};
use std::net::Ipv4Addr;

/// The default scenario, compiled in (also shipped as `scenarios/default.lab`).
pub const DEFAULT_SCENARIO: &str = include_str!("../../../scenarios/default.lab");

/// A parsed scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// File name, for messages.
    pub file: String,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

/// One line that does something.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based line number.
    pub line: usize,
    /// The line as written, without comment.
    pub text: String,
    /// What it does.
    pub kind: StepKind,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// `host NAME IP [mtu=N]`
    Host {
        /// Name.
        name: String,
        /// Underlay address.
        ip: Ipv4Addr,
        /// MTU.
        mtu: u16,
    },
    /// `hosts n[1-1000] 10.2.0.0/16 [mtu=N]`: many hosts on consecutive addresses.
    Hosts {
        /// Names, in order.
        names: Vec<String>,
        /// Their addresses, in the same order.
        ips: Vec<Ipv4Addr>,
        /// MTU.
        mtu: u16,
    },
    /// `gossip HOSTS join SEEDS`: the members of HOSTS join through SEEDS.
    GossipJoin {
        /// Joining hosts.
        hosts: Vec<String>,
        /// Hosts to join through.
        seeds: Vec<String>,
    },
    /// `gossip HOSTS formed`: the members of HOSTS start as one cluster that has already
    /// formed (every member lists every other alive), for labs too large to join.
    GossipFormed {
        /// The hosts.
        hosts: Vec<String>,
    },
    /// `link A B [latency=..] [jitter=..] [loss=..%] [bandwidth=..mbit]`
    Link {
        /// One end.
        a: String,
        /// Other end.
        b: String,
        /// Properties.
        params: LinkParams,
    },
    /// `overlay NAME vni=N subnet=CIDR hosts=A,B`
    Overlay {
        /// Name.
        name: String,
        /// VNI.
        vni: u32,
        /// Subnet address.
        subnet: Ipv4Addr,
        /// Prefix length.
        prefix: u8,
        /// Hosts.
        hosts: Vec<String>,
    },
    /// `sleep DURATION`
    Sleep(Duration),
    /// `crash HOST`
    Crash(String),
    /// `restart HOST`
    Restart(String),
    /// `partition A,B | C` (both ways) or `partition A,B -> C` (one way).
    Partition {
        /// Left side.
        from: Vec<String>,
        /// Right side.
        to: Vec<String>,
        /// Only from the left to the right.
        one_way: bool,
    },
    /// `heal`
    Heal,
    /// `block HOST PROTO/PORT` or `unblock HOST PROTO/PORT`.
    Block {
        /// Host.
        host: String,
        /// Rule.
        rule: PortRule,
        /// Block (true) or unblock.
        block: bool,
    },
    /// `HOST$ COMMAND...`, or `HOST$ VAR=$(COMMAND...)` to keep its output in a variable.
    /// `$VAR` and `${VAR}` expand in later command lines.
    Command {
        /// Host the command runs on.
        host: String,
        /// Arguments, shell-split (variables still unexpanded).
        argv: Vec<String>,
        /// The variable that receives the standard output (trailing newlines removed).
        assign: Option<String>,
        /// The command line as a shell script, when it needs the shell: operators
        /// (`&&`, `|`, `>`...), a here-document (its lines included), or a program of
        /// the shell's (`mkdir`, `cat`...).
        script: Option<String>,
    },
    /// `expect ...`
    Expect {
        /// What must hold.
        what: Expectation,
        /// Keep trying for this long.
        within: Option<Duration>,
    },
}

/// What an `expect` line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Expectation {
    /// The previous command's standard output contains the text.
    OutputContains(String),
    /// The previous command's standard error contains the text.
    ErrorContains(String),
    /// `expect exit N`: the previous command's exit status.
    Exit(i32),
    /// `expect image H NAME[:TAG] present|absent`: whether host H's engine has it.
    Image {
        /// The host.
        host: String,
        /// The image.
        image: String,
        /// Present (true) or absent.
        present: bool,
    },
    /// `expect file C PATH contains "TEXT"`: a file of a container (a name, or a task
    /// as `SERVICE.SLOT`) or of a host's disk.
    File {
        /// The container, task or host.
        target: String,
        /// The file's path.
        path: String,
        /// What it holds.
        text: String,
    },
    /// `expect member H1 sees H2 alive|suspect|dead|left`.
    Member {
        /// Whose view.
        viewer: String,
        /// About whom.
        member: String,
        /// The state expected.
        state: gossip::State,
    },
    /// `expect members H count N`: H sees N members alive, itself included.
    MemberCount {
        /// Whose view.
        viewer: String,
        /// How many.
        count: usize,
    },
    /// What the swarm's leader says about nodes, services and quorum.
    Swarm(SwarmExpect),
    /// `expect http H:PORT ok|fails`: an HTTP GET from host H to its own published port
    /// gets a reply (or does not).
    Http {
        /// The host (client and target).
        host: String,
        /// The port.
        port: u16,
        /// Expect a reply (true) or a failure.
        ok: bool,
    },
    /// `expect reach C1 C2:PORT ok|fails`: a TCP connection from container C1 to C2's port
    /// (a name the embedded DNS resolves, or an IP) is accepted (or not).
    Reach {
        /// From this container (name, or a task's `SERVICE.SLOT`).
        from: String,
        /// To this name or IP.
        to: String,
        /// The port.
        port: u16,
        /// Expect the handshake to complete (true) or fail.
        ok: bool,
    },
    /// `expect resolve C NAME -> N addresses`: what the embedded DNS answers C.
    Resolve {
        /// The asking container.
        container: String,
        /// The name asked.
        name: String,
        /// How many addresses (0: NXDOMAIN).
        count: usize,
    },
    /// `expect spread H:PORT over S [N requests]`: every running replica of S answers
    /// requests to H:PORT, and under rr the counts differ by at most 1.
    Spread {
        /// The host (client and target).
        host: String,
        /// The port.
        port: u16,
        /// The service.
        service: String,
        /// How many requests (default: three per running replica).
        requests: Option<u32>,
    },
    /// One ICMP echo from a container to another gets (or does not get) its reply.
    Ping {
        /// From this container.
        from: String,
        /// To this container (name or IP).
        to: String,
        /// Expect success (true) or failure.
        ok: bool,
    },
}

/// Expectations about the swarm, read from the leader's store (what `docker node ls`
/// and `docker service ps` on a manager would show).
#[derive(Debug, Clone, PartialEq)]
pub enum SwarmExpect {
    /// `expect node H status ready|down`
    NodeStatus {
        /// Host name.
        node: String,
        /// `ready` or `down`.
        status: String,
    },
    /// `expect node H availability active|pause|drain`
    NodeAvailability {
        /// Host name.
        node: String,
        /// The availability.
        availability: String,
    },
    /// `expect node H manager leader|reachable|unreachable|none`
    NodeManager {
        /// Host name.
        node: String,
        /// MANAGER STATUS, lower case; `none` for a worker.
        status: String,
    },
    /// `expect service S running N`
    ServiceRunning {
        /// Service name.
        service: String,
        /// Running tasks.
        count: usize,
    },
    /// `expect service S on H1,H2`: the set of nodes running its tasks.
    ServiceOn {
        /// Service name.
        service: String,
        /// Host names.
        hosts: Vec<String>,
    },
    /// `expect quorum ok|lost`
    Quorum {
        /// Whether a leader with a quorum exists.
        ok: bool,
    },
    /// `expect leader H`
    Leader {
        /// Host name.
        host: String,
    },
}
