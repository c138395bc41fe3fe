//! The product against a real model: SmolLM2-135M-Instruct, through
//! llama.cpp behind Ollama's API (`marketer_tests::real_llm`), with the
//! schema as a grammar the way Ollama's `format` applies it, on the real
//! control plane and agent binaries.
//!
//! A 135M model loops, stops early, runs long and breaks JSON: exactly what
//! the pipeline must survive. These tests check the product's behaviour,
//! never the model's prose: every run ends in `review` with content that
//! passes the quality gates, or `failed` with a specific reason and the
//! completed steps kept; nothing runs past its output budget; no review
//! item carries the prompt's instructions; usage adds up real timings.
//!
//! Each test prints its step records (tokens, time, tokens/s); the numbers
//! in docs/benchmarks.md come from
//! `cargo test -p marketer-tests --test real_model -- --nocapture --test-threads 1`.

use std::time::Duration;

use marketer_tests::fleet::{Fleet, agent_id, job_timings};
use marketer_tests::real_llm::{MODEL, RealModel};
use marketer_tests::{AgentHost, AgentProcess, eventually};
use reqwest::Method;
use serde_json::{Value, json};

/// What a generation may take with this model on a 2-core machine, with
/// room for the other tests sharing the server.
const RUN_LIMIT: Duration = Duration::from_secs(900);

/// An agent on the real model, and the fleet it serves.
struct Stand {
    fleet: Fleet,
    _agent: AgentProcess,
    _home: tempfile::TempDir,
    project: String,
}

