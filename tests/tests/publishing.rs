//! Publishing end to end: the real server binary, on SQLite and PostgreSQL,
//! against the local X and Mastodon stand-in (`marketer_tests::social`):
//! connecting accounts through OAuth with PKCE, posts published once at
//! their time, and the failures: an answer that never comes after the post
//! was created, a 5xx after creation, a server killed mid-publish, rate
//! limits, expiring tokens refreshed once for ten posts, refused and
//! passing refresh failures, daylight-saving wall times, two replicas, and
//! a post whose approval is not complete at its time held, not published,
//! and published posts' metrics read on schedule (analytics), and the
//! inbox: mentions and replies read from Mastodon once each, paged,
//! threaded, worked and refused.

use std::time::Duration;

use marketer_tests::fleet::{EMAIL, PASSWORD};
use marketer_tests::openai::FakeOpenAi;
use marketer_tests::social::{FakeSocial, Fault, Net};
use marketer_tests::{Api, ServerOptions, ServerProcess, TempDatabase, eventually};
use reqwest::Method;
use serde_json::{Value, json};

struct Setup {
    social: FakeSocial,
    options: ServerOptions,
    server: Option<ServerProcess>,
    api: Api,
    _data: tempfile::TempDir,
    db: Option<TempDatabase>,
}

fn configure(options: ServerOptions, social: &FakeSocial) -> ServerOptions {
    social
        .configure(options)
        .env("MARKETER_BOOTSTRAP_EMAIL", EMAIL)
        .env("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(server) = &self.server
        {
            let lines = server.stderr.all();
            eprintln!("server log (last 60 lines):\n{}", lines[lines.len().saturating_sub(60)..].join("\n"));
        }
    }
}

impl Setup {
    async fn start(postgres: bool) -> Option<Self> {
        Self::start_with(postgres, &[]).await
    }

    async fn start_with(postgres: bool, env: &[(&str, &str)]) -> Option<Self> {
        let social = FakeSocial::start().await;
        let data = tempfile::tempdir().unwrap();
        let db = if postgres { Some(TempDatabase::create().await?) } else { None };
        let mut options = configure(ServerOptions::new(data.path()), &social);
        for (key, value) in env {
            options = options.env(key, value);
        }
        if let Some(db) = &db {
            options = options.env("MARKETER_DATABASE_URL", &db.url);
        }
        let server = ServerProcess::spawn(&options);
        let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;
        Some(Self { social, options, server: Some(server), api, _data: data, db })
    }

    async fn call(&self, method: Method, rest: &str, body: Option<Value>) -> (u16, Value) {
        self.api.call(method, &self.api.tenant_path(rest), body).await
    }

