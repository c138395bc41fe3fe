//! The team: members, roles and invitations.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, Caller, Principal, TenantAccess, actions, audit_event};
use crate::auth::tokens::{OpaqueToken, TokenKind, hash_token, looks_like};
use crate::domain::{Email, Name, Password, Permission, Role, Timestamp, User, new_id};
use crate::error::{Error, FoundExt, NotFoundExt, Result};
use crate::store::{
    AcceptOutcome, Audience, Invitation, MailPurpose, Member, NewInvitation, NewMail, NewNotice, NewUser,
    NoticeKind, Outcome, Page, PageRequest,
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

/// Accepting an invitation: the signed-in account must be the invited
/// address's.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    pub token: String,
}

/// Joining through an invitation's e-mailed link with a new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinWithNewAccount {
    pub token: String,
    pub display_name: Name,
    pub password: Password,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedInvitation {
    pub tenant_id: Uuid,
    pub role: Role,
    pub user: User,
}

/// An invitation as its token's holder sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvitationView {
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub email: Email,
    pub role: Role,
    pub status: crate::store::InvitationStatus,
    pub expires_at: Timestamp,
    /// Whether the invited address has an account (to sign in with).
    pub has_account: bool,
    /// Whether this is the e-mailed link, which may create the account.
    pub by_mail: bool,
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
        // The e-mailed link has a token of its own: only the invited
        // mailbox sees it, so it may create the account.
        let mail_token = OpaqueToken::generate(TokenKind::Invitation);
        let invitation = NewInvitation {
            id: new_id(),
            tenant_id: access.tenant_id,
            email: req.email.clone(),
            role: req.role,
            token_hash: token.hash,
            mail_token_hash: Some(mail_token.hash),
            invited_by: access.caller.creator_id(),
            expires_at: Timestamp::now() + self.auth.invitation_ttl,
        };
        let tenant = self.store.tenant(access.tenant_id).await.found("tenant")?;
        let inviter = access.caller.actor().label().to_owned();
        let title = format!("{inviter} invited you to {} on Marketer", tenant.name);
        let body = format!(
            "You are invited to the organisation {} as {}. The invitation is valid until {}.",
            tenant.name,
            req.role.as_str(),
            invitation.expires_at.to_rfc3339_fixed()
        );
        let path = format!("/invitations/accept?token={}", mail_token.text);
        let mut audit = access
            .audit(actions::INVITATION_CREATE)
            .resource("invitation", invitation.id)
            .details(serde_json::json!({ "email": invitation.email, "role": invitation.role }))
            .mail(NewMail {
                id: new_id(),
                tenant_id: Some(access.tenant_id),
                user_id: None,
                to: req.email.clone(),
                purpose: MailPurpose::Invitation,
                subject: title.clone(),
                body: format!("{body}\n\nOpen this link to join (it is yours alone: do not forward it):"),
                link: None,
                secret_link: Some(
                    self.notifier.seal_link(Some(access.tenant_id), &path).map_err(Error::Internal)?,
                ),
            });
        // Someone with an account also finds it among their notifications.
        if let Some(user) = self.store.user_by_email(&req.email).await? {
            audit = audit.notify(NewNotice {
                tenant_id: Some(access.tenant_id),
                kind: NoticeKind::Invitation,
                audience: Audience::User(user.id),
                title,
                body: format!(
                    "{body} Open the link in the e-mail we sent you, or ask for the link to be shared."
                ),
                link: None,
                dedupe_key: Some(format!("invitation:{}", invitation.id)),
            });
        }
        let created = self.store.create_invitation(&invitation, &audit).await?;
        self.notifier.wake();
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
    /// What an invitation is for (organisation, role, address), shown to
    /// whoever holds its token before they accept.
    pub async fn invitation_preview(&self, token: &str) -> Result<InvitationView> {
        if !looks_like(TokenKind::Invitation, token) {
            return Err(Error::NotFound("invitation"));
        }
        let preview =
            self.store.invitation_preview(&hash_token(token), Timestamp::now()).await.found("invitation")?;
        Ok(InvitationView {
            tenant_id: preview.invitation.tenant_id,
            tenant_name: preview.tenant_name,
            email: preview.invitation.email,
            role: preview.invitation.role,
            status: preview.invitation.status,
            expires_at: preview.invitation.expires_at,
            has_account: preview.has_account,
            by_mail: preview.by_mail,
        })
    }

    /// Accepts an invitation for the signed-in person, whose account must be
    /// the invited address's. An invitation never creates an account or sets
    /// a password: the token may have passed through other hands (the
    /// inviter's, a chat's), so holding it proves nothing about the address.
    pub async fn accept_invitation(
        &self,
        caller: &Caller,
        req: AcceptInvitation,
    ) -> Result<AcceptedInvitation> {
        let Principal::User { user, .. } = &caller.principal else {
            return Err(Error::Forbidden(
                "an invitation is accepted by a person, signed in as the invited address".into(),
            ));
        };
        self.require_password_session(caller, "accepting an invitation").await?;
        if !looks_like(TokenKind::Invitation, &req.token) {
            return Err(Error::NotFound("invitation"));
        }
        let hash = hash_token(&req.token);
        let audit =
            audit_event(None, caller.actor(), &caller.meta, actions::INVITATION_ACCEPT, Outcome::Success);
        accepted(self.store.accept_invitation(&hash, user.id, Timestamp::now(), &audit).await?)
    }

    /// Joins through an invitation's e-mailed link by creating the invited
    /// address's account with this name and password (the address is
    /// verified: the link reached it). The person then signs in.
    pub async fn join_with_new_account(
        &self,
        req: JoinWithNewAccount,
        meta: &super::RequestMeta,
    ) -> Result<AcceptedInvitation> {
        if !looks_like(TokenKind::Invitation, &req.token) {
            return Err(Error::NotFound("invitation"));
        }
        let preview = self.invitation_preview(&req.token).await?;
        let user = NewUser {
            id: new_id(),
            email: preview.email.clone(),
            display_name: req.display_name,
            password_hash: crate::auth::password::hash(req.password).await.map_err(Error::Internal)?,
        };
        let audit = audit_event(
            None,
            crate::store::Actor::User { id: user.id, email: user.email.to_string() },
            meta,
            actions::INVITATION_JOIN,
            Outcome::Success,
        );
        accepted(self.store.join_with_new_account(&hash_token(&req.token), &user, &audit).await?)
    }
}

/// An invitation's outcome as the API answers it.
fn accepted(outcome: AcceptOutcome) -> Result<AcceptedInvitation> {
    match outcome {
        AcceptOutcome::Accepted { tenant_id, user, role } => Ok(AcceptedInvitation { tenant_id, role, user }),
        AcceptOutcome::AlreadyHasAccount => Err(Error::Conflict {
            code: "account_exists",
            message: "the invited address already has an account: sign in with it, then accept".into(),
        }),
        AcceptOutcome::WrongAccount { email } => {
            Err(Error::Forbidden(format!("this invitation is for {email}; sign in as {email} to accept it")))
        }
        AcceptOutcome::NeedsAccount => Err(Error::Conflict {
            code: "account_needed",
            message: "the invited address has no account yet; open the link from the invitation e-mail to \
                          create it (or an operator runs `marketer-server admin create-user --email ADDRESS`)"
                .into(),
        }),
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
            message: "you already are a member of this organisation".into(),
        }),
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
