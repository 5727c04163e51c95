//! The one STS call clients make before they talk to AWS Backup: `GetCallerIdentity`.
//!
//! Terraform's AWS provider, the AWS CLI's `sts get-caller-identity` and many scripts ask STS
//! who they are before anything else. Coffer answers that on its own endpoint so they work
//! unchanged: a request whose SigV4 credential scope names the `sts` service (or, with
//! authentication off, an unsigned `POST /` carrying `Action=...`) is STS's, everything else is
//! AWS Backup's. STS speaks the `query` protocol (see `model/sts/service-2.json`): form-encoded
//! parameters in, XML out, errors as `<ErrorResponse>`. Only `GetCallerIdentity` is answered;
//! any other action is refused with STS's `InvalidAction`, never with a fake success.
//!
//! A Coffer credential stands for its account as a whole, so the caller is reported as the
//! account's root identity: `arn:aws:iam::ACCOUNT:root`, with the account id as user id, which
//! is what AWS returns for an account's root access keys.

use crate::error::ApiError;
use crate::sigv4::canonical::decode_query_form;

/// The STS API version of the vendored model (`metadata.apiVersion`).
pub const API_VERSION: &str = "2011-06-15";
/// The XML namespace of STS answers (`metadata.xmlNamespace` of the query protocol).
pub const XML_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// The SigV4 signing name of STS.
pub const SIGNING_NAME: &str = "sts";

/// Whether an unsigned request looks like an STS query call (`POST /` with an `Action`).
pub fn is_unsigned_query_call(method: &str, raw_path: &str, raw_query: &str, body: &[u8]) -> bool {
    if raw_path != "/" {
        return false;
    }
    let in_query = decode_query_form(raw_query)
        .iter()
        .any(|(k, _)| k == "Action");
    let in_body = method == "POST"
        && std::str::from_utf8(body)
            .map(|b| decode_query_form(b).iter().any(|(k, _)| k == "Action"))
            .unwrap_or(false);
    in_query || in_body
}

/// The parameters of a query call: the form body of a POST, plus the URL's query string.
pub fn parameters(raw_query: &str, body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let mut params = decode_query_form(raw_query);
    if !body.is_empty() {
        let text = std::str::from_utf8(body).map_err(|_| {
            ApiError::new(
                400,
                "MalformedQueryString",
                "The request body must be form-encoded text (application/x-www-form-urlencoded).",
            )
        })?;
        params.extend(decode_query_form(text));
    }
    Ok(params)
}

/// Answers one STS call for an authenticated account: the XML body on success.
pub fn answer(
    params: &[(String, String)],
    account_id: &str,
    request_id: &str,
) -> Result<String, ApiError> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let action = get("Action").ok_or_else(|| {
        ApiError::new(
            400,
            "MissingAction",
            "The request must contain the parameter Action (for example Action=GetCallerIdentity).",
        )
    })?;
    // Every query-protocol call names its API version; the SDKs always send it.
    let version = get("Version").ok_or_else(|| {
        ApiError::new(
            400,
            "MissingParameter",
            format!("The request must contain the parameter Version (Version={API_VERSION})."),
        )
    })?;
    if version != API_VERSION {
        return Err(ApiError::new(
            400,
            "InvalidParameterValue",
            format!(
                "Version '{}' is not supported; use {API_VERSION}.",
                xml_escape(&shorten(version))
            ),
        ));
    }
    if action != "GetCallerIdentity" {
        return Err(ApiError::new(
            400,
            "InvalidAction",
            format!(
                "Coffer answers only the STS action GetCallerIdentity, not '{}'.",
                shorten(action)
            ),
        ));
    }
    Ok(format!(
        "<GetCallerIdentityResponse xmlns=\"{XML_NAMESPACE}\">\n  <GetCallerIdentityResult>\n    \
         <Arn>arn:aws:iam::{account}:root</Arn>\n    <UserId>{account}</UserId>\n    \
         <Account>{account}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    \
         <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n",
        account = xml_escape(account_id),
        request_id = xml_escape(request_id),
    ))
}

/// An error in STS's query-protocol shape, which the SDKs parse by its `Code`.
pub fn error_body(err: &ApiError, request_id: &str) -> String {
    let kind = if err.status() >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    format!(
        "<ErrorResponse xmlns=\"{XML_NAMESPACE}\">\n  <Error>\n    <Type>{kind}</Type>\n    \
         <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        xml_escape(sts_code(err.code())),
        xml_escape(err.message()),
        xml_escape(request_id),
    )
}

