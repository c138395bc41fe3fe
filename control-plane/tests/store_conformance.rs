//! The store conformance suite: every test runs against SQLite and, when
//! `MARKETER_TEST_DATABASE_URL` is set, PostgreSQL, each in a database of
//! its own.

mod common;

use std::sync::Arc;

use common::TestDb;
use common::fixtures::*;
use marketer_control_plane::domain::{
    ComplianceMode, Email, LlmPolicy, Name, Plan, Role, Slug, Timestamp, new_id,
};
use marketer_control_plane::store::{
    AcceptOutcome, Actor, AgentEventKind, AgentFacts, AgentPatch, AuditFilter, CampaignPatch, ConnectionEnd,
    EnrollOutcome, EnrollmentTokenStatus, HeartbeatUpdate, InvitationStatus, NewAgentCertificate, NewApiKey,
    NewAuditEvent, NewCampaign, NewInvitation, NewProject, NewRefreshToken, NewSession, NewTenant,
    PageRequest, ProjectPatch, RefreshOutcome, Store, StoreError, TenantPatch,
};
use time::macros::date;
use uuid::Uuid;

on_both_backends!(
    bootstrap_runs_once,
    users_are_unique_by_case_insensitive_email,
    tenants_create_read_update,
    switching_to_hipaa_makes_projects_edge_only,
    memberships_and_the_last_owner_rule,
    concurrent_demotions_keep_an_owner,
    refresh_tokens_rotate_and_reuse_revokes_the_session,
    password_reset_and_disabling_end_sessions,
    projects_are_tenant_scoped_and_paginated,
    hipaa_tenants_refuse_cloud_projects,
    campaigns_live_inside_projects,
    invitations_accept_once,
    api_keys_grant_at_most_the_creators_role,
    audit_log_filters_pages_and_is_append_only,
    timestamps_round_trip_exactly,
    enrollment_tokens_redeem_once_and_create_agents,
    agent_connections_heartbeats_and_offline_detection,
    agent_certificates_renewal_revocation_and_events,
    throttles_count_block_clear_and_forget,
    an_erased_tenants_audit_log_takes_only_the_erasures_entries,
);

// ----- Fixtures ------------------------------------------------------------------

fn new_project(tenant_id: Uuid, name: &str, policy: LlmPolicy) -> NewProject {
    NewProject {
        id: new_id(),
        tenant_id,
        name: Name::parse(name).unwrap(),
        description: Default::default(),
        brand_voice: Default::default(),
        llm_policy: policy,
        default_model: None,
    }
}

async fn member(store: &dyn Store, tenant_id: Uuid, email: &str, role: Role) -> Uuid {
    let user = store.create_user(&new_user(email), &audit("user.create", None)).await.unwrap();
    store.add_member(tenant_id, user.id, role, &audit("member.add", Some(tenant_id))).await.unwrap();
    user.id
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, expected: &str) {
    match result {
        Err(StoreError::Conflict { code, .. }) => assert_eq!(code, expected),
        other => panic!("expected conflict {expected}, got {other:?}"),
    }
}

// ----- Tests ----------------------------------------------------------------------

async fn bootstrap_runs_once(db: &TestDb) {
    let store = db.store.as_ref();
    assert!(!store.has_users().await.unwrap());
    let tenant = new_tenant("default");
    assert!(
        store
            .bootstrap(&tenant, &new_user("first@example.com"), &audit("system.bootstrap", Some(tenant.id)))
            .await
            .unwrap()
    );
    assert!(store.has_users().await.unwrap());
    let again = new_tenant("other");
    assert!(
        !store
            .bootstrap(&again, &new_user("second@example.com"), &audit("system.bootstrap", None))
            .await
            .unwrap()
    );
    assert!(store.tenant(again.id).await.unwrap().is_none(), "the second bootstrap changed nothing");
    let owner = store.user_by_email(&Email::parse("first@example.com").unwrap()).await.unwrap().unwrap();
    assert_eq!(store.role(tenant.id, owner.id).await.unwrap(), Some(Role::Owner));
}

async fn users_are_unique_by_case_insensitive_email(db: &TestDb) {
    let store = db.store.as_ref();
    let created =
        store.create_user(&new_user("Ann.Lee@Example.com"), &audit("user.create", None)).await.unwrap();
    assert_eq!(created.email.as_str(), "Ann.Lee@Example.com", "the address is kept as typed");
    assert_conflict(
        store.create_user(&new_user("ann.lee@example.COM"), &audit("user.create", None)).await,
        "email_taken",
    );

    let found = store.user_by_email(&Email::parse("ANN.LEE@example.com").unwrap()).await.unwrap().unwrap();
    assert_eq!(found.id, created.id);
    let creds = store.credentials(&Email::parse("ann.lee@example.com").unwrap()).await.unwrap().unwrap();
    assert!(creds.password_hash.starts_with("$argon2id$"));
    assert!(store.user(Uuid::now_v7()).await.unwrap().is_none());
}

async fn tenants_create_read_update(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "acme").await;
    let tenant = store.tenant(tenant_id).await.unwrap().unwrap();
    assert_eq!(
        (tenant.slug.as_str(), tenant.plan, tenant.compliance_mode),
        ("acme", Plan::Free, ComplianceMode::Standard)
    );
    assert_eq!(store.tenant_by_slug(&Slug::parse("acme").unwrap()).await.unwrap().unwrap().id, tenant_id);

    let user = store.create_user(&new_user("x@example.com"), &audit("user.create", None)).await.unwrap();
    assert_conflict(
        store.create_tenant(&new_tenant("acme"), user.id, &audit("tenant.create", None)).await,
        "slug_taken",
    );

    let patch = TenantPatch {
        name: Some(Name::parse("Acme Corp").unwrap()),
        plan: Some(Plan::Pro),
        ..Default::default()
    };
    let updated =
        store.update_tenant(tenant_id, &patch, &audit("tenant.update", Some(tenant_id))).await.unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.slug.as_str(), updated.plan),
        ("Acme Corp", "acme", Plan::Pro)
    );
    assert!(updated.updated_at >= tenant.updated_at);

    let (_, other) = owner_and_tenant(store, "globex").await;
    let clash = TenantPatch { slug: Some(Slug::parse("acme").unwrap()), ..Default::default() };
    assert_conflict(
        store.update_tenant(other, &clash, &audit("tenant.update", Some(other))).await,
        "slug_taken",
    );
    assert!(matches!(
        store.update_tenant(Uuid::now_v7(), &TenantPatch::default(), &audit("tenant.update", None)).await,
        Err(StoreError::NotFound)
    ));
}

