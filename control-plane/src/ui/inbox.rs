//! The engagement inbox page: mentions of the organisation's accounts and
//! replies to its posts, newest or most urgent first, with filters (open or
//! done, account, kind, sentiment, intent, mine or nobody's), each item's
//! labels from its classification (or why it waits for one), whole
//! threads one click away, and each item
//! marked done, reopened, or assigned from its card. Each card shows the
//! item's suggested reply (drafted by an agent, with the documents it
//! draws on), which a person edits and sends, or asks to be drafted again;
//! once answered, the reply's post and its status. Admins set whether
//! replies are drafted by themselves and which intents are answered
//! without a person. Accounts whose inbox could not be read say why.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::page::{FormErrors, Shell, UiError, render_form, see_other};
use super::session::{Path, Query, Submit, TenantPage};
use super::view::When;
use crate::api::ApiState;
use crate::domain::Permission;
use crate::publishing::platforms::reads_inbox;
use crate::service::inbox::{
    CreateListeningQuery, HASHTAG, InboxItemView, InboxQuery, KEYWORD, LeadFromItem, ReplyIn,
    UpdateInboxItem, UpdateInboxSettings,
};
use crate::store::PageRequest;

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

struct QueryCard {
    id: Uuid,
    /// `#openhouse`, or the keyword in quotes.
    label: String,
    account: String,
    error: Option<String>,
    /// The inbox narrowed to what it found.
    href: String,
}

struct ItemCard {
    id: Uuid,
    author: String,
    /// The handle beside the name, when there is a name.
    author_handle: Option<String>,
    kind: String,
    account: String,
    posted: When,
    text: String,
    url: Option<String>,
    /// "Open on Mastodon".
    open_label: String,
    post_href: Option<String>,
    thread_href: String,
    done: bool,
    assignee: Option<String>,
    mine: bool,
    /// Held sealed until an agent screened it.
    sealed: bool,
    redacted: bool,
    /// "Deleted on Bluesky on 7 Dec, 21:40": its author deleted it there.
    deleted: Option<String>,
    /// "Negative", "Complaint", "Urgent", "Personal data", "German" ...
    labels: Vec<Label>,
    /// Why it is not classified yet (or failed).
    waiting: Option<String>,
    /// Someone wanting to buy or visit, with no lead yet: the form.
    suggest_lead: bool,
    lead_href: Option<String>,
    /// A refused lead form of this item: its e-mail error, the rest, and
    /// what was typed.
    lead_email_error: String,
    lead_errors: Vec<String>,
    typed_email: String,
    reply: ReplyCard,
}

/// An item's suggested reply on its card.
struct ReplyCard {
    /// `none`, `drafting`, `drafted`, `failed` or `answered`.
    status: String,
    /// What the reply box holds: what was typed into a refused form, else
    /// the draft.
    text: String,
    /// "Drawn from open-house.md".
    sources: Option<String>,
    ungrounded: Option<String>,
    note: Option<String>,
    needs_person: Option<String>,
    /// The answering post: its page, status and link on the platform.
    post_href: Option<String>,
    post_status: String,
    post_url: Option<String>,
    auto: bool,
    /// The network takes replies from here.
    can_send: bool,
    /// "@dana@elsewhere.example is put first."
    handle_note: String,
    text_error: String,
    errors: Vec<String>,
}

/// A card's form that was refused (`lead` or `reply`): for which item,
/// why, what was typed.
#[derive(Debug, Default)]
struct CardAttempt {
    item: Option<Uuid>,
    form: &'static str,
    errors: FormErrors,
    typed: String,
}

impl CardAttempt {
    fn of(&self, item: Uuid, form: &str) -> Option<&Self> {
        (self.item == Some(item) && self.form == form).then_some(self)
    }
}

