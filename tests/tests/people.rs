//! A person's rights over their own account, with the real binary on
//! SQLite and PostgreSQL: an export of what the control plane holds about
//! them, and erasure: refused to an organisation's last owner and without
//! the password; then the account, its sessions and its API keys are gone,
//! the audit trail stays under a pseudonym, and a canary (the address and
//! name) is found nowhere in the database afterwards.

use marketer_tests::TempDatabase;
use marketer_tests::fleet::{Fleet, PASSWORD};
use reqwest::Method;
use serde_json::json;

const CANARY_EMAIL: &str = "quokka-7f3k@example.com";
const CANARY_NAME: &str = "Quokka Zebrafinch";
const MEMBER_PASSWORD: &str = "a long member password";

async fn export_and_erase(database: Option<&TempDatabase>) {
    let mut fleet = Fleet::start(|o| match database {
        Some(db) => o.env("MARKETER_DATABASE_URL", &db.url),
        None => o,
    })
    .await;
    let base = fleet.server().base_url.clone();
    let tenant = fleet.api.tenant.clone();
    // An admin (so they can make an API key), who signs in once with a
    // wrong password too: the address is in the audit log several ways.
    let member = fleet.add_member(&tenant, CANARY_EMAIL, CANARY_NAME, "admin", MEMBER_PASSWORD).await;
    let wrong = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": CANARY_EMAIL, "password": "not the password at all" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let (status, key) = member
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/api-keys"),
            Some(json!({ "name": "quokka's script", "role": "member" })),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let api_key = key["key"].as_str().unwrap().to_owned();

    // The export: the account, its membership, its sessions, its actions.
    let (status, export) = member.call(Method::GET, "/api/v1/me/export", None).await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["account"]["email"], CANARY_EMAIL);
    assert_eq!(export["memberships"][0]["role"], "admin", "{export}");
    assert!(!export["sessions"].as_array().unwrap().is_empty(), "{export}");
    let actions: Vec<&str> =
        export["audit_entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"auth.login") && actions.contains(&"api_key.create"), "{actions:?}");

    // The last owner cannot go; nobody goes without their password.
    let (status, body) =
        fleet.api.call(Method::POST, "/api/v1/me/erase", Some(json!({ "password": PASSWORD }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("last_owner")), "{body}");
    let (status, body) =
        member.call(Method::POST, "/api/v1/me/erase", Some(json!({ "password": "not my password" }))).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("password")), "{body}");

    // Erased.
    let (status, report) =
        member.call(Method::POST, "/api/v1/me/erase", Some(json!({ "password": MEMBER_PASSWORD }))).await;
    assert_eq!(status, 200, "{report}");
    let pseudonym = report["pseudonym"].as_str().unwrap().to_owned();
    assert!(pseudonym.starts_with("user-"), "{report}");
    assert_eq!(report["api_keys_revoked"], 1, "{report}");
    assert_eq!(report["memberships_ended"], 1, "{report}");
    assert!(report["audit_entries_pseudonymised"].as_u64().unwrap() >= 3, "{report}");

    // Nothing of theirs works any more.
    let (status, _) = member.call(Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 401);
    let (status, _) = marketer_tests::Api { token: api_key, ..fleet.api.clone() }
        .call(Method::GET, &format!("/api/v1/tenants/{tenant}/projects"), None)
        .await;
    assert_eq!(status, 401);
    let (_, members) = fleet.call(Method::GET, "/members", None).await;
    assert!(!members.to_string().contains(CANARY_EMAIL), "{members}");

    // The trail stays, under the pseudonym: what they did, and the erasure.
    let (_, log) = fleet.call(Method::GET, "/audit-events?limit=200", None).await;
    let entries = log["items"].as_array().unwrap();
    let theirs: Vec<&str> = entries
        .iter()
        .filter(|e| e["actor"]["email"] == pseudonym.as_str() || e["actor"]["name"] == pseudonym.as_str())
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(theirs.contains(&"api_key.create"), "{theirs:?} in {log}");
    assert!(!log.to_string().contains(CANARY_EMAIL), "{log}");

    // The canary is nowhere in the database.
    let server = fleet.server.take().unwrap();
    assert!(server.terminate().success());
    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    match database {
        Some(db) => places.push(("the PostgreSQL database".into(), db.dump().await.into_bytes())),
        None => {
            for file in marketer_tests::files_under(fleet.data.path()) {
                let name = file.display().to_string();
                if name.contains(".db") || name.contains(".sqlite") {
                    places.push((name, std::fs::read(&file).unwrap()));
                }
            }
            assert!(!places.is_empty(), "the SQLite files were found");
        }
    }
    let mut leaks = Vec::new();
    for (place, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        for canary in [CANARY_EMAIL, CANARY_NAME] {
            if let Some(at) = text.find(canary) {
                let start = text.floor_char_boundary(at.saturating_sub(200));
                let end = text.ceil_char_boundary((at + 200).min(text.len()));
                leaks.push(format!("{canary} in {place}: …{}…", &text[start..end]));
            }
        }
    }
    assert!(leaks.is_empty(), "the erased person is still in:\n{}", leaks.join("\n"));

    // And the password no longer signs anyone in (checked last: a refused
    // sign-in with an address is audited with the address, as it must be).
    fleet.restart_server();
    let again = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", fleet.server().base_url))
        .json(&json!({ "email": CANARY_EMAIL, "password": MEMBER_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
}

#[tokio::test]
async fn a_person_exports_then_erases_their_account_on_sqlite() {
    export_and_erase(None).await;
}

#[tokio::test]
async fn a_person_exports_then_erases_their_account_on_postgresql() {
    let Some(database) = TempDatabase::create().await else { return };
    export_and_erase(Some(&database)).await;
    database.drop_database().await;
}
