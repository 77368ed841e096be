//! Playing a scenario on a lab: each step at the current virtual time, a readable
//! timeline, and the verdict of every expectation.

use super::{Expectation, Scenario, Step, StepKind, SwarmExpect};
use crate::cli::docker::CommandOutput;
use crate::lab::{Lab, Subnet};
use crate::report::timeline::{Kind, View};
use crate::session::Session;
use crate::time::{Duration, Instant};
use crate::trace::{MemberChange, TraceEvent};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// How long one `expect ping` probe waits for its reply.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The result of a run.
pub struct Outcome {
    /// The lab as the scenario left it (trace, captures, counters).
    pub lab: Lab,
    /// The timeline, as printed.
    pub timeline: String,
    /// Expectations that held.
    pub held: usize,
    /// Expectations that failed.
    pub failed: usize,
    /// Under `--strict`, commands that exited non-zero when nothing expected it.
    pub failed_commands: usize,
    /// What failed, in order: `FILE:LINE: the line -- why`.
    pub failures: Vec<String>,
}

impl Outcome {
    /// Exit status: 0 when every expectation held (and, under `--strict`, no command
    /// failed unexpectedly), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.failed == 0 && self.failed_commands == 0 {
            0
        } else {
            1
        }
    }
}

/// How to run a scenario.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Keep every underlay frame for pcap output.
    pub capture: bool,
    /// A command that exits non-zero fails the run, unless the lab expects it (`expect
    /// exit N` or `expect error contains` right after it).
    pub strict: bool,
    /// Stop at the first failure.
    pub fail_fast: bool,
    /// How the stream shows the timeline.
    pub view: View,
    /// Show a progress indicator on stderr (only on a terminal): virtual time, steps
    /// done, events per second.
    pub progress: bool,
    /// Count the underlay's traffic by port, for the HTML report.
    pub count_traffic: bool,
}

struct Runner {
    s: Session,
    file: String,
    options: Options,
    vars: BTreeMap<String, String>,
    last: Option<CommandOutput>,
    /// The last command's line and text, while its non-zero exit has not been expected.
    unexpected_exit: Option<(usize, String)>,
    held: usize,
    failed: usize,
    failed_commands: usize,
    failures: Vec<String>,
}

impl Runner {
    fn any_failed(&self) -> bool {
        self.failed + self.failed_commands > 0
    }
}

/// Run a scenario with a seed. `capture` keeps every underlay frame for pcap output.
pub fn run(scenario: &Scenario, seed: u64, capture: bool) -> Outcome {
    run_streaming(scenario, seed, capture, None)
}

/// Run a scenario, writing its timeline to `stream` line by line as the steps happen
/// (and keeping it whole in the outcome).
pub fn run_streaming(
    scenario: &Scenario,
    seed: u64,
    capture: bool,
    stream: Option<Box<dyn std::io::Write>>,
) -> Outcome {
    let options = Options {
        capture,
        ..Default::default()
    };
    run_with(scenario, seed, options, stream)
}

