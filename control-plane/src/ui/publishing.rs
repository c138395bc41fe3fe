//! Publishing's pages: the calendar (month and week, in the reader's time
//! zone, with filters, open posting slots, and rescheduling by dragging a
//! post to another day or with the post's own date and time field), the
//! composer (several accounts, one text with a variant per account, live
//! counts against each platform's limit, a preview, schedule / add to the
//! queue / post now / save a draft), a post's page (status, why it waits or
//! failed and what to do, the link to it on the platform, every attempt,
//! reschedule, edit, cancel, retry, delete), and the Accounts settings
//! (connect X, LinkedIn, Facebook, Instagram and Mastodon through OAuth,
//! Bluesky with an app password; health, followers, reconnect, disconnect,
//! posting slots and time zone).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use jiff::civil::Date;
use serde::Deserialize;
use uuid::Uuid;

use super::page::{FormErrors, Shell, UiError, render, render_form, see_other};
use super::session::{Path, Query, Submit, TenantPage};
use super::view::When;
use crate::api::ApiState;
use crate::domain::{Permission, Timestamp};
use crate::error::Error;
use crate::publishing::schedule;
use crate::service::{
    AccountView, CreatePost, PostQuery, PostView, StartConnect, UpdateAccount, UpdatePost, When as Schedule,
};
use crate::store::{Network, PostStatus, PostingSlot, SlotDay, SlotTime};

/// The badge class of a post's status.
fn post_badge(status: PostStatus) -> &'static str {
    match status {
        PostStatus::Published => "badge good",
        PostStatus::Scheduled | PostStatus::Draft => "badge warn",
        PostStatus::Publishing | PostStatus::Unconfirmed => "badge busy",
        PostStatus::Failed | PostStatus::NeedsReschedule | PostStatus::Cancelled | PostStatus::Deleted => {
            "badge bad"
        }
    }
}

fn network_name(n: Network) -> &'static str {
    n.label()
}

/// The reader's time zone: stored, else UTC (the page then asks the
/// browser for its zone).
async fn reader_zone(state: &ApiState, page: &TenantPage) -> Result<(String, bool), UiError> {
    match state.app.time_zone(&page.browser.caller).await? {
        Some(zone) => Ok((zone, true)),
        None => Ok(("UTC".into(), false)),
    }
}

// ----- Calendar ---------------------------------------------------------------

struct CalendarItem {
    href: String,
    time: String,
    handle: String,
    network: &'static str,
    status: String,
    badge: &'static str,
    text: String,
    id: Uuid,
    draggable: bool,
}

struct Slot {
    time: String,
    handle: String,
    /// A recommended hour (best times to post) rather than a posting slot.
    best: bool,
}

struct Day {
    date: String,
    label: String,
    weekday: &'static str,
    today: bool,
    outside: bool,
    items: Vec<CalendarItem>,
    slots: Vec<Slot>,
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "calendar.html")]
struct CalendarPage {
    shell: Shell,
    title: String,
    week_view: bool,
    weeks: Vec<Vec<Day>>,
    zone: String,
    zone_known: bool,
    prev_href: String,
    next_href: String,
    today_href: String,
    other_view_href: String,
    base: String,
    accounts: Vec<Choice>,
    projects: Vec<Choice>,
    /// The chosen project's campaigns (campaigns belong to a project).
    campaigns: Vec<Choice>,
    statuses: Vec<Choice>,
    can_write: bool,
    no_accounts: bool,
    query: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct CalendarQuery {
    view: Option<String>,
    date: Option<String>,
    account: Option<String>,
    project: Option<String>,
    campaign: Option<String>,
    status: Option<String>,
}

fn weekday_name(d: Date) -> &'static str {
    use jiff::civil::Weekday::*;
    match d.weekday() {
        Monday => "Mon",
        Tuesday => "Tue",
        Wednesday => "Wed",
        Thursday => "Thu",
        Friday => "Fri",
        Saturday => "Sat",
        Sunday => "Sun",
    }
}

fn parse_uuid(value: Option<&str>) -> Option<Uuid> {
    value.and_then(|v| Uuid::parse_str(v).ok())
}

