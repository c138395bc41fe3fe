//! Comment threads in the UI: the panel shown on an activity's page and on
//! a post's page, and the forms it posts (comment, reply, edit, delete,
//! resolve, reopen). The rules are the service's (`service::comments`).
//!
//! A form answers with a redirect to the item's page at the comment; a
//! refused comment re-renders the item's page with the error beside the
//! form and the text kept.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::page::{FormErrors, UiError, see_other};
use super::session::{Path, Submit, TenantPage};
use super::view::When;
use crate::api::ApiState;
use crate::domain::Permission;
use crate::error::Result;
use crate::service::{AnchorIn, CommentQuery, CommentView, CreateComment, EditComment, ResolveThread};
use crate::store::CommentSubject;

/// A comment as the panel shows it.
pub struct CommentRow {
    pub id: Uuid,
    pub author: String,
    pub at: When,
    pub edited: bool,
    pub deleted: bool,
    pub html: String,
    pub body: String,
    pub can_edit: bool,
    pub can_delete: bool,
}

pub struct Thread {
    pub id: Uuid,
    pub started_by: String,
    /// The quoted passage ("" for none) and which version it is from.
    pub quote: String,
    pub quote_of: String,
    pub comments: Vec<CommentRow>,
    pub resolved: bool,
    pub resolved_note: String,
    pub can_resolve: bool,
}

/// What the person was writing when a comment was refused.
#[derive(Debug, Default, Clone)]
pub struct CommentDraft {
    pub thread_id: Option<Uuid>,
    pub body: String,
    pub quote: String,
}

/// The comment panel of an item's page.
pub struct CommentsPanel {
    pub threads: Vec<Thread>,
    pub open: usize,
    /// Where the forms post (the tenant's `/comments`).
    pub action: String,
    /// `activity_id` or `post_id`.
    pub subject_field: &'static str,
    pub subject_id: Uuid,
    pub can_write: bool,
    /// For an activity: the version a quote is taken from (the current one).
    pub version: Option<i64>,
    pub draft: CommentDraft,
    pub error: String,
}

impl CommentsPanel {
    /// The draft's text for the new-thread form.
    pub fn new_body(&self) -> &str {
        if self.draft.thread_id.is_none() { &self.draft.body } else { "" }
    }

    /// The draft's text for the reply form of `thread`.
    pub fn reply_body(&self, thread: &Uuid) -> &str {
        if self.draft.thread_id.as_ref() == Some(thread) { &self.draft.body } else { "" }
    }

    /// The error, shown beside the form it belongs to.
    pub fn error_for(&self, thread: Option<&Uuid>) -> &str {
        if self.draft.thread_id.as_ref() == thread { &self.error } else { "" }
    }
}

/// The comment panel of an item, with a refused draft if there is one.
pub async fn panel(
    state: &ApiState,
    page: &TenantPage,
    subject: CommentSubject,
    version: Option<i64>,
    draft: Option<(CommentDraft, String)>,
) -> Result<CommentsPanel> {
    let (query, subject_field, subject_id, update) = match subject {
        CommentSubject::Activity(id) => (
            CommentQuery { activity_id: Some(id), post_id: None },
            "activity_id",
            id,
            Permission::ActivitiesUpdate,
        ),
        CommentSubject::Post(id) => {
            (CommentQuery { activity_id: None, post_id: Some(id) }, "post_id", id, Permission::PostsWrite)
        }
    };
    let comments = state.app.comments(&page.access, query).await?;
    let me = page.access.caller.creator_id();
    let mut threads: Vec<Thread> = Vec::new();
    for c in comments {
        let row = row(&c);
        match c.thread_id {
            Some(thread) => {
                if let Some(t) = threads.iter_mut().find(|t| t.id == thread) {
                    t.comments.push(row);
                }
            }
            None => threads.push(Thread {
                id: c.id,
                started_by: c.author_name.clone(),
                quote: c.anchor.as_ref().map(|a| a.quote.clone()).unwrap_or_default(),
                quote_of: match c.anchor.as_ref().map(|a| a.version) {
                    Some(0) => "the generated draft".into(),
                    Some(n) => format!("version {n}"),
                    None => String::new(),
                },
                resolved: c.resolved_at.is_some(),
                resolved_note: c
                    .resolved_at
                    .map(|at| format!("Resolved {}", When::of(at).text))
                    .unwrap_or_default(),
                can_resolve: (c.author_id.is_some() && c.author_id == me) || page.can(update),
                comments: vec![row],
            }),
        }
    }
    let open = threads.iter().filter(|t| !t.resolved).count();
    let (draft, error) = draft.unwrap_or_default();
    Ok(CommentsPanel {
        threads,
        open,
        action: page.path("/comments"),
        subject_field,
        subject_id,
        can_write: page.can(Permission::CommentsWrite) && page.access.caller.user().is_ok(),
        version,
        draft,
        error,
    })
}

fn row(c: &CommentView) -> CommentRow {
    CommentRow {
        id: c.id,
        author: c.author_name.clone(),
        at: When::of(c.created_at),
        edited: c.edited_at.is_some(),
        deleted: c.deleted,
        html: c.html.clone(),
        body: c.body.clone(),
        can_edit: c.can_edit,
        can_delete: c.can_delete,
    }
}

