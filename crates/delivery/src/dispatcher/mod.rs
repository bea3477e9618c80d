//! Leases due deliveries and attempts each in its own task. A global cap bounds the attempts in
//! flight, and each endpoint has at most `per_endpoint` of them (claims give an endpoint only the
//! room it has left), so a slow or dead endpoint holds only its own deliveries back.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integrations_store::{DeliveryJob, RecordedAttempt, Store, StoreError};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

mod attempt;

use crate::budget::MemoryBudget;
use crate::pacing;
use crate::{now_millis, DeliveryContext, DeliverySettings, SigningSecret};

/// Attempts recorded per transaction, at most.
const RECORD_BATCH: usize = 512;
/// Decrypted signing secrets kept, at most (they are dropped all at once past it).
const SECRET_CACHE: usize = 4096;

pub(crate) struct Dispatcher {
    store: Store,
    context: Arc<dyn DeliveryContext>,
    settings: DeliverySettings,
    wake: Arc<Notify>,
    /// One per sender at work, over all endpoints: the global cap.
    slots: Arc<Semaphore>,
    /// Claimed deliveries per endpoint: a queue of its own, drained by at most `per_endpoint`
    /// senders, so a slow endpoint only ever holds back its own queue.
    queues: Mutex<HashMap<String, EndpointQueue>>,
    /// Attempts waiting to be recorded.
    recorder: mpsc::Sender<RecordedAttempt>,
    recorded: Mutex<Option<mpsc::Receiver<RecordedAttempt>>>,
    /// Opened signing secrets by endpoint and sealed value (a rotation changes the key).
    secrets: Mutex<HashMap<(String, Vec<u8>), SigningSecret>>,
    /// Deliveries held here (queued, in flight, or attempted and not yet recorded) by claim
    /// token: the leases to renew.
    held: Mutex<HashMap<String, HeldClaim>>,
    /// The event data of queued and in-flight deliveries, against `memory_budget_bytes`.
    budget: MemoryBudget,
}

/// One claim's deliveries still held here, and until when their lease is known to hold.
struct HeldClaim {
    deliveries: HashSet<i64>,
    /// Unix ms, from the claim or the last renewal that succeeded.
    lease_until: i64,
}

/// An attempt starts only while its lease holds for at least the attempt's timeout and this
/// much more (to record it): past that, the delivery may be claimed again elsewhere.
const RECORD_MARGIN: Duration = Duration::from_secs(5);

#[derive(Default)]
struct EndpointQueue {
    /// Claimed, not yet attempted.
    pending: VecDeque<Queued>,
    /// Senders draining it.
    senders: usize,
    /// The endpoint's rate limit, as its last claimed delivery said.
    rate: Option<u32>,
}

/// A claimed delivery waiting for a sender.
struct Queued {
    job: DeliveryJob,
    /// The claim that leased it.
    token: String,
    /// Its send slot, when its endpoint has a rate limit.
    not_before: Option<Instant>,
    /// Bytes of event data it holds, counted against the memory budget until it is done.
    size: usize,
}

