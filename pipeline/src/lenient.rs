//! Reading a model's structured answer the way models write them, then
//! holding it to its schema.
//!
//! Reading tolerates what models do: a Markdown fence or a sentence around
//! the JSON, raw control characters (a line break) inside strings. The
//! schema the model was given is then the rule book, walked once over the
//! answer: what can be fixed without asking again is fixed and said
//! ([`Checked::adjustments`]: text trimmed, over-long text cut at a word,
//! blank and repeated list items dropped, extra items and unknown fields
//! dropped, numbers clamped into range); what cannot is listed, every
//! problem at once ([`Checked::problems`]), for the repair prompt.
//!
//! The walker knows the keywords the pipeline's schemas use (`type`,
//! `properties`, `required`, `additionalProperties`, `items`, `minLength`,
//! `maxLength`, `minItems`, `maxItems`, `minimum`, `maximum`, `enum`); a
//! test holds every pipeline schema to that list, so no rule is silently
//! skipped.

use serde_json::{Map, Value};

/// Keywords [`check`] enforces or that carry no rule.
pub const KNOWN_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "enum",
    "description",
    "format",
];

/// An answer read and held to its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub value: Value,
    /// What was fixed, for people ("title: cut from 74 to 58 characters").
    pub adjustments: Vec<String>,
    /// What is still wrong, for the model ("outline: needs at least 3 items,
    /// has 1").
    pub problems: Vec<String>,
}

/// Reads the JSON document in `text` (see the module doc); the error says
/// what is wrong with it in words a model can act on.
pub fn read(text: &str) -> Result<Value, String> {
    let json = extract(text);
    let escaped = escape_control_characters(json);
    serde_json::from_str(&escaped).map_err(|e| {
        if e.is_eof() {
            format!("the JSON ends too early ({e}): it is incomplete")
        } else {
            format!("the answer is not valid JSON ({e})")
        }
    })
}

/// The JSON document in an answer: inside a Markdown fence, or from the
/// first `{` to the last `}` when a sentence surrounds it.
fn extract(text: &str) -> &str {
    let mut trimmed = text.trim();
    if let Some(fenced) = trimmed.strip_prefix("```") {
        let body = fenced.split_once('\n').map_or(fenced, |(_, rest)| rest);
        trimmed = body.rsplit_once("```").map_or(body, |(inner, _)| inner).trim();
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return trimmed;
    }
    match (trimmed.find('{'), trimmed.rfind('}')) {
        (Some(start), Some(end)) if end > start => &trimmed[start..=end],
        (Some(start), None) => &trimmed[start..],
        _ => trimmed,
    }
}

/// `json` with raw control characters inside strings escaped (JSON forbids
/// them; small models write line breaks into strings).
fn escape_control_characters(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.chars().any(|c| u32::from(c) < 0x20 && c != ' ') {
        return json.into();
    }
    let mut out = String::with_capacity(json.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            } else if u32::from(c) < 0x20 {
                match c {
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    other => out.push_str(&format!("\\u{:04x}", u32::from(other))),
                }
                continue;
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    out.into()
}

/// Holds `value` to `schema`, fixing what can be fixed.
pub fn check(mut value: Value, schema: &Value) -> Checked {
    let mut checked = Checked { value: Value::Null, adjustments: Vec::new(), problems: Vec::new() };
    walk(&mut value, schema, "", &mut checked);
    checked.value = value;
    checked
}

fn label(path: &str) -> &str {
    if path.is_empty() { "the answer" } else { path }
}

fn walk(value: &mut Value, schema: &Value, path: &str, out: &mut Checked) {
    let kind = schema.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "object" => object(value, schema, path, out),
        "array" => array(value, schema, path, out),
        "string" => string(value, schema, path, out),
        "integer" | "number" => number(value, schema, path, kind == "integer", out),
        "boolean" if !value.is_boolean() => {
            out.problems.push(format!("{}: must be true or false", label(path)));
        }
        _ => {}
    }
}

