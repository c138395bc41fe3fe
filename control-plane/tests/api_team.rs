//! Tenants, members, invitations and the last-owner rule over HTTP.

mod common;

use common::{OWNER_EMAIL, PASSWORD, TestServer};
use marketer_control_plane::auth::tokens::{OpaqueToken, TokenKind};
use marketer_control_plane::domain::{Email, Role, Timestamp, new_id};
use marketer_control_plane::store::{Actor, NewAuditEvent, NewInvitation, Outcome};
use reqwest::Method;
use serde_json::json;

async fn accept(server: &TestServer, body: serde_json::Value) -> (u16, serde_json::Value) {
    server.call(Method::POST, "/api/v1/invitations/accept", None, Some(body)).await
}

#[tokio::test]
async fn invitations_create_accounts_and_are_single_use() {
    let server = TestServer::start().await;
    let (owner, tenant) = server.owner().await;
    let (status, invitation) = server
        .post(
            &format!("/api/v1/tenants/{tenant}/invitations"),
            &owner,
            json!({ "email": "New@Example.com", "role": "member" }),
        )
        .await;
    assert_eq!(status, 201, "{invitation}");
    let token = invitation["token"].as_str().unwrap();
    assert!(token.starts_with("mkt_inv_"));
    let expires = Timestamp::parse_rfc3339(invitation["expires_at"].as_str().unwrap()).unwrap();
    let days = (expires.as_datetime() - Timestamp::now().as_datetime()).whole_hours();
    assert!((167..=168).contains(&days), "7-day expiry, got {days} hours");

    // A new address needs a name and a password; each missing one is named.
    let (status, body) = accept(&server, json!({ "token": token })).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("name")), "{body}");
    let (status, body) = accept(&server, json!({ "token": token, "name": "New Person" })).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("password")));
    let (status, body) =
        accept(&server, json!({ "token": token, "name": "New Person", "password": "short" })).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("password")));

    let (status, accepted) =
        accept(&server, json!({ "token": token, "name": "New Person", "password": PASSWORD })).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!((accepted["role"].as_str(), accepted["created_user"].as_bool()), (Some("member"), Some(true)));
    assert_eq!(accepted["tenant_id"], tenant.as_str());
    let member = server.access_token("new@example.com", PASSWORD).await;
    assert_eq!(server.get(&format!("/api/v1/tenants/{tenant}/projects"), &member).await.0, 200);

    // Used once; unknown tokens are 404.
    let (status, body) =
        accept(&server, json!({ "token": token, "name": "Again", "password": PASSWORD })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("invitation_used")));
    let (status, _) =
        accept(&server, json!({ "token": OpaqueToken::generate(TokenKind::Invitation).text })).await;
    assert_eq!(status, 404);
    let (status, _) = accept(&server, json!({ "token": "garbage" })).await;
    assert_eq!(status, 404);

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
    };
    let invitation = NewInvitation {
        id: new_id(),
        tenant_id,
        email: Email::parse("late@example.com").unwrap(),
        role: Role::Viewer,
        token_hash: expired.hash.clone(),
        invited_by: None,
        expires_at: Timestamp::now() - time::Duration::minutes(1),
    };
    server.db.store.create_invitation(&invitation, &event).await.unwrap();
    let (status, body) =
        accept(&server, json!({ "token": expired.text, "name": "Late", "password": PASSWORD })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (410, Some("invitation_expired")), "{body}");

    let (_, revoked) = server
        .post(
            &format!("/api/v1/tenants/{tenant}/invitations"),
            &owner,
            json!({ "email": "r@example.com", "role": "viewer" }),
        )
        .await;
    let id = revoked["id"].as_str().unwrap();
    assert_eq!(server.delete(&format!("/api/v1/tenants/{tenant}/invitations/{id}"), &owner).await.0, 204);
    let (status, body) =
        accept(&server, json!({ "token": revoked["token"], "name": "R", "password": PASSWORD })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (410, Some("invitation_revoked")));
}

#[tokio::test]
async fn existing_accounts_join_without_a_new_password() {
    let server = TestServer::start().await;
    let (owner, _) = server.owner().await;
    let (status, beta) = server.post("/api/v1/tenants", &owner, json!({ "name": "Beta Corp" })).await;
    assert_eq!(status, 201);
    assert_eq!(beta["slug"], "beta-corp");
    let beta_id = beta["id"].as_str().unwrap();

    // The creator already is a member: no invitation is issued.
    let (status, body) = server
        .post(
            &format!("/api/v1/tenants/{beta_id}/invitations"),
            &owner,
            json!({ "email": OWNER_EMAIL, "role": "viewer" }),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("already_member")));

    let (_, invitation) = server
        .post(
            &format!("/api/v1/tenants/{beta_id}/invitations"),
            &owner,
            json!({ "email": "friend@example.com", "role": "viewer" }),
        )
        .await;
    accept(&server, json!({ "token": invitation["token"], "name": "Friend", "password": PASSWORD })).await;
    let (_, default_invite) = {
        let (_, tenant) = server.owner().await;
        server
            .post(
                &format!("/api/v1/tenants/{tenant}/invitations"),
                &owner,
                json!({ "email": "FRIEND@example.com", "role": "member" }),
            )
            .await
    };
    let (status, joined) = accept(
        &server,
        json!({ "token": default_invite["token"], "password": "ignored for existing accounts" }),
    )
    .await;
    assert_eq!((status, joined["created_user"].as_bool()), (200, Some(false)), "{joined}");
    let friend = server.access_token("friend@example.com", PASSWORD).await;
    let (_, me) = server.get("/api/v1/me", &friend).await;
    assert_eq!(me["memberships"].as_array().unwrap().len(), 2);

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