/// AWS Backup's JSON error codes and STS's differ for the same refusal in a few places.
fn sts_code(code: &str) -> &str {
    match code {
        "UnrecognizedClientException" => "InvalidClientTokenId",
        "InvalidSignatureException" => "SignatureDoesNotMatch",
        "MissingAuthenticationTokenException" => "MissingAuthenticationToken",
        "IncompleteSignatureException" => "IncompleteSignature",
        "SerializationException" => "MalformedQueryString",
        "ServiceUnavailableException" => "ServiceUnavailable",
        other => other,
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> serde_json::Value {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../model/sts/service-2.json"
        ))
        .expect("vendored STS model");
        serde_json::from_str(&text).expect("STS model is JSON")
    }

    #[test]
    fn the_answer_carries_what_the_model_says_get_caller_identity_returns() {
        let model = model();
        assert_eq!(model["metadata"]["protocol"], "query");
        assert_eq!(model["metadata"]["apiVersion"], API_VERSION);
        assert_eq!(model["metadata"]["endpointPrefix"], SIGNING_NAME);
        assert_eq!(model["metadata"]["xmlNamespace"], XML_NAMESPACE);
        let op = &model["operations"]["GetCallerIdentity"];
        assert_eq!(op["output"]["resultWrapper"], "GetCallerIdentityResult");
        let shape = op["output"]["shape"].as_str().unwrap();
        let members = model["shapes"][shape]["members"].as_object().unwrap();
        let xml = answer(
            &[
                ("Action".into(), "GetCallerIdentity".into()),
                ("Version".into(), API_VERSION.into()),
            ],
            "111122223333",
            "rid",
        )
        .unwrap();
        for name in members.keys() {
            assert!(
                xml.contains(&format!("<{name}>")),
                "answer lacks {name}: {xml}"
            );
        }
        assert!(xml.contains("<Account>111122223333</Account>"));
        assert!(xml.contains("<Arn>arn:aws:iam::111122223333:root</Arn>"));
        assert!(xml.contains("<RequestId>rid</RequestId>"));
    }

    #[test]
    fn other_actions_and_versions_are_refused() {
        let e = answer(
            &[
                ("Action".into(), "AssumeRole".into()),
                ("Version".into(), API_VERSION.into()),
            ],
            "111122223333",
            "r",
        )
        .unwrap_err();
        assert_eq!(e.code(), "InvalidAction");
        assert!(e.message().contains("GetCallerIdentity"));
        let e = answer(
            &[("Action".into(), "GetCallerIdentity".into())],
            "111122223333",
            "r",
        )
        .unwrap_err();
        assert_eq!(e.code(), "MissingParameter");
        assert!(e.message().contains(API_VERSION));
        let e = answer(&[], "111122223333", "r").unwrap_err();
        assert_eq!(e.code(), "MissingAction");
        let e = answer(
            &[
                ("Action".into(), "GetCallerIdentity".into()),
                ("Version".into(), "2099-01-01".into()),
            ],
            "111122223333",
            "r",
        )
        .unwrap_err();
        assert_eq!(e.code(), "InvalidParameterValue");
    }

    #[test]
    fn errors_are_escaped_and_use_sts_codes() {
        let body = error_body(&ApiError::invalid_signature("bad <sig> & more"), "r&1");
        assert!(body.contains("<Code>SignatureDoesNotMatch</Code>"));
        assert!(body.contains("bad &lt;sig&gt; &amp; more"));
        assert!(body.contains("<RequestId>r&amp;1</RequestId>"));
        assert!(body.contains("<Type>Sender</Type>"));
    }

    #[test]
    fn unsigned_query_calls_are_recognised_only_at_the_root() {
        assert!(is_unsigned_query_call(
            "POST",
            "/",
            "",
            b"Action=GetCallerIdentity&Version=2011-06-15"
        ));
        assert!(is_unsigned_query_call(
            "GET",
            "/",
            "Action=GetCallerIdentity",
            b""
        ));
        assert!(!is_unsigned_query_call(
            "POST",
            "/backup-vaults/",
            "",
            b"Action=GetCallerIdentity"
        ));
        assert!(!is_unsigned_query_call("POST", "/", "", b"{}"));
    }
}
