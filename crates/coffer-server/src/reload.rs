//! Re-reading the configuration file while Coffer runs, on SIGHUP and when the file changes.
//!
//! Why: operators add resources and notification targets to a running server and expect them
//! to take effect without a restart, and they need the log to say what a re-read changed (or
//! that a setting they edited only takes effect at the next start). What is applied at once:
//! the resource inventory (`[[resources]]`), the notification targets
//! (`[[notification_targets]]`), the report buckets (`[[report_buckets]]`), the approval
//! teams (`[[approval_teams]]`) and the malware scan rule files (`scan_rules`). Everything else
//! in the file is read at start only. A file that
//! does not parse or has errors changes nothing, and the log says why.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coffer_core::{ApprovalTeams, Inventory, ReportBuckets, ScanRuleSet};

use crate::config::FileConfig;
use crate::notify::Delivery;

/// How often the file's modification time is looked at.
const POLL: Duration = Duration::from_secs(2);

/// What a re-read changed, in words for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Applied now: resources added, removed or changed.
    pub resources: Vec<String>,
    /// Applied now: notification targets added, removed or changed.
    pub targets: Vec<String>,
    /// File keys that changed but are read at start only.
    pub at_restart: Vec<&'static str>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.targets.is_empty() && self.at_restart.is_empty()
    }
}

/// Compares two versions of the file.
pub fn changes(old: &FileConfig, new: &FileConfig) -> Changes {
    let mut c = Changes::default();
    diff_by_key(
        &old.resources,
        &new.resources,
        |r| r.arn.clone(),
        "resource",
        &mut c.resources,
    );
    diff_by_key(
        &old.report_buckets,
        &new.report_buckets,
        |b| b.bucket.clone(),
        "report bucket",
        &mut c.resources,
    );
    diff_by_key(
        &old.approval_teams,
        &new.approval_teams,
        |t| t.arn.clone(),
        "approval team",
        &mut c.resources,
    );
    diff_by_key(
        &old.notification_targets,
        &new.notification_targets,
        |t| t.topic_arn.clone(),
        "notification target",
        &mut c.targets,
    );
    let mut restart = |changed: bool, key: &'static str| {
        if changed {
            c.at_restart.push(key);
        }
    };
    restart(old.listen != new.listen, "listen");
    restart(old.data_dir != new.data_dir, "data_dir");
    restart(old.auth != new.auth, "auth");
    restart(old.default_region != new.default_region, "default_region");
    restart(old.log_format != new.log_format, "log_format");
    restart(
        old.max_concurrent_jobs != new.max_concurrent_jobs,
        "max_concurrent_jobs",
    );
    restart(old.credentials != new.credentials, "credentials");
    restart(old.metrics_token != new.metrics_token, "metrics_token");
    restart(old.tiers != new.tiers, "tiers");
    c
}

fn diff_by_key<T: PartialEq>(
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> String,
    what: &str,
    out: &mut Vec<String>,
) {
    for n in new {
        match old.iter().find(|o| key(o) == key(n)) {
            None => out.push(format!("{what} {} added", key(n))),
            Some(o) if o != n => out.push(format!("{what} {} changed", key(n))),
            Some(_) => {}
        }
    }
    for o in old {
        if !new.iter().any(|n| key(n) == key(o)) {
            out.push(format!("{what} {} removed", key(o)));
        }
    }
}

/// Watches `file` for the life of the server: `current` is the file as read at start.
pub async fn watch(
    file: PathBuf,
    mut current: FileConfig,
    inventory: Inventory,
    report_buckets: ReportBuckets,
    approval_teams: ApprovalTeams,
    scan_rules: ScanRuleSet,
    delivery: Arc<Delivery>,
) {
    let modified = |f: &Path| std::fs::metadata(f).and_then(|m| m.modified()).ok();
    let mut last = modified(&file);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let signalled = match &mut hup {
            Some(h) => tokio::select! {
                _ = h.recv() => true,
                _ = tokio::time::sleep(POLL) => false,
            },
            None => {
                tokio::time::sleep(POLL).await;
                false
            }
        };
        let now = modified(&file);
        if !signalled && now == last {
            continue;
        }
        last = now;
        let why = if signalled { "SIGHUP" } else { "file changed" };
        let new = match FileConfig::load(&file) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(file = %file.display(), why, error = %format!("{e:#}"), "configuration not reloaded; keeping the previous one");
                continue;
            }
        };
        let errors = new.errors();
        if !errors.is_empty() {
            tracing::warn!(file = %file.display(), why, errors = %errors.join("; "), "configuration not reloaded; keeping the previous one");
            continue;
        }
        let c = changes(&current, &new);
        if c.is_empty() {
            tracing::info!(file = %file.display(), why, "configuration re-read: nothing changed");
        } else {
            tracing::info!(
                file = %file.display(),
                why,
                applied = %c.resources.iter().chain(&c.targets).cloned().collect::<Vec<_>>().join(", "),
                "configuration reloaded"
            );
            if !c.at_restart.is_empty() {
                tracing::warn!(file = %file.display(), keys = %c.at_restart.join(", "), "these settings changed in the file and take effect at the next start");
            }
        }
        // Re-applied even when unchanged: a source that appeared since is no longer reported.
        for problem in inventory.replace(&new.resources) {
            tracing::warn!(%problem, "resource inventory");
        }
        if !c.targets.is_empty() {
            delivery.replace_targets(&new.notification_targets);
        }
        report_buckets.replace(&new.report_buckets);
        approval_teams.replace(&new.approval_teams);
        // Re-read even when the list is unchanged: a rule file's content may have changed.
        match scan_rules.load(&new.scan_rules) {
            Ok(files) => tracing::info!(files = files.len(), "scan rules loaded"),
            Err(e) => {
                tracing::warn!(error = %e, "scan rules not reloaded; keeping the previous ones")
            }
        }
        current = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn changes_name_what_moved() {
        let old = parse(
            r#"
listen = "127.0.0.1:9191"
[[resources]]
arn = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-a"
source = "/a"
[[resources]]
arn = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-b"
source = "/b"
"#,
        );
        let new = parse(
            r#"
listen = "127.0.0.1:9292"
[[resources]]
arn = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-a"
source = "/a2"
[[notification_targets]]
topic_arn = "arn:aws:sns:us-east-1:111122223333:t"
webhook = "http://127.0.0.1:9000/hook"
"#,
        );
        let c = changes(&old, &new);
        assert_eq!(
            c.resources,
            [
                "resource arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-a changed",
                "resource arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-b removed"
            ]
        );
        assert_eq!(
            c.targets,
            ["notification target arn:aws:sns:us-east-1:111122223333:t added"]
        );
        assert_eq!(c.at_restart, ["listen"]);
        assert!(changes(&new, &new).is_empty());
    }
}