/// Run a scenario with options, streaming its timeline to `stream` as `options.view`
/// shows it.
pub fn run_with(
    scenario: &Scenario,
    seed: u64,
    options: Options,
    stream: Option<Box<dyn std::io::Write>>,
) -> Outcome {
    let bar = options.progress.then(progress_bar);
    // The timeline's lines clear the spinner before they are written, so that the two
    // do not mix on a terminal.
    let stream = match (&bar, stream) {
        (Some((bar, _)), Some(inner)) => Some(Box::new(Suspending {
            bar: bar.clone(),
            inner,
        }) as Box<dyn std::io::Write>),
        (_, stream) => stream,
    };
    let mut p = Player::new(&scenario.file, seed, options, stream);
    if let Some((bar, done)) = &bar {
        let (b, d, steps) = (bar.clone(), done.clone(), scenario.steps.len());
        let shown = std::cell::Cell::new(false);
        p.r.s.lab.progress = Some(Box::new(move |now, events| {
            // Drawn once the run is long enough to have handled `PROGRESS_EVERY` events:
            // a short lab shows no spinner.
            if !shown.replace(true) {
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            // indicatif's own clock: the display's, never the lab's.
            let rate = events as f64 / b.elapsed().as_secs_f64().max(1e-3);
            let rate = if rate >= 1e6 {
                format!("{:.1}M", rate / 1e6)
            } else {
                format!("{:.0}k", rate / 1e3)
            };
            b.set_message(format!("{now}, step {}/{steps}, {rate} events/s", d.get()));
            b.tick();
        }));
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        if options.fail_fast && p.r.any_failed() {
            break;
        }
        if let Some((bar, done)) = &bar {
            done.set(i);
            bar.set_message(format!(
                "{}, step {i}/{}",
                p.lab().now(),
                scenario.steps.len()
            ));
        }
        p.play(step);
    }
    if let Some((bar, _)) = bar {
        bar.finish_and_clear();
    }
    p.finish()
}

/// A spinner on stderr that the lab updates as it runs: virtual time, steps done, and
/// events per second (indicatif draws nothing when stderr is not a terminal). It starts
/// hidden: the lab shows it when the run gets long.
fn progress_bar() -> (indicatif::ProgressBar, std::rc::Rc<std::cell::Cell<usize>>) {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} virtual {msg}, {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    (bar, std::rc::Rc::new(std::cell::Cell::new(0)))
}

/// The timeline's stream, written with the progress spinner cleared.
struct Suspending {
    bar: indicatif::ProgressBar,
    inner: Box<dyn std::io::Write>,
}

impl std::io::Write for Suspending {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let inner = &mut self.inner;
        self.bar.suspend(|| inner.write(b))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let inner = &mut self.inner;
        self.bar.suspend(|| inner.flush())
    }
}

/// A scenario being played one step at a time (a file by `run_with`, a student's lines
/// by the shell), with its timeline and its verdicts so far.
pub struct Player {
    r: Runner,
}

impl Player {
    /// A new lab, seeded, whose timeline starts with the file's name.
    pub fn new(
        file: &str,
        seed: u64,
        options: Options,
        stream: Option<Box<dyn std::io::Write>>,
    ) -> Player {
        let mut s = Session::with_view(seed, options.capture, stream, options.view);
        if options.count_traffic {
            s.lab.trace.count_traffic();
        }
        let r = Runner {
            s,
            file: file.to_string(),
            options,
            vars: BTreeMap::new(),
            last: None,
            unexpected_exit: None,
            held: 0,
            failed: 0,
            failed_commands: 0,
            failures: Vec::new(),
        };
        r.s.timeline()
            .raw_as(Kind::Header, &format!("swarmlab: {file} (seed {seed})\n"));
        Player { r }
    }

    /// Play one step, with what it saw dropped and gossip's membership changes after it.
    pub fn play(&mut self, step: &Step) {
        let r = &mut self.r;
        if !matches!(step.kind, StepKind::Expect { .. }) {
            r.settle_exit();
        }
        let mark = r.s.lab.trace.events().len();
        let at = r.s.lab.now();
        r.s.lab.trace.push(
            at,
            TraceEvent::Step {
                line: step.line,
                text: step.text.clone(),
            },
        );
        r.step(step);
        r.report_drops(mark);
        r.report_gossip(mark);
    }

    /// The lab, to look at.
    pub fn lab(&self) -> &Lab {
        self.r.s.lab()
    }

    /// Stream the timeline to `stream` from now on.
    pub fn set_stream(&mut self, stream: Option<Box<dyn std::io::Write>>) {
        self.r.s.timeline().set_stream(stream);
    }

    /// The variables set so far (`HOST$ NAME=$(COMMAND)`).
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.r.vars
    }

    /// Expectations held and failed so far.
    pub fn verdicts(&self) -> (usize, usize) {
        (self.r.held, self.r.failed)
    }

    /// The summary, and the outcome.
    pub fn finish(mut self) -> Outcome {
        let r = &mut self.r;
        if !(r.options.fail_fast && r.any_failed()) {
            r.settle_exit();
        }
        let total = r.held + r.failed;
        let now = r.s.now();
        let commands = match r.failed_commands {
            0 => String::new(),
            1 => "; 1 command exited non-zero unexpectedly (--strict)".to_string(),
            n => format!("; {n} commands exited non-zero unexpectedly (--strict)"),
        };
        let stopped = if r.options.fail_fast && r.any_failed() {
            " (stopped at the first failure: --fail-fast)"
        } else {
            ""
        };
        r.s.timeline().line_as(
            now,
            Kind::Summary,
            &format!(
                "scenario finished: {total} expectation{}, {} held, {} failed{commands}{stopped}",
                if total == 1 { "" } else { "s" },
                r.held,
                r.failed
            ),
        );
        if !r.failures.is_empty() {
            let list: String = r
                .failures
                .iter()
                .map(|f| format!("            {f}\n"))
                .collect();
            r.s.timeline()
                .raw_as(Kind::Summary, &format!("            failed:\n{list}"));
        }
        let Runner {
            s,
            held,
            failed,
            failed_commands,
            failures,
            ..
        } = self.r;
        let (lab, timeline) = s.finish();
        Outcome {
            lab,
            timeline,
            held,
            failed,
            failed_commands,
            failures,
        }
    }
}

