//! What the inbox costs, on SQLite with release binaries:
//!
//! 1. **Ingest and classification with one agent.** ITEMS mentions appear
//!    at once on the local Mastodon stand-in; the collector reads them
//!    (every 500 ms, 200 a round) and one agent classifies them against
//!    the fake Ollama (its classifier answers by keywords, streaming as
//!    fast as the loopback allows: the numbers are the product's overhead,
//!    not a model's speed). Reported: items stored per minute, items
//!    classified per minute, model calls, and the time from an item's
//!    appearance on the platform to its labels (p50, p95).
//! 2. **The inbox page over ROWS items.** ROWS items written straight into
//!    the database (server stopped), then p50 and p95 of the API's inbox
//!    page (50 items): open newest first, most urgent first, and negative
//!    only.
//!
//! Run with:
//!
//! ```sh
//! cargo build --release --bins
//! cargo bench -p marketer-tests --bench inbox -- [ITEMS] [ROWS]
//! ```
//!
//! docs/benchmarks.md records the results.

use std::time::{Duration, Instant};

use marketer_tests::fleet::Fleet;
use marketer_tests::social::{FakeSocial, connect_mastodon};
use reqwest::Method;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

const MODEL: &str = "llama3.2:3b";
const WORDS: [&str; 5] = [
    "Is the open house on Sunday?",
    "Terrible service, the heating is broken!",
    "I love this listing, thank you",
    "I would like to book a viewing",
    "Nice photos of the garden",
];

fn main() {
    let numbers: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let items = numbers.first().copied().unwrap_or(2_000).max(1);
    let rows = numbers.get(1).copied().unwrap_or(100_000).max(1);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let social_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let social = social_runtime.block_on(FakeSocial::start());
    runtime.block_on(run(&social, items, rows));
}