fn object(value: &mut Value, schema: &Value, path: &str, out: &mut Checked) {
    let Some(fields) = value.as_object_mut() else {
        out.problems.push(format!("{}: must be a JSON object", label(path)));
        return;
    };
    let empty = Map::new();
    let properties = schema.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        let unknown: Vec<String> = fields.keys().filter(|k| !properties.contains_key(*k)).cloned().collect();
        for key in unknown {
            fields.remove(&key);
            out.adjustments.push(format!("{}: dropped the unknown field {key:?}", label(path)));
        }
    }
    for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        if let Some(name) = required.as_str()
            && !fields.contains_key(name)
        {
            out.problems.push(format!("{}: is missing", join(path, name)));
        }
    }
    for (name, field_schema) in properties {
        if let Some(field) = fields.get_mut(name) {
            walk(field, field_schema, &join(path, name), out);
        }
    }
}

fn array(value: &mut Value, schema: &Value, path: &str, out: &mut Checked) {
    let Some(items) = value.as_array_mut() else {
        out.problems.push(format!("{}: must be a list", label(path)));
        return;
    };
    let item_schema = schema.get("items");
    let strings = item_schema.and_then(|s| s.get("type")).and_then(Value::as_str) == Some("string");
    // As many as asked, before blank and repeated ones are dropped: fewer
    // different ones then is a weaker answer, not a broken one.
    let given = items.len();
    if strings {
        let before = items.len();
        items.retain(|v| v.as_str().is_none_or(|s| !s.trim().is_empty()));
        if items.len() < before {
            out.adjustments.push(format!("{path}: dropped {} empty item(s)", before - items.len()));
        }
        let mut seen = std::collections::HashSet::new();
        let before = items.len();
        items.retain(|v| v.as_str().is_none_or(|s| seen.insert(s.trim().to_lowercase())));
        if items.len() < before {
            out.adjustments.push(format!("{path}: dropped {} repeated item(s)", before - items.len()));
        }
    }
    if let Some(max) = bound(schema, "maxItems")
        && items.len() > max
    {
        out.adjustments.push(format!("{path}: kept the first {max} of {} items", items.len()));
        items.truncate(max);
    }
    if let Some(min) = bound(schema, "minItems")
        && items.len() < min
    {
        if given >= min && !items.is_empty() {
            out.adjustments
                .push(format!("{path}: {} different item(s), fewer than the {min} asked", items.len()));
        } else {
            out.problems.push(format!(
                "{path}: needs at least {min} non-empty, different items, but has {}",
                items.len()
            ));
        }
    }
    if let Some(item_schema) = item_schema {
        for (i, item) in items.iter_mut().enumerate() {
            walk(item, item_schema, &format!("{path}[{i}]"), out);
        }
    }
}

fn string(value: &mut Value, schema: &Value, path: &str, out: &mut Checked) {
    let text = match value {
        Value::String(text) => text,
        Value::Number(_) | Value::Bool(_) => {
            *value = Value::String(value.to_string());
            let Value::String(text) = value else { return };
            text
        }
        _ => {
            out.problems.push(format!("{}: must be a string", label(path)));
            return;
        }
    };
    let trimmed = text.trim();
    if trimmed.len() != text.len() {
        *text = trimmed.to_owned();
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        let found = allowed.iter().filter_map(Value::as_str).find(|a| a.eq_ignore_ascii_case(text));
        match found {
            Some(exact) => *text = exact.to_owned(),
            None => {
                let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                out.problems.push(format!("{path}: must be one of {}, not {text:?}", names.join(", ")));
            }
        }
        return;
    }
    let count = text.chars().count();
    if let Some(max) = bound(schema, "maxLength")
        && count > max
    {
        *text = cut_at_word(text, max);
        out.adjustments.push(format!("{path}: cut from {count} to {} characters", text.chars().count()));
    }
    if let Some(min) = bound(schema, "minLength") {
        let count = text.chars().count();
        if count < min {
            out.problems.push(if count == 0 {
                format!("{path}: must not be empty (at least {min} characters)")
            } else {
                format!("{path}: must be at least {min} characters, but is {count}")
            });
        }
    }
}

