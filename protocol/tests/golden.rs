//! Golden JSON fixtures: one per message type. A change to the wire format
//! fails here and must be made on purpose (regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p marketer-protocol`, then review the diff).

use std::collections::BTreeMap;
use std::path::PathBuf;

use marketer_protocol::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::macros::datetime;
use uuid::uuid;

fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, value: &T) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{name}.json"));
    let produced = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &produced).unwrap();
    }
    let golden =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing fixture {}", path.display()));
    assert_eq!(produced, golden, "{name}: the wire format changed");
    let parsed: T = serde_json::from_str(&golden).unwrap();
    assert_eq!(&parsed, value, "{name}: the fixture does not parse back");
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("gpu".to_owned(), "a100".to_owned()), ("site".to_owned(), "berlin".to_owned())])
}

fn host() -> HostInfo {
    HostInfo { hostname: "edge-01.corp.example".into(), os: "linux".into(), arch: "x86_64".into() }
}

fn models() -> Vec<ModelInfo> {
    vec![
        ModelInfo {
            name: "llama3.2:3b".into(),
            size_bytes: 2_019_393_189,
            digest: Some("a80c4f17acd5".into()),
        },
        ModelInfo { name: "nomic-embed-text:latest".into(), size_bytes: 274_302_450, digest: None },
    ]
}

const AGENT: uuid::Uuid = uuid!("01934c5a-7b1e-7c3a-9f00-5d2e8a1b4c6d");
const TENANT: uuid::Uuid = uuid!("01934c5a-0000-7000-8000-000000000001");
const JOB: uuid::Uuid = uuid!("01934c5a-9999-7000-8000-00000000abcd");
const PROJECT: uuid::Uuid = uuid!("01934c5a-1111-7000-8000-000000000002");
const DOCUMENT: uuid::Uuid = uuid!("01934c5a-2222-7000-8000-000000000003");

fn policy() -> documents::PolicySummary {
    documents::PolicySummary {
        redact_phi: true,
        custom_patterns: vec!["PATIENT_ID".into()],
        allowed_models: Some(vec!["llama3.2:3b".into(), "nomic-embed-text".into()]),
        max_output_chars: Some(100_000),
        allow_document_text_in_results: false,
        max_verbatim_chars: 200,
    }
}

#[test]
fn enroll_request() {
    check(
        "enroll_request",
        &EnrollRequest {
            token: "mkt_et_Q2hhbmdlIG1lIGlmIHlvdSBjaGFuZ2UgdGhlIGZvcm1hdA".into(),
            csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\nMIIB...\n-----END CERTIFICATE REQUEST-----\n"
                .into(),
            name: Some("edge-01".into()),
            labels: labels(),
            host: host(),
            agent_version: "0.1.0".into(),
        },
    );
}

#[test]
fn enroll_response() {
    check(
        "enroll_response",
        &EnrollResponse {
            agent_id: AGENT,
            tenant_id: TENANT,
            name: "edge-01".into(),
            labels: labels(),
            certificate_pem: "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n".into(),
            ca_certificate_pem: "-----BEGIN CERTIFICATE-----\nMIIC...\n-----END CERTIFICATE-----\n".into(),
            not_after: datetime!(2026-12-22 10:00:00 UTC),
        },
    );
}

#[test]
fn error_body() {
    check(
        "error_body",
        &ErrorBody {
            error: ErrorDetail {
                code: codes::TOKEN_EXPIRED.into(),
                message: "this enrollment token expired; ask an administrator for a new one".into(),
            },
        },
    );
}

#[test]
fn health_response() {
    check(
        "health_response",
        &HealthResponse {
            server_time: datetime!(2026-11-22 10:00:00.5 UTC),
            protocol_version: 1,
            min_protocol_version: 1,
        },
    );
}

#[test]
fn hello() {
    check(
        "hello",
        &AgentMessage::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: "0.1.0".into(),
            host: host(),
            labels: labels(),
            max_concurrency: 2,
            ollama: OllamaStatus { reachable: true, models: models() },
            running_jobs: vec![JobRef { job_id: JOB, epoch: 3 }],
            projects: vec![PROJECT],
            policy: policy(),
        }),
    );
}

#[test]
fn heartbeat() {
    check(
        "heartbeat",
        &AgentMessage::Heartbeat(Heartbeat {
            seq: 42,
            max_concurrency: 2,
            running_jobs: 1,
            free_slots: 1,
            ollama_reachable: true,
            models: None,
            jobs: vec![JobRef { job_id: uuid!("01934c5a-9999-7000-8000-00000000abcd"), epoch: 2 }],
            projects: Some(vec![PROJECT]),
            policy: None,
        }),
    );
}

#[test]
fn renew_certificate() {
    check(
        "renew_certificate",
        &AgentMessage::RenewCertificate(RenewCertificate {
            csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\nMIIB...\n-----END CERTIFICATE REQUEST-----\n"
                .into(),
        }),
    );
}

