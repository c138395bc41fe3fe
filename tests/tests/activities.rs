//! Marketing activities end to end, with the real binaries over real
//! sockets: the content pipeline on an agent against the fake Ollama
//! (scripted where a test needs the model to misbehave), and on the fake
//! OpenAI-compatible provider when the policy sends it to the cloud.

use std::time::Duration;

use marketer_tests::fleet::{Agent, Fleet, job_timings};
use marketer_tests::ollama::Pace;
use marketer_tests::openai::FakeOpenAi;
use marketer_tests::sse::{SseEvent, SseStream};
use marketer_tests::{Api, eventually};
use reqwest::Method;
use serde_json::{Value, json};

const MODEL: &str = "llama3.2:3b";

async fn fleet() -> Fleet {
    Fleet::start(job_timings).await
}

/// A project of the fleet's tenant; `policy` is `edge_only` or `cloud_allowed`.
async fn project(fleet: &Fleet, policy: &str) -> String {
    let body = json!({
        "name": format!("Project {}", uuid::Uuid::now_v7()),
        "llm_policy": policy,
        "default_model": MODEL,
        "brand_voice": "Warm, plain English. Never use jargon.",
    });
    let (status, created) = fleet.call(Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

fn activities(project: &str) -> String {
    format!("/projects/{project}/activities")
}

async fn create(fleet: &Fleet, project: &str, body: Value) -> Value {
    let (status, created) = fleet.call(Method::POST, &activities(project), Some(body)).await;
    assert_eq!(status, 202, "{created}");
    created
}

async fn get(fleet: &Fleet, project: &str, id: &str) -> Value {
    let (status, activity) = fleet.call(Method::GET, &format!("{}/{id}", activities(project)), None).await;
    assert_eq!(status, 200, "{activity}");
    activity
}

async fn wait_status(fleet: &Fleet, project: &str, id: &str, status: &str) -> Value {
    eventually(Duration::from_secs(60), &format!("activity {id} to be {status}"), || async {
        let activity = get(fleet, project, id).await;
        if activity["status"] == "failed" && status != "failed" {
            panic!("the activity failed: {activity}");
        }
        (activity["status"] == status).then_some(activity)
    })
    .await
}

async fn events(fleet: &Fleet, project: &str, id: &str) -> Vec<SseEvent> {
    let path = fleet.api.tenant_path(&format!("{}/{id}/events", activities(project)));
    SseStream::open(&fleet.api, &path, None).await.collect(Duration::from_secs(60)).await
}

fn blog(topic: &str, platforms: &[&str]) -> Value {
    json!({
        "kind": "blog_article", "topic": topic, "keywords": ["solar panels", "roof"],
        "audience": "homeowners", "tone": "friendly", "target_word_count": 600, "platforms": platforms,
    })
}

fn review(score: f32) -> String {
    json!({
        "grammar": score, "readability": score, "seo": score, "brand_voice": score,
        "structure": score, "factual_risk": score, "engagement": score,
        "suggestions": ["Open with a question the reader asks"],
    })
    .to_string()
}

/// A second person in the fleet's tenant with `role`, signed in.
async fn member(fleet: &Fleet, role: &str) -> Api {
    let email = format!("{role}-{}@example.com", uuid::Uuid::now_v7().simple());
    fleet.add_member(&fleet.api.tenant, &email, "Team Mate", role, "a long enough password").await
}

async fn raw(api: &Api, path: &str) -> (u16, String, String) {
    let response =
        api.http.get(format!("{}{path}", api.base_url)).bearer_auth(&api.token).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn a_blog_article_goes_through_the_pipeline_and_is_edited_approved_and_exported() {
    let fleet = fleet().await;
    let agent = Agent::start(&fleet, &[]).await;
    // The SEO step answers broken JSON once (repaired on the second try);
    // the editor scores the draft low once (one refinement), then high.
    fleet.ollama.script("SEO strategist", vec!["{\"primary_keyword\": \"sola".into()]);
    fleet.ollama.script("demanding professional editor", vec![review(5.0), review(9.0)]);
    let project = project(&fleet, "edge_only").await;

    let created = create(&fleet, &project, blog("What a solar roof costs", &["x", "linkedin"])).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["route"], "edge");
    assert!(matches!(created["status"].as_str(), Some("queued" | "generating")), "{created}");

    // Progress: every step in order, the draft streaming in, one outcome.
    let all = events(&fleet, &project, &id).await;
    let ids: Vec<String> = all.iter().map(|e| e.id.clone().unwrap()).collect();
    assert!(ids.iter().all(|i| i.starts_with("1:")), "{ids:?}");
    let steps: Vec<String> = all
        .iter()
        .filter(|e| e.event == "step")
        .map(|e| e.json()["step"].as_str().unwrap().to_owned())
        .collect();
    let mut distinct = steps.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        // The fake's draft is far below the 600 words asked: extended once.
        ["seo", "research", "writing", "extend", "editing", "refining", "editing", "social", "finalise"],
        "{steps:?}"
    );
    let percents: Vec<u64> =
        all.iter().filter(|e| e.event == "step").map(|e| e.json()["percent"].as_u64().unwrap()).collect();
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert!(all.iter().any(|e| e.event == "partial"), "the draft streams");
    assert_eq!(all.iter().filter(|e| e.event == "done").count(), 1);
    assert_eq!(all.last().unwrap().json()["status"], "succeeded");

    let done = wait_status(&fleet, &project, &id, "review").await;
    assert_eq!(done["agent_id"], agent.id.as_str());
    // The run and each step's duration are in the metrics, by step (editing
    // ran twice).
    let metrics_url = format!("{}/metrics", fleet.server().base_url);
    let sample = |text: &str, name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    eventually(Duration::from_secs(10), "the run's steps in the metrics", || async {
        let text = reqwest::get(&metrics_url).await.ok()?.text().await.ok()?;
        let step = |name: &str| {
            sample(&text, &format!("marketer_activity_step_duration_seconds_count{{step=\"{name}\"}}"))
        };
        let runs = sample(&text, "marketer_activity_runs_finished_total{outcome=\"succeeded\"}");
        (runs == Some(1.0) && step("finalise") == Some(1.0)).then_some(())?;
        let counts: Vec<Option<f64>> =
            ["seo", "research", "writing", "extend", "editing", "refining", "social"]
                .iter()
                .map(|name| step(name))
                .collect();
        assert_eq!(
            counts,
            [Some(1.0), Some(1.0), Some(1.0), Some(1.0), Some(2.0), Some(1.0), Some(1.0)],
            "{text}"
        );
        Some(())
    })
    .await;
    // Which agent ran it is in the audit log too.
    let (_, assigned) = fleet.call(Method::GET, "/audit-events?action=activity.assign", None).await;
    assert_eq!(assigned["items"][0]["details"]["agent_id"], agent.id.as_str(), "{assigned}");
    assert_eq!(assigned["items"][0]["resource_id"], id.as_str());
    let result = &done["result"];
    let seo = &result["seo"];
    let title = seo["title"].as_str().unwrap().chars().count();
    let meta = seo["meta_description"].as_str().unwrap().chars().count();
    // Asked for 50 to 60 and 150 to 160; the schema accepts shorter ones
    // rather than failing the run over them, and never longer.
    assert!((20..=60).contains(&title) && (50..=160).contains(&meta), "{seo}");
    assert_eq!(seo["target_word_count"], 600);
    assert_eq!(result["quality"]["refinement_rounds"], 1);
    assert_eq!(result["quality"]["history"], json!([5.0, 9.0]));
    assert_eq!(result["research"]["grounding"], "inputs_only");
    assert!(!result["research"]["sources"].as_array().unwrap().is_empty());
    let steps = result["steps"].as_array().unwrap();
    assert_eq!(steps[0]["step"], "seo");
    assert_eq!(steps[0]["note"], "repaired");
    assert!(steps.iter().all(|s| s["duration_ms"].is_u64() && s["template_version"].is_u64()));
    let provenance = &result["provenance"];
    assert_eq!((provenance["backend"].as_str(), provenance["model"].as_str()), (Some("ollama"), Some(MODEL)));
    assert!(provenance["templates"].as_array().unwrap().iter().any(|t| t == "writer@1"));
    let social = result["social"].as_array().unwrap();
    assert_eq!(social.len(), 2);
    for variant in social {
        assert!(
            variant["char_count"].as_u64().unwrap() <= variant["char_limit"].as_u64().unwrap(),
            "{variant}"
        );
    }
    assert_eq!(done["content_version"], 0);
    assert_eq!(done["content"], result["content"]);
    // The brand voice reached the writer.
    let writer =
        fleet.ollama.chat_requests().into_iter().find(|r| r.to_string().contains("expert content writer"));
    assert!(writer.unwrap().to_string().contains("Warm, plain English"));

    // A person edits it: a new version; HTML export is sanitised.
    let base = format!("{}/{id}", activities(&project));
    let edited =
        "# Solar roofs\n\nWhat they cost. <script>alert('x')</script>\n\n<img src=x onerror=alert(1)>";
    let (status, version) =
        fleet.call(Method::PUT, &format!("{base}/content"), Some(json!({ "content": edited }))).await;
    assert_eq!((status, version["number"].as_i64()), (201, Some(1)), "{version}");
    assert_eq!(version["author"], "Administrator");
    let (_, versions) = fleet.call(Method::GET, &format!("{base}/versions"), None).await;
    let numbers: Vec<i64> =
        versions.as_array().unwrap().iter().map(|v| v["number"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [0, 1]);
    assert_eq!(get(&fleet, &project, &id).await["content"], edited);
    let (status, content_type, html) =
        raw(&fleet.api, &fleet.api.tenant_path(&format!("{base}/export?format=html"))).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"));
    assert!(html.contains("<h1>Solar roofs</h1>") && html.starts_with("<!DOCTYPE html>"), "{html}");
    // Raw HTML in the Markdown is shown as text, never interpreted.
    assert!(!html.to_lowercase().contains("<script") && !html.to_lowercase().contains("<img"), "{html}");
    let (_, _, markdown) =
        raw(&fleet.api, &fleet.api.tenant_path(&format!("{base}/export?format=markdown"))).await;
    assert_eq!(markdown, edited);
    let (status, _, _) = raw(&fleet.api, &fleet.api.tenant_path(&format!("{base}/export?format=pdf"))).await;
    assert_eq!(status, 422);

    // Approval: members and above.
    let viewer = member(&fleet, "viewer").await;
    let (status, refused) =
        viewer.call(Method::POST, &viewer.tenant_path(&format!("{base}/approve")), None).await;
    assert_eq!(status, 403, "{refused}");
    let member = member(&fleet, "member").await;
    let (status, approved) =
        member.call(Method::POST, &member.tenant_path(&format!("{base}/approve")), None).await;
    assert_eq!((status, approved["status"].as_str()), (200, Some("approved")), "{approved}");

    // Regenerating starts run 2; run 1 stays in the history.
    let (status, regenerated) = fleet.call(Method::POST, &format!("{base}/regenerate"), None).await;
    assert_eq!(status, 202, "{regenerated}");
    assert_eq!(regenerated["runs"], 2);
    let again = wait_status(&fleet, &project, &id, "review").await;
    assert!(again["approved_at"].is_null(), "a new run needs a new approval");
    assert_eq!(again["content_version"], 0, "edits belong to the run they edited");
    let (_, runs) = fleet.call(Method::GET, &format!("{base}/runs"), None).await;
    assert_eq!(runs.as_array().unwrap().len(), 2);
    let stream = events(&fleet, &project, &id).await;
    assert!(stream.iter().all(|e| e.id.as_deref().unwrap().starts_with("2:")));

    // Usage counts both runs' tokens.
    let (status, usage) = fleet.call(Method::GET, "/usage", None).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["totals"]["activities"], 2);
    assert!(usage["totals"]["completion_tokens"].as_i64().unwrap() > 0);
    assert_eq!(usage["activities_today"], 2);
    assert_eq!(usage["daily_activity_quota"], 25);
}

#[tokio::test]
async fn social_posts_over_the_limit_are_regenerated_then_trimmed() {
    let fleet = fleet().await;
    let _agent = Agent::start(&fleet, &[]).await;
    // Long, and not looping: every sentence different.
    let long = |word: &str| {
        let sentences: Vec<String> =
            (0..30).map(|i| format!("{word}{i} deal{i} price{i} offer{i}.")).collect();
        format!("{} Call us today. #offer", sentences.join(" "))
    };
    // The X post comes back too long twice: regenerated, then trimmed.
    fleet.ollama.script("social media copywriter", vec![long("Spring"), long("Summer")]);
    let project = project(&fleet, "edge_only").await;
    let body = json!({
        "kind": "social_post_set", "topic": "Our spring sale", "platforms": ["x", "threads"],
        "tone": "casual", "variants_per_platform": 1,
    });
    let id = create(&fleet, &project, body).await["id"].as_str().unwrap().to_owned();
    let done = wait_status(&fleet, &project, &id, "review").await;
    let social = done["result"]["social"].as_array().unwrap().clone();
    let x = &social[0];
    assert_eq!((x["platform"].as_str(), x["enforcement"].as_str()), (Some("x"), Some("trimmed")), "{x}");
    assert!(x["char_count"].as_u64().unwrap() <= 280);
    assert!(x["text"].as_str().unwrap().chars().count() <= 280);
    let threads = &social[1];
    assert_eq!(
        (threads["platform"].as_str(), threads["enforcement"].as_str()),
        (Some("threads"), Some("as_written"))
    );
    assert!(threads["hashtags"].as_array().unwrap().len() <= 1);
    assert!(done["content"].as_str().unwrap().contains("## X"));
}

fn listing(description: &str) -> Value {
    json!({
        "kind": "listing_kit", "platforms": ["instagram"],
        "listing": {
            "address": "12 Elm Street, Springfield", "price": 450000, "beds": 3, "baths": 2.5,
            "square_feet": 1850, "key_features": ["renovated kitchen", "fenced yard"],
            "description": description, "agent_name": "Dana Reyes", "agent_contact": "dana@example.com",
        },
    })
}

#[tokio::test]
async fn a_listing_kit_with_discriminatory_wording_is_flagged_and_a_clean_one_passes() {
    let fleet = fleet().await;
    let _agent = Agent::start(&fleet, &[]).await;
    // The model's own review finds nothing in either; the built-in rules
    // still catch the flagged wording.
    let nothing = json!({ "findings": [] }).to_string();
    fleet.ollama.script("compliance reviewer", vec![nothing.clone(), nothing.clone(), nothing]);
    let project = project(&fleet, "edge_only").await;
    let flagged =
        create(&fleet, &project, listing("Perfect for young couples! Quiet street, no children.")).await;
    let clean = create(&fleet, &project, listing("Sunny kitchen, two-car garage, walk to the park.")).await;
    let (flagged, clean) =
        (flagged["id"].as_str().unwrap().to_owned(), clean["id"].as_str().unwrap().to_owned());

    let kit = wait_status(&fleet, &project, &flagged, "review").await;
    let compliance = &kit["result"]["compliance"];
    assert_eq!(compliance["passed"], false);
    let phrases: Vec<&str> =
        compliance["findings"].as_array().unwrap().iter().map(|f| f["phrase"].as_str().unwrap()).collect();
    assert!(
        phrases.contains(&"Perfect for young couples") && phrases.contains(&"no children"),
        "{phrases:?}"
    );
    for finding in compliance["findings"].as_array().unwrap() {
        assert!(
            !finding["reason"].as_str().unwrap().is_empty()
                && !finding["suggestion"].as_str().unwrap().is_empty()
        );
    }
    let flyer = &kit["result"]["flyer"];
    assert!(flyer["disclaimers"].as_str().unwrap().contains("Equal Housing Opportunity"), "{flyer}");
    assert!(!flyer["features"].as_array().unwrap().is_empty());
    assert_eq!(kit["result"]["social"][0]["platform"], "instagram");

    // Findings keep it in review until someone acknowledges them.
    let approve = format!("{}/{flagged}/approve", activities(&project));
    let (status, refused) = fleet.call(Method::POST, &approve, None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("compliance_findings")), "{refused}");
    let (status, approved) =
        fleet.call(Method::POST, &approve, Some(json!({ "acknowledge_findings": true }))).await;
    assert_eq!((status, approved["status"].as_str()), (200, Some("approved")), "{approved}");

    // Every saved version is reviewed again: rewritten to neutral wording,
    // it passes and approves without acknowledgement; edited to say
    // something discriminatory, it is flagged and needs one.
    let content_path = format!("{}/{flagged}/content", activities(&project));
    let edit = |content: &str| fleet.call(Method::PUT, &content_path, Some(json!({ "content": content })));
    let (status, neutral) = edit("Sunny three-bedroom home with a fenced yard.").await;
    assert_eq!((status, neutral["findings"].as_array().map(Vec::len)), (201, Some(0)), "{neutral}");
    let kit = get(&fleet, &project, &flagged).await;
    assert_eq!((kit["status"].as_str(), kit["compliance"]["passed"].as_bool()), (Some("review"), Some(true)));
    assert_eq!(kit["compliance"]["version"], 1);
    let (status, approved) = fleet.call(Method::POST, &approve, None).await;
    assert_eq!((status, approved["status"].as_str()), (200, Some("approved")), "{approved}");
    let (status, biased) = edit("Sunny home. Ideal for Christian families. No wheelchairs.").await;
    assert_eq!(status, 201, "{biased}");
    let found: Vec<&str> =
        biased["findings"].as_array().unwrap().iter().map(|f| f["phrase"].as_str().unwrap()).collect();
    assert!(found.contains(&"Christian families") && found.contains(&"No wheelchairs"), "{found:?}");
    let kit = get(&fleet, &project, &flagged).await;
    assert_eq!(
        (kit["status"].as_str(), kit["compliance"]["passed"].as_bool()),
        (Some("review"), Some(false))
    );
    let (status, refused) = fleet.call(Method::POST, &approve, None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("compliance_findings")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("version 2"), "{refused}");
    let (_, versions) =
        fleet.call(Method::GET, &format!("{}/{flagged}/versions", activities(&project)), None).await;
    let counts: Vec<usize> =
        versions.as_array().unwrap().iter().map(|v| v["findings"].as_array().unwrap().len()).collect();
    assert_eq!(counts[1..], [0, 2], "each version carries its own findings: {versions}");

    let kit = wait_status(&fleet, &project, &clean, "review").await;
    assert_eq!(kit["result"]["compliance"]["passed"], true, "{}", kit["result"]["compliance"]);
    assert_eq!(kit["input_findings"], json!([]));
    let (status, _) =
        fleet.call(Method::POST, &format!("{}/{clean}/approve", activities(&project)), None).await;
    assert_eq!(status, 200);

    // The inputs are screened too: key features, not only the description.
    let mut body = listing("Sunny kitchen.");
    body["listing"]["key_features"] = json!(["fenced yard", "Perfect for young couples, no children"]);
    let inputs = create(&fleet, &project, body).await;
    let located: Vec<&str> = inputs["input_findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["location"].as_str().unwrap())
        .collect();
    assert_eq!(located, ["input.key_features[2]", "input.key_features[2]"], "{inputs}");
    let kit = wait_status(&fleet, &project, inputs["id"].as_str().unwrap(), "review").await;
    assert_eq!(kit["compliance"]["passed"], false, "{}", kit["compliance"]);
}

#[tokio::test]
async fn a_regeneration_that_is_cancelled_loses_nothing() {
    let fleet = fleet().await;
    let _agent = Agent::start(&fleet, &[]).await;
    let project = project(&fleet, "edge_only").await;
    let id = create(&fleet, &project, blog("Heat pumps", &[])).await["id"].as_str().unwrap().to_owned();
    let base = format!("{}/{id}", activities(&project));
    wait_status(&fleet, &project, &id, "review").await;
    for text in ["# Heat pumps\n\nFirst edit.", "# Heat pumps\n\nSecond edit."] {
        let (status, v) =
            fleet.call(Method::PUT, &format!("{base}/content"), Some(json!({ "content": text }))).await;
        assert_eq!(status, 201, "{v}");
    }
    let (status, approved) = fleet.call(Method::POST, &format!("{base}/approve"), None).await;
    assert_eq!((status, approved["status"].as_str()), (200, Some("approved")), "{approved}");
    let before = get(&fleet, &project, &id).await;

    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 20.0, tokens: 400 });
    let (status, rerun) = fleet.call(Method::POST, &format!("{base}/regenerate"), None).await;
    assert!(status == 200 || status == 202, "{rerun}");
    wait_status(&fleet, &project, &id, "generating").await;
    let (status, cancelled) = fleet.call(Method::POST, &format!("{base}/cancel"), None).await;
    assert_eq!(status, 200, "{cancelled}");

    let after = get(&fleet, &project, &id).await;
    assert_eq!(after["status"], "approved", "{after}");
    assert_eq!(after["run"]["status"], "cancelled", "the run says how it ended: {after}");
    for field in ["content", "content_version", "content_run_id", "approved_at", "approved_by", "result"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    let (status, versions) = fleet.call(Method::GET, &format!("{base}/versions"), None).await;
    assert_eq!((status, versions.as_array().map(Vec::len)), (200, Some(3)), "{versions}");
    let (status, _, markdown) = raw(&fleet.api, &fleet.api.tenant_path(&format!("{base}/export"))).await;
    assert_eq!(status, 200);
    assert!(markdown.contains("Second edit."), "{markdown}");
    let (status, again) = fleet.call(Method::POST, &format!("{base}/approve"), None).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("approved")), "{again}");

    // A run that succeeds replaces the content; the earlier run's versions
    // stay readable.
    fleet.ollama.set_pace(Pace::default());
    let (status, _) = fleet.call(Method::POST, &format!("{base}/regenerate"), None).await;
    assert!(status == 200 || status == 202);
    let replaced = wait_status(&fleet, &project, &id, "review").await;
    assert_ne!(replaced["content_run_id"], before["content_run_id"]);
    assert_eq!(replaced["content_version"], 0);
    let earlier = before["content_run_id"].as_str().unwrap();
    let (status, old) = fleet.call(Method::GET, &format!("{base}/versions?run={earlier}"), None).await;
    assert_eq!((status, old.as_array().map(Vec::len)), (200, Some(3)), "{old}");
    let (status, refused) =
        fleet.call(Method::GET, &format!("{base}/versions?run={}", uuid::Uuid::now_v7()), None).await;
    assert_eq!(status, 422, "{refused}");
}

