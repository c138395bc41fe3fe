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
//!   publishing reads). The author's "request review" and each step's
//!   completion tell the current step's approvers (and e-mail its external
//!   reviewers a link); the end of review tells the author.
//! - A step may apply only to content with Fair Housing findings (a
//!   compliance step for listing kits); otherwise it is skipped.
//! - External reviewers (people without an account) are named on a step by
//!   e-mail address and decide or comment through a link valid for one
//!   activity and a set time (`review_link`); every action through it is
//!   audited with their address.
//! - A pending review expires `expire_days` after it started (the version's
//!   creation, or the last restart); an expired review takes no decisions
//!   until someone who may edit the activity restarts it, which starts a
//!   new round (earlier rounds' decisions are history, not votes).
//! - Where a review stands is computed from the current workflow, so an
//!   edited workflow applies at once to reviews in progress (decisions stay
//!   with the step number they were taken at).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, RequestMeta, TenantAccess, actions, activities, activities::result_of, audit_event};
use crate::auth::tokens::{OpaqueToken, TokenKind, hash_token, looks_like};
use crate::domain::{Email, Permission, Role, Timestamp, new_id};
use crate::error::{Error, FoundExt, NotFoundExt, Result};
use crate::store::{
    Activity, Actor, Audience, CommentSubject, Decision, MailPurpose, Member, NewAuditEvent, NewComment,
    NewDecision, NewMail, NewNotice, NewReviewLink, NewReviewWorkflow, NewWebhookEvent, NoticeKind, Outcome,
    PageRequest, PostFilter, PostStatus, ReviewDecision, ReviewItem, ReviewLink, ReviewStep, ReviewWorkflow,
    Seen, SocialPost, StepRule, WebhookEventKind,
};

/// At most this many steps in a workflow.
const MAX_STEPS: usize = 10;
/// At most this many named approvers in a step.
const MAX_STEP_MEMBERS: usize = 50;
/// The longest decision comment, in characters.
const MAX_DECISION_COMMENT: usize = 10_000;
/// At most this many external reviewers on a step.
const MAX_STEP_EXTERNALS: usize = 20;
/// A pending review expires after this many days unless the workflow says.
pub const DEFAULT_EXPIRE_DAYS: i64 = 30;
/// How long a review link works unless its maker says.
const DEFAULT_LINK_DAYS: i64 = 14;
/// The longest a review link may work.
const MAX_LINK_DAYS: i64 = 90;

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
    /// External reviewers (people without an account), by e-mail address;
    /// they decide through a link. A step of only external reviewers gives
    /// neither `role` nor `members`.
    #[serde(default)]
    pub externals: Vec<String>,
    /// The step applies only to content with Fair Housing findings.
    #[serde(default)]
    pub only_with_findings: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowIn {
    pub name: String,
    /// In order, 1 to 10.
    pub steps: Vec<StepIn>,
    /// A pending review expires this many days after it started (1 to
    /// 365; default 30).
    pub expire_days: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    pub position: i64,
    pub name: String,
    pub rule: StepRule,
    pub role: Option<Role>,
    pub members: Vec<Uuid>,
    pub externals: Vec<String>,
    pub only_with_findings: bool,
    /// "any of: admins and owners", "all of: Ana, Ben".
    pub approvers: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkflowView {
    pub id: Uuid,
    pub name: String,
    pub steps: Vec<StepView>,
    pub expire_days: i64,
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
    /// `restart` starts an expired review again (for people who may edit
    /// the activity).
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
    pub round: i64,
    pub user_id: Option<Uuid>,
    /// The member's name, or an external reviewer's address.
    pub user_name: String,
    /// Set when an external reviewer decided through a link.
    pub reviewer_email: Option<String>,
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
    /// The step's external reviewers' addresses.
    pub externals: Vec<String>,
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
    /// `not_ready` (no content), `in_review`, `expired`,
    /// `changes_requested`, `rejected`, `approved`.
    pub state: String,
    pub current_step: Option<i64>,
    /// The review's round (0, one more at every restart).
    pub round: i64,
    /// When a pending review expires (or expired).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Whether the caller may restart an expired review.
    pub can_restart: bool,
    /// Whether the caller may ask the current step's approvers to review.
    pub can_request: bool,
    /// In words: "step 2 of 3: waiting for any of: Compliance".
    pub summary: String,
    pub steps: Vec<StepStanding>,
    /// Whether the caller may decide now, and if not, why.
    pub can_decide: bool,
    pub why_not: Option<String>,
}

/// An activity or a post waiting for the caller's review.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WaitingReview {
    /// The activity, or else the post, waiting.
    pub activity_id: Option<Uuid>,
    pub post_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub title: String,
    pub summary: String,
    /// Its page in the web UI.
    pub link: String,
}

