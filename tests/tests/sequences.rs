//! Follow-up sequences end to end: the real server binary on PostgreSQL,
//! sending through a real SMTP server (MailDev). A visitor's message on a
//! public listing page starts the default sequence (welcome, similar
//! homes, market update); the test moves its clock by making the next
//! step due in the database. Each step goes out once and in order, while a
//! second replica sweeps the same steps and after the first replica is
//! killed and started again; every message carries the unsubscribe link
//! (and the one-click header) and the postal address; the link works with
//! no sign-in, at once: the next step is never sent and no sequence can be
//! started for that address again. A hard bounce (the recipient's server
//! refusing the mailbox for good) suppresses the address the same way.
//! A step's personal paragraph is written by the model on the tenant's
//! edge agent (the e-mail waits, saying why, while no agent is online).

use std::time::Duration;

use marketer_tests::fleet::{Agent, EMAIL, Fleet, PASSWORD, job_timings};
use marketer_tests::mail::{Bouncer, MailDev, Received};
use marketer_tests::{Api, ServerOptions, ServerProcess, TempDatabase, eventually};
use reqwest::Method;
use serde_json::{Value, json};

const POSTAL: &str = "Elm Realty, 400 Main Street, Springfield, IL 62701";

fn options(data: &std::path::Path, mail: &MailDev, db: &TempDatabase) -> ServerOptions {
    on_database(mail.configure(ServerOptions::new(data)), db)
}

