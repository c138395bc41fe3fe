//! Outbound webhooks as an organisation's admins manage them: endpoints
//! (a URL, the event types, a signing secret shown once), their delivery
//! log, redelivery and test events. What raises events is each feature's
//! change (`NewAuditEvent::emit`); what sends them is the notifier
//! (`crate::notify::webhooks`).

use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, TenantAccess, actions};
use crate::domain::{Permission, new_id};
use crate::error::{Error, Result};
use crate::notify::webhooks::check_url;
use crate::store::{
    NewWebhookEndpoint, NewWebhookEvent, Page, PageRequest, WebhookAttempt, WebhookChange, WebhookDelivery,
    WebhookEndpoint, WebhookEventKind,
};

/// Endpoints per organisation.
pub const MAX_ENDPOINTS: i64 = 20;
const MAX_DESCRIPTION: usize = 200;

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries are POSTed: `https://` and a public address
    /// (unless the operator allows otherwise).
    pub url: String,
    #[serde(default)]
    pub description: String,
    /// The event types to send, at least one: `activity.finished`,
    /// `activity.failed`, `activity.approved`, `post.published`,
    /// `post.failed`, `lead.created`, `agent.offline`,
    /// `crisis_alert.raised`, `crisis_alert.closed`.
    pub events: Vec<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A change to an endpoint: any of the fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// An endpoint with its signing secret: shown only in this answer (on
/// creation and rotation), never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookEndpoint,
    /// The HMAC-SHA256 key of `Marketer-Signature`.
    pub secret: String,
}

/// A delivery with each of its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryView {
    #[serde(flatten)]
    pub delivery: WebhookDelivery,
    pub attempts: Vec<WebhookAttempt>,
}

/// A new signing secret: `whsec_` and 32 random bytes.
fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn parse_events(names: &[String]) -> Result<Vec<WebhookEventKind>> {
    let mut kinds = Vec::new();
    for name in names {
        let kind = name
            .trim()
            .parse::<WebhookEventKind>()
            .ok()
            .filter(|k| *k != WebhookEventKind::WebhookTest)
            .ok_or_else(|| {
                let known: Vec<&str> = WebhookEventKind::subscribable().map(WebhookEventKind::name).collect();
                Error::invalid("events", format!("{name:?} is not an event type; use {}", known.join(", ")))
            })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err(Error::invalid("events", "choose at least one event type"));
    }
    Ok(kinds)
}

