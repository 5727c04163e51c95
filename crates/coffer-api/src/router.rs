//! Maps a request's method and raw path to an operation of the model.
//!
//! One router per service: [`Router::new`] routes AWS Backup's operations,
//! [`Router::for_table`] any generated table (AWS Backup Search's).
//!
//! Templates come from the generated operation table. One trailing slash is ignored (boto3 sends
//! `/backup/plans/`, the Rust and Go SDKs `/backup/plans`); every other segment counts, empty
//! ones included, so `DELETE /backup-vaults//access-policy` is DeleteBackupVaultAccessPolicy
//! with an empty vault name (refused), never DeleteBackupVault of a vault named
//! `access-policy`. A label that is empty, `.` or `..` is refused as a validation error: the
//! SigV4 signers normalise such segments away, so a request that routes is one whose path the
//! signature covers exactly. Labels are percent-decoded after the path is split, so an ARN with
//! encoded `:` or `/` stays one label. When several templates match, the one with more literal
//! segments wins, then the one that requires a query literal (`?delete`).

use std::collections::HashMap;

use percent_encoding::percent_decode_str;

use crate::error::ApiError;
use crate::generated::operations::{OPERATIONS, Operation};
use crate::operation::{Binding, OperationSpec};

#[derive(Debug, Clone)]
enum Segment {
    Literal(&'static str),
    Label(&'static str),
    Greedy(&'static str),
}

#[derive(Debug)]
struct Template<O: 'static> {
    operation: O,
    bindings: &'static [Binding],
    segments: Vec<Segment>,
    required_query: Vec<&'static str>,
    literal_count: usize,
}

/// A matched route: the operation and its decoded URI labels (wire name, value).
#[derive(Debug, PartialEq, Eq)]
pub struct Route<O = Operation> {
    pub operation: O,
    pub labels: Vec<(&'static str, String)>,
}

/// The routing table of all operations, grouped by method.
#[derive(Debug)]
pub struct Router<O: 'static = Operation> {
    by_method: HashMap<&'static str, Vec<Template<O>>>,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    /// The router of AWS Backup's operations.
    pub fn new() -> Self {
        Self::for_table(OPERATIONS)
    }
}

impl<O: Copy + 'static> Router<O> {
    /// The router of one service's generated operation table.
    pub fn for_table(table: &'static [OperationSpec<O>]) -> Self {
        let mut by_method: HashMap<&'static str, Vec<Template<O>>> = HashMap::new();
        for spec in table {
            let (path, query) = match spec.uri.split_once('?') {
                Some((p, q)) => (p, q),
                None => (spec.uri, ""),
            };
            let segments: Vec<Segment> = split_path(path)
                .into_iter()
                .map(|s| {
                    if let Some(label) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        match label.strip_suffix('+') {
                            Some(greedy) => Segment::Greedy(greedy),
                            None => Segment::Label(label),
                        }
                    } else {
                        Segment::Literal(s)
                    }
                })
                .collect();
            let literal_count = segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count();
            let required_query = query
                .split('&')
                .filter(|q| !q.is_empty())
                .map(|q| q.split('=').next().unwrap_or(q))
                .collect();
            by_method.entry(spec.method).or_default().push(Template {
                operation: spec.operation,
                bindings: spec.bindings,
                segments,
                required_query,
                literal_count,
            });
        }
        for templates in by_method.values_mut() {
            templates.sort_by(|a, b| {
                b.literal_count
                    .cmp(&a.literal_count)
                    .then(b.required_query.len().cmp(&a.required_query.len()))
            });
        }
        Router { by_method }
    }

    /// Finds the operation for a request. `raw_path` is the path as sent (still
    /// percent-encoded); `query_keys` are the decoded names of the query parameters.
    pub fn route(
        &self,
        method: &str,
        raw_path: &str,
        query_keys: &[&str],
    ) -> Result<Route<O>, ApiError> {
        let parts = split_path(raw_path);
        let templates = self
            .by_method
            .get(method)
            .ok_or_else(|| ApiError::unknown_operation(method, raw_path))?;
        'templates: for t in templates {
            if !t.required_query.iter().all(|q| query_keys.contains(q)) {
                continue;
            }
            let greedy = matches!(t.segments.last(), Some(Segment::Greedy(_)));
            if parts.len() != t.segments.len() && !(greedy && parts.len() >= t.segments.len()) {
                continue;
            }
            let mut labels = Vec::new();
            for (i, seg) in t.segments.iter().enumerate() {
                match seg {
                    Segment::Literal(lit) => {
                        if parts[i] != *lit {
                            continue 'templates;
                        }
                    }
                    Segment::Label(name) => labels.push((*name, decode(parts[i])?)),
                    Segment::Greedy(name) => {
                        let rest: Vec<String> = parts[i..]
                            .iter()
                            .map(|p| decode(p))
                            .collect::<Result<_, _>>()?;
                        labels.push((*name, rest.join("/")));
                    }
                }
            }
            for (name, value) in &labels {
                check_label(t.bindings, name, value)?;
            }
            return Ok(Route {
                operation: t.operation,
                labels,
            });
        }
        Err(ApiError::unknown_operation(method, raw_path))
    }
}

