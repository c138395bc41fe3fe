//! Tenants, members, invitations and the last-owner rule over HTTP.

mod common;

use common::{OWNER_EMAIL, PASSWORD, TestServer};
use marketer_control_plane::auth::tokens::{OpaqueToken, TokenKind};
use marketer_control_plane::domain::{Email, Role, Timestamp, new_id};
use marketer_control_plane::store::{Actor, NewAuditEvent, NewInvitation, Outcome};
use reqwest::Method;
use serde_json::json;

/// Accepts an invitation as the holder of `session` (`None`: signed out).
async fn accept(
    server: &TestServer,
    session: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    server.call(Method::POST, "/api/v1/invitations/accept", session, Some(body)).await
}

async fn invite(
    server: &TestServer,
    admin: &str,
    tenant: &str,
    email: &str,
    role: &str,
) -> serde_json::Value {
    let (status, invitation) = server
        .post(
            &format!("/api/v1/tenants/{tenant}/invitations"),
            admin,
            json!({ "email": email, "role": role }),
        )
        .await;
    assert_eq!(status, 201, "{invitation}");
    invitation
}

#[tokio::test]
async fn invitations_are_accepted_by_the_invited_account_signed_in_and_once() {
    let server = TestServer::start().await;
    let (owner, tenant) = server.owner().await;
    let invitation = invite(&server, &owner, &tenant, "New@Example.com", "member").await;
    let token = invitation["token"].as_str().unwrap();
    assert!(token.starts_with("mkt_inv_"));
    let expires = Timestamp::parse_rfc3339(invitation["expires_at"].as_str().unwrap()).unwrap();
    let days = (expires.as_datetime() - Timestamp::now().as_datetime()).whole_hours();
    assert!((167..=168).contains(&days), "7-day expiry, got {days} hours");

    // Holding the token is not enough: signed out is 401, and a token
    // cannot carry a name and password to create the account.
    let (status, _) = accept(&server, None, json!({ "token": token })).await;
    assert_eq!(status, 401);
    let (status, body) =
        accept(&server, Some(&owner), json!({ "token": token, "name": "N", "password": PASSWORD })).await;
    assert_eq!(status, 422, "{body}");
    // The address has no account: the operator creates it first.
    let (status, body) = accept(&server, Some(&owner), json!({ "token": token })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("account_needed")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("admin create-user"), "{body}");

    server.create_account("new@example.com").await;
    // Another signed-in account cannot take it.
    let (status, body) = accept(&server, Some(&owner), json!({ "token": token })).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("New@Example.com"), "{body}");
    let member = server.access_token("new@example.com", PASSWORD).await;
    let (status, accepted) = accept(&server, Some(&member), json!({ "token": token })).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["role"].as_str(), Some("member"));
    assert_eq!(accepted["tenant_id"], tenant.as_str());
    assert_eq!(server.get(&format!("/api/v1/tenants/{tenant}/projects"), &member).await.0, 200);

    // Used once; unknown tokens are 404.
    let (status, body) = accept(&server, Some(&member), json!({ "token": token })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("invitation_used")));
    let unknown = OpaqueToken::generate(TokenKind::Invitation).text;
    assert_eq!(accept(&server, Some(&member), json!({ "token": unknown })).await.0, 404);
    assert_eq!(accept(&server, Some(&member), json!({ "token": "garbage" })).await.0, 404);

    let (_, list) = server.get(&format!("/api/v1/tenants/{tenant}/invitations"), &owner).await;
    assert_eq!(list["items"][0]["status"], "accepted");
    assert!(!list.to_string().contains(token), "tokens are not listed");
}

