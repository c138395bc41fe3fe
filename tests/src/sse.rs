//! A Server-Sent Events client for tests, reading `text/event-stream` as
//! the HTML standard defines it: `id`, `event` and `data` fields, events
//! ended by a blank line, comments (keep-alives) ignored.

use std::time::Duration;

use crate::Api;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }

    pub fn seq(&self) -> i64 {
        self.id.as_deref().and_then(|id| id.parse().ok()).expect("a numeric event id")
    }
}

#[derive(Debug)]
pub struct SseStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl SseStream {
    /// Opens `path` (under the API's base URL) as an event stream, resuming
    /// after `last_event_id` if given. Panics unless the answer is 200.
    pub async fn open(api: &Api, path: &str, last_event_id: Option<i64>) -> Self {
        let (status, stream) = Self::try_open(api, path, last_event_id).await;
        stream.unwrap_or_else(|| panic!("opening {path} answered {status}"))
    }

    /// Like `open`, returning the status when it is not 200.
    pub async fn try_open(api: &Api, path: &str, last_event_id: Option<i64>) -> (u16, Option<Self>) {
        let mut request = api
            .http
            .get(format!("{}{path}", api.base_url))
            .bearer_auth(&api.token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.expect("event stream request");
        let status = response.status().as_u16();
        if status != 200 {
            return (status, None);
        }
        (status, Some(Self::from_response(response)))
    }

    /// Reads an answer already received (status 200) as an event stream.
    pub fn from_response(response: reqwest::Response) -> Self {
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(content_type.starts_with("text/event-stream"), "content type {content_type}");
        Self { response, buffer: Vec::new() }
    }

    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        let mut event = SseEvent { id: None, event: "message".into(), data: String::new() };
        let mut has_data = false;
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                if has_data {
                    return Some(event);
                }
                event = SseEvent { id: None, event: "message".into(), data: String::new() };
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').map_or((line.as_str(), ""), |(f, v)| (f, v));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = value.to_owned(),
                "data" => {
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                    has_data = true;
                }
                _ => {}
            }
        }
    }

    /// The next event within `limit`; panics if none comes.
    pub async fn next_within(&mut self, limit: Duration) -> Option<SseEvent> {
        tokio::time::timeout(limit, self.next()).await.expect("an event in time")
    }

    /// Every event until the server ends the stream (at most `limit`).
    pub async fn collect(&mut self, limit: Duration) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(Some(event)) => events.push(event),
                Ok(None) => return events,
                Err(_) => panic!("the event stream did not end within {limit:?}; got {events:?}"),
            }
        }
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Some(String::from_utf8(line).expect("UTF-8 event stream"));
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.extend_from_slice(&bytes),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}
