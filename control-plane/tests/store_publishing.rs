//! The publishing store's conformance suite, on SQLite and (when
//! `MARKETER_TEST_DATABASE_URL` is set) PostgreSQL: accounts and their
//! sealed tokens (a refresh without a refresh token keeps the stored one),
//! the refresh lock, posts claimed by one replica at a time, outcomes
//! recorded only by the lease holder, a platform's limit on the whole app,
//! unapproved posts held at their time instead of published, Mastodon
//! apps registered again only for other scopes, and tenant isolation.

mod common;

use common::TestDb;
use common::fixtures::*;
use marketer_control_plane::cloud::crypto::Sealed;
use marketer_control_plane::domain::{Timestamp, new_id};
use marketer_control_plane::store::{
    AccountStatus, MastodonApp, Network, NewAccount, NewPost, PostFilter, PostPatch, PostStatus,
    PublishResult, SealedTokens, StoreError, TokenRefresh,
};
use uuid::Uuid;

on_both_backends!(
    accounts_keep_their_refresh_token_when_a_refresh_brings_none,
    one_refresh_at_a_time_and_only_for_the_tokens_it_saw,
    a_due_post_is_claimed_once_and_finished_only_by_its_holder,
    an_expired_lease_of_a_sent_request_makes_the_post_unconfirmed,
    another_tenants_accounts_and_posts_are_not_found,
    a_platforms_app_limit_holds_its_posts_until_it_ends,
    a_post_not_approved_at_its_time_is_held_never_published,
    a_mastodon_app_is_replaced_only_by_one_with_other_scopes,
);

fn sealed(byte: u8) -> Sealed {
    Sealed { ciphertext: vec![byte; 8], nonce: vec![byte; 12] }
}

fn later(seconds: i64) -> Timestamp {
    Timestamp::from_datetime(Timestamp::now().as_datetime() + time::Duration::seconds(seconds))
}

fn account(tenant_id: Uuid, refresh: Option<u8>) -> NewAccount {
    NewAccount {
        id: new_id(),
        tenant_id,
        network: Network::X,
        external_id: "2244994945".into(),
        instance_url: None,
        handle: "@marketer".into(),
        display_name: "Marketer".into(),
        profile_url: None,
        project_ids: None,
        tokens: SealedTokens {
            access: sealed(1),
            refresh: refresh.map(sealed),
            expires_at: Some(later(3600)),
        },
        posting_time_zone: "Europe/Berlin".into(),
        created_by: None,
    }
}

fn post(tenant_id: Uuid, account_id: Uuid, at: Timestamp) -> NewPost {
    NewPost {
        id: new_id(),
        tenant_id,
        account_id,
        project_id: None,
        campaign_id: None,
        activity_id: None,
        activity_version: None,
        text: format!("post {}", new_id()),
        image_url: None,
        status: PostStatus::Scheduled,
        scheduled_at: Some(at),
        time_zone: "Europe/Berlin".into(),
        approved_by: Some(new_id()),
        idempotency_key: None,
        created_by: None,
        edited: false,
        reply_to: None,
    }
}

async fn accounts_keep_their_refresh_token_when_a_refresh_brings_none(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant) = owner_and_tenant(store, "tokens").await;
    let stored = store
        .connect_account(&account(tenant, Some(2)), &audit("social_account.connect", Some(tenant)))
        .await
        .unwrap();
    assert!(stored.has_refresh_token);
    assert_eq!(stored.status, AccountStatus::Connected);
    assert!(
        store.lock_refresh(stored.id, stored.token_version, "a", later(30), Timestamp::now()).await.unwrap()
    );
    let refreshed = SealedTokens { access: sealed(3), refresh: None, expires_at: Some(later(7200)) };
    store
        .finish_refresh(stored.id, "a", &TokenRefresh::Refreshed(refreshed), Timestamp::now(), None)
        .await
        .unwrap();
    let (after, tokens) = store.account_tokens(stored.id).await.unwrap().unwrap();
    assert_eq!(tokens.access, sealed(3));
    assert_eq!(tokens.refresh, Some(sealed(2)), "the old refresh token is kept");
    assert_eq!(after.token_version, stored.token_version + 1);

    // Reconnecting the same account updates it instead of adding another.
    let again = store
        .connect_account(&account(tenant, None), &audit("social_account.connect", Some(tenant)))
        .await
        .unwrap();
    assert_eq!(again.id, stored.id);
    assert_eq!(store.accounts(tenant).await.unwrap().len(), 1);
    let (_, tokens) = store.account_tokens(stored.id).await.unwrap().unwrap();
    assert_eq!(tokens.refresh, Some(sealed(2)), "a reconnect without a refresh token keeps it too");
}

