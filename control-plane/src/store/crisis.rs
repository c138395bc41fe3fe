//! Crisis alerts on the engagement inbox: per account (its mentions and
//! replies) and per listening query, the negative items in the last hour
//! against the same hour of the week before; an alert is one episode,
//! opened once (a unique index holds at most one open alert per scope, so
//! replicas raise it once, with its notification in the same
//! transaction), updated while it lasts, and closed when the volume is
//! back to normal.

use async_trait::async_trait;
use uuid::Uuid;

use super::{NewNotice, NewWebhookEvent, Result};
use crate::domain::Timestamp;

/// What is watched: an account's own items, or a listening query's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrisisScope {
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub handle: String,
    pub query_id: Option<Uuid>,
    /// The query's hashtag.
    pub query: Option<String>,
    /// The account's posting zone: hours of the week are local.
    pub time_zone: String,
    /// The organisation's thresholds.
    pub min_count: i64,
    /// Hundredths.
    pub z: i64,
}

impl CrisisScope {
    /// The key of the unique open alert.
    pub fn key(&self) -> String {
        match self.query_id {
            Some(q) => format!("query:{q}"),
            None => format!("account:{}", self.account_id),
        }
    }
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrisisAlert {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub handle: String,
    pub query_id: Option<Uuid>,
    pub opened_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    /// Negative and all classified items in the window it opened on.
    pub negatives: i64,
    pub total: i64,
    /// The most negatives in a window since.
    pub peak: i64,
    /// Hundredths.
    pub baseline_mean: i64,
    pub baseline_sd: i64,
    pub z: i64,
    /// The negative items that caused it.
    pub item_ids: Vec<Uuid>,
}

#[async_trait]
pub trait CrisisStore: Send + Sync {
    /// Every connected account, and each listening query, with the
    /// organisation's thresholds.
    async fn crisis_scopes(&self) -> Result<Vec<CrisisScope>>;
    /// Negative and all classified items of the scope posted in
    /// `[from, to)`, for each window.
    async fn window_counts(
        &self,
        scope: &CrisisScope,
        windows: &[(Timestamp, Timestamp)],
    ) -> Result<Vec<(i64, i64)>>;
    /// The scope's negative items posted in `[from, to)`, newest first,
    /// at most `limit`.
    async fn negative_items(
        &self,
        scope: &CrisisScope,
        from: Timestamp,
        to: Timestamp,
        limit: i64,
    ) -> Result<Vec<Uuid>>;
    /// The scope's open alert.
    async fn open_crisis(&self, scope: &CrisisScope) -> Result<Option<CrisisAlert>>;
    /// Opens an alert with its notification and webhook event, unless the
    /// scope has one open (another replica's): `false` then, and nothing
    /// written.
    async fn raise_crisis(
        &self,
        scope: &CrisisScope,
        alert: &CrisisAlert,
        notice: &NewNotice,
        event: &NewWebhookEvent,
    ) -> Result<bool>;
    /// A later window of an open alert: its peak and items grow.
    async fn update_crisis(&self, id: Uuid, peak: i64, item_ids: &[Uuid], now: Timestamp) -> Result<()>;
    /// Closes an alert (the volume is back to normal) with its webhook
    /// event, once: a replica that closes it second writes nothing.
    async fn close_crisis(&self, alert: &CrisisAlert, event: &NewWebhookEvent, now: Timestamp) -> Result<()>;
    /// The organisation's alerts, newest first, at most `limit`.
    async fn crisis_alerts(&self, tenant_id: Uuid, open_only: bool, limit: i64) -> Result<Vec<CrisisAlert>>;
}