impl Runner {
    fn say(&mut self, at: Instant, text: &str) {
        self.s.timeline().line(at, text);
    }

    fn fault(&mut self, at: Instant, text: &str) {
        self.s.timeline().line_as(at, Kind::Fault, text);
    }

    /// Under `--strict`, a command that exited non-zero and that no expectation after it
    /// expected fails the run.
    fn settle_exit(&mut self) {
        let Some((line, text)) = self.unexpected_exit.take() else {
            return;
        };
        if !self.options.strict {
            return;
        }
        let code = self.last.as_ref().map_or(0, |o| o.exit_code);
        let at = self.s.now();
        let what = format!(
            "{}:{line}: {text} -- exit status {code}, not expected (--strict)",
            self.file
        );
        self.s.timeline().verdict(at, false, &what);
        self.failed_commands += 1;
        self.failures.push(what);
    }

    fn host(&self, name: &str) -> crate::underlay::HostId {
        // `check` guarantees declared hosts.
        self.s
            .lab
            .underlay
            .by_name(name)
            .expect("host checked by the parser")
    }

    fn step(&mut self, step: &Step) {
        let now = self.s.lab.now();
        match &step.kind {
            StepKind::Host { name, ip, mtu } => {
                self.s.lab.add_host(name, *ip, *mtu);
                self.say(now, &format!("host {name} {ip} up (mtu {mtu})"));
            }
            StepKind::Hosts { names, ips, mtu } => {
                for (name, ip) in names.iter().zip(ips) {
                    self.s.lab.add_host(name, *ip, *mtu);
                }
                let (first, last) = (&names[0], &names[names.len() - 1]);
                let (a, b) = (ips[0], ips[ips.len() - 1]);
                self.say(
                    now,
                    &format!(
                        "hosts {first}..{last} ({} hosts) on {a}..{b} up (mtu {mtu})",
                        names.len()
                    ),
                );
            }
            StepKind::GossipFormed { hosts } => {
                let ids: Vec<_> = hosts.iter().map(|h| self.host(h)).collect();
                self.s.lab.gossip_formed(&ids);
                self.say(
                    now,
                    &format!(
                        "gossip {} formed: {} members list each other alive (no join traffic)",
                        short_list(hosts),
                        ids.len()
                    ),
                );
            }
            StepKind::GossipJoin { hosts, seeds } => {
                let seed_ids: Vec<_> = seeds.iter().map(|h| self.host(h)).collect();
                for h in hosts {
                    let id = self.host(h);
                    let others: Vec<_> = seed_ids.iter().copied().filter(|s| *s != id).collect();
                    if !others.is_empty() {
                        self.s.lab.gossip_join(id, &others);
                    }
                }
                self.say(
                    now,
                    &format!(
                        "gossip {} join {} (push/pull over tcp/7946)",
                        short_list(hosts),
                        short_list(seeds)
                    ),
                );
            }
            StepKind::Link { a, b, params } => {
                let (ha, hb) = (self.host(a), self.host(b));
                self.s.lab.set_link(ha, hb, *params);
                let mut s = format!("link {a} <-> {b} latency={}", params.latency);
                if params.jitter > Duration::ZERO {
                    let _ = write!(s, " jitter={}", params.jitter);
                }
                let _ = write!(s, " loss={}%", percent(params.loss));
                if let Some(bw) = params.bandwidth {
                    let _ = write!(s, " bandwidth={}kbit", bw / 1000);
                }
                self.say(now, &s);
            }
            StepKind::Overlay {
                name,
                vni,
                subnet,
                prefix,
                hosts,
            } => {
                let ids = hosts.iter().map(|h| self.host(h)).collect();
                let vni_v = vxlan::Vni::new(*vni).expect("VNI range checked by the parser");
                self.s.lab.add_overlay(
                    name,
                    vni_v,
                    Subnet {
                        base: *subnet,
                        prefix: *prefix,
                    },
                    ids,
                );
                self.say(
                    now,
                    &format!(
                        "overlay {name}: vni {vni}, subnet {subnet}/{prefix}, on {}",
                        hosts.join(", ")
                    ),
                );
            }
            StepKind::Sleep(d) => {
                // Said first: the events of the sleep stream after it, in time order.
                self.say(now, &format!("sleep {d}"));
                self.s.sleep(*d);
            }
            StepKind::Crash(h) => {
                let id = self.host(h);
                self.s.lab.crash(id);
                self.fault(now, &format!("crash {h}: host down, its containers die"));
            }
            StepKind::Restart(h) => {
                let id = self.host(h);
                self.s.lab.restart(id);
                self.fault(now, &format!("restart {h}: host up again"));
            }
            StepKind::Partition { from, to, one_way } => {
                let ids = |v: &[String]| {
                    v.iter()
                        .map(|h| self.host(h))
                        .collect::<std::collections::BTreeSet<_>>()
                };
                let (a, b) = (ids(from), ids(to));
                self.s.lab.underlay.cut(a.clone(), b.clone());
                if !one_way {
                    self.s.lab.underlay.cut(b, a);
                }
                let arrow = if *one_way { "->" } else { "|" };
                self.fault(
                    now,
                    &format!("partition {} {arrow} {}", from.join(","), to.join(",")),
                );
            }
            StepKind::Heal => {
                self.s.lab.underlay.heal();
                self.fault(now, "heal: every partition removed");
            }
            StepKind::Block { host, rule, block } => {
                let id = self.host(host);
                let changed = self.s.lab.underlay.set_blocked(id, *rule, *block);
                let verb = if *block { "block" } else { "unblock" };
                let note = if changed { "" } else { " (no change)" };
                self.fault(now, &format!("{verb} {host} inbound {rule}{note}"));
            }
            StepKind::Command {
                host,
                argv,
                assign,
                script,
            } => {
                let id = self.host(host);
                let argv: Vec<String> = argv
                    .iter()
                    .map(|a| super::expand_vars(a, &self.vars))
                    .collect();
                let line = match (assign, script) {
                    (Some(v), _) => format!("{host}$ {v}=$({})", shell_join(&argv)),
                    // A script is shown as written: the shell expands it.
                    (None, Some(script)) => {
                        format!("{host}$ {}", script.replace('\n', "\n            "))
                    }
                    (None, None) => format!("{host}$ {}", shell_join(&argv)),
                };
                self.say(now, &line);
                let out = match script {
                    Some(script) => self.s.shell(id, script, &self.vars),
                    None => self.s.command(id, &argv),
                };
                if let Some(v) = assign {
                    self.vars
                        .insert(v.clone(), out.stdout.trim_end_matches('\n').to_string());
                }
                let t = self.s.timeline();
                t.output(&out.stdout);
                t.output(&out.stderr);
                if out.exit_code != 0 {
                    t.raw_as(
                        Kind::Exit,
                        &format!("            (exit status {})\n", out.exit_code),
                    );
                    self.unexpected_exit = Some((step.line, step.text.clone()));
                }
                self.last = Some(out);
            }
            StepKind::Expect { what, within } => self.expect(step, what, *within),
        }
    }

