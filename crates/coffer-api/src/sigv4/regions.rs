//! Which regions and services a credential scope may name.
//!
//! AWS refuses a signature scoped to a region that does not exist or to another service; so
//! does Coffer, or a typo such as `us-east1` (or a forged `zz-fake-9`) would silently get its
//! own set of resources. The known regions are those of the `aws` partition where AWS Backup
//! runs (botocore's list for `backup`); an operator adds others (a private or future region)
//! through the server's configuration.

/// The regions of the `aws` partition that offer AWS Backup.
pub const AWS_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// What the credential scope of a request must name, and the region of unsigned requests.
#[derive(Debug, Clone)]
pub struct ScopePolicy {
    /// The signing name of the service answering (`backup`).
    pub service: String,
    /// The region assumed when a request carries no signature (authentication off only).
    pub default_region: String,
    /// Regions accepted besides [`AWS_REGIONS`] (from the configuration).
    pub extra_regions: Vec<String>,
}

impl ScopePolicy {
    /// A policy for `service`; `default_region` is accepted in scopes too.
    pub fn new(service: &str, default_region: &str) -> Self {
        ScopePolicy {
            service: service.to_string(),
            default_region: default_region.to_string(),
            extra_regions: Vec::new(),
        }
    }

    /// Accepts these region names besides the known ones.
    pub fn with_regions(mut self, regions: impl IntoIterator<Item = String>) -> Self {
        self.extra_regions.extend(regions);
        self
    }

    pub fn region_known(&self, region: &str) -> bool {
        AWS_REGIONS.contains(&region)
            || region == self.default_region
            || self.extra_regions.iter().any(|r| r == region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_configured_and_default_regions_only() {
        let p = ScopePolicy::new("backup", "us-east-1").with_regions(["lab-1".to_string()]);
        assert!(p.region_known("eu-west-1"));
        assert!(p.region_known("lab-1"));
        assert!(!p.region_known("zz-fake-9"));
        assert!(!p.region_known("us-east1"));
        assert!(!p.region_known(""));
        assert!(ScopePolicy::new("backup", "zz-local-1").region_known("zz-local-1"));
    }
}
