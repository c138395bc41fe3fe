//! UTC instants with microsecond precision.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

/// A UTC instant, truncated to whole microseconds.
///
/// PostgreSQL's `timestamptz` keeps microseconds, so truncating on creation
/// makes a value read back from either backend compare equal to the value
/// written. On the wire it is RFC 3339 (`2026-11-22T10:00:00.123456Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ToSchema)]
#[schema(value_type = String, format = DateTime)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub fn from_datetime(value: OffsetDateTime) -> Self {
        let utc = value.to_offset(time::UtcOffset::UTC);
        let micros = utc.microsecond();
        // `replace_microsecond` cannot fail for a value taken from a valid instant.
        Self(utc.replace_microsecond(micros).unwrap_or(utc))
    }

    /// The earliest instant a client may give (the Unix epoch).
    pub const EARLIEST: time::Date = time::macros::date!(1970 - 01 - 01);
    /// The latest day a client may give: far beyond any schedule, far
    /// enough from the end of the representable range that deadlines
    /// computed from it cannot overflow.
    pub const LATEST: time::Date = time::macros::date!(2999 - 12 - 31);

    pub fn parse_rfc3339(value: &str) -> Result<Self, time::error::Parse> {
        OffsetDateTime::parse(value, &Rfc3339).map(Self::from_datetime)
    }

    /// Whether `date` is within what clients may give ([`Self::EARLIEST`]
    /// to [`Self::LATEST`]).
    pub fn date_in_range(date: time::Date) -> bool {
        (Self::EARLIEST..=Self::LATEST).contains(&date)
    }

    pub fn as_datetime(self) -> OffsetDateTime {
        self.0
    }

    /// The calendar day in UTC.
    pub fn date(self) -> time::Date {
        self.0.date()
    }

    /// The start of the next UTC day.
    pub fn next_midnight(self) -> Timestamp {
        let next = self.0.date().next_day().unwrap_or(self.0.date());
        Self(next.midnight().assume_utc())
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// RFC 3339 with exactly six fractional digits and a `Z` suffix. Because the
    /// width is fixed, text comparison orders these strings chronologically,
    /// which the SQLite backend relies on.
    pub fn to_rfc3339_fixed(self) -> String {
        let d = self.0;
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            d.microsecond()
        )
    }
}

/// Arithmetic saturates at the ends of the representable range instead of
/// panicking: a deadline computed from a client's far-future time is "never",
/// not a crash. Client input is range-checked before it gets here
/// ([`Timestamp::EARLIEST`], [`Timestamp::LATEST`]); this is the backstop.
impl std::ops::Add<time::Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: time::Duration) -> Timestamp {
        Self::from_datetime(self.0.checked_add(rhs).unwrap_or(if rhs.is_negative() {
            time::PrimitiveDateTime::MIN.assume_utc()
        } else {
            time::PrimitiveDateTime::MAX.assume_utc()
        }))
    }
}

impl std::ops::Sub<time::Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: time::Duration) -> Timestamp {
        Self::from_datetime(self.0.checked_sub(rhs).unwrap_or(if rhs.is_negative() {
            time::PrimitiveDateTime::MAX.assume_utc()
        } else {
            time::PrimitiveDateTime::MIN.assume_utc()
        }))
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339_fixed())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339_fixed())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let invalid =
            || serde::de::Error::custom("must be an RFC 3339 timestamp such as 2026-01-31T09:00:00Z");
        let parsed = Self::parse_rfc3339(&text).map_err(|_| invalid())?;
        if !Self::date_in_range(parsed.date()) {
            return Err(serde::de::Error::custom(
                "must be an RFC 3339 timestamp between 1970-01-01 and 2999-12-31",
            ));
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_text_sorts_chronologically() {
        let a = Timestamp::parse_rfc3339("2026-01-01T00:00:05Z").unwrap();
        let b = Timestamp::parse_rfc3339("2026-01-01T00:00:05.5Z").unwrap();
        let c = Timestamp::parse_rfc3339("2026-01-01T02:00:05.51+01:00").unwrap();
        assert!(a.to_rfc3339_fixed() < b.to_rfc3339_fixed());
        assert!(b.to_rfc3339_fixed() < c.to_rfc3339_fixed());
        assert_eq!(c.to_rfc3339_fixed(), "2026-01-01T01:00:05.510000Z");
    }

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let far = Timestamp::parse_rfc3339("9999-12-31T23:59:59Z").unwrap();
        assert_eq!((far + time::Duration::days(7)).date().year(), 9999);
        let early = Timestamp::from_datetime(time::PrimitiveDateTime::MIN.assume_utc());
        assert_eq!((early - time::Duration::days(7)).date().year(), -9999);
        assert!(serde_json::from_str::<Timestamp>("\"9999-12-31T23:59:59Z\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("\"2999-12-31T23:59:59Z\"").is_ok());
    }

    #[test]
    fn truncates_to_microseconds() {
        let t = Timestamp::parse_rfc3339("2026-01-01T00:00:00.123456789Z").unwrap();
        assert_eq!(t.to_rfc3339_fixed(), "2026-01-01T00:00:00.123456Z");
        let round_trip = Timestamp::parse_rfc3339(&t.to_rfc3339_fixed()).unwrap();
        assert_eq!(round_trip, t);
    }
}
