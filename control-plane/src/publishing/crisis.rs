//! Crisis detection on the engagement inbox, run by the same engine after
//! the inbox's rounds (at most once a minute). For each connected account
//! (its mentions and replies) and each listening query, the negative
//! items of the last hour are compared with the same hour of the week over
//! the previous eight weeks (local hours in the account's posting zone, so
//! daylight saving does not shift them):
//!
//! - **raise** when the hour has at least the organisation's minimum of
//!   negative items (default 5) and a z-score of at least its threshold
//!   (default 3): `(now - mean) / max(sd, 1)`, the floor keeping a quiet
//!   baseline from turning one complaint into an alert;
//! - **close** when the hour has fallen below the minimum and its z-score
//!   below half the threshold (so an alert does not flap at the edge).
//!
//! An alert is one episode: at most one is open per scope (a unique
//! index), raised with its notification to the organisation's owners and
//! admins (in the app, and by e-mail as each prefers) in one transaction,
//! so replicas raise it once; while it lasts its peak and items are
//! updated, nobody is notified again.

use std::time::Duration;

use super::{Publisher, schedule};
use crate::domain::{Timestamp, new_id};
use crate::store::{
    Audience, CrisisAlert, CrisisScope, NewNotice, NewWebhookEvent, NoticeKind, WebhookEventKind,
};

/// The window compared with its baseline.
pub const WINDOW: Duration = Duration::from_secs(3_600);
/// Weeks of baseline.
pub const BASELINE_WEEKS: i64 = 8;
/// Items an alert keeps at most.
const ITEMS: i64 = 50;

/// A window against its baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    pub mean: f64,
    pub sd: f64,
    pub z: f64,
    /// Far above normal: an alert should be open.
    pub raise: bool,
    /// Back to normal: an open alert closes.
    pub calm: bool,
}

/// How `current` negative items compare with `history` (the same window
/// in earlier weeks), under the thresholds.
pub fn assess(current: i64, history: &[i64], min_count: i64, z_threshold: f64) -> Assessment {
    let n = history.len().max(1) as f64;
    let mean = history.iter().sum::<i64>() as f64 / n;
    let variance = history.iter().map(|h| (*h as f64 - mean).powi(2)).sum::<f64>() / n;
    let sd = variance.sqrt();
    let z = (current as f64 - mean) / sd.max(1.0);
    Assessment {
        mean,
        sd,
        z,
        raise: current >= min_count && z >= z_threshold,
        calm: current < min_count && z < z_threshold / 2.0,
    }
}

fn hundredths(x: f64) -> i64 {
    if x.is_finite() { (x * 100.0).round() as i64 } else { 0 }
}

impl Publisher {
    /// One round over every scope. Returns how many alerts were raised.
    pub async fn detect_crises(&self) -> usize {
        let scopes = match self.store.crisis_scopes().await {
            Ok(scopes) => scopes,
            Err(e) => {
                tracing::error!(error = %e, "could not read what crisis detection watches");
                return 0;
            }
        };
        let mut raised = 0;
        for scope in scopes {
            match self.detect_crisis(&scope, Timestamp::now()).await {
                Ok(true) => raised += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, scope = %scope.key(), "crisis detection failed"),
            }
        }
        raised
    }

    async fn detect_crisis(&self, scope: &CrisisScope, now: Timestamp) -> anyhow::Result<bool> {
        let tz = schedule::zone(&scope.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
        let window = time::Duration::try_from(WINDOW)?;
        let mut windows = vec![(now - window, now)];
        for weeks in 1..=BASELINE_WEEKS {
            if let Some(end) = schedule::weeks_before(now, weeks, &tz) {
                windows.push((end - window, end));
            }
        }
        let counts = self.store.window_counts(scope, &windows).await?;
        let Some(&(negatives, total)) = counts.first() else { return Ok(false) };
        let history: Vec<i64> = counts[1..].iter().map(|(n, _)| *n).collect();
        let a = assess(negatives, &history, scope.min_count, scope.z as f64 / 100.0);
        let open = self.store.open_crisis(scope).await?;
        match open {
            Some(alert) if a.calm => {
                self.store.close_crisis(&alert, &closed_event(&alert, negatives), now).await?;
                tracing::info!(alert = %alert.id, scope = %scope.key(), "crisis alert closed: back to normal");
                Ok(false)
            }
            Some(alert) => {
                if negatives > alert.peak || a.raise {
                    let mut items = self.store.negative_items(scope, now - window, now, ITEMS).await?;
                    for id in &alert.item_ids {
                        if items.len() as i64 >= ITEMS {
                            break;
                        }
                        if !items.contains(id) {
                            items.push(*id);
                        }
                    }
                    self.store.update_crisis(alert.id, alert.peak.max(negatives), &items, now).await?;
                }
                Ok(false)
            }
            None if a.raise => {
                let items = self.store.negative_items(scope, now - window, now, ITEMS).await?;
                let alert = CrisisAlert {
                    id: new_id(),
                    tenant_id: scope.tenant_id,
                    account_id: scope.account_id,
                    handle: scope.handle.clone(),
                    query_id: scope.query_id,
                    opened_at: now,
                    closed_at: None,
                    negatives,
                    total,
                    peak: negatives,
                    baseline_mean: hundredths(a.mean),
                    baseline_sd: hundredths(a.sd),
                    z: hundredths(a.z),
                    item_ids: items,
                };
                let notice = crisis_notice(scope, &alert, &a);
                let event = raised_event(scope, &alert, &notice);
                let raised = self.store.raise_crisis(scope, &alert, &notice, &event).await?;
                if raised {
                    tracing::warn!(alert = %alert.id, scope = %scope.key(), negatives, z = a.z, "crisis alert raised");
                }
                Ok(raised)
            }
            None => Ok(false),
        }
    }
}

