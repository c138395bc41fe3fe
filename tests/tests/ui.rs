//! The web UI in a real browser (headless Chromium over WebDriver) against
//! the real `marketer-server` and `marketer-agent` processes: a marketer
//! from sign-in to an exported article, an admin adding and revoking an
//! agent, and what a viewer and strangers cannot do. Screenshots of the main
//! pages land in `target/ui-screenshots/`.

use std::time::Duration;

use marketer_tests::browser::Browser;
use marketer_tests::fleet::{Agent, EMAIL, Fleet, PASSWORD, agent_id, job_timings};
use marketer_tests::ollama::Pace;
use marketer_tests::{eventually, server_command};
use reqwest::Method;
use serde_json::json;

const MODEL: &str = "llama3.2:3b";

async fn sign_in(browser: &Browser, fleet: &Fleet, email: &str, password: &str) {
    browser.sign_in(&fleet.server().base_url, email, password).await;
}

fn tenant_url(fleet: &Fleet, rest: &str) -> String {
    fleet.server().url(&format!("/t/{}{rest}", fleet.api.tenant))
}

/// A second person in the fleet's tenant with `role`; returns the e-mail.
async fn member(fleet: &Fleet, role: &str) -> String {
    let email = format!("{role}-{}@example.com", uuid::Uuid::now_v7().simple());
    let name = if role == "viewer" { "Vera Viewer" } else { "Mia Member" };
    fleet.add_member(&fleet.api.tenant, &email, name, role, "a long enough password").await;
    email
}

/// An activity in review, made through the API.
async fn reviewed_article(fleet: &Fleet) -> (String, String) {
    let body = json!({ "name": "Solar Co", "llm_policy": "edge_only", "default_model": MODEL });
    let (status, project) = fleet.call(Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();
    let body = json!({ "kind": "blog_article", "topic": "Heat pumps in winter", "keywords": ["heat pump"] });
    let path = format!("/projects/{project}/activities");
    let (status, created) = fleet.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(60), "the article to be in review", || async {
        let (_, activity) = fleet.call(Method::GET, &format!("{path}/{id}"), None).await;
        assert_ne!(activity["status"], "failed", "{activity}");
        (activity["status"] == "review").then_some(())
    })
    .await;
    (project, id)
}

#[tokio::test]
async fn a_marketer_takes_a_blog_article_from_sign_in_to_an_approved_export() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(job_timings).await;
    // Slow enough to watch the draft stream in.
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 60.0, tokens: 90 });
    let _agent = Agent::start(&fleet, &[]).await;

    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    assert!(
        browser.text("main").await.contains("Waiting for review"),
        "the dashboard shows the review queue"
    );
    browser.check_page("dashboard-empty").await;

    // A project, with a mistake first: errors appear next to their field.
    browser.goto(&tenant_url(&fleet, "/projects/new")).await;
    browser.fill("#name", "   ").await;
    browser.eval("document.getElementById('name').removeAttribute('required')").await;
    browser.click("form.stack button[type=submit]").await;
    let error = browser.wait_for_text("#name-error", "the name's error", |t| !t.is_empty()).await;
    assert!(error.to_lowercase().contains("name") || error.contains("empty"), "{error}");
    // Focus is on a summary whose link leads to the field, marked invalid.
    assert_eq!(browser.eval("document.activeElement.className").await, "error-summary");
    assert_eq!(
        browser.eval("document.querySelector('.error-summary a').getAttribute('href')").await,
        "#name"
    );
    let summary = browser.text(".error-summary a").await;
    assert!(summary.starts_with("Name: "), "{summary}");
    assert_eq!(browser.eval("document.getElementById('name').getAttribute('aria-invalid')").await, "true");
    browser.check_page("project-form-errors").await;
    browser.fill("#name", "Solar Co").await;
    browser.fill("#brand_voice", "Warm, plain English. Never use jargon.").await;
    browser.click("input[name=llm_policy][value=edge_only]").await;
    browser.fill("#default_model", MODEL).await;
    browser.screenshot("project-form").await;
    browser.click("form.stack button[type=submit]").await;
    browser.wait_for_text("h1", "the project page", |t| t == "Solar Co").await;
    let project_path = browser.path().await;

    // The wizard: a blog article with a LinkedIn companion post.
    browser.click("a[href$='activities/new?kind=blog_article']").await;
    browser.fill("#topic", "What a solar roof costs").await;
    browser.fill("#keywords", "solar panels, roof").await;
    browser.fill("#audience", "homeowners").await;
    browser.click("input[name='platforms[]'][value=linkedin]").await;
    browser.check_page("activity-wizard").await;
    browser.click("form.stack button.primary").await;

    // Live progress: steps, percent and the draft as it is written.
    browser.find("#progress").await;
    let activity_path = browser.path().await;
    assert!(activity_path.starts_with(&format!("{project_path}/activities/")), "{activity_path}");
    browser
        .wait_for_text("#draft", "the draft to stream in", |t| {
            !t.is_empty() && !t.starts_with("Appears here")
        })
        .await;
    assert_eq!(browser.text("#status-badge").await, "generating");
    browser.check_page("activity-generating").await;
    // A reload mid-run picks the stream up again from the stored events.
    browser.client.refresh().await.unwrap();
    let after_reload = browser.text_content("#progress-percent").await;
    let percent = eventually(Duration::from_secs(30), "progress after the reload", || async {
        let text = browser.text_content("#progress-percent").await;
        let value: u32 = text.trim_end_matches('%').parse().ok()?;
        (value > 0).then_some(value)
    })
    .await;
    assert!(percent > 0, "was {after_reload}");
    // The page moves on to the result shortly after the bar fills; keep the
    // highest percent it showed where the next page can read it.
    browser
        .eval(
            "setInterval(() => { const shown = parseInt(document.getElementById('progress-percent')?.textContent) || 0; \
             const best = parseInt(sessionStorage.getItem('bestPercent')) || 0; \
             sessionStorage.setItem('bestPercent', String(Math.max(shown, best))); }, 20)",
        )
        .await;

    // Done: the page turns into the result by itself.
    browser.wait_for_text("#status-badge", "the review status", |t| t == "review").await;
    browser.find("#content article").await;
    assert_eq!(browser.eval("sessionStorage.getItem('bestPercent')").await, "100", "the bar reached 100%");
    for section in ["#seo", "#quality", "#social", "#sources", "#provenance", "#history"] {
        assert!(browser.has(section).await, "the result shows {section}");
    }
    let seo = browser.text("#seo").await;
    assert!(seo.contains("/ 60") && seo.contains("/ 160"), "character counts: {seo}");
    // The length against the target: the fake model writes a few dozen
    // words for 1,200, which is flagged, not just scored.
    let length = browser.text("#length").await;
    assert!(length.contains("of 1200 words") && length.contains("far from the target"), "{length}");
    // Names, not ids: the agent that made it.
    let provenance = browser.text("#provenance").await;
    let (_, agents) = fleet.call(Method::GET, "/agents", None).await;
    let agent_name = agents["items"][0]["name"].as_str().unwrap().to_owned();
    assert!(provenance.contains(&agent_name), "{provenance}");
    assert!(!provenance.contains(agents["items"][0]["id"].as_str().unwrap()), "{provenance}");
    let social = browser.text("#social").await;
    assert!(social.contains("/ 3000 characters"), "LinkedIn's limit: {social}");
    // How the model behaved is said before approving: the draft stayed
    // far below its length after one extension.
    let warnings = browser.text("#warnings").await;
    assert!(warnings.contains("Too short:") && warnings.contains("after one extension"), "{warnings}");
    browser.screenshot("activity-result").await;
    browser.assert_fits_tablet("activity-result-tablet").await;
    browser.assert_fits_phone("activity-result-phone").await;

    // Edit, preview, save: a second version with its diff.
    browser.click("details.editor summary").await;
    let edited = "# Solar roofs, plainly\n\nA new paragraph written by a person.\n";
    browser.fill("#content-editor", edited).await;
    browser.click("button[data-preview]").await;
    browser
        .wait_for_text("#preview", "the preview", |t| t.contains("A new paragraph written by a person"))
        .await;
    assert!(browser.has("#preview h1").await, "the preview renders Markdown");
    browser.click("#editor-form button.primary").await;
    browser.wait_for_text("#history", "the edited version", |t| t.contains("Version 1")).await;
    assert!(browser.text("#history").await.contains("Generated draft"));
    let diff = browser.text_content("#history .diff").await;
    assert!(diff.contains("+ A new paragraph written by a person."), "{diff}");
    assert!(browser.text("#content article").await.contains("A new paragraph written by a person"));

    // Approve, then export the standalone HTML.
    browser.click("form[action$='/approve'] button").await;
    browser.wait_for_text("#status-badge", "approved", |t| t == "approved").await;
    let href = browser.eval("document.querySelector('a[href$=\"format=html\"]').href").await;
    let export = browser.fetch("GET", href.as_str().unwrap(), json!({})).await;
    assert_eq!(export["status"], 200, "{export}");
    assert!(export["type"].as_str().unwrap().starts_with("text/html"), "{export}");
    let body = export["body"].as_str().unwrap();
    assert!(body.contains("<!DOCTYPE html>") || body.contains("<!doctype html>"), "standalone: {body}");
    assert!(body.contains("A new paragraph written by a person."), "{body}");

    // Settings: the usage of the period as charts with their numbers, and
    // the price table cloud runs are costed with (a typo is named).
    browser.goto(&tenant_url(&fleet, "/settings#usage")).await;
    assert!(browser.has("#chart-usage-tokens svg[role=img] title").await, "a labelled tokens chart");
    assert!(browser.has("#chart-usage-activities svg").await);
    assert!(browser.text_content("#usage-table").await.contains("1"), "the day of the run");
    browser.fill("#price-model", "gpt-4o-mini").await;
    browser.fill("#price-input", "cheap").await;
    browser.fill("#price-output", "0.60").await;
    browser.click("#price-form button[type=submit]").await;
    browser
        .wait_for_text("#price-input-error", "the price's error", |t| t.contains("number of dollars"))
        .await;
    browser.fill("#price-input", "0.15").await;
    browser.click("#price-form button[type=submit]").await;
    browser
        .wait_for_text("#price-table", "the saved price", |t| t.contains("gpt-4o-mini") && t.contains("0.15"))
        .await;
    browser.check_page("settings-usage-prices").await;
    browser.eval("document.querySelector('#usage').scrollIntoView()").await;
    browser.screenshot("settings-usage-charts").await;

    // The dashboard counts it; signing out ends the session.
    browser.goto(&tenant_url(&fleet, "")).await;
    assert!(
        browser.text("main").await.contains("Solar roofs, plainly")
            || browser.text("main").await.contains("What a solar roof costs")
    );
    browser.screenshot("dashboard").await;
    browser.assert_fits_phone("dashboard-phone").await;
    browser.click("header form[action='/logout'] button").await;
    browser.wait_for_text("h1", "the sign-in page", |t| t == "Sign in").await;
    browser.goto(&fleet.server().url(&activity_path)).await;
    assert_eq!(browser.path().await, "/login", "the old session is gone");
    browser.close().await;
}

#[tokio::test]
async fn an_admin_adds_an_agent_sees_it_come_online_live_and_revokes_it() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(job_timings).await;
    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;

    browser.goto(&tenant_url(&fleet, "/fleet")).await;
    browser.wait_for_text("#fleet-rows", "the empty fleet", |t| t.contains("No agents")).await;
    browser.click("a[href$='/fleet/add']").await;
    browser.fill("#labels", "site=berlin").await;
    browser.click("form.stack button.primary").await;
    let command = browser.text("#enroll-command").await;
    browser.screenshot("fleet-add").await;
    let mut words = command.split_whitespace();
    assert_eq!(words.next(), Some("marketer-agent"), "{command}");
    let mut args: Vec<&str> = words.collect();
    assert!(args.contains(&"--token"), "{command}");
    args.extend(["--name", "berlin-1"]);

    // The host runs exactly that command, then the agent.
    let home = tempfile::tempdir().unwrap();
    let host = fleet.host(home.path());
    let enrolled = host.run_command(&args).await;
    assert!(enrolled.status.success(), "{}", String::from_utf8_lossy(&enrolled.stderr));
    let id = agent_id(&host);

    browser.goto(&tenant_url(&fleet, "/fleet")).await;
    browser.eval("window.__sameDocument = true").await;
    let mut run = host.spawn_run(&[]);
    let row = "#fleet-rows tr[data-agent='berlin-1']";
    browser.wait_for_text(row, "the agent online in the table", |t| t.contains("online")).await;
    assert_eq!(browser.eval("window.__sameDocument === true").await, true, "it appeared without a reload");
    assert!(browser.text(row).await.contains("site=berlin"));
    browser.screenshot("fleet").await;
    browser.assert_fits_tablet("fleet-tablet").await;
    browser.assert_fits_phone("fleet-phone").await;

    // The live refresh keeps keyboard focus where it is and reads nothing
    // out again (the heartbeat's "s ago" changes every refresh); it can be
    // paused.
    assert_eq!(browser.eval("document.getElementById('fleet-rows').hasAttribute('aria-live')").await, false);
    browser.eval(&format!("document.querySelector(\"{row} a\").focus()")).await;
    let heartbeat = || async {
        browser.eval(&format!("document.querySelector(\"{row} time\")?.getAttribute('datetime') ?? ''")).await
    };
    let heard = heartbeat().await;
    eventually(Duration::from_secs(20), "a refresh with a newer heartbeat", || async {
        (heartbeat().await != heard).then_some(())
    })
    .await;
    let focused = browser
        .eval("document.activeElement?.closest('#fleet-rows tr')?.getAttribute('data-agent') ?? 'nothing'")
        .await;
    assert_eq!(focused, "berlin-1", "focus left the agent's link");
    browser.click("#fleet-pause").await;
    assert_eq!(
        browser.eval("document.getElementById('fleet-pause').getAttribute('aria-pressed')").await,
        "true"
    );
    let paused = heartbeat().await;
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert_eq!(heartbeat().await, paused, "updates went on while paused");
    browser.click("#fleet-pause").await;

    browser.click(&format!("{row} a")).await;
    browser.wait_for_text("h1", "the agent's page", |t| t == "berlin-1").await;
    assert!(browser.path().await.ends_with(&id));
    assert!(browser.has("svg").await, "the activity chart");
    browser.screenshot("agent").await;
    browser.assert_fits_phone("agent-phone").await;
    // The admin pages on a phone: the team (a role select per member) and
    // the settings (API keys), and the documents of a project.
    for (path, name) in [
        ("/team", "team-phone"),
        ("/settings", "settings-phone"),
        ("/projects", "projects-phone"),
        ("/audit", "audit-phone"),
    ] {
        browser.goto(&tenant_url(&fleet, path)).await;
        browser.assert_fits_phone(name).await;
    }
    browser.goto(&fleet.server().url(&format!("/t/{}/fleet/{id}", fleet.api.tenant))).await;
    browser.click("form[action$='/revoke'] button").await;
    browser.accept_dialog().await;
    browser.wait_for_text("main", "the agent revoked", |t| t.contains("revoked")).await;
    fleet.wait_state(&id, "revoked", Duration::from_secs(10)).await;
    assert!(run.wait(Duration::from_secs(20)).is_some(), "the revoked agent stops");
    browser.close().await;
}