#[test]
fn welcome() {
    check(
        "welcome",
        &ServerMessage::Welcome(Welcome {
            agent_id: AGENT,
            tenant_id: TENANT,
            name: "edge-01".into(),
            labels: labels(),
            server_time: datetime!(2026-11-22 10:00:00 UTC),
            protocol_version: 1,
            heartbeat_interval_ms: 10_000,
            offline_after_ms: 25_000,
            max_frame_bytes: MAX_FRAME_BYTES as u64,
            renew_certificate_at: datetime!(2026-12-12 10:00:00 UTC),
            tenant_compliance: "hipaa".into(),
        }),
    );
}

#[test]
fn certificate_renewed() {
    check(
        "certificate_renewed",
        &ServerMessage::CertificateRenewed(CertificateRenewed {
            certificate_pem: "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n".into(),
            not_after: datetime!(2027-01-21 10:00:00 UTC),
        }),
    );
}

#[test]
fn renewal_rejected() {
    check(
        "renewal_rejected",
        &ServerMessage::RenewalRejected(RenewalRejected {
            reason: "the CSR is not valid: bad signature".into(),
        }),
    );
}

fn job() -> JobRef {
    JobRef { job_id: JOB, epoch: 2 }
}

#[test]
fn assign_chat_job() {
    check(
        "assign_job_chat",
        &ServerMessage::AssignJob(AssignJob {
            job: job(),
            attempt: 2,
            spec: JobSpec::Chat {
                model: "llama3.2:3b".into(),
                messages: vec![
                    ChatMessage { role: "system".into(), content: "You write for Acme.".into() },
                    ChatMessage { role: "user".into(), content: "A headline about spring shoes.".into() },
                ],
                format: Some(
                    serde_json::json!({ "type": "object", "properties": { "headline": { "type": "string" } }, "required": ["headline"] }),
                ),
                options: JobOptions {
                    temperature: Some(0.25),
                    num_predict: Some(128),
                    num_ctx: Some(8192),
                    seed: Some(42),
                    stop: Some(vec!["\n\n".into()]),
                    top_p: Some(0.5),
                    top_k: Some(40),
                },
            },
            timeout_ms: 900_000,
        }),
    );
}

#[test]
fn assign_embed_job() {
    check(
        "assign_job_embed",
        &ServerMessage::AssignJob(AssignJob {
            job: job(),
            attempt: 1,
            spec: JobSpec::Embed {
                model: "nomic-embed-text".into(),
                input: vec!["spring shoes".into(), "rain boots".into()],
            },
            timeout_ms: 60_000,
        }),
    );
}

#[test]
fn cancel_job() {
    check(
        "cancel_job",
        &ServerMessage::CancelJob(CancelJob { job: job(), reason: "cancelled by a user".into() }),
    );
}

#[test]
fn acknowledge() {
    check("acknowledge", &ServerMessage::Acknowledge(Acknowledge { job: job(), seq: 17 }));
}

#[test]
fn job_events() {
    let event = |seq, body| AgentMessage::JobEvent(JobEvent { job: job(), seq, body });
    check("job_started", &event(1, JobEventBody::Started));
    check("job_output", &event(2, JobEventBody::Output { text: "Spring into ".into() }));
    check(
        "job_succeeded",
        &event(
            3,
            JobEventBody::Finished {
                outcome: JobOutcome::Succeeded {
                    output: JobOutput::Message {
                        role: "assistant".into(),
                        content: "Spring into comfort".into(),
                        done_reason: "length".into(),
                    },
                    usage: Usage {
                        prompt_tokens: 26,
                        completion_tokens: 298,
                        load_duration_ns: 6_338_219_291,
                        prompt_eval_duration_ns: 130_079_000,
                        eval_duration_ns: 4_232_710_000,
                        total_duration_ns: 10_706_818_083,
                        wall_time_ms: 10_712,
                        redactions: BTreeMap::from([("EMAIL".to_owned(), 2), ("SSN".to_owned(), 1)]),
                    },
                },
            },
        ),
    );
    check(
        "job_embedded",
        &event(
            2,
            JobEventBody::Finished {
                outcome: JobOutcome::Succeeded {
                    output: JobOutput::Embeddings { embeddings: vec![vec![0.25, -0.5], vec![1.0, 0.0]] },
                    usage: Usage { prompt_tokens: 4, wall_time_ms: 12, ..Usage::default() },
                },
            },
        ),
    );
    check(
        "job_failed",
        &event(
            2,
            JobEventBody::Finished {
                outcome: JobOutcome::Failed {
                    error: JobError {
                        code: job_errors::OLLAMA_UNREACHABLE.into(),
                        message: "Ollama at http://127.0.0.1:11434 refused the connection".into(),
                        retryable: true,
                    },
                },
            },
        ),
    );
    check(
        "job_cancelled",
        &event(
            4,
            JobEventBody::Finished {
                outcome: JobOutcome::Cancelled { reason: "cancelled by a user".into() },
            },
        ),
    );
}

