//! The JSON API under `/api/v1`, plus `/healthz`, `/readyz` and `/metrics`.
//!
//! [`router`] builds the whole HTTP surface from an [`App`]; tests drive it
//! in-process or over a real socket. Routes are registered through
//! `utoipa-axum`, so the OpenAPI document is generated from the very same
//! handler annotations that define the routes and cannot drift from them.

pub mod audit;
pub mod auth;
pub mod error;
pub mod extract;
pub mod observe;
pub mod pagination;
pub mod rate_limit;
pub mod routes;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Error;
use crate::service::{App, actions};

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Largest document upload (the file; the multipart body may be a
    /// little larger).
    pub max_upload_bytes: usize,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted
    /// reverse proxy that sets it).
    pub trust_proxy_headers: bool,
    /// Timeouts and the per-address connection cap of the listener.
    pub connections: crate::listener::ConnectionLimits,
    /// The bearer token `/metrics` asks for; without one, it answers
    /// loopback clients only.
    pub metrics_token: Option<secrecy::SecretString>,
    /// The token the operator's mail system sends with bounce messages
    /// (`--bounce-token-file`); without it the bounce intake is off.
    pub bounce_token: Option<secrecy::SecretString>,
    /// Requests per minute per caller and organisation, by plan
    /// (`rate_limit.rs`); off unless set (the server sets its defaults).
    pub rate_limits: rate_limit::RateLimits,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: crate::service::DEFAULT_MAX_UPLOAD_BYTES,
            trust_proxy_headers: false,
            connections: crate::listener::ConnectionLimits::default(),
            metrics_token: None,
            bounce_token: None,
            rate_limits: rate_limit::RateLimits::OFF,
        }
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub app: Arc<App>,
    pub config: Arc<ApiConfig>,
    pub operations: Arc<Operations>,
    /// Counts API requests against their caller's limit.
    pub limiter: Arc<rate_limit::RateLimiter>,
    openapi: Arc<String>,
}

/// The audited action of each mutating route, from its `operationId`.
#[derive(Debug, Default)]
pub struct Operations(HashMap<(Method, String), &'static str>);

impl Operations {
    fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let mut map = HashMap::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, op) in ops {
                let action = op
                    .as_ref()
                    .and_then(|op| op.operation_id.as_deref())
                    .and_then(|id| actions::ALL.iter().copied().find(|a| *a == id));
                if let Some(action) = action {
                    map.insert((method, path.clone()), action);
                }
            }
        }
        Self(map)
    }

    pub fn action(&self, method: &Method, route: &str) -> Option<&'static str> {
        self.0.get(&(method.clone(), route.to_owned())).copied()
    }

    /// Every (method, route) that has an audited action.
    pub fn routes(&self) -> impl Iterator<Item = (&Method, &str, &'static str)> {
        self.0.iter().map(|((m, r), a)| (m, r.as_str(), *a))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Marketer control plane API",
        description = "Tenants, users, projects, agents, jobs, activities, documents and the audit log of the Marketer control plane. \
                       Authenticate with `Authorization: Bearer <access token or API key>`.",
    ),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An access token from /api/v1/auth/login, or an API key (mkt_ak_...)"))
                    .build(),
            ),
        );
    }
}