#[tokio::test]
async fn viewers_see_no_edit_controls_forged_posts_are_refused_and_other_tenants_are_not_found() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(job_timings).await;
    let _agent = Agent::start(&fleet, &[]).await;
    let (project, activity) = reviewed_article(&fleet).await;
    let viewer = member(&fleet, "viewer").await;
    // A second tenant of the owner's, and a stranger's tenant.
    let data = fleet.data.path();
    let own = server_command(
        &["admin", "create-tenant", "--name", "Second Brand", "--owner-email", EMAIL],
        data,
        None,
    );
    assert!(own.status.success(), "{}", String::from_utf8_lossy(&own.stderr));
    let stranger =
        server_command(&["admin", "create-user", "--email", "other@example.com", "--name", "O"], data, None);
    assert!(stranger.status.success(), "{}", String::from_utf8_lossy(&stranger.stderr));
    let foreign = server_command(
        &["admin", "create-tenant", "--name", "Foreign", "--owner-email", "other@example.com"],
        data,
        None,
    );
    assert!(foreign.status.success(), "{}", String::from_utf8_lossy(&foreign.stderr));
    let foreign_id = String::from_utf8_lossy(&foreign.stdout)
        .split(['(', ')'])
        .nth(1)
        .expect("the new tenant's id")
        .to_owned();

    // The viewer reads the article but gets no controls that change it.
    sign_in(&browser, &fleet, &viewer, "a long enough password").await;
    let page = tenant_url(&fleet, &format!("/projects/{project}/activities/{activity}"));
    browser.goto(&page).await;
    browser.find("#content article").await;
    for control in ["#editor-form", "form[action$='/approve']", "form[action$='/regenerate']"] {
        assert!(!browser.has(control).await, "a viewer sees no {control}");
    }
    assert!(browser.has("a[href$='format=markdown']").await, "a viewer may export");
    browser.screenshot("activity-viewer").await;

    // A post without the page's CSRF token is refused, even with the cookie.
    let approve = format!("{page}/approve");
    let forged = browser.fetch("POST", &approve, json!({})).await;
    assert_eq!(forged["status"], 403, "{forged}");
    // With the token the viewer is still not allowed: the API's rule.
    let csrf = browser.eval("document.querySelector('meta[name=\"csrf-token\"]').content").await;
    let with_token = browser.fetch("POST", &approve, json!({ "x-csrf-token": csrf })).await;
    assert_eq!(with_token["status"], 403, "{with_token}");
    let (_, still) =
        fleet.call(Method::GET, &format!("/projects/{project}/activities/{activity}"), None).await;
    assert_eq!(still["status"], "review", "nothing changed: {still}");
    // The cookie opens API reads, never API writes.
    let api_write = browser
        .fetch(
            "POST",
            &fleet.server().url(&format!("/api/v1/tenants/{}/projects", fleet.api.tenant)),
            json!({ "content-type": "application/json", "x-csrf-token": csrf }),
        )
        .await;
    assert_eq!(api_write["status"], 401, "{api_write}");

    // Admin pages are not for viewers.
    browser.goto(&tenant_url(&fleet, "/settings")).await;
    assert_eq!(browser.text(".status-code").await, "Error 403");
    // In the UI's words: the role needed, not a permission id.
    let refusal = browser.text("main").await;
    assert!(
        refusal.contains("needs the member role or above") && refusal.contains("your role here is viewer"),
        "{refusal}"
    );
    assert!(!refusal.contains("settings:view"), "{refusal}");
    assert!(
        browser.has("nav[aria-label=Main] a[href$='/projects']").await,
        "the refusal keeps the navigation"
    );
    browser.screenshot("forbidden").await;

    // Another organisation's pages do not exist for this user.
    browser.goto(&fleet.server().url(&format!("/t/{foreign_id}/projects"))).await;
    assert_eq!(browser.text(".status-code").await, "Error 404");
    browser
        .goto(&fleet.server().url(&format!("/t/{foreign_id}/projects/{project}/activities/{activity}")))
        .await;
    assert_eq!(browser.text(".status-code").await, "Error 404");
    browser.close().await;

    // The owner switches between their two organisations.
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    let first = browser.path().await;
    let options = browser
        .eval("Array.from(document.querySelectorAll('#tenant-switch option')).map(o => o.textContent)")
        .await;
    assert!(options.as_array().is_some_and(|o| o.iter().any(|n| n == "Second Brand")), "{options}");
    // An arrow key in the switcher chooses, it does not navigate (WCAG
    // 3.2.2): moving takes the Switch button.
    browser.find("#tenant-switch").await.send_keys("\u{E015}").await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(browser.path().await, first, "an arrow key alone changed the organisation");
    browser
        .eval("(() => { const s = document.getElementById('tenant-switch'); s.value = Array.from(s.options).find(o => o.textContent === 'Second Brand').value; })()")
        .await;
    browser.click(".switcher button[type=submit]").await;
    eventually(Duration::from_secs(10), "the second tenant's dashboard", || async {
        let path = browser.path().await;
        (path != first && path.starts_with("/t/")).then_some(())
    })
    .await;
    assert!(browser.eval("document.title").await.as_str().unwrap().contains("Second Brand"));
    // An organisation's address with a trailing slash is its dashboard.
    let dashboard = browser.path().await;
    browser.goto(&fleet.server().url(&format!("{dashboard}/"))).await;
    assert_eq!(browser.path().await, dashboard);
    browser.close().await;
}

#[tokio::test]
async fn the_generation_view_rides_out_a_control_plane_restart() {
    let Some(browser) = Browser::start().await else { return };
    // A lease grace longer than the restart, so the run goes on where it was.
    let mut fleet = Fleet::start(|options| {
        options
            .fast_heartbeats()
            .arg("--job-lease-grace-seconds")
            .arg("30")
            .arg("--job-retry-base-ms")
            .arg("100")
    })
    .await;
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 25.0, tokens: 60 });
    let _agent = Agent::start(&fleet, &[]).await;
    let body = json!({ "name": "Restart Co", "llm_policy": "edge_only", "default_model": MODEL });
    let (_, project) = fleet.call(Method::POST, "/projects", Some(body)).await;
    let project = project["id"].as_str().unwrap().to_owned();
    let body = json!({ "kind": "blog_article", "topic": "Gardens in autumn" });
    let (status, created) =
        fleet.call(Method::POST, &format!("/projects/{project}/activities"), Some(body)).await;
    assert_eq!(status, 202, "{created}");
    let activity = created["id"].as_str().unwrap().to_owned();

    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    browser.goto(&tenant_url(&fleet, &format!("/projects/{project}/activities/{activity}"))).await;
    browser.wait_for_text("#progress-percent", "progress", |t| t != "0%").await;

    // The control plane goes away mid-run: the page says it is reconnecting,
    // and picks the stream up again when the server is back.
    fleet.kill_server();
    browser
        .wait_for_text("#progress-connection", "the reconnecting notice", |t| {
            t.to_lowercase().contains("reconnecting")
        })
        .await;
    browser.check_page("activity-reconnecting").await;
    fleet.restart_server();
    browser.wait_for_text("#status-badge", "the result after the restart", |t| t == "review").await;
    assert!(browser.has("#content article").await);
    assert!(browser.path().await.ends_with(&activity));
    browser.close().await;
}

/// A member whose session ends while editing clicks Save: the sign-in page
/// says the session ended, signing in returns to the activity, and the
/// typed text is back in the editor; saving it keeps it as a version.
#[tokio::test]
async fn a_form_posted_after_the_session_ended_keeps_its_work() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(job_timings).await;
    let _agent = Agent::start(&fleet, &[]).await;
    let (project, id) = reviewed_article(&fleet).await;
    let email = member(&fleet, "member").await;
    sign_in(&browser, &fleet, &email, "a long enough password").await;
    let page = tenant_url(&fleet, &format!("/projects/{project}/activities/{id}"));
    browser.goto(&page).await;
    browser.click("details.editor summary").await;
    let typed = "# Heat pumps in winter\n\nWritten while the session ended.";
    browser.fill("#content-editor", typed).await;

    // The session ends elsewhere (an operator resets the password).
    let reset = server_command(
        &["admin", "reset-password", "--email", &email, "--password-stdin"],
        fleet.data.path(),
        Some("a brand new long password\n"),
    );
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    browser.click("#editor-form button[type=submit]").await;
    eventually(Duration::from_secs(10), "the sign-in page", || async {
        browser.path().await.starts_with("/login").then_some(())
    })
    .await;
    let notice = browser.text("#session-ended").await;
    assert!(notice.contains("session ended"), "{notice}");
    browser.check_page("session-ended-sign-in").await;

    browser.fill("#email", &email).await;
    browser.fill("#password", "a brand new long password").await;
    browser.click("form button[type=submit]").await;
    eventually(Duration::from_secs(10), "the activity page again", || async {
        browser.path().await.ends_with(&format!("/activities/{id}")).then_some(())
    })
    .await;
    assert!(browser.has("#draft-restored").await, "the kept text is announced");
    let restored = browser.eval("document.getElementById('content-editor').value").await;
    assert_eq!(restored.as_str(), Some(typed));
    browser.check_page("session-ended-draft-restored").await;

    browser.click("#editor-form button[type=submit]").await;
    eventually(Duration::from_secs(10), "the saved version", || async {
        let (_, versions) =
            fleet.call(Method::GET, &format!("/projects/{project}/activities/{id}/versions"), None).await;
        (versions.as_array().map(Vec::len) == Some(2)).then_some(versions)
    })
    .await;
    let (_, activity) = fleet.call(Method::GET, &format!("/projects/{project}/activities/{id}"), None).await;
    assert_eq!(activity["content"].as_str(), Some(typed), "saved with \\n line endings");
    browser.goto(&page).await;
    assert!(!browser.has("#draft-restored").await, "a saved draft is forgotten");
    browser.close().await;
}

