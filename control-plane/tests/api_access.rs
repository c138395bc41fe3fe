//! Who may do what: the role × permission matrix, tenant isolation, and API
//! keys, over HTTP.

mod common;

use common::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

const ROLES: [&str; 4] = ["owner", "admin", "member", "viewer"];

/// Every tenant-scoped operation, with the roles that may perform it, written
/// out from seed 004 section 6.1 (plus `agents:manage`, `audit:read` and
/// `tenant:manage`) rather than computed from the code under test.
const MATRIX: &[(&str, &[&str])] = &[
    ("get tenant", &["owner", "admin", "member", "viewer"]),
    ("rename tenant", &["owner"]),
    ("change plan", &["owner"]),
    ("list projects", &["owner", "admin", "member", "viewer"]),
    ("create project", &["owner", "admin"]),
    ("get project", &["owner", "admin", "member", "viewer"]),
    ("update project", &["owner", "admin", "member"]),
    ("delete project", &["owner", "admin"]),
    ("list campaigns", &["owner", "admin", "member", "viewer"]),
    ("create campaign", &["owner", "admin", "member"]),
    ("update campaign", &["owner", "admin", "member"]),
    ("delete campaign", &["owner", "admin", "member"]),
    ("list members", &["owner", "admin", "member", "viewer"]),
    ("change a role", &["owner"]),
    ("remove a member", &["owner", "admin"]),
    ("list invitations", &["owner", "admin"]),
    ("invite a viewer", &["owner", "admin"]),
    ("invite an owner", &["owner"]),
    ("revoke an invitation", &["owner", "admin"]),
    ("list api keys", &["owner", "admin"]),
    ("create a viewer api key", &["owner", "admin"]),
    ("revoke an api key", &["owner", "admin"]),
    ("read the audit log", &["owner", "admin"]),
    ("create an enrollment token", &["owner", "admin"]),
    ("list enrollment tokens", &["owner", "admin"]),
    ("revoke an enrollment token", &["owner", "admin"]),
    ("list agents", &["owner", "admin", "member", "viewer"]),
    ("upload a document", &["owner", "admin", "member"]),
    ("list documents", &["owner", "admin", "member", "viewer"]),
    ("delete a document", &["owner", "admin"]),
];

struct Fixture {
    server: TestServer,
    owner: String,
    tenant: String,
}

impl Fixture {
    async fn new() -> Self {
        let server = TestServer::start().await;
        let (owner, tenant) = server.owner().await;
        Self { server, owner, tenant }
    }

    fn t(&self, rest: &str) -> String {
        format!("/api/v1/tenants/{}{rest}", self.tenant)
    }

    async fn created(&self, path: &str, body: Value) -> String {
        let (status, created) = self.server.post(path, &self.owner, body).await;
        // 201 for resources, 202 for jobs (accepted, not yet run).
        assert!(matches!(status, 201 | 202), "{path}: {status} {created}");
        created["id"].as_str().unwrap().to_owned()
    }

    async fn project(&self) -> String {
        self.created(&self.t("/projects"), json!({ "name": format!("P {}", uuid::Uuid::now_v7()) })).await
    }

    async fn campaign(&self, project: &str) -> String {
        self.created(&self.t(&format!("/projects/{project}/campaigns")), json!({ "name": "C" })).await
    }

