//! [`SequenceStore`] for [`SqlStore`]: sequence templates, enrollments,
//! queuing a step's e-mail once, suppressions and unsubscribe links.

use super::leads::NewEvent;
use super::*;
use crate::store::{
    DraftDecision, DueStep, Enrollment, EnrollmentState, LeadEventKind, MailState, QueuedStep, Sequence,
    SequenceStep, SequenceStore, StepOutcome, StepSend, Suppression,
};

const SEQUENCE_SELECT: &str =
    "SELECT id, tenant_id, name, steps, auto_start, created_at, updated_at FROM sequences";
const ENROLLMENT_SELECT: &str = "SELECT id, tenant_id, lead_id, sequence_id, sequence_name, steps, state, stop_reason, \
     next_step, next_at, started_at, updated_at FROM lead_enrollments";

#[derive(FromRow)]
struct SequenceRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    steps: String,
    auto_start: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<SequenceRow> for Sequence {
    type Error = StoreError;
    fn try_from(r: SequenceRow) -> Result<Self> {
        Ok(Self {
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            steps: serde_json::from_str(&r.steps).map_err(corrupt("sequence steps"))?,
            auto_start: r.auto_start,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(FromRow)]
struct EnrollmentRow {
    id: Uuid,
    tenant_id: Uuid,
    lead_id: Uuid,
    sequence_id: Option<Uuid>,
    sequence_name: String,
    steps: String,
    state: String,
    stop_reason: Option<String>,
    next_step: i64,
    next_at: Option<Timestamp>,
    started_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<EnrollmentRow> for Enrollment {
    type Error = StoreError;
    fn try_from(r: EnrollmentRow) -> Result<Self> {
        Ok(Self {
            id: r.id,
            tenant_id: r.tenant_id,
            lead_id: r.lead_id,
            sequence_id: r.sequence_id,
            sequence_name: r.sequence_name,
            steps: serde_json::from_str::<Vec<SequenceStep>>(&r.steps)
                .map_err(corrupt("enrollment steps"))?,
            state: r.state.parse::<EnrollmentState>().map_err(corrupt("enrollment state"))?,
            stop_reason: r.stop_reason,
            next_step: r.next_step,
            next_at: r.next_at,
            started_at: r.started_at,
            updated_at: r.updated_at,
            sends: Vec::new(),
            writing: None,
        })
    }
}

fn after(at: Timestamp, minutes: i64) -> Timestamp {
    at + time::Duration::minutes(minutes)
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
    /// Starts `sequence` for a lead inside the caller's transaction, unless
    /// it runs for the lead already or the address must not be mailed
    /// (then `Ok(None)`, or the error when `strict`).
    pub(super) async fn start_sequence(
        conn: &mut DB::Connection,
        lead_id: Uuid,
        sequence: &Sequence,
        started_by: Option<Uuid>,
        now: Timestamp,
        strict: bool,
    ) -> Result<Option<Enrollment>> {
        if let Some(reason) = Self::do_not_mail(conn, sequence.tenant_id, lead_id).await? {
            if strict {
                return Err(StoreError::Invalid { field: "lead_id", message: reason });
            }
            return Ok(None);
        }
        let running: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM lead_enrollments WHERE lead_id = $1 AND sequence_id = $2 AND state = 'active'",
        )
        .bind(lead_id)
        .bind(sequence.id)
        .fetch_optional(&mut *conn)
        .await?;
        if running.is_some() {
            if strict {
                return Err(StoreError::Conflict {
                    code: "sequence_running",
                    message: format!("\"{}\" is already running for this lead", sequence.name),
                });
            }
            return Ok(None);
        }
        let Some(first) = sequence.steps.first() else {
            return Err(StoreError::Invalid {
                field: "sequence_id",
                message: "the sequence has no steps".into(),
            });
        };
        let id = crate::domain::new_id();
        sqlx::query(
            "INSERT INTO lead_enrollments (id, tenant_id, lead_id, sequence_id, sequence_name, steps, state, \
             stop_reason, next_step, next_at, started_by, started_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'active', NULL, 0, $7, $8, $9, $9)",
        )
        .bind(id)
        .bind(sequence.tenant_id)
        .bind(lead_id)
        .bind(sequence.id)
        .bind(sequence.name.as_str())
        .bind(to_json(&sequence.steps)?)
        .bind(after(now, first.wait_minutes))
        .bind(started_by)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            unique_violation(e, "sequence_running", "the sequence is already running for this lead")
        })?;
        let body = format!("Started \"{}\" ({} e-mails)", sequence.name, sequence.steps.len());
        let event = NewEvent::by_member(
            sequence.tenant_id,
            lead_id,
            started_by,
            LeadEventKind::SequenceStarted,
            &body,
            now,
        );
        Self::insert_lead_event(conn, &event).await?;
        Self::fetch_enrollment(conn, sequence.tenant_id, id).await
    }

    /// Why a lead must not be mailed: its status, or its address being
    /// suppressed.
    async fn do_not_mail(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        lead_id: Uuid,
    ) -> Result<Option<String>> {
        let row: Option<(String, Option<String>)> = sqlx::query_as(sql(&[
            "SELECT l.status, (SELECT s.reason FROM marketing_suppressions s WHERE s.tenant_id = l.tenant_id \
             AND s.email_normalized = l.email_normalized) FROM leads l WHERE l.tenant_id = $1 AND l.id = $2",
        ]))
        .bind(tenant_id)
        .bind(lead_id)
        .fetch_optional(&mut *conn)
        .await?;
        let (status, suppressed) = row.ok_or(StoreError::NotFound)?;
        Ok(if let Some(reason) = suppressed {
            Some(format!("the address {reason}: no sequence mails it again"))
        } else if ["won", "lost", "unsubscribed"].contains(&status.as_str()) {
            Some(format!("the lead is {status}"))
        } else {
            None
        })
    }

    /// The job writing an enrollment's step's personal paragraph, if one
    /// was started.
    async fn paragraph_job(conn: &mut DB::Connection, enrollment_id: Uuid, step: i64) -> Result<Option<Job>> {
        let job_id: Option<Uuid> = sqlx::query_scalar(
            "SELECT job_id FROM sequence_paragraphs WHERE enrollment_id = $1 AND step = $2",
        )
        .bind(enrollment_id)
        .bind(step)
        .fetch_optional(&mut *conn)
        .await?;
        match job_id {
            Some(id) => Self::fetch_job(conn, id).await,
            None => Ok(None),
        }
    }

    async fn fetch_enrollment(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Enrollment>> {
        let row: Option<EnrollmentRow> =
            sqlx::query_as(sql(&[ENROLLMENT_SELECT, " WHERE tenant_id = $1 AND id = $2"]))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        row.map(Enrollment::try_from).transpose()
    }

    /// Stops a lead's running sequences (`reason`), inside the caller's
    /// transaction.
    pub(super) async fn stop_sequences(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        lead_id: Uuid,
        only: Option<Uuid>,
        reason: &str,
        actor_id: Option<Uuid>,
        now: Timestamp,
    ) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE lead_enrollments SET state = 'stopped', stop_reason = $3, next_at = NULL, updated_at = $4 \
             WHERE tenant_id = $1 AND lead_id = $2 AND state = 'active' AND ($5 IS NULL OR id = $5)",
        )
        .bind(tenant_id)
        .bind(lead_id)
        .bind(reason)
        .bind(now)
        .bind(only)
        .execute(&mut *conn)
        .await?;
        let stopped = DB::rows_affected(&r);
        // Drafts waiting for review are not sent once their sequence stops.
        sqlx::query(
            "UPDATE email_outbox SET state = 'failed', last_error = $3 WHERE state = 'draft' AND id IN \
             (SELECT s.mail_id FROM sequence_sends s JOIN lead_enrollments e ON e.id = s.enrollment_id \
             WHERE e.tenant_id = $1 AND e.lead_id = $2 AND ($4 IS NULL OR e.id = $4))",
        )
        .bind(tenant_id)
        .bind(lead_id)
        .bind(format!("not sent: the sequence stopped ({reason})"))
        .bind(only)
        .execute(&mut *conn)
        .await?;
        if stopped > 0 {
            let body = format!("Follow-up stopped: {reason}");
            let event =
                NewEvent::by_member(tenant_id, lead_id, actor_id, LeadEventKind::SequenceStopped, &body, now);
            Self::insert_lead_event(conn, &event).await?;
        }
        Ok(stopped)
    }

    /// Suppresses a lead's address for the tenant's sequences (`reason`:
    /// `unsubscribed` or `bounced`), drops its queued marketing e-mail and
    /// stops its sequences.
    pub(super) async fn suppress_lead(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        lead_id: Uuid,
        actor_id: Option<Uuid>,
        reason: Suppression,
        now: Timestamp,
    ) -> Result<String> {
        let email: String =
            sqlx::query_scalar("SELECT email_normalized FROM leads WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(lead_id)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or(StoreError::NotFound)?;
        sqlx::query(
            "INSERT INTO marketing_suppressions (tenant_id, email_normalized, reason, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, email_normalized) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(email.as_str())
        .bind(reason.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        // Not yet handed to the SMTP server: never will be. (Marking a
        // claimed message failed makes its sender's `sending` step refuse.)
        sqlx::query(
            "UPDATE email_outbox SET state = 'failed', last_error = $3, \
             lease_owner = NULL, lease_expires_at = NULL WHERE tenant_id = $1 AND purpose = 'marketing' \
             AND LOWER(to_address) = $2 AND state IN ('draft', 'pending', 'claimed')",
        )
        .bind(tenant_id)
        .bind(email.as_str())
        .bind(reason.stop_reason())
        .execute(&mut *conn)
        .await?;
        Self::stop_sequences(conn, tenant_id, lead_id, None, reason.stop_reason(), actor_id, now).await?;
        Ok(email)
    }
}

#[async_trait]
impl<DB> SequenceStore for SqlStore<DB>
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
    async fn sequences(&self, tenant_id: Uuid) -> Result<Vec<Sequence>> {
        let rows: Vec<SequenceRow> =
            sqlx::query_as(sql(&[SEQUENCE_SELECT, " WHERE tenant_id = $1 ORDER BY name, id"]))
                .bind(tenant_id)
                .fetch_all(&self.read)
                .await?;
        rows_into(rows)
    }

    async fn sequence(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Sequence>> {
        let row: Option<SequenceRow> =
            sqlx::query_as(sql(&[SEQUENCE_SELECT, " WHERE tenant_id = $1 AND id = $2"]))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        row.map(Sequence::try_from).transpose()
    }

    async fn save_sequence(&self, s: &Sequence, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO sequences (id, tenant_id, name, steps, auto_start, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET name = $3, steps = $4, \
             auto_start = $5, updated_at = $7",
        )
        .bind(s.id)
        .bind(s.tenant_id)
        .bind(s.name.as_str())
        .bind(to_json(&s.steps)?)
        .bind(s.auto_start)
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "name_taken", "another sequence has this name"))?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_sequence(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query("DELETE FROM sequences WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&r) == 0 {
            return Err(StoreError::NotFound);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ensure_sequences(&self, tenant_id: Uuid, defaults: &[Sequence]) -> Result<()> {
        let mut tx = self.write.begin().await?;
        Self::lock_tenant(&mut tx, tenant_id).await?;
        let any: Option<Uuid> = sqlx::query_scalar("SELECT id FROM sequences WHERE tenant_id = $1 LIMIT 1")
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
        if any.is_none() {
            for s in defaults {
                sqlx::query(
                    "INSERT INTO sequences (id, tenant_id, name, steps, auto_start, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(s.id)
                .bind(tenant_id)
                .bind(s.name.as_str())
                .bind(to_json(&s.steps)?)
                .bind(s.auto_start)
                .bind(s.created_at)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn enroll(
        &self,
        tenant_id: Uuid,
        lead_id: Uuid,
        sequence_id: Uuid,
        started_by: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<Enrollment> {
        let mut tx = self.write.begin().await?;
        Self::lock_tenant(&mut tx, tenant_id).await?;
        let row: Option<SequenceRow> =
            sqlx::query_as(sql(&[SEQUENCE_SELECT, " WHERE tenant_id = $1 AND id = $2"]))
                .bind(tenant_id)
                .bind(sequence_id)
                .fetch_optional(&mut *tx)
                .await?;
        let sequence = Sequence::try_from(row.ok_or(StoreError::Invalid {
            field: "sequence_id",
            message: "is not a sequence of this organisation".into(),
        })?)?;
        let enrollment =
            Self::start_sequence(&mut tx, lead_id, &sequence, started_by, audit.occurred_at, true)
                .await?
                .ok_or(StoreError::NotFound)?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(enrollment)
    }

    async fn stop_enrollment(
        &self,
        tenant_id: Uuid,
        lead_id: Uuid,
        id: Uuid,
        actor_id: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let found = Self::fetch_enrollment(&mut tx, tenant_id, id).await?;
        if found.as_ref().is_none_or(|e| e.lead_id != lead_id) {
            return Err(StoreError::NotFound);
        }
        Self::stop_sequences(
            &mut tx,
            tenant_id,
            lead_id,
            Some(id),
            "stopped by hand",
            actor_id,
            audit.occurred_at,
        )
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn enrollments(&self, tenant_id: Uuid, lead_id: Uuid) -> Result<Vec<Enrollment>> {
        let rows: Vec<EnrollmentRow> = sqlx::query_as(sql(&[
            ENROLLMENT_SELECT,
            " WHERE tenant_id = $1 AND lead_id = $2 ORDER BY started_at DESC, id",
        ]))
        .bind(tenant_id)
        .bind(lead_id)
        .fetch_all(&self.read)
        .await?;
        let mut out: Vec<Enrollment> = rows_into(rows)?;
        for e in &mut out {
            type SendRow =
                (i64, Uuid, Timestamp, Option<String>, Option<Timestamp>, Option<String>, Option<String>);
            let sends: Vec<SendRow> = sqlx::query_as(
                "SELECT s.step, s.mail_id, s.created_at, m.state, m.sent_at, \
                 CASE WHEN m.state = 'draft' THEN m.subject END, CASE WHEN m.state = 'draft' THEN m.body END \
                 FROM sequence_sends s LEFT JOIN email_outbox m ON m.id = s.mail_id \
                 WHERE s.enrollment_id = $1 ORDER BY s.step",
            )
            .bind(e.id)
            .fetch_all(&self.read)
            .await?;
            e.sends = sends
                .into_iter()
                .map(|(step, mail_id, queued_at, state, sent_at, draft_subject, draft_body)| {
                    let mail_state =
                        state.map(|s| s.parse::<MailState>()).transpose().map_err(corrupt("mail state"))?;
                    Ok(StepSend { step, mail_id, queued_at, mail_state, sent_at, draft_subject, draft_body })
                })
                .collect::<Result<_>>()?;
            if e.state == EnrollmentState::Active {
                let mut conn = self.read.acquire().await?;
                e.writing = Self::paragraph_job(&mut conn, e.id, e.next_step)
                    .await?
                    .filter(|job| !job.status.is_terminal());
            }
        }
        Ok(out)
    }

    async fn due_steps(&self, now: Timestamp, limit: i64) -> Result<Vec<DueStep>> {
        let rows: Vec<EnrollmentRow> = sqlx::query_as(sql(&[
            ENROLLMENT_SELECT,
            // A step whose personal paragraph is still being written waits.
            " WHERE state = 'active' AND next_at <= $1 AND NOT EXISTS (SELECT 1 FROM sequence_paragraphs sp \
             JOIN jobs j ON j.id = sp.job_id WHERE sp.enrollment_id = lead_enrollments.id \
             AND sp.step = lead_enrollments.next_step AND j.status IN ('queued', 'assigned', 'running')) \
             ORDER BY next_at, id LIMIT $2",
        ]))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut conn = self.read.acquire().await?;
        for row in rows {
            let enrollment = Enrollment::try_from(row)?;
            let Some(lead) = Self::fetch_lead(&mut conn, enrollment.tenant_id, enrollment.lead_id).await?
            else {
                continue;
            };
            let property: Option<(String, String, String, String)> = sqlx::query_as(
                "SELECT p.street, p.city, p.agent_name, p.agent_contact FROM lead_properties lp \
                 JOIN properties p ON p.id = lp.property_id WHERE lp.lead_id = $1 \
                 ORDER BY lp.created_at DESC, p.id LIMIT 1",
            )
            .bind(lead.id)
            .fetch_optional(&mut *conn)
            .await?;
            let postal: Option<String> =
                sqlx::query_scalar("SELECT postal_address FROM real_estate_settings WHERE tenant_id = $1")
                    .bind(enrollment.tenant_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            let paragraph_job = Self::paragraph_job(&mut conn, enrollment.id, enrollment.next_step).await?;
            out.push(DueStep {
                paragraph_job,
                enrollment,
                lead,
                property: property
                    .map(|(street, city, agent, contact)| (format!("{street}, {city}"), agent, contact)),
                postal_address: postal.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    async fn start_paragraph(&self, enrollment_id: Uuid, step: i64, job: &NewJob) -> Result<bool> {
        let now = Timestamp::now();
        let mut tx = self.write.begin().await?;
        Self::insert_job(&mut tx, job, now).await?;
        // The compare-and-set: one job per enrollment and step, and only
        // for the step it is at.
        let r = sqlx::query(
            "INSERT INTO sequence_paragraphs (enrollment_id, step, job_id, created_at) \
             SELECT id, $2, $3, $4 FROM lead_enrollments WHERE id = $1 AND state = 'active' AND next_step = $2 \
             ON CONFLICT (enrollment_id, step) DO NOTHING",
        )
        .bind(enrollment_id)
        .bind(step)
        .bind(job.id)
        .bind(now)
        .execute(&mut *tx)
        .await;
        let started = match r {
            Ok(r) => DB::rows_affected(&r) == 1,
            // A replica inserting the same step at the same moment.
            Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => false,
            Err(e) => return Err(e.into()),
        };
        if started {
            tx.commit().await?;
        }
        Ok(started)
    }

    async fn queue_step(&self, q: &QueuedStep, now: Timestamp) -> Result<StepOutcome> {
        let mut tx = self.write.begin().await?;
        let Some(e) =
            Self::fetch_enrollment(&mut tx, q.mail.tenant_id.unwrap_or_default(), q.enrollment_id).await?
        else {
            return Ok(StepOutcome::Skipped);
        };
        if e.state != EnrollmentState::Active || e.next_step != q.step {
            return Ok(StepOutcome::Skipped);
        }
        if let Some(reason) = Self::do_not_mail(&mut tx, e.tenant_id, e.lead_id).await? {
            Self::stop_sequences(&mut tx, e.tenant_id, e.lead_id, Some(e.id), &reason, None, now).await?;
            tx.commit().await?;
            return Ok(StepOutcome::Stopped(reason));
        }
        // The compare-and-set: of two replicas queuing this step, one moves
        // the enrollment on; the other changes nothing and rolls back. A
        // step drafted for review holds the next one (no time) until a
        // person decides.
        let review = usize::try_from(q.step).ok().and_then(|i| e.steps.get(i)).is_some_and(|s| s.review);
        let r = sqlx::query(
            "UPDATE lead_enrollments SET next_step = next_step + 1, next_at = $3, \
             state = CASE WHEN $5 THEN 'active' ELSE 'finished' END, updated_at = $4 \
             WHERE id = $1 AND state = 'active' AND next_step = $2",
        )
        .bind(e.id)
        .bind(q.step)
        .bind(if review { None } else { q.next_at })
        .bind(now)
        .bind(q.next_at.is_some())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Ok(StepOutcome::Skipped);
        }
        sqlx::query(
            "INSERT INTO sequence_sends (enrollment_id, step, mail_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(e.id)
        .bind(q.step)
        .bind(q.mail.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO unsubscribe_tokens (token_hash, tenant_id, lead_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(q.token_hash.clone())
            .bind(e.tenant_id)
            .bind(e.lead_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        Self::insert_mail(&mut tx, &q.mail, None, now).await?;
        let (kind, done) = if review {
            sqlx::query("UPDATE email_outbox SET state = 'draft' WHERE id = $1")
                .bind(q.mail.id)
                .execute(&mut *tx)
                .await?;
            if let Some(notice) = &q.notice {
                Self::insert_notices(&mut tx, std::slice::from_ref(notice), now).await?;
            }
            (LeadEventKind::EmailDrafted, "drafted for review")
        } else {
            (LeadEventKind::EmailQueued, "queued")
        };
        let mut body = format!("E-mail {} of {} {done}: {}", q.step + 1, e.steps.len(), q.mail.subject);
        if let Some(note) = &q.note {
            body.push_str(&format!(" ({note})"));
        }
        let event = NewEvent::by_member(e.tenant_id, e.lead_id, None, kind, &body, now);
        Self::insert_lead_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(StepOutcome::Queued)
    }

    async fn decide_draft(
        &self,
        tenant_id: Uuid,
        lead_id: Uuid,
        mail_id: Uuid,
        decision: &DraftDecision,
        actor_id: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let found: Option<(Uuid, i64)> = sqlx::query_as(
            "SELECT s.enrollment_id, s.step FROM sequence_sends s JOIN lead_enrollments e ON e.id = s.enrollment_id \
             WHERE e.tenant_id = $1 AND e.lead_id = $2 AND s.mail_id = $3",
        )
        .bind(tenant_id)
        .bind(lead_id)
        .bind(mail_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (enrollment_id, step) = found.ok_or(StoreError::NotFound)?;
        // The compare-and-set: a draft is decided once.
        let r = match decision {
            DraftDecision::Send { subject, body } => sqlx::query(
                "UPDATE email_outbox SET state = 'pending', subject = $2, body = $3, next_attempt_at = $4 \
                 WHERE id = $1 AND state = 'draft'",
            )
            .bind(mail_id)
            .bind(subject.as_str())
            .bind(body.as_str())
            .bind(now),
            DraftDecision::Skip => sqlx::query(
                "UPDATE email_outbox SET state = 'failed', last_error = 'skipped at review' \
                 WHERE id = $1 AND state = 'draft'",
            )
            .bind(mail_id),
        }
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Err(StoreError::Conflict {
                code: "draft_decided",
                message:
                    "this e-mail is no longer a draft: it was sent or skipped already, or dropped when its \
                          sequence stopped"
                        .into(),
            });
        }
        // The next step's wait starts now.
        if let Some(e) = Self::fetch_enrollment(&mut tx, tenant_id, enrollment_id).await?
            && e.state == EnrollmentState::Active
            && e.next_at.is_none()
            && let Some(next) = usize::try_from(e.next_step).ok().and_then(|i| e.steps.get(i))
        {
            sqlx::query("UPDATE lead_enrollments SET next_at = $2, updated_at = $3 WHERE id = $1 AND state = 'active'")
                .bind(e.id)
                .bind(now + time::Duration::minutes(next.wait_minutes))
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        let done = match decision {
            DraftDecision::Send { .. } => "sent after review",
            DraftDecision::Skip => "skipped at review",
        };
        let body = format!("E-mail {} {done}", step + 1);
        let event = NewEvent::by_member(tenant_id, lead_id, actor_id, LeadEventKind::EmailQueued, &body, now);
        Self::insert_lead_event(&mut tx, &event).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn unsubscribe(&self, token_hash: &[u8], now: Timestamp) -> Result<Option<(Uuid, Uuid)>> {
        let mut tx = self.write.begin().await?;
        let found: Option<(Uuid, Uuid)> =
            sqlx::query_as("SELECT tenant_id, lead_id FROM unsubscribe_tokens WHERE token_hash = $1")
                .bind(token_hash.to_vec())
                .fetch_optional(&mut *tx)
                .await?;
        let Some((tenant_id, lead_id)) = found else { return Ok(None) };
        let status: String = sqlx::query_scalar("SELECT status FROM leads WHERE id = $1")
            .bind(lead_id)
            .fetch_one(&mut *tx)
            .await?;
        Self::suppress_lead(&mut tx, tenant_id, lead_id, None, Suppression::Unsubscribed, now).await?;
        if status != "unsubscribed" {
            sqlx::query("UPDATE leads SET status = 'unsubscribed', updated_at = $2 WHERE id = $1")
                .bind(lead_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let body = format!("{status} → unsubscribed (the unsubscribe link in an e-mail)");
            let event =
                NewEvent::by_member(tenant_id, lead_id, None, LeadEventKind::Unsubscribed, &body, now);
            Self::insert_lead_event(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(Some((tenant_id, lead_id)))
    }
}
