//! Making room at the connection limit: when every `max_connections` slot is taken and a client
//! waits to be accepted, idle keep-alive connections (no request being answered, nothing of a next
//! request read) close, as nginx does with its reusable connections, so that new clients are served
//! instead of waiting for an idle timeout.
//!
//! The accept loop asks for as many closures as it has clients waiting; the watcher
//! ([`crate::downstream::watcher`]) looks through the connections when asked and at each of its
//! sweeps, and idle ones take one closure each and close gracefully. The request path pays nothing.

use crate::downstream::idle::Counters;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use tokio::sync::Notify;

/// Closures of idle connections wanted by the accept loop.
#[derive(Debug, Default)]
pub(crate) struct Shed {
    wanted: AtomicUsize,
    asked: Notify,
}

impl Shed {
    /// The accept loop found no free slot: one idle connection should close.
    pub(crate) fn ask(&self) {
        if self.wanted.fetch_add(1, Relaxed) == 0 {
            self.asked.notify_waiters();
        }
    }

    /// The accept loop got a slot after asking (a connection ended on its own, or was shed): one
    /// closure less is wanted, if any still is.
    pub(crate) fn settle(&self) {
        let _ = self
            .wanted
            .fetch_update(Relaxed, Relaxed, |w| w.checked_sub(1));
    }

    /// Resolves when closures are asked for (or at once if some already are).
    pub(crate) async fn asked(&self) {
        let notified = self.asked.notified();
        if self.wanted.load(Relaxed) > 0 {
            return;
        }
        notified.await;
    }

    /// Whether the connection with these counters should close now to make room: closures are
    /// wanted, it is an idle keep-alive connection (it has had a request, and is between requests),
    /// and it takes one. A connection that has had no request yet is never taken: until its first
    /// bytes are read it looks idle, and closing it with its request unread resets the client.
    pub(crate) fn take_if_idle(&self, c: &Counters) -> bool {
        let had_a_request = c.requests.load(Relaxed) >> 32 != 0;
        if self.wanted.load(Relaxed) == 0 || !had_a_request || !c.idle() {
            return false;
        }
        self.wanted
            .fetch_update(Relaxed, Relaxed, |w| w.checked_sub(1))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_are_taken_once_and_only_by_idle_connections() {
        let shed = Shed::default();
        let fresh = Counters::default();
        // One request answered: a head received, none being answered.
        let idle = Counters::default();
        idle.requests.fetch_add(1 << 32, Relaxed);
        assert!(!shed.take_if_idle(&idle), "nothing asked");
        shed.ask();
        shed.ask();
        assert!(
            !shed.take_if_idle(&fresh),
            "a connection without a request yet (its first may be unread)"
        );
        let busy = Counters::default();
        busy.requests.fetch_add((1 << 32) + 1, Relaxed);
        assert!(!shed.take_if_idle(&busy), "a request is being answered");
        assert!(shed.take_if_idle(&idle));
        shed.settle();
        assert!(!shed.take_if_idle(&idle), "both closures accounted for");
        shed.settle();
        assert_eq!(shed.wanted.load(Relaxed), 0, "never below zero");
    }
}
