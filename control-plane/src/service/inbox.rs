//! The engagement inbox: what people write to and about the brand on its
//! connected accounts (mentions, replies to its posts), collected by the
//! publishing engine (`publishing/inbox.rs`), listed with filters, newest
//! first, and worked by people: marked done or open again, assigned to a
//! member, answered. Reading it takes `inbox:read`, working it
//! `inbox:work` (members and above: the items are what the public wrote,
//! names and complaints included, so viewers do not see them).
//!
//! Replies: an item's suggested reply is drafted on an agent
//! (`publishing/replies.rs`); a person sends it (as drafted or edited)
//! or asks for another draft. Sending makes a post answering the item,
//! scheduled now (or, for a project with a review workflow, a draft for
//! its review), linked to the item in the same transaction. The
//! organisation's inbox settings (admins) say whether replies are drafted
//! on their own and which intents are answered without a person.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{App, TenantAccess, actions};
use crate::domain::new_id;
use crate::domain::{Permission, Timestamp};
use crate::error::{Error, FoundExt, Result};
use crate::publishing::replies::{can_reply, needs_person, reply_text};
use crate::store::{
    AUTO_REPLY_INTENTS, Classification, InboxChange, InboxFilter, InboxItem, InboxSettings, ListeningQuery,
    Network, NewListeningQuery, REPLY_ATTEMPTS, ReplyState,
};

/// Items a page holds at most.
pub const MAX_PAGE: i64 = 200;
const STATUSES: [&str; 2] = ["open", "done"];
const KINDS: [&str; 3] = ["mention", "reply", "listening"];
const SENTIMENTS: [&str; 3] = ["positive", "neutral", "negative"];
const INTENTS: [&str; 6] = ["question", "complaint", "praise", "purchase_interest", "spam", "other"];
const SORTS: [&str; 2] = ["newest", "urgent"];
/// Listening queries an organisation may keep.
pub const MAX_QUERIES: usize = 50;

/// An item of the inbox.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InboxItemView {
    pub id: Uuid,
    pub account_id: Uuid,
    pub network: Network,
    /// The account's handle.
    pub handle: String,
    /// `mention` (names the account), `reply` (answers one of its posts)
    /// or `listening` (found by a listening query).
    pub kind: String,
    pub author_handle: String,
    pub author_name: Option<String>,
    /// Plain text, as the author wrote it (or as the agent's policy left
    /// it: see `redacted`); empty while `sealed`.
    pub text: String,
    /// Held sealed until one of the organisation's agents has screened it
    /// (an account serving an `edge_only` project, or a HIPAA
    /// organisation): read it on the platform (`url`) until then.
    pub sealed: bool,
    /// Identifiers in the text were replaced by the agent's policy.
    pub redacted: bool,
    /// The labels an LLM gave it; null until classified.
    pub classification: Option<ClassificationView>,
    /// `classified`, `waiting` (for a job or an agent: see
    /// `classification_note`), or `failed` (given up after three tries).
    pub classification_status: String,
    /// Why it is not classified yet, or why it failed.
    pub classification_note: Option<String>,
    /// The lead it is linked to.
    pub lead_id: Option<Uuid>,
    /// It reads as someone wanting to buy, rent or visit, and has no lead
    /// yet: create one from it (`POST .../inbox/{id}/lead`).
    pub suggest_lead: bool,
    /// The item on the platform.
    pub url: Option<String>,
    /// The post of ours it answers, when it answers one published here.
    pub post_id: Option<Uuid>,
    /// The platform id of what it answers.
    pub in_reply_to: Option<String>,
    /// The listening query that found it (`listening` items).
    pub query_id: Option<Uuid>,
    /// The platform id of its thread's first item known here; items of
    /// one thread share it (`?thread=` lists them).
    pub thread: String,
    pub platform_item_id: String,
    pub posted_at: Timestamp,
    pub collected_at: Timestamp,
    /// `open` or `done`.
    pub status: String,
    pub assignee_id: Option<Uuid>,
    pub updated_at: Timestamp,
    /// When the collector found it deleted on its platform (its text is
    /// kept here; it can no longer be answered).
    pub deleted_at: Option<Timestamp>,
    /// Its suggested reply and the post that answered it.
    pub reply: ReplyView,
}

/// An item's suggested reply, and what became of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplyView {
    /// `none` (no draft, none coming: ask with `POST .../reply-draft`),
    /// `drafting` (see `note`), `drafted`, `failed` (see `note`), or
    /// `answered` (a post answers it: `post_id`).
    pub status: String,
    /// The suggested reply, without the author's handle (put first when
    /// it is sent).
    pub draft: Option<String>,
    /// The project's documents the draft draws on.
    pub sources: Vec<String>,
    /// Why the draft cites no document.
    pub ungrounded: Option<String>,
    pub drafted_at: Option<Timestamp>,
    /// Why it is still drafting, or why drafting failed.
    pub note: Option<String>,
    /// Why it never goes out without a person (negative, or holding
    /// personal data), whatever the auto-reply settings.
    pub needs_person: Option<String>,
    /// The post that answers it, its status (`scheduled`, `published`,
    /// `failed`, or `draft` while its project's review decides), and
    /// its link once published.
    pub post_id: Option<Uuid>,
    pub post_status: Option<String>,
    pub post_url: Option<String>,
    /// The auto-reply rules sent it.
    pub auto: bool,
}