    /// Connects an account through the platform's OAuth flow, as a browser
    /// would: the authorisation page redirects to the server's callback.
    async fn connect(&self, network: &str) -> Value {
        let mut body = json!({ "network": network });
        if network == "mastodon" {
            body["instance"] = json!(self.social.url());
        }
        let (status, started) = self.call(Method::POST, "/accounts/connect", Some(body)).await;
        assert_eq!(status, 200, "{started}");
        let no_redirects =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let approve = no_redirects.get(started["authorize_url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(approve.status(), 303, "the platform sends the person back");
        let callback = approve.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            callback.starts_with(&format!("{}/oauth/callback/{network}?", self.api.base_url)),
            "{callback}"
        );
        let response = self.api.http.get(&callback).bearer_auth(&self.api.token).send().await.unwrap();
        assert_eq!(response.status(), 201);
        let account: Value = response.json().await.unwrap();
        // The state is used once.
        let again = self.api.http.get(&callback).bearer_auth(&self.api.token).send().await.unwrap();
        assert_eq!(again.status(), 410);
        account
    }

    /// A GET of a file: its status, content type and bytes.
    async fn download(&self, rest: &str) -> (u16, String, Vec<u8>) {
        let url = format!("{}{}", self.api.base_url, self.api.tenant_path(rest));
        let response = self.api.http.get(url).bearer_auth(&self.api.token).send().await.unwrap();
        let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), kind.unwrap_or_default(), response.bytes().await.unwrap().to_vec())
    }

    async fn post(&self, id: &str) -> Value {
        let (status, post) = self.call(Method::GET, &format!("/posts/{id}"), None).await;
        assert_eq!(status, 200, "{post}");
        post
    }

    async fn wait_status(&self, id: &str, status: &str, limit: Duration) -> Value {
        eventually(limit, &format!("post {id} to be {status}"), || async {
            let post = self.post(id).await;
            (post["status"] == status).then_some(post)
        })
        .await
    }

    async fn schedule_now(&self, account: &Value, text: &str) -> Value {
        let (status, post) = self
            .call(
                Method::POST,
                "/posts",
                Some(json!({ "account_id": account["id"], "text": text, "now": true, "approve": true })),
            )
            .await;
        assert_eq!(status, 201, "{post}");
        post
    }

    /// Runs `sql` (with the post's id as `$1`) on the server's database.
    async fn execute(&self, sql: &'static str, post_id: &str) {
        match &self.db {
            Some(db) => {
                let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
                let id: uuid::Uuid = post_id.parse().unwrap();
                sqlx::query(sql).bind(id).execute(&pool).await.unwrap();
                pool.close().await;
            }
            None => {
                let url = format!("sqlite://{}", self.options.data_dir.join("marketer.db").display());
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                let id: uuid::Uuid = post_id.parse().unwrap();
                sqlx::query(sql).bind(id).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    /// An account's followers as the analytics report gives them, once read.
    async fn followers(&self, account: &Value) -> i64 {
        let path = format!("/analytics?account_id={}", account["id"].as_str().unwrap());
        eventually(Duration::from_secs(15), "the account's followers to be read", || async {
            let (status, report) = self.call(Method::GET, &path, None).await;
            assert_eq!(status, 200, "{report}");
            report["followers"]["latest"].as_i64()
        })
        .await
    }

    async fn metrics(&self, id: &str) -> Value {
        let (status, metrics) = self.call(Method::GET, &format!("/posts/{id}/metrics"), None).await;
        assert_eq!(status, 200, "{metrics}");
        metrics
    }

    async fn finish(mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
    }
}

async fn publishes_a_scheduled_post_once(postgres: bool) {
    let Some(setup) = Setup::start(postgres).await else { return };
    let account = setup.connect("x").await;
    assert_eq!(account["network"], "x");
    assert_eq!(account["handle"], "@marketer_test");
    assert_eq!(account["health"], "connected");
    assert!(
        account.get("access_token").is_none() && !account.to_string().contains("token\":\""),
        "{account}"
    );

    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let at = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (status, post) = setup
        .call(
            Method::POST,
            "/posts",
            Some(json!({ "account_id": account["id"], "text": "Open house on Saturday #homes",
            "scheduled_at": at, "approve": true })),
        )
        .await;
    assert_eq!(status, 201, "{post}");
    assert_eq!(post["status"], "scheduled");
    let id = post["id"].as_str().unwrap();
    let published = setup.wait_status(id, "published", Duration::from_secs(15)).await;
    let on_x = setup.social.posts(Net::X);
    assert_eq!(on_x.len(), 1, "one post on X");
    assert_eq!(published["platform_post_id"], on_x[0].id.as_str());
    assert_eq!(published["url"], format!("https://x.com/marketer_test/status/{}", on_x[0].id));
    assert_eq!(published["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(published["attempts"][0]["http_status"], 201);

    // Mastodon: registered on the instance, then published at once.
    let mastodon = setup.connect("mastodon").await;
    assert_eq!(mastodon["handle"], "@marketer@127.0.0.1");
    let post = setup.schedule_now(&mastodon, "Hello fediverse").await;
    setup.wait_status(post["id"].as_str().unwrap(), "published", Duration::from_secs(15)).await;
    assert_eq!(setup.social.posts(Net::Mastodon).len(), 1);

    // Deleting a published post deletes it on the platform.
    let (status, _) = setup.call(Method::DELETE, &format!("/posts/{id}"), None).await;
    assert_eq!(status, 204);
    assert!(setup.social.posts(Net::X).is_empty());
    assert_eq!(setup.post(id).await["status"], "deleted");

    // The audit log has the connections and the publishes.
    let (_, audit) = setup.call(Method::GET, "/audit-events?limit=100", None).await;
    let actions: Vec<&str> =
        audit["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["social_account.connect", "post.create", "post.published", "post.delete"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    setup.finish().await;
}

#[tokio::test]
async fn publishes_a_scheduled_post_once_on_sqlite() {
    publishes_a_scheduled_post_once(false).await;
}

#[tokio::test]
async fn publishes_a_scheduled_post_once_on_postgres() {
    publishes_a_scheduled_post_once(true).await;
}

/// Analytics: a published post's metrics are read on schedule (here the
/// first reading at once, then hourly), stored as readings where what the
/// platform did not report is null, with engagement rate only where
/// impressions exist; a failed read is shown and tried again; a metric
/// the platform retires mid-series is named as no longer reported, not
/// recorded as 0; a deleted post is not read again.
async fn published_posts_metrics_are_read_on_schedule(postgres: bool) {
    let env = [("MARKETER_ANALYTICS_FIRST_READING_SECONDS", "0"), ("MARKETER_ANALYTICS_POLL_MS", "200")];
    let Some(setup) = Setup::start_with(postgres, &env).await else { return };
    let x = setup.connect("x").await;
    let mastodon = setup.connect("mastodon").await;
    // The first read fails: shown, and tried again later (not at once).
    setup.social.fail_next_metrics(503);
    let on_x = setup.schedule_now(&x, "Open house on Saturday #homes").await;
    let x_id = on_x["id"].as_str().unwrap().to_owned();
    let published = setup.wait_status(&x_id, "published", Duration::from_secs(15)).await;
    let x_platform_id = published["platform_post_id"].as_str().unwrap().to_owned();
    let failed = eventually(Duration::from_secs(15), "the failed read to be shown", || async {
        let m = setup.metrics(&x_id).await;
        m["last_error"].is_string().then_some(m)
    })
    .await;
    assert!(failed["last_error"].as_str().unwrap().contains("503"), "{failed}");
    assert!(failed["readings"].as_array().unwrap().is_empty(), "{failed}");
    // Retried: bring the retry forward, as the clock would.
    setup.execute("UPDATE social_posts SET metrics_next_at = published_at WHERE id = $1", &x_id).await;
    let read = eventually(Duration::from_secs(15), "X's first reading", || async {
        let m = setup.metrics(&x_id).await;
        (m["readings"].as_array().unwrap().len() == 1).then_some(m)
    })
    .await;
    assert!(read["last_error"].is_null(), "{read}");
    let latest = &read["latest"];
    for metric in ["impressions", "likes", "comments", "shares", "saves"] {
        assert!(latest[metric].as_i64().is_some_and(|n| n >= 0), "{metric}: {read}");
    }
    for metric in ["reach", "link_clicks", "profile_visits", "video_views"] {
        assert!(latest[metric].is_null(), "X does not report {metric}: {read}");
    }
    let engagements =
        ["likes", "comments", "shares", "saves"].iter().map(|m| latest[m].as_i64().unwrap()).sum::<i64>();
    assert_eq!(read["engagements"], engagements);
    #[allow(clippy::cast_precision_loss)]
    let rate = engagements as f64 / latest["impressions"].as_i64().unwrap() as f64;
    assert!((read["engagement_rate"].as_f64().unwrap() - rate).abs() < 1e-9, "{read}");
    assert!(read["engagement_rate_definition"].as_str().unwrap().contains("impressions"));

    // Mastodon reports no impressions: no rate, and absent is not zero.
    let toot = setup.schedule_now(&mastodon, "Hello fediverse").await;
    let toot_id = toot["id"].as_str().unwrap().to_owned();
    setup.wait_status(&toot_id, "published", Duration::from_secs(15)).await;
    let toot_read = eventually(Duration::from_secs(15), "Mastodon's first reading", || async {
        let m = setup.metrics(&toot_id).await;
        (!m["readings"].as_array().unwrap().is_empty()).then_some(m)
    })
    .await;
    assert!(toot_read["latest"]["impressions"].is_null(), "{toot_read}");
    assert!(toot_read["latest"]["likes"].as_i64().is_some(), "{toot_read}");
    // Its rate is engagements ÷ the account's followers (read once a day).
    let followers = setup.followers(&mastodon).await;
    let toot_read = setup.metrics(&toot_id).await;
    #[allow(clippy::cast_precision_loss)]
    let by_followers = toot_read["engagements"].as_i64().unwrap() as f64 / followers as f64;
    assert!((toot_read["engagement_rate"].as_f64().unwrap() - by_followers).abs() < 1e-9, "{toot_read}");
    assert!(toot_read["engagement_rate_definition"].as_str().unwrap().contains("followers"));

    // The next reading is an hour away: the post is not read again now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(setup.social.metric_reads(&x_platform_id), 1, "read once per round");

    // X retires impressions; the next reading has none, and says so.
    setup.social.drop_metric(Net::X, "impression_count");
    setup.execute("UPDATE social_posts SET metrics_next_at = published_at WHERE id = $1", &x_id).await;
    let second = eventually(Duration::from_secs(15), "X's second reading", || async {
        let m = setup.metrics(&x_id).await;
        (m["readings"].as_array().unwrap().len() == 2).then_some(m)
    })
    .await;
    assert!(second["latest"]["impressions"].is_null(), "absent, never 0: {second}");
    assert!(second["readings"][0]["impressions"].as_i64().is_some(), "{second}");
    assert_eq!(second["no_longer_reported"][0]["metric"], "impressions", "{second}");
    let x_followers = setup.followers(&x).await;
    #[allow(clippy::cast_precision_loss)]
    let by_followers = second["engagements"].as_i64().unwrap() as f64 / x_followers as f64;
    assert!(
        (second["engagement_rate"].as_f64().unwrap() - by_followers).abs() < 1e-9,
        "÷ followers now: {second}"
    );
    assert!(
        second["latest"]["likes"].as_i64() > read["latest"]["likes"].as_i64(),
        "the numbers grow between readings: {second}"
    );

    // A deleted post is not read again.
    let (status, _) = setup.call(Method::DELETE, &format!("/posts/{x_id}"), None).await;
    assert_eq!(status, 204);
    setup.execute("UPDATE social_posts SET metrics_next_at = published_at WHERE id = $1", &x_id).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(setup.social.metric_reads(&x_platform_id), 2, "nothing read for a deleted post");
    setup.finish().await;
}

#[tokio::test]
async fn published_posts_metrics_are_read_on_schedule_on_sqlite() {
    published_posts_metrics_are_read_on_schedule(false).await;
}

#[tokio::test]
async fn published_posts_metrics_are_read_on_schedule_on_postgres() {
    published_posts_metrics_are_read_on_schedule(true).await;
}

/// Every network's metrics: a LinkedIn organisation page's post statistics
/// (a member's posts have none, and say so), a Facebook Page post's
/// reactions, comments and insights, an Instagram media's insights; when
/// Meta retires a metric (refusing the request that names it), the next
/// reading goes on without it and names it as no longer reported.
#[tokio::test]
async fn linkedin_facebook_and_instagram_posts_metrics_are_read() {
    let env = [("MARKETER_ANALYTICS_FIRST_READING_SECONDS", "0"), ("MARKETER_ANALYTICS_POLL_MS", "200")];
    let Some(setup) = Setup::start_with(false, &env).await else { return };
    let member = setup.connect("linkedin").await;
    let (_, accounts) = setup.call(Method::GET, "/accounts", None).await;
    let page =
        accounts.as_array().unwrap().iter().find(|a| a["handle"] == "Marketer Test Co").unwrap().clone();
    let facebook = setup.connect("facebook").await;
    let instagram = setup.connect("instagram").await;
    let on_page = setup.schedule_now(&page, "News from the company page").await;
    let on_member = setup.schedule_now(&member, "News from a member").await;
    let on_facebook = setup.schedule_now(&facebook, "Open house this Saturday").await;
    let body = json!({ "account_id": instagram["id"], "text": "Sunset over the bay", "now": true,
        "approve": true, "image_url": setup.social.image_url() });
    let (status, on_instagram) = setup.call(Method::POST, "/posts", Some(body)).await;
    assert_eq!(status, 201, "{on_instagram}");
    let ids: Vec<String> = [&on_page, &on_member, &on_facebook, &on_instagram]
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        setup.wait_status(id, "published", Duration::from_secs(20)).await;
    }
    let readings = |id: &str, n: usize| {
        let id = id.to_owned();
        let setup = &setup;
        async move {
            eventually(Duration::from_secs(15), &format!("{n} readings of {id}"), || async {
                let m = setup.metrics(&id).await;
                (m["readings"].as_array().unwrap().len() == n).then_some(m)
            })
            .await
        }
    };
    let present = |m: &Value, names: &[&str]| {
        for name in names {
            assert!(m["latest"][name].as_i64().is_some_and(|n| n >= 0), "{name}: {m}");
        }
    };

    let li = readings(&ids[0], 1).await;
    present(&li, &["impressions", "reach", "likes", "comments", "shares"]);
    assert!(li["latest"]["saves"].is_null(), "LinkedIn has no saves: {li}");
    assert!(li["latest"]["link_clicks"].is_null(), "clickCount is every click, not link clicks: {li}");
    assert!(li["engagement_rate"].as_f64().is_some(), "{li}");
    let member_metrics = eventually(Duration::from_secs(15), "the member post's answer", || async {
        let m = setup.metrics(&ids[1]).await;
        m["last_error"].is_string().then_some(m)
    })
    .await;
    assert!(
        member_metrics["last_error"].as_str().unwrap().contains("organisation pages"),
        "{member_metrics}"
    );
    assert!(member_metrics["readings"].as_array().unwrap().is_empty());

    let fb = readings(&ids[2], 1).await;
    present(&fb, &["impressions", "reach", "likes", "comments", "link_clicks"]);
    let ig = readings(&ids[3], 1).await;
    present(&ig, &["impressions", "reach", "likes", "comments", "shares", "saves", "profile_visits"]);
    assert!(ig["latest"]["link_clicks"].is_null(), "{ig}");

    // Meta retires a metric on each: the next readings go on without it.
    setup.social.drop_metric(Net::Facebook, "post_clicks_by_type");
    setup.social.drop_metric(Net::Instagram, "saved");
    setup.execute("UPDATE social_posts SET metrics_next_at = published_at WHERE id = $1", &ids[2]).await;
    setup.execute("UPDATE social_posts SET metrics_next_at = published_at WHERE id = $1", &ids[3]).await;
    let fb = readings(&ids[2], 2).await;
    assert!(fb["latest"]["link_clicks"].is_null(), "absent, never 0: {fb}");
    assert_eq!(fb["no_longer_reported"][0]["metric"], "link_clicks", "{fb}");
    present(&fb, &["impressions", "likes", "comments"]);
    let ig = readings(&ids[3], 2).await;
    assert!(ig["latest"]["saves"].is_null(), "absent, never 0: {ig}");
    assert_eq!(ig["no_longer_reported"][0]["metric"], "saves", "{ig}");
    present(&ig, &["impressions", "likes"]);
    assert!(ig["last_error"].is_null(), "{ig}");

    // Followers are read once a day per account (the LinkedIn member's are not given to apps),
    // and the report sums the selected accounts' latest.
    let mut total = 0;
    for account in [&page, &facebook, &instagram] {
        total += setup.followers(account).await;
    }
    assert_eq!(
        setup
            .social
            .followers_reads(&format!("urn:li:organization:{}", marketer_tests::social::LINKEDIN_ORG_ID)),
        1
    );
    let (_, report) = setup.call(Method::GET, "/analytics", None).await;
    let followers = &report["followers"];
    assert_eq!(
        (followers["accounts"].as_i64(), followers["latest"].as_i64()),
        (Some(3), Some(total)),
        "{report}"
    );
    assert_eq!(followers["series"].as_array().unwrap().len(), 30, "{report}");
    assert_eq!(followers["series"][29]["followers"].as_i64(), Some(total), "{report}");
    let (_, member_only) = setup
        .call(Method::GET, &format!("/analytics?account_id={}", member["id"].as_str().unwrap()), None)
        .await;
    assert!(member_only["followers"].is_null(), "{member_only}");
    setup.finish().await;
}

/// A/B tests: two variants on two X accounts at the same time. While it
/// runs, the numbers so far and no winner; once its window has passed the
/// collector decides it: each variant's engagements and impressions, the
/// z-test's numbers and a verdict that names a winner only when the
/// difference is beyond chance. Bad requests name the field.
#[tokio::test]
async fn an_ab_test_of_two_variants_is_decided_with_its_numbers() {
    let env = [("MARKETER_ANALYTICS_FIRST_READING_SECONDS", "0"), ("MARKETER_ANALYTICS_POLL_MS", "200")];
    let Some(setup) = Setup::start_with(false, &env).await else { return };
    let first = setup.connect("x").await;
    setup.social.sign_in_as(1);
    let second = setup.connect("x").await;
    let mastodon = setup.connect("mastodon").await;
    let variant = |account: &Value, text: &str| json!({ "account_id": account["id"], "text": text, "now": true, "approve": true });
    for (body, field) in [
        (json!({ "name": "One", "window_hours": 24, "variants": [variant(&first, "Only one")] }), "variants"),
        (
            json!({ "name": "Zero", "window_hours": 0, "variants": [variant(&first, "a"), variant(&second, "b")] }),
            "window_hours",
        ),
        (
            json!({ "name": " ", "window_hours": 24, "variants": [variant(&first, "a"), variant(&second, "b")] }),
            "name",
        ),
        (
            json!({ "name": "Mixed", "window_hours": 24, "variants": [variant(&first, "a"), variant(&mastodon, "b")] }),
            "variants",
        ),
        (
            json!({ "name": "Draft", "window_hours": 24, "variants": [variant(&first, "a"), { "account_id": second["id"], "text": "b" }] }),
            "variants[1].scheduled_at",
        ),
        // One account: times at least an hour apart; two accounts: one time.
        (
            json!({ "name": "Same time", "window_hours": 24, "variants": [variant(&first, "a"), variant(&first, "b")] }),
            "variants",
        ),
        (
            json!({ "name": "Two times", "window_hours": 24, "variants": [variant(&first, "a"), {
                "account_id": second["id"], "text": "b", "approve": true,
                "scheduled_at": (time::OffsetDateTime::now_utc() + time::Duration::hours(3))
                    .format(&time::format_description::well_known::Rfc3339).unwrap(),
            }] }),
            "variants",
        ),
    ] {
        let (status, error) = setup.call(Method::POST, "/ab-tests", Some(body)).await;
        assert_eq!(status, 422, "{field}: {error}");
        assert_eq!(error["error"]["details"]["field"], field, "{error}");
    }
    assert!(setup.social.posts(Net::X).is_empty(), "a refused test publishes nothing");

    // People like B's text more: it wins, beyond chance.
    let b_text = "Come and see the house this Saturday? Doors open at 10";
    setup.social.like_more(b_text, 300);
    let body = json!({ "name": "Saturday open house", "window_hours": 1, "variants": [
        variant(&first, "Open house on Saturday, 10 to 2 #homes"),
        variant(&second, b_text),
    ] });
    // Sent twice with one Idempotency-Key (a retry after a lost answer):
    // one test, one post per variant.
    let send = || async {
        let response = setup
            .api
            .http
            .post(format!("{}{}", setup.api.base_url, setup.api.tenant_path("/ab-tests")))
            .bearer_auth(&setup.api.token)
            .header("Idempotency-Key", "open-house-test")
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json::<Value>().await.unwrap())
    };
    let (status, test) = send().await;
    assert_eq!(status, 201, "{test}");
    let (again, same) = send().await;
    assert_eq!((again, &same["id"]), (200, &test["id"]), "{same}");
    assert_eq!(
        (test["status"].as_str(), test["split"].as_str()),
        (Some("running"), Some("accounts")),
        "{test}"
    );
    let labels: Vec<&str> =
        test["variants"].as_array().unwrap().iter().map(|v| v["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["A", "B"]);
    let test_id = test["id"].as_str().unwrap().to_owned();
    for v in test["variants"].as_array().unwrap() {
        let id = v["post_id"].as_str().unwrap();
        setup.wait_status(id, "published", Duration::from_secs(20)).await;
        eventually(Duration::from_secs(15), "the variant's first reading", || async {
            (!setup.metrics(id).await["readings"].as_array().unwrap().is_empty()).then_some(())
        })
        .await;
    }
    let (_, running) = setup.call(Method::GET, &format!("/ab-tests/{test_id}"), None).await;
    assert!(running["decision"]["winner"].is_null(), "no winner while it runs: {running}");
    assert!(running["decision"]["verdict"].as_str().unwrap().contains("running"), "{running}");
    assert_eq!(running["decision"]["variants"][0]["base_kind"], "impressions", "{running}");

    // The window passes (brought forward, as the clock would).
    setup.execute("UPDATE ab_tests SET ends_at = created_at WHERE id = $1", &test_id).await;
    let decided = eventually(Duration::from_secs(15), "the test to be decided", || async {
        let (_, t) = setup.call(Method::GET, &format!("/ab-tests/{test_id}"), None).await;
        (t["status"] == "decided").then_some(t)
    })
    .await;
    let d = &decided["decision"];
    for v in d["variants"].as_array().unwrap() {
        assert!(v["base"].as_i64().unwrap() >= 100 && v["engagements"].as_i64().unwrap() >= 5, "{d}");
        #[allow(clippy::cast_precision_loss)]
        let rate = v["engagements"].as_i64().unwrap() as f64 / v["base"].as_i64().unwrap() as f64;
        assert!((v["rate"].as_f64().unwrap() - rate).abs() < 1e-9, "{d}");
    }
    let c = &d["comparisons"][0];
    let p = c["p_value"].as_f64().unwrap();
    assert!(p > 0.0 && p <= 1.0 && c["z"].as_f64().unwrap() >= 0.0, "the best against the other: {d}");
    assert!(p < 0.0001, "{d}");
    assert_eq!(d["winner"], "B", "{d}");
    assert!(d["verdict"].as_str().unwrap().starts_with("B won by "), "{d}");
    assert_eq!(d["winner_traits"]["characters"].as_u64(), Some(b_text.chars().count() as u64), "{d}");
    assert_eq!(d["winner_traits"]["question"], true, "{d}");
    assert_eq!(d["variants"][0]["traits"]["hashtags"], 1, "every variant's traits are kept: {d}");
    let (_, audit) = setup.call(Method::GET, "/audit-events?action=ab_test.decided", None).await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "decided once: {audit}");
    assert_eq!(audit["items"][0]["details"]["winner_traits"]["question"], true, "{audit}");

    // Later generations are told what worked: an X post written after the
    // test (on the cloud provider here; an agent's prompt is the same)
    // receives the note; LinkedIn, with no test of its own, gets none.
    let provider = FakeOpenAi::start("sk-test-ab-0001", &["gpt-4o-mini"]).await;
    let body =
        json!({ "base_url": provider.base_url(), "model": "gpt-4o-mini", "api_key": "sk-test-ab-0001" });
    let (status, set) = setup.call(Method::PUT, "/cloud-provider", Some(body)).await;
    assert_eq!(status, 200, "{set}");
    let body =
        json!({ "name": "Open houses", "llm_policy": "cloud_allowed", "default_model": "gpt-4o-mini" });
    let (status, project) = setup.call(Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{project}");
    let body = json!({
        "kind": "social_post_set", "topic": "Our next open house", "platforms": ["x", "linkedin"],
        "tone": "friendly", "variants_per_platform": 1,
    });
    let path = format!("/projects/{}/activities", project["id"].as_str().unwrap());
    let (status, activity) = setup.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, 202, "{activity}");
    let prompts = eventually(Duration::from_secs(30), "both posts' prompts", || async {
        let prompts: Vec<String> = provider
            .requests()
            .iter()
            .map(|r| r["messages"].to_string())
            .filter(|m| m.contains("social media copywriter"))
            .collect();
        (prompts.len() >= 2).then_some(prompts)
    })
    .await;
    let handle = second["handle"].as_str().unwrap();
    let x = prompts.iter().find(|p| p.contains("X post")).expect("the X prompt");
    assert!(x.contains("What worked for this brand on X (its A/B tests"), "{x}");
    assert!(x.contains(&format!("On {handle}, B won by ")), "{x}");
    assert!(x.contains("a question"), "{x}");
    let linkedin = prompts.iter().find(|p| p.contains("LinkedIn post")).expect("the LinkedIn prompt");
    assert!(!linkedin.contains("What worked"), "no LinkedIn tests, no note: {linkedin}");
    let (status, _) = setup.call(Method::GET, &format!("/ab-tests/{}", uuid::Uuid::now_v7()), None).await;
    assert_eq!(status, 404);
    let (_, list) = setup.call(Method::GET, "/ab-tests", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(setup.social.all_posts(Net::X).len(), 2, "one post per variant: {list}");
    setup.finish().await;
}

/// Best times come from measured posts: ten X posts published and read
/// make their local hour of the week the account's best time; a second X
/// account with no posts of its own borrows the organisation's X history;
/// Mastodon with none has no recommendation and says why. `best_time`
/// schedules a post at the soonest recommended hour (strictly later, so a
/// week on) and the next one at another; the calendar marks the hours.
async fn best_times_come_from_measured_posts(postgres: bool) {
    let env = [("MARKETER_ANALYTICS_FIRST_READING_SECONDS", "0"), ("MARKETER_ANALYTICS_POLL_MS", "200")];
    let Some(setup) = Setup::start_with(postgres, &env).await else { return };
    let x = setup.connect("x").await;
    setup.social.sign_in_as(1);
    let second = setup.connect("x").await;
    let mastodon = setup.connect("mastodon").await;
    let best_times = |account: &Value| format!("/accounts/{}/best-times", account["id"].as_str().unwrap());
    let (status, none) = setup.call(Method::GET, &best_times(&x), None).await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(
        (none["source"].as_str(), none["confidence"].as_str()),
        (Some("none"), Some("none")),
        "{none}"
    );
    assert!(none["explanation"].as_str().unwrap().contains("at least 10"), "{none}");
    assert!(none["slots"].as_array().unwrap().is_empty());

    let mut ids = Vec::new();
    for i in 0..10 {
        let post = setup.schedule_now(&x, &format!("Open house, take {i}")).await;
        ids.push(post["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        setup.wait_status(id, "published", Duration::from_secs(20)).await;
    }
    let best = eventually(Duration::from_secs(20), "every post to be read and counted", || async {
        let (_, best) = setup.call(Method::GET, &best_times(&x), None).await;
        (best["posts"] == 10).then_some(best)
    })
    .await;
    assert_eq!(best["source"], "account", "{best}");
    assert_eq!(best["measure"], "engagement_rate", "{best}");
    assert_eq!(best["confidence"], "low", "{best}");
    assert!(best["definition"].as_str().unwrap().contains("impressions"), "{best}");
    // Ten posts in one hour (two if an hour turned while they went out).
    let slots = best["slots"].as_array().unwrap();
    assert!((1..=2).contains(&slots.len()), "{best}");
    let counted: u64 = best["hours"].as_array().unwrap().iter().map(|h| h["posts"].as_u64().unwrap()).sum();
    assert_eq!(counted, 10, "{best}");
    let soonest = slots.iter().map(|s| s["next_at"].as_str().unwrap().to_owned()).min().unwrap();

    let (_, borrowed) = setup.call(Method::GET, &best_times(&second), None).await;
    assert_eq!(borrowed["source"], "network", "{borrowed}");
    assert!(borrowed["explanation"].as_str().unwrap().contains("fewer than 10 of its own"), "{borrowed}");
    let (_, on_mastodon) = setup.call(Method::GET, &best_times(&mastodon), None).await;
    assert_eq!(on_mastodon["source"], "none", "{on_mastodon}");
    let (status, other) =
        setup.call(Method::GET, "/accounts/7d3c0c8e-5f1a-4c2e-9a51-3f1f0e7c2b11/best-times", None).await;
    assert_eq!(status, 404, "{other}");

    // The report over the same posts: totals, by network, every day, the
    // top posts; the CSV and the PDF of the same selection.
    let (status, report) = setup.call(Method::GET, "/analytics", None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["totals"]["posts"].as_i64(), report["totals"]["measured_posts"].as_i64()),
        (Some(10), Some(10)),
        "{report}"
    );
    assert!(report["totals"]["impressions"].as_i64().unwrap() > 0, "{report}");
    assert!(report["totals"]["engagement_rate"].as_f64().is_some(), "{report}");
    assert_eq!(report["bucket"], "day");
    assert_eq!(report["series"].as_array().unwrap().len(), 30, "every day of the default 30");
    assert_eq!(report["by_network"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["by_network"][0]["network"], "x");
    assert_eq!(report["top_posts"].as_array().unwrap().len(), 10);
    assert_eq!(report["previous"]["posts"], 0);
    let (_, only_mastodon) = setup.call(Method::GET, "/analytics?network=mastodon", None).await;
    assert_eq!(only_mastodon["totals"]["posts"], 0, "{only_mastodon}");
    assert!(only_mastodon["totals"]["impressions"].is_null(), "nothing reported is not 0: {only_mastodon}");
    for (query, field) in [
        ("bucket=year", "bucket"),
        ("from=2026-01-01&to=2027-06-01", "from"),
        ("to=someday", "to"),
        ("time_zone=Mars/Base", "time_zone"),
    ] {
        let (status, refused) = setup.call(Method::GET, &format!("/analytics?{query}"), None).await;
        assert_eq!(status, 422, "{query}: {refused}");
        assert!(refused.to_string().contains(field), "{query}: {refused}");
    }
    let (status, kind, csv) = setup.download("/analytics/posts.csv").await;
    assert_eq!((status, kind.as_str()), (200, "text/csv; charset=utf-8"));
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count(), 11, "a header and a row per post: {csv}");
    assert!(csv.contains("Open house, take 3"), "{csv}");
    let (status, kind, pdf) = setup.download("/analytics/report.pdf").await;
    assert_eq!((status, kind.as_str()), (200, "application/pdf"), "{}", String::from_utf8_lossy(&pdf));
    let text = String::from_utf8(marketer_tests::files::poppler("pdftotext", &[], &pdf)).unwrap();
    for expected in [
        "Analytics report",
        "All accounts, projects and campaigns",
        "Posts published",
        "Engagements by network",
        "Top posts by engagements",
        "Followers",
        "Open house, take",
        "Engagement rate over several posts",
    ] {
        assert!(text.contains(expected), "the PDF says {expected:?}: {text}");
    }
    let info = String::from_utf8(marketer_tests::files::poppler("pdfinfo", &[], &pdf)).unwrap();
    assert!(info.contains("Title:           Analytics report"), "{info}");
    let page = marketer_tests::files::poppler("pdftoppm", &["-r", "60"], &pdf);
    std::fs::write(
        marketer_tests::browser::screenshot_dir().join(format!("analytics-report-pdf-{postgres}.png")),
        page,
    )
    .unwrap();
    let (status, _, refused) =
        setup.download("/analytics/report.pdf?project_id=7d3c0c8e-5f1a-4c2e-9a51-3f1f0e7c2b11").await;
    assert_eq!(status, 404, "another organisation's project: {}", String::from_utf8_lossy(&refused));
    let (status, _, refused) =
        setup.download("/analytics/report.pdf?campaign_id=7d3c0c8e-5f1a-4c2e-9a51-3f1f0e7c2b11").await;
    let refused = String::from_utf8_lossy(&refused).into_owned();
    assert_eq!(status, 422, "{refused}");
    assert!(refused.contains("project_id"), "{refused}");

    let at_best = |account: &Value, text: &str| json!({ "account_id": account["id"], "text": text, "best_time": true, "approve": true });
    let (status, first) = setup.call(Method::POST, "/posts", Some(at_best(&x, "At the best time"))).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["scheduled_at"].as_str(), Some(soonest.as_str()), "{first} {best}");
    let (status, next) = setup.call(Method::POST, "/posts", Some(at_best(&x, "At the next best time"))).await;
    assert_eq!(status, 201, "{next}");
    assert!(next["scheduled_at"].as_str().unwrap() > soonest.as_str(), "the hour is taken: {next}");
    let (status, refused) =
        setup.call(Method::POST, "/posts", Some(at_best(&mastodon, "No best time yet"))).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("best_time"), "{refused}");
    setup.finish().await;
}

#[tokio::test]
async fn best_times_come_from_measured_posts_on_sqlite() {
    best_times_come_from_measured_posts(false).await;
}

#[tokio::test]
async fn best_times_come_from_measured_posts_on_postgres() {
    best_times_come_from_measured_posts(true).await;
}

async fn the_inbox_reads_mentions_and_replies_once(postgres: bool) {
    let env = [("MARKETER_INBOX_POLL_MS", "200")];
    let Some(setup) = Setup::start_with(postgres, &env).await else { return };
    let mastodon = setup.connect("mastodon").await;
    let account_id = mastodon["id"].as_str().unwrap().to_owned();
    let post = setup.schedule_now(&mastodon, "Open house on Saturday, 10 to 2").await;
    let post_id = post["id"].as_str().unwrap().to_owned();
    let published = setup.wait_status(&post_id, "published", Duration::from_secs(15)).await;
    let status_id = published["platform_post_id"].as_str().unwrap().to_owned();
    // The first read has happened (nothing yet): what comes now is all read.
    eventually(Duration::from_secs(10), "the inbox's first read", || async {
        setup.social.requests().iter().any(|r| r == "GET /api/v1/notifications").then_some(())
    })
    .await;

    // A reply to the post, a reply to that reply, and 44 mentions: more
    // than a page (40) in one round.
    let alice = setup.social.mention("alice", "Love it! Is parking <free>?", Some(&status_id));
    setup.social.mention("carol", "Same question as Alice", Some(&alice));
    for n in 0..44 {
        setup.social.mention("bob", &format!("Mention number {n}"), None);
    }
    let all = eventually(Duration::from_secs(20), "46 inbox items", || async {
        let (status, page) = setup.call(Method::GET, "/inbox?limit=200", None).await;
        assert_eq!(status, 200, "{page}");
        (page["items"].as_array().unwrap().len() == 46).then_some(page)
    })
    .await;
    assert_eq!(all["open"], 46);
    assert!(all["failing"].as_array().unwrap().is_empty(), "{all}");
    let items = all["items"].as_array().unwrap();
    let by = |handle: &str| items.iter().find(|i| i["author_handle"] == handle).unwrap().clone();
    let alices = by("@alice@elsewhere.example");
    assert_eq!(alices["kind"], "reply");
    assert_eq!(alices["post_id"], post_id.as_str(), "linked to the post it answers");
    assert_eq!(alices["author_name"], "Alice Example");
    assert_eq!(alices["text"], "@marketer Love it! Is parking <free>?", "plain text, entities decoded");
    assert_eq!(alices["url"], format!("https://elsewhere.example/@alice/{alice}"));
    assert_eq!(alices["status"], "open");
    let carols = by("@carol@elsewhere.example");
    assert_eq!(carols["kind"], "mention", "a reply to someone else that names the account");
    assert_eq!(carols["thread"], alices["thread"], "one thread");
    assert_eq!(alices["thread"], status_id.as_str());

    // Later rounds add nothing twice.
    let reads = setup.social.requests().iter().filter(|r| *r == "GET /api/v1/notifications").count();
    eventually(Duration::from_secs(10), "two more inbox rounds", || async {
        let now = setup.social.requests().iter().filter(|r| *r == "GET /api/v1/notifications").count();
        (now >= reads + 2).then_some(())
    })
    .await;
    let (_, again) = setup.call(Method::GET, "/inbox?limit=200", None).await;
    assert_eq!(again["items"].as_array().unwrap().len(), 46, "stored once");

    // Pages, newest first.
    let (_, first) = setup.call(Method::GET, "/inbox?limit=20", None).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 20);
    assert_eq!(first["items"][0]["text"], "@marketer Mention number 43");
    let before = first["next_before"].as_str().unwrap();
    let (_, second) = setup.call(Method::GET, &format!("/inbox?limit=20&before={before}"), None).await;
    let before = second["next_before"].as_str().unwrap();
    let (_, third) = setup.call(Method::GET, &format!("/inbox?limit=20&before={before}"), None).await;
    assert_eq!(third["items"].as_array().unwrap().len(), 6);
    assert!(third["next_before"].is_null());
    // One thread, and the filters.
    let thread = alices["thread"].as_str().unwrap();
    let (_, one) =
        setup.call(Method::GET, &format!("/inbox?account_id={account_id}&thread={thread}"), None).await;
    assert_eq!(one["items"].as_array().unwrap().len(), 2, "{one}");
    let (_, replies) = setup.call(Method::GET, "/inbox?kind=reply", None).await;
    assert_eq!(replies["items"].as_array().unwrap().len(), 1);

    // Worked: done, assigned, audited; bad changes are named.
    let (_, me) = setup.api.call(Method::GET, "/api/v1/me", None).await;
    let me = me["user"]["id"].as_str().unwrap();
    let item = format!("/inbox/{}", alices["id"].as_str().unwrap());
    let (status, done) =
        setup.call(Method::PATCH, &item, Some(json!({ "status": "done", "assignee_id": me }))).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!((done["status"].as_str(), done["assignee_id"].as_str()), (Some("done"), Some(me)));
    let (_, open) = setup.call(Method::GET, "/inbox?status=open&limit=1", None).await;
    assert_eq!(open["open"], 45);
    let (_, mine) = setup.call(Method::GET, &format!("/inbox?assignee={me}"), None).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let (status, cleared) = setup.call(Method::PATCH, &item, Some(json!({ "assignee_id": null }))).await;
    assert_eq!(status, 200);
    assert!(cleared["assignee_id"].is_null() && cleared["status"] == "done", "{cleared}");
    for (body, field) in [
        (json!({ "status": "closed" }), "status"),
        (json!({ "assignee_id": uuid::Uuid::now_v7() }), "assignee_id"),
        (json!({}), "status"),
    ] {
        let (status, error) = setup.call(Method::PATCH, &item, Some(body)).await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["error"]["details"]["field"], field, "{error}");
    }
    let (status, error) = setup.call(Method::GET, "/inbox?kind=dm", None).await;
    assert_eq!((status, error["error"]["details"]["field"].as_str()), (422, Some("kind")), "{error}");
    let (status, _) = setup.call(Method::GET, &format!("/inbox/{}", uuid::Uuid::now_v7()), None).await;
    assert_eq!(status, 404);
    let (_, audit) = setup.call(Method::GET, "/audit-events?limit=100", None).await;
    assert!(audit["items"].as_array().unwrap().iter().any(|e| e["action"] == "inbox_item.update"));

    // Listening: a hashtag's public posts land in the inbox; the account's own are left out.
    for (body, field) in [
        (json!({ "account_id": account_id, "hashtag": "open house" }), "hashtag"),
        (json!({ "account_id": account_id, "hashtag": "#" }), "hashtag"),
        (json!({ "account_id": uuid::Uuid::now_v7(), "hashtag": "homes" }), "account_id"),
    ] {
        let (status, error) = setup.call(Method::POST, "/listening-queries", Some(body)).await;
        assert_eq!((status, error["error"]["details"]["field"].as_str()), (422, Some(field)), "{error}");
    }
    let body = json!({ "account_id": account_id, "hashtag": "#OpenHouse" });
    let (status, query) = setup.call(Method::POST, "/listening-queries", Some(body.clone())).await;
    assert_eq!(status, 201, "{query}");
    assert_eq!((query["kind"].as_str(), query["query"].as_str()), (Some("hashtag"), Some("OpenHouse")));
    let (status, _) = setup.call(Method::POST, "/listening-queries", Some(body)).await;
    assert_eq!(status, 409, "listened for already");
    let query_id = query["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(10), "the hashtag's first read", || async {
        setup.social.requests().iter().any(|r| r == "GET /api/v1/timelines/tag/OpenHouse").then_some(())
    })
    .await;
    setup.social.tagged("frank", "Anyone going on Saturday?", "openhouse");
    let found = eventually(Duration::from_secs(10), "the hashtag's find", || async {
        let (_, page) = setup.call(Method::GET, &format!("/inbox?query_id={query_id}"), None).await;
        (page["items"].as_array().unwrap().len() == 1).then_some(page)
    })
    .await;
    let item = &found["items"][0];
    assert_eq!(
        (item["kind"].as_str(), item["query_id"].as_str()),
        (Some("listening"), Some(query_id.as_str()))
    );
    assert_eq!(item["text"], "Anyone going on Saturday? #openhouse");
    let (status, _) = setup.call(Method::DELETE, &format!("/listening-queries/{query_id}"), None).await;
    assert_eq!(status, 204);
    let (_, page) = setup.call(Method::GET, "/inbox?kind=listening", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "what it found stays");
    let (status, _) = setup.call(Method::DELETE, &format!("/listening-queries/{query_id}"), None).await;
    assert_eq!(status, 404);

    // Listening for a brand name: the instance's full-text search finds
    // it in any case; near matches the search also returns are left out.
    for (body, field) in [
        (json!({ "account_id": account_id, "keyword": "a" }), "keyword"),
        (json!({ "account_id": account_id, "keyword": "\"Acme\"" }), "keyword"),
        (json!({ "account_id": account_id, "keyword": "#acme" }), "keyword"),
        (json!({ "account_id": account_id, "keyword": "acme", "hashtag": "acme" }), "keyword"),
        (json!({ "account_id": account_id }), "hashtag"),
    ] {
        let (status, error) = setup.call(Method::POST, "/listening-queries", Some(body)).await;
        assert_eq!((status, error["error"]["details"]["field"].as_str()), (422, Some(field)), "{error}");
    }
    let body = json!({ "account_id": account_id, "keyword": "  Acme   Realty " });
    let (status, query) = setup.call(Method::POST, "/listening-queries", Some(body)).await;
    assert_eq!(status, 201, "{query}");
    assert_eq!((query["kind"].as_str(), query["query"].as_str()), (Some("keyword"), Some("Acme Realty")));
    let body = json!({ "account_id": account_id, "keyword": "acme realty" });
    let (status, again) = setup.call(Method::POST, "/listening-queries", Some(body)).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("listening_query_exists")), "{again}");
    let keyword_id = query["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(10), "the keyword's first search", || async {
        setup.social.requests().iter().any(|r| r == "GET /api/v2/search").then_some(())
    })
    .await;
    setup.social.says("hank", "Pacme realtyish is not a brand");
    setup.social.says("ivy", "realty and acme, the other way round");
    // More than a page (40) between two reads: search answers newest
    // first, so the round reads back to where the last one stopped.
    for n in 0..44 {
        setup.social.says("fan", &format!("acme realty fan post {n}"));
    }
    setup.social.says("gina", "Just toured a loft with ACME Realty's team, lovely people");
    let found = eventually(Duration::from_secs(10), "the keyword's finds", || async {
        let (_, page) =
            setup.call(Method::GET, &format!("/inbox?query_id={keyword_id}&limit=200"), None).await;
        (page["items"].as_array().unwrap().len() >= 45).then_some(page)
    })
    .await;
    let items = found["items"].as_array().unwrap();
    assert_eq!(items.len(), 45, "the whole phrase only, each once: {found}");
    assert_eq!(items[0]["text"], "Just toured a loft with ACME Realty's team, lovely people");
    assert_eq!(items[0]["kind"], "listening");
    assert!(
        items.iter().any(|i| i["text"] == "acme realty fan post 0"),
        "the oldest of the burst is read too"
    );
    let (_, queries) = setup.call(Method::GET, "/listening-queries", None).await;
    assert_eq!(queries.as_array().unwrap().len(), 1, "{queries}");
    assert!(queries[0]["error"].is_null(), "{queries}");

    // Carol deletes her status: her item is marked, its text kept, and it
    // can no longer be answered; Alice's is untouched.
    setup.social.delete_status(carols["platform_item_id"].as_str().unwrap());
    let carol_item = format!("/inbox/{}", carols["id"].as_str().unwrap());
    let deleted = eventually(Duration::from_secs(30), "Carol's deleted status to be marked", || async {
        let (_, item) = setup.call(Method::GET, &carol_item, None).await;
        item["deleted_at"].is_string().then_some(item)
    })
    .await;
    assert_eq!(deleted["text"], carols["text"], "its text is kept");
    let (status, refused) =
        setup.call(Method::POST, &format!("{carol_item}/reply"), Some(json!({ "text": "Hello" }))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("inbox_item_deleted")), "{refused}");
    let (_, alice_now) =
        setup.call(Method::GET, &format!("/inbox/{}", alices["id"].as_str().unwrap()), None).await;
    assert!(alice_now["deleted_at"].is_null(), "{alice_now}");
    assert!(
        setup.social.requests().iter().any(|r| r == "GET /api/v1/statuses"),
        "looked at with the batch read"
    );
    // A server whose batch read answers nothing: each item is asked about
    // on its own, and nothing else is marked deleted.
    setup.social.ignore_status_ids(true);
    let singles = |social: &FakeSocial| {
        social.requests().iter().filter(|r| r.starts_with("GET /api/v1/statuses/")).count()
    };
    eventually(Duration::from_secs(30), "items looked at one by one", || async {
        (singles(&setup.social) >= 20).then_some(())
    })
    .await;
    let (_, page) = setup.call(Method::GET, "/inbox?limit=200", None).await;
    let deleted = page["items"].as_array().unwrap().iter().filter(|i| i["deleted_at"].is_string()).count();
    assert_eq!(deleted, 1, "only Carol's");
    setup.social.ignore_status_ids(false);

    // A direct message arrives as a mention; its answer stays direct (no
    // more public than what it answers), an answer to a public status is
    // public.
    let dm = setup.social.direct_message("pat", "What is the asking price? Please keep this between us");
    let pats = eventually(Duration::from_secs(10), "the direct message in the inbox", || async {
        let (_, page) = setup.call(Method::GET, "/inbox?limit=200", None).await;
        page["items"].as_array().unwrap().iter().find(|i| i["platform_item_id"] == dm.as_str()).cloned()
    })
    .await;
    for (item, text, visibility) in
        [(&pats, "It is 450,000; happy to talk.", "direct"), (&alices, "Yes, parking is free.", "public")]
    {
        let path = format!("/inbox/{}/reply", item["id"].as_str().unwrap());
        let (status, answered) = setup.call(Method::POST, &path, Some(json!({ "text": text }))).await;
        assert_eq!(status, 201, "{answered}");
        let post = answered["reply"]["post_id"].as_str().unwrap().to_owned();
        let sent = setup.wait_status(&post, "published", Duration::from_secs(15)).await;
        assert_eq!(setup.social.visibilities_of(sent["text"].as_str().unwrap()), [visibility], "{sent}");
    }

    // A token without read:notifications: the inbox says why, nothing is lost.
    setup.social.refuse_notifications(true);
    setup.social.mention("dave", "Anyone there?", None);
    let failing = eventually(Duration::from_secs(10), "the refusal to be shown", || async {
        let (_, page) = setup.call(Method::GET, "/inbox?limit=1", None).await;
        (!page["failing"].as_array().unwrap().is_empty()).then_some(page)
    })
    .await;
    let error = failing["failing"][0]["error"].as_str().unwrap();
    assert!(error.contains("read:notifications") && error.contains("reconnect"), "{error}");
    setup.finish().await;
}