#[tokio::test]
async fn a_hipaa_tenant_never_reaches_the_cloud() {
    let fleet = fleet().await;
    let provider = FakeOpenAi::start("sk-test-hipaa-0001", &["gpt-4o-mini"]).await;
    let project = project(&fleet, "edge_only").await;
    let (status, _) = fleet.call(Method::PATCH, "", Some(json!({ "compliance_mode": "hipaa" }))).await;
    assert_eq!(status, 200);
    let body =
        json!({ "base_url": provider.base_url(), "model": "gpt-4o-mini", "api_key": "sk-test-hipaa-0001" });
    let (status, refused) = fleet.call(Method::PUT, "/cloud-provider", Some(body)).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("hipaa_tenant")), "{refused}");

    let (status, refused) =
        fleet.call(Method::POST, &activities(&project), Some(blog("Clinic news", &[]))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("no_agent_available")), "{refused}");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("no agent of this tenant is online"),
        "{refused}"
    );
    // Waiting for an agent is allowed; the cloud is not.
    let mut body = blog("Clinic news", &[]);
    body["wait_for_agent"] = json!(true);
    let queued = create(&fleet, &project, body).await;
    assert_eq!((queued["route"].as_str(), queued["status"].as_str()), (Some("edge"), Some("queued")));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = get(&fleet, &project, queued["id"].as_str().unwrap()).await;
    assert_eq!(still["status"], "queued");
    assert_eq!(still["waiting_reason"], "no agent of this tenant is online");
    assert!(provider.requests().is_empty(), "nothing went to the cloud");
}