    fn expect(&mut self, step: &Step, what: &Expectation, within: Option<Duration>) {
        if matches!(what, Expectation::ErrorContains(_) | Expectation::Exit(_)) {
            // The lab looks at the command's failure: it was expected.
            self.unexpected_exit = None;
        }
        let (held, detail) = match what {
            Expectation::Image {
                host,
                image,
                present,
            } => {
                let h = self.host(host);
                let has = |lab: &Lab| lab.images_of(h).get(image).is_some();
                let want = *present;
                let waited = self.wait(within, |lab: &Lab| has(lab) == want);
                let now = has(&self.s.lab);
                let shown = if now { "present" } else { "absent" };
                (now == want, format!("{image} is {shown} on {host}{waited}"))
            }
            Expectation::File { target, path, text } => {
                let seen = |lab: &Lab| file_of(lab, target, path);
                let waited = self.wait(within, |lab: &Lab| {
                    seen(lab).is_ok_and(|t| t.contains(text.as_str()))
                });
                match seen(&self.s.lab) {
                    Ok(t) if t.contains(text.as_str()) => {
                        (true, format!("{target}:{path} holds it{waited}"))
                    }
                    Ok(t) => (
                        false,
                        format!(
                            "{target}:{path} does not hold it (first line: {:?}){waited}",
                            t.lines().next().unwrap_or("")
                        ),
                    ),
                    Err(e) => (false, format!("{e}{waited}")),
                }
            }
            Expectation::Exit(want) => {
                let got = self.last.as_ref().map_or(0, |o| o.exit_code);
                (got == *want, format!("exit status {got}"))
            }
            Expectation::OutputContains(t) | Expectation::ErrorContains(t) => {
                let last = self.last.clone().unwrap_or_default();
                let (stream, text) = match what {
                    Expectation::OutputContains(_) => ("output", last.stdout),
                    _ => ("error output", last.stderr),
                };
                if text.contains(t.as_str()) {
                    (true, format!("found in the {stream}"))
                } else {
                    // A finished command's output cannot change: waiting only moves
                    // the clock to the deadline, where the expectation fails.
                    let waited = match within {
                        Some(w) => {
                            self.s.sleep(w);
                            format!(" (still so after {w})")
                        }
                        None => String::new(),
                    };
                    let first = text.lines().next().unwrap_or("");
                    (
                        false,
                        format!("not in the {stream} (first line: {first:?}){waited}"),
                    )
                }
            }
            Expectation::Ping { from, to, ok } => self.expect_ping(from, to, *ok, within),
            Expectation::Http { host, port, ok } => {
                let h = self.host(host);
                let port = *port;
                self.retry(*ok, within, |s| {
                    s.run(async |cx| crate::observe::http_probe(cx, h, port).await)
                })
            }
            Expectation::Reach { from, to, port, ok } => {
                let (from, to, port) = (from.clone(), to.clone(), *port);
                self.retry(*ok, within, |s| {
                    s.run(async |cx| crate::observe::reach_probe(cx, &from, &to, port).await)
                })
            }
            Expectation::Resolve {
                container,
                name,
                count,
            } => {
                let seen = |lab: &Lab| {
                    crate::observe::find_container(lab, container)
                        .map(|c| lab.dns_lookup(c, name).map_or(0, |v| v.len()))
                };
                let want = *count;
                let waited = self.wait(within, |lab: &Lab| seen(lab) == Some(want));
                match seen(&self.s.lab) {
                    None => (false, format!("container {container} is not running")),
                    Some(n) => {
                        let answer = crate::observe::shown_answer(
                            &self.s.lab.dns_lookup(
                                crate::observe::find_container(&self.s.lab, container)
                                    .unwrap_or(crate::lab::ContainerId(0)),
                                name,
                            ),
                        );
                        (n == want, format!("{name} -> {answer}{waited}"))
                    }
                }
            }
            Expectation::Spread {
                host,
                port,
                service,
                requests,
            } => {
                let h = self.host(host);
                let start = self.s.lab.now();
                let deadline = start + within.unwrap_or(Duration::ZERO);
                loop {
                    let (port, requests) = (*port, *requests);
                    let r = self.s.run(async |cx| {
                        crate::observe::spread_probe(cx, h, port, service, requests).await
                    });
                    if r.is_ok() || self.s.lab.now() >= deadline {
                        let waited = if within.is_some() {
                            format!(", after {}", fmt_secs(self.s.lab.now() - start))
                        } else {
                            String::new()
                        };
                        break match r {
                            Ok(s) => (true, format!("{s}{waited}")),
                            Err(e) => (false, e),
                        };
                    }
                    let next = (self.s.now() + Duration::from_secs(1)).min(deadline);
                    self.s.sleep_until(next);
                }
            }
            Expectation::Swarm(e) => {
                let waited = self.wait(within, |lab: &Lab| observe(lab, e).0);
                let (held, seen) = observe(&self.s.lab, e);
                (held, format!("{seen}{waited}"))
            }
            Expectation::Member {
                viewer,
                member,
                state,
            } => {
                let v = self.host(viewer);
                let want = *state;
                let check = |lab: &Lab| lab.gossip_state(v, member) == Some(want);
                let waited = self.wait(within, check);
                let seen = self.s.lab.gossip_state(v, member);
                let shown = |s: Option<gossip::State>| match s {
                    Some(s) => format!("{s:?}").to_lowercase(),
                    None => "unknown".to_string(),
                };
                (
                    seen == Some(want),
                    format!("{viewer} sees {member} {}{waited}", shown(seen)),
                )
            }
            Expectation::MemberCount { viewer, count } => {
                let v = self.host(viewer);
                let n = *count;
                let waited = self.wait(within, |lab: &Lab| lab.gossip_alive_count(v) == n);
                let seen = self.s.lab.gossip_alive_count(v);
                (
                    seen == n,
                    format!("{viewer} sees {seen} members alive{waited}"),
                )
            }
        };
        let at = self.s.lab.now();
        self.s.lab.trace.push(
            at,
            TraceEvent::Expectation {
                line: step.line,
                text: step.text.clone(),
                held,
                detail: detail.clone(),
            },
        );
        if held {
            self.s
                .timeline()
                .verdict(at, true, &format!("{} -- {detail}", step.text));
            self.held += 1;
        } else {
            let what = format!("{}:{}: {} -- {detail}", self.file, step.line, step.text);
            self.s.timeline().verdict(at, false, &what);
            self.failed += 1;
            self.failures.push(what);
        }
    }

