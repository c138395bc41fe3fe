//! The inbox classified on the tenant's own agent, end to end with the
//! real binaries: mentions read from the fake Mastodon, waiting while no
//! agent is online, labelled in batches by the agent against the fake
//! Ollama (whose classifier answers by the messages' words), sorted and
//! filtered by their labels; and the canary: a HIPAA organisation's
//! mention with PHI is kept sealed until its agent has screened it, and
//! afterwards its identifiers are in no store, log or transcript of the
//! control plane.

use std::path::Path;
use std::time::Duration;

use marketer_tests::fleet::{Fleet, job_timings};
use marketer_tests::ollama::FakeModel;
use marketer_tests::social::{FakeSocial, Net, connect_mastodon};
use marketer_tests::webhooks::Receiver;
use marketer_tests::{AgentHost, AgentProcess, TempDatabase, eventually};
use reqwest::Method;
use serde_json::{Value, json};

const MODEL: &str = "llama3.2:3b";

async fn fleet(social: &FakeSocial, extra: &[(&str, &str)]) -> Fleet {
    let mut env: Vec<(&str, &str)> = vec![("MARKETER_INBOX_POLL_MS", "200"), ("MARKETER_INBOX_MODEL", MODEL)];
    env.extend_from_slice(extra);
    Fleet::start(|o| {
        let mut o = social.configure(job_timings(o));
        for (key, value) in env {
            o = o.env(key, value);
        }
        o
    })
    .await
}

async fn agent(fleet: &Fleet, home: &Path) -> (AgentHost, String, AgentProcess) {
    let host = fleet.host(home);
    let id = fleet.enroll(&host, &[]).await;
    let process = host.spawn_run(&[]);
    fleet.wait_state(&id, "online", Duration::from_secs(30)).await;
    (host, id, process)
}

async fn inbox(fleet: &Fleet, query: &str) -> Value {
    let limit = if query.contains("limit=") { "" } else { "&limit=200" };
    let params = format!("{limit}{query}");
    let (status, page) =
        fleet.call(Method::GET, &format!("/inbox?{}", params.trim_start_matches('&')), None).await;
    assert_eq!(status, 200, "{page}");
    page
}

fn texts(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|i| i["text"].as_str().unwrap().to_owned()).collect()
}

/// Model calls of the classifier so far.
fn classify_calls(fleet: &Fleet) -> usize {
    fleet
        .ollama
        .chat_requests()
        .iter()
        .filter(|r| r.to_string().contains("You sort what people write to a brand"))
        .count()
}

const MENTIONS: [&str; 6] = [
    "This is terrible, the heating is broken and nobody answers!",
    "I love the new listing, thank you",
    "Is the open house on Sunday?",
    "I would like to book a viewing of the loft",
    "Click here for free followers",
    "Danke, ich finde die Wohnung toll",
];

