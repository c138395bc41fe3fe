//! Live delivery of job events to the clients streaming them (SSE) on this
//! replica. The store is the record; the bus only saves subscribers a read
//! per event. A subscriber that falls behind loses live events (bounded
//! buffers: a slow client never slows anyone else) and catches up from the
//! store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::store::StoredJobEvent;

/// Events buffered per job for subscribers that are momentarily slow.
const BUFFER: usize = 256;

#[derive(Debug, Default)]
pub struct EventBus {
    channels: Mutex<HashMap<Uuid, broadcast::Sender<Arc<StoredJobEvent>>>>,
}

impl EventBus {
    pub fn subscribe(&self, job_id: Uuid) -> broadcast::Receiver<Arc<StoredJobEvent>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.entry(job_id).or_insert_with(|| broadcast::channel(BUFFER).0).subscribe()
    }

    /// Drops the job's channel once nobody listens any more.
    pub fn unsubscribe(&self, job_id: Uuid) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if channels.get(&job_id).is_some_and(|c| c.receiver_count() == 0) {
            channels.remove(&job_id);
        }
    }

    pub fn publish(&self, events: &[StoredJobEvent]) {
        let Some(first) = events.first() else { return };
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let Some(channel) = channels.get(&first.job_id) else { return };
        if channel.receiver_count() == 0 {
            channels.remove(&first.job_id);
            return;
        }
        for event in events {
            // An error only means every receiver is gone.
            let _ = channel.send(Arc::new(event.clone()));
        }
    }
}
