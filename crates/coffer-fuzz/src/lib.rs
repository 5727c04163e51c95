//! Fuzzing of Coffer's whole request path, generated from the service model.
//!
//! Coffer answers anyone who can reach its port, so every request (well-formed, malformed or
//! forged) must get an AWS-shaped answer: no panic, no 5xx other than the documented 501 for
//! an operation Coffer does not implement yet. [`Campaign`] checks that in-process, without
//! sockets, on the real path: requests are generated from `model/backup/service-2.json` (every
//! operation, URI labels, query parameters and body members typed by the model's shapes, mixed
//! with empty, dot, unicode, oversized and badly escaped values), signed by aws-sdk-rust's
//! SigV4 signer and sometimes tampered with afterwards, then handed to
//! [`coffer_api::http::ApiHandler`] over a real `Coffer` on a SQLite store in a temporary
//! directory. A bounded campaign runs in CI (`tests/campaign.rs`); the long one is the
//! `coffer-fuzz` binary (see docs/hardening.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use coffer_api::OPERATIONS;
use coffer_api::http::ApiHandler;
use coffer_api::operation::OperationSpec;
use coffer_api::sigv4::{AuthMode, Credential};
use coffer_core::{Clock, Coffer};
use coffer_store::StoreHandle;
use http_body_util::{BodyExt, Full};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::RngExt;
use proptest::test_runner::{RngAlgorithm, TestRng};
use serde_json::{Map, Value, json};

pub const AKID: &str = "AKIDFUZZ000000000001";
pub const SECRET: &str = "fuzz-secret-key-000000000000000000000001";
pub const ACCOUNT: &str = "111122223333";

/// What the SDKs leave unencoded in a URI label.
const LABEL_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The service model, as far as generating inputs needs it.
pub struct Model {
    shapes: Map<String, Value>,
    /// For each operation of the table: its input's members that travel in the body.
    body_members: Vec<Vec<(String, String)>>,
}

