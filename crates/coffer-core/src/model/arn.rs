//! Amazon Resource Names for Coffer's resources, in AWS Backup's formats.

/// `arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME`
pub fn backup_vault(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:backup:{region}:{account}:backup-vault:{name}")
}

/// `arn:aws:backup:REGION:ACCOUNT:backup-plan:ID`
pub fn backup_plan(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:backup:{region}:{account}:backup-plan:{id}")
}

/// `arn:aws:backup:REGION:ACCOUNT:recovery-point:ID`
pub fn recovery_point(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:backup:{region}:{account}:recovery-point:{id}")
}

pub fn legal_hold(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:backup:{region}:{account}:legal-hold:{id}")
}

/// A framework's ARN: its name and a fresh id (`NAME-UUID`), as AWS makes them.
pub fn framework(region: &str, account: &str, name: &str, id: &str) -> String {
    format!("arn:aws:backup:{region}:{account}:framework:{name}-{id}")
}

/// A report plan's ARN: its name and a fresh id (`NAME-UUID`), as AWS makes them.
pub fn report_plan(region: &str, account: &str, name: &str, id: &str) -> String {
    format!("arn:aws:backup:{region}:{account}:report-plan:{name}-{id}")
}

/// The key Coffer reports as a vault's encryption key when the caller names none: the
/// analogue of AWS Backup's managed key. Data is encrypted with Coffer's own key hierarchy.
pub fn default_encryption_key(region: &str, account: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:alias/aws/backup")
}

/// The parts of an ARN: partition, service, region, account and resource.
#[derive(Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

pub fn parse(arn: &str) -> Option<Arn<'_>> {
    let mut it = arn.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    Some(Arn {
        partition: it.next()?,
        service: it.next()?,
        region: it.next()?,
        account: it.next()?,
        resource: it.next()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_arn_round_trips() {
        let a = backup_vault("eu-west-1", "111122223333", "prod-vault");
        let p = parse(&a).unwrap();
        assert_eq!(p.region, "eu-west-1");
        assert_eq!(p.account, "111122223333");
        assert_eq!(p.resource, "backup-vault:prod-vault");
        assert!(parse("not-an-arn").is_none());
    }
}
