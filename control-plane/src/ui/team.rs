//! The team: members and their roles, invitations (the link to send is
//! shown once), role changes and removals. The rules (who may grant what,
//! the last owner stays) are the services'; refusals are shown here.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::page::{FormErrors, Shell, UiError, every, render_form, request, see_other};
use super::session::{Path, Submit, TenantPage};
use super::view::When;
use crate::api::ApiState;
use crate::domain::{Permission, Role};
use crate::service::{CreateInvitation, Principal, UpdateMember};
use crate::store::InvitationStatus;

const ROLES: [Role; 4] = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];

struct MemberRow {
    user_id: Uuid,
    name: String,
    email: String,
    role: &'static str,
    is_me: bool,
    joined: When,
}

struct InvitationRow {
    id: Uuid,
    email: String,
    role: &'static str,
    expires: When,
}

#[derive(Template)]
#[template(path = "team.html")]
struct TeamPage {
    shell: Shell,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    roles: Vec<&'static str>,
    can_invite: bool,
    can_manage_roles: bool,
    can_remove: bool,
    errors: FormErrors,
    invite_link: Option<String>,
    invite_email: String,
    /// Whether invitations go out by e-mail.
    email_enabled: bool,
    base: String,
}

pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    page: TenantPage,
) -> Result<Response, UiError> {
    // An invitation created by the form just before the redirect here.
    let flash = super::flash::read(&state, &headers, page.tenant_id(), page.browser.session_id);
    let (link, email) = match &flash {
        Some(super::flash::Flash::Invitation { link, email }) => (Some(link.clone()), email.clone()),
        _ => (None, String::new()),
    };
    let path = page.path("/team");
    let mut response = team_page(&state, page, FormErrors::default(), link, email).await?;
    if flash.is_some() {
        super::flash::clear(&mut response, &path);
    }
    Ok(response)
}

async fn team_page(
    state: &ApiState,
    page: TenantPage,
    errors: FormErrors,
    invite_link: Option<String>,
    invite_email: String,
) -> Result<Response, UiError> {
    let members = every(|p| state.app.members(&page.access, p)).await?;
    let me = match &page.browser.caller.principal {
        Principal::User { user, .. } => Some(user.id),
        _ => None,
    };
    let can_invite = page.can(Permission::TeamInvite);
    let invitations =
        if can_invite { every(|p| state.app.invitations(&page.access, p)).await? } else { Vec::new() };
    let view = TeamPage {
        members: members
            .iter()
            .map(|m| MemberRow {
                user_id: m.user_id,
                name: m.display_name.to_string(),
                email: m.email.to_string(),
                role: m.role.as_str(),
                is_me: Some(m.user_id) == me,
                joined: When::of(m.joined_at),
            })
            .collect(),
        invitations: invitations
            .iter()
            .filter(|i| i.status == InvitationStatus::Pending)
            .map(|i| InvitationRow {
                id: i.id,
                email: i.email.to_string(),
                role: i.role.as_str(),
                expires: When::of(i.expires_at),
            })
            .collect(),
        roles: ROLES.iter().map(|r| r.as_str()).collect(),
        can_invite,
        can_manage_roles: page.can(Permission::TeamManageRoles),
        can_remove: page.can(Permission::TeamRemove),
        errors,
        invite_link,
        invite_email,
        email_enabled: state.app.notifier.email_enabled(),
        base: page.path("/team"),
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    email: Option<String>,
    role: Option<String>,
}

/// Invites by e-mail address and shows the link to send (the product sends
/// no e-mail itself).
pub async fn invite(
    State(state): State<ApiState>,
    headers: HeaderMap,
    submit: Submit<InviteForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let email = form.email.clone().unwrap_or_default();
    let body = serde_json::json!({ "email": email, "role": form.role.unwrap_or_else(|| "member".into()) });
    let result = match request::<CreateInvitation>(&body) {
        Ok(req) => state.app.create_invitation(&page.access, req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(created) => {
            let link = super::session::absolute_url(
                &headers,
                state.config.trust_proxy_headers,
                &format!(
                    "/invitations/accept?token={}",
                    form_urlencoded::byte_serialize(created.token.as_bytes()).collect::<String>()
                ),
            );
            // Post/redirect/get: the link rides the redirect sealed, shown once.
            let path = page.path("/team");
            let flash = super::flash::Flash::Invitation { link, email: created.email.to_string() };
            Ok(super::flash::redirect(&state, &page, &headers, &path, &path, flash))
        }
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            team_page(&state, page, errors, None, email).await
        }
    }
}

pub async fn revoke_invitation(
    State(state): State<ApiState>,
    Path((_, invitation_id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.revoke_invitation(&page.access, invitation_id).await?;
    Ok(see_other(&page.path("/team")))
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    role: Option<String>,
}

pub async fn change_role(
    State(state): State<ApiState>,
    Path((_, user_id)): Path<(Uuid, Uuid)>,
    submit: Submit<RoleForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let body = serde_json::json!({ "role": form.role.unwrap_or_default() });
    let result = match request::<UpdateMember>(&body) {
        Ok(req) => state.app.update_member(&page.access, user_id, req).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(see_other(&page.path("/team"))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            team_page(&state, page, errors, None, String::new()).await
        }
    }
}

pub async fn remove(
    State(state): State<ApiState>,
    Path((_, user_id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    match state.app.remove_member(&page.access, user_id).await {
        Ok(()) => Ok(see_other(&page.path("/team"))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            team_page(&state, page, errors, None, String::new()).await
        }
    }
}
