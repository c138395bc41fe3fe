//! Wall times and instants. People schedule in local wall time; posts are
//! stored as an instant plus the IANA zone they were scheduled in. The zone
//! database is jiff's own, compiled into the binary: the server's local
//! time zone is never consulted.
//!
//! A wall time that does not exist (clocks spring forward over it) or exists
//! twice (clocks fall back) is an error that says so, unless the caller
//! chose which of the two (`Fold::Earlier`/`Later`). Posting slots are
//! local times, so a 09:00 slot is 09:00 on both sides of a change.

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::domain::Timestamp;
use crate::store::{PostingSlot, SlotDay};

/// A zone by its IANA name, or the reason it is not one.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err("give an IANA time zone name, e.g. Europe/Berlin or America/New_York".into());
    }
    TimeZone::get(name).map_err(|_| {
        format!("{name:?} is not an IANA time zone name; use e.g. Europe/Berlin or America/New_York")
    })
}

/// Which of two instants a wall time that occurs twice means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fold {
    Earlier,
    Later,
}

fn to_stamp(ts: jiff::Timestamp) -> Result<Timestamp, String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts.as_microsecond()) * 1000)
        .map(Timestamp::from_datetime)
        .map_err(|_| "the time is out of range".to_owned())
}

fn to_jiff(ts: Timestamp) -> jiff::Timestamp {
    let micros = ts.as_datetime().unix_timestamp_nanos() / 1000;
    jiff::Timestamp::from_microsecond(i64::try_from(micros).unwrap_or(0))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Parses `YYYY-MM-DDTHH:MM[:SS]` as a wall time in `zone_name`.
pub fn local_to_instant(local: &str, zone_name: &str, fold: Option<Fold>) -> Result<Timestamp, String> {
    let tz = zone(zone_name)?;
    let dt: DateTime = local.trim().parse().map_err(|_| {
        format!("{local:?} is not a local date and time; write it as YYYY-MM-DDTHH:MM, e.g. 2027-03-14T09:00")
    })?;
    if !(2000..=2999).contains(&dt.year()) {
        return Err("the year must be between 2000 and 2999".into());
    }
    let ambiguous = tz.to_ambiguous_zoned(dt);
    let name = zone_name.trim();
    let hm = |t: jiff::civil::Time| format!("{:02}:{:02}", t.hour(), t.minute());
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } => {}
        AmbiguousOffset::Gap { before, after } => {
            let jump = (after.seconds() - before.seconds()) / 60;
            return Err(format!(
                "{} {} does not exist in {name}: the clocks go forward {} minutes that night; \
                 choose a time before {} or from {} on",
                dt.date(),
                hm(dt.time()),
                jump,
                hm(dt.time()),
                hm(dt.time().saturating_add(jiff::SignedDuration::from_mins(i64::from(jump)))),
            ));
        }
        AmbiguousOffset::Fold { before, after } => {
            let chosen = match fold {
                Some(Fold::Earlier) => ambiguous.earlier(),
                Some(Fold::Later) => ambiguous.later(),
                None => {
                    return Err(format!(
                        "{} {} happens twice in {name} (UTC{} and then UTC{}, when the clocks go back); \
                         say which with \"fold\": \"earlier\" or \"later\"",
                        dt.date(),
                        hm(dt.time()),
                        before,
                        after
                    ));
                }
            };
            return chosen.map_err(|e| e.to_string()).and_then(|z| to_stamp(z.timestamp()));
        }
    }
    let zoned = ambiguous.compatible().map_err(|e| e.to_string())?;
    to_stamp(zoned.timestamp())
}

/// An instant as local wall time in a zone (`YYYY-MM-DDTHH:MM`).
pub fn instant_to_local(at: Timestamp, zone_name: &str) -> String {
    let tz = zone(zone_name).unwrap_or(TimeZone::UTC);
    let z = to_jiff(at).to_zoned(tz);
    z.datetime().strftime("%Y-%m-%dT%H:%M").to_string()
}

/// The local calendar date of an instant in a zone.
pub fn local_date(at: Timestamp, tz: &TimeZone) -> Date {
    to_jiff(at).to_zoned(tz.clone()).date()
}

