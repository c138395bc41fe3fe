//! [`ActivityStore`] for [`SqlStore`]: activities and their runs, versions,
//! approvals, cloud providers and usage.

use super::*;
use crate::store::{
    Activity, ActivityFilter, ActivityKind, ActivityStatus, ActivityStore, ActivityVersion, CloudProvider,
    ModelPrice, NewActivity, NewActivityVersion, UsageDay,
};

#[derive(FromRow)]
struct ActivityRow {
    id: Uuid,
    tenant_id: Uuid,
    project_id: Uuid,
    campaign_id: Option<Uuid>,
    kind: String,
    title: String,
    input: String,
    model: String,
    current_job_id: Uuid,
    content_job_id: Option<Uuid>,
    runs: i64,
    approved_at: Option<Timestamp>,
    approved_by: Option<Uuid>,
    created_by: Option<Uuid>,
    created_at: Timestamp,
    updated_at: Timestamp,
    property_id: Option<Uuid>,
    property_version: Option<i64>,
}

impl ActivityRow {
    fn into_activity(self, run: Job, content_run: Option<Job>) -> Result<Activity> {
        Ok(Activity {
            id: self.id,
            tenant_id: self.tenant_id,
            project_id: self.project_id,
            campaign_id: self.campaign_id,
            kind: self.kind.parse::<ActivityKind>().map_err(corrupt("activities.kind"))?,
            title: self.title,
            input: serde_json::from_str(&self.input).map_err(corrupt("activities.input"))?,
            model: self.model,
            runs: self.runs,
            approved_at: self.approved_at,
            approved_by: self.approved_by,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            property_id: self.property_id,
            property_version: self.property_version,
            run,
            content_run,
        })
    }
}

const ACTIVITY_COLUMNS: &str = "a.id, a.tenant_id, a.project_id, a.campaign_id, a.kind, a.title, a.input, a.model, \
     a.current_job_id, a.content_job_id, a.runs, a.approved_at, a.approved_by, a.created_by, a.created_at, a.updated_at, \
     a.property_id, a.property_version";

#[derive(FromRow)]
struct VersionRow {
    id: Uuid,
    job_id: Uuid,
    number: i64,
    content: String,
    author_id: Option<Uuid>,
    author_name: String,
    created_at: Timestamp,
    findings: Option<String>,
}

impl TryFrom<VersionRow> for ActivityVersion {
    type Error = StoreError;
    fn try_from(r: VersionRow) -> Result<Self> {
        Ok(Self {
            id: r.id,
            job_id: r.job_id,
            number: r.number,
            content: r.content,
            author_id: r.author_id,
            author_name: r.author_name,
            created_at: r.created_at,
            findings: r
                .findings
                .map(|f| serde_json::from_str(&f))
                .transpose()
                .map_err(corrupt("activity_versions.findings"))?,
        })
    }
}

const VERSION_COLUMNS: &str = "id, job_id, number, content, author_id, author_name, created_at, findings";

#[derive(FromRow)]
struct ProviderRow {
    tenant_id: Uuid,
    base_url: String,
    model: String,
    api_key_ciphertext: Vec<u8>,
    api_key_nonce: Vec<u8>,
    api_key_hint: String,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(FromRow)]
struct PriceRow {
    tenant_id: Uuid,
    model: String,
    input_micros_per_million: i64,
    output_micros_per_million: i64,
    updated_at: Timestamp,
}

#[derive(FromRow)]
struct UsageRow {
    day: String,
    jobs: i64,
    activities: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    wall_time_ms: i64,
}