async fn one_refresh_at_a_time_and_only_for_the_tokens_it_saw(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant) = owner_and_tenant(store, "locks").await;
    let a = store
        .connect_account(&account(tenant, Some(2)), &audit("social_account.connect", Some(tenant)))
        .await
        .unwrap();
    let now = Timestamp::now();
    assert!(store.lock_refresh(a.id, a.token_version, "one", later(30), now).await.unwrap());
    assert!(!store.lock_refresh(a.id, a.token_version, "two", later(30), now).await.unwrap(), "held by one");
    // A passing failure releases the lock; the stale version cannot take it after a refresh.
    let retry = TokenRefresh::Retry { retry_at: later(5), reason: "503".into() };
    store.finish_refresh(a.id, "two", &retry, now, None).await.unwrap();
    assert!(
        !store.lock_refresh(a.id, a.token_version, "two", later(30), now).await.unwrap(),
        "only the holder finishes"
    );
    let fresh = SealedTokens { access: sealed(4), refresh: Some(sealed(5)), expires_at: None };
    store.finish_refresh(a.id, "one", &TokenRefresh::Refreshed(fresh), now, None).await.unwrap();
    assert!(
        !store.lock_refresh(a.id, a.token_version, "two", later(30), now).await.unwrap(),
        "tokens changed since"
    );
    // A refusal needs a person.
    assert!(store.lock_refresh(a.id, a.token_version + 1, "two", later(30), now).await.unwrap());
    let refused = TokenRefresh::Refused { reason: "invalid_grant".into() };
    store
        .finish_refresh(
            a.id,
            "two",
            &refused,
            now,
            Some(&audit("social_account.needs_reconnect", Some(tenant))),
        )
        .await
        .unwrap();
    let after = store.account(tenant, a.id).await.unwrap().unwrap();
    assert_eq!(after.status, AccountStatus::NeedsReconnect);
    assert_eq!(after.status_reason.as_deref(), Some("invalid_grant"));
}

async fn a_due_post_is_claimed_once_and_finished_only_by_its_holder(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant) = owner_and_tenant(store, "claims").await;
    let a = store
        .connect_account(&account(tenant, None), &audit("social_account.connect", Some(tenant)))
        .await
        .unwrap();
    let due = post(tenant, a.id, Timestamp::now());
    let future = post(tenant, a.id, later(3600));
    for p in [&due, &future] {
        store.create_post(p, &audit("post.create", Some(tenant))).await.unwrap();
    }
    let now = later(1);
    assert_eq!(store.due_posts(now, 10).await.unwrap(), vec![due.id]);
    let claimed = store.claim_post(due.id, "one", later(60), now).await.unwrap().expect("claimed");
    assert_eq!((claimed.status, claimed.attempts), (PostStatus::Publishing, 1));
    assert!(store.claim_post(due.id, "two", later(60), now).await.unwrap().is_none(), "claimed once");
    assert!(store.claim_post(future.id, "two", later(60), now).await.unwrap().is_none(), "not due");
    // Editing stops once it is publishing.
    let edit = PostPatch { text: Some("changed".into()), ..PostPatch::default() };
    let refused =
        store.update_post(tenant, due.id, &edit, &audit("post.update", Some(tenant))).await.unwrap_err();
    assert!(matches!(refused, StoreError::Conflict { code: "post_not_editable", .. }), "{refused:?}");
    let published = PublishResult::Published { platform_post_id: "42".into(), url: None };
    assert!(
        !store
            .finish_post(due.id, "two", &published, now, &audit("post.published", Some(tenant)))
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_post(due.id, "one", &published, now, &audit("post.published", Some(tenant)))
            .await
            .unwrap()
    );
    let done = store.post(tenant, due.id).await.unwrap().unwrap();
    assert_eq!((done.status, done.platform_post_id.as_deref()), (PostStatus::Published, Some("42")));
    assert!(store.due_posts(later(2), 10).await.unwrap().is_empty());
}

