//! Every error class, its status and its body, and the promise that no input
//! produces a 500.

mod common;

use common::TestServer;
use marketer_control_plane::api::ApiConfig;
use reqwest::Method;
use serde_json::{Value, json};

fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"].get("details").is_some(), "{body}");
}

async fn raw(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let response = server
        .http
        .request(method, server.url(path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_error_class_has_its_status_and_shape() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let projects = format!("/api/v1/tenants/{tenant}/projects");

    let (s, b) = raw(&server, Method::POST, &projects, &token, "application/json", "{\"name\": ").await;
    assert_error(s, &b, 400, "malformed_json");
    let (s, b) = raw(&server, Method::POST, &projects, &token, "application/json", "").await;
    assert_error(s, &b, 400, "malformed_json");
    let (s, b) = raw(&server, Method::POST, &projects, &token, "text/plain", "{\"name\": \"x\"}").await;
    assert_error(s, &b, 415, "unsupported_media_type");

    for (body, field) in [
        (json!({}), "name"),
        (json!({ "name": 5 }), "name"),
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(201) }), "name"),
        (json!({ "name": "ok", "llm_policy": "sometimes" }), "llm_policy"),
        (json!({ "name": "ok", "default_model": "bad model!" }), "default_model"),
        (json!({ "name": "ok", "colour": "blue" }), "colour"),
        (json!(["name"]), "body"),
    ] {
        let (s, b) = server.post(&projects, &token, body.clone()).await;
        assert_error(s, &b, 422, "validation_failed");
        assert_eq!(b["error"]["details"]["field"], field, "{body}: {b}");
        assert!(
            b["error"]["message"].as_str().unwrap().starts_with(field),
            "the message names the field: {b}"
        );
    }
    let (s, b) = server
        .post(
            &format!(
                "/api/v1/tenants/{tenant}/projects/{}/campaigns",
                create_project(&server, &token, &tenant).await
            ),
            &token,
            json!({ "name": "C", "start_date": "2026-05-01", "end_date": "2026-04-01" }),
        )
        .await;
    assert_error(s, &b, 422, "validation_failed");
    assert_eq!(b["error"]["details"]["field"], "end_date");

    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (s, b) = raw(&server, Method::POST, &projects, &token, "application/json", huge).await;
    assert_error(s, &b, 413, "payload_too_large");

    for path in [
        format!("{projects}/{}", uuid::Uuid::now_v7()),
        format!("{projects}/not-a-uuid"),
        format!("/api/v1/tenants/{}/projects", uuid::Uuid::now_v7()),
        "/api/v1/tenants/12345".to_owned(),
        "/api/v1/nothing-here".to_owned(),
    ] {
        let (s, b) = server.get(&path, &token).await;
        assert_error(s, &b, 404, "not_found");
    }
    for query in ["?cursor=bm9wZQ", "?cursor=%%%", "?cursor=AQ"] {
        let (s, b) = server.get(&format!("{projects}{query}"), &token).await;
        assert_error(s, &b, 422, "validation_failed");
        assert_eq!(b["error"]["details"]["field"], "cursor");
    }
    for (query, status, code) in [
        ("?limit=0", 422, "validation_failed"),
        ("?limit=100000", 422, "validation_failed"),
        ("?limit=abc", 422, "validation_failed"),
        ("?limt=5", 422, "validation_failed"),
    ] {
        let (s, b) = server.get(&format!("{projects}{query}"), &token).await;
        assert_error(s, &b, status, code);
    }
    let (s, b) = server.get(&format!("/api/v1/tenants/{tenant}/audit-events?since=yesterday"), &token).await;
    assert_error(s, &b, 422, "validation_failed");
    assert_eq!(b["error"]["details"]["field"], "since", "{b}");

    let (s, b) = server.call(Method::GET, &projects, None, None).await;
    assert_error(s, &b, 401, "unauthenticated");
    let (s, b) = server.call(Method::PUT, &projects, Some(&token), None).await;
    assert_error(s, &b, 405, "method_not_allowed");
}

