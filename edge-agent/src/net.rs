//! Connecting to the control plane's gateway: TCP (directly or through a
//! proxy), then TLS, either pinned to the CA hash from an enrollment token or
//! anchored in the CA saved at enrollment, with the agent's certificate.
//!
//! Failures are turned into one-line explanations that say what to do.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::identity::Identity;
use crate::proxy::Proxy;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The gateway's address, from `https://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    pub url: String,
    pub host: String,
    pub port: u16,
}

impl ServerAddr {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let url = url.trim().trim_end_matches('/');
        let Some(rest) = url.strip_prefix("https://") else {
            bail!(
                "the server address must start with https:// (for example https://marketer.example.com:8443), got {url:?}"
            );
        };
        if rest.contains('/') || rest.is_empty() {
            bail!("the server address must be https://HOST[:PORT] without a path, got {url:?}");
        }
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner.split_once(']').context("unbalanced [ in the server address")?;
            let port = after
                .strip_prefix(':')
                .map(str::parse)
                .transpose()
                .context("the server port is not a number")?;
            (host.to_owned(), port.unwrap_or(443))
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => {
                    (host.to_owned(), port.parse().context("the server port is not a number")?)
                }
                None => (rest.to_owned(), 443),
            }
        };
        Ok(Self { url: url.to_owned(), host, port })
    }

    pub fn server_name(&self) -> anyhow::Result<ServerName<'static>> {
        ServerName::try_from(self.host.clone())
            .with_context(|| format!("{:?} is not a valid host name", self.host))
    }
}

/// Opens a TCP connection to the gateway, through the proxy when the
/// environment says so.
pub async fn dial(server: &ServerAddr) -> anyhow::Result<(TcpStream, Option<Proxy>)> {
    let proxy = Proxy::from_env(&server.host)?;
    let connect = async {
        match &proxy {
            Some(proxy) => proxy.connect(&server.host, server.port).await,
            None => TcpStream::connect((server.host.as_str(), server.port))
                .await
                .map_err(|e| unreachable(server, &e)),
        }
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| anyhow::anyhow!("the control plane at {} did not answer within {CONNECT_TIMEOUT:?}; check the address and any firewall", server.url))??;
    let _ = stream.set_nodelay(true);
    Ok((stream, proxy))
}

fn unreachable(server: &ServerAddr, e: &std::io::Error) -> anyhow::Error {
    let what = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            "refused the connection (is the server running, and is the port its agent port?)"
        }
        std::io::ErrorKind::TimedOut => "did not answer",
        _ if e.to_string().contains("failed to lookup")
            || e.to_string().contains("Name or service not known") =>
        {
            "cannot be found by name (check the host name and DNS)"
        }
        _ => "cannot be reached",
    };
    anyhow::anyhow!("the control plane at {} {what}: {e}", server.url)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// TLS for enrollment: the server's chain must contain a certificate whose
/// SHA-256 is `pin`, and must verify up to that certificate.
pub fn pinned_config(pin: [u8; 32]) -> anyhow::Result<ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(PinnedVerifier { pin, provider: provider.clone() });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// TLS for the tunnel: the gateway must chain to the CA saved at enrollment,
/// and the agent authenticates with its certificate.
pub fn agent_config(ca_pem: &str, identity: Identity) -> anyhow::Result<ClientConfig> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.context("the saved CA certificate is not valid PEM")?)
            .context("the saved CA certificate")?;
    }
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![identity.certificate], identity.key)
        .context("the agent's key does not match its certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Completes TLS over `stream`, explaining failures.
pub async fn handshake(
    stream: TcpStream,
    server: &ServerAddr,
    config: ClientConfig,
    proxy: Option<&Proxy>,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let connector = TlsConnector::from(Arc::new(config));
    let attempt = connector.connect(server.server_name()?, stream);
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(explain_tls(&e, server, proxy)),
        Err(_) => bail!("the TLS handshake with {} did not finish within {CONNECT_TIMEOUT:?}", server.url),
    }
}

