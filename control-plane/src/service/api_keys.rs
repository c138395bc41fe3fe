//! API keys for automation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::members::check_can_grant;
use super::{App, TenantAccess, actions};
use crate::auth::tokens::{OpaqueToken, TokenKind};
use crate::domain::{Name, Permission, Role, Timestamp, new_id};
use crate::error::{Error, NotFoundExt, Result};
use crate::store::{ApiKey, NewApiKey, Page, PageRequest};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: Name,
    /// The role the key acts with; at most the creator's own role.
    pub role: Role,
    /// When the key stops working; must be in the future. Omit for no expiry.
    pub expires_at: Option<Timestamp>,
}

/// A new API key. `key` is shown only here and cannot be recovered later.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    pub key: String,
}

/// Characters of the key kept in clear, so lists can tell keys apart.
const SHOWN_PREFIX: usize = 12;

impl App {
    pub async fn create_api_key(&self, access: &TenantAccess, req: CreateApiKey) -> Result<CreatedApiKey> {
        access.require(Permission::SettingsManage)?;
        check_can_grant(access, req.role)?;
        let now = Timestamp::now();
        if req.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let token = OpaqueToken::generate(TokenKind::ApiKey);
        let key = NewApiKey {
            id: new_id(),
            tenant_id: access.tenant_id,
            name: req.name,
            role: req.role,
            key_hash: token.hash,
            prefix: token.text.chars().take(SHOWN_PREFIX).collect(),
            created_by: access.caller.creator_id(),
            expires_at: req.expires_at,
        };
        let audit = access
            .audit(actions::API_KEY_CREATE)
            .resource("api_key", key.id)
            .details(serde_json::json!({ "name": key.name, "role": key.role }));
        let api_key = self.store.create_api_key(&key, &audit).await?;
        Ok(CreatedApiKey { api_key, key: token.text })
    }

    pub async fn api_keys(&self, access: &TenantAccess, page: PageRequest) -> Result<Page<ApiKey>> {
        access.require(Permission::SettingsManage)?;
        Ok(self.store.api_keys(access.tenant_id, page).await?)
    }

    pub async fn revoke_api_key(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        access.require(Permission::SettingsManage)?;
        let audit = access.audit(actions::API_KEY_REVOKE).resource("api_key", id);
        self.store.revoke_api_key(access.tenant_id, id, &audit).await.or_not_found("API key")
    }
}
