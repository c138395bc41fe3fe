//! Simulated agents for benchmarks: they enroll through the real enrollment
//! endpoint (each with its own key pair and CA-signed certificate) and speak
//! the tunnel protocol over mutually authenticated WebSockets, without the
//! cost of an agent process each. What they do once connected is up to the
//! benchmark.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use marketer_protocol::{
    AgentMessage, HostInfo, JobRef, ModelInfo, OllamaStatus, PROTOCOL_VERSION, ServerMessage, Welcome,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// A client configuration trusting `ca_pem`, presenting `identity` if given.
pub fn tls_config(ca_pem: &str, identity: Option<&Identity>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("a CA certificate")).expect("a usable CA certificate");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(identity.certificate.as_bytes())
                    .map(|c| c.expect("a certificate"))
                    .collect(),
                PrivateKeyDer::from_pem_slice(identity.key.as_bytes()).expect("a private key"),
            )
            .expect("a client identity"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// An enrolled simulated agent's certificate and key, in PEM.
#[derive(Debug, Clone)]
pub struct Identity {
    pub certificate: String,
    pub key: String,
}

async fn tls(port: u16, config: Arc<rustls::ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("connect to the gateway");
    tcp.set_nodelay(true).expect("TCP_NODELAY");
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").expect("a server name"), tcp)
        .await
        .expect("a TLS handshake with the gateway")
}

/// Enrolls through `POST /agent/v1/enroll` with the secret part of an
/// enrollment token (the part before the CA hash).
pub async fn enroll(port: u16, ca_pem: &str, token_secret: &str, name: &str) -> Identity {
    use http_body_util::BodyExt;
    let key = rcgen::KeyPair::generate().expect("a key pair");
    let csr =
        rcgen::CertificateParams::default().serialize_request(&key).and_then(|csr| csr.pem()).expect("a CSR");
    let body = json!({
        "token": token_secret, "csr_pem": csr, "name": name, "labels": {},
        "host": { "hostname": name, "os": "linux", "arch": "x86_64" }, "agent_version": "sim",
    })
    .to_string();
    let stream = tls(port, tls_config(ca_pem, None)).await;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("an HTTP connection");
    tokio::spawn(connection);
    let request = http::Request::post("/agent/v1/enroll")
        .header("host", format!("localhost:{port}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .expect("a request");
    let response = sender.send_request(request).await.expect("an enrollment answer");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("the answer's body").to_bytes();
    assert_eq!(status, 201, "enrollment failed: {}", String::from_utf8_lossy(&bytes));
    let answer: Value = serde_json::from_slice(&bytes).expect("JSON");
    Identity {
        certificate: answer["certificate_pem"].as_str().expect("certificate_pem").to_owned(),
        key: key.serialize_pem(),
    }
}

/// A connected simulated agent.
#[derive(Debug)]
pub struct Connection {
    socket: Socket,
    pub welcome: Welcome,
}

/// What a simulated agent says it can do.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub max_concurrency: u32,
    pub models: Vec<String>,
    pub running_jobs: Vec<JobRef>,
    /// Projects whose document index it claims to hold.
    pub projects: Vec<uuid::Uuid>,
}

impl Connection {
    /// Opens the tunnel, sends `Hello` and waits for `Welcome`.
    pub async fn open(port: u16, ca_pem: &str, identity: &Identity, capabilities: Capabilities) -> Self {
        let stream = tls(port, tls_config(ca_pem, Some(identity))).await;
        let (socket, _) =
            tokio_tungstenite::client_async(format!("wss://localhost:{port}/agent/v1/connect"), stream)
                .await
                .expect("the WebSocket upgrade");
        let mut socket = socket;
        let hello = marketer_protocol::Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: "sim".into(),
            host: HostInfo { hostname: "sim".into(), os: "linux".into(), arch: "x86_64".into() },
            labels: Default::default(),
            max_concurrency: capabilities.max_concurrency,
            ollama: OllamaStatus {
                reachable: true,
                models: capabilities
                    .models
                    .into_iter()
                    .map(|name| ModelInfo { name, size_bytes: 1, digest: None })
                    .collect(),
            },
            running_jobs: capabilities.running_jobs,
            projects: capabilities.projects,
            policy: Default::default(),
        };
        send(&mut socket, &AgentMessage::Hello(hello)).await.expect("send Hello");
        match next(&mut socket).await {
            Some(ServerMessage::Welcome(welcome)) => Self { socket, welcome },
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    pub async fn send(&mut self, message: &AgentMessage) -> Result<(), String> {
        send(&mut self.socket, message).await
    }

    /// The next message from the server; `None` once the connection ends.
    pub async fn next(&mut self) -> Option<ServerMessage> {
        next(&mut self.socket).await
    }
}

type Socket = WebSocketStream<TlsStream<TcpStream>>;

async fn send(socket: &mut Socket, message: &AgentMessage) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
    socket.send(Message::Text(text.into())).await.map_err(|e| e.to_string())
}

async fn next(socket: &mut Socket) -> Option<ServerMessage> {
    loop {
        match socket.next().await? {
            Ok(Message::Text(text)) => {
                return Some(serde_json::from_str(text.as_str()).expect("a server message"));
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