/// The page of the item a comment is on, at the comment.
fn item_href(page: &TenantPage, c: &CommentView, anchor: &str) -> String {
    match (c.activity_id, c.post_id) {
        (Some(_), _) => format!("{}#{anchor}", page.path(&format!("/comments/{}/item", c.id))),
        _ => format!("{}#{anchor}", page.path(&format!("/posts/{}", c.post_id.unwrap_or_default()))),
    }
}

/// Re-renders the item's page with a refused comment.
async fn refused(
    state: &ApiState,
    page: TenantPage,
    subject: CommentSubject,
    draft: CommentDraft,
    errors: FormErrors,
) -> Result<Response, UiError> {
    let message = ["body", "thread_id", "quote", "version", "anchor", "activity_id", "post_id", ""]
        .iter()
        .map(|f| errors.get(f))
        .find(|m| !m.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| errors.general(&[]).join(" "));
    match subject {
        CommentSubject::Activity(id) => {
            let activity = state
                .app
                .store
                .activity(page.tenant_id(), id)
                .await?
                .ok_or(crate::error::Error::NotFound("activity"))?;
            super::activities::activity_page_with(
                state,
                page,
                activity.project_id,
                id,
                Some((draft, message)),
            )
            .await
        }
        CommentSubject::Post(id) => {
            super::publishing::post_page_with(state, page, id, Some((draft, message))).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CommentForm {
    activity_id: Option<Uuid>,
    post_id: Option<Uuid>,
    thread_id: Option<Uuid>,
    body: String,
    quote: Option<String>,
    /// The version the quote is from (a hidden field of the page).
    version: Option<String>,
}

pub async fn create(State(state): State<ApiState>, submit: Submit<CommentForm>) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let quote = form.quote.clone().map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
    // A version the page did not write reaches the service as -1, which it
    // refuses by name.
    let version = form.version.as_deref().map(|v| v.trim().parse::<i64>().unwrap_or(-1));
    let anchor = match (&quote, version) {
        (Some(quote), Some(version)) => Some(AnchorIn { version, quote: quote.clone() }),
        (Some(quote), None) => Some(AnchorIn { version: -1, quote: quote.clone() }),
        _ => None,
    };
    let request = CreateComment {
        activity_id: form.activity_id,
        post_id: form.post_id,
        thread_id: form.thread_id,
        body: form.body.clone(),
        anchor,
    };
    match state.app.create_comment(&page.access, request).await {
        Ok(c) => Ok(see_other(&item_href(&page, &c, &format!("comment-{}", c.id)))),
        Err(e) => {
            let subject = match (form.activity_id, form.post_id) {
                (Some(id), _) => CommentSubject::Activity(id),
                (None, Some(id)) => CommentSubject::Post(id),
                (None, None) => return Err(e.into()),
            };
            let errors = FormErrors::from_error(e)?;
            let draft =
                CommentDraft { thread_id: form.thread_id, body: form.body, quote: quote.unwrap_or_default() };
            refused(&state, page, subject, draft, errors).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct EditForm {
    body: String,
}

pub async fn edit(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<EditForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    match state.app.edit_comment(&page.access, id, EditComment { body: form.body.clone() }).await {
        Ok(c) => Ok(see_other(&item_href(&page, &c, &format!("comment-{id}")))),
        Err(e) => {
            let comment = state.app.store.comment(page.tenant_id(), id).await?;
            let Some(comment) = comment else { return Err(e.into()) };
            let errors = FormErrors::from_error(e)?;
            let draft = CommentDraft {
                thread_id: Some(comment.thread_id.unwrap_or(id)),
                body: form.body,
                quote: String::new(),
            };
            refused(&state, page, comment.subject, draft, errors).await
        }
    }
}

pub async fn delete(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    let c = state.app.delete_comment(&page.access, id).await?;
    Ok(see_other(&item_href(&page, &c, &format!("comment-{id}"))))
}

#[derive(Debug, Deserialize)]
pub struct ResolveForm {
    resolved: String,
}

pub async fn resolve(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<ResolveForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let resolved = form.resolved == "true";
    let c = state.app.resolve_thread(&page.access, id, ResolveThread { resolved }).await?;
    Ok(see_other(&item_href(&page, &c, &format!("comment-{id}"))))
}

/// The activity page a comment is on (its path needs the project).
pub async fn item(
    State(state): State<ApiState>,
    page: TenantPage,
    Path((_, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, UiError> {
    let comment = state
        .app
        .store
        .comment(page.tenant_id(), id)
        .await?
        .ok_or(crate::error::Error::NotFound("comment"))?;
    let href = match comment.subject {
        CommentSubject::Activity(activity) => {
            let a = state
                .app
                .store
                .activity(page.tenant_id(), activity)
                .await?
                .ok_or(crate::error::Error::NotFound("activity"))?;
            page.path(&format!("/projects/{}/activities/{activity}", a.project_id))
        }
        CommentSubject::Post(post) => page.path(&format!("/posts/{post}")),
    };
    Ok(see_other(&href))
}
