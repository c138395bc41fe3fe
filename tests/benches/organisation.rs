//! What a whole organisation's export and erasure cost on a busy one: its
//! audit log (the largest table an organisation builds up, and the one the
//! erasure rewrites entry by entry) holds AUDIT entries, written straight
//! into the database with the server stopped; then the server is started,
//! an export is asked for and timed until ready (and its ZIP downloaded),
//! and the organisation is erased (the request timed: it is one
//! transaction). On SQLite and (when `MARKETER_TEST_DATABASE_URL` names a
//! server where it may create databases) PostgreSQL.
//!
//!     cargo build --release --bins
//!     cargo bench -p marketer-tests --bench organisation -- [AUDIT]
//!
//! docs/benchmarks.md records the results.

use std::time::{Duration, Instant};

use marketer_tests::{Api, ServerOptions, ServerProcess, TempDatabase, eventually};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "a long benchmark password";
const INSERT: &str = "INSERT INTO audit_events (id, occurred_at, tenant_id, actor_type, actor_id, actor_label, \
     client_ip, request_id, action, resource_type, resource_id, outcome, details) \
     VALUES ($1, $2, $3, 'user', $4, $5, '203.0.113.7', NULL, 'project.update', 'project', $6, 'success', $7)";

fn main() {
    let numbers: Vec<i64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let audit = numbers.first().copied().unwrap_or(100_000).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        run("SQLite", None, audit).await;
        if let Some(db) = TempDatabase::create().await {
            run("PostgreSQL", Some(&db.url), audit).await;
            db.drop_database().await;
        }
    });
}

async fn run(backend: &str, database: Option<&str>, audit: i64) {
    let data = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::new(data.path())
        .env("MARKETER_BOOTSTRAP_EMAIL", EMAIL)
        .env("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)
        .env("MARKETER_LOG_LEVEL", "warn");
    if let Some(url) = database {
        options = options.env("MARKETER_DATABASE_URL", url);
    }
    let server = ServerProcess::spawn(&options);
    let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;
    let (_, me) = api.call(Method::GET, "/api/v1/me", None).await;
    let user: Uuid = me["user"]["id"].as_str().unwrap().parse().unwrap();
    let (status, project) =
        api.call(Method::POST, &api.tenant_path("/projects"), Some(json!({ "name": "Benchmark" }))).await;
    assert_eq!(status, 201, "{project}");
    let project: Uuid = project["id"].as_str().unwrap().parse().unwrap();
    server.kill();

    let tenant: Uuid = api.tenant.parse().unwrap();
    let started = Instant::now();
    let now = time::OffsetDateTime::now_utc();
    let details = |n: i64| {
        json!({ "name": format!("Spring launch {n}"), "by": EMAIL, "project_id": project }).to_string()
    };
    match database {
        Some(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            for n in 0..audit {
                sqlx::query(INSERT)
                    .bind(Uuid::now_v7())
                    .bind(now - time::Duration::seconds(audit - n))
                    .bind(tenant)
                    .bind(user)
                    .bind(EMAIL)
                    .bind(project.to_string())
                    .bind(details(n))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            pool.close().await;
        }
        None => {
            let path = data.path().join("marketer.db");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            for n in 0..audit {
                sqlx::query(INSERT)
                    .bind(Uuid::now_v7())
                    .bind(marketer_tests::sqlite_time(now - time::Duration::seconds(audit - n)))
                    .bind(tenant)
                    .bind(user)
                    .bind(EMAIL)
                    .bind(project.to_string())
                    .bind(details(n))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            pool.close().await;
        }
    }
    println!("{backend}: {audit} audit entries written in {:.1} s", started.elapsed().as_secs_f64());

    let server = ServerProcess::spawn(&options);
    let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;
    let started = Instant::now();
    let (status, export) = api.call(Method::POST, &api.tenant_path("/exports"), None).await;
    assert_eq!(status, 202, "{export}");
    let id = export["id"].as_str().unwrap().to_owned();
    let ready = eventually(Duration::from_secs(1_800), "the export ready", || async {
        let (_, export) = api.call(Method::GET, &api.tenant_path(&format!("/exports/{id}")), None).await;
        assert_ne!(export["state"], "failed", "{export}");
        (export["state"] == "ready").then_some(export)
    })
    .await;
    let prepared = started.elapsed();
    let url = format!("{}{}", api.base_url, api.tenant_path(&format!("/exports/{id}/download")));
    let started = Instant::now();
    let response = api.http.get(url).bearer_auth(&api.token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap().len();
    let downloaded = started.elapsed();
    println!(
        "{backend}: export ready in {:.1} s ({} bytes, {:.1} MB), downloaded in {} ms",
        prepared.as_secs_f64(),
        ready["size_bytes"],
        bytes as f64 / 1_000_000.0,
        downloaded.as_millis()
    );

    let (_, tenant_row) = api.call(Method::GET, &api.tenant_path(""), None).await;
    let started = Instant::now();
    let (status, record) = api
        .call(
            Method::POST,
            &api.tenant_path("/erase"),
            Some(json!({ "password": PASSWORD, "confirm": tenant_row["slug"] })),
        )
        .await;
    assert_eq!(status, 202, "{record}");
    println!(
        "{backend}: erased in {:.1} s ({} audit entries pseudonymised)",
        started.elapsed().as_secs_f64(),
        record["control_plane"]["audit_entries_pseudonymised"]
    );
    server.kill();
}