async fn an_expired_lease_of_a_sent_request_makes_the_post_unconfirmed(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant) = owner_and_tenant(store, "leases").await;
    let a = store
        .connect_account(&account(tenant, None), &audit("social_account.connect", Some(tenant)))
        .await
        .unwrap();
    let sent = post(tenant, a.id, Timestamp::now());
    let unsent = post(tenant, a.id, Timestamp::now());
    for p in [&sent, &unsent] {
        store.create_post(p, &audit("post.create", Some(tenant))).await.unwrap();
    }
    let now = later(1);
    for p in [&sent, &unsent] {
        store.claim_post(p.id, "dead", later(2), now).await.unwrap().expect("claimed");
    }
    assert!(store.mark_sending(sent.id, "dead", now).await.unwrap());
    // The replica died; another takes over after the lease.
    let after = later(5);
    let mut expired = store.expired_publishing(after, 10).await.unwrap();
    expired.sort();
    let mut both = vec![sent.id, unsent.id];
    both.sort();
    assert_eq!(expired, both);
    let taken = store.claim_post(sent.id, "next", later(60), after).await.unwrap().unwrap();
    assert_eq!(taken.status, PostStatus::Unconfirmed, "its request may have been sent");
    let restarted = store.claim_post(unsent.id, "next", later(60), after).await.unwrap().unwrap();
    assert_eq!(
        (restarted.status, restarted.attempts),
        (PostStatus::Publishing, 1),
        "never sent: starts over"
    );
    // A media container is recorded by the holder only, and outlives a retry.
    assert!(!store.set_post_container(sent.id, "dead", Some("c1")).await.unwrap(), "not the holder");
    assert!(store.set_post_container(sent.id, "next", Some("c1")).await.unwrap());
    // Proven absent: scheduled again under a new generation.
    let absent = PublishResult::Wait { until: after, reason: "absent".into(), new_generation: true };
    store
        .finish_post(sent.id, "next", &absent, after, &audit("post.unconfirmed", Some(tenant)))
        .await
        .unwrap();
    let again = store.post(tenant, sent.id).await.unwrap().unwrap();
    assert_eq!((again.status, again.generation, again.unconfirmed_since), (PostStatus::Scheduled, 2, None));
    assert_eq!(again.platform_container_id.as_deref(), Some("c1"));
    // An edit makes the container stale: it is dropped.
    let edit = PostPatch { text: Some("changed".into()), ..PostPatch::default() };
    let edited =
        store.update_post(tenant, sent.id, &edit, &audit("post.update", Some(tenant))).await.unwrap();
    assert_eq!(edited.platform_container_id, None);
}

async fn a_platforms_app_limit_holds_its_posts_until_it_ends(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant) = owner_and_tenant(store, "app-limits").await;
    let a = store
        .connect_account(&account(tenant, None), &audit("social_account.connect", Some(tenant)))
        .await
        .unwrap();
    let due = post(tenant, a.id, Timestamp::now());
    store.create_post(&due, &audit("post.create", Some(tenant))).await.unwrap();
    let now = later(1);
    store.platform_limited(Network::X, later(60), "X: spent", now).await.unwrap();
    // An earlier end never shortens a limit.
    store.platform_limited(Network::X, later(30), "X: shorter", now).await.unwrap();
    let limits = store.platform_limits(now).await.unwrap();
    assert_eq!(limits.len(), 1);
    assert_eq!((limits[0].network, limits[0].note.as_str()), (Network::X, "X: spent"));
    assert!(store.due_posts(now, 10).await.unwrap().is_empty(), "held by the app's limit");
    // Another platform's limit holds nothing here; once it ends the post is due.
    store.platform_limited(Network::Mastodon, later(600), "elsewhere", now).await.unwrap();
    assert_eq!(store.due_posts(later(61), 10).await.unwrap(), vec![due.id]);
    assert_eq!(store.platform_limits(later(61)).await.unwrap().len(), 1, "only Mastodon's is still on");
}

async fn another_tenants_accounts_and_posts_are_not_found(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant) = owner_and_tenant(store, "mine").await;
    let (_, other) = owner_and_tenant(store, "theirs").await;
    let a = store
        .connect_account(&account(tenant, None), &audit("social_account.connect", Some(tenant)))
        .await
        .unwrap();
    let p = post(tenant, a.id, later(60));
    store.create_post(&p, &audit("post.create", Some(tenant))).await.unwrap();
    assert!(store.account(other, a.id).await.unwrap().is_none());
    assert!(store.post(other, p.id).await.unwrap().is_none());
    assert!(store.posts(other, &PostFilter { limit: 10, ..PostFilter::default() }).await.unwrap().is_empty());
    let foreign = post(other, a.id, later(60));
    let refused = store.create_post(&foreign, &audit("post.create", Some(other))).await.unwrap_err();
    assert!(matches!(refused, StoreError::Invalid { field: "account_id", .. }), "{refused:?}");
    assert!(matches!(
        store.disconnect_account(other, a.id, &audit("social_account.disconnect", Some(other))).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_post(other, p.id, &audit("post.delete", Some(other))).await,
        Err(StoreError::NotFound)
    ));
}