fn api_routes() -> OpenApiRouter<ApiState> {
    use routes::{
        ab_tests, activities, agents, analytics, api_keys, audit_events, auth, comments, documents, erasures,
        exports, flyers, health, inbox, jobs, leads, members, notifications, people, projects, properties,
        publishing, retention, reviews, sequences, sso, tenants, two_factor, webhooks,
    };
    // The upload reads its body itself, counting against the upload limit.
    let (schemas, paths, upload) = routes!(documents::list, documents::upload);
    let upload = upload.layer(DefaultBodyLimit::disable());
    let (photo_schemas, photo_paths, photo_upload) = routes!(properties::add_photo);
    let photo_upload = photo_upload.layer(DefaultBodyLimit::disable());
    let (logo_schemas, logo_paths, logo) = routes!(flyers::logo, flyers::set_logo, flyers::delete_logo);
    let logo = logo.layer(DefaultBodyLimit::max(crate::images::MAX_LOGO_BYTES + 64 * 1024));
    let (import_schemas, import_paths, import) = routes!(properties::import);
    let (lead_import_schemas, lead_import_paths, lead_import) = routes!(leads::import);
    let import = import.layer(DefaultBodyLimit::max(crate::service::MAX_IMPORT_BYTES));
    let lead_import = lead_import.layer(DefaultBodyLimit::max(crate::service::MAX_IMPORT_BYTES));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(health::openapi))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(tenants::create))
        .routes(routes!(tenants::get, tenants::update))
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::get, projects::update, projects::delete))
        .routes(routes!(projects::list_campaigns, projects::create_campaign))
        .routes(routes!(projects::get_campaign, projects::update_campaign, projects::delete_campaign))
        .routes(routes!(members::list))
        .routes(routes!(members::update, members::remove))
        .routes(routes!(members::list_invitations, members::create_invitation))
        .routes(routes!(members::revoke_invitation))
        .routes(routes!(members::accept))
        .routes(routes!(api_keys::list, api_keys::create))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(audit_events::list))
        .routes(routes!(audit_events::export))
        .routes(routes!(agents::list_tokens, agents::create_token))
        .routes(routes!(agents::revoke_token))
        .routes(routes!(agents::list))
        .routes(routes!(agents::get, agents::update))
        .routes(routes!(agents::revoke))
        .routes(routes!(agents::events))
        .routes(routes!(jobs::list, jobs::create))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::events))
        .routes(routes!(activities::list, activities::create))
        .routes(routes!(activities::get))
        .routes(routes!(activities::events))
        .routes(routes!(activities::cancel))
        .routes(routes!(activities::regenerate))
        .routes(routes!(activities::runs))
        .routes(routes!(activities::edit))
        .routes(routes!(activities::versions))
        .routes(routes!(activities::approve))
        .routes(routes!(activities::export))
        .routes(routes!(
            activities::get_cloud_provider,
            activities::set_cloud_provider,
            activities::delete_cloud_provider
        ))
        .routes(routes!(
            activities::model_prices,
            activities::set_model_price,
            activities::delete_model_price
        ))
        .routes(routes!(activities::usage))
        .routes((schemas, paths, upload))
        .routes(routes!(documents::get, documents::delete))
        .routes(routes!(publishing::list_accounts))
        .routes(routes!(publishing::connect))
        .routes(routes!(publishing::connect_bluesky))
        .routes(routes!(publishing::get_account, publishing::update_account, publishing::disconnect_account))
        .routes(routes!(publishing::list_posts, publishing::create_post))
        .routes(routes!(analytics::post_metrics))
        .routes(routes!(analytics::best_times))
        .routes(routes!(analytics::report))
        .routes(routes!(analytics::posts_csv))
        .routes(routes!(analytics::report_pdf))
        .routes(routes!(ab_tests::list, ab_tests::create))
        .routes(routes!(ab_tests::get))
        .routes(routes!(inbox::list))
        .routes(routes!(inbox::get, inbox::update))
        .routes(routes!(inbox::create_lead))
        .routes(routes!(inbox::reply))
        .routes(routes!(inbox::reply_draft))
        .routes(routes!(inbox::settings, inbox::update_settings))
        .routes(routes!(inbox::crisis_alerts))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::test))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::delivery))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(two_factor::status, two_factor::begin))
        .routes(routes!(two_factor::confirm))
        .routes(routes!(two_factor::disable))
        .routes(routes!(two_factor::recovery_codes))
        .routes(routes!(two_factor::change_password))
        .routes(routes!(two_factor::sessions))
        .routes(routes!(two_factor::revoke_session))
        .routes(routes!(two_factor::tenant_security, two_factor::set_tenant_security))
        .routes(routes!(sso::show, sso::put, sso::delete))
        .routes(routes!(people::export))
        .routes(routes!(people::erase))
        .routes(routes!(erasures::erase))
        .routes(routes!(erasures::get))
        .routes(routes!(erasures::list))
        .routes(routes!(exports::create, exports::list))
        .routes(routes!(exports::get))
        .routes(routes!(exports::download))
        .routes(routes!(retention::get, retention::set))
        .routes(routes!(retention::export_contact))
        .routes(routes!(retention::erase_contact))
        .routes(routes!(inbox::list_queries, inbox::create_query))
        .routes(routes!(inbox::delete_query))
        .routes(routes!(publishing::get_post, publishing::update_post, publishing::delete_post))
        .routes(routes!(publishing::get_time_zone, publishing::set_time_zone))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::unread))
        .routes(routes!(notifications::mark_read))
        .routes(routes!(notifications::settings, notifications::update_settings))
        .routes(routes!(notifications::send_verification))
        .routes(routes!(notifications::request_reset))
        .routes(routes!(notifications::reset))
        .routes(routes!(notifications::verify_email))
        .routes(routes!(notifications::unsubscribe))
        .routes(routes!(notifications::join))
        .routes(routes!(notifications::mail))
        .routes(routes!(notifications::resend))
        .routes(routes!(notifications::bounce))
        .routes(routes!(comments::list, comments::create))
        .routes(routes!(comments::edit, comments::delete))
        .routes(routes!(comments::resolve))
        .routes(routes!(reviews::list, reviews::create))
        .routes(routes!(reviews::update, reviews::delete))
        .routes(routes!(reviews::set_project_workflow))
        .routes(routes!(reviews::get, reviews::decide))
        .routes(routes!(reviews::waiting))
        .routes(routes!(reviews::request))
        .routes(routes!(reviews::links, reviews::create_link))
        .routes(routes!(reviews::revoke_link))
        .routes(routes!(reviews::open_link))
        .routes(routes!(reviews::decide_by_link))
        .routes(routes!(reviews::comment_by_link))
        .routes(routes!(reviews::get_post, reviews::decide_post))
        .routes(routes!(reviews::request_post))
        .routes(routes!(properties::list, properties::create))
        .routes(routes!(properties::get, properties::update, properties::delete))
        .routes(routes!(properties::activities))
        .routes((import_schemas, import_paths, import))
        .routes((lead_import_schemas, lead_import_paths, lead_import))
        .routes((photo_schemas, photo_paths, photo_upload))
        .routes((logo_schemas, logo_paths, logo))
        .routes(routes!(flyers::activity_flyer))
        .routes(routes!(flyers::property_flyer))
        .routes(routes!(properties::photo, properties::update_photo, properties::delete_photo))
        .routes(routes!(properties::publish))
        .routes(routes!(leads::list, leads::create))
        .routes(routes!(leads::get, leads::update))
        .routes(routes!(leads::settings, leads::update_settings))
        .routes(routes!(leads::scoring))
        .routes(routes!(leads::fit_scoring, leads::reset_scoring))
        .routes(routes!(sequences::list, sequences::create))
        .routes(routes!(sequences::get, sequences::update, sequences::delete))
        .routes(routes!(sequences::lead_list, sequences::start))
        .routes(routes!(sequences::stop))
        .routes(routes!(sequences::decide_draft))
}