pub async fn calendar(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(q): Query<CalendarQuery>,
) -> Result<Response, UiError> {
    page.access.require(Permission::PostsRead)?;
    let (zone, zone_known) = reader_zone(&state, &page).await?;
    let tz = schedule::zone(&zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let today = schedule::local_date(Timestamp::now(), &tz);
    let anchor = q.date.as_deref().and_then(|d| d.parse::<Date>().ok()).unwrap_or(today);
    let week_view = q.view.as_deref() == Some("week");
    let monday = |d: Date| {
        d.checked_sub(jiff::Span::new().days(i64::from(d.weekday().to_monday_zero_offset()))).unwrap_or(d)
    };
    let (start, days, prev, next) = if week_view {
        let start = monday(anchor);
        let step = jiff::Span::new().weeks(1);
        (start, 7, anchor.checked_sub(step).unwrap_or(anchor), anchor.checked_add(step).unwrap_or(anchor))
    } else {
        let first = anchor.first_of_month();
        let step = jiff::Span::new().months(1);
        (
            monday(first),
            42,
            first.checked_sub(step).unwrap_or(first),
            first.checked_add(step).unwrap_or(first),
        )
    };
    let end = start.checked_add(jiff::Span::new().days(days)).unwrap_or(start);
    let from =
        schedule::at_local(start, 0, &tz).ok_or_else(|| UiError::bad_request("the date is out of range"))?;
    let to =
        schedule::at_local(end, 0, &tz).ok_or_else(|| UiError::bad_request("the date is out of range"))?;
    let account_filter = parse_uuid(q.account.as_deref());
    let project_filter = parse_uuid(q.project.as_deref());
    // A campaign is chosen within its project.
    let campaign_filter = parse_uuid(q.campaign.as_deref()).filter(|_| project_filter.is_some());
    let status_filter = q.status.as_deref().and_then(|s| s.parse::<PostStatus>().ok());
    let posts = state
        .app
        .posts(
            &page.access,
            PostQuery {
                from: Some(from),
                to: Some(to),
                account_id: account_filter,
                project_id: project_filter,
                campaign_id: campaign_filter,
                status: status_filter,
            },
        )
        .await?;
    let accounts = state.app.social_accounts(&page.access).await?;
    let can_write = page.can(Permission::PostsWrite);
    let mut grid: Vec<Day> = (0..days)
        .filter_map(|i| start.checked_add(jiff::Span::new().days(i)).ok())
        .map(|d| Day {
            date: d.to_string(),
            label: if week_view || d.day() == 1 {
                d.strftime("%b %-d").to_string()
            } else {
                d.day().to_string()
            },
            weekday: weekday_name(d),
            today: d == today,
            outside: !week_view && d.month() != anchor.month(),
            items: Vec::new(),
            slots: Vec::new(),
        })
        .collect();
    let index = |at: Timestamp| {
        let d = schedule::local_date(at, &tz);
        grid.iter().position(|day| day.date == d.to_string())
    };
    let mut placed = Vec::new();
    for p in &posts {
        let Some(at) = p.scheduled_at.or(p.published_at) else { continue };
        if let Some(i) = index(at) {
            placed.push((i, p));
        }
    }
    for (i, p) in placed {
        let at = p.scheduled_at.or(p.published_at).unwrap_or(p.created_at);
        let local = schedule::instant_to_local(at, &zone);
        grid[i].items.push(CalendarItem {
            href: page.path(&format!("/posts/{}", p.id)),
            time: local.split('T').nth(1).unwrap_or("").to_owned(),
            handle: p.handle.clone(),
            network: network_name(p.network),
            status: p.status.to_string().replace('_', " "),
            badge: post_badge(p.status),
            text: p.text.chars().take(80).collect(),
            id: p.id,
            draggable: can_write && p.status.editable(),
        });
    }
    // Open slots: an account's slot with no post of that account.
    let now = Timestamp::now();
    for a in accounts.iter().filter(|a| account_filter.is_none_or(|id| id == a.id)) {
        for at in schedule::slot_instants(&a.posting_slots, &a.posting_time_zone, from.max(now), to) {
            let taken = posts.iter().any(|p| p.account_id == a.id && p.scheduled_at == Some(at));
            if !taken {
                let d = schedule::local_date(at, &tz).to_string();
                if let Some(day) = grid.iter_mut().find(|day| day.date == d) {
                    let local = schedule::instant_to_local(at, &zone);
                    day.slots.push(Slot {
                        time: local.split('T').nth(1).unwrap_or("").to_owned(),
                        handle: a.handle.clone(),
                        best: false,
                    });
                }
            }
        }
    }
    // Best times to post: each account's recommended hours in the range.
    let best = state.app.best_times_all(&page.access).await?;
    for a in accounts.iter().filter(|a| account_filter.is_none_or(|id| id == a.id)) {
        let Some(times) = best.get(&a.id) else { continue };
        let Ok(account_tz) = schedule::zone(&a.posting_time_zone) else { continue };
        for slot in &times.slots {
            let mut at = schedule::next_hour_of_week(slot.hour.hour_of_week, &account_tz, from.max(now));
            while let Some(start) = at.filter(|start| *start < to) {
                let d = schedule::local_date(start, &tz).to_string();
                if let Some(day) = grid.iter_mut().find(|day| day.date == d) {
                    let local = schedule::instant_to_local(start, &zone);
                    day.slots.push(Slot {
                        time: local.split('T').nth(1).unwrap_or("").to_owned(),
                        handle: a.handle.clone(),
                        best: true,
                    });
                }
                at = schedule::next_hour_of_week(slot.hour.hour_of_week, &account_tz, start);
            }
        }
    }
    for day in &mut grid {
        day.items.sort_by(|a, b| a.time.cmp(&b.time));
        day.slots.sort_by(|a, b| a.time.cmp(&b.time));
    }
    let weeks: Vec<Vec<Day>> = {
        let mut weeks = Vec::new();
        let mut iter = grid.into_iter().peekable();
        while iter.peek().is_some() {
            weeks.push(iter.by_ref().take(7).collect());
        }
        weeks
    };
    let mut keep = Vec::new();
    for (k, v) in
        [("account", &q.account), ("project", &q.project), ("campaign", &q.campaign), ("status", &q.status)]
    {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            keep.push(format!("{k}={}", form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()));
        }
    }
    let query = keep.iter().map(|k| format!("&{k}")).collect::<String>();
    let view = if week_view { "week" } else { "month" };
    let base = page.path("/calendar");
    let href = |view: &str, date: Date| format!("{base}?view={view}&date={date}{query}");
    let projects = super::page::every(|p| state.app.projects(&page.access, p)).await?;
    let campaigns = match project_filter.filter(|id| projects.iter().any(|p| p.id == *id)) {
        Some(project) => super::page::every(|p| state.app.campaigns(&page.access, project, p)).await?,
        None => Vec::new(),
    };
    let title = if week_view {
        format!("Week of {}", start.strftime("%B %-d, %Y"))
    } else {
        anchor.strftime("%B %Y").to_string()
    };
    let view_page = CalendarPage {
        title,
        week_view,
        weeks,
        zone,
        zone_known,
        prev_href: href(view, prev),
        next_href: href(view, next),
        today_href: href(view, today),
        other_view_href: href(if week_view { "month" } else { "week" }, anchor),
        accounts: accounts
            .iter()
            .map(|a| Choice {
                value: a.id.to_string(),
                label: format!("{} ({})", a.handle, network_name(a.network)),
                selected: account_filter == Some(a.id),
            })
            .collect(),
        projects: projects
            .iter()
            .map(|p| Choice {
                value: p.id.to_string(),
                label: p.name.to_string(),
                selected: project_filter == Some(p.id),
            })
            .collect(),
        campaigns: campaigns
            .iter()
            .map(|c| Choice {
                value: c.id.to_string(),
                label: c.name.to_string(),
                selected: campaign_filter == Some(c.id),
            })
            .collect(),
        statuses: [
            "draft",
            "scheduled",
            "needs_reschedule",
            "publishing",
            "published",
            "failed",
            "unconfirmed",
            "cancelled",
        ]
        .iter()
        .map(|s| Choice {
            value: (*s).into(),
            label: s.replace('_', " "),
            selected: q.status.as_deref() == Some(*s),
        })
        .collect(),
        can_write,
        no_accounts: accounts.is_empty(),
        query,
        base: page.path(""),
        shell: page.shell,
    };
    Ok(render(&view_page))
}

