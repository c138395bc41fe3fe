//! Settings: API keys (a new key is shown once), the tenant's
//! OpenAI-compatible cloud provider (its key is write-only), the model
//! prices cloud runs are costed with, the last 30 days' usage as charts,
//! and (owners) the sign-in rules and the data retention policy.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::flash;
use super::page::{FormErrors, Shell, UiError, every, render_form, request, see_other};
use super::session::{Path, Submit, TenantPage};
use super::view::When;
use crate::api::ApiState;
use crate::charts::{self, Series};
use crate::domain::{ComplianceMode, Permission, Role};
use crate::error::Error;
use crate::service::{
    CloudProviderView, CreateApiKey, ModelPriceView, SetCloudProvider, SetModelPrice, UsageView,
};
use crate::store::ExportState;

struct KeyRow {
    id: Uuid,
    name: String,
    role: &'static str,
    prefix: String,
    created: When,
    expires: Option<When>,
    last_used: Option<When>,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    shell: Shell,
    can_manage: bool,
    keys: Vec<KeyRow>,
    roles: Vec<&'static str>,
    new_key: Option<String>,
    key_errors: FormErrors,
    provider: Option<CloudProviderView>,
    provider_updated: Option<When>,
    provider_errors: FormErrors,
    prices: Vec<ModelPriceView>,
    price_errors: FormErrors,
    price_typed: [String; 3],
    usage: UsageView,
    /// Tokens per day and activities per day, as SVG.
    usage_tokens: String,
    usage_activities: String,
    hipaa: bool,
    base: String,
    email_enabled: bool,
    /// The organisation's outgoing e-mail (managers only).
    mail: Option<MailView>,
    /// The organisation's sign-in rules (those who manage it only).
    sign_in: Option<SignInView>,
}

struct SignInView {
    /// The retention policy's days as typed (empty: for ever).
    retention: [String; 5],
    retention_error: String,
    /// A data-subject request's outcome or error.
    subject_notice: String,
    subject_error: String,
    require_two_factor: bool,
    require_sso: bool,
    /// The organisation has an enabled single sign-on connection.
    sso_enabled: bool,
    /// Whether the person looking uses two-factor sign-in themselves.
    mine_on: bool,
    error: String,
    /// The organisation's short name, typed to confirm its deletion.
    slug: String,
    erase_error: String,
    exports: Vec<super::exports::ExportRow>,
    /// An export is being prepared: the section follows it.
    exports_busy: bool,
}

struct MailView {
    drafts: i64,
    pending: i64,
    sent: i64,
    failed: i64,
    unknown: i64,
    problems: Vec<MailProblemRow>,
}

struct MailProblemRow {
    id: Uuid,
    to: String,
    subject: String,
    state: &'static str,
    error: String,
    at: When,
}

#[derive(Default)]
struct Outcome {
    new_key: Option<String>,
    key_errors: FormErrors,
    provider_errors: FormErrors,
    price_errors: FormErrors,
    /// What was typed into a refused price form: model, prompt, completion.
    price_typed: [String; 3],
    sign_in_error: String,
    retention_error: String,
    subject_notice: String,
    subject_error: String,
    erase_error: String,
    /// What was typed into a refused retention form.
    retention_typed: Option<[String; 5]>,
}

