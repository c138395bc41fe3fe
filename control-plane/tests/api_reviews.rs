//! Review workflows over HTTP, on both backends: two steps (any of the
//! admins, then all of two named members), no self-approval, requesting
//! changes returns the item to its author, an edit restarts review, a
//! stale version is refused, concurrent approvals or an edit racing an
//! approval end in one consistent state, an external reviewer's link works
//! for its item only and until it expires or is revoked (audited with the
//! address), a step only for content with Fair Housing findings is skipped
//! without them, an expired review takes no decisions until restarted, and
//! posts follow the review (their activity's, or their own).

mod common;

use common::fixtures::enrolled;
use common::{Backend, TestServer};
use marketer_control_plane::api::ApiConfig;
use marketer_control_plane::cloud::crypto::Sealed;
use marketer_control_plane::service::RequestMeta;
use marketer_control_plane::store::{Actor, Network, NewAccount, Outcome, SealedTokens};
use marketer_protocol::activity::{ActivityResult, ComplianceReview, Finding, Platform, SocialVariant};
use serde_json::{Value, json};
use uuid::Uuid;

struct Setup {
    server: TestServer,
    owner: String,
    tenant: String,
    project: String,
    agent: Uuid,
}

impl Setup {
    async fn start(backend: Backend) -> Option<Self> {
        let server = TestServer::start_with(backend, ApiConfig::default()).await?;
        let (owner, tenant) = server.owner().await;
        let (status, project) = server
            .post(&format!("/api/v1/tenants/{tenant}/projects"), &owner, json!({ "name": "Launch" }))
            .await;
        assert_eq!(status, 201, "{project}");
        let project = project["id"].as_str().unwrap().to_owned();
        let agent = enrolled(server.db.store.as_ref(), tenant.parse().unwrap(), 7, 7).await.id;
        Some(Self { server, owner, tenant, project, agent })
    }

    fn t(&self, rest: &str) -> String {
        format!("/api/v1/tenants/{}{rest}", self.tenant)
    }

    fn activity_path(&self, id: &str, rest: &str) -> String {
        self.t(&format!("/projects/{}/activities/{id}{rest}", self.project))
    }

    /// An activity created by the owner, generated (through the store, as
    /// an agent would report it) and waiting for review.
    async fn generated(&self, topic: &str) -> String {
        let result = ActivityResult {
            content: format!("# {topic}\n\nA draft about {topic}."),
            ..ActivityResult::default()
        };
        self.generated_with(json!({ "kind": "blog_article", "topic": topic, "wait_for_agent": true }), result)
            .await
    }

    /// An activity made from `body`, generated with `result`.
    async fn generated_with(&self, body: Value, result: ActivityResult) -> String {
        let (status, activity) = self
            .server
            .post(&self.t(&format!("/projects/{}/activities", self.project)), &self.owner, body)
            .await;
        assert_eq!(status, 202, "{activity}");
        let id: Uuid = activity["id"].as_str().unwrap().parse().unwrap();
        self.server.generated(self.tenant.parse().unwrap(), self.agent, id, result).await;
        id.to_string()
    }

    /// An X account of the tenant's, connected through the store (scheduling
    /// calls no platform).
    async fn x_account(&self) -> marketer_control_plane::store::SocialAccount {
        let tenant: Uuid = self.tenant.parse().unwrap();
        let account = NewAccount {
            id: marketer_control_plane::domain::new_id(),
            tenant_id: tenant,
            network: Network::X,
            external_id: "42".into(),
            instance_url: None,
            handle: "@solar".into(),
            display_name: "Solar".into(),
            profile_url: None,
            project_ids: None,
            tokens: SealedTokens {
                access: Sealed { ciphertext: vec![1; 8], nonce: vec![1; 12] },
                refresh: None,
                expires_at: None,
            },
            posting_time_zone: "UTC".into(),
            created_by: None,
        };
        let audit = marketer_control_plane::service::audit_event(
            Some(tenant),
            Actor::System { name: "test".into() },
            &RequestMeta::default(),
            "social_account.connect",
            Outcome::Success,
        );
        self.server.db.store.connect_account(&account, &audit).await.unwrap()
    }

    async fn review(&self, token: &str, activity: &str) -> Value {
        let (status, review) = self.server.get(&self.activity_path(activity, "/review"), token).await;
        assert_eq!(status, 200, "{review}");
        review
    }

