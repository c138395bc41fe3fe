//! Outbound webhooks end to end with the real server binary, on SQLite and
//! PostgreSQL: a receiver written from the README's recipe verifies every
//! signature and handles each event id once; deliveries are retried after
//! 500s and a timeout and logged attempt by attempt; redelivery sends the
//! same event again; a name that resolves to a private address is refused
//! when connecting; the event carries ids, not the lead's personal data.

use std::time::Duration;

use marketer_tests::fleet::Fleet;
use marketer_tests::webhooks::{Plan, Receiver};
use marketer_tests::{TempDatabase, eventually};
use reqwest::Method;
use serde_json::{Value, json};

/// Fast retries (the schedule's unit is 100 ms), a 700 ms time limit.
async fn fleet(extra: &[(&str, &str)]) -> Fleet {
    let mut env: Vec<(&str, &str)> = vec![
        ("MARKETER_WEBHOOK_RETRY_BASE_MS", "100"),
        ("MARKETER_WEBHOOK_TIMEOUT_MS", "700"),
        ("MARKETER_MAIL_POLL_MS", "100"),
    ];
    env.extend_from_slice(extra);
    Fleet::start(|mut o| {
        for (key, value) in env {
            o = o.env(key, value);
        }
        o
    })
    .await
}

async fn delivery(fleet: &Fleet, webhook: &str, id: &str) -> Value {
    let (status, d) = fleet.call(Method::GET, &format!("/webhooks/{webhook}/deliveries/{id}"), None).await;
    assert_eq!(status, 200, "{d}");
    d
}

