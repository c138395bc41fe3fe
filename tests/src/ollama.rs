//! A test stand-in for Ollama that speaks its HTTP API
//! (`../shared/reference/ollama-api.md`, `ollama-api-errors.mdx`,
//! `ollama-api-streaming.mdx`) on a loopback port: `/api/chat` and
//! `/api/generate` (NDJSON streaming or `stream: false`, `format` as `"json"`
//! or a schema, a final object with `done_reason` and durations),
//! `/api/embed`, `/api/tags`, `/api/show` and `/api/version`, with Ollama's
//! error bodies and statuses.
//!
//! It is test support, never an LLM: the answer is a deterministic function
//! of the request, its pace (time to first token, tokens per second) is set
//! by the test, and failures can be injected: refused connections, an error
//! status, an error object in the middle of a stream, a stream that stalls.
//! It counts requests and the streams a client abandoned.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::answers::{self, Scripts, Words, fnv, from_schema};

/// A pulled model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeModel {
    pub name: String,
    pub size: u64,
    pub family: String,
    /// What `/api/show` reports as `<family>.context_length`.
    pub context_length: u64,
    /// Length of the vectors `/api/embed` returns.
    pub embedding_length: usize,
}

impl FakeModel {
    /// A model named as given; a name without a tag gets `:latest`, as
    /// Ollama lists it.
    pub fn new(name: &str) -> Self {
        Self {
            name: tagged(name),
            size: 2_019_393_189,
            family: "llama".to_owned(),
            context_length: 8192,
            embedding_length: 16,
        }
    }
}

fn tagged(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') { name.to_owned() } else { format!("{name}:latest") }
}

/// A failure to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Answer every request with this status and an Ollama error body.
    Status(u16),
    /// Answer generation, embedding and show requests with this status
    /// (404 with Ollama's "model not found" message); listing still works.
    WorkStatus(u16),
    /// Stream this many tokens, then an `{"error": ...}` object.
    MidStream { after: usize },
    /// Stream this many tokens, then nothing, without closing.
    Stall { after: usize },
    /// Stop listening: connections are refused until the failure is cleared.
    Refuse,
}

/// How fast answers come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub first_token: Duration,
    /// 0 means as fast as possible.
    pub tokens_per_second: f64,
    /// Tokens in an answer when the request does not set `num_predict`.
    pub tokens: usize,
}

impl Default for Pace {
    fn default() -> Self {
        Self { first_token: Duration::ZERO, tokens_per_second: 0.0, tokens: 24 }
    }
}

#[derive(Debug, Default)]
struct Behaviour {
    models: Vec<FakeModel>,
    failure: Option<Failure>,
    pace: Pace,
    requests: u64,
    chat_requests: Vec<Value>,
    /// When each of `chat_requests` arrived.
    chat_arrivals: Vec<Instant>,
    scripts: Scripts,
}

#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    completed: AtomicU64,
    aborted: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

#[derive(Debug, Clone)]
struct Shared {
    behaviour: Arc<Mutex<Behaviour>>,
    counters: Arc<Counters>,
}

/// A running fake Ollama. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeOllama {
    pub addr: SocketAddr,
    shared: Shared,
    serving: Mutex<Option<CancellationToken>>,
}

