//! Agent labels: `key=value` pairs that select which agents may run a job.

use std::collections::BTreeMap;

use super::ParseError;

pub const MAX_LABELS: usize = 32;

/// Checks a label set: at most 32 labels; keys of 1-63 characters from
/// `a-z 0-9 . _ - /`; values of up to 255 printable characters.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ParseError> {
    if labels.len() > MAX_LABELS {
        return Err(ParseError::new(format!("must have at most {MAX_LABELS} labels")));
    }
    for (key, value) in labels {
        let key_ok = (1..=63).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b));
        if !key_ok {
            return Err(ParseError::new(format!(
                "label key {key:?} must be 1-63 characters of a-z, 0-9, '.', '_', '-' or '/'"
            )));
        }
        if value.chars().count() > 255 || value.chars().any(char::is_control) {
            return Err(ParseError::new(format!(
                "label {key:?} must have a value of at most 255 printable characters"
            )));
        }
    }
    Ok(())
}

/// Parses `key=value` as typed on a command line.
pub fn parse_label(text: &str) -> Result<(String, String), ParseError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| ParseError::new(format!("label {text:?} must look like key=value")))?;
    let label = BTreeMap::from([(key.trim().to_owned(), value.trim().to_owned())]);
    check_labels(&label)?;
    Ok((key.trim().to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rules() {
        assert!(parse_label("site=berlin").is_ok());
        assert!(parse_label("gpu=").is_ok(), "empty values are allowed");
        assert!(parse_label("k8s.io/zone=eu-1").is_ok());
        for bad in [
            "nokey",
            "=v",
            "Upper=x",
            "sp ace=x",
            &format!("{}=x", "k".repeat(64)),
            &format!("k={}", "v".repeat(256)),
        ] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
        let many: BTreeMap<_, _> = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(check_labels(&many).is_err());
    }
}
