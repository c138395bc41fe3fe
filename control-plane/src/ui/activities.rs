//! Activities: the new-activity wizard of each kind, the generation view
//! (the pipeline's steps, the current message, the draft streaming in; it
//! follows the API's event stream and resumes after a reload or a dropped
//! connection), and the result view (content with an editor and version
//! history, SEO, quality, social variants, compliance, sources,
//! provenance, and the actions).

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use marketer_protocol::activity::{ActivityResult, Finding, Platform};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::page::{FormErrors, Shell, UiError, every, number, render_form, request, see_other};
use super::session::{Path, Query, Submit, TenantPage};
use super::view::{When, badge};
use crate::api::ApiState;
use crate::domain::Permission;
use crate::service::{ActivityView, CreateActivity, EditContent, request_findings};
use crate::store::{ActivityKind, ActivityStatus, JobStatus};

const TONES: [(&str, &str); 4] = [
    ("friendly", "Friendly"),
    ("professional", "Professional"),
    ("casual", "Casual"),
    ("technical", "Technical"),
];

/// A platform as a checkbox.
struct PlatformChoice {
    value: &'static str,
    label: &'static str,
    checked: bool,
}

fn platform_label(platform: Platform) -> &'static str {
    match platform {
        Platform::X => "X",
        Platform::Linkedin => "LinkedIn",
        Platform::Facebook => "Facebook",
        Platform::Instagram => "Instagram",
        Platform::Tiktok => "TikTok",
        Platform::Threads => "Threads",
        Platform::Pinterest => "Pinterest",
    }
}

/// The wizard's fields, as typed (every kind's; each shows its own).
#[derive(Debug, Default, Deserialize)]
pub struct ActivityForm {
    kind: Option<String>,
    topic: Option<String>,
    keywords: Option<String>,
    audience: Option<String>,
    tone: Option<String>,
    target_word_count: Option<String>,
    platforms: Option<Vec<String>>,
    source_text: Option<String>,
    variants_per_platform: Option<String>,
    campaign_id: Option<String>,
    model: Option<String>,
    wait_for_agent: Option<String>,
    address: Option<String>,
    price: Option<String>,
    beds: Option<String>,
    baths: Option<String>,
    square_feet: Option<String>,
    key_features: Option<String>,
    description: Option<String>,
    agent_name: Option<String>,
    agent_contact: Option<String>,
    /// "Generate with this wording anyway", after a Fair Housing warning.
    acknowledge_input_findings: Option<String>,
}

struct CampaignChoice {
    id: Uuid,
    name: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "activity_new.html")]
struct NewActivityPage {
    shell: Shell,
    kind: &'static str,
    heading: &'static str,
    project_name: String,
    project_href: String,
    action: String,
    form: ActivityForm,
    errors: FormErrors,
    platforms: Vec<PlatformChoice>,
    campaigns: Vec<CampaignChoice>,
    tones: Vec<ToneChoice>,
    /// What the compliance rules find in the typed listing.
    warnings: Vec<Finding>,
}

struct ToneChoice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

impl NewActivityPage {
    fn value(&self, field: &str) -> &str {
        let f = &self.form;
        let value = match field {
            "topic" => &f.topic,
            "keywords" => &f.keywords,
            "audience" => &f.audience,
            "target_word_count" => &f.target_word_count,
            "source_text" => &f.source_text,
            "variants_per_platform" => &f.variants_per_platform,
            "model" => &f.model,
            "address" => &f.address,
            "price" => &f.price,
            "beds" => &f.beds,
            "baths" => &f.baths,
            "square_feet" => &f.square_feet,
            "key_features" => &f.key_features,
            "description" => &f.description,
            "agent_name" => &f.agent_name,
            "agent_contact" => &f.agent_contact,
            _ => &None,
        };
        value.as_deref().unwrap_or("")
    }

    fn waits(&self) -> bool {
        self.form.wait_for_agent.is_some() || self.form.kind.is_none()
    }
}

