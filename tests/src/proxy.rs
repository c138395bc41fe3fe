//! A test HTTP `CONNECT` proxy on a loopback port: it tunnels TCP, can
//! require basic authentication, and can play a TLS-inspecting middlebox
//! that sends clients to an impostor TLS server instead of the target.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// `user:password` the client must present.
    pub credentials: Option<String>,
    /// Send every tunnel here instead of the requested target (an impostor
    /// that presents its own certificate, like a TLS-inspecting proxy).
    pub divert_to: Option<SocketAddr>,
}

#[derive(Debug)]
pub struct ConnectProxy {
    pub addr: SocketAddr,
    tunnels: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    shutdown: CancellationToken,
}

impl ConnectProxy {
    pub async fn start(options: ProxyOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let tunnels = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let shutdown = CancellationToken::new();
        let (t, r, stop) = (tunnels.clone(), refused.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                };
                let (options, t, r) = (options.clone(), t.clone(), r.clone());
                tokio::spawn(async move {
                    let _ = handle(client, &options, &t, &r).await;
                });
            }
        });
        Self { addr, tunnels, refused, shutdown }
    }

    /// `http://[user:password@]127.0.0.1:PORT`.
    pub fn url(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(c) => format!("http://{c}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    pub fn tunnels(&self) -> u64 {
        self.tunnels.load(Ordering::SeqCst)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn handle(
    client: TcpStream,
    options: &ProxyOptions,
    tunnels: &AtomicU64,
    refused: &AtomicU64,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("proxy-authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default().to_owned());
    let mut client = reader.into_inner();
    if method != "CONNECT" {
        client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n").await?;
        return Ok(());
    }
    if let Some(credentials) = &options.credentials {
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
        if authorization.as_deref() != Some(expected.as_str()) {
            refused.fetch_add(1, Ordering::SeqCst);
            client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n")
                .await?;
            return Ok(());
        }
    }
    let upstream = match options.divert_to {
        Some(addr) => TcpStream::connect(addr).await,
        None => TcpStream::connect(target.as_str()).await,
    };
    let mut upstream = match upstream {
        Ok(upstream) => upstream,
        Err(_) => {
            client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await?;
            return Ok(());
        }
    };
    tunnels.fetch_add(1, Ordering::SeqCst);
    client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await?;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}

/// A TLS server with a certificate of its own (self-signed for
/// `localhost`), standing in for a TLS-inspecting middlebox.
#[derive(Debug)]
pub struct Impostor {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Impostor {
    pub async fn start() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(tcp).await;
                });
            }
        });
        Self { addr, shutdown }
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