/// The default review: one step, any member or above.
fn default_steps() -> Vec<ReviewStep> {
    vec![ReviewStep {
        position: 1,
        name: "Review".into(),
        rule: StepRule::Any,
        min_role: Some(Role::Member),
        members: vec![],
        externals: vec![],
        only_with_findings: false,
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

/// Who decides: a member, or an external reviewer through a link.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reviewer {
    Member(Uuid),
    External(String),
}

impl Reviewer {
    fn took(&self, d: &ReviewDecision) -> bool {
        match self {
            Reviewer::Member(id) => d.user_id == Some(*id),
            Reviewer::External(email) => d.user_id.is_none() && d.reviewer_email.as_deref() == Some(email),
        }
    }
}

/// Everything needed to compute where a version's review stands.
struct Context {
    workflow: Option<ReviewWorkflow>,
    /// The steps that apply to this content (a findings-only step is left
    /// out when the content has none).
    steps: Vec<ReviewStep>,
    members: Vec<Member>,
    /// Who may not approve (the creator and the version's author) in a
    /// tenant-defined workflow.
    authors: BTreeSet<Uuid>,
    expire_days: i64,
}

/// The version under review and its current round.
struct Under {
    run: Uuid,
    version: i64,
    round: i64,
    /// When this round started: the version's creation, or the restart.
    started: Timestamp,
    /// Every decision on the version (for the write's check).
    all: i64,
    /// The decisions of this round, oldest first.
    decisions: Vec<ReviewDecision>,
}

enum Standing {
    NotReady,
    InReview { step: usize },
    Expired { step: usize },
    ChangesRequested,
    Rejected,
    Approved,
}

impl Context {
    /// The eligible member approvers of a step.
    fn approvers(&self, step: &ReviewStep) -> Vec<&Member> {
        let custom = self.workflow.is_some();
        self.members
            .iter()
            .filter(|m| !m.disabled)
            .filter(|m| {
                if step.members.is_empty() {
                    step.min_role.is_some_and(|r| m.role >= r)
                } else {
                    step.members.contains(&m.user_id)
                }
            })
            .filter(|m| !(custom && self.authors.contains(&m.user_id)))
            .collect()
    }

    fn may_decide(&self, step: &ReviewStep, reviewer: &Reviewer) -> bool {
        match reviewer {
            Reviewer::Member(id) => self.approvers(step).iter().any(|m| m.user_id == *id),
            Reviewer::External(email) => step.externals.contains(email),
        }
    }

    fn approvers_words(&self, step: &ReviewStep) -> String {
        let mut who: Vec<String> = Vec::new();
        if step.members.is_empty() {
            if let Some(role) = step.min_role {
                who.push(role_words(role).to_owned());
            }
        } else {
            let names: Vec<String> = self
                .members
                .iter()
                .filter(|m| step.members.contains(&m.user_id))
                .map(|m| m.display_name.to_string())
                .collect();
            if names.is_empty() {
                who.push("nobody (its members left)".into());
            }
            who.extend(names);
        }
        who.extend(step.externals.iter().map(|e| format!("{e} (external)")));
        format!("{} of: {}", if step.rule == StepRule::All { "all" } else { "any" }, who.join(", "))
    }

    fn complete(&self, step: &ReviewStep, decisions: &[ReviewDecision]) -> bool {
        let approvals: Vec<&ReviewDecision> =
            decisions.iter().filter(|d| d.step == step.position && d.decision == Decision::Approve).collect();
        match step.rule {
            StepRule::Any => !approvals.is_empty(),
            StepRule::All => {
                let approvers = self.approvers(step);
                let members_done =
                    approvers.iter().all(|m| approvals.iter().any(|d| d.user_id == Some(m.user_id)));
                let externals_done = step.externals.iter().all(|e| {
                    approvals.iter().any(|d| d.user_id.is_none() && d.reviewer_email.as_ref() == Some(e))
                });
                (!approvers.is_empty() || !step.externals.is_empty()) && members_done && externals_done
            }
        }
    }

    fn expires_at(&self, under: &Under) -> Timestamp {
        under.started + time::Duration::days(self.expire_days)
    }

    fn standing(&self, under: Option<&Under>, approved: bool, now: Timestamp) -> Standing {
        let Some(under) = under else { return Standing::NotReady };
        if approved {
            return Standing::Approved;
        }
        let decisions = &under.decisions;
        if decisions.iter().any(|d| d.decision == Decision::Reject) {
            return Standing::Rejected;
        }
        if decisions.iter().any(|d| d.decision == Decision::RequestChanges) {
            return Standing::ChangesRequested;
        }
        // Every step done but the activity not marked: the last approval
        // lost a race; the next approval attempt settles it.
        let step = self
            .steps
            .iter()
            .position(|s| !self.complete(s, decisions))
            .unwrap_or(self.steps.len().saturating_sub(1));
        if now >= self.expires_at(under) { Standing::Expired { step } } else { Standing::InReview { step } }
    }

    /// Why `reviewer` may not decide now (`None`: they may).
    fn why_not(
        &self,
        standing: &Standing,
        under: Option<&Under>,
        reviewer: Option<&Reviewer>,
    ) -> Option<String> {
        let Some(reviewer) = reviewer else {
            return Some("reviews are decided by people; sign in".to_owned());
        };
        match (standing, under) {
            (Standing::InReview { step }, Some(under)) => {
                let step = &self.steps[*step];
                let decisions = &under.decisions;
                if decisions.iter().any(|d| d.step == step.position && reviewer.took(d)) {
                    Some("you decided on this step already".to_owned())
                } else if decisions.iter().any(|d| reviewer.took(d) && d.decision == Decision::Approve) {
                    Some(
                        "you approved an earlier step of this version; another approver decides this one"
                            .to_owned(),
                    )
                } else if self.may_decide(step, reviewer) {
                    None
                } else if let Reviewer::Member(me) = reviewer
                    && self.workflow.is_some()
                    && self.authors.contains(me)
                {
                    Some("you wrote this content; someone else approves it".to_owned())
                } else {
                    Some(format!("this step waits for {}", self.approvers_words(step)))
                }
            }
            (Standing::Expired { .. }, Some(under)) => Some(format!(
                "the review expired on {}; restart it to decide",
                self.expires_at(under).to_rfc3339_fixed()
            )),
            _ => Some(self.summary(standing)),
        }
    }

    fn summary(&self, standing: &Standing) -> String {
        let total = self.steps.len();
        match standing {
            Standing::NotReady => "nothing to review until the content is generated".to_owned(),
            Standing::Approved => "approved".to_owned(),
            Standing::Rejected => "rejected; editing the content starts review again".to_owned(),
            Standing::ChangesRequested => {
                "changes requested; editing the content starts review again".to_owned()
            }
            Standing::InReview { step } => format!(
                "step {} of {total}: waiting for {}",
                step + 1,
                self.approvers_words(&self.steps[*step])
            ),
            Standing::Expired { step } => format!(
                "expired at step {} of {total}; someone who may edit it restarts the review",
                step + 1
            ),
        }
    }
}

fn check_comment(decision: Decision, comment: &str) -> Result<String> {
    let comment = comment.trim();
    if matches!(decision, Decision::RequestChanges | Decision::Reject) && comment.is_empty() {
        return Err(Error::invalid("comment", "say what to change or why; a comment is required"));
    }
    if comment.chars().count() > MAX_DECISION_COMMENT {
        return Err(Error::invalid("comment", format!("must be at most {MAX_DECISION_COMMENT} characters")));
    }
    Ok(comment.to_owned())
}

/// An external reviewer's address: valid, lowercase.
fn external_address(field: &str, text: &str) -> Result<String> {
    Email::parse(text).map(|e| e.normalized()).map_err(|e| Error::invalid(field, e.to_string()))
}

/// A review link as its makers see it (never its token).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewLinkView {
    pub id: Uuid,
    pub email: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}

impl ReviewLinkView {
    fn of(l: &ReviewLink) -> Self {
        let state = if l.revoked_at.is_some() {
            "revoked"
        } else if l.expires_at <= Timestamp::now() {
            "expired"
        } else {
            "active"
        };
        Self {
            id: l.id,
            email: l.email.clone(),
            expires_at: l.expires_at,
            created_at: l.created_at,
            revoked_at: l.revoked_at,
            state: state.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReviewLink {
    /// The external reviewer's address; it must be an external reviewer of
    /// a step of the activity's workflow.
    pub email: String,
    /// How long the link works, 1 to 90 days (default 14).
    pub valid_days: Option<i64>,
}

/// A new link: the URL is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedReviewLink {
    pub link: ReviewLinkView,
    /// The path to give the reviewer (prefix it with the server's address).
    pub path: String,
}

/// What an external reviewer sees through their link.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExternalReview {
    pub email: String,
    pub organisation: String,
    pub title: String,
    pub kind: String,
    /// The current content, Markdown.
    pub content: Option<String>,
    pub review: ReviewView,
    #[schema(value_type = String, format = DateTime)]
    pub link_expires_at: Timestamp,
}

/// An external reviewer's link token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewLinkToken {
    pub token: String,
}

/// An external reviewer's comment, with their link token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalCommentIn {
    pub token: String,
    /// Markdown, at most 10,000 characters.
    pub body: String,
}