async fn a_post_not_approved_at_its_time_is_held_never_published(db: &TestDb) {
    let store = db.store.as_ref();
    let (_, tenant) = owner_and_tenant(store, "holds").await;
    let a = store
        .connect_account(&account(tenant, None), &audit("social_account.connect", Some(tenant)))
        .await
        .unwrap();
    let unapproved = NewPost { approved_by: None, ..post(tenant, a.id, Timestamp::now()) };
    let approved = post(tenant, a.id, Timestamp::now());
    for p in [&unapproved, &approved] {
        store.create_post(p, &audit("post.create", Some(tenant))).await.unwrap();
    }
    // An approved post's edit takes its approval away.
    let edit = PostPatch { text: Some("changed after approval".into()), ..PostPatch::default() };
    let edited =
        store.update_post(tenant, approved.id, &edit, &audit("post.update", Some(tenant))).await.unwrap();
    assert!(edited.approved_by.is_none() && edited.edited_at.is_some(), "{edited:?}");

    let now = later(1);
    assert!(store.due_posts(now, 10).await.unwrap().is_empty(), "nothing unapproved is due to publish");
    assert!(store.claim_post(unapproved.id, "one", later(60), now).await.unwrap().is_none());
    let held: Vec<Uuid> = store.due_unapproved(now, 10).await.unwrap().iter().map(|p| p.id).collect();
    assert_eq!(held.len(), 2);
    assert!(store.hold_post(unapproved.id, "late", &audit("post.hold", Some(tenant))).await.unwrap());
    assert!(
        !store.hold_post(unapproved.id, "late", &audit("post.hold", Some(tenant))).await.unwrap(),
        "once"
    );
    let after = store.post(tenant, unapproved.id).await.unwrap().unwrap();
    assert_eq!((after.status, after.wait_reason.as_deref()), (PostStatus::NeedsReschedule, Some("late")));

    // Approved again before it is held, the edited post is published.
    let approve = PostPatch { approved_by: Some(new_id()), ..PostPatch::default() };
    store.update_post(tenant, approved.id, &approve, &audit("post.update", Some(tenant))).await.unwrap();
    assert_eq!(store.due_posts(now, 10).await.unwrap(), vec![approved.id]);
    assert!(!store.hold_post(approved.id, "late", &audit("post.hold", Some(tenant))).await.unwrap());
    let claimed = store.claim_post(approved.id, "one", later(60), now).await.unwrap().expect("claimed");
    assert_eq!(claimed.status, PostStatus::Publishing);

    // A held post is rescheduled by a person, and held again if still not approved.
    let again = PostPatch {
        status: Some(PostStatus::Scheduled),
        scheduled_at: Some(Some(Timestamp::now())),
        ..PostPatch::default()
    };
    store.update_post(tenant, unapproved.id, &again, &audit("post.update", Some(tenant))).await.unwrap();
    assert!(store.hold_post(unapproved.id, "late", &audit("post.hold", Some(tenant))).await.unwrap());
}

async fn a_mastodon_app_is_replaced_only_by_one_with_other_scopes(db: &TestDb) {
    let store = db.store.as_ref();
    let app = |client: &str, scopes: &str| MastodonApp {
        instance_url: "https://social.example".into(),
        client_id: client.into(),
        secret: sealed(1),
        redirect_uri: "https://marketer.example/oauth/mastodon".into(),
        scopes: scopes.into(),
    };
    let now = Timestamp::now();
    let first = store.save_mastodon_app(&app("old", "read write:statuses"), now).await.unwrap();
    assert_eq!(first.client_id, "old");
    // Registered again for more scopes: the new app replaces it.
    let second = store.save_mastodon_app(&app("new", "read read:search write:statuses"), now).await.unwrap();
    assert_eq!(
        (second.client_id.as_str(), second.scopes.as_str()),
        ("new", "read read:search write:statuses")
    );
    // Another replica registered at the same time with the same scopes:
    // the first one stored stays, and both use it.
    let raced = store.save_mastodon_app(&app("racer", "read read:search write:statuses"), now).await.unwrap();
    assert_eq!(raced.client_id, "new");
    assert_eq!(store.mastodon_app("https://social.example").await.unwrap().unwrap().client_id, "new");
}
