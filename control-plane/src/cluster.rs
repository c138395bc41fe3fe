//! What the replicas of one control plane tell each other, through
//! PostgreSQL's `LISTEN/NOTIFY`: a job was queued (dispatch now, not at the
//! next sweep), a job has new events (live streams on other replicas read
//! them now), and messages for agents connected to another replica
//! (cancellations, closes, document removals). The database stays the
//! record: a signal only says "look now". A signal can be lost (a listener
//! reconnecting, a full queue): the periodic sweep and the event streams'
//! own polling remain the safety net, and after a reconnect every
//! subscriber and the scheduler look at the store once.
//!
//! On SQLite (one process) there is nobody to tell and [`Cluster::send`]
//! does nothing.
//!
//! Signals are batched: a sender task takes what has piled up while the
//! previous batch went out, merges it (one "queued" for many submissions,
//! one "events up to seq N" per job) and sends it in one statement, each
//! notification under PostgreSQL's 8,000-byte payload limit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use marketer_protocol::ServerMessage;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::gateway::Hub;
use crate::jobs::JobEngine;
use crate::metrics::Metrics;

/// Signals waiting to be sent, at most; past that they are dropped (the
/// sweep picks their work up) and counted.
const QUEUE: usize = 16_384;
/// PostgreSQL refuses payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;
/// Between attempts to reach PostgreSQL again.
const RETRY: Duration = Duration::from_secs(1);

/// One thing a replica tells the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Signal {
    /// Jobs were queued or requeued: dispatch to this replica's agents.
    Queued,
    /// A job's events up to `seq` are stored.
    Events { job: Uuid, seq: i64 },
    /// For the agent's connection, wherever it is.
    Send { agent: Uuid, message: Box<ServerMessage> },
    /// Close the agent's connection, wherever it is.
    Close { agent: Uuid, code: u16, reason: String },
    /// Close every connection of the tenant's agents.
    CloseTenant { tenant: Uuid, code: u16, reason: String },
}

/// A batch as it travels: who sent it (replicas ignore their own), when
/// (milliseconds since the epoch, for the lag metric), and the signals.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    from: Uuid,
    at: i64,
    signals: Vec<Signal>,
}

/// This replica's side of the conversation.
#[derive(Debug)]
pub struct Cluster {
    /// This process, for as long as it runs.
    pub replica: Uuid,
    outbox: Option<mpsc::Sender<Signal>>,
    /// The queue's other end, taken by [`run`].
    pending: Mutex<Option<(sqlx::PgPool, mpsc::Receiver<Signal>)>>,
    metrics: Arc<Metrics>,
}

impl Cluster {
    /// On PostgreSQL (`pool`), signals go to the other replicas; without
    /// one, nowhere.
    pub fn new(pool: Option<sqlx::PgPool>, metrics: Arc<Metrics>) -> Self {
        let replica = Uuid::now_v7();
        match pool {
            Some(pool) => {
                let (outbox, receiver) = mpsc::channel(QUEUE);
                Self { replica, outbox: Some(outbox), pending: Mutex::new(Some((pool, receiver))), metrics }
            }
            None => Self { replica, outbox: None, pending: Mutex::new(None), metrics },
        }
    }

    /// Whether other replicas may exist (the database is PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.outbox.is_some()
    }

    /// Tells the other replicas, soon (never waits).
    pub fn send(&self, signal: Signal) {
        let Some(outbox) = &self.outbox else { return };
        if outbox.try_send(signal).is_err() {
            self.metrics.cluster_signal("dropped");
        }
    }
}

/// Sends this replica's signals and acts on the others' until `shutdown`.
/// Does nothing on SQLite.
pub async fn run(cluster: Arc<Cluster>, engine: Arc<JobEngine>, hub: Arc<Hub>, shutdown: CancellationToken) {
    let Some((pool, receiver)) = cluster.pending.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let channel = match channel_name(&pool).await {
        Ok(channel) => channel,
        Err(e) => {
            tracing::error!(error = %e, "could not name the replicas' channel; other replicas' work is picked up by the sweep");
            return;
        }
    };
    let sender = tokio::spawn(send_batches(
        cluster.clone(),
        pool.clone(),
        channel.clone(),
        receiver,
        shutdown.clone(),
    ));
    listen(&cluster, &pool, &channel, &engine, &hub, &shutdown).await;
    let _ = sender.await;
}

/// One channel per database schema, so that control planes sharing a
/// database in different schemas (as tests do) do not hear each other.
async fn channel_name(pool: &sqlx::PgPool) -> Result<String, sqlx::Error> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(pool).await?;
    let safe: String = schema.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect();
    Ok(format!("marketer_{safe}"))
}

async fn send_batches(
    cluster: Arc<Cluster>,
    pool: sqlx::PgPool,
    channel: String,
    mut receiver: mpsc::Receiver<Signal>,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return,
            next = receiver.recv() => match next { Some(signal) => signal, None => return },
        };
        let mut batch = vec![first];
        while batch.len() < 4_096 {
            match receiver.try_recv() {
                Ok(signal) => batch.push(signal),
                Err(_) => break,
            }
        }
        let payloads = payloads(cluster.replica, merge(batch));
        let sent = sqlx::query("SELECT pg_notify($1, payload) FROM UNNEST($2::text[]) AS payload")
            .bind(&channel)
            .bind(&payloads)
            .execute(&pool)
            .await;
        match sent {
            Ok(_) => cluster.metrics.cluster_signals_sent(payloads.len()),
            Err(e) => {
                // Lost: the sweep and the streams' polling cover for it.
                cluster.metrics.cluster_signal("failed");
                tracing::warn!(error = %e, "could not signal the other replicas");
            }
        }
    }
}