#[tokio::test]
async fn the_inbox_reads_mentions_and_replies_once_on_sqlite() {
    the_inbox_reads_mentions_and_replies_once(false).await;
}

#[tokio::test]
async fn the_inbox_reads_mentions_and_replies_once_on_postgres() {
    the_inbox_reads_mentions_and_replies_once(true).await;
}

/// The inbox on X (the local server speaks X API v2): mentions and
/// replies to the account's posts, more than a page of them in one round,
/// land once each, linked to what they answer; a hashtag and a keyword
/// are listened for through recent search (near matches and the account's
/// own posts left out); a reply from the inbox is one post answering the
/// item; a post deleted on X is marked, its text kept.
#[tokio::test]
async fn the_inbox_reads_x_mentions_replies_and_searches_once() {
    let env = [("MARKETER_INBOX_POLL_MS", "200")];
    let Some(setup) = Setup::start_with(false, &env).await else { return };
    let x = setup.connect("x").await;
    let account_id = x["id"].as_str().unwrap().to_owned();
    let post = setup.schedule_now(&x, "Open house on Saturday, 10 to 2").await;
    let post_id = post["id"].as_str().unwrap().to_owned();
    let published = setup.wait_status(&post_id, "published", Duration::from_secs(15)).await;
    let tweet = published["platform_post_id"].as_str().unwrap().to_owned();
    for body in [
        json!({ "account_id": account_id, "hashtag": "OpenHouse" }),
        json!({ "account_id": account_id, "keyword": "Acme Realty" }),
    ] {
        let (status, query) = setup.call(Method::POST, "/listening-queries", Some(body)).await;
        assert_eq!(status, 201, "{query}");
    }
    let (_, queries) = setup.call(Method::GET, "/listening-queries", None).await;
    let query_of = |kind: &str| {
        queries.as_array().unwrap().iter().find(|q| q["kind"] == kind).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (hashtag_id, keyword_id) = (query_of("hashtag"), query_of("keyword"));
    // The first reads have happened (nothing yet): what comes now is all read.
    eventually(Duration::from_secs(10), "the first reads", || async {
        let requests = setup.social.requests();
        let mentions = requests.iter().any(|r| r.starts_with("GET /2/users/") && r.ends_with("/mentions"));
        (mentions && requests.iter().filter(|r| *r == "GET /2/tweets/search/recent").count() >= 2)
            .then_some(())
    })
    .await;

    let username = marketer_tests::social::x_user(0).1;
    let alice = setup.social.x_says(
        "alice",
        &format!("@{username} Is parking free? <asking> & thanks"),
        Some(&tweet),
    );
    setup.social.x_says("carol", &format!("@alice @{username} same question"), Some(&alice));
    for n in 0..104 {
        setup.social.x_says("bob", &format!("@{username} mention number {n}"), None);
    }
    let tagged = setup.social.x_says("dana", "Going to the #openhouse tomorrow", None);
    setup.social.x_says("erin", "Pacme realtyish is not a brand", None);
    let named = setup.social.x_says("frank", "Toured a loft with ACME Realty today", None);
    let all = eventually(Duration::from_secs(20), "108 inbox items", || async {
        let (status, page) = setup.call(Method::GET, "/inbox?limit=200", None).await;
        assert_eq!(status, 200, "{page}");
        (page["items"].as_array().unwrap().len() >= 108).then_some(page)
    })
    .await;
    assert!(all["failing"].as_array().unwrap().is_empty(), "{all}");
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 108, "each once, the near match left out");
    let by = |id: &str| {
        items.iter().find(|i| i["platform_item_id"] == id).unwrap_or_else(|| panic!("{id}")).clone()
    };
    let alices = by(&alice);
    assert_eq!((alices["kind"].as_str(), alices["network"].as_str()), (Some("reply"), Some("x")));
    assert_eq!(alices["post_id"], post_id.as_str(), "linked to the post it answers");
    assert_eq!(alices["in_reply_to"], tweet.as_str());
    assert_eq!(alices["author_handle"], "@alice");
    assert_eq!(alices["author_name"], "alice (X)");
    assert_eq!(
        alices["text"],
        format!("@{username} Is parking free? <asking> & thanks"),
        "X's entities decoded"
    );
    assert_eq!(alices["url"], format!("https://x.com/alice/status/{alice}"));
    let carols = items.iter().find(|i| i["author_handle"] == "@carol").unwrap();
    assert_eq!(carols["kind"], "mention", "a reply to someone else that names the account");
    assert_eq!(carols["thread"], alices["thread"], "in Alice's thread");
    assert_eq!(
        (by(&tagged)["kind"].as_str(), by(&tagged)["query_id"].as_str()),
        (Some("listening"), Some(hashtag_id.as_str()))
    );
    assert_eq!(by(&named)["query_id"], keyword_id.as_str());
    assert!(
        setup
            .social
            .requests()
            .iter()
            .filter(|r| r.starts_with("GET /2/users/") && r.ends_with("/mentions"))
            .count()
            >= 2,
        "more than a page read"
    );

    // Answered from the inbox: one post on X, answering Alice's.
    let path = format!("/inbox/{}/reply", alices["id"].as_str().unwrap());
    let (status, answered) =
        setup.call(Method::POST, &path, Some(json!({ "text": "Yes, parking is free." }))).await;
    assert_eq!(status, 201, "{answered}");
    let reply_post = answered["reply"]["post_id"].as_str().unwrap().to_owned();
    let sent = setup.wait_status(&reply_post, "published", Duration::from_secs(15)).await;
    let on_x: Vec<_> = setup
        .social
        .posts(Net::X)
        .into_iter()
        .filter(|p| p.in_reply_to.as_deref() == Some(alice.as_str()))
        .collect();
    assert_eq!(on_x.len(), 1, "{on_x:?}");
    assert_eq!(on_x[0].id, sent["platform_post_id"].as_str().unwrap());
    assert_eq!(on_x[0].text, "@alice Yes, parking is free.");

    // Alice deletes her post: marked, its text kept, not answerable again.
    setup.social.delete_status(&alice);
    let item = format!("/inbox/{}", alices["id"].as_str().unwrap());
    let deleted = eventually(Duration::from_secs(30), "Alice's deleted post to be marked", || async {
        let (_, item) = setup.call(Method::GET, &item, None).await;
        item["deleted_at"].is_string().then_some(item)
    })
    .await;
    assert_eq!(deleted["text"], alices["text"]);
    assert!(setup.social.requests().iter().any(|r| r == "GET /2/tweets"), "looked at with the batch read");
    let (_, page) = setup.call(Method::GET, "/inbox?limit=200", None).await;
    let marked = page["items"].as_array().unwrap().iter().filter(|i| i["deleted_at"].is_string()).count();
    assert_eq!(marked, 1, "only Alice's");
    assert_eq!(page["items"].as_array().unwrap().len(), 108, "later rounds add nothing");
    setup.finish().await;
}

