//! Formatting the templates share: times (shown in the reader's time zone
//! by the script; UTC without it), sizes, counts against limits, badges.

use crate::domain::Timestamp;

/// A moment for a `<time>` element: the machine-readable instant, and the
/// text shown until the script puts it in the reader's time zone.
#[derive(Debug, Clone)]
pub struct When {
    pub iso: String,
    pub text: String,
}

impl When {
    pub fn of(at: Timestamp) -> Self {
        let datetime = at.as_datetime();
        Self {
            iso: at.to_rfc3339_fixed(),
            text: format!(
                "{}-{:02}-{:02} {:02}:{:02} UTC",
                datetime.year(),
                u8::from(datetime.month()),
                datetime.day(),
                datetime.hour(),
                datetime.minute()
            ),
        }
    }

    pub fn maybe(at: Option<Timestamp>) -> Option<Self> {
        at.map(Self::of)
    }
}

/// `1.4 MB`, `812 KB`, `96 B`.
pub fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n >= 1024.0 * 1024.0 {
        format!("{:.1} MB", n / 1024.0 / 1024.0)
    } else if n >= 1024.0 {
        format!("{:.0} KB", n / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The CSS class of a status badge.
pub fn badge(status: &str) -> &'static str {
    match status {
        "approved" | "indexed" | "online" | "succeeded" | "active" => "badge good",
        "review" | "pending" | "queued" | "expiring" => "badge warn",
        "generating" | "running" | "assigned" => "badge busy",
        "failed" | "revoked" | "cancelled" | "offline" | "expired" => "badge bad",
        _ => "badge",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(bytes(96), "96 B");
        assert_eq!(bytes(812 * 1024), "812 KB");
        assert_eq!(bytes(1_468_006), "1.4 MB");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        let when = When::of(Timestamp::parse_rfc3339("2026-11-23T07:05:09Z").unwrap());
        assert_eq!(when.text, "2026-11-23 07:05 UTC");
    }
}