    /// One echo probe (or several, every second, under `within`).
    fn expect_ping(
        &mut self,
        from: &str,
        to: &str,
        ok: bool,
        within: Option<Duration>,
    ) -> (bool, String) {
        let start = self.s.lab.now();
        let deadline = start + within.unwrap_or(Duration::ZERO);
        let Some(src) = self
            .s
            .lab
            .container_by_ref(from)
            .filter(|c| self.s.lab.exists(*c))
        else {
            return (false, format!("container {from} does not exist"));
        };
        loop {
            let probe_start = self.s.lab.now();
            let result = self.probe(src, to);
            let success = result.is_ok();
            if success == ok {
                let waited = self.s.lab.now() - start;
                let how = match result {
                    Ok(rtt) => format!("reply in {} ms", crate::ping::format_rtt(rtt)),
                    Err(e) => e,
                };
                let after = if within.is_some() {
                    format!(", after {}", fmt_secs(waited))
                } else {
                    String::new()
                };
                return (true, format!("{how}{after}"));
            }
            if self.s.lab.now() >= deadline {
                let how = match result {
                    Ok(rtt) => format!("got a reply in {} ms", crate::ping::format_rtt(rtt)),
                    Err(e) => e,
                };
                let span = match within {
                    Some(w) => format!(" (still so after {w})"),
                    None => String::new(),
                };
                return (false, format!("{how}{span}"));
            }
            // Next probe one second after the previous one started.
            let next = (probe_start + Duration::from_secs(1)).max(self.s.now());
            self.s.sleep_until(next.min(deadline));
        }
    }

