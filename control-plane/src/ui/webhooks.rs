//! Settings → Webhooks: the organisation's endpoints (a new one's secret
//! shown once), each endpoint's page with its delivery log, each attempt's
//! answer, redelivery, a test event, secret rotation, and deleting it.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::flash;
use super::page::{FormErrors, Shell, UiError, render_form, request, see_other};
use super::session::{Path, Query, Submit, TenantPage};
use super::view::When;
use crate::api::ApiState;
use crate::domain::Permission;
use crate::service::webhooks::{CreateWebhook, UpdateWebhook};
use crate::store::{DeliveryState, PageRequest, WebhookEndpoint, WebhookEventKind};

struct EventChoice {
    name: &'static str,
    label: &'static str,
    checked: bool,
}

fn choices(selected: &[String]) -> Vec<EventChoice> {
    WebhookEventKind::subscribable()
        .map(|k| EventChoice {
            name: k.name(),
            label: k.label(),
            checked: selected.iter().any(|s| s == k.name()),
        })
        .collect()
}

struct EndpointRow {
    id: Uuid,
    url: String,
    description: String,
    events: String,
    enabled: bool,
    failed_recently: i64,
}

impl From<&WebhookEndpoint> for EndpointRow {
    fn from(w: &WebhookEndpoint) -> Self {
        Self {
            id: w.id,
            url: w.url.clone(),
            description: w.description.clone(),
            events: w.events.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "),
            enabled: w.enabled,
            failed_recently: w.failed_recently,
        }
    }
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    shell: Shell,
    endpoints: Vec<EndpointRow>,
    choices: Vec<EventChoice>,
    typed_url: String,
    typed_description: String,
    errors: FormErrors,
    allow_http: bool,
    base: String,
}

struct AttemptRow {
    attempt: i64,
    at: When,
    duration_ms: i64,
    status: String,
    error: String,
    response: String,
}

