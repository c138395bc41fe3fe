//! [`Store`] for [`SqlStore`]: accounts, tenants, projects, invitations,
//! API keys and the audit log.

use super::*;

#[async_trait]
impl<DB> Store for SqlStore<DB>
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
    DB::Connection: sqlx::migrate::Migrate,
{
    fn backend(&self) -> Backend {
        DB::BACKEND
    }

    fn postgres_pool(&self) -> Option<sqlx::PgPool> {
        DB::postgres_pool(&self.write)
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.write.acquire().await?;
        // The migrator takes a database lock first (an advisory lock on
        // PostgreSQL), so replicas starting together apply migrations once.
        DB::migrator().run_direct(None, &mut *conn, false).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    // ----- Bootstrap and users

    async fn has_users(&self) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users)").fetch_one(&self.read).await?)
    }

    async fn bootstrap(&self, tenant: &NewTenant, owner: &NewUser, audit: &NewAuditEvent) -> Result<bool> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await?;
        if users > 0 {
            return Ok(false);
        }
        // Two replicas starting together both see an empty table; the loser's
        // inserts hit the unique slug or e-mail and it backs off.
        let created = async {
            Self::insert_tenant(&mut tx, tenant, now).await?;
            Self::insert_user(&mut tx, owner, now).await?;
            Self::insert_membership(&mut tx, tenant.id, owner.id, Role::Owner, now).await?;
            Self::insert_audit(&mut tx, audit).await
        }
        .await;
        match created {
            Ok(()) => {
                tx.commit().await?;
                Ok(true)
            }
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn create_user(&self, user: &NewUser, audit: &NewAuditEvent) -> Result<User> {
        let mut tx = self.write.begin().await?;
        let created = Self::insert_user(&mut tx, user, audit.occurred_at).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn user(&self, id: Uuid) -> Result<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, email, display_name, disabled, email_verified_at, created_at, updated_at FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.map(User::try_from).transpose()
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, email, display_name, disabled, email_verified_at, created_at, updated_at FROM users \
             WHERE email_normalized = $1",
        )
        .bind(email.normalized())
        .fetch_optional(&self.read)
        .await?;
        row.map(User::try_from).transpose()
    }

    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>> {
        let row: Option<CredentialsRow> = sqlx::query_as(
            "SELECT id, email, display_name, disabled, email_verified_at, created_at, updated_at, password_hash \
             FROM users WHERE email_normalized = $1",
        )
        .bind(email.normalized())
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| Ok(Credentials { user: r.user.try_into()?, password_hash: r.password_hash })).transpose()
    }

    async fn set_user_disabled(&self, user_id: Uuid, disabled: bool, audit: &NewAuditEvent) -> Result<User> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let row: Option<UserRow> = sqlx::query_as(
            "UPDATE users SET disabled = $2, updated_at = $3 WHERE id = $1 \
             RETURNING id, email, display_name, disabled, email_verified_at, created_at, updated_at",
        )
        .bind(user_id)
        .bind(disabled)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let user = User::try_from(row.ok_or(StoreError::NotFound)?)?;
        if disabled {
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn set_password(&self, user_id: Uuid, hash: &str, audit: &NewAuditEvent) -> Result<()> {
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
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- Tenants and memberships

    async fn create_tenant(&self, tenant: &NewTenant, owner: Uuid, audit: &NewAuditEvent) -> Result<Tenant> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let created = Self::insert_tenant(&mut tx, tenant, now).await?;
        Self::insert_membership(&mut tx, tenant.id, owner, Role::Owner, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn tenant(&self, id: Uuid) -> Result<Option<Tenant>> {
        let row: Option<TenantRow> =
            sqlx::query_as(sql(&["SELECT ", TENANT_COLUMNS, " FROM tenants WHERE id = $1"]))
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        row.map(Tenant::try_from).transpose()
    }

    async fn tenant_by_slug(&self, slug: &Slug) -> Result<Option<Tenant>> {
        let row: Option<TenantRow> =
            sqlx::query_as(sql(&["SELECT ", TENANT_COLUMNS, " FROM tenants WHERE slug = $1"]))
                .bind(slug.as_str().to_owned())
                .fetch_optional(&self.read)
                .await?;
        row.map(Tenant::try_from).transpose()
    }

    async fn update_tenant(&self, id: Uuid, patch: &TenantPatch, audit: &NewAuditEvent) -> Result<Tenant> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        Self::lock_tenant(&mut tx, id).await?;
        let row: TenantRow = sqlx::query_as(sql(&["SELECT ", TENANT_COLUMNS, " FROM tenants WHERE id = $1"]))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let current = Tenant::try_from(row)?;
        let name = patch.name.clone().unwrap_or(current.name);
        let slug = patch.slug.clone().unwrap_or(current.slug);
        let plan = patch.plan.unwrap_or(current.plan);
        let mode = patch.compliance_mode.unwrap_or(current.compliance_mode);
        let row: TenantRow = sqlx::query_as(sql(&[
            "UPDATE tenants SET name = $2, slug = $3, plan = $4, compliance_mode = $5, \
             updated_at = $6 WHERE id = $1 RETURNING ",
            TENANT_COLUMNS,
        ]))
        .bind(id)
        .bind(name.as_str().to_owned())
        .bind(slug.as_str().to_owned())
        .bind(<&'static str>::from(plan))
        .bind(<&'static str>::from(mode))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "slug_taken", "this tenant slug is already taken"))?;
        let mut audit = audit.clone();
        if mode == ComplianceMode::Hipaa {
            let tightened = sqlx::query(
                "UPDATE projects SET llm_policy = 'edge_only', updated_at = $2 \
                 WHERE tenant_id = $1 AND llm_policy = 'cloud_allowed'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let count = DB::rows_affected(&tightened);
            if count > 0
                && let Some(details) = audit.details.as_object_mut()
            {
                details.insert("projects_made_edge_only".into(), count.into());
            }
        }
        Self::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn role(&self, tenant_id: Uuid, user_id: Uuid) -> Result<Option<Role>> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id)
                .bind(user_id)
                .fetch_optional(&self.read)
                .await?;
        role.map(|r| r.parse().map_err(corrupt("memberships.role"))).transpose()
    }

    async fn memberships(&self, user_id: Uuid) -> Result<Vec<MembershipSummary>> {
        let rows: Vec<MembershipRow> = sqlx::query_as(
            "SELECT t.id AS tenant_id, t.name AS tenant_name, t.slug AS tenant_slug, m.role \
             FROM memberships m JOIN tenants t ON t.id = m.tenant_id WHERE m.user_id = $1 \
             ORDER BY t.name, t.id",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(MembershipSummary {
                    tenant_id: r.tenant_id,
                    tenant_name: r.tenant_name,
                    tenant_slug: r.tenant_slug,
                    role: r.role.parse().map_err(corrupt("memberships.role"))?,
                })
            })
            .collect()
    }

    async fn members(&self, tenant_id: Uuid, page: PageRequest) -> Result<Page<Member>> {
        let rows: Vec<MemberRow> = sqlx::query_as(sql(&[
            MEMBER_SELECT,
            " WHERE m.tenant_id = $1 AND ($2 IS NULL OR m.user_id > $2) ORDER BY m.user_id LIMIT $3",
        ]))
        .bind(tenant_id)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(Page::from_rows(rows_into(rows)?, page.limit, |m: &Member| m.user_id))
    }

    async fn member(&self, tenant_id: Uuid, user_id: Uuid) -> Result<Option<Member>> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_member(&mut conn, tenant_id, user_id).await
    }

    async fn add_member(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        role: Role,
        audit: &NewAuditEvent,
    ) -> Result<Member> {
        let mut tx = self.write.begin().await?;
        Self::lock_tenant(&mut tx, tenant_id).await?;
        Self::insert_membership(&mut tx, tenant_id, user_id, role, audit.occurred_at).await?;
        let member = Self::fetch_member(&mut tx, tenant_id, user_id).await?.ok_or(StoreError::NotFound)?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(member)
    }

    async fn set_role(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        role: Role,
        audit: &NewAuditEvent,
    ) -> Result<Member> {
        let mut tx = self.write.begin().await?;
        Self::lock_tenant(&mut tx, tenant_id).await?;
        let current = Self::fetch_member(&mut tx, tenant_id, user_id).await?.ok_or(StoreError::NotFound)?;
        if current.role == Role::Owner && role != Role::Owner {
            Self::ensure_other_owner(&mut tx, tenant_id, user_id).await?;
        }
        sqlx::query("UPDATE memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        let mut audit = audit.clone();
        if let Some(details) = audit.details.as_object_mut() {
            details.insert("previous_role".into(), current.role.as_str().into());
        }
        Self::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Member { role, ..current })
    }

    async fn remove_member(&self, tenant_id: Uuid, user_id: Uuid, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        Self::lock_tenant(&mut tx, tenant_id).await?;
        let current = Self::fetch_member(&mut tx, tenant_id, user_id).await?.ok_or(StoreError::NotFound)?;
        if current.role == Role::Owner {
            Self::ensure_other_owner(&mut tx, tenant_id, user_id).await?;
        }
        sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- Sessions

    async fn create_session(
        &self,
        session: &NewSession,
        refresh: &NewRefreshToken,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, client_ip, user_agent, created_at, sso_tenant_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session.id)
        .bind(session.user_id)
        .bind(session.client_ip.clone())
        .bind(session.user_agent.clone())
        .bind(now)
        .bind(session.sso_tenant_id)
        .execute(&mut *tx)
        .await?;
        Self::insert_refresh_token(&mut tx, session.id, refresh, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        replacement: &NewRefreshToken,
        now: Timestamp,
    ) -> Result<RefreshOutcome> {
        let mut tx = self.write.begin().await?;
        // Spending the token is a compare-and-set, so two concurrent refreshes
        // with the same token cannot both succeed.
        let spent: Option<(Uuid, Timestamp)> = sqlx::query_as(
            "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
             RETURNING session_id, expires_at",
        )
        .bind(presented.to_vec())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match spent {
            Some((session_id, expires_at)) => {
                let live: Option<Uuid> = sqlx::query_scalar(
                    "SELECT s.user_id FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.id = $1 AND s.revoked_at IS NULL AND u.disabled = FALSE",
                )
                .bind(session_id)
                .fetch_optional(&mut *tx)
                .await?;
                match live {
                    Some(user_id) if expires_at > now => {
                        Self::insert_refresh_token(&mut tx, session_id, replacement, now).await?;
                        RefreshOutcome::Rotated { user_id, session_id }
                    }
                    _ => RefreshOutcome::Invalid,
                }
            }
            None => {
                let reused: Option<(Uuid, Uuid)> = sqlx::query_as(
                    "SELECT s.id, s.user_id FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
                     WHERE r.token_hash = $1",
                )
                .bind(presented.to_vec())
                .fetch_optional(&mut *tx)
                .await?;
                match reused {
                    Some((session_id, user_id)) => {
                        sqlx::query(
                            "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                        )
                        .bind(session_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        RefreshOutcome::Reused { user_id, session_id }
                    }
                    None => RefreshOutcome::Invalid,
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn revoke_session_by_token(
        &self,
        presented: &[u8],
        audit: &NewAuditEvent,
    ) -> Result<Option<(Uuid, Uuid)>> {
        let mut tx = self.write.begin().await?;
        let found: Option<(Uuid, Uuid, String)> = sqlx::query_as(
            "SELECT s.id, u.id, u.email FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
             JOIN users u ON u.id = s.user_id WHERE r.token_hash = $1",
        )
        .bind(presented.to_vec())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((session_id, user_id, email)) = found else {
            return Ok(None);
        };
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(session_id)
            .bind(audit.occurred_at)
            .execute(&mut *tx)
            .await?;
        let audit = NewAuditEvent { actor: Actor::User { id: user_id, email }, ..audit.clone() }
            .resource("session", session_id);
        Self::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Some((user_id, session_id)))
    }

    async fn session_user(&self, session_id: Uuid, user_id: Uuid) -> Result<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT u.id, u.email, u.display_name, u.disabled, u.email_verified_at, u.created_at, u.updated_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND u.disabled = FALSE",
        )
        .bind(session_id)
        .bind(user_id)
        .fetch_optional(&self.read)
        .await?;
        row.map(User::try_from).transpose()
    }

    async fn browser_session(&self, token_hash: &[u8], now: Timestamp) -> Result<Option<(User, Uuid)>> {
        let row: Option<SessionUserRow> = sqlx::query_as(
            "SELECT s.id AS session_id, u.id, u.email, u.display_name, u.disabled, u.email_verified_at, u.created_at, u.updated_at \
             FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id JOIN users u ON u.id = s.user_id \
             WHERE rt.token_hash = $1 AND rt.used_at IS NULL AND rt.expires_at > $2 \
             AND s.revoked_at IS NULL AND u.disabled = FALSE",
        )
        .bind(token_hash.to_vec())
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| Ok((User::try_from(row.user)?, row.session_id))).transpose()
    }

    // ----- Projects and campaigns

    async fn create_project(&self, p: &NewProject, audit: &NewAuditEvent) -> Result<Project> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        Self::lock_tenant(&mut tx, p.tenant_id).await?;
        Self::check_policy(Self::compliance_mode(&mut tx, p.tenant_id).await?, p.llm_policy)?;
        let row: ProjectRow = sqlx::query_as(sql(&[
            "INSERT INTO projects (id, tenant_id, name, name_normalized, description, brand_voice, \
             llm_policy, default_model, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING ",
            PROJECT_COLUMNS,
        ]))
        .bind(p.id)
        .bind(p.tenant_id)
        .bind(p.name.as_str().to_owned())
        .bind(p.name.as_str().to_lowercase())
        .bind(p.description.as_str().to_owned())
        .bind(p.brand_voice.as_str().to_owned())
        .bind(<&'static str>::from(p.llm_policy))
        .bind(p.default_model.as_ref().map(|m| m.as_str().to_owned()))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "project_name_taken", "a project with this name already exists"))?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn project(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Project>> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_project(&mut conn, tenant_id, id).await
    }

    async fn projects(&self, tenant_id: Uuid, page: PageRequest) -> Result<Page<Project>> {
        let rows: Vec<ProjectRow> = sqlx::query_as(sql(&[
            "SELECT ",
            PROJECT_COLUMNS,
            " FROM projects WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        ]))
        .bind(tenant_id)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(Page::from_rows(rows_into(rows)?, page.limit, |p: &Project| p.id))
    }

    async fn update_project(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        patch: &ProjectPatch,
        audit: &NewAuditEvent,
    ) -> Result<Project> {
        let mut tx = self.write.begin().await?;
        Self::lock_tenant(&mut tx, tenant_id).await?;
        let current = Self::fetch_project(&mut tx, tenant_id, id).await?.ok_or(StoreError::NotFound)?;
        let policy = patch.llm_policy.unwrap_or(current.llm_policy);
        Self::check_policy(Self::compliance_mode(&mut tx, tenant_id).await?, policy)?;
        let name = patch.name.clone().unwrap_or(current.name);
        let row: ProjectRow = sqlx::query_as(sql(&[
            "UPDATE projects SET name = $3, name_normalized = $4, description = $5, brand_voice = $6, \
             llm_policy = $7, default_model = $8, updated_at = $9 \
             WHERE tenant_id = $1 AND id = $2 RETURNING ",
            PROJECT_COLUMNS,
        ]))
        .bind(tenant_id)
        .bind(id)
        .bind(name.as_str().to_owned())
        .bind(name.as_str().to_lowercase())
        .bind(patch.description.clone().unwrap_or(current.description).as_str().to_owned())
        .bind(patch.brand_voice.clone().unwrap_or(current.brand_voice).as_str().to_owned())
        .bind(<&'static str>::from(policy))
        .bind(patch.default_model.clone().unwrap_or(current.default_model).map(|m| m.as_str().to_owned()))
        .bind(audit.occurred_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "project_name_taken", "a project with this name already exists"))?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn delete_project(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let deleted = sqlx::query("DELETE FROM projects WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&deleted) == 0 {
            return Err(StoreError::NotFound);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_campaign(&self, c: &NewCampaign, audit: &NewAuditEvent) -> Result<Campaign> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        if Self::fetch_project(&mut tx, c.tenant_id, c.project_id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        let row: CampaignRow = sqlx::query_as(sql(&[
            "INSERT INTO campaigns (id, tenant_id, project_id, name, start_date, end_date, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ",
            CAMPAIGN_COLUMNS,
        ]))
        .bind(c.id)
        .bind(c.tenant_id)
        .bind(c.project_id)
        .bind(c.name.as_str().to_owned())
        .bind(c.start_date)
        .bind(c.end_date)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn campaign(&self, tenant_id: Uuid, project_id: Uuid, id: Uuid) -> Result<Option<Campaign>> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_campaign(&mut conn, tenant_id, project_id, id).await
    }

    async fn campaigns(
        &self,
        tenant_id: Uuid,
        project_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<Campaign>> {
        let rows: Vec<CampaignRow> = sqlx::query_as(sql(&[
            "SELECT ",
            CAMPAIGN_COLUMNS,
            " FROM campaigns WHERE tenant_id = $1 AND project_id = $2 AND ($3 IS NULL OR id > $3) \
             ORDER BY id LIMIT $4",
        ]))
        .bind(tenant_id)
        .bind(project_id)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(Page::from_rows(rows_into(rows)?, page.limit, |c: &Campaign| c.id))
    }

    async fn update_campaign(
        &self,
        tenant_id: Uuid,
        project_id: Uuid,
        id: Uuid,
        patch: &CampaignPatch,
        audit: &NewAuditEvent,
    ) -> Result<Campaign> {
        let mut tx = self.write.begin().await?;
        let current =
            Self::fetch_campaign(&mut tx, tenant_id, project_id, id).await?.ok_or(StoreError::NotFound)?;
        let start = patch.start_date.unwrap_or(current.start_date);
        let end = patch.end_date.unwrap_or(current.end_date);
        Campaign::check_dates(start, end).map_err(|e| StoreError::Invalid {
            field: if patch.end_date.is_some() { "end_date" } else { "start_date" },
            message: e.to_string(),
        })?;
        let row: CampaignRow = sqlx::query_as(sql(&[
            "UPDATE campaigns SET name = $4, start_date = $5, end_date = $6, updated_at = $7 \
             WHERE tenant_id = $1 AND project_id = $2 AND id = $3 RETURNING ",
            CAMPAIGN_COLUMNS,
        ]))
        .bind(tenant_id)
        .bind(project_id)
        .bind(id)
        .bind(patch.name.clone().unwrap_or(current.name).as_str().to_owned())
        .bind(start)
        .bind(end)
        .bind(audit.occurred_at)
        .fetch_one(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn delete_campaign(
        &self,
        tenant_id: Uuid,
        project_id: Uuid,
        id: Uuid,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let deleted =
            sqlx::query("DELETE FROM campaigns WHERE tenant_id = $1 AND project_id = $2 AND id = $3")
                .bind(tenant_id)
                .bind(project_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if DB::rows_affected(&deleted) == 0 {
            return Err(StoreError::NotFound);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- Invitations

    async fn create_invitation(&self, i: &NewInvitation, audit: &NewAuditEvent) -> Result<Invitation> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let row: InvitationRow = sqlx::query_as(sql(&[
            "INSERT INTO invitations (id, tenant_id, email, email_normalized, role, token_hash, \
             invited_by, created_at, expires_at, mail_token_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             RETURNING ",
            INVITATION_COLUMNS,
        ]))
        .bind(i.id)
        .bind(i.tenant_id)
        .bind(i.email.as_str().to_owned())
        .bind(i.email.normalized())
        .bind(i.role.as_str())
        .bind(i.token_hash.clone())
        .bind(i.invited_by)
        .bind(now)
        .bind(i.expires_at)
        .bind(i.mail_token_hash.clone())
        .fetch_one(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        row.into_invitation(now)
    }

    async fn invitations(
        &self,
        tenant_id: Uuid,
        page: PageRequest,
        now: Timestamp,
    ) -> Result<Page<Invitation>> {
        let rows: Vec<InvitationRow> = sqlx::query_as(sql(&[
            "SELECT ",
            INVITATION_COLUMNS,
            " FROM invitations WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        ]))
        .bind(tenant_id)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        let items = rows.into_iter().map(|r| r.into_invitation(now)).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page.limit, |i: &Invitation| i.id))
    }

    async fn revoke_invitation(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let row: Option<InvitationRow> = sqlx::query_as(sql(&[
            "SELECT ",
            INVITATION_COLUMNS,
            " FROM invitations WHERE tenant_id = $1 AND id = $2",
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let row = row.ok_or(StoreError::NotFound)?;
        if row.accepted_at.is_some() {
            return Err(StoreError::Conflict {
                code: "invitation_used",
                message: "the invitation has already been accepted; remove the member instead".to_owned(),
            });
        }
        sqlx::query("UPDATE invitations SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(audit.occurred_at)
            .execute(&mut *tx)
            .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn invitation_preview(
        &self,
        token_hash: &[u8],
        now: Timestamp,
    ) -> Result<Option<InvitationPreview>> {
        let mut conn = self.read.acquire().await?;
        let row: Option<PreviewRow> = sqlx::query_as(sql(&[
            "SELECT ",
            INVITATION_COLUMNS,
            ", mail_token_hash IS NOT NULL AND mail_token_hash = $1 AS by_mail FROM invitations \
             WHERE token_hash = $1 OR mail_token_hash = $1",
        ]))
        .bind(token_hash.to_vec())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(PreviewRow { row, by_mail }) = row else { return Ok(None) };
        let invitation = row.into_invitation(now)?;
        let tenant_name: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
            .bind(invitation.tenant_id)
            .fetch_one(&mut *conn)
            .await?;
        let account: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE email_normalized = $1")
            .bind(invitation.email.normalized())
            .fetch_optional(&mut *conn)
            .await?;
        Ok(Some(InvitationPreview { invitation, tenant_name, has_account: account.is_some(), by_mail }))
    }

    async fn accept_invitation(
        &self,
        token_hash: &[u8],
        user_id: Uuid,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<AcceptOutcome> {
        self.accept(token_hash, Joiner::Account(user_id), now, audit).await
    }

    async fn join_with_new_account(
        &self,
        mail_token_hash: &[u8],
        user: &NewUser,
        audit: &NewAuditEvent,
    ) -> Result<AcceptOutcome> {
        self.accept(mail_token_hash, Joiner::New(user), audit.occurred_at, audit).await
    }

    // ----- API keys

    async fn create_api_key(&self, k: &NewApiKey, audit: &NewAuditEvent) -> Result<ApiKey> {
        let mut tx = self.write.begin().await?;
        let row: ApiKeyRow = sqlx::query_as(sql(&[
            "INSERT INTO api_keys (id, tenant_id, name, role, key_hash, prefix, created_by, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
            API_KEY_COLUMNS,
        ]))
        .bind(k.id)
        .bind(k.tenant_id)
        .bind(k.name.as_str().to_owned())
        .bind(k.role.as_str())
        .bind(k.key_hash.clone())
        .bind(k.prefix.clone())
        .bind(k.created_by)
        .bind(audit.occurred_at)
        .bind(k.expires_at)
        .fetch_one(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn api_keys(&self, tenant_id: Uuid, page: PageRequest) -> Result<Page<ApiKey>> {
        let rows: Vec<ApiKeyRow> = sqlx::query_as(sql(&[
            "SELECT ",
            API_KEY_COLUMNS,
            " FROM api_keys WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        ]))
        .bind(tenant_id)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(Page::from_rows(rows_into(rows)?, page.limit, |k: &ApiKey| k.id))
    }

    async fn revoke_api_key(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let exists: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM api_keys WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn api_key_grant(&self, key_hash: &[u8], now: Timestamp) -> Result<Option<ApiKeyGrant>> {
        let row: Option<ApiKeyGrantRow> = sqlx::query_as(
            "SELECT k.id, k.tenant_id, k.name, k.role, k.prefix, k.created_by, k.created_at, \
             k.expires_at, k.last_used_at, k.revoked_at, m.role AS creator_role, \
             u.disabled AS creator_disabled \
             FROM api_keys k \
             LEFT JOIN users u ON u.id = k.created_by \
             LEFT JOIN memberships m ON m.tenant_id = k.tenant_id AND m.user_id = k.created_by \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL \
             AND (k.expires_at IS NULL OR k.expires_at > $2)",
        )
        .bind(key_hash.to_vec())
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let created_by_person = row.key.created_by.is_some();
        let creator_role =
            row.creator_role.map(|r| r.parse::<Role>().map_err(corrupt("memberships.role"))).transpose()?;
        let creator_active =
            !created_by_person || (creator_role.is_some() && row.creator_disabled == Some(false));
        Ok(Some(ApiKeyGrant { key: row.key.try_into()?, creator_role, creator_active }))
    }

    async fn touch_api_key(&self, id: Uuid, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    // ----- Audit log

    async fn ops_snapshot(&self, now: Timestamp, online_window: time::Duration) -> Result<OpsSnapshot> {
        let mut snapshot = OpsSnapshot::default();
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM jobs WHERE status IN ('queued', 'assigned', 'running') GROUP BY status",
        )
        .fetch_all(&self.read)
        .await?;
        for (status, count) in counts {
            match status.as_str() {
                "queued" => snapshot.queued = count,
                "assigned" => snapshot.assigned = count,
                _ => snapshot.running = count,
            }
        }
        let oldest: Option<Timestamp> =
            sqlx::query_scalar("SELECT MIN(created_at) FROM jobs WHERE status = 'queued'")
                .fetch_one(&self.read)
                .await?;
        snapshot.oldest_queued_age = oldest.map(|at| {
            std::time::Duration::try_from(now.as_datetime() - at.as_datetime()).unwrap_or_default()
        });
        // Online as `Agent::is_online` says: connected, seen within the
        // window, not marked offline since it connected, not revoked.
        const ONLINE: &str = "a.revoked_at IS NULL AND a.connected_at IS NOT NULL AND a.last_seen_at >= $1 \
             AND (a.offline_at IS NULL OR a.offline_at < a.connected_at)";
        let seen_since = now - online_window;
        snapshot.tenants_waiting_without_agents = sqlx::query_scalar(sql(&[
            "SELECT COUNT(DISTINCT j.tenant_id) FROM jobs j WHERE j.status = 'queued' AND j.route = 'edge' \
             AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.tenant_id = j.tenant_id AND ",
            ONLINE,
            ")",
        ]))
        .bind(seen_since)
        .fetch_one(&self.read)
        .await?;
        let (total, online, revoked): (i64, Option<i64>, Option<i64>) = sqlx::query_as(sql(&[
            "SELECT COUNT(*), SUM(CASE WHEN ",
            ONLINE,
            " THEN 1 ELSE 0 END), SUM(CASE WHEN a.revoked_at IS NOT NULL THEN 1 ELSE 0 END) FROM agents a",
        ]))
        .bind(seen_since)
        .fetch_one(&self.read)
        .await?;
        snapshot.agents_online = online.unwrap_or(0);
        snapshot.agents_revoked = revoked.unwrap_or(0);
        snapshot.agents_offline = total - snapshot.agents_online - snapshot.agents_revoked;
        Ok(snapshot)
    }

    async fn throttle_blocked_until(&self, keys: &[String], now: Timestamp) -> Result<Option<Timestamp>> {
        let mut latest: Option<Timestamp> = None;
        for key in keys {
            let until: Option<Timestamp> = sqlx::query_scalar(
                "SELECT blocked_until FROM throttles WHERE key = $1 AND blocked_until > $2",
            )
            .bind(key.as_str())
            .bind(now)
            .fetch_optional(&self.read)
            .await?;
            latest = latest.max(until);
        }
        Ok(latest)
    }

    async fn throttle_failure(
        &self,
        key: &str,
        now: Timestamp,
        forget_before: Timestamp,
        delay: &(dyn Fn(u32) -> std::time::Duration + Send + Sync),
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let failures: i64 = sqlx::query_scalar(
            "INSERT INTO throttles (key, failures, last_failure, blocked_until) VALUES ($1, 1, $2, $2) \
             ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN throttles.last_failure < $3 THEN 1 ELSE throttles.failures + 1 END, \
             last_failure = excluded.last_failure RETURNING failures",
        )
        .bind(key)
        .bind(now)
        .bind(forget_before)
        .fetch_one(&mut *tx)
        .await?;
        let wait =
            time::Duration::try_from(delay(u32::try_from(failures).unwrap_or(u32::MAX))).unwrap_or_default();
        sqlx::query("UPDATE throttles SET blocked_until = $2 WHERE key = $1")
            .bind(key)
            .bind(now + wait)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn throttle_clear(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM throttles WHERE key = $1").bind(key).execute(&self.write).await?;
        Ok(())
    }

    async fn throttle_forget(&self, before: Timestamp) -> Result<u64> {
        let result = sqlx::query("DELETE FROM throttles WHERE last_failure < $1")
            .bind(before)
            .execute(&self.write)
            .await?;
        Ok(DB::rows_affected(&result))
    }

    async fn record_audit(&self, event: &NewAuditEvent) -> Result<()> {
        let mut conn = self.write.acquire().await?;
        Self::insert_audit(&mut conn, event).await
    }

    async fn audit_events(
        &self,
        tenant_id: Uuid,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, occurred_at, tenant_id, actor_type, actor_id, actor_label, client_ip, \
             request_id, action, resource_type, resource_id, outcome, details FROM audit_events \
             WHERE (tenant_id = $1 OR (tenant_id IS NULL AND actor_type = 'user' AND actor_id IN \
                    (SELECT user_id FROM memberships WHERE tenant_id = $1))) \
             AND ($2 IS NULL OR action = $2) \
             AND ($3 IS NULL OR actor_id = $3) \
             AND ($4 IS NULL OR occurred_at >= $4) \
             AND ($5 IS NULL OR occurred_at < $5) \
             AND ($6 IS NULL OR id < $6) \
             ORDER BY id DESC LIMIT $7",
        )
        .bind(tenant_id)
        .bind(filter.action.clone())
        .bind(filter.actor_id)
        .bind(filter.since)
        .bind(filter.until)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(Page::from_rows(rows_into(rows)?, page.limit, |e: &AuditEvent| e.id))
    }
}
