//! Marketing activities: creating one (where it runs is the project's
//! policy, decided here), reading them, regenerating, editing, approving,
//! exporting; the tenants' cloud providers; usage and quotas.

use std::time::Duration;

use marketer_protocol::activity::{ActivityInput, ActivityJob, ActivityResult, Finding};
use marketer_protocol::{JobOutput, JobSpec, Usage};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::activity_input::{self, CreateActivity};
use super::jobs::{canonical_model, submitter};
use super::{App, Principal, TenantAccess, actions};
use crate::cloud::crypto;
use crate::domain::{ComplianceMode, LlmPolicy, Permission, Plan, Project, Timestamp, new_id};
use crate::error::{Error, FoundExt, Result};
use crate::store::{
    Activity, ActivityFilter, ActivityKind, ActivityStatus, ActivityVersion, CloudProvider, JobStatus,
    NewActivity, NewActivityVersion, NewJob, Page, PageRequest, Route, StoreError, UsageDay,
};
use marketer_protocol::JobError;

/// The model activities run on when neither the request nor the project
/// names one.
pub const DEFAULT_MODEL: &str = "llama3.2";
/// A run may take this long (all its LLM calls) before it is retried.
pub const RUN_TIMEOUT_SECONDS: i64 = 3600;
/// Runs of an activity before a failure is final.
pub const RUN_ATTEMPTS: i64 = 2;
const MAX_CONTENT_BYTES: usize = 512 * 1024;

/// Activity runs a tenant may start per UTC day, by plan (`None`:
/// unlimited).
pub fn daily_quota(plan: Plan) -> Option<i64> {
    match plan {
        Plan::Free => Some(25),
        Plan::Pro => Some(500),
        Plan::Enterprise => None,
    }
}

/// An activity as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityView {
    pub id: Uuid,
    pub project_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub kind: ActivityKind,
    pub title: String,
    pub status: ActivityStatus,
    /// The model the current run uses.
    pub model: String,
    /// Where the current run goes: the tenant's edge agents or the cloud.
    pub route: Route,
    /// The agent (or the cloud runner) holding or last holding the run.
    pub agent_id: Option<Uuid>,
    /// Why a queued run has not started.
    pub waiting_reason: Option<String>,
    /// How many times it was generated.
    pub runs: i64,
    /// The property a listing kit was generated from, and its version then.
    pub property_id: Option<Uuid>,
    pub property_version: Option<i64>,
    pub run: RunView,
    /// The request, as given (details only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input: Option<serde_json::Value>,
    /// The current content in Markdown: the latest edit, or what the run
    /// generated (details only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// 0 for the generated content, then one per edit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_version: Option<i64>,
    /// The run whose content is current: the last one that succeeded. A
    /// later run that fails or is cancelled leaves it (`run` then says how
    /// that run ended).
    pub content_run_id: Option<Uuid>,
    /// The compliance review of the current version (details only; listing
    /// kits): the generated kit's review for version 0, the built-in rules
    /// on the edited text for an edit. Approval requires acknowledging its
    /// findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compliance: Option<ComplianceView>,
    /// What the built-in compliance rules find in the request's own text
    /// (details only; listing kits): the form warns about these before
    /// generating.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub input_findings: Option<Vec<Finding>>,
    /// What the pipeline produced: SEO data, research notes, quality scores,
    /// social variants, flyer text, the compliance review, each step's usage
    /// and the provenance (details only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// What the run that made the content cost, for a run on the cloud
    /// provider (details only): its tokens × the model's price in the
    /// settings, or why there is no estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<super::CostEstimate>,
    /// What the latest run completed before it failed or was cancelled
    /// (details only): regenerating resumes from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<KeptWork>,
    pub approved_at: Option<Timestamp>,
    pub approved_by: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The compliance review of one version of the content.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplianceView {
    /// The version reviewed (0: as generated).
    pub version: i64,
    pub passed: bool,
    #[schema(value_type = Vec<Object>)]
    pub findings: Vec<Finding>,
}

/// One run of an activity (a job).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunView {
    pub job_id: Uuid,
    pub status: JobStatus,
    pub attempts: i64,
    #[schema(value_type = Option<Object>)]
    pub error: Option<JobError>,
    #[schema(value_type = Option<Object>)]
    pub usage: Option<Usage>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