    async fn decide(&self, token: &str, activity: &str, body: Value) -> (u16, Value) {
        self.server.post(&self.activity_path(activity, "/review"), token, body).await
    }
}

async fn kinds(server: &TestServer, token: &str) -> Vec<String> {
    let (_, page) = server.get("/api/v1/me/notifications", token).await;
    page["items"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap().to_owned()).collect()
}

async fn two_steps_with_rules(backend: Backend) {
    let Some(s) = Setup::start(backend).await else { return };
    let (ana, _) = s.server.add_user(&s.owner, &s.tenant, "ana@example.com", "admin").await;
    let (ben, ben_id) = s.server.add_user(&s.owner, &s.tenant, "ben@example.com", "member").await;
    let (cy, cy_id) = s.server.add_user(&s.owner, &s.tenant, "cy@example.com", "viewer").await;

    // Bad workflows are refused by field.
    for (body, field) in [
        (json!({ "name": "", "steps": [{ "name": "x", "rule": "any" }] }), "name"),
        (json!({ "name": "W", "steps": [] }), "steps"),
        (
            json!({ "name": "W", "steps": [{ "name": "x", "rule": "any", "role": "admin", "members": [ben_id] }] }),
            "steps[0].members",
        ),
        (
            json!({ "name": "W", "steps": [{ "name": "x", "rule": "all", "members": [Uuid::now_v7()] }] }),
            "steps[0].members",
        ),
    ] {
        let (status, answer) = s.server.post(&s.t("/review-workflows"), &s.owner, body).await;
        assert_eq!((status, answer["error"]["details"]["field"].as_str()), (422, Some(field)), "{answer}");
    }
    // Members may not define workflows.
    let body = json!({ "name": "Two steps", "steps": [
        { "name": "Editor", "rule": "any", "role": "admin" },
        { "name": "Compliance", "rule": "all", "members": [ben_id, cy_id] },
    ] });
    let (status, _) = s.server.post(&s.t("/review-workflows"), &ben, body.clone()).await;
    assert_eq!(status, 403);
    let (status, workflow) = s.server.post(&s.t("/review-workflows"), &s.owner, body).await;
    assert_eq!(status, 201, "{workflow}");
    assert_eq!(workflow["steps"][0]["approvers"], "any of: admins and owners");
    let path = s.t(&format!("/projects/{}/review-workflow", s.project));
    let (status, set) = s
        .server
        .call(reqwest::Method::PUT, &path, Some(&s.owner), Some(json!({ "workflow_id": workflow["id"] })))
        .await;
    assert_eq!(status, 200, "{set}");

    let activity = s.generated("Heat pumps").await;
    let review = s.review(&s.owner, &activity).await;
    assert_eq!(review["state"], "in_review", "{review}");
    assert_eq!(review["summary"], "step 1 of 2: waiting for any of: admins and owners");
    assert_eq!(review["can_decide"], false, "the author does not approve their own work");
    assert!(review["why_not"].as_str().unwrap().contains("you wrote this content"), "{review}");

    // Nobody approves their own work; a member is not an approver of step 1.
    let (status, _) = s.decide(&s.owner, &activity, json!({ "decision": "approve", "version": 0 })).await;
    assert_eq!(status, 403);
    let (status, _) = s.decide(&ben, &activity, json!({ "decision": "approve", "version": 0 })).await;
    assert_eq!(status, 403);
    // The legacy approve route is the same gate.
    let (status, _) = s.server.post(&s.activity_path(&activity, "/approve"), &s.owner, json!({})).await;
    assert_eq!(status, 403);

    // Step 1 by an admin; step 2's approvers hear of it.
    let (status, review) = s.decide(&ana, &activity, json!({ "decision": "approve", "version": 0 })).await;
    assert_eq!(status, 200, "{review}");
    assert_eq!(review["current_step"], 2, "{review}");
    assert!(review["summary"].as_str().unwrap().starts_with("step 2 of 2: waiting for all of: "), "{review}");
    assert!(kinds(&s.server, &ben).await.contains(&"review_requested".to_owned()));
    assert!(kinds(&s.server, &cy).await.contains(&"review_requested".to_owned()));
    let (_, waiting) = s.server.get(&s.t("/reviews/waiting"), &cy).await;
    assert_eq!(waiting.as_array().unwrap().len(), 1, "{waiting}");

    // All of step 2: one approval is not enough; the second approves.
    let (status, review) = s.decide(&ben, &activity, json!({ "decision": "approve", "version": 0 })).await;
    assert_eq!(status, 200, "{review}");
    assert_eq!(review["state"], "in_review");
    let (status, _) = s.decide(&ben, &activity, json!({ "decision": "approve", "version": 0 })).await;
    assert_eq!(status, 403, "decided already");
    let (status, review) = s.decide(&cy, &activity, json!({ "decision": "approve", "version": 0 })).await;
    assert_eq!(status, 200, "{review}");
    assert_eq!(review["state"], "approved", "{review}");
    let (_, detail) = s.server.get(&s.activity_path(&activity, ""), &s.owner).await;
    assert_eq!(detail["status"], "approved");
    assert!(kinds(&s.server, &s.owner).await.contains(&"review_approved".to_owned()));

    // Request changes needs a comment, returns the item to its author, and
    // ends this version's review; an edit starts it again at step 1.
    let second = s.generated("Solar roofs").await;
    let (status, answer) =
        s.decide(&ana, &second, json!({ "decision": "request_changes", "version": 0 })).await;
    assert_eq!((status, answer["error"]["details"]["field"].as_str()), (422, Some("comment")), "{answer}");
    let body = json!({ "decision": "request_changes", "version": 0, "comment": "Shorter intro, please." });
    let (status, review) = s.decide(&ana, &second, body).await;
    assert_eq!(status, 200, "{review}");
    assert_eq!(review["state"], "changes_requested", "{review}");
    assert!(kinds(&s.server, &s.owner).await.contains(&"review_changes_requested".to_owned()));
    let (status, answer) = s.decide(&ana, &second, json!({ "decision": "approve", "version": 0 })).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("review_ended")), "{answer}");
    let (status, _) = s
        .server
        .call(
            reqwest::Method::PUT,
            &s.activity_path(&second, "/content"),
            Some(&s.owner),
            Some(json!({ "content": "# Solar roofs\n\nShorter." })),
        )
        .await;
    assert_eq!(status, 201);
    let review = s.review(&ana, &second).await;
    assert_eq!(
        (review["state"].as_str(), review["version"].as_i64(), review["current_step"].as_i64()),
        (Some("in_review"), Some(1), Some(1)),
        "{review}"
    );
    // A decision on the version before the edit is refused.
    let (status, answer) = s.decide(&ana, &second, json!({ "decision": "approve", "version": 0 })).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("version_changed")), "{answer}");
    let (status, review) =
        s.decide(&ana, &second, json!({ "decision": "reject", "version": 1, "comment": "Off brand." })).await;
    assert_eq!((status, review["state"].as_str()), (200, Some("rejected")), "{review}");

    // Another organisation's people see none of it.
    let (_, other) = s.server.post("/api/v1/tenants", &s.owner, json!({ "name": "Other" })).await;
    let other = other["id"].as_str().unwrap().to_owned();
    let (outsider, _) = s.server.add_user(&s.owner, &other, "out@example.com", "admin").await;
    let (status, _) = s.server.get(&s.activity_path(&activity, "/review"), &outsider).await;
    assert_eq!(status, 404);
    let (status, list) = s.server.get(&format!("/api/v1/tenants/{other}/review-workflows"), &outsider).await;
    assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(0)));
    s.server.stop();
}

