//! Erasing a whole organisation, across the control plane and its edge
//! agents (issue 19).
//!
//! An owner asks (`POST /tenants/{id}/erase` with their password and the
//! organisation's short name typed out). In one transaction the control
//! plane deletes the tenant and everything that hangs from it, keeps the
//! audit log's entries with their people replaced by pseudonyms (a person
//! by the same `user-…` pseudonym their own erasure uses, an API key or an
//! agent by `api_key-…` / `agent-…`), client addresses removed and details
//! reduced to ids, numbers and flags, and records every agent of the
//! tenant as pending. Then the tenant's connected agents are told to
//! reconnect; an erased tenant's agent that connects (now, or whenever it
//! comes back) is answered `EraseTenant` instead of `Welcome`, deletes its
//! index, outbox and state, confirms with what it deleted, and forgets its
//! identity. The tenant's stored files are deleted after the transaction
//! (retried by the notifier's hourly sweep if that fails). The erasure is
//! complete when every agent has confirmed and the files are gone; its
//! record (`GET /tenant-erasures/{id}`, for the person who asked) shows
//! which agent confirmed what, and when.
//!
//! People's accounts are not the organisation's: members keep their
//! accounts (and their other organisations); each can erase their own.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, Caller, Principal, TenantAccess, actions, people};
use crate::domain::{Permission, Tenant, Timestamp, new_id};
use crate::error::{Error, Result};
use crate::storage::FileStorage;
use crate::store::{Actor, AuditRewrite, ErasingAgent, Store, TenantErasure, TenantErasureRecord};

/// Erasing an organisation: the password again, and its short name typed
/// out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseTenant {
    #[schema(format = Password)]
    pub password: String,
    /// The organisation's short name (its slug), as a confirmation.
    pub confirm: String,
}

/// How an erased tenant's audit entries are kept.
pub const AUDIT_REWRITE: AuditRewrite = AuditRewrite { relabel, details: keep_ids };

/// The pseudonym of an actor in an erased tenant's audit log: a person's
/// is the one their own erasure would give; the server's own labels name
/// nobody and stay.
fn relabel(actor_type: &str, actor_id: Option<Uuid>, label: &str) -> String {
    match (actor_type, actor_id) {
        ("system", _) => label.to_owned(),
        ("user", Some(id)) => people::pseudonym(id),
        _ => {
            let mut hash = Sha256::new().chain_update(b"marketer erased actor v1:").chain_update(actor_type);
            match actor_id {
                Some(id) => hash.update(id.as_bytes()),
                // An address (an external reviewer's): salted with a secret
                // of this process, so a list of likely addresses cannot be
                // hashed to find it; stable for the erasure's transaction.
                None => {
                    hash.update(label_salt());
                    hash.update(label.as_bytes());
                }
            }
            let hex: String = hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("{actor_type}-{hex}")
        }
    }
}

/// A random secret, the same for every erasure of this process.
fn label_salt() -> &'static [u8; 32] {
    static SALT: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    SALT.get_or_init(rand::random)
}

/// The details of an entry without text: ids, numbers, flags and nulls
/// stay (which project, how many, whether), strings that are not ids go.
fn keep_ids(details: &str) -> String {
    fn keep(value: serde_json::Value) -> Option<serde_json::Value> {
        use serde_json::Value;
        match value {
            Value::String(s) => Uuid::parse_str(&s).is_ok().then_some(Value::String(s)),
            Value::Array(items) => Some(Value::Array(items.into_iter().filter_map(keep).collect())),
            Value::Object(map) => {
                Some(Value::Object(map.into_iter().filter_map(|(k, v)| keep(v).map(|v| (k, v))).collect()))
            }
            other => Some(other),
        }
    }
    match serde_json::from_str(details) {
        Ok(value) => keep(value).unwrap_or(serde_json::Value::Null).to_string(),
        Err(_) => "{}".to_owned(),
    }
}

impl App {
    /// Erases the organisation (owners, with a password sign-in).
    pub async fn erase_tenant(&self, access: &TenantAccess, req: EraseTenant) -> Result<TenantErasureRecord> {
        access.require(Permission::TenantManage)?;
        if !matches!(access.caller.principal, Principal::User { .. }) {
            return Err(Error::Forbidden("only a person can erase an organisation, not an API key".into()));
        }
        self.require_password_session(&access.caller, "deleting an organisation").await?;
        let tenant = self.store.tenant(access.tenant_id).await?.ok_or(Error::NotFound("tenant"))?;
        if req.confirm.trim() != tenant.slug.as_str() {
            return Err(Error::invalid(
                "confirm",
                format!("type the organisation's short name, {}, to confirm", tenant.slug.as_str()),
            ));
        }
        let user = self.reauthenticate(&access.caller, &req.password, "password").await?;
        // Written after the rewrite, so it is written as it would be kept.
        let actor = Actor::User { id: user.id, email: people::pseudonym(user.id) };
        self.erase_tenant_now(&tenant, Some(user.id), actor, &access.caller.meta).await
    }

