//! [`AnalyticsStore`] for [`SqlStore`]: metrics readings and the
//! collector's schedule on `social_posts`; accounts' followers by day
//! (`account_followers`) and their schedule on `social_accounts`.

use super::*;
use crate::store::{
    AnalyticsStore, DueFollowers, DueMetrics, FollowersReading, LatestFollowers, METRICS_SCHEMA_VERSION,
    Metrics, MetricsReading, PerformanceFilter, PostOutcome, PostPerformance,
};

/// The metric columns of `post_metrics` (all null for a post never read).
#[derive(FromRow)]
struct MetricColumns {
    impressions: Option<i64>,
    reach: Option<i64>,
    likes: Option<i64>,
    comments: Option<i64>,
    shares: Option<i64>,
    saves: Option<i64>,
    link_clicks: Option<i64>,
    profile_visits: Option<i64>,
    video_views: Option<i64>,
}

impl From<MetricColumns> for Metrics {
    fn from(c: MetricColumns) -> Self {
        Metrics {
            impressions: c.impressions,
            reach: c.reach,
            likes: c.likes,
            comments: c.comments,
            shares: c.shares,
            saves: c.saves,
            link_clicks: c.link_clicks,
            profile_visits: c.profile_visits,
            video_views: c.video_views,
        }
    }
}

#[derive(FromRow)]
struct ReadingRow {
    collected_at: Timestamp,
    schema_version: i64,
    #[sqlx(flatten)]
    metrics: MetricColumns,
}

#[derive(FromRow)]
struct OutcomeRow {
    account_id: Uuid,
    published_at: Timestamp,
    posting_time_zone: String,
    #[sqlx(flatten)]
    reading: ReadingRow,
}

#[derive(FromRow)]
struct PerformanceRow {
    id: Uuid,
    account_id: Uuid,
    platform: String,
    handle: String,
    project_id: Option<Uuid>,
    campaign_id: Option<Uuid>,
    text: String,
    published_at: Timestamp,
    platform_url: Option<String>,
    collected_at: Option<Timestamp>,
    #[sqlx(flatten)]
    metrics: MetricColumns,
}

