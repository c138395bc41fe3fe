//! Follow-up sequences in the web UI: the organisation's templates (each
//! step: wait, subject, body with merge fields), created, edited and
//! deleted by those who manage settings; the lead page starts and stops
//! them (`leads.rs`).

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use uuid::Uuid;

use super::page::{FormErrors, Shell, UiError, render_form, see_other};
use super::session::{Path, Submit, TenantPage};
use crate::api::ApiState;
use crate::domain::Permission;
use crate::error::Error;
use crate::notify::marketing::MERGE_FIELDS;
use crate::service::{SequenceIn, SequenceStepIn, SequenceView};

/// Step rows a form offers (blank rows are left out).
const ROWS: usize = 5;

struct StepRow {
    index: usize,
    wait: String,
    unit: String,
    subject: String,
    body: String,
    review: bool,
    /// What the personal paragraph should say; empty for none.
    paragraph: String,
}

struct Editor {
    /// `None` for the new sequence's form.
    id: Option<Uuid>,
    action: String,
    delete_action: String,
    name: String,
    auto_start: bool,
    steps: Vec<StepRow>,
    errors: FormErrors,
}

impl Editor {
    /// Tells one form's fields from another's.
    fn prefix(&self) -> String {
        self.id.map_or_else(|| "new".to_owned(), |id| id.to_string())
    }

    /// The problems of step row `index`, in words.
    fn step_errors(&self, index: &usize) -> String {
        ["wait", "unit", "subject", "body", "paragraph"]
            .iter()
            .map(|f| self.errors.get(&format!("steps[{index}].{f}")))
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Template)]
#[template(path = "sequences.html")]
struct SequencesPage {
    shell: Shell,
    can_manage: bool,
    editors: Vec<Editor>,
    fields: String,
    leads_href: String,
}

fn rows(steps: &[crate::service::SequenceStepView]) -> Vec<StepRow> {
    (0..ROWS)
        .map(|index| match steps.get(index) {
            Some(s) => StepRow {
                index,
                wait: s.wait.to_string(),
                unit: s.unit.clone(),
                subject: s.subject.clone(),
                body: s.body.clone(),
                review: s.review,
                paragraph: s.paragraph.clone().unwrap_or_default(),
            },
            None => StepRow {
                index,
                wait: String::new(),
                unit: "days".into(),
                subject: String::new(),
                body: String::new(),
                review: false,
                paragraph: String::new(),
            },
        })
        .collect()
}

fn editor(page: &TenantPage, s: &SequenceView) -> Editor {
    Editor {
        id: Some(s.id),
        action: page.path(&format!("/leads/sequences/{}", s.id)),
        delete_action: page.path(&format!("/leads/sequences/{}/delete", s.id)),
        name: s.name.clone(),
        auto_start: s.auto_start,
        steps: rows(&s.steps),
        errors: FormErrors::default(),
    }
}

fn blank(page: &TenantPage) -> Editor {
    Editor {
        id: None,
        action: page.path("/leads/sequences"),
        delete_action: String::new(),
        name: String::new(),
        auto_start: false,
        steps: rows(&[]),
        errors: FormErrors::default(),
    }
}

/// The form as a request, and its rows to show again.
fn request(form: &HashMap<String, String>) -> (SequenceIn, Vec<StepRow>, FormErrors) {
    let get = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let mut errors = FormErrors::default();
    let mut steps = Vec::new();
    let mut shown = Vec::new();
    for index in 0..ROWS {
        let row = StepRow {
            index,
            wait: get(&format!("wait_{index}")),
            unit: get(&format!("unit_{index}")),
            subject: get(&format!("subject_{index}")),
            body: form.get(&format!("body_{index}")).cloned().unwrap_or_default(),
            review: form.contains_key(&format!("review_{index}")),
            paragraph: get(&format!("paragraph_{index}")),
        };
        if !(row.subject.is_empty() && row.body.trim().is_empty()) {
            let wait = if row.wait.is_empty() { Some(0) } else { row.wait.parse::<i64>().ok() };
            match wait {
                Some(wait) => steps.push(SequenceStepIn {
                    wait,
                    unit: row.unit.clone(),
                    subject: row.subject.clone(),
                    body: row.body.clone(),
                    review: row.review,
                    paragraph: Some(row.paragraph.clone()).filter(|p| !p.is_empty()),
                }),
                None => errors.add(&format!("steps[{}].wait", steps.len()), "must be a whole number"),
            }
        }
        shown.push(row);
    }
    let req = SequenceIn { name: get("name"), auto_start: form.get("auto_start").is_some(), steps };
    (req, shown, errors)
}

async fn sequences_page(
    state: &ApiState,
    page: TenantPage,
    edited: Option<Editor>,
) -> Result<Response, UiError> {
    let sequences = state.app.sequences(&page.access).await?;
    let mut editors: Vec<Editor> = sequences.iter().map(|s| editor(&page, s)).collect();
    let mut new_form = blank(&page);
    let mut errors = FormErrors::default();
    if let Some(edited) = edited {
        errors = edited.errors.clone();
        match edited.id {
            Some(id) => {
                if let Some(slot) = editors.iter_mut().find(|e| e.id == Some(id)) {
                    *slot = edited;
                }
            }
            None => new_form = edited,
        }
    }
    editors.push(new_form);
    let view = SequencesPage {
        can_manage: page.can(Permission::SettingsManage),
        editors,
        fields: MERGE_FIELDS.iter().map(|f| format!("{{{{{f}}}}}")).collect::<Vec<_>>().join(", "),
        leads_href: page.path("/leads"),
        shell: page.shell,
    };
    Ok(render_form(&view, &errors))
}

pub async fn show(State(state): State<ApiState>, page: TenantPage) -> Result<Response, UiError> {
    sequences_page(&state, page, None).await
}

async fn save(
    state: &ApiState,
    page: TenantPage,
    id: Option<Uuid>,
    form: &HashMap<String, String>,
) -> Result<Response, UiError> {
    let (req, shown, mut errors) = request(form);
    if errors.is_empty() {
        let saved = match id {
            Some(id) => state.app.update_sequence(&page.access, id, req.clone()).await,
            None => state.app.create_sequence(&page.access, req.clone()).await,
        };
        match saved {
            Ok(_) => return Ok(see_other(&page.path("/leads/sequences"))),
            Err(e @ (Error::Invalid { .. } | Error::Conflict { .. })) => {
                errors = match e {
                    Error::Conflict { message, .. } => {
                        let mut errors = FormErrors::default();
                        errors.add("name", message);
                        errors
                    }
                    e => FormErrors::from_error(e)?,
                };
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut edited = match id {
        Some(id) => Editor { id: Some(id), ..blank(&page) },
        None => blank(&page),
    };
    if let Some(id) = id {
        edited.action = page.path(&format!("/leads/sequences/{id}"));
        edited.delete_action = page.path(&format!("/leads/sequences/{id}/delete"));
    }
    edited.name = req.name;
    edited.auto_start = req.auto_start;
    edited.steps = shown;
    edited.errors = errors;
    sequences_page(state, page, Some(edited)).await
}

pub async fn create(
    State(state): State<ApiState>,
    submit: Submit<HashMap<String, String>>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    save(&state, page, None, &form).await
}

pub async fn update(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<HashMap<String, String>>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    save(&state, page, Some(id), &form).await
}

pub async fn delete(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<super::flyers::NoFields>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.delete_sequence(&page.access, id).await?;
    Ok(see_other(&page.path("/leads/sequences")))
}
