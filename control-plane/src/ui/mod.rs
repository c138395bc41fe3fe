//! The web UI: server-rendered pages (askama templates compiled into the
//! binary), a little JavaScript for live updates (`EventSource`, fetch), no
//! build step. Pages call the same services as the JSON API, with the same
//! permission checks; nothing here decides what a user may do.
//!
//! - `session.rs`: the session cookie, CSRF, and the extractors of signed-in
//!   pages (`Browser`, `TenantPage`) and their forms (`Submit`);
//! - `page.rs`: the page shell (navigation, tenant switcher), errors as
//!   pages, form errors next to their fields;
//! - `assets.rs`: CSS and JavaScript, embedded, served under content hashes;
//! - `auth.rs`: sign in, sign out, invitations;
//! - `account.rs`: account security (two-factor sign-in, password,
//!   sessions) and the second step of signing in;
//! - `home.rs`: the dashboard;
//! - `projects.rs`, `activities.rs`, `documents.rs`: marketers' pages;
//! - `fleet.rs`, `team.rs`, `audit.rs`, `settings.rs`: admins' pages;
//! - `view.rs`: formatting shared by the templates (times, sizes, badges).
//!
//! Every page answers with a strict Content-Security-Policy: scripts and
//! styles from this origin only, none inline.

mod ab_tests;
mod account;
mod activities;
mod analytics;
mod assets;
mod audit;
mod auth;
mod comments;
mod csv_import;
mod documents;
mod erasures;
mod exports;
mod flash;
mod fleet;
mod flyers;
mod home;
mod inbox;
mod leads;
mod notifications;
pub(crate) mod page;
mod projects;
mod properties;
mod publishing;
mod reviews;
mod sequences;
mod session;
mod settings;
mod sso;
mod team;
mod view;
mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::api::ApiState;

pub use session::{SESSION_COOKIE, session_token};

/// The UI's page for an unknown address.
pub fn not_found() -> axum::response::Response {
    axum::response::IntoResponse::into_response(page::UiError::NotFound)
}

/// A page's address for a form's address opened with GET (Back or reload
/// onto a form's answer, a bookmarked action): the page the form is on.
pub fn page_of_form(path: &str) -> Option<String> {
    if !path.starts_with("/t/") {
        return None;
    }
    let mut segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    segments.pop();
    // Actions on one member or campaign live on their list's page.
    if segments.len() >= 2 && matches!(segments[segments.len() - 2], "members" | "campaigns") {
        segments.truncate(segments.len() - 2);
    }
    (segments.len() >= 3).then(|| segments.join("/"))
}

#[derive(askama::Template)]
#[template(path = "forbidden.html")]
struct ForbiddenPage {
    shell: page::Shell,
    message: String,
}

/// A refusal (403) on an organisation's pages is shown inside its
/// navigation, so the person can go on from there; the page is rendered
/// only when there is a refusal.
async fn with_navigation(
    axum::extract::State(state): axum::extract::State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let mut kept = parts.clone();
    let response = next.run(axum::extract::Request::from_parts(parts, body)).await;
    let Some(page::Refusal(message)) = response.extensions().get::<page::Refusal>().cloned() else {
        return response;
    };
    match <session::TenantPage as axum::extract::FromRequestParts<ApiState>>::from_request_parts(
        &mut kept, &state,
    )
    .await
    {
        Ok(tenant_page) => {
            let mut page = page::render(&ForbiddenPage { shell: tenant_page.shell, message });
            *page.status_mut() = axum::http::StatusCode::FORBIDDEN;
            page
        }
        Err(_) => response,
    }
}

/// What pages may load and where forms may go.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; \
     base-uri 'self'; form-action 'self'";

