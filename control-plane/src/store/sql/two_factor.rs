//! [`TwoFactorStore`] for [`SqlStore`]: TOTP secrets (sealed), recovery
//! codes (hashed), spent time steps, a tenant's requirement, and a person's
//! own sessions and password.

use super::*;

use crate::cloud::crypto::Sealed;
use crate::store::{SessionRecord, SignInGate, SignInRules, TwoFactorRecord, TwoFactorStore};

#[async_trait]
impl<DB> TwoFactorStore for SqlStore<DB>
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
    async fn two_factor(&self, user_id: Uuid) -> Result<Option<TwoFactorRecord>> {
        let row: Option<(Vec<u8>, Vec<u8>, Option<Timestamp>, Option<i64>)> = sqlx::query_as(
            "SELECT secret_ciphertext, secret_nonce, confirmed_at, last_step FROM two_factor WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|(ciphertext, nonce, confirmed_at, last_step)| TwoFactorRecord {
            secret: Sealed { ciphertext, nonce },
            confirmed_at,
            last_step,
        }))
    }

    async fn begin_two_factor(&self, user_id: Uuid, secret: &Sealed, now: Timestamp) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO two_factor (user_id, secret_ciphertext, secret_nonce, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id) DO UPDATE SET secret_ciphertext = excluded.secret_ciphertext, \
             secret_nonce = excluded.secret_nonce, created_at = excluded.created_at \
             WHERE two_factor.confirmed_at IS NULL",
        )
        .bind(user_id)
        .bind(secret.ciphertext.clone())
        .bind(secret.nonce.clone())
        .bind(now)
        .execute(&self.write)
        .await?;
        if DB::rows_affected(&r) == 0 {
            return Err(StoreError::Conflict {
                code: "two_factor_enabled",
                message: "two-factor sign-in is already on; turn it off first to set up another app".into(),
            });
        }
        Ok(())
    }

    async fn confirm_two_factor(
        &self,
        user_id: Uuid,
        step: i64,
        recovery_hashes: &[Vec<u8>],
        audit: &NewAuditEvent,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "UPDATE two_factor SET confirmed_at = $2, last_step = $3 WHERE user_id = $1 AND confirmed_at IS NULL",
        )
        .bind(user_id)
        .bind(audit.occurred_at)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) == 0 {
            return Ok(false);
        }
        Self::put_recovery_codes(&mut tx, user_id, recovery_hashes).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn spend_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE two_factor SET last_step = $2 WHERE user_id = $1 AND confirmed_at IS NOT NULL \
             AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(user_id)
        .bind(step)
        .execute(&self.write)
        .await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    async fn spend_recovery_code(&self, user_id: Uuid, hash: &[u8], now: Timestamp) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(hash.to_vec())
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    async fn recovery_codes_left(&self, user_id: Uuid) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .fetch_one(&self.read)
            .await?)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        hashes: &[Vec<u8>],
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let on: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM two_factor WHERE user_id = $1 AND confirmed_at IS NOT NULL")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        if on.is_none() {
            return Err(StoreError::NotFound);
        }
        Self::put_recovery_codes(&mut tx, user_id, hashes).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_two_factor(&self, user_id: Uuid, audit: &NewAuditEvent) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let r =
            sqlx::query("DELETE FROM two_factor WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        let deleted = DB::rows_affected(&r) == 1;
        if deleted {
            Self::insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn tenant_sign_in_rules(&self, tenant_id: Uuid) -> Result<SignInRules> {
        let row: Option<(bool, bool)> = sqlx::query_as(
            "SELECT require_two_factor, require_sso FROM tenant_security WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map_or_else(SignInRules::default, |(require_two_factor, require_sso)| SignInRules {
            require_two_factor,
            require_sso,
        }))
    }

    async fn set_tenant_sign_in_rules(
        &self,
        tenant_id: Uuid,
        rules: SignInRules,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO tenant_security (tenant_id, require_two_factor, require_sso, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET \
             require_two_factor = excluded.require_two_factor, require_sso = excluded.require_sso, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(rules.require_two_factor)
        .bind(rules.require_sso)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sign_in_gate(&self, tenant_id: Uuid, user_id: Uuid, session_id: Uuid) -> Result<SignInGate> {
        let row: Option<(Option<bool>, Option<bool>, bool, Option<Uuid>)> = sqlx::query_as(
            "SELECT ts.require_two_factor, ts.require_sso, \
             EXISTS (SELECT 1 FROM two_factor WHERE user_id = $2 AND confirmed_at IS NOT NULL), \
             (SELECT sso_tenant_id FROM sessions WHERE id = $3) \
             FROM (SELECT 1 AS one) AS x LEFT JOIN tenant_security ts ON ts.tenant_id = $1",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(session_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map_or_else(SignInGate::default, |(two_factor, sso, has_two_factor, sso_tenant_id)| {
            SignInGate {
                rules: SignInRules {
                    require_two_factor: two_factor.unwrap_or(false),
                    require_sso: sso.unwrap_or(false),
                },
                has_two_factor,
                sso_tenant_id,
            }
        }))
    }

    async fn user_sessions(&self, user_id: Uuid, now: Timestamp) -> Result<Vec<SessionRecord>> {
        let rows: Vec<(Uuid, Option<String>, Option<String>, Timestamp, Option<Timestamp>)> = sqlx::query_as(
            "SELECT s.id, s.client_ip, s.user_agent, s.created_at, MAX(rt.expires_at) \
             FROM sessions s JOIN refresh_tokens rt ON rt.session_id = s.id AND rt.used_at IS NULL \
             WHERE s.user_id = $1 AND s.revoked_at IS NULL AND rt.expires_at > $2 \
             GROUP BY s.id, s.client_ip, s.user_agent, s.created_at ORDER BY s.created_at DESC LIMIT 200",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, client_ip, user_agent, created_at, expires_at)| SessionRecord {
                id,
                client_ip,
                user_agent,
                created_at,
                expires_at,
            })
            .collect())
    }

    async fn revoke_user_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        audit: &NewAuditEvent,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        let revoked = DB::rows_affected(&r) == 1;
        if revoked {
            Self::insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    async fn change_password(
        &self,
        user_id: Uuid,
        hash: &str,
        keep_session: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let changed = sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(user_id)
            .bind(hash.to_owned())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&changed) == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL \
             AND ($3 IS NULL OR id <> $3)",
        )
        .bind(user_id)
        .bind(now)
        .bind(keep_session)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
{
    async fn put_recovery_codes(conn: &mut DB::Connection, user_id: Uuid, hashes: &[Vec<u8>]) -> Result<()> {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
        for hash in hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(hash.clone())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}
