//! What analytics costs on a busy organisation: 20,000 published posts
//! over the last 90 days on 50 X accounts, each post with three readings,
//! each account with a followers reading a day, on SQLite and (when
//! `MARKETER_TEST_DATABASE_URL` names a server where it may create
//! databases) PostgreSQL.
//!
//!     cargo build --release --bins
//!     cargo bench -p marketer-tests --bench analytics -- [POSTS] [ACCOUNTS] [DAYS]
//!
//! The accounts are connected through the server (against the local X
//! stand-in); the history is written straight into the database with the
//! server stopped (the collector would take 90 days to make it), then the
//! server is started again and measured. Reported: p50 and p95 of the
//! analytics report (API) for the last 30 days and for the whole period by
//! week (the Analytics page is this report plus its HTML), the CSV and
//! the PDF of the whole period, and
//! the storage the history takes. docs/benchmarks.md records the results.

use std::time::{Duration, Instant};

use marketer_tests::social::{FakeSocial, connect_x};
use marketer_tests::{Api, ServerOptions, ServerProcess, TempDatabase};
use reqwest::Method;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "a long benchmark password";
/// Readings per post: an hour, a day and a week after publishing.
const READINGS: [i64; 3] = [3_600, 86_400, 7 * 86_400];

fn main() {
    let numbers: Vec<i64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let posts = numbers.first().copied().unwrap_or(20_000).max(1);
    let accounts = numbers.get(1).copied().unwrap_or(50).max(1);
    let days = numbers.get(2).copied().unwrap_or(90).clamp(1, 364);
    let social_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let social = social_runtime.block_on(FakeSocial::start());
    runtime.block_on(async {
        run(&social, "SQLite", None, posts, accounts, days).await;
        if let Some(db) = TempDatabase::create().await {
            run(&social, "PostgreSQL", Some(&db.url), posts, accounts, days).await;
            db.drop_database().await;
        }
    });
}

