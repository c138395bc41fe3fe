//! The UI's stylesheet and script, compiled into the binary and served
//! under names that carry a hash of their content: a browser may keep them
//! forever, and a new release has new names.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    url: String,
    body: &'static [u8],
    content_type: &'static str,
}

impl Asset {
    fn new(stem: &str, extension: &str, body: &'static [u8], content_type: &'static str) -> Self {
        let hash: String = Sha256::digest(body).iter().take(6).map(|b| format!("{b:02x}")).collect();
        Self { url: format!("/assets/{stem}.{hash}.{extension}"), body, content_type }
    }
}

static CSS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new("app", "css", include_bytes!("../../static/app.css"), "text/css; charset=utf-8")
});
static JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new("app", "js", include_bytes!("../../static/app.js"), "text/javascript; charset=utf-8")
});

pub fn css_url() -> &'static str {
    &CSS.url
}

pub fn js_url() -> &'static str {
    &JS.url
}

/// `GET /assets/{file}`: only the current names exist.
pub async fn serve(Path(file): Path<String>) -> Response {
    let path = format!("/assets/{file}");
    let Some(asset) = [&*CSS, &*JS].into_iter().find(|a| a.url == path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_content_hash() {
        assert!(css_url().starts_with("/assets/app.") && css_url().ends_with(".css"));
        assert_eq!(css_url().len(), "/assets/app.".len() + 12 + ".css".len());
        assert_ne!(css_url(), js_url());
    }
}