#[derive(Debug, Deserialize)]
pub struct ZoneForm {
    time_zone: Option<String>,
    /// Where to go back to.
    back: Option<String>,
}

/// Sets the reader's time zone (the script sends the browser's when none
/// is stored; the calendar has a field for it).
pub async fn set_zone(State(state): State<ApiState>, submit: Submit<ZoneForm>) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    state.app.set_time_zone(&page.browser.caller, form.time_zone.as_deref().unwrap_or_default()).await?;
    let back = form
        .back
        .filter(|b| b.starts_with(&page.path("/")) && !b.contains("//"))
        .unwrap_or_else(|| page.path("/calendar"));
    Ok(see_other(&back))
}

// ----- Posts --------------------------------------------------------------------

struct AttemptRow {
    kind: String,
    when: When,
    status: String,
    outcome: String,
    request_id: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "post.html")]
struct PostPage {
    shell: Shell,
    metrics: Option<MetricsCard>,
    post: PostView,
    network: &'static str,
    badge: &'static str,
    scheduled: Option<When>,
    published: Option<When>,
    local_value: String,
    zone: String,
    attempts: Vec<AttemptRow>,
    can_write: bool,
    editable: bool,
    errors: FormErrors,
    base: String,
    calendar_href: String,
    comments: super::comments::CommentsPanel,
    /// The post's own review; `None` when its activity's review covers it
    /// (`activity_href` then leads there).
    review: Option<crate::service::ReviewView>,
    activity_href: Option<String>,
    // What the shared review panel asks of an activity, empty for a post.
    findings: usize,
    externals: Vec<String>,
    links: Vec<(Uuid, String, String, When)>,
    new_link: Option<(String, String)>,
    can_update: bool,
    /// Whether rescheduling may approve the post as it is (a post of its
    /// own under the default review).
    self_approve: bool,
}

/// A published post's "How it did" card.
struct MetricsCard {
    /// (label, value): each metric of the latest reading; "not reported"
    /// where the platform gave none.
    stats: Vec<(String, String)>,
    /// Said when there is no reading yet.
    empty: String,
    definition: &'static str,
    /// When the latest reading was taken.
    when: String,
    /// Metrics the platform stopped reporting.
    gone: Vec<String>,
    error: Option<String>,
}