fn reply_card(page: &TenantPage, i: &InboxItemView, attempt: &CardAttempt) -> ReplyCard {
    let r = &i.reply;
    let refused = attempt.of(i.id, "reply");
    ReplyCard {
        status: r.status.clone(),
        text: refused.map_or_else(|| r.draft.clone().unwrap_or_default(), |a| a.typed.clone()),
        sources: (!r.sources.is_empty()).then(|| format!("Drawn from {}", r.sources.join(", "))),
        ungrounded: r.ungrounded.clone(),
        note: r.note.clone(),
        needs_person: r.needs_person.clone(),
        post_href: r.post_id.map(|p| page.path(&format!("/posts/{p}"))),
        post_status: match r.post_status.as_deref() {
            Some("draft") => "a draft for your project's review".into(),
            Some(status) => status.replace('_', " "),
            None => String::new(),
        },
        post_url: r.post_url.clone(),
        auto: r.auto,
        can_send: crate::publishing::replies::can_reply(i.network) && i.deleted_at.is_none(),
        handle_note: format!("{} is put first unless you name them.", i.author_handle),
        text_error: refused.map(|a| a.errors.get("text").to_owned()).unwrap_or_default(),
        errors: refused.map(|a| a.errors.general(&["text"])).unwrap_or_default(),
    }
}

struct Label {
    text: String,
    /// `good`, `warn`, `bad` or empty.
    tone: &'static str,
}

fn labels_of(i: &InboxItemView) -> Vec<Label> {
    let Some(c) = &i.classification else { return Vec::new() };
    let mut out = Vec::new();
    let tone = match c.sentiment.as_str() {
        "positive" => "good",
        "negative" => "bad",
        _ => "",
    };
    out.push(Label { text: capitalised(&c.sentiment), tone });
    out.push(Label { text: capitalised(&c.intent.replace('_', " ")), tone: "" });
    match c.urgency.as_str() {
        "high" => out.push(Label { text: "Urgent".into(), tone: "bad" }),
        "low" => out.push(Label { text: "Low urgency".into(), tone: "" }),
        _ => {}
    }
    if c.personal_data {
        out.push(Label { text: "Personal data: a person answers".into(), tone: "warn" });
    }
    if c.language != "en" && c.language != "und" {
        out.push(Label { text: format!("Language: {}", c.language), tone: "" });
    }
    out
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|f| f.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxTemplate {
    shell: Shell,
    items: Vec<ItemCard>,
    statuses: Vec<Choice>,
    accounts: Vec<Choice>,
    kinds: Vec<Choice>,
    assignees: Vec<Choice>,
    sentiments: Vec<Choice>,
    intents: Vec<Choice>,
    sorts: Vec<Choice>,
    /// Accounts whose last read failed, and why.
    problems: Vec<String>,
    /// Connected accounts on networks the inbox does not read yet.
    unread_networks: Vec<String>,
    open: i64,
    thread: Option<String>,
    can_work: bool,
    next: Option<String>,
    action_base: String,
    filter_action: String,
    queries: Vec<QueryCard>,
    /// Accounts a hashtag or keyword can be listened for through
    /// (Mastodon, Bluesky, X).
    listen_accounts: Vec<Choice>,
    /// Hashtag or keyword, the one last chosen selected.
    listen_kinds: Vec<Choice>,
    errors: FormErrors,
    typed_query: String,
    /// The page's own address, to come back to after an action.
    here: String,
    /// Replies drafted by themselves, and the intents answered alone.
    draft_replies: bool,
    auto_intents: Vec<Choice>,
    can_manage: bool,
    crisis_min_count: i64,
    crisis_z: String,
    /// Open crisis alerts, then the last few closed.
    alerts: Vec<AlertCard>,
}

struct AlertCard {
    open: bool,
    text: String,
    when: When,
    /// The inbox narrowed to the scope's negative items.
    href: String,
}

/// The intents a tenant may have answered without a person, as the
/// settings form names them.
const AUTO_INTENTS: [(&str, &str); 3] =
    [("praise", "Praise"), ("question", "Questions"), ("purchase_interest", "Wants to buy or visit")];

/// The filters as the page's form sends them (all strings; empty is none).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    thread: Option<String>,
    #[serde(default)]
    query_id: Option<String>,
    #[serde(default)]
    sentiment: Option<String>,
    #[serde(default)]
    intent: Option<String>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    before: Option<String>,
}