/// The largest answer taken from the gateway: above the largest document.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// One HTTPS request to the gateway over a fresh connection, for enrollment
/// and diagnostics. Returns the status and the body.
pub async fn request(
    server: &ServerAddr,
    config: ClientConfig,
    method: http::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(http::StatusCode, Vec<u8>)> {
    request_within(server, config, method, path, body, CONNECT_TIMEOUT).await
}

/// [`request`], with `timeout` for the exchange after the handshake (a
/// document download takes longer than an enrollment).
pub async fn request_within(
    server: &ServerAddr,
    config: ClientConfig,
    method: http::Method,
    path: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> anyhow::Result<(http::StatusCode, Vec<u8>)> {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;

    let (tcp, proxy) = dial(server).await?;
    let tls = handshake(tcp, server, config, proxy.as_ref()).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .with_context(|| format!("HTTP with {} failed", server.url))?;
    let driver = tokio::spawn(connection);
    let authority =
        if server.port == 443 { server.host.clone() } else { format!("{}:{}", server.host, server.port) };
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, concat!("marketer-agent/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .context("building the request")?;
    let exchange = async {
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_bytes()
            .to_vec();
        Ok::<_, anyhow::Error>((status, body))
    };
    let result = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("{} did not answer within {timeout:?}", server.url))?
        .with_context(|| format!("HTTP with {} failed", server.url));
    driver.abort();
    result
}

/// Marks a pin mismatch so it can be told apart from other certificate errors.
const PIN_MISMATCH: &str = "certificate authority pin mismatch";

/// Turns a TLS failure into what to do about it.
pub fn explain_tls(e: &std::io::Error, server: &ServerAddr, proxy: Option<&Proxy>) -> anyhow::Error {
    let inspecting = |problem: &str| match proxy {
        Some(proxy) => anyhow::anyhow!(
            "{problem}. Traffic goes through the proxy {proxy}, which looks like it inspects TLS and replaces the \
             server's certificate: ask for {} to be exempted from TLS inspection",
            server.host
        ),
        None => anyhow::anyhow!("{problem}; check that {} is the right control plane", server.url),
    };
    let tls = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::General(message)) if message.contains(PIN_MISMATCH) => inspecting(
            "the server's certificate authority does not match the one in the enrollment token (CA hash mismatch)",
        ),
        Some(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        )) => {
            inspecting("the server's certificate is not issued by the control plane's certificate authority")
        }
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => {
            anyhow::anyhow!(
                "the server's certificate is not valid for {}: connect with the address in its install command, or set agent_public_url on the server",
                server.host
            )
        }
        Some(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => {
            anyhow::anyhow!(
                "the server's certificate has expired; restart the control plane or renew its gateway certificate"
            )
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            let alert = format!("{alert:?}");
            if alert.contains("CertificateExpired") {
                anyhow::anyhow!(
                    "the control plane refused this agent's certificate as expired; ask an administrator for a new enrollment token and run `marketer-agent enroll --force`"
                )
            } else if alert.contains("Certificate")
                || alert.contains("UnknownCA")
                || alert.contains("DecryptError")
            {
                anyhow::anyhow!(
                    "the control plane does not accept this agent's certificate ({alert}); it may come from another control plane: enroll again with `marketer-agent enroll --force`"
                )
            } else {
                anyhow::anyhow!("the control plane ended the TLS handshake ({alert})")
            }
        }
        Some(other) => anyhow::anyhow!("TLS with {} failed: {other}", server.url),
        None => anyhow::anyhow!("TLS with {} failed: {e}", server.url),
    }
}

#[derive(Debug)]
struct PinnedVerifier {
    pin: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let anchor = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|cert| Sha256::digest(cert.as_ref()).as_slice() == self.pin)
            .ok_or_else(|| rustls::Error::General(PIN_MISMATCH.into()))?;
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned()).map_err(|_| rustls::Error::General(PIN_MISMATCH.into()))?;
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        let a = ServerAddr::parse("https://cp.example.com:8443/").unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.url.as_str()),
            ("cp.example.com", 8443, "https://cp.example.com:8443")
        );
        assert_eq!(ServerAddr::parse("https://cp.example.com").unwrap().port, 443);
        assert_eq!(ServerAddr::parse("https://[::1]:9443").unwrap().host, "::1");
        for bad in ["http://cp:8443", "cp:8443", "https://cp:port", "https://cp:8443/agent", "https://"] {
            assert!(ServerAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
