//! Suggested replies to inbox items, run by the same engine after each
//! classification round. Drafting: a `reply` job per item that calls for
//! an answer (a question, a complaint, praise, interest in buying; or any
//! item a person asked a draft for), run on one of the organisation's
//! agents (never the cloud: what people wrote and the project's documents
//! stay on its side), grounded in the documents of the project it concerns
//! (an agent holding their index takes it). Each item is claimed by
//! compare-and-set on `reply_job_id` in the job's transaction, so replicas
//! queue it once; the job's end is applied in `finish_job`'s transaction.
//!
//! Auto-replies: a draft goes out without a person only when the
//! organisation named the item's intent (from [`AUTO_REPLY_INTENTS`]), the
//! item is not negative and holds no personal data, the project has no
//! review workflow, and the network takes replies; everything else waits
//! for a person. A reply, by a person or by the rules, is a post answering
//! the item's platform id, made and linked to the item in one
//! transaction (compare-and-set: one reply per item) and sent by the
//! publishing engine like any post: once, within the rate limits,
//! recorded.

use marketer_protocol::JobSpec;
use marketer_protocol::inbox::{ReplyContext, ReplyJob};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::{Publisher, system_event};
use crate::domain::{Timestamp, new_id};
use crate::service::actions;
use crate::store::{
    AUTO_REPLY_INTENTS, AutoReplyCandidate, ItemText, Network, NewJob, NewPost, Outcome, PageRequest,
    PostStatus, Route, SocialAccount, Undrafted,
};

/// Items looked at per drafting round.
const DRAFT_BATCH: i64 = 200;
/// A reply job may run this long (a search and one model call).
const REPLY_RUN_SECONDS: i64 = 300;
/// Who reply jobs say submitted them.
const REPLY_SUBMITTER: &str = "the inbox";
/// Characters a draft may have at most (the pipeline's own bound).
const MAX_DRAFT_CHARS: usize = 600;

/// Whether the product can post a reply on `network` (the networks whose
/// items the inbox collects).
pub fn can_reply(network: Network) -> bool {
    super::platforms::reads_inbox(network)
}

/// A reply's text: the author's handle first (the platform then shows it
/// in their thread), unless the text already names them.
pub fn reply_text(author_handle: &str, text: &str) -> String {
    let handle =
        if author_handle.starts_with('@') { author_handle.to_owned() } else { format!("@{author_handle}") };
    let text = text.trim();
    if text.split_whitespace().any(|word| word.trim_end_matches([',', ':', '.']) == handle) {
        text.to_owned()
    } else {
        format!("{handle} {text}")
    }
}

/// Why an item always goes to a person, whatever the auto-reply rules:
/// it is negative, or holds personal data.
pub fn needs_person(sentiment: Option<&str>, personal_data: bool) -> Option<&'static str> {
    if sentiment == Some("negative") {
        Some("negative items always go to a person")
    } else if personal_data {
        Some("items with personal data always go to a person")
    } else {
        None
    }
}

/// Why the auto-reply rules leave a draft to a person, or `None` when it
/// may go out by itself (the project's review workflow and the network are
/// checked by the caller).
pub fn auto_reply_refusal(c: &AutoReplyCandidate) -> Option<&'static str> {
    let intent = c.intent.as_deref().unwrap_or("");
    if !AUTO_REPLY_INTENTS.contains(&intent) || !c.auto_intents.iter().any(|i| i == intent) {
        return Some("its intent is not one the organisation answers automatically");
    }
    if let Some(why) = needs_person(c.sentiment.as_deref(), c.personal_data || c.redacted) {
        return Some(why);
    }
    if c.set_by.is_none() {
        return Some("nobody who set the auto-reply rules is a member any more");
    }
    None
}

impl Publisher {
    /// The project a reply to an item concerns: that of the post it
    /// answers, else the one project its account serves, else the
    /// organisation's only project.
    pub async fn reply_project(
        &self,
        account: &SocialAccount,
        post_project: Option<Uuid>,
    ) -> anyhow::Result<Option<Uuid>> {
        if post_project.is_some() {
            return Ok(post_project);
        }
        if let Some(ids) = &account.project_ids {
            return Ok(if ids.len() == 1 { ids.first().copied() } else { None });
        }
        let projects = self.store.projects(account.tenant_id, PageRequest { after: None, limit: 2 }).await?;
        Ok(if projects.items.len() == 1 { projects.items.first().map(|p| p.id) } else { None })
    }

