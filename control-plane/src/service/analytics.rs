//! Analytics: what each published post achieved. This part owns reading a
//! post's metrics (the readings the collector in `publishing/collect.rs`
//! stores), the one definition of engagement rate, and saying which
//! metrics a platform stopped reporting.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, TenantAccess};
use crate::domain::{Permission, Timestamp};
use crate::error::{NotFoundExt, Result};
use crate::store::{Metrics, MetricsReading};

/// How engagement rate is computed, shown next to every number that uses it.
pub const ENGAGEMENT_RATE: &str = "Engagement rate = engagements (likes, comments, shares and saves that the \
     platform reports) ÷ impressions. Where the platform reports no impressions, there is no rate.";

/// A metric's name as people read it.
pub fn metric_label(name: &str) -> &'static str {
    match name {
        "impressions" => "Impressions",
        "reach" => "Reach",
        "likes" => "Likes",
        "comments" => "Comments and replies",
        "shares" => "Shares and reposts",
        "saves" => "Saves and bookmarks",
        "link_clicks" => "Link clicks",
        "profile_visits" => "Profile visits",
        "video_views" => "Video views",
        _ => "Other",
    }
}

/// A metric the platform reported before and not in the latest reading.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NoLongerReported {
    pub metric: String,
    /// The first reading without it.
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
}

/// A post's metrics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PostMetricsView {
    pub post_id: Uuid,
    /// Every reading, oldest first (a metric the platform did not report is
    /// null, never 0).
    pub readings: Vec<MetricsReading>,
    /// The latest reading's metrics.
    pub latest: Option<Metrics>,
    pub engagements: Option<i64>,
    /// Engagements ÷ impressions, when both are known (0 to 1).
    pub engagement_rate: Option<f64>,
    pub engagement_rate_definition: &'static str,
    pub no_longer_reported: Vec<NoLongerReported>,
    /// Why the last reading failed, if it did.
    pub last_error: Option<String>,
}

/// Engagements ÷ impressions (see [`ENGAGEMENT_RATE`]).
pub fn engagement_rate(metrics: &Metrics) -> Option<f64> {
    let impressions = metrics.impressions.filter(|i| *i > 0)?;
    #[allow(clippy::cast_precision_loss)]
    let rate = metrics.engagements()? as f64 / impressions as f64;
    Some(rate)
}

/// The metrics reported in an earlier reading and absent from the latest,
/// with the first reading since which each is absent.
pub fn no_longer_reported(readings: &[MetricsReading]) -> Vec<NoLongerReported> {
    let Some(latest) = readings.last() else { return Vec::new() };
    let mut gone = Vec::new();
    for (i, (name, value)) in latest.metrics.named().iter().enumerate() {
        if value.is_some() {
            continue;
        }
        let last_seen = readings.iter().rposition(|r| r.metrics.named()[i].1.is_some());
        if let Some(at) = last_seen {
            gone.push(NoLongerReported { metric: (*name).to_owned(), since: readings[at + 1].collected_at });
        }
    }
    gone
}

impl App {
    pub async fn post_metrics(&self, access: &TenantAccess, post_id: Uuid) -> Result<PostMetricsView> {
        access.require(Permission::ProjectsRead)?;
        let (readings, last_error) =
            self.store.post_metrics(access.tenant_id, post_id).await.or_not_found("post")?;
        let latest = readings.last().map(|r| r.metrics.clone());
        Ok(PostMetricsView {
            post_id,
            engagements: latest.as_ref().and_then(Metrics::engagements),
            engagement_rate: latest.as_ref().and_then(engagement_rate),
            engagement_rate_definition: ENGAGEMENT_RATE,
            no_longer_reported: no_longer_reported(&readings),
            latest,
            readings,
            last_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(minute: i64, metrics: Metrics) -> MetricsReading {
        MetricsReading {
            collected_at: Timestamp::parse_rfc3339("2026-12-05T12:00:00Z").unwrap()
                + time::Duration::minutes(minute),
            schema_version: 1,
            metrics,
        }
    }

    #[test]
    fn engagement_rate_needs_impressions_and_counts_only_what_was_reported() {
        let m = Metrics {
            impressions: Some(200),
            likes: Some(10),
            comments: Some(4),
            shares: None,
            ..Metrics::default()
        };
        assert_eq!(m.engagements(), Some(14));
        assert_eq!(engagement_rate(&m), Some(0.07));
        assert_eq!(engagement_rate(&Metrics { likes: Some(3), ..Metrics::default() }), None);
        assert_eq!(Metrics::default().engagements(), None, "nothing reported is not zero");
    }

    #[test]
    fn a_metric_the_platform_stopped_reporting_is_named_with_when() {
        let readings = vec![
            reading(0, Metrics { impressions: Some(10), likes: Some(1), ..Metrics::default() }),
            reading(60, Metrics { impressions: Some(20), likes: Some(2), ..Metrics::default() }),
            reading(120, Metrics { likes: Some(3), ..Metrics::default() }),
            reading(180, Metrics { likes: Some(3), ..Metrics::default() }),
        ];
        let gone = no_longer_reported(&readings);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].metric.as_str(), gone[0].since), ("impressions", readings[2].collected_at));
        assert!(no_longer_reported(&readings[..2]).is_empty());
    }
}
