//! The dashboard: recent activities, what waits for review, and this
//! month's usage against the plan.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use std::collections::HashMap;
use uuid::Uuid;

use super::page::{Shell, UiError, every, render};
use super::session::TenantPage;
use super::view::{When, badge, thousands};
use crate::api::ApiState;
use crate::domain::Permission;
use crate::service::ActivityView;
use crate::store::ActivityStatus;

/// An activity in a list.
#[derive(Debug, Clone)]
pub struct ActivityRow {
    pub href: String,
    pub title: String,
    pub kind: String,
    pub project: String,
    pub status: String,
    pub badge: &'static str,
    pub updated: When,
}

impl ActivityRow {
    pub fn of(page: &TenantPage, activity: &ActivityView, projects: &HashMap<Uuid, String>) -> Self {
        let status = activity.status.to_string();
        Self {
            href: page.path(&format!("/projects/{}/activities/{}", activity.project_id, activity.id)),
            title: activity.title.clone(),
            kind: activity.kind.to_string().replace('_', " "),
            project: projects.get(&activity.project_id).cloned().unwrap_or_default(),
            badge: badge(&status),
            status,
            updated: When::of(activity.updated_at),
        }
    }
}

/// Project names by id, for lists that span projects.
pub async fn project_names(state: &ApiState, page: &TenantPage) -> Result<HashMap<Uuid, String>, UiError> {
    let projects = every(|p| state.app.projects(&page.access, p)).await?;
    Ok(projects.into_iter().map(|p| (p.id, p.name.to_string())).collect())
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    shell: Shell,
    recent: Vec<ActivityRow>,
    review: Vec<ActivityRow>,
    /// What waits for this person's own decision: title, link, where it stands.
    mine: Vec<(String, String, String)>,
    usage: Option<Usage>,
    projects_href: String,
    has_projects: bool,
}

struct Usage {
    from: String,
    activities: String,
    tokens: String,
    today: i64,
    quota: String,
    percent: i64,
}

pub async fn dashboard(State(state): State<ApiState>, page: TenantPage) -> Result<Response, UiError> {
    let projects = project_names(&state, &page).await?;
    let recent = state.app.recent_activities(&page.access, None, 10).await?;
    let review = state.app.recent_activities(&page.access, Some(ActivityStatus::Review), 10).await?;
    let usage = if page.can(Permission::SettingsView) {
        let today = crate::domain::Timestamp::now().date();
        let first = today.replace_day(1).unwrap_or(today);
        let view = state.app.usage(&page.access, Some(first), Some(today)).await?;
        let tokens = u64::try_from(view.totals.prompt_tokens + view.totals.completion_tokens).unwrap_or(0);
        Some(Usage {
            from: view.from,
            activities: thousands(u64::try_from(view.totals.activities).unwrap_or(0)),
            tokens: thousands(tokens),
            today: view.activities_today,
            quota: view.daily_activity_quota.map_or_else(|| "unlimited".to_owned(), |q| q.to_string()),
            percent: view
                .daily_activity_quota
                .map_or(0, |q| (view.activities_today * 100 / q.max(1)).min(100)),
        })
    } else {
        None
    };
    let mine = state
        .app
        .waiting_for_my_review(&page.access)
        .await?
        .into_iter()
        .map(|w| (w.title, format!("{}#review", w.link), w.summary))
        .collect();
    let dashboard = Dashboard {
        mine,
        recent: recent.iter().map(|a| ActivityRow::of(&page, a, &projects)).collect(),
        review: review.iter().map(|a| ActivityRow::of(&page, a, &projects)).collect(),
        usage,
        projects_href: page.path("/projects"),
        has_projects: !projects.is_empty(),
        shell: page.shell,
    };
    Ok(render(&dashboard))
}