/// The documents page follows the index as it changes: files ingested on
/// the agent host appear, and their status turns to indexed, without a
/// reload.
#[tokio::test]
async fn the_documents_page_updates_live_as_files_are_indexed() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(job_timings).await;
    let mut embedder = marketer_tests::ollama::FakeModel::new("nomic-embed-text:latest");
    embedder.embedding_length = 256;
    fleet.ollama.set_models(vec![marketer_tests::ollama::FakeModel::new(MODEL), embedder]);
    let home = tempfile::tempdir().unwrap();
    let host = fleet.host(home.path());
    let agent = fleet.enroll(&host, &[]).await;
    let mut run = host.spawn_run(&[]);
    fleet.wait_state(&agent, "online", Duration::from_secs(30)).await;
    let body = json!({ "name": "Clinic", "llm_policy": "edge_only", "default_model": MODEL });
    let (status, project) = fleet.call(Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();

    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    browser.goto(&tenant_url(&fleet, &format!("/projects/{project}/documents"))).await;
    assert!(browser.text("#documents-list").await.contains("No documents yet"));
    browser.eval("window.__sameDocument = true").await;

    let docs = tempfile::tempdir().unwrap();
    std::fs::write(docs.path().join("faq.md"), "# FAQ\n\nFlu shots take ten minutes at any clinic.").unwrap();
    let out = host.run_command(&["ingest", docs.path().to_str().unwrap(), "--project", &project]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    browser
        .wait_for_text("#documents-list", "the ingested file, indexed", |t| {
            t.contains("faq.md") && t.contains("indexed")
        })
        .await;
    assert_eq!(browser.eval("window.__sameDocument === true").await, true, "no reload");
    browser.screenshot("documents-live").await;
    browser.assert_fits_phone("documents-phone").await;
    run.kill();
    browser.close().await;
}

#[tokio::test]
async fn a_failed_run_shows_what_it_kept_and_resumes_from_there() {
    let fleet = Fleet::start(job_timings).await;
    let _agent = Agent::start(&fleet, &[]).await;
    let Some(browser) = Browser::start().await else { return };
    let body = json!({ "name": "Homes Co", "llm_policy": "edge_only", "default_model": MODEL });
    let (_, project) = fleet.call(Method::POST, "/projects", Some(body)).await;
    let project = project["id"].as_str().unwrap().to_owned();
    // The flyer step answers unusable JSON twice: the run fails there.
    fleet.ollama.script("print flyer text", vec!["not json".into(), "still not json".into()]);
    let body = json!({
        "kind": "listing_kit", "platforms": ["instagram"],
        "listing": {
            "address": "12 Elm Street, Springfield", "price": 450000, "beds": 3, "baths": 2.5,
            "square_feet": 1850, "key_features": ["renovated kitchen", "fenced yard"],
            "description": "Renovated kitchen, fenced yard.", "agent_name": "Dana Reyes",
            "agent_contact": "dana@example.com",
        },
    });
    let path = format!("/projects/{project}/activities");
    let (status, created) = fleet.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(60), "the run to fail", || async {
        let (_, activity) = fleet.call(Method::GET, &format!("{path}/{id}"), None).await;
        (activity["status"] == "failed").then_some(())
    })
    .await;

    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    browser.goto(&tenant_url(&fleet, &format!("/projects/{project}/activities/{id}"))).await;
    let problem = browser.text("#run-problem").await;
    assert!(problem.contains("flyer step") && problem.contains("regenerate"), "{problem}");
    let kept = browser.text("#kept").await;
    assert!(
        kept.contains("the listing analysis, the draft, the Fair Housing review") && kept.contains("resumes"),
        "{kept}"
    );
    assert_eq!(browser.text("form[action$='/regenerate'] button").await, "Resume generating");
    browser.screenshot("activity-failed-kept").await;
    browser.assert_fits_phone("activity-failed-kept-phone").await;

    // Resuming finishes the kit without redoing the rest.
    browser.click("form[action$='/regenerate'] button").await;
    browser.accept_dialog().await;
    browser.wait_for_text("#status-badge", "the review status", |t| t == "review").await;
    browser.find("#flyer").await;
    browser.click("#provenance details summary").await;
    let steps = browser.text("#provenance").await;
    assert_eq!(steps.matches("reused").count(), 3, "{steps}");
    assert!(steps.to_lowercase().contains("budget"), "{steps}");
    browser.check_page("activity-resumed").await;
    browser.close().await;
}

#[tokio::test]
async fn a_marketer_connects_x_schedules_an_approved_post_from_an_activity_and_sees_it_published() {
    let Some(browser) = Browser::start().await else { return };
    let social = marketer_tests::social::FakeSocial::start().await;
    let fleet = Fleet::start(|o| {
        // Metrics are read as soon as a post is out.
        social
            .configure(job_timings(o))
            .env("MARKETER_ANALYTICS_FIRST_READING_SECONDS", "0")
            .env("MARKETER_ANALYTICS_POLL_MS", "200")
    })
    .await;
    let _agent = Agent::start(&fleet, &[]).await;
    let body = json!({ "name": "Solar Co", "llm_policy": "edge_only", "default_model": MODEL });
    let (status, project) = fleet.call(Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();
    let path = format!("/projects/{project}/activities");
    let body =
        json!({ "kind": "social_post_set", "topic": "Our spring sale", "platforms": ["x", "linkedin"] });
    let (status, created) = fleet.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, 202, "{created}");
    let activity = created["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(60), "the posts to be in review", || async {
        let (_, a) = fleet.call(Method::GET, &format!("{path}/{activity}"), None).await;
        assert_ne!(a["status"], "failed", "{a}");
        (a["status"] == "review").then_some(())
    })
    .await;
    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;

    // Settings → Accounts → Connect X → approve on X → back, connected.
    browser.goto(&tenant_url(&fleet, "/settings")).await;
    browser.click("#social-accounts a").await;
    browser.find("#connect").await;
    browser.check_page("publishing-accounts-empty").await;
    browser.click("#connect a.button").await;
    browser.find("#continue").await;
    browser.check_page("publishing-connect").await;
    browser.click("#continue").await;
    browser.wait_for_text("main", "the connected account", |t| t.contains("@marketer_test")).await;
    assert!(browser.text("main").await.contains("The account is connected"));
    browser.check_page("publishing-accounts").await;

    // LinkedIn and Facebook Pages connect the same way (Facebook: each Page the person may post on).
    // LinkedIn brings the member and the page they administer.
    for (network, cards) in [("linkedin", 3), ("facebook", 4), ("instagram", 5)] {
        browser.click(&format!("#connect a[href$='network={network}']")).await;
        browser.click("#continue").await;
        eventually(Duration::from_secs(10), "the account to be listed", || async {
            let n = browser.eval("document.querySelectorAll('section.account').length").await;
            (n == cards).then_some(())
        })
        .await;
    }
    let listed = browser.text("main").await;
    assert!(
        listed.contains("Marketer Test Page")
            && listed.contains("LinkedIn")
            && listed.contains("@marketer_ig"),
        "{listed}"
    );
    browser.check_page("publishing-accounts-three-networks").await;

    // The X account is limited to this project (ticked on its card).
    let (_, accounts) = fleet.call(Method::GET, "/accounts", None).await;
    let x_id = accounts.as_array().unwrap().iter().find(|a| a["network"] == "x").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    browser.click(&format!("#account-{x_id} input[name='project[]'][value='{project}']")).await;
    browser.click(&format!("#account-{x_id} form.row button[type=submit]")).await;
    eventually(Duration::from_secs(10), "the account to be limited to the project", || async {
        let (_, account) = fleet.call(Method::GET, &format!("/accounts/{x_id}"), None).await;
        (account["project_ids"] == json!([project])).then_some(())
    })
    .await;
    browser.find(&format!("#account-{x_id} input[name='project[]'][value='{project}']:checked")).await;
    browser.eval(&format!("document.getElementById('account-{x_id}').scrollIntoView()")).await;
    browser.screenshot("publishing-account-card").await;

    // Not approved yet: no Schedule button. Approved: one per variant.
    let page = tenant_url(&fleet, &format!("/projects/{project}/activities/{activity}"));
    browser.goto(&page).await;
    assert!(!browser.has("#social a.button.primary").await, "nothing to schedule before approval");
    browser.click("form[action$='/approve'] button").await;
    browser.wait_for_text("#status-badge", "approved", |t| t == "approved").await;
    browser.click("#social [role=tabpanel]:not([hidden]) a.button.primary").await;
    browser.find("form[data-composer]").await;
    let text = browser.eval("document.getElementById('text').value").await;
    assert!(!text.as_str().unwrap().is_empty(), "the variant's text is in the composer");
    // The X variant preselects the X account only, and counts as X does.
    let checked = browser
        .eval("[...document.querySelectorAll('input[name=\"account[]\"]:checked')].map(i => i.closest('label').textContent.trim()).join('|')")
        .await;
    assert_eq!(checked, "@marketer_test (X)");
    let x_counter =
        browser.eval("document.querySelector('input[name=\"account[]\"]:checked').dataset.variant").await;
    let count = browser.text(&format!("[data-count-for='{}']", x_counter.as_str().unwrap())).await;
    assert!(count.ends_with("/ 280 characters"), "{count}");
    browser.check_page("publishing-composer").await;

    // Scheduled a few seconds ahead, in the reader's time zone.
    let zone = browser.eval("document.getElementById('composer-zone').value").await;
    assert_eq!(zone, "UTC");
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(8);
    let local = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    browser.eval(&format!("document.getElementById('local_time').value = '{local}'")).await;
    browser.eval("document.querySelector('form[data-composer]').submit()").await;
    browser.wait_for_text("h1", "the calendar", |t| !t.is_empty() && !t.contains("New post")).await;
    assert!(browser.path().await.ends_with("/calendar"));
    let item = browser.text(".calendar li.item").await;
    assert!(item.contains("@marketer_test") && item.contains("scheduled"), "{item}");
    browser.check_page("publishing-calendar").await;

    // Published on X, once; the calendar and the post say so.
    eventually(Duration::from_secs(30), "the post on X", || async {
        (social.posts(marketer_tests::social::Net::X).len() == 1).then_some(())
    })
    .await;
    let here = browser.eval("location.href").await.as_str().unwrap().to_owned();
    browser.goto(&here).await;
    browser.wait_for_text(".calendar li.item", "published", |t| t.contains("published")).await;
    browser.click(".calendar li.item a").await;
    browser.find("#attempts").await;
    let link = browser.find("a[href^='https://x.com/marketer_test/status/']").await;
    assert!(link.text().await.unwrap().contains("View on X"));
    browser.check_page("publishing-post").await;
    // How it did: X's numbers, read once it was out.
    let post_url = browser.eval("location.href").await.as_str().unwrap().to_owned();
    let card = eventually(Duration::from_secs(20), "the post's metrics", || async {
        browser.goto(&post_url).await;
        let card = browser.text("#metrics").await;
        card.contains("Impressions").then_some(card)
    })
    .await;
    assert!(card.contains("Engagement rate") && card.contains('%'), "{card}");
    assert!(!card.contains("Reach"), "X reports no reach: {card}");
    browser.check_page("publishing-post-metrics").await;
    browser.goto(&tenant_url(&fleet, "/calendar?view=week")).await;
    browser.check_page("publishing-calendar-week").await;
    // Filtered by a campaign of the project (none of these posts is in it).
    let (status, campaign) = fleet
        .call(Method::POST, &format!("/projects/{project}/campaigns"), Some(json!({ "name": "Spring sale" })))
        .await;
    assert_eq!(status, 201, "{campaign}");
    let campaign = campaign["id"].as_str().unwrap();
    browser.goto(&tenant_url(&fleet, &format!("/calendar?project={project}&campaign={campaign}"))).await;
    browser.find("#f-campaign").await;
    assert!(!browser.has(".calendar li.item").await, "no post of the campaign");
    browser.check_page("publishing-calendar-campaign").await;
    assert_eq!(social.all_posts(marketer_tests::social::Net::X).len(), 1);

    // An Instagram post needs an image: without one the composer says so on the account;
    // with one it goes out (container, then publish) and the post shows the image's address.
    browser.goto(&tenant_url(&fleet, "/posts/new")).await;
    browser.find("form[data-composer]").await;
    browser
        .eval("[...document.querySelectorAll('input[name=\"account[]\"]')].find(i => i.closest('label').textContent.includes('@marketer_ig')).click()")
        .await;
    browser.fill("#text", "Sunny open house this weekend").await;
    browser.click("input[name=when][value=now]").await;
    browser.click("form[data-composer] button[type=submit]").await;
    browser.wait_for_text("main", "the missing image", |t| t.contains("need an image")).await;
    browser.check_page("publishing-composer-instagram-needs-image").await;
    browser.fill("#image_url", &social.image_url()).await;
    browser.click("input[name=when][value=now]").await;
    browser.click("form[data-composer] button[type=submit]").await;
    eventually(Duration::from_secs(30), "the post on Instagram", || async {
        (social.posts(marketer_tests::social::Net::Instagram).len() == 1).then_some(())
    })
    .await;
    browser.wait_for_text("h1", "the calendar", |t| !t.contains("New post")).await;
    browser.goto(browser.eval("location.href").await.as_str().unwrap()).await;
    browser.wait_for_text(".calendar", "the Instagram post", |t| t.contains("@marketer_ig")).await;
    browser
        .eval("[...document.querySelectorAll('.calendar li.item')].find(li => li.textContent.includes('@marketer_ig')).querySelector('a').click()")
        .await;
    browser.find("#attempts").await;
    browser.check_page("publishing-post-instagram").await;
    assert!(browser.text("main").await.contains("/images/photo.jpg"));

    // Best times: with ten measured X posts, the accounts page names the hour and the
    // calendar marks it; the composer can schedule at it.
    let (_, accounts) = fleet.call(Method::GET, "/accounts", None).await;
    let x = accounts.as_array().unwrap().iter().find(|a| a["network"] == "x").expect("the X account").clone();
    browser.goto(&tenant_url(&fleet, "/settings/accounts")).await;
    let card = browser.text(&format!("#account-{} .best-times", x["id"].as_str().unwrap())).await;
    assert!(card.contains("No recommendation yet") && card.contains("at least 10"), "{card}");
    for i in 0..9 {
        let body = json!({ "account_id": x["id"], "text": format!("Open house, take {i}"), "now": true, "approve": true });
        let (status, post) = fleet.call(Method::POST, "/posts", Some(body)).await;
        assert_eq!(status, 201, "{post}");
    }
    let best_path = format!("/accounts/{}/best-times", x["id"].as_str().unwrap());
    let best = eventually(Duration::from_secs(40), "ten measured X posts", || async {
        let (_, best) = fleet.call(Method::GET, &best_path, None).await;
        (best["posts"] == 10).then_some(best)
    })
    .await;
    let hour = best["slots"][0]["label"].as_str().expect("a best time").to_owned();
    browser.goto(&tenant_url(&fleet, "/settings/accounts")).await;
    let card = browser.text(&format!("#account-{} .best-times", x["id"].as_str().unwrap())).await;
    assert!(
        card.contains(&hour) && card.contains("low confidence") && card.contains("10 measured posts"),
        "{card}"
    );
    let followers = browser.text(&format!("#account-{} .followers", x["id"].as_str().unwrap())).await;
    assert!(followers.contains(" on ") && followers.contains("(UTC)"), "read once a day: {followers}");
    browser
        .eval(&format!(
            "document.querySelector('#account-{} .best-times').scrollIntoView()",
            x["id"].as_str().unwrap()
        ))
        .await;
    browser.check_page("analytics-best-times-account").await;
    let next = best["slots"][0]["next_at"].as_str().unwrap();
    browser.goto(&tenant_url(&fleet, &format!("/calendar?view=week&date={}", &next[..10]))).await;
    let marked = browser.text(".calendar li.slot.best").await;
    assert!(marked.contains("best time") && marked.contains("@marketer_test"), "{marked}");
    browser.check_page("analytics-best-times-calendar").await;

    // The analytics page: the ten posts, charts drawn as SVG with a text alternative,
    // and the same selection as CSV.
    browser.goto(&tenant_url(&fleet, "/analytics")).await;
    let kpis = browser.text("#kpis").await;
    assert!(kpis.contains("Posts published") && kpis.contains("Engagement rate"), "{kpis}");
    assert!(browser.has("#chart-over-time svg[role=img] title").await, "a labelled chart");
    assert!(browser.has("#chart-by-network svg").await);
    assert!(browser.text("#by-network").await.contains("X"));
    assert!(browser.text("#top-posts").await.contains("Open house"));
    // The account's followers, read once a day: a tile and a chart over the period.
    assert!(kpis.contains("Followers"), "{kpis}");
    assert!(browser.has("#chart-followers svg[role=img] title").await, "followers over time");
    browser.check_page("analytics-page").await;
    browser.eval("document.querySelector('#chart-over-time').scrollIntoView()").await;
    browser.screenshot("analytics-page-charts").await;
    browser.eval("document.querySelector('#chart-followers').scrollIntoView()").await;
    browser.screenshot("analytics-page-followers").await;
    let csv = browser.eval("fetch(document.querySelector('#export-csv').href).then(r => r.text())").await;
    let csv = csv.as_str().unwrap_or_default().to_owned();
    assert!(csv.starts_with("post_id,") && csv.contains("Open house"), "{csv}");
    let pdf = browser
        .eval(
            "fetch(document.querySelector('#export-pdf').href)\
             .then(async r => r.headers.get('content-type') + ' ' + (await r.text()).slice(0, 5))",
        )
        .await;
    assert_eq!(pdf.as_str(), Some("application/pdf %PDF-"), "the page's report as a PDF");
    // A/B tests, from the Analytics page: a test needs its accounts (said beside the form), then
    // starts with two variants on the X account at two times and shows as running.
    browser.click("#ab-tests-link").await;
    browser.wait_for_text("h1", "the A/B tests page", |t| t.contains("A/B tests")).await;
    browser.fill("#ab-name", "Morning or evening").await;
    browser.fill("#ab-a-text", "Open house tomorrow morning #homes").await;
    browser.fill("#ab-b-text", "Open house tomorrow evening #homes").await;
    browser.click("#ab-form button[type=submit]").await;
    browser.wait_for_text("#ab-a-account-error", "the refusal", |t| t.contains("choose an account")).await;
    assert_eq!(
        browser.eval("document.querySelector('#ab-b-text').value").await,
        "Open house tomorrow evening #homes"
    );
    let x_id = x["id"].as_str().unwrap().to_owned();
    for (select, time) in [("#ab-a-account", "T09:00"), ("#ab-b-account", "T18:00")] {
        browser.eval(&format!("document.querySelector('{select}').value = '{x_id}'")).await;
        let input = select.replace("account", "time");
        let day = (time::OffsetDateTime::now_utc() + time::Duration::days(2)).date();
        browser.eval(&format!("document.querySelector('{input}').value = '{day}{time}'")).await;
    }
    browser.click("#ab-form button[type=submit]").await;
    let card =
        browser.wait_for_text(".ab-test", "the running test", |t| t.contains("Morning or evening")).await;
    assert!(card.contains("one account at different times") && card.contains("No winner yet"), "{card}");
    assert_eq!(browser.text(".ab-test .variants tbody").await.matches("scheduled").count(), 2);
    browser.check_page("ab-tests-page").await;
    let (_, tests) = fleet.call(Method::GET, "/ab-tests", None).await;
    assert_eq!(tests[0]["split"], "times", "{tests}");

    browser.goto(&tenant_url(&fleet, "/analytics?network=mastodon")).await;
    assert!(browser.text("main").await.contains("No posts were published in this period"));
    // A campaign of the chosen project (none of the posts is in it).
    browser
        .goto(&tenant_url(&fleet, &format!("/analytics?project_id={project}&campaign_id={campaign}")))
        .await;
    assert!(browser.text("#a-campaign").await.contains("Spring sale"));
    assert!(browser.text("main").await.contains("No posts were published in this period"));
    let href = browser.eval("document.querySelector('#export-pdf').href").await;
    assert!(href.as_str().unwrap_or_default().contains(&format!("campaign_id={campaign}")), "{href}");
    browser.check_page("analytics-page-campaign").await;

    // A project with a workflow reviews a post of its own on the post's page.
    let workflow =
        json!({ "name": "Editor", "steps": [{ "name": "Editor", "rule": "any", "role": "admin" }] });
    let (status, workflow) = fleet.call(Method::POST, "/review-workflows", Some(workflow)).await;
    assert_eq!(status, 201, "{workflow}");
    let body = json!({ "workflow_id": workflow["id"] });
    let (status, _) =
        fleet.call(Method::PUT, &format!("/projects/{project}/review-workflow"), Some(body)).await;
    assert_eq!(status, 200);
    let body = json!({ "account_id": x["id"], "project_id": project, "text": "Spring sale ends Sunday",
                       "scheduled_at": "2030-03-01T09:00:00Z" });
    let (status, own) = fleet.call(Method::POST, "/posts", Some(body)).await;
    assert_eq!(status, 201, "{own}");
    browser.goto(&tenant_url(&fleet, &format!("/posts/{}", own["id"].as_str().unwrap()))).await;
    let summary = browser.text("#review-summary").await;
    assert!(summary.contains("step 1 of 1"), "{summary}");
    assert!(browser.text("#review-why").await.contains("you wrote this content"));
    assert!(!browser.has("#reschedule input[name=approve]").await, "approved through the workflow only");
    browser.check_page("publishing-post-own-review").await;
}