/// An external reviewer's decision, with their link token (the API's
/// body; [`ExternalDecideIn::into_parts`] gives the token and the decision).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalDecideIn {
    pub token: String,
    /// `approve`, `request_changes` or `reject`.
    pub decision: Decision,
    /// Required to request changes or reject.
    #[serde(default)]
    pub comment: String,
    pub version: Option<i64>,
    pub step: Option<i64>,
    #[serde(default)]
    pub acknowledge_findings: bool,
}

impl ExternalDecideIn {
    pub fn into_parts(self) -> (String, DecideIn) {
        let decision = DecideIn {
            decision: self.decision,
            comment: self.comment,
            version: self.version,
            step: self.step,
            acknowledge_findings: self.acknowledge_findings,
        };
        (self.token, decision)
    }
}

/// What a review is about, as its rules need it: an activity's content,
/// or a post of its own (one its activity's review does not cover).
#[derive(Clone, Copy)]
enum Subject<'a> {
    Activity(&'a Activity),
    Post(&'a SocialPost),
}

impl Subject<'_> {
    fn item(self) -> ReviewItem {
        match self {
            Subject::Activity(a) => ReviewItem::Activity(a.id),
            Subject::Post(p) => ReviewItem::Post(p.id),
        }
    }

    fn tenant_id(self) -> Uuid {
        match self {
            Subject::Activity(a) => a.tenant_id,
            Subject::Post(p) => p.tenant_id,
        }
    }

    fn project_id(self) -> Option<Uuid> {
        match self {
            Subject::Activity(a) => Some(a.project_id),
            Subject::Post(p) => p.project_id,
        }
    }

    /// How notices name it.
    fn title(self) -> String {
        match self {
            Subject::Activity(a) => a.title.clone(),
            Subject::Post(p) => format!("{} post: {}", p.network.label(), p.snippet()),
        }
    }

    fn created_by(self) -> Option<Uuid> {
        match self {
            Subject::Activity(a) => a.created_by,
            Subject::Post(p) => p.created_by,
        }
    }

    /// Its page in the web UI.
    fn link(self) -> String {
        match self {
            Subject::Activity(a) => {
                format!("/t/{}/projects/{}/activities/{}", a.tenant_id, a.project_id, a.id)
            }
            Subject::Post(p) => format!("/t/{}/posts/{}", p.tenant_id, p.id),
        }
    }

    fn approved(self) -> bool {
        match self {
            Subject::Activity(a) => a.approved_at.is_some(),
            Subject::Post(p) => p.approved_at.is_some(),
        }
    }
}

/// Whether a post is reviewed on its own: it did not come from an activity,
/// or its text or image changed from what the activity's review covered.
pub fn post_has_own_review(post: &SocialPost) -> bool {
    post.activity_id.is_none() || post.edited_at.is_some()
}