    /// Probe until the outcome is the expected one (`ok`) or `within` runs out; a probe
    /// starts every second.
    fn retry(
        &mut self,
        ok: bool,
        within: Option<Duration>,
        mut probe: impl FnMut(&mut Session) -> Result<String, String>,
    ) -> (bool, String) {
        let start = self.s.lab.now();
        let deadline = start + within.unwrap_or(Duration::ZERO);
        loop {
            let probe_start = self.s.lab.now();
            let result = probe(&mut self.s);
            let text = match &result {
                Ok(s) | Err(s) => s.clone(),
            };
            if result.is_ok() == ok {
                let after = if within.is_some() {
                    format!(", after {}", fmt_secs(self.s.lab.now() - start))
                } else {
                    String::new()
                };
                return (true, format!("{text}{after}"));
            }
            if self.s.lab.now() >= deadline {
                let span = match within {
                    Some(w) => format!(" (still so after {w})"),
                    None => String::new(),
                };
                return (false, format!("{text}{span}"));
            }
            let next = (probe_start + Duration::from_secs(1)).max(self.s.now());
            self.s.sleep_until(next.min(deadline));
        }
    }

    /// One ICMP echo: Ok(rtt) or Err(why not).
    fn probe(&mut self, src: crate::lab::ContainerId, to: &str) -> Result<Duration, String> {
        self.s.echo(src, to, PROBE_TIMEOUT)
    }