async fn switching_to_hipaa_makes_projects_edge_only(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "clinic").await;
    let cloud = store
        .create_project(
            &new_project(tenant_id, "Cloud", LlmPolicy::CloudAllowed),
            &audit("project.create", Some(tenant_id)),
        )
        .await
        .unwrap();
    let patch = TenantPatch { compliance_mode: Some(ComplianceMode::Hipaa), ..Default::default() };
    let event = audit("tenant.update", Some(tenant_id));
    store.update_tenant(tenant_id, &patch, &event).await.unwrap();
    let project = store.project(tenant_id, cloud.id).await.unwrap().unwrap();
    assert_eq!(project.llm_policy, LlmPolicy::EdgeOnly);

    let page = store
        .audit_events(
            tenant_id,
            &AuditFilter { action: Some("tenant.update".into()), ..Default::default() },
            PAGE,
        )
        .await
        .unwrap();
    assert_eq!(page.items[0].details["projects_made_edge_only"], 1, "the audit entry says what changed");
}

async fn memberships_and_the_last_owner_rule(db: &TestDb) {
    let store = db.store.as_ref();
    let (owner, tenant_id) = owner_and_tenant(store, "team").await;
    let viewer = member(store, tenant_id, "viewer@example.com", Role::Viewer).await;
    assert_conflict(
        store.add_member(tenant_id, viewer, Role::Admin, &audit("member.add", Some(tenant_id))).await,
        "already_member",
    );

    let memberships = store.memberships(viewer).await.unwrap();
    assert_eq!(memberships.len(), 1);
    assert_eq!((memberships[0].tenant_id, memberships[0].role), (tenant_id, Role::Viewer));

    // The only owner can neither be demoted nor removed.
    assert_conflict(
        store.set_role(tenant_id, owner, Role::Admin, &audit("member.update", Some(tenant_id))).await,
        "last_owner",
    );
    assert_conflict(
        store.remove_member(tenant_id, owner, &audit("member.remove", Some(tenant_id))).await,
        "last_owner",
    );

    // With a second owner, the first may step down.
    let promoted = store
        .set_role(tenant_id, viewer, Role::Owner, &audit("member.update", Some(tenant_id)))
        .await
        .unwrap();
    assert_eq!(promoted.role, Role::Owner);
    store.set_role(tenant_id, owner, Role::Member, &audit("member.update", Some(tenant_id))).await.unwrap();
    assert_eq!(store.role(tenant_id, owner).await.unwrap(), Some(Role::Member));
    store.remove_member(tenant_id, owner, &audit("member.remove", Some(tenant_id))).await.unwrap();
    assert_eq!(store.role(tenant_id, owner).await.unwrap(), None);
    assert!(matches!(
        store.remove_member(tenant_id, owner, &audit("member.remove", Some(tenant_id))).await,
        Err(StoreError::NotFound)
    ));

    // Members list pages by id.
    for i in 0..5 {
        member(store, tenant_id, &format!("m{i}@example.com"), Role::Member).await;
    }
    let first = store.members(tenant_id, PageRequest { after: None, limit: 4 }).await.unwrap();
    assert_eq!(first.items.len(), 4);
    let second = store.members(tenant_id, PageRequest { after: first.next, limit: 4 }).await.unwrap();
    assert_eq!(second.items.len(), 2, "6 members in all");
    assert!(second.next.is_none());
    let mut all: Vec<_> = first.items.iter().chain(&second.items).map(|m| m.user_id).collect();
    all.dedup();
    assert_eq!(all.len(), 6, "no member twice");
}

/// Two owners demoting each other at the same moment must not leave the
/// tenant without an owner: the tenant row lock (PostgreSQL) or the single
/// writer (SQLite) serialises them.
async fn concurrent_demotions_keep_an_owner(db: &TestDb) {
    let store: Arc<dyn Store> = db.store.clone();
    for round in 0..5 {
        let (a, tenant_id) = owner_and_tenant(store.as_ref(), &format!("race{round}")).await;
        let b = member(store.as_ref(), tenant_id, &format!("b{round}@example.com"), Role::Owner).await;
        let (s1, s2) = (store.clone(), store.clone());
        let demote_a = tokio::spawn(async move {
            s1.set_role(tenant_id, a, Role::Admin, &audit("member.update", Some(tenant_id))).await
        });
        let demote_b = tokio::spawn(async move {
            s2.set_role(tenant_id, b, Role::Admin, &audit("member.update", Some(tenant_id))).await
        });
        let results = [demote_a.await.unwrap().is_ok(), demote_b.await.unwrap().is_ok()];
        assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "exactly one demotion wins: {results:?}");
        let roles = [store.role(tenant_id, a).await.unwrap(), store.role(tenant_id, b).await.unwrap()];
        assert!(roles.contains(&Some(Role::Owner)), "an owner remains: {roles:?}");
    }
}

