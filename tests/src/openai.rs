//! A test stand-in for an OpenAI-compatible chat completions endpoint, in
//! OpenAI's wire format: `POST /v1/chat/completions` (a `chat.completion`
//! object, or with `stream: true` server-sent `chat.completion.chunk`s, a
//! usage chunk when `stream_options.include_usage` asks for one, and
//! `data: [DONE]`), `response_format` of type `json_schema` answered with a
//! value of that schema, bearer-key authentication and OpenAI's error
//! bodies (`{"error": {"message", "type", "param", "code"}}`).
//!
//! Like the fake Ollama it is test support: answers are deterministic or
//! scripted, and it records what it was sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::answers::{self, Scripts, Words, from_schema};

#[derive(Debug, Default)]
struct Behaviour {
    api_key: String,
    models: Vec<String>,
    requests: Vec<Value>,
    /// The `Authorization` headers received.
    authorizations: Vec<String>,
    scripts: Scripts,
}

/// A running fake provider. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeOpenAi {
    pub addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    stop: CancellationToken,
}

impl FakeOpenAi {
    /// Serves `models` to callers presenting `api_key`.
    pub async fn start(api_key: &str, models: &[&str]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake provider");
        let addr = listener.local_addr().expect("local address");
        let behaviour = Arc::new(Mutex::new(Behaviour {
            api_key: api_key.to_owned(),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            ..Behaviour::default()
        }));
        let router = axum::Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/v1/models", get(list_models))
            .with_state(behaviour.clone());
        let stop = CancellationToken::new();
        let cancelled = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(cancelled.cancelled_owned()).await;
        });
        Self { addr, behaviour, stop }
    }

    /// The API base to configure: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests mentioning `marker` get `answers`, one each, in order.
    pub fn script(&self, marker: &str, answers: Vec<String>) {
        self.behaviour.lock().unwrap().scripts.add(marker, answers);
    }

    /// The bodies of the chat completion requests received.
    pub fn requests(&self) -> Vec<Value> {
        self.behaviour.lock().unwrap().requests.clone()
    }

    pub fn authorizations(&self) -> Vec<String> {
        self.behaviour.lock().unwrap().authorizations.clone()
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn error(status: StatusCode, message: &str, kind: &str, code: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": kind, "param": null, "code": code } });
    (status, Json(body)).into_response()
}

/// `None` when the bearer key is right, else the refusal.
fn refused(behaviour: &Mutex<Behaviour>, headers: &HeaderMap) -> Option<Response> {
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let mut behaviour = behaviour.lock().unwrap();
    behaviour.authorizations.push(presented.clone());
    if presented == format!("Bearer {}", behaviour.api_key) {
        None
    } else {
        Some(error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ))
    }
}

async fn list_models(State(behaviour): State<Arc<Mutex<Behaviour>>>, headers: HeaderMap) -> Response {
    if let Some(response) = refused(&behaviour, &headers) {
        return response;
    }
    let models = behaviour.lock().unwrap().models.clone();
    let data: Vec<Value> = models
        .iter()
        .map(|m| json!({ "id": m, "object": "model", "created": 1_700_000_000, "owned_by": "test" }))
        .collect();
    Json(json!({ "object": "list", "data": data })).into_response()
}

async fn completions(
    State(behaviour): State<Arc<Mutex<Behaviour>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = refused(&behaviour, &headers) {
        return response;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            "invalid_json",
        );
    };
    let model = request.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
    let messages_ok = request
        .get("messages")
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty() && m.iter().all(|m| m.get("role").and_then(Value::as_str).is_some()));
    if !messages_ok {
        return error(
            StatusCode::BAD_REQUEST,
            "'messages' must be a non-empty array of messages.",
            "invalid_request_error",
            "invalid_value",
        );
    }
    let content = {
        let mut behaviour = behaviour.lock().unwrap();
        behaviour.requests.push(request.clone());
        if !behaviour.models.contains(&model) {
            return error(
                StatusCode::NOT_FOUND,
                &format!("The model `{model}` does not exist or you do not have access to it."),
                "invalid_request_error",
                "model_not_found",
            );
        }
        match behaviour.scripts.take(&answers::conversation(&request)) {
            Some(scripted) => scripted,
            None => {
                let mut words = Words::for_request(&request);
                match request.pointer("/response_format/json_schema/schema") {
                    Some(schema) => from_schema(schema, &mut words).to_string(),
                    None => words.tokens(24).concat(),
                }
            }
        }
    };
    let prompt_tokens = answers::conversation(&request).split_whitespace().count();
    let pieces = answers::pieces(&content);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": pieces.len(),
        "total_tokens": prompt_tokens + pieces.len(),
    });
    let id = "chatcmpl-test";
    if request.get("stream").and_then(Value::as_bool) != Some(true) {
        return Json(json!({
            "id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": content, "refusal": null },
                          "logprobs": null, "finish_reason": "stop" }],
            "usage": usage,
        }))
        .into_response();
    }
    let include_usage =
        request.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
    let chunk = |delta: Value, finish: Value| {
        let mut object = json!({
            "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        if include_usage {
            object["usage"] = Value::Null;
        }
        format!("data: {object}\n\n")
    };
    let mut events = vec![chunk(json!({ "role": "assistant", "content": "" }), Value::Null)];
    events.extend(pieces.iter().map(|piece| chunk(json!({ "content": piece }), Value::Null)));
    events.push(chunk(json!({}), json!("stop")));
    if include_usage {
        let last = json!({
            "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [], "usage": usage,
        });
        events.push(format!("data: {last}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_owned());
    let stream = futures_util::stream::iter(
        events.into_iter().map(|e| Ok::<_, std::convert::Infallible>(Bytes::from(e))),
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "response", "server_error", "internal"))
}