#[tokio::test]
async fn a_cloud_allowed_project_without_an_agent_runs_on_the_tenants_provider() {
    let fleet = fleet().await;
    let key = "sk-test-cloud-key-4242";
    let provider = FakeOpenAi::start(key, &["gpt-4o-mini"]).await;
    let project = project(&fleet, "cloud_allowed").await;

    // Without a provider: 409 naming both problems.
    let (status, refused) = fleet.call(Method::POST, &activities(&project), Some(blog("Solar", &[]))).await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("no cloud provider"), "{refused}");

    let body = json!({ "base_url": provider.base_url(), "model": "gpt-4o-mini", "api_key": key });
    let (status, set) = fleet.call(Method::PUT, "/cloud-provider", Some(body)).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["api_key_hint"], "…4242");
    assert!(!set.to_string().contains(key));
    let (_, shown) = fleet.call(Method::GET, "/cloud-provider", None).await;
    assert!(!shown.to_string().contains(key) && shown["model"] == "gpt-4o-mini");

    let created = create(&fleet, &project, blog("What a solar roof costs", &["linkedin"])).await;
    assert_eq!((created["route"].as_str(), created["model"].as_str()), (Some("cloud"), Some("gpt-4o-mini")));
    let id = created["id"].as_str().unwrap().to_owned();
    let done = wait_status(&fleet, &project, &id, "review").await;
    let provenance = &done["result"]["provenance"];
    assert_eq!(provenance["backend"], "openai_compatible");
    assert_eq!(provenance["model"], "gpt-4o-mini");
    assert!(!provider.requests().is_empty());
    assert!(provider.authorizations().iter().all(|a| a == &format!("Bearer {key}")));
    // Structured steps asked for their schema in OpenAI's format.
    assert!(provider.requests().iter().any(|r| r.pointer("/response_format/json_schema/schema").is_some()));
    let all = events(&fleet, &project, &id).await;
    assert!(all.iter().any(|e| e.event == "partial"), "the draft streams from the cloud too");

    // What the run cost: nothing to estimate until the model has a price,
    // then its own calls' tokens at that price.
    assert!(done["cost"]["usd"].is_null(), "{}", done["cost"]);
    assert!(done["cost"]["explanation"].as_str().unwrap().contains("No price for gpt-4o-mini"));
    let (prompt, completion) =
        done["result"]["steps"].as_array().unwrap().iter().fold((0, 0), |(p, c), s| {
            (p + s["prompt_tokens"].as_u64().unwrap(), c + s["completion_tokens"].as_u64().unwrap())
        });
    assert!(prompt > 0 && completion > 0);
    assert_eq!(
        (done["cost"]["prompt_tokens"].as_u64(), done["cost"]["completion_tokens"].as_u64()),
        (Some(prompt), Some(completion))
    );
    for (body, field) in [
        (
            json!({ "model": "gpt-4o-mini", "input_usd_per_million": -1, "output_usd_per_million": 0.6 }),
            "input_usd_per_million",
        ),
        (
            json!({ "model": "gpt-4o-mini", "input_usd_per_million": 0.15, "output_usd_per_million": 1e9 }),
            "output_usd_per_million",
        ),
        (json!({ "model": " ", "input_usd_per_million": 0.15, "output_usd_per_million": 0.6 }), "model"),
        (json!({ "model": "gpt-4o-mini", "input_usd_per_million": 0.15 }), "output_usd_per_million"),
    ] {
        let (status, refused) = fleet.call(Method::PUT, "/model-prices", Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {refused}");
        assert!(refused.to_string().contains(field), "{body}: {refused}");
    }
    let price =
        json!({ "model": "gpt-4o-mini", "input_usd_per_million": 0.15, "output_usd_per_million": 0.6 });
    let viewer = member(&fleet, "member").await;
    let (status, _) =
        viewer.call(Method::PUT, &viewer.tenant_path("/model-prices"), Some(price.clone())).await;
    assert_eq!(status, 403, "only people who manage settings set prices");
    let (status, set) = fleet.call(Method::PUT, "/model-prices", Some(price)).await;
    assert_eq!(status, 200, "{set}");
    let (_, prices) = fleet.call(Method::GET, "/model-prices", None).await;
    assert_eq!(prices.as_array().unwrap().len(), 1, "{prices}");
    assert_eq!(prices[0]["input_usd_per_million"], 0.15);
    let costed = get(&fleet, &project, &id).await;
    #[allow(clippy::cast_precision_loss)]
    let expected = (prompt as f64 * 0.15 + completion as f64 * 0.6) / 1e6;
    let usd = costed["cost"]["usd"].as_f64().unwrap();
    assert!((usd - expected).abs() < 1e-12, "{usd} vs {expected}: {}", costed["cost"]);
    let (status, _) = fleet.call(Method::DELETE, "/model-prices?model=gpt-4o-mini", None).await;
    assert_eq!(status, 204);
    let (status, gone) = fleet.call(Method::DELETE, "/model-prices?model=gpt-4o-mini", None).await;
    assert_eq!(status, 404, "{gone}");
    let (_, log) = fleet.call(Method::GET, "/audit-events?action=model_price.set", None).await;
    assert_eq!(log["items"][0]["details"]["model"], "gpt-4o-mini", "{log}");

    // The route is in the audit log; the key is nowhere: not in the API, the
    // log, or the database files.
    let (_, log) = fleet.call(Method::GET, "/audit-events?action=activity.create", None).await;
    assert_eq!(log["items"][0]["details"]["route"]["route"], "cloud", "{log}");
    let (_, all_log) = fleet.call(Method::GET, "/audit-events?limit=200", None).await;
    assert!(!all_log.to_string().contains(key));
    for entry in walk(fleet.data.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "the key is readable in {}",
            entry.display()
        );
    }
    assert!(!fleet.server().stderr.text().contains(key), "the key is not logged");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

