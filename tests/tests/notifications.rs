//! Notifications end to end: the real server binary, on SQLite and
//! PostgreSQL, sending through a real SMTP server (MailDev,
//! `marketer_tests::mail`): address verification, invitations whose e-mailed
//! link creates the account, password reset (the same answer for known and
//! unknown addresses), notifications reaching the right people (and nobody
//! of another organisation) in the app and by e-mail as their preferences
//! say, a daily digest that groups and can be stopped, an SMTP server that
//! is down and then back (sent once), two replicas (sent once), and an
//! external reviewer's link e-mailed when their step comes.

use std::time::Duration;

use marketer_tests::fleet::{Agent, EMAIL, Fleet, PASSWORD, job_timings};
use marketer_tests::mail::MailDev;
use marketer_tests::social::{FakeSocial, Fault, Net};
use marketer_tests::{Api, ServerOptions, ServerProcess, TempDatabase, eventually};
use reqwest::Method;
use serde_json::{Value, json};

struct Setup {
    mail: MailDev,
    social: FakeSocial,
    server: Option<ServerProcess>,
    api: Api,
    data: tempfile::TempDir,
    db: Option<TempDatabase>,
}

fn configure(options: ServerOptions, mail: &MailDev, social: &FakeSocial) -> ServerOptions {
    mail.configure(social.configure(options))
        .env("MARKETER_BOOTSTRAP_EMAIL", EMAIL)
        .env("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(server) = &self.server
        {
            let lines = server.stderr.all();
            eprintln!("server log (last 60 lines):\n{}", lines[lines.len().saturating_sub(60)..].join("\n"));
        }
    }
}

impl Setup {
    async fn start(postgres: bool) -> Option<Self> {
        let mail = MailDev::start().await?;
        let social = FakeSocial::start().await;
        let data = tempfile::tempdir().unwrap();
        let db = if postgres { Some(TempDatabase::create().await?) } else { None };
        let mut options = configure(ServerOptions::new(data.path()), &mail, &social);
        if let Some(db) = &db {
            options = options.env("MARKETER_DATABASE_URL", &db.url);
        }
        let server = ServerProcess::spawn(&options);
        let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;
        Some(Self { mail, social, server: Some(server), api, data, db })
    }

    fn base(&self) -> &str {
        &self.api.base_url
    }

    async fn call(&self, method: Method, rest: &str, body: Option<Value>) -> (u16, Value) {
        self.api.call(method, &self.api.tenant_path(rest), body).await
    }