async fn refresh_tokens_rotate_and_reuse_revokes_the_session(db: &TestDb) {
    let store = db.store.as_ref();
    let user = store.create_user(&new_user("s@example.com"), &audit("user.create", None)).await.unwrap();
    let session = NewSession {
        id: new_id(),
        user_id: user.id,
        client_ip: None,
        user_agent: Some("test".into()),
        sso_tenant_id: None,
    };
    let now = Timestamp::now();
    let token = |hash: u8| NewRefreshToken {
        id: new_id(),
        token_hash: vec![hash; 32],
        expires_at: now + time::Duration::days(1),
    };
    store.create_session(&session, &token(1), &audit("auth.login", None)).await.unwrap();
    assert_eq!(store.session_user(session.id, user.id).await.unwrap().unwrap().id, user.id);
    assert!(
        store.session_user(session.id, Uuid::now_v7()).await.unwrap().is_none(),
        "the session is bound to its user"
    );

    let rotated = store.rotate_refresh_token(&[1; 32], &token(2), now).await.unwrap();
    assert_eq!(rotated, RefreshOutcome::Rotated { user_id: user.id, session_id: session.id });
    let rotated = store.rotate_refresh_token(&[2; 32], &token(3), now).await.unwrap();
    assert!(matches!(rotated, RefreshOutcome::Rotated { .. }));

    // Replaying the spent token 1 ends the session, including token 3.
    let reused = store.rotate_refresh_token(&[1; 32], &token(4), now).await.unwrap();
    assert_eq!(reused, RefreshOutcome::Reused { user_id: user.id, session_id: session.id });
    assert!(store.session_user(session.id, user.id).await.unwrap().is_none());
    assert_eq!(store.rotate_refresh_token(&[3; 32], &token(5), now).await.unwrap(), RefreshOutcome::Invalid);
    assert_eq!(store.rotate_refresh_token(&[9; 32], &token(6), now).await.unwrap(), RefreshOutcome::Invalid);

    // An expired token is refused.
    let second =
        NewSession { id: new_id(), user_id: user.id, client_ip: None, user_agent: None, sso_tenant_id: None };
    store.create_session(&second, &token(7), &audit("auth.login", None)).await.unwrap();
    let later = now + time::Duration::days(2);
    assert_eq!(
        store.rotate_refresh_token(&[7; 32], &token(8), later).await.unwrap(),
        RefreshOutcome::Invalid
    );

    // Logout by token revokes its session and audits it as the user.
    let third =
        NewSession { id: new_id(), user_id: user.id, client_ip: None, user_agent: None, sso_tenant_id: None };
    store.create_session(&third, &token(10), &audit("auth.login", None)).await.unwrap();
    let revoked = store.revoke_session_by_token(&[10; 32], &audit("auth.logout", None)).await.unwrap();
    assert_eq!(revoked, Some((user.id, third.id)));
    assert!(store.session_user(third.id, user.id).await.unwrap().is_none());
    assert_eq!(store.revoke_session_by_token(&[11; 32], &audit("auth.logout", None)).await.unwrap(), None);
}

async fn password_reset_and_disabling_end_sessions(db: &TestDb) {
    let store = db.store.as_ref();
    let user = store.create_user(&new_user("p@example.com"), &audit("user.create", None)).await.unwrap();
    let session =
        NewSession { id: new_id(), user_id: user.id, client_ip: None, user_agent: None, sso_tenant_id: None };
    let refresh = NewRefreshToken {
        id: new_id(),
        token_hash: vec![1; 32],
        expires_at: Timestamp::now() + time::Duration::days(1),
    };
    store.create_session(&session, &refresh, &audit("auth.login", None)).await.unwrap();
    store.set_password(user.id, "$argon2id$new", &audit("user.password_reset", None)).await.unwrap();
    assert!(store.session_user(session.id, user.id).await.unwrap().is_none());
    let creds = store.credentials(&user.email).await.unwrap().unwrap();
    assert_eq!(creds.password_hash, "$argon2id$new");
    assert!(matches!(
        store.set_password(Uuid::now_v7(), "x", &audit("user.password_reset", None)).await,
        Err(StoreError::NotFound)
    ));
}

async fn projects_are_tenant_scoped_and_paginated(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, a) = owner_and_tenant(store, "alpha").await;
    let (_, b) = owner_and_tenant(store, "bravo").await;
    let project = store
        .create_project(&new_project(a, "Launch", LlmPolicy::EdgeOnly), &audit("project.create", Some(a)))
        .await
        .unwrap();
    assert_conflict(
        store
            .create_project(&new_project(a, "LAUNCH", LlmPolicy::EdgeOnly), &audit("project.create", Some(a)))
            .await,
        "project_name_taken",
    );
    store
        .create_project(&new_project(b, "Launch", LlmPolicy::EdgeOnly), &audit("project.create", Some(b)))
        .await
        .unwrap();

    // Another tenant's project does not exist for you.
    assert!(store.project(b, project.id).await.unwrap().is_none());
    let patch = ProjectPatch { name: Some(Name::parse("Stolen").unwrap()), ..Default::default() };
    assert!(matches!(
        store.update_project(b, project.id, &patch, &audit("project.update", Some(b))).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_project(b, project.id, &audit("project.delete", Some(b))).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.project(a, project.id).await.unwrap().unwrap().name.as_str(), "Launch");

    let patch = ProjectPatch {
        brand_voice: Some(marketer_control_plane::domain::LongText::parse("Warm, direct.").unwrap()),
        default_model: Some(Some(marketer_control_plane::domain::ModelName::parse("llama3.2:3b").unwrap())),
        ..Default::default()
    };
    let updated =
        store.update_project(a, project.id, &patch, &audit("project.update", Some(a))).await.unwrap();
    assert_eq!((updated.name.as_str(), updated.brand_voice.as_str()), ("Launch", "Warm, direct."));
    assert_eq!(updated.default_model.as_ref().map(|m| m.as_str()), Some("llama3.2:3b"));
    let cleared = store
        .update_project(
            a,
            project.id,
            &ProjectPatch { default_model: Some(None), ..Default::default() },
            &audit("project.update", Some(a)),
        )
        .await
        .unwrap();
    assert!(cleared.default_model.is_none());

    for i in 0..4 {
        store
            .create_project(
                &new_project(a, &format!("P{i}"), LlmPolicy::EdgeOnly),
                &audit("project.create", Some(a)),
            )
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.projects(a, PageRequest { after, limit: 2 }).await.unwrap();
        seen.extend(page.items.iter().map(|p| p.id));
        assert!(page.items.iter().all(|p| p.tenant_id == a));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "creation order");

    store.delete_project(a, project.id, &audit("project.delete", Some(a))).await.unwrap();
    assert!(store.project(a, project.id).await.unwrap().is_none());
}