    /// Performs `operation` as `token`, preparing whatever it acts on as the
    /// owner first, and returns the status.
    async fn perform(&self, operation: &str, token: &str) -> u16 {
        let s = &self.server;
        let unique = uuid::Uuid::now_v7().simple().to_string();
        let (status, _) = match operation {
            "get tenant" => s.get(&self.t(""), token).await,
            "rename tenant" => s.patch(&self.t(""), token, json!({ "name": "Renamed" })).await,
            "change plan" => s.patch(&self.t(""), token, json!({ "plan": "pro" })).await,
            "list projects" => s.get(&self.t("/projects"), token).await,
            "create project" => s.post(&self.t("/projects"), token, json!({ "name": unique })).await,
            "get project" => s.get(&self.t(&format!("/projects/{}", self.project().await)), token).await,
            "update project" => {
                s.patch(
                    &self.t(&format!("/projects/{}", self.project().await)),
                    token,
                    json!({ "description": "d" }),
                )
                .await
            }
            "delete project" => {
                s.delete(&self.t(&format!("/projects/{}", self.project().await)), token).await
            }
            "list campaigns" => {
                s.get(&self.t(&format!("/projects/{}/campaigns", self.project().await)), token).await
            }
            "create campaign" => {
                s.post(
                    &self.t(&format!("/projects/{}/campaigns", self.project().await)),
                    token,
                    json!({ "name": "C" }),
                )
                .await
            }
            "update campaign" => {
                let p = self.project().await;
                let c = self.campaign(&p).await;
                s.patch(&self.t(&format!("/projects/{p}/campaigns/{c}")), token, json!({ "name": "C2" }))
                    .await
            }
            "delete campaign" => {
                let p = self.project().await;
                let c = self.campaign(&p).await;
                s.delete(&self.t(&format!("/projects/{p}/campaigns/{c}")), token).await
            }
            "list members" => s.get(&self.t("/members"), token).await,
            "change a role" | "remove a member" => {
                let (_, target) =
                    s.add_user(&self.owner, &self.tenant, &format!("{unique}@example.com"), "viewer").await;
                if operation == "change a role" {
                    s.patch(&self.t(&format!("/members/{target}")), token, json!({ "role": "member" })).await
                } else {
                    s.delete(&self.t(&format!("/members/{target}")), token).await
                }
            }
            "list invitations" => s.get(&self.t("/invitations"), token).await,
            "invite a viewer" => {
                s.post(
                    &self.t("/invitations"),
                    token,
                    json!({ "email": format!("{unique}@example.com"), "role": "viewer" }),
                )
                .await
            }
            "invite an owner" => {
                s.post(
                    &self.t("/invitations"),
                    token,
                    json!({ "email": format!("{unique}@example.com"), "role": "owner" }),
                )
                .await
            }
            "revoke an invitation" => {
                let id = self
                    .created(
                        &self.t("/invitations"),
                        json!({ "email": format!("{unique}@example.com"), "role": "viewer" }),
                    )
                    .await;
                s.delete(&self.t(&format!("/invitations/{id}")), token).await
            }
            "list api keys" => s.get(&self.t("/api-keys"), token).await,
            "create a viewer api key" => {
                s.post(&self.t("/api-keys"), token, json!({ "name": "k", "role": "viewer" })).await
            }
            "revoke an api key" => {
                let id = self.created(&self.t("/api-keys"), json!({ "name": "k", "role": "viewer" })).await;
                s.delete(&self.t(&format!("/api-keys/{id}")), token).await
            }
            "read the audit log" => s.get(&self.t("/audit-events"), token).await,
            "create an enrollment token" => s.post(&self.t("/enrollment-tokens"), token, json!({})).await,
            "list enrollment tokens" => s.get(&self.t("/enrollment-tokens"), token).await,
            "revoke an enrollment token" => {
                let id = self.created(&self.t("/enrollment-tokens"), json!({})).await;
                s.delete(&self.t(&format!("/enrollment-tokens/{id}")), token).await
            }
            "list agents" => s.get(&self.t("/agents"), token).await,
            "upload a document" | "delete a document" => {
                let project = self
                    .created(&self.t("/projects"), json!({ "name": unique, "llm_policy": "cloud_allowed" }))
                    .await;
                let documents = self.t(&format!("/projects/{project}/documents"));
                if operation == "upload a document" {
                    s.upload(&documents, token, "notes.txt", b"notes".to_vec()).await
                } else {
                    let (status, doc) =
                        s.upload(&documents, &self.owner, "notes.txt", b"notes".to_vec()).await;
                    assert_eq!(status, 202, "{doc}");
                    s.delete(&format!("{documents}/{}", doc["id"].as_str().unwrap()), token).await
                }
            }
            "list documents" => {
                s.get(&self.t(&format!("/projects/{}/documents", self.project().await)), token).await
            }
            other => panic!("no such operation {other}"),
        };
        status
    }
}