async fn concurrent_decisions_and_edits(backend: Backend) {
    let Some(s) = Setup::start(backend).await else { return };
    let (ana, _) = s.server.add_user(&s.owner, &s.tenant, "ana@example.com", "admin").await;
    let (dee, _) = s.server.add_user(&s.owner, &s.tenant, "dee@example.com", "admin").await;
    let body = json!({ "name": "Two steps", "steps": [
        { "name": "Editor", "rule": "any", "role": "admin" },
        { "name": "Second pair of eyes", "rule": "any", "role": "admin" },
    ] });
    let (_, workflow) = s.server.post(&s.t("/review-workflows"), &s.owner, body).await;
    let path = s.t(&format!("/projects/{}/review-workflow", s.project));
    s.server
        .call(reqwest::Method::PUT, &path, Some(&s.owner), Some(json!({ "workflow_id": workflow["id"] })))
        .await;

    // Two admins approve step 1 at the same moment: one decision stands.
    for round in 0..5 {
        let activity = s.generated(&format!("Race {round}")).await;
        let approve = json!({ "decision": "approve", "version": 0, "step": 1 });
        let (a, b) =
            tokio::join!(s.decide(&ana, &activity, approve.clone()), s.decide(&dee, &activity, approve));
        let ok = [a.0, b.0].iter().filter(|s| **s == 200).count();
        assert_eq!(ok, 1, "exactly one approval of step 1: {a:?} {b:?}");
        assert!([a.0, b.0].iter().all(|s| [200, 403, 409].contains(s)), "{a:?} {b:?}");
        let review = s.review(&s.owner, &activity).await;
        assert_eq!(review["current_step"], 2, "{review}");
        assert_eq!(review["steps"][0]["decisions"].as_array().unwrap().len(), 1, "{review}");
    }

    // An edit racing the last approval: either the approval lands and the
    // edit clears it, or the edit lands and the approval is refused. Never
    // an approved activity whose current version nobody approved.
    for round in 0..5 {
        let activity = s.generated(&format!("Edit race {round}")).await;
        let (status, _) = s.decide(&ana, &activity, json!({ "decision": "approve", "version": 0 })).await;
        assert_eq!(status, 200);
        let content_path = s.activity_path(&activity, "/content");
        let edit = s.server.call(
            reqwest::Method::PUT,
            &content_path,
            Some(&ana),
            Some(json!({ "content": format!("# Edit race {round}\n\nEdited.") })),
        );
        let approve = s.decide(&dee, &activity, json!({ "decision": "approve", "version": 0, "step": 2 }));
        let (edited, approved) = tokio::join!(edit, approve);
        assert_eq!(edited.0, 201, "{edited:?}");
        assert!([200, 409].contains(&approved.0), "{approved:?}");
        let (_, detail) = s.server.get(&s.activity_path(&activity, ""), &s.owner).await;
        let review = s.review(&s.owner, &activity).await;
        assert_eq!(detail["status"], "review", "the edit always wins in the end: {detail}");
        assert_eq!(
            (review["version"].as_i64(), review["current_step"].as_i64()),
            (Some(1), Some(1)),
            "{review}"
        );
        assert!(review["steps"][0]["decisions"].as_array().unwrap().is_empty(), "{review}");
    }
    s.server.stop();
}

