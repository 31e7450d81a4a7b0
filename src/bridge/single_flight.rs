//! One look-up at a time for a key: when a remembered answer (a checked host session, a
//! person's grant on a system) runs out, every request of that person that is in flight
//! misses it at the same moment. Without a gate each would ask the store, and for a grant
//! also open the vault and write an audit row: fifty rows for one page of fifty parts, and a
//! stall for all of them behind the store's one writer. With it, the first to miss takes the
//! key's turn and asks; the others wait for the turn, find the fresh answer and use it.
//!
//! No I/O here: the caller looks again once it holds the turn.
//!
//! Must never: keep a key once nobody holds or waits for its turn (the map holds only the
//! look-ups in flight), or let two holders of one key's turn run at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

/// The turns of the keys being looked up now.
#[derive(Debug)]
pub struct SingleFlight<K: Eq + Hash + Clone> {
    turns: Mutex<HashMap<K, Arc<TurnLock<()>>>>,
}

impl<K: Eq + Hash + Clone> Default for SingleFlight<K> {
    fn default() -> Self {
        SingleFlight {
            turns: Mutex::new(HashMap::new()),
        }
    }
}

/// A key's turn, held until dropped; the key leaves the map with its last holder or waiter.
pub struct Turn<'f, K: Eq + Hash + Clone> {
    flights: &'f SingleFlight<K>,
    key: K,
    guard: Option<OwnedMutexGuard<()>>,
}

impl<K: Eq + Hash + Clone> SingleFlight<K> {
    /// Wait for `key`'s turn. The caller then looks for a fresh answer again (the turn before
    /// may have brought one) and asks the store only if there is none.
    pub async fn turn(&self, key: &K) -> Turn<'_, K> {
        let lock = {
            let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            turns.entry(key.clone()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        Turn {
            flights: self,
            key: key.clone(),
            guard: Some(guard),
        }
    }

    /// Keys with a look-up in flight or waiting (for tests and bounds).
    pub fn in_flight(&self) -> usize {
        self.turns.lock().map_or(0, |t| t.len())
    }
}

impl<K: Eq + Hash + Clone> Drop for Turn<'_, K> {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        let mut turns = self.flights.turns.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and this guard's: nobody else holds or waits for the turn (a
        // newcomer would take its reference under the map's lock, held here).
        if Arc::strong_count(OwnedMutexGuard::mutex(&guard)) <= 2 {
            turns.remove(&self.key);
        }
        drop(guard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Fifty callers that miss a remembered answer at once: one asks, the others find its
    /// answer when their turn comes; and the map is empty afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_misses_ask_once() {
        let flights = Arc::new(SingleFlight::<String>::default());
        let remembered = Arc::new(Mutex::new(None::<u32>));
        let asked = Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![];
        for _ in 0..50 {
            let (flights, remembered, asked) = (flights.clone(), remembered.clone(), asked.clone());
            tasks.push(tokio::spawn(async move {
                let fresh = || *remembered.lock().expect("lock");
                if let Some(v) = fresh() {
                    return v;
                }
                let _turn = flights.turn(&"ann".to_string()).await;
                if let Some(v) = fresh() {
                    return v;
                }
                asked.fetch_add(1, Ordering::SeqCst);
                // The store takes its time.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                *remembered.lock().expect("lock") = Some(7);
                7
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), 7);
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert_eq!(
            flights.in_flight(),
            0,
            "no key is kept once its turns are over"
        );
    }

    /// Different keys do not wait for each other.
    #[tokio::test]
    async fn keys_have_turns_of_their_own() {
        let flights = SingleFlight::<u32>::default();
        let a = flights.turn(&1).await;
        let b = tokio::time::timeout(std::time::Duration::from_secs(5), flights.turn(&2))
            .await
            .expect("another key's turn is free");
        assert_eq!(flights.in_flight(), 2);
        drop((a, b));
        assert_eq!(flights.in_flight(), 0);
    }
}
