//! Settings → Reviews: the organisation's review workflows (each step's
//! approvers and rule), which workflow each project uses, and the editor
//! that defines them (owners and admins); and the external reviewer's page
//! that a review link opens (`/review/{token}`: the content, its review,
//! approve / request changes / comment, nothing else). The rules are the
//! service's (`service::reviews`).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::home::project_names;
use super::page::{FormErrors, Shell, UiError, render_form, see_other};
use super::session::{Path, Submit, TenantPage};
use crate::api::ApiState;
use crate::domain::{Permission, Role};
use crate::service::{ProjectWorkflowIn, StepIn, WorkflowIn, WorkflowView};
use crate::store::{PageRequest, StepRule};

/// How many steps the editor offers.
const EDITOR_STEPS: usize = 3;

#[derive(Template)]
#[template(path = "reviews.html")]
struct ReviewsPage {
    shell: Shell,
    base: String,
    workflows: Vec<WorkflowView>,
    /// Members to name as approvers: id and name.
    members: Vec<(Uuid, String)>,
    /// Each project: id, name, the workflow it uses (id, or "" for the default).
    projects: Vec<(Uuid, String, String)>,
    /// The workflows a project can choose: id and name.
    choices: Vec<(String, String)>,
    can_manage: bool,
    steps: Vec<usize>,
    general: Vec<String>,
    errors: FormErrors,
}

