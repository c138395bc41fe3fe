//! The activity store's conformance suite, on SQLite and (when
//! `MARKETER_TEST_DATABASE_URL` is set) PostgreSQL: activities and their
//! runs, derived status, versions, approval, cloud providers, usage.

mod common;

use common::TestDb;
use common::fixtures::*;
use marketer_control_plane::domain::{LlmPolicy, Name, Timestamp, new_id};
use marketer_control_plane::store::{
    Activity, ActivityFilter, ActivityStatus, CloudProvider, Decision, JobStatus, NewActivity,
    NewActivityVersion, NewDecision, NewJob, NewProject, PageRequest, RecordOutcome, RetryPolicy, ReviewItem,
    Route, Seen, Store, StoreError,
};
use marketer_protocol::activity::{ActivityInput, ActivityJob, ActivityResult, BlogArticle, Tone};
use marketer_protocol::{JobEvent, JobEventBody, JobOutcome, JobOutput, JobRef, JobSpec, Usage};
use uuid::Uuid;

on_both_backends!(
    activities_run_and_their_status_follows_the_run,
    reruns_versions_and_approval,
    activities_are_listed_by_project_status_and_kind,
    cloud_providers_and_daily_usage,
    a_run_that_fails_keeps_its_last_checkpoint,
);

fn input(topic: &str) -> ActivityInput {
    ActivityInput::BlogArticle(BlogArticle {
        topic: topic.into(),
        keywords: vec![],
        audience: "homeowners".into(),
        tone: Tone::Friendly,
        target_word_count: 800,
        platforms: vec![],
    })
}

async fn project(store: &dyn Store, tenant_id: Uuid) -> Uuid {
    let project = NewProject {
        id: new_id(),
        tenant_id,
        name: Name::parse(&format!("P {}", new_id())).unwrap(),
        description: Default::default(),
        brand_voice: Default::default(),
        llm_policy: LlmPolicy::EdgeOnly,
        default_model: None,
    };
    store.create_project(&project, &audit("project.create", Some(tenant_id))).await.unwrap().id
}

fn run(tenant_id: Uuid, activity_id: Uuid, topic: &str, route: Route) -> NewJob {
    NewJob {
        id: new_id(),
        tenant_id,
        spec: JobSpec::Activity {
            model: "llama3.2:latest".into(),
            activity: Box::new(ActivityJob {
                input: input(topic),
                brand_voice: String::new(),
                project_id: None,
                output_budgets: Default::default(),
                resume: None,
                what_worked: Vec::new(),
            }),
        },
        labels: Default::default(),
        priority: 3,
        not_before: None,
        timeout_seconds: 3600,
        queue_timeout_seconds: None,
        max_attempts: 2,
        idempotency_key: None,
        request_hash: Vec::new(),
        created_by: "test".into(),
        activity_id: Some(activity_id),
        route,
        index_project_id: None,
    }
}

async fn activity(store: &dyn Store, tenant_id: Uuid, project_id: Uuid, topic: &str, route: Route) -> Uuid {
    let id = new_id();
    let new = NewActivity {
        id,
        tenant_id,
        project_id,
        campaign_id: None,
        input: input(topic),
        title: topic.into(),
        model: "llama3.2:latest".into(),
        created_by: None,
        property: None,
    };
    store
        .create_activity(&new, &run(tenant_id, id, topic, route), &audit("activity.create", Some(tenant_id)))
        .await
        .unwrap()
        .id
}

/// Runs an activity's current run to success through the agent path.
async fn succeed(store: &dyn Store, tenant_id: Uuid, id: Uuid, agent: Uuid, content: &str) {
    let current = store.activity(tenant_id, id).await.unwrap().unwrap().run;
    let now = Timestamp::now();
    let claim =
        store.claim_job(current.id, agent, now, now + time::Duration::minutes(1)).await.unwrap().unwrap();
    let lease = JobRef { job_id: claim.job.id, epoch: u64::try_from(claim.job.epoch).unwrap() };
    let result = ActivityResult { content: content.into(), ..ActivityResult::default() };
    let usage = Usage { prompt_tokens: 100, completion_tokens: 40, wall_time_ms: 1500, ..Usage::default() };
    let outcome = JobOutcome::Succeeded { output: JobOutput::Activity { result: Box::new(result) }, usage };
    for (seq, body) in [
        (1, JobEventBody::Started),
        (2, JobEventBody::Progress { step: "seo".into(), percent: 5, message: "SEO".into() }),
        (3, JobEventBody::Finished { outcome }),
    ] {
        let recorded = store
            .record_job_events(
                agent,
                &[JobEvent { job: lease, seq, body }],
                now,
                now,
                &RetryPolicy::default(),
            )
            .await
            .unwrap();
        assert!(matches!(recorded[..], [RecordOutcome::Stored { .. }]), "{recorded:?}");
    }
}