/// The segments of a path: one leading and one trailing slash removed, every other slash a
/// separator (`/a//b/` is `a`, ``, `b`; `/` is no segment at all).
fn split_path(path: &str) -> Vec<&str> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    }
}

/// A URI label must hold a value: empty is a missing member, and `.` / `..` are path steps the
/// signers remove before signing, so they can never be the value the caller signed.
fn check_label(bindings: &[Binding], wire: &str, value: &str) -> Result<(), ApiError> {
    let member = bindings
        .iter()
        .find(|b| b.wire == wire)
        .map_or(wire, |b| b.member);
    if value.is_empty() {
        return Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length greater than or equal to 1 (the URI path has an empty segment where {member} belongs)"
        )));
    }
    if value == "." || value == ".." {
        return Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must not be a relative path segment ('.' or '..')"
        )));
    }
    Ok(())
}

fn decode(segment: &str) -> Result<String, ApiError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            ApiError::invalid_parameter("A path segment is not valid UTF-8 after percent-decoding.")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation is reachable: a path built from its own template routes back to it,
    /// with and without a trailing slash.
    #[test]
    fn every_operation_routes_to_itself() {
        let router = Router::new();
        for spec in OPERATIONS {
            let (path, query) = spec.uri.split_once('?').unwrap_or((spec.uri, ""));
            let mut n = 0;
            let filled: Vec<String> = path
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        n += 1;
                        format!("value{n}")
                    } else {
                        s.to_string()
                    }
                })
                .collect();
            let filled = filled.join("/");
            let bare = filled.strip_suffix('/').unwrap_or(&filled).to_string();
            let keys: Vec<&str> = query.split('&').filter(|q| !q.is_empty()).collect();
            for p in [bare.clone(), format!("{bare}/")] {
                let route = router.route(spec.method, &p, &keys).unwrap();
                assert_eq!(route.operation, spec.operation, "{} {}", spec.method, p);
            }
        }
    }

    #[test]
    fn labels_are_percent_decoded_after_splitting() {
        let router = Router::new();
        let arn = "arn%3Aaws%3Aec2%3Aus-east-1%3A%3Asnapshot%2Fsnap-1";
        let route = router
            .route(
                "GET",
                &format!("/backup-vaults/v1/recovery-points/{arn}"),
                &[],
            )
            .unwrap();
        assert_eq!(route.operation, Operation::DescribeRecoveryPoint);
        assert_eq!(route.labels[1].1, "arn:aws:ec2:us-east-1::snapshot/snap-1");
    }

    #[test]
    fn unknown_routes_are_404() {
        let router = Router::new();
        let err = router.route("GET", "/no/such/thing", &[]).unwrap_err();
        assert_eq!(err.status(), 404);
        assert_eq!(err.code(), "UnknownOperationException");
        assert_eq!(
            router
                .route("PATCH", "/backup-vaults/", &[])
                .unwrap_err()
                .status(),
            404
        );
    }

    /// An empty label is that operation's validation error, never another operation whose
    /// template has one segment fewer.
    #[test]
    fn empty_labels_never_reach_another_operation() {
        let router = Router::new();
        for (method, path) in [
            ("DELETE", "/backup-vaults//access-policy"),
            ("PUT", "/backup-vaults//mpaApprovalTeam"),
            ("GET", "/backup-vaults//access-policy"),
            ("GET", "/backup-jobs//"),
            ("DELETE", "/backup-vaults/./access-policy"),
            ("DELETE", "/backup-vaults/%2E%2E/access-policy"),
        ] {
            let err = router.route(method, path, &[]).unwrap_err();
            assert_eq!(
                err.code(),
                "InvalidParameterValueException",
                "{method} {path}"
            );
            assert_eq!(err.status(), 400);
            assert!(
                err.message().contains("BackupVaultName") || err.message().contains("BackupJobId"),
                "{method} {path}: {}",
                err.message()
            );
        }
        // Empty segments elsewhere make the path match nothing.
        assert_eq!(
            router
                .route("DELETE", "/backup-vaults/v//access-policy", &[])
                .unwrap_err()
                .code(),
            "UnknownOperationException"
        );
        assert_eq!(
            router
                .route("GET", "//backup-vaults/v", &[])
                .unwrap_err()
                .code(),
            "UnknownOperationException"
        );
        // The operation's own path still routes, with one trailing slash or none.
        for p in [
            "/backup-vaults/v/access-policy",
            "/backup-vaults/v/access-policy/",
        ] {
            let r = router.route("DELETE", p, &[]).unwrap();
            assert_eq!(r.operation, Operation::DeleteBackupVaultAccessPolicy);
            assert_eq!(r.labels, vec![("backupVaultName", "v".to_string())]);
        }
        assert_eq!(
            router.route("GET", "/backup-jobs/", &[]).unwrap().operation,
            Operation::ListBackupJobs
        );
    }
}
