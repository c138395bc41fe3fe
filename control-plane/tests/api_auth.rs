//! Sign-in, refresh-token rotation, sign-out and login throttling over HTTP.

mod common;

use common::{OWNER_EMAIL, PASSWORD, TestServer};
use reqwest::Method;
use serde_json::json;

async fn refresh(server: &TestServer, token: &serde_json::Value) -> (u16, serde_json::Value) {
    server.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({ "refresh_token": token }))).await
}

#[tokio::test]
async fn login_returns_a_bearer_pair_that_works() {
    let server = TestServer::start().await;
    let pair = server.login(OWNER_EMAIL, PASSWORD).await;
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900, "access tokens live 15 minutes");
    assert!(pair["refresh_token"].as_str().unwrap().starts_with("mkt_rt_"));

    let (status, me) = server.get("/api/v1/me", pair["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["email"], OWNER_EMAIL);
    assert_eq!(me["memberships"][0]["role"], "owner");
    assert_eq!(me["memberships"][0]["tenant_slug"], "default");
    assert!(me["user"].get("password_hash").is_none(), "no credential material in answers");

    // The address is matched case-insensitively.
    server.login("OWNER@Example.COM", PASSWORD).await;
}

#[tokio::test]
async fn wrong_password_and_unknown_account_look_the_same() {
    let server = TestServer::start().await;
    let (status, wrong) = server
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": OWNER_EMAIL, "password": "not the password" })),
        )
        .await;
    assert_eq!(status, 401);
    let (status, unknown) = server
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": "nobody@example.com", "password": "not the password" })),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(wrong, unknown, "no account enumeration through the answer");
    assert_eq!(wrong["error"]["code"], "unauthenticated");
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_ends_the_session() {
    let server = TestServer::start().await;
    let first = server.login(OWNER_EMAIL, PASSWORD).await;
    let (status, second) = refresh(&server, &first["refresh_token"]).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let access = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(server.get("/api/v1/me", &access).await.0, 200);

    // Replaying the spent token is refused and revokes the whole session:
    // the newer refresh token and the access tokens stop working too.
    let (status, body) = refresh(&server, &first["refresh_token"]).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("already used"), "{body}");
    assert_eq!(refresh(&server, &second["refresh_token"]).await.0, 401);
    assert_eq!(server.get("/api/v1/me", &access).await.0, 401);

    // Another session of the same user is unaffected.
    let other = server.login(OWNER_EMAIL, PASSWORD).await;
    assert_eq!(refresh(&server, &other["refresh_token"]).await.0, 200);

    for junk in [json!("mkt_rt_short"), json!("eyJhbGciOi.x.y"), json!("")] {
        assert_eq!(refresh(&server, &junk).await.0, 401, "{junk}");
    }
    assert_eq!(refresh(&server, &json!(12)).await.0, 422, "a number is not a token");
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let server = TestServer::start().await;
    let pair = server.login(OWNER_EMAIL, PASSWORD).await;
    let access = pair["access_token"].as_str().unwrap();
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(json!({ "refresh_token": pair["refresh_token"] })),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(server.get("/api/v1/me", access).await.0, 401, "access tokens of the session die with it");
    assert_eq!(refresh(&server, &pair["refresh_token"]).await.0, 401);
    // Logging out twice, or with a token we never issued, is harmless.
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(json!({ "refresh_token": pair["refresh_token"] })),
        )
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn tokens_that_are_not_ours_are_refused() {
    let server = TestServer::start().await;
    for header in [
        "Bearer",
        "Bearer ",
        "Basic b3duZXI6cHc=",
        "Bearer not-a-jwt",
        "Bearer mkt_ak_unknownkeyunknownkeyunknownkeyunknownkey1",
    ] {
        let response =
            server.http.get(server.url("/api/v1/me")).header("authorization", header).send().await.unwrap();
        assert_eq!(response.status(), 401, "{header}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    // A well-formed token signed with another key.
    let forged = {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let claims = json!({ "sub": uuid::Uuid::now_v7(), "sid": uuid::Uuid::now_v7(), "exp": 4_000_000_000u64,
            "iat": 0, "iss": "marketer-control-plane", "aud": "marketer-api" });
        encode(&Header::default(), &claims, &EncodingKey::from_secret(b"someone-elses-key-0123456789abcdef"))
            .unwrap()
    };
    assert_eq!(server.get("/api/v1/me", &forged).await.0, 401);
    assert_eq!(server.call(Method::GET, "/api/v1/me", None, None).await.0, 401);
}

#[tokio::test]
async fn repeated_failures_are_slowed_down_not_locked_out() {
    let server = TestServer::start().await;
    let attempt = |password: &'static str| {
        server
            .http
            .post(server.url("/api/v1/auth/login"))
            .json(&json!({ "email": OWNER_EMAIL, "password": password }))
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(attempt("wrong password!").await.unwrap().status().as_u16());
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert_eq!(statuses[5], 429, "the sixth attempt comes too soon: {statuses:?}");
    let limited = attempt(PASSWORD).await.unwrap();
    assert_eq!(limited.status(), 429, "even the right password waits out the delay");
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // After the delay the owner gets in, and success clears the count.
    tokio::time::sleep(std::time::Duration::from_secs(retry_after + 1)).await;
    assert_eq!(attempt(PASSWORD).await.unwrap().status(), 200);
    assert_eq!(attempt("wrong password!").await.unwrap().status(), 401);
    assert_eq!(attempt(PASSWORD).await.unwrap().status(), 200);
}

#[tokio::test]
async fn logins_are_audited_with_their_outcome() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    server
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": OWNER_EMAIL, "password": "not the password" })),
        )
        .await;
    let (status, page) =
        server.get(&format!("/api/v1/tenants/{tenant}/audit-events?action=auth.login"), &token).await;
    assert_eq!(status, 200);
    let outcomes: Vec<_> =
        page["items"].as_array().unwrap().iter().map(|e| e["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes, ["denied", "success"], "newest first: {page}");
    let failed = &page["items"][0];
    assert_eq!(failed["actor"]["email"], OWNER_EMAIL);
    assert_eq!(failed["client_ip"], "127.0.0.1");
    assert!(failed["request_id"].as_str().is_some());
    assert!(!failed.to_string().contains("not the password"), "passwords are never recorded");
}

#[tokio::test]
async fn disabled_accounts_cannot_sign_in_and_lose_their_sessions() {
    use marketer_control_plane::domain::Email;
    let server = TestServer::start().await;
    let (owner, tenant) = server.owner().await;
    let (member, _) = server.add_user(&owner, &tenant, "m@example.com", "member").await;
    let pair = server.login("m@example.com", PASSWORD).await;
    let user = server.db.store.user_by_email(&Email::parse("m@example.com").unwrap()).await.unwrap().unwrap();
    let event = || {
        marketer_control_plane::service::audit_event(
            None,
            marketer_control_plane::store::Actor::System { name: "test".into() },
            &Default::default(),
            "user.disable",
            marketer_control_plane::store::Outcome::Success,
        )
    };
    server.db.store.set_user_disabled(user.id, true, &event()).await.unwrap();

    assert_eq!(server.get("/api/v1/me", &member).await.0, 401);
    assert_eq!(refresh(&server, &pair["refresh_token"]).await.0, 401);
    let (status, body) = server
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": "m@example.com", "password": PASSWORD })),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("disabled"));

    server.db.store.set_user_disabled(user.id, false, &event()).await.unwrap();
    server.login("m@example.com", PASSWORD).await;
}
