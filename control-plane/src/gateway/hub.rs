//! The registry of live agent connections on this replica (with what each
//! agent can run and the jobs it holds), and the background work that keeps
//! the fleet's state current: batched heartbeat writes, lease renewal and
//! offline detection.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use marketer_protocol::{JobRef, ServerMessage};

use crate::cluster::{Cluster, Signal};
use crate::domain::Timestamp;
use crate::metrics::Metrics;
use crate::store::{ConnectionEnd, HeartbeatUpdate, Labels, Store};

/// An instruction for a live connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// Close the WebSocket with this code and reason.
    Close { code: u16, reason: String },
    /// Send this message to the agent.
    Send(Box<ServerMessage>),
}

/// What an agent can run, as it reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub labels: Labels,
    pub models: HashSet<String>,
    /// Jobs it runs at once.
    pub capacity: u32,
    /// Whether its Ollama answered lately. Agents whose Ollama does not are
    /// chosen last; a job they get fails as `ollama_unreachable` and is
    /// retried.
    pub ollama_reachable: bool,
    /// Projects whose document index it holds.
    pub projects: HashSet<Uuid>,
}

#[derive(Debug)]
struct Live {
    connection_id: u64,
    tenant_id: Uuid,
    control: mpsc::Sender<Control>,
    caps: Capabilities,
    /// Jobs this agent holds, with when they were assigned.
    running: HashMap<JobRef, Instant>,
    /// Slots taken by assignments being claimed right now.
    reserved: u32,
}

impl Live {
    fn free(&self) -> u32 {
        let used = u32::try_from(self.running.len()).unwrap_or(u32::MAX).saturating_add(self.reserved);
        self.caps.capacity.saturating_sub(used)
    }
}

/// A connected agent as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct AgentSlots {
    pub agent_id: Uuid,
    pub tenant_id: Uuid,
    pub caps: Capabilities,
    pub free: u32,
}

/// A connection's membership in the hub.
#[derive(Debug)]
pub struct Registration {
    pub connection_id: u64,
    pub control: mpsc::Receiver<Control>,
}

/// Timings of the fleet, chosen by the server and sent to agents.
#[derive(Debug, Clone, Copy)]
pub struct FleetTimings {
    pub heartbeat_interval: Duration,
    pub offline_grace: Duration,
    /// How long a job lease outlives its agent's silence: long enough for a
    /// normal reconnect, after which the job goes to another agent.
    pub lease_grace: Duration,
}

impl FleetTimings {
    /// Silence after which an agent is offline: two missed heartbeats plus
    /// the grace.
    pub fn offline_after(&self) -> Duration {
        self.heartbeat_interval * 2 + self.offline_grace
    }
}

impl Default for FleetTimings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(10),
            offline_grace: Duration::from_secs(5),
            lease_grace: Duration::from_secs(60),
        }
    }
}

/// Heartbeats waiting to be written; a full queue drops heartbeats (the next
/// one carries the same information) rather than slowing connections.
const HEARTBEAT_QUEUE: usize = 16_384;

#[derive(Debug)]
pub struct Hub {
    live: Mutex<HashMap<Uuid, Live>>,
    next_connection: AtomicU64,
    heartbeats: mpsc::Sender<HeartbeatUpdate>,
    heartbeat_queue: Mutex<Option<mpsc::Receiver<HeartbeatUpdate>>>,
    metrics: Arc<Metrics>,
    /// For agents connected to another replica.
    cluster: Arc<Cluster>,
    pub timings: FleetTimings,
}

