//! A real SMTP server for the tests: MailDev (npm `maildev`, which
//! `.ci/run` installs under `target/maildev`), with its REST API to read
//! what it received. It can be stopped and started again on the same ports
//! to play an SMTP server that is down for a while. [`Bouncer`] plays a
//! recipient's server that refuses a mailbox for good (a hard bounce).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{ServerOptions, eventually, free_port};

/// A message as MailDev received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub headers: Value,
}

impl Received {
    /// The first URL in the plain text that starts with `base` + `path`.
    pub fn link(&self, base: &str, path: &str) -> Option<String> {
        let start = format!("{base}{path}");
        self.text
            .split_whitespace()
            .find(|w| w.starts_with(&start))
            .map(|w| w.trim_end_matches(['.', ',', ')']).to_owned())
    }

    /// The `token` parameter of the first link to `path`.
    pub fn token(&self, base: &str, path: &str) -> Option<String> {
        let link = self.link(base, path)?;
        let url = reqwest::Url::parse(&link).ok()?;
        url.query_pairs().find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
    }
}

#[derive(Debug)]
pub struct MailDev {
    pub smtp_port: u16,
    pub web_port: u16,
    child: Option<Child>,
    http: reqwest::Client,
}

fn root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

impl MailDev {
    /// `None` (the test is skipped) when MailDev is not installed, unless
    /// `MARKETER_REQUIRE_MAIL` says CI must have it.
    pub async fn start() -> Option<Self> {
        if !maildev_installed() {
            return None;
        }
        let mut mail =
            Self { smtp_port: free_port(), web_port: free_port(), child: None, http: reqwest::Client::new() };
        mail.resume().await;
        Some(mail)
    }

    /// Points a server at this SMTP server (plain SMTP on 127.0.0.1; the
    /// outbox looked at five times a second).
    pub fn configure(&self, options: ServerOptions) -> ServerOptions {
        smtp_on(options, self.smtp_port)
    }

    /// Stops the SMTP server (what it received is forgotten).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same ports and waits until it answers.
    pub async fn resume(&mut self) {
        let child = Command::new(root().join("target/maildev/node_modules/.bin/maildev"))
            .args(["--smtp", &self.smtp_port.to_string(), "--web", &self.web_port.to_string()])
            .args(["--ip", "127.0.0.1", "--web-ip", "127.0.0.1", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start maildev");
        self.child = Some(child);
        let url = format!("http://127.0.0.1:{}/healthz", self.web_port);
        let http = self.http.clone();
        eventually(Duration::from_secs(20), "maildev to answer", || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
        let smtp = format!("127.0.0.1:{}", self.smtp_port);
        eventually(Duration::from_secs(20), "maildev's SMTP port", || {
            let smtp = smtp.clone();
            async move { tokio::net::TcpStream::connect(&smtp).await.ok().map(|_| ()) }
        })
        .await;
    }

    /// Every message received, oldest first.
    pub async fn messages(&self) -> Vec<Received> {
        let list: Value = self
            .http
            .get(format!("http://127.0.0.1:{}/email", self.web_port))
            .send()
            .await
            .expect("maildev's REST API")
            .json()
            .await
            .expect("maildev's list");
        list.as_array()
            .into_iter()
            .flatten()
            .map(|m| Received {
                id: m["id"].as_str().unwrap_or_default().to_owned(),
                to: m["to"][0]["address"].as_str().unwrap_or_default().to_owned(),
                subject: m["subject"].as_str().unwrap_or_default().to_owned(),
                text: m["text"].as_str().unwrap_or_default().to_owned(),
                html: m["html"].as_str().unwrap_or_default().to_owned(),
                headers: m["headers"].clone(),
            })
            .collect()
    }

    /// Messages to `to`.
    pub async fn to(&self, to: &str) -> Vec<Received> {
        self.messages().await.into_iter().filter(|m| m.to.eq_ignore_ascii_case(to)).collect()
    }

    /// Waits for a message to `to` whose subject contains `subject`.
    pub async fn wait_for(&self, to: &str, subject: &str) -> Received {
        eventually(Duration::from_secs(20), &format!("a message to {to} about {subject:?}"), || async {
            self.to(to).await.into_iter().find(|m| m.subject.contains(subject))
        })
        .await
    }
}

/// Points a server at a plain SMTP server on 127.0.0.1:`port` (the outbox
/// looked at five times a second).
fn smtp_on(options: ServerOptions, port: u16) -> ServerOptions {
    options
        .env("MARKETER_SMTP_HOST", "127.0.0.1")
        .env("MARKETER_SMTP_PORT", &port.to_string())
        .env("MARKETER_SMTP_TLS", "none")
        .env("MARKETER_SMTP_FROM", "Marketer <marketer@example.com>")
        .env("MARKETER_SMTP_TIMEOUT_MS", "5000")
        .env("MARKETER_MAIL_POLL_MS", "200")
        .env("MARKETER_MAIL_DIGEST_CHECK_MS", "300")
}

/// Whether the npm packages the mail tests need are here: `None` skips the
/// test, unless `MARKETER_REQUIRE_MAIL` says CI must have them.
fn maildev_installed() -> bool {
    if root().join("target/maildev/node_modules/.bin/maildev").exists() {
        return true;
    }
    assert!(
        std::env::var_os("MARKETER_REQUIRE_MAIL").is_none(),
        "MARKETER_REQUIRE_MAIL is set but maildev is not installed under target/maildev"
    );
    eprintln!("skipping: maildev is not installed under target/maildev (bash .ci/run installs it)");
    false
}

/// A mail server that refuses every recipient whose local part starts
/// with `bounce` for good (`550 5.1.1`, as for a mailbox that does not
/// exist) and accepts the rest: `tests/mail/bouncer.js`, on the SMTP
/// server library MailDev is built on.
#[derive(Debug)]
pub struct Bouncer {
    pub port: u16,
    child: Child,
}

impl Bouncer {
    pub async fn start() -> Option<Self> {
        if !maildev_installed() {
            return None;
        }
        let port = free_port();
        let child = Command::new("node")
            .arg(root().join("tests/mail/bouncer.js"))
            .arg(port.to_string())
            .arg(root().join("target/maildev/node_modules"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/mail/bouncer.js");
        let smtp = format!("127.0.0.1:{port}");
        eventually(Duration::from_secs(20), "the bouncing SMTP server's port", || {
            let smtp = smtp.clone();
            async move { tokio::net::TcpStream::connect(&smtp).await.ok().map(|_| ()) }
        })
        .await;
        Some(Self { port, child })
    }

    /// Points a server at it.
    pub fn configure(&self, options: ServerOptions) -> ServerOptions {
        smtp_on(options, self.port)
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MailDev {
    fn drop(&mut self) {
        self.stop();
    }
}
