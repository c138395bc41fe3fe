//! Follow-up sequences over HTTP, on both backends: the default template,
//! templates checked field by field (unknown merge fields named), starting
//! one for a lead (refused without the postal address, or twice), the
//! notifier queuing each step once even when two sweeps run at the same
//! moment (a controllable clock), a reply, won or unsubscribed stopping
//! everything, an edited template leaving running sequences as they
//! started, and another organisation getting 404.

mod common;

use common::{Backend, TestServer};
use marketer_control_plane::api::ApiConfig;
use marketer_control_plane::domain::Timestamp;
use serde_json::{Value, json};

async fn marketing_mail(server: &TestServer, to: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM email_outbox WHERE purpose = 'marketing' AND to_address = $1";
    match server.db.pg_schema {
        Some(_) => sqlx::query_scalar(sql).bind(to).fetch_one(&server.db.raw_postgres().await).await.unwrap(),
        None => sqlx::query_scalar(sql).bind(to).fetch_one(&server.db.raw_sqlite().await).await.unwrap(),
    }
}

async fn sequences_end_to_end(backend: Backend) {
    let Some(server) = TestServer::start_with(backend, ApiConfig::default()).await else { return };
    let (owner, tenant) = server.owner().await;
    let t = |rest: &str| format!("/api/v1/tenants/{tenant}{rest}");

    // The default template, ready on first look.
    let (status, list) = server.get(&t("/sequences"), &owner).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let waits: Vec<i64> =
        list[0]["steps"].as_array().unwrap().iter().map(|s| s["wait_minutes"].as_i64().unwrap()).collect();
    assert_eq!(waits, [120, 3 * 24 * 60, 7 * 24 * 60]);
    assert_eq!(list[0]["auto_start"], true);

    // Templates are checked field by field.
    let template = |name: &str, body: &str| {
        json!({ "name": name, "auto_start": false, "steps": [
            { "wait": 0, "unit": "minutes", "subject": "Open house for {{first_name}}", "body": body },
            { "wait": 1, "unit": "days", "subject": "Did you make it?", "body": "Hi {{first_name}}, how was {{property}}?" },
        ]})
    };
    let (status, refused) =
        server.post(&t("/sequences"), &owner, template("Open house", "Price: {{price}}")).await;
    assert_eq!(
        (status, refused["error"]["details"]["field"].as_str()),
        (422, Some("steps[0].body")),
        "{refused}"
    );
    assert!(refused["error"]["message"].as_str().unwrap().contains("{{price}}"), "{refused}");
    let mut bad_unit = template("Open house", "Hi");
    bad_unit["steps"][1]["unit"] = json!("weeks");
    let (status, refused) = server.post(&t("/sequences"), &owner, bad_unit).await;
    assert_eq!(
        (status, refused["error"]["details"]["field"].as_str()),
        (422, Some("steps[1].unit")),
        "{refused}"
    );
    let (status, open_house) = server
        .post(&t("/sequences"), &owner, template("Open house", "Hi {{first_name}}, see you Sunday."))
        .await;
    assert_eq!(status, 201, "{open_house}");
    let (status, taken) = server.post(&t("/sequences"), &owner, template("Open house", "Hi")).await;
    assert_eq!((status, taken["error"]["code"].as_str()), (409, Some("name_taken")), "{taken}");
    let sequence = open_house["id"].as_str().unwrap().to_owned();

    let lead = |email: &str| json!({ "name": "Ana Lima", "email": email, "phone": "", "property_ids": [], "note": "" });
    let mut leads = Vec::new();
    for email in ["ana@example.com", "bo@example.com", "cy@example.com", "di@example.com"] {
        let (status, created) = server.post(&t("/leads"), &owner, lead(email)).await;
        assert_eq!(status, 201, "{created}");
        leads.push(created["id"].as_str().unwrap().to_owned());
    }
    let start = |lead: &str| (t(&format!("/leads/{lead}/sequences")), json!({ "sequence_id": sequence }));

    // No postal address, no marketing e-mail.
    let (path, body) = start(&leads[0]);
    let (status, refused) = server.post(&path, &owner, body.clone()).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("postal_address_missing")),
        "{refused}"
    );
    let (_, mut settings) = server.get(&t("/real-estate-settings"), &owner).await;
    settings["postal_address"] = json!("Elm Realty, 400 Main Street, Springfield, IL 62701");
    let (status, _) =
        server.call(reqwest::Method::PUT, &t("/real-estate-settings"), Some(&owner), Some(settings)).await;
    assert_eq!(status, 200);
    let (status, run) = server.post(&path, &owner, body.clone()).await;
    assert_eq!((status, run["state"].as_str()), (201, Some("active")), "{run}");
    let (status, twice) = server.post(&path, &owner, body).await;
    assert_eq!((status, twice["error"]["code"].as_str()), (409, Some("sequence_running")), "{twice}");

    // Two sweeps at the same moment queue the due step once.
    let now = Timestamp::now() + time::Duration::seconds(5);
    let notifier = &server.app.notifier;
    let (a, b) = tokio::join!(notifier.sequence_steps(now), notifier.sequence_steps(now));
    assert_eq!(a + b, 1, "one e-mail for the first step");
    assert_eq!(marketing_mail(&server, "ana@example.com").await, 1);
    assert_eq!(notifier.sequence_steps(now).await, 0, "nothing more is due yet");
    // An edited template leaves the running sequence as it started.
    let (status, _) = server
        .call(
            reqwest::Method::PUT,
            &t(&format!("/sequences/{sequence}")),
            Some(&owner),
            Some(template("Open house", "Changed.")),
        )
        .await;
    assert_eq!(status, 200);
    let later = now + time::Duration::days(1) + time::Duration::seconds(1);
    assert_eq!(notifier.sequence_steps(later).await, 1);
    assert_eq!(marketing_mail(&server, "ana@example.com").await, 2);
    let (_, runs) = server.get(&t(&format!("/leads/{}/sequences", leads[0])), &owner).await;
    assert_eq!(
        (runs[0]["state"].as_str(), runs[0]["sends"].as_array().map(Vec::len)),
        (Some("finished"), Some(2)),
        "{runs}"
    );
    assert_eq!(runs[0]["steps"][0]["body"], "Hi {{first_name}}, see you Sunday.", "{runs}");

    // A reply, a win or an unsubscription stops everything.
    for lead in &leads[1..] {
        let (path, body) = start(lead);
        assert_eq!(server.post(&path, &owner, body).await.0, 201);
    }
    let changes = [
        json!({ "reply": "Thanks, we bought elsewhere." }),
        json!({ "status": "won" }),
        json!({ "status": "unsubscribed" }),
    ];
    for (lead, change) in leads[1..].iter().zip(changes) {
        let (status, body) = server.patch(&t(&format!("/leads/{lead}")), &owner, change).await;
        assert_eq!(status, 200, "{body}");
        let (_, runs) = server.get(&t(&format!("/leads/{lead}/sequences")), &owner).await;
        assert_eq!(runs[0]["state"], "stopped", "{runs}");
    }
    let (_, runs) = server.get(&t(&format!("/leads/{}/sequences", leads[1])), &owner).await;
    assert_eq!(runs[0]["stop_reason"], "the lead replied", "{runs}");
    let far = now + time::Duration::days(30);
    assert_eq!(notifier.sequence_steps(far).await, 0, "stopped sequences queue nothing");
    for email in ["bo@example.com", "cy@example.com", "di@example.com"] {
        assert_eq!(marketing_mail(&server, email).await, 0, "{email}");
    }
    let (path, body) = start(&leads[3]);
    let (status, refused) = server.post(&path, &owner, body).await;
    assert_eq!((status, refused["error"]["details"]["field"].as_str()), (422, Some("lead_id")), "{refused}");
    // Stopping by hand.
    let (path, body) = start(&leads[0]);
    let (_, run) = server.post(&path, &owner, body).await;
    let stop = t(&format!("/leads/{}/sequences/{}/stop", leads[0], run["id"].as_str().unwrap()));
    assert_eq!(server.post(&stop, &owner, Value::Null).await.0, 204);

    // Another organisation gets 404 for all of it.
    server.create_account("mallory@example.com").await;
    let mallory = server.access_token("mallory@example.com", common::PASSWORD).await;
    let (_, other) = server.post("/api/v1/tenants", &mallory, json!({ "name": "Other" })).await;
    let other = other["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/tenants/{other}/sequences/{sequence}"),
        format!("/api/v1/tenants/{other}/leads/{}/sequences", leads[0]),
        t(&format!("/sequences/{sequence}")),
    ] {
        assert_eq!(server.get(&path, &mallory).await.0, 404, "{path}");
    }
    let (status, _) = server
        .post(
            &format!("/api/v1/tenants/{other}/leads/{}/sequences", leads[0]),
            &mallory,
            json!({ "sequence_id": sequence }),
        )
        .await;
    assert_eq!(status, 404);
}

