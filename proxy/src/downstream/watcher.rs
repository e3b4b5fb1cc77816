//! One watcher per node's listeners for all of their downstream connections: the idle timeout, the
//! request-head deadline, draining, shedding idle connections at the connection limit, and parking
//! idle HTTP/1.x connections ([`crate::downstream::park`]).
//!
//! Each connection registers its counters ([`Activity`]) and its word ([`Closing`]); one task samples
//! them all every 250 ms (or a quarter of the idle timeout, an eighth of the head deadline, if
//! shorter) and tells connections what to do. A connection costs a slab entry here, not a task and a
//! timer of its own: with 10,000 connections the per-connection supervisors it replaces woke 8,000
//! times a second between them and held about 1.5 KiB each; a sweep of 10,000 entries takes tens of
//! microseconds. The request path pays nothing: connections only count their I/O and
//! requests in relaxed atomics, and read their word when woken anyway.

use crate::downstream::closing::{Ask, Closing};
use crate::downstream::head_watch::HeadWatch;
use crate::downstream::idle::{Activity, Watchdog};
pub(crate) use crate::downstream::lifecycle::Phase;
use crate::downstream::shed::Shed;
use edgeplane_config::model::NodeTimeouts;
use slab::Slab;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// How long an HTTP/1.x connection between requests must have been quiet before it parks (it
/// parks at the first sample after that, so within twice this). Short, because what an idle
/// connection holds until it parks sets the node's memory high-water mark when many clients arrive
/// at once; long enough that a client sending requests back to back never parks (parking and
/// waking again cost about what a new connection's first request does).
const PARK_AFTER: Duration = Duration::from_millis(250);

/// How long an idle HTTP/1.x connection of a draining node must have been quiet before it closes.
const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// The connections of a node's listeners, watched by one task.
#[derive(Debug)]
pub(crate) struct Watcher {
    entries: Mutex<Slab<Watched>>,
    timeouts: NodeTimeouts,
    shed: Arc<Shed>,
    phase: watch::Receiver<Phase>,
    /// Connections parked (or waiting for their first bytes) at the last sweep.
    parked: Arc<AtomicUsize>,
}

/// What the watcher knows of one connection.
#[derive(Debug)]
struct Watched {
    activity: Activity,
    closing: Arc<Closing>,
    idle: Watchdog,
    head: HeadWatch,
    /// Quiet-while-draining sampling, once the node drains (HTTP/1.x connections).
    drain: Option<Watchdog>,
    asked_graceful: bool,
    /// Told to close now: nothing more to decide.
    done: bool,
    /// Whether it may park when idle (cleartext HTTP/1.x).
    parkable: bool,
}

/// A connection's place in the [`Watcher`]; dropping it leaves.
#[derive(Debug)]
pub(crate) struct Registration {
    watcher: Arc<Watcher>,
    key: usize,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut entries = self.watcher.lock();
        if entries.contains(self.key) {
            entries.remove(self.key);
        }
    }
}

impl Watcher {
    /// A watcher of connections with `timeouts`, making room when `shed` asks, following `phase`.
    pub(crate) fn new(
        timeouts: NodeTimeouts,
        shed: Arc<Shed>,
        phase: watch::Receiver<Phase>,
    ) -> Arc<Watcher> {
        Arc::new(Watcher {
            entries: Mutex::new(Slab::new()),
            timeouts,
            shed,
            phase,
            parked: Arc::default(),
        })
    }