fn kind_of(value: Option<&str>) -> Result<ActivityKind, UiError> {
    value
        .unwrap_or("blog_article")
        .parse::<ActivityKind>()
        .map_err(|_| UiError::bad_request("choose a blog article, social posts or a listing kit"))
}

fn heading(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::BlogArticle => "New blog article",
        ActivityKind::SocialPostSet => "New social posts",
        ActivityKind::ListingKit => "New listing kit",
    }
}

#[derive(Debug, Deserialize)]
pub struct NewQuery {
    kind: Option<String>,
}

pub async fn new_form(
    State(state): State<ApiState>,
    page: TenantPage,
    Path((_, project_id)): Path<(Uuid, Uuid)>,
    Query(query): Query<NewQuery>,
) -> Result<Response, UiError> {
    let kind = kind_of(query.kind.as_deref())?;
    let mut form = ActivityForm::default();
    // Sensible defaults.
    match kind {
        ActivityKind::BlogArticle => {
            form.audience = Some("general readers".into());
            form.target_word_count = Some("1200".into());
        }
        ActivityKind::SocialPostSet => {
            form.variants_per_platform = Some("1".into());
            form.platforms = Some(vec!["linkedin".into(), "x".into()]);
        }
        ActivityKind::ListingKit => form.platforms = Some(vec!["facebook".into(), "instagram".into()]),
    }
    wizard(&state, page, project_id, kind, form, FormErrors::default(), Vec::new()).await
}