struct DeliveryRow {
    id: Uuid,
    event_id: Uuid,
    kind: &'static str,
    state: &'static str,
    /// `good`, `bad` or empty: the badge's colour.
    tone: &'static str,
    attempts: i64,
    created: When,
    next: Option<When>,
    last: String,
    tries: Vec<AttemptRow>,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct WebhookPage {
    shell: Shell,
    endpoint: EndpointRow,
    choices: Vec<EventChoice>,
    secret: Option<String>,
    deliveries: Vec<DeliveryRow>,
    more: Option<Uuid>,
    errors: FormErrors,
    base: String,
    list: String,
}

pub async fn list(State(state): State<ApiState>, page: TenantPage) -> Result<Response, UiError> {
    list_page(&state, page, FormErrors::default(), &CreateForm::default()).await
}

async fn list_page(
    state: &ApiState,
    page: TenantPage,
    errors: FormErrors,
    typed: &CreateForm,
) -> Result<Response, UiError> {
    page.access.require(Permission::SettingsManage)?;
    let endpoints = state.app.webhooks(&page.access).await?;
    let view = WebhooksPage {
        endpoints: endpoints.iter().map(EndpointRow::from).collect(),
        choices: choices(&typed.events),
        typed_url: typed.url.clone(),
        typed_description: typed.description.clone(),
        errors,
        allow_http: state.app.notifier.webhook_settings().allow_http,
        base: page.path("/settings/webhooks"),
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    events: Vec<String>,
}

pub async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    submit: Submit<CreateForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let body = serde_json::json!({ "url": form.url, "description": form.description, "events": form.events });
    let result = match request::<CreateWebhook>(&body) {
        Ok(req) => state.app.create_webhook(&page.access, req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(created) => {
            let path = page.path(&format!("/settings/webhooks/{}", created.webhook.id));
            let secret = flash::Flash::WebhookSecret { secret: created.secret };
            Ok(flash::redirect(&state, &page, &headers, &path, &path, secret))
        }
        Err(e) => list_page(&state, page, FormErrors::from_error(e)?, &form).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    after: Option<Uuid>,
}

pub async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((_, id)): Path<(Uuid, Uuid)>,
    Query(query): Query<ShowQuery>,
    page: TenantPage,
) -> Result<Response, UiError> {
    let flash = flash::read(&state, &headers, page.tenant_id(), page.browser.session_id);
    let secret = match &flash {
        Some(flash::Flash::WebhookSecret { secret }) => Some(secret.clone()),
        _ => None,
    };
    let path = page.path(&format!("/settings/webhooks/{id}"));
    let mut response = show_page(&state, page, id, query.after, secret, FormErrors::default()).await?;
    if flash.is_some() {
        flash::clear(&mut response, &path);
    }
    Ok(response)
}

async fn show_page(
    state: &ApiState,
    page: TenantPage,
    id: Uuid,
    after: Option<Uuid>,
    secret: Option<String>,
    errors: FormErrors,
) -> Result<Response, UiError> {
    let endpoint = state.app.webhook(&page.access, id).await?;
    let deliveries = state.app.webhook_deliveries(&page.access, id, PageRequest { after, limit: 25 }).await?;
    let mut rows = Vec::with_capacity(deliveries.items.len());
    for d in deliveries.items {
        let tries = state.app.webhook_delivery(&page.access, id, d.id).await?.attempts;
        rows.push(DeliveryRow {
            id: d.id,
            event_id: d.event_id,
            kind: d.kind.name(),
            state: d.state.into(),
            tone: match d.state {
                DeliveryState::Delivered => "good",
                DeliveryState::Failed => "bad",
                _ => "",
            },
            attempts: d.attempts,
            created: When::of(d.created_at),
            next: (d.state == DeliveryState::Pending).then(|| When::of(d.next_attempt_at)),
            last: match (d.last_status, &d.last_error) {
                (_, Some(e)) => e.clone(),
                (Some(s), None) => format!("answered {s}"),
                (None, None) => String::new(),
            },
            tries: tries
                .into_iter()
                .map(|a| AttemptRow {
                    attempt: a.attempt,
                    at: When::of(a.started_at),
                    duration_ms: a.duration_ms,
                    status: a.status.map(|s| s.to_string()).unwrap_or_else(|| "no answer".into()),
                    // "answered 503" repeats the status; a redirect's or a
                    // connection's reason does not.
                    error: match (a.status, a.error) {
                        (Some(_), Some(e)) if !e.contains(':') => String::new(),
                        (_, e) => e.unwrap_or_default(),
                    },
                    response: a.response.unwrap_or_default(),
                })
                .collect(),
        });
    }
    let selected: Vec<String> = endpoint.events.iter().map(|k| k.name().to_owned()).collect();
    let view = WebhookPage {
        endpoint: EndpointRow::from(&endpoint),
        choices: choices(&selected),
        secret,
        deliveries: rows,
        more: deliveries.next,
        errors,
        base: page.path(&format!("/settings/webhooks/{id}")),
        list: page.path("/settings/webhooks"),
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

#[derive(Debug, Default, Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    events: Vec<String>,
    enabled: Option<String>,
}

pub async fn update(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<UpdateForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let body = serde_json::json!({
        "url": form.url, "description": form.description, "events": form.events, "enabled": form.enabled.is_some(),
    });
    let result = match request::<UpdateWebhook>(&body) {
        Ok(req) => state.app.update_webhook(&page.access, id, req).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(see_other(&page.path(&format!("/settings/webhooks/{id}")))),
        Err(e) => show_page(&state, page, id, None, None, FormErrors::from_error(e)?).await,
    }
}

pub async fn test(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    match state.app.test_webhook(&page.access, id).await {
        Ok(()) => Ok(see_other(&page.path(&format!("/settings/webhooks/{id}#deliveries")))),
        Err(e) => show_page(&state, page, id, None, None, FormErrors::from_error(e)?).await,
    }
}

pub async fn rotate(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    let rotated = state.app.rotate_webhook_secret(&page.access, id).await?;
    let path = page.path(&format!("/settings/webhooks/{id}"));
    let secret = flash::Flash::WebhookSecret { secret: rotated.secret };
    Ok(flash::redirect(&state, &page, &headers, &path, &path, secret))
}

pub async fn delete(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.delete_webhook(&page.access, id).await?;
    Ok(see_other(&page.path("/settings/webhooks")))
}

pub async fn redeliver(
    State(state): State<ApiState>,
    Path((_, id, delivery_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    match state.app.redeliver_webhook(&page.access, id, delivery_id).await {
        Ok(()) => Ok(see_other(&page.path(&format!("/settings/webhooks/{id}#delivery-{delivery_id}")))),
        Err(e) => show_page(&state, page, id, None, None, FormErrors::from_error(e)?).await,
    }
}