/// The instant a local date and minute of the day mean in a zone (a time
/// in a gap moves forward by the gap, as calendars do).
pub fn at_local(date: Date, minutes: u16, tz: &TimeZone) -> Option<Timestamp> {
    let time =
        jiff::civil::Time::new(i8::try_from(minutes / 60).ok()?, i8::try_from(minutes % 60).ok()?, 0, 0)
            .ok()?;
    let zoned = tz.to_ambiguous_zoned(date.to_datetime(time)).compatible().ok()?;
    to_stamp(zoned.timestamp()).ok()
}

fn slot_weekday(day: SlotDay) -> Weekday {
    match day {
        SlotDay::Mon => Weekday::Monday,
        SlotDay::Tue => Weekday::Tuesday,
        SlotDay::Wed => Weekday::Wednesday,
        SlotDay::Thu => Weekday::Thursday,
        SlotDay::Fri => Weekday::Friday,
        SlotDay::Sat => Weekday::Saturday,
        SlotDay::Sun => Weekday::Sunday,
    }
}

/// The instants of an account's slots from `from` (inclusive) to `to`
/// (exclusive), in order.
pub fn slot_instants(
    slots: &[PostingSlot],
    zone_name: &str,
    from: Timestamp,
    to: Timestamp,
) -> Vec<Timestamp> {
    let Ok(tz) = zone(zone_name) else { return Vec::new() };
    if slots.is_empty() || to <= from {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut day = local_date(from, &tz);
    let last = local_date(to, &tz);
    // At most a year of days: the callers ask for weeks.
    for _ in 0..370 {
        if day > last {
            break;
        }
        for slot in slots.iter().filter(|s| slot_weekday(s.weekday) == day.weekday()) {
            if let Some(at) = at_local(day, slot.time.0, &tz)
                && at >= from
                && at < to
            {
                out.push(at);
            }
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The first slot at or after `after` that no post takes (`taken` holds the
/// account's scheduled instants), looking up to eight weeks ahead.
pub fn next_free_slot(
    slots: &[PostingSlot],
    zone_name: &str,
    after: Timestamp,
    taken: &[Timestamp],
) -> Option<Timestamp> {
    let horizon = Timestamp::from_datetime(after.as_datetime() + time::Duration::weeks(8));
    slot_instants(slots, zone_name, after, horizon).into_iter().find(|at| !taken.contains(at))
}

/// Hours in a week.
pub const HOURS_PER_WEEK: u16 = 168;

/// The same local wall time `weeks` weeks before `at` in `tz` (an hour
/// of the week stays the same hour across daylight saving).
pub fn weeks_before(at: Timestamp, weeks: i64, tz: &TimeZone) -> Option<Timestamp> {
    let zoned = to_jiff(at).to_zoned(tz.clone());
    let earlier = zoned.checked_sub(jiff::Span::new().try_weeks(weeks).ok()?).ok()?;
    to_stamp(earlier.timestamp()).ok()
}

/// The local hour of the week of an instant in a zone: Monday 00:00–00:59
/// is 0, Sunday 23:00–23:59 is 167.
pub fn hour_of_week(at: Timestamp, tz: &TimeZone) -> u16 {
    let local = to_jiff(at).to_zoned(tz.clone());
    let day = u16::from(local.weekday().to_monday_zero_offset().unsigned_abs());
    day * 24 + u16::from(local.hour().unsigned_abs())
}

/// The first instant after `after` that starts local hour `how` of the
/// week in `tz` (an hour the clocks skip that night starts when they land).
pub fn next_hour_of_week(how: u16, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
    if how >= HOURS_PER_WEEK {
        return None;
    }
    let mut day = local_date(after, tz);
    for _ in 0..9 {
        let weekday = u16::from(day.weekday().to_monday_zero_offset().unsigned_abs());
        if weekday == how / 24
            && let Some(at) = at_local(day, (how % 24) * 60, tz)
            && at > after
        {
            return Some(at);
        }
        day = day.tomorrow().ok()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SlotTime;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn wall_times_become_instants_in_their_zone() {
        assert_eq!(
            local_to_instant("2027-01-15T09:00", "Europe/Berlin", None).unwrap(),
            at("2027-01-15T08:00:00Z")
        );
        assert_eq!(
            local_to_instant("2027-07-15T09:00", "Europe/Berlin", None).unwrap(),
            at("2027-07-15T07:00:00Z")
        );
        assert_eq!(instant_to_local(at("2027-07-15T07:00:00Z"), "Europe/Berlin"), "2027-07-15T09:00");
    }

    #[test]
    fn a_time_the_clocks_skip_is_refused_with_the_reason() {
        // 2027-03-14: the US springs forward from 02:00 to 03:00.
        let err = local_to_instant("2027-03-14T02:30", "America/New_York", None).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        assert!(err.contains("forward 60 minutes"), "{err}");
        assert!(err.contains("from 03:30 on"), "{err}");
    }

    #[test]
    fn a_time_that_happens_twice_needs_a_choice() {
        // 2027-11-07: the US falls back from 02:00 to 01:00.
        let err = local_to_instant("2027-11-07T01:30", "America/New_York", None).unwrap_err();
        assert!(err.contains("happens twice"), "{err}");
        let earlier = local_to_instant("2027-11-07T01:30", "America/New_York", Some(Fold::Earlier)).unwrap();
        let later = local_to_instant("2027-11-07T01:30", "America/New_York", Some(Fold::Later)).unwrap();
        assert_eq!(earlier, at("2027-11-07T05:30:00Z"));
        assert_eq!(later, at("2027-11-07T06:30:00Z"));
    }

    #[test]
    fn bad_zones_and_times_are_named() {
        assert!(local_to_instant("2027-01-01T09:00", "Mars/Olympus", None).unwrap_err().contains("IANA"));
        assert!(local_to_instant("tomorrow", "UTC", None).unwrap_err().contains("YYYY-MM-DDTHH:MM"));
        assert!(local_to_instant("2027-02-30T09:00", "UTC", None).is_err());
    }

    #[test]
    fn a_nine_oclock_slot_stays_at_nine_across_daylight_saving() {
        let slots = [
            PostingSlot { weekday: SlotDay::Fri, time: SlotTime::parse("09:00").unwrap() },
            PostingSlot { weekday: SlotDay::Mon, time: SlotTime::parse("09:00").unwrap() },
        ];
        // Europe/Berlin changes on Sunday 2027-03-28.
        let found =
            slot_instants(&slots, "Europe/Berlin", at("2027-03-25T00:00:00Z"), at("2027-03-30T00:00:00Z"));
        assert_eq!(found, vec![at("2027-03-26T08:00:00Z"), at("2027-03-29T07:00:00Z")]);
        for instant in found {
            assert!(instant_to_local(instant, "Europe/Berlin").ends_with("T09:00"));
        }
        // The next free slot skips a taken one.
        let next = next_free_slot(
            &slots,
            "Europe/Berlin",
            at("2027-03-25T00:00:00Z"),
            &[at("2027-03-26T08:00:00Z")],
        );
        assert_eq!(next, Some(at("2027-03-29T07:00:00Z")));
    }

    #[test]
    fn hours_of_the_week_follow_local_time_across_daylight_saving() {
        let ny = zone("America/New_York").unwrap();
        // Friday 2027-03-12 09:00 EST and Monday 2027-03-15 09:00 EDT.
        assert_eq!(hour_of_week(at("2027-03-12T14:00:00Z"), &ny), 4 * 24 + 9);
        assert_eq!(hour_of_week(at("2027-03-15T13:00:00Z"), &ny), 9);
        // Sunday 09:00 after the change (2027-03-14) is 13:00 UTC, not 14:00.
        let sunday_nine = 6 * 24 + 9;
        assert_eq!(
            next_hour_of_week(sunday_nine, &ny, at("2027-03-12T00:00:00Z")),
            Some(at("2027-03-14T13:00:00Z"))
        );
        // The skipped 02:00 hour starts when the clocks land at 03:00.
        assert_eq!(
            next_hour_of_week(6 * 24 + 2, &ny, at("2027-03-12T00:00:00Z")),
            Some(at("2027-03-14T07:00:00Z"))
        );
        // Strictly after: the same hour a week later.
        assert_eq!(next_hour_of_week(9, &ny, at("2027-03-15T13:00:00Z")), Some(at("2027-03-22T13:00:00Z")));
        assert_eq!(next_hour_of_week(168, &ny, at("2027-03-15T13:00:00Z")), None);
    }
}