fn crisis_notice(scope: &CrisisScope, alert: &CrisisAlert, a: &Assessment) -> NewNotice {
    let what = match &scope.query {
        Some(tag) => format!("#{tag} (listening through {})", scope.handle),
        None => scope.handle.clone(),
    };
    let link = match scope.query_id {
        Some(q) => format!("/t/{}/inbox?status=all&sentiment=negative&query_id={q}", scope.tenant_id),
        None => format!(
            "/t/{}/inbox?status=all&sentiment=negative&account_id={}",
            scope.tenant_id, scope.account_id
        ),
    };
    NewNotice {
        tenant_id: Some(scope.tenant_id),
        kind: NoticeKind::CrisisAlert,
        audience: Audience::Admins,
        title: format!("Crisis alert: {} negative items in an hour on {what}", alert.negatives),
        body: format!(
            "{} of the last hour's {} items on {what} are negative; this hour of the week usually has {:.1} \
             (standard deviation {:.1}, z-score {:.1}). The alert stays open until the volume is back to normal.",
            alert.negatives, alert.total, a.mean, a.sd, a.z
        ),
        link: Some(link),
        dedupe_key: Some(format!("crisis:{}", alert.id)),
    }
}

/// The alert's data in a webhook: numbers and ids, never the items' text.
fn alert_data(alert: &CrisisAlert) -> serde_json::Value {
    serde_json::json!({
        "alert_id": alert.id,
        "account_id": alert.account_id,
        "handle": alert.handle,
        "listening_query_id": alert.query_id,
        "opened_at": alert.opened_at.to_rfc3339_fixed(),
        "negatives": alert.negatives,
        "total": alert.total,
        "peak": alert.peak,
        "baseline_mean": alert.baseline_mean as f64 / 100.0,
        "baseline_sd": alert.baseline_sd as f64 / 100.0,
        "z": alert.z as f64 / 100.0,
        "item_ids": alert.item_ids,
    })
}

/// The `crisis_alert.raised` event: the notice's line for people, the
/// numbers and the items' ids for programs.
fn raised_event(scope: &CrisisScope, alert: &CrisisAlert, notice: &NewNotice) -> NewWebhookEvent {
    let mut data = alert_data(alert);
    data["query"] = serde_json::json!(scope.query);
    data["link"] = serde_json::json!(notice.link);
    NewWebhookEvent::new(scope.tenant_id, WebhookEventKind::CrisisAlertRaised, notice.title.clone(), data)
}

/// The `crisis_alert.closed` event.
fn closed_event(alert: &CrisisAlert, negatives: i64) -> NewWebhookEvent {
    let mut data = alert_data(alert);
    data["negatives_now"] = serde_json::json!(negatives);
    NewWebhookEvent::new(
        alert.tenant_id,
        WebhookEventKind::CrisisAlertClosed,
        format!("Crisis alert on {} closed: negative mentions are back to normal", alert.handle),
        data,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_far_above_its_hour_of_the_week_raises_and_a_normal_hour_does_not() {
        let usual = [2, 3, 1, 2, 2, 3, 2, 1];
        let spike = assess(12, &usual, 5, 3.0);
        assert!(spike.raise && !spike.calm, "{spike:?}");
        assert!((spike.mean - 2.0).abs() < 1e-9);
        let normal = assess(3, &usual, 5, 3.0);
        assert!(!normal.raise && normal.calm, "{normal:?}");
        // Far above a quiet baseline, but fewer than the minimum: no alert.
        let few = assess(4, &[0; 8], 5, 3.0);
        assert!(!few.raise, "{few:?}");
        // No history (a new account): the minimum and the floor decide.
        let fresh = assess(6, &[], 5, 3.0);
        assert!(fresh.raise, "{fresh:?}");
        // Between the two: an open alert stays open, none is raised.
        let between = assess(5, &[4, 5, 3, 4, 5, 4, 3, 4], 5, 3.0);
        assert!(!between.raise && !between.calm, "{between:?}");
    }
}