async fn hipaa_tenants_refuse_cloud_projects(db: &TestDb) {
    let store = db.store.as_ref();
    let user = store.create_user(&new_user("h@example.com"), &audit("user.create", None)).await.unwrap();
    let tenant = NewTenant { compliance_mode: ComplianceMode::Hipaa, ..new_tenant("hospital") };
    store.create_tenant(&tenant, user.id, &audit("tenant.create", Some(tenant.id))).await.unwrap();
    let refused = store
        .create_project(
            &new_project(tenant.id, "Cloud", LlmPolicy::CloudAllowed),
            &audit("project.create", Some(tenant.id)),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Invalid { field: "llm_policy", .. })), "{refused:?}");
    let project = store
        .create_project(
            &new_project(tenant.id, "Edge", LlmPolicy::EdgeOnly),
            &audit("project.create", Some(tenant.id)),
        )
        .await
        .unwrap();
    let patch = ProjectPatch { llm_policy: Some(LlmPolicy::CloudAllowed), ..Default::default() };
    let refused =
        store.update_project(tenant.id, project.id, &patch, &audit("project.update", Some(tenant.id))).await;
    assert!(matches!(refused, Err(StoreError::Invalid { field: "llm_policy", .. })));
    assert_eq!(store.project(tenant.id, project.id).await.unwrap().unwrap().llm_policy, LlmPolicy::EdgeOnly);
}

async fn campaigns_live_inside_projects(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, a) = owner_and_tenant(store, "camp-a").await;
    let (_, b) = owner_and_tenant(store, "camp-b").await;
    let project = store
        .create_project(&new_project(a, "Launch", LlmPolicy::EdgeOnly), &audit("project.create", Some(a)))
        .await
        .unwrap();
    let campaign = NewCampaign {
        id: new_id(),
        tenant_id: a,
        project_id: project.id,
        name: Name::parse("Spring").unwrap(),
        start_date: Some(date!(2026 - 03 - 01)),
        end_date: Some(date!(2026 - 05 - 31)),
    };
    let created = store.create_campaign(&campaign, &audit("campaign.create", Some(a))).await.unwrap();
    assert_eq!(created.start_date, Some(date!(2026 - 03 - 01)));

    // A campaign cannot be put into another tenant's project.
    let foreign = NewCampaign { id: new_id(), tenant_id: b, ..campaign.clone() };
    assert!(matches!(
        store.create_campaign(&foreign, &audit("campaign.create", Some(b))).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.campaign(b, project.id, created.id).await.unwrap().is_none());

    let bad = CampaignPatch { end_date: Some(Some(date!(2026 - 01 - 01))), ..Default::default() };
    let refused =
        store.update_campaign(a, project.id, created.id, &bad, &audit("campaign.update", Some(a))).await;
    assert!(matches!(refused, Err(StoreError::Invalid { field: "end_date", .. })), "{refused:?}");
    let open_ended = CampaignPatch { end_date: Some(None), ..Default::default() };
    let updated = store
        .update_campaign(a, project.id, created.id, &open_ended, &audit("campaign.update", Some(a)))
        .await
        .unwrap();
    assert_eq!((updated.start_date, updated.end_date), (Some(date!(2026 - 03 - 01)), None));
    assert_eq!(store.campaigns(a, project.id, PAGE).await.unwrap().items.len(), 1);

    // Deleting the project deletes its campaigns.
    store.delete_project(a, project.id, &audit("project.delete", Some(a))).await.unwrap();
    assert!(store.campaign(a, project.id, created.id).await.unwrap().is_none());
}

