//! What webhooks cost: a lead import raises one `lead.created` event per
//! row in its transaction; how fast one replica delivers them to a local
//! receiver (`marketer_tests::webhooks`, on a runtime of its own, verifying
//! every signature and answering at once), on SQLite and (when
//! `MARKETER_TEST_DATABASE_URL` names a server where it may create
//! databases) PostgreSQL.
//!
//!     cargo build --release --bins
//!     cargo bench -p marketer-tests --bench webhooks -- [EVENTS]
//!
//! Reported: deliveries per second (from the imports' answers to the last
//! delivery's arrival) and each event's delay from its `created_at` to its
//! arrival (p50, p99, max). docs/benchmarks.md records the results.

use std::time::{Duration, Instant};

use marketer_tests::webhooks::Receiver;
use marketer_tests::{Api, ServerOptions, ServerProcess, TempDatabase};
use reqwest::Method;
use serde_json::json;

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "a long benchmark password";
/// Rows per import (an import takes fewer than 1,000).
const ROWS: usize = 500;

fn main() {
    let events = std::env::args().skip(1).find_map(|a| a.parse::<usize>().ok()).unwrap_or(2000).max(1);
    let receiver_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    // Receivers of their own per run, serving on their own runtime.
    let receivers =
        [receiver_runtime.block_on(Receiver::start()), receiver_runtime.block_on(Receiver::start())];
    runtime.block_on(async {
        run(&receivers[0], "SQLite", None, events).await;
        if let Some(db) = TempDatabase::create().await {
            run(&receivers[1], "PostgreSQL", Some(&db.url), events).await;
            db.drop_database().await;
        }
    });
}

async fn run(receiver: &Receiver, backend: &str, database: Option<&str>, events: usize) {
    let data = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(data.path())
        .env("MARKETER_BOOTSTRAP_EMAIL", EMAIL)
        .env("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)
        .env("MARKETER_LOG_LEVEL", "warn")
        .env("MARKETER_WEBHOOK_ALLOW_PRIVATE", "true")
        .env("MARKETER_WEBHOOK_ALLOW_HTTP", "true");
    if let Some(url) = database {
        options = options.env("MARKETER_DATABASE_URL", url);
    }
    let server = ServerProcess::spawn(&options);
    let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;
    let (status, hook) = api
        .call(
            Method::POST,
            &api.tenant_path("/webhooks"),
            Some(json!({ "url": receiver.url, "events": ["lead.created"] })),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    receiver.set_secret(hook["secret"].as_str().unwrap());

    let started = Instant::now();
    let mut made = 0;
    while made < events {
        let rows = ROWS.min(events - made);
        let mut csv = String::from("email,name\n");
        for n in made..made + rows {
            csv.push_str(&format!("lead-{n}@example.com,Lead {n}\n"));
        }
        let response = api
            .http
            .post(format!("{}{}", api.base_url, api.tenant_path("/leads/import")))
            .bearer_auth(&api.token)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
        made += rows;
    }
    let imported = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while receiver.of("lead.created").len() < events {
        assert!(Instant::now() < deadline, "only {} of {events} arrived", receiver.of("lead.created").len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = started.elapsed();
    let received = receiver.of("lead.created");
    assert!(received.iter().all(|r| r.refused.is_none()), "every signature verifies");
    let mut ids: Vec<&str> = received.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events, "each event once");
    let mut delays: Vec<f64> = received
        .iter()
        .map(|r| {
            let created = time::OffsetDateTime::parse(
                r.body["created_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            (r.arrived - created).as_seconds_f64() * 1000.0
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    let at = |q: f64| delays[((delays.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{backend}: {events} events ({} imports in {:.2} s); delivered in {:.2} s, {:.0}/s; delay p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        events.div_ceil(ROWS),
        imported.as_secs_f64(),
        done.as_secs_f64(),
        events as f64 / done.as_secs_f64(),
        at(0.5),
        at(0.99),
        delays[delays.len() - 1],
    );
    drop(server);
}
