//! Encryption of secrets at rest (the tenants' cloud API keys): AES-256-GCM
//! under a data key derived (HKDF-SHA256) from the server's data-key secret,
//! with a random nonce per encryption and the tenant id as associated data,
//! so a ciphertext copied to another tenant's row does not decrypt.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hkdf;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use uuid::Uuid;

/// HKDF salt and info: versioned, so a future scheme can coexist.
const SALT: &[u8] = b"marketer data key v1";
const INFO: &[u8] = b"cloud provider api key";

struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

/// The key secrets at rest are sealed with.
pub struct DataKey {
    key: RandomizedNonceKey,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

/// A sealed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("the secret could not be decrypted (was the data key changed?)")]
pub struct OpenError;

impl DataKey {
    pub fn derive(secret: &SecretBox<Vec<u8>>) -> anyhow::Result<Self> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret.expose_secret());
        let mut bytes = [0u8; 32];
        prk.expand(&[INFO], KeyLen)
            .and_then(|okm| okm.fill(&mut bytes))
            .map_err(|_| anyhow::anyhow!("deriving the data key failed"))?;
        let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| anyhow::anyhow!("the data key is not a valid AES-256 key"))?;
        bytes.fill(0);
        Ok(Self { key })
    }

    pub fn seal(&self, tenant_id: Uuid, plaintext: &str) -> anyhow::Result<Sealed> {
        let mut in_out = plaintext.as_bytes().to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(tenant_id.as_bytes()), &mut in_out)
            .map_err(|_| anyhow::anyhow!("encrypting a secret failed"))?;
        Ok(Sealed { ciphertext: in_out, nonce: nonce.as_ref().to_vec() })
    }

    pub fn open(&self, tenant_id: Uuid, sealed: &Sealed) -> Result<SecretString, OpenError> {
        let nonce: [u8; NONCE_LEN] = sealed.nonce.as_slice().try_into().map_err(|_| OpenError)?;
        let mut in_out = sealed.ciphertext.clone();
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(tenant_id.as_bytes()), &mut in_out)
            .map_err(|_| OpenError)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| OpenError)?;
        in_out.fill(0);
        Ok(SecretString::from(text))
    }
}

/// The last four characters of a key, for people to recognise it.
pub fn hint(key: &str) -> String {
    let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> DataKey {
        DataKey::derive(&SecretBox::new(Box::new(vec![byte; 32]))).unwrap()
    }

    #[test]
    fn sealed_secrets_open_only_with_the_key_and_the_tenant() {
        let (tenant, other) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = key(1).seal(tenant, "sk-live-abcdef123456").unwrap();
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"sk-liv"), "not in the clear");
        assert_eq!(key(1).open(tenant, &sealed).unwrap().expose_secret(), "sk-live-abcdef123456");
        assert!(key(1).open(other, &sealed).is_err(), "bound to its tenant");
        assert!(key(2).open(tenant, &sealed).is_err(), "bound to the key");
        let again = key(1).seal(tenant, "sk-live-abcdef123456").unwrap();
        assert_ne!(again.nonce, sealed.nonce, "a fresh nonce each time");
    }

    #[test]
    fn hints_show_the_end_only() {
        assert_eq!(hint("sk-live-abcdef123456"), "…3456");
        assert_eq!(hint("ab"), "…ab");
    }
}
