//! Comments: threads on an activity (optionally anchored to a passage of a
//! content version) and on a scheduled post, `@mentions` of members that
//! notify them, editing and deleting one's own comments, and resolving a
//! thread.
//!
//! Rules: anyone who can read the item may comment on it (viewers too, so a
//! client or compliance officer with the viewer role can take part); a
//! comment is written by a person, never an API key; only its author edits
//! it; its author or an admin deletes it; the thread's author or a member
//! who may change the item resolves it. A mention names a member by e-mail
//! address (`@alex@example.com`), so it is never ambiguous; mentioning
//! someone who is not a member is refused with the address named. Mention
//! notifications carry no comment text (their e-mail leaves the system),
//! only the item's title and a link.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{App, TenantAccess, actions, activities::result_of};
use crate::domain::{Email, Permission, Role, Timestamp, new_id};
use crate::error::{Error, FoundExt, Result};
use crate::store::{Activity, Anchor, Audience, Comment, CommentSubject, NewComment, NewNotice, NoticeKind};

/// The longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 10_000;
/// The longest quoted passage, in characters.
const MAX_QUOTE_CHARS: usize = 500;
/// At most this many people mentioned in one comment.
const MAX_MENTIONS: usize = 20;

/// Which item's comments: exactly one of the two.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CommentQuery {
    pub activity_id: Option<Uuid>,
    pub post_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnchorIn {
    /// The content version (0 is the generated text).
    pub version: i64,
    /// The passage, as it appears in that version.
    pub quote: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateComment {
    /// The activity commented on (or `post_id`).
    pub activity_id: Option<Uuid>,
    /// The post commented on (or `activity_id`).
    pub post_id: Option<Uuid>,
    /// The thread this replies to (its first comment, or any comment of
    /// it); omitted: a new thread.
    pub thread_id: Option<Uuid>,
    /// Markdown, at most 10,000 characters; `@name@example.com` mentions a
    /// member.
    pub body: String,
    /// For a new thread on an activity: the passage it is about.
    pub anchor: Option<AnchorIn>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditComment {
    pub body: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveThread {
    /// `true` resolves the thread, `false` reopens it.
    pub resolved: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MentionView {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnchorView {
    pub version: i64,
    pub quote: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommentView {
    pub id: Uuid,
    pub activity_id: Option<Uuid>,
    pub post_id: Option<Uuid>,
    /// The thread's first comment; `null` for a first comment.
    pub thread_id: Option<Uuid>,
    pub author_id: Option<Uuid>,
    /// "a former member" once the author's account is gone.
    pub author_name: String,
    /// Markdown as written; empty once deleted.
    pub body: String,
    /// `body` rendered and sanitised.
    pub html: String,
    pub anchor: Option<AnchorView>,
    pub mentions: Vec<MentionView>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub edited_at: Option<Timestamp>,
    pub deleted: bool,
    /// On a first comment: when its thread was resolved.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<Uuid>,
    /// Whether the caller may edit it (their own, not deleted).
    pub can_edit: bool,
    /// Whether the caller may delete it (their own, or they are an admin).
    pub can_delete: bool,
}

/// The `@address` mentions in a comment, in order, without repeats. An
/// address is an e-mail address after an `@` that starts the text or
/// follows a space or an opening bracket.
pub fn mentioned_addresses(body: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts =
            chars[i] == '@' && (i == 0 || chars[i - 1].is_whitespace() || "([{\"'".contains(chars[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        while end < chars.len() && (chars[end].is_alphanumeric() || "._%+-@".contains(chars[end])) {
            end += 1;
        }
        let word: String = chars[i + 1..end].iter().collect();
        let word = word.trim_end_matches(['.', '-']);
        if let Some((local, domain)) = word.split_once('@')
            && !local.is_empty()
            && domain.contains('.')
            && !domain.contains('@')
        {
            let address = word.to_lowercase();
            if !found.contains(&address) {
                found.push(address);
            }
        }
        i = end.max(i + 1);
    }
    found
}

fn subject_of(activity_id: Option<Uuid>, post_id: Option<Uuid>) -> Result<CommentSubject> {
    match (activity_id, post_id) {
        (Some(id), None) => Ok(CommentSubject::Activity(id)),
        (None, Some(id)) => Ok(CommentSubject::Post(id)),
        (Some(_), Some(_)) => Err(Error::invalid("post_id", "give activity_id or post_id, not both")),
        (None, None) => {
            Err(Error::invalid("activity_id", "give the activity_id or the post_id commented on"))
        }
    }
}

fn check_body(body: &str) -> Result<String> {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid("body", "must not be empty"));
    }
    let chars = trimmed.chars().count();
    if chars > MAX_COMMENT_CHARS {
        return Err(Error::invalid("body", format!("is {chars} characters; at most {MAX_COMMENT_CHARS}")));
    }
    if trimmed.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(Error::invalid("body", "contains control characters; remove them"));
    }
    Ok(trimmed.to_owned())
}

/// What the UI path of an item is, and its title for a notification.
struct Item {
    title: String,
    link: String,
    /// Who may change it: the permission that lets a member resolve any
    /// thread on it.
    update: Permission,
    /// For an activity, the text of each version.
    activity: Option<Activity>,
}

impl App {
    async fn comment_item(&self, access: &TenantAccess, subject: CommentSubject) -> Result<Item> {
        match subject {
            CommentSubject::Activity(id) => {
                access.require(Permission::ActivitiesRead)?;
                let activity = self.store.activity(access.tenant_id, id).await.found("activity")?;
                Ok(Item {
                    title: activity.title.clone(),
                    link: format!("/t/{}/projects/{}/activities/{id}", access.tenant_id, activity.project_id),
                    update: Permission::ActivitiesUpdate,
                    activity: Some(activity),
                })
            }
            CommentSubject::Post(id) => {
                access.require(Permission::PostsRead)?;
                let post = self.store.post(access.tenant_id, id).await.found("post")?;
                Ok(Item {
                    title: post.snippet(),
                    link: format!("/t/{}/posts/{id}", access.tenant_id),
                    update: Permission::PostsWrite,
                    activity: None,
                })
            }
        }
    }

    /// The text of an activity's content version `number`.
    async fn version_text(&self, activity: &Activity, number: i64) -> Result<Option<String>> {
        let Some(run) = &activity.content_run else { return Ok(None) };
        if number == 0 {
            return Ok(result_of(run).map(|r| r.content.clone()));
        }
        let versions = self.store.activity_versions(activity.tenant_id, activity.id, run.id).await?;
        Ok(versions.into_iter().find(|v| v.number == number).map(|v| v.content))
    }

    /// The members a comment mentions; an address that is not a member's is
    /// refused by name.
    async fn mentioned_members(&self, access: &TenantAccess, body: &str) -> Result<Vec<Uuid>> {
        let addresses = mentioned_addresses(body);
        if addresses.len() > MAX_MENTIONS {
            return Err(Error::invalid(
                "body",
                format!("mentions {} people; at most {MAX_MENTIONS}", addresses.len()),
            ));
        }
        let mut ids = BTreeSet::new();
        for address in addresses {
            let member = match Email::parse(&address) {
                Ok(email) => match self.store.user_by_email(&email).await? {
                    Some(user) => self.store.member(access.tenant_id, user.id).await?,
                    None => None,
                },
                Err(_) => None,
            };
            match member {
                Some(m) if !m.disabled => {
                    ids.insert(m.user_id);
                }
                _ => {
                    return Err(Error::invalid(
                        "body",
                        format!(
                            "@{address} is not a member of this organisation; mention members by their e-mail address"
                        ),
                    ));
                }
            }
        }
        Ok(ids.into_iter().collect())
    }

    fn mention_notices(
        access: &TenantAccess,
        item: &Item,
        comment_id: Uuid,
        people: &[Uuid],
    ) -> Vec<NewNotice> {
        let me = access.caller.creator_id();
        let author = access.caller.user().map(|u| u.display_name.to_string()).unwrap_or_default();
        people
            .iter()
            .filter(|id| Some(**id) != me)
            .map(|id| NewNotice {
                tenant_id: Some(access.tenant_id),
                kind: NoticeKind::Mention,
                audience: Audience::User(*id),
                title: format!("{author} mentioned you on “{}”", item.title),
                body: "Open it to read the comment and reply.".into(),
                link: Some(format!("{}#comment-{comment_id}", item.link)),
                // Once per person per comment, however often it is edited.
                dedupe_key: Some(format!("comment:{comment_id}:mention")),
            })
            .collect()
    }

    async fn comment_view(&self, access: &TenantAccess, c: Comment) -> Result<CommentView> {
        let me = access.caller.creator_id();
        let mine = c.author_id.is_some() && c.author_id == me && access.caller.user().is_ok();
        let deleted = c.deleted_at.is_some();
        let html = if deleted { String::new() } else { self.renderer.html(&c.body).await?.to_string() };
        let (activity_id, post_id) = match c.subject {
            CommentSubject::Activity(id) => (Some(id), None),
            CommentSubject::Post(id) => (None, Some(id)),
        };
        Ok(CommentView {
            id: c.id,
            activity_id,
            post_id,
            thread_id: c.thread_id,
            author_id: c.author_id,
            author_name: c.author_name.unwrap_or_else(|| "a former member".into()),
            body: c.body,
            html,
            anchor: c.anchor.map(|a| AnchorView { version: a.version, quote: a.quote }),
            mentions: c
                .mentions
                .into_iter()
                .map(|m| MentionView { user_id: m.user_id, name: m.name, email: m.email })
                .collect(),
            created_at: c.created_at,
            edited_at: c.edited_at,
            deleted,
            resolved_at: c.resolved_at,
            resolved_by: c.resolved_by,
            can_edit: mine && !deleted,
            can_delete: !deleted && (mine || access.role >= Role::Admin),
        })
    }

    /// The comments on an item, oldest first.
    pub async fn comments(&self, access: &TenantAccess, q: CommentQuery) -> Result<Vec<CommentView>> {
        let subject = subject_of(q.activity_id, q.post_id)?;
        self.comment_item(access, subject).await?;
        let comments = self.store.comments(access.tenant_id, subject).await?;
        let mut views = Vec::with_capacity(comments.len());
        for c in comments {
            views.push(self.comment_view(access, c).await?);
        }
        Ok(views)
    }

    pub async fn create_comment(&self, access: &TenantAccess, req: CreateComment) -> Result<CommentView> {
        let subject = subject_of(req.activity_id, req.post_id)?;
        let item = self.comment_item(access, subject).await?;
        access.require(Permission::CommentsWrite)?;
        let author = access.caller.user()?.id;
        let body = check_body(&req.body)?;
        let mentions = self.mentioned_members(access, &body).await?;
        // A reply names the thread's first comment, whichever comment of it
        // the client named.
        let thread_id = match req.thread_id {
            None => None,
            Some(id) => {
                let parent = self.store.comment(access.tenant_id, id).await?;
                match parent {
                    Some(p) if p.subject == subject => Some(p.thread_id.unwrap_or(p.id)),
                    _ => return Err(Error::invalid("thread_id", "is not a comment on this item")),
                }
            }
        };
        let anchor = match (req.anchor, &item.activity) {
            (None, _) => None,
            (Some(_), _) if thread_id.is_some() => {
                return Err(Error::invalid(
                    "anchor",
                    "only a new thread is anchored; a reply belongs to its thread",
                ));
            }
            (Some(_), None) => {
                return Err(Error::invalid("anchor", "only an activity's content has passages"));
            }
            (Some(a), Some(activity)) => {
                let quote = a.quote.trim().to_owned();
                let chars = quote.chars().count();
                if chars == 0 || chars > MAX_QUOTE_CHARS {
                    return Err(Error::invalid(
                        "anchor.quote",
                        format!("must be 1 to {MAX_QUOTE_CHARS} characters"),
                    ));
                }
                let Some(text) = self.version_text(activity, a.version).await? else {
                    return Err(Error::invalid(
                        "anchor.version",
                        "is not a version of this activity's content",
                    ));
                };
                if !text.contains(&quote) {
                    return Err(Error::invalid(
                        "anchor.quote",
                        format!("does not appear in version {}; quote the passage exactly", a.version),
                    ));
                }
                Some(Anchor { version: a.version, quote })
            }
        };
        let id = new_id();
        let audit = access
            .audit(actions::COMMENT_CREATE)
            .resource("comment", id)
            .details(serde_json::json!({
                "activity_id": req.activity_id,
                "post_id": req.post_id,
                "thread_id": thread_id,
                "mentions": mentions,
            }))
            .notify_all(Self::mention_notices(access, &item, id, &mentions));
        let comment = NewComment {
            id,
            tenant_id: access.tenant_id,
            subject,
            thread_id,
            author_id: Some(author),
            author_email: None,
            body,
            anchor,
            mentions,
        };
        let stored = self.store.add_comment(&comment, &audit).await?;
        self.comment_view(access, stored).await
    }

    /// Edits one's own comment; people newly mentioned hear of it.
    pub async fn edit_comment(
        &self,
        access: &TenantAccess,
        id: Uuid,
        req: EditComment,
    ) -> Result<CommentView> {
        access.require(Permission::CommentsWrite)?;
        let me = access.caller.user()?.id;
        let comment = self.store.comment(access.tenant_id, id).await.found("comment")?;
        let item = self.comment_item(access, comment.subject).await?;
        if comment.deleted_at.is_some() {
            return Err(Error::NotFound("comment"));
        }
        if comment.author_id != Some(me) {
            return Err(Error::Forbidden("only its author edits a comment".into()));
        }
        let body = check_body(&req.body)?;
        let mentions = self.mentioned_members(access, &body).await?;
        let before: BTreeSet<Uuid> = comment.mentions.iter().map(|m| m.user_id).collect();
        let added: Vec<Uuid> = mentions.iter().copied().filter(|m| !before.contains(m)).collect();
        let audit = access
            .audit(actions::COMMENT_EDIT)
            .resource("comment", id)
            .details(serde_json::json!({ "mentions": mentions }))
            .notify_all(Self::mention_notices(access, &item, id, &added));
        let stored = self.store.edit_comment(access.tenant_id, id, &body, &mentions, &audit).await?;
        self.comment_view(access, stored).await
    }

    /// Deletes a comment: its author's own, or any as an admin.
    pub async fn delete_comment(&self, access: &TenantAccess, id: Uuid) -> Result<CommentView> {
        access.require(Permission::CommentsWrite)?;
        let comment = self.store.comment(access.tenant_id, id).await.found("comment")?;
        self.comment_item(access, comment.subject).await?;
        let mine = access.caller.user().is_ok()
            && comment.author_id.is_some()
            && comment.author_id == access.caller.creator_id();
        if !mine && access.role < Role::Admin {
            return Err(Error::Forbidden("only its author or an admin deletes a comment".into()));
        }
        let audit = access
            .audit(actions::COMMENT_DELETE)
            .resource("comment", id)
            .details(serde_json::json!({ "own": mine }));
        let stored = self.store.delete_comment(access.tenant_id, id, &audit).await?;
        self.comment_view(access, stored).await
    }

    /// Resolves or reopens a thread: its author, or a member who may change
    /// the item.
    pub async fn resolve_thread(
        &self,
        access: &TenantAccess,
        id: Uuid,
        req: ResolveThread,
    ) -> Result<CommentView> {
        access.require(Permission::CommentsWrite)?;
        let me = access.caller.user()?.id;
        let comment = self.store.comment(access.tenant_id, id).await.found("comment")?;
        let item = self.comment_item(access, comment.subject).await?;
        if comment.author_id != Some(me) && !access.role.allows(item.update) {
            return Err(Error::Forbidden(format!(
                "only the thread's author or someone with the {} permission resolves it",
                item.update.as_str()
            )));
        }
        let action = if req.resolved { actions::COMMENT_RESOLVE } else { actions::COMMENT_REOPEN };
        let audit = access.audit(action).resource("comment", id);
        let stored =
            self.store.resolve_thread(access.tenant_id, id, req.resolved.then_some(me), &audit).await?;
        self.comment_view(access, stored).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_addresses_after_an_at_sign() {
        assert_eq!(
            mentioned_addresses("Thanks @Alex@Example.com and (@sam@example.org), see @alex@example.com."),
            vec!["alex@example.com", "sam@example.org"]
        );
        assert!(mentioned_addresses("write to me@example.com or @team").is_empty());
        assert!(mentioned_addresses("@@ @a@b @x@y.z@w").is_empty());
        assert_eq!(mentioned_addresses("@ana@example.com, hi"), vec!["ana@example.com"]);
    }

    #[test]
    fn a_comment_is_checked() {
        assert!(check_body("   ").is_err());
        assert!(check_body(&"x".repeat(MAX_COMMENT_CHARS + 1)).is_err());
        assert!(check_body("bell\u{7}").is_err());
        assert_eq!(check_body("  fine\nline two ").unwrap(), "fine\nline two");
    }
}