async fn invitations_accept_once(db: &TestDb) {
    let store = db.store.as_ref();
    let (owner, tenant_id) = owner_and_tenant(store, "invite").await;
    let now = Timestamp::now();
    let invitation = |email: &str, hash: u8, expires_at: Timestamp| NewInvitation {
        mail_token_hash: None,
        id: new_id(),
        tenant_id,
        email: Email::parse(email).unwrap(),
        role: Role::Member,
        token_hash: vec![hash; 32],
        invited_by: Some(owner),
        expires_at,
    };
    let week = now + time::Duration::days(7);
    let created = store
        .create_invitation(
            &invitation("New.Person@example.com", 1, week),
            &audit("invitation.create", Some(tenant_id)),
        )
        .await
        .unwrap();
    assert_eq!(created.status, InvitationStatus::Pending);

    let accept = |hash: u8, user_id: Uuid| {
        let event = audit("invitation.accept", None);
        async move { store.accept_invitation(&[hash; 32], user_id, now, &event).await.unwrap() }
    };
    // The holder of the token sees what it is for.
    let preview = store.invitation_preview(&[1; 32], now).await.unwrap().unwrap();
    assert_eq!((preview.invitation.id, preview.has_account), (created.id, false));
    assert!(!preview.tenant_name.is_empty());
    assert!(store.invitation_preview(&[99; 32], now).await.unwrap().is_none());
    assert_eq!(
        accept(1, owner).await,
        AcceptOutcome::NeedsAccount,
        "no account for the address: an invitation never makes one"
    );
    let invited =
        store.create_user(&new_user("new.person@example.com"), &audit("user.create", None)).await.unwrap();
    assert!(store.invitation_preview(&[1; 32], now).await.unwrap().unwrap().has_account);
    assert!(
        matches!(accept(1, owner).await, AcceptOutcome::WrongAccount { .. }),
        "only the invited address's account accepts"
    );
    match accept(1, invited.id).await {
        AcceptOutcome::Accepted { tenant_id: t, user, role } => {
            assert_eq!((t, role, user.id), (tenant_id, Role::Member, invited.id));
            assert_eq!(store.role(tenant_id, user.id).await.unwrap(), Some(Role::Member));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(accept(1, invited.id).await, AcceptOutcome::AlreadyUsed);
    assert_eq!(accept(99, invited.id).await, AcceptOutcome::NotFound);

    // An existing account just gains the membership.
    let existing =
        store.create_user(&new_user("existing@example.com"), &audit("user.create", None)).await.unwrap();
    store
        .create_invitation(
            &invitation("EXISTING@example.com", 2, week),
            &audit("invitation.create", Some(tenant_id)),
        )
        .await
        .unwrap();
    assert!(matches!(accept(2, existing.id).await, AcceptOutcome::Accepted { .. }));
    assert_eq!(store.role(tenant_id, existing.id).await.unwrap(), Some(Role::Member));

    // Already a member, expired, revoked.
    store
        .create_invitation(
            &invitation("existing@example.com", 3, week),
            &audit("invitation.create", Some(tenant_id)),
        )
        .await
        .unwrap();
    assert_eq!(accept(3, existing.id).await, AcceptOutcome::AlreadyMember);
    store
        .create_invitation(
            &invitation("late@example.com", 4, now - time::Duration::seconds(1)),
            &audit("invitation.create", Some(tenant_id)),
        )
        .await
        .unwrap();
    assert_eq!(accept(4, existing.id).await, AcceptOutcome::Expired);
    let revoked = store
        .create_invitation(
            &invitation("nope@example.com", 5, week),
            &audit("invitation.create", Some(tenant_id)),
        )
        .await
        .unwrap();
    store
        .revoke_invitation(tenant_id, revoked.id, &audit("invitation.revoke", Some(tenant_id)))
        .await
        .unwrap();
    assert_eq!(accept(5, existing.id).await, AcceptOutcome::Revoked);
    assert_conflict(
        store.revoke_invitation(tenant_id, created.id, &audit("invitation.revoke", Some(tenant_id))).await,
        "invitation_used",
    );

    let statuses: Vec<_> =
        store.invitations(tenant_id, PAGE, now).await.unwrap().items.into_iter().map(|i| i.status).collect();
    assert_eq!(
        statuses,
        [
            InvitationStatus::Accepted,
            InvitationStatus::Accepted,
            InvitationStatus::Pending,
            InvitationStatus::Expired,
            InvitationStatus::Revoked,
        ]
    );
    let (_, other) = owner_and_tenant(store, "other-inv").await;
    assert!(store.invitations(other, PAGE, now).await.unwrap().items.is_empty());
    assert!(matches!(
        store.revoke_invitation(other, revoked.id, &audit("invitation.revoke", Some(other))).await,
        Err(StoreError::NotFound)
    ));
}

async fn api_keys_grant_at_most_the_creators_role(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "keys").await;
    let admin = member(store, tenant_id, "admin@example.com", Role::Admin).await;
    let now = Timestamp::now();
    let key = |hash: u8, role: Role, created_by: Option<Uuid>, expires_at: Option<Timestamp>| NewApiKey {
        id: new_id(),
        tenant_id,
        name: Name::parse("CI").unwrap(),
        role,
        key_hash: vec![hash; 32],
        prefix: "mkt_ak_abcde".into(),
        created_by,
        expires_at,
    };
    let created = store
        .create_api_key(&key(1, Role::Admin, Some(admin), None), &audit("api_key.create", Some(tenant_id)))
        .await
        .unwrap();
    let grant = store.api_key_grant(&[1; 32], now).await.unwrap().unwrap();
    assert_eq!(
        (grant.key.id, grant.creator_role, grant.creator_active),
        (created.id, Some(Role::Admin), true)
    );

    store.set_role(tenant_id, admin, Role::Viewer, &audit("member.update", Some(tenant_id))).await.unwrap();
    let grant = store.api_key_grant(&[1; 32], now).await.unwrap().unwrap();
    assert_eq!(grant.creator_role, Some(Role::Viewer), "the creator's current role is what bounds the key");

    store.remove_member(tenant_id, admin, &audit("member.remove", Some(tenant_id))).await.unwrap();
    let grant = store.api_key_grant(&[1; 32], now).await.unwrap().unwrap();
    assert!(!grant.creator_active, "a key dies with its creator's membership");

    store
        .create_api_key(&key(2, Role::Member, None, None), &audit("api_key.create", Some(tenant_id)))
        .await
        .unwrap();
    assert!(
        store.api_key_grant(&[2; 32], now).await.unwrap().unwrap().creator_active,
        "operator keys stand alone"
    );

    store
        .create_api_key(
            &key(3, Role::Member, None, Some(now - time::Duration::seconds(1))),
            &audit("api_key.create", Some(tenant_id)),
        )
        .await
        .unwrap();
    assert!(store.api_key_grant(&[3; 32], now).await.unwrap().is_none(), "expired");

    store.revoke_api_key(tenant_id, created.id, &audit("api_key.revoke", Some(tenant_id))).await.unwrap();
    assert!(store.api_key_grant(&[1; 32], now).await.unwrap().is_none(), "revoked");
    let (_, other) = owner_and_tenant(store, "keys-other").await;
    assert!(matches!(
        store.revoke_api_key(other, created.id, &audit("api_key.revoke", Some(other))).await,
        Err(StoreError::NotFound)
    ));

    store.touch_api_key(created.id, now).await.unwrap();
    let listed = store.api_keys(tenant_id, PAGE).await.unwrap();
    assert_eq!(listed.items.len(), 3);
    assert_eq!(listed.items[0].last_used_at, Some(now));
    assert!(listed.items[0].revoked_at.is_some());
}

async fn audit_log_filters_pages_and_is_append_only(db: &TestDb) {
    let store = db.store.as_ref();
    let (owner, tenant_id) = owner_and_tenant(store, "audited").await;
    let (_, other) = owner_and_tenant(store, "unrelated").await;
    let t0 = Timestamp::now();
    for i in 0..5 {
        let event = NewAuditEvent {
            actor: Actor::User { id: owner, email: "audited@example.com".into() },
            details: serde_json::json!({ "i": i }),
            ..audit("project.create", Some(tenant_id))
        };
        store.record_audit(&event).await.unwrap();
    }
    store.record_audit(&audit("project.delete", Some(tenant_id))).await.unwrap();
    store.record_audit(&audit("project.create", Some(other))).await.unwrap();
    // A sign-in belongs to no tenant but shows in the tenants of its user.
    let login = NewAuditEvent {
        actor: Actor::User { id: owner, email: "audited@example.com".into() },
        ..audit("auth.login", None)
    };
    store.record_audit(&login).await.unwrap();
    store
        .record_audit(&NewAuditEvent { actor: Actor::Anonymous, ..audit("auth.login", None) })
        .await
        .unwrap();

    let all = store.audit_events(tenant_id, &AuditFilter::default(), PAGE).await.unwrap();
    assert!(all.items.iter().all(|e| e.tenant_id == Some(tenant_id) || e.action == "auth.login"));
    assert!(all.items.iter().any(|e| e.id == login.id));
    assert!(all.items.iter().all(|e| e.actor != Actor::Anonymous), "anonymous sign-ins are not a tenant's");
    assert!(all.items.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    let creates =
        AuditFilter { action: Some("project.create".into()), actor_id: Some(owner), ..Default::default() };
    let first = store.audit_events(tenant_id, &creates, PageRequest { after: None, limit: 3 }).await.unwrap();
    let second =
        store.audit_events(tenant_id, &creates, PageRequest { after: first.next, limit: 3 }).await.unwrap();
    let is: Vec<_> =
        first.items.iter().chain(&second.items).map(|e| e.details["i"].as_i64().unwrap()).collect();
    assert_eq!(is, [4, 3, 2, 1, 0]);
    assert!(second.next.is_none());

    let none_yet = AuditFilter { until: Some(t0), ..Default::default() };
    assert!(
        store
            .audit_events(tenant_id, &none_yet, PAGE)
            .await
            .unwrap()
            .items
            .iter()
            .all(|e| e.occurred_at < t0)
    );
    let recent = AuditFilter { since: Some(t0), action: Some("project.delete".into()), ..Default::default() };
    assert_eq!(store.audit_events(tenant_id, &recent, PAGE).await.unwrap().items.len(), 1);
    let event = &store.audit_events(tenant_id, &recent, PAGE).await.unwrap().items[0];
    assert_eq!((event.client_ip.as_deref(), event.request_id.as_deref()), (Some("192.0.2.1"), Some("req-1")));

    // Neither UPDATE nor DELETE is possible, even bypassing the store.
    if db.pg_schema.is_some() {
        let pool = db.raw_postgres().await;
        assert!(sqlx::query("UPDATE audit_events SET action = 'x'").execute(&pool).await.is_err());
        assert!(sqlx::query("DELETE FROM audit_events").execute(&pool).await.is_err());
    } else {
        let pool = db.raw_sqlite().await;
        assert!(sqlx::query("UPDATE audit_events SET action = 'x'").execute(&pool).await.is_err());
        assert!(sqlx::query("DELETE FROM audit_events").execute(&pool).await.is_err());
    }
    assert_eq!(
        store.audit_events(tenant_id, &AuditFilter::default(), PAGE).await.unwrap().items.len(),
        all.items.len()
    );
}

async fn timestamps_round_trip_exactly(db: &TestDb) {
    let store = db.store.as_ref();
    let event = NewAuditEvent {
        occurred_at: Timestamp::parse_rfc3339("2026-02-03T04:05:06.789012Z").unwrap(),
        ..audit("x.y", None)
    };
    let user = store.create_user(&new_user("t@example.com"), &audit("user.create", None)).await.unwrap();
    let login = NewAuditEvent { actor: Actor::User { id: user.id, email: "t@example.com".into() }, ..event };
    store.record_audit(&login).await.unwrap();
    let tenant = new_tenant("times");
    store.create_tenant(&tenant, user.id, &audit("tenant.create", Some(tenant.id))).await.unwrap();
    let read = store
        .audit_events(tenant.id, &AuditFilter { action: Some("x.y".into()), ..Default::default() }, PAGE)
        .await
        .unwrap();
    assert_eq!(read.items[0].occurred_at, login.occurred_at);
    assert_eq!(read.items[0].occurred_at.to_string(), "2026-02-03T04:05:06.789012Z");
    let fetched = store.user(user.id).await.unwrap().unwrap();
    assert_eq!(fetched, user, "what was written is what is read");
}

// ----- Agents ------------------------------------------------------------------------

async fn enrollment_tokens_redeem_once_and_create_agents(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "fleet").await;
    let now = Timestamp::now();
    let hour = now + time::Duration::hours(1);
    token(store, tenant_id, 1, 2, hour).await;
    let enroll = |hash: u8, fingerprint: u8| {
        let agent = new_agent("edge-01", fingerprint);
        async move { store.enroll_agent(&[hash; 32], &agent, now, &audit("agent.enroll", None)).await.unwrap() }
    };
    let EnrollOutcome::Enrolled(agent) = enroll(1, 10).await else { panic!("first use") };
    assert_eq!(agent.tenant_id, tenant_id, "the tenant comes from the token");
    assert_eq!(agent.name.as_str(), "edge-01", "named after the host by default");
    assert_eq!(agent.labels.get("gpu").map(String::as_str), Some("a100"), "the token's labels win");
    assert_eq!(agent.labels.get("site").map(String::as_str), Some("berlin"));
    assert!(matches!(enroll(1, 11).await, EnrollOutcome::Enrolled(_)), "second of two uses");
    assert_eq!(enroll(1, 12).await, EnrollOutcome::TokenUsedUp);
    assert_eq!(enroll(99, 13).await, EnrollOutcome::TokenNotFound);

    token(store, tenant_id, 2, 1, now - time::Duration::seconds(1)).await;
    assert_eq!(enroll(2, 14).await, EnrollOutcome::TokenExpired);
    let revoked = token(store, tenant_id, 3, 1, hour).await;
    store
        .revoke_enrollment_token(tenant_id, revoked, &audit("enrollment_token.revoke", Some(tenant_id)))
        .await
        .unwrap();
    assert_eq!(enroll(3, 15).await, EnrollOutcome::TokenRevoked);

    let listed = store.enrollment_tokens(tenant_id, PAGE, now).await.unwrap().items;
    let statuses: Vec<_> = listed.iter().map(|t| (t.uses, t.status)).collect();
    assert_eq!(
        statuses,
        [
            (2, EnrollmentTokenStatus::UsedUp),
            (0, EnrollmentTokenStatus::Expired),
            (0, EnrollmentTokenStatus::Revoked),
        ]
    );
    let (_, other) = owner_and_tenant(store, "fleet-other").await;
    assert!(store.enrollment_tokens(other, PAGE, now).await.unwrap().items.is_empty());
    assert!(matches!(
        store.revoke_enrollment_token(other, revoked, &audit("enrollment_token.revoke", Some(other))).await,
        Err(StoreError::NotFound)
    ));

    // The enrollment is audited in the token's tenant, as the agent.
    let log = store
        .audit_events(
            tenant_id,
            &AuditFilter { action: Some("agent.enroll".into()), ..Default::default() },
            PAGE,
        )
        .await
        .unwrap();
    assert_eq!(log.items.len(), 2);
    assert!(matches!(log.items[0].actor, Actor::Agent { .. }));

    // Certificates map to their agent; agents are tenant-scoped.
    let found = store.agent_by_certificate(&[10; 32]).await.unwrap().unwrap();
    assert_eq!(found.agent.id, agent.id);
    assert!(store.agent_by_certificate(&[77; 32]).await.unwrap().is_none());
    assert!(store.agent(other, agent.id).await.unwrap().is_none());
    assert_eq!(store.agents(tenant_id, PAGE).await.unwrap().items.len(), 2);
    assert!(store.agents(other, PAGE).await.unwrap().items.is_empty());
}

async fn agent_connections_heartbeats_and_offline_detection(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "beats").await;
    let agent = enrolled(store, tenant_id, 1, 1).await;
    let window = time::Duration::seconds(25);
    let t0 = Timestamp::now();
    assert!(!agent.is_online(t0, window), "enrolled but never connected");

    let facts = AgentFacts {
        agent_version: "0.1.0".into(),
        protocol_version: 1,
        hostname: "edge-01".into(),
        os: "linux".into(),
        arch: "aarch64".into(),
        max_concurrency: 4,
        ollama_reachable: true,
        models: vec![marketer_protocol::ModelInfo {
            name: "llama3.2:3b".into(),
            size_bytes: 1,
            digest: None,
        }],
        running_jobs: 0,
        policy: marketer_protocol::documents::PolicySummary { redact_phi: true, ..Default::default() },
        projects: vec![tenant_id],
    };
    store.agent_connected(agent.id, &facts, t0).await.unwrap();
    let connected = store.agent(tenant_id, agent.id).await.unwrap().unwrap();
    assert!(connected.is_online(t0, window));
    assert!(connected.policy.as_ref().is_some_and(|p| p.redact_phi));
    assert_eq!(connected.projects, [tenant_id]);
    let projects = [agent.id];
    store.record_agent_index(agent.id, None, Some(&projects)).await.unwrap();
    let updated = store.agent(tenant_id, agent.id).await.unwrap().unwrap();
    assert_eq!((updated.projects.as_slice(), updated.policy.is_some()), (&projects[..], true));
    assert_eq!(
        (connected.arch.as_str(), connected.max_concurrency, connected.models.len()),
        ("aarch64", 4, 1)
    );

    // Heartbeats move last-seen forward and may carry a new model list.
    let t1 = t0 + time::Duration::seconds(10);
    let beat = |models| HeartbeatUpdate {
        agent_id: agent.id,
        seen_at: t1,
        running_jobs: 1,
        ollama_reachable: false,
        models,
        jobs: Vec::new(),
    };
    assert!(store.record_heartbeats(&[beat(None)]).await.unwrap().is_empty());
    let seen = store.agent(tenant_id, agent.id).await.unwrap().unwrap();
    assert_eq!(
        (seen.last_seen_at, seen.running_jobs, seen.ollama_reachable, seen.models.len()),
        (Some(t1), 1, false, 1)
    );
    store.record_heartbeats(&[beat(Some(Vec::new()))]).await.unwrap();
    assert!(store.agent(tenant_id, agent.id).await.unwrap().unwrap().models.is_empty());

    // An abrupt disconnect keeps the agent online until the window passes.
    store.agent_disconnected(agent.id, "connection lost", false, t1).await.unwrap();
    let blip = store.agent(tenant_id, agent.id).await.unwrap().unwrap();
    assert!(blip.is_online(t1 + time::Duration::seconds(5), window));
    assert!(
        store.mark_offline(t1 - time::Duration::seconds(1), t1).await.unwrap().is_empty(),
        "not silent long enough"
    );
    let later = t1 + time::Duration::seconds(30);
    let marked = store.mark_offline(later - window, later).await.unwrap();
    assert_eq!(marked.iter().map(|a| a.id).collect::<Vec<_>>(), [agent.id]);
    assert!(
        store.mark_offline(later - window, later).await.unwrap().is_empty(),
        "marked once, whoever runs it again"
    );
    assert!(!store.agent(tenant_id, agent.id).await.unwrap().unwrap().is_online(later, window));
    // A heartbeat from before the mark, stored late (a dying connection on
    // another replica), neither revives it nor moves last-seen backwards.
    let stale = HeartbeatUpdate { seen_at: t1 - time::Duration::seconds(5), ..beat(None) };
    store.record_heartbeats(&[stale]).await.unwrap();
    let still = store.agent(tenant_id, agent.id).await.unwrap().unwrap();
    assert_eq!(still.last_seen_at, Some(t1));
    assert!(!still.is_online(later, window));
    // One heard after the mark, on a connection that never ended (the mark
    // raced a reconnection elsewhere): online again, and the history says why.
    let heard = later + time::Duration::milliseconds(500);
    store.record_heartbeats(&[HeartbeatUpdate { seen_at: heard, ..beat(None) }]).await.unwrap();
    assert!(store.agent(tenant_id, agent.id).await.unwrap().unwrap().is_online(heard, window));
    let history =
        store.agent_events(tenant_id, agent.id, PageRequest { after: None, limit: 1 }).await.unwrap();
    assert_eq!(history.items[0].kind, AgentEventKind::Connected);
    assert_eq!(history.items[0].details["heartbeats_resumed"], true);
    let marked_again = store.mark_offline(heard + window, heard + window + time::Duration::seconds(1)).await;
    assert_eq!(marked_again.unwrap().len(), 1, "and it can go offline again");

    // Reconnecting makes it online again; a graceful close is offline at once.
    let t2 = heard + window + time::Duration::seconds(2);
    store.agent_connected(agent.id, &facts, t2).await.unwrap();
    assert!(store.agent(tenant_id, agent.id).await.unwrap().unwrap().is_online(t2, window));
    store.agent_disconnected(agent.id, "closed by the agent (1000)", true, t2).await.unwrap();
    let gone = store.agent(tenant_id, agent.id).await.unwrap().unwrap();
    assert!(!gone.is_online(t2, window));
    assert_eq!(gone.disconnect_reason.as_deref(), Some("closed by the agent (1000)"));
}