impl ReplyView {
    fn of(r: ReplyState, classification: Option<&Classification>) -> Self {
        let (status, note) = match (&r.post_id, &r.draft, &r.job_id) {
            (Some(_), _, _) => ("answered", None),
            (None, Some(_), _) => ("drafted", None),
            (None, None, Some(_)) => {
                ("drafting", Some(r.waiting.clone().unwrap_or_else(|| "an agent is drafting it".into())))
            }
            (None, None, None) if r.attempts >= REPLY_ATTEMPTS => (
                "failed",
                Some(format!("given up after {} tries: {}", r.attempts, r.error.clone().unwrap_or_default())),
            ),
            (None, None, None) => match &r.error {
                Some(e) => ("drafting", Some(format!("to be tried again: {e}"))),
                None => ("none", None),
            },
        };
        let needs_person = classification
            .and_then(|c| needs_person(Some(c.sentiment.as_str()), c.personal_data))
            .map(str::to_owned);
        ReplyView {
            status: status.into(),
            draft: r.draft,
            sources: r.sources,
            ungrounded: r.ungrounded,
            drafted_at: r.drafted_at,
            note,
            needs_person,
            post_id: r.post_id,
            post_status: r.post_status,
            post_url: r.post_url,
            auto: r.auto,
        }
    }
}

/// An answer to an item.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyIn {
    /// The reply; defaults to the suggested one. The author's handle is
    /// put first unless the text names them.
    #[serde(default)]
    pub text: Option<String>,
}

/// The organisation's inbox settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InboxSettingsView {
    /// Replies are drafted by themselves for open items that ask, complain,
    /// praise or want to buy (otherwise only when a person asks).
    pub draft_replies: bool,
    /// Intents whose drafts go out without a person (from `praise`,
    /// `question`, `purchase_interest`; none by default). Negative items
    /// and items with personal data always wait for a person, and so does
    /// everything of a project with a review workflow.
    pub auto_reply_intents: Vec<String>,
    /// A crisis alert needs at least this many negative items in an hour
    /// (1 to 1,000; default 5) ...
    pub crisis_min_count: i64,
    /// ... and a z-score at least this far above the same hour of the week
    /// over the last eight weeks (1 to 10; default 3).
    pub crisis_z: f64,
    pub updated_by: Option<Uuid>,
    pub updated_at: Option<Timestamp>,
}

impl From<InboxSettings> for InboxSettingsView {
    fn from(s: InboxSettings) -> Self {
        InboxSettingsView {
            draft_replies: s.draft_replies,
            auto_reply_intents: s.auto_reply_intents,
            crisis_min_count: s.crisis_min_count,
            crisis_z: s.crisis_z as f64 / 100.0,
            updated_by: s.updated_by,
            updated_at: s.updated_at,
        }
    }
}

/// A change to the inbox settings: any of the fields.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInboxSettings {
    pub draft_replies: Option<bool>,
    pub auto_reply_intents: Option<Vec<String>>,
    pub crisis_min_count: Option<i64>,
    pub crisis_z: Option<f64>,
}

/// A crisis alert: negative items far above their usual level for the
/// hour of the week, on an account or a listening query.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CrisisAlertView {
    pub id: Uuid,
    pub account_id: Uuid,
    /// The account's handle.
    pub handle: String,
    /// The listening query, when it is the query's finds.
    pub query_id: Option<Uuid>,
    pub opened_at: Timestamp,
    /// When the volume was back to normal; null while it lasts.
    pub closed_at: Option<Timestamp>,
    /// Negative and all classified items in the hour it opened on.
    pub negatives: i64,
    pub total: i64,
    /// The most negative items in an hour since.
    pub peak: i64,
    /// The same hour of the week over the last eight weeks.
    pub baseline_mean: f64,
    pub baseline_sd: f64,
    pub z: f64,
    /// The negative items that caused it, newest first.
    pub item_ids: Vec<Uuid>,
}

impl From<crate::store::CrisisAlert> for CrisisAlertView {
    fn from(a: crate::store::CrisisAlert) -> Self {
        CrisisAlertView {
            id: a.id,
            account_id: a.account_id,
            handle: a.handle,
            query_id: a.query_id,
            opened_at: a.opened_at,
            closed_at: a.closed_at,
            negatives: a.negatives,
            total: a.total,
            peak: a.peak,
            baseline_mean: a.baseline_mean as f64 / 100.0,
            baseline_sd: a.baseline_sd as f64 / 100.0,
            z: a.z as f64 / 100.0,
            item_ids: a.item_ids,
        }
    }
}

