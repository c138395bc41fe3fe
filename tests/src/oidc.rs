//! A real OpenID Connect provider for the single sign-on tests: the npm
//! package `oidc-provider` that `.ci/run` installs under `target/oidc`, run
//! by `tests/oidc/provider.mjs`; and a person's browser going through it
//! without a browser (plain HTTP requests with their cookies).

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The provider's process; it stops when dropped.
#[derive(Debug)]
pub struct OidcProvider {
    pub issuer: String,
    child: std::process::Child,
}

impl OidcProvider {
    /// One confidential client, `client_id` with `secret`, whose redirect URI
    /// is `redirect_uri`; `groups` maps logins to their groups. `None` (the
    /// test is skipped) when the package is not installed, unless
    /// `MARKETER_REQUIRE_OIDC` says it must be (CI).
    pub fn start(client_id: &str, secret: &str, redirect_uri: &str, groups: &Value) -> Option<Self> {
        use std::io::BufRead;
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
        let home = root.join("target/oidc");
        if !home.join("node_modules/oidc-provider").exists() {
            assert!(
                std::env::var_os("MARKETER_REQUIRE_OIDC").is_none(),
                "MARKETER_REQUIRE_OIDC is set but oidc-provider is not installed under target/oidc"
            );
            eprintln!(
                "skipping: oidc-provider is not installed under target/oidc (bash .ci/run installs it)"
            );
            return None;
        }
        // Next to its node_modules, so that its imports resolve there.
        let script = home.join("provider.mjs");
        std::fs::copy(root.join("tests/oidc/provider.mjs"), &script).expect("copy the provider's script");
        let clients =
            json!([{ "client_id": client_id, "client_secret": secret, "redirect_uris": [redirect_uri] }]);
        let mut child = std::process::Command::new("node")
            .arg(&script)
            .env("OIDC_CLIENTS", clients.to_string())
            .env("OIDC_GROUPS", groups.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read the provider's first line");
        // The provider logs to its output now and then: keep reading it, or
        // its next write fails (EPIPE) and ends it.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let info: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the provider did not start ({e}): {line}"));
        Some(Self { issuer: info["issuer"].as_str().expect("issuer").to_owned(), child })
    }

    /// The next token answer carries an ID token changed so: `wrong_audience`,
    /// `expired`, `unverified_email`, or `replay_last` (the previous one).
    pub async fn tamper_next(&self, mode: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/test/next-id-token", self.issuer))
            .body(json!({ "mode": mode }).to_string())
            .send()
            .await
            .expect("tamper request");
        assert!(response.status().is_success());
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser's cookies and requests, redirects followed by hand.
#[derive(Debug, Default)]
pub struct CookieBrowser {
    http: reqwest::Client,
    /// Every host here is 127.0.0.1, and names do not clash between the
    /// server and the provider: one jar.
    cookies: BTreeMap<String, String>,
}

/// Where a sign-in through the provider ended.
#[derive(Debug)]
pub struct Arrival {
    /// The server's last answer: its status and body.
    pub status: u16,
    pub body: String,
    /// Where it redirected to, if it did.
    pub location: Option<String>,
    /// The callback address the provider sent the browser to.
    pub callback: String,
}

impl CookieBrowser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    pub fn forget(&mut self, name: &str) {
        self.cookies.remove(name);
    }

    /// One request; cookies in and out.
    pub async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
    ) -> reqwest::Response {
        let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut request = self.http.request(method, url);
        if !jar.is_empty() {
            request = request.header("cookie", jar.join("; "));
        }
        if let Some(form) = form {
            request = request.form(form);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                let expired = text.to_ascii_lowercase().contains("max-age=0") || value.is_empty();
                if expired {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies.insert(name.trim().to_owned(), value.trim().to_owned());
                }
            }
        }
        response
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, url, None).await
    }

    /// Starts at `start` (a server page that sends the browser to the
    /// provider), signs in there as `login`, and follows the provider back
    /// to the server: the server's answer to the callback.
    pub async fn sign_in(&mut self, start: &str, login: &str) -> Arrival {
        let callback = self.to_callback(start, login).await;
        let response = self.get(&callback).await;
        let status = response.status().as_u16();
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap_or_default();
        Arrival { status, body, location, callback }
    }

    /// Goes through the provider as `login` and stops where it sends the
    /// browser back: the callback address, not yet visited.
    pub async fn to_callback(&mut self, start: &str, login: &str) -> String {
        let mut url = start.to_owned();
        for _ in 0..12 {
            if url.contains("/sso/callback") {
                return url;
            }
            let response = self.get(&url).await;
            let status = response.status().as_u16();
            if (300..400).contains(&status) {
                let next = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
                url =
                    absolute(&url, &next.unwrap_or_else(|| panic!("a redirect without a location at {url}")));
                continue;
            }
            // A page with a form: this site's "Continue to ..." (its fields
            // as they are), or the provider's sign-in (the person's login).
            let body = response.text().await.unwrap_or_default();
            let (action, mut fields) =
                first_form(&body).unwrap_or_else(|| panic!("no form at {url} ({status}): {body}"));
            for (name, value) in &mut fields {
                match name.as_str() {
                    "login" => *value = login.to_owned(),
                    "password" => *value = "any password".to_owned(),
                    _ => {}
                }
            }
            let target = absolute(&url, &action);
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let submitted = self.send(reqwest::Method::POST, &target, Some(&pairs)).await;
            let next = submitted.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
            let Some(next) = next else {
                let status = submitted.status();
                panic!(
                    "the form at {url} did not redirect ({status}): {}",
                    submitted.text().await.unwrap_or_default()
                );
            };
            url = absolute(&target, &next);
        }
        panic!("the sign-in went round in circles; last at {url}");
    }
}

/// The first form of a page: where it posts, and its inputs' names and
/// values (enough for the pages these tests meet).
fn first_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = html.find("<form")?;
    let end = html[start..].find("</form>").map_or(html.len(), |e| start + e);
    let form = &html[start..end];
    let attr = |tag: &str, name: &str| {
        let key = format!("{name}=\"");
        tag.find(&key).and_then(|i| tag[i + key.len()..].split('"').next()).map(str::to_owned)
    };
    let action = attr(&form[..form.find('>')?], "action")?.replace("&amp;", "&");
    let fields = form
        .split("<input")
        .skip(1)
        .filter_map(|input| {
            let tag = &input[..input.find('>').unwrap_or(input.len())];
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect();
    Some((action, fields))
}

/// `reference` made absolute against `base` (same scheme and host).
fn absolute(base: &str, reference: &str) -> String {
    if reference.starts_with("http://") || reference.starts_with("https://") {
        return reference.to_owned();
    }
    let origin_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|i| base[i..].find('/').map(|j| i + j))
        .unwrap_or(base.len());
    format!("{}{}", &base[..origin_end], reference)
}
