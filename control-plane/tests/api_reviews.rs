//! Review workflows over HTTP, on both backends: two steps (any of the
//! admins, then all of two named members), no self-approval, requesting
//! changes returns the item to its author, an edit restarts review, a
//! stale version is refused, and concurrent approvals or an edit racing an
//! approval end in one consistent state.

mod common;

use common::fixtures::enrolled;
use common::{Backend, TestServer};
use marketer_control_plane::api::ApiConfig;
use marketer_control_plane::domain::Timestamp;
use marketer_control_plane::store::{RecordOutcome, RetryPolicy};
use marketer_protocol::activity::ActivityResult;
use marketer_protocol::{JobEvent, JobEventBody, JobOutcome, JobOutput, JobRef, Usage};
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
        let (status, activity) = self
            .server
            .post(
                &self.t(&format!("/projects/{}/activities", self.project)),
                &self.owner,
                json!({ "kind": "blog_article", "topic": topic, "wait_for_agent": true }),
            )
            .await;
        assert_eq!(status, 202, "{activity}");
        let id: Uuid = activity["id"].as_str().unwrap().parse().unwrap();
        let store = self.server.db.store.as_ref();
        let tenant: Uuid = self.tenant.parse().unwrap();
        let run = store.activity(tenant, id).await.unwrap().unwrap().run;
        let now = Timestamp::now();
        let claim = store
            .claim_job(run.id, self.agent, now, now + time::Duration::minutes(1))
            .await
            .unwrap()
            .unwrap();
        let lease = JobRef { job_id: claim.job.id, epoch: u64::try_from(claim.job.epoch).unwrap() };
        let result = ActivityResult {
            content: format!("# {topic}\n\nA draft about {topic}."),
            ..ActivityResult::default()
        };
        let outcome = JobOutcome::Succeeded {
            output: JobOutput::Activity { result: Box::new(result) },
            usage: Usage::default(),
        };
        for (seq, body) in [(1, JobEventBody::Started), (2, JobEventBody::Finished { outcome })] {
            let recorded = store
                .record_job_events(
                    self.agent,
                    &[JobEvent { job: lease, seq, body }],
                    now,
                    now,
                    &RetryPolicy::default(),
                )
                .await
                .unwrap();
            assert!(matches!(recorded[..], [RecordOutcome::Stored { .. }]), "{recorded:?}");
        }
        id.to_string()
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
