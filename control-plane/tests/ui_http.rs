//! The web UI over HTTP, below the browser: the session cookie, CSRF, the
//! cookie's reach into the API, security headers, assets, and errors. The
//! browser tests (`tests/tests/ui.rs`) cover the pages' behaviour.

mod common;

use common::{OWNER_EMAIL, PASSWORD, TestServer};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A client that does not follow redirects, so they can be checked.
fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The sign-in form as a browser gets it: its cookie (`name=value`) and
/// the token its form carries.
async fn login_form(server: &TestServer) -> (String, String) {
    let response = client().get(server.url("/login")).send().await.unwrap();
    let cookie =
        response.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("marketer_login="), "{cookie}");
    let page = response.text().await.unwrap();
    let marker = "name=\"_csrf\" value=\"";
    let start = page.find(marker).expect("the sign-in form's token") + marker.len();
    (cookie, page[start..].split('"').next().unwrap().to_owned())
}

/// Posts the sign-in form as a browser that loaded it.
async fn post_login(server: &TestServer, email: &str, password: &str) -> reqwest::Response {
    let (cookie, token) = login_form(server).await;
    client()
        .post(server.url("/login"))
        .header(header::COOKIE, cookie)
        .form(&[("email", email), ("password", password), ("next", ""), ("_csrf", &token)])
        .send()
        .await
        .unwrap()
}

