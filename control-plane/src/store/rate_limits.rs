//! Request counts by key and minute, shared by the replicas of one
//! PostgreSQL database (`api::rate_limit` decides what they mean).

use async_trait::async_trait;

use super::Result;

#[async_trait]
pub trait RateStore: Send + Sync {
    /// Counts one request of `key` in the minute starting at
    /// `window_start` (unix seconds); returns the minute's count so far.
    async fn count_request(&self, key: &str, window_start: i64) -> Result<i64>;
    /// Forgets minutes that started before `before`.
    async fn prune_rate_windows(&self, before: i64) -> Result<u64>;
}
