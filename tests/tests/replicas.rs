//! Several control-plane replicas on one PostgreSQL database behind HAProxy
//! (`marketer_tests::replicas`): work submitted on one replica reaches an
//! agent on another at once (`LISTEN/NOTIFY`, not the sweep), a live event
//! stream on a third follows it, a revocation anywhere closes the agent's
//! connection wherever it is, agents fail over through the balancer when
//! their replica dies, and login throttling holds across replicas.

use std::time::{Duration, Instant};

use marketer_tests::ollama::Pace;
use marketer_tests::replicas::Replicas;
use marketer_tests::sse::SseStream;
use marketer_tests::{Api, eventually};
use reqwest::Method;
use serde_json::{Value, json};

const MODEL: &str = "llama3.2:3b";

fn chat(prompt: &str) -> Value {
    json!({ "kind": "chat", "model": MODEL, "messages": [{ "role": "user", "content": prompt }] })
}

async fn submit(api: &Api, body: Value) -> String {
    let (status, job) = api.call(Method::POST, &api.tenant_path("/jobs"), Some(body)).await;
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().unwrap().to_owned()
}

async fn job(api: &Api, id: &str) -> Value {
    let (status, job) = api.call(Method::GET, &api.tenant_path(&format!("/jobs/{id}")), None).await;
    assert_eq!(status, 200, "{job}");
    job
}

async fn wait_status(api: &Api, id: &str, status: &str, limit: Duration) -> Value {
    eventually(limit, &format!("job {id} to be {status}"), || async {
        let job = job(api, id).await;
        (job["status"] == status).then_some(job)
    })
    .await
}

async fn wait_agent(api: &Api, id: &str, state: &str) {
    eventually(Duration::from_secs(30), &format!("agent {id} {state}"), || async {
        let (_, agent) = api.call(Method::GET, &api.tenant_path(&format!("/agents/{id}")), None).await;
        (agent["state"] == state).then_some(())
    })
    .await;
}