#[tokio::test]
async fn mentions_wait_for_an_agent_then_are_labelled_in_batches() {
    let social = FakeSocial::start().await;
    let fleet = fleet(&social, &[]).await;
    connect_mastodon(&fleet.api, &social).await;
    eventually(Duration::from_secs(10), "the inbox's first read", || async {
        social.requests().iter().any(|r| r == "GET /api/v1/notifications").then_some(())
    })
    .await;
    for text in MENTIONS {
        social.mention("dana", text, None);
    }
    // No agent yet: the items are listed, waiting, and say why.
    let waiting = eventually(Duration::from_secs(20), "six waiting items", || async {
        let page = inbox(&fleet, "").await;
        let items = page["items"].as_array().unwrap().clone();
        (items.len() == 6
            && items.iter().all(|i| {
                i["classification_note"]
                    .as_str()
                    .is_some_and(|n| n.contains("no agent of this tenant is online"))
            }))
        .then_some(items)
    })
    .await;
    for item in &waiting {
        assert_eq!(item["classification_status"], "waiting", "{item}");
        assert!(item["classification"].is_null(), "{item}");
        assert_eq!(item["sealed"], false, "a standard organisation's account keeps the text");
    }
    assert_eq!(classify_calls(&fleet), 0);

    // An agent comes online and labels them all.
    let home = tempfile::tempdir().unwrap();
    let (_host, _agent_id, _process) = agent(&fleet, home.path()).await;
    let page = eventually(Duration::from_secs(30), "six classified items", || async {
        let page = inbox(&fleet, "").await;
        let items = page["items"].as_array().unwrap();
        items.iter().all(|i| i["classification_status"] == "classified").then_some(page)
    })
    .await;
    let label = |text: &str| -> Value {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["text"].as_str().unwrap().ends_with(text))
            .unwrap_or_else(|| panic!("{text} in {page}"))["classification"]
            .clone()
    };
    let angry = label(MENTIONS[0]);
    assert_eq!(
        (angry["sentiment"].as_str(), angry["intent"].as_str()),
        (Some("negative"), Some("complaint"))
    );
    assert_eq!(angry["urgency"], "high");
    assert!(angry["sentiment_score"].as_f64().unwrap() < -0.5, "{angry}");
    assert_eq!(label(MENTIONS[1])["intent"], "praise");
    assert_eq!(label(MENTIONS[1])["sentiment"], "positive");
    assert_eq!(label(MENTIONS[2])["intent"], "question");
    assert_eq!(label(MENTIONS[3])["intent"], "purchase_interest");
    assert_eq!(label(MENTIONS[4])["intent"], "spam");
    assert_eq!(label(MENTIONS[5])["language"], "de");
    assert_eq!(label(MENTIONS[1])["language"], "en");
    // Batched: fewer model calls than items (they were queued in one or
    // two collection rounds, each a job of up to 50 items, 10 per call).
    let calls = classify_calls(&fleet);
    assert!((1..=2).contains(&calls), "{calls} classifier calls for 6 items");

    // The most urgent first; filters by sentiment and intent.
    let urgent = inbox(&fleet, "&sort=urgent").await;
    assert!(texts(&urgent)[0].ends_with(MENTIONS[0]), "{urgent}");
    assert!(
        texts(&urgent).last().unwrap().ends_with(MENTIONS[4])
            || texts(&urgent).last().unwrap().ends_with(MENTIONS[1])
            || texts(&urgent).last().unwrap().ends_with(MENTIONS[5]),
        "a low-urgency item last"
    );
    let negative = inbox(&fleet, "&sentiment=negative").await;
    assert_eq!(negative["items"].as_array().unwrap().len(), 1, "{negative}");
    let buyers = inbox(&fleet, "&intent=purchase_interest").await;
    assert!(texts(&buyers)[0].ends_with(MENTIONS[3]), "{buyers}");
    // Pages of the urgent order follow it.
    let first = inbox(&fleet, "&sort=urgent&limit=2").await;
    let before = first["next_before"].as_str().unwrap();
    let second = inbox(&fleet, &format!("&sort=urgent&limit=4&before={before}")).await;
    let mut paged = texts(&first);
    paged.extend(texts(&second));
    assert_eq!(paged, texts(&urgent));
    for (query, field) in
        [("&sentiment=angry", "sentiment"), ("&intent=x", "intent"), ("&sort=oldest", "sort")]
    {
        let (status, error) = fleet.call(Method::GET, &format!("/inbox?limit=10{query}"), None).await;
        assert_eq!(status, 422, "{query}: {error}");
        assert_eq!(error["error"]["details"]["field"], field, "{error}");
    }

    // Someone who wants to book a viewing becomes a lead (source social).
    let buyer = buyers["items"][0].clone();
    assert_eq!(buyer["suggest_lead"], true, "{buyer}");
    assert_eq!(label(MENTIONS[1])["intent"], "praise");
    let path = format!("/inbox/{}/lead", buyer["id"].as_str().unwrap());
    let (status, error) = fleet.call(Method::POST, &path, Some(json!({ "email": "not an address" }))).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["details"]["field"], "email");
    let (status, linked) =
        fleet.call(Method::POST, &path, Some(json!({ "email": "dana@example.com" }))).await;
    assert_eq!(status, 201, "{linked}");
    assert_eq!(linked["suggest_lead"], false);
    let lead_id = linked["lead_id"].as_str().unwrap().to_owned();
    let (_, lead) = fleet.call(Method::GET, &format!("/leads/{lead_id}"), None).await;
    assert_eq!(lead["source"], "social", "{lead}");
    assert_eq!(lead["email"], "dana@example.com");
    assert!(lead["name"].as_str().unwrap().contains("Dana"), "the author's name: {lead}");
    let (status, again) =
        fleet.call(Method::POST, &path, Some(json!({ "email": "dana2@example.com" }))).await;
    assert_eq!(status, 409, "{again}");
    let item_path = format!("/inbox/{}", buyer["id"].as_str().unwrap());
    let (status, unlinked) = fleet.call(Method::PATCH, &item_path, Some(json!({ "lead_id": null }))).await;
    assert_eq!(status, 200, "{unlinked}");
    assert!(unlinked["lead_id"].is_null() && unlinked["suggest_lead"] == true, "{unlinked}");
    let stranger = uuid::Uuid::now_v7();
    let (status, error) = fleet.call(Method::PATCH, &item_path, Some(json!({ "lead_id": stranger }))).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["details"]["field"], "lead_id");
    let (status, relinked) = fleet.call(Method::PATCH, &item_path, Some(json!({ "lead_id": lead_id }))).await;
    assert_eq!(status, 200, "{relinked}");
    assert_eq!(relinked["lead_id"], lead_id.as_str());
    let (_, audit) = fleet.call(Method::GET, "/audit-events?limit=50", None).await;
    let actions: Vec<&str> =
        audit["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"inbox_item.lead") && actions.contains(&"lead.create"), "{actions:?}");

    // Nothing is classified twice: later rounds queue no more jobs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(classify_calls(&fleet), calls);
    let (_, jobs) = fleet.call(Method::GET, "/jobs?kind=classify", None).await;
    let jobs = jobs["items"].as_array().unwrap();
    assert!(!jobs.is_empty() && jobs.len() <= 2, "{jobs:?}");
    for job in jobs {
        assert_eq!(job["status"], "succeeded", "{job}");
        let spec = job["spec"].to_string();
        assert!(!spec.contains("heating"), "a classify job carries no text: {spec}");
    }
}

