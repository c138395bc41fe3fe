//! Review workflows: the ordered steps a tenant defines (each step's
//! approvers: named members, or a role and above; its rule: `any` one of
//! them or `all`), the workflow each project uses, and reviewers' decisions
//! on an activity's current content version (approve, request changes,
//! reject), with where the activity stands computed from them.
//!
//! Rules:
//! - A project without a workflow has the default review: one step, any
//!   member or above, the author included (a team of one must be able to
//!   publish). In a workflow the tenant defined, nobody approves their own
//!   work: the activity's creator and the author of its current version are
//!   not approvers of any step.
//! - A decision applies to a version: an edit (a new version) or a
//!   regeneration starts review again at the first step, and the page says
//!   so. Requesting changes and rejecting need a comment, and end the
//!   version's review until the author edits it.
//! - A decision is written only if the version and the decisions on it are
//!   what the reviewer saw (checked under the activity's lock), so two
//!   reviewers at once or an edit racing a decision end in one state.
//! - The last step's approval approves the activity (the one approval gate
//!   publishing reads). Each step's completion tells the next step's
//!   approvers; the end of review tells the author.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, TenantAccess, actions, activities::result_of};
use crate::domain::{Permission, Role, Timestamp, new_id};
use crate::error::{Error, FoundExt, Result};
use crate::store::{
    Activity, Audience, Decision, Member, NewDecision, NewNotice, NewReviewWorkflow, NoticeKind, PageRequest,
    ReviewDecision, ReviewStep, ReviewWorkflow, Seen, StepRule,
};