async fn unknown_outcomes_are_reconciled_without_a_second_post(postgres: bool) {
    let Some(setup) = Setup::start(postgres).await else { return };
    let x = setup.connect("x").await;
    // The answer never comes (the client gives up after 1.5 s), though X created the post.
    setup.social.inject(Net::X, Fault::SlowAfterCreate(Duration::from_secs(4)));
    let post = setup.schedule_now(&x, "A post whose answer is lost").await;
    let id = post["id"].as_str().unwrap();
    let unconfirmed = setup.wait_status(id, "unconfirmed", Duration::from_secs(15)).await;
    assert!(
        unconfirmed["waiting"].as_str().unwrap().contains("before sending anything again"),
        "{unconfirmed}"
    );
    let published = setup.wait_status(id, "published", Duration::from_secs(15)).await;
    let on_x = setup.social.all_posts(Net::X);
    assert_eq!(on_x.len(), 1, "reconciled, not sent again: {on_x:?}");
    assert_eq!(published["platform_post_id"], on_x[0].id.as_str());
    let kinds: Vec<&str> =
        published["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["unknown", "found"]);
    let creates = setup.social.requests().iter().filter(|r| *r == "POST /2/tweets").count();
    assert_eq!(creates, 1, "one create request");

    // Mastodon answers 503 after creating: the same Idempotency-Key returns it.
    let mastodon = setup.connect("mastodon").await;
    setup.social.inject(Net::Mastodon, Fault::ErrorAfterCreate(503));
    let post = setup.schedule_now(&mastodon, "A status whose answer is a 503").await;
    setup.wait_status(post["id"].as_str().unwrap(), "published", Duration::from_secs(15)).await;
    assert_eq!(setup.social.all_posts(Net::Mastodon).len(), 1);
    setup.finish().await;
}

#[tokio::test]
async fn unknown_outcomes_are_reconciled_without_a_second_post_on_sqlite() {
    unknown_outcomes_are_reconciled_without_a_second_post(false).await;
}

#[tokio::test]
async fn unknown_outcomes_are_reconciled_without_a_second_post_on_postgres() {
    unknown_outcomes_are_reconciled_without_a_second_post(true).await;
}

#[tokio::test]
async fn a_server_killed_while_publishing_leaves_exactly_one_post() {
    let Some(mut setup) = Setup::start(false).await else { return };
    let x = setup.connect("x").await;
    setup.social.inject(Net::X, Fault::SlowAfterCreate(Duration::from_secs(1)));
    let post = setup.schedule_now(&x, "Published while the server dies").await;
    let id = post["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(10), "X to receive the post", || async {
        (!setup.social.all_posts(Net::X).is_empty()).then_some(())
    })
    .await;
    setup.server.take().unwrap().kill();
    let server = ServerProcess::spawn(&setup.options);
    setup.api.reconnect();
    setup.server = Some(server);
    let published = setup.wait_status(&id, "published", Duration::from_secs(20)).await;
    let on_x = setup.social.all_posts(Net::X);
    assert_eq!(on_x.len(), 1, "{on_x:?}");
    assert_eq!(published["platform_post_id"], on_x[0].id.as_str());
    setup.finish().await;
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_until_the_platforms_reset() {
    let Some(setup) = Setup::start(false).await else { return };
    let x = setup.connect("x").await;
    setup.social.inject(Net::X, Fault::RateLimited { reset_in: 3 });
    let post = setup.schedule_now(&x, "Rate limited at first").await;
    let id = post["id"].as_str().unwrap();
    let waiting = eventually(Duration::from_secs(10), "the post to wait for the rate limit", || async {
        let post = setup.post(id).await;
        (post["status"] == "scheduled" && post["waiting"].as_str().is_some_and(|w| w.contains("rate limit")))
            .then_some(post)
    })
    .await;
    assert!(waiting["waiting_until"].is_string(), "{waiting}");
    let (_, account) =
        setup.call(Method::GET, &format!("/accounts/{}", x["id"].as_str().unwrap()), None).await;
    assert_eq!(account["health"], "rate_limited", "{account}");
    let limited_at = std::time::Instant::now();
    setup.wait_status(id, "published", Duration::from_secs(15)).await;
    let on_x = setup.social.all_posts(Net::X);
    assert_eq!(on_x.len(), 1);
    assert!(on_x[0].received_at >= limited_at, "sent again only after the reset");
    setup.finish().await;
}

#[tokio::test]
async fn an_app_wide_limit_holds_every_account_until_its_reset() {
    let Some(setup) = Setup::start(false).await else { return };
    let first = setup.connect("x").await;
    setup.social.sign_in_as(1);
    let second = setup.connect("x").await;
    assert_ne!(first["id"], second["id"]);
    // Marketer's app spends X's 24-hour app limit on the first account's post.
    setup.social.inject(Net::X, Fault::AppLimited { reset_in: 3 });
    let a = setup.schedule_now(&first, "Hits the app limit").await;
    let a_id = a["id"].as_str().unwrap();
    eventually(Duration::from_secs(10), "the first post to wait", || async {
        let post = setup.post(a_id).await;
        post["waiting"].as_str().is_some_and(|w| w.contains("app")).then_some(())
    })
    .await;
    let limited_at = std::time::Instant::now();
    // Another account's post waits for the same reset instead of earning its own 429.
    let b = setup.schedule_now(&second, "Waits for the app's reset").await;
    let b_id = b["id"].as_str().unwrap();
    let waiting = setup.post(b_id).await;
    assert_eq!(waiting["status"], "scheduled", "{waiting}");
    assert!(waiting["waiting"].as_str().unwrap().contains("limit for Marketer's app"), "{waiting}");
    assert!(waiting["waiting_until"].is_string(), "{waiting}");
    let published = setup.wait_status(b_id, "published", Duration::from_secs(15)).await;
    setup.wait_status(a_id, "published", Duration::from_secs(15)).await;
    let kinds: Vec<&str> =
        published["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["published"], "sent once, after the reset");
    let on_x = setup.social.posts(Net::X);
    assert_eq!(on_x.len(), 2);
    let reset = limited_at + Duration::from_secs(1);
    assert!(on_x.iter().all(|p| p.received_at >= reset), "nothing sent before the reset");
    let creates = setup.social.requests().iter().filter(|r| *r == "POST /2/tweets").count();
    assert_eq!(creates, 3, "one 429, then one request per post");
    setup.finish().await;
}

#[tokio::test]
async fn ten_posts_due_at_once_cause_one_token_refresh() {
    let Some(setup) = Setup::start(false).await else { return };
    // The token X gives at connection expires within the refresh margin.
    setup.social.set_access_ttl(30);
    let x = setup.connect("x").await;
    setup.social.set_access_ttl(7200);
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(
            setup.schedule_now(&x, &format!("Post number {n} of ten")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        setup.wait_status(id, "published", Duration::from_secs(20)).await;
    }
    assert_eq!(setup.social.refreshes(), 1, "one refresh for ten posts");
    assert_eq!(setup.social.posts(Net::X).len(), 10);
    setup.finish().await;
}

#[tokio::test]
async fn refresh_failures_refused_and_passing() {
    let Some(setup) = Setup::start(false).await else { return };
    setup.social.set_access_ttl(1);
    let x = setup.connect("x").await;
    let account_id = x["id"].as_str().unwrap().to_owned();

    // A refresh answer without a new refresh token keeps the stored one:
    // the next refresh still works.
    setup.social.inject(Net::X, Fault::RefreshWithoutRefreshToken);
    let first = setup.schedule_now(&x, "After a refresh without a refresh token").await;
    setup.wait_status(first["id"].as_str().unwrap(), "published", Duration::from_secs(15)).await;
    let second = setup.schedule_now(&x, "After the next refresh").await;
    setup.wait_status(second["id"].as_str().unwrap(), "published", Duration::from_secs(15)).await;
    assert_eq!(setup.social.refreshes(), 2);

    // A 503 from the token endpoint: the account stays connected, the post
    // waits and goes after the backoff.
    setup.social.inject(Net::X, Fault::RefreshUnavailable);
    let third = setup.schedule_now(&x, "After a passing refresh failure").await;
    let id = third["id"].as_str().unwrap();
    eventually(Duration::from_secs(10), "the post to wait for the refresh", || async {
        let post = setup.post(id).await;
        post["waiting"].as_str().is_some_and(|w| w.contains("renewing the token failed")).then_some(())
    })
    .await;
    let (_, account) = setup.call(Method::GET, &format!("/accounts/{account_id}"), None).await;
    assert_eq!(account["health"], "connected", "a passing failure never disconnects: {account}");
    setup.wait_status(id, "published", Duration::from_secs(20)).await;

    // A refused refresh: the account needs reconnecting, the post waits and says why.
    setup.social.inject(Net::X, Fault::RefuseRefresh);
    let fourth = setup.schedule_now(&x, "After a refused refresh").await;
    let id = fourth["id"].as_str().unwrap();
    let waiting = eventually(Duration::from_secs(10), "the post to wait for a reconnect", || async {
        let post = setup.post(id).await;
        post["waiting"].as_str().is_some_and(|w| w.contains("connected again")).then_some(post)
    })
    .await;
    assert_eq!(waiting["status"], "scheduled");
    let (_, account) = setup.call(Method::GET, &format!("/accounts/{account_id}"), None).await;
    assert_eq!(account["health"], "needs_reconnect", "{account}");
    assert!(account["health_reason"].as_str().unwrap().contains("refused"), "{account}");
    let (_, audit) =
        setup.call(Method::GET, "/audit-events?action=social_account.needs_reconnect", None).await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");

    // Reconnecting sends the waiting post.
    setup.social.set_access_ttl(7200);
    setup.connect("x").await;
    setup.wait_status(id, "published", Duration::from_secs(15)).await;
    setup.finish().await;
}

async fn linkedin_posts_go_out_once_and_expired_tokens_are_renewed(postgres: bool) {
    let Some(setup) = Setup::start(postgres).await else { return };
    let li = setup.connect("linkedin").await;
    assert_eq!(li["network"], "linkedin");
    assert_eq!(li["handle"], "Marketer Test");
    assert!(li["token_expires_at"].is_string(), "LinkedIn tokens live 60 days: {li}");
    let account_id = li["id"].as_str().unwrap().to_owned();

    // LinkedIn's little text gives meaning to ( ) @ _ and more: the post reads as written.
    let text = "Launch day (finally) with @marketer_hq #launch";
    let post = setup.schedule_now(&li, text).await;
    let published =
        setup.wait_status(post["id"].as_str().unwrap(), "published", Duration::from_secs(15)).await;
    let on_li = setup.social.posts(Net::Linkedin);
    assert_eq!(on_li.len(), 1);
    assert_eq!(on_li[0].text, text);
    assert_eq!(published["platform_post_id"], on_li[0].id.as_str());
    assert!(
        published["url"].as_str().unwrap().starts_with("https://www.linkedin.com/feed/update/urn:li:share:")
    );

    // An expired token: renewed once (the refresh token is not rotated), then sent.
    setup.social.inject(Net::Linkedin, Fault::ExpiredToken);
    let second = setup.schedule_now(&li, "After an expired token").await;
    setup.wait_status(second["id"].as_str().unwrap(), "published", Duration::from_secs(15)).await;
    setup.social.inject(Net::Linkedin, Fault::ExpiredToken);
    let third = setup.schedule_now(&li, "After a second expired token").await;
    setup.wait_status(third["id"].as_str().unwrap(), "published", Duration::from_secs(15)).await;
    assert_eq!(setup.social.refreshes(), 2, "the same refresh token works twice");

    // The answer is lost after LinkedIn created the post: the author finder finds it.
    setup.social.inject(Net::Linkedin, Fault::SlowAfterCreate(Duration::from_secs(4)));
    let lost = setup.schedule_now(&li, "A LinkedIn post whose answer is lost").await;
    let found = setup.wait_status(lost["id"].as_str().unwrap(), "published", Duration::from_secs(20)).await;
    let creates = setup.social.requests().iter().filter(|r| *r == "POST /rest/posts").count();
    // Four posts; the two refused with an expired token were sent again after the refresh.
    assert_eq!(creates, 6, "{:?}", setup.social.requests());
    assert_eq!(setup.social.posts(Net::Linkedin).len(), 4);
    let kinds: Vec<&str> =
        found["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["unknown", "found"]);

    // Deleting a published post deletes it on LinkedIn.
    let (status, _) =
        setup.call(Method::DELETE, &format!("/posts/{}", post["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 204);
    assert_eq!(setup.social.posts(Net::Linkedin).len(), 3);

    // The organisation page the member administers was connected too (not the one they only
    // analyse); it posts as the page, and a lost answer is found among the page's posts.
    let (_, accounts) = setup.call(Method::GET, "/accounts", None).await;
    let accounts = accounts.as_array().unwrap();
    assert_eq!(accounts.len(), 2, "{accounts:?}");
    let page = accounts.iter().find(|a| a["handle"] == "Marketer Test Co").expect("the page").clone();
    assert_eq!(page["profile_url"], "https://www.linkedin.com/company/marketer-test-co/");
    setup.social.inject(Net::Linkedin, Fault::SlowAfterCreate(Duration::from_secs(4)));
    let news = setup.schedule_now(&page, "News from the company page").await;
    let found = setup.wait_status(news["id"].as_str().unwrap(), "published", Duration::from_secs(20)).await;
    let on_li = setup.social.posts(Net::Linkedin);
    assert_eq!(on_li.len(), 4);
    let posted = on_li.iter().find(|p| p.text == "News from the company page").unwrap();
    assert_eq!(
        (posted.user, found["platform_post_id"].as_str()),
        (1, Some(posted.id.as_str())),
        "as the page"
    );

    // A 429 without a reset header: the account waits for midnight UTC, when LinkedIn's day resets.
    setup.social.inject(Net::Linkedin, Fault::RateLimited { reset_in: 30 });
    let limited = setup.schedule_now(&li, "Rate limited on LinkedIn").await;
    let id = limited["id"].as_str().unwrap();
    let waiting = eventually(Duration::from_secs(10), "the post to wait for LinkedIn's day", || async {
        let post = setup.post(id).await;
        post["waiting"].as_str().is_some_and(|w| w.contains("limit")).then_some(post)
    })
    .await;
    let until = waiting["waiting_until"].as_str().unwrap();
    assert!(until.contains("T00:00:00"), "midnight UTC: {waiting}");
    let (_, account) = setup.call(Method::GET, &format!("/accounts/{account_id}"), None).await;
    assert_eq!(account["health"], "rate_limited", "{account}");
    setup.finish().await;
}

#[tokio::test]
async fn linkedin_posts_go_out_once_and_expired_tokens_are_renewed_on_sqlite() {
    linkedin_posts_go_out_once_and_expired_tokens_are_renewed(false).await;
}

#[tokio::test]
async fn linkedin_posts_go_out_once_and_expired_tokens_are_renewed_on_postgres() {
    linkedin_posts_go_out_once_and_expired_tokens_are_renewed(true).await;
}

async fn facebook_pages_publish_once_and_a_dead_token_asks_for_a_reconnect(postgres: bool) {
    let Some(setup) = Setup::start(postgres).await else { return };
    let page = setup.connect("facebook").await;
    assert_eq!(page["network"], "facebook");
    assert_eq!(page["handle"], "Marketer Test Page");
    assert!(page["token_expires_at"].is_null(), "Page tokens do not expire: {page}");
    let (_, accounts) = setup.call(Method::GET, "/accounts", None).await;
    assert_eq!(
        accounts.as_array().unwrap().len(),
        1,
        "a Page the person may only read is not connected: {accounts}"
    );
    let account_id = page["id"].as_str().unwrap().to_owned();

    let post = setup.schedule_now(&page, "Open house this Saturday").await;
    let published =
        setup.wait_status(post["id"].as_str().unwrap(), "published", Duration::from_secs(15)).await;
    let on_fb = setup.social.posts(Net::Facebook);
    assert_eq!(on_fb.len(), 1);
    assert!(on_fb[0].id.starts_with(&format!("{}_", marketer_tests::social::FACEBOOK_PAGE_ID)));
    assert_eq!(published["url"], format!("https://www.facebook.com/{}", on_fb[0].id));

    // A transient error after Facebook created the post: the Page's feed has it.
    setup.social.inject(Net::Facebook, Fault::ErrorAfterCreate(500));
    let second = setup.schedule_now(&page, "A post whose answer was an error").await;
    let found = setup.wait_status(second["id"].as_str().unwrap(), "published", Duration::from_secs(20)).await;
    assert_eq!(setup.social.all_posts(Net::Facebook).len(), 2, "found, not sent again");
    assert_eq!(found["platform_post_id"], setup.social.posts(Net::Facebook)[1].id.as_str());

    // The same text twice in a row: refused (506), with what to do.
    let twice = setup.schedule_now(&page, "A post whose answer was an error").await;
    let failed = setup.wait_status(twice["id"].as_str().unwrap(), "failed", Duration::from_secs(15)).await;
    assert!(failed["error"].as_str().unwrap().contains("duplicate"), "{failed}");
    assert!(failed["error_hint"].as_str().unwrap().contains("change the text"), "{failed}");

    // Page tokens cannot be renewed: an invalid one (190) asks for a reconnect, audited, and the
    // post waits; reconnecting sends it.
    setup.social.inject(Net::Facebook, Fault::ExpiredToken);
    let dead = setup.schedule_now(&page, "After the Page token died").await;
    let id = dead["id"].as_str().unwrap();
    eventually(Duration::from_secs(10), "the post to wait for a reconnect", || async {
        let post = setup.post(id).await;
        post["waiting"].as_str().is_some_and(|w| w.contains("connected again")).then_some(())
    })
    .await;
    let (_, account) = setup.call(Method::GET, &format!("/accounts/{account_id}"), None).await;
    assert_eq!(account["health"], "needs_reconnect", "{account}");
    let (_, audit) =
        setup.call(Method::GET, "/audit-events?action=social_account.needs_reconnect", None).await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    let again = setup.connect("facebook").await;
    assert_eq!(again["id"], account_id.as_str(), "reconnecting keeps the account");
    setup.wait_status(id, "published", Duration::from_secs(15)).await;

    // Meta's throttle (80001 with a usage header at 100 %): the account waits Meta's estimate.
    setup.social.inject(Net::Facebook, Fault::RateLimited { reset_in: 120 });
    let limited = setup.schedule_now(&page, "Throttled by Meta").await;
    let id = limited["id"].as_str().unwrap();
    let waiting = eventually(Duration::from_secs(10), "the post to wait for Meta", || async {
        let post = setup.post(id).await;
        post["waiting"].as_str().is_some_and(|w| w.contains("limit")).then_some(post)
    })
    .await;
    let until = time::OffsetDateTime::parse(
        waiting["waiting_until"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let wait = until - time::OffsetDateTime::now_utc();
    assert!(
        wait > time::Duration::seconds(60) && wait <= time::Duration::seconds(125),
        "two minutes: {waiting}"
    );
    let (status, _) = setup.call(Method::DELETE, &format!("/posts/{id}"), None).await;
    assert_eq!(status, 204);

    // Deleting a published post deletes it on the Page.
    let (status, _) =
        setup.call(Method::DELETE, &format!("/posts/{}", post["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 204);
    assert_eq!(setup.social.posts(Net::Facebook).len(), 2);
    setup.finish().await;
}

#[tokio::test]
async fn facebook_pages_publish_once_and_a_dead_token_asks_for_a_reconnect_on_sqlite() {
    facebook_pages_publish_once_and_a_dead_token_asks_for_a_reconnect(false).await;
}

#[tokio::test]
async fn facebook_pages_publish_once_and_a_dead_token_asks_for_a_reconnect_on_postgres() {
    facebook_pages_publish_once_and_a_dead_token_asks_for_a_reconnect(true).await;
}

async fn instagram_posts_go_out_in_two_steps_once(postgres: bool) {
    let Some(setup) = Setup::start(postgres).await else { return };
    let ig = setup.connect("instagram").await;
    assert_eq!(ig["network"], "instagram");
    assert_eq!(ig["handle"], "@marketer_ig");
    let image = setup.social.image_url();
    let create = |text: &str, image: Option<&str>| {
        let mut body = json!({ "account_id": ig["id"], "text": text, "now": true, "approve": true });
        if let Some(image) = image {
            body["image_url"] = json!(image);
        }
        setup.call(Method::POST, "/posts", Some(body))
    };

    // Instagram needs an image; X takes none (yet); both say so, naming the field.
    let (status, error) = create("No picture", None).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["details"]["field"], "image_url", "{error}");
    let x = setup.connect("x").await;
    let body = json!({ "account_id": x["id"], "text": "With a picture", "now": true, "approve": true, "image_url": image });
    let (status, error) = setup.call(Method::POST, "/posts", Some(body)).await;
    assert_eq!(status, 422, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("text only"), "{error}");

    // Container first (recorded on the post), then media_publish once Instagram has processed it.
    let (status, post) = create("Sunset over the bay #listing", Some(&image)).await;
    assert_eq!(status, 201, "{post}");
    assert_eq!(post["image_url"], image.as_str());
    let published =
        setup.wait_status(post["id"].as_str().unwrap(), "published", Duration::from_secs(20)).await;
    let media = setup.social.posts(Net::Instagram);
    assert_eq!(media.len(), 1);
    assert_eq!(media[0].text, "Sunset over the bay #listing");
    assert_eq!(published["platform_post_id"], media[0].id.as_str());
    assert_eq!(published["url"], format!("https://www.instagram.com/p/{}/", media[0].id));
    let kinds: Vec<&str> =
        published["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["prepared", "published"]);

    // media_publish's answer is lost after it published: the container says PUBLISHED,
    // the media is found by its caption, and nothing is published twice.
    setup.social.inject(Net::Instagram, Fault::SlowAfterCreate(Duration::from_secs(4)));
    let (_, lost) = create("Open house on Sunday", Some(&image)).await;
    let found = setup.wait_status(lost["id"].as_str().unwrap(), "published", Duration::from_secs(25)).await;
    let kinds: Vec<&str> =
        found["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["prepared", "unknown", "found"]);
    assert_eq!(setup.social.all_posts(Net::Instagram).len(), 2);
    let publishes = setup.social.requests().iter().filter(|r| r.ends_with("/media_publish")).count();
    assert_eq!(publishes, 2, "one media_publish per post");

    // A transient error after publishing: the same.
    setup.social.inject(Net::Instagram, Fault::ErrorAfterCreate(500));
    let (_, flaky) = create("Price reduced", Some(&image)).await;
    setup.wait_status(flaky["id"].as_str().unwrap(), "published", Duration::from_secs(25)).await;
    assert_eq!(setup.social.all_posts(Net::Instagram).len(), 3);

    // An address that is not a JPEG Instagram can download: failed, with what to do.
    let (_, bad) = create("Broken picture", Some(&format!("{}/images/photo.png", setup.social.url()))).await;
    let failed = setup.wait_status(bad["id"].as_str().unwrap(), "failed", Duration::from_secs(15)).await;
    assert!(failed["error"].as_str().unwrap().contains("could not be fetched"), "{failed}");
    assert!(failed["error_hint"].as_str().unwrap().contains("JPEG"), "{failed}");

    // Instagram does not let apps delete posts: a clear refusal, the post stays.
    let (status, error) =
        setup.call(Method::DELETE, &format!("/posts/{}", post["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 409, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("Instagram app"), "{error}");
    setup.finish().await;
}

#[tokio::test]
async fn instagram_posts_go_out_in_two_steps_once_on_sqlite() {
    instagram_posts_go_out_in_two_steps_once(false).await;
}

#[tokio::test]
async fn instagram_posts_go_out_in_two_steps_once_on_postgres() {
    instagram_posts_go_out_in_two_steps_once(true).await;
}

#[tokio::test]
async fn wall_times_that_do_not_exist_or_happen_twice_get_a_clear_answer() {
    let Some(setup) = Setup::start(false).await else { return };
    let x = setup.connect("x").await;
    let body = |local: &str, fold: Option<&str>| {
        let mut b = json!({ "account_id": x["id"], "text": "DST", "local_time": local, "time_zone": "America/New_York", "approve": true });
        if let Some(f) = fold {
            b["fold"] = json!(f);
        }
        b
    };
    let (status, error) = setup.call(Method::POST, "/posts", Some(body("2027-03-14T02:30", None))).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["details"]["field"], "local_time", "{error}");
    assert!(error.to_string().contains("does not exist"), "{error}");
    let (status, error) = setup.call(Method::POST, "/posts", Some(body("2027-11-07T01:30", None))).await;
    assert_eq!(status, 422, "{error}");
    assert!(error.to_string().contains("happens twice"), "{error}");
    let (status, post) =
        setup.call(Method::POST, "/posts", Some(body("2027-11-07T01:30", Some("later")))).await;
    assert_eq!(status, 201, "{post}");
    assert_eq!(post["scheduled_at"], "2027-11-07T06:30:00.000000Z");
    assert_eq!(post["scheduled_local"], "2027-11-07T01:30");

    // Slots are local times: the queue gives the next 09:00 in the account's zone.
    let slots: Vec<Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| json!({ "weekday": d, "time": "09:00" }))
        .collect();
    let (status, account) = setup
        .call(
            Method::PATCH,
            &format!("/accounts/{}", x["id"].as_str().unwrap()),
            Some(json!({ "posting_time_zone": "Europe/Berlin", "posting_slots": slots })),
        )
        .await;
    assert_eq!(status, 200, "{account}");
    let (status, queued) = setup
        .call(
            Method::POST,
            "/posts",
            Some(json!({ "account_id": x["id"], "text": "Queued", "queue": true, "approve": true })),
        )
        .await;
    assert_eq!(status, 201, "{queued}");
    assert!(queued["scheduled_local"].as_str().unwrap().ends_with("T09:00"), "{queued}");
    assert_eq!(queued["time_zone"], "Europe/Berlin");
    let (_, next) = setup
        .call(
            Method::POST,
            "/posts",
            Some(json!({ "account_id": x["id"], "text": "Queued too", "queue": true, "approve": true })),
        )
        .await;
    assert_ne!(next["scheduled_at"], queued["scheduled_at"], "the next free slot");

    // Unapproved posts are not scheduled; over-long ones are refused with the rule.
    let (status, error) = setup
        .call(
            Method::POST,
            "/posts",
            Some(json!({ "account_id": x["id"], "text": "Not approved", "now": true })),
        )
        .await;
    assert_eq!(status, 409, "{error}");
    let (status, error) = setup
        .call(
            Method::POST,
            "/posts",
            Some(json!({ "account_id": x["id"], "text": "x".repeat(281), "now": true, "approve": true })),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    assert!(error.to_string().contains("280"), "{error}");
    let (status, error) = setup
        .api
        .call(Method::PUT, "/api/v1/me/time-zone", Some(json!({ "time_zone": "Mars/Olympus" })))
        .await;
    assert_eq!(status, 422, "{error}");
    let (status, zone) = setup
        .api
        .call(Method::PUT, "/api/v1/me/time-zone", Some(json!({ "time_zone": "Europe/Berlin" })))
        .await;
    assert_eq!((status, zone["time_zone"].as_str()), (200, Some("Europe/Berlin")));
    setup.finish().await;
}

#[tokio::test]
async fn an_idempotency_key_creates_one_post() {
    let Some(setup) = Setup::start(false).await else { return };
    let x = setup.connect("x").await;
    let send = || async {
        let response = setup
            .api
            .http
            .post(format!("{}{}", setup.api.base_url, setup.api.tenant_path("/posts")))
            .bearer_auth(&setup.api.token)
            .header("Idempotency-Key", "campaign-42-x")
            .json(&json!({ "account_id": x["id"], "text": "Once only" }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let (first_status, first) = send().await;
    let (second_status, second) = send().await;
    assert_eq!((first_status, second_status), (201, 200));
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["status"], "draft");
    setup.finish().await;
}

#[tokio::test]
async fn posts_belong_to_a_campaign_of_their_project() {
    let Some(setup) = Setup::start(false).await else { return };
    let x = setup.connect("x").await;
    let (_, project) = setup.call(Method::POST, "/projects", Some(json!({ "name": "Spring" }))).await;
    let project = project["id"].as_str().unwrap().to_owned();
    let (status, campaign) = setup
        .call(Method::POST, &format!("/projects/{project}/campaigns"), Some(json!({ "name": "Launch week" })))
        .await;
    assert_eq!(status, 201, "{campaign}");
    let campaign = campaign["id"].as_str().unwrap().to_owned();
    let body = |campaign: &str, project: Option<&str>| {
        let mut b =
            json!({ "account_id": x["id"], "text": format!("In {campaign}"), "campaign_id": campaign });
        if let Some(p) = project {
            b["project_id"] = json!(p);
        }
        b
    };
    let (status, error) = setup.call(Method::POST, "/posts", Some(body(&campaign, None))).await;
    assert_eq!((status, &error["error"]["details"]["field"]), (422, &json!("project_id")), "{error}");
    let unknown = uuid::Uuid::now_v7().to_string();
    let (status, error) = setup.call(Method::POST, "/posts", Some(body(&unknown, Some(&project)))).await;
    assert_eq!((status, &error["error"]["details"]["field"]), (422, &json!("campaign_id")), "{error}");
    let (status, post) = setup.call(Method::POST, "/posts", Some(body(&campaign, Some(&project)))).await;
    assert_eq!(status, 201, "{post}");
    setup.call(Method::POST, "/posts", Some(json!({ "account_id": x["id"], "text": "Outside" }))).await;
    let (_, listed) = setup.call(Method::GET, &format!("/posts?campaign_id={campaign}"), None).await;
    let ids: Vec<&Value> = listed.as_array().unwrap().iter().map(|p| &p["id"]).collect();
    assert_eq!(ids, [&post["id"]]);
    setup.finish().await;
}

#[tokio::test]
async fn two_replicas_publish_a_hundred_posts_once_each_and_read_their_metrics_and_inbox_once() {
    // Metrics are read at once, and both replicas look for due posts five times a second.
    let env = [
        ("MARKETER_ANALYTICS_FIRST_READING_SECONDS", "0"),
        ("MARKETER_ANALYTICS_POLL_MS", "200"),
        ("MARKETER_INBOX_POLL_MS", "200"),
    ];
    let Some(mut setup) = Setup::start_with(true, &env).await else { return };
    let mastodon = setup.connect("mastodon").await;
    let db_url = setup.db.as_ref().unwrap().url.clone();
    let mut options = configure(ServerOptions::new(setup._data.path()), &setup.social)
        .env("MARKETER_DATABASE_URL", &db_url);
    for (key, value) in env {
        options = options.env(key, value);
    }
    let second = ServerProcess::spawn(&options);
    let mut ids = Vec::new();
    for n in 0..100 {
        ids.push(
            setup.schedule_now(&mastodon, &format!("Replicated post {n}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        setup.wait_status(id, "published", Duration::from_secs(60)).await;
    }
    let statuses = setup.social.all_posts(Net::Mastodon);
    assert_eq!(statuses.len(), 100, "each published once");
    let creates = setup.social.requests().iter().filter(|r| *r == "POST /api/v1/statuses").count();
    assert_eq!(creates, 100, "no post was sent twice");
    // Each post's first reading is taken once, by one of the two replicas.
    eventually(Duration::from_secs(60), "every post's first reading", || async {
        statuses.iter().all(|s| setup.social.metric_reads(&s.id) >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reads: Vec<i64> = statuses.iter().map(|s| setup.social.metric_reads(&s.id)).collect();
    assert!(reads.iter().all(|n| *n == 1), "each post read once per round: {reads:?}");
    for id in ids.iter().take(5) {
        assert_eq!(setup.metrics(id).await["readings"].as_array().unwrap().len(), 1);
    }
    // Both replicas read the inbox: each mention is stored once.
    for (n, status) in statuses.iter().take(5).enumerate() {
        setup.social.mention("eve", &format!("Seen from two replicas {n}"), Some(&status.id));
    }
    let page = eventually(Duration::from_secs(30), "five inbox items", || async {
        let (_, page) = setup.call(Method::GET, "/inbox?limit=200", None).await;
        (page["items"].as_array().unwrap().len() >= 5).then_some(page)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, again) = setup.call(Method::GET, "/inbox?limit=200", None).await;
    assert_eq!(again["items"].as_array().unwrap().len(), 5, "{page}");
    second.kill();
    setup.server.take().unwrap().kill();
    setup.finish().await;
}

#[tokio::test]
async fn bluesky_posts_reach_the_reference_pds_once_even_when_an_answer_is_lost() {
    let Some(pds) = marketer_tests::social::Pds::start() else { return };
    let env = [("MARKETER_ANALYTICS_FIRST_READING_SECONDS", "0"), ("MARKETER_ANALYTICS_POLL_MS", "200")];
    let Some(setup) = Setup::start_with(false, &env).await else { return };
    // Everything goes through a proxy that can lose one answer.
    let proxy = marketer_tests::social::LosingProxy::start(&pds.url).await;
    let (status, error) = setup
        .call(
            Method::POST,
            "/accounts/bluesky",
            Some(
                json!({ "identifier": pds.handle, "app_password": "wrong-password", "service": proxy.url() }),
            ),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["details"]["field"], "app_password", "{error}");
    let (status, account) = setup
        .call(
            Method::POST,
            "/accounts/bluesky",
            Some(
                json!({ "identifier": pds.handle, "app_password": pds.app_password, "service": proxy.url() }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    assert_eq!(account["network"], "bluesky");
    assert_eq!(account["handle"], format!("@{}", pds.handle));
    assert!(account["token_expires_at"].is_string(), "the session's expiry is known: {account}");

    let post = setup.schedule_now(&account, "Hello from Marketer to the reference PDS 👋🏽").await;
    let published =
        setup.wait_status(post["id"].as_str().unwrap(), "published", Duration::from_secs(20)).await;
    let records = pds.posts().await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["value"]["text"], "Hello from Marketer to the reference PDS 👋🏽");
    let rkey = published["platform_post_id"].as_str().unwrap();
    assert!(records[0]["uri"].as_str().unwrap().ends_with(&format!("/app.bsky.feed.post/{rkey}")));
    assert_eq!(published["url"], format!("https://bsky.app/profile/{}/post/{rkey}", pds.handle));
    // Its counts come from the AppView (here a stand-in): no impressions on Bluesky.
    let first_id = post["id"].as_str().unwrap().to_owned();
    let read = eventually(Duration::from_secs(15), "the Bluesky post's first reading", || async {
        let m = setup.metrics(&first_id).await;
        (!m["readings"].as_array().unwrap().is_empty()).then_some(m)
    })
    .await;
    for metric in ["likes", "comments", "shares", "saves"] {
        assert!(read["latest"][metric].as_i64().is_some(), "{metric}: {read}");
    }
    assert!(read["latest"]["impressions"].is_null(), "{read}");
    let uri = records[0]["uri"].as_str().unwrap();
    assert!(setup.social.metric_reads(uri) >= 1, "read by its AT-URI");

    // The PDS creates the record but its answer is lost: unconfirmed, then
    // getRecord finds it; nothing is created twice.
    proxy.hold_next("createRecord", Duration::from_secs(4));
    let post = setup.schedule_now(&account, "This answer is lost on the way back").await;
    let id = post["id"].as_str().unwrap();
    setup.wait_status(id, "unconfirmed", Duration::from_secs(15)).await;
    let published = setup.wait_status(id, "published", Duration::from_secs(20)).await;
    let outcomes: Vec<&str> =
        published["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["unknown", "found"]);
    assert_eq!(pds.posts().await.len(), 2);

    // Deleting deletes the record.
    let (status, _) = setup.call(Method::DELETE, &format!("/posts/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(pds.posts().await.len(), 1);
    setup.finish().await;
}

/// The inbox on Bluesky against the reference network (PDS, AppView and
/// moderation service from `@atproto/dev-env`, on the PostgreSQL and Redis
/// that run here): a fan's reply to the brand's post, a mention, a
/// hashtag post and a post naming a listened-for keyword land once each
/// (a near match of the keyword does not), linked to what they answer; a reply from
/// the inbox reaches the PDS once as a proper reply (parent and root); a
/// post the fan deletes is marked deleted, its text kept, and can no
/// longer be answered.
#[tokio::test]
async fn bluesky_mentions_replies_and_hashtags_reach_the_inbox_and_one_reply_goes_back() {
    let Some(pds) = marketer_tests::social::Pds::start_network() else { return };
    let appview = pds.appview.clone().expect("the AppView's address");
    let env = [("MARKETER_INBOX_POLL_MS", "200"), ("MARKETER_BLUESKY_APPVIEW_URL", appview.as_str())];
    let Some(setup) = Setup::start_with(false, &env).await else { return };
    let body = json!({ "identifier": pds.handle, "app_password": pds.app_password, "service": pds.url });
    let (status, account) = setup.call(Method::POST, "/accounts/bluesky", Some(body)).await;
    assert_eq!(status, 201, "{account}");
    let account_id = account["id"].as_str().unwrap().to_owned();
    let body = json!({ "account_id": account_id, "hashtag": "#Wombats" });
    let (status, query) = setup.call(Method::POST, "/listening-queries", Some(body)).await;
    assert_eq!(status, 201, "{query}");
    let query_id = query["id"].as_str().unwrap().to_owned();
    let body = json!({ "account_id": account_id, "keyword": "Wombat Valley" });
    let (status, query) = setup.call(Method::POST, "/listening-queries", Some(body)).await;
    assert_eq!(status, 201, "{query}");
    let keyword_id = query["id"].as_str().unwrap().to_owned();

    let post = setup.schedule_now(&account, "Our open house is on Saturday").await;
    let post_id = post["id"].as_str().unwrap().to_owned();
    let published = setup.wait_status(&post_id, "published", Duration::from_secs(20)).await;
    let rkey = published["platform_post_id"].as_str().unwrap().to_owned();
    let record = pds.posts().await.into_iter().find(|r| r["uri"].as_str().unwrap().ends_with(&rkey)).unwrap();
    let ours = marketer_tests::social::PostRef {
        uri: record["uri"].as_str().unwrap().to_owned(),
        cid: record["cid"].as_str().unwrap().to_owned(),
    };
    // The AppView makes a reply's notification only once it knows the post
    // answered: the fan replies after it has indexed ours.
    let indexed = format!("{appview}/xrpc/app.bsky.feed.getPosts");
    eventually(Duration::from_secs(60), "the AppView to index the brand's post", || async {
        let found: Value = reqwest::Client::new()
            .get(format!("{indexed}?uris={}", ours.uri.replace(':', "%3A").replace('/', "%2F")))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (!found["posts"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let reply = pds.fan_posts("Is parking free on Saturday?", Some((&ours, &ours))).await;
    let mention = pds.fan_posts(&format!("@{} do you list lofts too?", pds.handle), None).await;
    let tagged = pds.fan_posts("Saw three today #wombats", None).await;
    // The AppView's search finds both; only the first says the name.
    let named = pds.fan_posts("Toured a loft at Wombat Valley Homes today", None).await;
    pds.fan_posts("The NotWombat Valley band played", None).await;

    let page = eventually(Duration::from_secs(120), "four Bluesky items in the inbox", || async {
        let (status, page) = setup.call(Method::GET, "/inbox?limit=50", None).await;
        assert_eq!(status, 200, "{page}");
        (page["items"].as_array().unwrap().len() >= 4).then_some(page)
    })
    .await;
    assert!(page["failing"].as_array().unwrap().is_empty(), "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{page}");
    let by = |uri: &str| {
        items.iter().find(|i| i["platform_item_id"] == uri).unwrap_or_else(|| panic!("{uri}: {page}")).clone()
    };
    let replied = by(&reply.uri);
    assert_eq!((replied["kind"].as_str(), replied["network"].as_str()), (Some("reply"), Some("bluesky")));
    assert_eq!(replied["post_id"], post_id.as_str(), "linked to the post it answers");
    assert_eq!(replied["in_reply_to"], rkey.as_str());
    assert_eq!(replied["author_handle"], "@fan.test");
    assert_eq!(replied["text"], "Is parking free on Saturday?");
    let rkey_of = |uri: &str| uri.rsplit('/').next().unwrap().to_owned();
    assert_eq!(replied["url"], format!("https://bsky.app/profile/fan.test/post/{}", rkey_of(&reply.uri)));
    assert_eq!(by(&mention.uri)["kind"], "mention");
    let found = by(&tagged.uri);
    assert_eq!(
        (found["kind"].as_str(), found["query_id"].as_str()),
        (Some("listening"), Some(query_id.as_str()))
    );
    let said = by(&named.uri);
    assert_eq!(
        (said["kind"].as_str(), said["query_id"].as_str()),
        (Some("listening"), Some(keyword_id.as_str()))
    );

    // Answered from the inbox: one record on the PDS, a reply to the
    // fan's post in the thread of ours.
    let path = format!("/inbox/{}/reply", replied["id"].as_str().unwrap());
    let (status, answered) =
        setup.call(Method::POST, &path, Some(json!({ "text": "Yes, parking is free." }))).await;
    assert_eq!(status, 201, "{answered}");
    let reply_post = answered["reply"]["post_id"].as_str().unwrap().to_owned();
    setup.wait_status(&reply_post, "published", Duration::from_secs(20)).await;
    let (status, again) = setup.call(Method::POST, &path, Some(json!({ "text": "Twice?" }))).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("inbox_item_answered")), "{again}");
    let records = pds.posts().await;
    let replies: Vec<&Value> = records.iter().filter(|r| r["value"]["reply"].is_object()).collect();
    assert_eq!(replies.len(), 1, "{records:?}");
    assert_eq!(replies[0]["value"]["text"], "@fan.test Yes, parking is free.");
    assert_eq!(replies[0]["value"]["reply"]["parent"]["uri"], reply.uri.as_str());
    assert_eq!(replies[0]["value"]["reply"]["parent"]["cid"], reply.cid.as_str());
    assert_eq!(replies[0]["value"]["reply"]["root"]["uri"], ours.uri.as_str());
    // The fan's handle in the text is a mention of them (their DID), as
    // Bluesky's apps write it.
    let fan_did = reply.uri.trim_start_matches("at://").split('/').next().unwrap();
    let facet = &replies[0]["value"]["facets"][0];
    assert_eq!(
        (facet["index"]["byteStart"].as_u64(), facet["index"]["byteEnd"].as_u64()),
        (Some(0), Some(9)),
        "{facet}"
    );
    assert_eq!(facet["features"][0]["$type"], "app.bsky.richtext.facet#mention");
    assert_eq!(facet["features"][0]["did"], fan_did);

    // The fan deletes their mention: marked, its text kept, not answerable.
    pds.fan_deletes(&mention).await;
    let id = by(&mention.uri)["id"].as_str().unwrap().to_owned();
    let deleted = eventually(Duration::from_secs(60), "the deleted mention to be marked", || async {
        let (_, item) = setup.call(Method::GET, &format!("/inbox/{id}"), None).await;
        item["deleted_at"].is_string().then_some(item)
    })
    .await;
    assert_eq!(deleted["text"], format!("@{} do you list lofts too?", pds.handle));
    let (status, refused) =
        setup.call(Method::POST, &format!("/inbox/{id}/reply"), Some(json!({ "text": "Yes" }))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("inbox_item_deleted")), "{refused}");
    let (_, still) =
        setup.call(Method::GET, &format!("/inbox/{}", found["id"].as_str().unwrap()), None).await;
    assert!(still["deleted_at"].is_null(), "only what was deleted is marked: {still}");

    // Later rounds store nothing twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, page) = setup.call(Method::GET, "/inbox?limit=50", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 4, "{page}");
    setup.finish().await;
}

#[tokio::test]
async fn a_post_whose_approval_is_late_is_held_not_published() {
    let Some(setup) = Setup::start(false).await else { return };
    let account = setup.connect("x").await;
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let at = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let body =
        json!({ "account_id": account["id"], "text": "Open house", "scheduled_at": at, "approve": true });
    let (status, post) = setup.call(Method::POST, "/posts", Some(body)).await;
    assert_eq!(status, 201, "{post}");
    let id = post["id"].as_str().unwrap().to_owned();
    // Edited after its approval: the new text is not approved.
    let (status, edited) = setup
        .call(Method::PATCH, &format!("/posts/{id}"), Some(json!({ "text": "Open house, new time" })))
        .await;
    assert_eq!((status, edited["approved"].as_bool()), (200, Some(false)), "{edited}");

    let held = setup.wait_status(&id, "needs_reschedule", Duration::from_secs(15)).await;
    assert!(held["waiting"].as_str().unwrap().contains("approval was not complete"), "{held}");
    assert!(setup.social.posts(Net::X).is_empty(), "nothing unapproved went out");
    let (_, audit) = setup.call(Method::GET, "/audit-events?action=post.hold", None).await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");

    // Rescheduling it without an approval is refused; approved, it goes out.
    let (status, answer) =
        setup.call(Method::PATCH, &format!("/posts/{id}"), Some(json!({ "now": true }))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("post_not_approved")), "{answer}");
    let (status, _) = setup
        .call(Method::PATCH, &format!("/posts/{id}"), Some(json!({ "now": true, "approve": true })))
        .await;
    assert_eq!(status, 200);
    setup.wait_status(&id, "published", Duration::from_secs(15)).await;
    assert_eq!(setup.social.posts(Net::X).len(), 1);
    setup.finish().await;
}