#[tokio::test]
async fn the_full_role_permission_matrix() {
    let f = Fixture::new().await;
    let mut tokens = vec![("owner", f.owner.clone())];
    for role in &ROLES[1..] {
        let (token, _) = f.server.add_user(&f.owner, &f.tenant, &format!("{role}@example.com"), role).await;
        tokens.push((role, token));
    }
    let mut wrong = Vec::new();
    for (operation, allowed) in MATRIX {
        for (role, token) in &tokens {
            let status = f.perform(operation, token).await;
            let expected_ok = allowed.contains(role);
            let ok = (200..300).contains(&status);
            if ok != expected_ok || (!ok && status != 403) {
                wrong.push(format!(
                    "{role} / {operation}: got {status}, expected {}",
                    if expected_ok { "2xx" } else { "403" }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "matrix violations:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn refusals_name_the_missing_permission_and_are_audited() {
    let f = Fixture::new().await;
    let (viewer, viewer_id) = f.server.add_user(&f.owner, &f.tenant, "v@example.com", "viewer").await;
    let (status, body) = f.server.post(&f.t("/projects"), &viewer, json!({ "name": "Nope" })).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(body["error"]["message"].as_str().unwrap().contains("projects:create"), "{body}");

    let (_, log) =
        f.server.get(&f.t(&format!("/audit-events?actor={viewer_id}&action=project.create")), &f.owner).await;
    let entry = &log["items"][0];
    assert_eq!(entry["outcome"], "denied", "{log}");
    assert_eq!(entry["details"]["status"], 403);
}

#[tokio::test]
async fn nothing_of_another_tenant_is_visible() {
    let f = Fixture::new().await;
    // Beta belongs to the bootstrap owner; "outsider" is an admin of Default only.
    let beta = f.created("/api/v1/tenants", json!({ "name": "Beta" })).await;
    let b = |rest: &str| format!("/api/v1/tenants/{beta}{rest}");
    let project = f.created(&b("/projects"), json!({ "name": "Secret" })).await;
    let campaign =
        f.created(&b(&format!("/projects/{project}/campaigns")), json!({ "name": "Hidden" })).await;
    let invitation =
        f.created(&b("/invitations"), json!({ "email": "x@example.com", "role": "viewer" })).await;
    let api_key = f.created(&b("/api-keys"), json!({ "name": "beta key", "role": "viewer" })).await;
    let enrollment_token = f.created(&b("/enrollment-tokens"), json!({ "labels": { "site": "beta" } })).await;
    // Beta has no agent, so the job and the activity stay queued.
    let activity = f
        .created(
            &b(&format!("/projects/{project}/activities")),
            json!({ "kind": "blog_article", "topic": "Secret launch plans", "wait_for_agent": true }),
        )
        .await;
    let comment =
        f.created(&b("/comments"), json!({ "activity_id": activity, "body": "Secret remark" })).await;
    let workflow = f
        .created(
            &b("/review-workflows"),
            json!({ "name": "Secret review", "steps": [
                { "name": "Legal", "rule": "any", "role": "admin", "externals": ["counsel@example.org"] }
            ] }),
        )
        .await;
    let (status, _) = f
        .server
        .call(
            Method::PUT,
            &b(&format!("/projects/{project}/review-workflow")),
            Some(&f.owner),
            Some(json!({ "workflow_id": workflow })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, link) = f
        .server
        .post(
            &b(&format!("/projects/{project}/activities/{activity}/review/links")),
            &f.owner,
            json!({ "email": "counsel@example.org" }),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let link = link["link"]["id"].as_str().unwrap().to_owned();
    let job = f
        .created(
            &b("/jobs"),
            json!({ "kind": "chat", "model": "llama3.2", "messages": [{ "role": "user", "content": "Secret" }] }),
        )
        .await;
    let open_project =
        f.created(&b("/projects"), json!({ "name": "Open", "llm_policy": "cloud_allowed" })).await;
    let (status, uploaded) = f
        .server
        .upload(
            &b(&format!("/projects/{open_project}/documents")),
            &f.owner,
            "plan.md",
            b"# Secret plan".to_vec(),
        )
        .await;
    assert_eq!(status, 202, "{uploaded}");
    let document = uploaded["id"].as_str().unwrap().to_owned();
    let property = f
        .created(
            &b("/properties"),
            json!({
                "project_id": project, "street": "1 Secret Street", "city": "Springfield", "country": "US",
                "price": 450_000, "currency": "USD", "beds": 3, "baths": 2, "floor_area": 1500, "area_unit": "sqft",
                "property_type": "condo", "status": "active", "agent_name": "Dana Realtor", "agent_contact": "555-0100"
            }),
        )
        .await;
    let lead = f.created(&b("/leads"), json!({ "name": "Secret Buyer", "email": "buyer@example.com" })).await;
    let webhook = f
        .created(
            &b("/webhooks"),
            json!({ "url": "https://hooks.example.com/beta", "events": ["lead.created"] }),
        )
        .await;
    let (_, me) = f.server.get("/api/v1/me", &f.owner).await;
    let beta_member = me["user"]["id"].as_str().unwrap().to_owned();
    let (outsider, _) = f.server.add_user(&f.owner, &f.tenant, "outsider@example.com", "admin").await;
    let (_, key) =
        f.server.post(&f.t("/api-keys"), &f.owner, json!({ "name": "default key", "role": "admin" })).await;
    let outsider_key = key["key"].as_str().unwrap().to_owned();

    // Every route with a {tenant_id}, from the OpenAPI document, so a new
    // route is covered the day it is added.
    let (_, doc) = f.server.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        if !template.contains("{tenant_id}") {
            continue;
        }
        let path = template
            .replace("{tenant_id}", &beta)
            .replace("{project_id}", &project)
            .replace("{campaign_id}", &campaign)
            .replace("{user_id}", &beta_member)
            .replace("{invitation_id}", &invitation)
            .replace("{api_key_id}", &api_key)
            .replace("{token_id}", &enrollment_token)
            .replace("{job_id}", &job)
            .replace("{activity_id}", &activity)
            .replace("{document_id}", &document)
            .replace("{comment_id}", &comment)
            .replace("{workflow_id}", &workflow)
            .replace("{link_id}", &link)
            .replace("{property_id}", &property)
            .replace("{lead_id}", &lead)
            .replace("{webhook_id}", &webhook)
            // Beta's webhook has no deliveries; tests/webhooks.rs checks a
            // foreign tenant's real one.
            .replace("{delivery_id}", &uuid::Uuid::now_v7().to_string())
            // The sequence tests check foreign templates and enrollments.
            .replace("{sequence_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{enrollment_id}", &uuid::Uuid::now_v7().to_string())
            // The property tests check foreign photos with real ones.
            .replace("{photo_id}", &uuid::Uuid::now_v7().to_string())
            // No agent can be enrolled without a gateway round trip; any id will do
            // here, the agent tests check foreign agents with real ones.
            .replace("{agent_id}", &uuid::Uuid::now_v7().to_string())
            // Connecting a social account needs a platform; the publishing
            // tests check foreign accounts and posts with real ones.
            .replace("{account_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{post_id}", &uuid::Uuid::now_v7().to_string())
            // A/B tests need connected accounts too (tests/publishing.rs).
            .replace("{ab_test_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{inbox_item_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{listening_query_id}", &uuid::Uuid::now_v7().to_string())
            // The notification tests resend a foreign tenant's real message.
            .replace("{message_id}", &uuid::Uuid::now_v7().to_string())
            // tests/tenant_export.rs checks another person's real export.
            .replace("{export_id}", &uuid::Uuid::now_v7().to_string());
        assert!(!path.contains('{'), "unhandled parameter in {template}");
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let body = matches!(method, Method::POST | Method::PATCH).then(|| json!({}));
            for token in [&outsider, &outsider_key] {
                let (status, answer) = f.server.call(method.clone(), &path, Some(token), body.clone()).await;
                assert_eq!(status, 404, "{method} {template}: {answer}");
                assert!(!answer.to_string().contains("Secret"));
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "only {checked} requests checked");

    // The same holds for ids of Beta's resources used under Default's path.
    let (status, _) = f.server.get(&f.t(&format!("/projects/{project}")), &outsider).await;
    assert_eq!(status, 404);
    let (status, _) = f.server.delete(&f.t(&format!("/api-keys/{api_key}")), &f.owner).await;
    assert_eq!(status, 404, "even Beta's owner cannot reach Beta's key through Default");
    let (status, beta_project) = f.server.get(&b(&format!("/projects/{project}")), &f.owner).await;
    assert_eq!((status, beta_project["name"].as_str()), (200, Some("Secret")), "untouched");
}

#[tokio::test]
async fn api_keys_authenticate_within_their_tenant_and_role() {
    let f = Fixture::new().await;
    let (status, created) =
        f.server.post(&f.t("/api-keys"), &f.owner, json!({ "name": "CI", "role": "member" })).await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    let key_id = created["id"].as_str().unwrap().to_owned();

    // It works as a member: reads and campaign edits yes, project creation no.
    assert_eq!(f.server.get(&f.t("/projects"), &key).await.0, 200);
    assert_eq!(f.server.post(&f.t("/projects"), &key, json!({ "name": "X" })).await.0, 403);
    // API keys are not people.
    assert_eq!(f.server.get("/api/v1/me", &key).await.0, 403);
    assert_eq!(f.server.post("/api/v1/tenants", &key, json!({ "name": "Mine" })).await.0, 403);

    // Listed without the secret, with its last use.
    let (_, list) = f.server.get(&f.t("/api-keys"), &f.owner).await;
    let listed = &list["items"][0];
    assert!(listed.get("key").is_none() && !list.to_string().contains(&key), "the secret is shown once");
    assert!(listed["last_used_at"].is_string(), "{listed}");

    // Revoked keys stop working at once.
    assert_eq!(f.server.delete(&f.t(&format!("/api-keys/{key_id}")), &f.owner).await.0, 204);
    let (status, body) = f.server.get(&f.t("/projects"), &key).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn nobody_grants_more_than_they_hold() {
    let f = Fixture::new().await;
    let (admin, _) = f.server.add_user(&f.owner, &f.tenant, "admin@example.com", "admin").await;
    assert_eq!(
        f.server.post(&f.t("/api-keys"), &admin, json!({ "name": "k", "role": "owner" })).await.0,
        403
    );
    assert_eq!(
        f.server.post(&f.t("/api-keys"), &admin, json!({ "name": "k", "role": "admin" })).await.0,
        201
    );

    // A key never outranks its creator's current role.
    let (_, created) =
        f.server.post(&f.t("/api-keys"), &admin, json!({ "name": "k2", "role": "admin" })).await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(f.server.get(&f.t("/audit-events"), &key).await.0, 200);
    let (_, me) = f.server.get("/api/v1/me", &admin).await;
    let admin_id = me["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        f.server.patch(&f.t(&format!("/members/{admin_id}")), &f.owner, json!({ "role": "viewer" })).await.0,
        200
    );
    assert_eq!(
        f.server.get(&f.t("/audit-events"), &key).await.0,
        403,
        "demoting the creator demotes the key"
    );
    assert_eq!(f.server.delete(&f.t(&format!("/members/{admin_id}")), &f.owner).await.0, 204);
    assert_eq!(f.server.get(&f.t("/projects"), &key).await.0, 401, "and removing the creator ends it");

    let (status, body) = f
        .server
        .post(
            &f.t("/api-keys"),
            &f.owner,
            json!({ "name": "old", "role": "viewer", "expires_at": "2020-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("expires_at")));
}
