//! Projects, campaigns, the audit log, health, metrics and the OpenAPI
//! document over HTTP.

mod common;

use std::collections::BTreeSet;

use common::TestServer;
use marketer_control_plane::api;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn projects_and_campaigns_round_trip() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let base = format!("/api/v1/tenants/{tenant}/projects");
    let (status, project) = server
        .post(
            &base,
            &token,
            json!({
                "name": "  Spring Launch  ",
                "description": "Q2 campaign\nfor the new line",
                "brand_voice": "Warm, direct, no jargon.",
                "llm_policy": "cloud_allowed",
                "default_model": "llama3.2:3b",
            }),
        )
        .await;
    assert_eq!(status, 201, "{project}");
    assert_eq!(project["name"], "Spring Launch", "trimmed");
    let id = project["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7, "ids are UUIDv7");
    let (status, fetched) = server.get(&format!("{base}/{id}"), &token).await;
    assert_eq!((status, &fetched), (200, &project));

    let (status, updated) = server
        .patch(&format!("{base}/{id}"), &token, json!({ "default_model": null, "llm_policy": "edge_only" }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (updated["default_model"].is_null(), updated["llm_policy"].as_str()),
        (true, Some("edge_only"))
    );
    assert_eq!(updated["brand_voice"], "Warm, direct, no jargon.", "untouched fields stay");
    let (status, body) = server.post(&base, &token, json!({ "name": "spring launch" })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("project_name_taken")));

    let campaigns = format!("{base}/{id}/campaigns");
    let (status, campaign) = server
        .post(
            &campaigns,
            &token,
            json!({ "name": "Teaser", "start_date": "2026-04-01", "end_date": "2026-04-30" }),
        )
        .await;
    assert_eq!(status, 201, "{campaign}");
    assert_eq!(campaign["start_date"], "2026-04-01");
    let cid = campaign["id"].as_str().unwrap();
    let (_, campaign) =
        server.patch(&format!("{campaigns}/{cid}"), &token, json!({ "end_date": null })).await;
    assert!(campaign["end_date"].is_null());
    let (status, list) = server.get(&campaigns, &token).await;
    assert_eq!((status, list["items"].as_array().unwrap().len()), (200, 1));
    assert_eq!(server.get(&format!("{base}/{}/campaigns", uuid::Uuid::now_v7()), &token).await.0, 404);

    assert_eq!(server.delete(&format!("{base}/{id}"), &token).await.0, 204);
    assert_eq!(
        server.get(&format!("{campaigns}/{cid}"), &token).await.0,
        404,
        "campaigns go with their project"
    );
    assert_eq!(server.delete(&format!("{base}/{id}"), &token).await.0, 404);
}

#[tokio::test]
async fn lists_page_with_opaque_cursors() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let base = format!("/api/v1/tenants/{tenant}/projects");
    for i in 0..7 {
        assert_eq!(server.post(&base, &token, json!({ "name": format!("P{i}") })).await.0, 201);
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=3&cursor={c}"),
            None => "?limit=3".into(),
        };
        let (status, page) = server.get(&format!("{base}{query}"), &token).await;
        assert_eq!(status, 200);
        names
            .extend(page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["P0", "P1", "P2", "P3", "P4", "P5", "P6"]);
}