fn number(value: &mut Value, schema: &Value, path: &str, integer: bool, out: &mut Checked) {
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let Some(mut n) = parsed.filter(|n| n.is_finite()) else {
        out.problems.push(format!("{path}: must be a number"));
        return;
    };
    let original = n;
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        n = n.max(min);
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        n = n.min(max);
    }
    if integer {
        n = n.round();
    }
    if (n - original).abs() > f64::EPSILON {
        out.adjustments.push(format!("{path}: {original} brought into range as {n}"));
    }
    // Integers stay integers on the wire (serde reads `3.0` as no u32).
    *value = if integer {
        #[allow(clippy::cast_possible_truncation)] // clamped and rounded above
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    };
}

fn bound(schema: &Value, keyword: &str) -> Option<usize> {
    schema.get(keyword).and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok())
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

/// At most `max` characters of `text`, cut after a whole word where one
/// ends in the second half, without trailing punctuation of a cut clause.
pub fn cut_at_word(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let prefix: String = text.chars().take(max).collect();
    let next_is_space = text.chars().nth(max).is_some_and(char::is_whitespace);
    let cut = if next_is_space {
        prefix.len()
    } else {
        match prefix.rfind(char::is_whitespace) {
            Some(i) if prefix[..i].chars().count() >= max / 2 => i,
            _ => prefix.len(),
        }
    };
    prefix[..cut].trim_end().trim_end_matches([',', ';', ':', '-', '–']).trim_end().to_owned()
}

/// The longest answer `schema` allows, in characters of compact JSON, or
/// `None` when some string or list in it is unbounded: what an output
/// budget must fit (a model that loops fills every field to its limit).
pub fn max_chars(schema: &Value) -> Option<usize> {
    match schema.get("type").and_then(Value::as_str).unwrap_or("") {
        "object" => {
            let properties = schema.get("properties").and_then(Value::as_object)?;
            let mut total = 2;
            for (name, field) in properties {
                // "name": value,
                total += name.len() + 4 + max_chars(field)?;
            }
            Some(total)
        }
        "array" => {
            let items = bound(schema, "maxItems")?;
            Some(2 + items * (max_chars(schema.get("items")?)? + 1))
        }
        "string" => match schema.get("enum").and_then(Value::as_array) {
            Some(values) => values.iter().filter_map(Value::as_str).map(|v| v.len() + 2).max(),
            // Quotes, and room for escapes.
            None => bound(schema, "maxLength").map(|n| n + n / 10 + 2),
        },
        // A number as a model writes one in range: a few digits.
        "integer" | "number" => Some(8),
        "boolean" => Some(5),
        _ => None,
    }
}

/// Every keyword a schema uses that [`check`] does not know (for tests).
pub fn unknown_keywords(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_unknown(schema, &mut found);
    found
}