/// Which alerts to list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CrisisQuery {
    /// Only open alerts.
    #[serde(default)]
    pub open: Option<bool>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// An item's labels.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClassificationView {
    /// `positive`, `neutral` or `negative`.
    pub sentiment: String,
    /// From -1 (very negative) to 1 (very positive).
    pub sentiment_score: f64,
    /// `question`, `complaint`, `praise`, `purchase_interest`, `spam` or `other`.
    pub intent: String,
    /// `low`, `normal` or `high`.
    pub urgency: String,
    /// ISO 639-1, or `und`.
    pub language: String,
    /// It holds personal or health data: a person answers it.
    pub personal_data: bool,
    pub classified_at: Timestamp,
}

impl From<Classification> for ClassificationView {
    fn from(c: Classification) -> Self {
        ClassificationView {
            sentiment: c.sentiment,
            sentiment_score: c.sentiment_score as f64 / 100.0,
            intent: c.intent,
            urgency: c.urgency,
            language: c.language,
            personal_data: c.personal_data,
            classified_at: c.classified_at,
        }
    }
}

impl From<InboxItem> for InboxItemView {
    fn from(i: InboxItem) -> Self {
        let (classification_status, classification_note) = match (&i.classification, i.classify_job_id) {
            (Some(_), _) => ("classified", None),
            (None, Some(_)) => {
                ("waiting", Some(i.classify_waiting.clone().unwrap_or_else(|| "being classified".into())))
            }
            (None, None) if i.classify_attempts >= crate::store::CLASSIFY_ATTEMPTS => (
                "failed",
                Some(format!(
                    "given up after {} tries: {}",
                    i.classify_attempts,
                    i.classify_error.clone().unwrap_or_default()
                )),
            ),
            (None, None) => (
                "waiting",
                Some(match &i.classify_error {
                    Some(e) => format!("to be tried again: {e}"),
                    None => "waiting for a classify job".into(),
                }),
            ),
        };
        let suggest_lead =
            i.lead_id.is_none() && i.classification.as_ref().is_some_and(|c| c.intent == "purchase_interest");
        let reply = ReplyView::of(i.reply, i.classification.as_ref());
        InboxItemView {
            reply,
            lead_id: i.lead_id,
            suggest_lead,
            sealed: i.sealed,
            redacted: i.redacted,
            classification: i.classification.map(Into::into),
            classification_status: classification_status.into(),
            classification_note,
            id: i.id,
            account_id: i.account_id,
            network: i.network.parse().unwrap_or(Network::Mastodon),
            handle: i.handle,
            kind: i.kind,
            author_handle: i.author_handle,
            author_name: i.author_name,
            text: i.text,
            url: i.url,
            post_id: i.post_id,
            in_reply_to: i.in_reply_to,
            query_id: i.query_id,
            thread: i.thread,
            platform_item_id: i.platform_item_id,
            posted_at: i.posted_at,
            collected_at: i.collected_at,
            status: i.status,
            assignee_id: i.assignee_id,
            updated_at: i.updated_at,
            deleted_at: i.deleted_at,
        }
    }
}

/// A page of the inbox, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InboxPage {
    pub items: Vec<InboxItemView>,
    /// The last item's id: `?before=` it for the next page; null on the
    /// last page.
    pub next_before: Option<Uuid>,
    /// Open items in the organisation (whatever the filter).
    pub open: i64,
    /// Accounts whose inbox could not be read last time, and why (it is
    /// tried again on its own).
    pub failing: Vec<InboxFailure>,
}

/// An account whose last inbox read failed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InboxFailure {
    pub account_id: Uuid,
    pub handle: String,
    pub network: Network,
    pub error: String,
}

/// Which items to list; every filter narrows.
#[derive(Debug, Clone, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// `open` or `done`.
    pub status: Option<String>,
    /// An account's id.
    pub account_id: Option<String>,
    /// `x`, `linkedin`, `facebook`, `instagram`, `mastodon` or `bluesky`.
    pub network: Option<String>,
    /// `mention`, `reply` or `listening`.
    pub kind: Option<String>,
    /// A listening query's id: what it found.
    pub query_id: Option<String>,
    /// A member's id, or `none` for items nobody has.
    pub assignee: Option<String>,
    /// One thread (with `account_id`).
    pub thread: Option<String>,
    /// `positive`, `neutral` or `negative`.
    pub sentiment: Option<String>,
    /// `question`, `complaint`, `praise`, `purchase_interest`, `spam` or `other`.
    pub intent: Option<String>,
    /// `newest` (default) or `urgent`: most urgent first, then newest.
    pub sort: Option<String>,
    /// The next page: the items after this one (`next_before`).
    pub before: Option<String>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// A saved search whose finds land in the inbox.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListeningQueryView {
    pub id: Uuid,
    /// The account it reads through (its instance's public posts).
    pub account_id: Uuid,
    pub handle: String,
    pub network: Network,
    /// `hashtag` or `keyword`.
    pub kind: String,
    /// The hashtag (without `#`), or the keyword or phrase.
    pub query: String,
    /// The hashtag again, for clients written before keywords (`null` for
    /// a keyword); read `query` instead.
    #[schema(deprecated)]
    pub hashtag: Option<String>,
    /// Why its last read failed, if it did (it is tried again by itself).
    pub error: Option<String>,
    pub created_at: Timestamp,
}