async fn activities_run_and_their_status_follows_the_run(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "acts").await;
    let agent = enrolled(store, tenant_id, 1, 1).await.id;
    let project_id = project(store, tenant_id).await;
    let id = activity(store, tenant_id, project_id, "Solar roofs", Route::Edge).await;
    let created = store.activity(tenant_id, id).await.unwrap().unwrap();
    assert_eq!(
        (created.status(), created.runs, created.title.as_str()),
        (ActivityStatus::Queued, 1, "Solar roofs")
    );
    assert_eq!(created.input, input("Solar roofs"));
    assert_eq!((created.run.activity_id, created.run.route), (Some(id), Route::Edge));

    succeed(store, tenant_id, id, agent, "# Solar roofs").await;
    let done = store.activity(tenant_id, id).await.unwrap().unwrap();
    assert_eq!((done.status(), done.run.status), (ActivityStatus::Review, JobStatus::Succeeded));
    let events = store.job_events(done.run.id, 0, 100).await.unwrap();
    assert!(events.iter().any(|e| e.kind.to_string() == "progress" && e.data["step"] == "seo"));

    // Another tenant sees nothing of it.
    let (_, other) = owner_and_tenant(store, "acts-other").await;
    assert!(store.activity(other, id).await.unwrap().is_none());
    assert!(store.activity_runs(other, id).await.unwrap().is_empty());
    assert!(store.activity_versions(other, id, done.run.id).await.unwrap().is_empty());
    let version = NewActivityVersion {
        id: new_id(),
        content: "x".into(),
        author_id: None,
        author_name: "x".into(),
        findings: None,
    };
    assert!(matches!(
        store.add_activity_version(other, id, &version, &audit("activity.edit", Some(other))).await,
        Err(StoreError::NotFound)
    ));
    // An unknown project is not found; a campaign of another project is refused.
    let new = NewActivity {
        id: new_id(),
        tenant_id,
        project_id: new_id(),
        campaign_id: None,
        input: input("x"),
        title: "x".into(),
        model: "m".into(),
        created_by: None,
        property: None,
    };
    let orphan = run(tenant_id, new.id, "x", Route::Edge);
    assert!(matches!(
        store.create_activity(&new, &orphan, &audit("activity.create", Some(tenant_id))).await,
        Err(StoreError::NotFound)
    ));
}

/// Approves an activity's current content the way the review service's
/// last step does: a decision written only if nothing changed since it was
/// read, which sets the approval.
async fn approve(store: &dyn Store, tenant_id: Uuid, id: Uuid, user: Uuid) -> Result<Activity, StoreError> {
    let activity = store.activity(tenant_id, id).await?.ok_or(StoreError::NotFound)?;
    let run = activity.content_run.as_ref().map_or(Uuid::nil(), |r| r.id);
    let versions = store.activity_versions(tenant_id, id, run).await?;
    let version = versions.last().map_or(0, |v| v.number);
    let decisions =
        store.review_decisions(tenant_id, ReviewItem::Activity(id), run, version).await?.len() as i64;
    let decision = NewDecision {
        id: new_id(),
        tenant_id,
        item: ReviewItem::Activity(id),
        round: 0,
        workflow_id: None,
        step: 1,
        user_id: Some(user),
        reviewer_email: None,
        decision: Decision::Approve,
        comment: String::new(),
    };
    let seen = Seen { content_run_id: run, version, decisions };
    store.decide(&decision, &seen, true, &[], &audit("review.decide", Some(tenant_id))).await?;
    store.activity(tenant_id, id).await?.ok_or(StoreError::NotFound)
}

fn conflict<T>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict { .. }))
}