    /// Erases a tenant whose erasure was asked for and checked (by an
    /// owner through the API, or by the operator's `admin erase-tenant`):
    /// the one transaction, then its connected agents told, then its
    /// stored files deleted. `actor` is written on its audit entry as
    /// given (a person's pseudonym, or the system).
    pub async fn erase_tenant_now(
        &self,
        tenant: &Tenant,
        requested_by: Option<Uuid>,
        actor: Actor,
        meta: &super::RequestMeta,
    ) -> Result<TenantErasureRecord> {
        let erasure =
            TenantErasure { id: new_id(), tenant_id: tenant.id, requested_by, now: Timestamp::now() };
        let meta = super::RequestMeta { client_ip: None, ..meta.clone() };
        let audit = super::audit_event(
            Some(tenant.id),
            actor,
            &meta,
            actions::TENANT_ERASE,
            crate::store::Outcome::Success,
        )
        .resource("tenant", tenant.id)
        .details(serde_json::json!({ "erasure_id": erasure.id }));
        // A request writing to the tenant as it is erased can deadlock with
        // the erasure on PostgreSQL; the erasure then runs again.
        let mut attempt = 0;
        let counts = loop {
            match self.store.erase_tenant(&erasure, AUDIT_REWRITE, &audit).await {
                Err(e) if e.deadlock() && attempt < 3 => {
                    attempt += 1;
                    tracing::warn!(tenant_id = %tenant.id, attempt, "an erasure met a deadlock; running it again");
                }
                other => break other?,
            }
        };
        tracing::info!(tenant_id = %tenant.id, erasure_id = %erasure.id, agents = counts.agents, "tenant erased");
        // Agents connected here are told now; those on other replicas when
        // their next heartbeats find them gone.
        self.hub.close_tenant(
            tenant.id,
            marketer_protocol::close::TENANT_ERASED,
            "the organisation was erased: reconnect to delete what this agent holds for it",
        );
        delete_files(self.store.as_ref(), self.files.as_ref(), erasure.id, tenant.id).await;
        self.store.tenant_erasure(erasure.id).await?.ok_or(Error::NotFound("tenant erasure"))
    }

    /// An erasure's record, for the person who asked for it.
    pub async fn tenant_erasure(&self, caller: &Caller, id: Uuid) -> Result<TenantErasureRecord> {
        let user = caller.user()?;
        match self.store.tenant_erasure(id).await? {
            Some(record) if record.requested_by == Some(user.id) => Ok(record),
            _ => Err(Error::NotFound("tenant erasure")),
        }
    }

    /// The erasures the caller asked for, newest first.
    pub async fn my_tenant_erasures(&self, caller: &Caller) -> Result<Vec<TenantErasureRecord>> {
        let user = caller.user()?;
        Ok(self.store.tenant_erasures_requested_by(user.id).await?)
    }

    /// An erased tenant's agent confirmed it deleted what it held.
    pub async fn agent_erased(
        &self,
        agent: ErasingAgent,
        report: &marketer_protocol::TenantErased,
    ) -> Result<()> {
        let details = serde_json::json!({
            "erasure_id": agent.erasure_id,
            "documents": report.documents,
            "chunks": report.chunks,
            "outbox_entries": report.outbox_entries,
            "files": report.files,
            "bytes": report.bytes,
        });
        let audit = super::audit_event(
            Some(agent.tenant_id),
            Actor::System { name: "edge agent".into() },
            &super::RequestMeta::default(),
            actions::TENANT_ERASE_CONFIRMED,
            crate::store::Outcome::Success,
        )
        .resource("agent", agent.agent_id)
        .details(details.clone());
        let first = self.store.confirm_agent_erasure(agent, &details, Timestamp::now(), &audit).await?;
        tracing::info!(agent_id = %agent.agent_id, erasure_id = %agent.erasure_id, first, "an erased tenant's agent confirmed");
        Ok(())
    }
}

/// Deletes an erased tenant's stored files; a failure leaves the erasure's
/// files pending, for [`finish_pending`].
async fn delete_files(store: &dyn Store, files: &dyn FileStorage, erasure_id: Uuid, tenant_id: Uuid) {
    let mut removed = 0;
    for folder in crate::storage::tenant_folders(tenant_id) {
        match files.delete_folder(&folder).await {
            Ok(n) => removed += n,
            Err(e) => {
                tracing::error!(%erasure_id, error = %format!("{e:#}"), "could not delete an erased tenant's files; retried within the hour");
                return;
            }
        }
    }
    match store.erasure_files_deleted(erasure_id, Timestamp::now()).await {
        Ok(()) => tracing::info!(%erasure_id, files = removed, "an erased tenant's files are deleted"),
        Err(e) => tracing::error!(%erasure_id, error = %e, "could not record an erasure's files as deleted"),
    }
}

/// Retries the file deletion of erasures where it failed (the notifier's
/// hourly sweep).
pub async fn finish_pending(store: &dyn Store, files: &dyn FileStorage) {
    match store.erasures_with_files_pending().await {
        Ok(pending) => {
            for (erasure_id, tenant_id) in pending {
                delete_files(store, files, erasure_id, tenant_id).await;
            }
        }
        Err(e) => tracing::error!(error = %e, "could not look for erasures with files to delete"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_entries_keep_ids_numbers_and_flags_but_no_text() {
        let id = Uuid::now_v7();
        let details = serde_json::json!({
            "title": "Quokka's secret launch", "project_id": id, "count": 3, "ok": true,
            "changes": { "name": "Ann", "role_id": id }, "ids": [id.to_string(), "ann@example.com"],
        })
        .to_string();
        let kept: serde_json::Value = serde_json::from_str(&keep_ids(&details)).unwrap();
        assert_eq!(
            kept,
            serde_json::json!({ "project_id": id, "count": 3, "ok": true, "changes": { "role_id": id }, "ids": [id] })
        );
        assert_eq!(keep_ids("not json"), "{}");
    }

    #[test]
    fn actors_become_pseudonyms_of_their_kind() {
        let id = Uuid::now_v7();
        assert_eq!(relabel("user", Some(id), "ann@example.com"), people::pseudonym(id));
        let key = relabel("api_key", Some(id), "ann's key");
        assert!(key.starts_with("api_key-") && !key.contains("ann"), "{key}");
        assert_eq!(key, relabel("api_key", Some(id), "renamed"));
        assert_eq!(relabel("system", None, "retention"), "retention");
        assert!(relabel("anonymous", None, "anonymous").starts_with("anonymous-"));
    }
}