async fn set_expiry_days(server: &TestServer, days: i64) {
    let sql = format!("UPDATE review_workflows SET expire_days = {days}");
    match server.db.pg_schema {
        Some(_) => {
            let pool = server.db.raw_postgres().await;
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        }
        None => {
            let pool = server.db.raw_sqlite().await;
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        }
    }
}

async fn externals_findings_and_expiry(backend: Backend) {
    let Some(s) = Setup::start(backend).await else { return };
    let (ana, _) = s.server.add_user(&s.owner, &s.tenant, "ana@example.com", "admin").await;
    let (ben, _) = s.server.add_user(&s.owner, &s.tenant, "ben@example.com", "member").await;

    for (body, field) in [
        (
            json!({ "name": "W", "steps": [{ "name": "x", "rule": "any", "only_with_findings": true }] }),
            "steps",
        ),
        (
            json!({ "name": "W", "steps": [{ "name": "x", "rule": "any", "externals": ["not an address"] }] }),
            "steps[0].externals[0]",
        ),
        (json!({ "name": "W", "expire_days": 0, "steps": [{ "name": "x", "rule": "any" }] }), "expire_days"),
    ] {
        let (status, answer) = s.server.post(&s.t("/review-workflows"), &s.owner, body).await;
        assert_eq!((status, answer["error"]["details"]["field"].as_str()), (422, Some(field)), "{answer}");
    }
    let body = json!({ "name": "With the client", "expire_days": 10, "steps": [
        { "name": "Editor", "rule": "any", "role": "admin" },
        { "name": "Client", "rule": "any", "externals": ["Client@Example.org"] },
        { "name": "Compliance", "rule": "any", "role": "owner", "only_with_findings": true },
    ] });
    let (status, workflow) = s.server.post(&s.t("/review-workflows"), &s.owner, body).await;
    assert_eq!(status, 201, "{workflow}");
    assert_eq!(workflow["steps"][1]["approvers"], "any of: client@example.org (external)", "{workflow}");
    let path = s.t(&format!("/projects/{}/review-workflow", s.project));
    let (status, _) = s
        .server
        .call(reqwest::Method::PUT, &path, Some(&s.owner), Some(json!({ "workflow_id": workflow["id"] })))
        .await;
    assert_eq!(status, 200);

    // Content without findings skips the compliance step.
    let activity = s.generated("Open house").await;
    let review = s.review(&s.owner, &activity).await;
    assert_eq!(review["summary"], "step 1 of 2: waiting for any of: admins and owners", "{review}");
    assert!(review["expires_at"].is_string(), "{review}");
    let (status, review) = s.decide(&ana, &activity, json!({ "decision": "approve", "version": 0 })).await;
    assert_eq!((status, review["current_step"].as_i64()), (200, Some(2)), "{review}");
    assert_eq!(review["can_decide"], false, "only the external reviewer decides step 2");

    // A link only for the workflow's external reviewers.
    let links = s.activity_path(&activity, "/review/links");
    let (status, answer) = s.server.post(&links, &s.owner, json!({ "email": "stranger@example.org" })).await;
    assert_eq!((status, answer["error"]["details"]["field"].as_str()), (422, Some("email")), "{answer}");
    let (status, answer) =
        s.server.post(&links, &ben, json!({ "email": "client@example.org", "valid_days": 91 })).await;
    assert_eq!((status, answer["error"]["details"]["field"].as_str()), (422, Some("valid_days")), "{answer}");
    let (status, made) = s.server.post(&links, &ben, json!({ "email": "client@example.org" })).await;
    assert_eq!(status, 201, "{made}");
    let token = made["path"].as_str().unwrap().strip_prefix("/review/").unwrap().to_owned();
    let (_, listed) = s.server.get(&links, &s.owner).await;
    assert_eq!(listed[0]["state"], "active", "{listed}");
    assert!(!listed.to_string().contains(&token), "the token is shown once");

    // The link shows the content and its review, and nothing else.
    let (status, seen) = s
        .server
        .call(reqwest::Method::POST, "/api/v1/review-links/open", None, Some(json!({ "token": token })))
        .await;
    assert_eq!(status, 200, "{seen}");
    assert!(seen["content"].as_str().unwrap().contains("A draft about Open house"), "{seen}");
    assert_eq!(
        (seen["email"].as_str(), seen["review"]["can_decide"].as_bool()),
        (Some("client@example.org"), Some(true))
    );
    let (status, _) = s.server.get(&s.t("/projects"), &token).await;
    assert_eq!(status, 401, "a review link is not a credential");
    let (status, _) = s
        .server
        .call(
            reqwest::Method::POST,
            "/api/v1/review-links/open",
            None,
            Some(json!({ "token": "mkt_rv_nope" })),
        )
        .await;
    assert_eq!(status, 410);

    // The external reviewer approves: the last step here.
    let decide = json!({ "token": token, "decision": "request_changes" });
    let (status, answer) =
        s.server.call(reqwest::Method::POST, "/api/v1/review-links/decide", None, Some(decide)).await;
    assert_eq!((status, answer["error"]["details"]["field"].as_str()), (422, Some("comment")), "{answer}");
    let decide = json!({ "token": token, "decision": "approve", "version": 0, "step": 2 });
    let (status, done) =
        s.server.call(reqwest::Method::POST, "/api/v1/review-links/decide", None, Some(decide.clone())).await;
    assert_eq!((status, done["review"]["state"].as_str()), (200, Some("approved")), "{done}");
    let review = s.review(&s.owner, &activity).await;
    let external = &review["steps"][1]["decisions"][0];
    assert_eq!(external["reviewer_email"], "client@example.org", "{review}");
    let (_, events) = s.server.get(&s.t("/audit-events?action=review_link.decide"), &s.owner).await;
    assert!(
        events["items"].as_array().unwrap().iter().any(|e| e["actor"]["email"] == "client@example.org"),
        "{events}"
    );

    // Revoked: refused.
    let revoke = format!("{links}/{}", made["link"]["id"].as_str().unwrap());
    let (status, _) = s.server.call(reqwest::Method::DELETE, &revoke, Some(&s.owner), None).await;
    assert_eq!(status, 204);
    let (status, _) = s
        .server
        .call(reqwest::Method::POST, "/api/v1/review-links/open", None, Some(json!({ "token": token })))
        .await;
    assert_eq!(status, 410);
    let (status, _) =
        s.server.call(reqwest::Method::POST, "/api/v1/review-links/decide", None, Some(decide)).await;
    assert_eq!(status, 410);

    // A listing kit with Fair Housing findings has the compliance step too.
    let body = json!({
        "kind": "listing_kit", "platforms": ["instagram"], "wait_for_agent": true,
        "listing": {
            "address": "12 Elm Street, Springfield", "price": 450000, "beds": 3, "baths": 2.5,
            "square_feet": 1850, "key_features": ["fenced yard"], "description": "Perfect for a young couple.",
            "agent_name": "Dana Reyes", "agent_contact": "dana@example.com",
        },
    });
    let finding = Finding {
        phrase: "young couple".into(),
        location: "description".into(),
        reason: "familial status".into(),
        suggestion: "describe the home".into(),
        source: "rules".into(),
    };
    let result = ActivityResult {
        content: "# 12 Elm Street\n\nPerfect for a young couple.".into(),
        compliance: Some(ComplianceReview { passed: false, findings: vec![finding] }),
        ..ActivityResult::default()
    };
    let kit = s.generated_with(body, result).await;
    let review = s.review(&s.owner, &kit).await;
    assert_eq!(review["steps"].as_array().unwrap().len(), 3, "{review}");
    assert_eq!(review["steps"][2]["name"], "Compliance", "{review}");
    assert!(review["summary"].as_str().unwrap().starts_with("step 1 of 3"), "{review}");

    // A pending review expires: no decisions until someone who may edit
    // restarts it, at step 1, and step 1's approvers hear.
    let second = s.generated("Garden flat").await;
    set_expiry_days(&s.server, 0).await;
    let review = s.review(&ana, &second).await;
    assert_eq!(
        (review["state"].as_str(), review["can_decide"].as_bool()),
        (Some("expired"), Some(false)),
        "{review}"
    );
    let (status, answer) = s.decide(&ana, &second, json!({ "decision": "approve", "version": 0 })).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("review_ended")), "{answer}");
    let (status, _) = s.decide(&ana, &second, json!({ "decision": "restart" })).await;
    assert_eq!(status, 200, "an admin may edit, so may restart");
    set_expiry_days(&s.server, 10).await;
    let review = s.review(&ana, &second).await;
    assert_eq!(
        (review["state"].as_str(), review["round"].as_i64(), review["current_step"].as_i64()),
        (Some("in_review"), Some(1), Some(1)),
        "{review}"
    );
    let (status, answer) = s.decide(&ben, &second, json!({ "decision": "restart" })).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("review_not_expired")), "{answer}");
    // The author asks for review: step 1's approvers hear.
    let (status, _) = s.server.post(&s.activity_path(&second, "/review/request"), &s.owner, json!({})).await;
    assert_eq!(status, 200);
    assert!(kinds(&s.server, &ana).await.contains(&"review_requested".to_owned()));
    s.server.stop();
}

