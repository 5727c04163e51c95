//! The engine's one error type. Every variant renders as a single line that the jobs layer can
//! put in a job's StatusMessage as is; the long, multi-line reports that `rustic_core` produces
//! go to the log (at `debug`) and never into that line.

use std::path::{Path, PathBuf};

use rustic_core::RusticError;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source (directory, file or device) to back up does not exist.
    #[error("source not found: {}", .0.display())]
    SourceNotFound(PathBuf),
    /// The operating system refused access.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// No recovery point (snapshot) matches the reference.
    #[error("recovery point not found: {0}")]
    RecoveryPointNotFound(String),
    /// A path asked for in a restore is not in the recovery point.
    #[error("path not found in recovery point: {0}")]
    PathNotInRecoveryPoint(String),
    /// The restore target holds files and overwriting was not asked for.
    #[error("restore target is not empty: {}", .0.display())]
    TargetNotEmpty(PathBuf),
    /// A recovery point holds a name that would escape the restore target.
    #[error("unsafe path in recovery point: {0}")]
    UnsafePath(String),
    /// There is no vault repository at the location.
    #[error("vault not found: {0}")]
    VaultNotFound(String),
    /// A vault repository already exists at the location.
    #[error("vault already exists: {0}")]
    VaultExists(String),
    /// The sealed vault key cannot be opened with this master key, or does not open the vault.
    #[error("vault key rejected: {0}")]
    KeyRejected(String),
    /// The master key file or bytes are unusable.
    #[error("master key invalid: {0}")]
    MasterKey(String),
    /// The repository's structure or data is damaged.
    #[error("vault damaged: {0}")]
    VaultDamaged(String),
    /// The storage behind the vault failed (disk, bucket).
    #[error("storage error: {0}")]
    Storage(String),
    /// The caller asked for the operation to stop.
    #[error("operation cancelled")]
    Cancelled,
    /// The request itself is wrong.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A local file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A database source or restore target (PostgreSQL) cannot be used: the server does not
    /// answer, refuses the login, a client tool is missing or failed. The message names what
    /// to fix and never holds a password.
    #[error("{0}")]
    Database(String),
    /// Any other failure inside the repository library.
    #[error("{0}")]
    Engine(String),
}

impl Error {
    /// A single line, at most 256 characters, for a job's StatusMessage.
    #[must_use]
    pub fn status_message(&self) -> String {
        let line = self.to_string().replace(['\n', '\r'], " ");
        if line.chars().count() > 256 {
            let mut s: String = line.chars().take(253).collect();
            s.push_str("...");
            s
        } else {
            line
        }
    }

    /// Wrap an I/O error met while working on `path`, choosing the variant an operator expects.
    pub(crate) fn io(action: &str, path: &Path, source: std::io::Error) -> Self {
        match source.kind() {
            std::io::ErrorKind::NotFound if action == "source" => {
                Self::SourceNotFound(path.to_path_buf())
            }
            std::io::ErrorKind::PermissionDenied => {
                Self::PermissionDenied(format!("{action} {}", path.display()))
            }
            _ => Self::Io {
                context: format!("{action} {}", path.display()),
                source,
            },
        }
    }

    /// Map a `rustic_core` error: the full report goes to the log, a summary into the variant.
    pub(crate) fn from_rustic(what: &str, err: &RusticError) -> Self {
        let detail = err.display_log();
        tracing::debug!(operation = what, "repository error: {detail}");
        let summary = format!("{what}: {}", summarize(&detail));
        // `display_log` reads "Error: <message> (kind: related to <kind>, ...".
        let kind = detail
            .split("(kind: related to ")
            .nth(1)
            .map(|k| k.split([',', ')']).next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let lower = detail.to_lowercase();
        if lower.contains("permission denied") {
            return Self::PermissionDenied(summary);
        }
        if lower.contains("operation cancelled") {
            return Self::Cancelled;
        }
        match kind.as_str() {
            "the backend" | "input/output operations" => Self::Storage(summary),
            "a key" | "credentials handling" | "cryptographic operations" => {
                Self::KeyRejected(summary)
            }
            "verification" | "the repository" => Self::VaultDamaged(summary),
            "invalid user input" | "missing user input" => Self::InvalidInput(summary),
            _ => Self::Engine(summary),
        }
    }
}

/// First meaningful line of a multi-line `rustic_core` report, without its decorations.
fn summarize(report: &str) -> String {
    let first = report
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error");
    let first = first.strip_prefix("Error: ").unwrap_or(first);
    first
        .split(" (kind: related to")
        .next()
        .unwrap_or(first)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_message_is_one_short_line() {
        let e = Error::Engine(format!("a\nb{}", "x".repeat(400)));
        let m = e.status_message();
        assert!(!m.contains('\n'));
        assert!(m.chars().count() <= 256);
        assert_eq!(
            Error::SourceNotFound("/srv/x".into()).status_message(),
            "source not found: /srv/x"
        );
    }
}
