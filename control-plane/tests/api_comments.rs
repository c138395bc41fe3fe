//! Comment threads over HTTP, on both backends: threads and replies,
//! anchors, mentions that notify members (and only members), who may edit,
//! delete and resolve, safe rendering, and tenant isolation.

mod common;

use common::{Backend, TestServer};
use marketer_control_plane::api::ApiConfig;
use reqwest::Method;
use serde_json::{Value, json};

async fn notifications(server: &TestServer, token: &str) -> Vec<Value> {
    let (status, page) = server.get("/api/v1/me/notifications", token).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn comments_are_threads_with_mentions(backend: Backend) {
    let Some(server) = TestServer::start_with(backend, ApiConfig::default()).await else { return };
    let (owner, tenant) = server.owner().await;
    let (member, member_id) = server.add_user(&owner, &tenant, "member@example.com", "member").await;
    let (viewer, _) = server.add_user(&owner, &tenant, "viewer@example.com", "viewer").await;
    let t = |rest: &str| format!("/api/v1/tenants/{tenant}{rest}");
    let (_, project) = server.post(&t("/projects"), &owner, json!({ "name": "Launch" })).await;
    let project = project["id"].as_str().unwrap().to_owned();
    let (status, activity) = server
        .post(
            &t(&format!("/projects/{project}/activities")),
            &owner,
            json!({ "kind": "blog_article", "topic": "Heat pumps", "wait_for_agent": true }),
        )
        .await;
    assert_eq!(status, 202, "{activity}");
    let activity = activity["id"].as_str().unwrap().to_owned();

    // A thread, with a mention of a member: they hear of it (without the
    // comment's text), the author does not hear of their own.
    let (status, first) = server
        .post(
            &t("/comments"),
            &owner,
            json!({ "activity_id": activity, "body": "Can @Member@Example.com check the **intro**? <script>alert(1)</script>" }),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    let first_id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(first["mentions"][0]["user_id"], member_id.as_str(), "{first}");
    assert!(first["html"].as_str().unwrap().contains("<strong>intro</strong>"), "{first}");
    assert!(!first["html"].as_str().unwrap().contains("<script>"), "{first}");
    assert_eq!(first["can_edit"], true);
    let heard = notifications(&server, &member).await;
    let mention = heard.iter().find(|n| n["kind"] == "mention").expect("a mention notification");
    assert!(mention["title"].as_str().unwrap().contains("Heat pumps"), "{mention}");
    assert!(!mention["body"].as_str().unwrap().contains("intro"), "no comment text: {mention}");
    assert!(mention["link"].as_str().unwrap().ends_with(&format!("#comment-{first_id}")), "{mention}");
    assert!(notifications(&server, &owner).await.iter().all(|n| n["kind"] != "mention"));

    // Someone who is no member cannot be mentioned; the address is named.
    let (status, body) = server
        .post(&t("/comments"), &owner, json!({ "activity_id": activity, "body": "cc @stranger@example.com" }))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["field"], "body", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("stranger@example.com"), "{body}");

    // A viewer replies (to the reply: it joins the same thread).
    let (status, reply) = server
        .post(
            &t("/comments"),
            &viewer,
            json!({ "activity_id": activity, "thread_id": first_id, "body": "Looks fine" }),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    let reply_id = reply["id"].as_str().unwrap().to_owned();
    let (status, nested) = server
        .post(
            &t("/comments"),
            &member,
            json!({ "activity_id": activity, "thread_id": reply_id, "body": "Agreed" }),
        )
        .await;
    assert_eq!(status, 201, "{nested}");
    assert_eq!(nested["thread_id"], first_id.as_str());

    // An anchor needs content to quote: this activity has none yet.
    let (status, body) = server
        .post(
            &t("/comments"),
            &owner,
            json!({ "activity_id": activity, "body": "This line", "anchor": { "version": 0, "quote": "Heat" } }),
        )
        .await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("anchor.version")), "{body}");

    // Bad input names the field.
    for (input, field) in [
        (json!({ "activity_id": activity, "body": "  " }), "body"),
        (json!({ "activity_id": activity, "body": "x".repeat(10_001) }), "body"),
        (json!({ "body": "where?" }), "activity_id"),
        (json!({ "activity_id": activity, "post_id": activity, "body": "both" }), "post_id"),
    ] {
        let (status, body) = server.post(&t("/comments"), &owner, input).await;
        assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some(field)), "{body}");
    }

    // Only the author edits; the author or an admin deletes.
    let (status, _) =
        server.patch(&t(&format!("/comments/{reply_id}")), &member, json!({ "body": "mine now" })).await;
    assert_eq!(status, 403);
    let (status, edited) = server
        .patch(
            &t(&format!("/comments/{reply_id}")),
            &viewer,
            json!({ "body": "Looks fine to @member@example.com" }),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert!(edited["edited_at"].is_string());
    let (status, _) = server.delete(&t(&format!("/comments/{reply_id}")), &member).await;
    assert_eq!(status, 403);
    let (status, deleted) = server.delete(&t(&format!("/comments/{reply_id}")), &owner).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!((deleted["deleted"].as_bool(), deleted["body"].as_str()), (Some(true), Some("")));
    let (status, _) =
        server.patch(&t(&format!("/comments/{reply_id}")), &viewer, json!({ "body": "back" })).await;
    assert_eq!(status, 404, "a deleted comment is not edited");

    // Resolving: a reply is no thread; a viewer who did not start it may
    // not; a member may, and reopen it.
    let (status, body) =
        server.post(&t(&format!("/comments/{reply_id}/resolve")), &owner, json!({ "resolved": true })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("not_a_thread")), "{body}");
    let (status, _) =
        server.post(&t(&format!("/comments/{first_id}/resolve")), &viewer, json!({ "resolved": true })).await;
    assert_eq!(status, 403);
    let (status, resolved) =
        server.post(&t(&format!("/comments/{first_id}/resolve")), &member, json!({ "resolved": true })).await;
    assert_eq!(status, 200, "{resolved}");
    assert!(resolved["resolved_at"].is_string());

    // The list: oldest first, the deleted reply in its place.
    let (status, list) = server.get(&t(&format!("/comments?activity_id={activity}")), &viewer).await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[1]["deleted"], true);
    assert_eq!(list[0]["can_edit"], false, "the viewer's view of the owner's comment");

    // Audited (the refusals too), without the text.
    let (_, audit) = server.get(&t("/audit-events?action=comment.create"), &owner).await;
    let entries = audit["items"].as_array().unwrap();
    assert_eq!(entries.iter().filter(|e| e["outcome"] == "success").count(), 3, "{audit}");
    assert!(!audit.to_string().contains("intro"), "{audit}");

    // Another organisation's people see nothing of it: 404.
    let (_, other) = server.post("/api/v1/tenants", &owner, json!({ "name": "Other" })).await;
    let other = other["id"].as_str().unwrap().to_owned();
    let (outsider, _) = server.add_user(&owner, &other, "outsider@example.com", "admin").await;
    let o = |rest: &str| format!("/api/v1/tenants/{other}{rest}");
    let (status, _) = server.get(&o(&format!("/comments?activity_id={activity}")), &outsider).await;
    assert_eq!(status, 404);
    let (status, _) =
        server.patch(&o(&format!("/comments/{first_id}")), &outsider, json!({ "body": "x" })).await;
    assert_eq!(status, 404);
    let (status, _) =
        server.post(&o("/comments"), &outsider, json!({ "activity_id": activity, "body": "hello" })).await;
    assert_eq!(status, 404);
    let (status, _) = server
        .call(Method::GET, &t(&format!("/comments?activity_id={activity}")), Some(&outsider), None)
        .await;
    assert_eq!(status, 404, "not a member of the first organisation: it does not exist for them");
    server.stop();
}

