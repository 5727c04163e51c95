//! Property: a request built from an operation's own URI template, with any one label empty or
//! malformed (`.`, `..`, encoded dots, bad or truncated percent escapes, invalid UTF-8), either
//! is refused or routes to that same operation; it never reaches a different one. And with
//! well-formed labels it always routes to itself with exactly those label values.
//!
//! The one exception is inherent to the protocol: an empty *last* label makes the path, byte for
//! byte, the URI of the collection's list operation (`GET /backup-jobs/` with an empty job id
//! is ListBackupJobs' own request), and such a request is that operation.

use coffer_api::OPERATIONS;
use coffer_api::router::Router;
use proptest::prelude::*;

const MALFORMED: &[&str] = &[
    "", ".", "..", "%2E", "%2e%2E", "%zz", "%", "%F0%28", "%C0%AF", "%2F", "%00",
];

/// The path of `uri` with label `i` replaced by `bad` (raw) and the others by `good`.
fn fill(uri: &str, good: &[String], bad: Option<(usize, &str)>) -> (String, Vec<&'static str>) {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut n = 0;
    let segments: Vec<String> = path
        .split('/')
        .map(|s| {
            if s.starts_with('{') {
                let v = match bad {
                    Some((i, b)) if i == n => b.to_string(),
                    _ => good[n % good.len()].clone(),
                };
                n += 1;
                v
            } else {
                s.to_string()
            }
        })
        .collect();
    let keys = query
        .split('&')
        .filter(|q| !q.is_empty())
        .map(|q| {
            let leaked: &'static str = Box::leak(q.to_string().into_boxed_str());
            leaked
        })
        .collect();
    (segments.join("/"), keys)
}

/// Whether `path` is a well-formed request of `template`: same segments, every label filled.
fn is_own_uri(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

/// The operations whose URI has at least one label.
fn labelled() -> Vec<usize> {
    (0..OPERATIONS.len())
        .filter(|&i| label_count(OPERATIONS[i].uri) > 0)
        .collect()
}

fn label_count(uri: &str) -> usize {
    uri.matches('{').count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn malformed_labels_never_reach_another_operation(
        op in proptest::sample::select(labelled()),
        which in 0usize..4,
        bad in 0..MALFORMED.len(),
        good in proptest::collection::vec("v[a-z0-9]{1,8}", 4),
        trailing in any::<bool>(),
    ) {
        let router = Router::new();
        let spec = &OPERATIONS[op];
        let labels = label_count(spec.uri);
        let bad_label = which % labels;
        let (mut path, keys) = fill(spec.uri, &good, Some((bad_label, MALFORMED[bad])));
        let (template_path, _) = spec.uri.split_once('?').unwrap_or((spec.uri, ""));
        let empty_last = MALFORMED[bad].is_empty()
            && bad_label == labels - 1
            && template_path.trim_end_matches('/').ends_with('}');
        if trailing && !path.ends_with('/') {
            path.push('/');
        }
        match router.route(spec.method, &path, &keys) {
            Err(e) => prop_assert!(e.status() == 400 || e.status() == 404, "{} {path}: {e}", spec.name),
            Ok(route) if empty_last && route.operation != spec.operation => {
                // Only the list operation whose own URI this is, with no label at all.
                let other = route.operation.spec();
                let (other_path, _) = other.uri.split_once('?').unwrap_or((other.uri, ""));
                prop_assert!(
                    is_own_uri(other_path, &path),
                    "{} {path} reached {}",
                    spec.name,
                    other.name
                );
            }
            Ok(route) => prop_assert_eq!(route.operation, spec.operation, "{} {}", spec.name, path),
        }
    }

    #[test]
    fn well_formed_labels_route_to_their_operation(
        op in 0..OPERATIONS.len(),
        good in proptest::collection::vec("v[a-zA-Z0-9_-]{1,12}", 4),
        trailing in any::<bool>(),
    ) {
        let router = Router::new();
        let spec = &OPERATIONS[op];
        let (mut path, keys) = fill(spec.uri, &good, None);
        if trailing && !path.ends_with('/') {
            path.push('/');
        }
        let route = router.route(spec.method, &path, &keys).unwrap();
        prop_assert_eq!(route.operation, spec.operation, "{} {}", spec.name, path);
        for (i, (_, value)) in route.labels.iter().enumerate() {
            prop_assert_eq!(value, &good[i % good.len()]);
        }
    }
}