async fn create_project(server: &TestServer, token: &str, tenant: &str) -> String {
    let (_, p) = server
        .post(
            &format!("/api/v1/tenants/{tenant}/projects"),
            token,
            json!({ "name": format!("P{}", uuid::Uuid::now_v7()) }),
        )
        .await;
    p["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let config = ApiConfig { max_body_bytes: 2048, ..ApiConfig::default() };
    let server = TestServer::start_with(common::Backend::Sqlite, config).await.unwrap();
    let (token, tenant) = server.owner().await;
    let (s, b) = server
        .post(
            &format!("/api/v1/tenants/{tenant}/projects"),
            &token,
            json!({ "name": "ok", "description": "d".repeat(1500) }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = server
        .post(
            &format!("/api/v1/tenants/{tenant}/projects"),
            &token,
            json!({ "name": "big", "description": "d".repeat(3000) }),
        )
        .await;
    assert_error(s, &b, 413, "payload_too_large");
    assert_eq!(b["error"]["details"]["limit_bytes"], 2048);
}

/// Hostile and malformed input at every mutating route: never a 500.
#[tokio::test]
async fn no_input_produces_a_server_error() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let project = create_project(&server, &token, &tenant).await;
    let (_, doc) = server.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    let bodies = [
        "null",
        "true",
        "0",
        "\"x\"",
        "[]",
        "{}",
        "{\"name\": null}",
        "{\"name\": {\"$gt\": \"\"}}",
        "{\"name\": \"\\u0000\"}",
        "{\"name\": \"'; DROP TABLE users; --\"}",
        "{\"email\": \"a@b.c\", \"role\": \"god\"}",
        "{\"role\": \"owner\"}",
        "{\"token\": \"mkt_inv_\"}",
        "{\"refresh_token\": null}",
        "{\"password\": 1e400}",
        "{\"name\": \"\u{202e}evil\", \"slug\": \"--\"}",
        "{\"expires_at\": \"9999-99-99\"}",
        "{\"start_date\": \"2026-02-30\"}",
        "\u{feff}{}",
        "{\"a\":",
        "{\"name\": \"x\", \"name\": \"y\"}",
    ];
    let mut requests = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = template
            .replace("{tenant_id}", &tenant)
            .replace("{project_id}", &project)
            .replace("{campaign_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{user_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{invitation_id}", "zzz")
            .replace("{api_key_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{token_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{agent_id}", &uuid::Uuid::now_v7().to_string());
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            if !matches!(method, Method::POST | Method::PATCH | Method::DELETE) {
                continue;
            }
            for body in bodies {
                let (status, answer) =
                    raw(&server, method.clone(), &path, &token, "application/json", body).await;
                assert!(status < 500, "{method} {path} with {body:?}: {status} {answer}");
                assert!(answer.get("error").is_some() || status < 300, "{method} {path}: {answer}");
                requests += 1;
            }
        }
    }
    assert!(requests > 300, "{requests}");
    // The server is still healthy and the owner still signed in.
    assert_eq!(server.get("/api/v1/me", &token).await.0, 200);
}

#[tokio::test]
async fn responses_carry_request_ids_and_safe_headers() {
    let server = TestServer::start().await;
    let response =
        server.http.get(server.url("/healthz")).header("x-request-id", "trace-123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-123");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let response = server
        .http
        .get(server.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "an unusable id is replaced: {id}");
}

/// Values at and beyond the ends of every number and time a client can send.
const EXTREME_NUMBERS: &[&str] =
    &["-1", "0", "2147483648", "9223372036854775807", "-9223372036854775808", "1e308", "-1e308"];
const EXTREME_TIMES: &[&str] = &[
    "9999-12-31T23:59:59Z",
    "-9999-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z",
];
const EXTREME_DATES: &[&str] = &["-9999-01-01", "9999-12-31", "0000-01-01", "2026-02-30", "+10000-01-01"];