fn clean_description(text: &str) -> Result<String> {
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION || text.chars().any(char::is_control) {
        return Err(Error::invalid(
            "description",
            format!("must be one line of at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(text.to_owned())
}

impl App {
    fn checked_url(&self, url: &str) -> Result<String> {
        check_url(url, self.notifier.webhook_settings())
            .map(|u| u.to_string())
            .map_err(|why| Error::invalid("url", why))
    }

    pub async fn create_webhook(
        &self,
        access: &TenantAccess,
        req: CreateWebhook,
    ) -> Result<WebhookWithSecret> {
        access.require(Permission::SettingsManage)?;
        let url = self.checked_url(&req.url)?;
        let description = clean_description(&req.description)?;
        let events = parse_events(&req.events)?;
        let secret = new_secret();
        let endpoint = NewWebhookEndpoint {
            id: new_id(),
            tenant_id: access.tenant_id,
            url,
            description,
            events,
            enabled: req.enabled.unwrap_or(true),
            secret: self.cloud.key().seal(access.tenant_id, &secret).map_err(Error::internal)?,
            created_by: access.caller.creator_id(),
        };
        let audit = access.audit(actions::WEBHOOK_CREATE).resource("webhook", endpoint.id).details(
            serde_json::json!({ "url": endpoint.url, "events": endpoint.events, "enabled": endpoint.enabled }),
        );
        let webhook =
            self.store.create_webhook(&endpoint, MAX_ENDPOINTS, &audit).await?.ok_or_else(|| {
                Error::Conflict {
                    code: "too_many_webhooks",
                    message: format!(
                        "an organisation has at most {MAX_ENDPOINTS} webhooks; delete one first"
                    ),
                }
            })?;
        Ok(WebhookWithSecret { webhook, secret })
    }

    pub async fn webhooks(&self, access: &TenantAccess) -> Result<Vec<WebhookEndpoint>> {
        access.require(Permission::SettingsManage)?;
        Ok(self.store.webhooks(access.tenant_id).await?)
    }

    pub async fn webhook(&self, access: &TenantAccess, id: Uuid) -> Result<WebhookEndpoint> {
        access.require(Permission::SettingsManage)?;
        self.store.webhook(access.tenant_id, id).await?.ok_or_else(|| Error::NotFound("webhook"))
    }

    pub async fn update_webhook(
        &self,
        access: &TenantAccess,
        id: Uuid,
        req: UpdateWebhook,
    ) -> Result<WebhookEndpoint> {
        access.require(Permission::SettingsManage)?;
        let change = WebhookChange {
            url: req.url.as_deref().map(|u| self.checked_url(u)).transpose()?,
            description: req.description.as_deref().map(clean_description).transpose()?,
            events: req.events.as_deref().map(parse_events).transpose()?,
            enabled: req.enabled,
            secret: None,
        };
        let audit =
            access.audit(actions::WEBHOOK_UPDATE).resource("webhook", id).details(serde_json::json!({
                "url": change.url, "events": change.events, "enabled": change.enabled,
                "description": change.description,
            }));
        self.store
            .update_webhook(access.tenant_id, id, &change, &audit)
            .await?
            .ok_or_else(|| Error::NotFound("webhook"))
    }

    /// A new secret; the old one stops signing at once.
    pub async fn rotate_webhook_secret(&self, access: &TenantAccess, id: Uuid) -> Result<WebhookWithSecret> {
        access.require(Permission::SettingsManage)?;
        let secret = new_secret();
        let change = WebhookChange {
            secret: Some(self.cloud.key().seal(access.tenant_id, &secret).map_err(Error::internal)?),
            ..WebhookChange::default()
        };
        let audit = access.audit(actions::WEBHOOK_ROTATE_SECRET).resource("webhook", id);
        let webhook = self
            .store
            .update_webhook(access.tenant_id, id, &change, &audit)
            .await?
            .ok_or_else(|| Error::NotFound("webhook"))?;
        Ok(WebhookWithSecret { webhook, secret })
    }

    pub async fn delete_webhook(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        access.require(Permission::SettingsManage)?;
        let audit = access.audit(actions::WEBHOOK_DELETE).resource("webhook", id);
        if self.store.delete_webhook(access.tenant_id, id, &audit).await? {
            Ok(())
        } else {
            Err(Error::NotFound("webhook"))
        }
    }

    /// Sends a `webhook.test` event to this endpoint only (even disabled
    /// ones are not sent to: enable it first).
    pub async fn test_webhook(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        let webhook = self.webhook(access, id).await?;
        if !webhook.enabled {
            return Err(Error::Conflict {
                code: "webhook_disabled",
                message: "the webhook is disabled; enable it to send a test".into(),
            });
        }
        let event = NewWebhookEvent {
            only_endpoint: Some(id),
            ..NewWebhookEvent::new(
                access.tenant_id,
                WebhookEventKind::WebhookTest,
                "A test delivery from Marketer",
                serde_json::json!({ "webhook_id": id, "sent_by": access.caller.creator_id() }),
            )
        };
        let audit = access.audit(actions::WEBHOOK_TEST).resource("webhook", id);
        self.store.raise_webhook_events(std::slice::from_ref(&event), &audit).await?;
        Ok(())
    }

    pub async fn webhook_deliveries(
        &self,
        access: &TenantAccess,
        id: Uuid,
        page: PageRequest,
    ) -> Result<Page<WebhookDelivery>> {
        self.webhook(access, id).await?;
        Ok(self.store.webhook_deliveries(access.tenant_id, id, page).await?)
    }

    pub async fn webhook_delivery(
        &self,
        access: &TenantAccess,
        id: Uuid,
        delivery_id: Uuid,
    ) -> Result<WebhookDeliveryView> {
        access.require(Permission::SettingsManage)?;
        match self.store.webhook_delivery(access.tenant_id, delivery_id).await? {
            Some((delivery, attempts)) if delivery.endpoint_id == id => {
                Ok(WebhookDeliveryView { delivery, attempts })
            }
            _ => Err(Error::NotFound("webhook delivery")),
        }
    }

    /// Sends a delivery again now, with the same event id and body (409
    /// while a replica is posting it).
    pub async fn redeliver_webhook(&self, access: &TenantAccess, id: Uuid, delivery_id: Uuid) -> Result<()> {
        let view = self.webhook_delivery(access, id, delivery_id).await?;
        let audit = access
            .audit(actions::WEBHOOK_REDELIVER)
            .resource("webhook_delivery", delivery_id)
            .details(serde_json::json!({ "webhook_id": id, "event_id": view.delivery.event_id }));
        if self.store.redeliver_webhook(access.tenant_id, delivery_id, &audit).await? {
            self.notifier.wake();
            Ok(())
        } else {
            Err(Error::Conflict {
                code: "delivery_in_progress",
                message: "the delivery is being sent right now; look again shortly".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_named_and_checked() {
        let kinds =
            parse_events(&["post.published".into(), "crisis_alert.raised".into(), "post.published".into()])
                .unwrap();
        assert_eq!(kinds, [WebhookEventKind::PostPublished, WebhookEventKind::CrisisAlertRaised]);
        for bad in [vec![], vec!["post.exploded".to_owned()], vec!["webhook.test".to_owned()]] {
            assert!(parse_events(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with("whsec_") && a.len() >= 48, "{a}");
        assert_ne!(a, b);
    }
}
