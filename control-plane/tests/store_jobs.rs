//! The job store's conformance suite, on SQLite and (when
//! `MARKETER_TEST_DATABASE_URL` is set) PostgreSQL: claims, leases and
//! their epochs, exactly one outcome, timeouts, requeues, waiting reasons.
//! These are the rules that make a job run once whatever the agents send.

mod common;

use common::TestDb;
use common::fixtures::*;
use marketer_control_plane::domain::{Timestamp, new_id};
use marketer_control_plane::store::{
    CancelOutcome, CreateJobOutcome, Job, JobStatus, NewJob, RecordOutcome, RetryPolicy, Route, Store,
    StoreError,
};
use marketer_protocol::{
    ChatMessage, JobError, JobEvent, JobEventBody, JobOutcome, JobOutput, JobRef, JobSpec, Usage, job_errors,
};
use uuid::Uuid;

on_both_backends!(
    a_job_is_claimed_once_and_has_exactly_one_outcome,
    events_are_stored_once_in_order_and_only_under_the_lease,
    leases_renew_only_for_their_holder_and_expire_into_a_new_epoch,
    queue_timeouts_bound_only_the_wait_for_a_first_start,
    undelivered_assignments_return_at_once_without_counting,
    cancelling_fences_off_the_agent,
    a_reconnecting_agent_keeps_only_the_jobs_it_still_has,
    the_queue_pages_by_priority_then_age_and_explains_waits,
    a_batch_of_events_is_judged_one_by_one_in_order,
);

const MODEL: &str = "llama3.2:3b";
const RETRY: RetryPolicy =
    RetryPolicy { base: std::time::Duration::from_secs(2), max: std::time::Duration::from_secs(60) };

fn seconds(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

fn new_job(tenant_id: Uuid) -> NewJob {
    NewJob {
        id: new_id(),
        tenant_id,
        spec: JobSpec::Chat {
            model: MODEL.into(),
            messages: vec![ChatMessage { role: "user".into(), content: "hello".into() }],
            format: None,
            options: Default::default(),
        },
        labels: Default::default(),
        priority: 3,
        not_before: None,
        timeout_seconds: 900,
        queue_timeout_seconds: None,
        max_attempts: 3,
        idempotency_key: None,
        request_hash: vec![1; 32],
        created_by: "test".into(),
        activity_id: None,
        route: Route::Edge,
        index_project_id: None,
    }
}

async fn create(store: &dyn Store, job: &NewJob) -> Job {
    match store.create_job(job, &audit("job.create", Some(job.tenant_id))).await.unwrap() {
        CreateJobOutcome::Created(job) => *job,
        other => panic!("expected a new job, got {other:?}"),
    }
}

/// A tenant with two enrolled agents.
async fn fleet(store: &dyn Store, slug: &str) -> (Uuid, Uuid, Uuid) {
    let (_, tenant_id) = owner_and_tenant(store, slug).await;
    let a = enrolled(store, tenant_id, 1, 1).await;
    let b = enrolled(store, tenant_id, 2, 2).await;
    (tenant_id, a.id, b.id)
}

async fn claim(store: &dyn Store, job: Uuid, agent: Uuid, now: Timestamp) -> JobRef {
    let claim = store.claim_job(job, agent, now, now + seconds(60)).await.unwrap().expect("a claim");
    JobRef { job_id: claim.job.id, epoch: u64::try_from(claim.job.epoch).unwrap() }
}

async fn record(store: &dyn Store, agent: Uuid, job: JobRef, seq: u64, body: JobEventBody) -> RecordOutcome {
    let now = Timestamp::now();
    let mut outcomes = store
        .record_job_events(agent, &[JobEvent { job, seq, body }], now, now + seconds(60), &RETRY)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 1);
    outcomes.remove(0)
}

fn succeeded(text: &str) -> JobEventBody {
    let output =
        JobOutput::Message { role: "assistant".into(), content: text.into(), done_reason: String::new() };
    JobEventBody::Finished { outcome: JobOutcome::Succeeded { output, usage: Usage::default() } }
}

async fn fetch(store: &dyn Store, tenant_id: Uuid, id: Uuid) -> Job {
    store.job(tenant_id, id).await.unwrap().expect("the job")
}