async fn stand(agent_args: &[&str]) -> Stand {
    let model = RealModel::shared();
    let fleet = Fleet::start(job_timings).await;
    let home = tempfile::tempdir().unwrap();
    let host = AgentHost::new(home.path(), &model.url);
    fleet.enroll(&host, &[]).await;
    let id = agent_id(&host);
    let agent = host.spawn_run(agent_args);
    fleet.wait_state(&id, "online", Duration::from_secs(60)).await;
    let body = json!({
        "name": "Real model",
        "llm_policy": "edge_only",
        "default_model": MODEL,
        "brand_voice": "Warm, plain English.",
    });
    let (status, created) = fleet.call(Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let project = created["id"].as_str().unwrap().to_owned();
    Stand { fleet, _agent: agent, _home: home, project }
}

/// Runs an activity to its end: `review` or `failed`.
async fn run_activity(stand: &Stand, body: Value) -> Value {
    let path = format!("/projects/{}/activities", stand.project);
    let (status, created) = stand.fleet.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let activity = eventually(RUN_LIMIT, &format!("activity {id} to finish"), || async {
        let (status, activity) = stand.fleet.call(Method::GET, &format!("{path}/{id}"), None).await;
        assert_eq!(status, 200, "{activity}");
        matches!(activity["status"].as_str(), Some("review" | "failed")).then_some(activity)
    })
    .await;
    let (_, runs) = stand.fleet.call(Method::GET, &format!("{path}/{id}/runs"), None).await;
    let mut activity = activity;
    activity["_runs"] = runs;
    activity
}

/// Sequences of this many words of a template's own instructions are never
/// content.
const ECHO_WORDS: usize = 8;

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The first run of `ECHO_WORDS` words of any prompt template's own
/// instructions found in `text`.
fn echoed_instruction(text: &str) -> Option<String> {
    let text = format!(" {} ", words(text).join(" "));
    for template in marketer_pipeline::prompts::ALL {
        for part in template.instruction_text().split(" | ") {
            let instruction = words(part);
            for window in instruction.windows(ECHO_WORDS) {
                let needle = format!(" {} ", window.join(" "));
                if text.contains(&needle) {
                    return Some(format!("{}: {}", template.name, needle.trim()));
                }
            }
        }
    }
    None
}

/// Every text a reviewer sees in a result.
fn review_items(result: &Value) -> Vec<String> {
    let mut items = vec![result["content"].as_str().unwrap_or_default().to_owned()];
    for variant in result["social"].as_array().into_iter().flatten() {
        items.push(variant["text"].as_str().unwrap().to_owned());
    }
    if let Some(flyer) = result.get("flyer").filter(|f| f.is_object()) {
        for field in ["headline", "property_summary", "call_to_action", "disclaimers"] {
            items.push(flyer[field].as_str().unwrap().to_owned());
        }
        for feature in flyer["features"].as_array().unwrap() {
            items.push(feature.as_str().unwrap().to_owned());
        }
    }
    items
}

/// Prints the run's calls, for docs/benchmarks.md.
fn report(kind: &str, result: &Value) {
    let mut total = (0u64, 0u64, 0u64, 0u64);
    eprintln!("\n{kind}: step | calls' tokens in/out | budget | done | ms | out tokens/s | note");
    for step in result["steps"].as_array().into_iter().flatten() {
        let out = step["completion_tokens"].as_u64().unwrap_or(0);
        let eval_ns = step["eval_duration_ns"].as_u64().unwrap_or(0);
        let ms = step["duration_ms"].as_u64().unwrap_or(0);
        let rate = if eval_ns > 0 { out as f64 / (eval_ns as f64 / 1e9) } else { 0.0 };
        eprintln!(
            "{kind}: {} | {}/{out} | {} | {} | {ms} | {rate:.0} | {}",
            step["step"].as_str().unwrap_or(""),
            step["prompt_tokens"],
            step["max_tokens"],
            step["done_reason"].as_str().unwrap_or(""),
            step["note"].as_str().unwrap_or(""),
        );
        total.0 += step["prompt_tokens"].as_u64().unwrap_or(0);
        total.1 += out;
        total.2 += ms;
        total.3 += eval_ns;
    }
    let rate = if total.3 > 0 { total.1 as f64 / (total.3 as f64 / 1e9) } else { 0.0 };
    eprintln!("{kind}: total | {}/{} | | | {} | {rate:.0} |", total.0, total.1, total.2);
}

/// What every finished run must satisfy, whichever way it ended.
fn check_run(kind: &str, activity: &Value) -> Value {
    let run = &activity["_runs"][0];
    let result = run["result"].clone();
    report(kind, &result);
    eprintln!("{kind}: {} {}", activity["status"], activity["run"]["error"]);
    for warning in result["warnings"].as_array().into_iter().flatten() {
        eprintln!("{kind}: warning {warning}");
    }
    // Bounded: no call past its budget (a step's record adds up at most
    // two calls: the answer and one repair or regeneration).
    for step in result["steps"].as_array().into_iter().flatten() {
        let budget = step["max_tokens"].as_u64().unwrap();
        assert!(budget > 0, "every call has a budget: {step}");
        assert!(step["completion_tokens"].as_u64().unwrap() <= 2 * budget, "over its budget: {step}");
        assert!(matches!(step["done_reason"].as_str(), Some("stop" | "length")), "{step}");
    }
    match activity["status"].as_str().unwrap() {
        "review" => {
            // Nothing handed to a reviewer is the prompt's own instructions.
            for item in review_items(&result) {
                assert!(!item.trim().is_empty(), "an empty review item in {result}");
                if let Some(echo) = echoed_instruction(&item) {
                    panic!("a review item repeats the prompt ({echo}): {item}");
                }
            }
            // Usage adds up the calls' real timings.
            let usage = &run["usage"];
            assert!(usage["eval_duration_ns"].as_u64().unwrap() > 0, "{usage}");
            assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{usage}");
            // Every warning names its step and says what happened.
            for warning in result["warnings"].as_array().into_iter().flatten() {
                assert!(!warning["message"].as_str().unwrap().is_empty(), "{warning}");
            }
        }
        "failed" => {
            let error = &activity["run"]["error"];
            let code = error["code"].as_str().unwrap();
            assert!(matches!(code, "invalid_output" | "truncated" | "unusable_output"), "{error}");
            let message = error["message"].as_str().unwrap();
            assert!(message.contains("step") && message.contains("regenerate"), "not actionable: {message}");
            // What completed before the failure is kept, with its usage.
            let completed: Vec<&Value> =
                result["steps"].as_array().into_iter().flatten().filter(|s| s["note"] != "failed").collect();
            if !completed.is_empty() {
                let kept = &activity["kept"];
                assert!(!kept["steps"].as_array().unwrap().is_empty(), "{activity}");
                assert!(run["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{run}");
            }
        }
        other => panic!("unexpected status {other}"),
    }
    result
}

#[tokio::test]
async fn a_chat_job_is_bounded_and_says_when_it_was_cut_off() {
    let stand = stand(&["--max-output-tokens", "48"]).await;
    let ask = |options: Value| {
        json!({
            "kind": "chat", "model": MODEL, "options": options,
            "messages": [{ "role": "user", "content": "Write a very long story about a lighthouse keeper, chapter by chapter." }],
        })
    };
    let mut ids = Vec::new();
    // No limit given: the agent's (48 tokens). A limit given: the job's.
    for options in [json!({}), json!({ "num_predict": 12 })] {
        let (status, job) = stand.fleet.call(Method::POST, "/jobs", Some(ask(options))).await;
        assert_eq!(status, 202, "{job}");
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    for (id, limit) in ids.iter().zip([48, 12]) {
        let job = eventually(RUN_LIMIT, "the chat job to finish", || async {
            let (_, job) = stand.fleet.call(Method::GET, &format!("/jobs/{id}"), None).await;
            (job["status"] == "succeeded").then_some(job)
        })
        .await;
        assert_eq!(job["output"]["done_reason"], "length", "{job}");
        let tokens = job["usage"]["completion_tokens"].as_u64().unwrap();
        assert!(tokens <= limit, "{tokens} tokens past the limit of {limit}: {job}");
        assert!(!job["output"]["content"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_blog_article_on_a_real_model_ends_in_review_or_says_why_it_failed() {
    let stand = stand(&[]).await;
    let activity = run_activity(
        &stand,
        json!({
            "kind": "blog_article", "topic": "How solar roofs lower energy bills", "keywords": ["solar roof"],
            "audience": "homeowners", "tone": "friendly", "target_word_count": 300, "platforms": ["x"],
        }),
    )
    .await;
    let result = check_run("blog_article", &activity);
    if activity["status"] == "review" {
        assert_eq!(result["seo"]["target_word_count"], 300, "the marketer's length, never the model's");
        assert!(result["quality"]["overall"].as_f64().is_some());
    }
}

#[tokio::test]
async fn a_social_post_set_on_a_real_model_holds_every_platform_rule() {
    let stand = stand(&[]).await;
    let activity = run_activity(
        &stand,
        json!({
            "kind": "social_post_set", "topic": "Our bakery's new sourdough, baked fresh every morning",
            "platforms": ["x", "linkedin", "instagram"], "tone": "friendly", "variants_per_platform": 1,
        }),
    )
    .await;
    let result = check_run("social_post_set", &activity);
    if activity["status"] == "review" {
        let warnings = result["warnings"].as_array().cloned().unwrap_or_default();
        for variant in result["social"].as_array().unwrap() {
            let (count, limit) =
                (variant["char_count"].as_u64().unwrap(), variant["char_limit"].as_u64().unwrap());
            assert!(count <= limit, "{variant}");
            assert_eq!(count, variant["text"].as_str().unwrap().chars().count() as u64);
            // The minimum of hashtags holds, or the result says why not.
            let platform = variant["platform"].as_str().unwrap();
            let minimum = match platform {
                "linkedin" => 3,
                "instagram" => 10,
                _ => 1,
            };
            let tags = variant["hashtags"].as_array().unwrap().len();
            assert!(
                tags >= minimum || warnings.iter().any(|w| w["code"] == "hashtags"),
                "{platform} has {tags} hashtags and no warning: {result}"
            );
        }
    }
}

#[tokio::test]
async fn a_listing_kit_on_a_real_model_ends_in_review_or_says_why_it_failed() {
    let stand = stand(&[]).await;
    let activity = run_activity(
        &stand,
        json!({
            "kind": "listing_kit", "platforms": ["instagram"], "tone": "friendly",
            "listing": {
                "address": "12 Elm Street, Springfield", "price": 450000, "beds": 3, "baths": 2.5,
                "square_feet": 1850, "key_features": ["renovated kitchen", "fenced yard"],
                "description": "Sunny three-bedroom home on a quiet street.",
                "agent_name": "Dana Reyes", "agent_contact": "dana@example.com",
            },
        }),
    )
    .await;
    let result = check_run("listing_kit", &activity);
    if activity["status"] == "review" {
        assert!(result["flyer"]["disclaimers"].as_str().unwrap().ends_with("Equal Housing Opportunity."));
        assert!(result["compliance"].is_object());
    }
}
