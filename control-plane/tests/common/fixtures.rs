//! Records the store tests start from: users, tenants, agents, audit
//! entries. Shared by the store conformance suites.

use marketer_control_plane::domain::{ComplianceMode, Email, Name, Plan, Slug, Timestamp, new_id};
use marketer_control_plane::store::{
    Actor, Agent, EnrollOutcome, NewAgent, NewAgentCertificate, NewAuditEvent, NewEnrollmentToken, NewTenant,
    NewUser, Outcome, PageRequest, Store,
};
use uuid::Uuid;

pub fn audit(action: &'static str, tenant_id: Option<Uuid>) -> NewAuditEvent {
    NewAuditEvent {
        id: new_id(),
        occurred_at: Timestamp::now(),
        tenant_id,
        actor: Actor::System { name: "test".into() },
        client_ip: Some("192.0.2.1".into()),
        request_id: Some("req-1".into()),
        action,
        resource_type: None,
        resource_id: None,
        outcome: Outcome::Success,
        details: serde_json::json!({}),
        notices: Vec::new(),
        mails: Vec::new(),
        events: Vec::new(),
    }
}

pub fn new_user(email: &str) -> NewUser {
    NewUser {
        id: new_id(),
        email: Email::parse(email).unwrap(),
        display_name: Name::parse("Test User").unwrap(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
    }
}

pub fn new_tenant(slug: &str) -> NewTenant {
    NewTenant {
        id: new_id(),
        name: Name::parse(&format!("Tenant {slug}")).unwrap(),
        slug: Slug::parse(slug).unwrap(),
        plan: Plan::Free,
        compliance_mode: ComplianceMode::Standard,
    }
}

pub const PAGE: PageRequest = PageRequest { after: None, limit: 50 };

/// A user who owns a fresh tenant.
pub async fn owner_and_tenant(store: &dyn Store, slug: &str) -> (Uuid, Uuid) {
    let user = store
        .create_user(&new_user(&format!("{slug}@example.com")), &audit("user.create", None))
        .await
        .unwrap();
    let tenant = new_tenant(slug);
    store.create_tenant(&tenant, user.id, &audit("tenant.create", Some(tenant.id))).await.unwrap();
    (user.id, tenant.id)
}

pub fn new_agent(hostname: &str, fingerprint: u8) -> NewAgent {
    let now = Timestamp::now();
    NewAgent {
        id: new_id(),
        name: None,
        labels: [("gpu".to_owned(), "none".to_owned())].into(),
        hostname: hostname.to_owned(),
        os: "linux".into(),
        arch: "x86_64".into(),
        agent_version: "0.1.0".into(),
        certificate: NewAgentCertificate {
            fingerprint: vec![fingerprint; 32],
            serial: format!("{fingerprint:02x}"),
            not_before: now - time::Duration::minutes(5),
            not_after: now + time::Duration::days(30),
        },
    }
}

pub async fn token(
    store: &dyn Store,
    tenant_id: Uuid,
    hash: u8,
    max_uses: i64,
    expires_at: Timestamp,
) -> Uuid {
    let token = NewEnrollmentToken {
        id: new_id(),
        tenant_id,
        token_hash: vec![hash; 32],
        labels: [("site".to_owned(), "berlin".to_owned()), ("gpu".to_owned(), "a100".to_owned())].into(),
        max_uses,
        created_by: None,
        expires_at,
    };
    store
        .create_enrollment_token(&token, &audit("enrollment_token.create", Some(tenant_id)))
        .await
        .unwrap()
        .id
}

pub async fn enrolled(store: &dyn Store, tenant_id: Uuid, hash: u8, fingerprint: u8) -> Agent {
    token(store, tenant_id, hash, 1, Timestamp::now() + time::Duration::hours(1)).await;
    match store
        .enroll_agent(
            &[hash; 32],
            &new_agent("edge-01", fingerprint),
            Timestamp::now(),
            &audit("agent.enroll", None),
        )
        .await
        .unwrap()
    {
        EnrollOutcome::Enrolled(agent) => *agent,
        other => panic!("{other:?}"),
    }
}