    /// Connections parked (or waiting for their first bytes) at the last sweep.
    pub(crate) fn parked(&self) -> Arc<AtomicUsize> {
        self.parked.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Slab<Watched>> {
        // A panic while holding the lock leaves entries that are still valid.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watches a connection accepted now; `parkable` when it may park while idle.
    pub(crate) fn register(
        self: &Arc<Self>,
        activity: &Activity,
        closing: &Arc<Closing>,
        parkable: bool,
    ) -> Registration {
        let now = Instant::now();
        let mut entry = Watched {
            activity: activity.clone(),
            closing: closing.clone(),
            idle: Watchdog::new(now),
            head: HeadWatch::new(now),
            drain: None,
            asked_graceful: false,
            done: false,
            parkable,
        };
        let mut entries = self.lock();
        // Accepted as the node started draining: its phase change may have been swept already.
        match *self.phase.borrow() {
            Phase::Running => {}
            Phase::Draining => entry.drain(),
            Phase::Closing => entry.ask(Ask::Now),
        }
        let key = entries.insert(entry);
        Registration {
            watcher: self.clone(),
            key,
        }
    }

    /// The sampling period: [`PARK_AFTER`], or a quarter of the idle timeout or an eighth of the
    /// head deadline if shorter.
    fn period(&self) -> Duration {
        (self.timeouts.idle / 4)
            .min(self.timeouts.header_read / 8)
            .min(PARK_AFTER)
            .max(Duration::from_millis(1))
    }

    /// Watches until the node closes its connections (or is gone).
    pub(crate) async fn run(self: Arc<Self>) {
        let mut phase = self.phase.clone();
        let mut tick = interval(self.period());
        let mut drain_tick: Option<Interval> = None;
        // Whether to answer the accept loop's asks for room before the next tick.
        let mut look = true;
        loop {
            tokio::select! {
                changed = phase.changed() => match changed.map(|()| *phase.borrow_and_update()) {
                    Ok(Phase::Running) => {}
                    Ok(Phase::Draining) => {
                        self.lock().iter_mut().for_each(|(_, e)| e.drain());
                        drain_tick = Some(interval(DRAIN_QUIET / 4));
                    }
                    Ok(Phase::Closing) | Err(_) => {
                        self.lock().iter_mut().for_each(|(_, e)| e.ask(Ask::Now));
                        return;
                    }
                },
                at = next(&mut drain_tick) => {
                    for (_, e) in self.lock().iter_mut() {
                        e.drain_sample(at);
                    }
                }
                () = self.shed.asked(), if look => {
                    // Not as many idle connections as wanted: look again at the next tick.
                    look = self.make_room();
                }
                at = tick.tick() => {
                    look = true;
                    self.sweep(at);
                }
            }
        }
    }

    /// Closes idle connections while the accept loop wants room; false when none was found.
    fn make_room(&self) -> bool {
        let mut found = false;
        for (_, e) in self.lock().iter_mut() {
            if !e.asked_graceful && !e.done && self.shed.take_if_idle(&e.activity.0) {
                tracing::debug!("idle connection closed to make room at the connection limit");
                e.ask(Ask::Graceful);
                found = true;
            }
        }
        found
    }

    /// One sample of every connection at `at`.
    fn sweep(&self, at: Instant) {
        let park_after = self.period().min(PARK_AFTER);
        let mut parked = 0;
        for (_, e) in self.lock().iter_mut() {
            if e.done {
                continue;
            }
            parked += usize::from(e.closing.is_parked());
            let c = &e.activity.0;
            if !e.asked_graceful && self.shed.take_if_idle(c) {
                tracing::debug!("idle connection closed to make room at the connection limit");
                e.ask(Ask::Graceful);
            } else if e.head.overdue_at(c, self.timeouts.header_read, at) {
                tracing::debug!("request head not received in time");
                e.ask(Ask::Now);
            } else if e.idle.expired_at(c, self.timeouts.idle, at) {
                tracing::debug!(closing = e.asked_graceful, "connection idle");
                e.ask(if e.asked_graceful {
                    Ask::Now
                } else {
                    Ask::Graceful
                });
            } else if e.parkable
                && !e.asked_graceful
                && !c.exempt.load(Relaxed)
                && e.idle.quiet_for(at) >= park_after
                && c.idle()
            {
                e.closing.ask_park();
            }
        }
        self.parked.store(parked, Relaxed);
    }

    /// Connections being watched.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Watched {
    fn ask(&mut self, how: Ask) {
        match how {
            Ask::Nothing => return,
            Ask::Graceful => self.asked_graceful = true,
            Ask::Now => self.done = true,
        }
        self.closing.ask(how);
    }

    /// The node drains: HTTP/2 gets a GOAWAY at once; an HTTP/1.x connection says
    /// `Connection: close` on its next answer and closes once quiet for [`DRAIN_QUIET`] (closing it
    /// without telling the client could cross its next request on the wire).
    fn drain(&mut self) {
        let c = &self.activity.0;
        c.draining.store(true, Relaxed);
        if c.exempt.load(Relaxed) {
            self.ask(Ask::Graceful);
        } else if self.drain.is_none() {
            self.drain = Some(Watchdog::new(Instant::now()));
        }
    }

    fn drain_sample(&mut self, at: Instant) {
        if self.asked_graceful || self.done {
            return;
        }
        let c = &self.activity.0;
        let quiet = self
            .drain
            .as_mut()
            .is_some_and(|w| w.expired_at(c, DRAIN_QUIET, at));
        if quiet && c.idle() {
            tracing::debug!("idle connection closed while draining");
            self.ask(Ask::Graceful);
        }
    }
}

fn interval(period: Duration) -> Interval {
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

/// The next tick of `tick`; never resolves while there is none.
async fn next(tick: &mut Option<Interval>) -> Instant {
    match tick {
        Some(t) => t.tick().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::head_watch::Answering;
    use crate::downstream::idle::READ;
    use std::task::Context;

    fn timeouts() -> NodeTimeouts {
        NodeTimeouts {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
        }
    }

    /// A connection that has read and answered one request.
    fn answered_once() -> Activity {
        let a = Activity::default();
        a.0.io.fetch_add(READ, Relaxed);
        drop(Answering::start(&a, http::Version::HTTP_11));
        a
    }

    fn word(c: &Closing) -> (Ask, bool) {
        c.poll_word(&Context::from_waker(std::task::Waker::noop()))
    }

    /// The watcher holds an entry per open connection: its counters and word are the connection's,
    /// its timeouts the watcher's.
    #[test]
    fn an_entry_is_small() {
        let size = std::mem::size_of::<Watched>();
        assert!(size <= 96, "a watcher entry is {size} bytes");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_parks_after_a_quiet_period_and_closes_after_the_idle_timeout() {
        let (_phase, rx) = watch::channel(Phase::Running);
        let watcher = Watcher::new(timeouts(), Arc::default(), rx);
        let a = answered_once();
        let closing = Arc::new(Closing::default());
        let registration = watcher.register(&a, &closing, true);
        let busy = Activity::default();
        busy.0.requests.fetch_add(1, Relaxed);
        let busy_closing = Arc::new(Closing::default());
        let _busy = watcher.register(&busy, &busy_closing, true);
        tokio::spawn(watcher.clone().run());
        // The first sample sees its I/O; the second finds it quiet for a whole period.
        tokio::time::sleep(Duration::from_millis(2600)).await;
        assert_eq!(word(&closing), (Ask::Nothing, true));
        assert_eq!(word(&busy_closing), (Ask::Nothing, false), "answering");
        closing.parking(true);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(word(&closing).0, Ask::Graceful, "idle timeout");
        // Still there one timeout later: closed now.
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(word(&closing).0, Ask::Now);
        assert_eq!(watcher.len(), 2);
        drop(registration);
        assert_eq!(watcher.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn draining_closes_http2_at_once_and_quiet_http1_after_a_second() {
        let (phase, rx) = watch::channel(Phase::Running);
        let watcher = Watcher::new(timeouts(), Arc::default(), rx);
        let h1 = answered_once();
        let h1_closing = Arc::new(Closing::default());
        let _h1 = watcher.register(&h1, &h1_closing, true);
        let h2 = answered_once();
        h2.0.exempt.store(true, Relaxed);
        let h2_closing = Arc::new(Closing::default());
        let _h2 = watcher.register(&h2, &h2_closing, false);
        tokio::spawn(watcher.clone().run());
        phase.send_replace(Phase::Draining);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(word(&h2_closing).0, Ask::Graceful);
        assert_eq!(word(&h1_closing).0, Ask::Nothing);
        assert!(
            h1.0.draining.load(Relaxed),
            "its next answer says Connection: close"
        );
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(word(&h1_closing).0, Ask::Graceful);
        // A connection accepted while draining drains too; closing closes everything.
        let late = answered_once();
        let late_closing = Arc::new(Closing::default());
        let _late = watcher.register(&late, &late_closing, true);
        assert!(late.0.draining.load(Relaxed));
        phase.send_replace(Phase::Closing);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(word(&late_closing).0, Ask::Now);
        assert_eq!(word(&h1_closing).0, Ask::Now);
    }
}