/// Posts follow the review: one from an activity's variant, unchanged, is
/// scheduled while the activity is in review and covered by its approval
/// (`approve` adds nothing); a post of its own, or one whose text differs
/// from the variant, goes through the project's workflow itself (not
/// `approve`): decided on its revision, an edit starting it again, two
/// approvers at once ending in one approval, its text screened for a
/// findings-only step, an edited workflow applying at once.
async fn posts_follow_the_review(backend: Backend) {
    let Some(s) = Setup::start(backend).await else { return };
    let account = s.x_account().await;
    let body = json!({ "name": "One step", "steps": [{ "name": "Editor", "rule": "any", "role": "admin" }] });
    let (_, workflow) = s.server.post(&s.t("/review-workflows"), &s.owner, body).await;
    let path = s.t(&format!("/projects/{}/review-workflow", s.project));
    let (status, _) = s
        .server
        .call(reqwest::Method::PUT, &path, Some(&s.owner), Some(json!({ "workflow_id": workflow["id"] })))
        .await;
    assert_eq!(status, 200);
    let variant = SocialVariant {
        platform: Platform::X,
        text: "Heat pumps work in winter.".into(),
        char_count: 26,
        char_limit: 280,
        hashtags: vec![],
        enforcement: "as_written".into(),
    };
    let result = ActivityResult {
        content: "# Heat pumps\n\nThey work in winter.".into(),
        social: vec![variant],
        ..ActivityResult::default()
    };
    let body = json!({ "kind": "social_post_set", "topic": "Heat pumps", "platforms": ["x"], "wait_for_agent": true });
    let activity = s.generated_with(body, result).await;

    // From the variant, unchanged, while in review: scheduled; not approved yet.
    let at = "2030-01-01T09:00:00Z";
    let body =
        json!({ "account_id": account.id, "activity_id": activity, "scheduled_at": at, "approve": true });
    let (status, post) = s.server.post(&s.t("/posts"), &s.owner, body).await;
    assert_eq!(
        (status, post["status"].as_str(), post["approved"].as_bool()),
        (201, Some("scheduled"), Some(false)),
        "{post}"
    );
    let covered = post["id"].as_str().unwrap().to_owned();
    let (status, answer) = s.server.get(&s.t(&format!("/posts/{covered}/review")), &s.owner).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("reviewed_with_activity")), "{answer}");
    // Its own text, or a post of its own: not approved alone here...
    for body in [
        json!({ "account_id": account.id, "activity_id": activity, "text": "Different words", "scheduled_at": at, "approve": true }),
        json!({ "account_id": account.id, "project_id": s.project, "text": "Freeform", "scheduled_at": at, "approve": true }),
    ] {
        let (status, answer) = s.server.post(&s.t("/posts"), &s.owner, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (409, Some("review_workflow_required")),
            "{answer}"
        );
    }
    // ...but scheduled, and reviewed through the workflow.
    let body =
        json!({ "account_id": account.id, "project_id": s.project, "text": "Freeform", "scheduled_at": at });
    let (status, own) = s.server.post(&s.t("/posts"), &s.owner, body).await;
    assert_eq!((status, own["status"].as_str()), (201, Some("scheduled")), "{own}");
    let own = own["id"].as_str().unwrap().to_owned();
    let review_path = s.t(&format!("/posts/{own}/review"));
    let (_, review) = s.server.get(&review_path, &s.owner).await;
    assert_eq!(
        (review["state"].as_str(), review["can_decide"].as_bool()),
        (Some("in_review"), Some(false)),
        "{review}"
    );
    let (ana, _) = s.server.add_user(&s.owner, &s.tenant, "ana@example.com", "admin").await;
    let (bob, _) = s.server.add_user(&s.owner, &s.tenant, "bob@example.com", "admin").await;
    let (_, waiting) = s.server.get(&s.t("/reviews/waiting"), &ana).await;
    assert!(waiting.as_array().unwrap().iter().any(|w| w["post_id"] == own.as_str()), "{waiting}");
    // An edit starts it again at the new revision.
    let (status, _) = s
        .server
        .call(
            reqwest::Method::PATCH,
            &s.t(&format!("/posts/{own}")),
            Some(&s.owner),
            Some(json!({ "text": "Freeform, edited" })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, answer) =
        s.server.post(&review_path, &ana, json!({ "decision": "approve", "version": 0 })).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("version_changed")), "{answer}");
    // Two approvers at once: one approval.
    let approve = json!({ "decision": "approve", "version": 1 });
    let (a, b) = tokio::join!(
        s.server.post(&review_path, &ana, approve.clone()),
        s.server.post(&review_path, &bob, approve.clone()),
    );
    let statuses = [a.0, b.0];
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{a:?} {b:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{a:?} {b:?}");
    let (_, after) = s.server.get(&s.t(&format!("/posts/{own}")), &s.owner).await;
    assert_eq!(after["approved"], true, "{after}");
    let (_, review) = s.server.get(&review_path, &s.owner).await;
    assert_eq!(review["state"], "approved", "{review}");
    // An edited workflow applies at once, and a post's own text is screened
    // for Fair Housing: a findings-only step applies to it.
    let body = json!({ "name": "One step", "steps": [
        { "name": "Editor", "rule": "any", "role": "admin" },
        { "name": "Compliance", "rule": "any", "role": "owner", "only_with_findings": true }] });
    let path = s.t(&format!("/review-workflows/{}", workflow["id"].as_str().unwrap()));
    let (status, _) = s.server.call(reqwest::Method::PUT, &path, Some(&s.owner), Some(body)).await;
    assert_eq!(status, 200);
    let body = json!({ "account_id": account.id, "project_id": s.project, "text": "Perfect for young couples",
                       "scheduled_at": at });
    let (_, flagged) = s.server.post(&s.t("/posts"), &s.owner, body).await;
    let (_, review) =
        s.server.get(&s.t(&format!("/posts/{}/review", flagged["id"].as_str().unwrap())), &s.owner).await;
    assert_eq!(review["steps"].as_array().map(Vec::len), Some(2), "{review}");
    let (_, review) = s.server.get(&review_path, &s.owner).await;
    assert_eq!(review["steps"].as_array().map(Vec::len), Some(1), "a clean post skips it: {review}");
    s.server.stop();
}

