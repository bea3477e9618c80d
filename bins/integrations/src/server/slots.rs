//! Connection slots: at most `cap` connections are served at once, and when every slot is taken
//! the connection idle the longest is closed to make room for a new one.
//!
//! Idle means holding nothing up: accepted but silent, or kept alive between requests. A
//! connection reading or answering a request is never closed for room; while every slot holds one,
//! a new connection waits for a slot. So silent connections, from anyone, cannot keep a request
//! that has arrived from being served: they are the first to go.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The slots shared by the accept loop and every connection.
pub(super) struct Slots {
    cap: usize,
    state: Mutex<State>,
    /// Woken when a slot frees or a connection becomes idle: the accept loop may admit again.
    room: Notify,
}

struct State {
    /// Connections holding a slot.
    open: usize,
    /// Idle connections by when they became idle: the first is the one to close.
    idle: BTreeMap<u64, Arc<Connection>>,
    /// The next key in `idle`; 0 means "not idle".
    next_idle_key: u64,
}

/// What the slots know of one connection.
struct Connection {
    /// Its key in `idle` while it is idle, else 0; written under the state lock only.
    idle_key: AtomicU64,
    /// No longer holds a slot: closed to make room (its slot went to a newer connection), or gone.
    released: AtomicBool,
    /// Tells the connection's task to close it.
    close: Notify,
}

impl Slots {
    /// Slots for `cap` connections at once (at least one).
    pub(super) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            state: Mutex::new(State {
                open: 0,
                idle: BTreeMap::new(),
                next_idle_key: 1,
            }),
            room: Notify::new(),
        })
    }

    /// A slot for a new connection, once there is one: a free slot, or the slot of the connection
    /// idle the longest, which is told to close.
    pub(super) async fn admit(self: &Arc<Self>) -> Slot {
        loop {
            if let Some(slot) = self.try_admit() {
                return slot;
            }
            // Only the accept loop waits here; a wake-up given while it was not waiting is kept.
            self.room.notified().await;
        }
    }

    fn try_admit(self: &Arc<Self>) -> Option<Slot> {
        let mut state = self.lock();
        if state.open < self.cap {
            state.open += 1;
        } else {
            let (_, oldest) = state.idle.pop_first()?;
            oldest.idle_key.store(0, Ordering::Relaxed);
            oldest.released.store(true, Ordering::Relaxed);
            oldest.close.notify_one();
            tracing::debug!("all connection slots taken: closing the connection idle the longest");
        }
        let connection = Arc::new(Connection {
            idle_key: AtomicU64::new(0),
            released: AtomicBool::new(false),
            close: Notify::new(),
        });
        // A new connection is idle until it sends a byte.
        state.set_idle(&connection);
        Some(Slot(Tracker {
            slots: self.clone(),
            connection,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that changes it: a panic elsewhere while
        // it was held leaves nothing half done.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let state = self.lock();
        (state.open, state.idle.len())
    }
}

impl State {
    fn set_idle(&mut self, connection: &Arc<Connection>) {
        if connection.released.load(Ordering::Relaxed) || connection.idle_key.load(Ordering::Relaxed) != 0 {
            return;
        }
        let key = self.next_idle_key;
        self.next_idle_key += 1;
        connection.idle_key.store(key, Ordering::Relaxed);
        self.idle.insert(key, connection.clone());
    }

    fn set_busy(&mut self, connection: &Connection) {
        let key = connection.idle_key.swap(0, Ordering::Relaxed);
        if key != 0 {
            self.idle.remove(&key);
        }
    }
}

/// A connection's view of its slot: its stream reports bytes received, its service reports
/// requests.
#[derive(Clone)]
pub(super) struct Tracker {
    slots: Arc<Slots>,
    connection: Arc<Connection>,
}

impl Tracker {
    /// Bytes arrived: a connection that was idle is not any more. (Bytes read while a request is
    /// being answered change nothing: it is not idle then.)
    pub(super) fn received(&self) {
        // Only this connection's task sets a key, so a 0 read here without the lock is current.
        if self.connection.idle_key.load(Ordering::Relaxed) != 0 {
            self.slots.lock().set_busy(&self.connection);
        }
    }

    /// A request is being answered, until the returned guard is dropped (with its response body).
    pub(super) fn request(&self) -> InFlight {
        self.received();
        InFlight(self.clone())
    }
}

/// A request being answered; its connection is idle again once this is dropped.
pub(super) struct InFlight(Tracker);

impl Drop for InFlight {
    fn drop(&mut self) {
        let Tracker { slots, connection } = &self.0;
        slots.lock().set_idle(connection);
        slots.room.notify_one();
    }
}

/// A connection's slot, held by its task and freed when dropped.
pub(super) struct Slot(Tracker);

impl Slot {
    /// The tracker the connection's stream and service report to.
    pub(super) fn tracker(&self) -> Tracker {
        self.0.clone()
    }

    /// Completes when the connection is to be closed to make room for a newer one.
    pub(super) async fn closed_for_room(&self) {
        self.0.connection.close.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Tracker { slots, connection } = &self.0;
        let mut state = slots.lock();
        state.set_busy(connection);
        // A connection closed for room gave its slot to the newcomer already.
        if !connection.released.swap(true, Ordering::Relaxed) {
            state.open -= 1;
        }
        drop(state);
        slots.room.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Whether `slot` has been told to close to make room.
    fn told_to_close(slot: &Slot) -> bool {
        slot.0.connection.released.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn a_full_house_closes_the_connection_idle_the_longest() {
        let slots = Slots::new(3);
        let silent = slots.admit().await;
        let keep_alive = slots.admit().await;
        let busy = slots.admit().await;
        // `keep_alive` answered a request and became idle after `silent` was accepted.
        drop(keep_alive.tracker().request());
        let request = busy.tracker().request();
        assert_eq!(slots.counts(), (3, 2));

        let newcomer = slots.admit().await;
        assert!(told_to_close(&silent), "the oldest idle connection goes first");
        assert!(!told_to_close(&keep_alive) && !told_to_close(&busy));
        assert_eq!(slots.counts(), (3, 2));
        newcomer.tracker().received();
        let _later = slots.admit().await;
        assert!(told_to_close(&keep_alive));
        assert!(
            !told_to_close(&busy),
            "a connection answering a request is never closed for room"
        );
        drop(request);
        drop((silent, keep_alive));
        assert_eq!(slots.counts().0, 3, "slots given away are not freed twice");
    }

    #[tokio::test]
    async fn without_an_idle_connection_a_newcomer_waits_for_a_slot() {
        let slots = Slots::new(1);
        let first = slots.admit().await;
        first.tracker().received();
        assert!(
            slots.try_admit().is_none(),
            "admitted while the only slot was reading a request"
        );
        let request = first.tracker().request();
        assert!(
            slots.try_admit().is_none(),
            "admitted while the only slot was answering a request"
        );
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.admit().await }
        });
        // The response is sent: the connection idles, and so gives its slot up.
        drop(request);
        let second = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("admitted once the connection idled")
            .unwrap();
        assert!(told_to_close(&first));
        first.closed_for_room().await;
        drop(first);
        drop(second);
        assert_eq!(slots.counts(), (0, 0));
    }

    #[tokio::test]
    async fn bytes_after_a_response_make_an_idle_connection_busy_again() {
        let slots = Slots::new(1);
        let first = slots.admit().await;
        drop(first.tracker().request());
        first.tracker().received();
        assert_eq!(slots.counts(), (1, 0));
        drop(first);
        assert_eq!(slots.counts(), (0, 0));
    }
}