impl App {
    /// Every member of the tenant (up to 10,000).
    pub(super) async fn all_members(&self, tenant_id: Uuid) -> Result<Vec<Member>> {
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
            expire_days: workflow.expire_days,
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
                    role: if s.members.is_empty() { s.min_role } else { None },
                    members: s.members.clone(),
                    externals: s.externals.clone(),
                    only_with_findings: s.only_with_findings,
                    approvers: ctx.approvers_words(s),
                })
                .collect(),
            expire_days: workflow.expire_days,
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
        if input.steps.iter().all(|s| s.only_with_findings) {
            return Err(Error::invalid(
                "steps",
                "at least one step must apply to all content (not only to content with Fair Housing findings)",
            ));
        }
        let expire_days = input.expire_days.unwrap_or(DEFAULT_EXPIRE_DAYS);
        if !(1..=365).contains(&expire_days) {
            return Err(Error::invalid("expire_days", "must be 1 to 365 days"));
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
            if s.externals.len() > MAX_STEP_EXTERNALS {
                return Err(Error::invalid(
                    field("externals"),
                    format!("at most {MAX_STEP_EXTERNALS} external reviewers"),
                ));
            }
            let mut externals: Vec<String> = Vec::new();
            for (j, e) in s.externals.iter().enumerate() {
                let address = external_address(&format!("steps[{i}].externals[{j}]"), e)?;
                if !externals.contains(&address) {
                    externals.push(address);
                }
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
            // Only external reviewers: no member approves this step.
            let min_role = match (named.is_empty(), s.role, externals.is_empty()) {
                (false, _, _) => None,
                (true, Some(role), _) => Some(role),
                (true, None, true) => Some(Role::Member),
                (true, None, false) => None,
            };
            steps.push(ReviewStep {
                position: i as i64 + 1,
                name: step_name,
                rule: s.rule,
                min_role,
                members: named,
                externals,
                only_with_findings: s.only_with_findings,
            });
        }
        Ok(NewReviewWorkflow { id, tenant_id: access.tenant_id, name, steps, expire_days })
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
    /// authors, the steps that apply; and the version under review with
    /// its round's decisions. `members`: the tenant's members, read once by
    /// callers that look at many activities.
    async fn review_context(
        &self,
        subject: Subject<'_>,
        members: Vec<Member>,
    ) -> Result<(Context, Option<Under>)> {
        let workflow = match subject.project_id() {
            Some(project) => self.store.project_review_workflow(subject.tenant_id(), project).await?,
            None => None,
        };
        self.review_context_in(subject, members, workflow).await
    }

    /// [`Self::review_context`] with the subject's workflow already read
    /// (`None`: the default review).
    async fn review_context_in(
        &self,
        subject: Subject<'_>,
        members: Vec<Member>,
        workflow: Option<ReviewWorkflow>,
    ) -> Result<(Context, Option<Under>)> {
        let mut authors: BTreeSet<Uuid> = subject.created_by().into_iter().collect();
        let mut has_findings = false;
        // The version under review: an activity's latest content version,
        // or a post's revision; and when it started.
        let current = match subject {
            Subject::Activity(activity) => {
                match activity.content_run.as_ref().filter(|_| activity.run.status.is_terminal()) {
                    Some(run) => {
                        let versions =
                            self.store.activity_versions(activity.tenant_id, activity.id, run.id).await?;
                        let latest = versions.last();
                        let version = latest.map_or(0, |v| v.number);
                        if let Some(author) = latest.and_then(|v| v.author_id) {
                            authors.insert(author);
                        }
                        let generated = result_of(run);
                        has_findings =
                            activities::current_compliance(generated, latest).is_some_and(|c| !c.passed);
                        let created =
                            latest.map(|v| v.created_at).or(run.finished_at).unwrap_or(run.updated_at);
                        (generated.is_some() || version > 0).then_some((run.id, version, created))
                    }
                    None => None,
                }
            }
            Subject::Post(post) => {
                // The built-in Fair Housing rules screen a post's own text,
                // so a findings-only step applies to it as to a kit.
                has_findings = !marketer_pipeline::fair_housing::screen(&post.text, "post").is_empty();
                Some((post.id, post.revision, post.edited_at.unwrap_or(post.created_at)))
            }
        };
        let mut under = None;
        if let Some((run, version, created)) = current {
            let all = self.store.review_decisions(subject.tenant_id(), subject.item(), run, version).await?;
            let round = all.iter().map(|d| d.round).max().unwrap_or(0);
            let restarted = all
                .iter()
                .filter(|d| d.round == round && d.decision == Decision::Restart)
                .map(|d| d.created_at)
                .max();
            under = Some(Under {
                run,
                version,
                round,
                started: restarted.unwrap_or(created),
                all: all.len() as i64,
                decisions: all
                    .into_iter()
                    .filter(|d| d.round == round && d.decision != Decision::Restart)
                    .collect(),
            });
        }
        let steps: Vec<ReviewStep> = workflow
            .as_ref()
            .map(|w| w.steps.iter().filter(|s| has_findings || !s.only_with_findings).cloned().collect())
            .filter(|s: &Vec<ReviewStep>| !s.is_empty())
            .unwrap_or_else(default_steps);
        let expire_days = workflow.as_ref().map_or(DEFAULT_EXPIRE_DAYS, |w| w.expire_days);
        Ok((Context { workflow, steps, members, authors, expire_days }, under))
    }

    fn review_view(
        subject: Subject<'_>,
        ctx: &Context,
        under: Option<&Under>,
        reviewer: Option<&Reviewer>,
        may_edit: bool,
    ) -> ReviewView {
        let standing = ctx.standing(under, subject.approved(), Timestamp::now());
        let current_index = match standing {
            Standing::InReview { step } | Standing::Expired { step } => Some(step),
            _ => None,
        };
        let no_decisions = Vec::new();
        let decisions = under.map_or(&no_decisions, |u| &u.decisions);
        let steps: Vec<StepStanding> = ctx
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepStanding {
                position: s.position,
                name: s.name.clone(),
                rule: s.rule,
                approvers: ctx.approvers_words(s),
                externals: s.externals.clone(),
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
                        round: d.round,
                        user_id: d.user_id,
                        user_name: match (&d.user_name, &d.reviewer_email) {
                            (Some(name), _) => name.clone(),
                            (None, Some(email)) => format!("{email} (external)"),
                            (None, None) => "a former member".into(),
                        },
                        reviewer_email: d.reviewer_email.clone(),
                        decision: d.decision,
                        comment: d.comment.clone(),
                        at: d.created_at,
                    })
                    .collect(),
            })
            .collect();
        let state = match &standing {
            Standing::NotReady => "not_ready",
            Standing::Approved => "approved",
            Standing::Rejected => "rejected",
            Standing::ChangesRequested => "changes_requested",
            Standing::InReview { .. } => "in_review",
            Standing::Expired { .. } => "expired",
        };
        let why_not = ctx.why_not(&standing, under, reviewer);
        let is_member = matches!(reviewer, Some(Reviewer::Member(_)));
        ReviewView {
            workflow_id: ctx.workflow.as_ref().map(|w| w.id),
            workflow_name: ctx
                .workflow
                .as_ref()
                .map_or_else(|| "Default review".to_owned(), |w| w.name.clone()),
            version: under.map(|u| u.version),
            state: state.into(),
            current_step: current_index.map(|i| ctx.steps[i].position),
            round: under.map_or(0, |u| u.round),
            expires_at: match standing {
                Standing::InReview { .. } | Standing::Expired { .. } => under.map(|u| ctx.expires_at(u)),
                _ => None,
            },
            can_restart: is_member && may_edit && matches!(standing, Standing::Expired { .. }),
            can_request: is_member && may_edit && matches!(standing, Standing::InReview { .. }),
            summary: ctx.summary(&standing),
            steps,
            can_decide: why_not.is_none(),
            why_not,
        }
    }

    fn reviewer_of(access: &TenantAccess) -> Option<Reviewer> {
        access.caller.user().ok().map(|u| Reviewer::Member(u.id))
    }

    /// Where an activity's review stands, for the caller.
    pub async fn activity_review(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<ReviewView> {
        access.require(Permission::ActivitiesRead)?;
        let activity = self.activity_in(access, project_id, id).await?;
        let members = self.all_members(activity.tenant_id).await?;
        let subject = Subject::Activity(&activity);
        let (ctx, under) = self.review_context(subject, members).await?;
        let may_edit = access.role.allows(Permission::ActivitiesUpdate);
        Ok(Self::review_view(subject, &ctx, under.as_ref(), Self::reviewer_of(access).as_ref(), may_edit))
    }

    /// Notices to the current step's approvers that the item waits for them,
    /// and for an activity e-mails with a link to its external reviewers
    /// (made here; links are to activities).
    fn review_requests(
        &self,
        subject: Subject<'_>,
        ctx: &Context,
        under: &Under,
        index: usize,
        audit: NewAuditEvent,
    ) -> Result<(NewAuditEvent, Vec<NewReviewLink>)> {
        let step = &ctx.steps[index];
        let (tenant_id, title, link) = (subject.tenant_id(), subject.title(), subject.link());
        let (ReviewItem::Activity(item) | ReviewItem::Post(item)) = subject.item();
        let dedupe =
            format!("review:{item}:{}:{}:{}:step:{}", under.run, under.version, under.round, step.position);
        let notices = ctx
            .approvers(step)
            .iter()
            .filter(|m| {
                !under.decisions.iter().any(|d| d.step == step.position && d.user_id == Some(m.user_id))
            })
            .map(|m| NewNotice {
                tenant_id: Some(tenant_id),
                kind: NoticeKind::ReviewRequested,
                audience: Audience::User(m.user_id),
                title: format!("“{title}” waits for your review"),
                body: format!("Step {} of {}: {}.", index + 1, ctx.steps.len(), step.name),
                link: Some(link.clone()),
                dedupe_key: Some(dedupe.clone()),
            })
            .collect();
        let mut audit = audit.notify_all(notices);
        let mut links = Vec::new();
        let Subject::Activity(activity) = subject else { return Ok((audit, links)) };
        for email in &step.externals {
            if under
                .decisions
                .iter()
                .any(|d| d.step == step.position && d.reviewer_email.as_ref() == Some(email))
            {
                continue;
            }
            let to = Email::parse(email).map_err(|e| {
                Error::Internal(anyhow::anyhow!("a stored reviewer address is not valid: {e}"))
            })?;
            let token = OpaqueToken::generate(TokenKind::ReviewLink);
            let expires_at = Timestamp::now() + time::Duration::days(DEFAULT_LINK_DAYS);
            let path = format!("/review/{}", token.text);
            audit = audit.mail(NewMail {
                id: new_id(),
                tenant_id: Some(activity.tenant_id),
                user_id: None,
                to,
                purpose: MailPurpose::Notification,
                subject: format!("Please review “{}”", activity.title),
                body: format!(
                    "You are asked to review “{}” (step {} of {}: {}). The link below shows the content and \
                     lets you approve it, request changes or comment. It is yours alone and works until {}.",
                    activity.title,
                    index + 1,
                    ctx.steps.len(),
                    step.name,
                    expires_at.to_rfc3339_fixed()
                ),
                link: None,
                secret_link: Some(
                    self.notifier.seal_link(Some(activity.tenant_id), &path).map_err(Error::Internal)?,
                ),
            });
            links.push(NewReviewLink {
                id: new_id(),
                tenant_id: activity.tenant_id,
                activity_id: activity.id,
                email: email.clone(),
                token_hash: token.hash,
                expires_at,
                created_by: None,
            });
        }
        Ok((audit, links))
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
        let activity = self.activity_in(access, project_id, id).await?;
        if input.decision == Decision::Restart {
            access.require(Permission::ActivitiesUpdate)?;
        }
        let reviewer_name = access.caller.user().map(|u| u.display_name.to_string()).unwrap_or_default();
        let audit = access.audit(actions::REVIEW_DECIDE).resource("activity", id);
        self.decide(Subject::Activity(&activity), &Reviewer::Member(me), &reviewer_name, input, audit)
            .await?;
        self.activity_review(access, project_id, id).await
    }

    /// Asks the current step's approvers to review (a notice each, and a
    /// link by e-mail to its external reviewers).
    pub async fn request_review(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<ReviewView> {
        access.require(Permission::ActivitiesUpdate)?;
        access.caller.user()?;
        let activity = self.activity_in(access, project_id, id).await?;
        self.ask_for_review(access, Subject::Activity(&activity)).await?;
        self.activity_review(access, project_id, id).await
    }

    /// A post with a review of its own; 409 when its activity's review
    /// covers it.
    async fn reviewed_post(&self, access: &TenantAccess, id: Uuid) -> Result<SocialPost> {
        let post = self.store.post(access.tenant_id, id).await.found("post")?;
        if !post_has_own_review(&post) {
            return Err(Error::Conflict {
                code: "reviewed_with_activity",
                message:
                    "this post came from its activity unchanged: it is approved with the activity's review"
                        .into(),
            });
        }
        Ok(post)
    }

    /// Where a post's own review stands, for the caller.
    pub async fn post_review(&self, access: &TenantAccess, id: Uuid) -> Result<ReviewView> {
        access.require(Permission::PostsRead)?;
        let post = self.reviewed_post(access, id).await?;
        let members = self.all_members(post.tenant_id).await?;
        let subject = Subject::Post(&post);
        let (ctx, under) = self.review_context(subject, members).await?;
        let may_edit = access.role.allows(Permission::PostsWrite);
        Ok(Self::review_view(subject, &ctx, under.as_ref(), Self::reviewer_of(access).as_ref(), may_edit))
    }

    /// A reviewer's decision on a post's current revision.
    pub async fn decide_post_review(
        &self,
        access: &TenantAccess,
        id: Uuid,
        input: DecideIn,
    ) -> Result<ReviewView> {
        access.require(Permission::PostsRead)?;
        let me = access.caller.user()?.id;
        let post = self.reviewed_post(access, id).await?;
        if input.decision == Decision::Restart {
            access.require(Permission::PostsWrite)?;
        }
        let reviewer_name = access.caller.user().map(|u| u.display_name.to_string()).unwrap_or_default();
        let audit = access.audit(actions::POST_REVIEW_DECIDE).resource("post", id);
        self.decide(Subject::Post(&post), &Reviewer::Member(me), &reviewer_name, input, audit).await?;
        self.post_review(access, id).await
    }

    /// Asks the current step's approvers of a post to review.
    pub async fn request_post_review(&self, access: &TenantAccess, id: Uuid) -> Result<ReviewView> {
        access.require(Permission::PostsWrite)?;
        access.caller.user()?;
        let post = self.reviewed_post(access, id).await?;
        self.ask_for_review(access, Subject::Post(&post)).await?;
        self.post_review(access, id).await
    }

    /// Asks the current step's approvers of `subject` to review.
    async fn ask_for_review(&self, access: &TenantAccess, subject: Subject<'_>) -> Result<()> {
        let members = self.all_members(subject.tenant_id()).await?;
        let (ctx, under) = self.review_context(subject, members).await?;
        let standing = ctx.standing(under.as_ref(), subject.approved(), Timestamp::now());
        let (&Standing::InReview { step }, Some(under)) = (&standing, under.as_ref()) else {
            return Err(Error::Conflict { code: "review_ended", message: ctx.summary(&standing) });
        };
        let (action, kind, id) = match subject.item() {
            ReviewItem::Activity(id) => (actions::REVIEW_REQUEST, "activity", id),
            ReviewItem::Post(id) => (actions::POST_REVIEW_REQUEST, "post", id),
        };
        let audit = access.audit(action).resource(kind, id).details(serde_json::json!({
            "step": ctx.steps[step].position, "version": under.version, "round": under.round,
        }));
        let (audit, links) = self.review_requests(subject, &ctx, under, step, audit)?;
        self.store.create_review_links(&links, &audit).await?;
        Ok(())
    }

    /// One decision by a member or an external reviewer, checked and
    /// written under the item's lock with its audit and notices.
    async fn decide(
        &self,
        subject: Subject<'_>,
        reviewer: &Reviewer,
        reviewer_name: &str,
        input: DecideIn,
        audit: NewAuditEvent,
    ) -> Result<()> {
        let comment = check_comment(input.decision, &input.comment)?;
        let members = self.all_members(subject.tenant_id()).await?;
        let (ctx, under) = self.review_context(subject, members).await?;
        let Some(under) = under else {
            let status = match subject {
                Subject::Activity(a) => a.status().to_string(),
                Subject::Post(p) => p.status.to_string(),
            };
            return Err(Error::Conflict {
                code: "activity_not_ready",
                message: format!("only generated content is reviewed; the activity is {status}"),
            });
        };
        if let Some(seen) = input.version
            && seen != under.version
        {
            return Err(Error::Conflict {
                code: "version_changed",
                message: format!("the content is at version {} now; review that version", under.version),
            });
        }
        if subject.approved() {
            return Err(Error::Conflict {
                code: "already_approved",
                message: "this content is approved already".into(),
            });
        }
        let standing = ctx.standing(Some(&under), false, Timestamp::now());
        let mut decision = NewDecision {
            id: new_id(),
            tenant_id: subject.tenant_id(),
            item: subject.item(),
            round: under.round,
            workflow_id: ctx.workflow.as_ref().map(|w| w.id),
            step: 0,
            user_id: match reviewer {
                Reviewer::Member(me) => Some(*me),
                Reviewer::External(_) => None,
            },
            reviewer_email: match reviewer {
                Reviewer::Member(_) => None,
                Reviewer::External(email) => Some(email.clone()),
            },
            decision: input.decision,
            comment,
        };
        let seen = Seen { content_run_id: under.run, version: under.version, decisions: under.all };
        if input.decision == Decision::Restart {
            let Standing::Expired { .. } = standing else {
                return Err(Error::Conflict {
                    code: "review_not_expired",
                    message: format!(
                        "only an expired review is restarted; this one is: {}",
                        ctx.summary(&standing)
                    ),
                });
            };
            decision.round = under.round + 1;
            let audit = audit.details(serde_json::json!({
                "decision": input.decision, "version": under.version, "round": decision.round,
            }));
            let restarted =
                Under { round: decision.round, started: Timestamp::now(), decisions: Vec::new(), ..under };
            // A new round starts at the first step.
            let (audit, links) = self.review_requests(subject, &ctx, &restarted, 0, audit)?;
            return Ok(self.store.decide(&decision, &seen, false, &links, &audit).await?);
        }
        if let Some(why) = ctx.why_not(&standing, Some(&under), Some(reviewer)) {
            return match standing {
                Standing::InReview { .. } => Err(Error::Forbidden(why)),
                _ => Err(Error::Conflict { code: "review_ended", message: why }),
            };
        }
        let Standing::InReview { step: index } = standing else {
            return Err(Error::Conflict { code: "review_ended", message: ctx.summary(&standing) });
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
        if input.decision == Decision::Approve
            && let Subject::Activity(activity) = subject
        {
            self.check_findings(activity, input.acknowledge_findings).await?;
        }
        decision.step = step.position;
        // Would this decision complete the last step?
        let mut after = under.decisions.clone();
        after.push(ReviewDecision {
            id: decision.id,
            item: subject.item(),
            content_run_id: under.run,
            version: under.version,
            round: under.round,
            workflow_id: decision.workflow_id,
            step: step.position,
            user_id: decision.user_id,
            user_name: None,
            reviewer_email: decision.reviewer_email.clone(),
            decision: input.decision,
            comment: decision.comment.clone(),
            created_at: Timestamp::now(),
        });
        let step_done = input.decision == Decision::Approve && ctx.complete(&step, &after);
        let last = index + 1 == ctx.steps.len();
        let approves = step_done && last;
        let mut audit = audit.details(serde_json::json!({
            "decision": input.decision,
            "step": step.position,
            "version": under.version,
            "round": under.round,
            "workflow_id": decision.workflow_id,
            "reviewer_email": decision.reviewer_email,
            "approved": approves,
        }));
        let (link, title) = (subject.link(), subject.title());
        let (ReviewItem::Activity(id) | ReviewItem::Post(id)) = subject.item();
        let (run, version, decision_id) = (under.run, under.version, decision.id);
        let author_notice = |kind: NoticeKind, title: String, body: String| {
            subject.created_by().filter(|a| decision.user_id != Some(*a)).map(|author| NewNotice {
                tenant_id: Some(subject.tenant_id()),
                kind,
                audience: Audience::User(author),
                title,
                body,
                link: Some(link.clone()),
                dedupe_key: Some(format!("review:{id}:{run}:{version}:{decision_id}")),
            })
        };
        let mut links = Vec::new();
        let notices: Vec<NewNotice> = match input.decision {
            Decision::Approve if approves => author_notice(
                NoticeKind::ReviewApproved,
                format!("“{title}” was approved"),
                format!("{reviewer_name} gave the last approval of version {version}."),
            )
            .into_iter()
            .collect(),
            Decision::Approve if step_done => {
                let (with_requests, made) = self.review_requests(subject, &ctx, &under, index + 1, audit)?;
                audit = with_requests;
                links = made;
                Vec::new()
            }
            Decision::Approve | Decision::Restart => Vec::new(),
            Decision::RequestChanges => author_notice(
                NoticeKind::ReviewChangesRequested,
                format!("Changes requested on “{title}”"),
                format!("{reviewer_name} asked for changes at step {}. Open it to read why.", step.position),
            )
            .into_iter()
            .collect(),
            Decision::Reject => author_notice(
                NoticeKind::ReviewRejected,
                format!("“{title}” was rejected"),
                format!("{reviewer_name} rejected version {version}. Open it to read why."),
            )
            .into_iter()
            .collect(),
        };
        audit = audit.notify_all(notices);
        if approves && let ReviewItem::Activity(activity_id) = subject.item() {
            audit = audit.emit(NewWebhookEvent::new(
                subject.tenant_id(),
                WebhookEventKind::ActivityApproved,
                format!("“{title}” was approved by {reviewer_name}"),
                serde_json::json!({
                    "activity_id": activity_id,
                    "title": title,
                    "version": version,
                    "run": run,
                    "approved_by": decision.user_id,
                }),
            ));
        }
        Ok(self.store.decide(&decision, &seen, approves, &links, &audit).await?)
    }

    /// The activities and posts waiting for the caller's decision (at most
    /// 50): activities in review, and scheduled or held posts with a review
    /// of their own.
    pub async fn waiting_for_my_review(&self, access: &TenantAccess) -> Result<Vec<WaitingReview>> {
        access.require(Permission::ActivitiesRead)?;
        let Some(me) = Self::reviewer_of(access) else { return Ok(Vec::new()) };
        let filter = crate::store::ActivityFilter {
            status: Some(crate::store::ActivityStatus::Review),
            ..Default::default()
        };
        let page = self
            .store
            .activities(access.tenant_id, None, &filter, PageRequest { after: None, limit: 100 })
            .await?;
        let members = self.all_members(access.tenant_id).await?;
        // Every workflow once, not once per item.
        let workflows = self.store.review_workflows(access.tenant_id).await?;
        let workflow_of = |project: Option<Uuid>| {
            project.and_then(|p| workflows.iter().find(|w| w.projects.contains(&p)).cloned())
        };
        let mut waiting = Vec::new();
        let waiting_item = |subject: Subject<'_>, view: ReviewView, project_id: Option<Uuid>| {
            let (activity_id, post_id) = match subject.item() {
                ReviewItem::Activity(id) => (Some(id), None),
                ReviewItem::Post(id) => (None, Some(id)),
            };
            view.can_decide.then(|| WaitingReview {
                activity_id,
                post_id,
                project_id,
                title: subject.title(),
                summary: view.summary,
                link: subject.link(),
            })
        };
        for activity in &page.items {
            if waiting.len() >= 50 {
                return Ok(waiting);
            }
            let subject = Subject::Activity(activity);
            let workflow = workflow_of(Some(activity.project_id));
            let (ctx, under) = self.review_context_in(subject, members.clone(), workflow).await?;
            let view = Self::review_view(subject, &ctx, under.as_ref(), Some(&me), false);
            waiting.extend(waiting_item(subject, view, Some(activity.project_id)));
        }
        if access.role.allows(Permission::PostsRead) {
            for status in [PostStatus::Scheduled, PostStatus::NeedsReschedule] {
                let filter = PostFilter { status: Some(status), limit: 100, ..PostFilter::default() };
                for post in self.store.posts(access.tenant_id, &filter).await? {
                    if waiting.len() >= 50 {
                        return Ok(waiting);
                    }
                    if !post_has_own_review(&post) || post.approved_at.is_some() {
                        continue;
                    }
                    let subject = Subject::Post(&post);
                    let workflow = workflow_of(post.project_id);
                    let (ctx, under) = self.review_context_in(subject, members.clone(), workflow).await?;
                    let view = Self::review_view(subject, &ctx, under.as_ref(), Some(&me), false);
                    waiting.extend(waiting_item(subject, view, post.project_id));
                }
            }
        }
        Ok(waiting)
    }

    /// Makes a link for an external reviewer of the activity's workflow;
    /// the path is returned this once.
    pub async fn create_review_link(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
        input: CreateReviewLink,
    ) -> Result<CreatedReviewLink> {
        access.require(Permission::ActivitiesUpdate)?;
        let activity = self.activity_in(access, project_id, id).await?;
        let email = external_address("email", &input.email)?;
        let days = input.valid_days.unwrap_or(DEFAULT_LINK_DAYS);
        if !(1..=MAX_LINK_DAYS).contains(&days) {
            return Err(Error::invalid("valid_days", format!("must be 1 to {MAX_LINK_DAYS} days")));
        }
        let workflow = self.store.project_review_workflow(activity.tenant_id, activity.project_id).await?;
        if !workflow.iter().flat_map(|w| &w.steps).any(|s| s.externals.contains(&email)) {
            return Err(Error::invalid(
                "email",
                "is not an external reviewer of this project's review workflow; add it to a step first",
            ));
        }
        let token = OpaqueToken::generate(TokenKind::ReviewLink);
        let link = NewReviewLink {
            id: new_id(),
            tenant_id: access.tenant_id,
            activity_id: id,
            email: email.clone(),
            token_hash: token.hash,
            expires_at: Timestamp::now() + time::Duration::days(days),
            created_by: access.caller.creator_id(),
        };
        let audit = access.audit(actions::REVIEW_LINK_CREATE).resource("activity", id).details(
            serde_json::json!({ "link_id": link.id, "email": email, "expires_at": link.expires_at }),
        );
        self.store.create_review_links(std::slice::from_ref(&link), &audit).await?;
        let created = ReviewLink {
            id: link.id,
            tenant_id: link.tenant_id,
            activity_id: link.activity_id,
            email: link.email,
            expires_at: link.expires_at,
            created_by: link.created_by,
            created_at: audit.occurred_at,
            revoked_at: None,
        };
        Ok(CreatedReviewLink { link: ReviewLinkView::of(&created), path: format!("/review/{}", token.text) })
    }

    pub async fn review_links(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<Vec<ReviewLinkView>> {
        access.require(Permission::ActivitiesRead)?;
        self.activity_in(access, project_id, id).await?;
        Ok(self.store.review_links(access.tenant_id, id).await?.iter().map(ReviewLinkView::of).collect())
    }

    pub async fn revoke_review_link(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
        link_id: Uuid,
    ) -> Result<()> {
        access.require(Permission::ActivitiesUpdate)?;
        self.activity_in(access, project_id, id).await?;
        let audit = access
            .audit(actions::REVIEW_LINK_REVOKE)
            .resource("activity", id)
            .details(serde_json::json!({ "link_id": link_id }));
        self.store
            .revoke_review_link(access.tenant_id, id, link_id, &audit)
            .await
            .or_not_found("review link")?;
        Ok(())
    }

    /// The link a token opens, if it works: unknown, expired and revoked
    /// links are refused alike, saying only what the holder can act on.
    async fn working_link(&self, token: &str) -> Result<(ReviewLink, Activity)> {
        let refused = || Error::Gone {
            code: "review_link_invalid",
            message:
                "this review link does not work (it expired, was revoked, or is mistyped); ask the person \
                      who sent it for a new one"
                    .into(),
        };
        if !looks_like(TokenKind::ReviewLink, token) {
            return Err(refused());
        }
        let link = self.store.review_link_by_hash(&hash_token(token)).await?.ok_or_else(refused)?;
        if link.revoked_at.is_some() || link.expires_at <= Timestamp::now() {
            return Err(refused());
        }
        let activity = self.store.activity(link.tenant_id, link.activity_id).await?.ok_or_else(refused)?;
        Ok((link, activity))
    }

    fn external_audit(link: &ReviewLink, meta: &RequestMeta, action: &'static str) -> NewAuditEvent {
        audit_event(
            Some(link.tenant_id),
            Actor::Reviewer { email: link.email.clone() },
            meta,
            action,
            Outcome::Success,
        )
        .resource("activity", link.activity_id)
    }

    /// What an external reviewer's link shows: the content and its review.
    pub async fn external_review(&self, token: &str, meta: &RequestMeta) -> Result<ExternalReview> {
        let (link, activity) = self.working_link(token).await?;
        let members = self.all_members(activity.tenant_id).await?;
        let (ctx, under) = self.review_context(Subject::Activity(&activity), members).await?;
        let reviewer = Reviewer::External(link.email.clone());
        let review =
            Self::review_view(Subject::Activity(&activity), &ctx, under.as_ref(), Some(&reviewer), false);
        let latest = match &activity.content_run {
            Some(run) => self.store.activity_versions(activity.tenant_id, activity.id, run.id).await?.pop(),
            None => None,
        };
        let view = activities::ActivityView::new(&activity, true, latest.as_ref());
        let tenant = self.store.tenant(activity.tenant_id).await.found("organisation")?;
        let audit = Self::external_audit(&link, meta, actions::REVIEW_LINK_OPEN)
            .details(serde_json::json!({ "link_id": link.id, "email": link.email }));
        self.store.record_audit(&audit).await?;
        Ok(ExternalReview {
            email: link.email,
            organisation: tenant.name.to_string(),
            title: activity.title.clone(),
            kind: view.kind.to_string(),
            content: view.content,
            review,
            link_expires_at: link.expires_at,
        })
    }

    /// An external reviewer's comment through their link: a new thread on
    /// the activity, under their address (no mentions: they do not know
    /// the team).
    pub async fn external_comment(&self, token: &str, meta: &RequestMeta, body: &str) -> Result<()> {
        let (link, activity) = self.working_link(token).await?;
        let body = body.trim();
        if body.is_empty() {
            return Err(Error::invalid("body", "write the comment"));
        }
        if body.chars().count() > super::comments::MAX_COMMENT_CHARS {
            return Err(Error::invalid(
                "body",
                format!("must be at most {} characters", super::comments::MAX_COMMENT_CHARS),
            ));
        }
        let comment = NewComment {
            id: new_id(),
            tenant_id: link.tenant_id,
            subject: CommentSubject::Activity(activity.id),
            thread_id: None,
            author_id: None,
            author_email: Some(link.email.clone()),
            body: body.to_owned(),
            anchor: None,
            mentions: Vec::new(),
        };
        let mut audit = Self::external_audit(&link, meta, actions::REVIEW_LINK_COMMENT)
            .details(serde_json::json!({ "comment_id": comment.id, "email": link.email }));
        if let Some(author) = activity.created_by {
            audit = audit.notify(NewNotice {
                tenant_id: Some(link.tenant_id),
                kind: NoticeKind::Mention,
                audience: Audience::User(author),
                title: format!("{} commented on “{}”", link.email, activity.title),
                body: "An external reviewer left a comment. Open the item to read it.".into(),
                link: Some(format!(
                    "/t/{}/projects/{}/activities/{}",
                    activity.tenant_id, activity.project_id, activity.id
                )),
                dedupe_key: Some(format!("comment:{}", comment.id)),
            });
        }
        self.store.add_comment(&comment, &audit).await?;
        Ok(())
    }

    /// An external reviewer's decision through their link; what they see
    /// after it.
    pub async fn external_decide(
        &self,
        token: &str,
        meta: &RequestMeta,
        input: DecideIn,
    ) -> Result<ExternalReview> {
        let (link, activity) = self.working_link(token).await?;
        if input.decision == Decision::Restart {
            return Err(Error::Forbidden(
                "an external reviewer approves, requests changes or comments".into(),
            ));
        }
        let audit = Self::external_audit(&link, meta, actions::REVIEW_LINK_DECIDE);
        let name = format!("{} (external)", link.email);
        self.decide(
            Subject::Activity(&activity),
            &Reviewer::External(link.email.clone()),
            &name,
            input,
            audit,
        )
        .await?;
        self.external_review(token, meta).await
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectWorkflowOut {
    pub project_id: Uuid,
    pub workflow_id: Option<Uuid>,
}
