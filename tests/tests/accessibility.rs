//! Accessibility of the whole web UI (WCAG 2.2 AA), in a real browser
//! against the real server and agent: every page, in the states that change
//! what it shows, checked by axe-core at a desktop's and a phone's width,
//! with no sideways scrolling on the phone and every scrolling box reachable
//! and scrollable by keyboard (`Browser::check_page`). The flows' own
//! keyboard tests (the switcher, the fleet refresh, error summaries) are
//! in `ui.rs`; the tabs' keys are here.
//!
//! A page that a later feature adds belongs in `every_page_...` below.

use std::time::Duration;

use marketer_tests::browser::Browser;
use marketer_tests::eventually;
use marketer_tests::fleet::{Agent, EMAIL, Fleet, PASSWORD, job_timings};
use reqwest::Method;
use serde_json::{Value, json};

const MODEL: &str = "llama3.2:3b";

async fn sign_in(browser: &Browser, fleet: &Fleet, email: &str, password: &str) {
    browser.sign_in(&fleet.server().base_url, email, password).await;
}

/// An activity of `body`'s kind in project `project`, made through the API
/// and waited for until it is in review; returns its id.
async fn in_review(fleet: &Fleet, project: &str, body: Value) -> String {
    let path = format!("/projects/{project}/activities");
    let (status, created) = fleet.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(90), "the activity to be in review", || async {
        let (_, activity) = fleet.call(Method::GET, &format!("{path}/{id}"), None).await;
        assert_ne!(activity["status"], "failed", "{activity}");
        (activity["status"] == "review").then_some(())
    })
    .await;
    id
}

