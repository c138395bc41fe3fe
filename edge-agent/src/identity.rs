//! The agent's key pair and certificate. The key is generated here and never
//! leaves the host: the control plane only ever sees a CSR.

use anyhow::Context;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

/// A fresh key and a CSR for it.
#[derive(Debug)]
pub struct KeyAndCsr {
    /// PKCS#8 PEM of the private key.
    pub key_pem: String,
    pub csr_pem: String,
}

/// Generates an ECDSA P-256 key and a CSR naming `name`.
pub fn new_key_and_csr(name: &str) -> anyhow::Result<KeyAndCsr> {
    let key = KeyPair::generate().context("generating a key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).context("building the certificate request")?;
    Ok(KeyAndCsr {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem().context("encoding the certificate request")?,
    })
}

/// The identity file: the private key followed by the certificate.
pub fn identity_pem(key_pem: &str, certificate_pem: &str) -> String {
    format!("{}\n{}", key_pem.trim_end(), certificate_pem)
}

/// A loaded identity, ready for TLS.
#[derive(Debug)]
pub struct Identity {
    pub certificate: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Identity {
    pub fn parse(pem: &str) -> anyhow::Result<Self> {
        let certificate = CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .context("the identity file holds no certificate")?
            .context("the identity file's certificate is not valid PEM")?;
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .context("the identity file holds no private key")?;
        let (not_before, not_after) = validity(&certificate)?;
        Ok(Self { certificate, key, not_before, not_after })
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.not_after
    }

    /// Two thirds into the certificate's lifetime: when to renew.
    pub fn renew_at(&self) -> OffsetDateTime {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }
}

/// `notBefore` and `notAfter` of a DER certificate.
pub fn validity(der: &CertificateDer<'_>) -> anyhow::Result<(OffsetDateTime, OffsetDateTime)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).context("parsing the certificate")?;
    let validity = cert.validity();
    Ok((validity.not_before.to_datetime(), validity.not_after.to_datetime()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_csrs_parse() {
        let generated = new_key_and_csr("edge-01").unwrap();
        assert!(generated.key_pem.contains("PRIVATE KEY"));
        assert!(generated.csr_pem.contains("CERTIFICATE REQUEST"));
        // A self-signed certificate for the key stands in for the CA's.
        let key = KeyPair::from_pem(&generated.key_pem).unwrap();
        let mut params = CertificateParams::new(vec!["edge".to_owned()]).unwrap();
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = OffsetDateTime::now_utc() + time::Duration::days(2);
        let cert = params.self_signed(&key).unwrap();
        let identity = Identity::parse(&identity_pem(&generated.key_pem, &cert.pem())).unwrap();
        assert!(!identity.is_expired(OffsetDateTime::now_utc()));
        let renew = identity.renew_at();
        assert!(renew > OffsetDateTime::now_utc() && renew < identity.not_after);
        assert!(Identity::parse(&generated.key_pem).is_err(), "a key alone is no identity");
    }
}