async fn run(social: &FakeSocial, items: usize, rows: usize) {
    let mut fleet = Fleet::start(|o| {
        social
            .configure(o)
            .env("MARKETER_LOG_LEVEL", "warn")
            .env("MARKETER_INBOX_POLL_MS", "500")
            .env("MARKETER_INBOX_MODEL", MODEL)
    })
    .await;
    let account = connect_mastodon(&fleet.api, social).await;
    let account_id: Uuid = account["id"].as_str().unwrap().parse().unwrap();
    let home = tempfile::tempdir().unwrap();
    let host = fleet.host(home.path());
    let agent = fleet.enroll(&host, &[]).await;
    let mut process = host.spawn_run(&[]);
    fleet.wait_state(&agent, "online", Duration::from_secs(30)).await;
    // The first read has happened: what comes now is new.
    wait(Duration::from_secs(20), || async {
        social.requests().iter().any(|r| r == "GET /api/v1/notifications")
    })
    .await;

    // 1. Ingest and classification.
    let began = Instant::now();
    for n in 0..items {
        social.mention("bench", &format!("{} (#{n})", WORDS[n % WORDS.len()]), None);
    }
    let mut stored_after = None;
    let page = loop {
        let page = all_items(&fleet).await;
        let listed = page.len();
        if stored_after.is_none() && listed >= items {
            stored_after = Some(began.elapsed());
        }
        if listed >= items && page.iter().all(|i| i["classification_status"] == "classified") {
            break page;
        }
        assert!(began.elapsed() < Duration::from_secs(1800), "{listed} of {items} items after 30 minutes");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let classified_after = began.elapsed();
    let mut latencies: Vec<f64> = page
        .iter()
        .map(|i| {
            let posted = parse(i["posted_at"].as_str().unwrap());
            let labelled = parse(i["classification"]["classified_at"].as_str().unwrap());
            (labelled - posted).as_seconds_f64()
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let calls = fleet
        .ollama
        .chat_requests()
        .iter()
        .filter(|r| r.to_string().contains("You sort what people write to a brand"))
        .count();
    let stored_after = stored_after.unwrap_or(classified_after);
    println!("inbox: {items} mentions, one agent, the fake Ollama at full speed");
    println!(
        "  stored: {:.0} items/min ({items} in {:.1} s)",
        items as f64 / stored_after.as_secs_f64() * 60.0,
        stored_after.as_secs_f64()
    );
    println!(
        "  classified: {:.0} items/min ({items} in {:.1} s), {calls} model calls ({:.1} items a call)",
        items as f64 / classified_after.as_secs_f64() * 60.0,
        classified_after.as_secs_f64(),
        items as f64 / calls.max(1) as f64
    );
    println!(
        "  on the platform to classified: p50 {:.1} s, p95 {:.1} s, max {:.1} s",
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.95),
        latencies.last().copied().unwrap_or(0.0)
    );

    // 2. The page over many rows.
    process.kill();
    fleet.kill_server();
    let tenant: Uuid = fleet.api.tenant.parse().unwrap();
    write_items(&fleet.data.path().join("marketer.db"), tenant, account_id, rows).await;
    fleet.restart_server();
    let _ = fleet.call(Method::GET, "/inbox?limit=50", None).await;
    println!("inbox page over {} items (50 a page, 50 requests each):", rows + items);
    for (what, query) in [
        ("open, newest first", "/inbox?status=open&limit=50"),
        ("open, most urgent first", "/inbox?status=open&sort=urgent&limit=50"),
        ("negative only", "/inbox?sentiment=negative&limit=50"),
    ] {
        let mut times = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            let (status, page) = fleet.call(Method::GET, query, None).await;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{page}");
            assert_eq!(page["items"].as_array().unwrap().len(), 50, "{what}");
        }
        times.sort_by(f64::total_cmp);
        println!("  {what}: p50 {:.1} ms, p95 {:.1} ms", quantile(&times, 0.5), quantile(&times, 0.95));
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn parse(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

async fn wait<F, Fut>(limit: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every item of the inbox, page by page.
async fn all_items(fleet: &Fleet) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let query = match &before {
            Some(b) => format!("/inbox?limit=200&before={b}"),
            None => "/inbox?limit=200".to_owned(),
        };
        let (status, page) = fleet.call(Method::GET, &query, None).await;
        assert_eq!(status, 200, "{page}");
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_before"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => return out,
        }
    }
}

/// `rows` classified items over the last 90 days, a fifth of them done.
async fn write_items(path: &std::path::Path, tenant: Uuid, account: Uuid, rows: usize) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let labels = [
        ("neutral", 0, "question", "normal", 2),
        ("negative", -80, "complaint", "high", 3),
        ("positive", 90, "praise", "low", 1),
        ("positive", 40, "purchase_interest", "normal", 2),
        ("neutral", 0, "other", "low", 1),
    ];
    let mut tx = pool.begin().await.unwrap();
    for n in 0..rows {
        let posted = now - time::Duration::seconds(i64::try_from(n).unwrap() * 77 % (90 * 86_400));
        let (sentiment, score, intent, urgency, rank) = labels[n % labels.len()];
        sqlx::query(
            "INSERT INTO inbox_items (id, tenant_id, account_id, platform_item_id, kind, author_handle, text, \
             thread, posted_at, collected_at, status, updated_at, sentiment, sentiment_score, intent, urgency, \
             urgency_rank, language, personal_data, classified_at) \
             VALUES ($1, $2, $3, $4, 'mention', '@someone@elsewhere.example', $5, $4, $6, $6, $7, $6, $8, $9, $10, \
             $11, $12, 'en', FALSE, $6)",
        )
        .bind(Uuid::now_v7())
        .bind(tenant)
        .bind(account)
        .bind(format!("{}", 2_000_000_000_000_000_000u64 + u64::try_from(n).unwrap()))
        .bind(format!("{} (history {n})", WORDS[n % WORDS.len()]))
        .bind(marketer_tests::sqlite_time(posted))
        .bind(if n % 5 == 0 { "done" } else { "open" })
        .bind(sentiment)
        .bind(score)
        .bind(intent)
        .bind(urgency)
        .bind(rank)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    pool.close().await;
}
