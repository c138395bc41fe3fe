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
        assert_error(s, &b, 400, "invalid_cursor");
    }
    for (query, status, code) in [
        ("?limit=0", 422, "validation_failed"),
        ("?limit=100000", 422, "validation_failed"),
        ("?limit=abc", 400, "invalid_query"),
        ("?limt=5", 400, "invalid_query"),
    ] {
        let (s, b) = server.get(&format!("{projects}{query}"), &token).await;
        assert_error(s, &b, status, code);
    }
    let (s, b) = server.get(&format!("/api/v1/tenants/{tenant}/audit-events?since=yesterday"), &token).await;
    assert_error(s, &b, 400, "invalid_query");
    assert!(b["error"]["message"].as_str().unwrap().starts_with("since"), "{b}");

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