impl FakeOllama {
    pub async fn start(models: Vec<FakeModel>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Ollama");
        let addr = listener.local_addr().expect("local address");
        let shared = Shared {
            behaviour: Arc::new(Mutex::new(Behaviour { models, ..Behaviour::default() })),
            counters: Arc::new(Counters::default()),
        };
        let stop = serve(listener, shared.clone());
        Self { addr, shared, serving: Mutex::new(Some(stop)) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_models(&self, models: Vec<FakeModel>) {
        self.shared.behaviour.lock().unwrap().models = models;
    }

    /// Chat requests whose messages mention `marker` get `answers`, one
    /// each, in order (and the usual answer once they run out).
    pub fn script(&self, marker: &str, answers: Vec<String>) {
        self.shared.behaviour.lock().unwrap().scripts.add(marker, answers);
    }

    pub fn set_pace(&self, pace: Pace) {
        self.shared.behaviour.lock().unwrap().pace = pace;
    }

    /// Injects a failure, or (`None`) clears it. `Refuse` closes the
    /// listening socket; clearing it listens again on the same port.
    pub fn fail(&self, failure: Option<Failure>) {
        let refuse = failure == Some(Failure::Refuse);
        self.shared.behaviour.lock().unwrap().failure = failure;
        let mut serving = self.serving.lock().unwrap();
        match (refuse, serving.is_some()) {
            (true, true) => {
                if let Some(stop) = serving.take() {
                    stop.cancel();
                }
            }
            (false, false) => {
                let listener = std::net::TcpListener::bind(self.addr).expect("listen again on the same port");
                listener.set_nonblocking(true).expect("non-blocking");
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                *serving = Some(serve(listener, self.shared.clone()));
            }
            _ => {}
        }
    }

    /// Requests served so far (of any kind).
    pub fn requests(&self) -> u64 {
        self.shared.behaviour.lock().unwrap().requests
    }

    /// The bodies of the chat and generate requests received, in order.
    pub fn chat_requests(&self) -> Vec<Value> {
        self.shared.behaviour.lock().unwrap().chat_requests.clone()
    }

    /// When the last chat or generate request arrived (for benchmarks).
    pub fn last_chat_arrival(&self) -> Option<Instant> {
        self.shared.behaviour.lock().unwrap().chat_arrivals.last().copied()
    }

    /// Streamed answers begun, finished, and abandoned by the client before
    /// their end.
    pub fn streams(&self) -> (u64, u64, u64) {
        let c = &self.shared.counters;
        (
            c.started.load(Ordering::SeqCst),
            c.completed.load(Ordering::SeqCst),
            c.aborted.load(Ordering::SeqCst),
        )
    }

    /// The most streamed answers that were in progress at once.
    pub fn max_in_flight(&self) -> u64 {
        self.shared.counters.max_in_flight.load(Ordering::SeqCst)
    }

    /// The answer this server gives to an unscripted chat request, for
    /// comparing with what went through the product.
    pub fn expected_chat(request: &Value, pace: Pace) -> String {
        Answer::for_request(request, pace.tokens, &mut Scripts::default()).tokens.concat()
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        if let Some(stop) = self.serving.lock().unwrap().take() {
            stop.cancel();
        }
    }
}

fn serve(listener: tokio::net::TcpListener, shared: Shared) -> CancellationToken {
    let router = axum::Router::new()
        .route("/api/tags", get(tags))
        .route("/api/version", get(version))
        .route("/api/show", post(show))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
        .route("/api/embed", post(embed))
        .with_state(shared);
    let stop = CancellationToken::new();
    let cancelled = stop.clone();
    tokio::spawn(async move {
        // Ollama (Go's net/http) sets TCP_NODELAY on every connection; so does the fake.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(listener, router).with_graceful_shutdown(cancelled.cancelled_owned()).await;
    });
    stop
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn not_found(model: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("model \"{model}\" not found, try pulling it first"))
}

/// Counts the request and returns the injected failure's answer, if any.
fn injected(shared: &Shared, work: bool, model: Option<&str>) -> Option<Response> {
    let mut behaviour = shared.behaviour.lock().unwrap();
    behaviour.requests += 1;
    let status = match behaviour.failure {
        Some(Failure::Status(code)) => code,
        Some(Failure::WorkStatus(code)) if work => code,
        _ => return None,
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Some(match (status, model) {
        (StatusCode::NOT_FOUND, Some(model)) => not_found(model),
        _ => error(status, format!("injected failure {}", status.as_u16())),
    })
}

/// Parses a JSON body the way Ollama does: a 400 with a message if it is not
/// JSON or names no model.
fn request_body(body: &Bytes) -> Result<(Value, String), Box<Response>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Box::new(error(StatusCode::BAD_REQUEST, format!("invalid character in request body: {e}")))
    })?;
    let model = value.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
    if model.is_empty() {
        return Err(Box::new(error(StatusCode::BAD_REQUEST, "model is required")));
    }
    Ok((value, model))
}

fn find_model(shared: &Shared, name: &str) -> Option<FakeModel> {
    let wanted = tagged(name);
    shared.behaviour.lock().unwrap().models.iter().find(|m| m.name == wanted).cloned()
}

async fn tags(State(shared): State<Shared>) -> Response {
    if let Some(response) = injected(&shared, false, None) {
        return response;
    }
    let behaviour = shared.behaviour.lock().unwrap();
    let models: Vec<_> = behaviour
        .models
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "model": m.name,
                "modified_at": "2025-05-04T17:37:44.706015396-07:00",
                "size": m.size,
                "digest": format!("{:064x}", fnv(m.name.as_bytes())),
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": m.family,
                    "families": [m.family],
                    "parameter_size": "3.2B",
                    "quantization_level": "Q4_K_M"
                }
            })
        })
        .collect();
    Json(json!({ "models": models })).into_response()
}