#[test]
fn documents() {
    let meta = documents::DocumentMeta {
        id: DOCUMENT,
        project_id: PROJECT,
        name: "brand-guide.pdf".into(),
        size_bytes: 184_320,
        sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        media_type: "application/pdf".into(),
        status: documents::DocumentStatus::Indexed,
        error: None,
        chunk_count: 42,
        embedding_model: "nomic-embed-text".into(),
        indexed_at: Some(datetime!(2026-11-22 10:05:00 UTC)),
    };
    check(
        "documents_report",
        &AgentMessage::Documents(documents::DocumentReport {
            seq: 1,
            held: Some(vec![DOCUMENT]),
            documents: vec![meta],
            removed: vec![uuid!("01934c5a-2222-7000-8000-000000000004")],
        }),
    );
    check(
        "documents_acknowledged",
        &ServerMessage::DocumentsAcknowledged {
            seq: 1,
            refused: vec![documents::RefusedDocument {
                id: uuid!("01934c5a-2222-7000-8000-000000000005"),
                reason:
                    "project 01934c5a-1111-7000-8000-000000000009 is not a project of this agent's tenant"
                        .into(),
            }],
        },
    );
    check("remove_documents", &ServerMessage::RemoveDocuments { ids: vec![DOCUMENT] });
    check(
        "assign_job_ingest",
        &ServerMessage::AssignJob(AssignJob {
            job: job(),
            attempt: 1,
            spec: JobSpec::Ingest {
                model: "nomic-embed-text".into(),
                document: IngestDocument {
                    document_id: DOCUMENT,
                    project_id: PROJECT,
                    name: "brand-guide.pdf".into(),
                    media_type: "application/pdf".into(),
                    size_bytes: 184_320,
                    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                },
            },
            timeout_ms: 1_800_000,
        }),
    );
    check(
        "job_ingested",
        &AgentMessage::JobEvent(JobEvent {
            job: job(),
            seq: 2,
            body: JobEventBody::Finished {
                outcome: JobOutcome::Succeeded {
                    output: JobOutput::Ingested { document_id: DOCUMENT, chunk_count: 42 },
                    usage: Usage { wall_time_ms: 2_400, ..Usage::default() },
                },
            },
        }),
    );
}

#[test]
fn classify_messages() {
    check(
        "assign_job_classify",
        &ServerMessage::AssignJob(AssignJob {
            job: job(),
            attempt: 1,
            spec: JobSpec::Classify {
                model: "llama3.2".into(),
                items: vec![inbox::ClassifyItem {
                    id: DOCUMENT,
                    platform: "mastodon".into(),
                    kind: "reply".into(),
                }],
            },
            timeout_ms: 300_000,
        }),
    );
    check("classify_texts", &inbox::ClassifyTexts { texts: vec!["Is the open house on Sunday?".into()] });
    check(
        "job_classified",
        &AgentMessage::JobEvent(JobEvent {
            job: job(),
            seq: 2,
            body: JobEventBody::Finished {
                outcome: JobOutcome::Succeeded {
                    output: JobOutput::Classified {
                        items: vec![inbox::ItemLabels {
                            sentiment: inbox::Sentiment::Negative,
                            sentiment_score: -0.5,
                            intent: inbox::Intent::Complaint,
                            urgency: inbox::Urgency::High,
                            language: "en".into(),
                            personal_data: true,
                            text: Some("Call me at [PHONE], nobody answers".into()),
                            redacted: true,
                        }],
                    },
                    usage: Usage { wall_time_ms: 900, ..Usage::default() },
                },
            },
        }),
    );
}

#[test]
fn reply_messages() {
    check(
        "assign_job_reply",
        &ServerMessage::AssignJob(AssignJob {
            job: job(),
            attempt: 1,
            spec: JobSpec::Reply {
                model: "llama3.2".into(),
                reply: inbox::ReplyJob {
                    item_id: DOCUMENT,
                    platform: "mastodon".into(),
                    kind: "mention".into(),
                    project_id: Some(PROJECT),
                    brand_voice: "Warm, plain words.".into(),
                    max_chars: 480,
                },
            },
            timeout_ms: 300_000,
        }),
    );
    check(
        "reply_context",
        &inbox::ReplyContext {
            text: "Is the open house on Sunday?".into(),
            post_text: Some("Open house this weekend at the loft".into()),
            author_name: Some("Dana".into()),
        },
    );
    check(
        "job_reply_drafted",
        &AgentMessage::JobEvent(JobEvent {
            job: job(),
            seq: 2,
            body: JobEventBody::Finished {
                outcome: JobOutcome::Succeeded {
                    output: JobOutput::ReplyDrafted {
                        draft: inbox::ReplyDraft {
                            text: "Yes: Saturday and Sunday, 10 to 2. See you there!".into(),
                            sources: vec!["open-house.md".into()],
                            ungrounded: None,
                        },
                    },
                    usage: Usage { wall_time_ms: 1_200, ..Usage::default() },
                },
            },
        }),
    );
}

#[test]
fn unknown_message_types_are_errors() {
    assert!(serde_json::from_str::<AgentMessage>(r#"{"type":"launch_missiles"}"#).is_err());
    assert!(serde_json::from_str::<AgentMessage>(r#"{"seq":1}"#).is_err());
    assert!(serde_json::from_str::<EnrollRequest>(r#"{"token":"t","csr_pem":"c","host":{"hostname":"h","os":"o","arch":"a"},"agent_version":"1","extra":1}"#).is_err());
}
