//! Maps a request's method and raw path to an operation of the model.
//!
//! Templates come from the generated operation table. A trailing slash and empty segments are
//! ignored (boto3 sends `/backup/plans/`, the Rust and Go SDKs `/backup/plans`); labels are
//! percent-decoded after the path is split, so an ARN with encoded `:` or `/` stays one label.
//! When several templates match, the one with more literal segments wins, then the one that
//! requires a query literal (`?delete`).

use std::collections::HashMap;

use percent_encoding::percent_decode_str;

use crate::error::ApiError;
use crate::generated::operations::{OPERATIONS, Operation};

#[derive(Debug, Clone)]
enum Segment {
    Literal(&'static str),
    Label(&'static str),
    Greedy(&'static str),
}

#[derive(Debug)]
struct Template {
    operation: Operation,
    segments: Vec<Segment>,
    required_query: Vec<&'static str>,
    literal_count: usize,
}

/// A matched route: the operation and its decoded URI labels (wire name, value).
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    pub operation: Operation,
    pub labels: Vec<(&'static str, String)>,
}

/// The routing table of all operations, grouped by method.
#[derive(Debug)]
pub struct Router {
    by_method: HashMap<&'static str, Vec<Template>>,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    pub fn new() -> Self {
        let mut by_method: HashMap<&'static str, Vec<Template>> = HashMap::new();
        for spec in OPERATIONS {
            let (path, query) = match spec.uri.split_once('?') {
                Some((p, q)) => (p, q),
                None => (spec.uri, ""),
            };
            let segments: Vec<Segment> = path
                .split('/')
                .filter(|s| !s.is_empty())
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
    ) -> Result<Route, ApiError> {
        let parts: Vec<&str> = raw_path.split('/').filter(|s| !s.is_empty()).collect();
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
            return Ok(Route {
                operation: t.operation,
                labels,
            });
        }
        Err(ApiError::unknown_operation(method, raw_path))
    }
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
            let keys: Vec<&str> = query.split('&').filter(|q| !q.is_empty()).collect();
            for p in [filled.clone(), format!("{filled}/")] {
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
}