async fn reviews_page(state: &ApiState, page: TenantPage, errors: FormErrors) -> Result<Response, UiError> {
    page.access.require(Permission::ProjectsRead)?;
    let workflows = state.app.review_workflows(&page.access).await?;
    let members = state
        .app
        .members(&page.access, PageRequest { after: None, limit: 200 })
        .await?
        .items
        .into_iter()
        .filter(|m| !m.disabled)
        .map(|m| (m.user_id, format!("{} ({})", m.display_name, m.email)))
        .collect();
    let mut projects: Vec<(Uuid, String, String)> = project_names(state, &page)
        .await?
        .into_iter()
        .map(|(id, name)| {
            let uses = workflows.iter().find(|w| w.projects.contains(&id)).map(|w| w.id.to_string());
            (id, name, uses.unwrap_or_default())
        })
        .collect();
    projects.sort_by_key(|p| p.1.to_lowercase());
    let view = ReviewsPage {
        choices: workflows.iter().map(|w| (w.id.to_string(), w.name.clone())).collect(),
        general: errors.general(&["name", "steps", "expire_days"]),
        base: page.path("/settings/reviews"),
        workflows,
        members,
        projects,
        can_manage: page.can(Permission::SettingsManage),
        steps: (1..=EDITOR_STEPS).collect(),
        errors,
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

pub async fn show(State(state): State<ApiState>, page: TenantPage) -> Result<Response, UiError> {
    reviews_page(&state, page, FormErrors::default()).await
}

/// The editor's fields: a name, and per step `stepN_name`, `stepN_rule`,
/// `stepN_role` and `stepN_members[]`; a step without a name is left out.
#[derive(Debug, Deserialize)]
pub struct WorkflowForm {
    name: Option<String>,
    /// Days, as typed.
    expire_days: Option<String>,
    step1_name: Option<String>,
    step1_rule: Option<String>,
    step1_role: Option<String>,
    #[serde(default)]
    step1_members: Vec<Uuid>,
    step1_externals: Option<String>,
    step1_findings: Option<String>,
    step2_name: Option<String>,
    step2_rule: Option<String>,
    step2_role: Option<String>,
    #[serde(default)]
    step2_members: Vec<Uuid>,
    step2_externals: Option<String>,
    step2_findings: Option<String>,
    step3_name: Option<String>,
    step3_rule: Option<String>,
    step3_role: Option<String>,
    #[serde(default)]
    step3_members: Vec<Uuid>,
    step3_externals: Option<String>,
    step3_findings: Option<String>,
}

/// One step of the editor: its name (a step without one is left out), rule,
/// role (`none`: only the named or external reviewers), named members,
/// external addresses (separated by commas, spaces or lines) and whether it
/// applies only to content with Fair Housing findings.
fn step(
    name: Option<String>,
    rule: Option<&str>,
    role: Option<String>,
    members: Vec<Uuid>,
    externals: Option<&str>,
    findings: Option<&str>,
) -> Option<StepIn> {
    let name = name.filter(|n| !n.trim().is_empty())?;
    let rule = if rule == Some("all") { StepRule::All } else { StepRule::Any };
    let externals: Vec<String> = externals
        .unwrap_or_default()
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    let role = if members.is_empty() { role.and_then(|r| r.parse::<Role>().ok()) } else { None };
    Some(StepIn { name, rule, role, members, externals, only_with_findings: findings.is_some() })
}

pub async fn create(
    State(state): State<ApiState>,
    submit: Submit<WorkflowForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let steps: Vec<StepIn> = [
        step(
            form.step1_name,
            form.step1_rule.as_deref(),
            form.step1_role,
            form.step1_members,
            form.step1_externals.as_deref(),
            form.step1_findings.as_deref(),
        ),
        step(
            form.step2_name,
            form.step2_rule.as_deref(),
            form.step2_role,
            form.step2_members,
            form.step2_externals.as_deref(),
            form.step2_findings.as_deref(),
        ),
        step(
            form.step3_name,
            form.step3_rule.as_deref(),
            form.step3_role,
            form.step3_members,
            form.step3_externals.as_deref(),
            form.step3_findings.as_deref(),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let expire_days =
        match FormErrors::whole_number("expire_days", form.expire_days.as_deref(), "1 to 365 days") {
            Ok(days) => days,
            Err(errors) => return reviews_page(&state, page, errors).await,
        };
    let input = WorkflowIn { name: form.name.unwrap_or_default(), steps, expire_days };
    match state.app.create_review_workflow(&page.access, input).await {
        Ok(_) => Ok(see_other(&page.path("/settings/reviews"))),
        Err(e) => {
            let mut errors = FormErrors::from_error(e)?;
            // "steps[1].members" is shown with the steps.
            for field in ["members", "externals", "steps"] {
                if !errors.get(field).is_empty() {
                    errors.add("steps", errors.get(field).to_owned());
                }
            }
            reviews_page(&state, page, errors).await
        }
    }
}

pub async fn delete(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.delete_review_workflow(&page.access, id).await?;
    Ok(see_other(&page.path("/settings/reviews")))
}

#[derive(Debug, Deserialize)]
pub struct ProjectForm {
    project_id: Uuid,
    workflow_id: Option<Uuid>,
}

pub async fn set_project(
    State(state): State<ApiState>,
    submit: Submit<ProjectForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let input = ProjectWorkflowIn { workflow_id: form.workflow_id };
    match state.app.set_project_review_workflow(&page.access, form.project_id, input).await {
        Ok(_) => Ok(see_other(&format!("{}#projects", page.path("/settings/reviews")))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            reviews_page(&state, page, errors).await
        }
    }
}

// ----- The external reviewer's page -------------------------------------------

#[derive(Template)]
#[template(path = "external_review.html")]
struct ExternalReviewPage {
    css: &'static str,
    js: &'static str,
    csrf: String,
    token: String,
    review: Option<crate::service::ExternalReview>,
    content_html: String,
    error: String,
    message: String,
}

/// Renders the link's page with this browser's sign-in id (in its cookie)
/// and the CSRF token made from it; opening it changes nothing.
async fn external_page(
    state: &ApiState,
    headers: &axum::http::HeaderMap,
    meta: &crate::service::RequestMeta,
    token: String,
    message: String,
    error: String,
) -> Response {
    use axum::http::{HeaderValue, header};
    let id = super::session::login_id(headers).unwrap_or_else(|| Uuid::from_bytes(rand::random()));
    let (review, content_html, error) = match state.app.external_review(&token, meta).await {
        Ok(review) => {
            let html = match state.app.renderer.html(review.content.as_deref().unwrap_or_default()).await {
                Ok(html) => html.to_string(),
                Err(e) => {
                    tracing::error!(error = %e, "could not render content for a review link");
                    String::new()
                }
            };
            (Some(review), html, error)
        }
        Err(e) => (None, String::new(), super::notifications::words(e)),
    };
    let page = ExternalReviewPage {
        css: super::assets::css_url(),
        js: super::assets::js_url(),
        csrf: state.app.csrf_token(id),
        token,
        review,
        content_html,
        error,
        message,
    };
    let mut response = super::page::render(&page);
    let cookie = super::session::login_cookie(
        id,
        super::session::is_secure(headers, state.config.trust_proxy_headers),
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

pub async fn external_show(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    crate::api::extract::Meta(meta): crate::api::extract::Meta,
    Path(token): Path<String>,
) -> Response {
    external_page(&state, &headers, &meta, token, String::new(), String::new()).await
}

pub async fn external_decide(
    State(state): State<ApiState>,
    Path(token): Path<String>,
    submit: super::session::PublicSubmit,
) -> Response {
    let input = decision_form(
        submit.field("decision"),
        submit.field("comment").map(str::to_owned),
        submit.field("version"),
        submit.field("step"),
        submit.field("acknowledge_findings").is_some(),
    );
    let decision = input.decision;
    let (message, error) = match state.app.external_decide(&token, &submit.meta, input).await {
        Ok(_) => (
            match decision {
                crate::store::Decision::Approve => "Thank you: your approval is recorded.",
                crate::store::Decision::Reject => "Thank you: your rejection and its reason are recorded.",
                _ => "Thank you: your request for changes is recorded; the author hears of it.",
            }
            .to_owned(),
            String::new(),
        ),
        Err(e) => (String::new(), super::notifications::words(e)),
    };
    external_page(&state, &submit.headers, &submit.meta, token, message, error).await
}

pub async fn external_comment(
    State(state): State<ApiState>,
    Path(token): Path<String>,
    submit: super::session::PublicSubmit,
) -> Response {
    let body = submit.field("body").unwrap_or_default().to_owned();
    let (message, error) = match state.app.external_comment(&token, &submit.meta, &body).await {
        Ok(()) => ("Thank you: your comment is with the team.".to_owned(), String::new()),
        Err(e) => (String::new(), super::notifications::words(e)),
    };
    external_page(&state, &submit.headers, &submit.meta, token, message, error).await
}

/// A review decision as a form sends it: the decision's name (Approve when
/// missing or unknown), the comment, and the version and step the page
/// showed (`None` if it says nothing readable: the service then takes the
/// current ones, and the decision is still checked under the item's lock).
pub(super) fn decision_form(
    decision: Option<&str>,
    comment: Option<String>,
    version: Option<&str>,
    step: Option<&str>,
    acknowledge_findings: bool,
) -> crate::service::DecideIn {
    let number = |value: Option<&str>| value.and_then(|v| v.trim().parse().ok());
    crate::service::DecideIn {
        decision: decision.and_then(|d| d.parse().ok()).unwrap_or(crate::store::Decision::Approve),
        comment: comment.unwrap_or_default(),
        version: number(version),
        step: number(step),
        acknowledge_findings,
    }
}
