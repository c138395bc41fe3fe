//! Projects: the list, creating and editing one (brand voice, where its AI
//! work may run, default model), its page (activities, campaigns).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::home::ActivityRow;
use super::page::{After, FormErrors, Pager, Shell, UiError, every, render, render_form, request, see_other};
use super::session::{Path, Query, Submit, TenantPage};
use super::view::When;
use crate::api::ApiState;
use crate::domain::{ComplianceMode, LlmPolicy, Permission, Project};
use crate::service::{CreateCampaign, CreateProject, UpdateProject};
use crate::store::ActivityFilter;

/// Rows a list page shows.
const PAGE_SIZE: u32 = 50;

struct ProjectRow {
    href: String,
    name: String,
    policy: &'static str,
    model: String,
    created: When,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    shell: Shell,
    projects: Vec<ProjectRow>,
    new_href: Option<String>,
    pager: Pager,
}

pub async fn list(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(after): Query<After>,
) -> Result<Response, UiError> {
    let projects = state.app.projects(&page.access, after.page(PAGE_SIZE)?).await?;
    let pager = Pager::new(&page.path("/projects"), &after, projects.next);
    let rows = projects
        .items
        .iter()
        .map(|p| ProjectRow {
            href: page.path(&format!("/projects/{}", p.id)),
            name: p.name.to_string(),
            policy: policy_label(p.llm_policy),
            model: p
                .default_model
                .as_ref()
                .map_or_else(|| "llama3.2 (default)".to_owned(), |m| m.as_str().to_owned()),
            created: When::of(p.created_at),
        })
        .collect();
    let new_href = page.can(Permission::ProjectsCreate).then(|| page.path("/projects/new"));
    Ok(render(&ProjectsPage { projects: rows, new_href, pager, shell: page.shell }))
}

fn policy_label(policy: LlmPolicy) -> &'static str {
    match policy {
        LlmPolicy::EdgeOnly => "Edge only",
        LlmPolicy::CloudAllowed => "Cloud allowed",
    }
}

/// The fields of the project form, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct ProjectForm {
    name: Option<String>,
    description: Option<String>,
    brand_voice: Option<String>,
    llm_policy: Option<String>,
    default_model: Option<String>,
}

#[derive(Template)]
#[template(path = "project_form.html")]
struct ProjectFormPage {
    shell: Shell,
    heading: &'static str,
    action: String,
    cancel: String,
    form: ProjectForm,
    errors: FormErrors,
    hipaa: bool,
}

impl ProjectFormPage {
    fn value(&self, field: &str) -> &str {
        let f = &self.form;
        match field {
            "name" => f.name.as_deref(),
            "description" => f.description.as_deref(),
            "brand_voice" => f.brand_voice.as_deref(),
            "default_model" => f.default_model.as_deref(),
            _ => None,
        }
        .unwrap_or("")
    }

    fn policy_is(&self, policy: &str) -> bool {
        self.form.llm_policy.as_deref().unwrap_or("edge_only") == policy
    }
}

async fn is_hipaa(state: &ApiState, page: &TenantPage) -> Result<bool, UiError> {
    let tenant = state.app.tenant(&page.access).await?;
    Ok(tenant.compliance_mode == ComplianceMode::Hipaa)
}

pub async fn new_form(State(state): State<ApiState>, page: TenantPage) -> Result<Response, UiError> {
    page.access.require(Permission::ProjectsCreate)?;
    let hipaa = is_hipaa(&state, &page).await?;
    Ok(render(&ProjectFormPage {
        heading: "New project",
        action: page.path("/projects/new"),
        cancel: page.path("/projects"),
        form: ProjectForm::default(),
        errors: FormErrors::default(),
        hipaa,
        shell: page.shell,
    }))
}

fn project_body(form: &ProjectForm) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    for (key, value) in [
        ("name", &form.name),
        ("description", &form.description),
        ("brand_voice", &form.brand_voice),
        ("llm_policy", &form.llm_policy),
        ("default_model", &form.default_model),
    ] {
        if let Some(value) = value {
            body.insert(key.into(), json!(value));
        }
    }
    serde_json::Value::Object(body)
}

pub async fn create(State(state): State<ApiState>, submit: Submit<ProjectForm>) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let mut body = project_body(&form);
    if form.name.is_none() {
        body["name"] = json!("");
    }
    let result = match request::<CreateProject>(&body) {
        Ok(req) => state.app.create_project(&page.access, req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(project) => Ok(see_other(&page.path(&format!("/projects/{}", project.id)))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            let hipaa = is_hipaa(&state, &page).await?;
            let view = ProjectFormPage {
                heading: "New project",
                action: page.path("/projects/new"),
                cancel: page.path("/projects"),
                form,
                errors,
                hipaa,
                shell: page.shell,
            };
            Ok(render_form(&view, &view.errors))
        }
    }
}