fn metrics_card(view: &crate::service::PostMetricsView, network: &str) -> MetricsCard {
    let number = |v: Option<i64>| v.map_or_else(|| "not reported".to_owned(), crate::service::grouped);
    let mut stats = Vec::new();
    if let Some(latest) = &view.latest {
        for (name, value) in latest.named() {
            // Metrics this network never reports are left out; one it
            // reported before and not now shows as not reported.
            let ever = view
                .readings
                .iter()
                .any(|r| r.metrics.named().iter().any(|(n, v)| *n == name && v.is_some()));
            if ever {
                stats.push((crate::service::metric_label(name).to_owned(), number(value)));
            }
        }
        stats.push(("Engagements".to_owned(), number(view.engagements)));
        stats.push((
            "Engagement rate".to_owned(),
            view.engagement_rate
                .map_or_else(|| "no impressions or followers".to_owned(), |r| format!("{:.1}%", r * 100.0)),
        ));
    }
    MetricsCard {
        stats,
        empty: format!(
            "No reading yet. {network}'s numbers are first read an hour after publishing, then hourly for a day, daily for a week and weekly to 90 days."
        ),
        definition: crate::service::ENGAGEMENT_RATE,
        when: view
            .readings
            .last()
            .map(|r| format!("Read {}.", When::of(r.collected_at).text))
            .unwrap_or_default(),
        gone: view
            .no_longer_reported
            .iter()
            .map(|g| {
                format!(
                    "{network} no longer reports {} for this post (since {}); it is shown as not reported, not as 0.",
                    crate::service::metric_label(&g.metric).to_lowercase(),
                    When::of(g.since).text
                )
            })
            .collect(),
        error: view.last_error.clone(),
    }
}

async fn post_page(
    state: &ApiState,
    page: TenantPage,
    id: Uuid,
    errors: FormErrors,
) -> Result<Response, UiError> {
    post_page_full(state, page, id, errors, None).await
}

/// The post's page with a refused comment beside its form.
pub async fn post_page_with(
    state: &ApiState,
    page: TenantPage,
    id: Uuid,
    comment: Option<(super::comments::CommentDraft, String)>,
) -> Result<Response, UiError> {
    post_page_full(state, page, id, FormErrors::default(), comment).await
}

async fn post_page_full(
    state: &ApiState,
    page: TenantPage,
    id: Uuid,
    errors: FormErrors,
    comment: Option<(super::comments::CommentDraft, String)>,
) -> Result<Response, UiError> {
    let detail = state.app.post_detail(&page.access, id).await?;
    let comments =
        super::comments::panel(state, &page, crate::store::CommentSubject::Post(id), None, comment).await?;
    let (zone, _) = reader_zone(state, &page).await?;
    let post = detail.post;
    let local_value = post.scheduled_at.map(|at| schedule::instant_to_local(at, &zone)).unwrap_or_default();
    let (review, activity_href) = match state.app.post_review(&page.access, id).await {
        Ok(review) => (Some(review), None),
        Err(Error::Conflict { code: "reviewed_with_activity", .. }) => {
            let href = match (post.project_id, post.activity_id) {
                (Some(project), Some(activity)) => {
                    Some(page.path(&format!("/projects/{project}/activities/{activity}")))
                }
                _ => None,
            };
            (None, href)
        }
        Err(e) => return Err(e.into()),
    };
    let self_approve = review.as_ref().is_some_and(|r| r.workflow_id.is_none() && r.state != "approved");
    let metrics = if post.status == PostStatus::Published {
        Some(metrics_card(&state.app.post_metrics(&page.access, id).await?, network_name(post.network)))
    } else {
        None
    };
    let view = PostPage {
        metrics,
        self_approve,
        review,
        activity_href,
        findings: 0,
        externals: Vec::new(),
        links: Vec::new(),
        new_link: None,
        can_update: page.can(Permission::PostsWrite),
        network: network_name(post.network),
        badge: post_badge(post.status),
        scheduled: When::maybe(post.scheduled_at),
        published: When::maybe(post.published_at),
        local_value,
        zone,
        attempts: detail
            .attempts
            .iter()
            .map(|a| AttemptRow {
                kind: a.kind.clone(),
                when: When::of(a.started_at),
                status: a.http_status.map(|s| s.to_string()).unwrap_or_else(|| "—".into()),
                outcome: a.outcome.replace('_', " "),
                request_id: a.request_id.clone().unwrap_or_default(),
                detail: a.detail.chars().take(300).collect(),
            })
            .collect(),
        can_write: page.can(Permission::PostsWrite),
        editable: post.status.editable(),
        errors,
        base: page.path(&format!("/posts/{id}")),
        calendar_href: page.path("/calendar"),
        comments,
        post,
        shell: page.shell,
    };
    let errors = view.errors.clone();
    Ok(render_form(&view, &errors))
}

