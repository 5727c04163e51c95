//! Raw HTTP requests signed by aws-sdk-rust's own SigV4 signer (`aws-sigv4`), for tests whose
//! point is a request the SDK client would not send as is: tampered after signing, odd paths,
//! presigned URLs. `hand_sign` builds a signature from Coffer's canonical request for the few
//! cases no SDK signer can produce (SignedHeaders without `host`).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::harness::{AKID, SECRET, Server};

/// A request to sign: everything defaults to a good request by the test credential.
#[derive(Clone)]
pub struct ToSign {
    pub method: String,
    /// Path and query as they go on the wire (already percent-encoded).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub akid: String,
    pub secret: String,
    pub session_token: Option<String>,
    pub region: String,
    pub service: String,
    pub time: SystemTime,
    /// Presign for this long instead of signing into the Authorization header.
    pub presign: Option<Duration>,
    /// Send `x-amz-content-sha256` (the body's hash, or UNSIGNED-PAYLOAD when `unsigned`).
    pub content_sha256: bool,
    pub unsigned: bool,
}

impl ToSign {
    pub fn new(method: &str, target: &str) -> Self {
        ToSign {
            method: method.to_string(),
            target: target.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            akid: AKID.to_string(),
            secret: SECRET.to_string(),
            session_token: None,
            region: "us-east-1".to_string(),
            service: "backup".to_string(),
            time: SystemTime::now(),
            presign: None,
            content_sha256: false,
            unsigned: false,
        }
    }

    pub fn body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self.headers
            .push(("content-type".into(), "application/json".into()));
        self
    }

    /// Signs for `server`: the target (with presigned parameters added) and the headers to
    /// send (the signer's plus the request's own).
    pub fn sign(&self, server: &Server) -> Signed {
        let host = server.endpoint.trim_start_matches("http://");
        let identity = Credentials::new(
            &self.akid,
            &self.secret,
            self.session_token.clone(),
            None,
            "coffer-tests",
        )
        .into();
        let mut settings = SigningSettings::default();
        if self.content_sha256 {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        if let Some(expires) = self.presign {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(expires);
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(self.time)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let url = format!("http://{host}{}", self.target);
        let body = if self.unsigned {
            SignableBody::UnsignedPayload
        } else {
            SignableBody::Bytes(&self.body)
        };
        let signable = SignableRequest::new(
            &self.method,
            &url,
            self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            body,
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut headers = self.headers.clone();
        for (k, v) in instructions.headers() {
            headers.push((k.to_string(), v.to_string()));
        }
        let mut target = self.target.clone();
        for (k, v) in instructions.params() {
            target.push(if target.contains('?') { '&' } else { '?' });
            target.push_str(&format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)));
        }
        Signed {
            method: self.method.clone(),
            target,
            headers,
            body: self.body.clone(),
        }
    }
}

/// A signed request, ready to be tampered with and sent.
#[derive(Clone, Debug)]
pub struct Signed {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What came back: status, the x-amzn-ErrorType header and the parsed JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub error_type: Option<String>,
    pub body: serde_json::Value,
}

impl Answer {
    /// The error code, checked to be the same in the header and the body.
    pub fn code(&self) -> Option<String> {
        let in_body = self.body["__type"].as_str().map(str::to_string);
        assert_eq!(
            self.error_type.as_deref().map(str::to_lowercase),
            in_body.as_deref().map(str::to_lowercase),
            "x-amzn-ErrorType and __type differ: {self:?}"
        );
        in_body
    }

    pub fn message(&self) -> String {
        self.body["Message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Signed {
    pub fn header(&mut self, name: &str) -> &mut String {
        &mut self
            .headers
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("no header {name}"))
            .1
    }

    /// The Authorization header's Signature, to tamper with.
    pub fn flip_signature_char(&mut self) {
        let auth = self.header("authorization");
        let i = auth.rfind("Signature=").unwrap() + "Signature=".len();
        let c = auth.as_bytes()[i];
        let new = if c == b'0' { '1' } else { '0' };
        auth.replace_range(i..i + 1, &new.to_string());
    }

    pub async fn send(&self, server: &Server) -> Answer {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (status, head, body) = server
            .raw(&self.method, &self.target, &headers, &self.body)
            .await;
        let error_type = head
            .lines()
            .find_map(|l| l.strip_prefix("x-amzn-errortype: "))
            .map(|s| s.trim().to_string());
        let body = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
        };
        Answer {
            status,
            error_type,
            body,
        }
    }
}

/// A signature computed by hand over Coffer's canonical request, with exactly the headers in
/// `signed` (which need not include `host`). Only for refusals no SDK signer can produce.
pub fn hand_sign(
    server: &Server,
    method: &str,
    path: &str,
    signed: &[&str],
    time: SystemTime,
) -> Vec<(String, String)> {
    use coffer_api::sigv4::{canonical_request, hmac_sha256, sha256_hex, signing_key};
    let host = server.endpoint.trim_start_matches("http://");
    let now: chrono::DateTime<chrono::Utc> = time.into();
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let mut h = http::HeaderMap::new();
    h.insert("host", host.parse().unwrap());
    h.insert("x-amz-date", amz_date.parse().unwrap());
    let creq = canonical_request(method, path, "", &h, signed, &sha256_hex(b""), false).unwrap();
    let scope = format!("{date}/us-east-1/backup/aws4_request");
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(creq.as_bytes())
    );
    let sig = hex::encode(hmac_sha256(
        &signing_key(SECRET, date, "us-east-1", "backup"),
        sts.as_bytes(),
    ));
    vec![
        ("x-amz-date".to_string(), amz_date),
        (
            "authorization".to_string(),
            format!(
                "AWS4-HMAC-SHA256 Credential={AKID}/{scope}, SignedHeaders={}, Signature={sig}",
                signed.join(";")
            ),
        ),
    ]
}
