//! Server-Sent Events of a job's log, shared by the job and activity event
//! routes: the stored events after the client's position, then live ones
//! from this replica's bus, falling back to the store whenever the client
//! lags, a gap shows, another replica says it stored events (see
//! `crate::cluster`), or nothing arrives for a while (a safety net for a
//! lost signal). A client never slows the agent: the live buffer is
//! bounded, and a client that falls behind reads from the store.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::jobs::{JobEngine, Live};
use crate::store::{Job, JobEventKind, Store, StoredJobEvent};

/// Events read from the store at a time.
const PAGE: i64 = 500;
/// Other replicas' events reach this replica as signals; a quiet stream
/// also checks the store this often, in case one was lost.
const POLL: Duration = Duration::from_secs(1);

/// An SSE response of `tail`'s events, each rendered by `render`. It ends
/// when `closing` is cancelled (the server is shutting down): the client
/// reconnects, to another replica or to this one restarted, with its
/// `Last-Event-ID`, instead of holding the shutdown for its whole grace.
pub fn event_stream(
    tail: Tail,
    closing: tokio_util::sync::CancellationToken,
    render: impl Fn(&StoredJobEvent) -> Event + Send + 'static,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((tail, render), |(mut tail, render)| async move {
        let event = tail.next().await?;
        let rendered = render(&event);
        Some((Ok(rendered), (tail, render)))
    });
    let stream = futures_util::StreamExt::take_until(stream, closing.cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Follows one job's events for one client: its own position, a bounded
/// live subscription, and the store to catch up from.
pub struct Tail {
    engine: Arc<JobEngine>,
    store: Arc<dyn Store>,
    job_id: Uuid,
    last: i64,
    live: broadcast::Receiver<Live>,
    backlog: VecDeque<Arc<StoredJobEvent>>,
    catch_up: bool,
    done: bool,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail").field("job_id", &self.job_id).field("last", &self.last).finish_non_exhaustive()
    }
}

impl Tail {
    /// Follows `job` after event `after`. The subscription is made before
    /// anything is read, so nothing published in between is missed.
    pub fn new(engine: Arc<JobEngine>, store: Arc<dyn Store>, job: &Job, after: i64) -> Self {
        let live = engine.subscribe(job.id);
        engine.metrics.sse_opened();
        Self {
            engine,
            store,
            job_id: job.id,
            last: after,
            live,
            backlog: VecDeque::new(),
            catch_up: true,
            // A finished job whose every event the client has: nothing to send.
            done: job.status.is_terminal() && after >= job.event_seq,
        }
    }

    async fn next(&mut self) -> Option<Arc<StoredJobEvent>> {
        loop {
            if self.done && self.backlog.is_empty() {
                return None;
            }
            if let Some(event) = self.backlog.pop_front() {
                if event.seq != self.last + 1 {
                    continue;
                }
                self.last = event.seq;
                self.done = event.kind == JobEventKind::Done;
                return Some(event);
            }
            if self.catch_up {
                match self.store.job_events(self.job_id, self.last, PAGE).await {
                    Ok(events) => {
                        self.catch_up = i64::try_from(events.len()).unwrap_or(PAGE) >= PAGE;
                        self.backlog.extend(events.into_iter().map(Arc::new));
                        continue;
                    }
                    Err(e) => {
                        // The client reconnects with its Last-Event-ID.
                        tracing::error!(job_id = %self.job_id, error = %e, "could not read job events");
                        return None;
                    }
                }
            }
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(Live::Event(event)) if event.seq == self.last + 1 => self.backlog.push_back(event),
                    Ok(Live::Event(event)) if event.seq <= self.last => {}
                    Ok(Live::Stored { seq }) if seq <= self.last => {}
                    // A gap (events published out of order) or a lagging
                    // client: the store has everything.
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up = true,
                    Err(broadcast::error::RecvError::Closed) => {
                        self.live = self.engine.subscribe(self.job_id);
                        self.catch_up = true;
                    }
                },
                () = tokio::time::sleep(POLL) => self.catch_up = true,
            }
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        // Drop our receiver first so the channel can go if it was the last.
        let (_, placeholder) = broadcast::channel(1);
        drop(std::mem::replace(&mut self.live, placeholder));
        self.engine.bus.unsubscribe(self.job_id);
        self.engine.metrics.sse_closed();
    }
}