    /// Run the lab until `cond` holds or `within` passes; says how long it waited.
    fn wait(&mut self, within: Option<Duration>, cond: impl Fn(&Lab) -> bool) -> String {
        let start = self.s.lab.now();
        let Some(w) = within else {
            return String::new();
        };
        let held = self.s.wait_until(start + w, |lab| cond(lab));
        let waited = fmt_secs(self.s.lab.now() - start);
        if held {
            format!(", after {waited}")
        } else {
            format!(" (still so after {w})")
        }
    }

    /// After a step, summarise the membership changes gossip reported, grouped by what
    /// happened to whom, with who saw it and why.
    fn report_gossip(&mut self, mark: usize) {
        // (member, change) -> who saw it (in order), when first, and why; groups in the
        // order they first appear, found through an index (N members' views of N joins
        // make N² events).
        type Seen = ((String, MemberChange), Vec<String>, Instant, String);
        let mut groups: Vec<Seen> = Vec::new();
        let mut index: BTreeMap<(&str, MemberChange), (usize, BTreeSet<&str>)> = BTreeMap::new();
        for (at, e) in &self.s.lab.trace.events()[mark..] {
            let TraceEvent::Gossip {
                host,
                kind,
                member,
                reason,
                ..
            } = e
            else {
                continue;
            };
            if host == member && *kind == MemberChange::Joined {
                continue; // every member announces itself at start
            }
            match index.get_mut(&(member.as_str(), *kind)) {
                Some((g, seen)) => {
                    if seen.insert(host.as_str()) {
                        groups[*g].1.push(host.clone());
                    }
                }
                None => {
                    index.insert(
                        (member.as_str(), *kind),
                        (groups.len(), BTreeSet::from([host.as_str()])),
                    );
                    groups.push((
                        (member.clone(), *kind),
                        vec![host.clone()],
                        *at,
                        reason.clone(),
                    ));
                }
            }
        }
        let total = groups.len();
        for ((member, kind), seen_by, at, reason) in groups.into_iter().take(20) {
            let what = crate::trace::change_text(kind);
            self.s.timeline().raw_as(
                Kind::Gossip,
                &format!(
                    "            ~ {member} {what}: seen by {} (first by {} at {at}: {reason})\n",
                    short_list(&seen_by),
                    seen_by[0]
                ),
            );
        }
        if total > 20 {
            self.s.timeline().raw_as(
                Kind::Gossip,
                &format!(
                    "            ~ ... and {} more membership changes\n",
                    total - 20
                ),
            );
        }
    }

    /// After a step, summarise the frames it saw dropped, grouped by place and reason.
    fn report_drops(&mut self, mark: usize) {
        let mut groups: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (_, e) in &self.s.lab.trace.events()[mark..] {
            match e {
                TraceEvent::UnderlayDrop { host, reason, .. } => {
                    *groups.entry((host.clone(), reason.clone())).or_default() += 1
                }
                TraceEvent::VtepDrop { host, reason } => {
                    *groups
                        .entry((host.clone(), format!("VTEP drop: {reason}")))
                        .or_default() += 1
                }
                TraceEvent::StackDrop { at, reason } => {
                    *groups.entry((at.clone(), reason.clone())).or_default() += 1
                }
                TraceEvent::ArpFailed { container, ip } => {
                    *groups
                        .entry((container.clone(), format!("ARP for {ip} unanswered")))
                        .or_default() += 1
                }
                _ => {}
            }
        }
        let total = groups.len();
        if total > 12 {
            self.s.timeline().raw_as(
                Kind::Drop,
                &format!("            ! ... frames dropped in {total} places; the first 12:\n"),
            );
        }
        for ((place, reason), n) in groups.into_iter().take(12) {
            self.s.timeline().raw_as(
                Kind::Drop,
                &format!(
                    "            ! {place}: {n} frame{} dropped ({reason})\n",
                    if n == 1 { "" } else { "s" }
                ),
            );
        }
    }
}

/// The text of a file of a running container (a name, or a task as `SERVICE.SLOT`), or
/// of a host's disk.
fn file_of(lab: &Lab, target: &str, path: &str) -> Result<String, String> {
    let fs = match crate::observe::find_container(lab, target) {
        Some(c) => &lab.containers[c.0].fs,
        None => match lab.underlay.by_name(target) {
            Some(h) => lab.host_fs(h),
            None => return Err(format!("no running container, task or host {target}")),
        },
    };
    fs.read(path)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .map_err(|e| format!("{target}:{path}: {e}"))
}