async fn settings_page(state: &ApiState, page: TenantPage, outcome: Outcome) -> Result<Response, UiError> {
    page.access.require(Permission::SettingsView)?;
    let can_manage = page.can(Permission::SettingsManage);
    let keys = if can_manage { every(|p| state.app.api_keys(&page.access, p)).await? } else { Vec::new() };
    let provider = match state.app.cloud_provider(&page.access).await {
        Ok(provider) => Some(provider),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let tenant = state.app.tenant(&page.access).await?;
    let prices = state.app.model_prices(&page.access).await?;
    let usage = state.app.usage(&page.access, None, None).await?;
    let (usage_tokens, usage_activities) = usage_charts(&usage);
    let mail = if can_manage {
        let m = state.app.mail_summary(&page.access).await?;
        Some(MailView {
            drafts: m.drafts,
            pending: m.pending,
            sent: m.sent,
            failed: m.failed,
            unknown: m.unknown,
            problems: m
                .problems
                .into_iter()
                .map(|p| MailProblemRow {
                    id: p.id,
                    to: p.to,
                    subject: p.subject,
                    state: p.state.into(),
                    error: p.last_error.unwrap_or_default(),
                    at: When::of(p.created_at),
                })
                .collect(),
        })
    } else {
        None
    };
    let sign_in = if page.can(Permission::TenantManage) {
        let policy = state.app.retention_policy(&page.access).await?;
        let days = |d: Option<i64>| d.map(|d| d.to_string()).unwrap_or_default();
        let security = state.app.tenant_security(&page.access).await?;
        let exports = state.app.tenant_exports(&page.access).await?;
        let viewer = page.browser.caller.user().ok().map(|u| u.id);
        Some(SignInView {
            retention: outcome.retention_typed.clone().unwrap_or_else(|| {
                [
                    days(policy.inbox_days),
                    days(policy.lead_days),
                    days(policy.anonymise_contacts_days),
                    days(policy.content_days),
                    days(policy.job_days),
                ]
            }),
            retention_error: outcome.retention_error.clone(),
            subject_notice: outcome.subject_notice.clone(),
            subject_error: outcome.subject_error.clone(),
            require_two_factor: security.require_two_factor,
            require_sso: security.require_sso,
            sso_enabled: state.app.sso_connection(&page.access).await.is_ok_and(|c| c.enabled),
            mine_on: state.app.two_factor_status(&page.browser.caller).await?.enabled,
            error: outcome.sign_in_error,
            slug: tenant.slug.as_str().to_owned(),
            erase_error: outcome.erase_error,
            exports_busy: exports
                .iter()
                .any(|e| matches!(e.state, ExportState::Queued | ExportState::Running)),
            exports: exports.iter().map(|e| super::exports::ExportRow::of(e, viewer)).collect(),
        })
    } else {
        None
    };
    let view = SettingsPage {
        sign_in,
        email_enabled: state.app.notifier.email_enabled(),
        mail,
        can_manage,
        keys: keys
            .iter()
            .map(|k| KeyRow {
                id: k.id,
                name: k.name.to_string(),
                role: k.role.as_str(),
                prefix: k.prefix.clone(),
                created: When::of(k.created_at),
                expires: When::maybe(k.expires_at),
                last_used: When::maybe(k.last_used_at),
                revoked: k.revoked_at.is_some(),
            })
            .collect(),
        roles: [Role::Viewer, Role::Member, Role::Admin, Role::Owner].iter().map(|r| r.as_str()).collect(),
        new_key: outcome.new_key,
        key_errors: outcome.key_errors,
        provider_updated: provider.as_ref().map(|p| When::of(p.updated_at)),
        provider,
        provider_errors: outcome.provider_errors,
        prices,
        price_errors: outcome.price_errors,
        price_typed: outcome.price_typed,
        usage,
        usage_tokens,
        usage_activities,
        hipaa: tenant.compliance_mode == ComplianceMode::Hipaa,
        base: page.path("/settings"),
        shell: page.shell,
    };
    let errors = [&view.key_errors, &view.provider_errors, &view.price_errors]
        .into_iter()
        .find(|e| !e.is_empty())
        .unwrap_or(&view.key_errors);
    Ok(render_form(&view, errors))
}

/// What a data-subject erasure did, carried by its redirect here.
#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    erased: Option<String>,
    leads: Option<u64>,
    items: Option<u64>,
}