/// The OpenAPI document of the API, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_routes().into_openapi();
    document_common_errors(&mut doc);
    doc
}

/// Adds the error answers that come from the layers every operation passes
/// through, not from its handler, so the document lists every status an
/// operation can give: 401 and 403 where a caller is required, 404 where the
/// path names something (another tenant's things are 404 too), 400, 413,
/// 415 and 422 where there is a JSON body (malformed, too large, not JSON,
/// invalid), 422 where there are query parameters, 429 where sign-in is
/// throttled. A status the handler documents itself is left as it is.
fn document_common_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ];
        for operation in operations.into_iter().flatten() {
            let mut add = |status: &str, description: &str| {
                operation.responses.responses.entry(status.to_owned()).or_insert_with(|| error(description));
            };
            let public = matches!(path.as_str(), "/healthz" | "/readyz" | "/api/v1/openapi.json");
            if public {
                continue;
            }
            let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty())
                || path.contains("{tenant_id}")
                || path == "/api/v1/auth/me"
                || path == "/api/v1/tenants";
            if authenticated {
                add("401", "not signed in, or the token is invalid or expired");
                add("403", "the caller's role does not allow this");
            }
            if path.contains('{') {
                add("404", "not found, or another tenant's");
            }
            if operation.request_body.is_some() {
                add("400", "the body is not valid JSON");
                add("413", "the body is larger than the server accepts");
                add("415", "the body is not application/json");
                add("422", "a field is invalid; `details.field` names it");
            }
            let has_query = operation.parameters.as_ref().is_some_and(|ps| {
                ps.iter().any(|p| {
                    matches!(p, RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Query)
                })
            });
            if has_query {
                add("422", "a query parameter is invalid or unknown; `details.field` names it");
            }
            if path.starts_with("/api/v1/auth/") {
                add("429", "too many attempts; retry after the `Retry-After` seconds");
            }
        }
    }
}

