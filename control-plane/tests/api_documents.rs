//! The documents API: uploads for cloud_allowed projects (limits, content
//! checks), the refusal for edge_only projects, listing, deletion, and the
//! audit of content reads in hipaa tenants.

mod common;

use common::{Backend, TestServer};
use marketer_control_plane::api::ApiConfig;
use serde_json::{Value, json};

async fn project(server: &TestServer, token: &str, tenant: &str, policy: &str) -> String {
    let (status, created) = server
        .post(
            &format!("/api/v1/tenants/{tenant}/projects"),
            token,
            json!({ "name": format!("P {}", uuid::Uuid::now_v7()), "llm_policy": policy }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn uploads_are_checked_stored_listed_and_deleted() {
    let config = ApiConfig { max_upload_bytes: 4096, ..ApiConfig::default() };
    let server = TestServer::start_with(Backend::Sqlite, config).await.unwrap();
    let (token, tenant) = server.owner().await;
    let open = project(&server, &token, &tenant, "cloud_allowed").await;
    let documents = format!("/api/v1/tenants/{tenant}/projects/{open}/documents");

    let (status, doc) =
        server.upload(&documents, &token, "brand/voice.md", b"# Voice\n\nWarm and plain.".to_vec()).await;
    assert_eq!(status, 202, "{doc}");
    assert_eq!((doc["name"].as_str(), doc["media_type"].as_str()), (Some("voice.md"), Some("text/markdown")));
    assert_eq!((doc["status"].as_str(), doc["origin"].as_str()), (Some("pending"), Some("upload")));
    assert_eq!(doc["size_bytes"], 24);
    assert!(doc.get("storage_key").is_none(), "where the file is kept is not the caller's business");
    let id = doc["id"].as_str().unwrap().to_owned();
    // Its ingest job waits for an agent with the embedding model.
    let (status, job) = server
        .get(&format!("/api/v1/tenants/{tenant}/jobs/{}", doc["job_id"].as_str().unwrap()), &token)
        .await;
    assert_eq!(
        (status, job["kind"].as_str(), job["status"].as_str()),
        (200, Some("ingest"), Some("queued")),
        "{job}"
    );

    // The limit, the content check, and the shape of the request.
    let (status, body) = server.upload(&documents, &token, "big.txt", vec![b'a'; 4097]).await;
    assert_eq!((status, code(&body)), (413, "payload_too_large"), "{body}");
    let (status, body) = server.upload(&documents, &token, "exact.txt", vec![b'a'; 4096]).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = server.upload(&documents, &token, "invoice.pdf", b"just some text".to_vec()).await;
    assert_eq!((status, code(&body)), (415, "unsupported_media_type"), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("named .pdf but its content is plain text"),
        "{body}"
    );
    let (status, body) =
        server.upload(&documents, &token, "setup.docx", b"MZ\x90\x00\x03\x00\x00\x00".to_vec()).await;
    assert_eq!((status, code(&body)), (415, "unsupported_media_type"), "{body}");
    let (status, body) =
        server.upload(&documents, &token, "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00".to_vec()).await;
    assert_eq!(status, 415, "{body}");
    let (status, body) = server.upload(&documents, &token, "empty.txt", Vec::new()).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("file")), "{body}");
    let (status, body) = server.post(&documents, &token, json!({ "file": "guide.pdf" })).await;
    assert_eq!((status, code(&body)), (415, "unsupported_media_type"), "{body}");
    let form = reqwest::multipart::Form::new().text("other", "x");
    let response =
        server.http.post(server.url(&documents)).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 422);

    // Listed newest first; readable one by one; not under another project.
    let (status, page) = server.get(&documents, &token).await;
    assert_eq!(status, 200, "{page}");
    let names: Vec<&str> =
        page["items"].as_array().unwrap().iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(names, ["exact.txt", "voice.md"]);
    let (status, _) = server.get(&format!("{documents}/{id}"), &token).await;
    assert_eq!(status, 200);
    let other = project(&server, &token, &tenant, "cloud_allowed").await;
    let (status, _) =
        server.get(&format!("/api/v1/tenants/{tenant}/projects/{other}/documents/{id}"), &token).await;
    assert_eq!(status, 404);

    // Deleting it removes the file and cancels the waiting ingest job.
    let files = server.data_dir.path().join("files").join("documents").join(&tenant);
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 2);
    let (status, _) = server.delete(&format!("{documents}/{id}"), &token).await;
    assert_eq!(status, 204);
    let (status, _) = server.get(&format!("{documents}/{id}"), &token).await;
    assert_eq!(status, 404);
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 1);
    let (_, job) = server
        .get(&format!("/api/v1/tenants/{tenant}/jobs/{}", doc["job_id"].as_str().unwrap()), &token)
        .await;
    assert_eq!(job["status"], "cancelled", "{job}");

    // Both are in the audit log.
    for action in ["document.upload", "document.delete"] {
        let (_, log) =
            server.get(&format!("/api/v1/tenants/{tenant}/audit-events?action={action}"), &token).await;
        assert!(
            log["items"].as_array().unwrap().iter().any(|e| e["resource_id"] == id.as_str()),
            "{action}: {log}"
        );
    }
}

#[tokio::test]
async fn edge_only_projects_refuse_uploads_and_explain_edge_ingest() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let closed = project(&server, &token, &tenant, "edge_only").await;
    let (status, body) = server
        .upload(
            &format!("/api/v1/tenants/{tenant}/projects/{closed}/documents"),
            &token,
            "guide.md",
            b"# Guide".to_vec(),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "edge_only_project"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("marketer-agent ingest PATH... --project {closed}")), "{message}");
    assert!(!server.data_dir.path().join("files").exists(), "nothing was stored");
}

#[tokio::test]
async fn reads_of_content_in_hipaa_tenants_are_audited() {
    let server = TestServer::start().await;
    let (token, standard) = server.owner().await;
    let (status, clinic) = server
        .post(
            "/api/v1/tenants",
            &token,
            json!({ "name": "Clinic", "slug": "clinic", "compliance_mode": "hipaa" }),
        )
        .await;
    assert_eq!(status, 201, "{clinic}");
    let clinic = clinic["id"].as_str().unwrap().to_owned();
    for tenant in [&clinic, &standard] {
        let project = project(&server, &token, tenant, "edge_only").await;
        let activities = format!("/api/v1/tenants/{tenant}/projects/{project}/activities");
        let (status, activity) = server
            .post(
                &activities,
                &token,
                json!({ "kind": "blog_article", "topic": "Flu shots", "wait_for_agent": true }),
            )
            .await;
        assert_eq!(status, 202, "{activity}");
        let id = activity["id"].as_str().unwrap();
        let (status, _) = server.get(&format!("{activities}/{id}"), &token).await;
        assert_eq!(status, 200);
        let (status, _) = server.get(&format!("{activities}/{id}/runs"), &token).await;
        assert_eq!(status, 200);
        let (_, log) =
            server.get(&format!("/api/v1/tenants/{tenant}/audit-events?action=content.read"), &token).await;
        let reads = log["items"].as_array().unwrap();
        if tenant == &clinic {
            let views: Vec<&str> = reads.iter().filter_map(|e| e["details"]["view"].as_str()).collect();
            assert_eq!(views, ["runs", "activity"], "{log}");
            assert!(reads.iter().all(|e| e["resource_id"] == id), "{log}");
        } else {
            assert!(reads.is_empty(), "standard tenants' reads are not logged one by one: {log}");
        }
    }
}
