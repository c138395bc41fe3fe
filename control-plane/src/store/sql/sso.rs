//! [`SsoStore`] for [`SqlStore`]: a tenant's OpenID Connect connection,
//! the sign-ins under way, and signing a person in by their provider
//! account in one transaction.

use super::*;

use crate::cloud::crypto::Sealed;
use crate::store::{PendingSsoLogin, SsoArrival, SsoArrived, SsoConnection, SsoStore};

#[derive(FromRow)]
struct ConnectionRow {
    tenant_id: Uuid,
    issuer: String,
    client_id: String,
    secret_ciphertext: Vec<u8>,
    secret_nonce: Vec<u8>,
    secret_hint: String,
    allowed_domains: String,
    default_role: String,
    groups_claim: String,
    group_roles: String,
    enabled: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

const CONNECTION_COLUMNS: &str = "tenant_id, issuer, client_id, secret_ciphertext, secret_nonce, secret_hint, \
     allowed_domains, default_role, groups_claim, group_roles, enabled, created_at, updated_at";

impl TryFrom<ConnectionRow> for SsoConnection {
    type Error = StoreError;
    fn try_from(r: ConnectionRow) -> Result<Self> {
        let pairs: Vec<(String, String)> =
            serde_json::from_str(&r.group_roles).map_err(corrupt("sso_connections.group_roles"))?;
        let group_roles = pairs
            .into_iter()
            .map(|(group, role)| Ok((group, role.parse().map_err(corrupt("sso_connections.group_roles"))?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            tenant_id: r.tenant_id,
            issuer: r.issuer,
            client_id: r.client_id,
            secret: Sealed { ciphertext: r.secret_ciphertext, nonce: r.secret_nonce },
            secret_hint: r.secret_hint,
            allowed_domains: serde_json::from_str(&r.allowed_domains)
                .map_err(corrupt("sso_connections.allowed_domains"))?,
            default_role: r.default_role.parse().map_err(corrupt("sso_connections.default_role"))?,
            groups_claim: r.groups_claim,
            group_roles,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[async_trait]
impl<DB> SsoStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Date: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<Uuid>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<bool>: Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Timestamp>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Date>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Vec<u8>>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> &'t str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn sso_connection(&self, tenant_id: Uuid) -> Result<Option<SsoConnection>> {
        let row: Option<ConnectionRow> = sqlx::query_as(sql(&[
            "SELECT ",
            CONNECTION_COLUMNS,
            " FROM sso_connections WHERE tenant_id = $1",
        ]))
        .bind(tenant_id)
        .fetch_optional(&self.read)
        .await?;
        row.map(SsoConnection::try_from).transpose()
    }

    async fn put_sso_connection(
        &self,
        c: &SsoConnection,
        keep_secret: bool,
        audit: &NewAuditEvent,
    ) -> Result<SsoConnection> {
        let group_roles: Vec<(&str, &str)> =
            c.group_roles.iter().map(|(g, r)| (g.as_str(), r.as_str())).collect();
        let mut tx = self.write.begin().await?;
        let secret_update = if keep_secret {
            ""
        } else {
            "secret_ciphertext = excluded.secret_ciphertext, secret_nonce = excluded.secret_nonce, \
             secret_hint = excluded.secret_hint, "
        };
        let row: ConnectionRow = sqlx::query_as(sql(&[
            "INSERT INTO sso_connections (",
            CONNECTION_COLUMNS,
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
             ON CONFLICT (tenant_id) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id, ",
            secret_update,
            "allowed_domains = excluded.allowed_domains, default_role = excluded.default_role, \
             groups_claim = excluded.groups_claim, group_roles = excluded.group_roles, \
             enabled = excluded.enabled, updated_at = excluded.updated_at RETURNING ",
            CONNECTION_COLUMNS,
        ]))
        .bind(c.tenant_id)
        .bind(c.issuer.clone())
        .bind(c.client_id.clone())
        .bind(c.secret.ciphertext.clone())
        .bind(c.secret.nonce.clone())
        .bind(c.secret_hint.clone())
        .bind(to_json(&c.allowed_domains)?)
        .bind(c.default_role.as_str())
        .bind(c.groups_claim.clone())
        .bind(to_json(&group_roles)?)
        .bind(c.enabled)
        .bind(audit.occurred_at)
        .fetch_one(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn delete_sso_connection(&self, tenant_id: Uuid, audit: &NewAuditEvent) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query("DELETE FROM sso_connections WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&r) == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM sso_identities WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sso_logins WHERE tenant_id = $1").bind(tenant_id).execute(&mut *tx).await?;
        sqlx::query("UPDATE tenant_security SET require_sso = FALSE, updated_at = $2 WHERE tenant_id = $1")
            .bind(tenant_id)
            .bind(audit.occurred_at)
            .execute(&mut *tx)
            .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn session_sso_tenant(&self, session_id: Uuid) -> Result<Option<Uuid>> {
        let tenant: Option<Option<Uuid>> =
            sqlx::query_scalar("SELECT sso_tenant_id FROM sessions WHERE id = $1")
                .bind(session_id)
                .fetch_optional(&self.read)
                .await?;
        Ok(tenant.flatten())
    }

    async fn revoke_sso_sessions(&self, tenant_id: Uuid, now: Timestamp) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE sso_tenant_id = $1 AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(DB::rows_affected(&r))
    }

    async fn sso_tenants_for_domain(&self, domain: &str) -> Result<Vec<Uuid>> {
        // Few tenants have a connection: read them and match in Rust rather
        // than search JSON text in SQL two ways.
        let rows: Vec<(Uuid, String)> =
            sqlx::query_as("SELECT tenant_id, allowed_domains FROM sso_connections WHERE enabled = TRUE")
                .fetch_all(&self.read)
                .await?;
        let mut tenants = Vec::new();
        for (tenant_id, domains) in rows {
            let domains: Vec<String> =
                serde_json::from_str(&domains).map_err(corrupt("sso_connections.allowed_domains"))?;
            if domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
                tenants.push(tenant_id);
            }
        }
        Ok(tenants)
    }

    async fn begin_sso_login(&self, login: &PendingSsoLogin) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM sso_logins WHERE expires_at <= $1")
            .bind(login.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sso_logins (state_hash, tenant_id, nonce, pkce_verifier, return_to, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(login.state_hash.clone())
        .bind(login.tenant_id)
        .bind(login.nonce.clone())
        .bind(login.pkce_verifier.clone())
        .bind(login.return_to.clone())
        .bind(login.created_at)
        .bind(login.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_sso_login(&self, state_hash: &[u8], now: Timestamp) -> Result<Option<PendingSsoLogin>> {
        // Deleting is the compare-and-set: of two callbacks with one state,
        // one gets the row.
        let row: Option<(Vec<u8>, Uuid, String, String, Option<String>, Timestamp, Timestamp)> =
            sqlx::query_as(
                "DELETE FROM sso_logins WHERE state_hash = $1 \
             RETURNING state_hash, tenant_id, nonce, pkce_verifier, return_to, created_at, expires_at",
            )
            .bind(state_hash.to_vec())
            .fetch_optional(&self.write)
            .await?;
        Ok(row
            .map(|(state_hash, tenant_id, nonce, pkce_verifier, return_to, created_at, expires_at)| {
                PendingSsoLogin {
                    state_hash,
                    tenant_id,
                    nonce,
                    pkce_verifier,
                    return_to,
                    created_at,
                    expires_at,
                }
            })
            .filter(|login| login.expires_at > now))
    }

    async fn sso_arrive(&self, a: &SsoArrival, audit: &NewAuditEvent) -> Result<SsoArrived> {
        let mut tx = self.write.begin().await?;
        // Serialises arrivals (and membership changes) in the tenant, so two
        // first sign-ins of one person provision them once.
        Self::lock_tenant(&mut tx, a.tenant_id).await?;
        let linked: Option<Uuid> = sqlx::query_scalar(
            "SELECT user_id FROM sso_identities WHERE tenant_id = $1 AND issuer = $2 AND subject = $3",
        )
        .bind(a.tenant_id)
        .bind(a.issuer.clone())
        .bind(a.subject.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let mut created_account = false;
        let user_id = match linked {
            Some(user_id) => user_id,
            None => {
                let existing: Option<Uuid> =
                    sqlx::query_scalar("SELECT id FROM users WHERE email_normalized = $1")
                        .bind(a.email.normalized())
                        .fetch_optional(&mut *tx)
                        .await?;
                let user_id = match existing {
                    Some(user_id) => {
                        let member: Option<String> = sqlx::query_scalar(
                            "SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2",
                        )
                        .bind(a.tenant_id)
                        .bind(user_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                        // Only a member, and never an owner: an owner's
                        // account is their break-glass, and a provider (run
                        // by whoever set it up) must not be able to become it.
                        match member.as_deref() {
                            None => return Ok(SsoArrived::EmailTaken),
                            Some("owner") => return Ok(SsoArrived::OwnerNotLinked),
                            Some(_) => user_id,
                        }
                    }
                    None => {
                        // Not marked verified: a tenant's own provider's word
                        // is not the address's owner's.
                        let user = Self::insert_user(&mut tx, &a.new_user, a.now).await?;
                        created_account = true;
                        user.id
                    }
                };
                sqlx::query(
                    "INSERT INTO sso_identities (tenant_id, issuer, subject, user_id, created_at, last_login_at) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(a.tenant_id)
                .bind(a.issuer.clone())
                .bind(a.subject.clone())
                .bind(user_id)
                .bind(a.now)
                .execute(&mut *tx)
                .await?;
                user_id
            }
        };
        sqlx::query(
            "UPDATE sso_identities SET last_login_at = $4 WHERE tenant_id = $1 AND issuer = $2 AND subject = $3",
        )
        .bind(a.tenant_id)
        .bind(a.issuer.clone())
        .bind(a.subject.clone())
        .bind(a.now)
        .execute(&mut *tx)
        .await?;
        let row: UserRow = sqlx::query_as(
            "SELECT id, email, display_name, disabled, email_verified_at, created_at, updated_at FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        let user: User = row.try_into()?;
        if user.disabled {
            return Ok(SsoArrived::Disabled);
        }
        let current: Option<String> =
            sqlx::query_scalar("SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                .bind(a.tenant_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let current: Option<Role> =
            current.map(|r| r.parse().map_err(corrupt("memberships.role"))).transpose()?;
        let (role, joined, previous_role) = match current {
            None => {
                Self::insert_membership(&mut tx, a.tenant_id, user_id, a.joining_role, a.now).await?;
                (a.joining_role, true, None)
            }
            // Owners sign in with their password only (see above), even one
            // linked before becoming an owner.
            Some(Role::Owner) => return Ok(SsoArrived::OwnerNotLinked),
            Some(current) => match a.synced_role.filter(|synced| *synced != current) {
                Some(synced) => {
                    sqlx::query("UPDATE memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2")
                        .bind(a.tenant_id)
                        .bind(user_id)
                        .bind(synced.as_str())
                        .execute(&mut *tx)
                        .await?;
                    (synced, false, Some(current))
                }
                None => (current, false, None),
            },
        };
        if created_account || joined || previous_role.is_some() || linked.is_none() {
            let mut audit = audit.clone().resource("user", user_id);
            audit.actor = crate::store::Actor::User { id: user.id, email: user.email.to_string() };
            audit.details = serde_json::json!({
                "issuer": a.issuer,
                "created_account": created_account,
                "linked": linked.is_none(),
                "joined": joined,
                "role": role.as_str(),
                "previous_role": previous_role.map(|r| r.as_str()),
            });
            Self::insert_audit(&mut tx, &audit).await?;
        }
        tx.commit().await?;
        Ok(SsoArrived::SignedIn { user, role, created_account, joined, previous_role })
    }
}