#[tokio::test]
async fn every_page_passes_axe_at_desktop_and_phone_widths_and_its_scroll_boxes_work_by_keyboard() {
    let Some(browser) = Browser::start().await else { return };
    let fleet = Fleet::start(job_timings).await;
    let _agent = Agent::start(&fleet, &[]).await;
    let agent_id = fleet.agents().await[0]["id"].as_str().unwrap().to_owned();

    // A project with one activity of each kind, in review.
    let body = json!({ "name": "Solar Co", "llm_policy": "edge_only", "default_model": MODEL,
                       "description": "Rooftop solar for homes", "brand_voice": "Plain and warm" });
    let (status, project) = fleet.call(Method::POST, "/projects", Some(body)).await;
    assert_eq!(status, 201, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();
    let article = in_review(
        &fleet,
        &project,
        json!({ "kind": "blog_article", "topic": "Heat pumps in winter", "keywords": ["heat pump"] }),
    )
    .await;
    let posts = in_review(
        &fleet,
        &project,
        json!({ "kind": "social_post_set", "topic": "Our spring sale", "platforms": ["x", "linkedin", "threads"] }),
    )
    .await;
    let kit = in_review(
        &fleet,
        &project,
        json!({
            "kind": "listing_kit", "platforms": ["instagram"],
            "listing": {
                "address": "12 Elm Street, Springfield", "price": 450000, "beds": 3, "baths": 2.5,
                "square_feet": 1850, "key_features": ["renovated kitchen", "fenced yard"],
                "description": "Quiet street near the park", "agent_name": "Dana Reyes",
                "agent_contact": "dana@example.com",
            },
        }),
    )
    .await;
    // Someone invited and not yet joined, and a viewer.
    let (status, invitation) = fleet
        .api
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{}/invitations", fleet.api.tenant),
            Some(json!({ "email": "pending@example.com", "role": "member" })),
        )
        .await;
    assert_eq!(status, 201, "{invitation}");
    let viewer = "viewer@example.com";
    fleet.add_member(&fleet.api.tenant, viewer, "Vera Viewer", "viewer", "a long enough password").await;

    // A comment thread with a reply on the article, and a review workflow.
    let thread = json!({ "activity_id": article, "body": "Is the **intro** too long?" });
    let (status, first) = fleet.call(Method::POST, "/comments", Some(thread)).await;
    assert_eq!(status, 201, "{first}");
    let reply = json!({ "activity_id": article, "thread_id": first["id"], "body": "A little." });
    let (status, _) = fleet.call(Method::POST, "/comments", Some(reply)).await;
    assert_eq!(status, 201);
    let workflow = json!({ "name": "Editor then legal", "steps": [
        { "name": "Editor", "rule": "any", "role": "member", "externals": ["client@example.org"] },
        { "name": "Legal", "rule": "all", "role": "admin" }] });
    let (status, workflow) = fleet.call(Method::POST, "/review-workflows", Some(workflow)).await;
    assert_eq!(status, 201);
    let path = format!("/projects/{project}/review-workflow");
    let (status, _) = fleet.call(Method::PUT, &path, Some(json!({ "workflow_id": workflow["id"] }))).await;
    assert_eq!(status, 200);
    // A link for the external reviewer: its page is public.
    let path = format!("/projects/{project}/activities/{article}/review/links");
    let (status, link) =
        fleet.call(Method::POST, &path, Some(json!({ "email": "client@example.org" }))).await;
    assert_eq!(status, 201, "{link}");
    let review_link = fleet.server().url(link["path"].as_str().unwrap());

    sign_in(&browser, &fleet, EMAIL, PASSWORD).await;
    let tenant = |rest: &str| fleet.server().url(&format!("/t/{}{rest}", fleet.api.tenant));
    let activity = |id: &str| tenant(&format!("/projects/{project}/activities/{id}"));
    let (status, webhook) = fleet
        .call(
            Method::POST,
            "/webhooks",
            Some(json!({ "url": "https://hooks.example.com/a11y", "events": ["agent.offline", "lead.created"] })),
        )
        .await;
    assert_eq!(status, 201, "{webhook}");
    let webhook_id = webhook["id"].as_str().unwrap().to_owned();
    let pages = [
        ("a11y-dashboard", tenant("")),
        ("a11y-projects", tenant("/projects")),
        ("a11y-project-new", tenant("/projects/new")),
        ("a11y-project", tenant(&format!("/projects/{project}"))),
        ("a11y-project-edit", tenant(&format!("/projects/{project}/edit"))),
        ("a11y-wizard-article", tenant(&format!("/projects/{project}/activities/new?kind=blog_article"))),
        ("a11y-wizard-posts", tenant(&format!("/projects/{project}/activities/new?kind=social_post_set"))),
        ("a11y-wizard-listing", tenant(&format!("/projects/{project}/activities/new?kind=listing_kit"))),
        ("a11y-article", activity(&article)),
        ("a11y-posts", activity(&posts)),
        ("a11y-listing-kit", activity(&kit)),
        ("a11y-documents", tenant(&format!("/projects/{project}/documents"))),
        ("a11y-fleet", tenant("/fleet")),
        ("a11y-fleet-add", tenant("/fleet/add")),
        ("a11y-agent", tenant(&format!("/fleet/{agent_id}"))),
        ("a11y-team", tenant("/team")),
        ("a11y-audit", tenant("/audit")),
        ("a11y-settings", tenant("/settings")),
        ("a11y-review-workflows", tenant("/settings/reviews")),
        ("a11y-webhooks", tenant("/settings/webhooks")),
        ("a11y-webhook", tenant(&format!("/settings/webhooks/{webhook_id}"))),
        ("a11y-notifications", tenant("/notifications")),
        ("a11y-notification-settings", tenant("/notifications/settings")),
        ("a11y-not-found", tenant(&format!("/projects/{}", uuid::Uuid::now_v7()))),
        ("a11y-external-review", review_link.clone()),
        ("a11y-external-review-invalid", fleet.server().url("/review/mkt_rv_unknown")),
    ];
    let mut scroll_boxes = std::collections::BTreeMap::new();
    for (name, url) in &pages {
        browser.goto(url).await;
        scroll_boxes.insert(*name, browser.check_page(name).await);
    }
    // The check is not vacuous: on a phone the wide tables (the audit log,
    // the fleet, the agent's jobs, the team) scroll in their own boxes.
    for page in ["a11y-audit", "a11y-fleet", "a11y-agent", "a11y-team"] {
        assert!(scroll_boxes[page].1 >= 1, "{page}: {scroll_boxes:?}");
    }

    // Pages that only a form's answer shows: the one-time enrollment
    // command, a new API key, a listing whose own text needs checking, and
    // the steps of a run opened.
    browser.goto(&tenant("/fleet/add")).await;
    browser.fill("#labels", "site=berlin").await;
    browser.click("form.stack button.primary").await;
    browser.find("#enroll-command").await;
    browser.check_page("a11y-fleet-enroll-command").await;

    browser.goto(&tenant("/settings")).await;
    browser.fill("#key-name", "Reporting").await;
    browser.click("form[action$='/api-keys'] button[type=submit]").await;
    browser.find("#new-key").await;
    browser.check_page("a11y-settings-new-key").await;

    browser.goto(&tenant(&format!("/projects/{project}/activities/new?kind=listing_kit"))).await;
    for (field, value) in [
        ("#address", "4 Oak Lane, Springfield"),
        ("#price", "390000"),
        ("#beds", "2"),
        ("#baths", "1"),
        ("#square_feet", "1100"),
        ("#description", "Perfect for young professionals, no kids"),
        ("#agent_name", "Dana Reyes"),
        ("#agent_contact", "dana@example.com"),
    ] {
        browser.fill(field, value).await;
    }
    browser
        .eval(r#"document.querySelectorAll('input[name="platforms[]"]').forEach(b => { b.checked = b.value === 'instagram'; })"#)
        .await;
    browser.click("form.stack button.primary").await;
    browser.find("#input-findings").await;
    browser.check_page("a11y-wizard-listing-findings").await;

    browser.goto(&activity(&article)).await;
    browser.click("#provenance summary").await;
    let (_, on_phone) = browser.check_page("a11y-article-steps").await;
    assert!(on_phone >= 1, "the steps table scrolls in its box on a phone");

    // The tabs between social posts: arrows, Home and End (ARIA tabs).
    browser.goto(&activity(&posts)).await;
    let selected = || async {
        browser
            .eval("document.querySelector('[role=tab][aria-selected=true]')?.textContent.trim() ?? ''")
            .await
    };
    let names = browser
        .eval("Array.from(document.querySelectorAll('[role=tab]')).map(t => t.textContent.trim())")
        .await;
    let names: Vec<&str> = names.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(names.len() >= 3, "a tab per platform: {names:?}");
    browser.eval("document.querySelector('[role=tab]').focus()").await;
    browser.press(fantoccini::key::Key::End.into()).await;
    assert_eq!(selected().await, names[names.len() - 1], "End selects the last tab");
    browser.press(fantoccini::key::Key::Home.into()).await;
    assert_eq!(selected().await, names[0], "Home selects the first tab");
    browser.press(fantoccini::key::Key::Right.into()).await;
    assert_eq!(selected().await, names[1], "ArrowRight selects the next tab");
    assert_eq!(
        browser.eval("document.activeElement.getAttribute('aria-selected')").await,
        "true",
        "focus follows the selected tab"
    );

    // Signed out: the sign-in page and an invitation.
    browser.click("form[action='/logout'] button").await;
    browser.find("#email").await;
    browser.check_page("a11y-sign-in").await;
    let token = invitation["token"].as_str().unwrap();
    browser.goto(&fleet.server().url(&format!("/invitations/accept?token={token}"))).await;
    browser.check_page("a11y-invitation").await;
    // The pages of links sent by e-mail (the token is only read on submit).
    for (name, path) in [
        ("a11y-forgot-password", "/forgot-password".to_owned()),
        ("a11y-reset-password", "/reset-password?token=mkt_ln_x".to_owned()),
        ("a11y-verify-email", "/verify-email?token=mkt_ln_x".to_owned()),
        ("a11y-unsubscribe", "/unsubscribe?token=mkt_ln_x".to_owned()),
    ] {
        browser.goto(&fleet.server().url(&path)).await;
        browser.check_page(name).await;
    }

    // A viewer: the read-only activity and a refusal.
    sign_in(&browser, &fleet, viewer, "a long enough password").await;
    browser.goto(&activity(&article)).await;
    browser.check_page("a11y-article-viewer").await;
    browser.goto(&tenant("/settings")).await;
    assert_eq!(browser.text(".status-code").await, "Error 403");
    browser.check_page("a11y-forbidden").await;
    browser.close().await;
}
