//! Single sign-on with OpenID Connect against a real provider (`oidc-provider`
//! from npm, run locally), with the real binary on SQLite and PostgreSQL:
//! the connection checked and its secret never shown; the happy path with a
//! just-in-time account; a group mapped to a role; and each refusal: a
//! replayed callback, a callback in another browser, a domain not allowed,
//! an unverified address, an ID token for another audience, an expired one,
//! a replayed one (its nonce from an earlier sign-in), and an address whose
//! account is not a member. Then requiring SSO: members' password sessions
//! are kept out, owners' are not (break-glass), an SSO session reaches only
//! its organisation; removing the connection; and the throttle on starting
//! sign-ins from one address.

use marketer_tests::fleet::{EMAIL, Fleet};
use marketer_tests::oidc::{CookieBrowser, OidcProvider};
use marketer_tests::{Api, TempDatabase};
use reqwest::Method;
use serde_json::{Value, json};

const CLIENT_ID: &str = "marketer-web";
const SECRET: &str = "a-client-secret-only-the-provider-knows-7Hq2";

async fn members(api: &Api, tenant: &str) -> Vec<(String, String)> {
    let (status, body) = api.call(Method::GET, &format!("/api/v1/tenants/{tenant}/members"), None).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap().to_owned(), m["role"].as_str().unwrap().to_owned()))
        .collect()
}

fn role_of(members: &[(String, String)], email: &str) -> Option<String> {
    members.iter().find(|(e, _)| e == email).map(|(_, r)| r.clone())
}

/// Signs in as `login` and expects a refusal page saying `says`; no session.
async fn refused(base: &str, slug: &str, login: &str, says: &str) {
    let mut browser = CookieBrowser::new();
    let arrival = browser.sign_in(&format!("{base}/sso/{slug}"), login).await;
    assert_eq!(arrival.status, 422, "{login}: {}", arrival.body);
    assert!(arrival.body.contains(says), "{login}: expected {says:?} in {}", arrival.body);
    assert!(browser.cookie("marketer_session").is_none(), "{login} got a session");
}

