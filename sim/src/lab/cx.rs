//! A command's hold on the lab while it runs, and the one loop that lets time pass for it.
//!
//! A command (the docker CLI, a program in a container, a probe) is an `async fn` that
//! takes a [`Cx`]. It borrows the lab between its waits and never runs the clock: when
//! it must wait (for the leader to commit, for a reply, for a grace period), it awaits
//! [`Cx::sleep_until`] or [`Cx::wait_until`], which only say what it waits for. The
//! caller that owns time (the `Session`, or [`drive`] for a test) then steps the world
//! and polls the command again. So a shell or a printer can step a lab one event at a
//! time while a command is pending, and the order of events is the same as if the
//! command had run the clock itself.

use super::Lab;
use crate::time::Instant;
use std::cell::{Cell, RefCell, RefMut};
use std::future::Future;
use std::task::{Context, Poll, Waker};

/// What a pending command waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Let time pass until then, with nothing to check on the way.
    Sleep(Instant),
    /// Until then at the latest; poll the command again after each event.
    Until(Instant),
}

/// A running command's context: the lab, borrowed between waits, and the wait it is
/// suspended on.
pub struct Cx<'a> {
    lab: RefCell<&'a mut Lab>,
    wait: Cell<Option<Wait>>,
    arrived: Cell<bool>,
}

impl<'a> Cx<'a> {
    /// A context over `lab` for one command.
    pub fn new(lab: &'a mut Lab) -> Cx<'a> {
        Cx {
            lab: RefCell::new(lab),
            wait: Cell::new(None),
            arrived: Cell::new(false),
        }
    }

    /// The lab, to read and change until the next wait. Holding it across an `.await`
    /// is a bug that clippy's `await_holding_refcell_ref` refuses.
    pub fn lab(&self) -> RefMut<'_, Lab> {
        RefMut::map(self.lab.borrow_mut(), |l| &mut **l)
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.lab.borrow().now()
    }

    /// Wait until `until`: every event up to it has run.
    pub async fn sleep_until(&self, until: Instant) {
        self.arrived.set(false);
        std::future::poll_fn(|_| {
            if self.arrived.replace(false) {
                Poll::Ready(())
            } else {
                self.wait.set(Some(Wait::Sleep(until)));
                Poll::Pending
            }
        })
        .await
    }

    /// Wait until `ready` holds (checked now and after each event) or `until` has come
    /// with every event up to it run; returns whether `ready` held.
    pub async fn wait_until(&self, until: Instant, mut ready: impl FnMut(&Lab) -> bool) -> bool {
        self.arrived.set(false);
        std::future::poll_fn(|_| {
            if ready(&self.lab.borrow()) {
                self.arrived.set(false);
                return Poll::Ready(true);
            }
            if self.arrived.replace(false) {
                return Poll::Ready(false);
            }
            self.wait.set(Some(Wait::Until(until)));
            Poll::Pending
        })
        .await
    }

    /// What the suspended command waits for (taken: each poll says it again).
    pub fn take_wait(&self) -> Option<Wait> {
        self.wait.take()
    }

    /// Tell the suspended command that its wait's time has come.
    pub fn arrive(&self) {
        self.arrived.set(true);
    }
}

/// What the world does for a command waiting on `wait`: one step of it. After a
/// `Sleep`, or when no event is left up to an `Until`'s time, the wait has arrived.
pub(crate) fn step(cx: &Cx<'_>, wait: Option<Wait>) {
    let mut lab = cx.lab();
    match wait {
        Some(Wait::Sleep(t)) => {
            lab.run_until(t);
            cx.arrive();
        }
        Some(Wait::Until(t)) => {
            if !lab.step_until(t) {
                cx.arrive();
            }
        }
        // Every pending command waits through its `Cx`, so this is not met; should a
        // future pend on something else, it is told its wait arrived rather than spun.
        None => cx.arrive(),
    }
}

/// Run a command to its end, stepping the world while it waits: what a session does for
/// each command, and what a test does for one without a session.
pub fn drive<T>(cx: &Cx<'_>, command: impl Future<Output = T>) -> T {
    let mut command = std::pin::pin!(command);
    let mut poll = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = command.as_mut().poll(&mut poll) {
            return v;
        }
        step(cx, cx.take_wait());
    }
}