/// A fraction as a percentage with at most three decimals: 0.07 -> "7", 0.005 -> "0.5".
fn percent(fraction: f64) -> String {
    let s = format!("{:.3}", fraction * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `a, b, c` or `a, b, c, ... (N in all)` for long lists.
fn short_list(v: &[String]) -> String {
    if v.len() <= 6 {
        v.join(", ")
    } else {
        format!("{}, ... ({} in all)", v[..4].join(", "), v.len())
    }
}

fn fmt_secs(d: Duration) -> String {
    let ms = d.as_millis();
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// Re-quote arguments for display.
fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "\"'#$".contains(c)) {
                format!("\"{}\"", a.replace('"', "\\\""))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a swarm expectation holds now, and what is seen.
fn observe(lab: &Lab, e: &SwarmExpect) -> (bool, String) {
    use crate::swarm::store::{Mode, Role};
    let view = lab.swarm_view();
    if let SwarmExpect::Quorum { ok } = e {
        // Writes commit: a leader that reaches a majority of the voters now.
        let (leader, writes) = crate::observe::quorum(lab);
        let seen = match (leader, writes) {
            (Some(l), true) => format!("quorum ok (leader {})", lab.host_name(l)),
            (Some(l), false) => format!(
                "quorum lost ({} leads but reaches no majority of the managers)",
                lab.host_name(l)
            ),
            (None, _) => "quorum lost (no leader)".to_string(),
        };
        return (writes == *ok, seen);
    }
    if let SwarmExpect::ServiceRunning { service, count } = e {
        // The ground truth on the nodes, leader or not.
        let running = crate::observe::running_tasks(lab, service).len();
        let want = view
            .and_then(|(_, store)| store.find_service(service))
            .map(|svc| match svc.mode {
                Mode::Replicated(n) => n.to_string(),
                Mode::Global => "global".into(),
            })
            .unwrap_or_else(|| "? (no leader to ask)".into());
        return (
            running == *count,
            format!("{service} has {running} running task(s) of {want}"),
        );
    }
    if let SwarmExpect::ServiceOn { service, hosts } = e {
        // The ground truth on the nodes, as for `running`.
        let mut on = crate::observe::running_tasks(lab, service);
        on.sort_by(|a, b| crate::swarm::orchestrator::natural_cmp(a, b));
        on.dedup();
        let mut h = hosts.clone();
        h.sort_by(|a, b| crate::swarm::orchestrator::natural_cmp(a, b));
        h.dedup();
        return (
            h == on,
            format!(
                "{service} runs on {}",
                if on.is_empty() {
                    "no node".to_string()
                } else {
                    on.join(",")
                }
            ),
        );
    }
    let Some((leader, store)) = view else {
        return (false, "no leader: the swarm's state cannot be read".into());
    };
    let node = |h: &str| store.nodes.values().find(|n| n.hostname == h);
    match e {
        SwarmExpect::NodeStatus { node: h, status } => match node(h) {
            Some(n) => {
                let s = n.status.as_str().to_lowercase();
                (s == *status, format!("{h} is {s}"))
            }
            None => (false, format!("{h} is not a node of the swarm")),
        },
        SwarmExpect::NodeAvailability {
            node: h,
            availability,
        } => match node(h) {
            Some(n) => (
                n.availability.as_str() == availability,
                format!("{h} is {}", n.availability.as_str()),
            ),
            None => (false, format!("{h} is not a node of the swarm")),
        },
        SwarmExpect::NodeManager { node: h, status } => match node(h) {
            Some(n) => {
                let s = if n.role == Role::Worker {
                    "none".to_string()
                } else {
                    lab.manager_status(leader, n).to_lowercase()
                };
                (s == *status, format!("{h} manager status {s}"))
            }
            None => (false, format!("{h} is not a node of the swarm")),
        },
        SwarmExpect::Leader { host } => {
            let name = lab.host_name(leader).to_string();
            (name == *host, format!("the leader is {name}"))
        }
        SwarmExpect::ServiceRunning { .. } | SwarmExpect::ServiceOn { .. } => unreachable!(),
        SwarmExpect::Quorum { .. } => unreachable!(),
    }
}
