//! The web console at `/console`: what an operator wants to see at a glance (recent jobs and
//! failures, storage per vault, the inventory, notification delivery) and the few actions that
//! are easier in a form than on a command line (restore a recovery point into a chosen
//! directory, replay dead letters, move the development clock).
//!
//! Why here and like this: it reads and acts through the same `BackupService` calls the API
//! answers, with a `RequestContext` for the signed-in account, so it shows exactly what that
//! account's API calls would and needs nothing of its own in the domain. Pages are rendered on
//! the server (no script); the stylesheet is embedded in the binary.
//!
//! Security: sign-in takes an access key id and secret, checked against the same credentials
//! SigV4 uses (constant-time comparison; failures logged at WARN, rate-limited, never the
//! secret); the session is a random id in an `HttpOnly; SameSite=Strict` cookie scoped to
//! `/console`, expiring after 12 hours; every POST carries the session's CSRF token and, when
//! the browser sends one, an `Origin` matching the host. In development mode (`--dev`) there is
//! no sign-in: a session is made on first visit for the default account, and the account and
//! region can be switched.

mod pages;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use coffer_api::RequestContext;
use coffer_api::sigv4::AuthMode;
use coffer_core::Coffer;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use subtle::ConstantTimeEq;

use crate::logging::FailedSignIns;

const COOKIE: &str = "coffer_console";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const MAX_SESSIONS: usize = 10_000;
const CSS: &str = include_str!("console.css");

/// One signed-in browser.
#[derive(Clone)]
struct Session {
    account: String,
    region: String,
    /// The access key signed in with (`None` in development mode).
    access_key_id: Option<String>,
    csrf: String,
    expires: Instant,
}

/// What a page handler gets: the caller's scope and how to build forms.
pub struct Ctx<'a> {
    pub coffer: &'a Coffer,
    pub dev: bool,
    pub account: String,
    pub region: String,
    pub access_key_id: Option<String>,
    pub csrf: String,
}

impl Ctx<'_> {
    pub fn request(&self) -> RequestContext {
        RequestContext {
            account_id: self.account.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            request_id: format!("console-{}", uuid::Uuid::new_v4()),
        }
    }
}

pub struct Console {
    coffer: Coffer,
    dev: bool,
    auth: AuthMode,
    default_region: String,
    sessions: Mutex<HashMap<String, Session>>,
}

/// A request as the console needs it.
pub struct ConsoleRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub peer: String,
}

pub fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