async fn version(State(shared): State<Shared>) -> Response {
    if let Some(response) = injected(&shared, false, None) {
        return response;
    }
    Json(json!({ "version": "0.5.1" })).into_response()
}

async fn show(State(shared): State<Shared>, body: Bytes) -> Response {
    let (_, name) = match request_body(&body) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    if let Some(response) = injected(&shared, true, Some(&name)) {
        return response;
    }
    let Some(model) = find_model(&shared, &name) else { return not_found(&name) };
    let family = &model.family;
    Json(json!({
        "modelfile": format!("# Modelfile generated by \"ollama show\"\nFROM {}\n", model.name),
        "parameters": "stop \"<|eot_id|>\"",
        "template": "{{ .Prompt }}",
        "details": {
            "parent_model": "", "format": "gguf", "family": family, "families": [family],
            "parameter_size": "3.2B", "quantization_level": "Q4_K_M"
        },
        "model_info": {
            "general.architecture": family,
            "general.parameter_count": 3_212_749_888_u64,
            format!("{family}.context_length"): model.context_length,
            format!("{family}.embedding_length"): model.embedding_length,
        },
        "capabilities": ["completion"],
    }))
    .into_response()
}

async fn chat(State(shared): State<Shared>, body: Bytes) -> Response {
    generation(shared, body, Endpoint::Chat).await
}

async fn generate(State(shared): State<Shared>, body: Bytes) -> Response {
    generation(shared, body, Endpoint::Generate).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Generate,
}

async fn generation(shared: Shared, body: Bytes, endpoint: Endpoint) -> Response {
    let (request, name) = match request_body(&body) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    if let Some(response) = injected(&shared, true, Some(&name)) {
        return response;
    }
    let Some(model) = find_model(&shared, &name) else { return not_found(&name) };
    match endpoint {
        Endpoint::Chat => {
            let valid = request.get("messages").and_then(Value::as_array).is_some_and(|m| {
                m.iter()
                    .all(|m| m.get("role").and_then(Value::as_str).is_some() && m.get("content").is_some())
            });
            if !valid {
                return error(StatusCode::BAD_REQUEST, "messages must be a list of {role, content}");
            }
        }
        Endpoint::Generate => {
            if request.get("prompt").is_some_and(|p| !p.is_string()) {
                return error(StatusCode::BAD_REQUEST, "prompt must be a string");
            }
        }
    }
    let (pace, failure, answer) = {
        let mut behaviour = shared.behaviour.lock().unwrap();
        behaviour.chat_requests.push(request.clone());
        behaviour.chat_arrivals.push(Instant::now());
        let answer = Answer::for_request(&request, behaviour.pace.tokens, &mut behaviour.scripts);
        (behaviour.pace, behaviour.failure.clone(), answer)
    };
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(true);
    let prompt_tokens = count_prompt_tokens(&request);
    if !stream {
        if pace.first_token > Duration::ZERO {
            tokio::time::sleep(pace.first_token).await;
        }
        let began = Instant::now();
        if pace.tokens_per_second > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(answer.tokens.len() as f64 / pace.tokens_per_second))
                .await;
        }
        let text = answer.tokens.concat();
        let mut last = final_object(endpoint, &model.name, prompt_tokens, answer.tokens.len(), began, pace);
        if answer.cut {
            last["done_reason"] = json!("length");
        }
        set_text(&mut last, endpoint, &text);
        return Json(last).into_response();
    }
    shared.counters.started.fetch_add(1, Ordering::SeqCst);
    let now = shared.counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.counters.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let state = StreamState {
        endpoint,
        model: model.name,
        tokens: answer.tokens,
        cut: answer.cut,
        next: 0,
        prompt_tokens,
        pace,
        failure,
        began: Instant::now(),
        finished: false,
        counters: shared.counters.clone(),
    };
    let body = Body::from_stream(futures_util::stream::unfold(state, |mut state| async move {
        let line = state.next_line().await?;
        Some((Ok::<_, std::convert::Infallible>(line), state))
    }));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(body)
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