impl ListeningQueryView {
    /// How people read it: `#openhouse`, or `"acme realty"`.
    pub fn label(&self) -> String {
        listening_label(&self.kind, &self.query)
    }
}

/// A listening query as people read it: `#tag` or `"keyword"`.
pub fn listening_label(kind: &str, query: &str) -> String {
    if kind == KEYWORD { format!("\u{201c}{query}\u{201d}") } else { format!("#{query}") }
}

impl From<ListeningQuery> for ListeningQueryView {
    fn from(q: ListeningQuery) -> Self {
        ListeningQueryView {
            id: q.id,
            account_id: q.account_id,
            handle: q.handle,
            network: q.network.parse().unwrap_or(Network::Mastodon),
            hashtag: (q.kind == HASHTAG).then(|| q.query.clone()),
            kind: q.kind,
            query: q.query,
            error: q.error,
            created_at: q.created_at,
        }
    }
}

/// What to listen for, through one of the organisation's Mastodon or
/// Bluesky accounts: a hashtag, or a keyword (a brand name, a phrase).
/// Exactly one of the two.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateListeningQuery {
    pub account_id: Uuid,
    /// Letters, digits and underscores, up to 100; a leading `#` is fine.
    #[serde(default)]
    pub hashtag: Option<String>,
    /// A word or phrase of 2 to 100 characters, matched in any case
    /// wherever it appears in a public post (a brand name, a product).
    #[serde(default)]
    pub keyword: Option<String>,
}

/// A listening query's kinds.
pub const HASHTAG: &str = "hashtag";
pub const KEYWORD: &str = "keyword";

/// A hashtag as Mastodon matches it: without `#`, letters (any script),
/// digits and underscores, 1 to 100 characters.
pub fn hashtag(text: &str) -> Result<String> {
    let tag = text.trim().trim_start_matches('#');
    if tag.is_empty() {
        return Err(Error::invalid("hashtag", "give a hashtag, such as openhouse"));
    }
    if tag.chars().count() > 100 {
        return Err(Error::invalid("hashtag", "a hashtag is at most 100 characters"));
    }
    if !tag.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(Error::invalid(
            "hashtag",
            "a hashtag has letters, digits and underscores only (no spaces or punctuation)",
        ));
    }
    Ok(tag.to_owned())
}

/// A keyword or phrase to listen for: its words with single spaces
/// between them, 2 to 100 characters, at least one letter or digit, no
/// quotes (a phrase is matched as it is written) and not a hashtag.
pub fn keyword(text: &str) -> Result<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let phrase = words.join(" ");
    if phrase.chars().count() < 2 {
        return Err(Error::invalid(
            "keyword",
            "give a keyword or brand name of at least 2 characters, such as acme realty",
        ));
    }
    if phrase.chars().count() > 100 {
        return Err(Error::invalid("keyword", "a keyword is at most 100 characters"));
    }
    if !phrase.chars().any(char::is_alphanumeric) {
        return Err(Error::invalid("keyword", "a keyword needs at least one letter or digit"));
    }
    if phrase.chars().any(|c| c.is_control() || c == '"') {
        return Err(Error::invalid(
            "keyword",
            "write the words without quotes: a phrase is matched as written",
        ));
    }
    if phrase.starts_with('#') {
        return Err(Error::invalid("keyword", "this is a hashtag: listen for it as a hashtag instead"));
    }
    Ok(phrase)
}

/// Whether `text` (a post's text) says `keyword`: the phrase, in any case
/// and whatever spaces or line breaks part its words, not inside a longer
/// word at its start (so `acme` finds "Acme's" and "#acme" but not
/// "Pacmen").
pub fn says_keyword(text: &str, keyword: &str) -> bool {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let keyword = keyword.to_lowercase();
    text.match_indices(&keyword)
        .any(|(at, _)| !text[..at].chars().next_back().is_some_and(char::is_alphanumeric))
}

/// A change to an item: either field, or both.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInboxItem {
    /// `open` or `done`.
    pub status: Option<String>,
    /// A member's id; null takes the item from whoever has it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub assignee_id: Option<Option<Uuid>>,
    /// A lead of the organisation to link the item to; null unlinks it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub lead_id: Option<Option<Uuid>>,
}

/// A lead made from an item: who the person is (the item gives their
/// handle and what they wrote; an e-mail address is needed to follow up).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadFromItem {
    pub email: String,
    /// Defaults to the author's name on the platform, else their handle.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub phone: String,
    /// Properties they asked about.
    #[serde(default)]
    pub property_ids: Vec<Uuid>,
}