#[tokio::test]
async fn cancelling_mid_pipeline_stops_the_agent_within_a_second() {
    let fleet = fleet().await;
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 20.0, tokens: 200 });
    let _agent = Agent::start(&fleet, &[]).await;
    let project = project(&fleet, "edge_only").await;
    let id = create(&fleet, &project, blog("Slow topic", &[])).await["id"].as_str().unwrap().to_owned();
    wait_status(&fleet, &project, &id, "generating").await;
    eventually(Duration::from_secs(20), "the model to be generating", || async {
        (fleet.ollama.streams().0 >= 1).then_some(())
    })
    .await;
    let (status, cancelled) =
        fleet.call(Method::POST, &format!("{}/{id}/cancel", activities(&project)), None).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    eventually(Duration::from_secs(1), "the agent to abort the Ollama request", || async {
        (fleet.ollama.streams().2 >= 1).then_some(())
    })
    .await;
    let requests = fleet.ollama.chat_requests().len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fleet.ollama.chat_requests().len(), requests, "no further steps ran");
    assert_eq!(get(&fleet, &project, &id).await["status"], "cancelled");
}

#[tokio::test]
async fn an_agent_killed_mid_pipeline_hands_the_run_to_another_and_one_result_is_kept() {
    let fleet = fleet().await;
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 40.0, tokens: 100 });
    let mut first = Agent::start(&fleet, &[]).await;
    let project = project(&fleet, "edge_only").await;
    let id = create(&fleet, &project, blog("Survive a crash", &[])).await["id"].as_str().unwrap().to_owned();
    let running = wait_status(&fleet, &project, &id, "generating").await;
    assert_eq!(running["agent_id"], first.id.as_str());
    // The SEO step is done and checkpointed before the agent dies.
    let base = format!("{}/{id}", activities(&project));
    eventually(Duration::from_secs(30), "the SEO step's checkpoint", || async {
        let (_, runs) = fleet.call(Method::GET, &format!("{base}/runs"), None).await;
        runs[0]["result"]["seo"].is_object().then_some(())
    })
    .await;
    let second = Agent::start(&fleet, &[]).await;
    first.kill();
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 0.0, tokens: 40 });
    let done = wait_status(&fleet, &project, &id, "review").await;
    assert_eq!(done["agent_id"], second.id.as_str());
    assert_eq!((done["runs"].as_i64(), done["run"]["attempts"].as_i64()), (Some(1), Some(2)));
    // The second attempt resumed from the first one's checkpoint.
    assert_eq!(done["result"]["steps"][0]["step"], "seo", "{done}");
    assert_eq!(done["result"]["steps"][0]["note"], "reused", "{done}");
    let all = events(&fleet, &project, &id).await;
    assert_eq!(all.iter().filter(|e| e.event == "done").count(), 1, "one outcome");
    assert!(all.iter().any(|e| e.event == "status" && e.json()["status"] == "retrying"));
    // Followers heard that the agent was lost before the retry.
    let lost = all.iter().position(|e| e.event == "status" && e.json()["status"] == "waiting_for_agent");
    let retry = all.iter().position(|e| e.event == "status" && e.json()["status"] == "retrying");
    assert!(lost.is_some() && lost < retry, "{:?}", all.iter().map(|e| e.event.clone()).collect::<Vec<_>>());
}