/// Comments in the browser: a member is mentioned while her page is open
/// and the bell counts it without a reload; she replies and starts a thread
/// on a passage of the draft, mentioning the owner; a mention of someone
/// who is not a member is refused next to the form, and her text is kept.
#[tokio::test]
async fn a_member_is_mentioned_the_bell_counts_it_live_and_she_answers_in_the_thread() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(job_timings).await;
    let _agent = Agent::start(&fleet, &[]).await;
    let (project, activity) = reviewed_article(&fleet).await;
    let mia = member(&fleet, "member").await;
    sign_in(&browser, &fleet, &mia, "a long enough password").await;
    let page = tenant_url(&fleet, &format!("/projects/{project}/activities/{activity}"));
    browser.goto(&page).await;
    browser.find("#comments").await;
    let before: i64 = browser.text_content("#bell-count").await.trim().parse().unwrap_or(0);

    // The owner mentions Mia (through the API) while her page stays open.
    let body = json!({ "activity_id": activity, "body": format!("@{mia} could you check the **intro**?") });
    let (status, first) = fleet.call(Method::POST, "/comments", Some(body)).await;
    assert_eq!(status, 201, "{first}");
    let thread = first["id"].as_str().unwrap().to_owned();
    let expected = (before + 1).to_string();
    browser.wait_for_text("#bell-count", "the bell to count the mention", |t| t.trim() == expected).await;
    assert!(browser.text_content("#bell-words").await.contains("unread"));

    // She reloads, sees the thread, and replies mentioning the owner.
    browser.goto(&page).await;
    let shown = browser.text(&format!("#comment-{thread}")).await;
    assert!(shown.contains("could you check the intro"), "{shown}");
    browser.click(&format!("#thread-{thread} details summary")).await;
    browser.fill(&format!("#reply-{thread}"), &format!("Done. @{EMAIL} have a look")).await;
    browser.click(&format!("#thread-{thread} form button.primary")).await;
    browser
        .wait_for_text(&format!("#thread-{thread}"), "the reply in the thread", |t| t.contains("have a look"))
        .await;

    // A mention of a stranger is refused beside the form; the text stays.
    browser.fill("#comment-body", "Ask @nobody@example.com too").await;
    browser.click("#new-comment button.primary").await;
    browser.wait_for_text("#comment-body-error", "the refused mention", |t| t.contains("not a member")).await;
    let kept = browser.eval("document.querySelector('#comment-body').value").await;
    assert_eq!(kept, "Ask @nobody@example.com too");

    // A new thread about a passage of the current version.
    let (_, detail) =
        fleet.call(Method::GET, &format!("/projects/{project}/activities/{activity}"), None).await;
    let content = detail["content"].as_str().unwrap_or_default().to_owned();
    let line = content
        .lines()
        .map(str::trim)
        .find(|l| l.chars().count() > 30 && !l.starts_with('#'))
        .expect("a paragraph in the draft");
    let passage: String = line.chars().take(30).collect();
    browser.fill("#comment-body", "This sentence is too long.").await;
    browser.fill("#comment-quote", &passage).await;
    browser.click("#new-comment button.primary").await;
    browser.wait_for_text("#comments", "the anchored thread", |t| t.contains("too long")).await;
    let quoted = browser.text("#comments blockquote.anchor").await;
    assert!(quoted.contains(passage.trim()), "{quoted}");
    browser.screenshot("activity-comments").await;

    // The owner heard of the reply's mention.
    let (_, notes) = fleet.api.call(Method::GET, "/api/v1/me/notifications", None).await;
    let mentions: Vec<_> =
        notes["items"].as_array().unwrap().iter().filter(|n| n["kind"] == "mention").collect();
    assert_eq!(mentions.len(), 1, "{notes}");

    // Her notifications page lists the mention and links to the comment.
    browser.goto(&tenant_url(&fleet, "/notifications")).await;
    let list = browser.text("main").await;
    assert!(list.contains("mentioned you"), "{list}");
    browser.screenshot("notifications-mention").await;
    browser.close().await;
}

/// Reviews in the browser: an admin defines a two-step workflow in
/// Settings → Reviews and gives it to the project; the owner's article
/// waits for an admin (step 1), then for the named member (step 2); each
/// approves from the activity's review panel, and the member finds it
/// under "Waiting for my review" first.
#[tokio::test]
async fn an_article_is_reviewed_in_two_steps_by_two_people() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(job_timings).await;
    let _agent = Agent::start(&fleet, &[]).await;
    let (project, activity) = reviewed_article(&fleet).await;
    let ana = member(&fleet, "admin").await;
    let mia = member(&fleet, "member").await;
    let (_, team) = fleet.call(Method::GET, "/members", None).await;
    let mia_id = team["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == mia.as_str())
        .and_then(|m| m["user_id"].as_str())
        .expect("Mia in the team")
        .to_owned();

    // The owner defines the workflow and gives it to the project.
    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    browser.goto(&tenant_url(&fleet, "/settings/reviews")).await;
    browser.fill("#workflow-name", "Editor then client").await;
    browser.fill("#step1-name", "Editor").await;
    browser.click("#step1-role option[value='admin']").await;
    browser.fill("#step2-name", "Client").await;
    browser.click(&format!("#step2-members option[value='{mia_id}']")).await;
    browser.click("#new-workflow button.primary").await;
    browser.wait_for_text("#workflows", "the new workflow", |t| t.contains("Editor then client")).await;
    let workflow =
        browser.eval("document.querySelector('#projects select option:not([value=\"\"])').value").await;
    let workflow = workflow.as_str().unwrap().to_owned();
    browser.click(&format!("#project-{project} option[value='{workflow}']")).await;
    browser.click(&format!("form:has(#project-{project}) button")).await;
    browser.wait_for_text("#projects", "the project's workflow saved", |_| true).await;
    let chosen = browser.eval(&format!("document.querySelector('#project-{project}').value")).await;
    assert_eq!(chosen, workflow.as_str());
    browser.screenshot("settings-reviews").await;

    // The owner wrote it: the panel says someone else approves.
    let page = tenant_url(&fleet, &format!("/projects/{project}/activities/{activity}"));
    browser.goto(&page).await;
    let summary = browser.text("#review-summary").await;
    assert!(summary.contains("step 1 of 2"), "{summary}");
    assert!(browser.text("#review-why").await.contains("you wrote this content"));
    assert!(!browser.has("form[action$='/approve']").await);
    browser.click("header form[action='/logout'] button").await;
    browser.wait_for_text("h1", "the sign-in page", |t| t == "Sign in").await;

    // Step 1: the admin approves.
    sign_in(&browser, &fleet, &ana, "a long enough password").await;
    browser.goto(&page).await;
    browser.click("form[action$='/approve'] button").await;
    browser.wait_for_text("#review-summary", "step 2", |t| t.contains("step 2 of 2")).await;
    browser.click("header form[action='/logout'] button").await;
    browser.wait_for_text("h1", "the sign-in page", |t| t == "Sign in").await;

    // Step 2: the client finds it on her dashboard and approves.
    sign_in(&browser, &fleet, &mia, "a long enough password").await;
    let mine = browser.text("#my-reviews").await;
    assert!(mine.contains("Heat pumps in winter") && mine.contains("step 2 of 2"), "{mine}");
    browser.click("#my-reviews a").await;
    browser.find("#review").await;
    browser.screenshot("activity-review").await;
    browser.click("form[action$='/approve'] button").await;
    browser.wait_for_text("#review-summary", "approved", |t| t.contains("approved")).await;
    let (_, detail) =
        fleet.call(Method::GET, &format!("/projects/{project}/activities/{activity}"), None).await;
    assert_eq!(detail["status"], "approved", "{detail}");
    browser.close().await;
}

