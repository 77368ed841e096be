//! The text timeline that `swarmlab run` prints: one line per step, expectation and
//! control-plane event, written when it happens (streamed and flushed line by line), and
//! kept whole for `Outcome::timeline`.
//!
//! It reads the trace as events are recorded (`Trace::watch`), so a step that lets
//! virtual time pass shows the swarm's events in time order while they happen; it owns
//! no simulation state and never advances time.
//!
//! Every line has a kind, which the stream's view uses: colours (`ok` green, `FAIL`
//! red, faults yellow, the control plane's and gossip's lines dim), `--quiet` (only
//! expectations, faults and the summary) and `--verbose` (commands' outputs whole).
//! The text kept in memory is the plain default view, whatever the stream shows.

use crate::time::Instant;
use crate::trace::{TraceEvent, Watcher};
use anstyle::{AnsiColor, Style};
use std::cell::RefCell;
use std::io;
use std::rc::Rc;

/// What a line of the timeline is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The run's first line (file and seed).
    Header,
    /// A step: a directive, or a command as typed.
    Step,
    /// A command's output.
    Output,
    /// A command's non-zero exit status.
    Exit,
    /// A fault: crash, restart, partition, heal, block.
    Fault,
    /// A control-plane event.
    Swarm,
    /// A membership change gossip reported.
    Gossip,
    /// Frames dropped.
    Drop,
    /// An expectation that held.
    Ok,
    /// An expectation that failed (or, under `--strict`, a command that failed).
    Fail,
    /// The summary at the end.
    Summary,
}

/// How the stream shows the timeline.
#[derive(Clone, Copy, Debug, Default)]
pub struct View {
    /// Write ANSI colours (the binary's stream strips them where they do not belong).
    pub color: bool,
    /// Only expectations, faults and the summary.
    pub quiet: bool,
    /// Commands' outputs whole, not folded.
    pub verbose: bool,
}

impl View {
    fn shows(&self, kind: Kind) -> bool {
        !self.quiet || matches!(kind, Kind::Ok | Kind::Fail | Kind::Fault | Kind::Summary)
    }
}

fn style(kind: Kind) -> Style {
    match kind {
        Kind::Ok => AnsiColor::Green.on_default(),
        Kind::Fail | Kind::Exit => AnsiColor::Red.on_default(),
        Kind::Fault => AnsiColor::Yellow.on_default(),
        Kind::Swarm | Kind::Gossip | Kind::Drop => Style::new().dimmed(),
        Kind::Summary | Kind::Header => Style::new().bold(),
        Kind::Step | Kind::Output => Style::new(),
    }
}

/// `text` with its lines indented for the timeline, and runs of identical lines folded
/// into one with their count (`overall progress: 5 out of 6 tasks (x319)`) unless
/// `whole`.
fn indented(text: &str, whole: bool) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        let mut n = 1;
        while !whole && lines.peek() == Some(&l) {
            lines.next();
            n += 1;
        }
        match (l.is_empty(), n) {
            (true, _) => out.push('\n'),
            (false, 1) => out.push_str(&format!("            {l}\n")),
            (false, n) => out.push_str(&format!("            {l} (x{n})\n")),
        }
    }
    out
}

struct Sink {
    text: String,
    stream: Option<Box<dyn io::Write>>,
    view: View,
}

impl Sink {
    /// Keep `plain` in memory, and write it to the stream, coloured by its kind, when the
    /// view shows the kind; `shown`, when given, is written instead, as it is.
    fn put(&mut self, kind: Kind, plain: &str, shown: Option<&str>) {
        self.text.push_str(plain);
        let view = self.view;
        if !view.shows(kind) {
            return;
        }
        if let Some(w) = self.stream.as_mut() {
            let body = shown.unwrap_or(plain);
            let styled;
            let out = if shown.is_none() && view.color && style(kind) != Style::new() {
                let s = style(kind);
                // Colour each line's text, not the newline (a pager keeps lines clean).
                styled = body
                    .split_inclusive('\n')
                    .map(|l| {
                        let (t, nl) = l.strip_suffix('\n').map_or((l, ""), |t| (t, "\n"));
                        format!("{}{t}{}{nl}", s.render(), s.render_reset())
                    })
                    .collect::<String>();
                styled.as_str()
            } else {
                body
            };
            // A reader that went away (`swarmlab run | head`) stops the stream, not the
            // run: the verdict and the exit status are still computed.
            if w.write_all(out.as_bytes())
                .and_then(|()| w.flush())
                .is_err()
            {
                self.stream = None;
            }
        }
    }
}

