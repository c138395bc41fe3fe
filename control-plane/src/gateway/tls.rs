//! The gateway's TLS: server identity, and client-certificate verification
//! against the agent CA.
//!
//! Client certificates are optional at the TLS layer because enrollment
//! happens before an agent has one; a certificate that *is* presented must
//! chain to the agent CA and be within its validity, or the handshake fails.
//! The tunnel endpoint then refuses connections without one.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::ca::{CertificateAuthority, ServerIdentity};

/// The crypto provider used for every TLS configuration of the server.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The gateway's TLS configuration, and the certificate agents pin.
#[derive(Debug, Clone)]
pub struct GatewayTls {
    pub config: Arc<rustls::ServerConfig>,
    /// The root of the server certificate's chain, which enrollment tokens
    /// pin and enrolled agents trust.
    pub anchor_pem: String,
    pub anchor_sha256: [u8; 32],
    /// When the server certificate agents see expires (Unix seconds).
    pub not_after: Option<i64>,
}

impl GatewayTls {
    /// With a server certificate the CA issues now for `names`.
    pub fn issued(ca: &CertificateAuthority, names: &[String]) -> anyhow::Result<Self> {
        let identity = ca.issue_server_certificate(names)?;
        let not_after = identity.chain.first().and_then(|leaf| super::ca::not_after(leaf.as_ref()));
        Ok(Self {
            config: server_config(ca, identity)?,
            anchor_pem: ca.certificate_pem().to_owned(),
            anchor_sha256: ca.sha256(),
            not_after,
        })
    }

    /// With an operator's certificate chain and key (PEM files). The last
    /// certificate of the chain is what agents pin, so include the issuing CA.
    pub fn supplied(ca: &CertificateAuthority, chain_file: &Path, key_file: &Path) -> anyhow::Result<Self> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain_file)
            .with_context(|| format!("reading {}", chain_file.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} is not a PEM certificate chain", chain_file.display()))?;
        let anchor = chain
            .last()
            .cloned()
            .with_context(|| format!("{} holds no certificate", chain_file.display()))?;
        crate::secrets::check_permissions(key_file)?;
        let key = PrivateKeyDer::from_pem_file(key_file)
            .with_context(|| format!("{} is not a PEM private key", key_file.display()))?;
        let anchor_pem = pem_encode(anchor.as_ref());
        let anchor_sha256 = super::ca::fingerprint(anchor.as_ref()).try_into().unwrap_or([0; 32]);
        let not_after = chain.first().and_then(|leaf| super::ca::not_after(leaf.as_ref()));
        Ok(Self {
            config: server_config(ca, ServerIdentity { chain, key })?,
            anchor_pem,
            anchor_sha256,
            not_after,
        })
    }
}

fn server_config(
    ca: &CertificateAuthority,
    identity: ServerIdentity,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    roots.add(ca.certificate_der().clone()).context("adding the agent CA to the client roots")?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("building the client certificate verifier")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)
        .context("the gateway certificate and key do not match")?;
    // WebSocket upgrades need HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn pem_encode(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