#[tokio::test]
async fn requests_are_validated_and_the_daily_quota_is_enforced() {
    let fleet = fleet().await;
    let project = project(&fleet, "edge_only").await;
    let path = activities(&project);
    let (status, invalid) = fleet.call(Method::POST, &path, Some(json!({ "kind": "blog_article" }))).await;
    assert_eq!((status, invalid["error"]["details"]["field"].as_str()), (422, Some("topic")), "{invalid}");
    let bad_platform = json!({ "kind": "social_post_set", "topic": "Sale", "platforms": ["myspace"] });
    let (status, invalid) = fleet.call(Method::POST, &path, Some(bad_platform)).await;
    assert_eq!((status, invalid["error"]["details"]["field"].as_str()), (422, Some("platforms[0]")));
    let (status, _) = fleet
        .call(Method::POST, &activities(&uuid::Uuid::now_v7().to_string()), Some(blog("Solar", &[])))
        .await;
    assert_eq!(status, 404, "an unknown project");

    // The free plan's 25 runs a day, then 429 with when it resets.
    let mut body = blog("Queued until an agent comes", &[]);
    body["wait_for_agent"] = json!(true);
    for _ in 0..25 {
        create(&fleet, &project, body.clone()).await;
    }
    let response = fleet
        .api
        .http
        .post(format!("{}{}", fleet.api.base_url, fleet.api.tenant_path(&path)))
        .bearer_auth(&fleet.api.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_some());
    let refused: Value = response.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "quota_exceeded");
    assert!(
        refused["error"]["details"]["resets_at"].as_str().unwrap().ends_with("T00:00:00.000000Z"),
        "{refused}"
    );
    let (_, page) = fleet.call(Method::GET, &format!("{path}?status=queued&limit=10"), None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 10);
    assert!(page["next_cursor"].is_string());
}

