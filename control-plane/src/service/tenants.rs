//! Tenants and the signed-in user's view of them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{App, Caller, TenantAccess, actions};
use crate::domain::{ComplianceMode, Name, Permission, Plan, Slug, Tenant, User, new_id};
use crate::error::{Error, FoundExt, Result};
use crate::store::{MembershipSummary, NewTenant, StoreError, TenantPatch};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: Name,
    /// Defaults to one derived from the name.
    pub slug: Option<Slug>,
    /// Defaults to `free`.
    pub plan: Option<Plan>,
    /// Defaults to `standard`.
    pub compliance_mode: Option<ComplianceMode>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    pub name: Option<Name>,
    pub slug: Option<Slug>,
    /// Changing the plan needs `billing:manage`.
    pub plan: Option<Plan>,
    /// Switching to `hipaa` turns every project `edge_only`.
    pub compliance_mode: Option<ComplianceMode>,
}

/// The signed-in user and the tenants they belong to.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: User,
    pub memberships: Vec<MembershipSummary>,
}

impl App {
    pub async fn me(&self, caller: &Caller) -> Result<Me> {
        let user = caller.user()?.clone();
        let mut memberships = self.store.memberships(user.id).await?;
        // A single sign-on session sees only its organisation.
        if let Some(tenant) = self.sso_scope(caller).await? {
            memberships.retain(|m| m.tenant_id == tenant);
        }
        Ok(Me { user, memberships })
    }

    /// Creates a tenant owned by the calling user.
    pub async fn create_tenant(&self, caller: &Caller, req: CreateTenant) -> Result<Tenant> {
        let owner = caller.user()?.id;
        self.require_password_session(caller, "creating an organisation").await?;
        let explicit_slug = req.slug.is_some();
        let mut slug = req.slug.unwrap_or_else(|| Slug::from_name(req.name.as_str()));
        // A derived slug that is taken gets a short random suffix; an explicit
        // one is the caller's choice and a clash is reported.
        for attempt in 0..5 {
            let tenant = NewTenant {
                id: new_id(),
                name: req.name.clone(),
                slug: slug.clone(),
                plan: req.plan.unwrap_or(Plan::Free),
                compliance_mode: req.compliance_mode.unwrap_or(ComplianceMode::Standard),
            };
            let audit = super::audit_event(
                Some(tenant.id),
                caller.actor(),
                &caller.meta,
                actions::TENANT_CREATE,
                crate::store::Outcome::Success,
            )
            .resource("tenant", tenant.id)
            .details(serde_json::json!({ "slug": tenant.slug, "plan": tenant.plan, "compliance_mode": tenant.compliance_mode }));
            match self.store.create_tenant(&tenant, owner, &audit).await {
                Err(StoreError::Conflict { code: "slug_taken", .. }) if !explicit_slug && attempt < 4 => {
                    let base: String = slug.as_str().chars().take(56).collect();
                    let suffix: u32 = rand::random_range(0x1000..0xFFFF);
                    slug = Slug::parse(&format!("{}-{suffix:x}", base.trim_end_matches('-')))
                        .map_err(|e| Error::internal(anyhow::anyhow!("derived slug: {e}")))?;
                }
                other => return Ok(other?),
            }
        }
        Err(Error::Conflict { code: "slug_taken", message: "could not find a free slug; choose one".into() })
    }

    pub async fn tenant(&self, access: &TenantAccess) -> Result<Tenant> {
        self.store.tenant(access.tenant_id).await.found("tenant")
    }

    pub async fn update_tenant(&self, access: &TenantAccess, req: UpdateTenant) -> Result<Tenant> {
        access.require(Permission::TenantManage)?;
        if req.plan.is_some() {
            access.require(Permission::BillingManage)?;
        }
        let audit = access.audit(actions::TENANT_UPDATE).resource("tenant", access.tenant_id).details(
            serde_json::json!({
                "name": req.name, "slug": req.slug, "plan": req.plan, "compliance_mode": req.compliance_mode,
            }),
        );
        let before = self.store.tenant(access.tenant_id).await?.map(|t| t.compliance_mode);
        let patch = TenantPatch {
            name: req.name,
            slug: req.slug,
            plan: req.plan,
            compliance_mode: req.compliance_mode,
        };
        let updated = self.store.update_tenant(access.tenant_id, &patch, &audit).await?;
        if before.is_some_and(|mode| mode != updated.compliance_mode) {
            // Agents learn the mode in `Welcome`; their redaction default
            // follows it, so they must hear of the change now.
            self.hub.close_tenant(
                access.tenant_id,
                marketer_protocol::close::COMPLIANCE_CHANGED,
                "the tenant's compliance mode changed; reconnect to apply it",
            );
        }
        Ok(updated)
    }
}
