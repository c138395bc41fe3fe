//! What the fake model servers answer (the fake Ollama and the fake
//! OpenAI-compatible server): deterministic text for a request, a value
//! that satisfies a requested JSON schema (types, enums, lengths, ranges,
//! item counts, as schema-constrained decoding would), and answers a test
//! scripted for requests that mention a marker.

use std::collections::VecDeque;

use serde_json::{Value, json};

const WORDS: &[&str] = &[
    "market", "brand", "story", "launch", "growth", "audience", "value", "signal", "craft", "bright",
    "clear", "local", "fresh", "trusted", "simple", "bold", "campaign", "listing", "home", "garden", "light",
    "space", "modern", "quiet", "street", "view", "family", "open", "warm", "coffee", "morning", "team",
];

/// A deterministic source of words and numbers, seeded by a request.
#[derive(Debug, Clone)]
pub struct Words {
    state: u64,
}

impl Words {
    /// Seeded by the request without its transport fields, so the same
    /// request (whatever the order of its keys) gives the same answer.
    pub fn for_request(request: &Value) -> Self {
        let mut identity = request.clone();
        if let Some(object) = identity.as_object_mut() {
            for transport in ["stream", "keep_alive", "stream_options"] {
                object.remove(transport);
            }
        }
        Self { state: fnv(canonical(&identity).as_bytes()) }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state =
            self.state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.state >> 11
    }

    pub fn word(&mut self) -> &'static str {
        WORDS[usize::try_from(self.next_u64() % WORDS.len() as u64).unwrap_or(0)]
    }

    /// `count` tokens of text, the first capitalised, the rest with a
    /// leading space (the way models stream them).
    pub fn tokens(&mut self, count: usize) -> Vec<String> {
        (0..count)
            .map(|i| if i == 0 { capitalise(self.word()) } else { format!(" {}", self.word()) })
            .collect()
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// A value that satisfies `schema`: every property of an object, `enum`
/// members, strings within `minLength`/`maxLength`, numbers within
/// `minimum`/`maximum`, arrays within `minItems`/`maxItems`.
pub fn from_schema(schema: &Value, words: &mut Words) -> Value {
    if let Some(options) = schema.get("enum").and_then(Value::as_array).filter(|o| !o.is_empty()) {
        let index = usize::try_from(words.next_u64() % options.len() as u64).unwrap_or(0);
        return options[index].clone();
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        // ["string", "null"] and the like: the first that is not null.
        Some(Value::Array(kinds)) => {
            kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or("null")
        }
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    let count = |key: &str| schema.get(key).and_then(Value::as_u64).map(|n| usize::try_from(n).unwrap_or(0));
    match kind {
        "object" => {
            let mut object = serde_json::Map::new();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    object.insert(name.clone(), from_schema(property, words));
                }
            }
            Value::Object(object)
        }
        "array" => {
            let item = schema.get("items").cloned().unwrap_or_else(|| json!({ "type": "string" }));
            let min = count("minItems").unwrap_or(0);
            let max = count("maxItems").unwrap_or(usize::MAX);
            let n = min.max(2.min(max));
            Value::Array((0..n).map(|_| from_schema(&item, words)).collect())
        }
        "integer" => {
            let low = number("minimum").unwrap_or(0.0) as i64;
            let high = number("maximum").map_or(low + 10, |h| h as i64).max(low);
            let span = u64::try_from(high - low + 1).unwrap_or(1);
            json!(low + i64::try_from(words.next_u64() % span).unwrap_or(0))
        }
        "number" => {
            let low = number("minimum").unwrap_or(0.0);
            let high = number("maximum").unwrap_or(low + 10.0).max(low);
            let steps = ((high - low) * 2.0).floor() as u64 + 1;
            json!(low + (words.next_u64() % steps) as f64 / 2.0)
        }
        "boolean" => json!(words.next_u64().is_multiple_of(2)),
        "null" => Value::Null,
        _ => {
            let min = count("minLength").unwrap_or(0);
            let max = count("maxLength");
            let mut text = capitalise(words.word());
            while text.chars().count() < min.max(6) && max.is_none_or(|m| text.chars().count() < m) {
                text.push(' ');
                text.push_str(words.word());
            }
            if let Some(max) = max {
                text = text.chars().take(max).collect::<String>().trim_end().to_owned();
            }
            while text.chars().count() < min {
                text.push('x');
            }
            json!(text)
        }
    }
}

/// Answers a test scripted: a request whose conversation mentions a marker
/// gets the next of its answers, until they run out.
#[derive(Debug, Default)]
pub struct Scripts(Vec<(String, VecDeque<String>)>);

impl Scripts {
    pub fn add(&mut self, marker: &str, answers: Vec<String>) {
        self.0.push((marker.to_owned(), answers.into()));
    }

    /// The scripted answer for a conversation, if a marker matches.
    pub fn take(&mut self, conversation: &str) -> Option<String> {
        self.0
            .iter_mut()
            .find(|(marker, answers)| conversation.contains(marker.as_str()) && !answers.is_empty())?
            .1
            .pop_front()
    }
}

/// All the text of a chat request's messages (or a generate request's
/// prompt), for matching scripts.
pub fn conversation(request: &Value) -> String {
    let mut text = String::new();
    if let Some(messages) = request.get("messages").and_then(Value::as_array) {
        for message in messages {
            if let Some(content) = message.get("content").and_then(Value::as_str) {
                text.push_str(content);
                text.push('\n');
            }
        }
    }
    if let Some(prompt) = request.get("prompt").and_then(Value::as_str) {
        text.push_str(prompt);
    }
    text
}