#[tokio::test]
async fn expired_and_revoked_invitations_are_gone() {
    let server = TestServer::start().await;
    let (owner, tenant) = server.owner().await;
    let tenant_id: uuid::Uuid = tenant.parse().unwrap();

    // An invitation that expired a minute ago, written straight to the store.
    let expired = OpaqueToken::generate(TokenKind::Invitation);
    let event = NewAuditEvent {
        id: new_id(),
        occurred_at: Timestamp::now(),
        tenant_id: Some(tenant_id),
        actor: Actor::System { name: "test".into() },
        client_ip: None,
        request_id: None,
        action: "invitation.create",
        resource_type: None,
        resource_id: None,
        outcome: Outcome::Success,
        details: json!({}),
        notices: Vec::new(),
        mails: Vec::new(),
        events: Vec::new(),
    };
    let invitation = NewInvitation {
        mail_token_hash: None,
        id: new_id(),
        tenant_id,
        email: Email::parse("late@example.com").unwrap(),
        role: Role::Viewer,
        token_hash: expired.hash.clone(),
        invited_by: None,
        expires_at: Timestamp::now() - time::Duration::minutes(1),
    };
    server.db.store.create_invitation(&invitation, &event).await.unwrap();
    server.create_account("late@example.com").await;
    let late = server.access_token("late@example.com", PASSWORD).await;
    let (status, body) = accept(&server, Some(&late), json!({ "token": expired.text })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (410, Some("invitation_expired")), "{body}");

    let revoked = invite(&server, &owner, &tenant, "r@example.com", "viewer").await;
    let id = revoked["id"].as_str().unwrap();
    assert_eq!(server.delete(&format!("/api/v1/tenants/{tenant}/invitations/{id}"), &owner).await.0, 204);
    server.create_account("r@example.com").await;
    let r = server.access_token("r@example.com", PASSWORD).await;
    let (status, body) = accept(&server, Some(&r), json!({ "token": revoked["token"] })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (410, Some("invitation_revoked")));
}