async fn deliveries(fleet: &Fleet, webhook: &str) -> Vec<Value> {
    let (status, page) =
        fleet.call(Method::GET, &format!("/webhooks/{webhook}/deliveries?limit=100"), None).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn signed_retried_and_redelivered(database: Option<&TempDatabase>) {
    let receiver = Receiver::start().await;
    let mut extra = vec![("MARKETER_WEBHOOK_ALLOW_PRIVATE", "true"), ("MARKETER_WEBHOOK_ALLOW_HTTP", "true")];
    if let Some(db) = database {
        extra.push(("MARKETER_DATABASE_URL", db.url.as_str()));
    }
    let fleet = fleet(&extra).await;

    // Refusals name the field.
    for (body, field) in [
        (json!({ "url": "ftp://hooks.example.com/x", "events": ["lead.created"] }), "url"),
        (json!({ "url": receiver.url, "events": [] }), "events"),
        (json!({ "url": receiver.url, "events": ["lead.exploded"] }), "events"),
        (json!({ "url": receiver.url, "events": ["webhook.test"] }), "events"),
        (json!({ "url": receiver.url, "events": ["lead.created"], "description": "a\nb" }), "description"),
    ] {
        let (status, error) = fleet.call(Method::POST, "/webhooks", Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert_eq!(error["error"]["details"]["field"], field, "{body}: {error}");
    }

    let (status, created) = fleet
        .call(
            Method::POST,
            "/webhooks",
            Some(json!({ "url": receiver.url, "events": ["lead.created"], "description": "CRM" })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let webhook = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    receiver.set_secret(&secret);
    // The secret is shown once: never in a read.
    let (_, listed) = fleet.call(Method::GET, "/webhooks", None).await;
    assert!(!listed.to_string().contains(&secret), "{listed}");
    assert_eq!(listed[0]["events"], json!(["lead.created"]));

    // Two 500s, then a hang past the time limit, then 200.
    receiver.plan(&[Plan::Status(500), Plan::Status(500), Plan::Hang(Duration::from_secs(10))]);
    let (status, lead) = fleet
        .call(Method::POST, "/leads", Some(json!({ "name": "Pat Doe", "email": "pat.doe@example.com" })))
        .await;
    assert_eq!(status, 201, "{lead}");
    let lead_id = lead["id"].as_str().unwrap();
    let received = eventually(Duration::from_secs(30), "the fourth attempt's success", || async {
        let got = receiver.of("lead.created");
        got.iter().any(|r| r.handled).then_some(got)
    })
    .await;
    assert_eq!(received.len(), 4, "{received:?}");
    let event_id = received[0].id.clone();
    for r in &received {
        assert_eq!(r.id, event_id, "one event id on every attempt");
        assert_eq!(r.refused, None, "every attempt is signed with the secret");
        assert_eq!(r.raw, received[0].raw, "the same body on every attempt");
    }
    assert_eq!(received.iter().filter(|r| r.handled).count(), 1);
    let body = &received[0].body;
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["type"], "lead.created");
    assert_eq!(body["data"]["lead_id"], lead_id);
    assert_eq!(body["data"]["source"], "manual");
    assert!(body["text"].as_str().unwrap().contains("new lead"), "{body}");
    assert!(
        !received[0].raw.contains("pat.doe") && !received[0].raw.contains("Pat Doe"),
        "{}",
        received[0].raw
    );

    // The log: four attempts, their statuses, a timeout.
    let listed = deliveries(&fleet, &webhook).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let delivery_id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["event_id"], event_id.as_str());
    let d = eventually(Duration::from_secs(10), "the delivery recorded as delivered", || async {
        let d = delivery(&fleet, &webhook, &delivery_id).await;
        (d["state"] == "delivered").then_some(d)
    })
    .await;
    let attempts = d["attempts"].as_array().unwrap();
    let statuses: Vec<Value> = attempts.iter().map(|a| a["status"].clone()).collect();
    assert_eq!(statuses, [json!(500), json!(500), Value::Null, json!(200)], "{d}");
    assert!(attempts[2]["error"].as_str().unwrap().contains("timed out"), "{d}");

    // Redelivery: the same event, once more; the receiver handles it once.
    let (status, _) = fleet
        .call(Method::POST, &format!("/webhooks/{webhook}/deliveries/{delivery_id}/redeliver"), None)
        .await;
    assert_eq!(status, 202);
    let again = eventually(Duration::from_secs(10), "the redelivery", || async {
        let got = receiver.of("lead.created");
        (got.len() == 5).then_some(got)
    })
    .await;
    assert_eq!(again[4].id, event_id);
    assert_eq!(again[4].refused, None);
    assert!(!again[4].handled, "the receiver saw this id before");
    let foreign = uuid::Uuid::now_v7();
    let (status, _) =
        fleet.call(Method::POST, &format!("/webhooks/{webhook}/deliveries/{foreign}/redeliver"), None).await;
    assert_eq!(status, 404);

    // A rotated secret signs the next deliveries; the old one no longer
    // verifies.
    let (status, rotated) =
        fleet.call(Method::POST, &format!("/webhooks/{webhook}/rotate-secret"), None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let (status, _) = fleet.call(Method::POST, &format!("/webhooks/{webhook}/test"), None).await;
    assert_eq!(status, 202);
    let test = eventually(Duration::from_secs(10), "the test event", || async {
        receiver.of("webhook.test").into_iter().next()
    })
    .await;
    assert_eq!(test.refused.as_deref(), Some("signature does not match"), "signed with the new secret");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = format!("t={now},v1=0");
    assert!(marketer_tests::webhooks::verify(new_secret, Some(&signature), b"{}", now).is_some());

    // Disabled: no new deliveries.
    let (status, patched) =
        fleet.call(Method::PATCH, &format!("/webhooks/{webhook}"), Some(json!({ "enabled": false }))).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["enabled"], false);
    let (status, _) =
        fleet.call(Method::POST, "/leads", Some(json!({ "name": "Sam", "email": "sam@example.com" }))).await;
    assert_eq!(status, 201);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.of("lead.created").len(), 5);

    let (_, audit) = fleet.call(Method::GET, "/audit-events?limit=100", None).await;
    let actions: Vec<&str> =
        audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in
        ["webhook.create", "webhook.redeliver", "webhook.rotate_secret", "webhook.test", "webhook.update"]
    {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert!(!audit.to_string().contains(&secret), "no secret in the audit log");
    let (status, _) = fleet.call(Method::DELETE, &format!("/webhooks/{webhook}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = fleet.call(Method::GET, &format!("/webhooks/{webhook}/deliveries"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn deliveries_are_signed_retried_logged_and_redelivered_once_per_event_id() {
    signed_retried_and_redelivered(None).await;
}

#[tokio::test]
async fn deliveries_are_signed_retried_logged_and_redelivered_on_postgres() {
    let Some(database) = TempDatabase::create().await else { return };
    signed_retried_and_redelivered(Some(&database)).await;
    database.drop_database().await;
}

#[tokio::test]
async fn private_addresses_are_refused_when_saved_and_when_connecting() {
    let receiver = Receiver::start().await;
    let fleet = fleet(&[("MARKETER_WEBHOOK_ALLOW_HTTP", "true")]).await;
    for url in [
        receiver.url.clone(),
        "http://10.0.0.8/hook".into(),
        "http://169.254.169.254/latest/meta-data".into(),
        "http://[::1]/hook".into(),
        "http://localhost/hook".into(),
    ] {
        let (status, error) = fleet
            .call(Method::POST, "/webhooks", Some(json!({ "url": url, "events": ["lead.created"] })))
            .await;
        assert_eq!(status, 422, "{url}: {error}");
        assert_eq!(error["error"]["details"]["field"], "url");
        assert!(error["error"]["message"].as_str().unwrap().contains("private or loopback"), "{error}");
    }
    // A name, accepted when saved, that resolves to a private address: the
    // guard at connection time refuses it, once and for good.
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    let resolved: Vec<std::net::SocketAddr> =
        tokio::net::lookup_host((name.as_str(), 80)).await.expect("the host's own name resolves").collect();
    assert!(
        resolved
            .iter()
            .all(|a| a.ip().is_loopback() || matches!(a.ip(), std::net::IpAddr::V4(v4) if v4.is_private())),
        "this test needs the host's name to resolve to its own private address: {resolved:?}"
    );
    let port = receiver.url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let url = format!("http://{name}:{port}/hook");
    let (status, created) =
        fleet.call(Method::POST, "/webhooks", Some(json!({ "url": url, "events": ["lead.created"] }))).await;
    assert_eq!(status, 201, "{created}");
    let webhook = created["id"].as_str().unwrap();
    let (status, _) = fleet.call(Method::POST, &format!("/webhooks/{webhook}/test"), None).await;
    assert_eq!(status, 202);
    let failed = eventually(Duration::from_secs(10), "the refused delivery", || async {
        let listed = deliveries(&fleet, webhook).await;
        listed.iter().find(|d| d["state"] == "failed").cloned()
    })
    .await;
    assert_eq!(failed["attempts"], 1, "refused for good, not retried: {failed}");
    assert!(failed["last_error"].as_str().unwrap().contains("private or loopback"), "{failed}");
    assert!(receiver.received().is_empty(), "nothing reached the private address");
    let (_, listed) = fleet.call(Method::GET, "/webhooks", None).await;
    assert_eq!(listed[0]["failed_recently"], 1, "{listed}");
}

/// Audit streaming: an endpoint subscribed to `audit.event` receives every
/// entry of the organisation's audit log as it is written, refusals
/// included, signed like any delivery, each entry once and shaped as the
/// audit log's API shows it; entries outside the organisation (a person's
/// own sign-in) are not sent.
#[tokio::test]
async fn the_audit_log_streams_to_a_collector_entry_by_entry() {
    let receiver = Receiver::start().await;
    let fleet =
        fleet(&[("MARKETER_WEBHOOK_ALLOW_PRIVATE", "true"), ("MARKETER_WEBHOOK_ALLOW_HTTP", "true")]).await;
    let (status, created) = fleet
        .call(Method::POST, "/webhooks", Some(json!({ "url": receiver.url, "events": ["audit.event"] })))
        .await;
    assert_eq!(status, 201, "{created}");
    receiver.set_secret(created["secret"].as_str().unwrap());

    let (status, project) = fleet.call(Method::POST, "/projects", Some(json!({ "name": "Streamed" }))).await;
    assert_eq!(status, 201, "{project}");
    let viewer = fleet
        .add_member(&fleet.api.tenant, "vic@example.com", "Vic", "viewer", "a long enough password")
        .await;
    let (status, _) = viewer
        .call(Method::POST, &viewer.tenant_path("/projects"), Some(json!({ "name": "Not allowed" })))
        .await;
    assert_eq!(status, 403);

    let got = eventually(Duration::from_secs(20), "the audit entries", || async {
        let got = receiver.of("audit.event");
        let actions: Vec<String> =
            got.iter().map(|r| r.body["data"]["action"].as_str().unwrap_or_default().to_owned()).collect();
        (actions.iter().any(|a| a == "project.create")
            && got.iter().any(|r| r.body["data"]["outcome"] == "denied"))
        .then_some(got)
    })
    .await;
    assert!(got.iter().all(|r| r.refused.is_none() && r.handled), "every entry signed and handled once");
    let made = got.iter().find(|r| r.body["data"]["action"] == "project.create").unwrap();
    assert_eq!(made.body["data"]["resource_id"], project["id"], "{}", made.raw);
    assert_eq!(made.body["tenant_id"].as_str(), Some(fleet.api.tenant.as_str()));
    // The same record the audit log's API shows.
    let (_, log) = fleet.call(Method::GET, "/audit-events?action=project.create", None).await;
    let listed = log["items"].as_array().unwrap().iter().find(|e| e["id"] == made.body["data"]["id"]);
    assert_eq!(Some(&made.body["data"]), listed, "{}", made.raw);
    let refused = got.iter().find(|r| r.body["data"]["outcome"] == "denied").unwrap();
    assert_eq!(refused.body["data"]["actor"]["email"], "vic@example.com", "{}", refused.raw);
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "one delivery per entry");
    assert!(
        got.iter().all(|r| r.body["data"]["action"] != "auth.login"),
        "sign-ins belong to no organisation and are not streamed"
    );
}