impl Console {
    pub fn new(coffer: Coffer, dev: bool, auth: AuthMode, default_region: &str) -> Console {
        Console {
            coffer,
            dev,
            auth,
            default_region: default_region.to_string(),
            sessions: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_session(&self, s: Session) -> String {
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            // Drop the session closest to expiry rather than refuse a sign-in.
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), s);
        id
    }

    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie(headers, COOKIE)?;
        let sessions = self.lock();
        let s = sessions.get(&id)?;
        (s.expires > Instant::now()).then(|| (id.clone(), s.clone()))
    }

    fn dev_session(&self) -> Session {
        let account = match &self.auth {
            AuthMode::None { default_account } => default_account.clone(),
            AuthMode::SigV4(_) => crate::config::DEFAULT_ACCOUNT.to_string(),
        };
        Session {
            account,
            region: self.default_region.clone(),
            access_key_id: None,
            csrf: token(),
            expires: Instant::now() + SESSION_TTL,
        }
    }

    /// Whether the console asks for a sign-in: not in development mode, nor when
    /// authentication is off.
    fn needs_sign_in(&self) -> bool {
        !self.dev && matches!(self.auth, AuthMode::SigV4(_))
    }

    pub async fn handle(
        &self,
        req: ConsoleRequest<'_>,
        sign_ins: &FailedSignIns,
        metrics: &crate::metrics::Metrics,
    ) -> Response<Full<Bytes>> {
        let path = req.path.trim_end_matches('/');
        if path == "/console/console.css" {
            let mut r = Response::new(Full::new(Bytes::from_static(CSS.as_bytes())));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            );
            return r;
        }
        if *req.method == Method::POST && !same_origin(req.headers) {
            return plain(
                StatusCode::FORBIDDEN,
                "This form was sent from another site; reload the console page and try again.",
            );
        }
        let form = if *req.method == Method::POST {
            form_urlencoded::parse(req.body).into_owned().collect()
        } else {
            HashMap::new()
        };
        if path == "/console/sign-in" && self.needs_sign_in() {
            return match *req.method {
                Method::POST => self.sign_in(&form, &req.peer, sign_ins, metrics),
                _ => html(StatusCode::OK, pages::sign_in(None)),
            };
        }
        let mut set_cookie = None;
        let (id, session) = match self.session(req.headers) {
            Some(s) => s,
            None if self.needs_sign_in() => return redirect("/console/sign-in", None),
            None => {
                let s = self.dev_session();
                let id = self.new_session(s.clone());
                set_cookie = Some(session_cookie(&id, SESSION_TTL));
                (id, s)
            }
        };
        if *req.method == Method::POST {
            let sent = form.get("csrf").map(String::as_bytes).unwrap_or_default();
            if !bool::from(sent.ct_eq(session.csrf.as_bytes())) {
                return plain(
                    StatusCode::FORBIDDEN,
                    "The form's security token does not match your session; reload the page and try again.",
                );
            }
        }
        let ctx = Ctx {
            coffer: &self.coffer,
            dev: self.dev || !self.needs_sign_in(),
            account: session.account.clone(),
            region: session.region.clone(),
            access_key_id: session.access_key_id.clone(),
            csrf: session.csrf.clone(),
        };
        let mut response = match (req.method.clone(), path) {
            (Method::POST, "/console/sign-out") => {
                self.lock().remove(&id);
                return redirect(
                    if self.needs_sign_in() {
                        "/console/sign-in"
                    } else {
                        "/console"
                    },
                    Some(session_cookie("", Duration::ZERO)),
                );
            }
            (Method::POST, "/console/scope") if ctx.dev => {
                let account = form.get("account").cloned().unwrap_or_default();
                let region = form.get("region").cloned().unwrap_or_default();
                if account.len() != 12
                    || !account.bytes().all(|b| b.is_ascii_digit())
                    || region.is_empty()
                    || !region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        "Give a 12-digit account id and a region such as us-east-1.",
                    );
                }
                if let Some(s) = self.lock().get_mut(&id) {
                    s.account = account;
                    s.region = region;
                }
                redirect("/console", None)
            }
            (Method::GET, _) => match pages::get(&ctx, path, req.query).await {
                Some(page) => html(StatusCode::OK, page),
                None => html(
                    StatusCode::NOT_FOUND,
                    pages::layout(&ctx, "Not found", "<p>There is no such console page.</p>"),
                ),
            },
            (Method::POST, _) => pages::post(&ctx, path, &form).await,
            _ => plain(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed."),
        };
        if let Some(c) = set_cookie
            && let Ok(v) = HeaderValue::from_str(&c)
        {
            response.headers_mut().append(http::header::SET_COOKIE, v);
        }
        response
    }

    fn sign_in(
        &self,
        form: &HashMap<String, String>,
        peer: &str,
        sign_ins: &FailedSignIns,
        metrics: &crate::metrics::Metrics,
    ) -> Response<Full<Bytes>> {
        let key = form
            .get("access_key_id")
            .map(|s| s.trim())
            .unwrap_or_default();
        let secret = form
            .get("secret_access_key")
            .map(String::as_str)
            .unwrap_or_default();
        let region = form
            .get("region")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.default_region)
            .to_string();
        let AuthMode::SigV4(creds) = &self.auth else {
            return redirect("/console", None);
        };
        let found = creds
            .get(key)
            .filter(|c| bool::from(c.secret_access_key.as_bytes().ct_eq(secret.as_bytes())));
        let Some(cred) = found else {
            sign_ins.record(
                if key.is_empty() { "(none)" } else { key },
                peer,
                "console sign-in refused",
            );
            metrics.sign_in_failed("console sign-in refused");
            return html(
                StatusCode::UNAUTHORIZED,
                pages::sign_in(Some(
                    "The access key id and secret access key do not match a configured credential.",
                )),
            );
        };
        if !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return html(
                StatusCode::BAD_REQUEST,
                pages::sign_in(Some("The region must look like us-east-1.")),
            );
        }
        tracing::info!(access_key_id = %cred.access_key_id, account = %cred.account_id, %region, "console sign-in");
        let id = self.new_session(Session {
            account: cred.account_id.clone(),
            region,
            access_key_id: Some(cred.access_key_id.clone()),
            csrf: token(),
            expires: Instant::now() + SESSION_TTL,
        });
        redirect("/console", Some(session_cookie(&id, SESSION_TTL)))
    }
}

fn token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn session_cookie(id: &str, ttl: Duration) -> String {
    format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}",
        ttl.as_secs()
    )
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A POST is accepted when the browser sends no `Origin` or one naming this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest == host)
}

fn secure_headers(r: &mut Response<Full<Bytes>>) {
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: with the latter browsers send `Origin: null` on form posts.
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
}

pub fn html(status: StatusCode, page: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(page)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(&mut r);
    r
}

pub fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure_headers(&mut r);
    r
}

pub fn redirect(to: &str, set_cookie: Option<String>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    if let Some(c) = set_cookie
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        r.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    secure_headers(&mut r);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_origins() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            HeaderValue::from_static("a=1; coffer_console=abc; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc"));
        h.insert(
            http::header::HOST,
            HeaderValue::from_static("127.0.0.1:9191"),
        );
        assert!(same_origin(&h));
        h.insert(
            http::header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9191"),
        );
        assert!(same_origin(&h));
        h.insert(
            http::header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
    }
}
