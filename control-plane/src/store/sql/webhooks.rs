//! [`WebhookStore`] for [`SqlStore`]: endpoints (secrets sealed), events
//! written in their cause's transaction (`insert_webhook_events`), and the
//! deliveries' outbox with its leases and attempt log.

use super::*;

use crate::cloud::crypto::Sealed;
use crate::domain::new_id;
use crate::store::{
    AttemptRecord, DeliveryState, NewWebhookEndpoint, NewWebhookEvent, OutboundWebhook, WebhookAttempt,
    WebhookChange, WebhookDelivery, WebhookEndpoint, WebhookEventKind, WebhookOutcome, WebhookStore,
};

type EndpointRow = (Uuid, String, String, String, bool, Option<Uuid>, Timestamp, Timestamp, i64);

/// `$1`: the tenant; `$2`: failures since.
const ENDPOINT_SELECT: &str = "SELECT e.id, e.url, e.description, e.events, e.enabled, e.created_by, e.created_at, \
     e.updated_at, (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'failed' \
     AND d.created_at >= $2) FROM webhook_endpoints e WHERE e.tenant_id = $1";

fn kinds_of(text: &str) -> Result<Vec<WebhookEventKind>> {
    serde_json::from_str(text).map_err(corrupt("webhook_endpoints.events"))
}

fn kinds_text(kinds: &[WebhookEventKind]) -> String {
    serde_json::to_string(kinds).unwrap_or_else(|_| "[]".into())
}

fn endpoint_of(r: EndpointRow) -> Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: r.0,
        url: r.1,
        description: r.2,
        events: kinds_of(&r.3)?,
        enabled: r.4,
        created_by: r.5,
        created_at: r.6,
        updated_at: r.7,
        failed_recently: r.8,
    })
}

type DeliveryRow = (
    Uuid,
    Uuid,
    Uuid,
    String,
    String,
    i64,
    Timestamp,
    Option<i64>,
    Option<String>,
    Timestamp,
    Option<Timestamp>,
);

const DELIVERY_SELECT: &str = "SELECT d.id, d.endpoint_id, d.event_id, v.kind, d.state, d.attempts, d.next_attempt_at, \
     d.last_status, d.last_error, d.created_at, d.delivered_at \
     FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id";

fn delivery_of(r: DeliveryRow) -> Result<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: r.0,
        endpoint_id: r.1,
        event_id: r.2,
        kind: r.3.parse().map_err(corrupt("webhook_events.kind"))?,
        state: r.4.parse().map_err(corrupt("webhook_deliveries.state"))?,
        attempts: r.5,
        next_attempt_at: r.6,
        last_status: r.7,
        last_error: r.8,
        created_at: r.9,
        delivered_at: r.10,
    })
}