async fn a_job_is_claimed_once_and_has_exactly_one_outcome(db: &TestDb) {
    let store = db.store.as_ref();
    let (tenant_id, a, b) = fleet(store, "once").await;
    let mut keyed = new_job(tenant_id);
    keyed.idempotency_key = Some("order-42".into());
    let job = create(store, &keyed).await;
    assert_eq!((job.status, job.attempts, job.epoch), (JobStatus::Queued, 0, 0));

    // A retried submission returns the same job; a different one with the key is refused.
    let again = NewJob { id: new_id(), ..keyed.clone() };
    match store.create_job(&again, &audit("job.create", Some(tenant_id))).await.unwrap() {
        CreateJobOutcome::Existing(existing) => assert_eq!(existing.id, job.id),
        other => panic!("expected the existing job, got {other:?}"),
    }
    let different = NewJob { id: new_id(), request_hash: vec![2; 32], ..keyed };
    match store.create_job(&different, &audit("job.create", Some(tenant_id))).await {
        Err(StoreError::Conflict { code, .. }) => assert_eq!(code, "idempotency_key_reused"),
        other => panic!("expected a conflict, got {other:?}"),
    }

    // Two schedulers race for the job: one wins.
    let now = Timestamp::now();
    let (first, second) = tokio::join!(
        store.claim_job(job.id, a, now, now + seconds(60)),
        store.claim_job(job.id, b, now, now + seconds(60)),
    );
    let claims: Vec<_> = [first.unwrap(), second.unwrap()].into_iter().flatten().collect();
    assert_eq!(claims.len(), 1, "exactly one claim");
    let winner = claims[0].job.agent_id.unwrap();
    let loser = if winner == a { b } else { a };
    let lease = JobRef { job_id: job.id, epoch: 1 };
    assert_eq!((claims[0].job.status, claims[0].job.attempts), (JobStatus::Assigned, 1));

    assert!(matches!(
        record(store, winner, lease, 1, JobEventBody::Started).await,
        RecordOutcome::Stored { .. }
    ));
    assert_eq!(record(store, loser, lease, 2, succeeded("not mine")).await, RecordOutcome::Stale);
    let RecordOutcome::Stored { finished, .. } = record(store, winner, lease, 2, succeeded("mine")).await
    else {
        panic!("the outcome is stored")
    };
    assert!(finished);
    // The lease ended with the outcome: a replay of it, or anything after
    // it, is acknowledged and discarded.
    assert_eq!(record(store, winner, lease, 2, succeeded("mine")).await, RecordOutcome::Stale);
    let failure = JobError { code: "ollama_error".into(), message: "late".into(), retryable: true };
    let late = JobEventBody::Finished { outcome: JobOutcome::Failed { error: failure } };
    assert_eq!(record(store, winner, lease, 3, late).await, RecordOutcome::Stale);
    let done = fetch(store, tenant_id, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(
        done.output,
        Some(JobOutput::Message {
            role: "assistant".into(),
            content: "mine".into(),
            done_reason: String::new()
        })
    );
    assert!(done.error.is_none() && done.finished_at.is_some() && done.lease().is_none());
    let events = store.job_events(job.id, 0, 100).await.unwrap();
    let dones = events.iter().filter(|e| e.kind.to_string() == "done").count();
    assert_eq!(dones, 1, "one done event");

    // Another tenant sees nothing of it.
    let (_, other) = owner_and_tenant(store, "once-other").await;
    assert!(store.job(other, job.id).await.unwrap().is_none());
}

async fn events_are_stored_once_in_order_and_only_under_the_lease(db: &TestDb) {
    let store = db.store.as_ref();
    let (tenant_id, a, _) = fleet(store, "order").await;
    let job = create(store, &new_job(tenant_id)).await;
    let lease = claim(store, job.id, a, Timestamp::now()).await;
    let chunk = |text: &str| JobEventBody::Output { text: text.into() };
    assert_eq!(record(store, a, lease, 2, chunk("early")).await, RecordOutcome::Gap, "seq 1 is missing");
    assert!(matches!(record(store, a, lease, 1, JobEventBody::Started).await, RecordOutcome::Stored { .. }));
    assert!(matches!(record(store, a, lease, 2, chunk("Hello, ")).await, RecordOutcome::Stored { .. }));
    assert_eq!(record(store, a, lease, 2, chunk("Hello, ")).await, RecordOutcome::Duplicate);
    assert!(matches!(record(store, a, lease, 3, chunk("world")).await, RecordOutcome::Stored { .. }));
    let old = JobRef { epoch: lease.epoch - 1, ..lease };
    assert_eq!(record(store, a, old, 4, chunk("stale")).await, RecordOutcome::Stale);
    let running = fetch(store, tenant_id, job.id).await;
    assert_eq!((running.status, running.agent_seq), (JobStatus::Running, 3));

    // The log: queued, assigned, running, two chunks; ids without gaps.
    let events = store.job_events(job.id, 0, 100).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let texts: Vec<&str> = events.iter().filter_map(|e| e.data["text"].as_str()).collect();
    assert_eq!(texts, ["Hello, ", "world"]);
    assert_eq!(store.job_events(job.id, 3, 100).await.unwrap().len(), 2, "resuming after an id");
    assert_eq!(running.event_seq, 5);
}

async fn leases_renew_only_for_their_holder_and_expire_into_a_new_epoch(db: &TestDb) {
    let store = db.store.as_ref();
    let (tenant_id, a, b) = fleet(store, "leases").await;
    let mut one_try = new_job(tenant_id);
    one_try.max_attempts = 1;
    let (job, last) = (create(store, &new_job(tenant_id)).await, create(store, &one_try).await);
    let t0 = Timestamp::now();
    let lease = claim(store, job.id, a, t0).await;
    let last_lease = claim(store, last.id, a, t0).await;

    // Renewals naming another agent or another epoch do nothing.
    let stale = JobRef { epoch: lease.epoch + 7, ..lease };
    store.renew_leases(&[(b, lease), (a, stale)], t0 + seconds(600)).await.unwrap();
    assert_eq!(fetch(store, tenant_id, job.id).await.lease_expires_at, Some(t0 + seconds(60)));
    store.renew_leases(&[(a, lease)], t0 + seconds(120)).await.unwrap();
    assert_eq!(fetch(store, tenant_id, job.id).await.lease_expires_at, Some(t0 + seconds(120)));

    // At t0 + 90 s only the unrenewed lease ran out: out of attempts, it fails.
    let t1 = t0 + seconds(90);
    let expired = store.expire_leases(t1, &RETRY).await.unwrap();
    assert_eq!(expired.iter().map(|t| t.job.id).collect::<Vec<_>>(), [last.id]);
    assert_eq!(expired[0].ended_lease, Some((a, last_lease)));
    let failed = fetch(store, tenant_id, last.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.unwrap().code, job_errors::AGENT_LOST);

    // Later the other one expires too: requeued after a delay, in a new epoch.
    let t2 = t0 + seconds(121);
    assert_eq!(store.expire_leases(t2, &RETRY).await.unwrap().len(), 1);
    let requeued = fetch(store, tenant_id, job.id).await;
    assert_eq!((requeued.status, requeued.attempts, requeued.agent_id), (JobStatus::Queued, 1, None));
    assert_eq!(requeued.retry_at, Some(t2 + RETRY.delay(2)));
    assert!(requeued.waiting_reason.unwrap().starts_with("retrying at"));
    assert!(store.queued_jobs(tenant_id, t2, None, 10).await.unwrap().is_empty(), "not before the delay");
    assert_eq!(store.queued_jobs(tenant_id, t2 + seconds(2), None, 10).await.unwrap().len(), 1);
    // The lost agent's late outcome is discarded; the next attempt's counts.
    assert_eq!(record(store, a, lease, 1, succeeded("late")).await, RecordOutcome::Stale);
    let next = claim(store, job.id, b, t2 + seconds(2)).await;
    assert_eq!(next.epoch, lease.epoch + 2, "requeue and claim each take an epoch");
    assert!(matches!(record(store, b, next, 1, succeeded("on time")).await, RecordOutcome::Stored { .. }));
    let done = fetch(store, tenant_id, job.id).await;
    assert_eq!((done.status, done.attempts), (JobStatus::Succeeded, 2));
}

async fn queue_timeouts_bound_only_the_wait_for_a_first_start(db: &TestDb) {
    let store = db.store.as_ref();
    let (tenant_id, a, _) = fleet(store, "queue").await;
    let t0 = Timestamp::now();
    let timed = |not_before: Option<Timestamp>| NewJob {
        queue_timeout_seconds: Some(10),
        not_before,
        ..new_job(tenant_id)
    };
    let waits = create(store, &timed(None)).await;
    let later = create(store, &timed(Some(t0 + seconds(100)))).await;
    let started = create(store, &timed(None)).await;
    assert!(later.waiting_reason.unwrap().starts_with("scheduled to start at"));

    // The started job ran, lost its agent and went back to the queue.
    let lease = claim(store, started.id, a, t0).await;
    assert!(matches!(record(store, a, lease, 1, JobEventBody::Started).await, RecordOutcome::Stored { .. }));
    store.expire_leases(t0 + seconds(61), &RETRY).await.unwrap();
    assert_eq!(fetch(store, tenant_id, started.id).await.status, JobStatus::Queued);

    let expired = store.expire_queue_timeouts(t0 + seconds(62)).await.unwrap();
    assert_eq!(
        expired.iter().map(|t| t.job.id).collect::<Vec<_>>(),
        [waits.id],
        "only the never-started job"
    );
    let failed = fetch(store, tenant_id, waits.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!((error.code.as_str(), error.retryable), (job_errors::QUEUE_TIMEOUT, false));

    // A scheduled job's wait starts at its start time.
    assert!(store.expire_queue_timeouts(t0 + seconds(105)).await.unwrap().is_empty());
    assert_eq!(store.expire_queue_timeouts(t0 + seconds(111)).await.unwrap().len(), 1);
    assert_eq!(fetch(store, tenant_id, later.id).await.status, JobStatus::Failed);
}

async fn undelivered_assignments_return_at_once_without_counting(db: &TestDb) {
    let store = db.store.as_ref();
    let (tenant_id, a, b) = fleet(store, "undelivered").await;
    let job = create(store, &new_job(tenant_id)).await;
    let now = Timestamp::now();
    let lease = claim(store, job.id, a, now).await;
    assert!(store.requeue_undelivered(b, lease, now, &RETRY).await.unwrap().is_none(), "not b's lease");
    let transition = store.requeue_undelivered(a, lease, now, &RETRY).await.unwrap().expect("requeued");
    assert_eq!(transition.ended_lease, Some((a, lease)));
    let queued = fetch(store, tenant_id, job.id).await;
    assert_eq!((queued.status, queued.attempts, queued.retry_at), (JobStatus::Queued, 0, Some(now)));
    assert_eq!(queued.error.unwrap().code, job_errors::NOT_DELIVERED);
    assert_eq!(store.queued_jobs(tenant_id, now, None, 10).await.unwrap().len(), 1, "ready at once");
    assert!(store.requeue_undelivered(a, lease, now, &RETRY).await.unwrap().is_none(), "once");
    assert_eq!(record(store, a, lease, 1, JobEventBody::Started).await, RecordOutcome::Stale);
}

async fn cancelling_fences_off_the_agent(db: &TestDb) {
    let store = db.store.as_ref();
    let (tenant_id, a, _) = fleet(store, "cancel").await;
    let job = create(store, &new_job(tenant_id)).await;
    let lease = claim(store, job.id, a, Timestamp::now()).await;
    let (_, other) = owner_and_tenant(store, "cancel-other").await;
    let refused = store.cancel_job(other, job.id, Timestamp::now(), &audit("job.cancel", Some(other))).await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "another tenant's job is not found");

    let entry = audit("job.cancel", Some(tenant_id));
    let cancel = store.cancel_job(tenant_id, job.id, Timestamp::now(), &entry).await.unwrap();
    let CancelOutcome::Cancelled(transition) = cancel else { panic!("cancelled") };
    assert_eq!(transition.ended_lease, Some((a, lease)), "the agent is told to stop");
    assert_eq!(transition.job.status, JobStatus::Cancelled);
    assert_eq!(record(store, a, lease, 1, succeeded("too late")).await, RecordOutcome::Stale);
    let again = store.cancel_job(tenant_id, job.id, Timestamp::now(), &entry).await.unwrap();
    assert!(matches!(again, CancelOutcome::AlreadyFinished(_)));
    assert_eq!(fetch(store, tenant_id, job.id).await.status, JobStatus::Cancelled);
}

async fn a_reconnecting_agent_keeps_only_the_jobs_it_still_has(db: &TestDb) {
    let store = db.store.as_ref();
    let (tenant_id, a, _) = fleet(store, "reconnect").await;
    let (kept, lost) = (create(store, &new_job(tenant_id)).await, create(store, &new_job(tenant_id)).await);
    let now = Timestamp::now();
    let kept_lease = claim(store, kept.id, a, now).await;
    let lost_lease = claim(store, lost.id, a, now).await;
    let mut held = store.agent_leases(a).await.unwrap();
    held.sort_by_key(|l| l.job_id);
    assert_eq!(held, [kept_lease, lost_lease]);

    let released = store.release_lost_jobs(a, &[kept_lease], now, &RETRY).await.unwrap();
    assert_eq!(released.iter().map(|t| t.job.id).collect::<Vec<_>>(), [lost.id]);
    assert_eq!(store.agent_leases(a).await.unwrap(), [kept_lease]);
    let requeued = fetch(store, tenant_id, lost.id).await;
    assert_eq!(
        (requeued.status, requeued.error.unwrap().code.as_str()),
        (JobStatus::Queued, job_errors::AGENT_LOST)
    );
    assert_eq!(fetch(store, tenant_id, kept.id).await.status, JobStatus::Assigned);
}

async fn the_queue_pages_by_priority_then_age_and_explains_waits(db: &TestDb) {
    let store = db.store.as_ref();
    let (tenant_id, _, _) = fleet(store, "pages").await;
    let mut ids = Vec::new();
    for priority in [5, 3, 1, 3, 5] {
        ids.push(create(store, &NewJob { priority, ..new_job(tenant_id) }).await.id);
    }
    let gpu = NewJob { labels: [("gpu".to_owned(), "a100".to_owned())].into(), ..new_job(tenant_id) };
    ids.push(create(store, &gpu).await.id);
    let now = Timestamp::now();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.queued_jobs(tenant_id, now, after, 2).await.unwrap();
        seen.extend(page.iter().map(|j| j.id));
        match page.last() {
            Some(last) if page.len() == 2 => after = Some((last.priority, last.id)),
            _ => break,
        }
    }
    assert_eq!(seen, [ids[2], ids[1], ids[3], ids[5], ids[0], ids[4]], "priority, then oldest first");

    let kinds = store.waiting_kinds(now).await.unwrap();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    let plain = kinds.iter().find(|k| k.labels.is_empty()).unwrap();
    store.set_waiting_reason(plain, now, "every matching agent is busy").await.unwrap();
    let reasons: Vec<Option<String>> = {
        let mut reasons = Vec::new();
        for id in &ids {
            reasons.push(fetch(store, tenant_id, *id).await.waiting_reason);
        }
        reasons
    };
    let busy = Some("every matching agent is busy".to_owned());
    assert_eq!(reasons, [busy.clone(), busy.clone(), busy.clone(), busy.clone(), busy, None]);
    let (_, other) = owner_and_tenant(store, "pages-other").await;
    assert!(store.queued_jobs(other, now, None, 10).await.unwrap().is_empty());
}