/// The UI's routes. Forms post to the page they came from (or to an action
/// under it); every state-changing route checks the session's CSRF token.
pub fn router(state: &ApiState) -> Router<ApiState> {
    let tenant = Router::new()
        .route("/", get(home::dashboard))
        .route("/projects", get(projects::list))
        .route("/projects/new", get(projects::new_form).post(projects::create))
        .route("/projects/{project_id}", get(projects::show))
        .route("/projects/{project_id}/edit", get(projects::edit_form).post(projects::update))
        .route("/projects/{project_id}/campaigns", post(projects::create_campaign))
        .route("/projects/{project_id}/campaigns/{campaign_id}/delete", post(projects::delete_campaign))
        .route("/projects/{project_id}/activities/new", get(activities::new_form).post(activities::create))
        .route("/projects/{project_id}/activities/{activity_id}", get(activities::show))
        .route("/projects/{project_id}/activities/{activity_id}/content", post(activities::save_content))
        .route("/projects/{project_id}/activities/{activity_id}/approve", post(activities::approve))
        .route("/projects/{project_id}/activities/{activity_id}/review", post(activities::review))
        .route(
            "/projects/{project_id}/activities/{activity_id}/review/request",
            post(activities::request_review),
        )
        .route(
            "/projects/{project_id}/activities/{activity_id}/review/links",
            post(activities::create_review_link),
        )
        .route(
            "/projects/{project_id}/activities/{activity_id}/review/links/{link_id}/revoke",
            post(activities::revoke_review_link),
        )
        .route("/projects/{project_id}/activities/{activity_id}/regenerate", post(activities::regenerate))
        .route("/projects/{project_id}/activities/{activity_id}/cancel", post(activities::cancel))
        .route("/projects/{project_id}/documents", get(documents::list))
        .route(
            "/projects/{project_id}/documents/upload",
            // The upload counts its own bytes against the upload limit.
            post(documents::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/projects/{project_id}/documents/{document_id}/delete", post(documents::delete))
        .route("/properties", get(properties::list))
        .route("/properties/new", get(properties::new_form).post(properties::create))
        .route(
            "/properties/import",
            // The import counts its own bytes against its limit.
            get(properties::import_form).post(properties::import).layer(DefaultBodyLimit::disable()),
        )
        .route("/properties/{property_id}", get(properties::show))
        .route("/properties/{property_id}/edit", get(properties::edit_form).post(properties::update))
        .route("/properties/{property_id}/delete", post(properties::delete))
        .route(
            "/properties/{property_id}/photos",
            post(properties::upload_photo).layer(DefaultBodyLimit::disable()),
        )
        .route("/properties/{property_id}/photos/{photo_id}", post(properties::update_photo))
        .route("/properties/{property_id}/photos/{photo_id}/delete", post(properties::delete_photo))
        .route("/properties/{property_id}/listing-kit", post(properties::listing_kit))
        .route("/properties/{property_id}/publication", post(leads::publish))
        .route("/leads", get(leads::list))
        .route(
            "/leads/import",
            // The import counts its own bytes against its limit.
            get(leads::import_form).post(leads::import).layer(DefaultBodyLimit::disable()),
        )
        .route("/leads/settings", post(leads::save_settings))
        .route("/leads/scoring/fit", post(leads::fit_scoring))
        .route("/leads/scoring/reset", post(leads::reset_scoring))
        .route(
            "/leads/settings/logo",
            get(flyers::logo).post(flyers::upload_logo).layer(DefaultBodyLimit::disable()),
        )
        .route("/leads/settings/logo/delete", post(flyers::delete_logo))
        .route("/properties/{property_id}/flyer.pdf", get(flyers::property))
        .route("/projects/{project_id}/activities/{activity_id}/flyer.pdf", get(flyers::activity))
        .route("/leads/sequences", get(sequences::show).post(sequences::create))
        .route("/leads/sequences/{sequence_id}", post(sequences::update))
        .route("/leads/sequences/{sequence_id}/delete", post(sequences::delete))
        .route("/leads/{lead_id}", get(leads::show).post(leads::update))
        .route("/leads/{lead_id}/sequences", post(leads::start_sequence))
        .route("/leads/{lead_id}/sequences/{enrollment_id}/stop", post(leads::stop_sequence))
        .route("/leads/{lead_id}/drafts/{message_id}", post(leads::decide_draft))
        .route("/preview", post(activities::preview))
        .route("/fleet", get(fleet::list))
        .route("/fleet/rows", get(fleet::rows))
        .route("/fleet/add", get(fleet::add_form).post(fleet::add))
        .route("/fleet/{agent_id}", get(fleet::show).post(fleet::update))
        .route("/fleet/{agent_id}/revoke", post(fleet::revoke))
        .route("/team", get(team::list))
        .route("/team/invitations", post(team::invite))
        .route("/team/invitations/{invitation_id}/revoke", post(team::revoke_invitation))
        .route("/team/members/{user_id}/role", post(team::change_role))
        .route("/team/members/{user_id}/remove", post(team::remove))
        .route("/audit", get(audit::list))
        .route("/audit/export", get(audit::export))
        .route("/settings", get(settings::show))
        .route("/settings/api-keys", post(settings::create_api_key))
        .route("/settings/sign-in", post(settings::set_sign_in))
        .route("/settings/sso", get(sso::settings).post(sso::save))
        .route("/settings/sso/delete", post(sso::delete))
        .route("/settings/erase", post(erasures::erase))
        .route("/settings/exports", post(exports::create))
        .route("/settings/exports/{export_id}/download", post(exports::download))
        .route("/settings/retention", post(settings::set_retention))
        .route("/settings/data-subjects/export", post(settings::export_subject))
        .route("/settings/data-subjects/erase", post(settings::erase_subject))
        .route("/settings/api-keys/{api_key_id}/revoke", post(settings::revoke_api_key))
        .route("/settings/cloud-provider", post(settings::set_cloud_provider))
        .route("/settings/cloud-provider/delete", post(settings::delete_cloud_provider))
        .route("/settings/model-prices", post(settings::set_model_price))
        .route("/settings/model-prices/delete", post(settings::delete_model_price))
        .route("/settings/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/settings/webhooks/{webhook_id}", get(webhooks::show).post(webhooks::update))
        .route("/settings/webhooks/{webhook_id}/test", post(webhooks::test))
        .route("/settings/webhooks/{webhook_id}/rotate-secret", post(webhooks::rotate))
        .route("/settings/webhooks/{webhook_id}/delete", post(webhooks::delete))
        .route(
            "/settings/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/settings/accounts", get(publishing::accounts))
        .route("/settings/accounts/connect", get(publishing::connect))
        .route("/settings/accounts/bluesky", post(publishing::connect_bluesky))
        .route("/settings/accounts/{account_id}", post(publishing::update_account))
        .route("/settings/accounts/{account_id}/disconnect", post(publishing::disconnect_account))
        .route("/calendar", get(publishing::calendar))
        .route("/analytics", get(analytics::page))
        .route("/analytics/ab-tests", get(ab_tests::page).post(ab_tests::create))
        .route("/inbox", get(inbox::page))
        .route("/inbox/{item_id}", post(inbox::act))
        .route("/inbox/{item_id}/lead", post(inbox::create_lead))
        .route("/inbox/{item_id}/reply", post(inbox::reply))
        .route("/inbox/{item_id}/reply-draft", post(inbox::redraft))
        .route("/inbox/settings", post(inbox::save_settings))
        .route("/inbox/listening", post(inbox::listen))
        .route("/inbox/listening/{query_id}/delete", post(inbox::stop_listening))
        .route("/analytics/posts.csv", get(analytics::posts_csv))
        .route("/analytics/report.pdf", get(analytics::report_pdf))
        .route("/time-zone", post(publishing::set_zone))
        .route("/posts/new", get(publishing::new_post).post(publishing::create_posts))
        .route("/posts/{post_id}", get(publishing::show_post))
        .route("/posts/{post_id}/reschedule", post(publishing::reschedule_post))
        .route("/posts/{post_id}/edit", post(publishing::edit_post))
        .route("/posts/{post_id}/cancel", post(publishing::cancel_post))
        .route("/posts/{post_id}/retry", post(publishing::retry_post))
        .route("/posts/{post_id}/delete", post(publishing::delete_post))
        .route("/posts/{post_id}/review", post(publishing::review_post))
        .route("/posts/{post_id}/approve", post(publishing::review_post))
        .route("/posts/{post_id}/review/request", post(publishing::request_post_review))
        .route("/notifications", get(notifications::list))
        .route("/notifications/read", post(notifications::read_all))
        .route("/notifications/{notification_id}/open", post(notifications::open))
        .route("/notifications/settings", get(notifications::settings).post(notifications::save_settings))
        .route("/notifications/verify", post(notifications::send_verification))
        .route("/settings/mail/{message_id}/resend", post(settings::resend_mail))
        .route("/settings/reviews", get(reviews::show).post(reviews::create))
        .route("/settings/reviews/projects", post(reviews::set_project))
        .route("/settings/reviews/{workflow_id}/delete", post(reviews::delete))
        .route("/comments", post(comments::create))
        .route("/comments/{comment_id}/edit", post(comments::edit))
        .route("/comments/{comment_id}/delete", post(comments::delete))
        .route("/comments/{comment_id}/resolve", post(comments::resolve))
        .route("/comments/{comment_id}/item", get(comments::item))
        .layer(axum::middleware::from_fn_with_state(state.clone(), with_navigation));
    Router::new()
        .route("/", get(auth::root))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/login/two-factor", get(account::code_form).post(account::code))
        .route("/login/sso", get(sso::form).post(sso::submit))
        .route("/sso/callback", get(sso::callback))
        .route("/sso/{slug}", get(sso::begin))
        .route("/account", get(account::page))
        .route("/account/two-factor", post(account::begin))
        .route("/account/two-factor/confirm", post(account::confirm))
        .route("/account/two-factor/disable", post(account::disable))
        .route("/account/two-factor/recovery-codes", post(account::regenerate))
        .route("/account/password", post(account::change_password))
        .route("/account/export", post(account::export))
        .route("/account/erase", post(account::erase))
        .route("/account/erasures/{erasure_id}", get(erasures::show))
        .route("/account/sessions/{session_id}/revoke", post(account::revoke_session))
        .route("/invitations/accept", get(auth::invitation_form).post(auth::accept_invitation))
        .route("/invitations/join", post(notifications::join))
        .route("/forgot-password", get(notifications::forgot_form_page).post(notifications::forgot))
        .route("/reset-password", get(notifications::reset_form_page).post(notifications::reset))
        .route("/verify-email", get(notifications::verify_page).post(notifications::verify))
        .route("/unsubscribe", get(notifications::unsubscribe_page).post(notifications::unsubscribe))
        .route("/review/{token}", get(reviews::external_show).post(reviews::external_decide))
        .route("/review/{token}/comment", post(reviews::external_comment))
        .route("/assets/{file}", get(assets::serve))
        .route("/l/{slug}", get(leads::public_listing).post(leads::public_submit))
        .route("/unsubscribe/{token}", get(leads::unsubscribe).post(leads::unsubscribe))
        .route("/l/{slug}/photos/{photo_id}", get(leads::public_photo))
        // An organisation's address with a trailing slash is its dashboard.
        .route(
            "/t/{tenant_id}/",
            get(|axum::extract::Path(tenant): axum::extract::Path<uuid::Uuid>| async move {
                axum::response::Redirect::permanent(&format!("/t/{tenant}"))
            }),
        )
        .nest("/t/{tenant_id}", tenant)
        // A page may set its own (the single sign-on form, whose answer
        // redirects to the organisation's provider).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}
