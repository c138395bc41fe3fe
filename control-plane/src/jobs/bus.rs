//! Live delivery of job events to the clients streaming them (SSE) on this
//! replica. The store is the record; the bus only saves subscribers a read
//! per event. A subscriber that falls behind loses live events (bounded
//! buffers: a slow client never slows anyone else) and catches up from the
//! store. Events stored by another replica arrive as a poke
//! ([`Live::Stored`], from `crate::cluster`): read the store now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::store::StoredJobEvent;

/// Events buffered per job for subscribers that are momentarily slow.
const BUFFER: usize = 256;

/// What a subscriber hears.
#[derive(Debug, Clone)]
pub enum Live {
    /// An event this replica stored.
    Event(Arc<StoredJobEvent>),
    /// Events up to `seq` are in the store (another replica stored them, or
    /// signals may have been missed: `i64::MAX`).
    Stored { seq: i64 },
}

#[derive(Debug, Default)]
pub struct EventBus {
    channels: Mutex<HashMap<Uuid, broadcast::Sender<Live>>>,
}

impl EventBus {
    pub fn subscribe(&self, job_id: Uuid) -> broadcast::Receiver<Live> {
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
            let _ = channel.send(Live::Event(Arc::new(event.clone())));
        }
    }

    /// Tells the job's subscribers, if any, that the store has its events
    /// up to `seq`.
    pub fn poke(&self, job_id: Uuid, seq: i64) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(&job_id) {
            let _ = channel.send(Live::Stored { seq });
        }
    }

    /// Tells every subscriber to look at the store.
    pub fn poke_all(&self) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        for channel in channels.values() {
            let _ = channel.send(Live::Stored { seq: i64::MAX });
        }
    }
}