fn week_ago() -> Timestamp {
    Timestamp::from_datetime(Timestamp::now().as_datetime() - time::Duration::days(7))
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<Uuid>: Encode<'t, DB> + Decode<'t, DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Writes events and a delivery for each enabled endpoint of their
    /// tenant that asked for their type (or the one a test names); part of
    /// the caller's transaction. An event no endpoint wants is not stored.
    pub(super) async fn insert_webhook_events(
        conn: &mut DB::Connection,
        events: &[NewWebhookEvent],
        now: Timestamp,
    ) -> Result<()> {
        for event in events {
            let endpoints: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT id, events FROM webhook_endpoints WHERE tenant_id = $1 AND enabled = TRUE \
                 AND ($2 IS NULL OR id = $2) ORDER BY id",
            )
            .bind(event.tenant_id)
            .bind(event.only_endpoint)
            .fetch_all(&mut *conn)
            .await?;
            let mut targets = Vec::new();
            for (id, kinds) in endpoints {
                if event.only_endpoint == Some(id) || kinds_of(&kinds)?.contains(&event.kind) {
                    targets.push(id);
                }
            }
            if targets.is_empty() {
                continue;
            }
            let id = new_id();
            let payload = serde_json::json!({
                "id": id,
                "type": event.kind.name(),
                "created_at": now.to_rfc3339_fixed(),
                "tenant_id": event.tenant_id,
                "text": event.text,
                "data": event.data,
            });
            sqlx::query(
                "INSERT INTO webhook_events (id, tenant_id, kind, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(event.tenant_id)
            .bind(event.kind.name())
            .bind(payload.to_string())
            .bind(now)
            .execute(&mut *conn)
            .await?;
            for endpoint_id in targets {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, state, attempts, \
                     next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
                )
                .bind(new_id())
                .bind(event.tenant_id)
                .bind(endpoint_id)
                .bind(id)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<DB> WebhookStore for SqlStore<DB>
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
    async fn create_webhook(
        &self,
        endpoint: &NewWebhookEndpoint,
        limit: i64,
        audit: &NewAuditEvent,
    ) -> Result<Option<WebhookEndpoint>> {
        let mut tx = self.write.begin().await?;
        Self::lock_tenant(&mut tx, endpoint.tenant_id).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = $1")
            .bind(endpoint.tenant_id)
            .fetch_one(&mut *tx)
            .await?;
        if count >= limit {
            return Ok(None);
        }
        let now = audit.occurred_at;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, tenant_id, url, description, events, secret_ciphertext, \
             secret_nonce, enabled, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(endpoint.id)
        .bind(endpoint.tenant_id)
        .bind(endpoint.url.clone())
        .bind(endpoint.description.clone())
        .bind(kinds_text(&endpoint.events))
        .bind(endpoint.secret.ciphertext.clone())
        .bind(endpoint.secret.nonce.clone())
        .bind(endpoint.enabled)
        .bind(endpoint.created_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(WebhookEndpoint {
            id: endpoint.id,
            url: endpoint.url.clone(),
            description: endpoint.description.clone(),
            events: endpoint.events.clone(),
            enabled: endpoint.enabled,
            created_by: endpoint.created_by,
            created_at: now,
            updated_at: now,
            failed_recently: 0,
        }))
    }

    async fn webhooks(&self, tenant_id: Uuid) -> Result<Vec<WebhookEndpoint>> {
        let rows: Vec<EndpointRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{ENDPOINT_SELECT} ORDER BY e.created_at, e.id")))
                .bind(tenant_id)
                .bind(week_ago())
                .fetch_all(&self.read)
                .await?;
        rows.into_iter().map(endpoint_of).collect()
    }

    async fn webhook(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<WebhookEndpoint>> {
        let row: Option<EndpointRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{ENDPOINT_SELECT} AND e.id = $3")))
                .bind(tenant_id)
                .bind(week_ago())
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        row.map(endpoint_of).transpose()
    }

    async fn update_webhook(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        change: &WebhookChange,
        audit: &NewAuditEvent,
    ) -> Result<Option<WebhookEndpoint>> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET url = COALESCE($3, url), description = COALESCE($4, description), \
             events = COALESCE($5, events), enabled = CASE WHEN $6 THEN $10 ELSE enabled END, \
             secret_ciphertext = COALESCE($7, secret_ciphertext), secret_nonce = COALESCE($8, secret_nonce), \
             updated_at = $9 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(change.url.clone())
        .bind(change.description.clone())
        .bind(change.events.as_deref().map(kinds_text))
        .bind(change.enabled.is_some())
        .bind(change.secret.as_ref().map(|s| s.ciphertext.clone()))
        .bind(change.secret.as_ref().map(|s| s.nonce.clone()))
        .bind(audit.occurred_at)
        .bind(change.enabled.unwrap_or(false))
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Ok(None);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        self.webhook(tenant_id, id).await
    }

    async fn delete_webhook(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&r) != 1 {
            return Ok(false);
        }
        // Events no delivery refers to any more go with it.
        sqlx::query(
            "DELETE FROM webhook_events WHERE tenant_id = $1 AND NOT EXISTS \
             (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)",
        )
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn webhook_deliveries(
        &self,
        tenant_id: Uuid,
        endpoint_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<WebhookDelivery>> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{DELIVERY_SELECT} WHERE d.tenant_id = $1 AND d.endpoint_id = $2 AND ($3 IS NULL OR d.id < $3) \
             ORDER BY d.id DESC LIMIT $4"
        )))
        .bind(tenant_id)
        .bind(endpoint_id)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        let items = rows.into_iter().map(delivery_of).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page.limit, |d: &WebhookDelivery| d.id))
    }

    async fn webhook_delivery(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<(WebhookDelivery, Vec<WebhookAttempt>)>> {
        let row: Option<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{DELIVERY_SELECT} WHERE d.tenant_id = $1 AND d.id = $2"
        )))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        type AttemptRow = (i64, Timestamp, i64, Option<i64>, Option<String>, Option<String>);
        let attempts: Vec<AttemptRow> = sqlx::query_as(
            "SELECT attempt, started_at, duration_ms, status, error, response FROM webhook_attempts \
             WHERE delivery_id = $1 ORDER BY attempt, id",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        let attempts = attempts
            .into_iter()
            .map(|(attempt, started_at, duration_ms, status, error, response)| WebhookAttempt {
                attempt,
                started_at,
                duration_ms,
                status,
                error,
                response,
            })
            .collect();
        Ok(Some((delivery_of(row)?, attempts)))
    }

    async fn redeliver_webhook(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = $3, \
             lease_owner = NULL, lease_expires_at = NULL WHERE tenant_id = $1 AND id = $2 AND state <> 'claimed'",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Ok(false);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn raise_webhook_events(&self, events: &[NewWebhookEvent], audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        Self::insert_webhook_events(&mut tx, events, audit.occurred_at).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn expire_webhook_leases(&self, now: Timestamp) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL \
             WHERE state = 'claimed' AND lease_expires_at < $1",
        )
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(DB::rows_affected(&r))
    }

    async fn due_webhooks(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>> {
        Ok(sqlx::query_scalar(
            "SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND e.enabled = TRUE \
             ORDER BY d.next_attempt_at, d.id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?)
    }

    async fn claim_webhook(
        &self,
        id: Uuid,
        owner: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<OutboundWebhook>> {
        let r = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'claimed', lease_owner = $2, lease_expires_at = $3 \
             WHERE id = $1 AND state = 'pending' AND next_attempt_at <= $4",
        )
        .bind(id)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .execute(&self.write)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Ok(None);
        }
        type Row = (Uuid, Uuid, Uuid, String, String, Vec<u8>, Vec<u8>, String, i64);
        let row: Option<Row> = sqlx::query_as(
            "SELECT d.tenant_id, d.endpoint_id, d.event_id, v.kind, e.url, e.secret_ciphertext, e.secret_nonce, \
             v.payload, d.attempts FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN webhook_events v ON v.id = d.event_id \
             WHERE d.id = $1 AND d.lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.write)
        .await?;
        let Some((tenant_id, endpoint_id, event_id, kind, url, ciphertext, nonce, payload, attempts)) = row
        else {
            return Ok(None);
        };
        Ok(Some(OutboundWebhook {
            id,
            tenant_id,
            endpoint_id,
            event_id,
            kind: kind.parse().map_err(corrupt("webhook_events.kind"))?,
            url,
            secret: Sealed { ciphertext, nonce },
            payload,
            attempts,
        }))
    }

    async fn finish_webhook(
        &self,
        id: Uuid,
        owner: &str,
        attempt: &AttemptRecord,
        outcome: &WebhookOutcome,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_attempts WHERE delivery_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (id, delivery_id, attempt, started_at, duration_ms, status, error, \
             response) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(id)
        .bind(n + 1)
        .bind(attempt.started_at)
        .bind(attempt.duration_ms)
        .bind(attempt.status)
        .bind(attempt.error.clone())
        .bind(attempt.response.clone())
        .execute(&mut *tx)
        .await?;
        let end = attempt.started_at;
        let (state, next, delivered) = match outcome {
            WebhookOutcome::Delivered => (DeliveryState::Delivered, end, Some(end)),
            WebhookOutcome::Retry { at } => (DeliveryState::Pending, *at, None),
            WebhookOutcome::Failed => (DeliveryState::Failed, end, None),
        };
        let r = sqlx::query(
            "UPDATE webhook_deliveries SET state = $3, attempts = attempts + 1, next_attempt_at = $4, \
             last_status = $5, last_error = $6, delivered_at = COALESCE($7, delivered_at), lease_owner = NULL, \
             lease_expires_at = NULL WHERE id = $1 AND state = 'claimed' AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(<&'static str>::from(state))
        .bind(next)
        .bind(attempt.status)
        .bind(attempt.error.clone())
        .bind(delivered)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&r) == 1)
    }
}