#[tokio::test]
async fn every_mutation_is_audited_and_the_log_cannot_be_changed() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let (_, project) = server
        .post(&format!("/api/v1/tenants/{tenant}/projects"), &token, json!({ "name": "Audited" }))
        .await;
    let pid = project["id"].as_str().unwrap();
    server
        .patch(&format!("/api/v1/tenants/{tenant}/projects/{pid}"), &token, json!({ "description": "x" }))
        .await;
    server.delete(&format!("/api/v1/tenants/{tenant}/projects/{pid}"), &token).await;
    server
        .post(&format!("/api/v1/tenants/{tenant}/api-keys"), &token, json!({ "name": "k", "role": "viewer" }))
        .await;
    server.patch(&format!("/api/v1/tenants/{tenant}"), &token, json!({ "name": "Renamed" })).await;

    let (status, log) = server.get(&format!("/api/v1/tenants/{tenant}/audit-events?limit=200"), &token).await;
    assert_eq!(status, 200);
    let actions: Vec<_> =
        log["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    for expected in [
        "tenant.update",
        "api_key.create",
        "project.delete",
        "project.update",
        "project.create",
        "auth.login",
        "system.bootstrap",
    ] {
        assert!(actions.contains(&expected.to_owned()), "{expected} missing from {actions:?}");
    }
    let created = log["items"].as_array().unwrap().iter().find(|e| e["action"] == "project.create").unwrap();
    assert_eq!(
        (created["resource_type"].as_str(), created["resource_id"].as_str()),
        (Some("project"), Some(pid))
    );
    assert_eq!(created["actor"]["type"], "user");
    assert_eq!(created["outcome"], "success");
    assert!(!log.to_string().contains("mkt_ak_"), "secrets never reach the log");

    // There is no way to change or delete entries.
    let entry = created["id"].as_str().unwrap();
    for method in [Method::PATCH, Method::DELETE, Method::PUT] {
        let (status, _) = server
            .call(
                method.clone(),
                &format!("/api/v1/tenants/{tenant}/audit-events/{entry}"),
                Some(&token),
                None,
            )
            .await;
        assert!(status == 404 || status == 405, "{method}: {status}");
        let (status, _) = server
            .call(method.clone(), &format!("/api/v1/tenants/{tenant}/audit-events"), Some(&token), None)
            .await;
        assert_eq!(status, 405, "{method}");
    }

    let since = created["occurred_at"].as_str().unwrap();
    let (_, filtered) = server
        .get(&format!("/api/v1/tenants/{tenant}/audit-events?action=project.delete&since={since}"), &token)
        .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    let (status, body) = server
        .get(
            &format!(
                "/api/v1/tenants/{tenant}/audit-events?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z"
            ),
            &token,
        )
        .await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("until")));
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = TestServer::start().await;
    let (status, body) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body.as_str()), (200, Some("ok")));
    assert_eq!(server.call(Method::GET, "/readyz", None, None).await.0, 200);
    server.login(common::OWNER_EMAIL, common::PASSWORD).await;
    let text = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains(
            "marketer_http_requests_total{method=\"POST\",route=\"/api/v1/auth/login\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("marketer_logins_total{outcome=\"success\"} 1"), "{text}");
    assert!(text.contains("marketer_build_info{version="), "{text}");
    assert!(text.trim_end().ends_with("# EOF"));

    // With the database gone, the server is alive but not ready.
    server.db.store.close().await;
    let (status, body) = server.call(Method::GET, "/readyz", None, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("unavailable")));
    assert_eq!(server.call(Method::GET, "/healthz", None, None).await.0, 200);
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let server = TestServer::start().await;
    let (status, doc) = server.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    for expected in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.json",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/tenants",
        "/api/v1/tenants/{tenant_id}",
        "/api/v1/tenants/{tenant_id}/projects",
        "/api/v1/tenants/{tenant_id}/projects/{project_id}",
        "/api/v1/tenants/{tenant_id}/projects/{project_id}/campaigns",
        "/api/v1/tenants/{tenant_id}/projects/{project_id}/campaigns/{campaign_id}",
        "/api/v1/tenants/{tenant_id}/members",
        "/api/v1/tenants/{tenant_id}/members/{user_id}",
        "/api/v1/tenants/{tenant_id}/invitations",
        "/api/v1/tenants/{tenant_id}/invitations/{invitation_id}",
        "/api/v1/invitations/accept",
        "/api/v1/tenants/{tenant_id}/api-keys",
        "/api/v1/tenants/{tenant_id}/api-keys/{api_key_id}",
        "/api/v1/tenants/{tenant_id}/audit-events",
    ] {
        assert!(paths.contains(expected), "{expected} is not documented");
    }
    // Every documented operation is served: none answers 404 "route not found"
    // or 405 (other statuses are fine, the request carries no valid data).
    let (token, tenant) = server.owner().await;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = template.replace("{tenant_id}", &tenant).replace(['{', '}'], "");
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let (status, body) = server.call(method.clone(), &path, Some(&token), None).await;
            assert_ne!(status, 405, "{method} {template}");
            assert!(!(status == 404 && body["error"]["message"] == "route not found"), "{method} {template}");
        }
    }
    // Every mutating operation has an audited action as its operationId.
    let operations = api::openapi();
    let mut mutating = 0;
    for (path, item) in &operations.paths.paths {
        for op in [&item.post, &item.patch, &item.put, &item.delete].into_iter().flatten() {
            let id = op.operation_id.as_deref().unwrap_or_default();
            assert!(
                marketer_control_plane::service::actions::ALL.contains(&id),
                "{path}: operationId {id:?} is not an audit action"
            );
            mutating += 1;
        }
    }
    assert!(mutating >= 18, "{mutating}");
}

#[tokio::test]
async fn the_audit_log_of_a_period_exports_whole_as_json_lines_and_csv() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let since = "2000-01-01T00:00:00Z";
    for n in 0..205 {
        let (status, _) = server
            .post(
                &format!("/api/v1/tenants/{tenant}/projects"),
                &token,
                json!({ "name": format!("P{n}, \"q\"") }),
            )
            .await;
        assert_eq!(status, 201);
    }
    let until = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let until = until.format(&time::format_description::well_known::Rfc3339).unwrap();
    let export = |format: &str| {
        let url = server.url(&format!(
            "/api/v1/tenants/{tenant}/audit-events/export?format={format}&since={since}&until={until}"
        ));
        let request = server.http.get(url).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
            let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
            (status, kind, disposition, response.text().await.unwrap())
        }
    };
    let (status, kind, disposition, jsonl) = export("jsonl").await;
    assert_eq!((status, kind.as_str()), (200, "application/x-ndjson"));
    assert!(disposition.contains(".jsonl"), "{disposition}");
    let events: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let creates = events.iter().filter(|e| e["action"] == "project.create").count();
    assert_eq!(creates, 205, "every event of the period, across pages");
    let (status, kind, _, csv) = export("csv").await;
    assert_eq!((status, kind.as_str()), (200, "text/csv; charset=utf-8"));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // The same events, and the first export's own entry.
    assert_eq!(rows.len(), events.len() + 1);
    assert_eq!(&rows[0][7], "audit.export", "newest first");
    let row = rows.iter().find(|r| &r[7] == "project.create").unwrap();
    let details: serde_json::Value = serde_json::from_str(&row[11]).unwrap();
    assert!(details["name"].as_str().unwrap().ends_with(", \"q\""), "{details}");

    // The export is itself audited; a period is required and checked.
    let (_, log) =
        server.get(&format!("/api/v1/tenants/{tenant}/audit-events?action=audit.export"), &token).await;
    assert_eq!(log["items"].as_array().unwrap().len(), 2, "{log}");
    for (query, field) in
        [("format=csv", "since"), (&format!("format=csv&since={until}&until={since}") as &str, "until")]
    {
        let (status, body) =
            server.get(&format!("/api/v1/tenants/{tenant}/audit-events/export?{query}"), &token).await;
        assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some(field)), "{query}");
    }
    let (status, _) = server
        .get(&format!("/api/v1/tenants/{tenant}/audit-events/export?format=xml&since={since}"), &token)
        .await;
    assert!(status == 400 || status == 422, "{status}");
}
