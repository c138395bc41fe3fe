//! [`NotificationStore`] for [`SqlStore`]: notifications and their
//! e-mails, preferences, the outbox and its leases, e-mailed links, digests.

use super::*;
use crate::cloud::crypto::Sealed;
use crate::domain::new_id;
use crate::store::{
    Audience, BounceRecorded, Delivery, DigestCandidate, DigestText, MailOutcome, MailProblem, MailPurpose,
    MailSummary, NewMail, NewNotice, NewUserToken, NoticeEmail, NoticeKind, Notification, NotificationStore,
    OutboxMail, UserTokenPurpose,
};

#[derive(FromRow)]
struct RecipientRow {
    id: Uuid,
    email: String,
    email_verified_at: Option<Timestamp>,
    delivery: Option<String>,
}

#[derive(FromRow)]
struct NotificationRow {
    id: Uuid,
    tenant_id: Option<Uuid>,
    tenant_name: Option<String>,
    kind: String,
    title: String,
    body: String,
    link: Option<String>,
    email: String,
    created_at: Timestamp,
    read_at: Option<Timestamp>,
}

impl TryFrom<NotificationRow> for Notification {
    type Error = StoreError;
    fn try_from(r: NotificationRow) -> Result<Notification> {
        Ok(Notification {
            id: r.id,
            tenant_id: r.tenant_id,
            tenant_name: r.tenant_name,
            kind: r.kind.parse().map_err(corrupt("notifications.kind"))?,
            title: r.title,
            body: r.body,
            link: r.link,
            email: r.email.parse().map_err(corrupt("notifications.email"))?,
            created_at: r.created_at,
            read_at: r.read_at,
        })
    }
}

const NOTIFICATION_SELECT: &str = "SELECT n.id, n.tenant_id, t.name AS tenant_name, n.kind, n.title, n.body, \
     n.link, n.email, n.created_at, n.read_at FROM notifications n LEFT JOIN tenants t ON t.id = n.tenant_id";

#[derive(FromRow)]
struct MailRow {
    id: Uuid,
    tenant_id: Option<Uuid>,
    user_id: Option<Uuid>,
    to_address: String,
    purpose: String,
    subject: String,
    body: String,
    link: Option<String>,
    secret_link_ciphertext: Option<Vec<u8>>,
    secret_link_nonce: Option<Vec<u8>>,
    state: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: Timestamp,
    sent_at: Option<Timestamp>,
}

impl TryFrom<MailRow> for OutboxMail {
    type Error = StoreError;
    fn try_from(r: MailRow) -> Result<OutboxMail> {
        Ok(OutboxMail {
            id: r.id,
            tenant_id: r.tenant_id,
            user_id: r.user_id,
            to: r.to_address,
            purpose: r.purpose.parse().map_err(corrupt("email_outbox.purpose"))?,
            subject: r.subject,
            body: r.body,
            link: r.link,
            secret_link: match (r.secret_link_ciphertext, r.secret_link_nonce) {
                (Some(ciphertext), Some(nonce)) => Some(Sealed { ciphertext, nonce }),
                _ => None,
            },
            state: r.state.parse().map_err(corrupt("email_outbox.state"))?,
            attempts: r.attempts,
            last_error: r.last_error,
            created_at: r.created_at,
            sent_at: r.sent_at,
        })
    }
}

const MAIL_COLUMNS: &str = "id, tenant_id, user_id, to_address, purpose, subject, body, link, \
     secret_link_ciphertext, secret_link_nonce, state, attempts, last_error, created_at, sent_at";

/// The longest error text kept on a message.
const MAX_ERROR_CHARS: usize = 500;