/// A step drafted for review: the sweep writes a draft (not sent) and
/// tells the lead's owner; the next step waits for the decision; the draft
/// is sent as changed (the postal address must stay), once; a skipped one
/// is never sent; a reply drops a waiting draft.
async fn drafts_for_review(backend: Backend) {
    let Some(server) = TestServer::start_with(backend, ApiConfig::default()).await else { return };
    let (owner, tenant) = server.owner().await;
    let t = |rest: &str| format!("/api/v1/tenants/{tenant}{rest}");
    let postal = "Elm Realty, 400 Main Street, Springfield, IL 62701";
    let (_, mut settings) = server.get(&t("/real-estate-settings"), &owner).await;
    settings["postal_address"] = json!(postal);
    let (status, _) =
        server.call(reqwest::Method::PUT, &t("/real-estate-settings"), Some(&owner), Some(settings)).await;
    assert_eq!(status, 200);
    let template = json!({ "name": "Reviewed", "auto_start": false, "steps": [
        { "wait": 0, "unit": "minutes", "subject": "Hello {{first_name}}", "body": "Hi {{first_name}}.", "review": true },
        { "wait": 1, "unit": "days", "subject": "Still looking?", "body": "Hi again." },
    ]});
    let (status, sequence) = server.post(&t("/sequences"), &owner, template).await;
    assert_eq!((status, sequence["steps"][0]["review"].as_bool()), (201, Some(true)), "{sequence}");
    let mut leads = Vec::new();
    for email in ["ana@example.com", "bo@example.com", "cy@example.com"] {
        let body = json!({ "name": "Ana Lima", "email": email });
        let (_, lead) = server.post(&t("/leads"), &owner, body).await;
        let id = lead["id"].as_str().unwrap().to_owned();
        let start = json!({ "sequence_id": sequence["id"] });
        assert_eq!(server.post(&t(&format!("/leads/{id}/sequences")), &owner, start).await.0, 201);
        leads.push(id);
    }
    let notifier = &server.app.notifier;
    let now = Timestamp::now() + time::Duration::seconds(5);
    // The server's own sweep runs too and may draft some first: three
    // drafts in all, one per lead.
    assert!(notifier.sequence_steps(now).await <= 3);
    for lead in &leads {
        let (_, runs) = server.get(&t(&format!("/leads/{lead}/sequences")), &owner).await;
        let sends = runs[0]["sends"].as_array().unwrap();
        assert_eq!((sends.len(), sends[0]["mail_state"].as_str()), (1, Some("draft")), "{runs}");
    }
    assert_eq!(notifier.sequence_steps(now + time::Duration::days(3)).await, 0, "the next steps wait");
    let draft_of = |runs: &Value| runs[0]["sends"][0]["mail_id"].as_str().unwrap().to_owned();
    let (_, runs) = server.get(&t(&format!("/leads/{}/sequences", leads[0])), &owner).await;
    assert_eq!(runs[0]["sends"][0]["mail_state"], "draft", "{runs}");
    assert!(runs[0]["sends"][0]["draft_body"].as_str().unwrap().starts_with("Hi Ana."), "{runs}");
    assert!(runs[0]["next_at"].is_null(), "held until the draft is decided: {runs}");
    let (_, notices) = server.get("/api/v1/me/notifications", &owner).await;
    assert!(notices.to_string().contains("waits for your review"), "{notices}");

    // Sent as changed; the postal address must stay; once.
    let draft = t(&format!("/leads/{}/drafts/{}", leads[0], draft_of(&runs)));
    let (status, refused) = server
        .post(&draft, &owner, json!({ "decision": "send", "subject": "Hello Ana", "body": "Hi Ana!" }))
        .await;
    assert_eq!((status, refused["error"]["details"]["field"].as_str()), (422, Some("body")), "{refused}");
    let body = format!("Hi Ana! Saturday works.\n\n{postal}");
    let send = json!({ "decision": "send", "subject": "Hello Ana", "body": body });
    let (status, _) = server.post(&draft, &owner, send.clone()).await;
    assert_eq!(status, 204);
    let (status, again) = server.post(&draft, &owner, send).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("draft_decided")), "{again}");
    let (_, runs) = server.get(&t(&format!("/leads/{}/sequences", leads[0])), &owner).await;
    assert_eq!(runs[0]["sends"][0]["mail_state"], "pending", "{runs}");
    assert!(runs[0]["next_at"].is_string(), "the next step waits from now: {runs}");
    assert_eq!(marketing_mail(&server, "ana@example.com").await, 1);

    // Skipped: never sent, and the sequence goes on.
    let (_, runs) = server.get(&t(&format!("/leads/{}/sequences", leads[1])), &owner).await;
    let skip = t(&format!("/leads/{}/drafts/{}", leads[1], draft_of(&runs)));
    assert_eq!(server.post(&skip, &owner, json!({ "decision": "skip" })).await.0, 204);
    let (_, runs) = server.get(&t(&format!("/leads/{}/sequences", leads[1])), &owner).await;
    assert_eq!(
        (runs[0]["sends"][0]["mail_state"].as_str(), runs[0]["state"].as_str()),
        (Some("failed"), Some("active")),
        "{runs}"
    );

    // A reply stops the sequence and drops its waiting draft.
    let (status, _) =
        server.patch(&t(&format!("/leads/{}", leads[2])), &owner, json!({ "reply": "No thanks." })).await;
    assert_eq!(status, 200);
    let (_, runs) = server.get(&t(&format!("/leads/{}/sequences", leads[2])), &owner).await;
    assert_eq!(runs[0]["sends"][0]["mail_state"], "failed", "{runs}");
    let dropped = t(&format!("/leads/{}/drafts/{}", leads[2], draft_of(&runs)));
    let (status, _) = server.post(&dropped, &owner, json!({ "decision": "send" })).await;
    assert_eq!(status, 409);

    // Another organisation gets 404.
    server.create_account("mallory@example.com").await;
    let mallory = server.access_token("mallory@example.com", common::PASSWORD).await;
    assert_eq!(server.post(&draft, &mallory, json!({ "decision": "skip" })).await.0, 404);
}

#[tokio::test]
async fn drafts_for_review_on_sqlite() {
    drafts_for_review(Backend::Sqlite).await;
}

#[tokio::test]
async fn drafts_for_review_on_postgres() {
    drafts_for_review(Backend::Postgres).await;
}

#[tokio::test]
async fn sequences_end_to_end_on_sqlite() {
    sequences_end_to_end(Backend::Sqlite).await;
}

#[tokio::test]
async fn sequences_end_to_end_on_postgres() {
    sequences_end_to_end(Backend::Postgres).await;
}
