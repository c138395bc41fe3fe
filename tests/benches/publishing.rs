//! What publishing costs: 1,000 posts due at the same instant across 50 X
//! accounts, against the local X stand-in (`marketer_tests::social`, on a
//! runtime of its own), on SQLite and (when `MARKETER_TEST_DATABASE_URL`
//! names a server where it may create databases) PostgreSQL.
//!
//!     cargo build --release --bins
//!     cargo bench -p marketer-tests --bench publishing -- [POSTS] [ACCOUNTS]
//!
//! Reported: posts published per second (from the instant they were due
//! to the last one reaching X) and the delay between a post's
//! `scheduled_at` and X receiving it (p50, p99, max). docs/benchmarks.md
//! records the results.

use std::time::{Duration, Instant};

use marketer_tests::social::{FakeSocial, Net, connect_x, x_user};
use marketer_tests::{Api, ServerOptions, ServerProcess, TempDatabase};
use reqwest::Method;
use serde_json::json;

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "a long benchmark password";

fn main() {
    let numbers: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let posts = numbers.first().copied().unwrap_or(1000);
    let accounts = numbers.get(1).copied().unwrap_or(50).max(1);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let social_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let social = social_runtime.block_on(FakeSocial::start());
    runtime.block_on(async {
        run(&social, "SQLite", None, posts, accounts).await;
        if let Some(db) = TempDatabase::create().await {
            run(&social, "PostgreSQL", Some(&db.url), posts, accounts).await;
            db.drop_database().await;
        }
    });
}

async fn run(social: &FakeSocial, backend: &str, database: Option<&str>, posts: usize, accounts: usize) {
    let data = tempfile::tempdir().unwrap();
    let mut options = social
        .configure(ServerOptions::new(data.path()))
        .env("MARKETER_BOOTSTRAP_EMAIL", EMAIL)
        .env("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)
        .env("MARKETER_LOG_LEVEL", "warn")
        .env("MARKETER_SOCIAL_TIMEOUT_MS", "10000")
        .env("MARKETER_PUBLISH_LEASE_SECONDS", "60");
    if let Some(url) = database {
        options = options.env("MARKETER_DATABASE_URL", url);
    }
    let server = ServerProcess::spawn(&options);
    let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;
    let already = social.all_posts(Net::X).len();
    // Accounts of their own per run: X refuses the same text twice from one account.
    let base = 1000 * (u32::try_from(already).unwrap_or(0) + 1);
    let mut ids = Vec::new();
    for n in 0..accounts {
        social.sign_in_as(base + u32::try_from(n).unwrap());
        ids.push(connect_x(&api).await["id"].clone());
    }
    // Due in a while: time enough to schedule them all.
    let due =
        time::OffsetDateTime::now_utc() + time::Duration::seconds(20 + i64::try_from(posts / 50).unwrap());
    let due_text = due.format(&time::format_description::well_known::Rfc3339).unwrap();
    let started = Instant::now();
    let client = api.clone();
    let mut handles = Vec::new();
    for chunk in (0..posts).collect::<Vec<_>>().chunks(posts.div_ceil(8).max(1)) {
        let (client, ids, chunk, due_text) = (client.clone(), ids.clone(), chunk.to_vec(), due_text.clone());
        let backend = backend.to_owned();
        handles.push(tokio::spawn(async move {
            for n in chunk {
                let body = json!({ "account_id": ids[n % ids.len()], "text": format!("Benchmark post {n} on {backend}"),
                    "scheduled_at": due_text, "approve": true });
                let (status, post) =
                    client.call(Method::POST, &client.tenant_path("/posts"), Some(body)).await;
                assert_eq!(status, 201, "{post}");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let scheduling = started.elapsed();
    let due_at = std::time::SystemTime::UNIX_EPOCH
        + Duration::from_nanos(u64::try_from(due.unix_timestamp_nanos()).unwrap());
    assert!(std::time::SystemTime::now() < due_at, "scheduling took longer than the lead time; lower POSTS");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = social.all_posts(Net::X).len() - already;
        if done >= posts {
            break;
        }
        assert!(Instant::now() < deadline, "only {done} of {posts} posts published in ten minutes");
        if std::env::var_os("BENCH_TRACE").is_some() {
            eprintln!("{done} of {posts} published");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Delays: the stand-in's receive instants against the due instant.
    let now_system = std::time::SystemTime::now();
    let now_instant = Instant::now();
    let mut delays: Vec<f64> = social.all_posts(Net::X)[already..]
        .iter()
        .map(|p| {
            let received = now_system - now_instant.duration_since(p.received_at);
            received.duration_since(due_at).map(|d| d.as_secs_f64()).unwrap_or(-1.0)
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    let pick = |q: f64| delays[((delays.len() as f64 - 1.0) * q).round() as usize];
    let last = delays.last().copied().unwrap_or_default();
    println!(
        "{backend}: {posts} posts due at once on {accounts} accounts: published in {last:.2} s after they were due, \
         {:.0} posts/s; delay from scheduled_at to X receiving the post p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms \
         (scheduling them took {:.1} s)",
        posts as f64 / last.max(0.001),
        pick(0.5) * 1000.0,
        pick(0.99) * 1000.0,
        last * 1000.0,
        scheduling.as_secs_f64(),
    );
    assert!(delays.iter().all(|d| *d >= 0.0), "a post was published before it was due");
    // Each published once.
    let mut texts: Vec<String> =
        social.all_posts(Net::X)[already..].iter().map(|p| format!("{}:{}", p.user, p.text)).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), posts, "every post once");
    let _ = x_user(0);
    server.kill();
}