pub async fn show(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    page: TenantPage,
    super::session::Query(query): super::session::Query<ShowQuery>,
) -> Result<Response, UiError> {
    // A key created by the form just before the redirect here: shown once.
    let flash = flash::read(&state, &headers, page.tenant_id(), page.browser.session_id);
    let new_key = match &flash {
        Some(flash::Flash::ApiKey { key }) => Some(key.clone()),
        _ => None,
    };
    let path = page.path("/settings");
    let subject_notice = match (query.erased, query.leads, query.items) {
        (Some(subject), Some(leads), Some(items))
            if subject.starts_with("subject-") && subject.len() < 40 =>
        {
            format!(
                "Erased: {leads} lead{} anonymised, {items} inbox item{} deleted. The audit log records it as {subject}.",
                if leads == 1 { "" } else { "s" },
                if items == 1 { "" } else { "s" },
            )
        }
        _ => String::new(),
    };
    let outcome = Outcome { new_key, subject_notice, ..Outcome::default() };
    let mut response = settings_page(&state, page, outcome).await?;
    if flash.is_some() {
        flash::clear(&mut response, &path);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    /// A checkbox: present when ticked.
    require_two_factor: Option<String>,
    require_sso: Option<String>,
}

/// Saves the organisation's sign-in rules.
pub async fn set_sign_in(
    State(state): State<ApiState>,
    submit: Submit<SignInForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let req = crate::service::two_factor::TenantSecurityUpdate {
        require_two_factor: form.require_two_factor.is_some(),
        require_sso: Some(form.require_sso.is_some()),
    };
    match state.app.set_tenant_security(&page.access, req).await {
        Ok(_) => Ok(see_other(&format!("{}#sign-in", page.path("/settings")))),
        Err(Error::Conflict { message, .. }) => {
            let outcome = Outcome { sign_in_error: super::page::capitalise(&message), ..Outcome::default() };
            settings_page(&state, page, outcome).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct RetentionForm {
    #[serde(default)]
    inbox_days: String,
    #[serde(default)]
    lead_days: String,
    #[serde(default)]
    anonymise_contacts_days: String,
    #[serde(default)]
    content_days: String,
    #[serde(default)]
    job_days: String,
}

/// Saves the retention policy (an empty field: keep for ever).
pub async fn set_retention(
    State(state): State<ApiState>,
    submit: Submit<RetentionForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let typed = [
        form.inbox_days.clone(),
        form.lead_days.clone(),
        form.anonymise_contacts_days.clone(),
        form.content_days.clone(),
        form.job_days.clone(),
    ];
    let parse = |field: &str, text: &str| -> Result<Option<i64>, Error> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| Error::invalid(field, "must be a whole number of days, or empty"))
    };
    let result = async {
        let policy = crate::store::RetentionPolicy {
            inbox_days: parse("inbox_days", &form.inbox_days)?,
            lead_days: parse("lead_days", &form.lead_days)?,
            anonymise_contacts_days: parse("anonymise_contacts_days", &form.anonymise_contacts_days)?,
            content_days: parse("content_days", &form.content_days)?,
            job_days: parse("job_days", &form.job_days)?,
        };
        state.app.set_retention_policy(&page.access, policy).await
    }
    .await;
    match result {
        Ok(_) => Ok(see_other(&format!("{}#retention", page.path("/settings")))),
        Err(Error::Invalid { field, message }) => {
            let label = match field.as_str() {
                "inbox_days" => "Inbox items",
                "lead_days" => "Leads",
                "content_days" => "Generated content",
                "job_days" => "Job outputs",
                _ => "Anonymise contacts",
            };
            let outcome = Outcome {
                retention_error: format!("{label}: {message}."),
                retention_typed: Some(typed),
                ..Outcome::default()
            };
            settings_page(&state, page, outcome).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct SubjectForm {
    #[serde(default)]
    email: String,
}

/// The page again with a refused deletion's reason beside its form.
pub(super) async fn with_erase_error(
    state: &ApiState,
    page: TenantPage,
    erase_error: String,
) -> Result<Response, UiError> {
    settings_page(state, page, Outcome { erase_error, ..Outcome::default() }).await
}

/// A data-subject request's refusal, shown beside its forms.
async fn subject_refused(state: &ApiState, page: TenantPage, e: Error) -> Result<Response, UiError> {
    match e {
        Error::Invalid { message, .. } => {
            let outcome =
                Outcome { subject_error: format!("The e-mail address: {message}."), ..Outcome::default() };
            settings_page(state, page, outcome).await
        }
        other => Err(other.into()),
    }
}

/// Everything that names the address, downloaded as JSON.
pub async fn export_subject(
    State(state): State<ApiState>,
    submit: Submit<SubjectForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let request = crate::service::data_subjects::DataSubject { email: form.email };
    match state.app.export_contact(&page.access, request).await {
        Ok(export) => {
            let body =
                serde_json::to_vec_pretty(&export).map_err(|e| UiError::Internal(Error::internal(e)))?;
            Ok(axum::response::IntoResponse::into_response((
                [
                    (axum::http::header::CONTENT_TYPE, "application/json"),
                    (
                        axum::http::header::CONTENT_DISPOSITION,
                        "attachment; filename=\"data-subject-export.json\"",
                    ),
                    (axum::http::header::CACHE_CONTROL, "no-store"),
                ],
                body,
            )))
        }
        Err(e) => subject_refused(&state, page, e).await,
    }
}

/// Erases what names the address, and says what it did.
pub async fn erase_subject(
    State(state): State<ApiState>,
    submit: Submit<SubjectForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let request = crate::service::data_subjects::DataSubject { email: form.email };
    match state.app.erase_contact(&page.access, request).await {
        // Post/redirect/get: a reload does not erase again; the report
        // rides the address (counts and the pseudonym, nothing personal).
        Ok(done) => Ok(see_other(&format!(
            "{}?erased={}&leads={}&items={}#data-subjects",
            page.path("/settings"),
            done.pseudonym,
            done.report.leads_anonymised,
            done.report.inbox_items_deleted
        ))),
        Err(e) => subject_refused(&state, page, e).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct KeyForm {
    name: Option<String>,
    role: Option<String>,
    expires_on: Option<String>,
}

pub async fn create_api_key(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    submit: Submit<KeyForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let expires_at = form.expires_on.as_deref().map(|day| format!("{day}T00:00:00Z"));
    let body = serde_json::json!({
        "name": form.name.unwrap_or_default(), "role": form.role.unwrap_or_else(|| "viewer".into()), "expires_at": expires_at,
    });
    let result = match request::<CreateApiKey>(&body) {
        Ok(req) => state.app.create_api_key(&page.access, req).await,
        Err(e) => Err(e),
    };
    let outcome = match result {
        Ok(created) => {
            // Post/redirect/get: a reload of the next page cannot make a
            // second key; the key rides the redirect sealed, shown once.
            let path = page.path("/settings");
            let key = flash::Flash::ApiKey { key: created.key };
            return Ok(flash::redirect(&state, &page, &headers, &path, &format!("{path}#api-keys"), key));
        }
        Err(e) => {
            let mut errors = FormErrors::from_error(e)?;
            if !errors.get("expires_at").is_empty() {
                errors.add("expires_on", errors.get("expires_at").to_owned());
            }
            Outcome { key_errors: errors, ..Outcome::default() }
        }
    };
    settings_page(&state, page, outcome).await
}

pub async fn revoke_api_key(
    State(state): State<ApiState>,
    Path((_, api_key_id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.revoke_api_key(&page.access, api_key_id).await?;
    Ok(see_other(&page.path("/settings")))
}

#[derive(Debug, Deserialize)]
pub struct ProviderForm {
    base_url: Option<String>,
    model: Option<String>,
    api_key: Option<String>,
}

pub async fn set_cloud_provider(
    State(state): State<ApiState>,
    submit: Submit<ProviderForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let body = serde_json::json!({
        "base_url": form.base_url.unwrap_or_default(), "model": form.model.unwrap_or_default(),
        "api_key": form.api_key.unwrap_or_default(),
    });
    let result = match request::<SetCloudProvider>(&body) {
        Ok(req) => state.app.set_cloud_provider(&page.access, req).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(see_other(&page.path("/settings#cloud"))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            settings_page(&state, page, Outcome { provider_errors: errors, ..Outcome::default() }).await
        }
    }
}

/// The usage charts: tokens (prompt and completion) and activities per day,
/// every day of the period.
fn usage_charts(usage: &UsageView) -> (String, String) {
    let Some((from, to)) = usage.from.parse::<jiff::civil::Date>().ok().zip(usage.to.parse().ok()) else {
        return (String::new(), String::new());
    };
    let mut labels = Vec::new();
    let (mut prompt, mut completion, mut activities) = (Vec::new(), Vec::new(), Vec::new());
    let mut day = from;
    while day <= to {
        let label = day.to_string();
        let found = usage.days.iter().find(|d| d.day == label);
        #[allow(clippy::cast_precision_loss)]
        {
            prompt.push(Some(found.map_or(0.0, |d| d.prompt_tokens as f64)));
            completion.push(Some(found.map_or(0.0, |d| d.completion_tokens as f64)));
            activities.push(Some(found.map_or(0.0, |d| d.activities as f64)));
        }
        labels.push(label);
        let Ok(next) = day.tomorrow() else { break };
        day = next;
    }
    let described = |values: &[Option<f64>]| {
        labels
            .iter()
            .zip(values)
            .filter(|(_, v)| v.is_some_and(|v| v > 0.0))
            .map(|(l, v)| format!("{l}: {}", v.unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let draw = |result: Result<String, String>| {
        result.unwrap_or_else(|e| {
            tracing::error!(error = %e, "a usage chart failed to draw");
            String::new()
        })
    };
    let tokens = draw(charts::line(
        &format!("Tokens per day, {} to {} (UTC)", usage.from, usage.to),
        &format!("Prompt tokens: {}. Completion tokens: {}.", described(&prompt), described(&completion)),
        &labels,
        &[
            Series { name: "Prompt tokens", values: prompt },
            Series { name: "Completion tokens", values: completion },
        ],
        "tokens",
    ));
    let runs = draw(charts::line(
        &format!("Activities generated per day, {} to {} (UTC)", usage.from, usage.to),
        &described(&activities),
        &labels,
        &[Series { name: "Activities", values: activities }],
        "activities",
    ));
    (tokens, runs)
}

#[derive(Debug, Deserialize)]
pub struct PriceForm {
    model: Option<String>,
    input_usd_per_million: Option<String>,
    output_usd_per_million: Option<String>,
}

/// A price typed in a form: a plain number of dollars.
fn dollars_field(field: &'static str, value: Option<&str>) -> Result<f64, Error> {
    let value = value.unwrap_or_default().trim().trim_start_matches('$');
    value.parse::<f64>().map_err(|_| Error::invalid(field, "must be a number of dollars, e.g. 0.15"))
}

pub async fn set_model_price(
    State(state): State<ApiState>,
    submit: Submit<PriceForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let typed = [&form.model, &form.input_usd_per_million, &form.output_usd_per_million]
        .map(|v| v.clone().unwrap_or_default());
    let parsed =
        dollars_field("input_usd_per_million", form.input_usd_per_million.as_deref()).and_then(|input| {
            let output = dollars_field("output_usd_per_million", form.output_usd_per_million.as_deref())?;
            Ok(SetModelPrice {
                model: form.model.clone().unwrap_or_default(),
                input_usd_per_million: input,
                output_usd_per_million: output,
            })
        });
    let result = match parsed {
        Ok(req) => state.app.set_model_price(&page.access, req).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(see_other(&page.path("/settings#prices"))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            let outcome = Outcome { price_errors: errors, price_typed: typed, ..Outcome::default() };
            settings_page(&state, page, outcome).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PriceDeleteForm {
    model: String,
}

pub async fn delete_model_price(
    State(state): State<ApiState>,
    submit: Submit<PriceDeleteForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    match state.app.delete_model_price(&page.access, &form.model).await {
        Ok(()) | Err(Error::NotFound(_)) => Ok(see_other(&page.path("/settings#prices"))),
        // A model name no price could have: said beside the price form.
        Err(e) => {
            let outcome = Outcome { price_errors: FormErrors::from_error(e)?, ..Outcome::default() };
            settings_page(&state, page, outcome).await
        }
    }
}

/// Sends a failed message, or one whose outcome is unknown, again.
pub async fn resend_mail(
    State(state): State<ApiState>,
    Path((_, message_id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.resend_mail(&page.access, message_id).await?;
    Ok(see_other(&page.path("/settings#mail")))
}

pub async fn delete_cloud_provider(
    State(state): State<ApiState>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    match state.app.delete_cloud_provider(&page.access).await {
        Ok(()) | Err(Error::NotFound(_)) => Ok(see_other(&page.path("/settings#cloud"))),
        Err(e) => Err(e.into()),
    }
}