fn options(social: &FakeSocial, data: &std::path::Path, database: Option<&str>) -> ServerOptions {
    let mut options = social
        .configure(ServerOptions::new(data))
        .env("MARKETER_BOOTSTRAP_EMAIL", EMAIL)
        .env("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)
        .env("MARKETER_LOG_LEVEL", "warn");
    if let Some(url) = database {
        options = options.env("MARKETER_DATABASE_URL", url);
    }
    options
}

async fn run(
    social: &FakeSocial,
    backend: &str,
    database: Option<&str>,
    posts: i64,
    accounts: i64,
    days: i64,
) {
    let data = tempfile::tempdir().unwrap();
    let options = options(social, data.path(), database);
    let server = ServerProcess::spawn(&options);
    let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;
    let mut ids = Vec::new();
    for n in 0..accounts {
        social.sign_in_as(5_000 + u32::try_from(n).unwrap());
        ids.push(connect_x(&api).await["id"].clone());
    }
    server.kill();

    let started = Instant::now();
    let tenant: Uuid = api.tenant.parse().unwrap();
    let history = History::new(tenant, &ids, posts, days);
    match database {
        Some(url) => history.write_postgres(url).await,
        None => history.write_sqlite(&data.path().join("marketer.db")).await,
    }
    let fixture = started.elapsed();
    let storage = match database {
        Some(url) => postgres_storage(url).await,
        None => sqlite_storage(data.path()),
    };

    let server = ServerProcess::spawn(&options);
    let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;
    let today = OffsetDateTime::now_utc().date();
    // A day more on either side: the report counts days in New York.
    let from = today - time::Duration::days(days + 1);
    let whole = format!("from={from}&to={today}&bucket=week&time_zone=America/New_York");
    let (status, report) =
        api.call(Method::GET, &api.tenant_path(&format!("/analytics?{whole}")), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["totals"]["posts"].as_i64(), Some(posts), "every post is in the report");
    assert_eq!(report["followers"]["accounts"].as_i64(), Some(accounts), "{}", report["followers"]);
    println!(
        "{backend}: {posts} posts on {accounts} accounts over {days} days (up to three readings each, {} followers \
         readings) written in {:.1} s; storage {storage}",
        accounts * days,
        fixture.as_secs_f64()
    );
    let page = |path: String| {
        let api = api.clone();
        async move {
            let url = format!("{}{}", api.base_url, api.tenant_path(&path));
            let response = api.http.get(url).bearer_auth(&api.token).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.bytes().await.unwrap().len()
        }
    };
    measure(&format!("{backend}: report, last 30 days by day (API)"), 20, || page("/analytics".into())).await;
    measure(&format!("{backend}: report, {days} days by week (API)"), 20, || {
        page(format!("/analytics?{whole}"))
    })
    .await;
    measure(&format!("{backend}: CSV, {days} days"), 5, || page(format!("/analytics/posts.csv?{whole}")))
        .await;
    measure(&format!("{backend}: PDF, {days} days"), 5, || page(format!("/analytics/report.pdf?{whole}")))
        .await;
    server.kill();
}

/// Runs `request` `times` times (after one warm-up) and prints p50, p95 and the answer's size.
async fn measure<F, Fut>(what: &str, times: usize, request: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let size = request().await;
    let mut took = Vec::with_capacity(times);
    for _ in 0..times {
        let started = Instant::now();
        request().await;
        took.push(started.elapsed());
    }
    took.sort();
    let pick = |q: f64| {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = ((took.len() as f64 - 1.0) * q).round() as usize;
        took[i]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("{what}: p50 {:.0} ms, p95 {:.0} ms ({} bytes)", ms(pick(0.5)), ms(pick(0.95)), size);
}

/// The history the benchmark writes: posts spread evenly over the period
/// across the accounts, readings that grow with age, followers that grow
/// by day.
struct History {
    tenant: Uuid,
    accounts: Vec<Uuid>,
    posts: Vec<(Uuid, Uuid, OffsetDateTime, i64)>,
    days: i64,
}

impl History {
    fn new(tenant: Uuid, accounts: &[Value], posts: i64, days: i64) -> Self {
        let accounts: Vec<Uuid> = accounts.iter().map(|a| a.as_str().unwrap().parse().unwrap()).collect();
        let now = OffsetDateTime::now_utc();
        let span = days * 86_400;
        let posts = (0..posts)
            .map(|n| {
                let age = span * n / posts.max(1) + 60;
                let account = accounts[usize::try_from(n).unwrap() % accounts.len()];
                (Uuid::now_v7(), account, now - time::Duration::seconds(age), n)
            })
            .collect();
        Self { tenant, accounts, posts, days }
    }

    /// The post's readings ([`READINGS`] after publishing) that have happened.
    fn readings(&self, published: OffsetDateTime, n: i64) -> Vec<(OffsetDateTime, [i64; 5])> {
        let now = OffsetDateTime::now_utc();
        READINGS
            .iter()
            .enumerate()
            .filter_map(|(i, after)| {
                let at = published + time::Duration::seconds(*after);
                let grow = i64::try_from(i).unwrap() + 1;
                (at <= now).then(|| {
                    (
                        at,
                        [400 + n % 900 * grow, (n % 40 + 3) * grow, n % 7 * grow, n % 5 * grow, n % 3 * grow],
                    )
                })
            })
            .collect()
    }

    fn followers(&self) -> Vec<(Uuid, String, i64)> {
        let today = OffsetDateTime::now_utc().date();
        let mut out = Vec::new();
        for (i, account) in self.accounts.iter().enumerate() {
            for d in 0..self.days {
                let day = today - time::Duration::days(self.days - 1 - d);
                out.push((*account, day.to_string(), 1_000 + i64::try_from(i).unwrap() * 100 + d * 3));
            }
        }
        out
    }

    async fn write_sqlite(&self, path: &std::path::Path) {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        let fixed = marketer_tests::sqlite_time;
        let never = "9999-12-31T00:00:00.000000Z";
        let mut tx = pool.begin().await.unwrap();
        for (id, account, published, n) in &self.posts {
            sqlx::query(POST_SQL)
                .bind(id)
                .bind(self.tenant)
                .bind(account)
                .bind(format!("Benchmark post {n}: open house this weekend #homes"))
                .bind(fixed(*published))
                .bind(format!("{}", 1_900_000_000_000_000_000u64 + u64::try_from(*n).unwrap()))
                .bind(never)
                .execute(&mut *tx)
                .await
                .unwrap();
            for (at, m) in self.readings(*published, *n) {
                sqlx::query(READING_SQL)
                    .bind(id)
                    .bind(self.tenant)
                    .bind(fixed(at))
                    .bind(m[0])
                    .bind(m[1])
                    .bind(m[2])
                    .bind(m[3])
                    .bind(m[4])
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
        }
        for (account, day, followers) in self.followers() {
            sqlx::query(FOLLOWERS_SQL)
                .bind(account)
                .bind(self.tenant)
                .bind(day)
                .bind(followers)
                .bind(fixed(OffsetDateTime::now_utc()))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        sqlx::query("UPDATE social_accounts SET followers_next_at = $1")
            .bind(never)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        pool.close().await;
    }

    async fn write_postgres(&self, url: &str) {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let never = OffsetDateTime::now_utc() + time::Duration::days(365 * 100);
        let mut tx = pool.begin().await.unwrap();
        for (id, account, published, n) in &self.posts {
            sqlx::query(POST_SQL)
                .bind(id)
                .bind(self.tenant)
                .bind(account)
                .bind(format!("Benchmark post {n}: open house this weekend #homes"))
                .bind(published)
                .bind(format!("{}", 1_900_000_000_000_000_000u64 + u64::try_from(*n).unwrap()))
                .bind(never)
                .execute(&mut *tx)
                .await
                .unwrap();
            for (at, m) in self.readings(*published, *n) {
                sqlx::query(READING_SQL)
                    .bind(id)
                    .bind(self.tenant)
                    .bind(at)
                    .bind(m[0])
                    .bind(m[1])
                    .bind(m[2])
                    .bind(m[3])
                    .bind(m[4])
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
        }
        for (account, day, followers) in self.followers() {
            sqlx::query(FOLLOWERS_SQL)
                .bind(account)
                .bind(self.tenant)
                .bind(day)
                .bind(followers)
                .bind(OffsetDateTime::now_utc())
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        sqlx::query("UPDATE social_accounts SET followers_next_at = $1")
            .bind(never)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
        pool.close().await;
    }
}

/// A published post (its metrics schedule far away: the collector leaves it alone).
const POST_SQL: &str = "INSERT INTO social_posts (id, tenant_id, account_id, text, status, scheduled_at, \
     time_zone, published_at, platform_post_id, created_at, updated_at, metrics_next_at) \
     VALUES ($1, $2, $3, $4, 'published', $5, 'UTC', $5, $6, $5, $5, $7)";
const READING_SQL: &str = "INSERT INTO post_metrics (post_id, tenant_id, collected_at, schema_version, \
     impressions, likes, comments, shares, saves, raw) VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, '{}')";
const FOLLOWERS_SQL: &str = "INSERT INTO account_followers (account_id, tenant_id, day, followers, collected_at) \
     VALUES ($1, $2, $3, $4, $5)";

fn sqlite_storage(data: &std::path::Path) -> String {
    let size: u64 = ["marketer.db", "marketer.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len())
        .sum();
    format!("{:.1} MB for the whole database file", size as f64 / 1e6)
}

async fn postgres_storage(url: &str) -> String {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let mut parts = Vec::new();
    for table in ["social_posts", "post_metrics", "account_followers"] {
        let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size($1::regclass)")
            .bind(table)
            .fetch_one(&pool)
            .await
            .unwrap();
        #[allow(clippy::cast_precision_loss)]
        parts.push(format!("{table} {:.1} MB", bytes as f64 / 1e6));
    }
    pool.close().await;
    format!("{} (tables with their indexes)", parts.join(", "))
}