/// Builds the complete HTTP service.
pub fn router(app: Arc<App>, config: ApiConfig) -> Router {
    let (routes, mut doc) = api_routes().split_for_parts();
    document_common_errors(&mut doc);
    let openapi = doc.to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not serialise the OpenAPI document");
        "{}".to_owned()
    });
    let max_body = config.max_body_bytes;
    let limiter = Arc::new(rate_limit::RateLimiter::new(app.store.clone(), config.rate_limits));
    let state = ApiState {
        limiter,
        app,
        config: Arc::new(config),
        operations: Arc::new(Operations::from_openapi(&doc)),
        openapi: Arc::new(openapi),
    };
    routes
        .merge(crate::ui::router(&state))
        // Where the social platforms send a person back after connecting.
        .route("/oauth/callback/{network}", axum::routing::get(routes::publishing::oauth_callback))
        .route_layer(from_fn_with_state(state.clone(), audit::audit_refusals))
        .route_layer(from_fn(rate_limit::headers))
        .route_layer(from_fn(observe::mark_route))
        .fallback(|uri: axum::http::Uri| async move {
            // The API answers in JSON; everything else is the UI's.
            if uri.path().starts_with("/api/") {
                Error::NotFound("route").into_response()
            } else {
                crate::ui::not_found()
            }
        })
        .method_not_allowed_fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            // A form's address opened in the browser goes to its page; the
            // API answers in JSON.
            match crate::ui::page_of_form(uri.path()) {
                Some(page) if method == axum::http::Method::GET => {
                    axum::response::Redirect::to(&page).into_response()
                }
                _ => Error::MethodNotAllowed.into_response(),
            }
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(from_fn_with_state(state.clone(), refuse_declared_oversize))
        .layer(CatchPanicLayer::custom(|_panic| {
            Error::internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        // Answers carry credentials and tenant data: never cache them, and
        // never let a browser sniff them into something executable.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(from_fn_with_state(state.clone(), observe::observe))
        .with_state(state)
}

/// Refuses a request whose declared `Content-Length` is over its route's
/// limit before a byte of the body is read (the upload route has a limit
/// of its own, the file plus room for the multipart framing).
async fn refuse_declared_oversize(
    axum::extract::State(state): axum::extract::State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared {
        let post = request.method() == axum::http::Method::POST;
        let path = request.uri().path();
        let limit = if post && path.ends_with("/documents") {
            state.config.max_upload_bytes.saturating_add(crate::service::MULTIPART_OVERHEAD_BYTES)
        } else if post && path.ends_with("/photos") {
            crate::images::MAX_PHOTO_BYTES.saturating_add(crate::service::MULTIPART_OVERHEAD_BYTES)
        } else if post && (path.ends_with("/properties/import") || path.ends_with("/leads/import")) {
            crate::service::MAX_IMPORT_BYTES
        } else {
            state.config.max_body_bytes
        };
        if declared > u64::try_from(limit).unwrap_or(u64::MAX) {
            let mut response = Error::PayloadTooLarge { limit }.into_response();
            // The body is not read: the connection cannot carry another request.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    }
    next.run(request).await
}

impl<T: Serialize> IntoResponse for extract::Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