async fn agent_certificates_renewal_revocation_and_events(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant_id) = owner_and_tenant(store, "certs").await;
    let agent = enrolled(store, tenant_id, 1, 1).await;
    let now = Timestamp::now();
    let renewed = NewAgentCertificate {
        fingerprint: vec![2; 32],
        serial: "02".into(),
        not_before: now,
        not_after: now + time::Duration::days(60),
    };
    store.add_agent_certificate(agent.id, &renewed, now).await.unwrap();
    assert_eq!(store.agent(tenant_id, agent.id).await.unwrap().unwrap().cert_not_after, renewed.not_after);
    assert_eq!(store.agent_by_certificate(&[2; 32]).await.unwrap().unwrap().agent.id, agent.id);
    assert!(
        store.agent_by_certificate(&[1; 32]).await.unwrap().is_some(),
        "the old certificate stays valid until it expires"
    );

    let patch = AgentPatch {
        name: Some(Name::parse("gpu-box").unwrap()),
        labels: Some([("tier".to_owned(), "gold".to_owned())].into()),
    };
    let updated = store
        .update_agent(tenant_id, agent.id, &patch, &audit("agent.update", Some(tenant_id)))
        .await
        .unwrap();
    assert_eq!((updated.name.as_str(), updated.labels.len()), ("gpu-box", 1));
    let (_, other) = owner_and_tenant(store, "certs-other").await;
    assert!(matches!(
        store.update_agent(other, agent.id, &patch, &audit("agent.update", Some(other))).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.revoke_agent(other, agent.id, &audit("agent.revoke", Some(other))).await,
        Err(StoreError::NotFound)
    ));

    let revoked =
        store.revoke_agent(tenant_id, agent.id, &audit("agent.revoke", Some(tenant_id))).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let again =
        store.revoke_agent(tenant_id, agent.id, &audit("agent.revoke", Some(tenant_id))).await.unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at, "revoking twice changes nothing");
    // A heartbeat batch reports the revoked agent so its connection can be closed.
    let beat = HeartbeatUpdate {
        agent_id: agent.id,
        seen_at: now,
        running_jobs: 0,
        ollama_reachable: true,
        models: None,
        jobs: Vec::new(),
    };
    assert_eq!(
        store.record_heartbeats(std::slice::from_ref(&beat)).await.unwrap(),
        [(agent.id, ConnectionEnd::Revoked)]
    );
    // An agent whose row is gone (its tenant erased) is reported too.
    let gone = HeartbeatUpdate { agent_id: Uuid::now_v7(), ..beat };
    let gone_id = gone.agent_id;
    assert_eq!(store.record_heartbeats(&[gone]).await.unwrap(), [(gone_id, ConnectionEnd::TenantErased)]);

    let first = store.agent_events(tenant_id, agent.id, PageRequest { after: None, limit: 2 }).await.unwrap();
    let rest =
        store.agent_events(tenant_id, agent.id, PageRequest { after: first.next, limit: 10 }).await.unwrap();
    let kinds: Vec<AgentEventKind> = first.items.iter().chain(&rest.items).map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [AgentEventKind::Revoked, AgentEventKind::Updated, AgentEventKind::Renewed, AgentEventKind::Enrolled]
    );
    assert!(store.agent_events(other, agent.id, PAGE).await.unwrap().items.is_empty());
}

