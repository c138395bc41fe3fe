//! Settings → Reviews: the organisation's review workflows (each step's
//! approvers and rule), which workflow each project uses, and the editor
//! that defines them (owners and admins). The rules are the service's
//! (`service::reviews`).

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
        general: errors.general(&["name", "steps"]),
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
    step1_name: Option<String>,
    step1_rule: Option<String>,
    step1_role: Option<String>,
    #[serde(default)]
    step1_members: Vec<Uuid>,
    step2_name: Option<String>,
    step2_rule: Option<String>,
    step2_role: Option<String>,
    #[serde(default)]
    step2_members: Vec<Uuid>,
    step3_name: Option<String>,
    step3_rule: Option<String>,
    step3_role: Option<String>,
    #[serde(default)]
    step3_members: Vec<Uuid>,
}

fn step(
    name: Option<String>,
    rule: Option<&str>,
    role: Option<String>,
    members: Vec<Uuid>,
) -> Option<StepIn> {
    let name = name.filter(|n| !n.trim().is_empty())?;
    let rule = if rule == Some("all") { StepRule::All } else { StepRule::Any };
    let role = if members.is_empty() { role.and_then(|r| r.parse::<Role>().ok()) } else { None };
    Some(StepIn { name, rule, role, members })
}

pub async fn create(
    State(state): State<ApiState>,
    submit: Submit<WorkflowForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let steps: Vec<StepIn> = [
        step(form.step1_name, form.step1_rule.as_deref(), form.step1_role, form.step1_members),
        step(form.step2_name, form.step2_rule.as_deref(), form.step2_role, form.step2_members),
        step(form.step3_name, form.step3_rule.as_deref(), form.step3_role, form.step3_members),
    ]
    .into_iter()
    .flatten()
    .collect();
    let input = WorkflowIn { name: form.name.unwrap_or_default(), steps };
    match state.app.create_review_workflow(&page.access, input).await {
        Ok(_) => Ok(see_other(&page.path("/settings/reviews"))),
        Err(e) => {
            let mut errors = FormErrors::from_error(e)?;
            // "steps[1].members" is shown with the steps.
            for field in ["members", "steps"] {
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