#[tokio::test]
async fn a_client_without_an_account_comments_and_approves_through_a_review_link() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(job_timings).await;
    let _agent = Agent::start(&fleet, &[]).await;
    let (project, activity) = reviewed_article(&fleet).await;

    // The owner's workflow: one step, the client by e-mail.
    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    browser.goto(&tenant_url(&fleet, "/settings/reviews")).await;
    browser.fill("#workflow-name", "Client sign-off").await;
    browser.fill("#step1-name", "Client").await;
    browser.click("#step1-role option[value='none']").await;
    browser.fill("#step1-externals", "client@example.org").await;
    browser.click("#new-workflow button.primary").await;
    browser
        .wait_for_text("#workflows", "the new workflow", |t| t.contains("client@example.org (external)"))
        .await;
    let workflow =
        browser.eval("document.querySelector('#projects select option:not([value=\"\"])').value").await;
    let workflow = workflow.as_str().unwrap().to_owned();
    browser.click(&format!("#project-{project} option[value='{workflow}']")).await;
    browser.click(&format!("form:has(#project-{project}) button")).await;
    browser.wait_for_text("#projects", "the project's workflow saved", |_| true).await;

    // A link for the client, shown once on the activity's page.
    let page = tenant_url(&fleet, &format!("/projects/{project}/activities/{activity}"));
    browser.goto(&page).await;
    assert!(browser.text("#review-summary").await.contains("client@example.org (external)"));
    browser.click("#review-links button[type='submit']").await;
    browser.find("#new-review-link").await;
    let link = browser.eval("document.querySelector('#new-review-link input').value").await;
    let link = link.as_str().unwrap().to_owned();
    assert!(link.contains("/review/mkt_rv_"), "{link}");
    browser.screenshot("activity-review-links").await;
    browser.goto(&page).await;
    assert!(!browser.has("#new-review-link").await, "shown once");
    browser.click("header form[action='/logout'] button").await;
    browser.wait_for_text("h1", "the sign-in page", |t| t == "Sign in").await;

    // The client, signed in nowhere, reads, comments and approves.
    browser.goto(&link).await;
    assert_eq!(browser.text("h1").await, "Heat pumps in winter");
    assert!(!browser.text("#content").await.is_empty());
    browser.fill("#comment-body", "Please mention the winter price.").await;
    browser.click("form[action$='/comment'] button").await;
    browser.wait_for_text("#form-done", "the comment", |t| t.contains("comment")).await;
    browser.click("#review form.inline button.primary").await;
    browser.wait_for_text("#review-summary", "approved", |t| t.contains("approved")).await;
    assert!(browser.text("#form-done").await.contains("approval is recorded"));
    browser.screenshot("external-review").await;

    let (_, detail) =
        fleet.call(Method::GET, &format!("/projects/{project}/activities/{activity}"), None).await;
    assert_eq!(detail["status"], "approved", "{detail}");
    let (_, comments) = fleet.call(Method::GET, &format!("/comments?activity_id={activity}"), None).await;
    assert!(comments.to_string().contains("client@example.org (external)"), "{comments}");
    browser.close().await;
}