    /// One drafting round: a reply job for each item that should get a
    /// draft. Returns how many jobs were queued.
    pub async fn draft_replies(&self) -> usize {
        let due = match self.store.undrafted_inbox(Timestamp::now(), DRAFT_BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "could not read the inbox items to draft replies for");
                return 0;
            }
        };
        let mut queued = 0;
        for item in due {
            match self.start_reply(&item).await {
                Ok(true) => queued += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, item = %item.id, "could not queue a reply job"),
            }
        }
        if queued > 0 {
            self.jobs.queued();
            tracing::info!(jobs = queued, "inbox reply jobs queued");
        }
        queued
    }

    async fn start_reply(&self, item: &Undrafted) -> anyhow::Result<bool> {
        let Some(account) = self.store.account(item.tenant_id, item.account_id).await? else {
            return Ok(false);
        };
        let project_id = self.reply_project(&account, item.post_project_id).await?;
        let (brand_voice, indexed) = match project_id {
            Some(id) => {
                let voice = match self.store.project(item.tenant_id, id).await? {
                    Some(project) => project.brand_voice.as_str().to_owned(),
                    None => String::new(),
                };
                (voice, self.store.indexed_documents(item.tenant_id, id).await? > 0)
            }
            None => (String::new(), false),
        };
        let limit = crate::service::rules(account.network).limit;
        let max_chars =
            limit.saturating_sub(item.author_handle.chars().count() + 2).clamp(1, MAX_DRAFT_CHARS);
        let job = NewJob {
            id: new_id(),
            tenant_id: item.tenant_id,
            spec: JobSpec::Reply {
                model: marketer_protocol::canonical_model_name(&self.settings.inbox_model),
                reply: ReplyJob {
                    item_id: item.id,
                    platform: item.network.clone(),
                    kind: item.kind.clone(),
                    project_id,
                    brand_voice,
                    max_chars: u32::try_from(max_chars).unwrap_or(u32::MAX),
                },
            },
            labels: Default::default(),
            priority: crate::service::DEFAULT_PRIORITY,
            not_before: None,
            timeout_seconds: REPLY_RUN_SECONDS,
            // Waits for an agent as long as it takes.
            queue_timeout_seconds: None,
            max_attempts: 3,
            idempotency_key: None,
            request_hash: Vec::new(),
            created_by: REPLY_SUBMITTER.into(),
            activity_id: None,
            // Only agents draft replies; one holding the project's index
            // when it has documents, so the reply can cite them.
            route: Route::Edge,
            index_project_id: project_id.filter(|_| indexed),
        };
        Ok(self.store.start_reply_draft(&job, item.id).await?)
    }

    /// What a reply job answers, for the agent holding it (a sealed text
    /// opened: only an agent of the item's organisation gets here).
    pub async fn reply_context(&self, agent_id: Uuid, job_id: Uuid) -> anyhow::Result<Option<ReplyContext>> {
        let Some(subject) = self.store.reply_subject(agent_id, job_id).await? else { return Ok(None) };
        let text = match subject.text {
            ItemText::Plain(text) => text,
            ItemText::Sealed { tenant_id, sealed } => {
                self.key.open(tenant_id, &sealed)?.expose_secret().to_owned()
            }
        };
        Ok(Some(ReplyContext { text, post_text: subject.post_text, author_name: subject.author_name }))
    }

    /// One auto-reply round: each new draft is sent by itself when the
    /// rules allow (see the module's doc), or left to a person. Returns
    /// how many replies were made.
    pub async fn auto_replies(&self) -> usize {
        let due = match self.store.auto_reply_due(DRAFT_BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "could not read the drafts for the auto-reply rules");
                return 0;
            }
        };
        let mut made = 0;
        for candidate in due {
            match self.auto_reply(&candidate).await {
                Ok(true) => made += 1,
                Ok(false) => {
                    if let Err(e) = self.store.auto_reply_checked(candidate.id).await {
                        tracing::error!(error = %e, item = %candidate.id, "could not record the auto-reply check");
                    }
                }
                Err(e) => tracing::error!(error = %e, item = %candidate.id, "an auto-reply failed"),
            }
        }
        if made > 0 {
            self.wake();
        }
        made
    }

    /// Sends one draft by itself if the rules allow: `false` when they
    /// leave it to a person.
    async fn auto_reply(&self, c: &AutoReplyCandidate) -> anyhow::Result<bool> {
        if auto_reply_refusal(c).is_some() {
            return Ok(false);
        }
        let Some(account) = self.store.account(c.tenant_id, c.account_id).await? else { return Ok(false) };
        if !can_reply(account.network) {
            return Ok(false);
        }
        let project_id = self.reply_project(&account, c.post_project_id).await?;
        if let Some(project) = project_id
            && self.store.project_review_workflow(c.tenant_id, project).await?.is_some()
        {
            // The project's content is approved through its review.
            return Ok(false);
        }
        let text = reply_text(&c.author_handle, &c.draft);
        if crate::service::check_text(account.network, &text).is_err() {
            return Ok(false);
        }
        let now = Timestamp::now();
        let post = NewPost {
            id: new_id(),
            tenant_id: c.tenant_id,
            account_id: account.id,
            project_id,
            campaign_id: None,
            activity_id: None,
            activity_version: None,
            text,
            image_url: None,
            status: PostStatus::Scheduled,
            scheduled_at: Some(now),
            time_zone: account.posting_time_zone.clone(),
            // Approved under the rule its setter made.
            approved_by: c.set_by,
            idempotency_key: Some(format!("inbox-reply:{}", c.id)),
            created_by: None,
            edited: false,
            reply_to: Some(c.platform_item_id.clone()),
        };
        let audit = system_event(c.tenant_id, actions::INBOX_ITEM_REPLY, Outcome::Success)
            .resource("inbox_item", c.id)
            .details(serde_json::json!({ "post_id": post.id, "auto": true, "intent": c.intent }));
        match self.store.create_reply(&post, c.id, true, std::slice::from_ref(&audit)).await {
            Ok(()) => {
                tracing::info!(item = %c.id, post = %post.id, "auto-reply scheduled");
                Ok(true)
            }
            // Answered meanwhile (a person, another replica): nothing to do.
            Err(crate::store::StoreError::Conflict { .. }) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(intent: &str, sentiment: &str, personal: bool) -> AutoReplyCandidate {
        AutoReplyCandidate {
            id: new_id(),
            tenant_id: new_id(),
            account_id: new_id(),
            author_handle: "@dana@example.social".into(),
            draft: "Thank you!".into(),
            intent: Some(intent.into()),
            sentiment: Some(sentiment.into()),
            personal_data: personal,
            redacted: false,
            platform_item_id: "1".into(),
            post_project_id: None,
            auto_intents: vec!["praise".into(), "question".into(), "complaint".into()],
            set_by: Some(new_id()),
        }
    }

    #[test]
    fn only_named_intents_that_are_not_negative_and_hold_no_personal_data_go_out_alone() {
        assert_eq!(auto_reply_refusal(&candidate("praise", "positive", false)), None);
        assert_eq!(auto_reply_refusal(&candidate("question", "neutral", false)), None);
        assert!(auto_reply_refusal(&candidate("question", "negative", false)).unwrap().contains("negative"));
        assert!(auto_reply_refusal(&candidate("praise", "positive", true)).unwrap().contains("personal"));
        // Not named, or never allowed even when named.
        assert!(auto_reply_refusal(&candidate("purchase_interest", "positive", false)).is_some());
        assert!(auto_reply_refusal(&candidate("complaint", "neutral", false)).is_some());
        let orphan = AutoReplyCandidate { set_by: None, ..candidate("praise", "positive", false) };
        assert!(auto_reply_refusal(&orphan).is_some());
    }

    #[test]
    fn a_reply_names_its_author_once() {
        assert_eq!(reply_text("@dana@example.social", "Thanks!"), "@dana@example.social Thanks!");
        assert_eq!(reply_text("dana", "Thanks!"), "@dana Thanks!");
        assert_eq!(reply_text("@dana", "@dana, thanks!"), "@dana, thanks!");
    }
}