fn collect_unknown(schema: &Value, found: &mut Vec<String>) {
    let Some(fields) = schema.as_object() else { return };
    for (key, value) in fields {
        if !KNOWN_KEYWORDS.contains(&key.as_str()) {
            found.push(key.clone());
        }
        match key.as_str() {
            "properties" => {
                for sub in value.as_object().into_iter().flat_map(Map::values) {
                    collect_unknown(sub, found);
                }
            }
            "items" => collect_unknown(value, found),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_are_read_as_models_write_them() {
        assert_eq!(read("{\"a\": 1}").unwrap(), json!({"a": 1}));
        assert_eq!(
            read("Sure! Here it is:\n```json\n{\"a\": 1}\n```\nAnything else?").unwrap(),
            json!({"a": 1})
        );
        assert_eq!(read("The plan: {\"a\": \"x\"} as asked.").unwrap(), json!({"a": "x"}));
        // A raw line break and tab inside a string.
        assert_eq!(read("{\"a\": \"one\ntwo\tthree\"}").unwrap(), json!({"a": "one\ntwo\tthree"}));
        // Outside strings, whitespace stays whitespace.
        assert_eq!(read("{\n\t\"a\": \"b\\\"\n\"\n}").unwrap(), json!({"a": "b\"\n"}));
        let cut = read("{\"a\": \"unfinish").unwrap_err();
        assert!(cut.contains("incomplete"), "{cut}");
        let junk = read("no json here").unwrap_err();
        assert!(junk.contains("not valid JSON"), "{junk}");
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["title", "outline", "intent", "score"],
            "properties": {
                "title": { "type": "string", "minLength": 10, "maxLength": 30 },
                "outline": {
                    "type": "array", "minItems": 3, "maxItems": 4,
                    "items": { "type": "string", "minLength": 2, "maxLength": 20 }
                },
                "intent": { "type": "string", "enum": ["informational", "commercial"] },
                "score": { "type": "number", "minimum": 0, "maximum": 10 },
                "count": { "type": "integer", "minimum": 1, "maximum": 5 }
            }
        })
    }

    #[test]
    fn what_can_be_fixed_is_fixed_and_said() {
        let answer = json!({
            "title": "  A title that runs on much longer than allowed  ",
            "outline": ["one", " ", "two", "One", "three", "four", "five"],
            "intent": "Commercial",
            "score": 11,
            "count": "4.6",
            "extra": true
        });
        let checked = check(answer, &schema());
        assert!(checked.problems.is_empty(), "{:?}", checked.problems);
        assert_eq!(
            checked.value,
            json!({
                "title": "A title that runs on much",
                "outline": ["one", "two", "three", "four"],
                "intent": "commercial",
                "score": 10.0,
                "count": 5
            })
        );
        assert_eq!(
            checked.adjustments,
            [
                "the answer: dropped the unknown field \"extra\"",
                "title: cut from 45 to 25 characters",
                "outline: dropped 1 empty item(s)",
                "outline: dropped 1 repeated item(s)",
                "outline: kept the first 4 of 5 items",
                "score: 11 brought into range as 10",
                "count: 4.6 brought into range as 5",
            ]
        );
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let answer = json!({ "title": "Short", "outline": ["", "x"], "intent": "fun", "score": "high" });
        // Enough items given, but two the same: kept, and said.
        let repeated = check(
            json!({ "title": "Long enough title", "outline": ["ab", "cd", "AB"], "intent": "commercial", "score": 1 }),
            &schema(),
        );
        assert!(repeated.problems.is_empty(), "{:?}", repeated.problems);
        assert_eq!(
            repeated.adjustments.last().unwrap(),
            "outline: 2 different item(s), fewer than the 3 asked"
        );
        let checked = check(answer, &schema());
        assert_eq!(
            checked.problems,
            [
                "title: must be at least 10 characters, but is 5",
                "outline: needs at least 3 non-empty, different items, but has 1",
                "outline[0]: must be at least 2 characters, but is 1",
                "intent: must be one of informational, commercial, not \"fun\"",
                "score: must be a number",
            ]
        );
        let missing = check(json!({}), &schema());
        assert_eq!(missing.problems.len(), 4, "{:?}", missing.problems);
        assert_eq!(check(json!([1]), &schema()).problems, ["the answer: must be a JSON object"]);
    }

    #[test]
    fn the_longest_answer_is_known_when_everything_is_bounded() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": { "type": "string", "maxLength": 10 },
                "b": { "type": "array", "maxItems": 2, "items": { "type": "string", "maxLength": 10 } },
                "c": { "type": "integer" }
            }
        });
        // {"a":"...","b":["...","..."],"c":12345678}
        assert_eq!(max_chars(&schema), Some(2 + (1 + 4 + 13) + (1 + 4 + 2 + 2 * 14) + (1 + 4 + 8)));
        let unbounded = json!({ "type": "object", "properties": { "a": { "type": "string" } } });
        assert_eq!(max_chars(&unbounded), None);
    }

    #[test]
    fn cuts_end_at_words() {
        assert_eq!(cut_at_word("short", 10), "short");
        assert_eq!(cut_at_word("one two three", 7), "one two");
        assert_eq!(cut_at_word("one two, three", 9), "one two");
        assert_eq!(cut_at_word("abcdefghij", 4), "abcd");
        assert_eq!(cut_at_word("héllo wörld", 8), "héllo");
    }
}