pub async fn edit_form(
    State(state): State<ApiState>,
    page: TenantPage,
    Path((_, project_id)): Path<(Uuid, Uuid)>,
) -> Result<Response, UiError> {
    let project = state.app.project(&page.access, project_id).await?;
    page.access.require(Permission::ProjectsUpdate)?;
    let hipaa = is_hipaa(&state, &page).await?;
    let form = ProjectForm {
        name: Some(project.name.to_string()),
        description: Some(project.description.to_string()),
        brand_voice: Some(project.brand_voice.to_string()),
        llm_policy: Some(project.llm_policy.to_string()),
        default_model: project.default_model.as_ref().map(|m| m.as_str().to_owned()),
    };
    Ok(render(&ProjectFormPage {
        heading: "Edit project",
        action: page.path(&format!("/projects/{project_id}/edit")),
        cancel: page.path(&format!("/projects/{project_id}")),
        form,
        errors: FormErrors::default(),
        hipaa,
        shell: page.shell,
    }))
}

pub async fn update(
    State(state): State<ApiState>,
    Path((_, project_id)): Path<(Uuid, Uuid)>,
    submit: Submit<ProjectForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let mut body = project_body(&form);
    // Emptied fields are cleared, not left as they were.
    for key in ["description", "brand_voice"] {
        if body.get(key).is_none() {
            body[key] = json!("");
        }
    }
    if body.get("default_model").is_none() {
        body["default_model"] = serde_json::Value::Null;
    }
    if body.get("name").is_none() {
        body["name"] = json!("");
    }
    let result = match request::<UpdateProject>(&body) {
        Ok(req) => state.app.update_project(&page.access, project_id, req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(see_other(&page.path(&format!("/projects/{project_id}")))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            let hipaa = is_hipaa(&state, &page).await?;
            let view = ProjectFormPage {
                heading: "Edit project",
                action: page.path(&format!("/projects/{project_id}/edit")),
                cancel: page.path(&format!("/projects/{project_id}")),
                form,
                errors,
                hipaa,
                shell: page.shell,
            };
            Ok(render_form(&view, &view.errors))
        }
    }
}

struct CampaignRow {
    name: String,
    dates: String,
    delete_action: String,
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    shell: Shell,
    pager: Pager,
    project: Project,
    policy: &'static str,
    brand_voice: String,
    base: String,
    activities: Vec<ActivityRow>,
    campaigns: Vec<CampaignRow>,
    can_create: bool,
    can_edit: bool,
    campaign_errors: FormErrors,
}

pub async fn show(
    State(state): State<ApiState>,
    page: TenantPage,
    Path((_, project_id)): Path<(Uuid, Uuid)>,
    Query(after): Query<After>,
) -> Result<Response, UiError> {
    project_page(&state, page, project_id, &after, FormErrors::default()).await
}

async fn project_page(
    state: &ApiState,
    page: TenantPage,
    project_id: Uuid,
    after: &After,
    campaign_errors: FormErrors,
) -> Result<Response, UiError> {
    let project = state.app.project(&page.access, project_id).await?;
    let activities = state
        .app
        .activities_page(&page.access, project_id, ActivityFilter::default(), after.page(PAGE_SIZE)?)
        .await?;
    let names = std::collections::HashMap::from([(project.id, project.name.to_string())]);
    let campaigns = every(|p| state.app.campaigns(&page.access, project_id, p)).await?;
    let base = page.path(&format!("/projects/{project_id}"));
    let pager = Pager::new(&base, after, activities.next);
    let can_edit = page.can(Permission::ProjectsUpdate);
    let view = ProjectPage {
        pager,
        policy: policy_label(project.llm_policy),
        brand_voice: project.brand_voice.to_string(),
        activities: activities.items.iter().map(|a| ActivityRow::of(&page, a, &names)).collect(),
        campaigns: campaigns
            .iter()
            .map(|c| CampaignRow {
                name: c.name.to_string(),
                dates: match (c.start_date, c.end_date) {
                    (Some(s), Some(e)) => format!("{s} to {e}"),
                    (Some(s), None) => format!("from {s}"),
                    (None, Some(e)) => format!("until {e}"),
                    (None, None) => String::new(),
                },
                delete_action: format!("{base}/campaigns/{}/delete", c.id),
            })
            .collect(),
        can_create: page.can(Permission::ActivitiesCreate),
        can_edit,
        campaign_errors,
        base,
        project,
        shell: page.shell,
    };
    Ok(render(&view))
}

#[derive(Debug, Deserialize)]
pub struct CampaignForm {
    name: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
}

pub async fn create_campaign(
    State(state): State<ApiState>,
    Path((_, project_id)): Path<(Uuid, Uuid)>,
    submit: Submit<CampaignForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let body = json!({ "name": form.name.unwrap_or_default(), "start_date": form.start_date, "end_date": form.end_date });
    let result = match request::<CreateCampaign>(&body) {
        Ok(req) => state.app.create_campaign(&page.access, project_id, req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(see_other(&page.path(&format!("/projects/{project_id}#campaigns")))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            project_page(&state, page, project_id, &After::default(), errors).await
        }
    }
}

pub async fn delete_campaign(
    State(state): State<ApiState>,
    Path((_, project_id, campaign_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.delete_campaign(&page.access, project_id, campaign_id).await?;
    Ok(see_other(&page.path(&format!("/projects/{project_id}#campaigns"))))
}