/// A realtor enters a listing once: the form names a mistyped price, the
/// property gets two photos (the second made the cover), a listing kit is
/// generated from it and shows on its page, and a CSV import with a bad
/// row imports nothing and says which line and column; leads imported
/// from CSV land in the inbox, linked to the property by its reference.
#[tokio::test]
async fn a_realtor_enters_a_property_with_photos_and_generates_a_kit_from_it() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(job_timings).await;
    let _agent = Agent::start(&fleet, &[]).await;
    let body = json!({ "name": "Elm Realty", "llm_policy": "edge_only", "default_model": MODEL });
    let (status, project) = fleet.call(Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();

    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    browser.goto(&tenant_url(&fleet, "/properties")).await;
    assert!(browser.text("main").await.contains("No properties yet"));
    browser.check_page("properties-empty").await;
    browser.click("a[href$='/properties/new']").await;
    browser.click(&format!("#project_id option[value='{project}']")).await;
    for (field, value) in [
        ("#street", "12 Elm Street"),
        ("#city", "Springfield"),
        ("#region", "IL"),
        ("#postal_code", "62704"),
        ("#price", "about 450k"),
        ("#beds", "3"),
        ("#baths", "2.5"),
        ("#floor_area", "1,850"),
        ("#features", "Renovated kitchen\nTwo-car garage"),
        ("#description", "A bright family home on a quiet street."),
        ("#agent_name", "Dana Reyes"),
        ("#agent_contact", "dana@example.com"),
        ("#reference", "MLS-4471"),
    ] {
        browser.fill(field, value).await;
    }
    browser.click("form.stack button.primary").await;
    let error = browser.wait_for_text("#price-error", "the price's error", |t| !t.is_empty()).await;
    assert!(error.contains("whole number"), "{error}");
    assert_eq!(browser.eval("document.querySelector('#street').value").await, "12 Elm Street", "kept");
    browser.check_page("property-form-error").await;
    browser.fill("#price", "$450,000").await;
    browser.click("form.stack button.primary").await;
    browser.wait_for_text("h1", "the property's page", |t| t.contains("12 Elm Street")).await;
    assert!(browser.text(".price").await.contains("$450,000"));

    // Two photos; the second becomes the cover.
    let dir = tempfile::tempdir().unwrap();
    for (name, alt, (w, h)) in
        [("front.jpg", "Front of the house", (1200, 800)), ("garden.jpg", "The back garden", (900, 600))]
    {
        let path = dir.path().join(name);
        std::fs::write(&path, marketer_tests::files::photo(w, h)).unwrap();
        browser.fill("#alt", alt).await;
        browser.attach("#file", &path).await;
        browser.click("#photos form[enctype] button.primary").await;
        browser
            .wait_for_text("#photos", "the photo", |t| t.contains("Make cover") || t.contains("Cover"))
            .await;
    }
    let alts = browser.eval("[...document.querySelectorAll('.photos img')].map(i => i.alt)").await;
    assert_eq!(alts, json!(["Front of the house", "The back garden"]));
    browser.click(".photos li:nth-child(2) button[value='cover']").await;
    eventually(Duration::from_secs(30), "the garden to be the cover", || async {
        let alts = browser.eval("[...document.querySelectorAll('.photos img')].map(i => i.alt)").await;
        (alts == json!(["The back garden", "Front of the house"])).then_some(())
    })
    .await;
    let loaded = browser
        .eval("[...document.querySelectorAll('.photos img')].every(i => i.complete && i.naturalWidth > 0)")
        .await;
    assert_eq!(loaded, true, "the thumbnails load with the session");
    browser.check_page("property").await;

    // A listing kit from the property.
    browser.click("#kits button.primary").await;
    browser.wait_for_text("h1", "the kit's page", |t| t.contains("12 Elm Street")).await;
    assert!(browser.path().await.contains("/activities/"));
    // Generated and approved, the kit's flyer downloads as a PDF.
    browser.wait_for_text("#status-badge", "the generated kit", |t| t == "review").await;
    assert!(browser.text("#flyer").await.contains("Once the listing kit is approved"));
    if browser.has("input[name='acknowledge_findings']").await {
        browser.click("input[name='acknowledge_findings']").await;
    }
    browser.click("form[action$='/approve'] button").await;
    browser.wait_for_text("#status-badge", "approved", |t| t == "approved").await;
    let href = browser.eval("document.querySelector('#flyer a.button').href").await;
    let flyer = browser.fetch("GET", href.as_str().unwrap(), json!({})).await;
    assert_eq!(
        (flyer["status"].as_i64(), flyer["type"].as_str()),
        (Some(200), Some("application/pdf")),
        "{flyer}"
    );
    assert!(flyer["body"].as_str().unwrap().starts_with("%PDF-"));
    let property_page = tenant_url(&fleet, "/properties");
    browser.goto(&property_page).await;
    let cover = browser.eval("document.querySelector('.property-card img').alt").await;
    assert_eq!(cover, "Cover photo of 12 Elm Street");
    browser.check_page("properties").await;
    browser.click(".property-card h2 a").await;
    let kits = browser.wait_for_text("#kits", "the kit in the list", |t| t.contains("12 Elm Street")).await;
    assert!(kits.contains("listing kit") || kits.contains("12 Elm Street, Springfield"), "{kits}");
    let href = browser.eval("document.querySelector('#kits a.button').href").await;
    assert!(href.as_str().unwrap().ends_with("/flyer.pdf"), "{href}");
    let flyer = browser.fetch("GET", href.as_str().unwrap(), json!({})).await;
    assert_eq!(flyer["status"].as_i64(), Some(200), "the property's flyer");

    // The property's public page, opened by a visitor in a browser of
    // their own, brings a lead that the realtor sees with its score.
    browser.click("#public-page button.primary").await;
    let link = browser.wait_for_text("#public-page", "the page's address", |t| t.contains("/l/")).await;
    assert!(link.contains("Published at"), "{link}");
    let public = browser.eval("document.querySelector('#public-link').href").await;
    let public = public.as_str().unwrap().to_owned();
    let visitor = Browser::start().await.expect("a second browser");
    visitor.goto(&public).await;
    visitor.wait_for_text("h1", "the listing", |t| t.contains("12 Elm Street")).await;
    visitor.check_page("listing-public").await;
    visitor.fill("#name", "Ann Buyer").await;
    visitor.fill("#email", "ann@example.com").await;
    visitor.fill("#message", "Could we book a viewing this weekend? We are pre-approved.").await;
    visitor.click("input[name='consent']").await;
    visitor.click("#contact button.primary").await;
    visitor.wait_for_text("#contact", "the thanks", |t| t.contains("Thank you")).await;
    visitor.screenshot("listing-public-sent").await;
    visitor.close().await;
    browser.goto(&tenant_url(&fleet, "/leads?sort=score")).await;
    let inbox = browser.wait_for_text("#leads", "the lead", |t| t.contains("Ann Buyer")).await;
    assert!(inbox.contains("warm") || inbox.contains("hot"), "{inbox}");
    browser.check_page("leads").await;
    browser.click("#leads a").await;
    let score = browser.wait_for_text("#score", "the breakdown", |t| t.contains("intent")).await;
    assert!(score.contains("sign(s) of intent"), "{score}");
    browser.fill("#note", "Called Ann; viewing on Saturday.").await;
    browser.click("form:has(#note) button").await;
    browser.wait_for_text("#timeline", "the note", |t| t.contains("viewing on Saturday")).await;
    browser.check_page("lead").await;

    // Follow-up by e-mail: refused without the sender's postal address,
    // then started and shown step by step.
    let lead_page = browser.path().await;
    browser.click("form:has(#sequence_id) button").await;
    let refused =
        browser.wait_for_text("#sequence_id-error", "the refusal", |t| t.contains("postal address")).await;
    assert!(refused.contains("listing settings"), "{refused}");
    browser.goto(&tenant_url(&fleet, "/leads#settings")).await;
    browser.fill("#postal_address", "Elm Realty, 400 Main Street, Springfield, IL 62701").await;
    browser.click("form:has(#postal_address) button.primary").await;
    browser.wait_for_text("#settings", "the saved address", |t| t.contains("Logo on flyers")).await;
    let origin = browser.eval("location.origin").await;
    browser.goto(&format!("{}{lead_page}", origin.as_str().unwrap())).await;
    browser.click("form:has(#sequence_id) button").await;
    let panel = browser.wait_for_text("#follow-up", "the running sequence", |t| t.contains("active")).await;
    assert!(panel.contains("Listing inquiry follow-up") && panel.contains("due"), "{panel}");
    browser.check_page("lead-follow-up").await;
    browser.click("#follow-up a[href$='/leads/sequences']").await;
    browser.wait_for_text("h1", "the templates", |t| t == "Follow-up sequences").await;
    browser.check_page("sequences").await;

    // A step drafted for review: the lead's owner reads the e-mail on the
    // lead's page, changes it and sends it (the postal address must stay).
    let reviewed = json!({ "name": "Reviewed welcome", "auto_start": false, "steps": [
        { "wait": 0, "unit": "minutes", "subject": "Welcome, {{first_name}}",
          "body": "Hi {{first_name}}, thanks for asking about {{property}}.", "review": true }] });
    let (status, sequence) = fleet.call(Method::POST, "/sequences", Some(reviewed)).await;
    assert_eq!(status, 201, "{sequence}");
    let (status, dora) = fleet
        .call(Method::POST, "/leads", Some(json!({ "name": "Dora Buyer", "email": "dora@example.com" })))
        .await;
    assert_eq!(status, 201, "{dora}");
    let dora = dora["id"].as_str().unwrap().to_owned();
    let start = json!({ "sequence_id": sequence["id"] });
    assert_eq!(fleet.call(Method::POST, &format!("/leads/{dora}/sequences"), Some(start)).await.0, 201);
    let mut drafted = false;
    for attempt in 0..30 {
        // (A new address each time: the same one with a fragment would not reload.)
        browser.goto(&tenant_url(&fleet, &format!("/leads/{dora}?attempt={attempt}#follow-up"))).await;
        if browser.has("form.follow-up-draft").await {
            drafted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert!(drafted, "the notifier drafts the e-mail within a sweep");
    browser.check_page("lead-follow-up-draft").await;
    let body = "form.follow-up-draft textarea[name='body']";
    browser.fill(body, "Hi Dora, Saturday at 10 works.").await;
    browser.click("form.follow-up-draft button[value='send']").await;
    let refused = browser
        .wait_for_text("form.follow-up-draft .error", "the refusal", |t| t.contains("postal address"))
        .await;
    assert!(refused.contains("400 Main Street"), "{refused}");
    let kept =
        browser.eval("document.querySelector(\"form.follow-up-draft textarea[name='body']\").value").await;
    assert_eq!(kept.as_str(), Some("Hi Dora, Saturday at 10 works."), "the typed text is kept");
    browser
        .fill(body, "Hi Dora, Saturday at 10 works.\n\nElm Realty, 400 Main Street, Springfield, IL 62701")
        .await;
    browser.click("form.follow-up-draft button[value='send']").await;
    browser.wait_for_text("#follow-up", "the sent draft", |t| !t.contains("waits for your review")).await;
    let timeline = browser.text("#timeline").await;
    assert!(timeline.contains("sent after review"), "{timeline}");

    // Scoring weights fitted to the office's own outcomes: ten won leads
    // asked for viewings, ten lost ones gave every detail and never wrote.
    browser.goto(&tenant_url(&fleet, "/leads#scoring")).await;
    let card = browser.wait_for_text("#scoring", "the scoring card", |t| t.contains("default weights")).await;
    assert!(card.contains("at least 10 of each"), "{card}");
    for (i, won) in (0..20).map(|i| (i, i < 10)) {
        let body = if won {
            json!({ "email": format!("buyer{i}@example.com") })
        } else {
            json!({ "name": format!("Browser {i}"), "email": format!("browser{i}@example.com"), "phone": "555-0101" })
        };
        let (status, lead) = fleet.call(Method::POST, "/leads", Some(body)).await;
        assert_eq!(status, 201, "{lead}");
        let path = format!("/leads/{}", lead["id"].as_str().unwrap());
        if won {
            let reply = json!({ "reply": "Can we book a viewing on Saturday?" });
            assert_eq!(fleet.call(Method::PATCH, &path, Some(reply)).await.0, 200);
        }
        let status = json!({ "status": if won { "won" } else { "lost" } });
        assert_eq!(fleet.call(Method::PATCH, &path, Some(status)).await.0, 200);
    }
    // (Another address than the first look: a change of the fragment alone does not reload.)
    browser.goto(&tenant_url(&fleet, "/leads?sort=score#scoring")).await;
    let card = browser.wait_for_text("#scoring", "the outcomes", |t| t.contains("10 won and 10 lost")).await;
    assert!(!card.contains("at least 10 of each"), "{card}");
    browser.click("form[action$='/leads/scoring/fit'] button").await;
    browser.accept_dialog().await;
    let card = browser.wait_for_text("#scoring", "the fit", |t| t.contains("Fitted")).await;
    assert!(card.contains("10 won and 10 lost") && card.contains("raised"), "{card}");
    browser.check_page("leads-scoring-fitted").await;

    // A CSV import with a bad row imports nothing and names the problem.
    browser.goto(&tenant_url(&fleet, "/properties/import")).await;
    browser.click(&format!("#project_id option[value='{project}']")).await;
    let csv = dir.path().join("listings.csv");
    std::fs::write(
        &csv,
        "street,city,country,price,currency,beds,baths,floor_area,area_unit,property_type,status,agent_name,agent_contact\n\
         1 Good Road,Capital City,US,250000,USD,2,1,900,sqft,condo,active,Dana Reyes,555-0100\n\
         2 Bad Road,Capital City,US,250000,USD,2,1,900,acres,condo,active,Dana Reyes,555-0100\n",
    )
    .unwrap();
    browser.attach("#file", &csv).await;
    browser.click("form.stack button.primary").await;
    let report = browser.wait_for_text("main", "the report", |t| t.contains("Nothing was imported")).await;
    assert!(report.contains("area_unit") && report.contains('3'), "{report}");
    browser.check_page("property-import-report").await;
    let (_, listed) = fleet.call(Method::GET, "/properties", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "nothing half-imported");

    // Leads from another system: linked to the property by its reference.
    browser.goto(&tenant_url(&fleet, "/leads")).await;
    browser.click("a[href$='/leads/import']").await;
    let contacts = dir.path().join("contacts.csv");
    std::fs::write(
        &contacts,
        "email,name,phone,status,properties,note
         erin@example.com,Erin Park,+1 555 0142,contacted,MLS-4471,Asked about the garden at the open house
",
    )
    .unwrap();
    browser.attach("#file", &contacts).await;
    browser.click("form.stack button.primary").await;
    let report = browser.wait_for_text("main", "the report", |t| t.contains("Imported 1 lead")).await;
    assert!(!report.contains("Nothing was imported"), "{report}");
    browser.check_page("lead-import-report").await;
    browser.click("#report-heading + p a").await;
    let inbox = browser.wait_for_text("main", "the lead inbox", |t| t.contains("Erin Park")).await;
    assert!(inbox.contains("erin@example.com"), "{inbox}");
    browser.close().await;
}

/// The inbox in the browser: mentions and a reply to a published post
/// arrive on the open page without a reload; a community manager marks one
/// done, takes one on, opens a thread, and sees what is done.
#[tokio::test]
async fn a_community_manager_works_the_inbox_as_mentions_arrive() {
    let Some(browser) = Browser::start().await else { return };
    let social = marketer_tests::social::FakeSocial::start().await;
    let fleet = Fleet::start(|o| {
        social.configure(o).env("MARKETER_INBOX_POLL_MS", "200").env("MARKETER_INBOX_MODEL", "llama3.2:3b")
    })
    .await;
    // Mastodon, connected through its OAuth flow.
    let account = marketer_tests::social::connect_mastodon(&fleet.api, &social).await;
    let body = json!({ "account_id": account["id"], "text": "Open house on Saturday, 10 to 2", "now": true, "approve": true });
    let (status, post) = fleet.call(Method::POST, "/posts", Some(body)).await;
    assert_eq!(status, 201, "{post}");
    let post_path = format!("/posts/{}", post["id"].as_str().unwrap());
    let status_id = eventually(Duration::from_secs(15), "the post to be published", || async {
        let (_, p) = fleet.call(Method::GET, &post_path, None).await;
        p["platform_post_id"].as_str().map(str::to_owned)
    })
    .await;

    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    browser.click("nav a[href$='/inbox']").await;
    browser.wait_for_text("h1", "the inbox", |t| t == "Inbox").await;
    let title = browser.eval("document.title").await;
    assert!(title.as_str().is_some_and(|t| t.starts_with("Inbox") && !t.contains('<')), "{title}");
    assert!(browser.text("#inbox-live").await.contains("Nothing here"));
    // People write; the open page shows it without a reload.
    let marker = browser.eval("window.inboxMarker = 1").await;
    assert_eq!(marker, 1);
    let alice = social.mention("alice", "Is there parking at the open house?", Some(&status_id));
    social.mention("carol", "I wondered the same, Alice", Some(&alice));
    social.mention("bob", "Great listing from @marketer", None);
    browser
        .wait_for_text("#inbox-live", "three items, live", |t| {
            t.contains("3 open in all") && t.contains("Is there parking") && t.contains("Great listing")
        })
        .await;
    assert_eq!(browser.eval("window.inboxMarker").await, 1, "the page was not reloaded");
    let first = browser.text(".inbox-item").await;
    assert!(first.contains("Bob Example") && first.contains("Mention"), "newest first: {first}");
    let alices = browser.text(".inbox-item:last-child").await;
    assert!(alices.contains("Reply to your post") && alices.contains("Your post"), "{alices}");
    // No agent yet: each card says why it has no labels.
    browser
        .wait_for_text(".inbox-item", "why there are no labels", |t| {
            t.contains("Not classified yet") && t.contains("no agent of this tenant is online")
        })
        .await;
    browser.check_page("inbox-page").await;
    // An agent comes online; the labels appear without a reload.
    let home = tempfile::tempdir().unwrap();
    let host = fleet.host(home.path());
    fleet.enroll(&host, &[]).await;
    let _agent = host.spawn_run(&[]);
    let labelled = browser
        .wait_for_text("#inbox-live", "the labels, live", |t| {
            t.contains("Praise") && t.contains("Question") && !t.contains("Not classified yet")
        })
        .await;
    assert!(labelled.contains("Positive"), "{labelled}");
    assert_eq!(browser.eval("window.inboxMarker").await, 1, "the page was not reloaded");
    // Most urgent first: Alice's question before Bob's praise, though older.
    browser.eval("document.querySelector('#inbox-sort').value = 'urgent'").await;
    browser.click("form.filters button[type=submit]").await;
    browser.wait_for_text(".inbox-item", "the urgent order", |t| t.contains("Is there parking")).await;
    assert_eq!(browser.eval("document.querySelector('#inbox-sort').value").await, "urgent");
    browser.check_page("inbox-classified").await;
    browser.goto(&tenant_url(&fleet, "/inbox")).await;
    browser.eval("window.inboxMarker = 1").await;

    // Bob's mention needs nothing more; Alice's question is taken on.
    browser.click(".inbox-item:first-child button[value=done]").await;
    browser.wait_for_text("#inbox-live", "two open", |t| t.contains("2 open in all")).await;
    assert!(!browser.text("#inbox-live").await.contains("Great listing"), "done items leave the open list");
    browser.click(".inbox-item:last-child button[value=assign_me]").await;
    browser.wait_for_text(".inbox-item:last-child", "assigned", |t| t.contains("Assigned to you")).await;
    // Alice's thread: her question and Carol's answer.
    browser.click(".inbox-item:last-child a[href*='thread=']").await;
    let thread =
        browser.wait_for_text("#inbox-live", "the thread", |t| t.contains("I wondered the same")).await;
    assert!(thread.contains("Is there parking") && !thread.contains("Great listing"), "{thread}");
    browser.check_page("inbox-thread").await;
    // Done items, under the filter.
    browser.goto(&tenant_url(&fleet, "/inbox?status=done")).await;
    let done = browser.text("#inbox-live").await;
    assert!(done.contains("Great listing") && !done.contains("parking"), "{done}");
    assert!(browser.has(".inbox-item button[value=open]").await, "a done item can be reopened");
    let (_, audit) = fleet.call(Method::GET, "/audit-events?limit=50", None).await;
    assert!(audit["items"].as_array().unwrap().iter().any(|e| e["action"] == "inbox_item.update"));

    // Listening for a hashtag: a bad one is refused beside the field, a good one is listed
    // and what it finds arrives marked with it.
    browser.fill("#listen-query", "open house").await;
    browser.click("#listen-form button[type=submit]").await;
    browser.wait_for_text("#listen-query-error", "the refusal", |t| t.contains("no spaces")).await;
    browser.fill("#listen-query", "#openhouse").await;
    browser.click("#listen-form button[type=submit]").await;
    browser.wait_for_text("#listening", "the hashtag listed", |t| t.contains("#openhouse")).await;
    // And for the brand's name, as a keyword: a quoted one is refused
    // with the keyword choice kept.
    browser.click("#listen-kind option[value='keyword']").await;
    browser.fill("#listen-query", "\"Acme\"").await;
    browser.click("#listen-form button[type=submit]").await;
    browser
        .wait_for_text("#listen-query-error", "the keyword's refusal", |t| t.contains("without quotes"))
        .await;
    let kind = browser.eval("document.querySelector('#listen-kind').value").await;
    assert_eq!(kind, "keyword", "the choice is kept after a refusal");
    browser.fill("#listen-query", "Acme Realty").await;
    browser.click("#listen-form button[type=submit]").await;
    browser
        .wait_for_text("#listening", "the keyword listed", |t| t.contains("\u{201c}Acme Realty\u{201d}"))
        .await;
    browser.eval("document.querySelector('#listening').scrollIntoView()").await;
    browser.check_page("inbox-listening-queries").await;
    eventually(Duration::from_secs(10), "the keyword's first search", || async {
        social.requests().iter().any(|r| r == "GET /api/v2/search").then_some(())
    })
    .await;
    social.says("hugo", "Acme Realty found us the perfect flat");
    browser.goto(&tenant_url(&fleet, "/inbox?kind=listening")).await;
    let said =
        browser.wait_for_text("#inbox-live", "the keyword's find", |t| t.contains("the perfect flat")).await;
    assert!(said.contains("Listening: \u{201c}Acme Realty\u{201d}"), "{said}");
    browser.goto(&tenant_url(&fleet, "/inbox")).await;
    eventually(Duration::from_secs(10), "the hashtag's first read", || async {
        social.requests().iter().any(|r| r.starts_with("GET /api/v1/timelines/tag/")).then_some(())
    })
    .await;
    let frank = social.tagged("frank", "Who else is going to the open house?", "openhouse");
    browser
        .eval(
            "[...document.querySelectorAll('#listening a')].find(a => a.textContent == '#openhouse').click()",
        )
        .await;
    let found =
        browser.wait_for_text("#inbox-live", "the hashtag's find", |t| t.contains("Who else is going")).await;
    assert!(found.contains("Listening: #openhouse"), "{found}");
    browser.check_page("inbox-listening").await;
    // Frank deletes his post: the card keeps what he wrote, says it is
    // deleted, and offers no reply.
    social.delete_status(&frank);
    let deleted = browser
        .wait_for_text("#inbox-live", "the deletion, live", |t| t.contains("Deleted on Mastodon"))
        .await;
    assert!(deleted.contains("Who else is going"), "{deleted}");
    assert!(!browser.has("#inbox-live .reply-form").await, "a deleted item cannot be answered");
    browser.check_page("inbox-deleted").await;

    // Someone wants a viewing: their card offers to make them a lead.
    social.mention("gina", "I would like to book a viewing on Saturday", None);
    browser.goto(&tenant_url(&fleet, "/inbox?intent=purchase_interest")).await;
    browser
        .wait_for_text("#inbox-live", "the buyer, labelled", |t| {
            t.contains("book a viewing") && t.contains("Create a lead")
        })
        .await;
    browser.fill(".lead-form input[name=email]", "gina@example.com").await;
    browser.click(".lead-form button[type=submit]").await;
    browser
        .wait_for_text(".inbox-item", "the lead linked", |t| {
            t.contains("Lead") && !t.contains("Create a lead")
        })
        .await;
    browser.check_page("inbox-lead").await;
    browser.click(".inbox-item a[href*='/leads/']").await;
    let lead = browser.wait_for_text("h1", "the lead's page", |t| t.contains("Gina")).await;
    assert!(lead.contains("Gina Example"), "{lead}");

    // Alice's question has a suggested reply from the agent; it is
    // edited, refused while empty, then sent once.
    let (_, questions) = fleet.call(Method::GET, "/inbox?intent=question", None).await;
    let card = format!(
        "#item-{}",
        questions["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["text"].as_str().unwrap().contains("Is there parking"))
            .unwrap()["id"]
            .as_str()
            .unwrap()
    );
    browser.goto(&tenant_url(&fleet, "/inbox?intent=question")).await;
    browser
        .wait_for_text(&card, "the suggested reply", |t| {
            t.contains("Is there parking") && t.contains("Suggested reply") && t.contains("Draft again")
        })
        .await;
    let draft = browser.eval(&format!("document.querySelector('{card} .reply-form textarea').value")).await;
    assert!(draft.as_str().is_some_and(|d| d.contains("Thank")), "{draft}");
    browser.check_page("inbox-reply").await;
    let send = format!("{card} .reply-form button[type=submit]:not([formaction])");
    browser.fill(&format!("{card} .reply-form textarea"), "   ").await;
    browser.click(&send).await;
    browser
        .wait_for_text(&format!("{card} .field-error"), "the refusal", |t| t.contains("write the reply"))
        .await;
    browser
        .fill(&format!("{card} .reply-form textarea"), "Yes, free parking on Elm Street. See you Saturday!")
        .await;
    browser.click(&send).await;
    browser.goto(&tenant_url(&fleet, "/inbox?status=all&intent=question")).await;
    let answered =
        browser.wait_for_text(&card, "answered", |t| t.contains("Answered") && t.contains("published")).await;
    assert!(answered.contains("On the platform"), "{answered}");
    browser.check_page("inbox-answered").await;
    let replies: Vec<_> = social
        .posts(marketer_tests::social::Net::Mastodon)
        .into_iter()
        .filter(|p| p.in_reply_to.as_deref() == Some(alice.as_str()))
        .collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(
        replies[0].text,
        "@alice@elsewhere.example Yes, free parking on Elm Street. See you Saturday!"
    );
    // An admin lets praise go out by itself.
    browser.click("#replies input[name=auto_praise]").await;
    browser.click("#replies button[type=submit]").await;
    browser.wait_for_text("#replies", "the settings", |t| t.contains("Send without a person")).await;
    assert_eq!(
        browser.eval("document.querySelector('#replies input[name=auto_praise]').checked").await,
        true
    );
    let (_, settings) = fleet.call(Method::GET, "/inbox-settings", None).await;
    assert_eq!(settings["auto_reply_intents"], json!(["praise"]), "{settings}");
}

#[tokio::test]
async fn an_admin_adds_a_webhook_sees_its_deliveries_and_redelivers_one() {
    let Some(browser) = Browser::start().await else { return };
    let receiver = marketer_tests::webhooks::Receiver::start().await;
    let fleet = Fleet::start(|o| {
        o.env("MARKETER_WEBHOOK_ALLOW_PRIVATE", "true")
            .env("MARKETER_WEBHOOK_ALLOW_HTTP", "true")
            .env("MARKETER_WEBHOOK_RETRY_BASE_MS", "100")
            .env("MARKETER_MAIL_POLL_MS", "100")
    })
    .await;
    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    browser.goto(&tenant_url(&fleet, "/settings")).await;
    browser.click("a[href$='/settings/webhooks']").await;
    browser.wait_for_text("h1", "the webhooks page", |t| t == "Webhooks").await;

    // No event chosen: refused beside the events, what was typed kept.
    browser.fill("#webhook-url", &receiver.url).await;
    browser.fill("#webhook-description", "Our CRM").await;
    browser.click("#new-webhook button.primary").await;
    let error = browser.wait_for_text("#webhook-events-error", "the events' error", |t| !t.is_empty()).await;
    assert!(error.contains("at least one"), "{error}");
    assert_eq!(browser.eval("document.getElementById('webhook-url').value").await, receiver.url.as_str());
    browser.screenshot("webhooks-refused").await;

    browser.click("input[name='events[]'][value='lead.created']").await;
    browser.click("#new-webhook button.primary").await;
    let secret =
        browser.wait_for_text("#webhook-secret", "the secret, shown once", |t| t.starts_with("whsec_")).await;
    receiver.set_secret(&secret);
    browser.screenshot("webhook-created").await;
    // A reload does not show it again.
    browser.goto(&browser_url(&browser).await).await;
    assert!(!browser.has("#webhook-secret").await, "the secret is shown only once");

    // A 503 first, then the retry delivers; the log shows both attempts.
    receiver.plan(&[marketer_tests::webhooks::Plan::Status(503)]);
    let (status, _) =
        fleet.call(Method::POST, "/leads", Some(json!({ "name": "Lee", "email": "lee@example.com" }))).await;
    assert_eq!(status, 201);
    eventually(Duration::from_secs(20), "the delivery", || async {
        receiver.of("lead.created").iter().any(|r| r.handled).then_some(())
    })
    .await;
    let page = browser_url(&browser).await;
    browser.goto(&page).await;
    let row = browser
        .wait_for_text("#deliveries tbody tr", "the delivery's row", |t| t.contains("delivered"))
        .await;
    assert!(row.contains("lead.created") && row.contains('2'), "{row}");
    browser.click("#deliveries details summary").await;
    let attempts = browser.text("#deliveries details ol").await;
    assert!(attempts.contains("503") && attempts.contains("200"), "{attempts}");
    browser.screenshot("webhook-deliveries").await;
    browser.assert_fits_phone("webhook-phone").await;

    // Redeliver: asks first (it was delivered), then the receiver gets the
    // same event id again.
    browser.click("#deliveries form[action$='/redeliver'] button").await;
    browser.accept_dialog().await;
    let again = eventually(Duration::from_secs(10), "the redelivery", || async {
        let got = receiver.of("lead.created");
        (got.len() == 3).then_some(got)
    })
    .await;
    assert_eq!(again[2].id, again[0].id);
    assert_eq!(again[2].refused, None);

    // Turned off from its page.
    browser.goto(&page).await;
    browser.click("#edit input[name='enabled']").await;
    browser.click("#edit button.primary").await;
    browser.wait_for_text("main", "disabled", |t| t.contains("disabled")).await;
    let (_, listed) = fleet.call(Method::GET, "/webhooks", None).await;
    assert_eq!(listed[0]["enabled"], false, "{listed}");
    assert_eq!(listed[0]["description"], "Our CRM");
    browser.goto(&tenant_url(&fleet, "/settings/webhooks")).await;
    browser.screenshot("webhooks").await;
    browser.assert_fits_phone("webhooks-phone").await;
    browser.close().await;
}

async fn browser_url(browser: &Browser) -> String {
    browser.eval("location.href").await.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_person_turns_on_two_factor_sign_in_and_an_organisation_requires_it() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(|o| o).await;
    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    browser.click("#account-link").await;
    browser.wait_for_text("h1", "the account page", |t| t == "Account security").await;
    browser.check_page("account").await;

    // A wrong password is refused in place; the right one shows the QR code.
    browser.fill("#setup-password", "not my password").await;
    browser.click("#two-factor button.primary").await;
    let error = browser.wait_for_text("#two-factor-error", "the password's error", |t| !t.is_empty()).await;
    assert!(error.contains("not your current password"), "{error}");
    browser.fill("#setup-password", PASSWORD).await;
    browser.click("#two-factor button.primary").await;
    let secret = browser.wait_for_text("#two-factor-secret", "the key", |t| t.len() >= 32).await;
    assert!(browser.has("#two-factor-qr").await);
    let qr = browser.eval("document.getElementById('two-factor-qr').naturalWidth").await;
    assert!(qr.as_i64().unwrap_or(0) >= 200, "the QR code renders: {qr}");
    browser.screenshot("two-factor-setup").await;
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap().as_ref().to_vec())
        .with_account_name(EMAIL)
        .build()
        .unwrap();

    // A stale code is refused; the app's current one turns it on and shows
    // the recovery codes once.
    browser.fill("#confirm-code", &marketer_tests::totp::code(&totp, -3600)).await;
    browser.click("#two-factor button.primary").await;
    browser.wait_for_text("#code-error", "the code's error", |t| !t.is_empty()).await;
    marketer_tests::totp::early_in_a_step().await;
    browser.fill("#confirm-code", &marketer_tests::totp::code(&totp, 0)).await;
    browser.click("#two-factor button.primary").await;
    let codes = browser.wait_for_text("#recovery-codes", "the recovery codes", |t| !t.is_empty()).await;
    let codes: Vec<&str> = codes.split_whitespace().collect();
    assert_eq!(codes.len(), 10, "{codes:?}");
    browser.screenshot("two-factor-recovery-codes").await;
    browser.goto(&fleet.server().url("/account")).await;
    assert!(!browser.has("#recovery-codes").await, "shown only once");
    let status = browser.text("#two-factor").await;
    assert!(status.contains("On") && status.contains("10 recovery codes left"), "{status}");

    // The organisation requires it (only possible now that the owner uses it).
    browser.goto(&tenant_url(&fleet, "/settings")).await;
    browser.click("#require-two-factor").await;
    browser.click("#sign-in button").await;
    // The page was Settings before the form went: wait for the saved rule.
    eventually(Duration::from_secs(10), "two-factor sign-in required", || async {
        let (_, security) = fleet.call(Method::GET, "/security", None).await;
        (security["require_two_factor"] == true).then_some(())
    })
    .await;
    browser.wait_for_text("h1", "the settings page", |t| t == "Settings").await;
    // The retention policy beside it: contacts anonymised after a year,
    // generated content kept two years.
    browser.fill("#retention-anonymise", "365").await;
    browser.fill("#retention-content", "730").await;
    browser.click("#retention button").await;
    browser.wait_for_text("h1", "the settings page", |t| t == "Settings").await;
    let (_, retention) = fleet.call(Method::GET, "/retention", None).await;
    assert_eq!(
        retention,
        json!({ "inbox_days": null, "lead_days": null, "anonymise_contacts_days": 365,
                "content_days": 730, "job_days": null })
    );
    assert_eq!(browser.eval("document.getElementById('retention-anonymise').value").await, json!("365"));
    browser.goto(&format!("{}#retention", tenant_url(&fleet, "/settings"))).await;
    browser.check_page("settings-retention").await;
    browser.goto(&format!("{}#sign-in", tenant_url(&fleet, "/settings"))).await;
    browser.screenshot("settings-sign-in-and-retention").await;
    // A contact asks to be forgotten: a typo is refused beside the form,
    // then their lead is anonymised after a confirmation.
    let (status, lead) = fleet
        .call(Method::POST, "/leads", Some(json!({ "name": "Ana Forgotten", "email": "ana@example.com" })))
        .await;
    assert_eq!(status, 201, "{lead}");
    browser.fill("#subject-erase-email", "ana@example.com").await;
    browser.click("#data-subjects form[action$='/erase'] button").await;
    browser.accept_dialog().await;
    let done = browser.wait_for_text("#subject-notice", "the erasure's report", |t| !t.is_empty()).await;
    assert!(done.contains("1 lead anonymised") && done.contains("subject-"), "{done}");
    let (_, lead) = fleet.call(Method::GET, &format!("/leads/{}", lead["id"].as_str().unwrap()), None).await;
    assert_eq!(lead["name"], "Anonymised contact", "{lead}");
    browser.screenshot("data-subject-erased").await;

    // Signing in now takes a second step: a wrong code is refused, the
    // next code opens the dashboard.
    browser.click("header form[action='/logout'] button").await;
    browser.goto(&fleet.server().url("/login")).await;
    browser.fill("#email", EMAIL).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_text("h1", "the code page", |t| t == "Two-factor sign-in").await;
    browser.fill("#code", "000000").await;
    browser.click("form button[type=submit]").await;
    let error = browser.wait_for_text("#code-error", "the code's error", |t| !t.is_empty()).await;
    assert!(error.contains("wrong") || error.contains("already used"), "{error}");
    browser.check_page("two-factor-sign-in").await;
    browser.fill("#code", &marketer_tests::totp::code(&totp, 30)).await;
    browser.click("form button[type=submit]").await;
    eventually(Duration::from_secs(10), "the dashboard after the code", || async {
        browser.path().await.starts_with("/t/").then_some(())
    })
    .await;

    // A member without it is sent to set it up, and sees why.
    let email = member(&fleet, "member").await;
    browser.click("header form[action='/logout'] button").await;
    browser.goto(&fleet.server().url("/login")).await;
    browser.fill("#email", &email).await;
    browser.fill("#password", "a long enough password").await;
    browser.click("form button[type=submit]").await;
    let why = browser.wait_for_text("#two-factor-required", "why the account page", |t| !t.is_empty()).await;
    assert!(why.contains("requires two-factor sign-in"), "{why}");
    assert_eq!(browser.path().await, "/account");
    browser.screenshot("two-factor-required").await;

    // Their sessions are listed, this browser marked; another one ends.
    let other =
        marketer_tests::Api::login_token(&fleet.server().base_url, &email, "a long enough password").await;
    browser.goto(&fleet.server().url("/account")).await;
    let rows = browser.text("#sessions tbody").await;
    assert!(rows.contains("This browser"), "{rows}");
    browser.click("#sessions form button").await;
    browser.accept_dialog().await;
    browser.wait_for_text("#account-notice", "the session ended", |t| t.contains("signed out")).await;
    let (status, _) =
        marketer_tests::Api { token: other, ..fleet.api.clone() }.call(Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 401, "the ended session's token no longer works");

    // And changes their password here.
    // Too short is caught before sending; a wrong current password by the
    // server, beside the form.
    browser.fill("#new-password", "short").await;
    let valid = browser.eval("document.getElementById('new-password').checkValidity()").await;
    assert_eq!(valid, json!(false), "the browser holds a short password back");
    browser.fill("#current-password", "not the password").await;
    browser.fill("#new-password", "another long enough password").await;
    browser.click("#password button").await;
    let error = browser.wait_for_text("#password-error", "the password's error", |t| !t.is_empty()).await;
    assert!(error.contains("not your current password"), "{error}");
    browser.fill("#current-password", "a long enough password").await;
    browser.fill("#new-password", "another long enough password").await;
    browser.click("#password button").await;
    browser.wait_for_text("#account-notice", "the change", |t| t.contains("password is changed")).await;
    browser.screenshot("account-after-changes").await;
    browser.assert_fits_phone("account-phone").await;
    browser.close().await;
}

#[tokio::test]
async fn an_organisation_signs_in_with_its_identity_provider() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(|o| {
        o.env("MARKETER_WEBHOOK_ALLOW_PRIVATE", "true").env("MARKETER_WEBHOOK_ALLOW_HTTP", "true")
    })
    .await;
    let base = fleet.server().base_url.clone();
    let secret = "a-client-secret-from-the-provider-93kd";
    let callback = format!("{base}/sso/callback");
    let Some(idp) = marketer_tests::oidc::OidcProvider::start("marketer-web", secret, &callback, &json!({}))
    else {
        return;
    };
    let member_email = member(&fleet, "member").await;

    // The owner connects the provider: a wrong issuer is named beside its
    // field, then the right one is read and saved.
    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    browser.goto(&tenant_url(&fleet, "/settings")).await;
    browser.click("#require-sso-help a").await;
    browser.wait_for_text("h1", "the single sign-on page", |t| t == "Single sign-on").await;
    assert_eq!(browser.text("#sso-redirect-uri").await, callback);
    browser.check_page("sso-settings").await;
    browser.fill("#sso-issuer", "http://127.0.0.1:9/nobody-home").await;
    browser.fill("#sso-client-id", "marketer-web").await;
    browser.fill("#sso-client-secret", secret).await;
    browser.fill("#sso-domains", "acme.test, example.com").await;
    browser.click("#sso-connection button[type=submit]").await;
    let error = browser.wait_for_text("#sso-issuer-error", "the issuer's error", |t| !t.is_empty()).await;
    assert!(error.contains("could not read"), "{error}");
    browser.screenshot("sso-settings-wrong-issuer").await;
    browser.fill("#sso-issuer", &idp.issuer).await;
    browser.fill("#sso-client-secret", secret).await;
    browser.click("#sso-connection button[type=submit]").await;
    browser.wait_for_text("#sso-saved", "the saved notice", |t| !t.is_empty()).await;
    let hint = browser.text("#sso-client-secret-hint").await;
    assert!(hint.contains("…93kd") && !hint.contains(secret), "{hint}");
    browser.screenshot("sso-settings-saved").await;

    // And requires it for everyone (the owner keeps the password: break-glass).
    browser.goto(&tenant_url(&fleet, "/settings")).await;
    browser.click("#require-sso").await;
    browser.click("#sign-in button").await;
    // The page was Settings before the form went: wait for the saved rule.
    eventually(Duration::from_secs(10), "single sign-on required", || async {
        let (_, security) = fleet.call(Method::GET, "/security", None).await;
        (security["require_sso"] == true).then_some(())
    })
    .await;
    browser.wait_for_text("h1", "the settings page", |t| t == "Settings").await;

    // A member who signs in with a password is sent to the provider...
    browser.click("header form[action='/logout'] button").await;
    browser.goto(&fleet.server().url("/login")).await;
    browser.fill("#email", &member_email).await;
    browser.fill("#password", "a long enough password").await;
    browser.click("form button[type=submit]").await;
    let why = browser.wait_for_text("#sso-required", "why the SSO page", |t| !t.is_empty()).await;
    assert!(why.contains("signs in through its identity provider"), "{why}");
    browser.check_page("sso-required").await;
    browser.click("#sso-continue").await;
    // ...signs in there (the provider's own page), and is back in.
    browser
        .wait_for_text("button[type=submit]", "the provider's sign-in page", |t| t.contains("Sign-in"))
        .await;
    browser.fill("input[name=login]", &member_email).await;
    browser.fill("input[name=password]", "whatever the provider checks").await;
    browser.click("button[type=submit]").await;
    eventually(Duration::from_secs(15), "the dashboard after the provider", || async {
        browser.path().await.starts_with("/t/").then_some(())
    })
    .await;

    // A newcomer from the sign-in page's single sign-on link, by their work
    // address: an account just in time. (Signed out of the provider too.)
    browser.click("header form[action='/logout'] button").await;
    browser.client.delete_all_cookies().await.unwrap();
    browser.goto(&fleet.server().url("/login")).await;
    browser.click("#sso-link").await;
    browser.wait_for_text("h1", "the SSO sign-in page", |t| t == "Single sign-on").await;
    browser.fill("#organisation", "kim@other.test").await;
    browser.click("form button[type=submit]").await;
    let error = browser.wait_for_text("#sso-error", "the unknown domain", |t| !t.is_empty()).await;
    assert!(error.to_lowercase().contains("no organisation signs in people of other.test"), "{error}");
    browser.check_page("sso-login").await;
    browser.fill("#organisation", "kim@acme.test").await;
    browser.click("form button[type=submit]").await;
    browser
        .wait_for_text("button[type=submit]", "the provider's sign-in page", |t| t.contains("Sign-in"))
        .await;
    browser.fill("input[name=login]", "kim@acme.test").await;
    browser.fill("input[name=password]", "whatever the provider checks").await;
    browser.click("button[type=submit]").await;
    eventually(Duration::from_secs(15), "the dashboard of the newcomer", || async {
        browser.path().await.starts_with("/t/").then_some(())
    })
    .await;
    let header = browser.text("header").await;
    assert!(header.to_lowercase().contains("kim"), "{header}");
    browser.screenshot("sso-newcomer-dashboard").await;
    let (_, members) = fleet.call(Method::GET, "/members", None).await;
    assert!(members.to_string().contains("kim@acme.test"), "{members}");
    browser.close().await;
}

#[tokio::test]
async fn a_person_deletes_their_account() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(|o| o).await;
    let email = member(&fleet, "member").await;
    sign_in(&browser, &fleet, &email, "a long enough password").await;
    browser.goto(&fleet.server().url("/account")).await;
    browser.goto(&format!("{}#your-data", fleet.server().url("/account"))).await;
    browser.screenshot("account-your-data").await;
    // A wrong password is refused beside the form; the right one, confirmed,
    // deletes the account and says so on the sign-in page.
    browser.fill("#erase-password", "not my password at all").await;
    browser.click("#your-data form[action='/account/erase'] button").await;
    browser.accept_dialog().await;
    let error = browser.wait_for_text("#erase-error", "the password's error", |t| !t.is_empty()).await;
    assert!(error.contains("not your current password"), "{error}");
    browser.fill("#erase-password", "a long enough password").await;
    browser.click("#your-data form[action='/account/erase'] button").await;
    browser.accept_dialog().await;
    let notice =
        browser.wait_for_text("#session-ended", "the sign-in page's notice", |t| !t.is_empty()).await;
    assert!(notice.contains("Your account is deleted"), "{notice}");
    browser.check_page("account-deleted").await;
    let (_, members) = fleet.call(Method::GET, "/members", None).await;
    assert!(!members.to_string().contains(&email), "{members}");
    browser.close().await;
}