async fn single_sign_on(database: Option<&TempDatabase>) {
    let fleet = Fleet::start(|o| {
        let o = o.env("MARKETER_WEBHOOK_ALLOW_PRIVATE", "true").env("MARKETER_WEBHOOK_ALLOW_HTTP", "true");
        match database {
            Some(db) => o.env("MARKETER_DATABASE_URL", &db.url),
            None => o,
        }
    })
    .await;
    let base = fleet.server().base_url.clone();
    let groups = json!({ "bob@acme.test": ["marketing-admins", "everyone"] });
    let Some(idp) = OidcProvider::start(CLIENT_ID, SECRET, &format!("{base}/sso/callback"), &groups) else {
        return;
    };
    let owner = &fleet.api;
    let tenant = owner.tenant.clone();
    let (_, info) = owner.call(Method::GET, &format!("/api/v1/tenants/{tenant}"), None).await;
    let slug = info["slug"].as_str().unwrap().to_owned();
    let sso = format!("/api/v1/tenants/{tenant}/sso");
    let good = json!({
        "issuer": idp.issuer, "client_id": CLIENT_ID, "client_secret": SECRET,
        "allowed_domains": ["acme.test", "Example.com"],
        "group_roles": [{ "group": "marketing-admins", "role": "admin" }],
    });

    // Nothing yet; requiring it first is refused.
    let (status, body) = owner.call(Method::GET, &sso, None).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = owner
        .call(
            Method::PUT,
            &format!("/api/v1/tenants/{tenant}/security"),
            Some(json!({ "require_two_factor": false, "require_sso": true })),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("sso_not_configured")), "{body}");

    // Each mistake is named.
    let with = |patch: Value| {
        let mut body = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (patch, field) in [
        (json!({ "issuer": "http://127.0.0.1:9/nothing-here" }), "issuer"),
        (json!({ "issuer": "not a url" }), "issuer"),
        (json!({ "client_secret": null }), "client_secret"),
        (json!({ "client_id": "" }), "client_id"),
        (json!({ "allowed_domains": [] }), "allowed_domains"),
        (json!({ "allowed_domains": ["acme.test", "not a domain"] }), "allowed_domains[1]"),
        (json!({ "default_role": "owner" }), "default_role"),
        (json!({ "group_roles": [{ "group": "x", "role": "owner" }] }), "group_roles[0].role"),
    ] {
        let (status, body) = owner.call(Method::PUT, &sso, Some(with(patch.clone()))).await;
        assert_eq!(
            (status, body["error"]["details"]["field"].as_str()),
            (422, Some(field)),
            "{patch}: {body}"
        );
    }

    // Set: the provider answered; the secret is never shown.
    let (status, view) = owner.call(Method::PUT, &sso, Some(good.clone())).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["allowed_domains"], json!(["acme.test", "example.com"]));
    assert_eq!(view["default_role"], "member");
    assert_eq!(view["redirect_uri"], format!("{base}/sso/callback"));
    assert_eq!(view["client_secret_hint"], "…7Hq2");
    let (_, shown) = owner.call(Method::GET, &sso, None).await;
    assert!(!shown.to_string().contains(SECRET) && !view.to_string().contains(SECRET), "{shown}");
    // An edit without the secret keeps it.
    let mut edit = good.clone();
    edit.as_object_mut().unwrap().remove("client_secret");
    let (status, body) = owner.call(Method::PUT, &sso, Some(edit)).await;
    assert_eq!(status, 200, "{body}");

    // Ann is new: an account and a membership, just in time.
    let mut ann = CookieBrowser::new();
    let arrival = ann.sign_in(&format!("{base}/sso/{slug}"), "ann@acme.test").await;
    assert_eq!(arrival.status, 303, "{}", arrival.body);
    assert_eq!(arrival.location.as_deref(), Some(format!("/t/{tenant}").as_str()));
    assert!(ann.cookie("marketer_session").is_some());
    let page = ann.get(&format!("{base}/t/{tenant}")).await;
    assert_eq!(page.status(), 200);
    let list = members(owner, &tenant).await;
    assert_eq!(role_of(&list, "ann@acme.test").as_deref(), Some("member"), "{list:?}");

    // The callback works once: replayed, in this browser or another.
    let replay = ann.get(&arrival.callback).await;
    assert_eq!(replay.status(), 422);
    let text = replay.text().await.unwrap();
    assert!(text.contains("already been used") || text.contains("already used"), "{text}");
    let mut stranger = CookieBrowser::new();
    let stolen = stranger.get(&arrival.callback).await;
    assert_eq!(stolen.status(), 422);
    assert!(stranger.cookie("marketer_session").is_none());

    // A callback taken to another browser does not sign that browser in,
    // and does not spend the sign-in of the browser that started it.
    let mut started = CookieBrowser::new();
    let callback = started.to_callback(&format!("{base}/sso/{slug}"), "ann@acme.test").await;
    let elsewhere = CookieBrowser::new().get(&callback).await;
    assert_eq!(elsewhere.status(), 422);
    let own = started.get(&callback).await;
    assert_eq!(own.status(), 303, "{}", own.text().await.unwrap_or_default());

    // Bob's group makes him an admin.
    let mut bob = CookieBrowser::new();
    let arrival = bob.sign_in(&format!("{base}/sso/{slug}"), "bob@acme.test").await;
    assert_eq!(arrival.status, 303, "{}", arrival.body);
    assert_eq!(role_of(&members(owner, &tenant).await, "bob@acme.test").as_deref(), Some("admin"));
    let settings = bob.get(&format!("{base}/t/{tenant}/settings")).await;
    assert_eq!(settings.status(), 200);

    // Refusals: each says why, and none creates anyone.
    refused(&base, &slug, "eve@other.test", "other.test addresses cannot sign in").await;
    refused(&base, &slug, "no-address-at-all", "did not share your e-mail address").await;
    idp.tamper_next("unverified_email").await;
    refused(&base, &slug, "dan@acme.test", "has not verified your e-mail address").await;
    idp.tamper_next("wrong_audience").await;
    refused(&base, &slug, "dan@acme.test", "could not be trusted").await;
    idp.tamper_next("expired").await;
    refused(&base, &slug, "dan@acme.test", "could not be trusted").await;
    // Another sign-in's ID token (signed, for us, not expired): its nonce
    // is not this sign-in's.
    idp.tamper_next("replay_last").await;
    refused(&base, &slug, "dan@acme.test", "could not be trusted").await;
    let list = members(owner, &tenant).await;
    for nobody in ["eve@other.test", "dan@acme.test"] {
        assert!(role_of(&list, nobody).is_none(), "{nobody} joined: {list:?}");
    }

    // An account with the address that is not a member is not taken over.
    let created = marketer_tests::server_command_on(
        &["admin", "create-user", "--email", "carol@acme.test", "--name", "Carol", "--password-stdin"],
        fleet.data.path(),
        database.map(|d| d.url.as_str()),
        Some("a long password of carol\n"),
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    refused(&base, &slug, "carol@acme.test", "already exists and is not a member").await;

    // An owner is never signed in through the provider (whoever runs it
    // could become them): the password is their way in.
    refused(&base, &slug, EMAIL, "owners sign in with their password").await;
    assert_eq!(role_of(&members(owner, &tenant).await, EMAIL).as_deref(), Some("owner"));

    // The audit log has the arrivals and the refusals with their reasons.
    let (_, log) = owner
        .call(
            Method::GET,
            &format!("/api/v1/tenants/{tenant}/audit-events?action=sso.login_refused&limit=100"),
            None,
        )
        .await;
    let reasons: Vec<&str> =
        log["items"].as_array().unwrap().iter().filter_map(|e| e["details"]["reason"].as_str()).collect();
    for reason in ["domain_not_allowed", "no_email", "email_unverified", "id_token_invalid", "email_taken"] {
        assert!(reasons.contains(&reason), "{reason} not in {reasons:?}");
    }
    let (_, log) = owner
        .call(Method::GET, &format!("/api/v1/tenants/{tenant}/audit-events?action=sso.provision"), None)
        .await;
    assert!(
        log["items"].as_array().unwrap().iter().any(|e| e["details"]["created_account"] == true),
        "{log}"
    );

    // Requiring SSO: a member's password session is kept out, the owner's
    // is not; the member's own SSO session works.
    let pat = fleet.add_member(&tenant, "pat@acme.test", "Pat", "member", "a long member password").await;
    let (status, body) = owner
        .call(
            Method::PUT,
            &format!("/api/v1/tenants/{tenant}/security"),
            Some(json!({ "require_two_factor": false, "require_sso": true })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let projects = format!("/api/v1/tenants/{tenant}/projects");
    let (status, body) = pat.call(Method::GET, &projects, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("sso_required")), "{body}");
    let (status, body) = owner.call(Method::GET, &projects, None).await;
    assert_eq!(status, 200, "the owner's break-glass: {body}");
    let mut pat_browser = CookieBrowser::new();
    let arrival = pat_browser.sign_in(&format!("{base}/sso/{slug}"), "pat@acme.test").await;
    assert_eq!(arrival.status, 303, "{}", arrival.body);
    assert_eq!(pat_browser.get(&format!("{base}/t/{tenant}")).await.status(), 200);

    // An SSO session reaches only the organisation whose provider opened
    // it: Pat's other organisation is not found, nor named, from it.
    let (status, other) = owner
        .call(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "name": "Second Brand", "slug": "second-brand" })),
        )
        .await;
    assert_eq!(status, 201, "{other}");
    let second = other["id"].as_str().unwrap();
    let invite = json!({ "email": "pat@acme.test", "role": "member" });
    let (status, added) =
        owner.call(Method::POST, &format!("/api/v1/tenants/{second}/invitations"), Some(invite)).await;
    assert_eq!(status, 201, "{added}");
    let (status, body) =
        pat.call(Method::POST, "/api/v1/invitations/accept", Some(json!({ "token": added["token"] }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pat_browser.get(&format!("{base}/t/{second}")).await.status(), 404);
    assert_eq!(pat_browser.get(&format!("{base}/t/{tenant}")).await.status(), 200);
    let me = pat_browser.get(&format!("{base}/api/v1/me")).await.text().await.unwrap();
    assert!(me.contains(&tenant) && !me.contains(second), "{me}");
    let export = pat_browser.get(&format!("{base}/api/v1/me/export")).await;
    assert_eq!(export.status(), 403, "an SSO session cannot take the person's data of other organisations");

    // Removing the connection lifts the requirement.
    let (status, _) = owner.call(Method::DELETE, &sso, None).await;
    assert_eq!(status, 204);
    let (status, body) = pat.call(Method::GET, &projects, None).await;
    assert_eq!(status, 200, "{body}");
    let (_, security) = owner.call(Method::GET, &format!("/api/v1/tenants/{tenant}/security"), None).await;
    assert_eq!(security["require_sso"], false, "{security}");
    let page = CookieBrowser::new().get(&format!("{base}/sso/{slug}")).await;
    assert_eq!(page.status(), 422);
    assert!(page.text().await.unwrap().contains("signs in with single sign-on"));

    // Starting sign-ins is throttled by address: past 60 in a clock minute
    // (130 tries cover a minute's edge), 429 with Retry-After and the page
    // saying so; each one before it is an ordinary refusal.
    let client = reqwest::Client::new();
    let mut throttled = None;
    for n in 0..130 {
        let response = client
            .post(format!("{base}/login/sso"))
            .form(&[("organisation", slug.as_str()), ("_csrf", "forged")])
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            throttled = Some((n, response));
            break;
        }
        assert_eq!(response.status(), 422, "try {n}");
    }
    let (n, response) = throttled.expect("a 429 within 130 starts");
    assert!(n <= 121, "after {n} starts");
    let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(response.text().await.unwrap().contains("Too many sign-ins were started from your address"));
}

#[tokio::test]
async fn single_sign_on_against_a_real_provider_on_sqlite() {
    single_sign_on(None).await;
}

#[tokio::test]
async fn single_sign_on_against_a_real_provider_on_postgresql() {
    let Some(database) = TempDatabase::create().await else { return };
    single_sign_on(Some(&database)).await;
    database.drop_database().await;
}
