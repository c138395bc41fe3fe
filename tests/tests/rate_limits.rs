//! API rate limits with the real binary: counted per caller and
//! organisation by plan, shared by two replicas on one PostgreSQL database
//! (and in memory on SQLite), announced in `RateLimit-*` headers, refused
//! with 429 and `Retry-After` past the limit.

use std::time::Duration;

use marketer_tests::fleet::Fleet;
use marketer_tests::{ServerOptions, ServerProcess, TempDatabase};
use serde_json::{Value, json};

/// GET with a bearer token: the status, the `RateLimit-*` and
/// `Retry-After` headers, and the body.
async fn get(base: &str, path: &str, token: &str) -> (u16, [Option<String>; 4], Value) {
    let response =
        reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let headers = [
        header("ratelimit-limit"),
        header("ratelimit-remaining"),
        header("ratelimit-reset"),
        header("retry-after"),
    ];
    let status = response.status().as_u16();
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

/// Waits for a fresh minute when less than 30 seconds of this one remain,
/// so the counts below fall in one window.
async fn early_in_a_minute() {
    let second = time::OffsetDateTime::now_utc().second();
    if second >= 30 {
        tokio::time::sleep(Duration::from_secs(u64::from(60 - second) + 1)).await;
    }
}

async fn five_a_minute(database: Option<&TempDatabase>) {
    let mut env = vec![("MARKETER_RATE_LIMITS", "5,0,0")];
    if let Some(db) = database {
        env.push(("MARKETER_DATABASE_URL", db.url.as_str()));
    }
    let fleet = Fleet::start(|mut o| {
        for (key, value) in &env {
            o = o.env(key, value);
        }
        o
    })
    .await;
    // A second replica on the same database and secrets (PostgreSQL only).
    let second = database.map(|_| {
        let mut options = ServerOptions::new(fleet.data.path());
        for (key, value) in &env {
            options = options.env(key, value);
        }
        ServerProcess::spawn(&options)
    });
    let first = fleet.server().base_url.clone();
    let other = second.as_ref().map_or(first.clone(), |s| s.base_url.clone());
    let token = fleet.api.token.clone();
    let projects = fleet.api.tenant_path("/projects");

    early_in_a_minute().await;
    // An API key, made first: it has a budget of its own.
    let (status, key) =
        fleet.call(reqwest::Method::POST, "/api-keys", Some(json!({ "name": "ci", "role": "viewer" }))).await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    // The person's five of the minute, spread over both replicas: 1 spent.
    let mut remaining = Vec::new();
    for base in [&first, &other, &first, &other] {
        let (status, [limit, left, reset, _], body) = get(base, &projects, &token).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(limit.as_deref(), Some("5"));
        let reset: u64 = reset.unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        remaining.push(left.unwrap());
    }
    assert_eq!(remaining, ["3", "2", "1", "0"], "one count for both replicas");
    let (status, [_, left, _, retry], body) = get(&other, &projects, &token).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(left.as_deref(), Some("0"));
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The key's own budget is untouched; sign-in and health are not counted.
    let (status, [_, left, ..], _) = get(&first, &projects, &key).await;
    assert_eq!((status, left.as_deref()), (200, Some("4")));
    let (status, [limit, ..], _) = get(&first, "/healthz", &token).await;
    assert_eq!((status, limit), (200, None));
    drop(second);
}

#[tokio::test]
async fn a_callers_requests_are_limited_per_minute_in_memory_on_sqlite() {
    five_a_minute(None).await;
}

#[tokio::test]
async fn two_replicas_share_one_count_on_postgres() {
    let Some(database) = TempDatabase::create().await else { return };
    five_a_minute(Some(&database)).await;
    database.drop_database().await;
}
