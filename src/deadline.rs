//! A request's deadline that stops counting while a person is being asked.
//!
//! `server.request_timeout` bounds the machine's part of a call. A destructive tool on a legacy session asks the
//! user to confirm (an elicitation round trip that a human answers), which can take minutes; that wait has its own
//! bound (the confirmation timeout), so the HTTP edge's deadline is paused for it instead of answering 504 while
//! the user reads the question. The edge owns the [`Deadline`] and puts a clone in the request's extensions; the
//! MCP layer finds it there and holds a [`Paused`] guard while it waits for the answer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A deadline that can be paused; cheap to clone.
#[derive(Clone, Debug)]
pub struct Deadline {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// Wakes [`Deadline::expired`] when a pause ends.
    resumed: Notify,
}

#[derive(Debug)]
struct State {
    at: Instant,
    /// Pauses in progress, and the time left when the first began.
    paused: u32,
    left: Duration,
}

/// While held, the deadline does not run; dropping it resumes with the time that was left.
#[must_use = "the deadline resumes when the guard is dropped"]
pub struct Paused {
    deadline: Deadline,
}

impl Deadline {
    pub fn after(limit: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    at: Instant::now() + limit,
                    paused: 0,
                    left: limit,
                }),
                resumed: Notify::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn pause(&self) -> Paused {
        let mut s = self.state();
        if s.paused == 0 {
            s.left = s.at.saturating_duration_since(Instant::now());
        }
        s.paused += 1;
        Paused {
            deadline: self.clone(),
        }
    }

    /// Resolves when the deadline has passed with no pause in progress.
    pub async fn expired(&self) {
        loop {
            let resumed = self.inner.resumed.notified();
            tokio::pin!(resumed);
            // Registered before the state is read, so a resume in between is not missed.
            resumed.as_mut().enable();
            let (at, paused) = {
                let s = self.state();
                (s.at, s.paused > 0)
            };
            if paused {
                resumed.await;
                continue;
            }
            if Instant::now() >= at {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = resumed => {}
            }
            // Re-read: a pause may have begun (and ended, moving the deadline) while sleeping.
            let s = self.state();
            if s.paused == 0 && Instant::now() >= s.at {
                return;
            }
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let mut s = self.deadline.state();
        s.paused = s.paused.saturating_sub(1);
        if s.paused == 0 {
            s.at = Instant::now() + s.left;
            drop(s);
            self.deadline.inner.resumed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expires_after_its_limit() {
        let d = Deadline::after(Duration::from_secs(30));
        let started = Instant::now();
        d.expired().await;
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_does_not_count() {
        let d = Deadline::after(Duration::from_secs(30));
        let started = Instant::now();
        let waiter = tokio::spawn({
            let d = d.clone();
            async move { d.expired().await }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        let paused = d.pause();
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!waiter.is_finished(), "expired while paused");
        drop(paused);
        waiter.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(130));
    }
}