fn set_text(object: &mut Value, endpoint: Endpoint, text: &str) {
    match endpoint {
        Endpoint::Chat => object["message"] = json!({ "role": "assistant", "content": text }),
        Endpoint::Generate => object["response"] = json!(text),
    }
}

fn final_object(
    endpoint: Endpoint,
    model: &str,
    prompt_tokens: usize,
    eval_count: usize,
    began: Instant,
    pace: Pace,
) -> Value {
    let eval_ns = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
    let first_ns = u64::try_from(pace.first_token.as_nanos()).unwrap_or(0);
    let mut object = json!({
        "model": model,
        "created_at": "2025-10-26T17:15:24.166576Z",
        "done": true,
        "done_reason": "stop",
        "total_duration": first_ns + eval_ns + 1_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": first_ns,
        "eval_count": eval_count,
        "eval_duration": eval_ns,
    });
    set_text(&mut object, endpoint, "");
    if endpoint == Endpoint::Generate {
        object["context"] = json!([1, 2, 3]);
    }
    object
}

struct StreamState {
    endpoint: Endpoint,
    model: String,
    tokens: Vec<String>,
    /// Cut at `num_predict`: the final object says `length`.
    cut: bool,
    next: usize,
    prompt_tokens: usize,
    pace: Pace,
    failure: Option<Failure>,
    began: Instant,
    finished: bool,
    counters: Arc<Counters>,
}

impl StreamState {
    async fn next_line(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        // Tokens are due on a fixed schedule from the start, so the pace does
        // not drift with the time spent writing.
        let due = self.pace.first_token
            + if self.pace.tokens_per_second > 0.0 {
                Duration::from_secs_f64(self.next as f64 / self.pace.tokens_per_second)
            } else {
                Duration::ZERO
            };
        let wait = due.saturating_sub(self.began.elapsed());
        if wait > Duration::ZERO {
            tokio::time::sleep(wait).await;
        }
        match self.failure {
            Some(Failure::MidStream { after }) if self.next == after => {
                self.finished = true;
                return Some(line(&json!({ "error": "an error was encountered while running the model" })));
            }
            Some(Failure::Stall { after }) if self.next == after => std::future::pending::<()>().await,
            _ => {}
        }
        if let Some(token) = self.tokens.get(self.next) {
            self.next += 1;
            let mut object =
                json!({ "model": self.model, "created_at": "2025-10-26T17:15:24.097767Z", "done": false });
            set_text(&mut object, self.endpoint, token);
            return Some(line(&object));
        }
        self.finished = true;
        self.counters.completed.fetch_add(1, Ordering::SeqCst);
        let mut object = final_object(
            self.endpoint,
            &self.model,
            self.prompt_tokens,
            self.tokens.len(),
            self.began,
            self.pace,
        );
        if self.cut {
            object["done_reason"] = json!("length");
        }
        Some(line(&object))
    }
}

impl Drop for StreamState {
    fn drop(&mut self) {
        // The body is dropped before its end only when the client went away.
        if !self.finished {
            self.counters.aborted.fetch_add(1, Ordering::SeqCst);
        }
        self.counters.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn count_prompt_tokens(request: &Value) -> usize {
    let mut count = 0;
    if let Some(messages) = request.get("messages").and_then(Value::as_array) {
        for m in messages {
            count += m.get("content").and_then(Value::as_str).map_or(0, |c| c.split_whitespace().count());
        }
    }
    count + request.get("prompt").and_then(Value::as_str).map_or(0, |p| p.split_whitespace().count())
}

/// The answer to a request: scripted, or deterministic; as Ollama does, cut
/// at `options.num_predict` and then said to have ended for `length`.
struct Answer {
    tokens: Vec<String>,
    cut: bool,
}

impl Answer {
    /// `default_tokens`: the length of an unscripted free-text answer.
    fn for_request(request: &Value, default_tokens: usize, scripts: &mut Scripts) -> Self {
        let limit = request
            .get("options")
            .and_then(|o| o.get("num_predict"))
            .and_then(Value::as_i64)
            .filter(|n| *n > 0)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let conversation = answers::conversation(request);
        let tokens = if let Some(scripted) = scripts.take(&conversation) {
            answers::pieces(&scripted)
        } else if let Some(labels) = answers::inbox_labels(&conversation) {
            answers::pieces(&labels.to_string())
        } else if let Some(reply) = answers::inbox_reply(&conversation) {
            answers::pieces(&reply.to_string())
        } else {
            let mut words = Words::for_request(request);
            match request.get("format") {
                Some(format) if format.is_object() => {
                    answers::pieces(&from_schema(format, &mut words).to_string())
                }
                Some(format) if format == "json" => {
                    let value = json!({ "answer": words.tokens(default_tokens.max(1)).concat() });
                    answers::pieces(&value.to_string())
                }
                _ => words.tokens(default_tokens.min(100_000)),
            }
        };
        let mut answer = Self { tokens, cut: false };
        if let Some(limit) = limit
            && answer.tokens.len() > limit
        {
            answer.tokens.truncate(limit);
            answer.cut = true;
        }
        answer
    }
}

async fn embed(State(shared): State<Shared>, body: Bytes) -> Response {
    let (request, name) = match request_body(&body) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    if let Some(response) = injected(&shared, true, Some(&name)) {
        return response;
    }
    let Some(model) = find_model(&shared, &name) else { return not_found(&name) };
    let inputs: Vec<String> = match request.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
        }
        _ => return error(StatusCode::BAD_REQUEST, "input must be a string or a list of strings"),
    };
    let began = Instant::now();
    let embeddings: Vec<Vec<f32>> = inputs.iter().map(|text| vector(text, model.embedding_length)).collect();
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    Json(json!({
        "model": model.name,
        "embeddings": embeddings,
        "total_duration": u64::try_from(began.elapsed().as_nanos()).unwrap_or(0) + 1_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": tokens,
    }))
    .into_response()
}