/// Tells a missing field (`None`) from an explicit null (`Some(None)`).
fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<Uuid>>, D::Error> {
    Option::<Uuid>::deserialize(d).map(Some)
}

/// An id parameter; empty is none.
fn id_param(field: &'static str, value: Option<&str>) -> Result<Option<Uuid>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => Uuid::parse_str(v).map(Some).map_err(|_| Error::invalid(field, "give an id (a UUID)")),
    }
}

fn one_of(field: &'static str, value: Option<&str>, allowed: &[&str]) -> Result<Option<String>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_owned())),
        Some(v) => Err(Error::invalid(
            field,
            format!("{:?} is not one of {}", v.chars().take(40).collect::<String>(), allowed.join(", ")),
        )),
    }
}

impl App {
    /// A page of the inbox.
    pub async fn inbox(&self, access: &TenantAccess, q: &InboxQuery) -> Result<InboxPage> {
        access.require(Permission::InboxRead)?;
        let limit = q.limit.unwrap_or(50);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid("limit", format!("give 1 to {MAX_PAGE}, not {limit}")));
        }
        let networks: Vec<String> =
            <Network as strum::IntoEnumIterator>::iter().map(|n| n.to_string()).collect();
        let networks: Vec<&str> = networks.iter().map(String::as_str).collect();
        let (assignee_id, unassigned) = match q.assignee.as_deref().map(str::trim) {
            None | Some("") => (None, false),
            Some("none") => (None, true),
            Some(id) => (
                Some(Uuid::parse_str(id).map_err(|_| {
                    Error::invalid("assignee", "give a member's id, or none for items nobody has")
                })?),
                false,
            ),
        };
        let thread = q.thread.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        if thread.as_ref().is_some_and(|t| t.len() > 200) {
            return Err(Error::invalid("thread", "a thread id is at most 200 characters"));
        }
        let before = match id_param("before", q.before.as_deref())? {
            Some(id) => {
                let item = self.store.inbox_item(access.tenant_id, id).await?.ok_or_else(|| {
                    Error::invalid("before", "no item of this organisation has this id; use next_before")
                })?;
                Some((item.urgency_rank, item.posted_at, item.id))
            }
            None => None,
        };
        let filter = InboxFilter {
            status: one_of("status", q.status.as_deref(), &STATUSES)?,
            account_id: id_param("account_id", q.account_id.as_deref())?,
            network: one_of("network", q.network.as_deref(), &networks)?,
            kind: one_of("kind", q.kind.as_deref(), &KINDS)?,
            query_id: id_param("query_id", q.query_id.as_deref())?,
            assignee_id,
            unassigned,
            thread,
            sentiment: one_of("sentiment", q.sentiment.as_deref(), &SENTIMENTS)?,
            intent: one_of("intent", q.intent.as_deref(), &INTENTS)?,
            urgent_first: one_of("sort", q.sort.as_deref(), &SORTS)?.as_deref() == Some("urgent"),
            before,
            limit: limit + 1,
        };
        let mut items = self.store.inbox_items(access.tenant_id, &filter).await?;
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next_before = if more { items.last().map(|i| i.id) } else { None };
        let open = self.store.open_inbox_items(access.tenant_id).await?;
        let failing = self
            .store
            .inbox_errors(access.tenant_id)
            .await?
            .into_iter()
            .filter_map(|(account_id, handle, network, error)| {
                Some(InboxFailure { account_id, handle, network: network.parse().ok()?, error })
            })
            .collect();
        Ok(InboxPage {
            items: items.into_iter().map(InboxItemView::from).collect(),
            next_before,
            open,
            failing,
        })
    }

    pub async fn inbox_item(&self, access: &TenantAccess, id: Uuid) -> Result<InboxItemView> {
        access.require(Permission::InboxRead)?;
        Ok(self.store.inbox_item(access.tenant_id, id).await.found("inbox item")?.into())
    }

    /// Marks an item done or open, or (un)assigns it; audited.
    pub async fn update_inbox_item(
        &self,
        access: &TenantAccess,
        id: Uuid,
        req: UpdateInboxItem,
    ) -> Result<InboxItemView> {
        self.change_inbox_item(access, id, req, actions::INBOX_ITEM_UPDATE).await
    }

    async fn change_inbox_item(
        &self,
        access: &TenantAccess,
        id: Uuid,
        req: UpdateInboxItem,
        action: &'static str,
    ) -> Result<InboxItemView> {
        access.require(Permission::InboxWork)?;
        let status = one_of("status", req.status.as_deref(), &STATUSES)?;
        if status.is_none() && req.assignee_id.is_none() && req.lead_id.is_none() {
            return Err(Error::invalid(
                "status",
                "give a status (open or done), an assignee_id, a lead_id, or more",
            ));
        }
        let current = self.store.inbox_item(access.tenant_id, id).await.found("inbox item")?;
        let audit = access.audit(action).resource("inbox_item", id).details(serde_json::json!({
            "status": status,
            "from_status": current.status,
            "assignee_id": req.assignee_id,
            "lead_id": req.lead_id,
        }));
        let change = InboxChange { status, assignee_id: req.assignee_id, lead_id: req.lead_id };
        Ok(self
            .store
            .update_inbox_item(access.tenant_id, id, &change, &audit)
            .await
            .found("inbox item")?
            .into())
    }

    /// Creates a lead (source `social`) from an item and links the item
    /// to it; its first note says where it came from (the item's link, and
    /// what was written unless the text is sealed). Audited as the lead's
    /// creation and the item's change.
    pub async fn lead_from_inbox_item(
        &self,
        access: &TenantAccess,
        id: Uuid,
        req: LeadFromItem,
    ) -> Result<InboxItemView> {
        access.require(Permission::InboxWork)?;
        let item = self.store.inbox_item(access.tenant_id, id).await.found("inbox item")?;
        if let Some(lead) = item.lead_id {
            return Err(Error::Conflict {
                code: "lead_linked",
                message: format!(
                    "this item is linked to a lead already ({lead}); unlink it first with lead_id null"
                ),
            });
        }
        let name = match req.name.trim() {
            "" => item.author_name.clone().unwrap_or_else(|| item.author_handle.clone()),
            name => name.to_owned(),
        };
        let name: String = name.chars().take(100).collect();
        let mut note =
            format!("From the inbox: a {} by {} on {}", item.kind, item.author_handle, item.network);
        if let Some(url) = &item.url {
            note.push_str(&format!(" ({url})"));
        }
        if !item.sealed && !item.text.is_empty() {
            let quoted: String = item.text.chars().take(2_000).collect();
            note.push_str(&format!(":\n\n{quoted}"));
        }
        let lead = self
            .create_lead_from(
                access,
                super::leads::CreateLead {
                    name,
                    email: req.email,
                    phone: req.phone,
                    property_ids: req.property_ids,
                    note,
                    owner_id: None,
                },
                crate::store::LeadSource::Social,
            )
            .await?;
        self.change_inbox_item(
            access,
            id,
            UpdateInboxItem { status: None, assignee_id: None, lead_id: Some(Some(lead.id)) },
            actions::INBOX_ITEM_LEAD,
        )
        .await
    }

    /// Answers an item: a post replying to it on its platform, with the
    /// text given or the suggested one, scheduled now; for a project with
    /// a review workflow, a draft post for that review instead. Audited as
    /// the post's creation and the item's reply; a conflict once answered.
    pub async fn reply_to_inbox_item(
        &self,
        access: &TenantAccess,
        id: Uuid,
        req: ReplyIn,
    ) -> Result<InboxItemView> {
        access.require(Permission::InboxWork)?;
        access.require(Permission::PostsWrite)?;
        let item = self.store.inbox_item(access.tenant_id, id).await.found("inbox item")?;
        if let Some(post) = item.reply.post_id {
            return Err(Error::Conflict {
                code: "inbox_item_answered",
                message: format!("this item was answered already (post {post})"),
            });
        }
        if item.deleted_at.is_some() {
            return Err(Error::Conflict {
                code: "inbox_item_deleted",
                message: "its author deleted this item on the platform; there is nothing to answer".into(),
            });
        }
        let network: Network = item.network.parse().unwrap_or(Network::Mastodon);
        if !can_reply(network) {
            return Err(Error::Conflict {
                code: "replies_unsupported",
                message: format!(
                    "replying on {} is not supported yet; answer on the platform",
                    network.label()
                ),
            });
        }
        let given = req.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let text = match (given, &item.reply.draft) {
            (Some(text), _) => text.to_owned(),
            (None, Some(draft)) => draft.clone(),
            (None, None) => {
                return Err(Error::invalid("text", "write the reply: this item has no suggested one yet"));
            }
        };
        if text.chars().count() > 5_000 {
            return Err(Error::invalid("text", "a reply is at most 5,000 characters"));
        }
        let edited = item.reply.draft.as_deref() != Some(text.as_str());
        let account =
            self.store.account(access.tenant_id, item.account_id).await?.ok_or_else(|| Error::Conflict {
                code: "account_disconnected",
                message: "the account this item came to is no longer connected; reconnect it to reply".into(),
            })?;
        let post_project = match item.post_id {
            Some(post) => self.store.post(access.tenant_id, post).await?.and_then(|p| p.project_id),
            None => None,
        };
        let project_id =
            self.publisher.reply_project(&account, post_project).await.map_err(Error::Internal)?;
        let reviewed = match project_id {
            Some(project) => self.store.project_review_workflow(access.tenant_id, project).await?.is_some(),
            None => false,
        };
        let create = super::CreatePost {
            account_id: account.id,
            text: Some(reply_text(&item.author_handle, &text)),
            project_id,
            approve: !reviewed,
            now: !reviewed,
            ..Default::default()
        };
        let (mut post, post_audit) = match self.prepare_post(access, create, None).await? {
            super::publishing::PreparedPost::New { post, audit, .. } => (*post, *audit),
            super::publishing::PreparedPost::Existing(_) => {
                return Err(Error::Conflict {
                    code: "inbox_item_answered",
                    message: "answered already".into(),
                });
            }
        };
        post.reply_to = Some(item.platform_item_id.clone());
        let audit =
            access.audit(actions::INBOX_ITEM_REPLY).resource("inbox_item", id).details(serde_json::json!({
                "post_id": post.id, "status": post.status, "edited": edited, "review": reviewed,
            }));
        self.store.create_reply(&post, id, false, &[post_audit, audit]).await?;
        self.publisher.wake();
        self.inbox_item(access, id).await
    }

    /// Asks for a (new) suggested reply: the old draft is dropped and an
    /// agent drafts another. Audited.
    pub async fn request_reply_draft(&self, access: &TenantAccess, id: Uuid) -> Result<InboxItemView> {
        access.require(Permission::InboxWork)?;
        let audit = access.audit(actions::INBOX_ITEM_REPLY_DRAFT).resource("inbox_item", id);
        let item = self
            .store
            .request_reply_draft(access.tenant_id, id, &audit)
            .await?
            .ok_or(Error::NotFound("inbox item"))?;
        self.publisher.wake();
        Ok(item.into())
    }

    /// The organisation's inbox settings.
    pub async fn inbox_settings(&self, access: &TenantAccess) -> Result<InboxSettingsView> {
        access.require(Permission::InboxRead)?;
        Ok(self.store.inbox_settings(access.tenant_id).await?.into())
    }

    /// Changes the inbox settings (admins); audited.
    pub async fn update_inbox_settings(
        &self,
        access: &TenantAccess,
        req: UpdateInboxSettings,
    ) -> Result<InboxSettingsView> {
        access.require(Permission::SettingsManage)?;
        if req.draft_replies.is_none()
            && req.auto_reply_intents.is_none()
            && req.crisis_min_count.is_none()
            && req.crisis_z.is_none()
        {
            return Err(Error::invalid(
                "draft_replies",
                "give draft_replies, auto_reply_intents, crisis_min_count or crisis_z",
            ));
        }
        let mut settings = self.store.inbox_settings(access.tenant_id).await?;
        if let Some(draft) = req.draft_replies {
            settings.draft_replies = draft;
        }
        if let Some(intents) = req.auto_reply_intents {
            let mut chosen: Vec<String> = Vec::new();
            for intent in intents {
                let intent = intent.trim();
                if !AUTO_REPLY_INTENTS.contains(&intent) {
                    return Err(Error::invalid(
                        "auto_reply_intents",
                        format!(
                            "{:?} cannot be answered automatically; choose from {} (complaints, spam and \
                             anything else always go to a person)",
                            intent.chars().take(40).collect::<String>(),
                            AUTO_REPLY_INTENTS.join(", ")
                        ),
                    ));
                }
                if !chosen.iter().any(|c| c == intent) {
                    chosen.push(intent.to_owned());
                }
            }
            settings.auto_reply_intents = chosen;
        }
        if let Some(count) = req.crisis_min_count {
            if !(1..=1_000).contains(&count) {
                return Err(Error::invalid("crisis_min_count", "give 1 to 1,000 negative items an hour"));
            }
            settings.crisis_min_count = count;
        }
        if let Some(z) = req.crisis_z {
            if !(1.0..=10.0).contains(&z) {
                return Err(Error::invalid("crisis_z", "give a z-score from 1 to 10 (3 is usual)"));
            }
            settings.crisis_z = (z * 100.0).round() as i64;
        }
        settings.updated_by = access.caller.creator_id();
        let audit = access.audit(actions::INBOX_SETTINGS_UPDATE).details(serde_json::json!({
            "draft_replies": settings.draft_replies,
            "auto_reply_intents": settings.auto_reply_intents,
            "crisis_min_count": settings.crisis_min_count,
            "crisis_z": settings.crisis_z as f64 / 100.0,
        }));
        self.store.set_inbox_settings(access.tenant_id, &settings, &audit).await?;
        self.publisher.wake();
        self.inbox_settings(access).await
    }

    /// The organisation's crisis alerts, newest first.
    pub async fn crisis_alerts(
        &self,
        access: &TenantAccess,
        q: &CrisisQuery,
    ) -> Result<Vec<CrisisAlertView>> {
        access.require(Permission::InboxRead)?;
        let limit = q.limit.unwrap_or(50);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid("limit", format!("give 1 to {MAX_PAGE}, not {limit}")));
        }
        let alerts = self.store.crisis_alerts(access.tenant_id, q.open.unwrap_or(false), limit).await?;
        Ok(alerts.into_iter().map(Into::into).collect())
    }

    /// The organisation's listening queries.
    pub async fn listening_queries(&self, access: &TenantAccess) -> Result<Vec<ListeningQueryView>> {
        access.require(Permission::InboxRead)?;
        Ok(self.store.listening_queries(access.tenant_id, None).await?.into_iter().map(Into::into).collect())
    }

    /// Saves a hashtag or keyword to listen for; its first read brings the
    /// latest public posts it finds, later reads what is new.
    pub async fn create_listening_query(
        &self,
        access: &TenantAccess,
        req: CreateListeningQuery,
    ) -> Result<ListeningQueryView> {
        access.require(Permission::InboxWork)?;
        let (kind, text) = match (&req.hashtag, &req.keyword) {
            (Some(tag), None) => (HASHTAG, hashtag(tag)?),
            (None, Some(word)) => (KEYWORD, keyword(word)?),
            (Some(_), Some(_)) => {
                return Err(Error::invalid("keyword", "give a hashtag or a keyword, not both"));
            }
            (None, None) => {
                return Err(Error::invalid("hashtag", "give a hashtag (or a keyword) to listen for"));
            }
        };
        let account = self.store.account(access.tenant_id, req.account_id).await?.ok_or_else(|| {
            Error::invalid("account_id", "no connected account of this organisation has this id")
        })?;
        if !crate::publishing::platforms::reads_inbox(account.network) {
            return Err(Error::invalid(
                "account_id",
                format!(
                    "listening reads Mastodon, Bluesky and X today, not {}; choose a Mastodon, Bluesky or X account",
                    account.network.label()
                ),
            ));
        }
        let saved = self.store.listening_queries(access.tenant_id, None).await?;
        if saved.len() >= MAX_QUERIES {
            return Err(Error::Conflict {
                code: "too_many_listening_queries",
                message: format!(
                    "an organisation listens for at most {MAX_QUERIES} hashtags and keywords; remove one first"
                ),
            });
        }
        // Keywords match in any case, so "Acme" and "acme" are one query.
        if kind == KEYWORD
            && saved.iter().any(|q| {
                q.account_id == account.id
                    && q.kind == KEYWORD
                    && q.query.to_lowercase() == text.to_lowercase()
            })
        {
            return Err(Error::Conflict {
                code: "listening_query_exists",
                message: format!(
                    "{} is listened for through this account already",
                    listening_label(kind, &text)
                ),
            });
        }
        let id = new_id();
        let audit = access
            .audit(actions::LISTENING_QUERY_CREATE)
            .resource("listening_query", id)
            .details(serde_json::json!({ "kind": kind, "query": text, "account_id": account.id }));
        let query = NewListeningQuery {
            id,
            tenant_id: access.tenant_id,
            account_id: account.id,
            kind: kind.into(),
            query: text,
            created_by: access.caller.creator_id(),
        };
        self.store.create_listening_query(&query, &audit).await?;
        let saved = self.store.listening_queries(access.tenant_id, Some(account.id)).await?;
        Ok(saved.into_iter().find(|q| q.id == id).ok_or(Error::NotFound("listening query"))?.into())
    }

    /// Stops listening; what the query found stays in the inbox.
    pub async fn delete_listening_query(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        access.require(Permission::InboxWork)?;
        let audit = access.audit(actions::LISTENING_QUERY_DELETE).resource("listening_query", id);
        if self.store.delete_listening_query(access.tenant_id, id, &audit).await? {
            Ok(())
        } else {
            Err(Error::NotFound("listening query"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyword_is_its_words_with_single_spaces_and_refused_with_the_fix() {
        assert_eq!(keyword("  Acme \t Realty ").unwrap(), "Acme Realty");
        assert_eq!(keyword("Zürich Häuser").unwrap(), "Zürich Häuser");
        for (text, says) in [
            ("a", "at least 2"),
            ("   ", "at least 2"),
            ("!!", "letter or digit"),
            ("\"acme\"", "without quotes"),
            ("#acme", "as a hashtag"),
            (&"x".repeat(101), "at most 100"),
        ] {
            let message = keyword(text).unwrap_err().to_string();
            assert!(message.contains(says), "{text:?}: {message}");
        }
    }

    #[test]
    fn a_keyword_is_found_in_any_case_at_the_start_of_a_word() {
        for text in [
            "Acme Realty found us a flat",
            "toured with ACME REALTY's team",
            "#acme realty, again",
            "(acme realty)",
            "love acme realtyco",
            "acme\n  realty",
        ] {
            assert!(says_keyword(text, "acme realty"), "{text}");
        }
        for text in ["Pacme realty", "realty acme", "acme-realty", ""] {
            assert!(!says_keyword(text, "acme realty"), "{text}");
        }
        // A multi-byte letter before the match is part of the word.
        assert!(!says_keyword("éacme realty", "acme realty"));
        assert!(says_keyword("ÉCOLE acme", "école"));
    }
}