fn choices(current: Option<&str>, options: &[(&str, &str)]) -> Vec<Choice> {
    options
        .iter()
        .map(|(value, label)| Choice {
            value: (*value).to_owned(),
            label: (*label).to_owned(),
            selected: current.unwrap_or("") == *value,
        })
        .collect()
}

fn query_string(f: &Filters, before: Option<Uuid>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("status", &f.status),
        ("account_id", &f.account_id),
        ("kind", &f.kind),
        ("assignee", &f.assignee),
        ("thread", &f.thread),
        ("query_id", &f.query_id),
        ("sentiment", &f.sentiment),
        ("intent", &f.intent),
        ("sort", &f.sort),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            q.append_pair(k, v);
        }
    }
    if let Some(b) = before {
        q.append_pair("before", &b.to_string());
    }
    q.finish()
}

pub async fn page(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(filters): Query<Filters>,
) -> Result<Response, UiError> {
    show(&state, page, filters, FormErrors::default(), ListenForm::default(), CardAttempt::default()).await
}

async fn show(
    state: &ApiState,
    page: TenantPage,
    filters: Filters,
    errors: FormErrors,
    typed: ListenForm,
    attempt: CardAttempt,
) -> Result<Response, UiError> {
    page.access.require(Permission::InboxRead)?;
    // The page opens on open items; "all" shows both.
    let status = match filters.status.as_deref() {
        None => Some("open".to_owned()),
        Some("all") => None,
        Some(s) => Some(s.to_owned()),
    };
    let me = page.access.caller.creator_id();
    let assignee = match filters.assignee.as_deref() {
        Some("me") => me.map(|id| id.to_string()),
        other => other.map(str::to_owned),
    };
    let query = InboxQuery {
        status,
        account_id: filters.account_id.clone(),
        network: None,
        kind: filters.kind.clone(),
        query_id: filters.query_id.clone(),
        assignee,
        thread: filters.thread.clone(),
        sentiment: filters.sentiment.clone(),
        intent: filters.intent.clone(),
        sort: filters.sort.clone(),
        before: filters.before.clone(),
        limit: Some(50),
    };
    let found = state.app.inbox(&page.access, &query).await?;
    let settings = state.app.inbox_settings(&page.access).await?;
    let alerts = state
        .app
        .crisis_alerts(&page.access, &crate::service::inbox::CrisisQuery { open: None, limit: Some(5) })
        .await?;
    let queries = state.app.listening_queries(&page.access).await?;
    let accounts = state.app.social_accounts(&page.access).await?;
    let members = state.app.members(&page.access, PageRequest { after: None, limit: 200 }).await?.items;
    let problems: Vec<String> =
        found.failing.iter().map(|f| format!("{} ({}): {}", f.handle, f.network.label(), f.error)).collect();
    let mut unread_networks: Vec<String> =
        accounts.iter().filter(|a| !reads_inbox(a.network)).map(|a| a.network.label().to_owned()).collect();
    unread_networks.sort();
    unread_networks.dedup();
    let name_of = |id: Uuid| {
        members
            .iter()
            .find(|m| m.user_id == id)
            .map_or_else(|| "a former member".to_owned(), |m| m.display_name.to_string())
    };
    let items = found
        .items
        .iter()
        .map(|i: &InboxItemView| ItemCard {
            id: i.id,
            author: i.author_name.clone().unwrap_or_else(|| i.author_handle.clone()),
            author_handle: i.author_name.as_ref().map(|_| i.author_handle.clone()),
            kind: match (i.kind.as_str(), i.query_id.and_then(|q| queries.iter().find(|x| x.id == q))) {
                ("reply", _) => "Reply to your post".to_owned(),
                ("listening", Some(q)) => format!("Listening: {}", q.label()),
                ("listening", None) => "Listening".to_owned(),
                _ => "Mention".to_owned(),
            },
            account: format!("{} ({})", i.handle, i.network.label()),
            posted: When::of(i.posted_at),
            text: i.text.clone(),
            url: i.url.clone(),
            open_label: format!("Open on {}", i.network.label()),
            post_href: i.post_id.map(|p| page.path(&format!("/posts/{p}"))),
            thread_href: page.path(&format!(
                "/inbox?{}",
                query_string(
                    &Filters {
                        status: Some("all".into()),
                        account_id: Some(i.account_id.to_string()),
                        thread: Some(i.thread.clone()),
                        ..Filters::default()
                    },
                    None
                )
            )),
            done: i.status == "done",
            assignee: i.assignee_id.map(|a| if Some(a) == me { "you".to_owned() } else { name_of(a) }),
            mine: i.assignee_id.is_some() && i.assignee_id == me,
            sealed: i.sealed,
            redacted: i.redacted,
            deleted: i
                .deleted_at
                .map(|at| format!("Deleted on {} ({})", i.network.label(), When::of(at).text)),
            labels: labels_of(i),
            waiting: (i.classification.is_none()).then(|| i.classification_note.clone()).flatten(),
            suggest_lead: i.suggest_lead,
            lead_href: i.lead_id.map(|l| page.path(&format!("/leads/{l}"))),
            lead_email_error: attempt
                .of(i.id, "lead")
                .map(|a| a.errors.get("email").to_owned())
                .unwrap_or_default(),
            lead_errors: attempt.of(i.id, "lead").map(|a| a.errors.general(&["email"])).unwrap_or_default(),
            typed_email: attempt.of(i.id, "lead").map(|a| a.typed.clone()).unwrap_or_default(),
            reply: reply_card(&page, i, &attempt),
        })
        .collect();
    let here = page.path(&format!(
        "/inbox?{}",
        query_string(&filters, filters.before.as_deref().and_then(|b| b.parse().ok()))
    ));
    let view = InboxTemplate {
        items,
        statuses: choices(
            filters.status.as_deref().or(Some("open")),
            &[("open", "Open"), ("done", "Done"), ("all", "All")],
        ),
        accounts: std::iter::once(Choice {
            value: String::new(),
            label: "All accounts".into(),
            selected: filters.account_id.as_deref().unwrap_or("").is_empty(),
        })
        .chain(accounts.iter().map(|a| Choice {
            value: a.id.to_string(),
            label: format!("{} ({})", a.handle, a.network.label()),
            selected: filters.account_id.as_deref() == Some(a.id.to_string().as_str()),
        }))
        .collect(),
        kinds: choices(
            filters.kind.as_deref(),
            &[
                ("", "Everything"),
                ("mention", "Mentions"),
                ("reply", "Replies to your posts"),
                ("listening", "Listening"),
            ],
        ),
        assignees: choices(
            filters.assignee.as_deref(),
            &[("", "Anyone"), ("me", "Assigned to me"), ("none", "Nobody")],
        ),
        sentiments: choices(
            filters.sentiment.as_deref(),
            &[("", "Any"), ("negative", "Negative"), ("neutral", "Neutral"), ("positive", "Positive")],
        ),
        intents: choices(
            filters.intent.as_deref(),
            &[
                ("", "Any"),
                ("question", "Questions"),
                ("complaint", "Complaints"),
                ("praise", "Praise"),
                ("purchase_interest", "Wants to buy"),
                ("spam", "Spam"),
                ("other", "Other"),
            ],
        ),
        sorts: choices(filters.sort.as_deref(), &[("", "Newest first"), ("urgent", "Most urgent first")]),
        problems,
        unread_networks,
        open: found.open,
        thread: filters.thread.clone().filter(|t| !t.is_empty()),
        can_work: page.can(Permission::InboxWork),
        next: found.next_before.map(|b| page.path(&format!("/inbox?{}", query_string(&filters, Some(b))))),
        action_base: page.path("/inbox"),
        filter_action: page.path("/inbox"),
        queries: queries
            .iter()
            .map(|q| QueryCard {
                id: q.id,
                label: q.label(),
                account: format!("{} ({})", q.handle, q.network.label()),
                error: q.error.clone(),
                href: page.path(&format!("/inbox?status=all&kind=listening&query_id={}", q.id)),
            })
            .collect(),
        listen_accounts: accounts
            .iter()
            .filter(|a| reads_inbox(a.network))
            .map(|a| Choice { value: a.id.to_string(), label: a.handle.clone(), selected: false })
            .collect(),
        listen_kinds: choices(
            Some(typed.kind.as_str()),
            &[(HASHTAG, "A hashtag"), (KEYWORD, "A keyword or brand name")],
        ),
        errors,
        typed_query: typed.query,
        here,
        draft_replies: settings.draft_replies,
        auto_intents: AUTO_INTENTS
            .iter()
            .map(|(value, label)| Choice {
                value: (*value).to_owned(),
                label: (*label).to_owned(),
                selected: settings.auto_reply_intents.iter().any(|i| i == value),
            })
            .collect(),
        can_manage: page.can(Permission::SettingsManage),
        crisis_min_count: settings.crisis_min_count,
        crisis_z: format!("{}", settings.crisis_z),
        alerts: alerts
            .iter()
            .map(|a| {
                let scope = match a.query_id.and_then(|q| queries.iter().find(|x| x.id == q)) {
                    Some(q) => format!("{} (through {})", q.label(), a.handle),
                    None => a.handle.clone(),
                };
                AlertCard {
                    open: a.closed_at.is_none(),
                    text: format!(
                        "{} negative items in an hour on {scope} (usually {:.1} at this hour of the week; peak {})",
                        a.negatives, a.baseline_mean, a.peak
                    ),
                    when: When::of(a.opened_at),
                    href: page.path(&match a.query_id {
                        Some(q) => format!("/inbox?status=all&sentiment=negative&kind=listening&query_id={q}"),
                        None => format!("/inbox?status=all&sentiment=negative&account_id={}", a.account_id),
                    }),
                }
            })
            .collect(),
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListenForm {
    #[serde(default)]
    account_id: String,
    /// `hashtag` or `keyword`.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    query: String,
}

/// Starts listening for a hashtag or keyword; a refusal is shown beside
/// the form.
pub async fn listen(State(state): State<ApiState>, submit: Submit<ListenForm>) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let created = match Uuid::parse_str(form.account_id.trim()) {
        Ok(account_id) => state
            .app
            .create_listening_query(
                &page.access,
                if form.kind == KEYWORD {
                    CreateListeningQuery { account_id, hashtag: None, keyword: Some(form.query.clone()) }
                } else {
                    CreateListeningQuery { account_id, hashtag: Some(form.query.clone()), keyword: None }
                },
            )
            .await
            .map_err(FormErrors::from_error),
        Err(_) => {
            let mut errors = FormErrors::default();
            errors.add("account_id", "choose a Mastodon, Bluesky or X account");
            Err(Ok(errors))
        }
    };
    match created {
        Ok(_) => Ok(see_other(&page.path("/inbox#listening"))),
        Err(errors) => show(&state, page, Filters::default(), errors?, form, CardAttempt::default()).await,
    }
}

/// Stops listening for a hashtag.
pub async fn stop_listening(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<std::collections::HashMap<String, String>>,
) -> Result<Response, UiError> {
    state.app.delete_listening_query(&submit.page.access, id).await?;
    Ok(see_other(&submit.page.path("/inbox#listening")))
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LeadForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    back: String,
}

/// Creates a lead from an item; a refusal is shown in the item's card.
pub async fn create_lead(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<LeadForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let req = LeadFromItem {
        email: form.email.clone(),
        name: String::new(),
        phone: String::new(),
        property_ids: Vec::new(),
    };
    match state.app.lead_from_inbox_item(&page.access, id, req).await {
        Ok(_) => Ok(see_other(&format!("{}#item-{id}", back_to(&page, form.back)))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            let attempt = CardAttempt { item: Some(id), form: "lead", errors, typed: form.email };
            show(&state, page, Filters::default(), FormErrors::default(), ListenForm::default(), attempt)
                .await
        }
    }
}

/// Where a card's form goes back to: the inbox page it came from, never
/// elsewhere.
fn back_to(page: &TenantPage, back: String) -> String {
    let inbox = page.path("/inbox");
    if back.starts_with(&inbox) && !back.contains("//") { back } else { inbox }
}

/// One action from an item's card.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ItemAction {
    #[serde(default)]
    action: String,
    /// Where to go back to (the page with its filters).
    #[serde(default)]
    back: String,
}