/// The two takeover paths found: an owner pre-creating a colleague's
/// account with a password of their choosing, and an owner adding an
/// existing account of another organisation to theirs without its consent.
#[tokio::test]
async fn invitations_cannot_pre_create_or_take_over_an_account() {
    let server = TestServer::start().await;
    let (owner, tenant) = server.owner().await;

    // Pre-creation: the inviter holds the token and tries to set the
    // future colleague's password. Nothing is created.
    let future = invite(&server, &owner, &tenant, "future@example.com", "member").await;
    let body = json!({ "token": future["token"], "name": "Future", "password": "inviter chosen password" });
    assert_eq!(accept(&server, None, body.clone()).await.0, 401);
    assert_eq!(accept(&server, Some(&owner), body).await.0, 422);
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": "future@example.com", "password": "inviter chosen password" })),
        )
        .await;
    assert_eq!(status, 401, "no account was made with the inviter's password");

    // Takeover: an account that belongs to another organisation, invited
    // by an owner who holds the token, is not added until it accepts.
    let (status, beta) = server.post("/api/v1/tenants", &owner, json!({ "name": "Beta Corp" })).await;
    assert_eq!(status, 201);
    let beta_id = beta["id"].as_str().unwrap();
    let (status, body) = server
        .post(
            &format!("/api/v1/tenants/{beta_id}/invitations"),
            &owner,
            json!({ "email": OWNER_EMAIL, "role": "viewer" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("already_member")),
        "the creator is a member"
    );
    server.create_account("friend@example.com").await;
    let friend = server.access_token("friend@example.com", PASSWORD).await;
    let invitation = invite(&server, &owner, beta_id, "FRIEND@example.com", "member").await;
    assert_eq!(accept(&server, None, json!({ "token": invitation["token"] })).await.0, 401);
    let (status, _) = accept(&server, Some(&owner), json!({ "token": invitation["token"] })).await;
    assert_eq!(status, 403, "the inviter cannot accept for the invitee");
    let (_, me) = server.get("/api/v1/me", &friend).await;
    assert!(me["memberships"].as_array().unwrap().is_empty(), "not added without consent: {me}");
    let (status, joined) = accept(&server, Some(&friend), json!({ "token": invitation["token"] })).await;
    assert_eq!(status, 200, "{joined}");
    let (_, me) = server.get("/api/v1/me", &friend).await;
    assert_eq!(me["memberships"].as_array().unwrap().len(), 1);

    // Inviting a current member is refused up front.
    let (status, _) = server
        .post(
            &format!("/api/v1/tenants/{beta_id}/invitations"),
            &owner,
            json!({ "email": "friend@example.com", "role": "viewer" }),
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_tenant_always_keeps_an_owner() {
    let server = TestServer::start().await;
    let (owner, tenant) = server.owner().await;
    let (_, me) = server.get("/api/v1/me", &owner).await;
    let owner_id = me["user"]["id"].as_str().unwrap().to_owned();
    let member_path = |id: &str| format!("/api/v1/tenants/{tenant}/members/{id}");

    let (status, body) = server.patch(&member_path(&owner_id), &owner, json!({ "role": "admin" })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("last_owner")), "{body}");
    let (status, _) = server.delete(&member_path(&owner_id), &owner).await;
    assert_eq!(status, 409, "the last owner cannot leave either");

    let (second, second_id) = server.add_user(&owner, &tenant, "second@example.com", "admin").await;
    assert_eq!(server.patch(&member_path(&second_id), &owner, json!({ "role": "owner" })).await.0, 200);
    // An admin cannot remove an owner; an owner can, and anyone can leave.
    let (admin, _) = server.add_user(&owner, &tenant, "admin@example.com", "admin").await;
    assert_eq!(server.delete(&member_path(&second_id), &admin).await.0, 403);
    assert_eq!(server.delete(&member_path(&owner_id), &owner).await.0, 204, "leaving is allowed now");
    assert_eq!(
        server.get(&format!("/api/v1/tenants/{tenant}"), &owner).await.0,
        404,
        "and the tenant is gone from view"
    );
    let (_, members) = server.get(&format!("/api/v1/tenants/{tenant}/members"), &second).await;
    let roles: Vec<_> =
        members["items"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap().to_owned()).collect();
    assert_eq!(roles.iter().filter(|r| *r == "owner").count(), 1, "{members}");
}

#[tokio::test]
async fn tenants_are_created_and_changed_by_owners() {
    let server = TestServer::start().await;
    let (owner, tenant) = server.owner().await;
    let (status, created) = server
        .post(
            "/api/v1/tenants",
            &owner,
            json!({ "name": "Clinic", "slug": "clinic", "compliance_mode": "hipaa", "plan": "enterprise" }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (created["compliance_mode"].as_str(), created["plan"].as_str()),
        (Some("hipaa"), Some("enterprise"))
    );
    let (status, body) =
        server.post("/api/v1/tenants", &owner, json!({ "name": "Other", "slug": "clinic" })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("slug_taken")));
    // A derived slug that is taken gets a suffix instead of failing.
    let (status, derived) = server.post("/api/v1/tenants", &owner, json!({ "name": "Clinic" })).await;
    assert_eq!(status, 201);
    assert!(derived["slug"].as_str().unwrap().starts_with("clinic-"), "{derived}");

    // hipaa tenants refuse cloud projects, naming the field.
    let clinic = created["id"].as_str().unwrap();
    let (status, body) = server
        .post(
            &format!("/api/v1/tenants/{clinic}/projects"),
            &owner,
            json!({ "name": "P", "llm_policy": "cloud_allowed" }),
        )
        .await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("llm_policy")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("hipaa"));

    // Switching a tenant to hipaa turns its projects edge_only.
    let (_, project) = server
        .post(
            &format!("/api/v1/tenants/{tenant}/projects"),
            &owner,
            json!({ "name": "Cloudy", "llm_policy": "cloud_allowed" }),
        )
        .await;
    let (status, updated) = server
        .patch(&format!("/api/v1/tenants/{tenant}"), &owner, json!({ "compliance_mode": "hipaa" }))
        .await;
    assert_eq!((status, updated["compliance_mode"].as_str()), (200, Some("hipaa")));
    let (_, project) = server
        .get(&format!("/api/v1/tenants/{tenant}/projects/{}", project["id"].as_str().unwrap()), &owner)
        .await;
    assert_eq!(project["llm_policy"], "edge_only");
}