pub async fn show_post(
    State(state): State<ApiState>,
    page: TenantPage,
    Path((_, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, UiError> {
    post_page(&state, page, id, FormErrors::default()).await
}

#[derive(Debug, Default, Deserialize)]
pub struct PostForm {
    text: Option<String>,
    local_time: Option<String>,
    time_zone: Option<String>,
    /// Calendar drops send where to go back to.
    back: Option<String>,
    /// Approve the post as it is while rescheduling it.
    approve: Option<String>,
}

async fn change_post(
    state: &ApiState,
    page: TenantPage,
    id: Uuid,
    update: UpdatePost,
    back: Option<String>,
) -> Result<Response, UiError> {
    match state.app.update_post(&page.access, id, update).await {
        Ok(_) => {
            let fallback = page.path(&format!("/posts/{id}"));
            let back =
                back.filter(|b| b.starts_with(&page.path("/")) && !b.contains("//")).unwrap_or(fallback);
            Ok(see_other(&back))
        }
        Err(e) => {
            let mut errors = FormErrors::from_error(e)?;
            if !errors.get("scheduled_at").is_empty() {
                errors.add("local_time", errors.get("scheduled_at").to_owned());
            }
            post_page(state, page, id, errors).await
        }
    }
}

pub async fn reschedule_post(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<PostForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let Some(local) = form.local_time.filter(|l| !l.is_empty()) else {
        let mut errors = FormErrors::default();
        errors.add("local_time", "Choose a date and time.");
        return post_page(&state, page, id, errors).await;
    };
    let mut update = UpdatePost { approve: form.approve.is_some(), ..UpdatePost::default() };
    update.set_when(Schedule { local_time: Some(local), time_zone: form.time_zone, ..Schedule::default() });
    change_post(&state, page, id, update, form.back).await
}

pub async fn edit_post(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<PostForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let update = UpdatePost { text: Some(form.text.unwrap_or_default()), ..UpdatePost::default() };
    change_post(&state, page, id, update, None).await
}

pub async fn cancel_post(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    change_post(&state, submit.page, id, UpdatePost { cancel: true, ..UpdatePost::default() }, None).await
}

#[derive(Debug, Deserialize)]
pub struct PostReviewForm {
    decision: Option<String>,
    comment: Option<String>,
    version: Option<String>,
    step: Option<String>,
}

/// A decision on the post's own review (the panel's Approve, Request
/// changes, Reject, Restart).
pub async fn review_post(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<PostReviewForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let input = super::reviews::decision_form(
        form.decision.as_deref(),
        form.comment,
        form.version.as_deref(),
        form.step.as_deref(),
        false,
    );
    match state.app.decide_post_review(&page.access, id, input).await {
        Ok(_) => Ok(see_other(&format!("{}#review", page.path(&format!("/posts/{id}"))))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            post_page(&state, page, id, errors).await
        }
    }
}

/// Asks the approvers of the post's current step to review it.
pub async fn request_post_review(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    match state.app.request_post_review(&page.access, id).await {
        Ok(_) => Ok(see_other(&format!("{}#review", page.path(&format!("/posts/{id}"))))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            post_page(&state, page, id, errors).await
        }
    }
}

pub async fn retry_post(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let mut update = UpdatePost { approve: true, ..UpdatePost::default() };
    update.set_when(Schedule { now: true, ..Schedule::default() });
    change_post(&state, submit.page, id, update, None).await
}

pub async fn delete_post(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    match state.app.delete_post(&page.access, id).await {
        Ok(()) => Ok(see_other(&page.path("/calendar"))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            post_page(&state, page, id, errors).await
        }
    }
}

// ----- Composer -------------------------------------------------------------------

struct ComposerAccount {
    id: Uuid,
    handle: String,
    network: &'static str,
    network_key: String,
    limit: usize,
    checked: bool,
    variant: String,
    error: String,
}

#[derive(Template)]
#[template(path = "composer.html")]
struct ComposerPage {
    shell: Shell,
    accounts: Vec<ComposerAccount>,
    text: String,
    image_url: String,
    when: String,
    local_time: String,
    zone: String,
    activity: String,
    activity_title: Option<String>,
    errors: FormErrors,
    action: String,
    accounts_href: String,
    can_manage_accounts: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct ComposerQuery {
    activity: Option<String>,
    variant: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ComposerForm {
    #[serde(default, rename = "account")]
    accounts: Vec<String>,
    text: Option<String>,
    image_url: Option<String>,
    when: Option<String>,
    local_time: Option<String>,
    time_zone: Option<String>,
    activity: Option<String>,
    #[serde(flatten)]
    rest: std::collections::HashMap<String, String>,
}

#[allow(clippy::too_many_arguments)]
async fn composer_page(
    state: &ApiState,
    page: TenantPage,
    form: ComposerForm,
    errors: FormErrors,
    account_errors: &[(Uuid, String)],
    activity_title: Option<String>,
    preselect: Option<Network>,
) -> Result<Response, UiError> {
    page.access.require(Permission::PostsWrite)?;
    let (zone, _) = reader_zone(state, &page).await?;
    let accounts = state.app.social_accounts(&page.access).await?;
    let view = ComposerPage {
        accounts: accounts
            .iter()
            .map(|a: &AccountView| ComposerAccount {
                id: a.id,
                handle: a.handle.clone(),
                network: network_name(a.network),
                network_key: a.network.to_string(),
                limit: crate::service::rules(a.network).limit,
                checked: form.accounts.iter().any(|id| *id == a.id.to_string())
                    || preselect == Some(a.network),
                variant: form.rest.get(&format!("variant-{}", a.id)).cloned().unwrap_or_default(),
                error: account_errors
                    .iter()
                    .find(|(id, _)| *id == a.id)
                    .map(|(_, e)| e.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        text: form.text.unwrap_or_default(),
        image_url: form.image_url.unwrap_or_default(),
        when: form.when.unwrap_or_else(|| "schedule".into()),
        local_time: form.local_time.unwrap_or_default(),
        zone: form.time_zone.unwrap_or(zone),
        activity: form.activity.unwrap_or_default(),
        activity_title,
        errors,
        action: page.path("/posts/new"),
        accounts_href: page.path("/settings/accounts"),
        can_manage_accounts: page.can(Permission::AccountsManage),
        shell: page.shell,
    };
    let errors = view.errors.clone();
    Ok(render_form(&view, &errors))
}

pub async fn new_post(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(q): Query<ComposerQuery>,
) -> Result<Response, UiError> {
    let mut form = ComposerForm::default();
    let mut title = None;
    let mut preselect = None;
    if let Some(activity_id) = parse_uuid(q.activity.as_deref()) {
        let (activity_title, variants) = state.app.social_variants(&page.access, activity_id).await?;
        title = Some(activity_title);
        form.activity = Some(activity_id.to_string());
        let variant = q.variant.clone().unwrap_or_default();
        form.text = variants.iter().find(|(p, _)| *p == variant).map(|(_, t)| t.clone());
        preselect = variant.parse::<Network>().ok();
    }
    composer_page(&state, page, form, FormErrors::default(), &[], title, preselect).await
}

pub async fn create_posts(
    State(state): State<ApiState>,
    submit: Submit<ComposerForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let mut errors = FormErrors::default();
    let ids: Vec<Uuid> = form.accounts.iter().filter_map(|a| Uuid::parse_str(a).ok()).collect();
    if ids.is_empty() {
        errors.add("account", "Choose at least one account.");
    }
    let main = form.text.clone().unwrap_or_default();
    let when = match form.when.as_deref().unwrap_or("schedule") {
        "now" => Schedule { now: true, ..Schedule::default() },
        "queue" => Schedule { queue: true, ..Schedule::default() },
        "best_time" => Schedule { best_time: true, ..Schedule::default() },
        "draft" => Schedule::default(),
        _ => match form.local_time.clone().filter(|l| !l.is_empty()) {
            Some(local) => {
                Schedule { local_time: Some(local), time_zone: form.time_zone.clone(), ..Schedule::default() }
            }
            None => {
                errors.add("local_time", "Choose a date and time, or another option.");
                Schedule::default()
            }
        },
    };
    if !errors.is_empty() {
        return composer_page(&state, page, form, errors, &[], None, None).await;
    }
    let activity_id = parse_uuid(form.activity.as_deref());
    // Every account's text is checked before anything is created.
    let accounts = state.app.social_accounts(&page.access).await?;
    let mut account_errors = Vec::new();
    let mut plan = Vec::new();
    let image = form.image_url.clone().filter(|u| !u.trim().is_empty());
    let insecure = state.app.publisher.platforms.settings.allow_insecure_instances;
    for id in &ids {
        let Some(account) = accounts.iter().find(|a| a.id == *id) else { continue };
        let text = crate::service::normalize_text(
            form.rest.get(&format!("variant-{id}")).filter(|v| !v.trim().is_empty()).unwrap_or(&main),
        );
        // The image goes where images are published; the others post the text.
        let image =
            image.clone().filter(|_| matches!(account.network, Network::Facebook | Network::Instagram));
        let checked = crate::service::check_text(account.network, &text)
            .and_then(|()| crate::service::check_image(account.network, image.as_deref(), insecure));
        match checked {
            Ok(image) => plan.push((account.id, text, image)),
            Err(Error::Invalid { field, message }) if field == "image_url" => {
                errors.add("image_url", format!("{}: {}", account.handle, super::page::ui_words(&message)));
            }
            Err(Error::Invalid { message, .. }) => {
                account_errors.push((account.id, super::page::ui_words(&message)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !account_errors.is_empty() || !errors.is_empty() {
        return composer_page(&state, page, form, errors, &account_errors, None, None).await;
    }
    let mut created = 0;
    // The composer's author approves what they write, unless the project
    // reviews posts through its workflow (a changed variant is then
    // reviewed on its own, from the post's page).
    let approve = !state.app.posts_reviewed_in_workflow(&page.access, activity_id).await?;
    for (account_id, text, image_url) in plan {
        let mut req = CreatePost {
            account_id,
            text: Some(text),
            image_url,
            activity_id,
            approve,
            ..CreatePost::default()
        };
        req.set_when(when.clone());
        match state.app.create_post(&page.access, req, None).await {
            Ok(_) => created += 1,
            Err(e) => {
                let mut errors = FormErrors::from_error(e)?;
                if !errors.get("scheduled_at").is_empty() {
                    errors.add("local_time", errors.get("scheduled_at").to_owned());
                }
                if created > 0 {
                    errors.add(
                        "",
                        format!("{created} post(s) were scheduled before this error; see the calendar."),
                    );
                }
                return composer_page(&state, page, form, errors, &[], None, None).await;
            }
        }
    }
    Ok(see_other(&page.path("/calendar")))
}

// ----- Accounts -------------------------------------------------------------------

struct AccountRow {
    view: AccountView,
    network: &'static str,
    badge: &'static str,
    expires: Option<When>,
    last_success: Option<When>,
    last_checked: Option<When>,
    limited_until: Option<When>,
    slots: String,
    action: String,
    reconnect_href: String,
    /// The organisation's projects, checked where the account is limited to them.
    projects: Vec<Choice>,
    /// Best times to post, for those who may read posts.
    best: Option<BestTimesText>,
    /// `1234 on 2026-12-06 (UTC)`, not read yet, or why not.
    followers: String,
}

/// An account's best times as the accounts page says them.
struct BestTimesText {
    /// `Tue 09:00, Thu 17:00 (low confidence)`, or empty.
    slots: String,
    explanation: String,
    definition: Option<&'static str>,
    /// The hours of the week as a heat map (SVG), when there are any.
    heat_map: String,
}

fn best_times_text(best: &crate::service::BestTimes) -> BestTimesText {
    let slots = if best.slots.is_empty() {
        String::new()
    } else {
        format!(
            "{} ({} confidence)",
            best.slots.iter().map(|s| s.hour.label.as_str()).collect::<Vec<_>>().join(", "),
            best.confidence
        )
    };
    let heat_map = if best.hours.is_empty() {
        String::new()
    } else {
        let cells: Vec<(u16, f64)> = best.hours.iter().map(|h| (h.hour_of_week, h.score)).collect();
        let described = best
            .hours
            .iter()
            .map(|h| format!("{}: {} post(s)", h.label, h.posts))
            .collect::<Vec<_>>()
            .join("; ");
        crate::charts::week_heat_map(
            &format!("Engagement by hour of the week ({}), darker is better", best.time_zone),
            &described,
            &cells,
        )
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "a chart failed to draw");
            String::new()
        })
    };
    BestTimesText { slots, explanation: best.explanation.clone(), definition: best.definition, heat_map }
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    shell: Shell,
    accounts: Vec<AccountRow>,
    can_manage: bool,
    connected: bool,
    errors: FormErrors,
    base: String,
    mastodon_instance: String,
}

fn slots_text(slots: &[PostingSlot]) -> String {
    slots
        .iter()
        .map(|s| format!("{} {}", <&'static str>::from(s.weekday), s.time))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `mon 09:00, fri 17:30` (or `weekdays 09:00`) as slots.
fn parse_slots(text: &str) -> Result<Vec<PostingSlot>, String> {
    let mut slots = Vec::new();
    for part in text.split([',', ';', '\n']).map(str::trim).filter(|p| !p.is_empty()) {
        let (day, time) = part
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{part:?}: write a day and a time, e.g. mon 09:00"))?;
        let time =
            SlotTime::parse(time.trim()).ok_or_else(|| format!("{part:?}: the time is HH:MM, e.g. 09:00"))?;
        let days: Vec<SlotDay> = match day.to_ascii_lowercase().as_str() {
            "weekdays" => vec![SlotDay::Mon, SlotDay::Tue, SlotDay::Wed, SlotDay::Thu, SlotDay::Fri],
            "daily" | "every" => vec![
                SlotDay::Mon,
                SlotDay::Tue,
                SlotDay::Wed,
                SlotDay::Thu,
                SlotDay::Fri,
                SlotDay::Sat,
                SlotDay::Sun,
            ],
            d => vec![
                d.get(..3)
                    .unwrap_or(d)
                    .parse::<SlotDay>()
                    .map_err(|_| format!("{part:?}: the day is mon, tue, … sun, weekdays or daily"))?,
            ],
        };
        slots.extend(days.into_iter().map(|weekday| PostingSlot { weekday, time }));
    }
    Ok(slots)
}

async fn accounts_page(
    state: &ApiState,
    page: TenantPage,
    errors: FormErrors,
    connected: bool,
) -> Result<Response, UiError> {
    page.access.require(Permission::AccountsRead)?;
    let accounts = state.app.social_accounts(&page.access).await?;
    let projects = super::page::every(|p| state.app.projects(&page.access, p)).await?;
    let base = page.path("/settings/accounts");
    let best = if page.can(Permission::PostsRead) {
        state.app.best_times_all(&page.access).await?
    } else {
        std::collections::HashMap::new()
    };
    let followers = state.app.latest_followers(&page.access).await?;
    let view = AccountsPage {
        accounts: accounts
            .into_iter()
            .map(|a| AccountRow {
                followers: match followers.get(&a.id) {
                    Some(f) => match (&f.followers, &f.day, &f.error) {
                        (_, _, Some(error)) if f.followers.is_none() => format!("not read: {error}"),
                        (Some(n), Some(day), error) => format!(
                            "{n} on {day} (UTC){}",
                            error
                                .as_ref()
                                .map(|e| format!("; the last read failed: {e}"))
                                .unwrap_or_default()
                        ),
                        _ => "not read yet (read once a day)".into(),
                    },
                    None => "not read yet (read once a day)".into(),
                },
                network: network_name(a.network),
                badge: match a.health.as_str() {
                    "connected" => "badge good",
                    "rate_limited" => "badge warn",
                    _ => "badge bad",
                },
                expires: When::maybe(a.token_expires_at),
                last_success: When::maybe(a.last_success_at),
                last_checked: When::maybe(a.last_checked_at),
                limited_until: When::maybe(a.rate_limited_until),
                slots: slots_text(&a.posting_slots),
                best: best.get(&a.id).map(best_times_text),
                action: format!("{base}/{}", a.id),
                reconnect_href: match (&a.network, &a.instance_url) {
                    (Network::Bluesky, _) => format!("{base}#connect"),
                    (Network::Mastodon, Some(instance)) => format!(
                        "{base}/connect?network=mastodon&instance={}",
                        form_urlencoded::byte_serialize(instance.as_bytes()).collect::<String>()
                    ),
                    (n, _) => format!("{base}/connect?network={n}"),
                },
                projects: projects
                    .iter()
                    .map(|p| Choice {
                        value: p.id.to_string(),
                        label: p.name.to_string(),
                        selected: a.project_ids.as_ref().is_some_and(|ids| ids.contains(&p.id)),
                    })
                    .collect(),
                view: a,
            })
            .collect(),
        can_manage: page.can(Permission::AccountsManage),
        connected,
        errors,
        mastodon_instance: String::new(),
        base,
        shell: page.shell,
    };
    let errors = view.errors.clone();
    Ok(render_form(&view, &errors))
}

#[derive(Debug, Default, Deserialize)]
pub struct AccountsQuery {
    connected: Option<String>,
}

pub async fn accounts(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(q): Query<AccountsQuery>,
) -> Result<Response, UiError> {
    accounts_page(&state, page, FormErrors::default(), q.connected.is_some()).await
}

#[derive(Debug, Default, Deserialize)]
pub struct ConnectQuery {
    network: Option<String>,
    instance: Option<String>,
}

#[derive(Template)]
#[template(path = "connect.html")]
struct ConnectPage {
    shell: Shell,
    network: &'static str,
    href: String,
}

/// Starts connecting: to the platform's approval page. A link (not a
/// form) leads here, so going on to another site is a plain navigation.
pub async fn connect(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(q): Query<ConnectQuery>,
) -> Result<Response, UiError> {
    let network = q
        .network
        .as_deref()
        .unwrap_or_default()
        .parse::<Network>()
        .map_err(|_| UiError::bad_request("choose X, LinkedIn, Facebook, Instagram or Mastodon"))?;
    let req = StartConnect { network, instance: q.instance.clone(), project_ids: None };
    match state.app.start_connect(&page.access, req).await {
        Ok(started) => Ok(render(&ConnectPage {
            network: network_name(network),
            href: started.authorize_url,
            shell: page.shell,
        })),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            accounts_page(&state, page, errors, false).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct BlueskyForm {
    identifier: Option<String>,
    app_password: Option<String>,
    service: Option<String>,
}

pub async fn connect_bluesky(
    State(state): State<ApiState>,
    submit: Submit<BlueskyForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let req = crate::service::ConnectBluesky {
        identifier: form.identifier.unwrap_or_default(),
        app_password: secrecy::SecretString::from(form.app_password.unwrap_or_default()),
        service: form.service.filter(|s| !s.trim().is_empty()),
        project_ids: None,
    };
    match state.app.connect_bluesky(&page.access, req).await {
        Ok(_) => Ok(see_other(&page.path("/settings/accounts?connected=1"))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            accounts_page(&state, page, errors, false).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct AccountForm {
    posting_time_zone: Option<String>,
    posting_slots: Option<String>,
    /// The projects the account is limited to; none: every project.
    #[serde(default, rename = "project")]
    projects: Vec<String>,
}

pub async fn update_account(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<AccountForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let slots = match parse_slots(form.posting_slots.as_deref().unwrap_or_default()) {
        Ok(slots) => slots,
        Err(message) => {
            let mut errors = FormErrors::default();
            errors.add("posting_slots", message);
            return accounts_page(&state, page, errors, false).await;
        }
    };
    let mut project_ids = Vec::new();
    for id in &form.projects {
        match Uuid::parse_str(id) {
            Ok(id) => project_ids.push(id),
            Err(_) => return Err(UiError::bad_request("a project in the form is not a project id")),
        }
    }
    let req = UpdateAccount {
        project_ids: Some((!project_ids.is_empty()).then_some(project_ids)),
        posting_time_zone: form.posting_time_zone,
        posting_slots: Some(slots),
    };
    match state.app.update_social_account(&page.access, id, req).await {
        Ok(_) => Ok(see_other(&page.path("/settings/accounts"))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            accounts_page(&state, page, errors, false).await
        }
    }
}

pub async fn disconnect_account(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.disconnect_social_account(&page.access, id).await?;
    Ok(see_other(&page.path("/settings/accounts")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_read_as_people_write_them() {
        let slots = parse_slots("weekdays 09:00, sat 10:30").unwrap();
        assert_eq!(slots.len(), 6);
        assert_eq!(slots_text(&slots[4..]), "fri 09:00, sat 10:30");
        assert!(parse_slots("someday 09:00").unwrap_err().contains("the day"));
        assert!(parse_slots("mon 9am").unwrap_err().contains("HH:MM"));
        assert_eq!(parse_slots("Monday 17:30").unwrap()[0].weekday, SlotDay::Mon);
    }
}