/// At most this many steps in a workflow.
const MAX_STEPS: usize = 10;
/// At most this many named approvers in a step.
const MAX_STEP_MEMBERS: usize = 50;
/// The longest decision comment, in characters.
const MAX_DECISION_COMMENT: usize = 10_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepIn {
    pub name: String,
    /// `any` (one approval completes the step) or `all`.
    pub rule: StepRule,
    /// Approvers: every member with this role or above (default `member`),
    /// unless `members` names them.
    pub role: Option<Role>,
    /// Named approvers (user ids of members).
    #[serde(default)]
    pub members: Vec<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowIn {
    pub name: String,
    /// In order, 1 to 10.
    pub steps: Vec<StepIn>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    pub position: i64,
    pub name: String,
    pub rule: StepRule,
    pub role: Option<Role>,
    pub members: Vec<Uuid>,
    /// "any of: admins and owners", "all of: Ana, Ben".
    pub approvers: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkflowView {
    pub id: Uuid,
    pub name: String,
    pub steps: Vec<StepView>,
    pub projects: Vec<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectWorkflowIn {
    /// `null`: the default review (one step, any member or above).
    pub workflow_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideIn {
    pub decision: Decision,
    /// Required to request changes or reject.
    #[serde(default)]
    pub comment: String,
    /// The version reviewed; a newer one makes the decision a 409.
    pub version: Option<i64>,
    /// The step decided on; if the review has moved on, a 409.
    pub step: Option<i64>,
    /// Approving content with Fair Housing findings needs this.
    #[serde(default)]
    pub acknowledge_findings: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecisionView {
    pub step: i64,
    pub user_id: Option<Uuid>,
    pub user_name: String,
    pub decision: Decision,
    pub comment: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepStanding {
    pub position: i64,
    pub name: String,
    pub rule: StepRule,
    pub approvers: String,
    /// `done`, `current` or `waiting`.
    pub state: String,
    pub decisions: Vec<DecisionView>,
}

/// Where an activity's review stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewView {
    pub workflow_id: Option<Uuid>,
    pub workflow_name: String,
    /// The content version under review.
    pub version: Option<i64>,
    /// `not_ready` (no content), `in_review`, `changes_requested`,
    /// `rejected`, `approved`.
    pub state: String,
    pub current_step: Option<i64>,
    /// In words: "step 2 of 3: waiting for any of: Compliance".
    pub summary: String,
    pub steps: Vec<StepStanding>,
    /// Whether the caller may decide now, and if not, why.
    pub can_decide: bool,
    pub why_not: Option<String>,
}

/// An activity waiting for the caller's review.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WaitingReview {
    pub activity_id: Uuid,
    pub project_id: Uuid,
    pub title: String,
    pub summary: String,
}

/// The default review: one step, any member or above.
fn default_steps() -> Vec<ReviewStep> {
    vec![ReviewStep {
        position: 1,
        name: "Review".into(),
        rule: StepRule::Any,
        min_role: Some(Role::Member),
        members: vec![],
    }]
}

fn role_words(role: Role) -> &'static str {
    match role {
        Role::Viewer => "everyone",
        Role::Member => "members, admins and owners",
        Role::Admin => "admins and owners",
        Role::Owner => "owners",
    }
}

/// Everything needed to compute where a version's review stands.
struct Context {
    workflow: Option<ReviewWorkflow>,
    steps: Vec<ReviewStep>,
    members: Vec<Member>,
    /// Who may not approve (the creator and the version's author) in a
    /// tenant-defined workflow.
    authors: BTreeSet<Uuid>,
}

enum Standing {
    NotReady,
    InReview { step: usize },
    ChangesRequested,
    Rejected,
    Approved,
}

impl Context {
    /// The eligible approvers of a step.
    fn approvers(&self, step: &ReviewStep) -> Vec<&Member> {
        let custom = self.workflow.is_some();
        self.members
            .iter()
            .filter(|m| !m.disabled)
            .filter(|m| {
                if step.members.is_empty() {
                    m.role >= step.min_role.unwrap_or(Role::Member)
                } else {
                    step.members.contains(&m.user_id)
                }
            })
            .filter(|m| !(custom && self.authors.contains(&m.user_id)))
            .collect()
    }

    fn approvers_words(&self, step: &ReviewStep) -> String {
        let who = if step.members.is_empty() {
            role_words(step.min_role.unwrap_or(Role::Member)).to_owned()
        } else {
            let names: Vec<String> = self
                .members
                .iter()
                .filter(|m| step.members.contains(&m.user_id))
                .map(|m| m.display_name.to_string())
                .collect();
            if names.is_empty() { "nobody (its members left)".into() } else { names.join(", ") }
        };
        format!("{} of: {who}", if step.rule == StepRule::All { "all" } else { "any" })
    }

    fn complete(&self, step: &ReviewStep, decisions: &[ReviewDecision]) -> bool {
        let approved: BTreeSet<Uuid> = decisions
            .iter()
            .filter(|d| d.step == step.position && d.decision == Decision::Approve)
            .filter_map(|d| d.user_id)
            .collect();
        match step.rule {
            StepRule::Any => !approved.is_empty(),
            StepRule::All => {
                let approvers = self.approvers(step);
                !approvers.is_empty() && approvers.iter().all(|m| approved.contains(&m.user_id))
            }
        }
    }

    fn standing(&self, ready: bool, approved: bool, decisions: &[ReviewDecision]) -> Standing {
        if !ready {
            return Standing::NotReady;
        }
        if approved {
            return Standing::Approved;
        }
        if decisions.iter().any(|d| d.decision == Decision::Reject) {
            return Standing::Rejected;
        }
        if decisions.iter().any(|d| d.decision == Decision::RequestChanges) {
            return Standing::ChangesRequested;
        }
        match self.steps.iter().position(|s| !self.complete(s, decisions)) {
            Some(step) => Standing::InReview { step },
            // Every step done but the activity not marked: the last approval
            // lost a race; the next approval attempt settles it.
            None => Standing::InReview { step: self.steps.len().saturating_sub(1) },
        }
    }
}

fn check_comment(decision: Decision, comment: &str) -> Result<String> {
    let comment = comment.trim();
    if decision != Decision::Approve && comment.is_empty() {
        return Err(Error::invalid("comment", "say what to change or why; a comment is required"));
    }
    if comment.chars().count() > MAX_DECISION_COMMENT {
        return Err(Error::invalid("comment", format!("must be at most {MAX_DECISION_COMMENT} characters")));
    }
    Ok(comment.to_owned())
}

impl App {
    async fn all_members(&self, tenant_id: Uuid) -> Result<Vec<Member>> {
        let mut members = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.members(tenant_id, PageRequest { after, limit: 200 }).await?;
            members.extend(page.items);
            match page.next {
                Some(next) if members.len() < 10_000 => after = Some(next),
                _ => break,
            }
        }
        Ok(members)
    }

    fn workflow_view(workflow: &ReviewWorkflow, members: &[Member]) -> WorkflowView {
        let ctx = Context {
            workflow: Some(workflow.clone()),
            steps: workflow.steps.clone(),
            members: members.to_vec(),
            authors: BTreeSet::new(),
        };
        WorkflowView {
            id: workflow.id,
            name: workflow.name.clone(),
            steps: workflow
                .steps
                .iter()
                .map(|s| StepView {
                    position: s.position,
                    name: s.name.clone(),
                    rule: s.rule,
                    role: if s.members.is_empty() { Some(s.min_role.unwrap_or(Role::Member)) } else { None },
                    members: s.members.clone(),
                    approvers: ctx.approvers_words(s),
                })
                .collect(),
            projects: workflow.projects.clone(),
        }
    }

    pub async fn review_workflows(&self, access: &TenantAccess) -> Result<Vec<WorkflowView>> {
        access.require(Permission::ProjectsRead)?;
        let members = self.all_members(access.tenant_id).await?;
        let workflows = self.store.review_workflows(access.tenant_id).await?;
        Ok(workflows.iter().map(|w| Self::workflow_view(w, &members)).collect())
    }

    async fn checked_workflow(
        &self,
        access: &TenantAccess,
        id: Uuid,
        input: WorkflowIn,
    ) -> Result<NewReviewWorkflow> {
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid("name", "must be 1 to 100 characters"));
        }
        if input.steps.is_empty() || input.steps.len() > MAX_STEPS {
            return Err(Error::invalid("steps", format!("give 1 to {MAX_STEPS} steps")));
        }
        let members = self.all_members(access.tenant_id).await?;
        let mut steps = Vec::new();
        for (i, s) in input.steps.into_iter().enumerate() {
            let field = |f: &str| format!("steps[{i}].{f}");
            let step_name = s.name.trim().to_owned();
            if step_name.is_empty() || step_name.chars().count() > 100 {
                return Err(Error::invalid(field("name"), "must be 1 to 100 characters"));
            }
            if !s.members.is_empty() && s.role.is_some() {
                return Err(Error::invalid(
                    field("members"),
                    "give the approvers' role or name them, not both",
                ));
            }
            if s.members.len() > MAX_STEP_MEMBERS {
                return Err(Error::invalid(
                    field("members"),
                    format!("at most {MAX_STEP_MEMBERS} approvers"),
                ));
            }
            let mut named = Vec::new();
            for id in s.members {
                if !members.iter().any(|m| m.user_id == id && !m.disabled) {
                    return Err(Error::invalid(
                        field("members"),
                        format!("{id} is not a member of this organisation"),
                    ));
                }
                if !named.contains(&id) {
                    named.push(id);
                }
            }
            steps.push(ReviewStep {
                position: i as i64 + 1,
                name: step_name,
                rule: s.rule,
                min_role: if named.is_empty() { Some(s.role.unwrap_or(Role::Member)) } else { None },
                members: named,
            });
        }
        Ok(NewReviewWorkflow { id, tenant_id: access.tenant_id, name, steps })
    }

    pub async fn create_review_workflow(
        &self,
        access: &TenantAccess,
        input: WorkflowIn,
    ) -> Result<WorkflowView> {
        access.require(Permission::SettingsManage)?;
        let workflow = self.checked_workflow(access, new_id(), input).await?;
        let audit = access
            .audit(actions::REVIEW_WORKFLOW_CREATE)
            .resource("review_workflow", workflow.id)
            .details(serde_json::json!({ "name": workflow.name, "steps": workflow.steps.len() }));
        let created = self.store.create_review_workflow(&workflow, &audit).await?;
        Ok(Self::workflow_view(&created, &self.all_members(access.tenant_id).await?))
    }

    pub async fn update_review_workflow(
        &self,
        access: &TenantAccess,
        id: Uuid,
        input: WorkflowIn,
    ) -> Result<WorkflowView> {
        access.require(Permission::SettingsManage)?;
        self.store.review_workflow(access.tenant_id, id).await.found("review workflow")?;
        let workflow = self.checked_workflow(access, id, input).await?;
        let audit = access
            .audit(actions::REVIEW_WORKFLOW_UPDATE)
            .resource("review_workflow", id)
            .details(serde_json::json!({ "name": workflow.name, "steps": workflow.steps.len() }));
        let updated = self.store.update_review_workflow(&workflow, &audit).await?;
        Ok(Self::workflow_view(&updated, &self.all_members(access.tenant_id).await?))
    }

    pub async fn delete_review_workflow(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        access.require(Permission::SettingsManage)?;
        let audit = access.audit(actions::REVIEW_WORKFLOW_DELETE).resource("review_workflow", id);
        self.store.delete_review_workflow(access.tenant_id, id, &audit).await?;
        Ok(())
    }

    /// Chooses the workflow a project's content goes through.
    pub async fn set_project_review_workflow(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        input: ProjectWorkflowIn,
    ) -> Result<ProjectWorkflowOut> {
        access.require(Permission::SettingsManage)?;
        let audit = access
            .audit(actions::PROJECT_REVIEW_WORKFLOW)
            .resource("project", project_id)
            .details(serde_json::json!({ "workflow_id": input.workflow_id }));
        self.store
            .set_project_review_workflow(access.tenant_id, project_id, input.workflow_id, &audit)
            .await?;
        Ok(ProjectWorkflowOut { project_id, workflow_id: input.workflow_id })
    }

    /// The context of an activity's review: its workflow, the members, its
    /// authors; and its current version and the decisions on it.
    /// `members`: the tenant's members, read once by callers that look at
    /// many activities.
    async fn review_context(
        &self,
        activity: &Activity,
        members: Vec<Member>,
    ) -> Result<(Context, Option<(Uuid, i64)>, Vec<ReviewDecision>)> {
        let workflow = self.store.project_review_workflow(activity.tenant_id, activity.project_id).await?;
        let mut authors: BTreeSet<Uuid> = activity.created_by.into_iter().collect();
        let mut current = None;
        let mut decisions = Vec::new();
        if let Some(run) = activity.content_run.as_ref().filter(|_| activity.run.status.is_terminal()) {
            let versions = self.store.activity_versions(activity.tenant_id, activity.id, run.id).await?;
            let version = versions.last().map_or(0, |v| v.number);
            if let Some(author) = versions.last().and_then(|v| v.author_id) {
                authors.insert(author);
            }
            if result_of(run).is_some() || version > 0 {
                current = Some((run.id, version));
                decisions =
                    self.store.review_decisions(activity.tenant_id, activity.id, run.id, version).await?;
            }
        }
        let steps = workflow
            .as_ref()
            .map(|w| w.steps.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(default_steps);
        Ok((Context { workflow, steps, members, authors }, current, decisions))
    }

    fn review_view(
        &self,
        access: &TenantAccess,
        activity: &Activity,
        ctx: &Context,
        current: Option<(Uuid, i64)>,
        decisions: &[ReviewDecision],
    ) -> ReviewView {
        let standing = ctx.standing(current.is_some(), activity.approved_at.is_some(), decisions);
        let me = access.caller.user().ok().map(|u| u.id);
        let total = ctx.steps.len();
        let current_index = match standing {
            Standing::InReview { step } => Some(step),
            _ => None,
        };
        let steps: Vec<StepStanding> = ctx
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepStanding {
                position: s.position,
                name: s.name.clone(),
                rule: s.rule,
                approvers: ctx.approvers_words(s),
                state: match (current_index, &standing) {
                    (_, Standing::Approved) => "done",
                    (Some(c), _) if i < c => "done",
                    (Some(c), _) if i == c => "current",
                    _ if ctx.complete(s, decisions) => "done",
                    _ => "waiting",
                }
                .into(),
                decisions: decisions
                    .iter()
                    .filter(|d| d.step == s.position)
                    .map(|d| DecisionView {
                        step: d.step,
                        user_id: d.user_id,
                        user_name: d.user_name.clone().unwrap_or_else(|| "a former member".into()),
                        decision: d.decision,
                        comment: d.comment.clone(),
                        at: d.created_at,
                    })
                    .collect(),
            })
            .collect();
        let (state, summary) = match &standing {
            Standing::NotReady => {
                ("not_ready", "nothing to review until the content is generated".to_owned())
            }
            Standing::Approved => ("approved", "approved".to_owned()),
            Standing::Rejected => {
                ("rejected", "rejected; editing the content starts review again".to_owned())
            }
            Standing::ChangesRequested => {
                ("changes_requested", "changes requested; editing the content starts review again".to_owned())
            }
            Standing::InReview { step } => (
                "in_review",
                format!(
                    "step {} of {total}: waiting for {}",
                    step + 1,
                    ctx.approvers_words(&ctx.steps[*step])
                ),
            ),
        };
        let why_not = match (&standing, me) {
            (_, None) => Some("reviews are decided by people; sign in".to_owned()),
            (Standing::InReview { step }, Some(me)) => {
                let step = &ctx.steps[*step];
                if decisions.iter().any(|d| d.step == step.position && d.user_id == Some(me)) {
                    Some("you decided on this step already".to_owned())
                } else if decisions.iter().any(|d| d.user_id == Some(me) && d.decision == Decision::Approve) {
                    Some(
                        "you approved an earlier step of this version; another approver decides this one"
                            .to_owned(),
                    )
                } else if ctx.approvers(step).iter().any(|m| m.user_id == me) {
                    None
                } else if ctx.workflow.is_some() && ctx.authors.contains(&me) {
                    Some("you wrote this content; someone else approves it".to_owned())
                } else {
                    Some(format!("this step waits for {}", ctx.approvers_words(step)))
                }
            }
            (_, Some(_)) => Some(summary.clone()),
        };
        ReviewView {
            workflow_id: ctx.workflow.as_ref().map(|w| w.id),
            workflow_name: ctx
                .workflow
                .as_ref()
                .map_or_else(|| "Default review".to_owned(), |w| w.name.clone()),
            version: current.map(|(_, v)| v),
            state: state.into(),
            current_step: current_index.map(|i| ctx.steps[i].position),
            summary,
            steps,
            can_decide: why_not.is_none(),
            why_not,
        }
    }

    /// Where an activity's review stands, for the caller.
    pub async fn activity_review(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<ReviewView> {
        access.require(Permission::ActivitiesRead)?;
        let activity = self.store.activity(access.tenant_id, id).await.found("activity")?;
        if activity.project_id != project_id {
            return Err(Error::NotFound("activity"));
        }
        let members = self.all_members(activity.tenant_id).await?;
        let (ctx, current, decisions) = self.review_context(&activity, members).await?;
        Ok(self.review_view(access, &activity, &ctx, current, &decisions))
    }

    /// A reviewer's decision on the activity's current version.
    pub async fn decide_review(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
        input: DecideIn,
    ) -> Result<ReviewView> {
        access.require(Permission::ActivitiesRead)?;
        let me = access.caller.user()?.id;
        let activity = self.store.activity(access.tenant_id, id).await.found("activity")?;
        if activity.project_id != project_id {
            return Err(Error::NotFound("activity"));
        }
        let comment = check_comment(input.decision, &input.comment)?;
        let members = self.all_members(activity.tenant_id).await?;
        let (ctx, current, decisions) = self.review_context(&activity, members).await?;
        let Some((run, version)) = current else {
            return Err(Error::Conflict {
                code: "activity_not_ready",
                message: format!("only generated content is reviewed; the activity is {}", activity.status()),
            });
        };
        if let Some(seen) = input.version
            && seen != version
        {
            return Err(Error::Conflict {
                code: "version_changed",
                message: format!("the content is at version {version} now; review that version"),
            });
        }
        let view = self.review_view(access, &activity, &ctx, current, &decisions);
        if activity.approved_at.is_some() {
            return Err(Error::Conflict {
                code: "already_approved",
                message: "this content is approved already".into(),
            });
        }
        if let Some(why) = &view.why_not {
            return match ctx.standing(true, false, &decisions) {
                Standing::InReview { .. } => Err(Error::Forbidden(why.clone())),
                _ => Err(Error::Conflict { code: "review_ended", message: why.clone() }),
            };
        }
        let Standing::InReview { step: index } = ctx.standing(true, false, &decisions) else {
            return Err(Error::Conflict { code: "review_ended", message: view.summary });
        };
        let step = ctx.steps[index].clone();
        if let Some(seen) = input.step
            && seen != step.position
        {
            return Err(Error::Conflict {
                code: "step_changed",
                message: format!(
                    "the review moved on to step {} while you were deciding; look again",
                    step.position
                ),
            });
        }
        if input.decision == Decision::Approve {
            self.check_findings(&activity, input.acknowledge_findings).await?;
        }
        // Would this decision complete the last step?
        let mut after = decisions.clone();
        let decision_id = new_id();
        after.push(ReviewDecision {
            id: decision_id,
            activity_id: id,
            content_run_id: run,
            version,
            workflow_id: ctx.workflow.as_ref().map(|w| w.id),
            step: step.position,
            user_id: Some(me),
            user_name: None,
            decision: input.decision,
            comment: comment.clone(),
            created_at: Timestamp::now(),
        });
        let step_done = input.decision == Decision::Approve && ctx.complete(&step, &after);
        let last = index + 1 == ctx.steps.len();
        let approves = step_done && last;
        let mut audit =
            access.audit(actions::REVIEW_DECIDE).resource("activity", id).details(serde_json::json!({
                "decision": input.decision,
                "step": step.position,
                "version": version,
                "workflow_id": ctx.workflow.as_ref().map(|w| w.id),
                "approved": approves,
            }));
        let link = format!("/t/{}/projects/{project_id}/activities/{id}", access.tenant_id);
        let reviewer = access.caller.user().map(|u| u.display_name.to_string()).unwrap_or_default();
        let author_notice = |kind: NoticeKind, title: String, body: String| {
            activity.created_by.filter(|a| *a != me).map(|author| NewNotice {
                tenant_id: Some(access.tenant_id),
                kind,
                audience: Audience::User(author),
                title,
                body,
                link: Some(link.clone()),
                dedupe_key: Some(format!("review:{id}:{run}:{version}:{decision_id}")),
            })
        };
        let notices: Vec<NewNotice> = match input.decision {
            Decision::Approve if approves => author_notice(
                NoticeKind::ReviewApproved,
                format!("“{}” was approved", activity.title),
                format!("{reviewer} gave the last approval of version {version}."),
            )
            .into_iter()
            .collect(),
            Decision::Approve if step_done => {
                let next = &ctx.steps[index + 1];
                ctx.approvers(next)
                    .iter()
                    .map(|m| NewNotice {
                        tenant_id: Some(access.tenant_id),
                        kind: NoticeKind::ReviewRequested,
                        audience: Audience::User(m.user_id),
                        title: format!("“{}” waits for your review", activity.title),
                        body: format!("Step {} of {}: {}.", index + 2, ctx.steps.len(), next.name),
                        link: Some(link.clone()),
                        dedupe_key: Some(format!("review:{id}:{run}:{version}:step:{}", next.position)),
                    })
                    .collect()
            }
            Decision::Approve => Vec::new(),
            Decision::RequestChanges => author_notice(
                NoticeKind::ReviewChangesRequested,
                format!("Changes requested on “{}”", activity.title),
                format!("{reviewer} asked for changes at step {}. Open it to read why.", step.position),
            )
            .into_iter()
            .collect(),
            Decision::Reject => author_notice(
                NoticeKind::ReviewRejected,
                format!("“{}” was rejected", activity.title),
                format!("{reviewer} rejected version {version}. Open it to read why."),
            )
            .into_iter()
            .collect(),
        };
        audit = audit.notify_all(notices);
        let decision = NewDecision {
            id: decision_id,
            tenant_id: access.tenant_id,
            activity_id: id,
            workflow_id: ctx.workflow.as_ref().map(|w| w.id),
            step: step.position,
            user_id: me,
            decision: input.decision,
            comment,
        };
        let seen = Seen { content_run_id: run, version, decisions: decisions.len() as i64 };
        self.store.decide(&decision, &seen, approves, &audit).await?;
        self.activity_review(access, project_id, id).await
    }

    /// The activities waiting for the caller's decision (at most 50).
    pub async fn waiting_for_my_review(&self, access: &TenantAccess) -> Result<Vec<WaitingReview>> {
        access.require(Permission::ActivitiesRead)?;
        if access.caller.user().is_err() {
            return Ok(Vec::new());
        }
        let filter = crate::store::ActivityFilter {
            status: Some(crate::store::ActivityStatus::Review),
            ..Default::default()
        };
        let page = self
            .store
            .activities(access.tenant_id, None, &filter, PageRequest { after: None, limit: 100 })
            .await?;
        let members = self.all_members(access.tenant_id).await?;
        let mut waiting = Vec::new();
        for activity in page.items {
            let (ctx, current, decisions) = self.review_context(&activity, members.clone()).await?;
            let view = self.review_view(access, &activity, &ctx, current, &decisions);
            if view.can_decide {
                waiting.push(WaitingReview {
                    activity_id: activity.id,
                    project_id: activity.project_id,
                    title: activity.title.clone(),
                    summary: view.summary,
                });
            }
            if waiting.len() >= 50 {
                break;
            }
        }
        Ok(waiting)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectWorkflowOut {
    pub project_id: Uuid,
    pub workflow_id: Option<Uuid>,
}