#[tokio::test]
async fn a_run_that_fails_keeps_its_completed_steps_and_regenerating_resumes_from_the_failed_one() {
    let fleet = fleet().await;
    let _agent = Agent::start(&fleet, &[]).await;
    let project = project(&fleet, "edge_only").await;
    // The flyer step answers unusable JSON, then again after the repair.
    fleet.ollama.script("print flyer text", vec!["not json at all".into(), "{\"headline\": 5}".into()]);
    let id = create(&fleet, &project, listing("Renovated kitchen, fenced yard.")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("{}/{id}", activities(&project));
    let failed = wait_status(&fleet, &project, &id, "failed").await;
    let error = &failed["run"]["error"];
    assert_eq!(error["code"], "invalid_output", "{failed}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("flyer step") && message.contains("regenerate"), "{message}");
    // What completed before the failure is kept, with what it cost.
    assert_eq!(failed["kept"]["steps"], json!(["analysis", "writing", "compliance"]), "{failed}");
    assert!(failed["run"]["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{failed}");
    assert!(failed["run"]["usage"]["eval_duration_ns"].as_u64().unwrap() > 0, "{failed}");
    let first_run = failed["run"]["job_id"].as_str().unwrap().to_owned();

    // Regenerating resumes at the flyer: the rest is reused, not asked again.
    let asked_before = fleet.ollama.chat_requests().len();
    let (status, regenerated) = fleet.call(Method::POST, &format!("{base}/regenerate"), None).await;
    assert_eq!(status, 202, "{regenerated}");
    let done = wait_status(&fleet, &project, &id, "review").await;
    assert!(done.get("kept").is_none(), "{done}");
    let steps: Vec<(String, String)> = done["result"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_owned(), s["note"].as_str().unwrap_or("").to_owned()))
        .collect();
    let reused: Vec<&str> =
        steps.iter().filter(|(_, note)| note == "reused").map(|(s, _)| s.as_str()).collect();
    assert_eq!(reused, ["analysis", "writing", "compliance"], "{steps:?}");
    let asked: Vec<String> = fleet.ollama.chat_requests()[asked_before..]
        .iter()
        .map(|r| r["messages"][0]["content"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(asked.iter().all(|system| !system.contains("marketing analyst")), "{asked:?}");
    assert_eq!(done["result"]["content"], failed_content(&fleet, &base, &first_run).await);
    let (_, audit) = fleet.call(Method::GET, "/audit-events?action=activity.regenerate", None).await;
    assert_eq!(audit["items"][0]["details"]["resumed_from"], first_run.as_str(), "{audit}");
}

/// The content the failed run kept.
async fn failed_content(fleet: &Fleet, base: &str, run: &str) -> Value {
    let (status, runs) = fleet.call(Method::GET, &format!("{base}/runs"), None).await;
    assert_eq!(status, 200, "{runs}");
    let kept = runs.as_array().unwrap().iter().find(|r| r["job_id"] == run).unwrap();
    assert_eq!(kept["status"], "failed");
    kept["result"]["content"].clone()
}
