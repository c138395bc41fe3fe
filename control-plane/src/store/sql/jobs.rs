//! [`JobStore`] for [`SqlStore`]: the job queue, leases and event logs.
//!
//! The shared transitions (recording an agent's event, appending an event,
//! finishing, retrying) live with the other helpers in `mod.rs`.

use super::*;
use crate::store::{
    CancelOutcome, Claim, CreateJobOutcome, Job, JobEventKind, JobFilter, JobStatus, JobStore, NewJob,
    QueuedJob, RecordOutcome, RetryPolicy, StoredJobEvent, Transition, WaitingKind,
};
use marketer_protocol::{JobError, JobEvent, JobRef};

#[async_trait]
impl<DB> JobStore for SqlStore<DB>
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
    async fn create_job(&self, job: &NewJob, audit: &NewAuditEvent) -> Result<CreateJobOutcome> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        if let Some(key) = &job.idempotency_key {
            let existing: Option<(Uuid, Vec<u8>)> = sqlx::query_as(
                "SELECT id, request_hash FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2",
            )
            .bind(job.tenant_id)
            .bind(key.clone())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((id, hash)) = existing {
                if hash != job.request_hash {
                    return Err(StoreError::Conflict {
                        code: "idempotency_key_reused",
                        message: "this idempotency_key was used for a different request; use a new key"
                            .into(),
                    });
                }
                let existing = Self::fetch_job(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
                return Ok(CreateJobOutcome::Existing(Box::new(existing)));
            }
        }
        Self::insert_job(&mut tx, job, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        let created = Self::fetch_job(&mut tx, job.id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(CreateJobOutcome::Created(Box::new(created)))
    }

    async fn job(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Job>> {
        let mut conn = self.read.acquire().await?;
        Ok(Self::fetch_job(&mut conn, id).await?.filter(|job| job.tenant_id == tenant_id))
    }

    async fn jobs(&self, tenant_id: Uuid, filter: &JobFilter, page: PageRequest) -> Result<Page<Job>> {
        let rows: Vec<JobRow> = sqlx::query_as(sql(&[
            "SELECT ",
            JOB_COLUMNS,
            " FROM jobs WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR kind = $3) \
             AND ($4 IS NULL OR agent_id = $4) AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR id < $6) \
             ORDER BY id DESC LIMIT $7",
        ]))
        .bind(tenant_id)
        .bind(filter.status.map(|s| <&'static str>::from(s).to_owned()))
        .bind(filter.kind.map(|k| <&'static str>::from(k).to_owned()))
        .bind(filter.agent_id)
        .bind(filter.since)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(Page::from_rows(rows_into(rows)?, page.limit, |j: &Job| j.id))
    }

    async fn job_events(&self, job_id: Uuid, after: i64, limit: i64) -> Result<Vec<StoredJobEvent>> {
        let rows: Vec<JobEventRow> = sqlx::query_as(
            "SELECT job_id, seq, kind, attempt, data, created_at FROM job_events \
             WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(job_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows_into(rows)
    }

    async fn queued_jobs(
        &self,
        tenant_id: Uuid,
        now: Timestamp,
        after: Option<(i64, Uuid)>,
        limit: i64,
    ) -> Result<Vec<QueuedJob>> {
        let rows: Vec<(Uuid, i64, String, String, Option<Uuid>)> = sqlx::query_as(
            "SELECT id, priority, model, labels, index_project_id \
             FROM jobs WHERE tenant_id = $1 AND status = 'queued' AND route = 'edge' \
             AND (not_before IS NULL OR not_before <= $2) AND (retry_at IS NULL OR retry_at <= $2) \
             AND ($3 IS NULL OR priority > $3 OR (priority = $3 AND id > $4)) ORDER BY priority, id LIMIT $5",
        )
        .bind(tenant_id)
        .bind(now)
        .bind(after.map(|(priority, _)| priority))
        .bind(after.map(|(_, id)| id))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|(id, priority, model, labels, index_project_id)| {
                Ok(QueuedJob { id, priority, model, labels: parse_labels(&labels)?, index_project_id })
            })
            .collect()
    }

    async fn queued_cloud_jobs(&self, now: Timestamp, limit: i64) -> Result<Vec<Job>> {
        let rows: Vec<JobRow> = sqlx::query_as(sql(&[
            "SELECT ",
            JOB_COLUMNS,
            " FROM jobs WHERE status = 'queued' AND route = 'cloud' AND (not_before IS NULL OR not_before <= $1) \
             AND (retry_at IS NULL OR retry_at <= $1) ORDER BY priority, id LIMIT $2",
        ]))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows_into(rows)
    }

    async fn claim_job(
        &self,
        job_id: Uuid,
        agent_id: Uuid,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Claim>> {
        let mut tx = self.write.begin().await?;
        // A compare-and-set on the status: of two schedulers racing for the
        // same job, one gets it.
        let claimed: Option<JobRow> = sqlx::query_as(sql(&[
            "UPDATE jobs SET status = 'assigned', agent_id = $2, epoch = epoch + 1, attempts = attempts + 1, \
             agent_seq = 0, lease_expires_at = $3, assigned_at = $4, started_at = NULL, retry_at = NULL, \
             waiting_reason = NULL, run_deadline = NULL, updated_at = $4 WHERE id = $1 AND status = 'queued' RETURNING ",
            JOB_COLUMNS,
        ]))
        .bind(job_id)
        .bind(agent_id)
        .bind(lease_until)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = claimed else { return Ok(None) };
        let job = Job::try_from(row)?;
        let event = Self::append_job_event(
            &mut tx,
            job.id,
            JobEventKind::Status,
            job.attempts,
            serde_json::json!({ "status": "assigned", "agent_id": agent_id, "attempt": job.attempts }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(Claim { job, event }))
    }

    async fn record_job_events(
        &self,
        agent_id: Uuid,
        events: &[JobEvent],
        now: Timestamp,
        lease_until: Timestamp,
        retry: &RetryPolicy,
    ) -> Result<Vec<RecordOutcome>> {
        let mut tx = self.write.begin().await?;
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            outcomes
                .push(Self::record_one_job_event(&mut tx, agent_id, event, now, lease_until, retry).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn note_agent_lost(&self, agent_id: Uuid, now: Timestamp) -> Result<Vec<StoredJobEvent>> {
        let mut tx = self.write.begin().await?;
        // Locked, so a job finishing meanwhile gets no event after its last.
        let held: Vec<(Uuid, i64)> = sqlx::query_as(sql(&[
            "SELECT id, attempts FROM jobs WHERE agent_id = $1 AND status IN ('assigned', 'running')",
            DB::FOR_UPDATE,
        ]))
        .bind(agent_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut events = Vec::with_capacity(held.len());
        for (job_id, attempt) in held {
            let data = serde_json::json!({
                "status": "waiting_for_agent", "attempt": attempt,
                "message": "the agent running this disconnected; waiting for it to come back before another agent takes over",
            });
            events.push(
                Self::append_job_event(&mut tx, job_id, JobEventKind::Status, attempt, data, now).await?,
            );
        }
        tx.commit().await?;
        Ok(events)
    }

    async fn renew_leases(&self, leases: &[(Uuid, JobRef)], until: Timestamp) -> Result<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        for (agent, lease) in leases {
            sqlx::query(
                "UPDATE jobs SET lease_expires_at = $3 WHERE id = $1 AND agent_id = $2 AND epoch = $4 \
                 AND status IN ('assigned', 'running')",
            )
            .bind(lease.job_id)
            .bind(*agent)
            .bind(until)
            .bind(i64::try_from(lease.epoch).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn extend_active_leases(&self, until: Timestamp) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1 WHERE status IN ('assigned', 'running') \
             AND (lease_expires_at IS NULL OR lease_expires_at < $1)",
        )
        .bind(until)
        .execute(&self.write)
        .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn expire_leases(&self, now: Timestamp, retry: &RetryPolicy) -> Result<Vec<Transition>> {
        let error = JobError {
            code: job_errors::AGENT_LOST.into(),
            message: "the agent running this job disconnected and did not come back within the grace period"
                .into(),
            retryable: true,
        };
        self.expire_where(
            "status IN ('assigned', 'running') AND lease_expires_at < $1",
            now,
            |_| error.clone(),
            retry,
        )
        .await
    }

    async fn expire_queue_timeouts(&self, now: Timestamp) -> Result<Vec<Transition>> {
        let never = RetryPolicy::default();
        self.expire_where(
            "status = 'queued' AND attempts = 0 AND queue_deadline IS NOT NULL AND queue_deadline < $1",
            now,
            |job| JobError {
                code: job_errors::QUEUE_TIMEOUT.into(),
                message: format!(
                    "no agent took the job within {} s: {}",
                    job.queue_timeout_seconds.unwrap_or_default(),
                    job.waiting_reason.as_deref().unwrap_or("no matching agent was free")
                ),
                retryable: false,
            },
            &never,
        )
        .await
    }

    async fn expire_run_timeouts(&self, now: Timestamp, retry: &RetryPolicy) -> Result<Vec<Transition>> {
        self.expire_where(
            "status IN ('assigned', 'running') AND run_deadline IS NOT NULL AND run_deadline < $1",
            now,
            |job| JobError {
                code: job_errors::TIMEOUT.into(),
                message: format!(
                    "the attempt ran longer than the job's timeout of {} s",
                    job.timeout_seconds
                ),
                retryable: true,
            },
            retry,
        )
        .await
    }

    async fn release_lost_jobs(
        &self,
        agent_id: Uuid,
        keep: &[JobRef],
        now: Timestamp,
        retry: &RetryPolicy,
    ) -> Result<Vec<Transition>> {
        let mut tx = self.write.begin().await?;
        let rows: Vec<JobRow> = sqlx::query_as(sql(&[
            "SELECT ",
            JOB_COLUMNS,
            " FROM jobs WHERE agent_id = $1 AND status IN ('assigned', 'running') ORDER BY id",
            DB::FOR_UPDATE,
        ]))
        .bind(agent_id)
        .fetch_all(&mut *tx)
        .await?;
        let error = JobError {
            code: job_errors::AGENT_LOST.into(),
            message: "the agent reconnected without this job (it restarted); another attempt follows".into(),
            retryable: true,
        };
        let mut transitions = Vec::new();
        for job in rows_into::<JobRow, Job>(rows)? {
            let Some(lease) = job.lease() else { continue };
            if keep.contains(&lease.1) {
                continue;
            }
            let events = Self::fail_or_retry(&mut tx, &job, &error, now, retry).await?;
            let after = Self::fetch_job(&mut tx, job.id).await?.ok_or(StoreError::NotFound)?;
            transitions.push(Transition { job: after, events, ended_lease: Some(lease) });
        }
        tx.commit().await?;
        Ok(transitions)
    }

    async fn cancel_job(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<CancelOutcome> {
        let mut tx = self.write.begin().await?;
        let job = Self::lock_job(&mut tx, id)
            .await?
            .filter(|j| j.tenant_id == tenant_id)
            .ok_or(StoreError::NotFound)?;
        if job.status.is_terminal() {
            return Ok(CancelOutcome::AlreadyFinished(Box::new(job)));
        }
        let ended_lease = job.lease();
        // A new epoch: whatever the agent still sends for this job is stale.
        sqlx::query("UPDATE jobs SET epoch = epoch + 1 WHERE id = $1").bind(id).execute(&mut *tx).await?;
        let error =
            JobError { code: "cancelled".into(), message: "cancelled by a user".into(), retryable: false };
        let events =
            Self::finish_job(&mut tx, &job, JobStatus::Cancelled, None, None, Some(&error), now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        let after = Self::fetch_job(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(CancelOutcome::Cancelled(Box::new(Transition { job: after, events, ended_lease })))
    }

    async fn agent_leases(&self, agent_id: Uuid) -> Result<Vec<JobRef>> {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT id, epoch FROM jobs WHERE agent_id = $1 AND status IN ('assigned', 'running') ORDER BY id",
        )
        .bind(agent_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(job_id, epoch)| JobRef { job_id, epoch: u64::try_from(epoch).unwrap_or(0) })
            .collect())
    }

    async fn requeue_undelivered(
        &self,
        agent_id: Uuid,
        lease: JobRef,
        now: Timestamp,
        retry: &RetryPolicy,
    ) -> Result<Option<Transition>> {
        let mut tx = self.write.begin().await?;
        let Some(job) = Self::lock_job(&mut tx, lease.job_id).await? else { return Ok(None) };
        if job.lease() != Some((agent_id, lease)) {
            return Ok(None);
        }
        let error = JobError {
            code: job_errors::NOT_DELIVERED.into(),
            message: "the assignment could not be sent to the agent; the job goes to the next free agent"
                .into(),
            retryable: true,
        };
        let events = Self::fail_or_retry(&mut tx, &job, &error, now, retry).await?;
        let after = Self::fetch_job(&mut tx, job.id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(Some(Transition { job: after, events, ended_lease: Some((agent_id, lease)) }))
    }

    async fn waiting_kinds(&self, now: Timestamp) -> Result<Vec<WaitingKind>> {
        let rows: Vec<(Uuid, String, String, Option<Uuid>)> = sqlx::query_as(
            "SELECT tenant_id, labels, model, index_project_id FROM jobs WHERE status = 'queued' AND route = 'edge' \
             AND (not_before IS NULL OR not_before <= $1) AND (retry_at IS NULL OR retry_at <= $1) \
             GROUP BY tenant_id, labels, model, index_project_id ORDER BY tenant_id, model, labels",
        )
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|(tenant_id, labels, model, index_project_id)| {
                let labels = serde_json::from_str(&labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(WaitingKind { tenant_id, labels, model, index_project_id })
            })
            .collect()
    }

    async fn set_waiting_reason(&self, kind: &WaitingKind, now: Timestamp, reason: &str) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET waiting_reason = $4 WHERE tenant_id = $1 AND labels = $2 AND model = $3 \
             AND status = 'queued' AND route = 'edge' AND (not_before IS NULL OR not_before <= $5) \
             AND (retry_at IS NULL OR retry_at <= $5) AND (waiting_reason IS NULL OR waiting_reason <> $4) \
             AND (index_project_id = $6 OR (index_project_id IS NULL AND $6 IS NULL))",
        )
        .bind(kind.tenant_id)
        .bind(labels_json(&kind.labels))
        .bind(kind.model.clone())
        .bind(reason.to_owned())
        .bind(now)
        .bind(kind.index_project_id)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}
