//! Key handling. The server holds one 32-byte master key (the analogue of the KMS key behind a
//! vault's EncryptionKeyArn). Each vault has its own random repository key and a random password
//! that unlocks a restic key file in the repository; both are sealed together under the master
//! key (XChaCha20-Poly1305) into a [`SealedVaultKey`] that the metadata store persists. Coffer
//! opens vaults with the repository key directly (no scrypt on any open); the password is for an
//! operator who opens a vault with plain `restic`/`rustic` after
//! [`crate::VaultRepo::export_key`], which writes the repository's restic key file for it the
//! first time (so creating a vault costs no key derivation).

use std::{
    fmt,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const SEAL_PREFIX: &str = "cvk1";
const SEAL_AAD: &[u8] = b"coffer vault key v1";

/// The server's master key: 32 random bytes that seal every vault key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A master key from exactly 32 bytes (from configuration or the environment).
    ///
    /// # Errors
    /// [`Error::MasterKey`] when the length is not 32.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::MasterKey(format!("expected 32 bytes, got {}", bytes.len())))?;
        Ok(Self(arr))
    }

    /// A master key from 64 hexadecimal characters (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`Error::MasterKey`] when the text is not 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| Error::MasterKey(format!("not hexadecimal: {e}")))?;
        Self::from_bytes(&bytes)
    }

    /// A fresh random master key.
    #[must_use]
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }

    /// Read the key file at `path` (64 hex characters), or create it with a fresh key and
    /// permissions 0600 when it does not exist. An existing file readable by group or others
    /// is refused.
    ///
    /// # Errors
    /// [`Error::MasterKey`] for a malformed or too widely readable file, [`Error::Io`] otherwise.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(Error::MasterKey(format!(
                        "{} is accessible by other users (mode {mode:o}); chmod 600 it",
                        path.display()
                    )));
                }
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::io("read master key", path, e))?;
                Self::from_hex(&text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| Error::io("create directory", dir, e))?;
                }
                let tmp = path.with_extension("tmp");
                let _ = std::fs::remove_file(&tmp);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| Error::io("create master key", &tmp, e))?;
                f.write_all(hex::encode(key.0).as_bytes())
                    .and_then(|()| f.write_all(b"\n"))
                    .and_then(|()| f.sync_all())
                    .map_err(|e| Error::io("write master key", &tmp, e))?;
                std::fs::rename(&tmp, path)
                    .map_err(|e| Error::io("install master key", path, e))?;
                tracing::info!("created a new master key at {}", path.display());
                Ok(key)
            }
            Err(e) => Err(Error::io("read master key", path, e)),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

/// What a sealed vault key holds once opened.
#[derive(Serialize, Deserialize)]
pub(crate) struct VaultSecrets {
    /// The repository's master key (encryption + MAC keys), as restic stores it in key files.
    pub(crate) repo_key: rustic_core::repofile::MasterKey,
    /// Password of the restic key file in the repository.
    pub(crate) password: String,
}

/// A vault's secrets sealed under the server's master key: printable text for the metadata
/// store. Opening it needs the same master key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedVaultKey(String);

impl fmt::Debug for SealedVaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedVaultKey(..)")
    }
}

impl SealedVaultKey {
    /// Wrap text read back from the metadata store.
    #[must_use]
    pub fn from_string(text: String) -> Self {
        Self(text)
    }

    /// The text to persist.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn seal(secrets: &VaultSecrets, master: &MasterKey) -> Result<Self> {
        let plain = serde_json::to_vec(secrets)
            .map_err(|e| Error::Engine(format!("cannot encode vault key: {e}")))?;
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = master
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: SEAL_AAD,
                },
            )
            .map_err(|_| Error::Engine("cannot seal vault key".into()))?;
        Ok(Self(format!(
            "{SEAL_PREFIX}.{}.{}",
            hex::encode(nonce),
            hex::encode(sealed)
        )))
    }

    pub(crate) fn open(&self, master: &MasterKey) -> Result<VaultSecrets> {
        let bad = |why: &str| Error::KeyRejected(format!("sealed vault key {why}"));
        let mut parts = self.0.trim().split('.');
        if parts.next() != Some(SEAL_PREFIX) {
            return Err(bad("has an unknown format"));
        }
        let nonce = parts
            .next()
            .and_then(|n| hex::decode(n).ok())
            .filter(|n| n.len() == 24)
            .ok_or_else(|| bad("is malformed"))?;
        let body = parts
            .next()
            .and_then(|b| hex::decode(b).ok())
            .ok_or_else(|| bad("is malformed"))?;
        let plain = master
            .cipher()
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &body,
                    aad: SEAL_AAD,
                },
            )
            .map_err(|_| bad("does not open with this master key"))?;
        serde_json::from_slice(&plain).map_err(|_| bad("holds malformed secrets"))
    }
}

/// A vault's key in the form plain `restic` takes: `restic -r REPOSITORY` with `PASSWORD`
/// (e.g. through `RESTIC_PASSWORD`).
#[derive(Clone)]
pub struct ExportedVaultKey {
    /// The repository string for `restic -r` (a local path or `s3:...`).
    pub repository: String,
    /// The repository password.
    pub password: String,
}

impl fmt::Debug for ExportedVaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportedVaultKey")
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

/// A random password for a vault's restic key file.
pub(crate) fn random_password() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_wrong_key_is_rejected() {
        let master = MasterKey::generate();
        let secrets = VaultSecrets {
            repo_key: rustic_core::repofile::MasterKey::new(),
            password: random_password(),
        };
        let sealed = SealedVaultKey::seal(&secrets, &master).unwrap();
        let opened = sealed.open(&master).unwrap();
        assert_eq!(opened.password, secrets.password);
        let other = MasterKey::generate();
        assert!(matches!(sealed.open(&other), Err(Error::KeyRejected(_))));
    }

    #[test]
    fn master_key_file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = MasterKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(a.0, b.0);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::load_or_create(&path),
            Err(Error::MasterKey(_))
        ));
    }
}