impl Hub {
    pub fn new(metrics: Arc<Metrics>, cluster: Arc<Cluster>, timings: FleetTimings) -> Self {
        let (heartbeats, queue) = mpsc::channel(HEARTBEAT_QUEUE);
        Self {
            cluster,
            live: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
            heartbeats,
            heartbeat_queue: Mutex::new(Some(queue)),
            metrics,
            timings,
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection of `agent_id` holding `running` jobs. An older
    /// connection of the same agent is told to close: the newest wins.
    pub fn register(
        &self,
        agent_id: Uuid,
        tenant_id: Uuid,
        caps: Capabilities,
        running: Vec<JobRef>,
    ) -> Registration {
        let connection_id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        // Room for a burst of assignments and cancellations; a connection that
        // cannot keep up with that many is not worth more work.
        let (control, receiver) = mpsc::channel(256);
        let live = Live {
            connection_id,
            tenant_id,
            control,
            caps,
            running: running.into_iter().map(|job| (job, Instant::now())).collect(),
            reserved: 0,
        };
        let previous = self.live().insert(agent_id, live);
        match previous {
            Some(old) => {
                let _ = old.control.try_send(Control::Close {
                    code: marketer_protocol::close::SUPERSEDED,
                    reason: "a newer connection of this agent replaced this one".into(),
                });
            }
            None => self.metrics.agent_connected(),
        }
        Registration { connection_id, control: receiver }
    }

    /// Removes a connection, unless a newer one of the same agent replaced
    /// it. Returns whether it was the agent's current connection.
    pub fn unregister(&self, agent_id: Uuid, connection_id: u64) -> bool {
        let mut live = self.live();
        if live.get(&agent_id).is_some_and(|l| l.connection_id == connection_id)
            && live.remove(&agent_id).is_some()
        {
            self.metrics.agent_disconnected();
            return true;
        }
        false
    }

    /// Tells the live connection of `agent_id` on this replica to close.
    /// Returns whether there was one.
    pub fn close(&self, agent_id: Uuid, code: u16, reason: &str) -> bool {
        let live = self.live();
        match live.get(&agent_id) {
            Some(l) => l.control.try_send(Control::Close { code, reason: reason.to_owned() }).is_ok(),
            None => false,
        }
    }

    /// Closes the agent's connection wherever it is: here, or through the
    /// other replicas.
    pub fn close_anywhere(&self, agent_id: Uuid, code: u16, reason: &str) {
        if !self.close(agent_id, code, reason) {
            self.cluster.send(Signal::Close { agent: agent_id, code, reason: reason.to_owned() });
        }
    }

    /// Closes the connections of every agent of the tenant, on every replica.
    pub fn close_tenant(&self, tenant_id: Uuid, code: u16, reason: &str) {
        for agent_id in self.tenant_agents(tenant_id) {
            self.close(agent_id, code, reason);
        }
        self.cluster.send(Signal::CloseTenant { tenant: tenant_id, code, reason: reason.to_owned() });
    }

    /// Sends a message to the agent's live connection wherever it is: here,
    /// or through the other replicas (not connected anywhere: dropped; the
    /// agent learns what it needs when it connects).
    pub fn deliver(&self, agent_id: Uuid, message: ServerMessage) {
        if !self.is_connected(agent_id) {
            self.cluster.send(Signal::Send { agent: agent_id, message: Box::new(message) });
            return;
        }
        self.send(agent_id, message);
    }

    pub fn is_connected(&self, agent_id: Uuid) -> bool {
        self.live().contains_key(&agent_id)
    }

    /// Sends a message to the agent's live connection on this replica.
    /// Returns whether there was one that accepted it.
    pub fn send(&self, agent_id: Uuid, message: ServerMessage) -> bool {
        let live = self.live();
        live.get(&agent_id).is_some_and(|l| l.control.try_send(Control::Send(Box::new(message))).is_ok())
    }

    /// The connected agents and their free slots.
    pub fn slots(&self) -> Vec<AgentSlots> {
        self.live()
            .iter()
            .map(|(agent_id, l)| AgentSlots {
                agent_id: *agent_id,
                tenant_id: l.tenant_id,
                caps: l.caps.clone(),
                free: l.free(),
            })
            .collect()
    }

    /// Takes a slot of the agent for an assignment about to be claimed.
    pub fn reserve(&self, agent_id: Uuid) -> bool {
        match self.live().get_mut(&agent_id) {
            Some(l) if l.free() > 0 => {
                l.reserved += 1;
                true
            }
            _ => false,
        }
    }

    /// Ends a reservation: with the claimed job, or (`None`) without one.
    pub fn settle(&self, agent_id: Uuid, job: Option<JobRef>) {
        if let Some(l) = self.live().get_mut(&agent_id) {
            l.reserved = l.reserved.saturating_sub(1);
            if let Some(job) = job {
                l.running.insert(job, Instant::now());
            }
        }
    }

    /// The agent no longer holds `job` (it finished, or the lease ended).
    pub fn release(&self, agent_id: Uuid, job: JobRef) {
        if let Some(l) = self.live().get_mut(&agent_id) {
            l.running.remove(&job);
        }
    }

    /// Squares this replica's view of an agent with its heartbeat: its slot
    /// count, and the attempts it holds. An assignment it does not list,
    /// sent long enough ago that the heartbeat would include it, never
    /// reached the agent (its connection was replaced while the assignment
    /// was under way, say): the slot is freed, and the lease, which only the
    /// agent's heartbeats renew, expires and the job goes to another
    /// attempt. Returns the attempts forgotten.
    pub fn reconcile(&self, agent_id: Uuid, capacity: u32, held: &[JobRef]) -> Vec<JobRef> {
        let settled = Instant::now().checked_sub(self.timings.heartbeat_interval * 2);
        let mut live = self.live();
        let Some(l) = live.get_mut(&agent_id) else { return Vec::new() };
        l.caps.capacity = capacity;
        let forgotten: Vec<JobRef> = l
            .running
            .iter()
            .filter(|(job, assigned)| settled.is_some_and(|s| **assigned < s) && !held.contains(job))
            .map(|(job, _)| *job)
            .collect();
        for job in &forgotten {
            l.running.remove(job);
        }
        forgotten
    }

    /// What the agent's latest heartbeat said of its Ollama; `models` is
    /// `None` when the list did not change.
    pub fn set_ollama(&self, agent_id: Uuid, reachable: bool, models: Option<HashSet<String>>) {
        if let Some(l) = self.live().get_mut(&agent_id) {
            l.caps.ollama_reachable = reachable;
            if let Some(models) = models {
                l.caps.models = models;
            }
        }
    }

    /// The agents of a tenant connected to this replica.
    pub fn tenant_agents(&self, tenant_id: Uuid) -> Vec<Uuid> {
        self.live().iter().filter(|(_, l)| l.tenant_id == tenant_id).map(|(id, _)| *id).collect()
    }

    /// The projects whose index the agent now holds.
    pub fn set_projects(&self, agent_id: Uuid, projects: HashSet<Uuid>) {
        if let Some(l) = self.live().get_mut(&agent_id) {
            l.caps.projects = projects;
        }
    }

    pub fn running(&self, agent_id: Uuid) -> usize {
        self.live().get(&agent_id).map_or(0, |l| l.running.len())
    }

    /// Queues a heartbeat for the next batch write. Never waits.
    pub fn heartbeat(&self, update: HeartbeatUpdate) {
        self.metrics.agent_heartbeat();
        if self.heartbeats.try_send(update).is_err() {
            self.metrics.agent_heartbeat_dropped();
        }
    }

    /// Runs until `shutdown`: writes queued heartbeats in batches, closes
    /// connections of agents revoked elsewhere (another replica, the CLI),
    /// and marks agents that fell silent offline.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, shutdown: CancellationToken) {
        let Some(mut queue) = self.heartbeat_queue.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            tracing::error!("the hub's background task is already running");
            return;
        };
        // Writing twice per heartbeat interval keeps the stored last-seen time
        // well within the offline window.
        let period =
            (self.timings.heartbeat_interval / 2).clamp(Duration::from_millis(100), Duration::from_secs(2));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending: HashMap<Uuid, HeartbeatUpdate> = HashMap::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                update = queue.recv() => match update {
                    Some(update) => merge(&mut pending, update),
                    None => break,
                },
                _ = tick.tick() => {
                    let batch: Vec<HeartbeatUpdate> = pending.drain().map(|(_, u)| u).collect();
                    self.flush(store.as_ref(), &batch).await;
                    self.reap(store.as_ref()).await;
                }
            }
        }
        let batch: Vec<HeartbeatUpdate> = pending.drain().map(|(_, u)| u).collect();
        self.flush(store.as_ref(), &batch).await;
    }

    async fn flush(&self, store: &dyn Store, batch: &[HeartbeatUpdate]) {
        // A heartbeat renews the leases of the jobs its agent holds.
        let leases: Vec<(Uuid, JobRef)> =
            batch.iter().flat_map(|u| u.jobs.iter().map(|job| (u.agent_id, *job))).collect();
        let lease_until =
            Timestamp::now() + time::Duration::try_from(self.timings.lease_grace).unwrap_or_default();
        if let Err(e) = store.renew_leases(&leases, lease_until).await {
            tracing::error!(error = %e, "could not renew job leases");
        }
        match store.record_heartbeats(batch).await {
            Ok(ended) => {
                for (agent, why) in ended {
                    let (code, reason) = match why {
                        ConnectionEnd::Revoked => {
                            (marketer_protocol::close::REVOKED, "this agent was revoked by an administrator")
                        }
                        ConnectionEnd::TenantErased => (
                            marketer_protocol::close::TENANT_ERASED,
                            "the organisation was erased: reconnect to delete what this agent holds for it",
                        ),
                    };
                    let _ = self.close(agent, code, reason);
                }
            }
            Err(e) => tracing::error!(error = %e, count = batch.len(), "could not record heartbeats"),
        }
    }

    async fn reap(&self, store: &dyn Store) {
        let now = Timestamp::now();
        let window = time::Duration::try_from(self.timings.offline_after()).unwrap_or(time::Duration::MAX);
        match store.mark_offline(now - window, now).await {
            Ok(gone) => {
                for agent in gone {
                    tracing::info!(agent_id = %agent.id, tenant_id = %agent.tenant_id, "agent offline: no heartbeat");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not mark silent agents offline"),
        }
    }
}

/// Keeps the newest heartbeat per agent, and a model list sent with an
/// earlier heartbeat of the same batch.
fn merge(pending: &mut HashMap<Uuid, HeartbeatUpdate>, mut update: HeartbeatUpdate) {
    if let Some(previous) = pending.remove(&update.agent_id)
        && update.models.is_none()
    {
        update.models = previous.models;
    }
    pending.insert(update.agent_id, update);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hub of one replica (no other replicas to signal).
    fn hub(timings: FleetTimings) -> Hub {
        let metrics = Arc::new(Metrics::new());
        Hub::new(metrics.clone(), Arc::new(Cluster::new(None, metrics)), timings)
    }

    #[test]
    fn the_newest_connection_wins() {
        let hub = hub(FleetTimings::default());
        let (agent, tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let mut first = hub.register(agent, tenant, Capabilities::default(), Vec::new());
        let second = hub.register(agent, tenant, Capabilities::default(), Vec::new());
        assert!(matches!(first.control.try_recv(), Ok(Control::Close { code: 4007, .. })));
        assert!(!hub.unregister(agent, first.connection_id), "the old connection was not current");
        assert!(hub.is_connected(agent), "the old connection's exit leaves the new one registered");
        assert!(hub.close(agent, 4003, "revoked"));
        assert!(hub.unregister(agent, second.connection_id));
        assert!(!hub.is_connected(agent));
        assert!(!hub.close(agent, 4003, "revoked"));
    }

    #[test]
    fn merged_heartbeats_keep_the_latest_state_and_models() {
        let agent = Uuid::now_v7();
        let update = |jobs, models: Option<Vec<marketer_protocol::ModelInfo>>| HeartbeatUpdate {
            agent_id: agent,
            seen_at: Timestamp::now(),
            running_jobs: jobs,
            ollama_reachable: true,
            models,
            jobs: Vec::new(),
        };
        let mut pending = HashMap::new();
        let model = marketer_protocol::ModelInfo { name: "m".into(), size_bytes: 1, digest: None };
        merge(&mut pending, update(1, Some(vec![model.clone()])));
        merge(&mut pending, update(2, None));
        let merged = &pending[&agent];
        assert_eq!(merged.running_jobs, 2);
        assert_eq!(merged.models, Some(vec![model]));
    }

    #[test]
    fn offline_after_is_two_intervals_plus_grace() {
        let timings = FleetTimings {
            heartbeat_interval: Duration::from_secs(10),
            offline_grace: Duration::from_secs(5),
            lease_grace: Duration::from_secs(60),
        };
        assert_eq!(timings.offline_after(), Duration::from_secs(25));
    }

    #[test]
    fn slots_are_reserved_settled_and_released() {
        let hub = hub(FleetTimings::default());
        let (agent, tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let held = JobRef { job_id: Uuid::now_v7(), epoch: 1 };
        let caps = Capabilities { capacity: 3, ..Capabilities::default() };
        let _registration = hub.register(agent, tenant, caps, vec![held]);
        let free = || hub.slots().iter().find(|s| s.agent_id == agent).map(|s| s.free);
        assert_eq!(free(), Some(2), "a job it still runs from before the connection takes a slot");
        assert!(hub.reserve(agent));
        assert!(hub.reserve(agent));
        assert!(!hub.reserve(agent), "never more than its capacity");
        let claimed = JobRef { job_id: Uuid::now_v7(), epoch: 1 };
        hub.settle(agent, Some(claimed));
        hub.settle(agent, None);
        assert_eq!(free(), Some(1), "one claim held, one reservation returned");
        hub.release(agent, held);
        hub.release(agent, claimed);
        assert_eq!(free(), Some(3));
        assert_eq!(hub.running(agent), 0);
        assert!(!hub.reserve(Uuid::now_v7()), "an unknown agent has no slots");
    }

    #[test]
    fn a_heartbeat_frees_slots_of_assignments_the_agent_never_got() {
        let timings =
            FleetTimings { heartbeat_interval: Duration::from_millis(20), ..FleetTimings::default() };
        let hub = hub(timings);
        let (agent, tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let (kept, lost) =
            (JobRef { job_id: Uuid::now_v7(), epoch: 1 }, JobRef { job_id: Uuid::now_v7(), epoch: 3 });
        let caps = Capabilities { capacity: 2, ..Capabilities::default() };
        let _registration = hub.register(agent, tenant, caps, vec![kept, lost]);
        assert!(hub.reconcile(agent, 2, &[kept]).is_empty(), "too recent to tell: it may be on its way");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(hub.reconcile(agent, 4, &[kept]), [lost]);
        assert_eq!(hub.running(agent), 1);
        let free = hub.slots().iter().find(|s| s.agent_id == agent).map(|s| s.free);
        assert_eq!(free, Some(3), "the reported slot count replaces the one from Hello");
    }
}
