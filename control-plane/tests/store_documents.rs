//! The document store's conformance suite, on SQLite and (when
//! `MARKETER_TEST_DATABASE_URL` is set) PostgreSQL: uploads with their
//! ingest jobs, agents' reports (new, changed, refused, removed, the first
//! report of a connection), and deletion in two steps.

mod common;

use common::TestDb;
use common::fixtures::*;
use marketer_control_plane::domain::{LlmPolicy, Name, Timestamp, new_id};
use marketer_control_plane::store::{
    DocumentOrigin, NewJob, NewProject, NewUpload, PageRequest, Route, Store, StoreError,
};
use marketer_protocol::documents::{DocumentMeta, DocumentReport, DocumentStatus};
use marketer_protocol::{IngestDocument, JobSpec};
use uuid::Uuid;

on_both_backends!(
    uploads_are_recorded_with_their_ingest_job,
    reports_create_update_refuse_and_remove,
    deletion_waits_for_the_agent_that_holds_the_document,
);

async fn project(store: &dyn Store, tenant_id: Uuid) -> Uuid {
    let project = NewProject {
        id: new_id(),
        tenant_id,
        name: Name::parse(&format!("P {}", new_id())).unwrap(),
        description: Default::default(),
        brand_voice: Default::default(),
        llm_policy: LlmPolicy::CloudAllowed,
        default_model: None,
    };
    store.create_project(&project, &audit("project.create", Some(tenant_id))).await.unwrap().id
}

fn upload(tenant_id: Uuid, project_id: Uuid, name: &str) -> (NewUpload, NewJob) {
    let id = new_id();
    let upload = NewUpload {
        id,
        tenant_id,
        project_id,
        name: name.into(),
        size_bytes: 5,
        sha256: "ab".repeat(32),
        media_type: "text/plain".into(),
        storage_key: format!("documents/{tenant_id}/{id}"),
        created_by: None,
    };
    let job = NewJob {
        id: new_id(),
        tenant_id,
        spec: JobSpec::Ingest {
            model: "nomic-embed-text:latest".into(),
            document: IngestDocument {
                document_id: id,
                project_id,
                name: name.into(),
                media_type: "text/plain".into(),
                size_bytes: 5,
                sha256: "ab".repeat(32),
            },
        },
        labels: Default::default(),
        priority: 3,
        not_before: None,
        timeout_seconds: 600,
        queue_timeout_seconds: None,
        max_attempts: 1,
        idempotency_key: None,
        request_hash: Vec::new(),
        created_by: "test".into(),
        activity_id: None,
        route: Route::Edge,
        index_project_id: None,
    };
    (upload, job)
}

fn meta(id: Uuid, project_id: Uuid, name: &str, status: DocumentStatus) -> DocumentMeta {
    DocumentMeta {
        id,
        project_id,
        name: name.into(),
        size_bytes: 42,
        sha256: "cd".repeat(32),
        media_type: "text/markdown".into(),
        status,
        error: (status == DocumentStatus::Failed).then(|| "the PDF cannot be read".into()),
        chunk_count: if status == DocumentStatus::Indexed { 3 } else { 0 },
        embedding_model: "nomic-embed-text".into(),
        indexed_at: (status == DocumentStatus::Indexed).then(time::OffsetDateTime::now_utc),
    }
}

fn report(
    seq: u64,
    held: Option<Vec<Uuid>>,
    documents: Vec<DocumentMeta>,
    removed: Vec<Uuid>,
) -> DocumentReport {
    DocumentReport { seq, held, documents, removed }
}

const PAGE: PageRequest = PageRequest { after: None, limit: 50 };

async fn uploads_are_recorded_with_their_ingest_job(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "uploads").await;
    let (_, other_tenant) = owner_and_tenant(store, "others").await;
    let project_id = project(store, tenant_id).await;
    let (new, job) = upload(tenant_id, project_id, "guide.txt");
    let created = store.create_upload(&new, &job, &audit("document.upload", Some(tenant_id))).await.unwrap();
    assert_eq!(
        (created.origin, created.status, created.job_id),
        (DocumentOrigin::Upload, DocumentStatus::Pending, Some(job.id))
    );
    assert_eq!(created.storage_key.as_deref(), Some(new.storage_key.as_str()));
    assert!(store.job(tenant_id, job.id).await.unwrap().is_some(), "the ingest job is queued with it");
    assert_eq!(store.documents(tenant_id, project_id, PAGE).await.unwrap().items.len(), 1);
    assert_eq!(store.indexed_documents(tenant_id, project_id).await.unwrap(), 0);

    // Another tenant sees nothing of it, and cannot upload into the project.
    assert!(store.document(other_tenant, new.id).await.unwrap().is_none());
    assert!(store.documents(other_tenant, project_id, PAGE).await.unwrap().items.is_empty());
    let (foreign, foreign_job) = upload(other_tenant, project_id, "x.txt");
    let refused =
        store.create_upload(&foreign, &foreign_job, &audit("document.upload", Some(other_tenant))).await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");

    // An ingest job that gives up leaves the document failed with its reason.
    let cancelled =
        store.cancel_job(tenant_id, job.id, Timestamp::now(), &audit("job.cancel", Some(tenant_id))).await;
    assert!(cancelled.is_ok());
    let failed = store.document(tenant_id, new.id).await.unwrap().unwrap();
    assert_eq!(failed.status, DocumentStatus::Failed);
    assert!(failed.error.unwrap().contains("cancelled"));
}

