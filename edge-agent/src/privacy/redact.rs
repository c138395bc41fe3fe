//! PHI and personal identifiers, replaced by typed placeholders: US social
//! security numbers, medical record numbers, e-mail addresses, phone
//! numbers, dates of birth, street addresses, and the policy's own
//! patterns. Prices, years, ZIP codes and listing numbers are left alone.

use std::collections::BTreeMap;

use regex::Regex;

/// One kind of identifier: its placeholder name and how to find it. When
/// the pattern has a capture group named `v`, only that part is replaced
/// (so "DOB: 01/02/1980" keeps "DOB: ").
#[derive(Debug, Clone)]
struct Kind {
    name: String,
    pattern: Regex,
    /// A check the pattern cannot express (the regex crate has no
    /// look-around).
    check: Option<Check>,
}

/// Whether a match really is an identifier of its kind.
type Check = fn(&str) -> bool;

/// Finds and replaces identifiers.
#[derive(Debug, Clone)]
pub struct Redactor {
    kinds: Vec<Kind>,
}

const STREET: &str = "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|\
                      Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy";
const MONTHS: &str = "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec";

/// The SSA never issues area 000, 666 or 900-999, group 00 or serial 0000.
fn plausible_ssn(value: &str) -> bool {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 9 {
        return false;
    }
    let (area, group, serial) = (&digits[0..3], &digits[3..5], &digits[5..9]);
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// A custom pattern from the policy that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("the redaction pattern {name} is not a valid regular expression: {reason}")]
pub struct PatternError {
    pub name: String,
    pub reason: String,
}

impl Redactor {
    /// The built-in kinds plus `custom` (name, regular expression).
    pub fn new(custom: &[(String, String)]) -> Result<Self, PatternError> {
        let built_in: Vec<(&str, String, Option<Check>)> = vec![
            ("SSN", r"\b(?P<v>\d{3}-\d{2}-\d{4})\b".into(), Some(plausible_ssn)),
            (
                "SSN",
                r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\s*[:#]?\s*(?P<v>\d{9})\b".into(),
                Some(plausible_ssn),
            ),
            (
                "MRN",
                r"(?i)\b(?:mrn|medical record(?: number| no\.?)?)\s*[:#]?\s*(?P<v>[a-z]{0,3}-?\d{5,12})\b"
                    .into(),
                None,
            ),
            ("EMAIL", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b".into(), None),
            ("PHONE", r"(?P<v>(?:\+1[\s.-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4})\b".into(), None),
            (
                "DOB",
                format!(
                    r"(?i)\b(?:dob|d\.o\.b\.|date of birth|birth ?date|born(?: on)?)\s*[:#]?\s*(?P<v>\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|\d{{4}}-\d{{2}}-\d{{2}}|(?:{MONTHS})[a-z]*\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})"
                ),
                None,
            ),
            (
                "ADDRESS",
                format!(
                    r"\b\d{{1,6}}\s+(?:[A-Z][A-Za-z'-]*\.?\s+){{1,4}}(?:{STREET})\b\.?(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|#)\.?\s*#?\w+)?"
                ),
                None,
            ),
        ];
        let mut kinds = Vec::with_capacity(built_in.len() + custom.len());
        for (name, pattern, check) in built_in {
            let pattern = Regex::new(&pattern)
                .map_err(|e| PatternError { name: name.to_owned(), reason: e.to_string() })?;
            kinds.push(Kind { name: name.to_owned(), pattern, check });
        }
        for (name, pattern) in custom {
            let compiled = Regex::new(pattern)
                .map_err(|e| PatternError { name: name.clone(), reason: e.to_string() })?;
            kinds.push(Kind { name: name.to_ascii_uppercase(), pattern: compiled, check: None });
        }
        Ok(Self { kinds })
    }

    /// The spans to replace in `text`, with their kinds, in order and not
    /// overlapping (the earlier, then the longer, wins).
    fn spans(&self, text: &str) -> Vec<(usize, usize, &str)> {
        let mut found: Vec<(usize, usize, &str)> = Vec::new();
        for kind in &self.kinds {
            for captures in kind.pattern.captures_iter(text) {
                let Some(m) = captures.name("v").or_else(|| captures.get(0)) else { continue };
                if m.as_str().is_empty() || kind.check.is_some_and(|check| !check(m.as_str())) {
                    continue;
                }
                found.push((m.start(), m.end(), kind.name.as_str()));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut chosen: Vec<(usize, usize, &str)> = Vec::with_capacity(found.len());
        for span in found {
            if chosen.last().is_none_or(|last| span.0 >= last.1) {
                chosen.push(span);
            }
        }
        chosen
    }

    /// `text` with every identifier replaced by `[KIND]`; counts per kind
    /// are added to `counts`.
    pub fn redact(&self, text: &str, counts: &mut BTreeMap<String, u64>) -> String {
        let spans = self.spans(text);
        if spans.is_empty() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, kind) in spans {
            out.push_str(&text[at..start]);
            out.push('[');
            out.push_str(kind);
            out.push(']');
            *counts.entry(kind.to_owned()).or_default() += 1;
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// Where streamed text may be cut: before the last `holdback` bytes, at
    /// a space, and never inside an identifier found so far. What comes
    /// after the cut waits for more text, so an identifier split across
    /// batches is still seen whole.
    pub fn safe_cut(&self, text: &str, holdback: usize) -> usize {
        if text.len() <= holdback {
            return 0;
        }
        let mut cut = text.len() - holdback;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        cut = text[..cut].rfind(char::is_whitespace).map_or(0, |i| i + 1);
        for (start, end, _) in self.spans(text) {
            if start < cut && cut < end {
                cut = start;
            }
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> (String, BTreeMap<String, u64>) {
        let mut counts = BTreeMap::new();
        let redactor = Redactor::new(&[("PATIENT".into(), r"\bPT-\d{6}\b".into())]).unwrap();
        (redactor.redact(text, &mut counts), counts)
    }

    #[test]
    fn identifiers_are_replaced_by_their_kind() {
        let cases = [
            ("SSN 123-45-6789 on file", "SSN [SSN] on file"),
            ("social security number: 123456789.", "social security number: [SSN]."),
            ("MRN: 00482913", "MRN: [MRN]"),
            ("medical record no. AB-1234567 updated", "medical record no. [MRN] updated"),
            ("write to jane.doe+work@clinic.example.org today", "write to [EMAIL] today"),
            ("call (555) 123-4567 or 555-987-6543", "call [PHONE] or [PHONE]"),
            ("or +1 555 123 4567, or 555.123.4567", "or [PHONE], or [PHONE]"),
            ("DOB: 04/12/1961", "DOB: [DOB]"),
            ("born March 3, 1975 in Ohio", "born [DOB] in Ohio"),
            ("date of birth 1961-04-12", "date of birth [DOB]"),
            ("lives at 1420 North Oak Street, Apt 4B now", "lives at [ADDRESS] now"),
            ("at 7 Elm Ave.", "at [ADDRESS]"),
            ("patient PT-004512 seen", "patient [PATIENT] seen"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input).0, expected, "{input}");
        }
        let (_, counts) = redact("123-45-6789 and 234-56-7890, jane@x.org");
        assert_eq!(counts.get("SSN"), Some(&2));
        assert_eq!(counts.get("EMAIL"), Some(&1));
    }

    #[test]
    fn prices_years_zip_codes_and_listing_numbers_are_left_alone() {
        let untouched = [
            "Listed at $450,000, reduced from $1,250,000.",
            "Built in 1998, renovated in 2024.",
            "Springfield, IL 62704 and Boston 02139",
            "MLS# 4521987 and listing 2024-118",
            "3 beds, 2.5 baths, 1,850 sq ft on a 0.25 acre lot",
            "Open house 10/12 from 1-4pm",
            "Invalid SSNs: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567",
            "Order 12345 shipped in 3 days; 2 Car Garage; 4 Bedroom Home",
            "Version 1.2.3 released; call us at extension 4567",
        ];
        for text in untouched {
            assert_eq!(redact(text).0, text, "false positive in {text:?}");
        }
    }

    #[test]
    fn streams_are_cut_only_where_no_identifier_can_straddle() {
        let redactor = Redactor::new(&[]).unwrap();
        let text = "Reach the patient at 555-123-4567 tomorrow morning please";
        let cut = redactor.safe_cut(text, 20);
        assert!(cut <= text.find("tomorrow").unwrap());
        assert!(!(text.find("555").unwrap() < cut && cut < text.find("4567").unwrap() + 4));
        assert_eq!(redactor.safe_cut("short", 20), 0);
    }

    #[test]
    fn a_bad_custom_pattern_is_named() {
        let error = Redactor::new(&[("BROKEN".into(), "(unclosed".into())]).unwrap_err();
        assert_eq!(error.name, "BROKEN");
    }
}