/// A document streamed in small pieces, as a model would.
pub fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect()).collect()
}

/// JSON with object keys sorted, so equal requests hash equally.
pub fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> =
                keys.iter().map(|k| format!("{}:{}", json!(k), canonical(&map[*k]))).collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The inbox classifier's answer, as a careful model would give it: for a
/// request of the `classify_inbox` prompt, each numbered message labelled
/// by its words (complaints negative and, when they shout or wait, urgent;
/// praise positive; questions; wanting to buy or visit; spam), so tests
/// can say what each item should get. `None` for any other request.
pub fn inbox_labels(conversation: &str) -> Option<Value> {
    if !conversation.contains("You sort what people write to a brand") {
        return None;
    }
    let mut items = Vec::new();
    let mut rest = conversation;
    while let Some(at) = rest.find("\nMessage ") {
        rest = &rest[at + 9..];
        let n: u64 = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
        let open = rest.find("<<<")?;
        let close = rest.find(">>>")?;
        let text = rest[open + 3..close].to_lowercase();
        rest = &rest[close + 3..];
        let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
        let (sentiment, score, intent, urgency) = if has(&["spam", "crypto", "click here", "free followers"])
        {
            ("neutral", 0.0, "spam", "low")
        } else if has(&["disappointed"]) && text.contains('?') {
            ("negative", -0.5, "question", "normal")
        } else if has(&[
            "terrible",
            "angry",
            "broken",
            "worst",
            "refund",
            "awful",
            "disappointed",
            "nobody answers",
        ]) {
            let urgent = has(&["!", "urgent", "today", "nobody answers"]);
            ("negative", -0.8, "complaint", if urgent { "high" } else { "normal" })
        } else if has(&["buy", "book a viewing", "viewing", "interested in", "make an offer"]) {
            ("positive", 0.4, "purchase_interest", "normal")
        } else if has(&["love", "great", "thank", "amazing", "beautiful", "danke"]) {
            ("positive", 0.9, "praise", "low")
        } else if text.contains('?') {
            ("neutral", 0.0, "question", "normal")
        } else {
            ("neutral", 0.0, "other", "low")
        };
        let language = if has(&["danke", "ich ", "nicht", "wohnung"]) { "de" } else { "en" };
        items.push(json!({
            "n": n, "sentiment": sentiment, "score": score, "intent": intent, "urgency": urgency,
            "language": language, "personal_data": has(&["diagnos", "my doctor", "prescription"]),
        }));
    }
    Some(json!({ "items": items }))
}

/// The fake model's suggested reply, for a reply request: it thanks the
/// person and, when the prompt holds sources, repeats the first sentence
/// of source 1 and cites it (so tests can see a document's fact reach the
/// draft), within the prompt's character limit. `None` for any other
/// request.
pub fn inbox_reply(conversation: &str) -> Option<Value> {
    if !conversation.contains("You answer people who wrote to a brand") {
        return None;
    }
    let limit: usize = conversation
        .split("At most ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let fact = conversation.find("Source 1 (").and_then(|at| {
        let rest = &conversation[at..];
        let open = rest.find("<<<")? + 3;
        let close = rest.find(">>>")?;
        let passage = rest[open..close].trim();
        let end = passage.find(". ").map_or(passage.len(), |e| e + 1);
        Some(passage[..end].trim().to_owned())
    });
    let (reply, sources) = match fact {
        Some(fact) => (format!("Thanks for asking! {fact}"), json!([1])),
        None => ("Thank you for writing to us! The team will follow up.".to_owned(), json!([])),
    };
    let reply: String = reply.chars().take(limit).collect();
    Some(json!({ "reply": reply, "sources": sources }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_values_respect_the_constraints() {
        let schema = json!({
            "type": "object",
            "properties": {
                "title": { "type": "string", "minLength": 50, "maxLength": 60 },
                "short": { "type": "string", "maxLength": 5 },
                "intent": { "type": "string", "enum": ["a", "b"] },
                "tags": { "type": "array", "items": { "type": "string" }, "minItems": 3, "maxItems": 8 },
                "none": { "type": "array", "items": { "type": "string" }, "maxItems": 0 },
                "score": { "type": "number", "minimum": 0, "maximum": 10 },
                "count": { "type": "integer", "minimum": 300, "maximum": 5000 },
            }
        });
        for seed in 0..50 {
            let mut words = Words::for_request(&json!({ "seed": seed }));
            let value = from_schema(&schema, &mut words);
            let title = value["title"].as_str().unwrap().chars().count();
            assert!((50..=60).contains(&title), "{value}");
            assert!(value["short"].as_str().unwrap().chars().count() <= 5);
            assert!(["a", "b"].contains(&value["intent"].as_str().unwrap()));
            assert_eq!(value["tags"].as_array().unwrap().len(), 3);
            assert!(value["none"].as_array().unwrap().is_empty());
            assert!((0.0..=10.0).contains(&value["score"].as_f64().unwrap()));
            assert!((300..=5000).contains(&value["count"].as_i64().unwrap()));
        }
    }

    #[test]
    fn scripts_answer_in_order_then_fall_through() {
        let mut scripts = Scripts::default();
        scripts.add("editor", vec!["low".into(), "high".into()]);
        assert_eq!(scripts.take("you are an editor"), Some("low".into()));
        assert_eq!(scripts.take("a writer"), None);
        assert_eq!(scripts.take("the editor again"), Some("high".into()));
        assert_eq!(scripts.take("the editor once more"), None);
    }
}
