//! The watcher's word to a downstream connection's task: close gracefully, close now, or park.
//!
//! The connection's task wakes at least twice per request, and checks for that word every time: here
//! it is one atomic load (plus re-registering the task's waker), where the two oneshot receivers it
//! replaced cost about 230 instructions per request between them.
//!
//! Closing words only ever strengthen (graceful, then now); parking ([`crate::downstream::park`]) is
//! asked by the watcher and answered by the connection, any number of times.

use atomic_waker::AtomicWaker;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Context;

/// What the connection has been asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ask {
    /// Nothing yet.
    Nothing,
    /// Finish the request in flight, then close (no further request on this connection).
    Graceful,
    /// Close at once.
    Now,
}

/// Bits of [`Closing`]'s word: graceful, now (which includes graceful), park wanted, parked.
const GRACEFUL: u8 = 0b0001;
const NOW: u8 = 0b0011;
const PARK: u8 = 0b0100;
const PARKED: u8 = 0b1000;

/// One connection's word, shared by its task and the watcher.
#[derive(Debug, Default)]
pub(crate) struct Closing {
    word: AtomicU8,
    waker: AtomicWaker,
}

impl Closing {
    /// Asks the connection to close `how`; a later, weaker word does not undo a stronger one.
    pub(crate) fn ask(&self, how: Ask) {
        let bits = match how {
            Ask::Nothing => return,
            Ask::Graceful => GRACEFUL,
            Ask::Now => NOW,
        };
        self.word.fetch_or(bits, Ordering::AcqRel);
        self.waker.wake();
    }

    /// What has been asked so far; the task of `cx` is woken when that changes.
    #[inline]
    pub(crate) fn poll(&self, cx: &Context<'_>) -> Ask {
        self.poll_word(cx).0
    }

    /// What has been asked so far, and whether parking is wanted; the task of `cx` is woken when
    /// either changes.
    #[inline]
    pub(crate) fn poll_word(&self, cx: &Context<'_>) -> (Ask, bool) {
        let word = self.word.load(Ordering::Acquire);
        if word & NOW == NOW {
            return (Ask::Now, false);
        }
        // Registered again after a word too: its wake took the waker, and another may follow.
        self.waker.register(cx.waker());
        // A word given between the load and the registration found no waker to wake: look again.
        Self::decode(self.word.load(Ordering::Acquire))
    }

    /// What has been asked so far, without waiting for a change.
    pub(crate) fn asked(&self) -> Ask {
        Self::decode(self.word.load(Ordering::Acquire)).0
    }

    fn decode(word: u8) -> (Ask, bool) {
        let ask = match word & NOW {
            0 => Ask::Nothing,
            GRACEFUL => Ask::Graceful,
            _ => Ask::Now,
        };
        (ask, word & PARK != 0)
    }

    /// The watcher asks an idle connection to park, unless it is parked or asked already; returns
    /// whether it asked.
    pub(crate) fn ask_park(&self) -> bool {
        let asked = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w & (PARK | PARKED | GRACEFUL) == 0).then_some(w | PARK)
            })
            .is_ok();
        if asked {
            self.waker.wake();
        }
        asked
    }

    /// The connection took the park word: `parked` says whether it parked (else it had become busy).
    pub(crate) fn parking(&self, parked: bool) {
        if parked {
            self.word.fetch_or(PARKED, Ordering::AcqRel);
        }
        self.word.fetch_and(!PARK, Ordering::AcqRel);
    }

    /// The connection woke from parking.
    pub(crate) fn unparked(&self) {
        self.word.fetch_and(!(PARK | PARKED), Ordering::AcqRel);
    }

    /// Whether the connection is parked.
    pub(crate) fn is_parked(&self) -> bool {
        self.word.load(Ordering::Acquire) & PARKED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Poll;

    #[tokio::test]
    async fn each_word_wakes_the_waiting_task_and_stays() {
        let closing = Arc::new(Closing::default());
        // A task like a connection's: it goes on after a graceful word, and ends on `Now`.
        let waiting = {
            let closing = closing.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                std::future::poll_fn(|cx| {
                    let ask = closing.poll(cx);
                    if seen.last() != Some(&ask) {
                        seen.push(ask);
                    }
                    if ask == Ask::Now {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                seen
            })
        };
        tokio::task::yield_now().await;
        closing.ask(Ask::Graceful);
        tokio::task::yield_now().await;
        closing.ask(Ask::Now);
        let seen = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("woken for each word")
            .expect("task");
        assert_eq!(seen, [Ask::Nothing, Ask::Graceful, Ask::Now]);
        closing.ask(Ask::Graceful);
        let waker = std::task::Waker::noop();
        assert_eq!(closing.poll(&Context::from_waker(waker)), Ask::Now);
    }

    #[test]
    fn park_words_come_and_go_and_never_after_a_closing_word() {
        let closing = Closing::default();
        let cx = Context::from_waker(std::task::Waker::noop());
        assert!(closing.ask_park());
        assert!(!closing.ask_park(), "asked already");
        assert_eq!(closing.poll_word(&cx), (Ask::Nothing, true));
        closing.parking(true);
        assert!(closing.is_parked());
        assert_eq!(closing.poll_word(&cx), (Ask::Nothing, false));
        assert!(!closing.ask_park(), "parked already");
        closing.unparked();
        assert!(!closing.is_parked());
        assert!(closing.ask_park());
        closing.parking(false);
        assert_eq!(closing.poll_word(&cx), (Ask::Nothing, false));
        closing.ask(Ask::Graceful);
        assert!(!closing.ask_park(), "closing: no parking");
        assert_eq!(closing.poll_word(&cx), (Ask::Graceful, false));
    }
}