impl Dispatcher {
    pub(crate) fn new(
        store: Store,
        context: Arc<dyn DeliveryContext>,
        settings: DeliverySettings,
        wake: Arc<Notify>,
    ) -> Self {
        let (recorder, recorded) = mpsc::channel(RECORD_BATCH * 8);
        Self {
            slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            budget: MemoryBudget::new(settings.memory_budget_bytes),
            store,
            context,
            settings,
            wake,
            queues: Mutex::new(HashMap::new()),
            recorder,
            recorded: Mutex::new(Some(recorded)),
            secrets: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn run(self: Arc<Self>) {
        // Senders and the recorder belong to this task: aborting it (the service dropped) aborts
        // them too.
        let mut attempts = JoinSet::new();
        let recorded = self.recorded.lock().ok().and_then(|mut r| r.take());
        if let Some(recorded) = recorded {
            attempts.spawn(self.clone().record(recorded));
        }
        attempts.spawn(self.clone().renew_leases());
        loop {
            if let Err(error) = self.clone().dispatch_due(&mut attempts).await {
                tracing::warn!(%error, "outbound dispatcher failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            while attempts.try_join_next().is_some() {}
            let _ = tokio::time::timeout(self.settings.poll_interval, self.wake.notified()).await;
        }
    }

    /// Claims what is due and the endpoints' queues have room for, then puts senders to work.
    async fn dispatch_due(self: Arc<Self>, attempts: &mut JoinSet<()>) -> Result<(), StoreError> {
        let per_endpoint = self.settings.per_endpoint.max(1);
        // An endpoint's queue holds what its senders get through in `prefetch_rounds` attempts
        // each, well within the lease even at the attempt timeout.
        let queue_room = per_endpoint * self.settings.prefetch_rounds.max(1);
        let (held, busy): (usize, Vec<(String, i64)>) = {
            let queues = self.queues();
            let held = queues.values().map(|q| q.pending.len() + q.senders).sum();
            let busy = queues
                .iter()
                .map(|(endpoint, q)| {
                    let room = pacing::queue_room(q.rate, queue_room);
                    (
                        endpoint.clone(),
                        room.saturating_sub(q.pending.len() + q.senders) as i64,
                    )
                })
                .collect();
            (held, busy)
        };
        let capacity = self.settings.concurrency.max(1) * self.settings.prefetch_rounds.max(1);
        let free = capacity.saturating_sub(held);
        // Over the memory budget, nothing is claimed until held deliveries are done.
        if free > 0 && self.budget.may_claim() {
            self.claim(free, queue_room, &busy).await?;
        }
        self.start_senders(attempts);
        Ok(())
    }

    /// Claims up to `free` due deliveries, keeps those the memory budget admits, and queues them
    /// by endpoint (with their send slots where the endpoint has a rate limit).
    async fn claim(&self, free: usize, queue_room: usize, busy: &[(String, i64)]) -> Result<(), StoreError> {
        let token = lease_token();
        let now = now_millis();
        let lease_until = now + self.settings.lease().as_millis() as i64;
        let claimed = self
            .store
            .claim_deliveries(
                now,
                lease_until,
                &token,
                queue_room as i64,
                pacing::PACED_CLAIM_SECS,
                free as i64,
                busy,
            )
            .await?;
        let mut sizes = self.admit(claimed.iter().map(|(id, _)| *id).collect(), &token).await?;
        let ids: Vec<i64> = sizes.keys().copied().collect();
        let release_all = |sizes: &HashMap<i64, usize>| sizes.values().for_each(|size| self.free_bytes(*size));
        let jobs = match self.store.delivery_jobs(&ids).await {
            Ok(jobs) => jobs,
            Err(error) => {
                release_all(&sizes);
                return Err(error);
            }
        };
        let mut slots = match pacing::reserve_slots(&self.store, &jobs).await {
            Ok(slots) => slots,
            Err(error) => {
                release_all(&sizes);
                return Err(error);
            }
        };
        if !jobs.is_empty() {
            let deliveries = jobs.iter().map(|job| job.delivery_id).collect();
            self.held().insert(
                token.clone(),
                HeldClaim {
                    deliveries,
                    lease_until,
                },
            );
        }
        let mut queues = self.queues();
        for job in jobs {
            let size = sizes.remove(&job.delivery_id).unwrap_or_default();
            let queue = queues.entry(job.endpoint.id.clone()).or_default();
            queue.rate = job.endpoint.rate_limit_per_sec;
            queue.pending.push_back(Queued {
                not_before: slots.remove(&job.delivery_id),
                size,
                job,
                token: token.clone(),
            });
        }
        drop(queues);
        // A claimed delivery whose endpoint or event vanished is left to its lease.
        release_all(&sizes);
        Ok(())
    }

    /// Of the deliveries just claimed (in claim order), those the memory budget admits, by id
    /// with their sizes; the others are given back to be claimed again when there is room.
    async fn admit(&self, claimed: Vec<i64>, token: &str) -> Result<HashMap<i64, usize>, StoreError> {
        if claimed.is_empty() {
            return Ok(HashMap::new());
        }
        let sizes: HashMap<i64, usize> = self
            .store
            .delivery_sizes(&claimed)
            .await?
            .into_iter()
            .map(|(id, size)| (id, usize::try_from(size).unwrap_or_default()))
            .collect();
        // A delivery whose event is gone brings nothing into memory.
        let ordered: Vec<usize> = claimed.iter().map(|id| sizes.get(id).copied().unwrap_or(0)).collect();
        let admitted = self.budget.admit(&ordered);
        let refused = &claimed[admitted..];
        if !refused.is_empty() {
            if let Err(error) = self.store.release_deliveries(refused, token).await {
                tracing::warn!(%error, "could not give back outbound deliveries over the memory budget; their leases lapse");
            }
        }
        Ok(claimed[..admitted]
            .iter()
            .map(|id| (*id, sizes.get(id).copied().unwrap_or(0)))
            .collect())
    }

    /// A held delivery of `size` bytes is done with; a claim waiting for room is woken.
    fn free_bytes(&self, size: usize) {
        if self.budget.release(size) {
            self.wake.notify_one();
        }
    }

    /// Gives each endpoint with queued deliveries senders, up to its limit and the global cap.
    fn start_senders(self: &Arc<Self>, attempts: &mut JoinSet<()>) {
        let per_endpoint = self.settings.per_endpoint.max(1);
        let mut queues = self.queues();
        for (endpoint, queue) in queues.iter_mut() {
            while queue.senders < per_endpoint && queue.senders < queue.pending.len() + queue.senders {
                if queue.pending.is_empty() {
                    break;
                }
                let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                    return;
                };
                queue.senders += 1;
                let (dispatcher, endpoint) = (self.clone(), endpoint.clone());
                attempts.spawn(async move { dispatcher.send_queued(endpoint, slot).await });
            }
        }
    }

    /// One sender: attempts the endpoint's queued deliveries one after another until none is left.
    async fn send_queued(self: Arc<Self>, endpoint: String, slot: OwnedSemaphorePermit) {
        let mut slot = Some(slot);
        loop {
            let next = {
                let mut queues = self.queues();
                let Some(queue) = queues.get_mut(&endpoint) else {
                    break;
                };
                match queue.pending.pop_front() {
                    Some(next) => next,
                    None => {
                        queue.senders -= 1;
                        if queue.senders == 0 {
                            queues.remove(&endpoint);
                        }
                        break;
                    }
                }
            };
            let size = next.size;
            self.send_one(next, &mut slot).await;
            // Its event data is gone: room in the memory budget.
            self.free_bytes(size);
        }
        drop(slot);
        // The queue has room again, and the slot may serve another endpoint.
        self.wake.notify_one();
    }

    /// Attempts one queued delivery once its send slot has come, with a global sender slot
    /// (taken back while it waits for its send slot).
    async fn send_one(&self, queued: Queued, slot: &mut Option<OwnedSemaphorePermit>) {
        let Queued {
            job, token, not_before, ..
        } = queued;
        let delivery_id = job.delivery_id;
        if let Some(at) = not_before.filter(|at| *at > Instant::now()) {
            // Its endpoint's rate limit: it waits for its send slot without holding a global
            // one, so other endpoints go on meanwhile.
            if slot.take().is_some() {
                self.wake.notify_one();
            }
            tokio::time::sleep_until(at.into()).await;
        }
        if slot.is_none() {
            match self.slots.clone().acquire_owned().await {
                Ok(acquired) => *slot = Some(acquired),
                // Never closed; were it, the lease lapses and the delivery is claimed again.
                Err(_) => {
                    self.let_go(&token, delivery_id);
                    return;
                }
            }
        }
        if !self.lease_holds(&token) {
            // Renewals failed for a while: the lease may run out mid-attempt and another
            // claim take the delivery too. Left to lapse and be claimed again.
            tracing::warn!(delivery_id, "outbound delivery's lease may lapse; not attempted now");
            self.let_go(&token, delivery_id);
            return;
        }
        match self.attempt_job(job, &token).await {
            // Let go once the recorder has written it.
            Ok(true) => {}
            Ok(false) => self.let_go(&token, delivery_id),
            Err(error) => {
                tracing::warn!(%error, delivery_id, "outbound delivery not attempted; its lease will lapse");
                self.let_go(&token, delivery_id);
            }
        }
    }

    /// Writes attempts in batches: one transaction for all that queued meanwhile.
    async fn record(self: Arc<Self>, mut recorded: mpsc::Receiver<RecordedAttempt>) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while recorded.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            match self.store.record_attempts(&batch).await {
                Ok(disabled) => {
                    for (attempt, disabled) in batch.iter().zip(disabled) {
                        if disabled {
                            tracing::info!(endpoint = %attempt.attempt.endpoint_id, "outbound webhook endpoint disabled");
                        }
                    }
                }
                // Their leases lapse and the deliveries are attempted again, same webhook-ids.
                Err(error) => tracing::warn!(%error, attempts = batch.len(), "could not record outbound attempts"),
            }
            for recorded in &batch {
                self.let_go(&recorded.token, recorded.attempt.delivery_id);
            }
            batch.clear();
            // Recorded deliveries free their leases: due retries and queue room may follow.
            self.wake.notify_one();
        }
    }

    /// Keeps the leases of held deliveries from running out while they wait their turn. Only
    /// deliveries still held are renewed: one let go (attempt failed, not recorded) lapses.
    async fn renew_leases(self: Arc<Self>) {
        let mut every = tokio::time::interval(self.settings.lease_renewal());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let claims: Vec<(String, Vec<i64>)> = self
                .held()
                .iter()
                .map(|(token, claim)| (token.clone(), claim.deliveries.iter().copied().collect()))
                .collect();
            for (token, deliveries) in claims {
                let lease_until = now_millis() + self.settings.lease().as_millis() as i64;
                match self.store.renew_delivery_leases(&token, &deliveries, lease_until).await {
                    Ok(_) => {
                        if let Some(claim) = self.held().get_mut(&token) {
                            claim.lease_until = claim.lease_until.max(lease_until);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "could not renew outbound delivery leases"),
                }
            }
        }
    }

    /// Whether claim `token`'s lease holds long enough for an attempt and its record.
    fn lease_holds(&self, token: &str) -> bool {
        let needed = (self.settings.timeout + RECORD_MARGIN).as_millis() as i64;
        self.held()
            .get(token)
            .is_some_and(|claim| claim.lease_until - now_millis() >= needed)
    }

    /// Delivery `delivery_id` of claim `token` is no longer held here.
    fn let_go(&self, token: &str, delivery_id: i64) {
        let mut held = self.held();
        if let Some(claim) = held.get_mut(token) {
            claim.deliveries.remove(&delivery_id);
            if claim.deliveries.is_empty() {
                held.remove(token);
            }
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, HeldClaim>> {
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, EndpointQueue>> {
        self.queues.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An unguessable token naming one claim, so only its holder moves the delivery on.
fn lease_token() -> String {
    let mut random = [0u8; 12];
    if SystemRandom::new().fill(&mut random).is_err() {
        // Still unique enough to tell claims apart: the time in nanoseconds.
        return format!(
            "t{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
    }
    random.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