#[tokio::test]
async fn comments_are_threads_with_mentions_on_sqlite() {
    comments_are_threads_with_mentions(Backend::Sqlite).await;
}

#[tokio::test]
async fn comments_are_threads_with_mentions_on_postgres() {
    comments_are_threads_with_mentions(Backend::Postgres).await;
}

#[tokio::test]
async fn an_api_key_reads_comments_but_does_not_write_them() {
    let server = TestServer::start().await;
    let (owner, tenant) = server.owner().await;
    let t = |rest: &str| format!("/api/v1/tenants/{tenant}{rest}");
    let (_, project) = server.post(&t("/projects"), &owner, json!({ "name": "P" })).await;
    let project = project["id"].as_str().unwrap().to_owned();
    let (_, activity) = server
        .post(
            &t(&format!("/projects/{project}/activities")),
            &owner,
            json!({ "kind": "blog_article", "topic": "Solar", "wait_for_agent": true }),
        )
        .await;
    let activity = activity["id"].as_str().unwrap().to_owned();
    let (_, key) = server.post(&t("/api-keys"), &owner, json!({ "name": "bot", "role": "admin" })).await;
    let key = key["key"].as_str().unwrap().to_owned();
    let (status, _) = server.get(&t(&format!("/comments?activity_id={activity}")), &key).await;
    assert_eq!(status, 200);
    let (status, _) =
        server.post(&t("/comments"), &key, json!({ "activity_id": activity, "body": "beep" })).await;
    assert_eq!(status, 403);
    server.stop();
}