/// One `Queued` for any number, the highest `seq` per job; the rest in order.
fn merge(batch: Vec<Signal>) -> Vec<Signal> {
    let mut queued = false;
    let mut events: BTreeMap<Uuid, i64> = BTreeMap::new();
    let mut rest = Vec::new();
    for signal in batch {
        match signal {
            Signal::Queued => queued = true,
            Signal::Events { job, seq } => {
                let known = events.entry(job).or_insert(seq);
                *known = (*known).max(seq);
            }
            other => rest.push(other),
        }
    }
    let mut merged: Vec<Signal> = Vec::with_capacity(rest.len() + events.len() + 1);
    if queued {
        merged.push(Signal::Queued);
    }
    merged.extend(events.into_iter().map(|(job, seq)| Signal::Events { job, seq }));
    merged.extend(rest);
    merged
}

/// The signals as notification payloads, each under the size limit. A
/// signal too large on its own is dropped with a warning (the agent learns
/// of it when it next connects).
fn payloads(from: Uuid, signals: Vec<Signal>) -> Vec<String> {
    let at = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let at = i64::try_from(at).unwrap_or_default();
    let envelope =
        |signals: Vec<Signal>| serde_json::to_string(&Envelope { from, at, signals }).unwrap_or_default();
    let mut out = Vec::new();
    let mut current: Vec<Signal> = Vec::new();
    for signal in signals {
        current.push(signal);
        if envelope(current.clone()).len() > MAX_PAYLOAD {
            let last = current.pop().unwrap_or(Signal::Queued);
            if !current.is_empty() {
                out.push(envelope(std::mem::take(&mut current)));
            }
            if envelope(vec![last.clone()]).len() > MAX_PAYLOAD {
                tracing::warn!(?last, "a signal too large for PostgreSQL's NOTIFY was dropped");
            } else {
                current.push(last);
            }
        }
    }
    if !current.is_empty() {
        out.push(envelope(current));
    }
    out
}

async fn listen(
    cluster: &Cluster,
    pool: &sqlx::PgPool,
    channel: &str,
    engine: &JobEngine,
    hub: &Hub,
    shutdown: &CancellationToken,
) {
    let mut listener: Option<sqlx::postgres::PgListener> = None;
    loop {
        if listener.is_none() {
            match subscribe(pool, channel).await {
                Ok(subscribed) => {
                    listener = Some(subscribed);
                    // Whatever was said while nobody listened: look once.
                    resync(engine);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for the other replicas; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(RETRY) => continue,
                    }
                }
            }
        }
        let Some(active) = listener.as_mut() else { continue };
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            received = active.try_recv() => received,
        };
        match received {
            Ok(Some(notification)) => act(cluster, engine, hub, notification.payload()),
            // The connection was lost and made again: notifications in
            // between are gone.
            Ok(None) => resync(engine),
            Err(e) => {
                tracing::warn!(error = %e, "lost the replicas' channel; reconnecting");
                listener = None;
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}

async fn subscribe(pool: &sqlx::PgPool, channel: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    // The pool closing at shutdown ends the wait; so does `shutdown`.
    listener.listen(channel).await?;
    Ok(listener)
}

/// After signals may have been missed: the scheduler and every live stream
/// look at the store.
fn resync(engine: &JobEngine) {
    engine.wake();
    engine.bus.poke_all();
}

fn act(cluster: &Cluster, engine: &JobEngine, hub: &Hub, payload: &str) {
    let envelope: Envelope = match serde_json::from_str(payload) {
        Ok(envelope) => envelope,
        Err(e) => {
            tracing::warn!(error = %e, "an unreadable signal on the replicas' channel");
            return;
        }
    };
    if envelope.from == cluster.replica {
        return;
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let lag_ms = i64::try_from(now).unwrap_or_default().saturating_sub(envelope.at).max(0);
    cluster.metrics.cluster_signal_received(Duration::from_millis(u64::try_from(lag_ms).unwrap_or_default()));
    for signal in envelope.signals {
        match signal {
            Signal::Queued => engine.wake(),
            Signal::Events { job, seq } => engine.bus.poke(job, seq),
            Signal::Send { agent, message } => {
                hub.send(agent, *message);
            }
            Signal::Close { agent, code, reason } => {
                hub.close(agent, code, &reason);
            }
            Signal::CloseTenant { tenant, code, reason } => {
                for agent in hub.tenant_agents(tenant) {
                    hub.close(agent, code, &reason);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_merged_and_split_under_the_payload_limit() {
        let job = Uuid::now_v7();
        let merged = merge(vec![
            Signal::Queued,
            Signal::Events { job, seq: 3 },
            Signal::Queued,
            Signal::Events { job, seq: 7 },
            Signal::Events { job, seq: 5 },
        ]);
        assert_eq!(merged, vec![Signal::Queued, Signal::Events { job, seq: 7 }]);

        let many: Vec<Signal> = (0..500).map(|seq| Signal::Events { job: Uuid::now_v7(), seq }).collect();
        let out = payloads(Uuid::now_v7(), many);
        assert!(out.len() > 1, "split into several notifications");
        let mut seen = 0;
        for payload in &out {
            assert!(payload.len() <= MAX_PAYLOAD, "{}", payload.len());
            seen += serde_json::from_str::<Envelope>(payload).unwrap().signals.len();
        }
        assert_eq!(seen, 500, "nothing lost in the split");

        let huge = Signal::Close { agent: job, code: 4000, reason: "x".repeat(MAX_PAYLOAD) };
        assert!(payloads(job, vec![huge, Signal::Queued]).iter().all(|p| p.len() <= MAX_PAYLOAD));
    }
}