/// `/metrics` of a replica (served to loopback without a token).
async fn metrics(base_url: &str) -> String {
    let response = reqwest::get(format!("{base_url}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of the sample named exactly `name` (with its labels).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

#[tokio::test]
async fn work_streams_and_revocations_cross_replicas_at_once() {
    // The sweep runs once a minute: only a signal can move work between
    // replicas within the test's limits.
    let Some(cluster) =
        Replicas::start(3, |o| o.fast_heartbeats().arg("--job-sweep-interval-ms").arg("60000")).await
    else {
        return;
    };
    cluster.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 200.0, tokens: 40 });
    // The agent holds its tunnel to replica 1.
    let home = tempfile::tempdir().unwrap();
    let host = cluster.host(home.path());
    let agent = cluster.enroll(&host, &cluster.direct_gateway(1)).await;
    let mut run = host.spawn_run(&[]);
    wait_agent(&cluster.api, &agent, "online").await;

    let on_a = cluster.direct(0).await;
    let on_c = cluster.direct(2).await;
    let mut latencies = Vec::new();
    for round in 0..5 {
        // Submitted on replica 0; replica 1's scheduler hears of it.
        let submitted = Instant::now();
        let id = submit(&on_a, chat(&format!("Round {round}: a tagline for a bakery"))).await;
        // Followed live on replica 2, from the first event.
        let mut stream = SseStream::open(&on_c, &on_c.tenant_path(&format!("/jobs/{id}/events")), None).await;
        let events = stream.collect(Duration::from_secs(20)).await;
        let started = wait_status(&on_a, &id, "succeeded", Duration::from_secs(20)).await;
        latencies.push(submitted.elapsed());
        let seqs: Vec<i64> = events.iter().map(|e| e.seq()).collect();
        let expected: Vec<i64> = (1..=i64::try_from(seqs.len()).unwrap()).collect();
        assert_eq!(seqs, expected, "every event once, in order, on another replica: {events:?}");
        let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(kinds.last(), Some(&"done"), "{kinds:?}");
        assert!(kinds.contains(&"chunk"), "the text streamed live: {kinds:?}");
        assert!(started["output"]["content"].as_str().is_some_and(|t| !t.is_empty()), "{started}");
    }
    eprintln!("submitted on one replica to finished via an agent on another: {latencies:?}");

    // Metrics: counters per replica add up to the work done; what is read
    // from the database is the same on every replica.
    let mut finished = 0.0;
    let mut dispatched = 0.0;
    for replica in 0..3 {
        let text = metrics(&cluster.server(replica).base_url).await;
        finished += metric(&text, "marketer_jobs_finished_total{outcome=\"succeeded\"}").unwrap_or(0.0);
        dispatched += metric(&text, "marketer_job_dispatch_duration_seconds_count").unwrap_or(0.0);
        assert_eq!(metric(&text, "marketer_agents{state=\"online\"}"), Some(1.0), "{text}");
        assert_eq!(metric(&text, "marketer_jobs{status=\"queued\"}"), Some(0.0), "{text}");
        assert_eq!(metric(&text, "marketer_database_up"), Some(1.0), "{text}");
        assert!(
            metric(&text, "marketer_certificate_expiry_timestamp_seconds{certificate=\"agent_ca\"}")
                .is_some_and(|t| t > 1.7e9),
            "{text}"
        );
    }
    assert_eq!(finished, 5.0, "each finished job counted once, on the replica that stored it");
    assert_eq!(dispatched, 5.0, "each assignment timed once");

    // Revoked on replica 0: the connection on replica 1 closes at once.
    let revoked = Instant::now();
    let (status, _) =
        on_a.call(Method::POST, &on_a.tenant_path(&format!("/agents/{agent}/revoke")), None).await;
    assert_eq!(status, 200);
    let exit = run.wait(Duration::from_secs(10)).and_then(|s| s.code());
    assert_eq!(exit, Some(3), "the revoked agent stops (exit 3)");
    eprintln!("revocation on one replica to the agent's exit on another: {:?}", revoked.elapsed());
    cluster.finish().await;
}

#[tokio::test]
async fn agents_fail_over_through_the_balancer_when_their_replica_dies() {
    let Some(mut cluster) =
        Replicas::start(2, |o| o.fast_heartbeats().arg("--shutdown-drain-seconds").arg("2")).await
    else {
        return;
    };
    // Login throttling is shared: failures on either replica count
    // together (five are free, the sixth waits), not five per replica.
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for attempt in 0..6 {
        let base = &cluster.server(attempt % 2).base_url;
        let response = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({ "email": "guess@example.com", "password": format!("guess number {attempt}") }))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429], "failures across replicas count together");

    let home = tempfile::tempdir().unwrap();
    let host = cluster.host(home.path());
    let gateway = cluster.options[0].gateway_url();
    let agent = cluster.enroll(&host, &gateway).await;
    let _run = host.spawn_run(&[]);
    wait_agent(&cluster.api, &agent, "online").await;
    let id = submit(&cluster.api, chat("Before anything fails")).await;
    wait_status(&cluster.api, &id, "succeeded", Duration::from_secs(20)).await;

    // Each replica in turn goes away (one of them held the agent's tunnel),
    // the first stopped gracefully (unready first, still answering, while
    // the balancer moves away), the second killed; each comes back; work
    // through the balancer goes on.
    for victim in 0..2 {
        if victim == 0 {
            let server = cluster.server(0);
            server.begin_terminate();
            eventually(Duration::from_secs(5), "the stopping replica to say it is unready", || async {
                let ready = reqwest::get(server.url("/readyz")).await.ok()?;
                (ready.status() == 503).then_some(())
            })
            .await;
            let alive = reqwest::get(server.url("/healthz")).await.unwrap();
            assert_eq!(alive.status(), 200, "it still serves while draining");
            cluster.stop(0);
        } else {
            cluster.kill(victim);
        }
        eventually(Duration::from_secs(10), "the balancer to drop the dead replica", || async {
            (cluster.balancer.up().await.len() == 1).then_some(())
        })
        .await;
        let id = submit(&cluster.api, chat(&format!("With replica {victim} down"))).await;
        wait_status(&cluster.api, &id, "succeeded", Duration::from_secs(60)).await;
        cluster.restart(victim);
        eventually(Duration::from_secs(10), "the balancer to take the replica back", || async {
            cluster.balancer.all_up(2).await.then_some(())
        })
        .await;
    }
    let id = submit(&cluster.api, chat("After both came back")).await;
    wait_status(&cluster.api, &id, "succeeded", Duration::from_secs(30)).await;
    cluster.finish().await;
}