async fn wizard(
    state: &ApiState,
    page: TenantPage,
    project_id: Uuid,
    kind: ActivityKind,
    form: ActivityForm,
    errors: FormErrors,
    warnings: Vec<Finding>,
) -> Result<Response, UiError> {
    page.access.require(Permission::ActivitiesCreate)?;
    let project = state.app.project(&page.access, project_id).await?;
    let campaigns = every(|p| state.app.campaigns(&page.access, project_id, p)).await?;
    let chosen: Vec<String> = form.platforms.clone().unwrap_or_default();
    let selected_campaign = form.campaign_id.clone().unwrap_or_default();
    let view = NewActivityPage {
        kind: kind.into(),
        heading: heading(kind),
        project_name: project.name.to_string(),
        project_href: page.path(&format!("/projects/{project_id}")),
        action: page.path(&format!("/projects/{project_id}/activities/new")),
        platforms: Platform::ALL
            .iter()
            .map(|p| PlatformChoice {
                value: p.as_str(),
                label: platform_label(*p),
                checked: chosen.iter().any(|c| c == p.as_str()),
            })
            .collect(),
        campaigns: campaigns
            .iter()
            .map(|c| CampaignChoice {
                id: c.id,
                name: c.name.to_string(),
                selected: c.id.to_string() == selected_campaign,
            })
            .collect(),
        tones: {
            let chosen = form.tone.clone().unwrap_or_else(|| "friendly".into());
            TONES
                .iter()
                .map(|(value, label)| ToneChoice { value, label, selected: chosen == *value })
                .collect()
        },
        form,
        errors,
        warnings,
        shell: page.shell,
    };
    let mut response = render_form(&view, &view.errors);
    if !view.warnings.is_empty() && response.status() == axum::http::StatusCode::OK {
        // Nothing was created: the form comes back for a decision.
        *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}

/// Lines or commas into a list.
fn list(value: Option<&str>, separators: &[char]) -> Option<Vec<String>> {
    let items: Vec<String> =
        value?.split(separators).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    (!items.is_empty()).then_some(items)
}

/// The API's request body from the wizard's fields.
fn activity_body(kind: ActivityKind, form: &ActivityForm, errors: &mut FormErrors) -> serde_json::Value {
    let mut body = json!({
        "kind": <&'static str>::from(kind),
        "wait_for_agent": form.wait_for_agent.is_some(),
    });
    let set = |body: &mut serde_json::Value, key: &str, value: serde_json::Value| {
        if !value.is_null() {
            body[key] = value;
        }
    };
    set(&mut body, "campaign_id", json!(form.campaign_id));
    set(&mut body, "model", json!(form.model));
    set(&mut body, "tone", json!(form.tone));
    set(&mut body, "platforms", json!(form.platforms));
    match kind {
        ActivityKind::BlogArticle => {
            set(&mut body, "topic", json!(form.topic.clone().unwrap_or_default()));
            set(&mut body, "keywords", json!(list(form.keywords.as_deref(), &[',', '\n'])));
            set(&mut body, "audience", json!(form.audience));
            set(
                &mut body,
                "target_word_count",
                json!(number(errors, "target_word_count", form.target_word_count.as_deref())),
            );
        }
        ActivityKind::SocialPostSet => {
            set(&mut body, "topic", json!(form.topic));
            set(&mut body, "source_text", json!(form.source_text));
            set(
                &mut body,
                "variants_per_platform",
                json!(number(errors, "variants_per_platform", form.variants_per_platform.as_deref())),
            );
        }
        ActivityKind::ListingKit => {
            let baths = form.baths.as_deref().map(str::trim).filter(|b| !b.is_empty()).and_then(|b| {
                super::page::plain_number(b).parse::<f64>().ok().filter(|b| b.is_finite()).or_else(|| {
                    errors.add("baths", "must be a number, like 2 or 2.5");
                    None
                })
            });
            let listing = json!({
                "address": form.address.clone().unwrap_or_default(),
                "price": number(errors, "price", form.price.as_deref()).unwrap_or(json!(0)),
                "beds": number(errors, "beds", form.beds.as_deref()).unwrap_or(json!(0)),
                "baths": baths.unwrap_or(0.0),
                "square_feet": number(errors, "square_feet", form.square_feet.as_deref()).unwrap_or(json!(0)),
                "key_features": list(form.key_features.as_deref(), &['\n']).unwrap_or_default(),
                "description": form.description.clone().unwrap_or_default(),
                "agent_name": form.agent_name.clone().unwrap_or_default(),
                "agent_contact": form.agent_contact.clone().unwrap_or_default(),
            });
            body["listing"] = listing;
        }
    }
    body
}

pub async fn create(
    State(state): State<ApiState>,
    Path((_, project_id)): Path<(Uuid, Uuid)>,
    submit: Submit<ActivityForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let kind = kind_of(form.kind.as_deref())?;
    let mut errors = FormErrors::default();
    let body = activity_body(kind, &form, &mut errors);
    if !errors.is_empty() {
        return wizard(&state, page, project_id, kind, form, errors, Vec::new()).await;
    }
    let result = match request::<CreateActivity>(&body) {
        Ok(req) => {
            // The compliance rules read the typed listing before anything
            // is generated; the person decides.
            let warnings = request_findings(&req);
            if !warnings.is_empty() && form.acknowledge_input_findings.is_none() {
                return wizard(&state, page, project_id, kind, form, FormErrors::default(), warnings).await;
            }
            state.app.create_activity(&page.access, project_id, req).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(created) => {
            Ok(see_other(&page.path(&format!("/projects/{project_id}/activities/{}", created.id))))
        }
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            wizard(&state, page, project_id, kind, form, errors, Vec::new()).await
        }
    }
}

/// A pipeline step as the progress view lists it.
struct StepView {
    name: &'static str,
    label: &'static str,
}

fn steps(kind: ActivityKind, has_social: bool) -> Vec<StepView> {
    let names: &[(&str, &str)] = match kind {
        ActivityKind::BlogArticle => &[
            ("seo", "SEO"),
            ("research", "Research"),
            ("writing", "Writing"),
            ("editing", "Editing"),
            ("social", "Social"),
            ("finalise", "Done"),
        ],
        ActivityKind::SocialPostSet => &[("social", "Social posts"), ("finalise", "Done")],
        ActivityKind::ListingKit => &[
            ("analysis", "Analysis"),
            ("writing", "Description"),
            ("compliance", "Fair Housing"),
            ("flyer", "Flyer"),
            ("social", "Social"),
            ("finalise", "Done"),
        ],
    };
    names
        .iter()
        .filter(|(name, _)| has_social || *name != "social" || kind == ActivityKind::SocialPostSet)
        .map(|(name, label)| StepView { name, label })
        .collect()
}

struct VersionRow {
    number: i64,
    author: String,
    at: When,
    /// Lines of the diff against the version before: (`+`, `-` or ` `, text).
    diff: Vec<(&'static str, String)>,
}

struct VariantView {
    platform: String,
    id: String,
    text: String,
    count: u32,
    limit: u32,
    over: bool,
    enforcement: String,
    /// The composer, with this variant (approved activities only).
    schedule_href: Option<String>,
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    shell: Shell,
    activity: ActivityView,
    kind: &'static str,
    status: String,
    badge: &'static str,
    project_name: String,
    project_href: String,
    base: String,
    api_base: String,
    generating: bool,
    steps: Vec<StepView>,
    result: Option<ActivityResult>,
    content: String,
    content_html: String,
    versions: Vec<VersionRow>,
    variants: Vec<VariantView>,
    can_update: bool,
    can_create: bool,
    review: crate::service::ReviewView,
    /// The workflow's external reviewers, their links (id, address, state,
    /// expiry), and a link just made (URL, address), shown once.
    externals: Vec<String>,
    links: Vec<(Uuid, String, String, When)>,
    new_link: Option<(String, String)>,
    findings: usize,
    errors: FormErrors,
    failed_message: String,
    created: When,
    /// The agent that made the current content: its id and name.
    made_by: Option<(Uuid, String)>,
    /// A blog article's length against its target, and whether it is far
    /// from it.
    length: Option<Length>,
    /// What the latest run completed before it failed or was cancelled, as
    /// step labels: regenerating resumes after them.
    kept: Vec<&'static str>,
    comments: super::comments::CommentsPanel,
}

struct Length {
    words: usize,
    target: u32,
    far_off: bool,
}

impl ActivityPage {
    /// A warning's code as a heading.
    fn warning_title(&self, code: &str) -> &'static str {
        match code {
            "truncated" => "Cut off:",
            "prompt_echo" => "Instructions repeated:",
            "repetition" => "Repetition:",
            "too_short" => "Too short:",
            "withheld" => "Withheld:",
            "hashtags" => "Hashtags:",
            _ => "Note:",
        }
    }

    fn score(&self, value: &f32) -> String {
        format!("{value:.1}")
    }
}

pub async fn show(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    page: TenantPage,
    Path((_, project_id, activity_id)): Path<(Uuid, Uuid, Uuid)>,
) -> Result<Response, UiError> {
    // A review link just made is shown this once.
    let flash = super::flash::read(&state, &headers, page.tenant_id(), page.browser.session_id);
    let new_link = match &flash {
        Some(super::flash::Flash::ReviewLink { link, email }) => Some((link.clone(), email.clone())),
        _ => None,
    };
    let path = page.path(&format!("/projects/{project_id}/activities/{activity_id}"));
    let shown = Shown { new_link, ..Shown::default() };
    let mut response = activity_page_full(&state, page, project_id, activity_id, shown).await?;
    if flash.is_some() {
        super::flash::clear(&mut response, &path);
    }
    Ok(response)
}

async fn activity_page(
    state: &ApiState,
    page: TenantPage,
    project_id: Uuid,
    activity_id: Uuid,
    draft: Option<String>,
    errors: FormErrors,
) -> Result<Response, UiError> {
    activity_page_full(state, page, project_id, activity_id, Shown { draft, errors, ..Shown::default() })
        .await
}

/// The activity's page with a refused comment beside its form.
pub async fn activity_page_with(
    state: &ApiState,
    page: TenantPage,
    project_id: Uuid,
    activity_id: Uuid,
    comment: Option<(super::comments::CommentDraft, String)>,
) -> Result<Response, UiError> {
    activity_page_full(state, page, project_id, activity_id, Shown { comment, ..Shown::default() }).await
}

/// What the activity's page shows besides the activity: a refused edit's
/// draft, form errors, a refused comment, a review link just made.
#[derive(Default)]
struct Shown {
    draft: Option<String>,
    errors: FormErrors,
    comment: Option<(super::comments::CommentDraft, String)>,
    new_link: Option<(String, String)>,
}

async fn activity_page_full(
    state: &ApiState,
    page: TenantPage,
    project_id: Uuid,
    activity_id: Uuid,
    shown: Shown,
) -> Result<Response, UiError> {
    let Shown { draft, errors, comment, new_link } = shown;
    let activity = state.app.activity(&page.access, project_id, activity_id).await?;
    let project = state.app.project(&page.access, project_id).await?;
    let generating = matches!(activity.status, ActivityStatus::Queued | ActivityStatus::Generating);
    let result: Option<ActivityResult> =
        activity.result.clone().and_then(|value| serde_json::from_value(value).ok());
    let versions = if generating || result.is_none() {
        Vec::new()
    } else {
        let versions = state.app.activity_versions(&page.access, project_id, activity_id, None).await?;
        let mut rows: Vec<VersionRow> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| VersionRow {
                number: v.number,
                author: v.author.clone(),
                at: When::of(v.created_at),
                diff: if i == 0 { Vec::new() } else { diff(&versions[i - 1].content, &v.content) },
            })
            .collect();
        rows.reverse();
        rows
    };
    let has_social = activity
        .input
        .as_ref()
        .and_then(|i| i.get("platforms"))
        .and_then(|p| p.as_array())
        .is_some_and(|p| !p.is_empty());
    let content = draft.unwrap_or_else(|| activity.content.clone().unwrap_or_default());
    let findings = activity.compliance.as_ref().map_or(0, |c| c.findings.len());
    let variants = result
        .as_ref()
        .map(|r| {
            let labels = variant_labels(&r.social);
            r.social
                .iter()
                .zip(labels)
                .enumerate()
                .map(|(i, (v, platform))| VariantView {
                    platform,
                    id: format!("variant-{i}"),
                    text: v.text.clone(),
                    count: v.char_count,
                    limit: v.char_limit,
                    over: v.char_count > v.char_limit,
                    enforcement: v.enforcement.replace('_', " "),
                    schedule_href: (activity.status == ActivityStatus::Approved
                        && page.can(Permission::PostsWrite))
                    .then(|| {
                        page.path(&format!(
                            "/posts/new?activity={}&variant={}",
                            activity.id,
                            v.platform.as_str()
                        ))
                    }),
                })
                .collect()
        })
        .unwrap_or_default();
    // Names, not ids: the agent that made the content.
    let content_agent = match activity.content_run_id {
        Some(run) => state.app.store.job(page.tenant_id(), run).await?.and_then(|job| job.agent_id),
        None => None,
    };
    let made_by = match content_agent {
        Some(agent) => {
            let name = state.app.store.agent(page.tenant_id(), agent).await?.map(|a| a.name.to_string());
            Some((agent, name.unwrap_or_else(|| "a removed agent".into())))
        }
        None => None,
    };
    let length = activity
        .input
        .as_ref()
        .filter(|_| activity.kind == ActivityKind::BlogArticle && !content.is_empty())
        .and_then(|input| input.get("target_word_count"))
        .and_then(serde_json::Value::as_u64)
        .map(|target| {
            let (words, target) = (word_count(&content), u32::try_from(target).unwrap_or(u32::MAX));
            Length { words, target, far_off: words * 2 < target as usize || words > target as usize * 2 }
        });
    let status = activity.status.to_string();
    let failed_message = match activity.run.status {
        JobStatus::Failed | JobStatus::Cancelled => activity
            .run
            .error
            .as_ref()
            .map(|e| super::page::capitalise(&e.message))
            .unwrap_or_else(|| "It was cancelled".into()),
        _ => String::new(),
    };
    let base = page.path(&format!("/projects/{project_id}/activities/{activity_id}"));
    let current_version = versions.first().map(|v| v.number);
    let review = state.app.activity_review(&page.access, project_id, activity_id).await?;
    let externals: Vec<String> = review.steps.iter().flat_map(|s| s.externals.iter().cloned()).collect();
    let links = if externals.is_empty() {
        Vec::new()
    } else {
        state.app.review_links(&page.access, project_id, activity_id).await?
    };
    let comments = super::comments::panel(
        state,
        &page,
        crate::store::CommentSubject::Activity(activity_id),
        current_version,
        comment,
    )
    .await?;
    let view = ActivityPage {
        comments,
        externals,
        links: links.into_iter().map(|l| (l.id, l.email, l.state, When::of(l.expires_at))).collect(),
        new_link,
        kind: activity.kind.into(),
        badge: badge(&status),
        status,
        project_name: project.name.to_string(),
        project_href: page.path(&format!("/projects/{project_id}")),
        api_base: format!(
            "/api/v1/tenants/{}/projects/{project_id}/activities/{activity_id}",
            page.tenant_id()
        ),
        base,
        generating,
        steps: steps(activity.kind, has_social),
        content_html: state.app.renderer.html(&content).await?.to_string(),
        content,
        versions,
        variants,
        can_update: page.can(Permission::ActivitiesUpdate),
        can_create: page.can(Permission::ActivitiesCreate),
        review,
        findings,
        errors,
        failed_message,
        made_by,
        length,
        kept: activity
            .kept
            .as_ref()
            .map(|k| k.steps.iter().map(|s| marketer_pipeline::run::step_output(s)).collect())
            .unwrap_or_default(),
        created: When::of(activity.created_at),
        result,
        activity,
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

/// The tabs' labels: the platform, and "· variant n" where it has several.
fn variant_labels(variants: &[marketer_protocol::activity::SocialVariant]) -> Vec<String> {
    let mut seen: std::collections::HashMap<Platform, usize> = std::collections::HashMap::new();
    variants
        .iter()
        .map(|v| {
            let label = platform_label(v.platform);
            let number = seen.entry(v.platform).and_modify(|n| *n += 1).or_insert(1);
            if variants.iter().filter(|o| o.platform == v.platform).count() > 1 {
                format!("{label} · variant {number}")
            } else {
                label.to_owned()
            }
        })
        .collect()
}

/// Words of Markdown text (runs of letters or digits; markup is not a word).
fn word_count(markdown: &str) -> usize {
    markdown.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count()
}

/// A line diff of two versions.
fn diff(before: &str, after: &str) -> Vec<(&'static str, String)> {
    similar::TextDiff::from_lines(before, after)
        .iter_all_changes()
        .map(|change| {
            let sign = match change.tag() {
                similar::ChangeTag::Delete => "-",
                similar::ChangeTag::Insert => "+",
                similar::ChangeTag::Equal => " ",
            };
            (sign, change.value().trim_end_matches('\n').to_owned())
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct ContentForm {
    content: Option<String>,
}

pub async fn save_content(
    State(state): State<ApiState>,
    Path((_, project_id, activity_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<ContentForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let content = form.content.unwrap_or_default();
    match state
        .app
        .edit_activity(&page.access, project_id, activity_id, EditContent { content: content.clone() })
        .await
    {
        Ok(_) => {
            Ok(see_other(&page.path(&format!("/projects/{project_id}/activities/{activity_id}#history"))))
        }
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            activity_page(&state, page, project_id, activity_id, Some(content), errors).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ApproveForm {
    acknowledge_findings: Option<String>,
    /// The version and step on the page (hidden fields).
    version: Option<String>,
    step: Option<String>,
}

/// A reviewer's other decisions: request changes, reject.
#[derive(Debug, Deserialize)]
pub struct ReviewForm {
    decision: String,
    comment: Option<String>,
    version: Option<String>,
    step: Option<String>,
}

pub async fn review(
    State(state): State<ApiState>,
    Path((_, project_id, activity_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<ReviewForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let decide = super::reviews::decision_form(
        Some(&form.decision),
        form.comment,
        form.version.as_deref(),
        form.step.as_deref(),
        false,
    );
    match state.app.decide_review(&page.access, project_id, activity_id, decide).await {
        Ok(_) => Ok(see_other(&format!(
            "{}#review",
            page.path(&format!("/projects/{project_id}/activities/{activity_id}"))
        ))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            activity_page(&state, page, project_id, activity_id, None, errors).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ReviewLinkForm {
    email: Option<String>,
    valid_days: Option<String>,
}

/// Makes a link for an external reviewer; its URL is shown once.
pub async fn create_review_link(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    Path((_, project_id, activity_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<ReviewLinkForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let valid_days = match FormErrors::whole_number("valid_days", form.valid_days.as_deref(), "1 to 90 days")
    {
        Ok(days) => days,
        Err(errors) => return activity_page(&state, page, project_id, activity_id, None, errors).await,
    };
    let input = crate::service::CreateReviewLink { email: form.email.unwrap_or_default(), valid_days };
    match state.app.create_review_link(&page.access, project_id, activity_id, input).await {
        Ok(created) => {
            let link =
                super::session::absolute_url(&headers, state.config.trust_proxy_headers, &created.path);
            let path = page.path(&format!("/projects/{project_id}/activities/{activity_id}"));
            let flash = super::flash::Flash::ReviewLink { link, email: created.link.email };
            Ok(super::flash::redirect(&state, &page, &headers, &path, &format!("{path}#review"), flash))
        }
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            activity_page(&state, page, project_id, activity_id, None, errors).await
        }
    }
}

/// Revokes a review link.
pub async fn revoke_review_link(
    State(state): State<ApiState>,
    Path((_, project_id, activity_id, link_id)): Path<(Uuid, Uuid, Uuid, Uuid)>,
    submit: Submit<super::notifications::Empty>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.revoke_review_link(&page.access, project_id, activity_id, link_id).await?;
    Ok(see_other(&format!(
        "{}#review",
        page.path(&format!("/projects/{project_id}/activities/{activity_id}"))
    )))
}

/// Asks the current step's approvers to review.
pub async fn request_review(
    State(state): State<ApiState>,
    Path((_, project_id, activity_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<super::notifications::Empty>,
) -> Result<Response, UiError> {
    let page = submit.page;
    let back = format!("{}#review", page.path(&format!("/projects/{project_id}/activities/{activity_id}")));
    match state.app.request_review(&page.access, project_id, activity_id).await {
        Ok(_) => Ok(see_other(&back)),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            activity_page(&state, page, project_id, activity_id, None, errors).await
        }
    }
}

pub async fn approve(
    State(state): State<ApiState>,
    Path((_, project_id, activity_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<ApproveForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    // An approval at the review's current step (named approvers may be
    // viewers, so this is the review's decision, not the API's approve).
    let decide = super::reviews::decision_form(
        Some("approve"),
        None,
        form.version.as_deref(),
        form.step.as_deref(),
        form.acknowledge_findings.is_some(),
    );
    match state.app.decide_review(&page.access, project_id, activity_id, decide).await {
        Ok(_) => Ok(see_other(&page.path(&format!("/projects/{project_id}/activities/{activity_id}")))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            activity_page(&state, page, project_id, activity_id, None, errors).await
        }
    }
}

pub async fn regenerate(
    State(state): State<ApiState>,
    Path((_, project_id, activity_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    match state.app.regenerate_activity(&page.access, project_id, activity_id).await {
        Ok(_) => Ok(see_other(&page.path(&format!("/projects/{project_id}/activities/{activity_id}")))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            activity_page(&state, page, project_id, activity_id, None, errors).await
        }
    }
}

pub async fn cancel(
    State(state): State<ApiState>,
    Path((_, project_id, activity_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.cancel_activity(&page.access, project_id, activity_id).await?;
    Ok(see_other(&page.path(&format!("/projects/{project_id}/activities/{activity_id}"))))
}

#[derive(Debug, Deserialize)]
pub struct PreviewForm {
    content: Option<String>,
}

/// The editor's preview: the Markdown as the result view shows it.
pub async fn preview(
    State(state): State<ApiState>,
    submit: Submit<PreviewForm>,
) -> Result<Response, UiError> {
    let html = state.app.renderer.preview(submit.form.content.unwrap_or_default(), "content").await?;
    Ok(Html(html).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_compared_line_by_line() {
        let lines = diff("# Title\nOld line\nSame\n", "# Title\nNew line\nSame\n");
        let signs: String = lines.iter().map(|(s, _)| *s).collect();
        assert_eq!(signs, " -+ ");
        assert_eq!(lines[1].1, "Old line");
    }

    #[test]
    fn tabs_number_the_variants_of_a_platform_that_has_several() {
        let post = |platform| marketer_protocol::activity::SocialVariant {
            platform,
            text: "x".into(),
            char_count: 1,
            char_limit: 280,
            hashtags: Vec::new(),
            enforcement: "as_written".into(),
        };
        let labels = variant_labels(&[post(Platform::X), post(Platform::X), post(Platform::Linkedin)]);
        assert_eq!(labels, ["X · variant 1", "X · variant 2", "LinkedIn"]);
    }

    #[test]
    fn wizard_fields_become_the_api_request() {
        let form = ActivityForm {
            topic: Some("Solar roofs".into()),
            keywords: Some("solar, roof ,\ncost".into()),
            target_word_count: Some("1,500".into()),
            platforms: Some(vec!["x".into()]),
            wait_for_agent: Some("on".into()),
            ..ActivityForm::default()
        };
        let mut errors = FormErrors::default();
        let body = activity_body(ActivityKind::BlogArticle, &form, &mut errors);
        assert!(errors.is_empty());
        assert_eq!(body["keywords"], json!(["solar", "roof", "cost"]));
        assert_eq!(body["target_word_count"], 1500);
        assert_eq!(body["wait_for_agent"], true);
        let request: CreateActivity = request(&body).unwrap();
        assert_eq!(request.topic.as_deref(), Some("Solar roofs"));

        let listing = ActivityForm {
            price: Some("a lot".into()),
            baths: Some("two".into()),
            ..ActivityForm::default()
        };
        let mut errors = FormErrors::default();
        activity_body(ActivityKind::ListingKit, &listing, &mut errors);
        assert_eq!(errors.get("price"), "must be a whole number, like 450000 or 450,000");
        assert!(errors.get("baths").contains("number"));

        // Numbers as people type them, the same way in every field.
        let typed = ActivityForm {
            price: Some("$450,000".into()),
            square_feet: Some("1,850".into()),
            beds: Some(" 3 ".into()),
            baths: Some("2.5".into()),
            ..ActivityForm::default()
        };
        let mut errors = FormErrors::default();
        let body = activity_body(ActivityKind::ListingKit, &typed, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let listing = &body["listing"];
        assert_eq!((listing["price"].as_u64(), listing["square_feet"].as_u64()), (Some(450_000), Some(1850)));
        assert_eq!((listing["beds"].as_u64(), listing["baths"].as_f64()), (Some(3), Some(2.5)));
        let mut errors = FormErrors::default();
        let refused = ActivityForm {
            price: Some("450k".into()),
            square_feet: Some("big".into()),
            ..ActivityForm::default()
        };
        activity_body(ActivityKind::ListingKit, &refused, &mut errors);
        assert_eq!(errors.get("price"), errors.get("square_feet"), "one message for every number field");
    }
}
