//! A/B tests: a test and its variants, each variant a post of its own
//! written with the test in one transaction; the test's decision, taken
//! once its window has passed.

use async_trait::async_trait;
use uuid::Uuid;

use super::{NewAuditEvent, NewPost, Result};
use crate::domain::Timestamp;

/// A test to create, with one new post per variant.
#[derive(Debug, Clone)]
pub struct NewAbTest {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub window_hours: i64,
    pub ends_at: Timestamp,
    pub created_by: Option<Uuid>,
    /// Each variant's label (`A`, `B`, ...) and post.
    pub variants: Vec<(String, NewPost)>,
}

#[derive(Debug, Clone)]
pub struct AbTest {
    pub id: Uuid,
    pub name: String,
    pub window_hours: i64,
    pub ends_at: Timestamp,
    /// `running` or `decided`.
    pub status: String,
    /// The decision, as JSON, once taken.
    pub decision: Option<String>,
    pub created_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    /// Labels and posts, by label.
    pub variants: Vec<(String, Uuid)>,
}

#[async_trait]
pub trait AbTestStore: Send + Sync {
    /// Writes the test, its variants' posts (each with its audit event in
    /// `post_audits`, in the same order) and the test's audit event, all
    /// in one transaction.
    async fn create_ab_test(
        &self,
        test: &NewAbTest,
        audit: &NewAuditEvent,
        post_audits: &[NewAuditEvent],
    ) -> Result<()>;
    /// The tenant's tests, newest first, at most `limit`.
    async fn ab_tests(&self, tenant_id: Uuid, limit: i64) -> Result<Vec<AbTest>>;
    async fn ab_test(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<AbTest>>;
    /// The test a post is a variant of.
    async fn ab_test_of_post(&self, tenant_id: Uuid, post_id: Uuid) -> Result<Option<Uuid>>;
    /// Running tests (of every tenant) whose window has ended, with their
    /// tenant, at most `limit`.
    async fn ab_tests_due(&self, now: Timestamp, limit: i64) -> Result<Vec<(Uuid, AbTest)>>;
    /// Records a running test's decision with its audit event: `false`
    /// (and nothing written) if another replica decided it first.
    async fn decide_ab_test(&self, id: Uuid, decision: &str, audit: &NewAuditEvent) -> Result<bool>;
}