/// Signs in through the sign-in form and returns the `name=value` of the
/// session cookie and the whole `Set-Cookie` header.
async fn sign_in(server: &TestServer) -> (String, String) {
    let response = post_login(server, OWNER_EMAIL, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    (pair, set_cookie)
}

async fn get(server: &TestServer, path: &str, cookie: &str) -> (StatusCode, HeaderMap, String) {
    let response = client().get(server.url(path)).header(header::COOKIE, cookie).send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

async fn post_form(
    server: &TestServer,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String) {
    let response =
        client().post(server.url(path)).header(header::COOKIE, cookie).form(form).send().await.unwrap();
    let status = response.status();
    let location = response.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_owned());
    let body = response.text().await.unwrap();
    (status, location.unwrap_or(body))
}

/// The CSRF token a page carries for its forms.
fn csrf(page: &str) -> String {
    let marker = "<meta name=\"csrf-token\" content=\"";
    let start = page.find(marker).expect("a csrf-token meta tag") + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

async fn projects(server: &TestServer, token: &str, tenant: &str) -> Vec<String> {
    let (_, page) = server.get(&format!("/api/v1/tenants/{tenant}/projects"), token).await;
    page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn signing_in_sets_a_http_only_lax_cookie_and_pages_carry_a_strict_policy() {
    let server = TestServer::start().await;
    let (_, tenant) = server.owner().await;

    // Without a session a page sends the browser to sign in, and back.
    let (status, headers, _) = get(&server, &format!("/t/{tenant}/projects"), "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[header::LOCATION].to_str().unwrap();
    assert!(location.starts_with("/login?next="), "{location}");

    let (cookie, set_cookie) = sign_in(&server).await;
    assert!(cookie.starts_with("marketer_session=mkt_bs_"), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{attribute} in {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP without a trusted proxy: {set_cookie}");

    let (status, headers, page) = get(&server, &format!("/t/{tenant}/projects"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    // No inline script or style, and nothing secret in the page.
    assert!(!page.contains("<script>") && !page.contains("style=\""), "inline code in {page}");
    assert!(!page.contains(cookie.split('=').nth(1).unwrap()), "the session token is not in the page");

    // A wrong password shows the form again with one message for both cases.
    let response = post_login(&server, OWNER_EMAIL, "not the password").await;
    let no_session = |response: &reqwest::Response| {
        !response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("marketer_session="))
    };
    assert!(no_session(&response));
    let page = response.text().await.unwrap();
    assert!(page.contains("role=\"alert\""), "{page}");
}

/// Login CSRF: a sign-in posted from another site (no sign-in cookie, or
/// another browser's token) signs nobody in, even with the right password.
#[tokio::test]
async fn a_sign_in_posted_from_another_site_signs_nobody_in() {
    let server = TestServer::start().await;
    let (cookie, token) = login_form(&server).await;
    let (other_cookie, _) = login_form(&server).await;
    let attempts: [(Option<&str>, Option<&str>); 4] = [
        (None, None),
        (None, Some(&token)),
        (Some(&other_cookie), Some(&token)),
        (Some(&cookie), Some("forged")),
    ];
    for (cookie, token) in attempts {
        let mut form = vec![("email", OWNER_EMAIL), ("password", PASSWORD)];
        if let Some(token) = token {
            form.push(("_csrf", token));
        }
        let mut request = client().post(server.url("/login")).form(&form);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{cookie:?} {token:?}");
        let sets_session = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("marketer_session="));
        assert!(!sets_session, "signed in with {cookie:?} {token:?}");
        let page = response.text().await.unwrap();
        assert!(page.contains("came from another site"), "{page}");
    }
    // The form from this browser works.
    assert_eq!(post_login(&server, OWNER_EMAIL, PASSWORD).await.status(), StatusCode::SEE_OTHER);
}

/// A form posted with a session that has ended goes to the sign-in page,
/// which says so and returns to the page the form was on.
#[tokio::test]
async fn a_form_posted_after_the_session_ended_returns_to_its_page() {
    let server = TestServer::start().await;
    let (_, tenant) = server.owner().await;
    let (cookie, _) = sign_in(&server).await;
    let (_, _, page) = get(&server, &format!("/t/{tenant}/projects/new"), &cookie).await;
    let token = csrf(&page);
    let (status, _) = post_form(&server, "/logout", &cookie, &[("_csrf", &token)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let response = client()
        .post(server.url(&format!("/t/{tenant}/projects/new")))
        .header(header::COOKIE, &cookie)
        .header(header::REFERER, server.url(&format!("/t/{tenant}/projects/new")))
        .form(&[("_csrf", token.as_str()), ("name", "Kept")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let expected = format!("/login?next=%2Ft%2F{tenant}%2Fprojects%2Fnew&ended=1");
    assert_eq!(location, expected);
    let (_, _, page) = get(&server, &location, "").await;
    assert!(page.contains("Your session ended"), "{page}");
    assert!(page.contains(&format!("value=\"/t/{tenant}/projects/new\"")), "{page}");
    // A referer from elsewhere is not followed.
    let response = client()
        .post(server.url(&format!("/t/{tenant}/projects/new")))
        .header(header::COOKIE, &cookie)
        .header(header::REFERER, "https://evil.example/t/x")
        .form(&[("_csrf", token.as_str()), ("name", "Kept")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[header::LOCATION], "/login?ended=1");
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_changes_nothing() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let (cookie, _) = sign_in(&server).await;
    let path = format!("/t/{tenant}/projects/new");

    let (status, _) =
        post_form(&server, &path, &cookie, &[("name", "Forged"), ("llm_policy", "edge_only")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post_form(
        &server,
        &path,
        &cookie,
        &[("_csrf", "0000"), ("name", "Forged"), ("llm_policy", "edge_only")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Another session's token is not this session's.
    let (other, _) = sign_in(&server).await;
    let (_, _, other_page) = get(&server, &path, &other).await;
    let (status, _) = post_form(
        &server,
        &path,
        &cookie,
        &[("_csrf", &csrf(&other_page)), ("name", "Forged"), ("llm_policy", "edge_only")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(projects(&server, &token, &tenant).await.is_empty(), "nothing was created");

    // With the page's token the form works, and a bad field is shown next to
    // itself with the API's message.
    let (_, _, page) = get(&server, &path, &cookie).await;
    let token_field = csrf(&page);
    let (status, page) = post_form(
        &server,
        &path,
        &cookie,
        &[("_csrf", &token_field), ("name", "Spring"), ("default_model", "bad model!")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    let error = page.split("id=\"default_model-error\">").nth(1).unwrap().split('<').next().unwrap();
    assert!(!error.is_empty(), "the model's error sits under the model field: {page}");
    assert!(page.contains("value=\"Spring\""), "what was typed is kept");
    let (status, location) = post_form(
        &server,
        &path,
        &cookie,
        &[("_csrf", &token_field), ("name", "Spring"), ("llm_policy", "edge_only")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with(&format!("/t/{tenant}/projects/")), "{location}");
    assert_eq!(projects(&server, &token, &tenant).await, ["Spring"]);
}

#[tokio::test]
async fn the_session_cookie_reads_the_api_but_never_changes_anything_through_it() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let (cookie, _) = sign_in(&server).await;
    let http = client();
    let projects_url = server.url(&format!("/api/v1/tenants/{tenant}/projects"));

    let (status, project) = server
        .post(
            &format!("/api/v1/tenants/{tenant}/projects"),
            &token,
            json!({ "name": "Spring", "llm_policy": "edge_only" }),
        )
        .await;
    assert_eq!(status, 201, "{project}");
    let project_url = format!("{projects_url}/{}", project["id"].as_str().unwrap());

    let read = http.get(&projects_url).header(header::COOKIE, &cookie).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    for (method, url) in
        [(Method::POST, &projects_url), (Method::PATCH, &project_url), (Method::DELETE, &project_url)]
    {
        let write = http
            .request(method.clone(), url)
            .header(header::COOKIE, &cookie)
            .json(&json!({ "name": "Through the cookie", "llm_policy": "edge_only" }))
            .send()
            .await
            .unwrap();
        assert_eq!(write.status(), StatusCode::UNAUTHORIZED, "{method} with only a cookie");
    }
    assert_eq!(projects(&server, &token, &tenant).await, ["Spring"], "nothing changed");
}

#[tokio::test]
async fn signing_out_ends_the_session_for_pages_and_the_api() {
    let server = TestServer::start().await;
    let (_, tenant) = server.owner().await;
    let (cookie, _) = sign_in(&server).await;
    let (_, _, page) = get(&server, &format!("/t/{tenant}"), &cookie).await;

    // Signing out needs the token too, so another site cannot sign you out.
    let (status, _) = post_form(&server, "/logout", &cookie, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let response = client()
        .post(server.url("/logout"))
        .header(header::COOKIE, &cookie)
        .form(&[("_csrf", csrf(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(response.headers()[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));

    let (status, headers, _) = get(&server, &format!("/t/{tenant}"), &cookie).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the old cookie opens nothing");
    assert!(headers[header::LOCATION].to_str().unwrap().starts_with("/login"));
    let api = client()
        .get(server.url(&format!("/api/v1/tenants/{tenant}/projects")))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn other_tenants_and_unknown_pages_are_not_found_and_viewers_are_refused_admin_pages() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let (cookie, _) = sign_in(&server).await;

    let stranger = uuid::Uuid::now_v7();
    let (status, _, page) = get(&server, &format!("/t/{stranger}/projects"), &cookie).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("Error 404"), "{page}");
    let (status, _, _) = get(&server, &format!("/t/{tenant}/projects/{stranger}"), &cookie).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&server, &format!("/t/{tenant}/projects/not-an-id"), &cookie).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, _) = get(&server, "/no/such/page", &cookie).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let (status, headers, _) = get(&server, "/api/v1/no/such/route", &cookie).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));

    // A viewer: the settings page is refused, the projects page has no
    // "New project".
    let (status, invitation) = server
        .post(
            &format!("/api/v1/tenants/{tenant}/invitations"),
            &token,
            json!({ "email": "vera@example.com", "role": "viewer" }),
        )
        .await;
    assert_eq!(status, 201, "{invitation}");
    server.create_account("vera@example.com").await;
    let vera = server.access_token("vera@example.com", common::PASSWORD).await;
    let body = json!({ "token": invitation["token"] });
    let (status, _) = server.call(Method::POST, "/api/v1/invitations/accept", Some(&vera), Some(body)).await;
    assert_eq!(status, 200);
    let response = post_login(&server, "vera@example.com", common::PASSWORD).await;
    let viewer =
        response.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let (status, _, _) = get(&server, &format!("/t/{tenant}/settings"), &viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for page in ["/settings/webhooks", "/audit/export?format=csv&since=2026-01-01&until=2026-12-31"] {
        let (status, _, _) = get(&server, &format!("/t/{tenant}{page}"), &viewer).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    }
    let (status, _, page) = get(&server, &format!("/t/{tenant}/projects"), &viewer).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("New project"), "{page}");
}

#[tokio::test]
async fn assets_are_served_under_their_content_hash_and_cached_for_good() {
    let server = TestServer::start().await;
    let (_, _, page) = get(&server, "/login", "").await;
    let css = page.split("href=\"/assets/").nth(1).unwrap().split('"').next().unwrap();
    let js = page.split("src=\"/assets/").nth(1).unwrap().split('"').next().unwrap();
    for (file, kind) in [(css, "text/css"), (js, "text/javascript")] {
        let (status, headers, body) = get(&server, &format!("/assets/{file}"), "").await;
        assert_eq!(status, StatusCode::OK, "{file}");
        assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind), "{file}");
        assert!(headers[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"), "{file}");
        assert!(!body.is_empty());
    }
    let (status, _, _) = get(&server, "/assets/app.000000000000.css", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an old or made-up hash");
}

#[tokio::test]
async fn long_lists_are_paged_and_every_item_is_reachable() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    for i in 0..55 {
        let body = json!({ "name": format!("Project {i:02}"), "llm_policy": "edge_only" });
        let (status, _) = server.post(&format!("/api/v1/tenants/{tenant}/projects"), &token, body).await;
        assert_eq!(status, 201);
    }
    let (cookie, _) = sign_in(&server).await;
    let (_, _, first) = get(&server, &format!("/t/{tenant}/projects"), &cookie).await;
    let rows = |page: &str| page.matches("<tr><td><a href=").count();
    assert_eq!(rows(&first), 50);
    let next =
        first.split("class=\"next\" href=\"").nth(1).expect("a next-page link").split('"').next().unwrap();
    let (status, _, second) = get(&server, &next.replace("&amp;", "&"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rows(&second), 5);
    assert!(second.contains("First page") && !second.contains("Next page"), "{second}");
    let names: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|page| page.split("\">Project ").skip(1).map(|rest| rest[..2].to_owned()))
        .collect();
    assert_eq!(names.len(), 55);
    let (status, _, _) = get(&server, &format!("/t/{tenant}/projects?cursor=nonsense"), &cookie).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a malformed cursor is a clear 400 page");
}

#[tokio::test]
async fn documents_are_uploaded_with_the_form_or_ingested_on_the_agent() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let project = |policy: &str| json!({ "name": format!("Docs {policy}"), "llm_policy": policy });
    let (_, edge) =
        server.post(&format!("/api/v1/tenants/{tenant}/projects"), &token, project("edge_only")).await;
    let (_, cloud) =
        server.post(&format!("/api/v1/tenants/{tenant}/projects"), &token, project("cloud_allowed")).await;
    let (cookie, _) = sign_in(&server).await;

    // Edge only: the exact command for the agent host, and no upload form.
    let edge_id = edge["id"].as_str().unwrap();
    let (status, _, page) = get(&server, &format!("/t/{tenant}/projects/{edge_id}/documents"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!("marketer-agent ingest /path/to/documents --project {edge_id}")),
        "{page}"
    );
    assert!(!page.contains("multipart/form-data"));

    // Cloud allowed: the upload form, which needs the page's token.
    let cloud_id = cloud["id"].as_str().unwrap();
    let documents = format!("/t/{tenant}/projects/{cloud_id}/documents");
    let (_, _, page) = get(&server, &documents, &cookie).await;
    assert!(page.contains("multipart/form-data"));
    let upload = |csrf: Option<String>, name: &'static str, bytes: &'static [u8]| {
        let mut form = reqwest::multipart::Form::new();
        if let Some(csrf) = csrf {
            form = form.text("_csrf", csrf);
        }
        form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
        client()
            .post(server.url(&format!("{documents}/upload")))
            .header(header::COOKIE, &cookie)
            .multipart(form)
            .send()
    };
    let guide: &[u8] = b"# Brand guide\n\nWe write warmly and plainly.\n";
    assert_eq!(upload(None, "guide.md", guide).await.unwrap().status(), StatusCode::FORBIDDEN);
    let refused = upload(Some(csrf(&page)), "photo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused = refused.text().await.unwrap();
    let error = refused.split("id=\"file-error\">").nth(1).unwrap().split('<').next().unwrap();
    assert!(!error.is_empty(), "the file's error sits under the file field: {refused}");
    let stored = upload(Some(csrf(&page)), "guide.md", guide).await.unwrap();
    assert_eq!(stored.status(), StatusCode::SEE_OTHER);
    let (_, _, page) = get(&server, &documents, &cookie).await;
    assert!(page.contains("guide.md") && page.contains("pending"), "{page}");
}

/// Pathological Markdown posted to the preview by several clients at once
/// renders quickly, off the workers that serve everything else: the health
/// check answers meanwhile. Before the bound, 100,000 `>` took 87 s and
/// three 40 KB previews delayed `/healthz` by 5.8 s.
#[tokio::test]
async fn pathological_previews_neither_hang_nor_starve_the_server() {
    let server = TestServer::start().await;
    let (_, tenant) = server.owner().await;
    let (cookie, _) = sign_in(&server).await;
    let (_, _, page) = get(&server, &format!("/t/{tenant}"), &cookie).await;
    let token = csrf(&page);
    let preview = format!("/t/{tenant}/preview");
    let inputs = [">".repeat(100_000), "- ".repeat(50_000), "*a **a ".repeat(10_000), "<div>".repeat(20_000)];
    let started = std::time::Instant::now();
    let renders = inputs.iter().map(|input| {
        let (server, preview, cookie, token) = (&server, &preview, &cookie, &token);
        async move { post_form(server, preview, cookie, &[("_csrf", token), ("content", input)]).await }
    });
    let health = async {
        let started = std::time::Instant::now();
        let response = client().get(server.url("/healthz")).send().await.unwrap();
        (response.status(), started.elapsed())
    };
    let (answers, (health_status, health_time)) =
        tokio::join!(futures_util::future::join_all(renders), health);
    for (status, body) in answers {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.matches("<blockquote>").count() <= 40, "nesting is bounded");
    }
    assert_eq!(health_status, StatusCode::OK);
    // Generous bounds (a debug build on a busy machine); before the fix
    // these were tens of seconds.
    assert!(health_time < std::time::Duration::from_secs(2), "health check took {health_time:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "previews took {:?}", started.elapsed());
    // Oversized text is refused with the field named.
    let (status, body) =
        post_form(&server, &preview, &cookie, &[("_csrf", &token), ("content", &"a".repeat(600 * 1024))])
            .await;
    assert!(status.is_client_error() && body.contains("content: must be at most"), "{status} {body}");
}

/// The invitation page says which organisation, role and address it is
/// for, and offers the one way to accept: signed in as that address.
#[tokio::test]
async fn the_invitation_page_names_what_it_is_for_and_only_its_address_accepts() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let (status, invitation) = server
        .post(
            &format!("/api/v1/tenants/{tenant}/invitations"),
            &token,
            json!({ "email": "ivy@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(status, 201);
    let page_path = format!("/invitations/accept?token={}", invitation["token"].as_str().unwrap());
    let (status, _, page) = get(&server, &page_path, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<strong>Default</strong>") && page.contains("<strong>member</strong>"), "{page}");
    assert!(page.contains("<strong>ivy@example.com</strong>"), "{page}");
    assert!(page.contains("has no account here yet") && page.contains("admin create-user"), "{page}");
    assert!(!page.contains("name=\"password\""), "no password is chosen here");

    server.create_account("ivy@example.com").await;
    let (_, _, page) = get(&server, &page_path, "").await;
    assert!(page.contains("Sign in as ivy@example.com"), "{page}");
    let (owner, _) = sign_in(&server).await;
    let (_, _, page) = get(&server, &page_path, &owner).await;
    assert!(page.contains("Only ivy@example.com can accept"), "{page}");
    assert!(!page.contains("Join Default</button>"), "{page}");

    let response = post_login(&server, "ivy@example.com", common::PASSWORD).await;
    let ivy = response.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let (_, _, page) = get(&server, &page_path, &ivy).await;
    assert!(page.contains("Join Default</button>"), "{page}");
    let marker = "name=\"_csrf\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let csrf = page[start..].split('"').next().unwrap().to_owned();
    let (status, location) = post_form(
        &server,
        "/invitations/accept",
        &ivy,
        &[("_csrf", &csrf), ("token", invitation["token"].as_str().unwrap())],
    )
    .await;
    assert_eq!((status, location), (StatusCode::SEE_OTHER, format!("/t/{tenant}")));
    let (status, _, _) = get(&server, &format!("/t/{tenant}/projects"), &ivy).await;
    assert_eq!(status, StatusCode::OK);
}

/// Post/redirect/get: creating an API key or an invitation answers with a
/// redirect; the secret is shown once on the page it leads to (sealed in a
/// short-lived cookie of this session), never again on a reload, and a
/// form's address opened with GET (Back) leads to its page, not raw JSON.
#[tokio::test]
async fn forms_redirect_after_success_and_secrets_show_once() {
    let server = TestServer::start().await;
    let (_, tenant) = server.owner().await;
    let (cookie, _) = sign_in(&server).await;
    let (_, _, page) = get(&server, &format!("/t/{tenant}/settings"), &cookie).await;
    let token = csrf(&page);
    let response = client()
        .post(server.url(&format!("/t/{tenant}/settings/api-keys")))
        .header(header::COOKIE, &cookie)
        .form(&[("_csrf", token.as_str()), ("name", "CI"), ("role", "viewer")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], format!("/t/{tenant}/settings#api-keys"));
    let flash =
        response.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert!(flash.starts_with("marketer_flash=") && !flash.contains("mkt_ak_"), "sealed: {flash}");
    let with_flash = format!("{cookie}; {flash}");
    let shown = client()
        .get(server.url(&format!("/t/{tenant}/settings")))
        .header(header::COOKIE, &with_flash)
        .send()
        .await
        .unwrap();
    let cleared = shown.headers().get_all(header::SET_COOKIE).iter().any(|c| {
        let c = c.to_str().unwrap();
        c.starts_with("marketer_flash=;") || c.starts_with("marketer_flash=\"\"") || c.contains("Max-Age=0")
    });
    assert!(cleared, "the page clears the one-time cookie");
    let page = shown.text().await.unwrap();
    assert!(page.contains("id=\"new-key\" tabindex=\"0\">mkt_ak_"), "the new key is shown once");
    let (_, _, again) = get(&server, &format!("/t/{tenant}/settings"), &cookie).await;
    assert!(!again.contains("id=\"new-key\""), "a reload does not show it again");
    // Another session cannot open it.
    let (other, _) = sign_in(&server).await;
    let (_, _, theirs) = get(&server, &format!("/t/{tenant}/settings"), &format!("{other}; {flash}")).await;
    assert!(!theirs.contains("id=\"new-key\""));
    let (_, keys) = server.get(&format!("/api/v1/tenants/{tenant}/api-keys"), &server.owner().await.0).await;
    assert_eq!(keys["items"].as_array().unwrap().len(), 1, "one key for one submission");

    // Invitations: the same.
    let (_, _, page) = get(&server, &format!("/t/{tenant}/team"), &cookie).await;
    let token = csrf(&page);
    let response = client()
        .post(server.url(&format!("/t/{tenant}/team/invitations")))
        .header(header::COOKIE, &cookie)
        .form(&[("_csrf", token.as_str()), ("email", "flash@example.com"), ("role", "member")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let flash =
        response.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let (_, _, page) = get(&server, &format!("/t/{tenant}/team"), &format!("{cookie}; {flash}")).await;
    assert!(
        page.contains("/invitations/accept?token=mkt_inv_") && page.contains("flash@example.com"),
        "{page}"
    );
    let (_, _, again) = get(&server, &format!("/t/{tenant}/team"), &cookie).await;
    assert!(!again.contains("accept?token="));

    // Back onto a form's address: its page, not "method not allowed" JSON.
    for (action, page) in [
        (format!("/t/{tenant}/team/invitations"), format!("/t/{tenant}/team")),
        (format!("/t/{tenant}/settings/api-keys"), format!("/t/{tenant}/settings")),
        (format!("/t/{tenant}/team/members/{}/role", uuid::Uuid::now_v7()), format!("/t/{tenant}/team")),
    ] {
        let response =
            client().get(server.url(&action)).header(header::COOKIE, &cookie).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{action}");
        assert_eq!(response.headers()[header::LOCATION], page.as_str(), "{action}");
    }
}

/// A refused form keeps every typed value: the agent page with a wrong
/// label keeps the new name as well as the labels.
#[tokio::test]
async fn a_refused_agent_form_keeps_the_typed_name() {
    let server = TestServer::start().await;
    let (_, tenant) = server.owner().await;
    let tenant_id: uuid::Uuid = tenant.parse().unwrap();
    let agent = common::fixtures::enrolled(server.db.store.as_ref(), tenant_id, 7, 7).await;
    let (cookie, _) = sign_in(&server).await;
    let page_path = format!("/t/{tenant}/fleet/{}", agent.id);
    let (_, _, page) = get(&server, &page_path, &cookie).await;
    let token = csrf(&page);
    let response = client()
        .post(server.url(&page_path))
        .header(header::COOKIE, &cookie)
        .form(&[("_csrf", token.as_str()), ("name", "Berlin edge, rack 4"), ("labels", "no equals sign")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(page.contains("value=\"Berlin edge, rack 4\""), "the typed name is kept");
    assert!(page.contains("no equals sign"), "the typed labels are kept");
}

/// The public listing page: served without a session or cookie; each
/// submission is one lead (a double submit too; a second message from the
/// same address adds to that lead); the honeypot, a bad address, a missing
/// consent and too many messages are refused with a clear word; what a
/// visitor typed is escaped where staff read it; another organisation
/// sees none of it; reading leads in bulk is audited.
#[tokio::test]
async fn a_public_listing_page_turns_each_submission_into_one_lead() {
    let server = TestServer::start().await;
    let (token, tenant) = server.owner().await;
    let t = |rest: &str| format!("/api/v1/tenants/{tenant}{rest}");
    let (_, project) = server.post(&t("/projects"), &token, json!({ "name": "Listings" })).await;
    let (status, property) = server
        .post(
            &t("/properties"),
            &token,
            json!({
                "project_id": project["id"], "street": "12 Elm Street", "city": "Springfield", "country": "US",
                "price": 450_000, "currency": "USD", "beds": 3, "baths": 2, "floor_area": 1850,
                "area_unit": "sqft", "property_type": "single_family", "status": "sold",
                "agent_name": "Dana Reyes", "agent_contact": "dana@example.com"
            }),
        )
        .await;
    assert_eq!(status, 201, "{property}");
    let id = property["id"].as_str().unwrap().to_owned();
    let publication = t(&format!("/properties/{id}/publication"));
    let (status, body) =
        server.call(Method::PUT, &publication, Some(&token), Some(json!({ "published": true }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("not_for_sale")), "{body}");
    let mut edit = property.clone();
    for key in [
        "id",
        "version",
        "address",
        "cover_thumbnail_url",
        "photo_count",
        "photos",
        "public_path",
        "created_by",
        "created_at",
        "updated_at",
        "project_id",
    ] {
        edit.as_object_mut().unwrap().remove(key);
    }
    edit["status"] = json!("active");
    let (status, body) =
        server.call(Method::PUT, &t(&format!("/properties/{id}")), Some(&token), Some(edit)).await;
    assert_eq!(status, 200, "{body}");
    let (status, published) =
        server.call(Method::PUT, &publication, Some(&token), Some(json!({ "published": true }))).await;
    assert_eq!(status, 200, "{published}");
    let path = published["public_path"].as_str().unwrap().to_owned();
    assert!(path.starts_with("/l/12-elm-street-"), "{path}");

    // No session, no cookie.
    let response = client().get(server.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(header::SET_COOKIE).is_none(), "no cookie on the public page");
    let page = response.text().await.unwrap();
    assert!(page.contains("12 Elm Street") && page.contains("Equal Housing Opportunity"));
    let form_token = |page: &str| {
        let marker = "name=\"token\" value=\"";
        let start = page.find(marker).unwrap() + marker.len();
        page[start..].split('"').next().unwrap().to_owned()
    };
    let first_token = form_token(&page);
    let send = |fields: Vec<(&'static str, String)>| {
        let url = server.url(&path);
        async move {
            let response = client().post(url).form(&fields).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let visitor = |token: &str, email: &str, message: &str| {
        vec![
            ("name", "<script>alert('x')</script> Ann".to_owned()),
            ("email", email.to_owned()),
            ("phone", "+1 (555) 010-0199".to_owned()),
            ("message", message.to_owned()),
            ("consent", "on".to_owned()),
            ("token", token.to_owned()),
            ("website", String::new()),
        ]
    };
    let (status, answer) = send(visitor(
        &first_token,
        "ann@example.com",
        "Can we book a viewing this weekend? <b>pre-approved</b>",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.contains("Thank you"), "{answer}");
    // The same form sent twice is one submission.
    let (status, _) = send(visitor(&first_token, "ann@example.com", "Can we book a viewing?")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, leads) = server.get(&t("/leads"), &token).await;
    assert_eq!(leads["items"].as_array().unwrap().len(), 1, "{leads}");
    let lead = leads["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, detail) = server.get(&t(&format!("/leads/{lead}")), &token).await;
    assert_eq!(detail["timeline"].as_array().unwrap().len(), 1, "{detail}");
    assert_eq!(detail["source"], "listing_page");
    assert_eq!(detail["property_ids"], json!([id]));
    assert!(detail["consent_text"].as_str().unwrap().contains("agree to be contacted"));
    let points: f64 =
        detail["signals"].as_array().unwrap().iter().map(|s| s["points"].as_f64().unwrap()).sum();
    assert!((points - detail["score"].as_f64().unwrap()).abs() <= 1.0, "{detail}");
    // A second message from the same address: the same lead, a longer timeline.
    let page = client().get(server.url(&path)).send().await.unwrap().text().await.unwrap();
    let (status, _) =
        send(visitor(&form_token(&page), "ANN@example.com", "We also have cash for an offer.")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, detail) = server.get(&t(&format!("/leads/{lead}")), &token).await;
    assert_eq!(detail["timeline"].as_array().unwrap().len(), 2, "{detail}");
    assert_eq!(detail["band"], "hot", "two messages today with a viewing, financing and an offer: {detail}");

    // Refusals, each with its reason, and nothing kept.
    let mut robot = visitor(&form_token(&page), "bot@example.com", "buy now");
    for (k, v) in &mut robot {
        if *k == "website" {
            *v = "http://spam.example".into();
        }
    }
    let (status, answer) = send(robot).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, answer) = send(visitor(&form_token(&page), "not-an-address", "hi")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.contains("is not an e-mail address"), "{answer}");
    let mut no_consent = visitor(&form_token(&page), "bo@example.com", "hi");
    no_consent.retain(|(k, _)| *k != "consent");
    let (status, answer) = send(no_consent).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.contains("tick the box"), "{answer}");
    let (_, leads) = server.get(&t("/leads"), &token).await;
    assert_eq!(leads["items"].as_array().unwrap().len(), 1, "refused forms make no lead");
    // Too many messages from one address.
    let (status, answer) = send(visitor(&form_token(&page), "ann@example.com", "Hello again")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert!(answer.contains("Too many messages"), "{answer}");

    // Staff read it escaped.
    let (cookie, _) = sign_in(&server).await;
    let (status, _, html) = get(&server, &format!("/t/{tenant}/leads/{lead}"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<script>alert"), "the name is escaped");
    assert!(html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"), "shown as text");
    assert!(!html.contains("<b>pre-approved</b>"), "the message is escaped");
    let (status, _, html) = get(&server, &format!("/t/{tenant}/leads"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("ann@example.com"));

    // Status changes land on the timeline; reads in bulk are audited.
    let (status, changed) = server
        .patch(&t(&format!("/leads/{lead}")), &token, json!({ "status": "contacted", "note": "Called her" }))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["timeline"].as_array().unwrap().len(), 4);
    let (_, audit) = server.get(&t("/audit-events?action=lead.list"), &token).await;
    assert!(!audit["items"].as_array().unwrap().is_empty(), "{audit}");
    let (_, audit) = server.get(&t("/audit-events?action=lead.form_submit"), &token).await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 2, "one per submission: {audit}");

    // Another organisation: nothing.
    let (_, other) = server.post("/api/v1/tenants", &token, json!({ "name": "Other" })).await;
    let other = other["id"].as_str().unwrap().to_owned();
    let (outsider, _) = server.add_user(&token, &other, "outsider@example.com", "admin").await;
    let (status, _) = server.get(&format!("/api/v1/tenants/{other}/leads/{lead}"), &outsider).await;
    assert_eq!(status, 404);
    let (_, theirs) = server.get(&format!("/api/v1/tenants/{other}/leads"), &outsider).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);

    // Taken down: the page is gone.
    let (status, _) =
        server.call(Method::PUT, &publication, Some(&token), Some(json!({ "published": false }))).await;
    assert_eq!(status, 200);
    let response = client().get(server.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_audit_page_downloads_the_filtered_period() {
    let server = TestServer::start().await;
    let (_, tenant) = server.owner().await;
    let (cookie, _) = sign_in(&server).await;
    let today = time::OffsetDateTime::now_utc().date();
    let (status, _, page) = get(&server, &format!("/t/{tenant}/audit"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("audit-export-hint"), "no period, no download");
    let (_, _, page) =
        get(&server, &format!("/t/{tenant}/audit?since={today}&until={today}&action=auth.login"), &cookie)
            .await;
    let start =
        page.find("href=\"/t/").and_then(|_| page.find("/audit/export?format=csv")).expect("a CSV link");
    let href = page[start..].split('"').next().unwrap().replace("&amp;", "&").replace("&#38;", "&");
    let (status, headers, csv) = get(&server, &format!("/t/{tenant}{href}"), &cookie).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert!(headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains(".csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,occurred_at,actor_type"), "{csv}");
    assert!(lines.len() >= 2 && lines[1..].iter().all(|l| l.contains(",auth.login,")), "{csv}");
    let (status, _, _) =
        get(&server, &format!("/t/{tenant}/audit/export?format=pdf&since={today}&until={today}"), &cookie)
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an error page naming the format");
}