async fn reports_create_update_refuse_and_remove(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "reports").await;
    let (_, other_tenant) = owner_and_tenant(store, "strangers").await;
    let project_id = project(store, tenant_id).await;
    let foreign_project = project(store, other_tenant).await;
    let agent = enrolled(store, tenant_id, 7, 7).await;
    let (a, b, c) = (new_id(), new_id(), new_id());

    // The first report of a connection: two documents, one refused.
    let outcome = store
        .apply_document_report(
            &agent,
            &report(
                1,
                Some(vec![a, b, c]),
                vec![
                    meta(a, project_id, "guide.md", DocumentStatus::Indexed),
                    meta(b, project_id, "broken.pdf", DocumentStatus::Failed),
                    meta(c, foreign_project, "sneaky.md", DocumentStatus::Indexed),
                ],
                vec![],
            ),
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.refused.len(), 1);
    assert_eq!(outcome.refused[0].id, c);
    assert!(outcome.refused[0].reason.contains("not a project of this agent's tenant"));
    let listed = store.documents(tenant_id, project_id, PAGE).await.unwrap().items;
    assert_eq!(listed.len(), 2);
    let guide = store.document(tenant_id, a).await.unwrap().unwrap();
    assert_eq!(
        (guide.origin, guide.status, guide.chunk_count, guide.agent_id),
        (DocumentOrigin::Edge, DocumentStatus::Indexed, 3, Some(agent.id))
    );
    assert!(store.document(other_tenant, c).await.unwrap().is_none(), "nothing lands in another tenant");
    let broken = store.document(tenant_id, b).await.unwrap().unwrap();
    assert_eq!(broken.error.as_deref(), Some("the PDF cannot be read"));
    assert_eq!(store.indexed_documents(tenant_id, project_id).await.unwrap(), 1);

    // A changed document keeps its id; a removed one goes.
    let mut changed = meta(a, project_id, "guide.md", DocumentStatus::Indexed);
    changed.chunk_count = 9;
    store
        .apply_document_report(&agent, &report(2, None, vec![changed], vec![b]), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(store.document(tenant_id, a).await.unwrap().unwrap().chunk_count, 9);
    assert!(store.document(tenant_id, b).await.unwrap().is_none());

    // A later connection's first report that does not hold `a` any more
    // (the agent's index was lost) forgets it.
    let d = new_id();
    store
        .apply_document_report(
            &agent,
            &report(1, Some(vec![d]), vec![meta(d, project_id, "new.md", DocumentStatus::Indexed)], vec![]),
            Timestamp::now(),
        )
        .await
        .unwrap();
    let names: Vec<String> = store
        .documents(tenant_id, project_id, PAGE)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["new.md"]);

    // Another agent of another tenant cannot touch this tenant's documents.
    let stranger = enrolled(store, other_tenant, 8, 8).await;
    let outcome = store
        .apply_document_report(
            &stranger,
            &report(1, Some(vec![]), vec![meta(d, project_id, "x", DocumentStatus::Indexed)], vec![d]),
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.refused.len(), 1);
    assert!(store.document(tenant_id, d).await.unwrap().is_some());
}

async fn deletion_waits_for_the_agent_that_holds_the_document(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "deletes").await;
    let project_id = project(store, tenant_id).await;
    let agent = enrolled(store, tenant_id, 9, 9).await;

    // Not yet on any agent: gone at once, with its file and job to clean up.
    let (new, job) = upload(tenant_id, project_id, "draft.txt");
    store.create_upload(&new, &job, &audit("document.upload", Some(tenant_id))).await.unwrap();
    let deleted =
        store.delete_document(tenant_id, new.id, &audit("document.delete", Some(tenant_id))).await.unwrap();
    assert_eq!(deleted.storage_key.as_deref(), Some(new.storage_key.as_str()));
    assert_eq!((deleted.job_id, deleted.agent_id), (Some(job.id), None));
    assert!(store.document(tenant_id, new.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_document(tenant_id, new.id, &audit("document.delete", Some(tenant_id))).await,
        Err(StoreError::NotFound)
    ));

    // Held by an agent: hidden at once, removed when the agent confirms.
    let (held, held_job) = upload(tenant_id, project_id, "held.txt");
    store.create_upload(&held, &held_job, &audit("document.upload", Some(tenant_id))).await.unwrap();
    store
        .apply_document_report(
            &agent,
            &report(
                1,
                Some(vec![held.id]),
                vec![meta(held.id, project_id, "held.txt", DocumentStatus::Indexed)],
                vec![],
            ),
            Timestamp::now(),
        )
        .await
        .unwrap();
    let deleted =
        store.delete_document(tenant_id, held.id, &audit("document.delete", Some(tenant_id))).await.unwrap();
    assert_eq!(deleted.agent_id, Some(agent.id));
    assert!(store.document(tenant_id, held.id).await.unwrap().is_none(), "hidden at once");
    assert_eq!(store.pending_removals(agent.id).await.unwrap(), [held.id]);
    // The agent reports it again before hearing of the deletion: it is told again.
    let outcome = store
        .apply_document_report(
            &agent,
            &report(2, None, vec![meta(held.id, project_id, "held.txt", DocumentStatus::Indexed)], vec![]),
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.to_remove, [held.id]);
    assert!(store.document(tenant_id, held.id).await.unwrap().is_none(), "still hidden");
    // It confirms: the row and the file go.
    let outcome = store
        .apply_document_report(&agent, &report(3, None, vec![], vec![held.id]), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(outcome.released_files, std::slice::from_ref(&held.storage_key));
    assert!(store.pending_removals(agent.id).await.unwrap().is_empty());
}