/// A shared handle on the timeline: the scenario runner writes its lines through it, and
/// the trace watcher it hands out writes the swarm's events.
#[derive(Clone)]
pub struct Timeline(Rc<RefCell<Sink>>);

fn stamped(at: Instant, text: &str) -> String {
    format!("[{:>9}] {text}\n", at.to_string())
}

impl Timeline {
    /// A timeline kept in memory and, when `stream` is given, written to it as it grows,
    /// as `view` shows it.
    pub fn new(stream: Option<Box<dyn io::Write>>, view: View) -> Timeline {
        Timeline(Rc::new(RefCell::new(Sink {
            text: String::new(),
            stream,
            view,
        })))
    }

    /// Write to `stream` from now on (None: keep the timeline in memory only).
    pub fn set_stream(&self, stream: Option<Box<dyn io::Write>>) {
        self.0.borrow_mut().stream = stream;
    }

    /// One stamped step line: `[   12.5s] text`.
    pub fn line(&self, at: Instant, text: &str) {
        self.line_as(at, Kind::Step, text);
    }

    /// One stamped line of a kind.
    pub fn line_as(&self, at: Instant, kind: Kind, text: &str) {
        self.0.borrow_mut().put(kind, &stamped(at, text), None);
    }

    /// A verdict: `ok  ` or `FAIL` coloured, the rest plain.
    pub fn verdict(&self, at: Instant, held: bool, rest: &str) {
        let (kind, word) = if held {
            (Kind::Ok, "ok  ")
        } else {
            (Kind::Fail, "FAIL")
        };
        let plain = stamped(at, &format!("{word} {rest}"));
        let mut sink = self.0.borrow_mut();
        let s = style(kind);
        let shown = sink.view.color.then(|| {
            stamped(
                at,
                &format!("{}{word}{} {rest}", s.render(), s.render_reset()),
            )
        });
        sink.put(kind, &plain, shown.as_deref());
    }

    /// A command's output, indented, with runs of identical lines folded (whole on a
    /// `--verbose` stream).
    pub fn output(&self, text: &str) {
        let plain = indented(text, false);
        let mut sink = self.0.borrow_mut();
        if sink.view.verbose {
            sink.put(Kind::Output, &plain, Some(&indented(text, true)));
        } else {
            sink.put(Kind::Output, &plain, None);
        }
    }

    /// Text as it is, of a kind (indented notes, summaries).
    pub fn raw_as(&self, kind: Kind, s: &str) {
        self.0.borrow_mut().put(kind, s, None);
    }

    /// Text as it is.
    pub fn raw(&self, s: &str) {
        self.raw_as(Kind::Step, s);
    }

    /// The trace watcher that prints the control plane's events as they happen.
    pub fn watcher(&self) -> Watcher {
        let me = self.clone();
        Box::new(move |at, e| {
            if let TraceEvent::Swarm { host, what } = e {
                me.line_as(at, Kind::Swarm, &format!("swarm: {host}: {what}"));
            }
        })
    }

    /// Everything written so far (the plain default view).
    pub fn text(&self) -> String {
        self.0.borrow().text.clone()
    }
}

impl std::fmt::Write for Timeline {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.raw(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_lines_fold_with_their_count_unless_whole() {
        let text = "a\nb\nb\nb\n\nc\n";
        assert_eq!(
            indented(text, false),
            "            a\n            b (x3)\n\n            c\n"
        );
        assert_eq!(indented(text, true).lines().count(), 6);
    }

    struct Shared(Rc<RefCell<Vec<u8>>>);
    impl io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn quiet_shows_verdicts_and_faults_and_colour_stays_out_of_the_kept_text() {
        let buf = Rc::new(RefCell::new(Vec::new()));
        let view = View {
            color: true,
            quiet: true,
            verbose: false,
        };
        let t = Timeline::new(Some(Box::new(Shared(buf.clone()))), view);
        t.line(Instant(0), "m1$ docker node ls");
        t.output("ID HOSTNAME\n");
        t.line_as(Instant(0), Kind::Fault, "crash m2");
        t.verdict(Instant(0), false, "expect leader m1 -- no leader");
        let shown = String::from_utf8(buf.borrow().clone()).unwrap();
        assert!(!shown.contains("docker node ls"), "{shown}");
        assert!(
            shown.contains("\u{1b}[33m"),
            "the fault is yellow: {shown:?}"
        );
        assert!(shown.contains("\u{1b}[31mFAIL"), "FAIL is red: {shown:?}");
        assert!(!t.text().contains('\u{1b}'));
        assert!(t.text().contains("docker node ls"));
    }
}