async fn reruns_versions_and_approval(db: &TestDb) {
    let store = db.store.as_ref();
    let (owner, tenant_id) = owner_and_tenant(store, "edits").await;
    let agent = enrolled(store, tenant_id, 1, 1).await.id;
    let project_id = project(store, tenant_id).await;
    let id = activity(store, tenant_id, project_id, "Edits", Route::Edge).await;
    let act = |name: &'static str| audit(name, Some(tenant_id));

    // Nothing to edit, approve or rerun while it runs.
    let edit = |content: &str| NewActivityVersion {
        id: new_id(),
        content: content.into(),
        author_id: Some(owner),
        author_name: "Owner".into(),
        findings: (content == "flagged").then(Vec::new),
    };
    assert!(conflict(
        &store.add_activity_version(tenant_id, id, &edit("early"), &act("activity.edit")).await
    ));
    assert!(conflict(&approve(store, tenant_id, id, owner).await));
    let second = run(tenant_id, id, "Edits", Route::Edge);
    assert!(conflict(&store.rerun_activity(tenant_id, id, &second, &act("activity.regenerate")).await));

    succeed(store, tenant_id, id, agent, "generated").await;
    let first = store.activity(tenant_id, id).await.unwrap().unwrap().run.id;
    let v1 =
        store.add_activity_version(tenant_id, id, &edit("first edit"), &act("activity.edit")).await.unwrap();
    let v2 =
        store.add_activity_version(tenant_id, id, &edit("second edit"), &act("activity.edit")).await.unwrap();
    assert_eq!((v1.number, v2.number), (1, 2));
    let approved = approve(store, tenant_id, id, owner).await.unwrap();
    assert_eq!((approved.status(), approved.approved_by), (ActivityStatus::Approved, Some(owner)));
    // An edit clears the approval.
    store.add_activity_version(tenant_id, id, &edit("third"), &act("activity.edit")).await.unwrap();
    assert_eq!(store.activity(tenant_id, id).await.unwrap().unwrap().status(), ActivityStatus::Review);
    let versions = store.activity_versions(tenant_id, id, first).await.unwrap();
    let contents: Vec<&str> = versions.iter().map(|v| v.content.as_str()).collect();
    assert_eq!(contents, ["first edit", "second edit", "third"]);
    // Findings are kept with the version they were found in.
    let flagged =
        store.add_activity_version(tenant_id, id, &edit("flagged"), &act("activity.edit")).await.unwrap();
    assert_eq!((flagged.number, flagged.findings.as_deref().map(<[_]>::len)), (4, Some(0)));
    assert_eq!(store.activity_versions(tenant_id, id, first).await.unwrap()[3].findings, Some(vec![]));
    approve(store, tenant_id, id, owner).await.unwrap();

    // A regeneration that is cancelled loses nothing: the content, its
    // versions, its status and its approval stay.
    let rerun = store.rerun_activity(tenant_id, id, &second, &act("activity.regenerate")).await.unwrap();
    assert_eq!((rerun.runs, rerun.run.id, rerun.status()), (2, second.id, ActivityStatus::Queued));
    assert_eq!(rerun.content_run.as_ref().map(|r| r.id), Some(first));
    assert!(conflict(
        &store.add_activity_version(tenant_id, id, &edit("during"), &act("activity.edit")).await
    ));
    store.cancel_job(tenant_id, second.id, Timestamp::now(), &act("activity.cancel")).await.unwrap();
    let after = store.activity(tenant_id, id).await.unwrap().unwrap();
    assert_eq!((after.status(), after.run.status), (ActivityStatus::Approved, JobStatus::Cancelled));
    assert_eq!((after.content_run.as_ref().map(|r| r.id), after.approved_by), (Some(first), Some(owner)));
    assert_eq!(store.activity_versions(tenant_id, id, first).await.unwrap().len(), 4);
    let approved_filter =
        ActivityFilter { status: Some(ActivityStatus::Approved), ..ActivityFilter::default() };
    let listed =
        store.activities(tenant_id, None, &approved_filter, PageRequest { after: None, limit: 10 }).await;
    assert_eq!(listed.unwrap().items.iter().map(|a| a.id).collect::<Vec<_>>(), [id]);
    let cancelled_filter =
        ActivityFilter { status: Some(ActivityStatus::Cancelled), ..ActivityFilter::default() };
    let listed =
        store.activities(tenant_id, None, &cancelled_filter, PageRequest { after: None, limit: 10 }).await;
    assert!(listed.unwrap().items.is_empty(), "an activity with content is not 'cancelled'");
    // Edits go on from where they were.
    let v5 = store.add_activity_version(tenant_id, id, &edit("fifth"), &act("activity.edit")).await.unwrap();
    assert_eq!((v5.number, v5.job_id), (5, first));

    // A run that succeeds replaces the content; the earlier run's versions
    // stay readable, and the approval (of other content) is cleared.
    let third = run(tenant_id, id, "Edits", Route::Edge);
    store.rerun_activity(tenant_id, id, &third, &act("activity.regenerate")).await.unwrap();
    succeed(store, tenant_id, id, agent, "regenerated").await;
    let replaced = store.activity(tenant_id, id).await.unwrap().unwrap();
    assert_eq!(replaced.content_run.as_ref().map(|r| r.id), Some(third.id));
    assert_eq!((replaced.status(), replaced.approved_at), (ActivityStatus::Review, None));
    assert!(store.activity_versions(tenant_id, id, third.id).await.unwrap().is_empty());
    assert_eq!(store.activity_versions(tenant_id, id, first).await.unwrap().len(), 5);
    let runs = store.activity_runs(tenant_id, id).await.unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>()[0], third.id, "newest first");
    assert_eq!(runs.len(), 3);
    assert_eq!(
        store.activity_runs_since(tenant_id, Timestamp::now() - time::Duration::hours(1)).await.unwrap(),
        3
    );
}