/// The numeric and time fields of a JSON schema's object (following
/// `$ref`s and one level of nested objects), as JSON pointers with their
/// kind.
fn extreme_fields(doc: &Value, schema: &Value, prefix: &str, out: &mut Vec<(String, &'static str)>) {
    let resolve = |s: &Value| -> Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => doc.pointer(&r.replacen('#', "", 1)).cloned().unwrap_or(Value::Null),
            None => s.clone(),
        }
    };
    let schema = resolve(schema);
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return };
    for (name, property) in properties {
        let mut property = resolve(property);
        // `Option<T>` is `oneOf: [null, T]` or `type: [T, null]`.
        if let Some(one) = property.get("oneOf").and_then(Value::as_array)
            && let Some(inner) = one.iter().find(|s| s.get("type") != Some(&json!("null")))
        {
            property = resolve(inner);
        }
        let types: Vec<String> = match property.get("type") {
            Some(Value::String(t)) => vec![t.clone()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let pointer = format!("{prefix}/{name}");
        if types.iter().any(|t| t == "integer" || t == "number") {
            out.push((pointer, "number"));
        } else if property.get("format").and_then(Value::as_str) == Some("date-time") {
            out.push((pointer, "time"));
        } else if types.iter().any(|t| t == "object") && prefix.is_empty() {
            extreme_fields(doc, &property, &pointer, out);
        }
    }
}

/// Every number and time field of every operation, at the ends of its
/// range and beyond (query parameters and request bodies): a 4xx naming
/// the problem, never a 500. Bodies start from a valid request where the
/// route needs one, so the extreme value reaches the arithmetic behind it.
#[tokio::test]
async fn extreme_numbers_and_times_never_produce_a_server_error() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let project = create_project(&server, &token, &tenant).await;
    let (_, doc) = server.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    let valid_bodies: &[(&str, Value)] = &[
        (
            "/jobs",
            json!({ "kind": "chat", "model": "llama3.2", "messages": [{ "role": "user", "content": "hi" }] }),
        ),
        ("/api-keys", json!({ "name": "k", "role": "member" })),
        ("/agent-tokens", json!({ "name": "edge", "max_uses": 1 })),
        ("/invitations", json!({ "email": "someone@example.com", "role": "member" })),
    ];
    let mut requests = 0;
    let mut checked_fields = std::collections::BTreeSet::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = template
            .replace("{tenant_id}", &tenant)
            .replace("{project_id}", &project)
            .replace("{campaign_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{activity_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{job_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{document_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{user_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{invitation_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{api_key_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{token_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{agent_id}", &uuid::Uuid::now_v7().to_string());
        if path.contains('{') || path.ends_with("/events") {
            continue;
        }
        for (method_name, operation) in item.as_object().unwrap() {
            let method: Method = method_name.to_uppercase().parse().unwrap();
            // Query parameters, one at a time.
            for param in operation["parameters"].as_array().into_iter().flatten() {
                if param["in"] != "query" {
                    continue;
                }
                let name = param["name"].as_str().unwrap();
                let values = EXTREME_NUMBERS.iter().chain(EXTREME_DATES).chain(EXTREME_TIMES);
                for value in values {
                    let url = format!("{path}?{name}={}", value.replace('+', "%2B"));
                    let (status, answer) =
                        raw(&server, method.clone(), &url, &token, "application/json", "").await;
                    assert!(status < 500, "{method} {url}: {status} {answer}");
                    requests += 1;
                }
                checked_fields.insert(format!("{method} {template}?{name}"));
            }
            // Request bodies, one field at a time on top of a valid body.
            let Some(schema) = operation.pointer("/requestBody/content/application~1json/schema") else {
                continue;
            };
            let mut fields = Vec::new();
            extreme_fields(&doc, schema, "", &mut fields);
            let base = valid_bodies
                .iter()
                .find(|(suffix, _)| template.ends_with(suffix))
                .map_or_else(|| json!({}), |(_, body)| body.clone());
            for (pointer, kind) in fields {
                let values = if kind == "number" { EXTREME_NUMBERS } else { EXTREME_TIMES };
                for value in values {
                    let mut body = base.clone();
                    let (parent, key) = pointer.rsplit_once('/').unwrap();
                    if !parent.is_empty() && body.pointer(parent).is_none() {
                        body[parent.trim_start_matches('/')] = json!({});
                    }
                    let parsed: Value =
                        if kind == "number" { serde_json::from_str(value).unwrap() } else { json!(value) };
                    body.pointer_mut(parent).unwrap()[key] = parsed;
                    // Times also paired with a queue timeout, the overflow seen.
                    if kind == "time" && body.get("kind") == Some(&json!("chat")) {
                        body["queue_timeout_seconds"] = json!(604800);
                    }
                    let (status, answer) =
                        raw(&server, method.clone(), &path, &token, "application/json", body.to_string())
                            .await;
                    assert!(status < 500, "{method} {path} with {body}: {status} {answer}");
                    if status >= 400 {
                        assert!(answer["error"]["message"].is_string(), "{method} {path}: {answer}");
                    }
                    requests += 1;
                }
                checked_fields.insert(format!("{method} {template} {pointer}"));
            }
        }
    }
    for expected in [
        "GET /api/v1/tenants/{tenant_id}/usage?to",
        "POST /api/v1/tenants/{tenant_id}/jobs /not_before",
        "POST /api/v1/tenants/{tenant_id}/jobs /options/num_ctx",
    ] {
        assert!(checked_fields.contains(expected), "{expected} not reached: {checked_fields:#?}");
    }
    assert!(requests > 200, "{requests}");
    // The two cases found by hand, with the field named.
    let (status, answer) =
        raw(&server, Method::GET, &format!("/api/v1/tenants/{tenant}/usage?to=-9999-01-01"), &token, "", "")
            .await;
    assert_error(status, &answer, 422, "validation_failed");
    assert_eq!(answer["error"]["details"]["field"], "to", "{answer}");
    // Beyond the representable range with a queue timeout (the reported
    // overflow), and beyond what a schedule may be.
    for (not_before, queue_timeout) in [("9999-12-31T23:59:59Z", Some(60)), ("2999-12-31T23:59:59Z", None)] {
        let mut job = valid_bodies[0].1.clone();
        job["not_before"] = json!(not_before);
        if let Some(seconds) = queue_timeout {
            job["queue_timeout_seconds"] = json!(seconds);
        }
        let jobs = format!("/api/v1/tenants/{tenant}/jobs");
        let (status, answer) =
            raw(&server, Method::POST, &jobs, &token, "application/json", job.to_string()).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["details"]["field"], "not_before", "{answer}");
    }
    assert_eq!(server.get("/healthz", &token).await.0, 200);
}

