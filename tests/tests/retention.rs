//! Retention with the real binary, on SQLite and PostgreSQL, the clock
//! moved by `admin apply-retention --as-of`: nothing happens before a
//! policy's time; inactive contacts are anonymised (their name, address,
//! phone and notes gone, a canary found nowhere in the database on
//! PostgreSQL) and their follow-ups stop; leads and inbox items past their
//! time are deleted; each organisation's day runs once, is audited with
//! what it did, and a bad policy names its field. And a contact's
//! data-subject requests: everything naming the address exported, then
//! erased, the audit log keeping only a pseudonym.

use std::time::Duration;

use marketer_tests::fleet::{Fleet, job_timings};
use marketer_tests::social::{FakeSocial, connect_mastodon};
use marketer_tests::{TempDatabase, eventually, server_command_on};
use reqwest::Method;
use serde_json::{Value, json};

fn apply(fleet: &Fleet, database: Option<&TempDatabase>, days_ahead: i64) -> String {
    let as_of = time::OffsetDateTime::now_utc() + time::Duration::days(days_ahead);
    let as_of = as_of.format(&time::format_description::well_known::Rfc3339).unwrap();
    let out = server_command_on(
        &["admin", "apply-retention", "--as-of", &as_of],
        fleet.data.path(),
        database.map(|d| d.url.as_str()),
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn inbox_items(fleet: &Fleet) -> Vec<Value> {
    let (status, page) = fleet.call(Method::GET, "/inbox?limit=200", None).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// A server (on `database`, else SQLite) reading a fake Mastodon's inbox.
async fn fleet_with_inbox(database: Option<&TempDatabase>) -> (FakeSocial, Fleet) {
    let social = FakeSocial::start().await;
    let fleet = Fleet::start(|o| {
        let mut o = social.configure(job_timings(o)).env("MARKETER_INBOX_POLL_MS", "200");
        if let Some(db) = database {
            o = o.env("MARKETER_DATABASE_URL", &db.url);
        }
        o
    })
    .await;
    (social, fleet)
}

async fn retention(database: Option<&TempDatabase>) {
    let (social, fleet) = fleet_with_inbox(database).await;

    // A policy out of range names its field; by default nothing is due.
    let (status, policy) = fleet.call(Method::GET, "/retention", None).await;
    assert_eq!(
        (status, policy),
        (
            200,
            json!({ "inbox_days": null, "lead_days": null, "anonymise_contacts_days": null,
                    "content_days": null, "job_days": null })
        )
    );
    let (status, refused) = fleet.call(Method::PUT, "/retention", Some(json!({ "inbox_days": 0 }))).await;
    assert_eq!((status, &refused["error"]["details"]["field"]), (422, &json!("inbox_days")), "{refused}");
    for (body, field) in
        [(json!({ "content_days": 0 }), "content_days"), (json!({ "job_days": 0 }), "job_days")]
    {
        let (status, refused) = fleet.call(Method::PUT, "/retention", Some(body)).await;
        assert_eq!((status, &refused["error"]["details"]["field"]), (422, &json!(field)), "{refused}");
    }
    assert!(apply(&fleet, database, 0).contains("no retention run was due"));

    // Generated content and job outputs: an activity whose run ended (here
    // cancelled), one still waiting for an agent, and an API job that ended.
    let body = json!({ "name": "Lofts", "llm_policy": "edge_only", "default_model": "llama3.2:3b" });
    let (status, project) = fleet.call(Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{project}");
    let activities = format!("/projects/{}/activities", project["id"].as_str().unwrap());
    let mut made = Vec::new();
    for topic in ["Lofts downtown", "Gardens in spring"] {
        let body =
            json!({ "kind": "blog_article", "topic": topic, "keywords": ["loft"], "wait_for_agent": true });
        let (status, activity) = fleet.call(Method::POST, &activities, Some(body)).await;
        assert!(status == 201 || status == 202, "{status}: {activity}");
        made.push(format!("{activities}/{}", activity["id"].as_str().unwrap()));
    }
    let (status, cancelled) = fleet.call(Method::POST, &format!("{}/cancel", made[0]), None).await;
    assert_eq!(status, 200, "{cancelled}");
    let chat =
        json!({ "kind": "chat", "model": "llama3.2:3b", "messages": [{ "role": "user", "content": "Hi" }] });
    let (status, job) = fleet.call(Method::POST, "/jobs", Some(chat)).await;
    assert!(status == 201 || status == 202, "{status}: {job}");
    let job = format!("/jobs/{}", job["id"].as_str().unwrap());
    let (status, ended) = fleet.call(Method::POST, &format!("{job}/cancel"), None).await;
    assert_eq!(status, 200, "{ended}");

    // A contact with a canary in every personal field, on a follow-up.
    const CANARY: &str = "zq7canary";
    let body = json!({ "name": format!("Dana {CANARY}"), "email": format!("dana.{CANARY}@example.com"),
                       "phone": "+1 555 0100", "note": format!("Wants a loft, {CANARY}") });
    let (status, lead) = fleet.call(Method::POST, "/leads", Some(body)).await;
    assert_eq!(status, 201, "{lead}");
    let lead_id = lead["id"].as_str().unwrap().to_owned();
    let (_, mut settings) = fleet.call(Method::GET, "/real-estate-settings", None).await;
    settings["postal_address"] = json!("1 Main Street, Springfield, IL 62704");
    assert_eq!(fleet.call(Method::PUT, "/real-estate-settings", Some(settings)).await.0, 200);
    let (_, templates) = fleet.call(Method::GET, "/sequences", None).await;
    let (status, enrolled) = fleet
        .call(
            Method::POST,
            &format!("/leads/{lead_id}/sequences"),
            Some(json!({ "sequence_id": templates[0]["id"] })),
        )
        .await;
    assert_eq!(status, 201, "{enrolled}");

    // A mention in the inbox.
    connect_mastodon(&fleet.api, &social).await;
    social.mention("sam", "Loving the new listings", None);
    eventually(Duration::from_secs(20), "the mention in the inbox", || async {
        (!inbox_items(&fleet).await.is_empty()).then_some(())
    })
    .await;

    let policy = json!({ "inbox_days": 60, "lead_days": 400, "anonymise_contacts_days": 30,
                         "content_days": 45, "job_days": 20 });
    let (status, saved) = fleet.call(Method::PUT, "/retention", Some(policy.clone())).await;
    assert_eq!((status, &saved), (200, &policy));

    // Ten days on: nothing is old enough; the day runs once.
    let report = apply(&fleet, database, 10);
    assert!(report.contains("0 inbox items deleted, 0 leads deleted, 0 contacts anonymised"), "{report}");
    assert!(apply(&fleet, database, 10).contains("no retention run was due"), "one run a day");

    // Thirty-one days on: the contact is anonymised, its follow-up stopped.
    let report = apply(&fleet, database, 31);
    assert!(report.contains("1 contacts anonymised, 0 activities deleted, 1 jobs deleted"), "{report}");
    assert_eq!(fleet.call(Method::GET, &job, None).await.0, 404, "the job's output is gone");
    let (status, anonymised) = fleet.call(Method::GET, &format!("/leads/{lead_id}"), None).await;
    assert_eq!(status, 200, "{anonymised}");
    let text = anonymised.to_string();
    assert!(!text.contains(CANARY) && !text.contains("555 0100"), "{text}");
    assert_eq!(anonymised["name"], "Anonymised contact", "{anonymised}");
    assert!(anonymised["email"].as_str().unwrap().ends_with("@anonymised.invalid"), "{anonymised}");
    let (_, enrollments) = fleet.call(Method::GET, &format!("/leads/{lead_id}/sequences"), None).await;
    assert!(enrollments.to_string().contains("stopped"), "{enrollments}");
    if let Some(db) = database {
        // Nowhere in the database: not the lead, its notes, the audit log.
        let dump = db.dump().await;
        let hits: Vec<&str> = dump.lines().filter(|l| l.contains(CANARY)).collect();
        assert!(hits.is_empty(), "{hits:?}");
    }

    // Sixty-one days on: the mention is gone; 401: the lead too.
    let report = apply(&fleet, database, 61);
    assert!(report.contains("1 inbox items deleted"), "{report}");
    assert!(report.contains("1 activities deleted"), "{report}");
    assert_eq!(fleet.call(Method::GET, &made[0], None).await.0, 404, "the ended activity is gone");
    assert_eq!(fleet.call(Method::GET, &made[1], None).await.0, 200, "one still to run stays");
    assert!(inbox_items(&fleet).await.is_empty());
    let report = apply(&fleet, database, 401);
    assert!(report.contains("1 leads deleted"), "{report}");
    let (status, _) = fleet.call(Method::GET, &format!("/leads/{lead_id}"), None).await;
    assert_eq!(status, 404);

    // Each run is in the audit log with what it did.
    let (_, audit) = fleet.call(Method::GET, "/audit-events?action=retention.apply&limit=50", None).await;
    let runs = audit["items"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "{audit}");
    assert!(runs.iter().all(|r| r["actor"]["type"] == "system"), "{audit}");
    assert!(runs.iter().any(|r| r["details"]["report"]["contacts_anonymised"] == 1), "{audit}");
}

async fn data_subject(database: Option<&TempDatabase>) {
    let (social, fleet) = fleet_with_inbox(database).await;
    const CANARY: &str = "xk4subject";
    let email = format!("lee.{CANARY}@example.com");
    let body =
        json!({ "name": format!("Lee {CANARY}"), "email": email, "note": format!("Called about {CANARY}") });
    let (status, lead) = fleet.call(Method::POST, "/leads", Some(body)).await;
    assert_eq!(status, 201, "{lead}");
    connect_mastodon(&fleet.api, &social).await;
    social.mention("lee", &format!("Please write to me at {} about the loft", email.to_uppercase()), None);
    social.mention("sam", "Nothing personal here", None);
    eventually(Duration::from_secs(20), "both mentions in the inbox", || async {
        (inbox_items(&fleet).await.len() == 2).then_some(())
    })
    .await;

    let (status, refused) =
        fleet.call(Method::POST, "/data-subjects/export", Some(json!({ "email": "not an address" }))).await;
    assert_eq!((status, &refused["error"]["details"]["field"]), (422, &json!("email")), "{refused}");
    let member =
        fleet.add_member(&fleet.api.tenant, "mo@example.com", "Mo", "admin", "a long enough password").await;
    let (status, _) = member
        .call(Method::POST, &member.tenant_path("/data-subjects/export"), Some(json!({ "email": email })))
        .await;
    assert_eq!(status, 403, "owners only");

    // The export: the lead with its timeline, the item that quotes the
    // address (in any case), not the other one.
    let (status, export) = fleet
        .call(Method::POST, "/data-subjects/export", Some(json!({ "email": email.to_uppercase() })))
        .await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["lead"]["id"], lead["id"], "{export}");
    assert!(export["lead"].to_string().contains(&format!("Called about {CANARY}")), "{export}");
    assert_eq!(export["inbox_items"].as_array().unwrap().len(), 1, "{export}");
    assert!(!export["not_included"].as_array().unwrap().is_empty());

    // Erasure: the lead anonymised, the quoting item deleted, the other kept.
    let (status, erased) =
        fleet.call(Method::POST, "/data-subjects/erase", Some(json!({ "email": email }))).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(
        (erased["leads_anonymised"].as_u64(), erased["inbox_items_deleted"].as_u64()),
        (Some(1), Some(1))
    );
    let pseudonym = erased["pseudonym"].as_str().unwrap().to_owned();
    let (_, anonymised) =
        fleet.call(Method::GET, &format!("/leads/{}", lead["id"].as_str().unwrap()), None).await;
    assert!(!anonymised.to_string().contains(CANARY), "{anonymised}");
    let left = inbox_items(&fleet).await;
    assert_eq!(left.len(), 1);
    assert!(!left[0].to_string().contains(CANARY));
    let (_, again) = fleet.call(Method::POST, "/data-subjects/export", Some(json!({ "email": email }))).await;
    assert_eq!(
        (again["lead"].clone(), again["inbox_items"].as_array().unwrap().len()),
        (Value::Null, 0),
        "{again}"
    );

    // The audit log has both requests under the pseudonym, never the address.
    let (_, audit) = fleet.call(Method::GET, "/audit-events?limit=200", None).await;
    let text = audit.to_string();
    assert!(text.contains("data_subject.erase") && text.contains("data_subject.export"), "{text}");
    assert!(text.contains(&pseudonym));
    assert!(!text.contains(CANARY), "the audit log names nobody");
    if let Some(db) = database {
        let dump = db.dump().await;
        let hits: Vec<&str> = dump.lines().filter(|l| l.contains(CANARY)).collect();
        assert!(hits.is_empty(), "{hits:?}");
    }
}

#[tokio::test]
async fn a_contacts_data_is_exported_then_erased_on_sqlite() {
    data_subject(None).await;
}

#[tokio::test]
async fn a_contacts_data_is_exported_then_erased_on_postgres() {
    let Some(database) = TempDatabase::create().await else { return };
    data_subject(Some(&database)).await;
    database.drop_database().await;
}

#[tokio::test]
async fn retention_anonymises_and_deletes_on_time_on_sqlite() {
    retention(None).await;
}

#[tokio::test]
async fn retention_anonymises_and_deletes_on_time_on_postgres() {
    let Some(database) = TempDatabase::create().await else { return };
    retention(Some(&database)).await;
    database.drop_database().await;
}
