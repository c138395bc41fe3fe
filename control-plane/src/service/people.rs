//! A person's rights over their own account (issue 19): an export of what
//! the control plane holds about them, and erasing them.
//!
//! - **Export** (`GET /me/export`): the account, memberships, sessions,
//!   whether they use a second factor, linked provider accounts, the
//!   comments and content edits they wrote, and the audit entries of their
//!   own actions, as one JSON document.
//! - **Erasure** (`POST /me/erase` with the password, or the operator's
//!   `admin erase-user`): the account and everything that is only theirs
//!   (sessions, memberships, second factor, notifications, provider links)
//!   are deleted; what they did stays in the audit log under a pseudonym
//!   (`user-` and 16 hex digits of a hash of the account id, which names
//!   nobody), with their address and client addresses removed; API keys
//!   they made are revoked; e-mail and invitations to their address are
//!   deleted. Content they wrote belongs to the organisation and stays,
//!   with their name on edits replaced by the pseudonym. An organisation's
//!   last owner cannot be erased (hand it over first). Nothing of a person
//!   (as opposed to a contact or an organisation's documents) is held by
//!   the edge agents, so nothing is asked of them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{App, Caller, Principal, actions, audit_event};
use crate::domain::{Email, Timestamp, User, new_id};
use crate::error::{Error, Result};
use crate::store::{
    Actor, AuthoredComment, AuthoredVersion, Erasure, ErasureCounts, MembershipSummary, Outcome,
    OwnAuditEntry, Store,
};

/// How many of each kind of item an export carries at most.
const EXPORT_LIMIT: i64 = 10_000;

/// The pseudonym an erased person's audit entries carry.
pub fn pseudonym(user_id: uuid::Uuid) -> String {
    let digest =
        Sha256::new().chain_update(b"marketer erased user v1:").chain_update(user_id.as_bytes()).finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("user-{hex}")
}

/// Everything the control plane holds about the person.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonalExport {
    pub exported_at: Timestamp,
    pub account: User,
    pub memberships: Vec<MembershipSummary>,
    pub two_factor_enabled: bool,
    pub sessions: Vec<super::two_factor::SessionView>,
    pub comments: Vec<AuthoredComment>,
    pub content_edits: Vec<AuthoredVersion>,
    /// The audit entries of the person's own actions, newest first.
    pub audit_entries: Vec<OwnAuditEntry>,
    /// What is not in here, and why.
    pub not_included: Vec<String>,
}

/// Erasing one's own account: the password again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseAccount {
    #[schema(format = Password)]
    pub password: String,
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureReport {
    /// What the audit log calls the person now.
    pub pseudonym: String,
    #[serde(flatten)]
    pub counts: ErasureCounts,
}

impl App {
    /// The caller's own data (people only; an API key has none).
    pub async fn export_me(&self, caller: &Caller) -> Result<PersonalExport> {
        let user = caller.user()?.clone();
        self.require_password_session(caller, "downloading your data").await?;
        let memberships = self.store.memberships(user.id).await?;
        let sessions = self.my_sessions(caller).await?.items;
        let two_factor_enabled = self.confirmed_two_factor(&user).await?.is_some();
        let comments = self.store.authored_comments(user.id, EXPORT_LIMIT).await?;
        let content_edits = self.store.authored_versions(user.id, EXPORT_LIMIT).await?;
        let audit_entries = self.store.own_audit_entries(user.id, EXPORT_LIMIT).await?;
        let audit = caller.audit(actions::USER_EXPORT).resource("user", user.id);
        self.store.record_audit(&audit).await?;
        Ok(PersonalExport {
            exported_at: Timestamp::now(),
            account: user,
            memberships,
            two_factor_enabled,
            sessions,
            comments,
            content_edits,
            audit_entries,
            not_included: vec![
                "content of the organisations you belong to that you did not write: it is theirs".into(),
                format!("more than {EXPORT_LIMIT} items of one kind: ask the operator for the rest"),
                "your password and second factor's secret: kept only as a hash and sealed".into(),
            ],
        })
    }

    /// Erases the caller's own account (the password again).
    pub async fn erase_me(&self, caller: &Caller, req: EraseAccount) -> Result<ErasureReport> {
        if !matches!(caller.principal, Principal::User { .. }) {
            return Err(Error::Forbidden("only a person can erase their own account, not an API key".into()));
        }
        self.require_password_session(caller, "deleting your account").await?;
        let user = self.reauthenticate(caller, &req.password, "password").await?;
        erase(self.store.as_ref(), &user, caller.meta.clone()).await
    }
}

/// Erases the account with this address (the operator's command).
pub async fn erase_by_email(store: &dyn Store, email: &Email) -> Result<ErasureReport> {
    let user = store.user_by_email(email).await?.ok_or(Error::NotFound("user"))?;
    erase(store, &user, super::RequestMeta::default()).await
}

async fn erase(store: &dyn Store, user: &User, meta: super::RequestMeta) -> Result<ErasureReport> {
    let pseudonym = pseudonym(user.id);
    let erasure = Erasure {
        id: new_id(),
        user_id: user.id,
        email: user.email.as_str().to_owned(),
        email_normalized: user.email.normalized(),
        pseudonym: pseudonym.clone(),
        now: Timestamp::now(),
    };
    // The erasure's own entry names nobody either.
    let meta = super::RequestMeta { client_ip: None, ..meta };
    let actor = Actor::System { name: pseudonym.clone() };
    let audit =
        audit_event(None, actor, &meta, actions::USER_ERASE, Outcome::Success).resource("user", user.id);
    let counts = store.erase_user(&erasure, &audit).await.map_err(|e| match e {
        crate::store::StoreError::Conflict { .. } => Error::Conflict {
            code: "last_owner",
            message: "this account is the last owner of an organisation: make someone else an owner (Team), \
                      or delete the organisation, first"
                .into(),
        },
        other => other.into(),
    })?;
    Ok(ErasureReport { pseudonym, counts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_and_name_nobody() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(pseudonym(id), pseudonym(id));
        assert_ne!(pseudonym(id), pseudonym(uuid::Uuid::now_v7()));
        assert!(pseudonym(id).starts_with("user-") && pseudonym(id).len() == 21);
    }
}