/// The shared counts behind login and enrollment throttling: concurrent
/// failures from several replicas each count once.
async fn throttles_count_block_clear_and_forget(db: &TestDb) {
    let store = db.store.clone();
    let now = Timestamp::now();
    let hour_ago = now - time::Duration::hours(1);
    let delay = |failures: u32| std::time::Duration::from_secs(u64::from(failures));
    let key = "k".repeat(64);
    assert_eq!(store.throttle_blocked_until(std::slice::from_ref(&key), now).await.unwrap(), None);
    let failures: Vec<_> = (0..10)
        .map(|_| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.throttle_failure(&key, now, hour_ago, &delay).await })
        })
        .collect();
    for failure in failures {
        failure.await.unwrap().unwrap();
    }
    let until = store.throttle_blocked_until(&[key.clone(), "other".into()], now).await.unwrap();
    assert_eq!(until, Some(now + time::Duration::seconds(10)), "ten failures, each counted once");
    // Past its last failure's memory, the count starts again.
    let later = now + time::Duration::hours(2);
    store.throttle_failure(&key, later, later - time::Duration::hours(1), &delay).await.unwrap();
    assert_eq!(
        store.throttle_blocked_until(std::slice::from_ref(&key), later).await.unwrap(),
        Some(later + time::Duration::seconds(1))
    );
    store.throttle_clear(&key).await.unwrap();
    assert_eq!(store.throttle_blocked_until(std::slice::from_ref(&key), later).await.unwrap(), None);
    store.throttle_failure("old", now, hour_ago, &delay).await.unwrap();
    store.throttle_failure("new", later, hour_ago, &delay).await.unwrap();
    assert_eq!(store.throttle_forget(now + time::Duration::minutes(1)).await.unwrap(), 1);
    assert!(store.throttle_blocked_until(&["new".into()], later).await.unwrap().is_some());
}

