//! The text timeline that `swarmlab run` prints: one line per step, expectation and
//! control-plane event, written when it happens (streamed and flushed line by line), and
//! kept whole for `Outcome::timeline`.
//!
//! It reads the trace as events are recorded (`Trace::watch`), so a step that lets
//! virtual time pass shows the swarm's events in time order while they happen; it owns
//! no simulation state and never advances time.

use crate::time::Instant;
use crate::trace::{TraceEvent, Watcher};
use std::cell::RefCell;
use std::io;
use std::rc::Rc;

struct Sink {
    text: String,
    stream: Option<Box<dyn io::Write>>,
}

impl Sink {
    fn put(&mut self, s: &str) {
        self.text.push_str(s);
        if let Some(w) = self.stream.as_mut() {
            // A reader that went away (`swarmlab run | head`) stops the stream, not the
            // run: the verdict and the exit status are still computed.
            if w.write_all(s.as_bytes()).and_then(|()| w.flush()).is_err() {
                self.stream = None;
            }
        }
    }
}

/// A shared handle on the timeline: the scenario runner writes its lines through it, and
/// the trace watcher it hands out writes the swarm's events.
#[derive(Clone)]
pub struct Timeline(Rc<RefCell<Sink>>);

impl Timeline {
    /// A timeline kept in memory and, when `stream` is given, written to it as it grows.
    pub fn new(stream: Option<Box<dyn io::Write>>) -> Timeline {
        Timeline(Rc::new(RefCell::new(Sink {
            text: String::new(),
            stream,
        })))
    }

    /// One stamped line: `[   12.5s] text`.
    pub fn line(&self, at: Instant, text: &str) {
        self.raw(&format!("[{:>9}] {text}\n", at.to_string()));
    }

    /// Text as it is (indented output, summaries).
    pub fn raw(&self, s: &str) {
        self.0.borrow_mut().put(s);
    }

    /// The trace watcher that prints the control plane's events as they happen.
    pub fn watcher(&self) -> Watcher {
        let me = self.clone();
        Box::new(move |at, e| {
            if let TraceEvent::Swarm { host, what } = e {
                me.line(at, &format!("swarm: {host}: {what}"));
            }
        })
    }

    /// Everything written so far.
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