#[tokio::test]
async fn posts_follow_the_review_on_sqlite() {
    posts_follow_the_review(Backend::Sqlite).await;
}

#[tokio::test]
async fn posts_follow_the_review_on_postgres() {
    posts_follow_the_review(Backend::Postgres).await;
}

#[tokio::test]
async fn externals_findings_and_expiry_on_sqlite() {
    externals_findings_and_expiry(Backend::Sqlite).await;
}

#[tokio::test]
async fn externals_findings_and_expiry_on_postgres() {
    externals_findings_and_expiry(Backend::Postgres).await;
}

#[tokio::test]
async fn two_steps_with_rules_on_sqlite() {
    two_steps_with_rules(Backend::Sqlite).await;
}

#[tokio::test]
async fn two_steps_with_rules_on_postgres() {
    two_steps_with_rules(Backend::Postgres).await;
}

#[tokio::test]
async fn concurrent_decisions_and_edits_on_sqlite() {
    concurrent_decisions_and_edits(Backend::Sqlite).await;
}

#[tokio::test]
async fn concurrent_decisions_and_edits_on_postgres() {
    concurrent_decisions_and_edits(Backend::Postgres).await;
}

/// What "Waiting for my review" costs (the dashboard reads it on every
/// visit): 100 activities in review under a two-step workflow, and 40
/// scheduled posts of their own, read 30 times by an approver. A benchmark,
/// not a test: `cargo test --release -p marketer-control-plane --test
/// api_reviews -- --ignored --nocapture waiting_list`; docs/benchmarks.md
/// records the numbers.
async fn waiting_list_cost(backend: Backend) {
    let Some(s) = Setup::start(backend).await else { return };
    let (status, _) = s.server.patch(&s.t(""), &s.owner, json!({ "plan": "enterprise" })).await;
    assert_eq!(status, 200, "more runs a day than the free plan's");
    let (ana, _) = s.server.add_user(&s.owner, &s.tenant, "ana@example.com", "admin").await;
    for i in 0..18 {
        s.server.add_user(&s.owner, &s.tenant, &format!("m{i}@example.com"), "member").await;
    }
    let body = json!({ "name": "Two steps", "steps": [
        { "name": "Editor", "rule": "any", "role": "admin" }, { "name": "Legal", "rule": "all", "role": "owner" }] });
    let (_, workflow) = s.server.post(&s.t("/review-workflows"), &s.owner, body).await;
    let path = s.t(&format!("/projects/{}/review-workflow", s.project));
    s.server
        .call(reqwest::Method::PUT, &path, Some(&s.owner), Some(json!({ "workflow_id": workflow["id"] })))
        .await;
    for i in 0..100 {
        s.generated(&format!("Topic {i}")).await;
    }
    let account = s.x_account().await;
    for i in 0..40 {
        let body = json!({ "account_id": account.id, "project_id": s.project, "text": format!("Post {i}"),
                           "scheduled_at": "2030-01-01T09:00:00Z" });
        let (status, _) = s.server.post(&s.t("/posts"), &s.owner, body).await;
        assert_eq!(status, 201);
    }
    let mut times = Vec::new();
    for _ in 0..30 {
        let started = std::time::Instant::now();
        let (status, waiting) = s.server.get(&s.t("/reviews/waiting"), &ana).await;
        times.push(started.elapsed());
        assert_eq!((status, waiting.as_array().map(Vec::len)), (200, Some(50)), "{waiting}");
    }
    times.sort();
    println!(
        "{backend:?}: waiting for my review (100 activities, 40 posts, 20 members): p50 {:?}, p95 {:?}",
        times[times.len() / 2],
        times[times.len() * 95 / 100]
    );
    s.server.stop();
}

#[tokio::test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn waiting_list_cost_on_sqlite() {
    waiting_list_cost(Backend::Sqlite).await;
}

#[tokio::test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn waiting_list_cost_on_postgres() {
    waiting_list_cost(Backend::Postgres).await;
}