/// Reads what the server sends until it closes the connection or `limit`
/// passes; `None` when it was still open then.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: std::time::Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut received)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

async fn connect(server: &TestServer) -> tokio::net::TcpStream {
    let address = server.base.trim_start_matches("http://");
    tokio::net::TcpStream::connect(address).await.unwrap()
}

/// The API listener does not let a client hold a connection with half a
/// request, stall a body, or send a declared oversized body; and one
/// address cannot hold more than its share of connections. Before these
/// limits, 5,000 half-request connections were held indefinitely.
#[tokio::test]
async fn slow_and_greedy_clients_are_cut_off() {
    use marketer_control_plane::listener::ConnectionLimits;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let config = ApiConfig {
        max_body_bytes: 4096,
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_millis(500),
            body_idle_timeout: Duration::from_millis(500),
            per_address: 4,
        },
        ..ApiConfig::default()
    };
    let server = TestServer::start_with(common::Backend::Sqlite, config).await.unwrap();
    let (token, tenant) = server.owner().await;

    // Half a request line: closed once the head is overdue.
    let mut half = connect(&server).await;
    half.write_all(b"GET /heal").await.unwrap();
    let closed = read_until_closed(&mut half, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a half-sent request head keeps its connection");

    // A body shorter than its Content-Length: abandoned once it stalls.
    let mut short = connect(&server).await;
    let head = format!(
        "POST /api/v1/tenants/{tenant}/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"name\":"
    );
    short.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut short, Duration::from_secs(5)).await;
    let answer = answer.expect("a stalled body keeps its connection");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer}");

    // A declared oversized body: 413 at once, before any of it is sent.
    let mut big = connect(&server).await;
    let head = format!(
        "POST /api/v1/tenants/{tenant}/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    );
    big.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut big, Duration::from_secs(3)).await.expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large") && answer.contains("\"limit_bytes\":4096"), "{answer}");

    // Four connections from one address are held; a fifth is closed at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&server).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = connect(&server).await;
    let refused = read_until_closed(&mut fifth, Duration::from_millis(400)).await;
    assert_eq!(refused.as_deref(), Some(""), "the fifth connection is closed unanswered");
    // Once they are gone (closed by the head timeout), requests go through.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.get("/api/v1/me", &token).await.0, 200);
    let metrics = server.http.get(server.url("/metrics")).bearer_auth(&token).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(text.contains("connections_refused_total{listener=\"api\"} 1"), "{text}");
}

