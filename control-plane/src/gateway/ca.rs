//! The control plane's own certificate authority for agents.
//!
//! It signs every agent's client certificate (from a CSR, so the agent's
//! private key never leaves its host) and, unless the operator supplies one,
//! the gateway's server certificate. Agents pin its certificate by SHA-256
//! (carried in the enrollment token) before trusting anything else.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::Timestamp;

/// Largest CSR accepted, PEM. Real ones are well under 2 KiB.
const MAX_CSR_BYTES: usize = 16 * 1024;

/// Slack before "now" in `notBefore`, for agents whose clocks run behind.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    certificate_der: CertificateDer<'static>,
    certificate_pem: String,
    sha256: [u8; 32],
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority").field("sha256", &hex(&self.sha256)).finish_non_exhaustive()
    }
}

/// A certificate issued to an agent.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub pem: String,
    /// SHA-256 of the DER: how the gateway recognises the agent.
    pub fingerprint: Vec<u8>,
    pub serial: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

/// A certificate and key for the gateway's TLS listener.
#[derive(Debug)]
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// Why a CSR was refused; shown to the agent.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("the CSR is larger than {MAX_CSR_BYTES} bytes")]
    TooLarge,
    #[error("the CSR is not a valid PKCS#10 request with a valid signature ({0})")]
    Invalid(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Where the CA lives: files the operator supplied, or generated ones in the
/// data directory.
#[derive(Debug, Clone)]
pub struct CaFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

impl CaFiles {
    pub fn in_data_dir(data_dir: &Path) -> Self {
        let dir = data_dir.join("ca");
        Self { certificate: dir.join("ca.crt"), key: dir.join("ca.key") }
    }
}

impl CertificateAuthority {
    /// Loads the CA from `files`, creating it first when neither file exists
    /// (and `create` allows it). The key file gets mode 0600.
    pub fn load_or_create(files: &CaFiles, create: bool) -> anyhow::Result<Self> {
        let (cert_exists, key_exists) = (files.certificate.exists(), files.key.exists());
        match (cert_exists, key_exists) {
            (true, true) => Self::load(files),
            (false, false) if create => {
                let ca = Self::generate()?;
                ca.write(files)?;
                tracing::info!(path = %files.certificate.display(), sha256 = %ca.sha256_hex(), "created the agent certificate authority");
                Ok(ca)
            }
            (false, false) => bail!("no CA at {}", files.certificate.display()),
            _ => bail!(
                "only one of {} and {} exists; supply both, or remove the other to let the server create a new CA",
                files.certificate.display(),
                files.key.display()
            ),
        }
    }

    fn load(files: &CaFiles) -> anyhow::Result<Self> {
        crate::secrets::check_permissions(&files.key)?;
        let key_pem = std::fs::read_to_string(&files.key)
            .with_context(|| format!("reading the CA key {}", files.key.display()))?;
        let cert_pem = std::fs::read_to_string(&files.certificate)
            .with_context(|| format!("reading the CA certificate {}", files.certificate.display()))?;
        let key = KeyPair::from_pem(&key_pem)
            .with_context(|| format!("{} is not a PEM private key", files.key.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .with_context(|| format!("{} is not a PEM certificate", files.certificate.display()))?;
        let der = pem_to_der(&cert_pem)
            .with_context(|| format!("{} is not a PEM certificate", files.certificate.display()))?;
        Ok(Self::from_parts(issuer, der, cert_pem))
    }

    /// A new CA: ECDSA P-256, valid for ten years.
    pub fn generate() -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generating the CA key")?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Marketer agent CA");
        dn.push(DnType::OrganizationName, "Marketer");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + time::Duration::days(3650);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).context("self-signing the CA certificate")?;
        let pem = cert.pem();
        let der = cert.der().clone();
        Ok(Self::from_parts(Issuer::new(params, key), der, pem))
    }

    fn from_parts(
        issuer: Issuer<'static, KeyPair>,
        certificate_der: CertificateDer<'static>,
        certificate_pem: String,
    ) -> Self {
        let sha256 = Sha256::digest(certificate_der.as_ref()).into();
        Self { issuer, certificate_der, certificate_pem, sha256 }
    }

    fn write(&self, files: &CaFiles) -> anyhow::Result<()> {
        if let Some(dir) = files.key.parent() {
            crate::secrets::create_private_dir(dir)?;
        }
        crate::secrets::write_new_private_file(&files.key, self.issuer.key().serialize_pem().as_bytes())?;
        std::fs::write(&files.certificate, &self.certificate_pem)
            .with_context(|| format!("writing {}", files.certificate.display()))?;
        Ok(())
    }

    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.certificate_der
    }

    /// SHA-256 of the CA certificate (DER), the value agents pin.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }

    /// Signs the public key of `csr_pem` into a client certificate for
    /// `agent_id`. Nothing else of the CSR is trusted: the subject, names and
    /// usages are the CA's choice.
    pub fn issue_agent_certificate(
        &self,
        csr_pem: &str,
        agent_id: Uuid,
        lifetime: time::Duration,
    ) -> Result<IssuedCertificate, CsrError> {
        if csr_pem.len() > MAX_CSR_BYTES {
            return Err(CsrError::TooLarge);
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CsrError::Invalid(e.to_string()))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, agent_id.to_string());
        dn.push(DnType::OrganizationName, "Marketer agents");
        params.distinguished_name = dn;
        let uri = format!("urn:marketer:agent:{agent_id}");
        params.subject_alt_names =
            vec![SanType::URI(uri.try_into().map_err(|e: rcgen::Error| CsrError::Signing(e.to_string()))?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let (not_before, not_after) = validity(lifetime);
        params.not_before = not_before.as_datetime();
        params.not_after = not_after.as_datetime();
        let serial = random_serial();
        let serial_hex = hex(&serial.to_bytes());
        params.serial_number = Some(serial);
        let cert =
            params.signed_by(&csr.public_key, &self.issuer).map_err(|e| CsrError::Signing(e.to_string()))?;
        Ok(IssuedCertificate {
            pem: cert.pem(),
            fingerprint: Sha256::digest(cert.der().as_ref()).to_vec(),
            serial: serial_hex,
            not_before,
            not_after,
        })
    }

    /// A fresh server certificate for the gateway, valid for `names` (DNS
    /// names or IP addresses), with the CA certificate as its chain.
    pub fn issue_server_certificate(&self, names: &[String]) -> anyhow::Result<ServerIdentity> {
        let key = KeyPair::generate().context("generating the gateway key")?;
        let mut params = CertificateParams::new(names.to_vec()).context("gateway certificate names")?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().map_or("marketer-gateway", String::as_str));
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let (not_before, not_after) = validity(time::Duration::days(365));
        params.not_before = not_before.as_datetime();
        params.not_after = not_after.as_datetime();
        params.serial_number = Some(random_serial());
        let cert = params.signed_by(&key, &self.issuer).context("signing the gateway certificate")?;
        Ok(ServerIdentity {
            chain: vec![cert.der().clone(), self.certificate_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }
}

/// `notBefore` a little in the past, for agents whose clocks run behind, but
/// never more than a tenth of the lifetime, so short-lived certificates keep
/// their renewal schedule.
fn validity(lifetime: time::Duration) -> (Timestamp, Timestamp) {
    let now = Timestamp::now();
    (now - CLOCK_SKEW.min(lifetime / 10), now + lifetime)
}

/// A random positive 128-bit serial number (RFC 5280 allows up to 20 octets).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

pub fn pem_to_der(pem: &str) -> anyhow::Result<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// When a certificate (DER) expires, in Unix seconds; `None` if it cannot be
/// read.
pub fn not_after(der: &[u8]) -> Option<i64> {
    x509_parser::parse_x509_certificate(der).ok().map(|(_, parsed)| parsed.validity().not_after.timestamp())
}

/// SHA-256 of a certificate's DER, as stored for agent certificates.
pub fn fingerprint(der: &[u8]) -> Vec<u8> {
    Sha256::digest(der).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr() -> (KeyPair, String) {
        let key = KeyPair::generate().unwrap();
        let csr =
            CertificateParams::new(vec!["evil.example".to_owned()]).unwrap().serialize_request(&key).unwrap();
        (key, csr.pem().unwrap())
    }

    #[test]
    fn issues_client_certificates_from_csrs_and_ignores_requested_names() {
        let ca = CertificateAuthority::generate().unwrap();
        let (_, csr) = csr();
        let agent = Uuid::now_v7();
        let cert = ca.issue_agent_certificate(&csr, agent, time::Duration::days(30)).unwrap();
        let der = pem_to_der(&cert.pem).unwrap();
        assert_eq!(fingerprint(der.as_ref()), cert.fingerprint);
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        assert_eq!(parsed.subject().iter_common_name().next().unwrap().as_str().unwrap(), agent.to_string());
        let san = parsed.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 1, "only our URI, not the requested DNS name");
        assert!(!parsed.is_ca());
        let days = (cert.not_after.as_datetime() - cert.not_before.as_datetime()).whole_days();
        assert_eq!(days, 30, "30 days plus the clock-skew allowance");
        let short = ca.issue_agent_certificate(&csr, agent, time::Duration::seconds(20)).unwrap();
        let span = short.not_after.as_datetime() - short.not_before.as_datetime();
        assert_eq!(span, time::Duration::seconds(22), "a tenth of the lifetime as skew allowance");
    }

    #[test]
    fn refuses_garbage_and_oversized_csrs() {
        let ca = CertificateAuthority::generate().unwrap();
        assert!(matches!(
            ca.issue_agent_certificate("not a csr", Uuid::now_v7(), time::Duration::days(1)),
            Err(CsrError::Invalid(_))
        ));
        let (_, good) = csr();
        let tampered = good.replacen("MII", "MIJ", 1);
        assert!(ca.issue_agent_certificate(&tampered, Uuid::now_v7(), time::Duration::days(1)).is_err());
        let huge = "A".repeat(MAX_CSR_BYTES + 1);
        assert!(matches!(
            ca.issue_agent_certificate(&huge, Uuid::now_v7(), time::Duration::days(1)),
            Err(CsrError::TooLarge)
        ));
    }

    #[test]
    fn persists_and_reloads_with_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = CaFiles::in_data_dir(dir.path());
        let created = CertificateAuthority::load_or_create(&files, true).unwrap();
        let loaded = CertificateAuthority::load_or_create(&files, true).unwrap();
        assert_eq!(created.sha256(), loaded.sha256());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&files.key).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // A certificate issued by the reloaded CA chains to the original.
        let (_, csr) = csr();
        let cert = loaded.issue_agent_certificate(&csr, Uuid::now_v7(), time::Duration::days(1)).unwrap();
        let der = pem_to_der(&cert.pem).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(created.certificate_der().as_ref()).unwrap();
        assert!(parsed.verify_signature(Some(ca.public_key())).is_ok());

        std::fs::remove_file(&files.certificate).unwrap();
        let err = CertificateAuthority::load_or_create(&files, true).unwrap_err().to_string();
        assert!(err.contains("only one of"), "{err}");
    }
}
