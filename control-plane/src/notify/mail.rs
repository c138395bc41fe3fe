//! E-mail over SMTP: a message of the outbox made into MIME (plain text
//! and HTML), and the SMTP conversation split where the outcome stops
//! being certain.
//!
//! Everything up to `DATA` can be repeated: if it fails, nothing was handed
//! over. The message body is the irreversible step: the caller records
//! `sending` before it, and a connection that breaks during it leaves the
//! outcome unknown (SMTP has no idempotency key to ask about it later).

use std::time::Duration;

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use secrecy::ExposeSecret;

use super::{SmtpSettings, SmtpTls};
use crate::store::{MailPurpose, OutboxMail};

/// The product's name, as messages sign.
const PRODUCT: &str = "Marketer";

/// A message ready to hand over.
#[derive(Debug)]
pub struct Outgoing {
    pub envelope: lettre::address::Envelope,
    pub bytes: Vec<u8>,
}

/// Makes the MIME message: the body, the link to the item, and for a
/// digest the link that stops digests. `secret_link` is the opened sealed
/// path (a token-carrying link), if the message has one.
pub fn compose(
    smtp: &SmtpSettings,
    public_url: &str,
    mail: &OutboxMail,
    secret_link: Option<&str>,
) -> Result<Outgoing, String> {
    let to: lettre::message::Mailbox =
        mail.to.parse().map_err(|e| format!("the recipient address {:?} is not valid: {e}", mail.to))?;
    let url = |path: &str| format!("{public_url}{path}");
    let mut text = mail.body.trim_end().to_owned();
    let mut html = format!("<p>{}</p>", paragraphs(&mail.body));
    let mut unsubscribe = None;
    match (mail.purpose, secret_link) {
        (MailPurpose::Digest | MailPurpose::Marketing, Some(path)) => unsubscribe = Some(url(path)),
        (_, Some(path)) => {
            let link = url(path);
            text.push_str(&format!("\n\n{link}"));
            html.push_str(&format!(r#"<p><a href="{0}">{0}</a></p>"#, escape(&link)));
        }
        (_, None) => {}
    }
    if let Some(path) = &mail.link {
        let link = url(path);
        text.push_str(&format!("\n\nOpen it in {PRODUCT}: {link}"));
        html.push_str(&format!(r#"<p><a href="{}">Open it in {PRODUCT}</a></p>"#, escape(&link)));
    }
    let marketing = mail.purpose == MailPurpose::Marketing;
    if !marketing {
        // A follow-up e-mail is the sender's own, signed in its body.
        text.push_str(&format!("\n\n-- \n{PRODUCT}"));
        html.push_str(&format!(r#"<p style="color:#555">{PRODUCT}</p>"#));
    }
    if let Some(link) = &unsubscribe {
        let words = if marketing { "Unsubscribe with one click" } else { "Stop these daily digests" };
        text.push_str(&format!("\n{words}: {link}"));
        html.push_str(&format!(r#"<p style="color:#555"><a href="{}">{words}</a></p>"#, escape(link)));
    }
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body style=\"font-family:sans-serif;line-height:1.5;max-width:40em\">{html}</body></html>",
        escape(&mail.subject)
    );
    let mut builder = Message::builder()
        .from(smtp.from.clone())
        .to(to)
        .subject(mail.subject.clone())
        // Stable per message: a resend an admin asks for after an unknown
        // outcome carries the same id, which lets mail systems drop a copy.
        .message_id(Some(format!("<{}@marketer>", mail.id)));
    if let Some(link) = &unsubscribe {
        builder = builder.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!("<{link}>"),
        ));
        if marketing {
            // RFC 8058: mail clients unsubscribe with one POST, no page.
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
        }
    }
    let message = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html)),
        )
        .map_err(|e| format!("the message could not be built: {e}"))?;
    Ok(Outgoing { envelope: message.envelope().clone(), bytes: message.formatted() })
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Plain text as HTML paragraphs: blank lines part them, newlines break.
fn paragraphs(text: &str) -> String {
    text.trim()
        .split("\n\n")
        .map(|p| escape(p.trim()).replace('\n', "<br>"))
        .collect::<Vec<_>>()
        .join("</p><p>")
}

/// How handing a message over ended.
#[derive(Debug)]
pub enum Handover {
    Accepted,
    /// The server answered no: `permanent` says whether for good.
    Refused {
        permanent: bool,
        error: String,
    },
    /// The server refused the recipient for good (a 5xx to `RCPT TO`: no
    /// such mailbox, or a domain that takes no mail): a hard bounce.
    Bounced {
        error: String,
    },
    /// Nothing was handed over (the connection failed before the body).
    NotSent {
        error: String,
    },
    /// The connection broke while the server had the body.
    Unknown {
        error: String,
    },
}

/// An open SMTP session.
pub struct Session {
    conn: AsyncSmtpConnection,
    timeout: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// A step that did not succeed: `refused` is `Some(permanent)` when the
/// server answered no, `None` when there was no answer.
struct Failure {
    refused: Option<bool>,
    message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

async fn step<T>(
    timeout: Duration,
    what: &str,
    f: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Failure {
            refused: (e.is_transient() || e.is_permanent()).then(|| e.is_permanent()),
            message: format!("{what}: {e}"),
        }),
        Err(_) => Err(Failure {
            refused: None,
            message: format!("{what} took longer than {} ms", timeout.as_millis()),
        }),
    }
}

/// Connects, protects and signs in as the settings say. TLS is required
/// when asked for: a server that does not offer STARTTLS is refused, never
/// used in the clear.
pub async fn connect(smtp: &SmtpSettings) -> Result<Session, String> {
    let hello = ClientId::default();
    let tls = || -> Result<TlsParameters, String> {
        let mut builder = TlsParameters::builder(smtp.host.clone());
        if let Some(pem) = &smtp.ca_pem {
            let cert = Certificate::from_pem(pem)
                .map_err(|e| format!("smtp_ca_file is not a PEM certificate: {e}"))?;
            builder = builder.add_root_certificate(cert);
        }
        builder.build_rustls().map_err(|e| format!("TLS could not be set up: {e}"))
    };
    let server = (smtp.host.as_str(), smtp.port);
    let timeout = smtp.timeout;
    let initial = match smtp.tls {
        SmtpTls::Tls => Some(tls()?),
        SmtpTls::Starttls | SmtpTls::None => None,
    };
    let mut conn = step(
        timeout,
        "connecting",
        AsyncSmtpConnection::connect_tokio1(server, Some(timeout), &hello, initial, None),
    )
    .await
    .map_err(|e| format!("could not connect to the SMTP server {}:{}: {e}", smtp.host, smtp.port))?;
    if smtp.tls == SmtpTls::Starttls {
        step(timeout, "STARTTLS", conn.starttls(tls()?, &hello))
            .await
            .map_err(|e| format!("STARTTLS with {} failed: {e}", smtp.host))?;
    }
    if let Some((user, password)) = &smtp.credentials {
        let credentials = Credentials::new(user.clone(), password.expose_secret().to_owned());
        step(timeout, "signing in", conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials))
            .await
            .map_err(|e| format!("the SMTP server refused the credentials: {e}"))?;
    }
    Ok(Session { conn, timeout })
}

impl Session {
    /// Whether the session can carry another message.
    pub fn usable(&self) -> bool {
        !self.conn.has_broken()
    }

    /// The reversible part: sender, recipients, `DATA`. After `Ok`, the
    /// server waits for the body.
    pub async fn prepare(&mut self, outgoing: &Outgoing) -> Result<(), Handover> {
        let t = self.timeout;
        let answer = |e: Failure| match e.refused {
            Some(permanent) => Handover::Refused { permanent, error: e.message },
            None => Handover::NotSent { error: e.message },
        };
        step(t, "MAIL FROM", self.conn.command(Mail::new(outgoing.envelope.from().cloned(), vec![])))
            .await
            .map_err(answer)?;
        for to in outgoing.envelope.to() {
            step(t, "RCPT TO", self.conn.command(Rcpt::new(to.clone(), vec![]))).await.map_err(|e| {
                if e.refused == Some(true) { Handover::Bounced { error: e.message } } else { answer(e) }
            })?;
        }
        step(t, "DATA", self.conn.command(Data)).await.map_err(answer)?;
        Ok(())
    }

    /// The irreversible part: the body, and the server's answer to it.
    pub async fn deliver(&mut self, outgoing: &Outgoing) -> Handover {
        match step(self.timeout, "sending the message", self.conn.message(&outgoing.bytes)).await {
            Ok(_) => Handover::Accepted,
            Err(Failure { refused: Some(permanent), message }) => {
                Handover::Refused { permanent, error: message }
            }
            Err(Failure { refused: None, message }) => Handover::Unknown { error: message },
        }
    }

    /// Ends a transaction that will not be completed (the lease was lost
    /// between `DATA` and the body): the connection is dropped, so the
    /// server discards what it has.
    pub async fn abandon(mut self) {
        self.conn.abort().await;
    }

    pub async fn quit(mut self) {
        let _ = step(self.timeout, "QUIT", self.conn.quit()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;
    use crate::store::MailState;

    fn settings() -> SmtpSettings {
        SmtpSettings {
            host: "localhost".into(),
            port: 25,
            tls: SmtpTls::None,
            credentials: None,
            from: "Marketer <marketer@example.com>".parse().unwrap(),
            ca_pem: None,
            timeout: Duration::from_secs(1),
        }
    }

    fn mail(purpose: MailPurpose, body: &str) -> OutboxMail {
        OutboxMail {
            id: uuid::Uuid::nil(),
            tenant_id: None,
            user_id: None,
            to: "ada@example.com".into(),
            purpose,
            subject: "Ünïcode <subject>".into(),
            body: body.into(),
            link: Some("/t/1/posts/2".into()),
            secret_link: None,
            state: MailState::Claimed,
            attempts: 1,
            last_error: None,
            created_at: Timestamp::now(),
            sent_at: None,
        }
    }

    #[test]
    fn html_is_escaped_and_links_are_absolute() {
        let out = compose(
            &settings(),
            "https://marketer.example",
            &mail(MailPurpose::Notification, "<script>alert(1)</script>\n\nsecond"),
            None,
        )
        .unwrap();
        let raw = String::from_utf8(out.bytes).unwrap();
        assert!(raw.is_ascii(), "headers and bodies are encoded for any server");
        let text = unfold(&raw);
        let html = text.split("Content-Type: text/html").nth(1).expect("an HTML part");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains(r#"href="https://marketer.example/t/1/posts/2""#), "{html}");
        let plain = text.split("Content-Type: text/html").next().unwrap();
        assert!(plain.contains("Open it in Marketer: https://marketer.example/t/1/posts/2"), "{plain}");
        assert!(text.contains("Message-ID: <00000000-0000-0000-0000-000000000000@marketer>"), "{text}");
    }

    /// Quoted-printable undone enough to read: soft line breaks joined,
    /// `=3D` back to `=`.
    fn unfold(raw: &str) -> String {
        raw.replace("=\r\n", "").replace("=3D", "=")
    }

    #[test]
    fn a_digest_carries_its_unsubscribe_link() {
        let out = compose(
            &settings(),
            "https://m.example",
            &mail(MailPurpose::Digest, "two things"),
            Some("/unsubscribe?token=abc"),
        )
        .unwrap();
        let text = unfold(&String::from_utf8(out.bytes).unwrap());
        assert!(text.contains("List-Unsubscribe: <https://m.example/unsubscribe?token=abc>"), "{text}");
    }

    #[test]
    fn a_bad_recipient_is_an_error_not_a_panic() {
        let mut m = mail(MailPurpose::Notification, "x");
        m.to = "not an address".into();
        assert!(compose(&settings(), "http://x", &m, None).is_err());
    }
}