impl Model {
    /// Reads the vendored model of this repository.
    pub fn load() -> Model {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../model/backup/service-2.json"
        );
        let text = std::fs::read_to_string(path).expect("the vendored service model");
        let model: Value = serde_json::from_str(&text).expect("the model is JSON");
        let shapes = model["shapes"].as_object().expect("shapes").clone();
        let body_members = OPERATIONS
            .iter()
            .map(|spec| {
                let input = &model["operations"][spec.name]["input"]["shape"];
                let Some(input) = input.as_str() else {
                    return Vec::new();
                };
                shapes[input]["members"]
                    .as_object()
                    .map(|members| {
                        members
                            .iter()
                            .filter(|(_, m)| m.get("location").is_none())
                            .map(|(name, m)| {
                                (name.clone(), m["shape"].as_str().unwrap_or("").to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        Model {
            shapes,
            body_members,
        }
    }
}

/// One generated request, before and after signing.
#[derive(Debug, Clone)]
pub struct FuzzRequest {
    pub operation: &'static str,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What was done to it after signing, if anything.
    pub tampering: &'static str,
}

/// A text that might break something: the values a careless or hostile client sends.
fn nasty_text(rng: &mut TestRng) -> String {
    match rng.random_range(0..14) {
        0 => String::new(),
        1 => ".".into(),
        2 => "..".into(),
        3 => "\u{1F980}".into(),
        4 => "a".repeat(rng.random_range(50..3000)),
        5 => "%zz%".into(),
        6 => "é/ü?#[]@!$&'()*+,;= ".into(),
        7 => "\0\r\n\t".into(),
        8 => format!(
            "arn:aws:backup:us-east-1:{ACCOUNT}:backup-vault:v{}",
            rng.random_range(0..5)
        ),
        9 => "-1".into(),
        10 => "9223372036854775808".into(),
        11 => "null".into(),
        12 => "ＡＢＣ\u{202e}\u{feff}".into(),
        _ => format!("v{}", rng.random_range(0..5)),
    }
}

/// A plausible value for a label or query parameter: mostly valid-looking, sometimes nasty.
fn scalar_text(rng: &mut TestRng, kind: coffer_api::operation::ScalarKind, clean: bool) -> String {
    use coffer_api::operation::ScalarKind;
    if !clean && rng.random_bool(0.3) {
        return nasty_text(rng);
    }
    match kind {
        // A repeated list parameter (only AWS Backup Search has one): one value of it.
        ScalarKind::String | ScalarKind::StringList => match rng.random_range(0..4) {
            0 | 3 if clean => format!("vault-{}", rng.random_range(0..4)),
            0 => format!("vault-{}", rng.random_range(0..4)),
            1 => format!(
                "arn:aws:backup:us-east-1:{ACCOUNT}:backup-vault:vault-{}",
                rng.random_range(0..4)
            ),
            2 => format!("{:08x}-0000-4000-8000-000000000000", rng.random::<u32>()),
            _ => hex_token(rng),
        },
        ScalarKind::Integer | ScalarKind::Long => rng.random_range(-5i64..2000).to_string(),
        ScalarKind::Boolean => ["true", "false", "TRUE", "yes"][rng.random_range(0..4)].into(),
        ScalarKind::Timestamp => [
            "2024-01-01T00:00:00Z",
            "1700000000",
            "2024-13-45T99:00:00Z",
            "0",
        ][rng.random_range(0..4)]
        .into(),
    }
}

fn hex_token(rng: &mut TestRng) -> String {
    let len = rng.random_range(0..40);
    (0..len)
        .map(|_| b"0123456789abcdef"[rng.random_range(0..16)] as char)
        .collect()
}

/// A JSON value for a shape of the model, depth-limited; sometimes of the wrong type.
fn value_for(model: &Model, shape: &str, rng: &mut TestRng, depth: u32, clean: bool) -> Value {
    let Some(s) = model.shapes.get(shape) else {
        return Value::Null;
    };
    if !clean && rng.random_bool(0.05) {
        // The wrong type altogether.
        return [json!(null), json!(1), json!("x"), json!([]), json!({})][rng.random_range(0..5)]
            .clone();
    }
    match s["type"].as_str().unwrap_or("") {
        "string" => {
            if let Some(values) = s["enum"].as_array()
                && !values.is_empty()
                && rng.random_bool(0.8)
            {
                return values[rng.random_range(0..values.len())].clone();
            }
            if clean || rng.random_bool(0.5) {
                Value::String(format!("name-{}", rng.random_range(0..4)))
            } else {
                Value::String(nasty_text(rng))
            }
        }
        "integer" | "long" => json!(rng.random_range(-10i64..100_000)),
        "boolean" => json!(rng.random_bool(0.5)),
        "timestamp" => json!(rng.random_range(0..2_000_000_000i64)),
        "list" => {
            if depth > 3 {
                return json!([]);
            }
            let member = s["member"]["shape"].as_str().unwrap_or("");
            Value::Array(
                (0..rng.random_range(0..4))
                    .map(|_| value_for(model, member, rng, depth + 1, clean))
                    .collect(),
            )
        }
        "map" => {
            if depth > 3 {
                return json!({});
            }
            let value = s["value"]["shape"].as_str().unwrap_or("");
            let mut m = Map::new();
            for _ in 0..rng.random_range(0..4) {
                let key = if clean {
                    format!("k{}", rng.random_range(0..4))
                } else {
                    nasty_text(rng)
                };
                m.insert(key, value_for(model, value, rng, depth + 1, clean));
            }
            Value::Object(m)
        }
        "structure" => {
            if depth > 4 {
                return json!({});
            }
            let mut m = Map::new();
            if let Some(members) = s["members"].as_object() {
                for (name, member) in members {
                    if rng.random_bool(0.6) {
                        let shape = member["shape"].as_str().unwrap_or("");
                        m.insert(name.clone(), value_for(model, shape, rng, depth + 1, clean));
                    }
                }
            }
            Value::Object(m)
        }
        _ => Value::Null,
    }
}

/// Generates one request of operation `index` of the table, signed unless tampered with. A
/// third of the requests are "clean": well-formed values from a small pool of names, so they
/// get past validation and exercise the handlers on resources that exist.
pub fn generate(model: &Model, rng: &mut TestRng, index: usize, now: SystemTime) -> FuzzRequest {
    let spec: &OperationSpec = &OPERATIONS[index];
    let clean = rng.random_bool(0.33);
    let (path, literal_query) = spec.uri.split_once('?').unwrap_or((spec.uri, ""));
    let mut target = String::new();
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            target.push('/');
        }
        if let Some(label) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let label = label.trim_end_matches('+');
            let kind = spec
                .bindings
                .iter()
                .find(|b| b.wire == label)
                .map(|b| b.kind)
                .unwrap_or(coffer_api::operation::ScalarKind::String);
            let text = scalar_text(rng, kind, clean);
            if !clean && rng.random_bool(0.05) {
                // Sent as is, unencoded where that still makes a valid URI.
                target.push_str(
                    &text.replace(|c: char| !c.is_ascii_graphic() || c == '?' || c == '#', ""),
                );
            } else {
                target.push_str(&utf8_percent_encode(&text, LABEL_SET).to_string());
            }
        } else {
            target.push_str(seg);
        }
    }
    let mut query: Vec<String> = Vec::new();
    if !literal_query.is_empty() {
        query.push(literal_query.to_string());
    }
    for b in spec.bindings {
        if b.location == coffer_api::operation::Location::Query && rng.random_bool(0.4) {
            let text = scalar_text(rng, b.kind, clean);
            query.push(format!(
                "{}={}",
                b.wire,
                utf8_percent_encode(&text, LABEL_SET)
            ));
        }
    }
    if !clean && rng.random_bool(0.03) {
        query.push(["%zz", "a=%", "=x", "&&", "x=%F0%28"][rng.random_range(0..5)].into());
    }
    if !query.is_empty() {
        target.push('?');
        target.push_str(&query.join("&"));
    }
    let body: Vec<u8> = match if clean { 19 } else { rng.random_range(0..20) } {
        0 => Vec::new(),
        1 => b"{not json".to_vec(),
        2 => b"[1,2,3]".to_vec(),
        3 => vec![0xff, 0xfe, b'{'],
        _ => {
            let mut m = Map::new();
            for (name, shape) in &model.body_members[index] {
                if rng.random_bool(0.7) {
                    m.insert(name.clone(), value_for(model, shape, rng, 0, clean));
                }
            }
            if !clean && rng.random_bool(0.05) {
                m.insert(nasty_text(rng), json!(1));
            }
            serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
        }
    };
    let mut req = FuzzRequest {
        operation: spec.name,
        method: spec.method.to_string(),
        target,
        headers: vec![("content-type".into(), "application/json".into())],
        body,
        tampering: "none",
    };
    // How it is signed, and what happens to it afterwards.
    let (region, service, time, scope) = match if clean { 39 } else { rng.random_range(0..40) } {
        0 => ("zz-fake-9", "backup", now, "scope-region"),
        1 => ("us-east-1", "s3", now, "scope-service"),
        2 => (
            "us-east-1",
            "backup",
            now + Duration::from_secs(3600),
            "skew-ahead",
        ),
        3 => (
            "us-east-1",
            "backup",
            now - Duration::from_secs(3600),
            "skew-behind",
        ),
        4 => ("eu-west-1", "backup", now, "none"),
        _ => ("us-east-1", "backup", now, "none"),
    };
    req.tampering = scope;
    if sign_request(&mut req, region, service, time).is_err() {
        req.tampering = "unsignable";
        return req;
    }
    if scope != "none" || clean {
        return req;
    }
    match rng.random_range(0..30) {
        0 => {
            req.tampering = "signature";
            if let Some((_, v)) = req.headers.iter_mut().find(|(k, _)| k == "authorization") {
                let last = v.pop().unwrap_or('0');
                v.push(if last == '0' { '1' } else { '0' });
            }
        }
        1 => {
            req.tampering = "body";
            req.body.extend_from_slice(b" ");
        }
        2 => {
            req.tampering = "unsigned";
            req.headers.retain(|(k, _)| k != "authorization");
        }
        3 => {
            req.tampering = "double-slash";
            req.target = req.target.replacen('/', "//", 2);
        }
        4 => {
            req.tampering = "method";
            let other: Vec<&str> = ["GET", "PUT", "POST", "DELETE", "PATCH"]
                .into_iter()
                .filter(|m| *m != req.method)
                .collect();
            req.method = other[rng.random_range(0..other.len())].into();
        }
        5 => {
            req.tampering = "empty-label";
            if let Some(i) = req.target[1..].find('/') {
                let end = req.target[i + 2..]
                    .find(['/', '?'])
                    .map_or(req.target.len(), |j| i + 2 + j);
                req.target.replace_range(i + 2..end, "");
            }
        }
        6 => {
            req.tampering = "unsigned-payload";
            req.headers
                .push(("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into()));
        }
        _ => {}
    }
    req
}

/// Signs `req` in place with aws-sdk-rust's signer and the fuzz credential.
fn sign_request(
    req: &mut FuzzRequest,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), String> {
    let identity = Credentials::new(AKID, SECRET, None, None, "coffer-fuzz").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let url = format!("http://127.0.0.1:9191{}", req.target);
    let signable = SignableRequest::new(
        &req.method,
        &url,
        req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&req.body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    req.headers.push(("host".into(), "127.0.0.1:9191".into()));
    for (k, v) in instructions.headers() {
        req.headers.push((k.to_string(), v.to_string()));
    }
    Ok(())
}

/// What a campaign saw.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub requests: u64,
    /// Requests that could not be built as HTTP at all (skipped; hyper would refuse them).
    pub unbuildable: u64,
    pub by_status: BTreeMap<u16, u64>,
    /// Requests that reached an operation's handler and succeeded.
    pub succeeded: u64,
    /// The operations that answered at least once with success.
    pub operations_succeeded: std::collections::BTreeSet<&'static str>,
    /// Error answers by `x-amzn-ErrorType`.
    pub by_code: BTreeMap<String, u64>,
    pub panics: u64,
    /// 5xx answers other than 501.
    pub server_errors: u64,
    /// Error answers without a matching `x-amzn-ErrorType` and JSON `__type` / `Message`.
    pub malformed: u64,
    /// Tampered or mis-scoped requests that were not refused with 403.
    pub forged_accepted: u64,
    pub failures: Vec<String>,
    pub elapsed: Duration,
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
}

impl Stats {
    pub fn clean(&self) -> bool {
        self.panics == 0
            && self.server_errors == 0
            && self.malformed == 0
            && self.forged_accepted == 0
    }

    fn fail(&mut self, what: String) {
        if self.failures.len() < 20 {
            self.failures.push(what);
        }
    }
}

/// This process's resident memory, from /proc (0 where there is none).
pub fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A Coffer on a fresh SQLite store, behind the real HTTP handler with SigV4 on.
pub struct Campaign {
    handler: Arc<ApiHandler<Coffer>>,
    model: Model,
    _dir: tempfile::TempDir,
}

impl Campaign {
    pub fn new() -> Campaign {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = StoreHandle::open(dir.path().join("metadata.db").to_str().expect("UTF-8"))
            .expect("open the store");
        let coffer = Coffer::new(store, Clock::system());
        let mut creds = std::collections::HashMap::new();
        creds.insert(
            AKID.to_string(),
            Credential {
                access_key_id: AKID.into(),
                secret_access_key: SECRET.into(),
                account_id: ACCOUNT.into(),
            },
        );
        let handler = ApiHandler::new(
            Arc::new(coffer),
            AuthMode::SigV4(Arc::new(creds)),
            "us-east-1",
        );
        Campaign {
            handler: Arc::new(handler),
            model: Model::load(),
            _dir: dir,
        }
    }

    /// Runs `n` requests from `seed`, `concurrency` at a time; `progress` is called every
    /// 10,000 requests.
    pub async fn run(
        &self,
        n: u64,
        seed: u64,
        concurrency: usize,
        progress: impl Fn(&Stats),
    ) -> Stats {
        let mut stats = Stats {
            rss_before_kb: rss_kb(),
            ..Stats::default()
        };
        let started = Instant::now();
        let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed));
        let mut tasks = tokio::task::JoinSet::new();
        let mut sent = 0u64;
        while sent < n || !tasks.is_empty() {
            while sent < n && tasks.len() < concurrency.max(1) {
                let index = rng.random_range(0..OPERATIONS.len());
                let req = generate(&self.model, &mut rng, index, SystemTime::now());
                sent += 1;
                let Some(http_req) = build(&req) else {
                    stats.unbuildable += 1;
                    continue;
                };
                let handler = self.handler.clone();
                tasks.spawn(async move {
                    let response = handler.handle(http_req).await;
                    let status = response.status().as_u16();
                    let error_type = response
                        .headers()
                        .get("x-amzn-errortype")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    (req, status, error_type, body)
                });
            }
            let Some(joined) = tasks.join_next().await else {
                continue;
            };
            stats.requests += 1;
            match joined {
                Err(e) => {
                    stats.panics += 1;
                    stats.fail(format!("panic: {e}"));
                }
                Ok((req, status, error_type, body)) => {
                    check(&mut stats, &req, status, error_type, &body);
                }
            }
            if stats.requests.is_multiple_of(10_000) {
                stats.elapsed = started.elapsed();
                progress(&stats);
            }
        }
        stats.elapsed = started.elapsed();
        stats.rss_after_kb = rss_kb();
        stats
    }
}

impl Default for Campaign {
    fn default() -> Self {
        Self::new()
    }
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b
}

fn build(req: &FuzzRequest) -> Option<http::Request<Full<Bytes>>> {
    let mut b = http::Request::builder()
        .method(req.method.as_str())
        .uri(req.target.as_str());
    for (k, v) in &req.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Full::new(Bytes::from(req.body.clone()))).ok()
}

fn check(
    stats: &mut Stats,
    req: &FuzzRequest,
    status: u16,
    error_type: Option<String>,
    body: &[u8],
) {
    *stats.by_status.entry(status).or_default() += 1;
    let what = || {
        format!(
            "{} {} {} [{}]",
            req.operation, req.method, req.target, req.tampering
        )
    };
    if status >= 500 && status != 501 {
        stats.server_errors += 1;
        stats.fail(format!(
            "{status} for {}: {}",
            what(),
            String::from_utf8_lossy(body)
        ));
    }
    if let Some(code) = &error_type {
        *stats.by_code.entry(code.clone()).or_default() += 1;
    }
    if status >= 300 {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let ok = match (&error_type, &parsed) {
            (Some(t), Some(v)) => {
                v["__type"].as_str() == Some(t.as_str())
                    && v["Message"].as_str().is_some_and(|m| !m.is_empty())
            }
            _ => false,
        };
        if !ok {
            stats.malformed += 1;
            stats.fail(format!(
                "malformed error {status} for {}: {error_type:?} {}",
                what(),
                String::from_utf8_lossy(body)
            ));
        }
    } else {
        stats.succeeded += 1;
        stats.operations_succeeded.insert(req.operation);
        if !body.is_empty() && serde_json::from_slice::<Value>(body).is_err() {
            stats.malformed += 1;
            stats.fail(format!("non-JSON success body for {}", what()));
        }
    }
    // A request whose signature was broken after signing, or whose scope or date is wrong,
    // must never get past SigV4.
    let forged = matches!(
        req.tampering,
        "signature"
            | "body"
            | "unsigned"
            | "method"
            | "unsigned-payload"
            | "scope-region"
            | "scope-service"
            | "skew-ahead"
            | "skew-behind"
    );
    if forged && status != 403 {
        stats.forged_accepted += 1;
        stats.fail(format!("forged request accepted ({status}): {}", what()));
    }
}