#[tokio::test]
async fn an_agent_without_a_balancer_moves_to_its_fallback_server() {
    let Some(mut cluster) = Replicas::start(2, |o| o.fast_heartbeats()).await else { return };
    let home = tempfile::tempdir().unwrap();
    let host = cluster.host(home.path());
    // Enrolled with replica 0's own gateway; replica 1's is its fallback.
    let agent = cluster.enroll(&host, &cluster.direct_gateway(0)).await;
    let _run = host.spawn_run(&["--fallback-server", &cluster.direct_gateway(1)]);
    wait_agent(&cluster.api, &agent, "online").await;
    let on_b = cluster.direct(1).await;
    let id = submit(&on_b, chat("While replica 0 holds the tunnel")).await;
    wait_status(&on_b, &id, "succeeded", Duration::from_secs(20)).await;

    cluster.kill(0);
    let id = submit(&on_b, chat("After replica 0 died")).await;
    wait_status(&on_b, &id, "succeeded", Duration::from_secs(30)).await;
    let (_, events) =
        on_b.call(Method::GET, &on_b.tenant_path(&format!("/agents/{agent}/events?limit=200")), None).await;
    let connects = events["items"].as_array().unwrap().iter().filter(|e| e["kind"] == "connected").count();
    assert!(connects >= 2, "the agent connected again, to replica 1: {events}");
    cluster.finish().await;
}