fn on_database(options: ServerOptions, db: &TempDatabase) -> ServerOptions {
    options
        .env("MARKETER_BOOTSTRAP_EMAIL", EMAIL)
        .env("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)
        .env("MARKETER_DATABASE_URL", &db.url)
}

/// Makes every running step of the lead due now: the test's clock.
async fn advance(pool: &sqlx::PgPool, email: &str) {
    let moved = sqlx::query(
        "UPDATE lead_enrollments SET next_at = NOW() - INTERVAL '1 second' WHERE state = 'active' \
         AND lead_id = (SELECT id FROM leads WHERE email_normalized = $1)",
    )
    .bind(email)
    .execute(pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(moved, 1, "one running sequence for {email}");
}

/// Sends the public page's form as a visitor's browser does.
async fn write_in(base: &str, page: &str, name: &str, email: &str) {
    let html = reqwest::get(format!("{base}{page}")).await.unwrap().text().await.unwrap();
    let marker = "name=\"token\" value=\"";
    let start = html.find(marker).expect("the form's token") + marker.len();
    let token = &html[start..start + html[start..].find('"').unwrap()];
    let response = reqwest::Client::new()
        .post(format!("{base}{page}"))
        .form(&[
            ("name", name),
            ("email", email),
            ("phone", ""),
            ("message", "Is it still available?"),
            ("consent", "on"),
            ("token", token),
            ("website", ""),
        ])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success() || response.status().is_redirection(), "{}", response.status());
}

async fn call(api: &Api, method: Method, rest: &str, body: Option<Value>) -> (u16, Value) {
    api.call(method, &api.tenant_path(rest), body).await
}

fn check_message(m: &Received) -> String {
    assert!(m.text.contains(POSTAL), "the postal address is in every message:\n{}", m.text);
    assert!(m.text.contains("12 Elm Street, Springfield"), "{}", m.text);
    // Replicas each have their own address here; any of them serves it.
    let link = m
        .text
        .split_whitespace()
        .find(|w| w.starts_with("http") && w.contains("/unsubscribe/mkt_ln_"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("an unsubscribe link in every message:\n{}", m.text));
    let header = m.headers["list-unsubscribe"].as_str().unwrap_or_default();
    assert!(header.contains("/unsubscribe/"), "List-Unsubscribe: {}", m.headers);
    assert_eq!(
        m.headers["list-unsubscribe-post"].as_str(),
        Some("List-Unsubscribe=One-Click"),
        "{}",
        m.headers
    );
    link
}

async fn wait_count(mail: &MailDev, to: &str, n: usize) -> Vec<Received> {
    eventually(Duration::from_secs(30), &format!("{n} message(s) to {to}"), || async {
        let got = mail.to(to).await;
        (got.len() >= n).then_some(got)
    })
    .await
}

#[tokio::test]
async fn follow_up_steps_go_out_once_in_order_across_replicas_and_a_restart_and_stop_on_unsubscribe() {
    let Some(mail) = MailDev::start().await else { return };
    let Some(db) = TempDatabase::create().await else { return };
    let data = tempfile::tempdir().unwrap();
    let first = ServerProcess::spawn(&options(data.path(), &mail, &db));
    let api = Api::login(&first.base_url, EMAIL, PASSWORD).await;
    let base = api.base_url.clone();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();

    // Without a postal address nothing starts by itself; with it, the
    // default sequence starts for each lead a listing page brings.
    let (status, settings) = call(&api, Method::GET, "/real-estate-settings", None).await;
    assert_eq!(status, 200, "{settings}");
    let mut settings = settings;
    settings["postal_address"] = json!(POSTAL);
    let (status, body) = call(&api, Method::PUT, "/real-estate-settings", Some(settings)).await;
    assert_eq!(status, 200, "{body}");
    let (_, project) = call(&api, Method::POST, "/projects", Some(json!({ "name": "Listings" }))).await;
    let (status, property) = call(
        &api,
        Method::POST,
        "/properties",
        Some(json!({
            "project_id": project["id"], "street": "12 Elm Street", "city": "Springfield", "region": "IL",
            "postal_code": "62704", "country": "us", "price": 450_000, "currency": "usd", "beds": 3, "baths": 2,
            "floor_area": 1850, "area_unit": "sqft", "property_type": "single_family", "status": "active",
            "features": [], "description": "Bright.", "agent_name": "Dana Reyes", "agent_contact": "dana@example.com"
        })),
    )
    .await;
    assert_eq!(status, 201, "{property}");
    let id = property["id"].as_str().unwrap();
    let (status, published) =
        call(&api, Method::PUT, &format!("/properties/{id}/publication"), Some(json!({ "published": true })))
            .await;
    assert_eq!(status, 200, "{published}");
    let page = published["public_path"].as_str().unwrap().to_owned();

    write_in(&base, &page, "Ana Lima", "ana@example.com").await;
    write_in(&base, &page, "Bo Chen", "bo@example.com").await;
    let (_, leads) = call(&api, Method::GET, "/leads", None).await;
    let lead = |email: &str| {
        leads["items"].as_array().unwrap().iter().find(|l| l["email"] == email).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (ana, bo) = (lead("ana@example.com"), lead("bo@example.com"));
    let (status, runs) = call(&api, Method::GET, &format!("/leads/{ana}/sequences"), None).await;
    assert_eq!(status, 200, "{runs}");
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(
        (runs[0]["state"].as_str(), runs[0]["next_step"].as_i64()),
        (Some("active"), Some(0)),
        "{runs}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(mail.to("ana@example.com").await.is_empty(), "the welcome waits its two hours");

    // Step 1, on one replica.
    advance(&pool, "ana@example.com").await;
    let got = wait_count(&mail, "ana@example.com", 1).await;
    assert!(got[0].subject.starts_with("Thanks for asking about 12 Elm Street"), "{}", got[0].subject);
    assert!(got[0].text.starts_with("Hi Ana,"), "{}", got[0].text);
    check_message(&got[0]);

    // Step 2, with a second replica sweeping the same steps.
    let second = ServerProcess::spawn(&options(data.path(), &mail, &db));
    advance(&pool, "ana@example.com").await;
    let got = wait_count(&mail, "ana@example.com", 2).await;
    check_message(&got[1]);

    // Step 3 after the first replica is killed and started again.
    first.kill();
    let again = ServerProcess::spawn(&options(data.path(), &mail, &db));
    advance(&pool, "ana@example.com").await;
    let got = wait_count(&mail, "ana@example.com", 3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got_now = mail.to("ana@example.com").await;
    assert_eq!(
        got_now.len(),
        3,
        "each step once: {:?}",
        got_now.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let mut subjects: Vec<&str> = got.iter().map(|m| m.subject.as_str()).collect();
    subjects.sort_unstable();
    assert!(
        subjects.iter().any(|s| s.starts_with("Homes like"))
            && subjects.contains(&"The local market this week")
    );
    let api = Api::login(&again.base_url, EMAIL, PASSWORD).await;
    let (_, runs) = api.call(Method::GET, &api.tenant_path(&format!("/leads/{ana}/sequences")), None).await;
    assert_eq!(runs[0]["state"], "finished", "{runs}");
    let sends = runs[0]["sends"].as_array().unwrap();
    assert_eq!(sends.iter().map(|s| s["step"].as_i64().unwrap()).collect::<Vec<_>>(), [0, 1, 2], "{runs}");
    assert!(sends.iter().all(|s| s["mail_state"] == "sent"), "{runs}");

    // Bo unsubscribes from the first message: no sign-in, at once.
    advance(&pool, "bo@example.com").await;
    let got = wait_count(&mail, "bo@example.com", 1).await;
    let link = check_message(&got[0]);
    let answer = reqwest::get(&link).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await.unwrap().contains("You are unsubscribed"));
    let again_answer = reqwest::Client::new().post(&link).send().await.unwrap();
    assert_eq!(again_answer.status(), 200, "the one-click POST works too, and twice is fine");
    let moved = sqlx::query("UPDATE lead_enrollments SET next_at = NOW() WHERE lead_id = (SELECT id FROM leads WHERE email_normalized = 'bo@example.com')")
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(moved, 1);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(mail.to("bo@example.com").await.len(), 1, "nothing after unsubscribing");
    let (_, lead) = api.call(Method::GET, &api.tenant_path(&format!("/leads/{bo}")), None).await;
    assert_eq!(lead["status"], "unsubscribed", "{lead}");
    let (_, runs) = api.call(Method::GET, &api.tenant_path(&format!("/leads/{bo}/sequences")), None).await;
    assert_eq!(
        (runs[0]["state"].as_str(), runs[0]["stop_reason"].as_str()),
        (Some("stopped"), Some("unsubscribed")),
        "{runs}"
    );
    let (_, sequences) = api.call(Method::GET, &api.tenant_path("/sequences"), None).await;
    let (status, refused) = api
        .call(
            Method::POST,
            &api.tenant_path(&format!("/leads/{bo}/sequences")),
            Some(json!({ "sequence_id": sequences[0]["id"] })),
        )
        .await;
    assert_eq!(status, 422, "an unsubscribed address is never mailed again: {refused}");
    let bad = reqwest::get(format!("{}/unsubscribe/mkt_ln_not-a-real-token", api.base_url)).await.unwrap();
    assert_eq!(bad.status(), 404);

    second.kill();
    again.kill();
    pool.close().await;
    db.drop_database().await;
}

/// A hard bounce: the recipient's mail server refuses the mailbox for good
/// (`550 5.1.1` to `RCPT TO`). The message is failed, not retried; in the
/// same transaction the address is suppressed for the tenant's sequences,
/// the lead's sequences stop and its timeline says why, and no sequence
/// can start for it again. Another lead's message goes out as usual. A
/// third lead's message is accepted and bounces later: the relay's
/// delivery status notification, handed to the bounce intake, does the
/// same (once however often it is sent; a delay changes nothing).
#[tokio::test]
async fn a_hard_bounce_suppresses_the_address_and_stops_its_sequences() {
    let Some(bouncer) = Bouncer::start().await else { return };
    let Some(db) = TempDatabase::create().await else { return };
    let data = tempfile::tempdir().unwrap();
    let token_file = data.path().join("bounce-token");
    std::fs::write(&token_file, BOUNCE_TOKEN).unwrap();
    let options = bouncer
        .configure(ServerOptions::new(data.path()))
        .env("MARKETER_BOUNCE_TOKEN_FILE", token_file.to_str().unwrap());
    let server = ServerProcess::spawn(&on_database(options, &db));
    let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (_, mut settings) = call(&api, Method::GET, "/real-estate-settings", None).await;
    settings["postal_address"] = json!(POSTAL);
    assert_eq!(call(&api, Method::PUT, "/real-estate-settings", Some(settings)).await.0, 200);
    let (_, templates) = call(&api, Method::GET, "/sequences", None).await;
    let sequence = templates[0]["id"].clone();

    let mut leads = Vec::new();
    for email in ["bounce-ana@example.com", "bo@example.com", "cy@example.com"] {
        let (status, lead) =
            call(&api, Method::POST, "/leads", Some(json!({ "name": "Ana Bo", "email": email }))).await;
        assert_eq!(status, 201, "{lead}");
        let id = lead["id"].as_str().unwrap().to_owned();
        let start = json!({ "sequence_id": sequence });
        let (status, run) = call(&api, Method::POST, &format!("/leads/{id}/sequences"), Some(start)).await;
        assert_eq!(status, 201, "{run}");
        advance(&pool, email).await;
        leads.push(id);
    }
    let outcomes: Vec<(String, String, Option<String>)> =
        eventually(Duration::from_secs(30), "both first steps to end", || async {
            let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
                "SELECT to_address, state, last_error FROM email_outbox WHERE purpose = 'marketing' \
                 AND state IN ('sent', 'failed') ORDER BY to_address",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            (rows.len() == 3).then_some(rows)
        })
        .await;
    assert_eq!((outcomes[0].0.as_str(), outcomes[0].1.as_str()), ("bo@example.com", "sent"), "{outcomes:?}");
    assert_eq!(
        (outcomes[1].0.as_str(), outcomes[1].1.as_str()),
        ("bounce-ana@example.com", "failed"),
        "{outcomes:?}"
    );
    assert!(outcomes[1].2.as_deref().unwrap_or_default().contains("550"), "{outcomes:?}");
    assert_eq!((outcomes[2].0.as_str(), outcomes[2].1.as_str()), ("cy@example.com", "sent"), "{outcomes:?}");

    let (_, runs) = call(&api, Method::GET, &format!("/leads/{}/sequences", leads[0]), None).await;
    assert_eq!(runs[0]["state"], "stopped", "{runs}");
    assert!(runs[0]["stop_reason"].as_str().unwrap().contains("bounced"), "{runs}");
    assert_eq!(runs[0]["sends"][0]["mail_state"], "failed", "{runs}");
    let (_, lead) = call(&api, Method::GET, &format!("/leads/{}", leads[0]), None).await;
    let bounced = lead["timeline"].as_array().unwrap().iter().find(|e| e["kind"] == "email_bounced");
    assert!(bounced.is_some_and(|e| e["body"].as_str().unwrap().contains("550")), "{lead}");
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM marketing_suppressions WHERE email_normalized = 'bounce-ana@example.com'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reason, "bounced");
    let start = json!({ "sequence_id": sequence });
    let (status, refused) =
        call(&api, Method::POST, &format!("/leads/{}/sequences", leads[0]), Some(start)).await;
    assert_eq!((status, refused["error"]["details"]["field"].as_str()), (422, Some("lead_id")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("bounced"), "{refused}");
    // Bo's sequence goes on to its next step.
    let (_, runs) = call(&api, Method::GET, &format!("/leads/{}/sequences", leads[1]), None).await;
    assert_eq!(
        (runs[0]["state"].as_str(), runs[0]["next_step"].as_i64()),
        (Some("active"), Some(1)),
        "{runs}"
    );

    // Cy's message was accepted, then bounced later: the relay's
    // delivery status notification, handed to the bounce intake, does
    // what a refusal during the session does.
    let cy_mail: String = sqlx::query_scalar(
        "SELECT id::text FROM email_outbox WHERE purpose = 'marketing' AND to_address = 'cy@example.com'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let intake = |token: &str, report: String| {
        reqwest::Client::new()
            .post(format!("{}/api/v1/mail/bounces", server.base_url))
            .bearer_auth(token)
            .header("content-type", "message/rfc822")
            .body(report)
            .send()
    };
    let delayed = exim_report(&cy_mail, "cy@example.com", "delayed", "4.4.7");
    let answer = intake("not-the-token-at-all", delayed.clone()).await.unwrap();
    assert_eq!(answer.status(), 401);
    let answer: Value = intake(BOUNCE_TOKEN, delayed).await.unwrap().json().await.unwrap();
    assert_eq!(answer["recipients"][0]["outcome"], "temporary", "{answer}");
    let (_, runs) = call(&api, Method::GET, &format!("/leads/{}/sequences", leads[2]), None).await;
    assert_eq!(runs[0]["state"], "active", "a delay changes nothing: {runs}");
    let failed = exim_report(&cy_mail, "cy@example.com", "failed", "5.1.1");
    let answer = intake(BOUNCE_TOKEN, failed.clone()).await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(
        (answer["mail_id"].as_str(), answer["recipients"][0]["outcome"].as_str()),
        (Some(cy_mail.as_str()), Some("recorded"))
    );
    let again: Value = intake(BOUNCE_TOKEN, failed).await.unwrap().json().await.unwrap();
    assert_eq!(again["recipients"][0]["outcome"], "already_known", "{again}");
    let (_, runs) = call(&api, Method::GET, &format!("/leads/{}/sequences", leads[2]), None).await;
    assert_eq!(runs[0]["state"], "stopped", "{runs}");
    assert!(runs[0]["stop_reason"].as_str().unwrap().contains("bounced"), "{runs}");
    let (_, lead) = call(&api, Method::GET, &format!("/leads/{}", leads[2]), None).await;
    let events = lead["timeline"].as_array().unwrap();
    let bounced: Vec<&Value> = events.iter().filter(|e| e["kind"] == "email_bounced").collect();
    assert_eq!(bounced.len(), 1, "recorded once: {lead}");
    assert!(bounced[0]["body"].as_str().unwrap().contains("mailbox is unknown"), "{lead}");
    let state: String = sqlx::query_scalar("SELECT state FROM email_outbox WHERE id::text = $1")
        .bind(&cy_mail)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "failed");
    let not_ours = exim_report(&cy_mail, "someone-else@example.com", "failed", "5.1.1");
    let answer: Value = intake(BOUNCE_TOKEN, not_ours).await.unwrap().json().await.unwrap();
    assert_eq!(answer["recipients"][0]["outcome"], "not_ours", "{answer}");
    let answer = intake(BOUNCE_TOKEN, "Subject: hello\r\n\r\nnot a bounce".into()).await.unwrap();
    assert_eq!(answer.status(), 422);
}

const BOUNCE_TOKEN: &str = "bounce-intake-token-0123456789";

/// A delivery status notification as Exim writes one, returning the
/// original message whole.
fn exim_report(mail_id: &str, to: &str, action: &str, status: &str) -> String {
    format!(
        "From: Mail Delivery System <Mailer-Daemon@relay.example.net>\r\n\
         To: marketer@example.com\r\n\
         Subject: Mail delivery failed: returning message to sender\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=1733400000-eximdsn\r\n\
         \r\n\
         --1733400000-eximdsn\r\n\
         Content-type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This message was created automatically by mail delivery software.\r\n\
         \r\n\
         --1733400000-eximdsn\r\n\
         Content-type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; relay.example.net\r\n\
         \r\n\
         Action: {action}\r\n\
         Final-Recipient: rfc822;{to}\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mx.example.com\r\n\
         Diagnostic-Code: smtp; 550 {status} The mailbox is unknown\r\n\
         \r\n\
         --1733400000-eximdsn\r\n\
         Content-type: message/rfc822\r\n\
         \r\n\
         Message-ID: <{mail_id}@marketer>\r\n\
         From: Elm Realty <marketer@example.com>\r\n\
         To: {to}\r\n\
         Subject: Thanks for asking\r\n\
         \r\n\
         Hello\r\n\
         \r\n\
         --1733400000-eximdsn--\r\n"
    )
}

/// A step asking for a personal paragraph: with no agent online the
/// e-mail waits and the lead's sequence says why; once an agent connects,
/// the model on it (the fake Ollama) writes the paragraph from the home's
/// details, the lead's first name and the instruction, and the e-mail goes
/// out once with the paragraph where the template put it.
#[tokio::test]
async fn a_personal_paragraph_is_written_on_the_edge_agent_and_the_email_waits_for_one() {
    let Some(mail) = MailDev::start().await else { return };
    let fleet = Fleet::start(|o| mail.configure(job_timings(o))).await;
    let (status, mut settings) = fleet.call(Method::GET, "/real-estate-settings", None).await;
    assert_eq!(status, 200, "{settings}");
    settings["postal_address"] = json!(POSTAL);
    let (status, body) = fleet.call(Method::PUT, "/real-estate-settings", Some(settings)).await;
    assert_eq!(status, 200, "{body}");
    let body = json!({ "name": "Listings", "llm_policy": "edge_only", "default_model": "llama3.2:3b" });
    let (status, project) = fleet.call(Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{project}");
    let (status, property) = fleet
        .call(
            Method::POST,
            "/properties",
            Some(json!({
                "project_id": project["id"], "street": "12 Elm Street", "city": "Springfield", "region": "IL",
                "postal_code": "62704", "country": "us", "price": 450_000, "currency": "usd", "beds": 3, "baths": 2,
                "floor_area": 1850, "area_unit": "sqft", "property_type": "single_family", "status": "active",
                "features": ["walled garden"], "description": "Bright rooms over a walled garden.",
                "agent_name": "Dana Reyes", "agent_contact": "dana@example.com"
            })),
        )
        .await;
    assert_eq!(status, 201, "{property}");

    // The paragraph belongs in the body only when the step asks for one.
    let step = json!({ "wait": 0, "unit": "minutes", "subject": "About {{property}}",
        "body": "Hi {{first_name}},\n\n{{paragraph}}\n\nTalk soon." });
    let (status, refused) =
        fleet.call(Method::POST, "/sequences", Some(json!({ "name": "Personal", "steps": [step] }))).await;
    assert_eq!(
        (status, refused["error"]["details"]["field"].as_str()),
        (422, Some("steps[0].body")),
        "{refused}"
    );
    let mut step = step;
    step["paragraph"] = json!("Say what makes the garden pleasant");
    let (status, sequence) =
        fleet.call(Method::POST, "/sequences", Some(json!({ "name": "Personal", "steps": [step] }))).await;
    assert_eq!(status, 201, "{sequence}");
    assert_eq!(sequence["steps"][0]["paragraph"], "Say what makes the garden pleasant");

    let paragraph = "The walled garden catches the morning sun, and the street is quiet.";
    fleet.ollama.script("follow-up e-mail", vec![paragraph.into()]);
    let to = "ana.lima@example.net";
    let body = json!({ "name": "Ana Lima", "email": to, "property_ids": [property["id"]] });
    let (status, lead) = fleet.call(Method::POST, "/leads", Some(body)).await;
    assert_eq!(status, 201, "{lead}");
    let lead_id = lead["id"].as_str().unwrap();
    let path = format!("/leads/{lead_id}/sequences");
    let (status, started) =
        fleet.call(Method::POST, &path, Some(json!({ "sequence_id": sequence["id"] }))).await;
    assert_eq!(status, 201, "{started}");

    // No agent: the step waits for one, and says so.
    let writing = eventually(Duration::from_secs(30), "the sequence says the paragraph waits", || async {
        let (_, runs) = fleet.call(Method::GET, &path, None).await;
        runs[0]["writing"].as_str().filter(|w| w.contains("no agent")).map(str::to_owned)
    })
    .await;
    assert!(writing.contains("personal paragraph"), "{writing}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(mail.to(to).await.is_empty(), "nothing is sent before the paragraph is written");
    assert!(fleet.ollama.chat_requests().is_empty());

    let _agent = Agent::start(&fleet, &[]).await;
    let got = wait_count(&mail, to, 1).await;
    let text = &got[0].text;
    assert!(text.contains(&format!("Hi Ana,\n\n{paragraph}\n\nTalk soon.")), "{text}");
    assert!(!text.contains("{{"), "{text}");
    check_message(&got[0]);
    // The model saw the instruction, the home and the first name, on the agent.
    let requests: Vec<String> = fleet.ollama.chat_requests().iter().map(ToString::to_string).collect();
    let asked: Vec<&String> = requests.iter().filter(|r| r.contains("follow-up e-mail")).collect();
    assert_eq!(asked.len(), 1, "one paragraph job: {requests:?}");
    for part in ["Say what makes the garden pleasant", "12 Elm Street", "walled garden", "Ana"] {
        assert!(asked[0].contains(part), "{part} in {}", asked[0]);
    }
    assert!(!asked[0].contains(to), "the lead's address is not in the prompt");

    let (_, runs) = fleet.call(Method::GET, &path, None).await;
    assert!(runs[0]["writing"].is_null(), "{runs}");
    assert_eq!(runs[0]["state"], "finished", "{runs}");
    let (_, lead) = fleet.call(Method::GET, &format!("/leads/{lead_id}"), None).await;
    let timeline = lead["timeline"].to_string();
    assert!(timeline.contains("with its personal paragraph"), "{timeline}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(mail.to(to).await.len(), 1, "sent once");
}