/// Identifiers in the canary mention, and the placeholders the agent puts
/// instead.
const PHI: &[(&str, &str)] = &[
    ("123-45-6789", "[SSN]"),
    ("jane.roe@clinic-example.org", "[EMAIL]"),
    ("(555) 201-3344", "[PHONE]"),
    ("00482913", "[MRN]"),
];

async fn canary(database: Option<TempDatabase>) {
    let social = FakeSocial::start().await;
    let transcript_dir = tempfile::tempdir().unwrap();
    let transcript = transcript_dir.path().join("agent-transcript.jsonl");
    let mut extra = vec![("MARKETER_AGENT_TRANSCRIPT", transcript.to_str().unwrap())];
    if let Some(db) = &database {
        extra.push(("MARKETER_DATABASE_URL", db.url.as_str()));
    }
    let fleet = fleet(&social, &extra).await;
    // A HIPAA organisation: its agents redact by default, its accounts'
    // items are screened by them first.
    let (status, tenant) = fleet.call(Method::PATCH, "", Some(json!({ "compliance_mode": "hipaa" }))).await;
    assert_eq!(status, 200, "{tenant}");
    connect_mastodon(&fleet.api, &social).await;
    eventually(Duration::from_secs(10), "the inbox's first read", || async {
        social.requests().iter().any(|r| r == "GET /api/v1/notifications").then_some(())
    })
    .await;
    social.mention(
        "pat",
        "Terrible! Nobody answers about my prescription. Call me at (555) 201-3344 or jane.roe@clinic-example.org, \
         patient 123-45-6789, MRN: 00482913",
        None,
    );
    // Sealed while no agent has screened it.
    let sealed = eventually(Duration::from_secs(20), "the sealed item", || async {
        inbox(&fleet, "").await["items"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(sealed["sealed"], true, "{sealed}");
    assert_eq!(sealed["text"], "", "{sealed}");
    assert_eq!(sealed["classification_status"], "waiting");

    let home = tempfile::tempdir().unwrap();
    let (_host, agent_id, process) = agent(&fleet, home.path()).await;
    let item = eventually(Duration::from_secs(30), "the screened item", || async {
        let item = inbox(&fleet, "").await["items"][0].clone();
        (item["classification_status"] == "classified").then_some(item)
    })
    .await;
    assert_eq!(item["sealed"], false);
    assert_eq!(item["redacted"], true, "{item}");
    let text = item["text"].as_str().unwrap();
    for (value, placeholder) in PHI {
        assert!(!text.contains(value), "{value} in {text}");
        assert!(text.contains(placeholder), "{placeholder} in {text}");
    }
    assert!(text.contains("Nobody answers about my prescription"), "the rest is kept: {text}");
    let labels = &item["classification"];
    assert_eq!(labels["personal_data"], true, "{labels}");
    assert_eq!(labels["intent"], "complaint");
    assert_eq!(labels["urgency"], "high");
    // The agent did see the whole text.
    assert!(fleet.ollama.chat_requests().iter().any(|r| r.to_string().contains("00482913")));

    drop(process);
    let recorded = std::fs::read_to_string(&transcript).unwrap();
    assert!(
        recorded.contains(&agent_id) && recorded.contains("[PHONE]"),
        "the transcript recorded the result"
    );
    let mut places: Vec<(String, Vec<u8>)> = vec![
        ("the transcript".into(), recorded.into_bytes()),
        ("the server's logs".into(), fleet.server().stderr.text().into_bytes()),
        ("the server's output".into(), fleet.server().stdout.join("\n").into_bytes()),
    ];
    for file in marketer_tests::files_under(fleet.data.path()) {
        places.push((file.display().to_string(), std::fs::read(&file).unwrap()));
    }
    if let Some(db) = &database {
        places.push(("the PostgreSQL database".into(), db.dump().await.into_bytes()));
    }
    let mut leaks = Vec::new();
    for (place, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        for (value, _) in PHI {
            if text.contains(value) {
                leaks.push(format!("{value} in {place}"));
            }
        }
    }
    assert!(leaks.is_empty(), "PHI from a mention reached the control plane:\n{}", leaks.join("\n"));
    drop(fleet);
    if let Some(db) = database {
        db.drop_database().await;
    }
}

#[tokio::test]
async fn a_hipaa_mentions_phi_is_kept_only_as_its_agent_redacted_it_on_sqlite() {
    canary(None).await;
}

#[tokio::test]
async fn a_hipaa_mentions_phi_is_kept_only_as_its_agent_redacted_it_on_postgres() {
    let Some(database) = TempDatabase::create().await else { return };
    canary(Some(database)).await;
}

/// Waits until every item the filter lists has a reply in `status`.
async fn replies(fleet: &Fleet, count: usize, status: &str) -> Vec<Value> {
    eventually(Duration::from_secs(40), &format!("{count} items with replies {status}"), || async {
        let items = inbox(fleet, "").await["items"].as_array().unwrap().clone();
        (items.iter().filter(|i| i["reply"]["status"] == status).count() == count).then_some(items)
    })
    .await
}

fn item<'a>(items: &'a [Value], text: &str) -> &'a Value {
    items.iter().find(|i| i["text"].as_str().unwrap().ends_with(text)).unwrap_or_else(|| panic!("{text}"))
}

#[tokio::test]
async fn replies_are_drafted_from_the_projects_documents_sent_once_and_only_some_go_out_alone() {
    let social = FakeSocial::start().await;
    let fleet = fleet(&social, &[]).await;
    let mut embedder = FakeModel::new("nomic-embed-text:latest");
    embedder.embedding_length = 256;
    fleet.ollama.set_models(vec![FakeModel::new(MODEL), embedder]);
    let account = connect_mastodon(&fleet.api, &social).await;
    let body = json!({ "name": "Lofts", "llm_policy": "edge_only", "default_model": MODEL,
                       "brand_voice": "Warm and plain; we say home, never unit." });
    let (status, project) = fleet.call(Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();
    let (status, patched) = fleet
        .call(
            Method::PATCH,
            &format!("/accounts/{}", account["id"].as_str().unwrap()),
            Some(json!({ "project_ids": [project] })),
        )
        .await;
    assert_eq!(status, 200, "{patched}");

    // The auto-reply settings: admins only, named intents only.
    let (status, error) = fleet
        .call(Method::PATCH, "/inbox-settings", Some(json!({ "auto_reply_intents": ["complaint"] })))
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["details"]["field"], "auto_reply_intents");
    let (status, settings) = fleet
        .call(Method::PATCH, "/inbox-settings", Some(json!({ "auto_reply_intents": ["praise", "question"] })))
        .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["draft_replies"], true);

    // The agent holds the project's documents, with a fact to cite.
    let home = tempfile::tempdir().unwrap();
    let host = fleet.host(home.path());
    let agent_id = fleet.enroll(&host, &[]).await;
    let docs = tempfile::tempdir().unwrap();
    std::fs::write(
        docs.path().join("open-house.md"),
        "# Open house\n\nThe open house at Elm Street runs every Saturday from 10 to 2. Parking is free.",
    )
    .unwrap();
    let out = host.run_command(&["ingest", docs.path().to_str().unwrap(), "--project", &project]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _process = host.spawn_run(&[]);
    fleet.wait_state(&agent_id, "online", Duration::from_secs(30)).await;
    eventually(Duration::from_secs(20), "the inbox's first read", || async {
        social.requests().iter().any(|r| r == "GET /api/v1/notifications").then_some(())
    })
    .await;

    const PRAISE: &str = "I love the loft, thank you";
    const QUESTION: &str = "When is the open house at Elm Street?";
    const UPSET: &str = "Disappointed nobody called back, when is the open house?";
    const ANGRY: &str = "This is terrible, the heating is broken and nobody answers!";
    const PERSONAL: &str = "Great service, thank you! My doctor says the stairs are fine for my diagnosis";
    let praise_id = social.mention("dana", PRAISE, None);
    let question_id = social.mention("sam", QUESTION, None);
    for text in [UPSET, ANGRY, PERSONAL] {
        social.mention("lee", text, None);
    }
    // Praise and the plain question go out by themselves; the negative
    // question, the complaint and the item with health data wait.
    replies(&fleet, 2, "answered").await;
    // "answered" means a post answers it; wait until both are out.
    eventually(Duration::from_secs(30), "both automatic replies published", || async {
        let items = inbox(&fleet, "").await["items"].as_array().unwrap().clone();
        (items.iter().filter(|i| i["reply"]["post_status"] == "published").count() == 2).then_some(())
    })
    .await;
    let items = {
        eventually(Duration::from_secs(30), "three drafts left to a person", || async {
            let items = inbox(&fleet, "").await["items"].as_array().unwrap().clone();
            (items.iter().filter(|i| i["reply"]["status"] == "drafted").count() == 3).then_some(items)
        })
        .await
    };
    let posts = social.posts(Net::Mastodon);
    assert_eq!(posts.len(), 2, "{posts:?}");
    let answered = |id: &str| posts.iter().filter(|p| p.in_reply_to.as_deref() == Some(id)).count();
    assert_eq!((answered(&praise_id), answered(&question_id)), (1, 1));
    let grounded = posts.iter().find(|p| p.in_reply_to.as_deref() == Some(question_id.as_str())).unwrap();
    assert!(grounded.text.starts_with("@sam@elsewhere.example "), "{}", grounded.text);
    assert!(grounded.text.contains("every Saturday from 10 to 2"), "a document's fact: {}", grounded.text);
    let question = item(&items, QUESTION);
    assert_eq!(question["reply"]["sources"], json!(["open-house.md"]), "{question}");
    assert_eq!(question["reply"]["auto"], true);
    assert_eq!(question["status"], "done");
    for (text, why) in [(UPSET, "negative"), (ANGRY, "negative"), (PERSONAL, "personal data")] {
        let waiting = item(&items, text);
        assert_eq!(waiting["reply"]["status"], "drafted", "{waiting}");
        assert!(waiting["reply"]["needs_person"].as_str().unwrap().contains(why), "{waiting}");
        assert!(waiting["reply"]["post_id"].is_null());
    }
    // The reply job ran where the documents are, and carried no text.
    let (_, jobs) = fleet.call(Method::GET, "/jobs?kind=reply&limit=50", None).await;
    let jobs = jobs["items"].as_array().unwrap();
    assert_eq!(jobs.len(), 5, "one draft per item: {jobs:?}");
    for job in jobs {
        assert_eq!(job["status"], "succeeded", "{job}");
        assert!(!job["spec"].to_string().contains("heating"), "a reply job carries no text");
    }

    // A person sends the complaint's reply, edited; once.
    let angry = item(&items, ANGRY);
    let path = format!("/inbox/{}/reply", angry["id"].as_str().unwrap());
    let (status, error) = fleet.call(Method::POST, &path, Some(json!({ "text": "x".repeat(600) }))).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["details"]["field"], "text");
    let text = "So sorry about the heating. Please send us a direct message and we will fix it today.";
    let (status, sent) = fleet.call(Method::POST, &path, Some(json!({ "text": text }))).await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["reply"]["status"], "answered");
    assert_eq!(sent["reply"]["auto"], false);
    let (status, again) = fleet.call(Method::POST, &path, Some(json!({}))).await;
    assert_eq!(status, 409, "{again}");
    let published = eventually(Duration::from_secs(20), "the reply published", || async {
        let item =
            fleet.call(Method::GET, &format!("/inbox/{}", angry["id"].as_str().unwrap()), None).await.1;
        (item["reply"]["post_status"] == "published").then_some(item)
    })
    .await;
    assert!(published["reply"]["post_url"].is_string(), "{published}");
    let posts = social.posts(Net::Mastodon);
    let to_angry: Vec<_> = posts.iter().filter(|p| p.text.ends_with(text)).collect();
    assert_eq!(to_angry.len(), 1, "sent once: {posts:?}");
    assert!(to_angry[0].text.starts_with("@lee@elsewhere.example "));

    // Another draft on request; not while one is being written.
    let upset = item(&items, UPSET);
    let path = format!("/inbox/{}/reply-draft", upset["id"].as_str().unwrap());
    let (status, redraft) = fleet.call(Method::POST, &path, None).await;
    assert_eq!(status, 202, "{redraft}");
    assert!(redraft["reply"]["draft"].is_null(), "{redraft}");
    let redrafted = eventually(Duration::from_secs(30), "the new draft", || async {
        let item =
            fleet.call(Method::GET, &format!("/inbox/{}", upset["id"].as_str().unwrap()), None).await.1;
        (item["reply"]["status"] == "drafted").then_some(item)
    })
    .await;
    assert!(redrafted["reply"]["post_id"].is_null(), "a requested draft is never sent alone");
    let answered = fleet
        .call(Method::POST, &format!("/inbox/{}/reply-draft", angry["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(answered.0, 409, "{}", answered.1);
    let (_, audit) = fleet.call(Method::GET, "/audit-events?limit=100", None).await;
    let actions: Vec<&str> =
        audit["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["inbox_item.reply", "inbox_item.reply_draft", "inbox_settings.update", "post.create"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

async fn alerts(fleet: &Fleet) -> Vec<Value> {
    let (status, alerts) = fleet.call(Method::GET, "/crisis-alerts", None).await;
    assert_eq!(status, 200, "{alerts}");
    alerts.as_array().unwrap().clone()
}

#[tokio::test]
async fn a_spike_of_negative_mentions_raises_one_alert_that_closes_itself_and_a_normal_hour_none() {
    let social = FakeSocial::start().await;
    let fleet = fleet(
        &social,
        &[("MARKETER_WEBHOOK_ALLOW_PRIVATE", "true"), ("MARKETER_WEBHOOK_ALLOW_HTTP", "true")],
    )
    .await;
    let receiver = Receiver::start().await;
    let (status, hook) = fleet
        .call(
            Method::POST,
            "/webhooks",
            Some(json!({ "url": receiver.url, "events": ["crisis_alert.raised", "crisis_alert.closed"] })),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    receiver.set_secret(hook["secret"].as_str().unwrap());
    let account = connect_mastodon(&fleet.api, &social).await;
    let account_id = account["id"].as_str().unwrap().to_owned();
    // Hours of the week in UTC, so the seeded weeks line up whatever the
    // date's daylight saving.
    let (status, patched) = fleet
        .call(Method::PATCH, &format!("/accounts/{account_id}"), Some(json!({ "posting_time_zone": "UTC" })))
        .await;
    assert_eq!(status, 200, "{patched}");
    let (status, error) =
        fleet.call(Method::PATCH, "/inbox-settings", Some(json!({ "crisis_z": 0.5 }))).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["details"]["field"], "crisis_z");
    let home = tempfile::tempdir().unwrap();
    let (_host, _agent_id, _process) = agent(&fleet, home.path()).await;
    eventually(Duration::from_secs(10), "the inbox's first read", || async {
        social.requests().iter().any(|r| r == "GET /api/v1/notifications").then_some(())
    })
    .await;

    // A normal hour: two complaints at this hour in each of the last
    // eight weeks, three now.
    let now = time::OffsetDateTime::now_utc();
    let mut n = 0;
    let mut complain = |at: time::OffsetDateTime| {
        n += 1;
        social.mention_at("kim", &format!("This is awful, I want a refund ({n})"), None, at)
    };
    for week in 1..=8 {
        for minutes in [20, 40] {
            complain(now - time::Duration::weeks(week) - time::Duration::minutes(minutes));
        }
    }
    for minutes in [5, 10, 15] {
        complain(now - time::Duration::minutes(minutes));
    }
    eventually(Duration::from_secs(40), "19 classified items", || async {
        let items = inbox(&fleet, "").await["items"].as_array().unwrap().clone();
        (items.len() == 19 && items.iter().all(|i| i["classification_status"] == "classified")).then_some(())
    })
    .await;
    // Several detection rounds later, no alert.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(alerts(&fleet).await.is_empty(), "a normal hour raises nothing");

    // A spike: six more, written just under an hour ago, so that they
    // leave the hour's window about ninety seconds from now (and the alert
    // then closes by itself).
    let spike_at =
        time::OffsetDateTime::now_utc() - time::Duration::minutes(60) + time::Duration::seconds(90);
    let mut spike = Vec::new();
    for seconds in 0..6 {
        spike.push(complain(spike_at + time::Duration::seconds(seconds)));
    }
    let raised = eventually(Duration::from_secs(40), "one alert", || async {
        let alerts = alerts(&fleet).await;
        (!alerts.is_empty()).then_some(alerts)
    })
    .await;
    let alert = &raised[0];
    assert_eq!(alert["account_id"], account_id.as_str());
    assert!(alert["closed_at"].is_null());
    assert_eq!(alert["baseline_mean"], 2.0, "{alert}");
    let negatives = alert["negatives"].as_i64().unwrap();
    assert!((5..=9).contains(&negatives), "{alert}");
    assert!(alert["z"].as_f64().unwrap() >= 3.0, "{alert}");
    let items = alert["item_ids"].as_array().unwrap();
    assert_eq!(items.len() as i64, negatives, "the items that caused it: {alert}");
    let (_, page) = fleet.call(Method::GET, "/inbox?sentiment=negative&limit=200", None).await;
    for id in items {
        let item =
            page["items"].as_array().unwrap().iter().find(|i| &i["id"] == id).expect("an item of the inbox");
        assert_eq!(item["classification"]["sentiment"], "negative");
    }
    // One per episode: more rounds, more complaints, still one alert, one
    // notification.
    complain(spike_at + time::Duration::seconds(6));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = alerts(&fleet).await;
    assert_eq!(later.len(), 1, "{later:?}");
    let (_, notices) = fleet.api.call(Method::GET, "/api/v1/me/notifications?limit=50", None).await;
    let crisis: Vec<&Value> =
        notices["items"].as_array().unwrap().iter().filter(|n| n["kind"] == "crisis_alert").collect();
    assert_eq!(crisis.len(), 1, "{notices}");
    assert!(crisis[0]["title"].as_str().unwrap().contains("negative items in an hour"), "{}", crisis[0]);
    let _ = spike;
    // And one signed webhook, with the alert's numbers and items, no text.
    let hooks = eventually(Duration::from_secs(10), "the alert's webhook", || async {
        let got = receiver.of("crisis_alert.raised");
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let hook = &hooks[0];
    assert_eq!(hook.refused, None, "signed");
    assert_eq!(hook.body["data"]["alert_id"], alert["id"]);
    assert_eq!(hook.body["data"]["account_id"], account_id.as_str());
    assert_eq!(hook.body["data"]["item_ids"], alert["item_ids"]);
    assert!(hook.body["data"]["z"].as_f64().unwrap() >= 3.0, "{}", hook.raw);
    assert!(hook.body["text"].as_str().unwrap().starts_with("Crisis alert"), "{}", hook.raw);
    assert!(!hook.raw.contains("refund"), "no item's text leaves: {}", hook.raw);

    // The spike leaves the hour: back to normal (three, as every week),
    // the alert closes by itself, once, and says so to the webhook.
    let closed = eventually(Duration::from_secs(150), "the alert to close", || async {
        let alerts = alerts(&fleet).await;
        alerts[0]["closed_at"].is_string().then_some(alerts)
    })
    .await;
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0]["id"], alert["id"]);
    let hooks = eventually(Duration::from_secs(10), "the closing webhook", || async {
        let got = receiver.of("crisis_alert.closed");
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0].body["data"]["alert_id"], alert["id"]);
    assert_eq!(hooks[0].body["data"]["negatives_now"], 3, "{}", hooks[0].raw);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(alerts(&fleet).await.len(), 1, "a normal hour raises nothing new");
    assert_eq!(receiver.of("crisis_alert.raised").len(), 1);
}
