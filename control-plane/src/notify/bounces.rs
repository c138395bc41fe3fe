//! Bounces that arrive after the SMTP server accepted a message: delivery
//! status notifications (RFC 3464), which a relay sends back to the
//! envelope sender when the recipient's server refuses the message later.
//!
//! The operator points the bounce mailbox at the server (`POST
//! /api/v1/mail/bounces` with the raw message, authenticated by the bounce
//! token: a Postfix `pipe`, a provider's inbound webhook, a fetchmail
//! `mda`). This module reads one such message: the per-recipient fields of
//! its `message/delivery-status` part, and the original message's
//! `Message-ID` (from the returned `text/rfc822-headers` or
//! `message/rfc822` part), which names the outbox row: every message the
//! notifier sends carries `<{outbox id}@marketer>`. The MIME parsing is
//! `mail-parser`'s; the delivery-status fields are read here (they are
//! header-like groups, which no MIME parser splits).

use mail_parser::{MessageParser, MimeHeaders, PartType};
use uuid::Uuid;

/// The largest bounce message read (a DSN that returns the whole original
/// message with its attachments is cut off by the body limit first).
pub const MAX_BOUNCE_BYTES: usize = 1024 * 1024;

/// One recipient's outcome in a delivery status notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The address the message was for (`Final-Recipient`, or
    /// `Original-Recipient`), lower case.
    pub recipient: String,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded`.
    pub action: String,
    /// The enhanced status code (RFC 3463), like `5.1.1`.
    pub status: String,
    /// What the remote server said (`Diagnostic-Code`), if anything.
    pub diagnostic: String,
}

impl Bounce {
    /// Failed for good: the address must not be mailed again.
    pub fn permanent(&self) -> bool {
        self.action == "failed" && self.status.starts_with('5')
    }

    /// The reason, for the lead's timeline.
    pub fn reason(&self) -> String {
        if self.diagnostic.is_empty() {
            format!("{} (a delivery status notification)", self.status)
        } else {
            format!("{} (a delivery status notification)", self.diagnostic)
        }
    }
}

/// What a bounce message says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The outbox message it is about, from the original's `Message-ID`.
    pub mail_id: Option<Uuid>,
    pub recipients: Vec<Bounce>,
}

/// Reads a bounce message. An error says why it is not one.
pub fn read_report(raw: &[u8]) -> Result<Report, String> {
    if raw.len() > MAX_BOUNCE_BYTES {
        return Err(format!("the message is larger than {} KiB", MAX_BOUNCE_BYTES / 1024));
    }
    let message =
        MessageParser::default().parse(raw).ok_or_else(|| "the body is not an e-mail message".to_owned())?;
    let mut report = Report::default();
    for part in &message.parts {
        let Some(kind) = part.content_type() else { continue };
        let full = format!(
            "{}/{}",
            kind.ctype().to_ascii_lowercase(),
            kind.subtype().unwrap_or_default().to_ascii_lowercase()
        );
        match (full.as_str(), &part.body) {
            ("message/delivery-status" | "message/global-delivery-status", body) => {
                let bytes: &[u8] = match body {
                    PartType::Text(t) | PartType::Html(t) => t.as_bytes(),
                    PartType::Binary(b) | PartType::InlineBinary(b) => b,
                    PartType::Message(m) => m.raw_message(),
                    PartType::Multipart(_) => continue,
                };
                report.recipients.extend(delivery_status(&String::from_utf8_lossy(bytes)));
            }
            ("text/rfc822-headers" | "message/global-headers", body) if report.mail_id.is_none() => {
                let headers: &[u8] = match body {
                    PartType::Text(t) => t.as_bytes(),
                    PartType::Binary(b) | PartType::InlineBinary(b) => b,
                    _ => continue,
                };
                report.mail_id = MessageParser::default()
                    .parse_headers(headers)
                    .and_then(|m| m.message_id().and_then(outbox_id));
            }
            (_, PartType::Message(original)) if report.mail_id.is_none() => {
                report.mail_id = original.message_id().and_then(outbox_id);
            }
            _ => {}
        }
    }
    if report.recipients.is_empty() {
        return Err("no delivery-status part (RFC 3464) with a recipient was found; \
             send the bounce message as it arrived"
            .into());
    }
    Ok(report)
}

/// The outbox id in a `Message-ID` the notifier wrote (`{uuid}@marketer`).
fn outbox_id(message_id: &str) -> Option<Uuid> {
    let id = message_id.trim().trim_start_matches('<').trim_end_matches('>');
    id.strip_suffix("@marketer")?.parse().ok()
}

/// The per-recipient groups of a `message/delivery-status` body: groups of
/// `Name: value` fields (folded lines joined) separated by blank lines; the
/// first group is about the message, the others each about a recipient.
fn delivery_status(text: &str) -> Vec<Bounce> {
    let mut groups: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        if line.trim().is_empty() {
            if groups.last().is_some_and(|g| !g.is_empty()) {
                groups.push(Vec::new());
            }
            continue;
        }
        let group = groups.last_mut().expect("one group at least");
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = group.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    groups
        .iter()
        .filter_map(|group| {
            let field = |name: &str| group.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
            // `rfc822; ana@example.com`: the address after the type.
            let address = |value: &str| {
                value.split_once(';').map_or(value, |(_, a)| a).trim().trim_matches(['<', '>']).to_lowercase()
            };
            let recipient = field("final-recipient").or_else(|| field("original-recipient")).map(address)?;
            let action = field("action")?.to_ascii_lowercase();
            let status =
                field("status").unwrap_or_default().split_whitespace().next().unwrap_or("").to_owned();
            let diagnostic = field("diagnostic-code")
                .map(|d| d.split_once(';').map_or(d, |(_, text)| text).trim().chars().take(500).collect())
                .unwrap_or_default();
            (!recipient.is_empty()).then_some(Bounce { recipient, action, status, diagnostic })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A bounce as Postfix writes it, with the original's headers.
    pub(crate) fn postfix_bounce(mail_id: Uuid, to: &str, status: &str, action: &str) -> String {
        format!(
            "From: MAILER-DAEMON@relay.example.net (Mail Delivery System)\r\n\
             To: bounces@marketer.example.com\r\n\
             Subject: Undelivered Mail Returned to Sender\r\n\
             Message-Id: <20261205120000.1A2B3C@relay.example.net>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\
             \tboundary=\"B0UNDARY\"\r\n\
             \r\n\
             This is a MIME-encapsulated message.\r\n\
             \r\n\
             --B0UNDARY\r\n\
             Content-Description: Notification\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\
             \r\n\
             I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients.\r\n\
             \r\n\
             --B0UNDARY\r\n\
             Content-Description: Delivery report\r\n\
             Content-Type: message/delivery-status\r\n\
             \r\n\
             Reporting-MTA: dns; relay.example.net\r\n\
             Arrival-Date: Sat,  5 Dec 2026 12:00:00 +0000 (UTC)\r\n\
             \r\n\
             Final-Recipient: rfc822; {to}\r\n\
             Original-Recipient: rfc822;{to}\r\n\
             Action: {action}\r\n\
             Status: {status}\r\n\
             Remote-MTA: dns; mx.example.com\r\n\
             Diagnostic-Code: smtp; {status_code} {status} <{to}>: Recipient address\r\n\
             \x20   rejected: User unknown in virtual mailbox table\r\n\
             \r\n\
             --B0UNDARY\r\n\
             Content-Description: Undelivered Message Headers\r\n\
             Content-Type: text/rfc822-headers\r\n\
             \r\n\
             From: Elm Realty <marketer@example.com>\r\n\
             To: {to}\r\n\
             Subject: Thanks for asking about 12 Elm Street\r\n\
             Message-ID: <{mail_id}@marketer>\r\n\
             \r\n\
             --B0UNDARY--\r\n",
            status_code = if status.starts_with('5') { "550" } else { "450" },
        )
    }

    #[test]
    fn a_postfix_bounce_names_the_recipient_the_status_and_our_message() {
        let id = Uuid::from_u128(7);
        let report =
            read_report(postfix_bounce(id, "Ana@Example.com", "5.1.1", "failed").as_bytes()).unwrap();
        assert_eq!(report.mail_id, Some(id));
        assert_eq!(report.recipients.len(), 1);
        let bounce = &report.recipients[0];
        assert_eq!(
            (bounce.recipient.as_str(), bounce.action.as_str(), bounce.status.as_str()),
            ("ana@example.com", "failed", "5.1.1")
        );
        assert!(bounce.permanent());
        assert!(bounce.diagnostic.starts_with("550 5.1.1") && bounce.diagnostic.contains("User unknown"));
    }

    #[test]
    fn a_delay_is_not_permanent() {
        let report =
            read_report(postfix_bounce(Uuid::from_u128(7), "a@b.example", "4.4.1", "delayed").as_bytes())
                .unwrap();
        assert!(!report.recipients[0].permanent());
    }

    #[test]
    fn the_original_message_may_be_returned_whole() {
        let id = Uuid::from_u128(9);
        let raw = format!(
            "From: postmaster@example.net\r\nTo: b@example.com\r\nSubject: failure\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"x\"\r\n\r\n\
             --x\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n\
             --x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; example.net\r\n\r\n\
             Final-Recipient: rfc822;bo@example.com\r\nAction: failed\r\nStatus: 5.2.1\r\n\r\n\
             --x\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <{id}@marketer>\r\nSubject: hi\r\n\r\nHello\r\n\
             --x--\r\n"
        );
        let report = read_report(raw.as_bytes()).unwrap();
        assert_eq!(report.mail_id, Some(id));
        assert_eq!(report.recipients[0].recipient, "bo@example.com");
        assert_eq!(report.recipients[0].diagnostic, "");
        assert!(report.recipients[0].permanent());
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        assert!(read_report(b"Subject: hello\r\n\r\njust a note").unwrap_err().contains("delivery-status"));
        assert!(read_report(b"").is_err());
        assert!(read_report(&vec![b'a'; MAX_BOUNCE_BYTES + 1]).unwrap_err().contains("larger"));
        assert_eq!(outbox_id("<not-ours@example.com>"), None);
    }
}
