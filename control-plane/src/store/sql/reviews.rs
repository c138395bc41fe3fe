//! [`ReviewStore`] for [`SqlStore`]: review workflows, the projects that
//! use them, and reviewers' decisions (written only if the activity is as
//! the reviewer saw it).

use super::*;
use crate::store::{
    Decision, NewDecision, NewReviewLink, NewReviewWorkflow, ReviewDecision, ReviewItem, ReviewLink,
    ReviewStep, ReviewStore, ReviewWorkflow, Seen,
};

#[derive(FromRow)]
struct WorkflowRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    expire_days: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(FromRow)]
struct StepRow {
    workflow_id: Uuid,
    position: i64,
    name: String,
    rule: String,
    min_role: Option<String>,
    members: String,
    externals: String,
    only_with_findings: bool,
}

impl TryFrom<StepRow> for ReviewStep {
    type Error = StoreError;
    fn try_from(r: StepRow) -> Result<ReviewStep> {
        Ok(ReviewStep {
            position: r.position,
            name: r.name,
            rule: r.rule.parse().map_err(corrupt("review_steps.rule"))?,
            min_role: r.min_role.map(|m| m.parse()).transpose().map_err(corrupt("review_steps.min_role"))?,
            members: serde_json::from_str(&r.members).map_err(corrupt("review_steps.members"))?,
            externals: serde_json::from_str(&r.externals).map_err(corrupt("review_steps.externals"))?,
            only_with_findings: r.only_with_findings,
        })
    }
}

#[derive(FromRow)]
struct DecisionRow {
    id: Uuid,
    activity_id: Option<Uuid>,
    post_id: Option<Uuid>,
    content_run_id: Uuid,
    version: i64,
    round: i64,
    workflow_id: Option<Uuid>,
    step: i64,
    user_id: Option<Uuid>,
    user_name: Option<String>,
    reviewer_email: Option<String>,
    decision: String,
    comment: String,
    created_at: Timestamp,
}

impl TryFrom<DecisionRow> for ReviewDecision {
    type Error = StoreError;
    fn try_from(r: DecisionRow) -> Result<ReviewDecision> {
        let item = match (r.activity_id, r.post_id) {
            (Some(id), None) => ReviewItem::Activity(id),
            (None, Some(id)) => ReviewItem::Post(id),
            _ => return Err(corrupt("review_decisions.item")("neither or both of activity_id and post_id")),
        };
        Ok(ReviewDecision {
            id: r.id,
            item,
            content_run_id: r.content_run_id,
            version: r.version,
            round: r.round,
            workflow_id: r.workflow_id,
            step: r.step,
            user_id: r.user_id,
            user_name: r.user_name,
            reviewer_email: r.reviewer_email,
            decision: r.decision.parse().map_err(corrupt("review_decisions.decision"))?,
            comment: r.comment,
            created_at: r.created_at,
        })
    }
}