/// Words the fake embedding model treats as meaning the same thing, so
/// retrieval can be tested on meaning as well as on words: a query about
/// "cost" finds a passage about "prices" without a word in common.
const CONCEPTS: &[&[&str]] = &[
    &[
        "price",
        "prices",
        "cost",
        "costs",
        "pricing",
        "expensive",
        "cheap",
        "afford",
        "affordable",
        "dollars",
        "budget",
        "quote",
        "pay",
    ],
    &["warranty", "guarantee", "guaranteed", "coverage", "covered", "defects", "defect"],
    &[
        "install",
        "installation",
        "installed",
        "installer",
        "installers",
        "crews",
        "crew",
        "fitting",
        "fitted",
        "mount",
        "mounted",
    ],
    &[
        "days", "day", "weeks", "week", "hours", "quickly", "fast", "long", "schedule", "duration", "takes",
        "take",
    ],
    &["financing", "finance", "loan", "loans", "payments", "monthly", "credit", "lease", "instalments"],
    &[
        "maintenance",
        "cleaning",
        "clean",
        "care",
        "inspect",
        "inspection",
        "upkeep",
        "repair",
        "repairs",
        "maintain",
    ],
    &["founded", "history", "founder", "started", "family", "since", "origins", "began"],
    &["energy", "electricity", "power", "kilowatt", "kwh", "output", "generate", "generates", "production"],
    &["hail", "storm", "storms", "wind", "winds", "snow", "weather", "rain", "hurricane"],
    &["efficiency", "efficient", "performance", "rating", "rated"],
    &["carbon", "emissions", "environment", "environmental", "green", "sustainable", "recycled", "planet"],
    &["support", "help", "phone", "contact", "hotline", "assistance", "reach"],
    &["tiles", "tile", "shingles", "shingle", "roof", "roofing", "rooftop"],
    &["panel", "panels", "module", "modules", "cells"],
    &["battery", "batteries", "storage", "backup", "store"],
];

/// A unit vector for the text: the sum of one fixed random direction per
/// word, where words of one concept share a direction (weight 1) and other
/// words have their own (weight 0.3). Texts about the same things point the
/// same way, as with a real embedding model.
pub fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut sum = vec![0.0f32; dims];
    let mut any = false;
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2) {
        let word = word.to_lowercase();
        let (key, weight) = match CONCEPTS.iter().position(|group| group.contains(&word.as_str())) {
            Some(concept) => (format!("concept:{concept}"), 1.0),
            None => (word, 0.3),
        };
        for (total, v) in sum.iter_mut().zip(direction(&key, dims)) {
            *total += weight * v;
        }
        any = true;
    }
    if !any {
        sum = direction(text, dims);
    }
    let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt().max(f32::EPSILON);
    sum.into_iter().map(|v| v / norm).collect()
}

/// A pseudo-random direction determined by `key`.
fn direction(key: &str, dims: usize) -> Vec<f32> {
    let mut state = fnv(key.as_bytes());
    (0..dims)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}