impl RunView {
    fn of(job: &crate::store::Job) -> Self {
        Self {
            job_id: job.id,
            status: job.status,
            attempts: job.attempts,
            error: job.error.clone(),
            usage: job.usage.clone(),
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
        }
    }
}

/// A past or present run with what it produced.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunView,
    pub model: String,
    pub route: Route,
    pub agent_id: Option<Uuid>,
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
}

/// The content history of a run: what it generated (version 0), then each
/// edit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionView {
    pub number: i64,
    /// The run whose content this is.
    pub run_id: Uuid,
    pub content: String,
    /// The compliance findings of this version (listing kits).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub findings: Option<Vec<Finding>>,
    /// `pipeline` for the generated content, else the editor's name.
    pub author: String,
    pub author_id: Option<Uuid>,
    pub created_at: Timestamp,
}

impl VersionView {
    fn of_edit(edit: ActivityVersion) -> Self {
        Self {
            number: edit.number,
            run_id: edit.job_id,
            content: edit.content,
            findings: edit.findings,
            author: edit.author_name,
            author_id: edit.author_id,
            created_at: edit.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditContent {
    /// The new content, Markdown.
    pub content: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// Approve a listing kit although its Fair Housing review has findings
    /// (recorded in the audit log).
    #[serde(default)]
    pub acknowledge_findings: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCloudProvider {
    /// The OpenAI-compatible API base, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    /// Stored encrypted; never shown again.
    pub api_key: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CloudProviderView {
    pub base_url: String,
    pub model: String,
    /// The end of the key, to recognise it.
    pub api_key_hint: String,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageView {
    pub from: String,
    pub to: String,
    pub days: Vec<UsageDay>,
    pub totals: UsageTotals,
    /// Activity runs allowed per UTC day by the plan (`null`: unlimited),
    /// and how many were started today.
    pub daily_activity_quota: Option<i64>,
    pub activities_today: i64,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct UsageTotals {
    pub jobs: i64,
    pub activities: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub wall_time_ms: i64,
}

/// The generated result of a run, if it has one.
/// What a run that failed or was cancelled completed before it stopped.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeptWork {
    /// The steps completed, in order (`seo`, `research`, `writing`, …).
    pub steps: Vec<String>,
    /// What a reviewer should know about them.
    #[schema(value_type = Vec<Object>)]
    pub warnings: Vec<marketer_protocol::activity::Warning>,
}

impl KeptWork {
    fn of(result: &ActivityResult) -> Self {
        let mut steps: Vec<String> = Vec::new();
        for record in marketer_pipeline::run::completed_steps(result) {
            if !steps.contains(&record.step) {
                steps.push(record.step.clone());
            }
        }
        Self { steps, warnings: result.warnings.clone() }
    }
}

/// What a run that failed or was cancelled completed, when it completed
/// anything.
fn resumable(job: &crate::store::Job) -> Option<&ActivityResult> {
    matches!(job.status, JobStatus::Failed | JobStatus::Cancelled)
        .then(|| result_of(job))
        .flatten()
        .filter(|r| marketer_pipeline::run::completed_steps(r).next().is_some())
}

pub(crate) fn result_of(job: &crate::store::Job) -> Option<&ActivityResult> {
    match &job.output {
        Some(JobOutput::Activity { result }) => Some(result),
        _ => None,
    }
}

/// What the built-in rules find in an activity's request (listing kits).
pub fn input_findings(input: &ActivityInput) -> Option<Vec<Finding>> {
    match input {
        ActivityInput::ListingKit(kit) => Some(marketer_pipeline::fair_housing::screen_listing(&kit.listing)),
        _ => None,
    }
}

/// What the built-in rules find in a creation request's own text, before
/// anything is generated (empty when the request is invalid: creating it
/// says why).
pub fn request_findings(req: &CreateActivity) -> Vec<Finding> {
    activity_input::parse(req).ok().and_then(|(input, _)| input_findings(&input)).unwrap_or_default()
}

/// What the built-in rules find in an edited text of an activity of this
/// kind (`None`: no content rule applies to it).
fn content_findings(kind: ActivityKind, content: &str) -> Option<Vec<Finding>> {
    match kind {
        ActivityKind::ListingKit => Some(marketer_pipeline::fair_housing::screen(content, "content")),
        ActivityKind::BlogArticle | ActivityKind::SocialPostSet => None,
    }
}

/// The compliance review of the current version: the latest edit's, or the
/// generated kit's.
pub(crate) fn current_compliance(
    generated: Option<&ActivityResult>,
    latest: Option<&ActivityVersion>,
) -> Option<ComplianceView> {
    match latest {
        Some(edit) => edit.findings.as_ref().map(|findings| ComplianceView {
            version: edit.number,
            passed: findings.is_empty(),
            findings: findings.clone(),
        }),
        None => generated.and_then(|r| r.compliance.as_ref()).map(|c| ComplianceView {
            version: 0,
            passed: c.findings.is_empty(),
            findings: c.findings.clone(),
        }),
    }
}

impl ActivityView {
    /// `latest`: the newest edit of the content run, if any.
    pub(crate) fn new(a: &Activity, details: bool, latest: Option<&ActivityVersion>) -> Self {
        let generated = a.content_run.as_ref().and_then(result_of);
        let (content, content_version) = match (details, latest, generated) {
            (false, _, _) => (None, None),
            (true, Some(edit), _) => (Some(edit.content.clone()), Some(edit.number)),
            (true, None, Some(result)) => (Some(result.content.clone()), Some(0)),
            (true, None, None) => (None, None),
        };
        Self {
            id: a.id,
            project_id: a.project_id,
            campaign_id: a.campaign_id,
            kind: a.kind,
            title: a.title.clone(),
            status: a.status(),
            model: a.run.model.clone(),
            route: a.run.route,
            agent_id: a.run.agent_id,
            waiting_reason: a.run.waiting_reason.clone().filter(|_| a.run.status == JobStatus::Queued),
            runs: a.runs,
            property_id: a.property_id,
            property_version: a.property_version,
            run: RunView::of(&a.run),
            input: details.then(|| serde_json::to_value(&a.input).unwrap_or_default()),
            content,
            content_version,
            content_run_id: a.content_run.as_ref().map(|r| r.id),
            compliance: details.then(|| current_compliance(generated, latest)).flatten(),
            input_findings: details.then(|| input_findings(&a.input)).flatten(),
            result: generated.filter(|_| details).map(|r| serde_json::to_value(r).unwrap_or_default()),
            cost: None,
            kept: resumable(&a.run).filter(|_| details).map(KeptWork::of),
            approved_at: a.approved_at,
            approved_by: a.approved_by,
            created_by: a.created_by,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// Where a new run goes, and on which model.
struct Placement {
    route: Route,
    model: String,
    /// Bound to the agents holding this project's document index.
    index_project_id: Option<Uuid>,
    /// For the audit log.
    detail: serde_json::Value,
}

impl App {
    pub async fn create_activity(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        mut req: CreateActivity,
    ) -> Result<ActivityView> {
        access.require(Permission::ActivitiesCreate)?;
        let project = self.store.project(access.tenant_id, project_id).await.found("project")?;
        let property = match req.property_id {
            Some(property_id) => {
                Some(self.listing_from_property(access, &mut req, project_id, property_id).await?)
            }
            None => None,
        };
        let (input, title) = activity_input::parse(&req)?;
        let model = match req.model.as_deref() {
            Some(model) => canonical_model(model)?,
            None => canonical_model(project.default_model.as_ref().map_or(DEFAULT_MODEL, |m| m.as_str()))?,
        };
        self.check_quota(access).await?;
        let placement = self.place(access, &project, &model, req.wait_for_agent).await?;
        let id = new_id();
        let run = self.run_job(access, &project, id, &input, &placement, None).await?;
        let activity = NewActivity {
            id,
            tenant_id: access.tenant_id,
            project_id,
            campaign_id: req.campaign_id,
            input,
            title,
            model: placement.model.clone(),
            created_by: access.caller.creator_id(),
            property,
        };
        let audit = access.audit(actions::ACTIVITY_CREATE).resource("activity", id).details(
            serde_json::json!({ "kind": req.kind, "project_id": project_id, "route": placement.detail }),
        );
        let created = match self.store.create_activity(&activity, &run, &audit).await {
            Err(StoreError::NotFound) => return Err(Error::NotFound("project")),
            Err(StoreError::Conflict { code: "campaign_not_found", message }) => {
                return Err(Error::invalid("campaign_id", message));
            }
            other => other?,
        };
        self.wake_runner(placement.route);
        Ok(ActivityView::new(&created, true, None))
    }

    /// Picks where a run goes. A project with indexed documents runs on an
    /// online agent that holds its index (the research step reads them
    /// there). Without such an agent, an `edge_only` project waits for one
    /// (if the caller asked to wait); a `cloud_allowed` project proceeds
    /// without its documents, and the result's research notes say so.
    /// Otherwise: an online agent with the model, else (for a
    /// `cloud_allowed` project with a provider) the cloud, else queued if
    /// the caller asked to wait, else a conflict that names the problem.
    async fn place(
        &self,
        access: &TenantAccess,
        project: &Project,
        model: &str,
        wait_for_agent: bool,
    ) -> Result<Placement> {
        let tenant = self.store.tenant(access.tenant_id).await.found("tenant")?;
        let edge_only =
            tenant.compliance_mode == ComplianceMode::Hipaa || project.llm_policy == LlmPolicy::EdgeOnly;
        let edge = |index_project_id: Option<Uuid>, detail: serde_json::Value| Placement {
            route: Route::Edge,
            model: model.to_owned(),
            index_project_id,
            detail,
        };
        if self.store.indexed_documents(access.tenant_id, project.id).await? > 0 {
            match self.index_problem(access.tenant_id, project.id, model).await? {
                None => {
                    return Ok(edge(
                        Some(project.id),
                        serde_json::json!({ "route": "edge", "model": model, "documents": "on the agent that holds them" }),
                    ));
                }
                Some(problem) if edge_only => {
                    if wait_for_agent {
                        return Ok(edge(
                            Some(project.id),
                            serde_json::json!({ "route": "edge", "model": model, "waiting": problem }),
                        ));
                    }
                    return Err(Error::Conflict {
                        code: "no_agent_available",
                        message: format!(
                            "{problem}; this project's documents are read only where they are indexed. Start that agent, or pass \"wait_for_agent\": true to queue the activity until it is online"
                        ),
                    });
                }
                // A cloud_allowed project goes on without its documents.
                Some(_) => {}
            }
        }
        let problem = match self.edge_problem(access.tenant_id, model).await? {
            None => return Ok(edge(None, serde_json::json!({ "route": "edge", "model": model }))),
            Some(problem) => problem,
        };
        if !edge_only && let Some(provider) = self.store.cloud_provider(access.tenant_id).await? {
            return Ok(Placement {
                route: Route::Cloud,
                model: provider.model.clone(),
                index_project_id: None,
                detail: serde_json::json!({
                    "route": "cloud", "provider": provider.base_url, "model": provider.model, "because": problem,
                }),
            });
        }
        if wait_for_agent {
            return Ok(edge(
                None,
                serde_json::json!({ "route": "edge", "model": model, "waiting": problem }),
            ));
        }
        let alternative = if edge_only {
            "this project runs on the tenant's edge agents only"
        } else {
            "and the tenant has no cloud provider (PUT /api/v1/tenants/{tenant_id}/cloud-provider)"
        };
        Err(Error::Conflict {
            code: "no_agent_available",
            message: format!(
                "{problem}; {alternative}. Start an agent with the model, or pass \"wait_for_agent\": true to queue the activity until one is online"
            ),
        })
    }

    /// Why no online agent holding `project`'s index can run `model`, or
    /// `None` if one can.
    async fn index_problem(&self, tenant_id: Uuid, project: Uuid, model: &str) -> Result<Option<String>> {
        let agents = self.store.agents(tenant_id, PageRequest { after: None, limit: 1000 }).await?;
        let now = Timestamp::now();
        let window =
            time::Duration::try_from(self.hub.timings.offline_after()).unwrap_or(time::Duration::MAX);
        let holders: Vec<_> = agents
            .items
            .iter()
            .filter(|a| a.is_online(now, window) && a.projects.contains(&project))
            .collect();
        if holders.is_empty() {
            return Ok(Some("no online agent holds this project's documents".into()));
        }
        if !holders
            .iter()
            .any(|a| a.models.iter().any(|m| marketer_protocol::canonical_model_name(&m.name) == model))
        {
            return Ok(Some(format!(
                "the agent that holds this project's documents does not have the model {model} (pull it there with `ollama pull {model}`)"
            )));
        }
        Ok(None)
    }

    /// Why no edge agent of the tenant can run `model` now, or `None` if one can.
    async fn edge_problem(&self, tenant_id: Uuid, model: &str) -> Result<Option<String>> {
        let window =
            time::Duration::try_from(self.hub.timings.offline_after()).unwrap_or(time::Duration::MAX);
        Ok(crate::jobs::edge_problem(self.store.as_ref(), tenant_id, model, window).await?)
    }

    /// The job that runs an activity: its input, the project's brand voice,
    /// and what won the tenant's A/B tests on its platforms.
    async fn run_job(
        &self,
        access: &TenantAccess,
        project: &Project,
        activity_id: Uuid,
        input: &marketer_protocol::activity::ActivityInput,
        placement: &Placement,
        resume: Option<&ActivityResult>,
    ) -> Result<NewJob> {
        let what_worked = self.what_worked(access.tenant_id, input.platforms()).await?;
        let spec = JobSpec::Activity {
            model: placement.model.clone(),
            activity: Box::new(ActivityJob {
                input: input.clone(),
                brand_voice: project.brand_voice.as_str().to_owned(),
                project_id: Some(project.id),
                output_budgets: Default::default(),
                resume: resume.map(|r| Box::new(r.clone())),
                what_worked,
            }),
        };
        Ok(NewJob {
            id: new_id(),
            tenant_id: access.tenant_id,
            spec,
            labels: Default::default(),
            priority: super::jobs::DEFAULT_PRIORITY,
            not_before: None,
            timeout_seconds: RUN_TIMEOUT_SECONDS,
            queue_timeout_seconds: None,
            max_attempts: RUN_ATTEMPTS,
            idempotency_key: None,
            request_hash: Vec::new(),
            created_by: submitter(access),
            activity_id: Some(activity_id),
            route: placement.route,
            index_project_id: placement.index_project_id,
        })
    }

    fn wake_runner(&self, route: Route) {
        match route {
            Route::Edge => self.jobs.queued(),
            Route::Cloud => self.cloud.wake(),
        }
    }

    async fn check_quota(&self, access: &TenantAccess) -> Result<()> {
        let tenant = self.store.tenant(access.tenant_id).await.found("tenant")?;
        let Some(quota) = daily_quota(tenant.plan) else { return Ok(()) };
        let now = Timestamp::now();
        let midnight = now.next_midnight();
        let today = midnight - time::Duration::days(1);
        let used = self.store.activity_runs_since(access.tenant_id, today).await?;
        if used < quota {
            return Ok(());
        }
        let wait =
            Duration::try_from(midnight.as_datetime() - now.as_datetime()).unwrap_or(Duration::from_secs(1));
        Err(Error::QuotaExceeded {
            message: format!(
                "the {} plan allows {quota} activity runs a day and today's are used; the quota resets at {midnight}",
                tenant.plan
            ),
            retry_after: wait,
            resets_at: midnight,
        })
    }

    pub async fn activity(&self, access: &TenantAccess, project_id: Uuid, id: Uuid) -> Result<ActivityView> {
        access.require(Permission::ActivitiesRead)?;
        let activity = self.activity_in(access, project_id, id).await?;
        self.audit_content_read(access, "activity", id, "activity").await?;
        let latest = self.latest_edit(&activity).await?;
        let mut view = ActivityView::new(&activity, true, latest.as_ref());
        // What a cloud run cost, for those who may see the price table.
        if let Some(result) = activity.content_run.as_ref().and_then(result_of)
            && result.provenance.backend == "openai_compatible"
            && access.role.allows(Permission::SettingsView)
        {
            let usage = marketer_pipeline::run::usage(&result.steps);
            let (model, prompt, completion) =
                (&result.provenance.model, usage.prompt_tokens, usage.completion_tokens);
            view.cost = Some(self.cloud_cost(access.tenant_id, model, prompt, completion).await?);
        }
        Ok(view)
    }

    /// The newest edit of the activity's content, if any.
    async fn latest_edit(&self, activity: &Activity) -> Result<Option<ActivityVersion>> {
        let Some(content_run) = &activity.content_run else { return Ok(None) };
        Ok(self.store.activity_versions(activity.tenant_id, activity.id, content_run.id).await?.pop())
    }

    /// The activity, if it is the tenant's and in this project.
    pub(super) async fn activity_in(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<Activity> {
        let activity = self.store.activity(access.tenant_id, id).await.found("activity")?;
        if activity.project_id != project_id {
            return Err(Error::NotFound("activity"));
        }
        Ok(activity)
    }

    pub async fn activities_page(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        filter: ActivityFilter,
        page: PageRequest,
    ) -> Result<Page<ActivityView>> {
        access.require(Permission::ActivitiesRead)?;
        self.store.project(access.tenant_id, project_id).await.found("project")?;
        let page = self.store.activities(access.tenant_id, Some(project_id), &filter, page).await?;
        Ok(Page {
            items: page.items.iter().map(|a| ActivityView::new(a, false, None)).collect(),
            next: page.next,
        })
    }

    /// The tenant's newest activities, across its projects (without their
    /// content).
    pub async fn recent_activities(
        &self,
        access: &TenantAccess,
        status: Option<ActivityStatus>,
        limit: u32,
    ) -> Result<Vec<ActivityView>> {
        access.require(Permission::ActivitiesRead)?;
        let filter = ActivityFilter { status, ..ActivityFilter::default() };
        let page = self
            .store
            .activities(access.tenant_id, None, &filter, PageRequest { after: None, limit })
            .await?;
        Ok(page.items.iter().map(|a| ActivityView::new(a, false, None)).collect())
    }

    /// The activity's current run, for following its events.
    pub async fn activity_run(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<crate::store::Job> {
        access.require(Permission::ActivitiesRead)?;
        let run = self.activity_in(access, project_id, id).await?.run;
        self.audit_content_read(access, "activity", id, "events").await?;
        Ok(run)
    }

    pub async fn cancel_activity(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<ActivityView> {
        access.require(Permission::ActivitiesUpdate)?;
        let activity = self.activity_in(access, project_id, id).await?;
        if !activity.run.status.is_terminal() {
            let audit = access.audit(actions::ACTIVITY_CANCEL).resource("activity", id);
            match self.store.cancel_job(access.tenant_id, activity.run.id, Timestamp::now(), &audit).await? {
                crate::store::CancelOutcome::Cancelled(transition) => {
                    self.jobs.apply(std::slice::from_ref(&*transition), "cancelled by a user");
                }
                crate::store::CancelOutcome::AlreadyFinished(_) => {}
            }
        }
        self.activity(access, project_id, id).await
    }

    pub async fn regenerate_activity(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<ActivityView> {
        access.require(Permission::ActivitiesCreate)?;
        let activity = self.activity_in(access, project_id, id).await?;
        let project = self.store.project(access.tenant_id, project_id).await.found("project")?;
        self.check_quota(access).await?;
        // The model asked for originally, on the same policy as a new activity.
        let model = match &activity.run.spec {
            JobSpec::Activity { model, .. } if activity.run.route == Route::Edge => model.clone(),
            _ => canonical_model(project.default_model.as_ref().map_or(DEFAULT_MODEL, |m| m.as_str()))?,
        };
        let placement = self.place(access, &project, &model, true).await?;
        // A run that failed or was cancelled after completing some steps is
        // resumed from them, on the same model: its work is not redone.
        let resume = resumable(&activity.run).filter(|_| activity.run.model == placement.model);
        let run = self.run_job(access, &project, id, &activity.input, &placement, resume).await?;
        let audit =
            access.audit(actions::ACTIVITY_REGENERATE).resource("activity", id).details(serde_json::json!({
                "route": placement.detail,
                "run": activity.runs + 1,
                "resumed_from": resume.map(|_| activity.run.id),
            }));
        let updated = self.store.rerun_activity(access.tenant_id, id, &run, &audit).await?;
        self.wake_runner(placement.route);
        let latest = self.latest_edit(&updated).await?;
        Ok(ActivityView::new(&updated, true, latest.as_ref()))
    }

    pub async fn activity_runs(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<Vec<RunDetail>> {
        access.require(Permission::ActivitiesRead)?;
        self.activity_in(access, project_id, id).await?;
        self.audit_content_read(access, "activity", id, "runs").await?;
        let runs = self.store.activity_runs(access.tenant_id, id).await?;
        Ok(runs
            .iter()
            .map(|job| RunDetail {
                run: RunView::of(job),
                model: job.model.clone(),
                route: job.route,
                agent_id: job.agent_id,
                result: result_of(job).map(|r| serde_json::to_value(r).unwrap_or_default()),
            })
            .collect())
    }

    pub async fn edit_activity(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
        edit: EditContent,
    ) -> Result<VersionView> {
        access.require(Permission::ActivitiesUpdate)?;
        if edit.content.trim().is_empty() {
            return Err(Error::invalid("content", "must not be empty"));
        }
        if edit.content.len() > MAX_CONTENT_BYTES {
            return Err(Error::invalid("content", format!("must be at most {MAX_CONTENT_BYTES} bytes")));
        }
        let activity = self.activity_in(access, project_id, id).await?;
        // One form of line ending: a browser's textarea sends CRLF.
        let content = edit.content.replace("\r\n", "\n").replace('\r', "\n");
        let findings = content_findings(activity.kind, &content);
        let (author_id, author_name) = match &access.caller.principal {
            Principal::User { user, .. } => (Some(user.id), user.display_name.to_string()),
            Principal::ApiKey { key, .. } => (key.created_by, format!("API key {}", key.name)),
            Principal::Operator => (None, "operator".to_owned()),
        };
        let version = NewActivityVersion { id: new_id(), content, author_id, author_name, findings };
        let audit =
            access.audit(actions::ACTIVITY_EDIT).resource("activity", id).details(serde_json::json!({
                "findings": version.findings.as_ref().map(Vec::len),
            }));
        let saved = self.store.add_activity_version(access.tenant_id, id, &version, &audit).await?;
        Ok(VersionView::of_edit(saved))
    }

    /// The versions of one run's content: `run` (a job id of this
    /// activity), or the current content's run. Earlier runs' versions stay
    /// readable after a later run replaced them.
    pub async fn activity_versions(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
        run: Option<Uuid>,
    ) -> Result<Vec<VersionView>> {
        access.require(Permission::ActivitiesRead)?;
        let activity = self.activity_in(access, project_id, id).await?;
        self.audit_content_read(access, "activity", id, "versions").await?;
        let job = match run {
            None => match activity.content_run {
                Some(job) => job,
                None => return Ok(Vec::new()),
            },
            Some(job_id) => {
                let job = self.store.job(access.tenant_id, job_id).await?;
                match job {
                    Some(job) if job.activity_id == Some(id) => job,
                    _ => return Err(Error::invalid("run", "is not a run of this activity")),
                }
            }
        };
        let mut versions = Vec::new();
        if let Some(result) = result_of(&job) {
            versions.push(VersionView {
                number: 0,
                run_id: job.id,
                content: result.content.clone(),
                findings: result.compliance.as_ref().map(|c| c.findings.clone()),
                author: "pipeline".into(),
                author_id: None,
                created_at: job.finished_at.unwrap_or(job.created_at),
            });
        }
        for edit in self.store.activity_versions(access.tenant_id, id, job.id).await? {
            versions.push(VersionView::of_edit(edit));
        }
        Ok(versions)
    }

    pub async fn approve_activity(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
        approve: Approve,
    ) -> Result<ActivityView> {
        // One approval path: this is an approval at the current step of the
        // project's review (the whole of the default review). Approving
        // approved content again changes nothing.
        access.require(Permission::ActivitiesUpdate)?;
        let activity = self.activity_in(access, project_id, id).await?;
        if activity.approved_at.is_some() {
            return self.activity(access, project_id, id).await;
        }
        let decide = super::reviews::DecideIn {
            decision: crate::store::Decision::Approve,
            comment: String::new(),
            version: None,
            step: None,
            acknowledge_findings: approve.acknowledge_findings,
        };
        self.decide_review(access, project_id, id, decide).await?;
        self.activity(access, project_id, id).await
    }

    /// Refuses to approve content whose current version has Fair Housing
    /// findings unless the reviewer acknowledged them.
    pub(crate) async fn check_findings(&self, activity: &Activity, acknowledged: bool) -> Result<()> {
        let latest = self.latest_edit(activity).await?;
        let generated = activity.content_run.as_ref().and_then(result_of);
        let review = current_compliance(generated, latest.as_ref());
        let findings = review.as_ref().map_or(0, |c| c.findings.len());
        let version = latest.as_ref().map_or(0, |v| v.number);
        if findings > 0 && !acknowledged {
            return Err(Error::Conflict {
                code: "compliance_findings",
                message: format!(
                    "the Fair Housing review of version {version} has {findings} finding(s); revise the content, or approve with \"acknowledge_findings\": true"
                ),
            });
        }
        Ok(())
    }

    /// The current content for export: its title and Markdown.
    pub async fn activity_export(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<(String, String)> {
        let view = self.activity(access, project_id, id).await?;
        let content = view.content.ok_or_else(|| Error::Conflict {
            code: "activity_not_ready",
            message: format!("there is nothing to export yet; the activity is {}", view.status),
        })?;
        Ok((view.title, content))
    }

    pub async fn cloud_provider(&self, access: &TenantAccess) -> Result<CloudProviderView> {
        access.require(Permission::SettingsView)?;
        let provider = self.store.cloud_provider(access.tenant_id).await.found("cloud provider")?;
        Ok(CloudProviderView {
            base_url: provider.base_url,
            model: provider.model,
            api_key_hint: provider.api_key_hint,
            updated_at: provider.updated_at,
        })
    }

    pub async fn set_cloud_provider(
        &self,
        access: &TenantAccess,
        req: SetCloudProvider,
    ) -> Result<CloudProviderView> {
        access.require(Permission::SettingsManage)?;
        let tenant = self.store.tenant(access.tenant_id).await.found("tenant")?;
        if tenant.compliance_mode == ComplianceMode::Hipaa {
            return Err(Error::Conflict {
                code: "hipaa_tenant",
                message:
                    "HIPAA tenants run everything on their own agents; a cloud provider cannot be configured"
                        .into(),
            });
        }
        let base_url = req.base_url.trim().trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => {
                return Err(Error::invalid(
                    "base_url",
                    "must be an http or https URL, e.g. https://api.openai.com/v1",
                ));
            }
        }
        let model = req.model.trim();
        if model.is_empty() || model.len() > 200 || model.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::invalid("model", "must be 1 to 200 characters without spaces"));
        }
        let key = req.api_key.trim();
        if key.len() < 8 || key.len() > 1000 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid("api_key", "must be 8 to 1000 characters without spaces"));
        }
        let sealed = self.cloud.key().seal(access.tenant_id, key).map_err(Error::internal)?;
        let now = Timestamp::now();
        let created_at =
            self.store.cloud_provider(access.tenant_id).await?.map_or(now, |existing| existing.created_at);
        let provider = CloudProvider {
            tenant_id: access.tenant_id,
            base_url: base_url.clone(),
            model: model.to_owned(),
            api_key_ciphertext: sealed.ciphertext,
            api_key_nonce: sealed.nonce,
            api_key_hint: crypto::hint(key),
            created_at,
            updated_at: now,
        };
        let audit = access
            .audit(actions::CLOUD_PROVIDER_SET)
            .resource("cloud_provider", access.tenant_id)
            .details(serde_json::json!({ "base_url": base_url, "model": model, "api_key_hint": provider.api_key_hint }));
        self.store.set_cloud_provider(&provider, &audit).await?;
        self.cloud_provider(access).await
    }

    pub async fn delete_cloud_provider(&self, access: &TenantAccess) -> Result<()> {
        access.require(Permission::SettingsManage)?;
        let audit = access.audit(actions::CLOUD_PROVIDER_DELETE).resource("cloud_provider", access.tenant_id);
        match self.store.delete_cloud_provider(access.tenant_id, &audit).await {
            Err(StoreError::NotFound) => Err(Error::NotFound("cloud provider")),
            other => Ok(other?),
        }
    }

    pub async fn usage(
        &self,
        access: &TenantAccess,
        from: Option<time::Date>,
        to: Option<time::Date>,
    ) -> Result<UsageView> {
        access.require(Permission::SettingsView)?;
        let today = Timestamp::now().date();
        let to = to.unwrap_or(today);
        // Dates are range-checked where they are parsed; saturate anyway.
        let from = from.unwrap_or(to.checked_sub(time::Duration::days(29)).unwrap_or(to));
        if from > to {
            return Err(Error::invalid("from", "must not be after to"));
        }
        if (to - from).whole_days() > 366 {
            return Err(Error::invalid("from", "the range may span at most 366 days"));
        }
        let days = self.store.usage(access.tenant_id, &from.to_string(), &to.to_string()).await?;
        let mut totals = UsageTotals::default();
        for day in &days {
            totals.jobs += day.jobs;
            totals.activities += day.activities;
            totals.prompt_tokens += day.prompt_tokens;
            totals.completion_tokens += day.completion_tokens;
            totals.wall_time_ms += day.wall_time_ms;
        }
        let tenant = self.store.tenant(access.tenant_id).await.found("tenant")?;
        let midnight = Timestamp::now().next_midnight() - time::Duration::days(1);
        Ok(UsageView {
            from: from.to_string(),
            to: to.to_string(),
            days,
            totals,
            daily_activity_quota: daily_quota(tenant.plan),
            activities_today: self.store.activity_runs_since(access.tenant_id, midnight).await?,
        })
    }
}