async fn activities_are_listed_by_project_status_and_kind(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "lists").await;
    let agent = enrolled(store, tenant_id, 1, 1).await.id;
    let (project_a, project_b) = (project(store, tenant_id).await, project(store, tenant_id).await);
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(activity(store, tenant_id, project_a, &format!("A{n}"), Route::Edge).await);
    }
    activity(store, tenant_id, project_b, "B", Route::Cloud).await;
    succeed(store, tenant_id, ids[1], agent, "done").await;

    let page = |after, status| {
        let filter = ActivityFilter { status, ..ActivityFilter::default() };
        async move {
            store
                .activities(tenant_id, Some(project_a), &filter, PageRequest { after, limit: 2 })
                .await
                .unwrap()
        }
    };
    let first = page(None, None).await;
    assert_eq!(first.items.iter().map(|a| a.id).collect::<Vec<_>>(), [ids[4], ids[3]], "newest first");
    let second = page(first.next, None).await;
    let third = page(second.next, None).await;
    assert_eq!(second.items.len() + third.items.len(), 3);
    assert!(third.next.is_none());
    assert!(third.items.iter().all(|a| a.run.activity_id == Some(a.id)), "each with its current run");
    let review = page(None, Some(ActivityStatus::Review)).await;
    assert_eq!(review.items.iter().map(|a| a.id).collect::<Vec<_>>(), [ids[1]]);
    assert_eq!(page(None, Some(ActivityStatus::Queued)).await.items.len(), 2);
    let cloud = store
        .activities(
            tenant_id,
            Some(project_b),
            &ActivityFilter::default(),
            PageRequest { after: None, limit: 10 },
        )
        .await
        .unwrap();
    assert_eq!(cloud.items[0].run.route, Route::Cloud);
    // Without a project: the tenant's, across its projects.
    let all = store
        .activities(tenant_id, None, &ActivityFilter::default(), PageRequest { after: None, limit: 10 })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 6);
    assert_eq!(all.items[0].title, "B", "newest first");
    // Cloud runs wait for the cloud runner, not for agents.
    let now = Timestamp::now();
    let cloud = store.queued_cloud_jobs(now, 10).await.unwrap();
    assert_eq!(cloud.len(), 1);
    assert!(store.queued_jobs(tenant_id, now, None, 100).await.unwrap().iter().all(|j| j.id != cloud[0].id));
    assert!(store.waiting_kinds(now).await.unwrap().iter().all(|k| k.tenant_id == tenant_id));
}