/// What an agent sent together is stored in one transaction, each event
/// judged as if alone, in the order sent: two jobs interleaved, a replay,
/// a gap, and a finish, with one outcome each.
async fn a_batch_of_events_is_judged_one_by_one_in_order(db: &TestDb) {
    let store = db.store.as_ref();
    let (tenant_id, a, _) = fleet(store, "batch").await;
    let first = create(store, &new_job(tenant_id)).await;
    let second = create(store, &new_job(tenant_id)).await;
    let now = Timestamp::now();
    let one = claim(store, first.id, a, now).await;
    let two = claim(store, second.id, a, now).await;
    let chunk = |text: &str| JobEventBody::Output { text: text.into() };
    let event = |job, seq, body| JobEvent { job, seq, body };
    let batch = [
        event(one, 1, JobEventBody::Started),
        event(two, 1, JobEventBody::Started),
        event(one, 2, chunk("Hello")),
        event(one, 2, chunk("Hello")),
        event(two, 3, chunk("too early")),
        event(one, 3, succeeded("Hello")),
        event(one, 4, chunk("after the end")),
    ];
    let outcomes = store.record_job_events(a, &batch, now, now + seconds(60), &RETRY).await.unwrap();
    let kinds: Vec<&str> = outcomes
        .iter()
        .map(|o| match o {
            RecordOutcome::Stored { finished: true, .. } => "finished",
            RecordOutcome::Stored { .. } => "stored",
            RecordOutcome::Duplicate => "duplicate",
            RecordOutcome::Gap => "gap",
            RecordOutcome::Stale => "stale",
        })
        .collect();
    assert_eq!(kinds, ["stored", "stored", "stored", "duplicate", "gap", "finished", "stale"]);
    let done = fetch(store, tenant_id, first.id).await;
    assert_eq!((done.status, done.agent_seq, done.event_seq), (JobStatus::Succeeded, 3, 5));
    let running = fetch(store, tenant_id, second.id).await;
    assert_eq!((running.status, running.agent_seq), (JobStatus::Running, 1));
    let seqs: Vec<i64> = store.job_events(first.id, 0, 100).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "queued, assigned, running, the chunk, done: no gaps");
}