pub async fn act(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<ItemAction>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let me = page.access.caller.creator_id();
    let req = match form.action.as_str() {
        "done" => UpdateInboxItem { status: Some("done".into()), ..UpdateInboxItem::default() },
        "open" => UpdateInboxItem { status: Some("open".into()), ..UpdateInboxItem::default() },
        "assign_me" => UpdateInboxItem { assignee_id: Some(me), ..UpdateInboxItem::default() },
        "unassign" => UpdateInboxItem { assignee_id: Some(None), ..UpdateInboxItem::default() },
        _ => {
            return Err(
                crate::error::Error::invalid("action", "choose done, open, assign_me or unassign").into()
            );
        }
    };
    state.app.update_inbox_item(&page.access, id, req).await?;
    Ok(see_other(&format!("{}#item-{id}", back_to(&page, form.back))))
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReplyForm {
    #[serde(default)]
    text: String,
    #[serde(default)]
    back: String,
}

/// Sends a reply to an item; a refusal is shown in the item's card with
/// what was typed.
pub async fn reply(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<ReplyForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    // Here an empty box is a mistake, not "send the suggestion".
    let sent = if form.text.trim().is_empty() {
        let mut errors = FormErrors::default();
        errors.add("text", "write the reply (or ask for a suggestion with Draft again)");
        Err(Ok(errors))
    } else {
        state
            .app
            .reply_to_inbox_item(&page.access, id, ReplyIn { text: Some(form.text.clone()) })
            .await
            .map_err(FormErrors::from_error)
    };
    match sent {
        Ok(_) => Ok(see_other(&format!("{}#item-{id}", back_to(&page, form.back)))),
        Err(errors) => {
            let attempt = CardAttempt { item: Some(id), form: "reply", errors: errors?, typed: form.text };
            show(&state, page, Filters::default(), FormErrors::default(), ListenForm::default(), attempt)
                .await
        }
    }
}

/// Asks for another suggested reply.
pub async fn redraft(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<ItemAction>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    state.app.request_reply_draft(&page.access, id).await?;
    Ok(see_other(&format!("{}#item-{id}", back_to(&page, form.back))))
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    draft_replies: Option<String>,
    #[serde(default)]
    auto_praise: Option<String>,
    #[serde(default)]
    auto_question: Option<String>,
    #[serde(default)]
    auto_purchase_interest: Option<String>,
    #[serde(default)]
    crisis_min_count: String,
    #[serde(default)]
    crisis_z: String,
}

/// Saves the reply settings (admins).
pub async fn save_settings(
    State(state): State<ApiState>,
    submit: Submit<SettingsForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let intents = [
        ("praise", &form.auto_praise),
        ("question", &form.auto_question),
        ("purchase_interest", &form.auto_purchase_interest),
    ]
    .into_iter()
    .filter(|(_, on)| on.is_some())
    .map(|(intent, _)| intent.to_owned())
    .collect();
    let min_count = form.crisis_min_count.trim().parse::<i64>().map_err(|_| {
        crate::error::Error::invalid("crisis_min_count", "give a whole number of negative items, such as 5")
    })?;
    let z = form
        .crisis_z
        .trim()
        .parse::<f64>()
        .map_err(|_| crate::error::Error::invalid("crisis_z", "give a z-score such as 3"))?;
    let req = UpdateInboxSettings {
        draft_replies: Some(form.draft_replies.is_some()),
        auto_reply_intents: Some(intents),
        crisis_min_count: Some(min_count),
        crisis_z: Some(z),
    };
    state.app.update_inbox_settings(&page.access, req).await?;
    Ok(see_other(&page.path("/inbox#replies")))
}