/// Sends a request through the balancer until an answer other than a
/// gateway error comes back (a replica dying mid-request, the database
/// restarting); the caller makes the request safe to repeat.
async fn send_until_answered(api: &Api, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut request =
            api.http.request(method.clone(), format!("{}{path}", api.base_url)).bearer_auth(&api.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Ok(response) = request.timeout(Duration::from_secs(30)).send().await {
            let status = response.status().as_u16();
            if !matches!(status, 500 | 502 | 503 | 504) {
                return (status, response.json().await.unwrap_or(Value::Null));
            }
        }
        assert!(Instant::now() < deadline, "{method} {path} was never answered within two minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a resuming event-stream client saw: every event's id in order and
/// how many times it had to reconnect.
struct Followed {
    seqs: Vec<i64>,
    reconnects: usize,
}

/// Follows a job's events through the balancer to its `done`, reconnecting
/// with `Last-Event-ID` whenever the stream breaks, as a browser does.
async fn follow(api: Api, id: String) -> Followed {
    let url = format!("{}{}", api.base_url, api.tenant_path(&format!("/jobs/{id}/events")));
    let mut followed = Followed { seqs: Vec::new(), reconnects: 0 };
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut request = api.http.get(&url).bearer_auth(&api.token).header("accept", "text/event-stream");
        if let Some(last) = followed.seqs.last() {
            request = request.header("last-event-id", last.to_string());
        }
        if let Ok(response) = request.send().await
            && response.status() == 200
        {
            let mut stream = SseStream::from_response(response);
            while let Some(event) = stream.next().await {
                followed.seqs.push(event.seq());
                if event.event == "done" {
                    return followed;
                }
            }
        }
        assert!(Instant::now() < deadline, "job {id}'s stream never reached done: {:?}", followed.seqs);
        followed.reconnects += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kills_replicas_and_crashes_the_database_and_every_job_ends_once() {
    const JOBS: usize = 1_000;
    const ACTIVITIES: usize = 20;
    const LATE: usize = 6;
    // A lease grace that covers an agent's reconnect through the balancer;
    // quick retries; the sweep at its default as the safety net for
    // signals lost while the database is down.
    let Some(mut cluster) = Replicas::start_with_own_database(3, |o| {
        o.fast_heartbeats().arg("--job-lease-grace-seconds").arg("30").arg("--job-retry-base-ms").arg("100")
    })
    .await
    else {
        return;
    };
    let started = Instant::now();
    cluster.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 400.0, tokens: 20 });
    let gateway = cluster.options[0].gateway_url();
    let mut homes = Vec::new();
    let mut agents = Vec::new();
    let mut runs = Vec::new();
    for _ in 0..4 {
        let home = tempfile::tempdir().unwrap();
        let host = cluster.host(home.path());
        agents.push(cluster.enroll(&host, &gateway).await);
        runs.push(host.spawn_run(&[]));
        homes.push(home);
    }
    for agent in &agents {
        wait_agent(&cluster.api, agent, "online").await;
    }
    let (status, project) = cluster
        .api
        .call(
            Method::POST,
            &cluster.api.tenant_path("/projects"),
            Some(json!({ "name": "Chaos", "llm_policy": "edge_only", "default_model": MODEL })),
        )
        .await;
    assert_eq!(status, 201, "{project}");
    let activities_path =
        cluster.api.tenant_path(&format!("/projects/{}/activities", project["id"].as_str().unwrap()));

    // Jobs that start only after the chaos, followed from before it: every
    // replica is killed in turn, so each of these streams breaks at least
    // once and must resume without a gap or a repeat.
    let not_before = (time::OffsetDateTime::now_utc() + time::Duration::seconds(25))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut late = Vec::new();
    for n in 0..LATE {
        let body = json!({
            "kind": "chat", "model": MODEL, "idempotency_key": format!("chaos-late-{n}"), "not_before": not_before,
            "messages": [{ "role": "user", "content": format!("Late chaos job {n}") }],
        });
        let id = submit(&cluster.api, body).await;
        late.push(tokio::spawn(follow(cluster.api.clone(), id)));
    }

    // Jobs, through the balancer, by four clients, paced over the chaos;
    // each carries an idempotency key, so a submission whose answer was
    // lost is repeated safely. Every tenth is followed live.
    let (ids_tx, mut ids_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut submitters = Vec::new();
    for client in 0..4 {
        let api = cluster.api.clone();
        let ids = ids_tx.clone();
        submitters.push(tokio::spawn(async move {
            let mut followers = Vec::new();
            for n in (client..JOBS).step_by(4) {
                let body = json!({
                    "kind": "chat", "model": MODEL, "idempotency_key": format!("chaos-{n}"),
                    "messages": [{ "role": "user", "content": format!("Chaos job {n}") }],
                });
                let path = api.tenant_path("/jobs");
                let (status, job) = send_until_answered(&api, Method::POST, &path, Some(&body)).await;
                assert_eq!(status, 202, "{job}");
                let id = job["id"].as_str().unwrap().to_owned();
                if n % 10 == 0 {
                    followers.push(tokio::spawn(follow(api.clone(), id.clone())));
                }
                ids.send(id).unwrap();
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            followers
        }));
    }
    drop(ids_tx);
    // Activities have no idempotency key: a creation whose answer was lost
    // is looked for (each topic is unique) before it is sent again. They
    // wait for an agent: while the database is down, heartbeats are not
    // stored and the fleet can look offline for a moment.
    let creator = {
        let api = cluster.api.clone();
        let path = activities_path.clone();
        tokio::spawn(async move {
            for n in 0..ACTIVITIES {
                let topic = format!("Chaos activity {n}: why our bakery opens at six");
                let body = if n % 2 == 0 {
                    json!({ "kind": "social_post_set", "topic": topic, "platforms": ["x", "linkedin"],
                            "tone": "casual", "variants_per_platform": 1, "wait_for_agent": true })
                } else {
                    json!({ "kind": "blog_article", "topic": topic, "keywords": ["bread"], "audience": "neighbours",
                            "tone": "friendly", "target_word_count": 300, "platforms": ["x"], "wait_for_agent": true })
                };
                loop {
                    let response = api
                        .http
                        .post(format!("{}{path}", api.base_url))
                        .bearer_auth(&api.token)
                        .json(&body)
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await;
                    if let Ok(response) = &response
                        && response.status() == 202
                    {
                        break;
                    }
                    if let Ok(response) = &response {
                        assert!(
                            response.status().is_server_error(),
                            "creating an activity: {}",
                            response.status()
                        );
                    }
                    let (_, page) =
                        send_until_answered(&api, Method::GET, &format!("{path}?limit=100"), None).await;
                    if page.to_string().contains(&topic) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };

    // The chaos: each replica in turn killed and brought back, and the
    // database crashed and restarted once, while the work goes on.
    for victim in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.kill(victim);
        eventually(Duration::from_secs(10), "the balancer to drop the killed replica", || async {
            (cluster.balancer.up().await.len() == 2).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.restart(victim);
        eventually(Duration::from_secs(20), "the balancer to take the replica back", || async {
            cluster.balancer.all_up(3).await.then_some(())
        })
        .await;
        if victim == 1 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            tokio::task::block_in_place(|| cluster.crash_database(Duration::from_secs(2)));
        }
    }
    eprintln!("chaos over after {:?}", started.elapsed());

    let mut followers = Vec::new();
    for submitter in submitters {
        followers.extend(submitter.await.expect("a submitter"));
    }
    creator.await.expect("the activity creator");
    let mut ids = Vec::new();
    while let Some(id) = ids_rx.recv().await {
        ids.push(id);
    }
    assert_eq!(ids.len(), JOBS);

    // Every job ends, once.
    let database = sqlx::PgPool::connect(cluster.database_url()).await.expect("connect to the database");
    let tenant: uuid::Uuid = cluster.api.tenant.parse().unwrap();
    eventually(Duration::from_secs(180), "every job to finish", || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .bind(tenant)
        .fetch_one(&database)
        .await
        .unwrap();
        (open == 0).then_some(())
    })
    .await;
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM jobs WHERE tenant_id = $1 AND idempotency_key LIKE 'chaos-%' GROUP BY status",
    )
    .bind(tenant)
    .fetch_all(&database)
    .await
    .unwrap();
    assert_eq!(
        outcomes,
        [("succeeded".to_owned(), i64::try_from(JOBS + LATE).unwrap())],
        "one job per key, all done"
    );
    let twice: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
        "SELECT j.id, count(e.job_id) FROM jobs j LEFT JOIN job_events e ON e.job_id = j.id AND e.kind = 'done' \
         WHERE j.tenant_id = $1 GROUP BY j.id HAVING count(e.job_id) <> 1",
    )
    .bind(tenant)
    .fetch_all(&database)
    .await
    .unwrap();
    assert!(twice.is_empty(), "jobs without exactly one outcome: {twice:?}");
    let asked = cluster.ollama.chat_requests();
    for n in 0..JOBS {
        let prompt = format!("Chaos job {n}");
        assert!(
            asked.iter().any(|r| r["messages"][0]["content"] == prompt.as_str()),
            "job {n} never reached Ollama"
        );
    }
    let retried: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND idempotency_key LIKE 'chaos-%' AND attempts > 1",
    )
    .bind(tenant)
    .fetch_one(&database)
    .await
    .unwrap();

    // Every followed stream saw each event once, in order, to its end.
    let mut reconnects = 0;
    for follower in followers {
        let followed = follower.await.expect("a follower");
        let expected: Vec<i64> = (1..=i64::try_from(followed.seqs.len()).unwrap()).collect();
        assert_eq!(followed.seqs, expected, "an event missed or repeated across reconnects");
        reconnects += followed.reconnects;
    }
    for follower in late {
        let followed = follower.await.expect("a follower");
        let expected: Vec<i64> = (1..=i64::try_from(followed.seqs.len()).unwrap()).collect();
        assert_eq!(followed.seqs, expected, "an event missed or repeated across reconnects");
        assert!(followed.reconnects >= 1, "a stream open through every kill never broke");
        reconnects += followed.reconnects;
    }

    // No activity is stuck.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, page) =
            send_until_answered(&cluster.api, Method::GET, &format!("{activities_path}?limit=100"), None)
                .await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        assert!(items.iter().all(|a| a["status"] != "failed"), "an activity failed: {page}");
        assert!(items.len() <= ACTIVITIES, "an activity was created twice: {page}");
        if items.len() == ACTIVITIES && items.iter().all(|a| a["status"] == "review") {
            break;
        }
        let states: Vec<(&Value, &Value)> = items.iter().map(|a| (&a["title"], &a["status"])).collect();
        assert!(Instant::now() < deadline, "activities not all in review after three minutes: {states:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The fleet is whole again, as every replica sees it.
    for agent in &agents {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let path = cluster.api.tenant_path(&format!("/agents/{agent}"));
            let (_, state) = send_until_answered(&cluster.api, Method::GET, &path, None).await;
            if state["state"] == "online" {
                break;
            }
            if Instant::now() > deadline {
                let (_, history) =
                    send_until_answered(&cluster.api, Method::GET, &format!("{path}/events"), None).await;
                panic!("agent {agent} is not online again: {state}\nits history: {history}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for replica in 0..3 {
        let base = cluster.server(replica).base_url.clone();
        eventually(Duration::from_secs(10), "every replica to count four agents online", || async {
            (metric(&metrics(&base).await, "marketer_agents{state=\"online\"}") == Some(4.0)).then_some(())
        })
        .await;
    }
    eprintln!(
        "chaos: {JOBS} jobs and {ACTIVITIES} activities in {:?}; {retried} jobs needed a second attempt; \
         {reconnects} stream reconnects",
        started.elapsed()
    );
    database.close().await;
    drop(runs);
    cluster.finish().await;
}