/// `/metrics` names every tenant: it is not public. Without a token only
/// this host is answered; with one, only a scraper that sends it.
#[tokio::test]
async fn metrics_are_not_public() {
    // Without a token: loopback only (through a trusted proxy, the client's
    // forwarded address counts).
    let config = ApiConfig { trust_proxy_headers: true, ..ApiConfig::default() };
    let server = TestServer::start_with(common::Backend::Sqlite, config).await.unwrap();
    let local = server.http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(local.status(), 200);
    let remote = server
        .http
        .get(server.url("/metrics"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(remote.status(), 403);
    let body: Value = remote.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("--metrics-token-file"), "{body}");

    // With a token: that token, from anywhere; nothing else.
    let config = ApiConfig {
        metrics_token: Some(secrecy::SecretString::from("scrape-token-0123456789".to_owned())),
        ..ApiConfig::default()
    };
    let server = TestServer::start_with(common::Backend::Sqlite, config).await.unwrap();
    let (owner_token, _) = server.owner().await;
    for presented in [None, Some("wrong-token-0123456789"), Some(owner_token.as_str())] {
        let mut request = server.http.get(server.url("/metrics"));
        if let Some(token) = presented {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), 401, "{presented:?}");
    }
    let scraped =
        server.http.get(server.url("/metrics")).bearer_auth("scrape-token-0123456789").send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("http_requests"));
}

/// Shutdown ends open event streams at once (the client reconnects with
/// its Last-Event-ID), instead of waiting out the whole grace period (5 s
/// here, 30 s by default) for each open progress page.
#[tokio::test]
async fn shutdown_ends_open_event_streams_at_once() {
    use futures_util::StreamExt;
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let body =
        json!({ "kind": "chat", "model": "llama3.2", "messages": [{ "role": "user", "content": "hi" }] });
    let (status, job) = server.post(&format!("/api/v1/tenants/{tenant}/jobs"), &token, body).await;
    assert!(status == 201 || status == 202, "{job}");
    let events = format!("/api/v1/tenants/{tenant}/jobs/{}/events", job["id"].as_str().unwrap());
    let response = server.http.get(server.url(&events)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next()).await;
    assert!(first.unwrap().is_some(), "the queued event arrives");
    let stopped = std::time::Instant::now();
    server.stop();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(4), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream was still open 4 s after shutdown began");
    assert!(stopped.elapsed() < std::time::Duration::from_secs(3), "{:?}", stopped.elapsed());
}

/// An activity's stream resumed with a run that does not exist is refused
/// with the header named, not replayed from the start.
#[tokio::test]
async fn an_unknown_run_in_last_event_id_is_refused() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let project = create_project(&server, &token, &tenant).await;
    let body = json!({ "kind": "blog_article", "topic": "Heat pumps", "wait_for_agent": true });
    let (status, activity) =
        server.post(&format!("/api/v1/tenants/{tenant}/projects/{project}/activities"), &token, body).await;
    assert_eq!(status, 202, "{activity}");
    let events = format!(
        "/api/v1/tenants/{tenant}/projects/{project}/activities/{}/events",
        activity["id"].as_str().unwrap()
    );
    for (id, field) in [("7:3", "Last-Event-ID"), ("0:1", "Last-Event-ID")] {
        let response = server
            .http
            .get(server.url(&events))
            .bearer_auth(&token)
            .header("last-event-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{id}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["details"]["field"], field, "{body}");
    }
    let response =
        server.http.get(server.url(&format!("{events}?after=9:1"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 422);
    // The current run resumes.
    let response = server
        .http
        .get(server.url(&events))
        .bearer_auth(&token)
        .header("last-event-id", "1:1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