async fn cloud_providers_and_daily_usage(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "cloudy").await;
    assert!(store.cloud_provider(tenant_id).await.unwrap().is_none());
    let now = Timestamp::now();
    let mut provider = CloudProvider {
        tenant_id,
        base_url: "https://api.example.com/v1".into(),
        model: "gpt-4o-mini".into(),
        api_key_ciphertext: vec![1, 2, 3],
        api_key_nonce: vec![4; 12],
        api_key_hint: "…abcd".into(),
        created_at: now,
        updated_at: now,
    };
    store.set_cloud_provider(&provider, &audit("cloud_provider.set", Some(tenant_id))).await.unwrap();
    provider.model = "gpt-4.1".into();
    provider.api_key_ciphertext = vec![9, 9];
    store.set_cloud_provider(&provider, &audit("cloud_provider.set", Some(tenant_id))).await.unwrap();
    assert_eq!(store.cloud_provider(tenant_id).await.unwrap().unwrap(), provider, "replaced, not duplicated");
    let (_, other) = owner_and_tenant(store, "cloudy-other").await;
    assert!(store.cloud_provider(other).await.unwrap().is_none());
    assert!(matches!(
        store.delete_cloud_provider(other, &audit("cloud_provider.delete", Some(other))).await,
        Err(StoreError::NotFound)
    ));
    store.delete_cloud_provider(tenant_id, &audit("cloud_provider.delete", Some(tenant_id))).await.unwrap();
    assert!(store.cloud_provider(tenant_id).await.unwrap().is_none());

    // Usage: each finished run adds to its tenant's day.
    let agent = enrolled(store, tenant_id, 2, 2).await.id;
    let project_id = project(store, tenant_id).await;
    for n in 0..2 {
        let id = activity(store, tenant_id, project_id, &format!("U{n}"), Route::Edge).await;
        succeed(store, tenant_id, id, agent, "done").await;
    }
    let today = Timestamp::now().date().to_string();
    let days = store.usage(tenant_id, &today, &today).await.unwrap();
    assert_eq!(days.len(), 1);
    let day = &days[0];
    assert_eq!((day.day.as_str(), day.jobs, day.activities), (today.as_str(), 2, 2));
    assert_eq!((day.prompt_tokens, day.completion_tokens, day.wall_time_ms), (200, 80, 3000));
    assert!(store.usage(other, &today, &today).await.unwrap().is_empty());
    assert!(store.usage(tenant_id, "2000-01-01", "2000-12-31").await.unwrap().is_empty());
}

async fn a_run_that_fails_keeps_its_last_checkpoint(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "checkpoints").await;
    let agent = enrolled(store, tenant_id, 1, 1).await.id;
    let project_id = project(store, tenant_id).await;
    let id = activity(store, tenant_id, project_id, "Kept", Route::Edge).await;
    let current = store.activity(tenant_id, id).await.unwrap().unwrap().run;
    let now = Timestamp::now();
    let claim =
        store.claim_job(current.id, agent, now, now + time::Duration::minutes(1)).await.unwrap().unwrap();
    let lease = JobRef { job_id: claim.job.id, epoch: u64::try_from(claim.job.epoch).unwrap() };
    let checkpoint = |content: &str, tokens| JobEventBody::Checkpoint {
        result: Box::new(ActivityResult { content: content.into(), ..ActivityResult::default() }),
        usage: Usage { completion_tokens: tokens, eval_duration_ns: tokens * 1_000, ..Usage::default() },
    };
    let error =
        marketer_protocol::JobError { code: "invalid_output".into(), message: "x".into(), retryable: false };
    for (seq, body) in [
        (1, JobEventBody::Started),
        (2, checkpoint("first", 10)),
        (3, checkpoint("second", 25)),
        (4, JobEventBody::Finished { outcome: JobOutcome::Failed { error } }),
    ] {
        let recorded = store
            .record_job_events(
                agent,
                &[JobEvent { job: lease, seq, body }],
                now,
                now,
                &RetryPolicy::default(),
            )
            .await
            .unwrap();
        assert!(matches!(recorded[..], [RecordOutcome::Stored { .. }]), "{recorded:?}");
    }
    let failed = store.activity(tenant_id, id).await.unwrap().unwrap();
    assert_eq!(failed.run.status, JobStatus::Failed);
    match &failed.run.output {
        Some(JobOutput::Activity { result }) => assert_eq!(result.content, "second"),
        other => panic!("the checkpoint was not kept: {other:?}"),
    }
    let usage = failed.run.usage.clone().unwrap();
    assert_eq!((usage.completion_tokens, usage.eval_duration_ns), (25, 25_000));
    // A checkpoint is not an event of the stream, and the activity has no
    // content (no run succeeded).
    let events = store.job_events(failed.run.id, 0, 100).await.unwrap();
    assert!(events.iter().all(|e| e.data.get("result").is_none()), "{events:?}");
    assert!(failed.content_run.is_none());
    // The day's usage counts what the failed run spent.
    let today = Timestamp::now().date().to_string();
    let days = store.usage(tenant_id, &today, &today).await.unwrap();
    assert_eq!(days[0].completion_tokens, 25);
}
