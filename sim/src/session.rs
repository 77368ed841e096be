//! A session: one lab being played, and the timeline it prints as it goes. It is what
//! advances virtual time for a scenario (and, next, for the interactive shell and the
//! reports): it lets time pass, waits for a condition with a deadline, and runs a
//! student's command on a host.
//!
//! It is the only thing above the world that lets time pass. A command is a coroutine
//! (`async fn` over a `Cx`) that says what it waits for (`docker service create`
//! following its tasks, `curl` waiting for its answer); the session steps the world
//! meanwhile, with the world's `cx::drive`. No command runs the clock.

use crate::cli::docker::{self, CommandOutput};
use crate::lab::cx::{drive, Cx};
use crate::lab::Lab;
use crate::report::timeline::{Timeline, View};
use crate::time::{Duration, Instant};
use crate::trace::TraceEvent;
use crate::underlay::HostId;

/// Run one command line on `host` to its end, letting the lab's time pass while it waits:
/// a session of one command, for tests, benchmarks and examples.
pub fn execute(lab: &mut Lab, host: HostId, argv: &[String]) -> CommandOutput {
    let cx = Cx::new(lab);
    drive(&cx, docker::execute(&cx, host, argv))
}

/// A lab being played, with its timeline.
pub struct Session {
    /// The lab. The scenario runner reads it and changes it (hosts, links, faults), but
    /// lets time pass only through the session's methods.
    pub(crate) lab: Lab,
    out: Timeline,
}

impl Session {
    /// A new lab with its random source seeded by `seed`. `capture` keeps every
    /// underlay frame for pcap output; `stream` receives the timeline line by line.
    pub fn new(seed: u64, capture: bool, stream: Option<Box<dyn std::io::Write>>) -> Session {
        Session::with_view(seed, capture, stream, View::default())
    }

    /// A new session whose stream shows the timeline as `view` says (colours, quiet,
    /// verbose).
    pub fn with_view(
        seed: u64,
        capture: bool,
        stream: Option<Box<dyn std::io::Write>>,
        view: View,
    ) -> Session {
        let mut lab = Lab::new(seed);
        lab.capture = capture;
        let out = Timeline::new(stream, view);
        lab.trace.watch(out.watcher());
        Session { lab, out }
    }

    /// The lab, to look at.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.lab.now()
    }

    /// The timeline, to write to.
    pub fn timeline(&self) -> &Timeline {
        &self.out
    }

    /// Let `d` of virtual time pass.
    pub fn sleep(&mut self, d: Duration) {
        let until = self.now() + d;
        self.lab.run_until(until);
    }

    /// Let time pass until `at` (nothing when it is already past).
    pub fn sleep_until(&mut self, at: Instant) {
        let at = at.max(self.now());
        self.lab.run_until(at);
    }

    /// Let time pass until `cond` holds or `deadline` comes; returns whether it held.
    pub fn wait_until(&mut self, deadline: Instant, cond: impl FnMut(&Lab) -> bool) -> bool {
        self.lab.run_until_or(deadline, cond)
    }

    /// Run `f` (a command, a probe) to its end, letting time pass while it waits.
    pub fn run<T>(&mut self, f: impl AsyncFnOnce(&Cx<'_>) -> T) -> T {
        let cx = Cx::new(&mut self.lab);
        drive(&cx, f(&cx))
    }

    /// Run a command as a student types it on `host`, recording its output in the trace.
    pub fn command(&mut self, host: HostId, argv: &[String]) -> CommandOutput {
        let out = execute(&mut self.lab, host, argv);
        self.record_output(host, &out);
        out
    }

    /// Run a line through `host`'s shell (bash on the host's filesystem), with the
    /// scenario's variables, recording its output in the trace.
    pub fn shell(
        &mut self,
        host: HostId,
        script: &str,
        vars: &std::collections::BTreeMap<String, String>,
    ) -> CommandOutput {
        let out = self.run(async |cx| docker::host_shell(cx, host, script, vars).await);
        self.record_output(host, &out);
        out
    }

    fn record_output(&mut self, host: HostId, out: &CommandOutput) {
        let at = self.now();
        let name = self.lab.host_name(host).to_string();
        for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            if !text.is_empty() {
                self.lab.trace.push(
                    at,
                    TraceEvent::Output {
                        host: name.clone(),
                        stream,
                        text: text.clone(),
                        exit_code: out.exit_code,
                    },
                );
            }
        }
    }

    /// One ICMP echo from a container, waiting at most `timeout` for the reply (and a
    /// few seconds more for ARP): Ok(round trip), or why there was none.
    pub fn echo(
        &mut self,
        src: crate::ids::ContainerId,
        to: &str,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let c = &self.lab.containers[src.0];
        if !c.running {
            return Err(format!("container {} is not running", c.name));
        }
        let Some(dst) = self.lab.resolve(src, to) else {
            return Err(format!(
                "{to} does not resolve on {}'s network",
                self.lab.containers[src.0].name
            ));
        };
        let id = self.lab.start_ping(
            src,
            to,
            dst,
            crate::ping::PingOptions {
                count: 1,
                timeout,
                ..Default::default()
            },
        );
        let horizon = self.now() + timeout + Duration::from_secs(4);
        self.wait_until(horizon, |lab| lab.pings[id.0].finished);
        let p = &self.lab.pings[id.0];
        if let Some(rtt) = p.first_rtt() {
            Ok(rtt)
        } else if p.unreachable() {
            Err(format!("{to} ({dst}) unreachable: ARP got no answer"))
        } else {
            Err(format!("no reply from {to} ({dst}) within {timeout}"))
        }
    }

    /// The lab and the whole timeline, once the session ends.
    pub fn finish(self) -> (Lab, String) {
        let text = self.out.text();
        (self.lab, text)
    }
}