    /// Sends a request without credentials.
    async fn public(&self, path: &str, body: Value) -> (u16, Value) {
        let response =
            reqwest::Client::new().post(format!("{}{path}", self.base())).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Confirms the signed-in person's address through the e-mailed link.
    async fn verify(&self, api: &Api, email: &str) {
        let (status, body) = api.call(Method::POST, "/api/v1/me/verification", None).await;
        assert_eq!(status, 200, "{body}");
        let message = self.mail.wait_for(email, "Confirm your e-mail address").await;
        let token = message.token(self.base(), "/verify-email").expect("a verification link");
        let (status, body) = self.public("/api/v1/auth/verify-email", json!({ "token": token })).await;
        assert_eq!(status, 200, "{body}");
    }

    /// Invites `email` and joins through the e-mailed link; the new
    /// person's client.
    async fn invite_and_join(&self, tenant: &str, email: &str, role: &str, name: &str) -> Api {
        let (status, created) = self
            .api
            .call(
                Method::POST,
                &format!("/api/v1/tenants/{tenant}/invitations"),
                Some(json!({ "email": email, "role": role })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let message = self.mail.wait_for(email, "invited you").await;
        let token = message.token(self.base(), "/invitations/accept").expect("an invitation link");
        let password = format!("{name} has a long password");
        let (status, joined) = self
            .public(
                "/api/v1/invitations/join",
                json!({ "token": token, "display_name": name, "password": password }),
            )
            .await;
        assert_eq!(status, 201, "{joined}");
        let mut api = Api::login(self.base(), email, &password).await;
        api.tenant = tenant.to_owned();
        api
    }

    async fn connect_x(&self) -> Value {
        let (status, started) =
            self.call(Method::POST, "/accounts/connect", Some(json!({ "network": "x" }))).await;
        assert_eq!(status, 200, "{started}");
        let no_redirects =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let approve = no_redirects.get(started["authorize_url"].as_str().unwrap()).send().await.unwrap();
        let callback = approve.headers()["location"].to_str().unwrap().to_owned();
        let response = self.api.http.get(&callback).bearer_auth(&self.api.token).send().await.unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    async fn publish_now(&self, account: &Value, text: &str) -> String {
        let (status, post) = self
            .call(
                Method::POST,
                "/posts",
                Some(json!({ "account_id": account["id"], "text": text, "now": true, "approve": true })),
            )
            .await;
        assert_eq!(status, 201, "{post}");
        post["id"].as_str().unwrap().to_owned()
    }

    async fn wait_published(&self, id: &str) {
        eventually(Duration::from_secs(20), "a post to be published", || async {
            let (_, post) = self.call(Method::GET, &format!("/posts/{id}"), None).await;
            (post["status"] == "published").then_some(())
        })
        .await;
    }

    async fn finish(mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
    }
}

async fn notifications_of(api: &Api) -> Vec<Value> {
    let (status, page) = api.call(Method::GET, "/api/v1/me/notifications?limit=200", None).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn people_join_reset_and_verify_by_email(postgres: bool) {
    let Some(setup) = Setup::start(postgres).await else { return };
    let (_, settings) = setup.api.call(Method::GET, "/api/v1/me/notification-settings", None).await;
    assert_eq!(settings["email_enabled"], true, "{settings}");
    assert_eq!(settings["email_verified"], false, "the bootstrap account's address is not confirmed");

    // Verification: the link works once.
    let (status, _) = setup.api.call(Method::POST, "/api/v1/me/verification", None).await;
    assert_eq!(status, 200);
    let message = setup.mail.wait_for(EMAIL, "Confirm your e-mail address").await;
    assert!(message.html.contains("<a href="), "an HTML part: {}", message.html);
    let token = message.token(setup.base(), "/verify-email").unwrap();
    let (status, body) = setup.public("/api/v1/auth/verify-email", json!({ "token": token })).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = setup.public("/api/v1/auth/verify-email", json!({ "token": token })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (410, Some("link_invalid")), "{body}");
    let (_, settings) = setup.api.call(Method::GET, "/api/v1/me/notification-settings", None).await;
    assert_eq!(settings["email_verified"], true, "{settings}");

    // An invitation: the e-mailed link creates the account; the link shown
    // to the inviter does not.
    let (status, created) = setup
        .call(Method::POST, "/invitations", Some(json!({ "email": "newbie@example.com", "role": "member" })))
        .await;
    assert_eq!(status, 201, "{created}");
    let shown = created["token"].as_str().unwrap();
    let invitation = setup.mail.wait_for("newbie@example.com", "invited you").await;
    assert!(invitation.text.contains("as member"), "{}", invitation.text);
    let mailed = invitation.token(setup.base(), "/invitations/accept").expect("a link to join");
    assert_ne!(mailed, shown, "the e-mailed link has a token of its own");
    let join = |token: &str| json!({ "token": token, "display_name": "Newbie", "password": "newbie has a long password" });
    let (status, body) = setup.public("/api/v1/invitations/join", join(shown)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("account_needed")), "{body}");
    let (status, joined) = setup.public("/api/v1/invitations/join", join(&mailed)).await;
    assert_eq!(status, 201, "{joined}");
    assert_eq!(joined["role"], "member");
    let (status, _) = setup.public("/api/v1/invitations/join", join(&mailed)).await;
    assert_eq!(status, 409, "used once");
    let newbie = Api::login(setup.base(), "newbie@example.com", "newbie has a long password").await;
    let (_, settings) = newbie.call(Method::GET, "/api/v1/me/notification-settings", None).await;
    assert_eq!(settings["email_verified"], true, "the link reached the address: {settings}");

    // Password reset: the same answer for an address with and without an account.
    let (known_status, known) =
        setup.public("/api/v1/auth/password-reset", json!({ "email": "newbie@example.com" })).await;
    let (unknown_status, unknown) =
        setup.public("/api/v1/auth/password-reset", json!({ "email": "nobody@example.com" })).await;
    assert_eq!((known_status, &known), (unknown_status, &unknown));
    assert_eq!(known_status, 202);
    let reset = setup.mail.wait_for("newbie@example.com", "new Marketer password").await;
    let token = reset.token(setup.base(), "/reset-password").expect("a reset link");
    let (status, body) = setup
        .public("/api/v1/auth/password-reset/confirm", json!({ "token": token, "password": "short" }))
        .await;
    assert_eq!(status, 422, "a weak password is refused and the link still works: {body}");
    let new_password = "newbie chose another long password";
    let (status, body) = setup
        .public("/api/v1/auth/password-reset/confirm", json!({ "token": token, "password": new_password }))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = setup
        .public("/api/v1/auth/password-reset/confirm", json!({ "token": token, "password": new_password }))
        .await;
    assert_eq!(status, 410, "single use");
    let (status, _) = setup
        .public(
            "/api/v1/auth/login",
            json!({ "email": "newbie@example.com", "password": "newbie has a long password" }),
        )
        .await;
    assert_eq!(status, 401, "the old password is gone");
    let (status, _) = newbie.call(Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 401, "sessions end with a reset");
    Api::login(setup.base(), "newbie@example.com", new_password).await;

    // Nobody can flood a mailbox: three links an hour.
    for _ in 0..4 {
        setup.public("/api/v1/auth/password-reset", json!({ "email": "newbie@example.com" })).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resets = setup.mail.to("newbie@example.com").await;
    let resets = resets.iter().filter(|m| m.subject.contains("new Marketer password")).count();
    assert_eq!(resets, 3, "three reset links an hour");
    assert!(setup.mail.to("nobody@example.com").await.is_empty(), "nothing to an address without an account");

    // What the audit log says.
    let (_, audit) = setup.call(Method::GET, "/audit-events?action=invitation.join", None).await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    setup.finish().await;
}

#[tokio::test]
async fn people_join_reset_and_verify_by_email_on_sqlite() {
    people_join_reset_and_verify_by_email(false).await;
}

#[tokio::test]
async fn people_join_reset_and_verify_by_email_on_postgres() {
    people_join_reset_and_verify_by_email(true).await;
}

async fn notifications_reach_the_right_people(postgres: bool) {
    let Some(setup) = Setup::start(postgres).await else { return };
    setup.verify(&setup.api, EMAIL).await;
    // Outside the digest hour, so what waits for the digest stays waiting.
    let (status, body) =
        setup.api.call(Method::PUT, "/api/v1/me/time-zone", Some(json!({ "time_zone": zone_at(3) }))).await;
    assert_eq!(status, 200, "{body}");
    // Someone who is an admin of another organisation only.
    let (status, other_tenant) =
        setup.api.call(Method::POST, "/api/v1/tenants", Some(json!({ "name": "Other Co" }))).await;
    assert_eq!(status, 201, "{other_tenant}");
    let other_tenant = other_tenant["id"].as_str().unwrap().to_owned();
    let other = setup.invite_and_join(&other_tenant, "other@example.com", "admin", "Other").await;
    // And a member of this one, who is no admin.
    let member = setup.invite_and_join(&setup.api.tenant, "member@example.com", "member", "Member").await;

    // A published post: its author hears (in the app; by e-mail only in
    // the daily digest, the default for this kind).
    setup.social.set_access_ttl(1);
    let x = setup.connect_x().await;
    setup.social.set_access_ttl(7200);
    let first = setup.publish_now(&x, "The first post of the day").await;
    setup.wait_published(&first).await;
    let mine = eventually(Duration::from_secs(10), "the author's notification", || async {
        notifications_of(&setup.api).await.into_iter().find(|n| n["kind"] == "post_published")
    })
    .await;
    assert_eq!(mine["email"], "digest", "{mine}");
    assert_eq!(mine["link"], format!("/t/{}/posts/{first}", setup.api.tenant), "{mine}");
    assert!(mine["title"].as_str().unwrap().contains("The first post"), "{mine}");

    // Immediately, then off.
    let (status, body) = setup
        .api
        .call(
            Method::PATCH,
            "/api/v1/me/notification-settings",
            Some(json!({ "preferences": [{ "kind": "post_published", "delivery": "immediately" }] })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let second = setup.publish_now(&x, "A post mailed at once").await;
    setup.wait_published(&second).await;
    let mailed = setup.mail.wait_for(EMAIL, "A post mailed at once").await;
    assert!(
        mailed.text.contains(&format!("{}/t/{}/posts/{second}", setup.base(), setup.api.tenant)),
        "{}",
        mailed.text
    );
    setup
        .api
        .call(
            Method::PATCH,
            "/api/v1/me/notification-settings",
            Some(json!({ "preferences": [{ "kind": "post_published", "delivery": "off" }] })),
        )
        .await;
    let third = setup.publish_now(&x, "A post nobody mails").await;
    setup.wait_published(&third).await;
    eventually(Duration::from_secs(10), "the third notification", || async {
        notifications_of(&setup.api)
            .await
            .into_iter()
            .find(|n| n["title"].as_str().unwrap().contains("nobody mails"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        setup.mail.to(EMAIL).await.iter().all(|m| !m.subject.contains("nobody mails")),
        "off means no e-mail"
    );

    // A refused refresh: the organisation's admins hear at once, by e-mail
    // too; a plain member and the other organisation's admin do not.
    setup.social.expire_x_tokens();
    setup.social.inject(Net::X, Fault::RefuseRefresh);
    setup.publish_now(&x, "Waits for a reconnect").await;
    let alert = setup.mail.wait_for(EMAIL, "needs connecting again").await;
    assert!(alert.text.contains("/settings/accounts"), "{}", alert.text);
    let notes = notifications_of(&setup.api).await;
    assert_eq!(notes.iter().filter(|n| n["kind"] == "account_needs_reconnect").count(), 1, "once");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (api, email) in [(&other, "other@example.com"), (&member, "member@example.com")] {
        let theirs = notifications_of(api).await;
        assert!(
            theirs
                .iter()
                .all(|n| n["tenant_id"] != json!(setup.api.tenant) || n["kind"] != "account_needs_reconnect"),
            "{email} heard of another organisation's account: {theirs:?}"
        );
        assert!(setup.mail.to(email).await.iter().all(|m| !m.subject.contains("needs connecting")));
    }

    // Unread, then read.
    let (_, unread) = setup.api.call(Method::GET, "/api/v1/me/notifications/unread", None).await;
    assert!(unread["unread"].as_i64().unwrap() >= 4, "{unread}");
    let (status, marked) =
        setup.api.call(Method::POST, "/api/v1/me/notifications/read", Some(json!({}))).await;
    assert_eq!(status, 200, "{marked}");
    let (_, unread) = setup.api.call(Method::GET, "/api/v1/me/notifications/unread", None).await;
    assert_eq!(unread["unread"], 0);

    // An API key is no person: 403.
    let (_, key) =
        setup.call(Method::POST, "/api-keys", Some(json!({ "name": "robot", "role": "admin" }))).await;
    let robot = Api { token: key["key"].as_str().unwrap().to_owned(), ..setup.api.clone() };
    let (status, _) = robot.call(Method::GET, "/api/v1/me/notifications", None).await;
    assert_eq!(status, 403);
    setup.finish().await;
}

#[tokio::test]
async fn notifications_reach_the_right_people_on_sqlite() {
    notifications_reach_the_right_people(false).await;
}

#[tokio::test]
async fn notifications_reach_the_right_people_on_postgres() {
    notifications_reach_the_right_people(true).await;
}

/// An IANA zone whose local hour is `hour` now (a fixed offset).
fn zone_at(hour: i64) -> String {
    let utc = i64::from(time::OffsetDateTime::now_utc().hour());
    let mut offset = hour - utc;
    while offset > 14 {
        offset -= 24;
    }
    while offset < -12 {
        offset += 24;
    }
    match offset {
        0 => "Etc/UTC".into(),
        // Etc/GMT-5 is five hours ahead of UTC (POSIX signs).
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

#[tokio::test]
async fn a_daily_digest_groups_what_waited_and_stops_on_request() {
    let Some(setup) = Setup::start(false).await else { return };
    setup.verify(&setup.api, EMAIL).await;
    // Before 08:00 where the person is: nothing goes out yet.
    let (status, body) =
        setup.api.call(Method::PUT, "/api/v1/me/time-zone", Some(json!({ "time_zone": zone_at(3) }))).await;
    assert_eq!(status, 200, "{body}");
    let x = setup.connect_x().await;
    for text in ["Digest item one", "Digest item two"] {
        let id = setup.publish_now(&x, text).await;
        setup.wait_published(&id).await;
    }
    eventually(Duration::from_secs(10), "two notifications waiting for the digest", || async {
        let waiting =
            notifications_of(&setup.api).await.into_iter().filter(|n| n["email"] == "digest").count();
        (waiting == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(setup.mail.to(EMAIL).await.iter().all(|m| !m.subject.contains("digest")), "not before 08:00");

    // The digest hour comes (another zone): one digest lists both.
    setup.api.call(Method::PUT, "/api/v1/me/time-zone", Some(json!({ "time_zone": zone_at(8) }))).await;
    let digest = setup.mail.wait_for(EMAIL, "Your Marketer digest: 2 notifications").await;
    assert!(
        digest.text.contains("Digest item one") && digest.text.contains("Digest item two"),
        "{}",
        digest.text
    );
    let unsubscribe = digest.headers["list-unsubscribe"].as_str().unwrap_or_default();
    assert!(unsubscribe.contains("/unsubscribe?token="), "{:?}", digest.headers);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let digests = setup.mail.to(EMAIL).await.into_iter().filter(|m| m.subject.contains("digest")).count();
    assert_eq!(digests, 1, "once a day");

    // The unsubscribe link turns digests off.
    let token = digest.token(setup.base(), "/unsubscribe").expect("an unsubscribe link");
    let (status, body) = setup.public("/api/v1/auth/unsubscribe", json!({ "token": token })).await;
    assert_eq!(status, 200, "{body}");
    let (_, settings) = setup.api.call(Method::GET, "/api/v1/me/notification-settings", None).await;
    let published =
        settings["preferences"].as_array().unwrap().iter().find(|p| p["kind"] == "post_published").unwrap();
    assert_eq!(published["delivery"], "off", "{settings}");
    setup.finish().await;
}

#[tokio::test]
async fn mail_waits_while_smtp_is_down_and_goes_out_once() {
    let Some(mut setup) = Setup::start(false).await else { return };
    setup.mail.stop();
    let (status, _) = setup
        .call(Method::POST, "/invitations", Some(json!({ "email": "patient@example.com", "role": "viewer" })))
        .await;
    assert_eq!(status, 201);
    let outbox = eventually(Duration::from_secs(15), "a failed attempt to be recorded", || async {
        let (_, mail) = setup.call(Method::GET, "/mail", None).await;
        let problem = mail["problems"].as_array().unwrap().first().cloned();
        problem.map(|p| (mail.clone(), p))
    })
    .await;
    assert_eq!(outbox.0["pending"], 1, "{}", outbox.0);
    assert!(outbox.1["last_error"].as_str().unwrap().contains("could not connect"), "{}", outbox.1);

    setup.mail.resume().await;
    let message = eventually(Duration::from_secs(40), "the invitation to go out", || async {
        setup.mail.to("patient@example.com").await.into_iter().next()
    })
    .await;
    assert!(message.subject.contains("invited you"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(setup.mail.to("patient@example.com").await.len(), 1, "sent once");
    let (_, mail) = setup.call(Method::GET, "/mail", None).await;
    assert_eq!((mail["sent"].as_i64(), mail["pending"].as_i64()), (Some(1), Some(0)), "{mail}");
    setup.finish().await;
}

#[tokio::test]
async fn two_replicas_send_each_message_once() {
    let Some(mut setup) = Setup::start(true).await else { return };
    let db_url = setup.db.as_ref().unwrap().url.clone();
    let second = ServerProcess::spawn(
        &configure(ServerOptions::new(setup.data.path()), &setup.mail, &setup.social)
            .env("MARKETER_DATABASE_URL", &db_url),
    );
    let addresses: Vec<String> = (0..30).map(|n| format!("guest{n}@example.com")).collect();
    for address in &addresses {
        let (status, body) = setup
            .call(Method::POST, "/invitations", Some(json!({ "email": address, "role": "viewer" })))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    eventually(Duration::from_secs(40), "thirty invitations to go out", || async {
        (setup.mail.messages().await.len() >= 30).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = setup.mail.messages().await;
    assert_eq!(received.len(), 30, "each message once");
    for address in &addresses {
        assert_eq!(received.iter().filter(|m| &m.to == address).count(), 1, "{address}");
    }
    second.kill();
    setup.server.take().unwrap().kill();
    setup.finish().await;
}

#[tokio::test]
async fn an_external_reviewer_gets_a_link_by_email_and_decides_through_it() {
    let Some(mail) = MailDev::start().await else { return };
    let fleet = Fleet::start(|options| mail.configure(job_timings(options))).await;
    let _agent = Agent::start(&fleet, &[]).await;
    let body = json!({ "name": "Client", "steps": [
        { "name": "Client", "rule": "any", "externals": ["client@example.org"] }] });
    let (status, workflow) = fleet.call(Method::POST, "/review-workflows", Some(body)).await;
    assert_eq!(status, 201, "{workflow}");
    let (_, project) = fleet.call(Method::POST, "/projects", Some(json!({ "name": "Homes" }))).await;
    let project = project["id"].as_str().unwrap().to_owned();
    let path = format!("/projects/{project}/review-workflow");
    let (status, _) = fleet.call(Method::PUT, &path, Some(json!({ "workflow_id": workflow["id"] }))).await;
    assert_eq!(status, 200);
    let activities = format!("/projects/{project}/activities");
    let body = json!({ "kind": "blog_article", "topic": "Moving in spring", "model": "llama3.2:3b" });
    let (status, created) = fleet.call(Method::POST, &activities, Some(body)).await;
    assert_eq!(status, 202, "{created}");
    let activity = format!("{activities}/{}", created["id"].as_str().unwrap());
    eventually(Duration::from_secs(60), "the article in review", || async {
        let (_, a) = fleet.call(Method::GET, &activity, None).await;
        (a["status"] == "review").then_some(())
    })
    .await;

    // The author asks for review: the client gets a link of their own.
    let (status, review) = fleet.call(Method::POST, &format!("{activity}/review/request"), None).await;
    assert_eq!(status, 200, "{review}");
    let base = &fleet.server().base_url;
    let message = mail.wait_for("client@example.org", "Please review").await;
    let link = message.link(base, "/review/mkt_rv_").expect("a review link");
    let token = link.rsplit('/').next().unwrap().to_owned();
    let public = |path: &str, body: Value| {
        let url = format!("{base}{path}");
        async move {
            let response = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, seen) = public("/api/v1/review-links/open", json!({ "token": token })).await;
    assert_eq!((status, seen["title"].as_str()), (200, Some("Moving in spring")), "{seen}");
    let decide =
        json!({ "token": token, "decision": "request_changes", "comment": "Add the spring prices." });
    let (status, done) = public("/api/v1/review-links/decide", decide).await;
    assert_eq!((status, done["review"]["state"].as_str()), (200, Some("changes_requested")), "{done}");
    // The author hears (by e-mail too once their address is verified).
    let kinds = notifications_of(&fleet.api).await;
    assert!(kinds.iter().any(|n| n["kind"] == "review_changes_requested"), "{kinds:?}");
    let (_, audit) = fleet.call(Method::GET, "/audit-events?action=review_link.decide", None).await;
    assert_eq!(audit["items"][0]["actor"]["email"], "client@example.org", "{audit}");
}
