//! Two-factor sign-in, password change and sessions with the real binary,
//! on SQLite and PostgreSQL: enrolment confirmed by a code computed the way
//! an authenticator app does (RFC 6238, from the otpauth URI), sign-in with
//! a code, a wrong code, a code used twice within its window, a recovery
//! code once, the throttle on guessed codes, API keys unaffected, a tenant
//! that requires it, a password change that ends the other sessions, and
//! sessions listed and ended by their owner.

use marketer_tests::fleet::{EMAIL, Fleet, PASSWORD};
use marketer_tests::totp::{code, early_in_a_step, unix_now};
use marketer_tests::{Api, TempDatabase};
use reqwest::Method;
use serde_json::{Value, json};
use totp_rs::Totp;

async fn login(base: &str, email: &str, password: &str, code: Option<&str>) -> (u16, Value) {
    let mut body = json!({ "email": email, "password": password });
    if let Some(code) = code {
        body["code"] = json!(code);
    }
    let response =
        reqwest::Client::new().post(format!("{base}/api/v1/auth/login")).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn me_call(api: &Api, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    api.call(method, &format!("/api/v1/me{path}"), body).await
}

/// Sets up two-factor sign-in for `api`'s person; returns the app's TOTP
/// and the recovery codes.
async fn enrol(api: &Api, password: &str) -> (Totp, Vec<String>) {
    let (status, setup) =
        me_call(api, Method::POST, "/two-factor", Some(json!({ "password": password }))).await;
    assert_eq!(status, 200, "{setup}");
    let uri = setup["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Marketer:"), "{uri}");
    let totp = Totp::from_url(uri).unwrap();
    assert_eq!(totp.secret().to_base32(), setup["secret"].as_str().unwrap());
    early_in_a_step().await;
    let code = code(&totp, 0);
    let (status, codes) =
        me_call(api, Method::POST, "/two-factor/confirm", Some(json!({ "code": code }))).await;
    assert_eq!(status, 200, "{codes}");
    let codes: Vec<String> =
        codes["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    (totp, codes)
}

async fn two_factor(database: Option<&TempDatabase>) {
    let fleet = Fleet::start(|o| match database {
        Some(db) => o.env("MARKETER_DATABASE_URL", &db.url),
        None => o,
    })
    .await;
    let base = fleet.server().base_url.clone();
    let owner = &fleet.api;

    let (status, state) = me_call(owner, Method::GET, "/two-factor", None).await;
    assert_eq!((status, &state["enabled"]), (200, &json!(false)), "{state}");
    // Requiring it is refused to someone who does not use it.
    let (status, refused) =
        fleet.call(Method::PUT, "/security", Some(json!({ "require_two_factor": true }))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("two_factor_off")), "{refused}");
    // Setting up asks for the password again.
    let (status, refused) =
        me_call(owner, Method::POST, "/two-factor", Some(json!({ "password": "not it at all" }))).await;
    assert_eq!((status, &refused["error"]["details"]["field"]), (422, &json!("password")), "{refused}");

    let (totp, codes) = {
        let (status, setup) =
            me_call(owner, Method::POST, "/two-factor", Some(json!({ "password": PASSWORD }))).await;
        assert_eq!(status, 200, "{setup}");
        // A code the secret does not give now is refused, naming the field.
        let totp = Totp::from_url(setup["otpauth_uri"].as_str().unwrap()).unwrap();
        let stale = code(&totp, -3600);
        let (status, refused) =
            me_call(owner, Method::POST, "/two-factor/confirm", Some(json!({ "code": stale }))).await;
        assert_eq!((status, &refused["error"]["details"]["field"]), (422, &json!("code")), "{refused}");
        // Setting up again replaces the secret.
        enrol(owner, PASSWORD).await
    };
    assert_eq!(codes.len(), 10);
    let (_, state) = me_call(owner, Method::GET, "/two-factor", None).await;
    assert_eq!(state, json!({ "enabled": true, "setting_up": false, "recovery_codes_left": 10 }));

    // The password alone is not enough, and says what is missing.
    let (status, body) = login(&base, EMAIL, PASSWORD, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("two_factor_required")), "{body}");
    let (status, body) = login(&base, EMAIL, PASSWORD, Some("12345")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    // The code that confirmed enrolment is spent.
    let confirmed_with = code(&totp, 0);
    let (status, body) = login(&base, EMAIL, PASSWORD, Some(&confirmed_with)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("already used"), "{body}");
    // The next one signs in, once.
    let next = code(&totp, 30);
    let (status, tokens) = login(&base, EMAIL, PASSWORD, Some(&next)).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, body) = login(&base, EMAIL, PASSWORD, Some(&next)).await;
    assert_eq!(status, 401, "a code is good once within its window: {body}");
    // A recovery code, in any case and spacing, once.
    let (status, _) = login(&base, EMAIL, PASSWORD, Some(&codes[0].to_uppercase())).await;
    assert_eq!(status, 200);
    let (status, _) = login(&base, EMAIL, PASSWORD, Some(&codes[0])).await;
    assert_eq!(status, 401, "a recovery code is good once");
    let (_, state) = me_call(owner, Method::GET, "/two-factor", None).await;
    assert_eq!(state["recovery_codes_left"], 9);

    // The organisation requires it now; API keys are not a sign-in.
    let (status, key) =
        fleet.call(Method::POST, "/api-keys", Some(json!({ "name": "ci", "role": "viewer" }))).await;
    assert_eq!(status, 201, "{key}");
    let (status, security) =
        fleet.call(Method::PUT, "/security", Some(json!({ "require_two_factor": true }))).await;
    assert_eq!((status, security), (200, json!({ "require_two_factor": true, "require_sso": false })));
    let member_password = "a member's long password";
    let member = fleet.add_member(&owner.tenant, "mia@example.com", "Mia", "member", member_password).await;
    let (status, refused) = member.call(Method::GET, &member.tenant_path("/projects"), None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("two_factor_setup_required")),
        "{refused}"
    );
    let key_api = Api { token: key["key"].as_str().unwrap().to_owned(), ..owner.clone() };
    let (status, _) = key_api.call(Method::GET, &key_api.tenant_path("/projects"), None).await;
    assert_eq!(status, 200, "an API key is unaffected");
    let (member_totp, _) = enrol(&member, member_password).await;
    let (status, _) = member.call(Method::GET, &member.tenant_path("/projects"), None).await;
    assert_eq!(status, 200, "in once it is on");

    // Guessing codes is throttled like guessing passwords.
    let mut statuses = Vec::new();
    for guess in ["000000", "111111", "222222", "333333", "444444", "555555", "666666"] {
        if member_totp.check(guess, unix_now()).is_some() {
            continue;
        }
        statuses.push(login(&base, "mia@example.com", member_password, Some(guess)).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");

    // Password change: the wrong current password names its field; the
    // right one ends every other session and keeps this one.
    let (status, second) = login(&base, EMAIL, PASSWORD, Some(&codes[1])).await;
    assert_eq!(status, 200, "{second}");
    let second = Api { token: second["access_token"].as_str().unwrap().to_owned(), ..owner.clone() };
    let (status, refused) = me_call(
        owner,
        Method::POST,
        "/password",
        Some(json!({ "current_password": "wrong", "new_password": "a brand new passphrase" })),
    )
    .await;
    assert_eq!(
        (status, &refused["error"]["details"]["field"]),
        (422, &json!("current_password")),
        "{refused}"
    );
    let (status, refused) = me_call(
        owner,
        Method::POST,
        "/password",
        Some(json!({ "current_password": PASSWORD, "new_password": "short" })),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    let (status, _) = me_call(
        owner,
        Method::POST,
        "/password",
        Some(json!({ "current_password": PASSWORD, "new_password": "a brand new passphrase" })),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(me_call(owner, Method::GET, "", None).await.0, 200, "this session goes on");
    assert_eq!(me_call(&second, Method::GET, "", None).await.0, 401, "the other session ended");
    let (status, _) = login(&base, EMAIL, PASSWORD, Some(&codes[2])).await;
    assert_eq!(status, 401, "the old password is gone");
    let (status, third) = login(&base, EMAIL, "a brand new passphrase", Some(&codes[2])).await;
    assert_eq!(status, 200, "{third}");
    let third = Api { token: third["access_token"].as_str().unwrap().to_owned(), ..owner.clone() };

    // Sessions: listed with this one marked; another person's is not found;
    // one's own other session ends.
    let (status, sessions) = me_call(owner, Method::GET, "/sessions", None).await;
    assert_eq!(status, 200, "{sessions}");
    let items = sessions["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{sessions}");
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1, "{sessions}");
    let third_id = items.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_owned();
    let (_, theirs) = me_call(&member, Method::GET, "/sessions", None).await;
    let theirs = theirs["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = me_call(owner, Method::DELETE, &format!("/sessions/{theirs}"), None).await;
    assert_eq!(status, 404, "another person's session");
    assert_eq!(me_call(&member, Method::GET, "", None).await.0, 200);
    let (status, _) = me_call(owner, Method::DELETE, &format!("/sessions/{third_id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(me_call(&third, Method::GET, "", None).await.0, 401, "the ended session's token");

    // Turning it off needs the password; then the password alone signs in.
    let (status, _) =
        fleet.call(Method::PUT, "/security", Some(json!({ "require_two_factor": false }))).await;
    assert_eq!(status, 200);
    let (status, _) = me_call(
        owner,
        Method::POST,
        "/two-factor/disable",
        Some(json!({ "password": "a brand new passphrase" })),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = login(&base, EMAIL, "a brand new passphrase", None).await;
    assert_eq!(status, 200);

    // The audit trail has each step (the personal ones outside any
    // organisation, like signing in), and never a code or a secret.
    let trail = audit_trail(&fleet, database).await;
    for action in [
        "user.two_factor_enable",
        "user.two_factor_disable",
        "user.password_change",
        "auth.session_revoke",
        "tenant.security_update",
    ] {
        assert!(trail.iter().any(|(a, _, _)| a == action), "{action} in {trail:?}");
    }
    assert!(trail.iter().any(|(a, o, d)| a == "auth.login" && o == "denied" && d.contains("reused_code")));
    assert!(trail.iter().any(|(a, o, d)| a == "auth.login" && o == "success" && d.contains("recovery_code")));
    let all = format!("{trail:?}");
    for secret in [&codes[3], &totp.secret().to_base32(), &next] {
        assert!(!all.contains(secret.as_str()), "{secret} in the audit log");
    }
}

/// Every audit entry's action, outcome and details, read from the database.
async fn audit_trail(fleet: &Fleet, database: Option<&TempDatabase>) -> Vec<(String, String, String)> {
    const SQL: &str = "SELECT action, outcome, CAST(details AS TEXT) FROM audit_events ORDER BY occurred_at";
    match database {
        Some(db) => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let rows = sqlx::query_as(SQL).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
        None => {
            let url = format!("sqlite://{}", fleet.options.data_dir.join("marketer.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let rows = sqlx::query_as(SQL).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
    }
}

#[tokio::test]
async fn two_factor_sign_in_password_change_and_sessions_on_sqlite() {
    two_factor(None).await;
}

#[tokio::test]
async fn two_factor_sign_in_password_change_and_sessions_on_postgres() {
    let Some(database) = TempDatabase::create().await else { return };
    two_factor(Some(&database)).await;
    database.drop_database().await;
}