fn normalized(name: &str) -> String {
    name.trim().to_lowercase()
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
    async fn fetch_workflows(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        only: Option<Uuid>,
    ) -> Result<Vec<ReviewWorkflow>> {
        let select = "SELECT id, tenant_id, name, expire_days, created_at, updated_at FROM review_workflows WHERE tenant_id = $1";
        let rows: Vec<WorkflowRow> = match only {
            Some(id) => {
                sqlx::query_as(sql(&[select, " AND id = $2"]))
                    .bind(tenant_id)
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?
            }
            None => {
                sqlx::query_as(sql(&[select, " ORDER BY name_normalized"]))
                    .bind(tenant_id)
                    .fetch_all(&mut *conn)
                    .await?
            }
        };
        let steps: Vec<StepRow> = sqlx::query_as(
            "SELECT s.workflow_id, s.position, s.name, s.rule, s.min_role, s.members, s.externals, \
             s.only_with_findings FROM review_steps s \
             JOIN review_workflows w ON w.id = s.workflow_id WHERE w.tenant_id = $1 ORDER BY s.position",
        )
        .bind(tenant_id)
        .fetch_all(&mut *conn)
        .await?;
        let projects: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT workflow_id, project_id FROM project_review_workflows WHERE tenant_id = $1 ORDER BY project_id",
        )
        .bind(tenant_id)
        .fetch_all(&mut *conn)
        .await?;
        let steps: Vec<(Uuid, ReviewStep)> = steps
            .into_iter()
            .map(|s| Ok((s.workflow_id, ReviewStep::try_from(s)?)))
            .collect::<Result<_>>()?;
        let mut workflows = Vec::with_capacity(rows.len());
        for r in rows {
            workflows.push(ReviewWorkflow {
                id: r.id,
                tenant_id: r.tenant_id,
                name: r.name,
                expire_days: r.expire_days,
                steps: steps.iter().filter(|(w, _)| *w == r.id).map(|(_, s)| s.clone()).collect(),
                projects: projects.iter().filter(|(w, _)| *w == r.id).map(|(_, p)| *p).collect(),
                created_at: r.created_at,
                updated_at: r.updated_at,
            });
        }
        Ok(workflows)
    }

    async fn insert_review_links(
        conn: &mut DB::Connection,
        links: &[NewReviewLink],
        now: Timestamp,
    ) -> Result<()> {
        for l in links {
            let activity: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM activities WHERE tenant_id = $1 AND id = $2")
                    .bind(l.tenant_id)
                    .bind(l.activity_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            if activity.is_none() {
                return Err(StoreError::NotFound);
            }
            sqlx::query(
                "INSERT INTO review_links (id, tenant_id, activity_id, email, token_hash, expires_at, created_by, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(l.id)
            .bind(l.tenant_id)
            .bind(l.activity_id)
            .bind(l.email.as_str())
            .bind(l.token_hash.clone())
            .bind(l.expires_at)
            .bind(l.created_by)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn write_steps(conn: &mut DB::Connection, w: &NewReviewWorkflow) -> Result<()> {
        sqlx::query("DELETE FROM review_steps WHERE workflow_id = $1").bind(w.id).execute(&mut *conn).await?;
        for step in &w.steps {
            let members = serde_json::to_string(&step.members).map_err(corrupt("review_steps.members"))?;
            let externals =
                serde_json::to_string(&step.externals).map_err(corrupt("review_steps.externals"))?;
            sqlx::query(
                "INSERT INTO review_steps (workflow_id, position, name, rule, min_role, members, externals, \
                 only_with_findings) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(w.id)
            .bind(step.position)
            .bind(step.name.as_str())
            .bind(<&str>::from(step.rule))
            .bind(step.min_role.map(|r| r.as_str().to_owned()))
            .bind(members)
            .bind(externals)
            .bind(step.only_with_findings)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<DB> ReviewStore for SqlStore<DB>
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
    async fn review_workflows(&self, tenant_id: Uuid) -> Result<Vec<ReviewWorkflow>> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_workflows(&mut conn, tenant_id, None).await
    }

    async fn review_workflow(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<ReviewWorkflow>> {
        let mut conn = self.read.acquire().await?;
        Ok(Self::fetch_workflows(&mut conn, tenant_id, Some(id)).await?.pop())
    }

    async fn create_review_workflow(
        &self,
        w: &NewReviewWorkflow,
        audit: &NewAuditEvent,
    ) -> Result<ReviewWorkflow> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO review_workflows (id, tenant_id, name, name_normalized, expire_days, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $6, $5, $5)",
        )
        .bind(w.id)
        .bind(w.tenant_id)
        .bind(w.name.as_str())
        .bind(normalized(&w.name))
        .bind(audit.occurred_at)
        .bind(w.expire_days)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "workflow_name_taken", "a review workflow with this name exists"))?;
        Self::write_steps(&mut tx, w).await?;
        Self::insert_audit(&mut tx, audit).await?;
        let created = Self::fetch_workflows(&mut tx, w.tenant_id, Some(w.id))
            .await?
            .pop()
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(created)
    }

    async fn update_review_workflow(
        &self,
        w: &NewReviewWorkflow,
        audit: &NewAuditEvent,
    ) -> Result<ReviewWorkflow> {
        let mut tx = self.write.begin().await?;
        let changed = sqlx::query(
            "UPDATE review_workflows SET name = $3, name_normalized = $4, updated_at = $5, expire_days = $6 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(w.tenant_id)
        .bind(w.id)
        .bind(w.name.as_str())
        .bind(normalized(&w.name))
        .bind(audit.occurred_at)
        .bind(w.expire_days)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "workflow_name_taken", "a review workflow with this name exists"))?;
        if DB::rows_affected(&changed) != 1 {
            return Err(StoreError::NotFound);
        }
        Self::write_steps(&mut tx, w).await?;
        Self::insert_audit(&mut tx, audit).await?;
        let updated = Self::fetch_workflows(&mut tx, w.tenant_id, Some(w.id))
            .await?
            .pop()
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn delete_review_workflow(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let deleted = sqlx::query("DELETE FROM review_workflows WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&deleted) != 1 {
            return Err(StoreError::NotFound);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn project_review_workflow(
        &self,
        tenant_id: Uuid,
        project_id: Uuid,
    ) -> Result<Option<ReviewWorkflow>> {
        let mut conn = self.read.acquire().await?;
        let id: Option<Uuid> = sqlx::query_scalar(
            "SELECT workflow_id FROM project_review_workflows WHERE tenant_id = $1 AND project_id = $2",
        )
        .bind(tenant_id)
        .bind(project_id)
        .fetch_optional(&mut *conn)
        .await?;
        match id {
            Some(id) => Ok(Self::fetch_workflows(&mut conn, tenant_id, Some(id)).await?.pop()),
            None => Ok(None),
        }
    }

    async fn set_project_review_workflow(
        &self,
        tenant_id: Uuid,
        project_id: Uuid,
        workflow_id: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let project: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM projects WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(project_id)
                .fetch_optional(&mut *tx)
                .await?;
        if project.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM project_review_workflows WHERE project_id = $1")
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        if let Some(workflow_id) = workflow_id {
            let known: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM review_workflows WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(workflow_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if known.is_none() {
                return Err(StoreError::Invalid {
                    field: "workflow_id",
                    message: "is not a review workflow of this organisation".into(),
                });
            }
            sqlx::query(
                "INSERT INTO project_review_workflows (project_id, tenant_id, workflow_id) VALUES ($1, $2, $3)",
            )
            .bind(project_id)
            .bind(tenant_id)
            .bind(workflow_id)
            .execute(&mut *tx)
            .await?;
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn review_decisions(
        &self,
        tenant_id: Uuid,
        item: ReviewItem,
        content_run_id: Uuid,
        version: i64,
    ) -> Result<Vec<ReviewDecision>> {
        let (column, id) = match item {
            ReviewItem::Activity(id) => ("d.activity_id", id),
            ReviewItem::Post(id) => ("d.post_id", id),
        };
        let rows: Vec<DecisionRow> = sqlx::query_as(sql(&[
            "SELECT d.id, d.activity_id, d.post_id, d.content_run_id, d.version, d.round, d.workflow_id, d.step, \
             d.user_id, u.display_name AS user_name, d.reviewer_email, d.decision, d.comment, d.created_at \
             FROM review_decisions d LEFT JOIN users u ON u.id = d.user_id WHERE d.tenant_id = $1 AND ",
            column,
            " = $2 AND d.content_run_id = $3 AND d.version = $4 ORDER BY d.id",
        ]))
        .bind(tenant_id)
        .bind(id)
        .bind(content_run_id)
        .bind(version)
        .fetch_all(&self.read)
        .await?;
        rows_into(rows)
    }

    async fn decide(
        &self,
        d: &NewDecision,
        seen: &Seen,
        approves: bool,
        links: &[NewReviewLink],
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let changed = || StoreError::Conflict {
            code: "review_changed",
            message: "the content or its review changed while you were deciding (an edit, or another \
                      reviewer's decision); look at it again"
                .into(),
        };
        let approved_already = || StoreError::Conflict {
            code: "already_approved",
            message: "this content is approved already".into(),
        };
        let mut tx = self.write.begin().await?;
        // Under the item's lock: the version the reviewer saw, and the
        // decisions on it.
        let (activity_id, post_id, run, version) = match d.item {
            ReviewItem::Activity(id) => {
                let activity = Self::lock_activity(&mut tx, d.tenant_id, id).await?;
                let run = match &activity.content_run {
                    Some(run) if run.id == seen.content_run_id && activity.run.status.is_terminal() => run.id,
                    _ => return Err(changed()),
                };
                if activity.approved_at.is_some() {
                    return Err(approved_already());
                }
                let version: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(number), 0) FROM activity_versions WHERE activity_id = $1 AND job_id = $2",
                )
                .bind(id)
                .bind(run)
                .fetch_one(&mut *tx)
                .await?;
                (Some(id), None, run, version)
            }
            ReviewItem::Post(id) => {
                let post: Option<(i64, Option<Timestamp>, String)> = sqlx::query_as(sql(&[
                    "SELECT revision, approved_at, status FROM social_posts WHERE tenant_id = $1 AND id = $2",
                    DB::FOR_UPDATE,
                ]))
                .bind(d.tenant_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let (revision, approved_at, status) = post.ok_or(StoreError::NotFound)?;
                let status: crate::store::PostStatus =
                    status.parse().map_err(corrupt("social_posts.status"))?;
                if seen.content_run_id != id || !status.editable() {
                    return Err(changed());
                }
                if approved_at.is_some() {
                    return Err(approved_already());
                }
                (None, Some(id), id, revision)
            }
        };
        let decisions: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM review_decisions WHERE (activity_id = $1 OR post_id = $2) \
             AND content_run_id = $3 AND version = $4",
        )
        .bind(activity_id)
        .bind(post_id)
        .bind(run)
        .bind(version)
        .fetch_one(&mut *tx)
        .await?;
        if version != seen.version || decisions != seen.decisions {
            return Err(changed());
        }
        sqlx::query(
            "INSERT INTO review_decisions (id, tenant_id, activity_id, content_run_id, version, workflow_id, step, \
             user_id, decision, comment, created_at, round, reviewer_email, post_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(d.id)
        .bind(d.tenant_id)
        .bind(activity_id)
        .bind(run)
        .bind(version)
        .bind(d.workflow_id)
        .bind(d.step)
        .bind(d.user_id)
        .bind(<&str>::from(d.decision))
        .bind(d.comment.as_str())
        .bind(audit.occurred_at)
        .bind(d.round)
        .bind(d.reviewer_email.clone())
        .bind(post_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "already_decided", "you decided on this step of this version already"))?;
        if approves && d.decision == Decision::Approve {
            let table = if post_id.is_some() { "social_posts" } else { "activities" };
            sqlx::query(sql(&[
                "UPDATE ",
                table,
                " SET approved_at = $3, approved_by = $4, updated_at = $3 WHERE tenant_id = $1 AND id = $2",
            ]))
            .bind(d.tenant_id)
            .bind(activity_id.or(post_id))
            .bind(audit.occurred_at)
            .bind(d.user_id)
            .execute(&mut *tx)
            .await?;
        }
        Self::insert_review_links(&mut tx, links, audit.occurred_at).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_review_links(&self, links: &[NewReviewLink], audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        Self::insert_review_links(&mut tx, links, audit.occurred_at).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn review_link_by_hash(&self, token_hash: &[u8]) -> Result<Option<ReviewLink>> {
        let row: Option<LinkRow> = sqlx::query_as(sql(&[LINK_COLUMNS, " WHERE token_hash = $1"]))
            .bind(token_hash.to_vec())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(ReviewLink::from))
    }

    async fn review_links(&self, tenant_id: Uuid, activity_id: Uuid) -> Result<Vec<ReviewLink>> {
        let rows: Vec<LinkRow> = sqlx::query_as(sql(&[
            LINK_COLUMNS,
            " WHERE tenant_id = $1 AND activity_id = $2 ORDER BY created_at DESC, id LIMIT 200",
        ]))
        .bind(tenant_id)
        .bind(activity_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(ReviewLink::from).collect())
    }

    async fn revoke_review_link(
        &self,
        tenant_id: Uuid,
        activity_id: Uuid,
        id: Uuid,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let revoked = sqlx::query(
            "UPDATE review_links SET revoked_at = COALESCE(revoked_at, $4) \
             WHERE tenant_id = $1 AND activity_id = $2 AND id = $3",
        )
        .bind(tenant_id)
        .bind(activity_id)
        .bind(id)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&revoked) != 1 {
            return Err(StoreError::NotFound);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}

const LINK_COLUMNS: &str = "SELECT id, tenant_id, activity_id, email, expires_at, created_by, created_at, revoked_at \
                            FROM review_links";

#[derive(FromRow)]
struct LinkRow {
    id: Uuid,
    tenant_id: Uuid,
    activity_id: Uuid,
    email: String,
    expires_at: Timestamp,
    created_by: Option<Uuid>,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
}

impl From<LinkRow> for ReviewLink {
    fn from(r: LinkRow) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            activity_id: r.activity_id,
            email: r.email,
            expires_at: r.expires_at,
            created_by: r.created_by,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}
