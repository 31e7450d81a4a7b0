//! The background tasks of a serving process, owned in one place (the sharing worker, the
//! iMIP outbox, the directory refresh, the session purge): each is spawned with a stop signal,
//! and `shutdown` raises it and waits, for a bounded time, until they have all returned.
//!
//! Must never: leave a task running after `shutdown` returns; one still running at the end of
//! the grace period is aborted and named in the log.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{Id, JoinSet};

/// The signal a task watches: it turns true once, when the process is stopping.
pub type Stop = watch::Receiver<bool>;

pub struct Supervisor {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new()
    }
}

impl Supervisor {
    pub fn new() -> Supervisor {
        Supervisor {
            stop: watch::channel(false).0,
            tasks: JoinSet::new(),
            names: HashMap::new(),
        }
    }

    /// Run `task` until it returns; it is handed the stop signal and must return soon after
    /// the signal turns true.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(Stop) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = self.tasks.spawn(task(self.stop.subscribe()));
        self.names.insert(handle.id(), name);
    }

    /// How many tasks have not returned yet.
    pub fn running(&self) -> usize {
        self.tasks.len()
    }

    /// Raise the stop signal and wait up to `grace` for every task; abort those still
    /// running then. Returns the names of the tasks that had to be aborted.
    pub async fn shutdown(mut self, grace: Duration) -> Vec<&'static str> {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(Some(Ok((id, ())))) => {
                    let name = self.names.remove(&id).unwrap_or("?");
                    tracing::debug!(task = name, "background task stopped");
                }
                Ok(Some(Err(e))) => {
                    let name = self.names.remove(&e.id()).unwrap_or("?");
                    tracing::warn!(task = name, error = %e, "background task failed");
                }
                Ok(None) => return vec![],
                Err(_) => break,
            }
        }
        let mut late: Vec<&'static str> = self.names.values().copied().collect();
        late.sort_unstable();
        tracing::warn!(tasks = ?late, "background tasks still running after the grace period; aborted");
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tasks_that_heed_the_signal_are_joined_and_the_rest_aborted_after_the_grace() {
        let mut s = Supervisor::new();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        for name in ["first", "second"] {
            let done = done_tx.clone();
            s.spawn(name, move |mut stop| async move {
                let _ = stop.changed().await;
                let _ = done.send(name);
            });
        }
        s.spawn("deaf", |_stop| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        assert_eq!(s.running(), 3);
        let started = tokio::time::Instant::now();
        let late = s.shutdown(Duration::from_secs(5)).await;
        assert_eq!(late, vec!["deaf"]);
        // The paused clock moved only by the grace period, not by the deaf task's hour.
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let mut stopped = vec![done_rx.recv().await, done_rx.recv().await];
        stopped.sort();
        assert_eq!(stopped, vec![Some("first"), Some("second")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_with_nothing_late_returns_at_once() {
        let mut s = Supervisor::new();
        s.spawn("quick", |mut stop| async move {
            let _ = stop.changed().await;
        });
        let started = tokio::time::Instant::now();
        assert!(s.shutdown(Duration::from_secs(30)).await.is_empty());
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
