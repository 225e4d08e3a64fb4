//! The server's ed25519 signing key.

use ruma::signatures::Ed25519KeyPair;

#[derive(Debug, thiserror::Error)]
#[error("invalid signing key: {0}")]
pub struct KeyError(String);

/// The key this server signs its events with. Kept as PKCS#8 DER in the data directory.
pub struct ServerKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKey").field("version", &self.pair.version()).finish_non_exhaustive()
    }
}

impl ServerKey {
    /// A new random key with the given version (the part after `ed25519:`).
    pub fn generate(version: &str) -> Result<Self, KeyError> {
        let der = Ed25519KeyPair::generate();
        Self::from_pkcs8(&der, version)
    }

    pub fn from_pkcs8(der: &[u8], version: &str) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_der(der, version.to_owned()).map_err(|e| KeyError(e.to_string()))?;
        Ok(Self { pair, pkcs8: der.to_vec() })
    }

    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn version(&self) -> &str {
        self.pair.version()
    }

    pub(crate) fn pair(&self) -> &Ed25519KeyPair {
        &self.pair
    }
}