/// An owner deletes the organisation from Settings: a wrong short name is
/// refused beside the form; then the erasure's page shows what the control
/// plane deleted and the offline agent as pending.
#[tokio::test]
async fn an_owner_deletes_the_organisation() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(|o| o).await;
    let host_home = tempfile::tempdir().unwrap();
    let host = fleet.host(host_home.path());
    fleet.enroll(&host, &["--name", "front-desk"]).await;
    let (status, project) =
        fleet.call(Method::POST, "/projects", Some(json!({ "name": "Spring launch" }))).await;
    assert_eq!(status, 201, "{project}");
    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    browser.goto(&format!("{}#erase-organisation", tenant_url(&fleet, "/settings"))).await;
    browser.screenshot("settings-delete-organisation").await;
    browser.fill("#erase-confirm", "not-the-name").await;
    browser.fill("#erase-organisation-password", PASSWORD).await;
    browser.click("#erase-organisation button").await;
    browser.accept_dialog().await;
    let error =
        browser.wait_for_text("#erase-organisation-error", "the short name's error", |t| !t.is_empty()).await;
    assert!(error.contains("short name"), "{error}");
    let (_, tenant) = fleet.call(Method::GET, "", None).await;
    browser.fill("#erase-confirm", tenant["slug"].as_str().unwrap()).await;
    browser.fill("#erase-organisation-password", PASSWORD).await;
    browser.click("#erase-organisation button").await;
    browser.accept_dialog().await;
    let status = browser.wait_for_text("#erasure-status", "the erasure's status", |t| !t.is_empty()).await;
    assert!(status.contains("Waiting for 1 agent"), "{status}");
    let agents = browser.text("#erasure-agents").await;
    assert!(agents.contains("front-desk") && agents.contains("Pending"), "{agents}");
    let counts = browser.text("#erased-counts").await;
    assert!(counts.contains("projects"), "{counts}");
    browser.check_page("organisation-deleted").await;
    let (status, _) = fleet.call(Method::GET, "/projects", None).await;
    assert_eq!(status, 404, "the organisation is gone");
    // The agent comes online, deletes and confirms: the page follows.
    let mut agent = host.spawn_run(&[]);
    let status =
        browser.wait_for_text("#erasure-status", "the erasure complete", |t| t.contains("Complete")).await;
    assert!(status.contains("Every agent that can be reached confirmed"), "{status}");
    let agents = browser.text("#erasure-agents").await;
    assert!(agents.contains("Confirmed"), "{agents}");
    assert_eq!(agent.wait(Duration::from_secs(30)).and_then(|s| s.code()), Some(3));
    browser.check_page("organisation-deleted-complete").await;
    browser.assert_fits_phone("organisation-deleted-phone").await;
    browser.close().await;
}

/// An owner prepares an export of the organisation: the section follows it
/// live until it is ready to download once.
#[tokio::test]
async fn an_owner_exports_the_organisation() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(|o| o).await;
    let (status, project) =
        fleet.call(Method::POST, "/projects", Some(json!({ "name": "Spring launch" }))).await;
    assert_eq!(status, 201, "{project}");
    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    browser.goto(&format!("{}#organisation-export", tenant_url(&fleet, "/settings"))).await;
    browser.click("#organisation-export form button").await;
    let status = browser
        .wait_for_text("#export-table [data-export-status]", "the export ready", |t| {
            t.starts_with("Ready until")
        })
        .await;
    assert!(status.starts_with("Ready until"), "{status}");
    let link = browser.text("#export-table form button").await;
    assert!(link.contains("Download (once)"), "{link}");
    browser.goto(&format!("{}#organisation-export", tenant_url(&fleet, "/settings"))).await;
    browser.check_page("settings-organisation-export").await;
    let (_, exports) = fleet.call(Method::GET, "/exports", None).await;
    assert_eq!(exports[0]["state"], "ready", "{exports}");
    browser.close().await;
}