#[async_trait]
impl<DB> AnalyticsStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Timestamp>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Uuid>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> &'t str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn metrics_due(
        &self,
        now: Timestamp,
        first_before: Timestamp,
        oldest: Timestamp,
        limit: i64,
    ) -> Result<Vec<DueMetrics>> {
        let rows: Vec<(Uuid, Uuid, String, Timestamp, Option<Timestamp>)> = sqlx::query_as(
            "SELECT p.id, p.account_id, p.platform_post_id, p.published_at, p.metrics_next_at \
             FROM social_posts p \
             JOIN social_accounts a ON a.id = p.account_id \
             WHERE p.status = 'published' AND p.platform_post_id IS NOT NULL \
             AND p.published_at > $3 \
             AND (p.metrics_next_at <= $1 OR (p.metrics_next_at IS NULL AND p.published_at <= $2)) \
             AND a.disconnected_at IS NULL AND a.status = 'connected' \
             AND (a.rate_limited_until IS NULL OR a.rate_limited_until <= $1) \
             AND NOT EXISTS (SELECT 1 FROM platform_limits l WHERE l.platform = a.platform AND l.limited_until > $1) \
             ORDER BY p.published_at, p.id LIMIT $4",
        )
        .bind(now)
        .bind(first_before)
        .bind(oldest)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(post_id, account_id, platform_post_id, published_at, next_at)| DueMetrics {
                post_id,
                account_id,
                platform_post_id,
                published_at,
                next_at,
            })
            .collect())
    }

    async fn claim_metrics(&self, post_id: Uuid, seen: Option<Timestamp>, until: Timestamp) -> Result<bool> {
        let r =
            match seen {
                Some(seen) => {
                    sqlx::query(
                        "UPDATE social_posts SET metrics_next_at = $3 WHERE id = $1 AND metrics_next_at = $2",
                    )
                    .bind(post_id)
                    .bind(seen)
                    .bind(until)
                    .execute(&self.write)
                    .await?
                }
                None => sqlx::query(
                    "UPDATE social_posts SET metrics_next_at = $2 WHERE id = $1 AND metrics_next_at IS NULL",
                )
                .bind(post_id)
                .bind(until)
                .execute(&self.write)
                .await?,
            };
        Ok(DB::rows_affected(&r) == 1)
    }

    async fn record_metrics(
        &self,
        post_id: Uuid,
        m: &Metrics,
        raw: &str,
        collected_at: Timestamp,
        next_at: Option<Timestamp>,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO post_metrics (post_id, tenant_id, collected_at, schema_version, impressions, reach, \
             likes, comments, shares, saves, link_clicks, profile_visits, video_views, raw) \
             SELECT id, tenant_id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM social_posts \
             WHERE id = $1 AND status = 'published' ON CONFLICT (post_id, collected_at) DO NOTHING",
        )
        .bind(post_id)
        .bind(collected_at)
        .bind(METRICS_SCHEMA_VERSION)
        .bind(m.impressions)
        .bind(m.reach)
        .bind(m.likes)
        .bind(m.comments)
        .bind(m.shares)
        .bind(m.saves)
        .bind(m.link_clicks)
        .bind(m.profile_visits)
        .bind(m.video_views)
        .bind(raw)
        .execute(&mut *tx)
        .await?;
        // With no next time, collection ends: a time far beyond any
        // schedule keeps the post out of the due list.
        let next = next_at.unwrap_or(Timestamp::from_datetime(Timestamp::LATEST.midnight().assume_utc()));
        sqlx::query("UPDATE social_posts SET metrics_next_at = $2, metrics_error = NULL WHERE id = $1")
            .bind(post_id)
            .bind(next)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn metrics_failed(&self, post_id: Uuid, error: &str, retry_at: Timestamp) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        sqlx::query("UPDATE social_posts SET metrics_next_at = $2, metrics_error = $3 WHERE id = $1")
            .bind(post_id)
            .bind(retry_at)
            .bind(error)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn post_metrics(
        &self,
        tenant_id: Uuid,
        post_id: Uuid,
    ) -> Result<(Vec<MetricsReading>, Option<String>)> {
        let error: Option<Option<String>> =
            sqlx::query_scalar("SELECT metrics_error FROM social_posts WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(post_id)
                .fetch_optional(&self.read)
                .await?;
        let Some(error) = error else { return Err(StoreError::NotFound) };
        let rows: Vec<ReadingRow> = sqlx::query_as(
            "SELECT collected_at, schema_version, impressions, reach, likes, comments, shares, saves, \
             link_clicks, profile_visits, video_views FROM post_metrics \
             WHERE tenant_id = $1 AND post_id = $2 ORDER BY collected_at LIMIT 2000",
        )
        .bind(tenant_id)
        .bind(post_id)
        .fetch_all(&self.read)
        .await?;
        let readings = rows
            .into_iter()
            .map(|r| MetricsReading {
                metrics: r.metrics.into(),
                collected_at: r.collected_at,
                schema_version: r.schema_version,
            })
            .collect();
        Ok((readings, error))
    }

    async fn post_outcomes(
        &self,
        tenant_id: Uuid,
        platform: &str,
        since: Timestamp,
        limit: i64,
    ) -> Result<Vec<PostOutcome>> {
        let rows: Vec<OutcomeRow> = sqlx::query_as(
            "SELECT p.account_id, p.published_at, a.posting_time_zone, m.collected_at, m.schema_version, \
             m.impressions, m.reach, m.likes, m.comments, m.shares, m.saves, m.link_clicks, m.profile_visits, \
             m.video_views \
             FROM social_posts p \
             JOIN social_accounts a ON a.id = p.account_id AND a.tenant_id = p.tenant_id \
             JOIN post_metrics m ON m.post_id = p.id \
             WHERE p.tenant_id = $1 AND a.platform = $2 AND p.status = 'published' AND p.published_at >= $3 \
             AND m.collected_at = (SELECT MAX(l.collected_at) FROM post_metrics l WHERE l.post_id = p.id) \
             ORDER BY p.published_at DESC LIMIT $4",
        )
        .bind(tenant_id)
        .bind(platform)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PostOutcome {
                account_id: r.account_id,
                published_at: r.published_at,
                time_zone: r.posting_time_zone,
                metrics: r.reading.metrics.into(),
            })
            .collect())
    }

    async fn post_performance(
        &self,
        tenant_id: Uuid,
        f: &PerformanceFilter,
        limit: i64,
    ) -> Result<Vec<PostPerformance>> {
        let rows: Vec<PerformanceRow> = sqlx::query_as(
            "SELECT p.id, p.account_id, a.platform, a.handle, p.project_id, p.campaign_id, p.text, \
             p.published_at, p.platform_url, m.collected_at, m.impressions, m.reach, m.likes, m.comments, \
             m.shares, m.saves, m.link_clicks, m.profile_visits, m.video_views \
             FROM social_posts p \
             JOIN social_accounts a ON a.id = p.account_id AND a.tenant_id = p.tenant_id \
             LEFT JOIN post_metrics m ON m.post_id = p.id \
             AND m.collected_at = (SELECT MAX(l.collected_at) FROM post_metrics l WHERE l.post_id = p.id) \
             WHERE p.tenant_id = $1 AND p.status = 'published' AND p.published_at IS NOT NULL \
             AND ($2 IS NULL OR p.published_at >= $2) AND ($3 IS NULL OR p.published_at < $3) \
             AND ($4 IS NULL OR p.account_id = $4) AND ($5 IS NULL OR p.project_id = $5) \
             AND ($6 IS NULL OR p.campaign_id = $6) AND ($7 IS NULL OR a.platform = $7) \
             ORDER BY p.published_at, p.id LIMIT $8",
        )
        .bind(tenant_id)
        .bind(f.from)
        .bind(f.to)
        .bind(f.account_id)
        .bind(f.project_id)
        .bind(f.campaign_id)
        .bind(f.network.clone())
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PostPerformance {
                post_id: r.id,
                account_id: r.account_id,
                network: r.platform,
                handle: r.handle,
                project_id: r.project_id,
                campaign_id: r.campaign_id,
                text: r.text,
                published_at: r.published_at,
                platform_url: r.platform_url,
                collected_at: r.collected_at,
                metrics: r.metrics.into(),
                followers: None,
            })
            .collect())
    }

    async fn followers_due(&self, now: Timestamp, limit: i64) -> Result<Vec<DueFollowers>> {
        let rows: Vec<(Uuid, Option<Timestamp>)> = sqlx::query_as(
            "SELECT a.id, a.followers_next_at FROM social_accounts a \
             WHERE a.disconnected_at IS NULL AND a.status = 'connected' \
             AND (a.followers_next_at IS NULL OR a.followers_next_at <= $1) \
             AND (a.rate_limited_until IS NULL OR a.rate_limited_until <= $1) \
             AND NOT EXISTS (SELECT 1 FROM platform_limits l WHERE l.platform = a.platform AND l.limited_until > $1) \
             ORDER BY a.followers_next_at IS NOT NULL, a.followers_next_at, a.id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(account_id, next_at)| DueFollowers { account_id, next_at }).collect())
    }

    async fn claim_followers(
        &self,
        account_id: Uuid,
        seen: Option<Timestamp>,
        until: Timestamp,
    ) -> Result<bool> {
        let r = match seen {
            Some(seen) => {
                sqlx::query(
                    "UPDATE social_accounts SET followers_next_at = $3 WHERE id = $1 AND followers_next_at = $2",
                )
                .bind(account_id)
                .bind(seen)
                .bind(until)
                .execute(&self.write)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE social_accounts SET followers_next_at = $2 WHERE id = $1 AND followers_next_at IS NULL",
                )
                .bind(account_id)
                .bind(until)
                .execute(&self.write)
                .await?
            }
        };
        Ok(DB::rows_affected(&r) == 1)
    }

    async fn record_followers(
        &self,
        account_id: Uuid,
        followers: i64,
        collected_at: Timestamp,
        next_at: Timestamp,
    ) -> Result<()> {
        let day = collected_at.as_datetime().date().to_string();
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO account_followers (account_id, tenant_id, day, followers, collected_at) \
             SELECT id, tenant_id, $2, $3, $4 FROM social_accounts WHERE id = $1 \
             ON CONFLICT (account_id, day) DO UPDATE SET followers = excluded.followers, \
             collected_at = excluded.collected_at",
        )
        .bind(account_id)
        .bind(day)
        .bind(followers)
        .bind(collected_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE social_accounts SET followers_next_at = $2, followers_error = NULL WHERE id = $1",
        )
        .bind(account_id)
        .bind(next_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn followers_failed(&self, account_id: Uuid, error: &str, retry_at: Timestamp) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        sqlx::query("UPDATE social_accounts SET followers_next_at = $2, followers_error = $3 WHERE id = $1")
            .bind(account_id)
            .bind(retry_at)
            .bind(error)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn followers(
        &self,
        tenant_id: Uuid,
        from_day: &str,
        to_day: &str,
        account_id: Option<Uuid>,
        network: Option<&str>,
    ) -> Result<Vec<FollowersReading>> {
        let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(
            "SELECT f.account_id, f.day, f.followers FROM account_followers f \
             JOIN social_accounts a ON a.id = f.account_id AND a.tenant_id = f.tenant_id \
             WHERE f.tenant_id = $1 AND f.day >= $2 AND f.day <= $3 \
             AND ($4 IS NULL OR f.account_id = $4) AND ($5 IS NULL OR a.platform = $5) \
             ORDER BY f.account_id, f.day LIMIT 1000000",
        )
        .bind(tenant_id)
        .bind(from_day)
        .bind(to_day)
        .bind(account_id)
        .bind(network.map(str::to_owned))
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(account_id, day, followers)| FollowersReading { account_id, day, followers })
            .collect())
    }

    async fn latest_followers(&self, tenant_id: Uuid) -> Result<Vec<LatestFollowers>> {
        let rows: Vec<(Uuid, Option<String>, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT a.id, f.day, f.followers, a.followers_error FROM social_accounts a \
             LEFT JOIN account_followers f ON f.account_id = a.id AND f.tenant_id = a.tenant_id \
             AND f.day = (SELECT MAX(l.day) FROM account_followers l WHERE l.account_id = a.id) \
             WHERE a.tenant_id = $1 AND a.disconnected_at IS NULL",
        )
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(account_id, day, followers, error)| LatestFollowers { account_id, day, followers, error })
            .collect())
    }
}