fn clip(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

impl<DB> SqlStore<DB>
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
    /// A marketing message's recipient refused for good: the lead's address
    /// is suppressed for the tenant's sequences (which stop), and its
    /// timeline says why, in the caller's transaction.
    async fn marketing_bounced(
        conn: &mut DB::Connection,
        id: Uuid,
        error: &str,
        now: Timestamp,
    ) -> Result<()> {
        let lead: Option<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT l.tenant_id, l.id FROM email_outbox m JOIN leads l ON l.tenant_id = m.tenant_id \
             AND l.email_normalized = LOWER(m.to_address) WHERE m.id = $1 AND m.purpose = 'marketing'",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((tenant_id, lead_id)) = lead else { return Ok(()) };
        let body = format!("The recipient's mail server refused it: {}", clip(error));
        let event = super::leads::NewEvent::by_member(
            tenant_id,
            lead_id,
            None,
            crate::store::LeadEventKind::EmailBounced,
            &body,
            now,
        );
        Self::insert_lead_event(conn, &event).await?;
        Self::suppress_lead(conn, tenant_id, lead_id, None, crate::store::Suppression::Bounced, now).await?;
        Ok(())
    }
    /// Writes notices for their audiences, and queues the e-mails their
    /// recipients want now; part of the caller's transaction.
    pub(super) async fn insert_notices(
        conn: &mut DB::Connection,
        notices: &[NewNotice],
        now: Timestamp,
    ) -> Result<()> {
        for notice in notices {
            let kind: &'static str = notice.kind.into();
            // A person hears about an organisation's things only while a
            // member (an invitation is how a non-member hears of one).
            let member_only = notice.tenant_id.is_some() && notice.kind != NoticeKind::Invitation;
            let recipients: Vec<RecipientRow> = match (&notice.audience, member_only) {
                (Audience::User(id), false) => {
                    sqlx::query_as(
                        "SELECT u.id, u.email, u.email_verified_at, p.delivery FROM users u \
                         LEFT JOIN notification_preferences p ON p.user_id = u.id AND p.kind = $2 \
                         WHERE u.id = $1 AND u.disabled = FALSE",
                    )
                    .bind(*id)
                    .bind(kind)
                    .fetch_all(&mut *conn)
                    .await?
                }
                (Audience::User(id), true) => {
                    sqlx::query_as(
                        "SELECT u.id, u.email, u.email_verified_at, p.delivery FROM users u \
                         JOIN memberships m ON m.user_id = u.id AND m.tenant_id = $3 \
                         LEFT JOIN notification_preferences p ON p.user_id = u.id AND p.kind = $2 \
                         WHERE u.id = $1 AND u.disabled = FALSE",
                    )
                    .bind(*id)
                    .bind(kind)
                    .bind(notice.tenant_id)
                    .fetch_all(&mut *conn)
                    .await?
                }
                (Audience::Admins, _) => {
                    let Some(tenant_id) = notice.tenant_id else { continue };
                    sqlx::query_as(
                        "SELECT u.id, u.email, u.email_verified_at, p.delivery FROM memberships m \
                         JOIN users u ON u.id = m.user_id \
                         LEFT JOIN notification_preferences p ON p.user_id = u.id AND p.kind = $2 \
                         WHERE m.tenant_id = $1 AND m.role IN ('owner', 'admin') AND u.disabled = FALSE \
                         ORDER BY u.id",
                    )
                    .bind(tenant_id)
                    .bind(kind)
                    .fetch_all(&mut *conn)
                    .await?
                }
            };
            for r in recipients {
                let delivery = match r.delivery.as_deref() {
                    Some(d) => d.parse::<Delivery>().map_err(corrupt("notification_preferences.delivery"))?,
                    None => notice.kind.default_delivery(),
                };
                let email = match (r.email_verified_at, delivery) {
                    (None, _) | (_, Delivery::Off) => NoticeEmail::None,
                    (Some(_), Delivery::Immediately) => NoticeEmail::Queued,
                    (Some(_), Delivery::DailyDigest) => NoticeEmail::Digest,
                };
                let id = new_id();
                let inserted = sqlx::query(
                    "INSERT INTO notifications (id, user_id, tenant_id, kind, title, body, link, dedupe_key, \
                     email, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (user_id, dedupe_key) DO NOTHING",
                )
                .bind(id)
                .bind(r.id)
                .bind(notice.tenant_id)
                .bind(kind)
                .bind(notice.title.clone())
                .bind(notice.body.clone())
                .bind(notice.link.clone())
                .bind(notice.dedupe_key.clone())
                .bind(<&'static str>::from(email))
                .bind(now)
                .execute(&mut *conn)
                .await?;
                if DB::rows_affected(&inserted) == 0 || email != NoticeEmail::Queued {
                    continue;
                }
                let to = Email::parse(&r.email).map_err(corrupt("users.email"))?;
                let mail = NewMail {
                    id: new_id(),
                    tenant_id: notice.tenant_id,
                    user_id: Some(r.id),
                    to,
                    purpose: MailPurpose::Notification,
                    subject: notice.title.clone(),
                    body: notice.body.clone(),
                    link: notice.link.clone(),
                    secret_link: None,
                };
                Self::insert_mail(conn, &mail, Some(id), now).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn insert_mail(
        conn: &mut DB::Connection,
        m: &NewMail,
        notification_id: Option<Uuid>,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO email_outbox (id, tenant_id, user_id, to_address, purpose, notification_id, subject, \
             body, link, secret_link_ciphertext, secret_link_nonce, state, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', 0, $12, $12)",
        )
        .bind(m.id)
        .bind(m.tenant_id)
        .bind(m.user_id)
        .bind(m.to.as_str().to_owned())
        .bind(<&'static str>::from(m.purpose))
        .bind(notification_id)
        .bind(m.subject.clone())
        .bind(m.body.clone())
        .bind(m.link.clone())
        .bind(m.secret_link.as_ref().map(|s| s.ciphertext.clone()))
        .bind(m.secret_link.as_ref().map(|s| s.nonce.clone()))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn insert_user_token(conn: &mut DB::Connection, t: &NewUserToken, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(t.token_hash.clone())
        .bind(t.user_id)
        .bind(<&'static str>::from(t.purpose))
        .bind(t.email.normalized())
        .bind(now)
        .bind(t.expires_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Spends a single-use token of `purpose`: the account it is for, if
    /// it was unused, unexpired, and sent to the account's current address.
    async fn use_token(
        conn: &mut DB::Connection,
        token_hash: &[u8],
        purpose: UserTokenPurpose,
        now: Timestamp,
    ) -> Result<Option<Uuid>> {
        let user: Option<(Uuid,)> = sqlx::query_as(
            "UPDATE user_tokens SET used_at = $3 WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL \
             AND expires_at > $3 AND EXISTS (SELECT 1 FROM users u WHERE u.id = user_tokens.user_id \
             AND u.email_normalized = user_tokens.email AND u.disabled = FALSE) RETURNING user_id",
        )
        .bind(token_hash.to_vec())
        .bind(<&'static str>::from(purpose))
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(user.map(|(id,)| id))
    }
}

#[async_trait]
impl<DB> NotificationStore for SqlStore<DB>
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
    async fn notify(&self, notices: &[NewNotice], now: Timestamp) -> Result<()> {
        let mut tx = self.write.begin().await?;
        Self::insert_notices(&mut tx, notices, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn notifications(
        &self,
        user_id: Uuid,
        unread_only: bool,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        let rows: Vec<NotificationRow> = sqlx::query_as(sql(&[
            NOTIFICATION_SELECT,
            " WHERE n.user_id = $1 AND ($2 = FALSE OR n.read_at IS NULL) AND ($3 IS NULL OR n.id < $3) \
             ORDER BY n.id DESC LIMIT $4",
        ]))
        .bind(user_id)
        .bind(unread_only)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(Page::from_rows(rows_into(rows)?, page.limit, |n: &Notification| n.id))
    }

    async fn unread_count(&self, user_id: Uuid) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
            .bind(user_id)
            .fetch_one(&self.read)
            .await?)
    }

    async fn mark_read(&self, user_id: Uuid, ids: Option<&[Uuid]>, now: Timestamp) -> Result<u64> {
        let mut tx = self.write.begin().await?;
        let mut changed = 0;
        match ids {
            None => {
                let r = sqlx::query(
                    "UPDATE notifications SET read_at = $2 WHERE user_id = $1 AND read_at IS NULL",
                )
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                changed += DB::rows_affected(&r);
            }
            Some(ids) => {
                for id in ids {
                    let r = sqlx::query(
                        "UPDATE notifications SET read_at = $3 WHERE user_id = $1 AND id = $2 AND read_at IS NULL",
                    )
                    .bind(user_id)
                    .bind(*id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    changed += DB::rows_affected(&r);
                }
            }
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn preferences(&self, user_id: Uuid) -> Result<Vec<(NoticeKind, Delivery)>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, delivery FROM notification_preferences WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&self.read)
                .await?;
        // A kind this version does not know (written by a newer one) is skipped.
        Ok(rows.into_iter().filter_map(|(k, d)| Some((k.parse().ok()?, d.parse().ok()?))).collect())
    }

    async fn set_preferences(
        &self,
        user_id: Uuid,
        prefs: &[(NoticeKind, Delivery)],
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        for (kind, delivery) in prefs {
            sqlx::query(
                "INSERT INTO notification_preferences (user_id, kind, delivery) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id, kind) DO UPDATE SET delivery = excluded.delivery",
            )
            .bind(user_id)
            .bind(<&'static str>::from(*kind))
            .bind(<&'static str>::from(*delivery))
            .execute(&mut *tx)
            .await?;
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn enqueue_mail(&self, mail: &NewMail, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        Self::insert_mail(&mut tx, mail, None, audit.occurred_at).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn due_mail(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM email_outbox WHERE (state = 'pending' AND next_attempt_at <= $1) \
             OR (state = 'claimed' AND lease_expires_at < $1) ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn claim_mail(
        &self,
        id: Uuid,
        owner: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<OutboxMail>> {
        let row: Option<MailRow> = sqlx::query_as(sql(&[
            "UPDATE email_outbox SET state = 'claimed', lease_owner = $2, lease_expires_at = $3, \
             attempts = attempts + 1 \
             WHERE id = $1 AND ((state = 'pending' AND next_attempt_at <= $4) \
             OR (state = 'claimed' AND lease_expires_at < $4)) RETURNING ",
            MAIL_COLUMNS,
        ]))
        .bind(id)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        row.map(OutboxMail::try_from).transpose()
    }

    async fn mark_mail_sending(&self, id: Uuid, owner: &str, now: Timestamp) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE email_outbox SET state = 'sending' \
             WHERE id = $1 AND state = 'claimed' AND lease_owner = $2 AND lease_expires_at > $3",
        )
        .bind(id)
        .bind(owner)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    async fn finish_mail(
        &self,
        id: Uuid,
        owner: &str,
        outcome: &MailOutcome,
        now: Timestamp,
    ) -> Result<bool> {
        // Once sent, a secret link has done its work: it is erased.
        let (state, next, error): (&str, Option<Timestamp>, Option<String>) = match outcome {
            MailOutcome::Sent => ("sent", None, None),
            MailOutcome::Retry { at, error } => ("pending", Some(*at), Some(clip(error))),
            MailOutcome::Failed { error } | MailOutcome::Bounced { error } => {
                ("failed", None, Some(clip(error)))
            }
            MailOutcome::Unknown { error } => ("unknown", None, Some(clip(error))),
        };
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "UPDATE email_outbox SET state = $3, next_attempt_at = COALESCE($4, next_attempt_at), \
             last_error = COALESCE($5, last_error), lease_owner = NULL, lease_expires_at = NULL, \
             sent_at = CASE WHEN $3 = 'sent' THEN $6 ELSE sent_at END, \
             secret_link_ciphertext = CASE WHEN $3 = 'sent' THEN NULL ELSE secret_link_ciphertext END, \
             secret_link_nonce = CASE WHEN $3 = 'sent' THEN NULL ELSE secret_link_nonce END \
             WHERE id = $1 AND lease_owner = $2 AND state IN ('claimed', 'sending')",
        )
        .bind(id)
        .bind(owner)
        .bind(state)
        .bind(next)
        .bind(error)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let finished = DB::rows_affected(&r) == 1;
        if finished && let MailOutcome::Bounced { error } = outcome {
            Self::marketing_bounced(&mut tx, id, error, now).await?;
        }
        tx.commit().await?;
        Ok(finished)
    }

    async fn record_bounce(
        &self,
        mail_id: Uuid,
        recipient: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<BounceRecorded> {
        let mut tx = self.write.begin().await?;
        let row: Option<(Option<Uuid>, String)> = sqlx::query_as(sql(&[
            "SELECT tenant_id, state FROM email_outbox WHERE id = $1 AND LOWER(to_address) = $2",
            DB::FOR_UPDATE,
        ]))
        .bind(mail_id)
        .bind(recipient.to_lowercase())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((tenant_id, state)) = row else { return Ok(BounceRecorded::NotFound) };
        // Only a message that went out (or may have) can bounce; a failed
        // one's failure is known.
        if !["sent", "unknown"].contains(&state.as_str()) {
            return Ok(BounceRecorded::AlreadyKnown);
        }
        let error = format!("bounced after it was sent: {}", clip(reason));
        sqlx::query("UPDATE email_outbox SET state = 'failed', last_error = $2 WHERE id = $1")
            .bind(mail_id)
            .bind(&error)
            .execute(&mut *tx)
            .await?;
        Self::marketing_bounced(&mut tx, mail_id, reason, now).await?;
        tx.commit().await?;
        Ok(BounceRecorded::Recorded { tenant_id })
    }

    async fn expire_mail_leases(&self, now: Timestamp) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE email_outbox SET state = 'unknown', lease_owner = NULL, lease_expires_at = NULL, \
             last_error = 'the server sending it stopped while handing it to the SMTP server' \
             WHERE state = 'sending' AND lease_expires_at < $1",
        )
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(DB::rows_affected(&r))
    }

    async fn mail_summary(&self, tenant_id: Uuid) -> Result<MailSummary> {
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM email_outbox WHERE tenant_id = $1 GROUP BY state")
                .bind(tenant_id)
                .fetch_all(&self.read)
                .await?;
        let mut summary = MailSummary::default();
        for (state, n) in counts {
            match state.as_str() {
                "draft" => summary.drafts += n,
                "pending" | "claimed" | "sending" => summary.pending += n,
                "sent" => summary.sent += n,
                "failed" => summary.failed += n,
                "unknown" => summary.unknown += n,
                other => return Err(StoreError::Corrupt(format!("email_outbox.state: {other}"))),
            }
        }
        let rows: Vec<(Uuid, String, String, String, Option<String>, Timestamp)> = sqlx::query_as(
            "SELECT id, to_address, subject, state, last_error, created_at FROM email_outbox \
             WHERE tenant_id = $1 AND (state IN ('failed', 'unknown') OR (state = 'pending' AND attempts > 0)) \
             AND NOT (purpose = 'marketing' AND state = 'failed' AND attempts = 0) \
             ORDER BY id DESC LIMIT 20",
        )
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        for (id, to, subject, state, last_error, created_at) in rows {
            let state = state.parse().map_err(corrupt("email_outbox.state"))?;
            summary.problems.push(MailProblem { id, to, subject, state, last_error, created_at });
        }
        Ok(summary)
    }

    async fn resend_mail(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "UPDATE email_outbox SET state = 'pending', next_attempt_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND state IN ('failed', 'unknown') \
             AND NOT (purpose = 'marketing' AND state = 'failed')",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Err(StoreError::NotFound);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn recent_user_tokens(
        &self,
        user_id: Uuid,
        purpose: UserTokenPurpose,
        since: Timestamp,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM user_tokens WHERE user_id = $1 AND purpose = $2 AND created_at > $3",
        )
        .bind(user_id)
        .bind(<&'static str>::from(purpose))
        .bind(since)
        .fetch_one(&self.read)
        .await?)
    }

    async fn create_user_token(
        &self,
        token: &NewUserToken,
        mail: &NewMail,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        Self::insert_user_token(&mut tx, token, audit.occurred_at).await?;
        Self::insert_mail(&mut tx, mail, None, audit.occurred_at).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn reset_password(
        &self,
        token_hash: &[u8],
        password_hash: &str,
        audit: &NewAuditEvent,
    ) -> Result<Option<Uuid>> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let Some(user_id) =
            Self::use_token(&mut tx, token_hash, UserTokenPurpose::PasswordReset, now).await?
        else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE users SET password_hash = $2, email_verified_at = COALESCE(email_verified_at, $3), \
             updated_at = $3 WHERE id = $1",
        )
        .bind(user_id)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // Every other reset link of the account dies with this one.
        sqlx::query(
            "UPDATE user_tokens SET used_at = $2 WHERE user_id = $1 AND purpose = 'password_reset' AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let audit = NewAuditEvent {
            resource_type: Some("user"),
            resource_id: Some(user_id.to_string()),
            ..audit.clone()
        };
        Self::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }

    async fn verify_email(&self, token_hash: &[u8], audit: &NewAuditEvent) -> Result<Option<Uuid>> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let Some(user_id) =
            Self::use_token(&mut tx, token_hash, UserTokenPurpose::EmailVerification, now).await?
        else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2), updated_at = $2 WHERE id = $1",
        )
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let audit = NewAuditEvent {
            resource_type: Some("user"),
            resource_id: Some(user_id.to_string()),
            ..audit.clone()
        };
        Self::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }

    async fn unsubscribe_digests(&self, token_hash: &[u8], audit: &NewAuditEvent) -> Result<Option<Uuid>> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        // Reusable until it expires: a second click changes nothing.
        let user: Option<(Uuid,)> = sqlx::query_as(
            "SELECT user_id FROM user_tokens WHERE token_hash = $1 AND purpose = 'unsubscribe' AND expires_at > $2",
        )
        .bind(token_hash.to_vec())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user_id,)) = user else {
            return Ok(None);
        };
        use strum::IntoEnumIterator;
        for kind in NoticeKind::iter() {
            let current: Option<(String,)> = sqlx::query_as(
                "SELECT delivery FROM notification_preferences WHERE user_id = $1 AND kind = $2",
            )
            .bind(user_id)
            .bind(<&'static str>::from(kind))
            .fetch_optional(&mut *tx)
            .await?;
            let delivery = match current {
                Some((d,)) => d.parse().map_err(corrupt("notification_preferences.delivery"))?,
                None => kind.default_delivery(),
            };
            if delivery == Delivery::DailyDigest {
                sqlx::query(
                    "INSERT INTO notification_preferences (user_id, kind, delivery) VALUES ($1, $2, 'off') \
                     ON CONFLICT (user_id, kind) DO UPDATE SET delivery = 'off'",
                )
                .bind(user_id)
                .bind(<&'static str>::from(kind))
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query("UPDATE notifications SET email = 'none' WHERE user_id = $1 AND email = 'digest'")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let audit = NewAuditEvent {
            resource_type: Some("user"),
            resource_id: Some(user_id.to_string()),
            ..audit.clone()
        };
        Self::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }

    async fn mark_email_verified(&self, user_id: Uuid, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1")
            .bind(user_id)
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn notify_expiring_certificates(&self, before: Timestamp, now: Timestamp) -> Result<u64> {
        let mut tx = self.write.begin().await?;
        // An agent renews its certificate on its own well before the end;
        // one that has not is offline or failing to renew.
        let rows: Vec<(Uuid, Uuid, String, Timestamp)> = sqlx::query_as(
            "SELECT id, tenant_id, name, cert_not_after FROM agents WHERE revoked_at IS NULL \
             AND cert_not_after < $1 AND cert_not_after > $2 ORDER BY id",
        )
        .bind(before)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let notices: Vec<NewNotice> = rows
            .iter()
            .map(|(id, tenant_id, name, not_after)| NewNotice {
                tenant_id: Some(*tenant_id),
                kind: NoticeKind::AgentCertificateExpiring,
                audience: Audience::Admins,
                title: format!("Agent {name}'s certificate expires {}", not_after.to_rfc3339_fixed()),
                body: "A connected agent renews its certificate by itself; this one has not. Start it (it renews \
                       on connecting) or enroll it again before the certificate ends, or it cannot connect."
                    .to_owned(),
                link: Some(format!("/t/{tenant_id}/fleet/{id}")),
                dedupe_key: Some(format!("agent:{id}:certificate:{}", not_after.to_rfc3339_fixed())),
            })
            .collect();
        Self::insert_notices(&mut tx, &notices, now).await?;
        tx.commit().await?;
        Ok(notices.len() as u64)
    }

    async fn digest_candidates(&self, limit: i64) -> Result<Vec<DigestCandidate>> {
        let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
            "SELECT u.id, u.email, u.time_zone FROM users u WHERE u.disabled = FALSE AND EXISTS \
             (SELECT 1 FROM notifications n WHERE n.user_id = u.id AND n.email = 'digest') ORDER BY u.id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(user_id, email, time_zone)| DigestCandidate { user_id, email, time_zone })
            .collect())
    }

    async fn compose_digest(
        &self,
        candidate: &DigestCandidate,
        local_date: Date,
        mail: &NewMail,
        unsubscribe: &NewUserToken,
        text: &DigestText,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let first = sqlx::query(
            "INSERT INTO digest_runs (user_id, local_date, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, local_date) DO NOTHING",
        )
        .bind(candidate.user_id)
        .bind(local_date)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&first) != 1 {
            return Ok(false);
        }
        let rows: Vec<NotificationRow> = sqlx::query_as(sql(&[
            NOTIFICATION_SELECT,
            " WHERE n.user_id = $1 AND n.email = 'digest' ORDER BY n.id",
        ]))
        .bind(candidate.user_id)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(false);
        }
        let items: Vec<Notification> = rows_into(rows)?;
        sqlx::query("UPDATE notifications SET email = 'digested' WHERE user_id = $1 AND email = 'digest'")
            .bind(candidate.user_id)
            .execute(&mut *tx)
            .await?;
        let (subject, body) = text(&items);
        let mail = NewMail { subject, body, ..mail.clone() };
        Self::insert_user_token(&mut tx, unsubscribe, now).await?;
        Self::insert_mail(&mut tx, &mail, None, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}
