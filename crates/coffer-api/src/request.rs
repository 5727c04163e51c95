//! Who is calling and where: the context every operation receives.

/// The authenticated caller of one request. Every resource is scoped by (account, region).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The 12-digit account id the access key belongs to.
    pub account_id: String,
    /// The region from the SigV4 credential scope.
    pub region: String,
    /// The access key id that signed the request, when there was one.
    pub access_key_id: Option<String>,
    /// The id sent back in `x-amzn-RequestId`, also used in logs.
    pub request_id: String,
}

impl RequestContext {
    /// A context for calls made from inside Coffer or from tests.
    pub fn new(account_id: &str, region: &str) -> Self {
        RequestContext {
            account_id: account_id.to_string(),
            region: region.to_string(),
            access_key_id: None,
            request_id: uuid::Uuid::new_v4().to_string(),
        }
    }
}