/// After a tenant's erasure its audit log takes no new entry but the
/// erasure's own (an entry written by a request that was under way would
/// name a person the rewrite already pseudonymised).
async fn an_erased_tenants_audit_log_takes_only_the_erasures_entries(db: &TestDb) {
    use marketer_control_plane::service::erasures::AUDIT_REWRITE;
    use marketer_control_plane::store::TenantErasure;
    let store = db.store.as_ref();
    let user = store.create_user(&new_user("gone@example.com"), &audit("user.create", None)).await.unwrap();
    let tenant = new_tenant("gone");
    store.create_tenant(&tenant, user.id, &audit("tenant.create", Some(tenant.id))).await.unwrap();
    store.record_audit(&audit("project.create", Some(tenant.id))).await.unwrap();
    let erasure =
        TenantErasure { id: new_id(), tenant_id: tenant.id, requested_by: None, now: Timestamp::now() };
    store.erase_tenant(&erasure, AUDIT_REWRITE, &audit("tenant.erase", Some(tenant.id))).await.unwrap();
    let refused = store.record_audit(&audit("project.update", Some(tenant.id))).await.unwrap_err();
    let refused = marketer_control_plane::error::Error::from(refused);
    assert!(matches!(refused, marketer_control_plane::error::Error::NotFound(_)), "{refused:?}");
    store.record_audit(&audit("tenant.erase_confirmed", Some(tenant.id))).await.unwrap();
    store.record_audit(&audit("user.login", None)).await.unwrap();
}