/// The condition on the latest run (`j`) and the activity (`a`) for each
/// derived status ([`Activity::status`]); constants only.
fn status_condition(status: Option<ActivityStatus>) -> &'static str {
    match status {
        None => "1 = 1",
        Some(ActivityStatus::Queued) => "j.status IN ('queued', 'assigned')",
        Some(ActivityStatus::Generating) => "j.status = 'running'",
        Some(ActivityStatus::Review) => {
            "j.status IN ('succeeded', 'failed', 'cancelled') AND a.content_job_id IS NOT NULL \
             AND a.approved_at IS NULL"
        }
        Some(ActivityStatus::Approved) => {
            "j.status IN ('succeeded', 'failed', 'cancelled') AND a.content_job_id IS NOT NULL \
             AND a.approved_at IS NOT NULL"
        }
        Some(ActivityStatus::Failed) => "j.status = 'failed' AND a.content_job_id IS NULL",
        Some(ActivityStatus::Cancelled) => "j.status = 'cancelled' AND a.content_job_id IS NULL",
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Date: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<Uuid>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<bool>: Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Timestamp>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Date>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Vec<u8>>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> &'t str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn fetch_activity(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Activity>> {
        let row: Option<ActivityRow> = sqlx::query_as(sql(&[
            "SELECT ",
            ACTIVITY_COLUMNS,
            " FROM activities a WHERE a.tenant_id = $1 AND a.id = $2",
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let run = Self::fetch_job(conn, row.current_job_id).await?.ok_or_else(|| {
            StoreError::Corrupt(format!("activity {id} has no current run {}", row.current_job_id))
        })?;
        let content_run = match row.content_job_id {
            None => None,
            Some(job) if job == run.id => Some(run.clone()),
            Some(job) => Some(
                Self::fetch_job(conn, job)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("activity {id} has no content run {job}")))?,
            ),
        };
        row.into_activity(run, content_run).map(Some)
    }

    /// The activity, locked for the rest of the transaction.
    pub(super) async fn lock_activity(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Activity> {
        let locked: Option<Uuid> = sqlx::query_scalar(sql(&[
            "SELECT id FROM activities WHERE tenant_id = $1 AND id = $2",
            DB::FOR_UPDATE,
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        if locked.is_none() {
            return Err(StoreError::NotFound);
        }
        Self::fetch_activity(conn, tenant_id, id).await?.ok_or(StoreError::NotFound)
    }
}

#[async_trait]
impl<DB> ActivityStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Date: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<Uuid>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<bool>: Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Timestamp>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Date>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Vec<u8>>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> &'t str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn create_activity(
        &self,
        a: &NewActivity,
        run: &NewJob,
        audit: &NewAuditEvent,
    ) -> Result<Activity> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        // The project (and campaign) must be the tenant's.
        if Self::fetch_project(&mut tx, a.tenant_id, a.project_id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        if let Some(campaign) = a.campaign_id {
            let found: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM campaigns WHERE tenant_id = $1 AND project_id = $2 AND id = $3",
            )
            .bind(a.tenant_id)
            .bind(a.project_id)
            .bind(campaign)
            .fetch_optional(&mut *tx)
            .await?;
            if found.is_none() {
                return Err(StoreError::Conflict {
                    code: "campaign_not_found",
                    message: "campaign_id is not a campaign of this project".into(),
                });
            }
        }
        sqlx::query(
            "INSERT INTO activities (id, tenant_id, project_id, campaign_id, kind, title, input, model, \
             current_job_id, runs, created_by, created_at, updated_at, property_id, property_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11, $11, $12, $13)",
        )
        .bind(a.id)
        .bind(a.tenant_id)
        .bind(a.project_id)
        .bind(a.campaign_id)
        .bind(<&'static str>::from(ActivityKind::of(&a.input)))
        .bind(a.title.clone())
        .bind(serde_json::to_string(&a.input).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .bind(a.model.clone())
        .bind(run.id)
        .bind(a.created_by)
        .bind(now)
        .bind(a.property.map(|(id, _)| id))
        .bind(a.property.map(|(_, version)| version))
        .execute(&mut *tx)
        .await?;
        Self::insert_job(&mut tx, run, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        let created = Self::fetch_activity(&mut tx, a.tenant_id, a.id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(created)
    }

    async fn activity(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Activity>> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_activity(&mut conn, tenant_id, id).await
    }

    async fn activities(
        &self,
        tenant_id: Uuid,
        project_id: Option<Uuid>,
        filter: &ActivityFilter,
        page: PageRequest,
    ) -> Result<Page<Activity>> {
        let mut conn = self.read.acquire().await?;
        let rows: Vec<ActivityRow> = sqlx::query_as(sql(&[
            "SELECT ",
            ACTIVITY_COLUMNS,
            " FROM activities a JOIN jobs j ON j.id = a.current_job_id \
             WHERE a.tenant_id = $1 AND ($2 IS NULL OR a.project_id = $2) AND ($3 IS NULL OR a.kind = $3) \
             AND ($4 IS NULL OR a.id < $4) AND ($6 IS NULL OR a.property_id = $6) AND ",
            status_condition(filter.status),
            " ORDER BY a.id DESC LIMIT $5",
        ]))
        .bind(tenant_id)
        .bind(project_id)
        .bind(filter.kind.map(|k| <&'static str>::from(k).to_owned()))
        .bind(page.after)
        .bind(fetch_limit(page))
        .bind(filter.property_id)
        .fetch_all(&mut *conn)
        .await?;
        let (Some(first), Some(last)) = (rows.first().map(|r| r.id), rows.last().map(|r| r.id)) else {
            return Ok(Page { items: Vec::new(), next: None });
        };
        // The latest and the content runs of the page, in one query.
        let runs: Vec<JobRow> = sqlx::query_as(sql(&[
            "SELECT ",
            JOB_COLUMNS,
            " FROM jobs WHERE tenant_id = $1 AND id IN (SELECT current_job_id FROM activities \
             WHERE tenant_id = $1 AND ($2 IS NULL OR project_id = $2) AND id >= $3 AND id <= $4 \
             UNION SELECT content_job_id FROM activities \
             WHERE tenant_id = $1 AND ($2 IS NULL OR project_id = $2) AND id >= $3 AND id <= $4)",
        ]))
        .bind(tenant_id)
        .bind(project_id)
        .bind(last)
        .bind(first)
        .fetch_all(&mut *conn)
        .await?;
        let runs: std::collections::HashMap<Uuid, Job> =
            rows_into::<JobRow, Job>(runs)?.into_iter().map(|j| (j.id, j)).collect();
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let run = runs
                .get(&row.current_job_id)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("activity {} has no current run", row.id)))?;
            let content_run = row.content_job_id.and_then(|job| runs.get(&job).cloned());
            items.push(row.into_activity(run, content_run)?);
        }
        Ok(Page::from_rows(items, page.limit, |a: &Activity| a.id))
    }

    async fn rerun_activity(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        run: &NewJob,
        audit: &NewAuditEvent,
    ) -> Result<Activity> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let activity = Self::lock_activity(&mut tx, tenant_id, id).await?;
        if !activity.run.status.is_terminal() {
            return Err(StoreError::Conflict {
                code: "activity_running",
                message: "the activity is still being generated; cancel it first or wait for it to finish"
                    .into(),
            });
        }
        Self::insert_job(&mut tx, run, now).await?;
        sqlx::query(
            "UPDATE activities SET current_job_id = $3, runs = runs + 1, updated_at = $4 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(run.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        let updated = Self::fetch_activity(&mut tx, tenant_id, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn activity_runs(&self, tenant_id: Uuid, id: Uuid) -> Result<Vec<Job>> {
        let rows: Vec<JobRow> = sqlx::query_as(sql(&[
            "SELECT ",
            JOB_COLUMNS,
            " FROM jobs WHERE tenant_id = $1 AND activity_id = $2 ORDER BY id DESC",
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        rows_into(rows)
    }

    async fn add_activity_version(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        version: &NewActivityVersion,
        audit: &NewAuditEvent,
    ) -> Result<ActivityVersion> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let activity = Self::lock_activity(&mut tx, tenant_id, id).await?;
        let content_run = match &activity.content_run {
            Some(run) if activity.run.status.is_terminal() => run.id,
            Some(_) => {
                return Err(StoreError::Conflict {
                    code: "activity_running",
                    message: "the activity is being regenerated; wait for the run to finish, or cancel it, \
                              before editing"
                        .into(),
                });
            }
            None => {
                return Err(StoreError::Conflict {
                    code: "activity_not_ready",
                    message: format!(
                        "the activity's content can be edited once it is generated; it is {}",
                        activity.status()
                    ),
                });
            }
        };
        let number: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM activity_versions WHERE activity_id = $1 AND job_id = $2",
        )
        .bind(id)
        .bind(content_run)
        .fetch_one(&mut *tx)
        .await?;
        let findings = version
            .findings
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row: VersionRow = sqlx::query_as(sql(&[
            "INSERT INTO activity_versions (id, activity_id, job_id, number, content, author_id, author_name, \
             created_at, findings) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
            VERSION_COLUMNS,
        ]))
        .bind(version.id)
        .bind(id)
        .bind(content_run)
        .bind(number)
        .bind(version.content.clone())
        .bind(version.author_id)
        .bind(version.author_name.clone())
        .bind(now)
        .bind(findings)
        .fetch_one(&mut *tx)
        .await?;
        // An edit is new content: approval is for what was seen.
        sqlx::query(
            "UPDATE activities SET approved_at = NULL, approved_by = NULL, updated_at = $3 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn activity_versions(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        job_id: Uuid,
    ) -> Result<Vec<ActivityVersion>> {
        let rows: Vec<VersionRow> = sqlx::query_as(
            "SELECT v.id, v.job_id, v.number, v.content, v.author_id, v.author_name, v.created_at, v.findings \
             FROM activity_versions v JOIN activities a ON a.id = v.activity_id \
             WHERE a.tenant_id = $1 AND a.id = $2 AND v.job_id = $3 ORDER BY v.number",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(job_id)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn activity_runs_since(&self, tenant_id: Uuid, since: Timestamp) -> Result<i64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE tenant_id = $1 AND activity_id IS NOT NULL AND created_at >= $2",
        )
        .bind(tenant_id)
        .bind(since)
        .fetch_one(&self.read)
        .await?;
        Ok(count)
    }

    async fn cloud_provider(&self, tenant_id: Uuid) -> Result<Option<CloudProvider>> {
        let row: Option<ProviderRow> = sqlx::query_as(
            "SELECT tenant_id, base_url, model, api_key_ciphertext, api_key_nonce, api_key_hint, created_at, \
             updated_at FROM cloud_providers WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| CloudProvider {
            tenant_id: r.tenant_id,
            base_url: r.base_url,
            model: r.model,
            api_key_ciphertext: r.api_key_ciphertext,
            api_key_nonce: r.api_key_nonce,
            api_key_hint: r.api_key_hint,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }))
    }

    async fn set_cloud_provider(&self, p: &CloudProvider, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO cloud_providers (tenant_id, base_url, model, api_key_ciphertext, api_key_nonce, \
             api_key_hint, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (tenant_id) DO UPDATE SET base_url = excluded.base_url, model = excluded.model, \
             api_key_ciphertext = excluded.api_key_ciphertext, api_key_nonce = excluded.api_key_nonce, \
             api_key_hint = excluded.api_key_hint, updated_at = excluded.updated_at",
        )
        .bind(p.tenant_id)
        .bind(p.base_url.clone())
        .bind(p.model.clone())
        .bind(p.api_key_ciphertext.clone())
        .bind(p.api_key_nonce.clone())
        .bind(p.api_key_hint.clone())
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_cloud_provider(&self, tenant_id: Uuid, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let deleted = sqlx::query("DELETE FROM cloud_providers WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&deleted) == 0 {
            return Err(StoreError::NotFound);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn model_prices(&self, tenant_id: Uuid) -> Result<Vec<ModelPrice>> {
        let rows: Vec<PriceRow> = sqlx::query_as(
            "SELECT tenant_id, model, input_micros_per_million, output_micros_per_million, updated_at \
             FROM model_prices WHERE tenant_id = $1 ORDER BY model",
        )
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ModelPrice {
                tenant_id: r.tenant_id,
                model: r.model,
                input_micros_per_million: r.input_micros_per_million,
                output_micros_per_million: r.output_micros_per_million,
                updated_at: r.updated_at,
            })
            .collect())
    }

    async fn set_model_price(&self, p: &ModelPrice, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO model_prices (tenant_id, model, input_micros_per_million, output_micros_per_million, \
             updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, model) DO UPDATE SET \
             input_micros_per_million = excluded.input_micros_per_million, \
             output_micros_per_million = excluded.output_micros_per_million, updated_at = excluded.updated_at",
        )
        .bind(p.tenant_id)
        .bind(p.model.clone())
        .bind(p.input_micros_per_million)
        .bind(p.output_micros_per_million)
        .bind(p.updated_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_model_price(&self, tenant_id: Uuid, model: &str, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let deleted = sqlx::query("DELETE FROM model_prices WHERE tenant_id = $1 AND model = $2")
            .bind(tenant_id)
            .bind(model.to_owned())
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&deleted) == 0 {
            return Err(StoreError::NotFound);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn usage(&self, tenant_id: Uuid, from: &str, to: &str) -> Result<Vec<UsageDay>> {
        let rows: Vec<UsageRow> = sqlx::query_as(
            "SELECT day, jobs, activities, prompt_tokens, completion_tokens, wall_time_ms FROM usage_daily \
             WHERE tenant_id = $1 AND day >= $2 AND day <= $3 ORDER BY day",
        )
        .bind(tenant_id)
        .bind(from.to_owned())
        .bind(to.to_owned())
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| UsageDay {
                day: r.day,
                jobs: r.jobs,
                activities: r.activities,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                wall_time_ms: r.wall_time_ms,
            })
            .collect())
    }
}
