//! The team: members, roles and invitations.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, Principal, RequestMeta, TenantAccess, actions, audit_event};
use crate::auth::password;
use crate::auth::tokens::{OpaqueToken, TokenKind, hash_token, looks_like};
use crate::domain::{Email, Name, Password, Permission, Role, Timestamp, User, new_id};
use crate::error::{Error, FoundExt, NotFoundExt, Result};
use crate::store::{
    AcceptOutcome, Actor, Invitation, InvitationAccount, Member, NewInvitation, Outcome, Page, PageRequest,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    pub role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    pub email: Email,
    pub role: Role,
}

/// A new invitation. `token` is shown only here: send it to the invitee.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    pub id: Uuid,
    pub token: String,
    pub expires_at: Timestamp,
    pub email: Email,
    pub role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    pub token: String,
    /// Required when the invited address has no account yet.
    pub name: Option<Name>,
    /// Required when the invited address has no account yet: 12 to 256 characters.
    pub password: Option<Password>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedInvitation {
    pub tenant_id: Uuid,
    pub role: Role,
    pub user: User,
    /// Whether a new account was created for the invited address.
    pub created_user: bool,
}

impl App {
    pub async fn members(&self, access: &TenantAccess, page: PageRequest) -> Result<Page<Member>> {
        // Every member may see who else is on the team.
        Ok(self.store.members(access.tenant_id, page).await?)
    }

    pub async fn update_member(
        &self,
        access: &TenantAccess,
        user_id: Uuid,
        req: UpdateMember,
    ) -> Result<Member> {
        access.require(Permission::TeamManageRoles)?;
        self.store.member(access.tenant_id, user_id).await.found("member")?;
        let audit = access
            .audit(actions::MEMBER_UPDATE)
            .resource("user", user_id)
            .details(serde_json::json!({ "role": req.role }));
        self.store.set_role(access.tenant_id, user_id, req.role, &audit).await.or_not_found("member")
    }

    /// Removes a member. Anyone may leave; removing someone else needs
    /// `team:remove`, and removing an owner needs `team:manage_roles`.
    pub async fn remove_member(&self, access: &TenantAccess, user_id: Uuid) -> Result<()> {
        let is_self = matches!(&access.caller.principal, Principal::User { user, .. } if user.id == user_id);
        let target = self.store.member(access.tenant_id, user_id).await.found("member")?;
        if !is_self {
            access.require(Permission::TeamRemove)?;
            if target.role == Role::Owner {
                access.require(Permission::TeamManageRoles)?;
            }
        }
        let audit = access
            .audit(actions::MEMBER_REMOVE)
            .resource("user", user_id)
            .details(serde_json::json!({ "role": target.role, "left": is_self }));
        self.store.remove_member(access.tenant_id, user_id, &audit).await.or_not_found("member")
    }

    pub async fn create_invitation(
        &self,
        access: &TenantAccess,
        req: CreateInvitation,
    ) -> Result<CreatedInvitation> {
        access.require(Permission::TeamInvite)?;
        check_can_grant(access, req.role)?;
        if let Some(user) = self.store.user_by_email(&req.email).await?
            && self.store.role(access.tenant_id, user.id).await?.is_some()
        {
            return Err(Error::Conflict {
                code: "already_member",
                message: format!("{} already is a member of this tenant", req.email),
            });
        }
        let token = OpaqueToken::generate(TokenKind::Invitation);
        let invitation = NewInvitation {
            id: new_id(),
            tenant_id: access.tenant_id,
            email: req.email,
            role: req.role,
            token_hash: token.hash,
            invited_by: access.caller.creator_id(),
            expires_at: Timestamp::now() + self.auth.invitation_ttl,
        };
        let audit = access
            .audit(actions::INVITATION_CREATE)
            .resource("invitation", invitation.id)
            .details(serde_json::json!({ "email": invitation.email, "role": invitation.role }));
        let created = self.store.create_invitation(&invitation, &audit).await?;
        Ok(CreatedInvitation {
            id: created.id,
            token: token.text,
            expires_at: created.expires_at,
            email: created.email,
            role: created.role,
        })
    }

    pub async fn invitations(&self, access: &TenantAccess, page: PageRequest) -> Result<Page<Invitation>> {
        access.require(Permission::TeamInvite)?;
        Ok(self.store.invitations(access.tenant_id, page, Timestamp::now()).await?)
    }

    pub async fn revoke_invitation(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        access.require(Permission::TeamInvite)?;
        let audit = access.audit(actions::INVITATION_REVOKE).resource("invitation", id);
        self.store.revoke_invitation(access.tenant_id, id, &audit).await.or_not_found("invitation")
    }

    /// Redeems an invitation. Holding the token proves control of the
    /// invited mailbox, so no sign-in is needed; an address without an
    /// account gets one with the given name and password.
    pub async fn accept_invitation(
        &self,
        req: AcceptInvitation,
        meta: &RequestMeta,
    ) -> Result<AcceptedInvitation> {
        if !looks_like(TokenKind::Invitation, &req.token) {
            return Err(Error::NotFound("invitation"));
        }
        let hash = hash_token(&req.token);
        let audit = audit_event(None, Actor::Anonymous, meta, actions::INVITATION_ACCEPT, Outcome::Success);
        let now = Timestamp::now();
        let mut outcome = self.store.accept_invitation(&hash, None, now, &audit).await?;
        if outcome == AcceptOutcome::NeedsAccount {
            // Hash only when an account is really needed: it is slow on purpose.
            let name = req.name.ok_or_else(|| {
                Error::invalid("name", "is required: the invited address has no account yet")
            })?;
            let password = req.password.ok_or_else(|| {
                Error::invalid("password", "is required: the invited address has no account yet")
            })?;
            let account = InvitationAccount {
                user_id: new_id(),
                display_name: name,
                password_hash: password::hash(password).await.map_err(Error::Internal)?,
            };
            outcome = self.store.accept_invitation(&hash, Some(&account), now, &audit).await?;
        }
        match outcome {
            AcceptOutcome::Accepted { tenant_id, user, role, created_user } => {
                Ok(AcceptedInvitation { tenant_id, role, user, created_user })
            }
            AcceptOutcome::NotFound => Err(Error::NotFound("invitation")),
            AcceptOutcome::Expired => Err(Error::Gone {
                code: "invitation_expired",
                message: "this invitation has expired; ask for a new one".into(),
            }),
            AcceptOutcome::Revoked => Err(Error::Gone {
                code: "invitation_revoked",
                message: "this invitation was withdrawn; ask for a new one".into(),
            }),
            AcceptOutcome::AlreadyUsed => Err(Error::Conflict {
                code: "invitation_used",
                message: "this invitation has already been accepted".into(),
            }),
            AcceptOutcome::AlreadyMember => Err(Error::Conflict {
                code: "already_member",
                message: "you already are a member of this tenant".into(),
            }),
            AcceptOutcome::NeedsAccount => Err(Error::internal(anyhow::anyhow!(
                "invitation still needs an account after one was supplied"
            ))),
        }
    }
}

/// Nobody hands out more than they hold, and only those who manage roles
/// can make owners.
pub(super) fn check_can_grant(access: &TenantAccess, role: Role) -> Result<()> {
    if role == Role::Owner {
        access.require(Permission::TeamManageRoles)?;
    }
    if role > access.role {
        return Err(Error::Forbidden(format!(
            "a {} cannot grant the {} role",
            access.role.as_str(),
            role.as_str()
        )));
    }
    Ok(())
}
