//! A whole organisation's export, with the real binary on SQLite and
//! PostgreSQL: prepared in the background with progress, a ZIP whose
//! manifest lists every table's rows and every stored file (with their
//! SHA-256), no secret in it, downloadable once by the owner who asked,
//! audited.

use std::io::Read;
use std::time::Duration;

use marketer_tests::fleet::Fleet;
use marketer_tests::{TempDatabase, eventually};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CANARY: &str = "PLATYPUS-LEDGER-5JQ2";

fn entry(archive: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str) -> Vec<u8> {
    let mut file = archive.by_name(name).unwrap_or_else(|e| panic!("{name} in the ZIP: {e}"));
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

async fn export(database: Option<&TempDatabase>) {
    let fleet = Fleet::start(|o| {
        let o = o.env("MARKETER_WEBHOOK_ALLOW_PRIVATE", "true").env("MARKETER_WEBHOOK_ALLOW_HTTP", "true");
        match database {
            Some(db) => o.env("MARKETER_DATABASE_URL", &db.url),
            None => o,
        }
    })
    .await;
    let tenant = fleet.api.tenant.clone();
    let (status, project) =
        fleet.call(Method::POST, "/projects", Some(json!({ "name": format!("Launch {CANARY}") }))).await;
    assert_eq!(status, 201, "{project}");
    fleet.upload_logo().await;
    let (status, hook) = fleet
        .call(
            Method::POST,
            "/webhooks",
            Some(
                json!({ "url": "http://127.0.0.1:9/hook", "events": ["lead.created"], "description": "CRM" }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();

    // Owners only.
    let admin =
        fleet.add_member(&tenant, "admin@example.com", "An Admin", "admin", "a long admin password").await;
    let (status, _) = admin.call(Method::POST, &format!("/api/v1/tenants/{tenant}/exports"), None).await;
    assert_eq!(status, 403);

    // Prepared in the background.
    let (status, created) = fleet.call(Method::POST, "/exports", None).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let ready = eventually(Duration::from_secs(60), "the export ready", || async {
        let (_, export) = fleet.call(Method::GET, &format!("/exports/{id}"), None).await;
        assert_ne!(export["state"], "failed", "{export}");
        (export["state"] == "ready").then_some(export)
    })
    .await;
    assert_eq!(ready["progress"], 100, "{ready}");
    assert!(!ready["expires_at"].is_null(), "{ready}");
    // Not for the admin, even as an owner's reader.
    let (status, _) =
        admin.call(Method::GET, &format!("/api/v1/tenants/{tenant}/exports/{id}/download"), None).await;
    assert_eq!(status, 403);

    // Downloaded once.
    let url = fleet.server().url(&format!("/api/v1/tenants/{tenant}/exports/{id}/download"));
    let response = reqwest::Client::new().get(&url).bearer_auth(&fleet.api.token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let bytes = response.bytes().await.unwrap().to_vec();
    let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(ready["sha256"], digest.as_str(), "the ZIP is the one recorded");
    assert_eq!(ready["size_bytes"].as_u64(), Some(bytes.len() as u64));
    let again = reqwest::Client::new().get(&url).bearer_auth(&fleet.api.token).send().await.unwrap();
    assert_eq!(again.status(), 410);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "already_downloaded", "{body}");

    // What it holds: a manifest, each table's rows, the stored files.
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
    let manifest: Value = serde_json::from_slice(&entry(&mut archive, "manifest.json")).unwrap();
    assert_eq!(manifest["tenant_id"], tenant.as_str(), "{manifest}");
    let rows = |table: &str| {
        manifest["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table)
            .map(|t| t["rows"].as_u64().unwrap())
    };
    assert_eq!(rows("projects"), Some(1), "{manifest}");
    assert_eq!(rows("tenants"), Some(1), "the organisation itself: {manifest}");
    assert_eq!(rows("memberships"), Some(2), "{manifest}");
    assert_eq!(rows("webhook_endpoints"), Some(1), "{manifest}");
    assert!(rows("audit_events").unwrap() >= 4, "{manifest}");
    assert_eq!(rows("tenant_exports"), None, "the export's own record is not data");
    let projects: Value = serde_json::from_slice(&entry(&mut archive, "tables/projects.json")).unwrap();
    assert!(projects[0]["name"].as_str().unwrap().contains(CANARY), "{projects}");
    assert_eq!(projects[0]["id"], project["id"], "ids read as UUIDs on both backends: {projects}");
    let hooks: Value = serde_json::from_slice(&entry(&mut archive, "tables/webhook_endpoints.json")).unwrap();
    assert!(hooks[0].get("secret_ciphertext").is_none() && hooks[0].get("secret_nonce").is_none(), "{hooks}");
    let files = manifest["files"].as_array().unwrap();
    let logo = files.iter().find(|f| f["path"] == "files/tenants/branding/logo").expect("the logo");
    let logo_bytes = entry(&mut archive, "files/tenants/branding/logo");
    let logo_digest: String = Sha256::digest(&logo_bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(logo["sha256"], logo_digest.as_str());
    // Every table file is JSON; no secret anywhere.
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let name = file.name().unwrap().to_string();
        let mut content = Vec::new();
        file.read_to_end(&mut content).unwrap();
        if name.ends_with(".json") {
            serde_json::from_slice::<Value>(&content).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let text = String::from_utf8_lossy(&content);
        for secret in [secret.as_str(), "password_hash", "ciphertext", "$argon2"] {
            assert!(!text.contains(secret), "{secret} in {name}");
        }
    }

    // Audited; and the downloaded file is deleted by the sweep (its record
    // says so).
    let (_, log) = fleet.call(Method::GET, "/audit-events?limit=200", None).await;
    let actions: Vec<&str> =
        log["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"tenant.export") && actions.contains(&"tenant.export_download"), "{actions:?}");
    let (_, listed) = fleet.call(Method::GET, "/exports", None).await;
    assert_eq!(listed[0]["state"], "downloaded", "{listed}");
}

#[tokio::test]
async fn an_organisation_is_exported_once_on_sqlite() {
    export(None).await;
}

#[tokio::test]
async fn an_organisation_is_exported_once_on_postgresql() {
    let Some(database) = TempDatabase::create().await else { return };
    export(Some(&database)).await;
    database.drop_database().await;
}
