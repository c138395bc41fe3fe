//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! `prometheus-client` keeps the registry as a value rather than a process
//! global, so several servers in one test process do not share counters.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route template (`/api/v1/tenants/{tenant_id}`), never the raw
    /// path, so label cardinality stays bounded.
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StepLabels {
    pub step: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CertificateLabels {
    pub certificate: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    http_in_flight: Gauge,
    logins: Family<OutcomeLabels, Counter>,
    audit_write_failures: Counter,
    agents_connected: Gauge,
    agent_connections_opened: Counter,
    agent_connections_closed: Family<ReasonLabels, Counter>,
    agent_handshake_failures: Family<ReasonLabels, Counter>,
    connections_refused: Family<ListenerLabels, Counter>,
    agent_heartbeats: Counter,
    agent_heartbeats_dropped: Counter,
    agent_enrollments: Family<OutcomeLabels, Counter>,
    cluster_notifications_sent: Counter,
    cluster_signals_lost: Family<OutcomeLabels, Counter>,
    cluster_notify_lag: Histogram,
    jobs: Family<StatusLabels, Gauge>,
    job_queue_oldest_age: Gauge<f64, AtomicU64>,
    tenants_waiting_without_agents: Gauge,
    agents: Family<StateLabels, Gauge>,
    database_up: Gauge,
    jobs_finished: Family<OutcomeLabels, Counter>,
    activity_runs_finished: Family<OutcomeLabels, Counter>,
    activity_step_duration: Family<StepLabels, Histogram>,
    job_run_duration: Histogram,
    job_dispatch_duration: Histogram,
    job_retries: Counter,
    job_lease_expiries: Counter,
    sse_subscribers: Gauge,
    certificate_expiry: Family<CertificateLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("marketer");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let http_in_flight = Gauge::default();
        let logins = Family::<OutcomeLabels, Counter>::default();
        let audit_write_failures = Counter::default();
        registry.register("http_requests", "HTTP requests served", http_requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to produce an HTTP response",
            http_duration.clone(),
        );
        registry.register("http_requests_in_flight", "HTTP requests being served", http_in_flight.clone());
        registry.register("logins", "Password logins by outcome", logins.clone());
        registry.register(
            "audit_write_failures",
            "Audit events that could not be written",
            audit_write_failures.clone(),
        );
        let agents_connected = Gauge::default();
        let agent_connections_opened = Counter::default();
        let agent_connections_closed = Family::<ReasonLabels, Counter>::default();
        let agent_handshake_failures = Family::<ReasonLabels, Counter>::default();
        let agent_heartbeats = Counter::default();
        let connections_refused = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed on arrival because their client address held its limit, by listener",
            connections_refused.clone(),
        );
        let agent_heartbeats_dropped = Counter::default();
        let agent_enrollments = Family::<OutcomeLabels, Counter>::default();
        registry.register("agents_connected", "Agents connected to this replica", agents_connected.clone());
        registry.register(
            "agent_connections_opened",
            "Agent tunnel connections accepted",
            agent_connections_opened.clone(),
        );
        registry.register(
            "agent_connections_closed",
            "Agent tunnel connections ended, by reason",
            agent_connections_closed.clone(),
        );
        registry.register(
            "agent_handshake_failures",
            "Agent connections refused before the tunnel opened, by reason",
            agent_handshake_failures.clone(),
        );
        registry.register("agent_heartbeats", "Heartbeats received from agents", agent_heartbeats.clone());
        registry.register(
            "agent_heartbeats_dropped",
            "Heartbeats not written because the write queue was full",
            agent_heartbeats_dropped.clone(),
        );
        registry.register(
            "agent_enrollments",
            "Agent enrollment attempts by outcome",
            agent_enrollments.clone(),
        );
        let cluster_notifications_sent = Counter::default();
        let cluster_signals_lost = Family::<OutcomeLabels, Counter>::default();
        let cluster_notify_lag = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "cluster_notifications_sent",
            "NOTIFY payloads sent to the other replicas (PostgreSQL)",
            cluster_notifications_sent.clone(),
        );
        registry.register(
            "cluster_signals_lost",
            "Signals to the other replicas not sent (dropped: queue full; failed: the database refused), covered by the sweep",
            cluster_signals_lost.clone(),
        );
        registry.register(
            "cluster_notify_lag_seconds",
            "From another replica's NOTIFY to this replica acting on it",
            cluster_notify_lag.clone(),
        );
        let jobs = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "jobs",
            "Unfinished jobs by status, read from the database at scrape",
            jobs.clone(),
        );
        let job_queue_oldest_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "job_queue_oldest_age_seconds",
            "Age of the oldest queued job, read from the database at scrape (0: none queued)",
            job_queue_oldest_age.clone(),
        );
        let tenants_waiting_without_agents = Gauge::default();
        registry.register(
            "tenants_waiting_without_agents",
            "Tenants with queued edge jobs and no agent online, read from the database at scrape",
            tenants_waiting_without_agents.clone(),
        );
        let agents = Family::<StateLabels, Gauge>::default();
        registry.register(
            "agents",
            "Agents by state (online, offline, revoked), read from the database at scrape",
            agents.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "database_up",
            "Whether the last scrape's database reads succeeded (1) or not (0)",
            database_up.clone(),
        );
        let jobs_finished = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "jobs_finished",
            "Jobs finished through this replica, by outcome",
            jobs_finished.clone(),
        );
        let activity_runs_finished = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "activity_runs_finished",
            "Runs of activities (the content pipeline) that ended through this replica, by outcome",
            activity_runs_finished.clone(),
        );
        let activity_step_duration = Family::<StepLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.1, 2.0, 14))
        });
        registry.register(
            "activity_step_duration_seconds",
            "How long each step of the content pipeline took, from its progress events, by step",
            activity_step_duration.clone(),
        );
        let job_run_duration = Histogram::new(exponential_buckets(0.05, 2.0, 16));
        registry.register(
            "job_run_duration_seconds",
            "Wall time of finished attempts, as their runner measured it",
            job_run_duration.clone(),
        );
        let job_dispatch_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 20));
        registry.register(
            "job_dispatch_duration_seconds",
            "From a job's submission to its first assignment, on the replica that assigned it",
            job_dispatch_duration.clone(),
        );
        let job_retries = Counter::default();
        registry.register("job_retries", "Attempts that failed and were queued again", job_retries.clone());
        let job_lease_expiries = Counter::default();
        registry.register(
            "job_lease_expiries",
            "Leases that expired (the agent went silent past the grace) and were given up",
            job_lease_expiries.clone(),
        );
        let sse_subscribers = Gauge::default();
        registry.register(
            "sse_subscribers",
            "Live event streams open on this replica",
            sse_subscribers.clone(),
        );
        let certificate_expiry = Family::<CertificateLabels, Gauge>::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When the agent CA and the gateway's certificate expire (Unix time)",
            certificate_expiry.clone(),
        );
        registry.register(
            "build",
            "Version of the running server",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self {
            registry: Mutex::new(registry),
            http_requests,
            http_duration,
            http_in_flight,
            logins,
            audit_write_failures,
            agents_connected,
            agent_connections_opened,
            agent_connections_closed,
            agent_handshake_failures,
            connections_refused,
            agent_heartbeats,
            agent_heartbeats_dropped,
            agent_enrollments,
            cluster_notifications_sent,
            cluster_signals_lost,
            cluster_notify_lag,
            jobs,
            job_queue_oldest_age,
            tenants_waiting_without_agents,
            agents,
            database_up,
            jobs_finished,
            activity_runs_finished,
            activity_step_duration,
            job_run_duration,
            job_dispatch_duration,
            job_retries,
            job_lease_expiries,
            sse_subscribers,
            certificate_expiry,
        }
    }

    pub fn http_started(&self) {
        self.http_in_flight.inc();
    }

    pub fn http_finished(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_in_flight.dec();
        let route = route.to_owned();
        self.http_requests
            .get_or_create(&HttpLabels { method: method.to_owned(), route: route.clone(), status })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels { method: method.to_owned(), route })
            .observe(elapsed.as_secs_f64());
    }

    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn audit_write_failed(&self) {
        self.audit_write_failures.inc();
    }

    pub fn agent_connected(&self) {
        self.agent_connections_opened.inc();
        self.agents_connected.inc();
    }

    pub fn agent_disconnected(&self) {
        self.agents_connected.dec();
    }

    /// The database's view at scrape time, or `None` when it could not be
    /// read.
    pub fn set_snapshot(&self, snapshot: Option<&crate::store::OpsSnapshot>) {
        let Some(s) = snapshot else {
            self.database_up.set(0);
            return;
        };
        self.database_up.set(1);
        for (status, count) in [("queued", s.queued), ("assigned", s.assigned), ("running", s.running)] {
            self.jobs.get_or_create(&StatusLabels { status }).set(count);
        }
        self.job_queue_oldest_age.set(s.oldest_queued_age.map_or(0.0, |age| age.as_secs_f64()));
        self.tenants_waiting_without_agents.set(s.tenants_waiting_without_agents);
        for (state, count) in
            [("online", s.agents_online), ("offline", s.agents_offline), ("revoked", s.agents_revoked)]
        {
            self.agents.get_or_create(&StateLabels { state }).set(count);
        }
    }

    /// A job's `done` (`succeeded`, `failed`, `cancelled`) or `retrying`
    /// event, with the attempt's wall time when it ran.
    pub fn job_finished(&self, outcome: &str, wall_time: Option<Duration>) {
        let outcome = match outcome {
            "succeeded" => "succeeded",
            "failed" => "failed",
            "cancelled" => "cancelled",
            _ => "other",
        };
        self.jobs_finished.get_or_create(&OutcomeLabels { outcome }).inc();
        if let Some(wall_time) = wall_time {
            self.job_run_duration.observe(wall_time.as_secs_f64());
        }
    }

    /// An activity's run ended (its job's `done` event).
    pub fn activity_run_finished(&self, outcome: &str) {
        let outcome = match outcome {
            "succeeded" => "succeeded",
            "failed" => "failed",
            "cancelled" => "cancelled",
            _ => "other",
        };
        self.activity_runs_finished.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// A pipeline step took `duration`. Steps are the pipeline's own names;
    /// anything else an agent reports counts as `other`, so the label set
    /// stays bounded.
    pub fn activity_step(&self, step: &str, duration: Duration) {
        let step =
            marketer_pipeline::run::STEPS.iter().find(|known| **known == step).copied().unwrap_or("other");
        self.activity_step_duration.get_or_create(&StepLabels { step }).observe(duration.as_secs_f64());
    }

    pub fn job_retried(&self) {
        self.job_retries.inc();
    }

    pub fn job_dispatched(&self, waited: Duration) {
        self.job_dispatch_duration.observe(waited.as_secs_f64());
    }

    pub fn job_leases_expired(&self, count: usize) {
        self.job_lease_expiries.inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    pub fn sse_opened(&self) {
        self.sse_subscribers.inc();
    }

    pub fn sse_closed(&self) {
        self.sse_subscribers.dec();
    }

    /// `certificate` (`agent_ca`, `gateway`) expires at `not_after` (Unix seconds).
    pub fn certificate_expires(&self, certificate: &'static str, not_after: i64) {
        self.certificate_expiry.get_or_create(&CertificateLabels { certificate }).set(not_after);
    }

    pub fn agent_connection_closed(&self, reason: &'static str) {
        self.agent_connections_closed.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn agent_handshake_failed(&self, reason: &'static str) {
        self.agent_handshake_failures.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn connection_refused(&self, listener: &'static str) {
        self.connections_refused.get_or_create(&ListenerLabels { listener }).inc();
    }

    pub fn agent_heartbeat(&self) {
        self.agent_heartbeats.inc();
    }

    pub fn agent_heartbeat_dropped(&self) {
        self.agent_heartbeats_dropped.inc();
    }

    pub fn agent_enrollment(&self, outcome: &'static str) {
        self.agent_enrollments.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// A signal to the other replicas that was not sent (`dropped`,
    /// `failed`).
    pub fn cluster_signal(&self, outcome: &'static str) {
        self.cluster_signals_lost.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn cluster_signals_sent(&self, notifications: usize) {
        self.cluster_notifications_sent.inc_by(u64::try_from(notifications).unwrap_or(u64::MAX));
    }

    pub fn cluster_signal_received(&self, lag: Duration) {
        self.cluster_notify_lag.observe(lag.as_secs_f64());
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}
