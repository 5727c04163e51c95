//! Vault access policies: the IAM resource policy attached to a backup vault.
//!
//! A policy is stored exactly as the caller sent it (table `vault_policy`, keyed like the
//! vault), after checking that it is an IAM policy document Coffer can read. It is what lets
//! another account copy recovery points into the vault: [`copy_allowed`] answers that question
//! for the copy jobs. Coffer has no IAM users, roles or organizations, so only the principal's
//! account, the action and the resource are evaluated (see [`copy_allowed`]).

use std::collections::HashSet;

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext};
use serde_json::{Map, Value};

use crate::model::error::Result;
use crate::model::vault_policy::*;
use crate::model::{Meta, restore_access};

pub(crate) async fn put(
    meta: &Meta,
    ctx: &RequestContext,
    input: PutBackupVaultAccessPolicyInput,
) -> Result<()> {
    let Some(policy) = input.policy else {
        return Err(ApiError::missing_parameter("Policy is required.").into());
    };
    validate(&policy).map_err(ApiError::invalid_parameter)?;
    let shared = policy.clone();
    let record = PolicyRecord {
        policy,
        updated: meta.clock().now(),
    };
    let account = ctx.account_id.clone();
    POLICY
        .put_guarded(
            meta,
            ctx,
            input.backup_vault_name,
            record,
            move |tx, k, v| {
                check_not_denied(
                    tx,
                    k,
                    "backup:PutBackupVaultAccessPolicy",
                    &[&v.arn],
                    &account,
                )?;
                restore_access::reindex_shares(tx, v, Some(&shared))
            },
        )
        .await
}

pub(crate) async fn describe(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetBackupVaultAccessPolicyInput,
) -> Result<GetBackupVaultAccessPolicyOutput> {
    POLICY
        .describe(meta, ctx, input.backup_vault_name, |v, r: PolicyRecord| {
            GetBackupVaultAccessPolicyOutput {
                backup_vault_arn: Some(v.arn),
                backup_vault_name: Some(v.name),
                policy: Some(r.policy),
            }
        })
        .await
}

pub(crate) async fn delete(
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteBackupVaultAccessPolicyInput,
) -> Result<()> {
    let account = ctx.account_id.clone();
    POLICY
        .delete_guarded(meta, ctx, input.backup_vault_name, move |tx, k, v| {
            check_not_denied(
                tx,
                k,
                "backup:DeleteBackupVaultAccessPolicy",
                &[&v.arn],
                &account,
            )?;
            restore_access::reindex_shares(tx, v, None)
        })
        .await
}

// ------------------------------------------------------------------------------------------
// Validation

const STATEMENT_KEYS: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];
const PRINCIPAL_KEYS: &[&str] = &["AWS", "Service", "Federated", "CanonicalUser"];

/// Checks that `doc` is an IAM policy document; the error names what is wrong.
pub(crate) fn validate(doc: &str) -> Result<(), String> {
    let v: Value =
        serde_json::from_str(doc).map_err(|e| format!("The policy is not valid JSON: {e}."))?;
    let Value::Object(top) = &v else {
        return Err("The policy must be a JSON object.".into());
    };
    for k in top.keys() {
        if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
            return Err(format!(
                "The policy has an unknown element '{k}'; a policy document has Version, Statement and optionally Id."
            ));
        }
    }
    match top.get("Version") {
        Some(Value::String(s)) if s == "2012-10-17" || s == "2008-10-17" => {}
        Some(other) => {
            return Err(format!(
                "The policy's Version must be \"2012-10-17\" or \"2008-10-17\"; got {other}."
            ));
        }
        None => return Err("The policy has no Version; use \"2012-10-17\".".into()),
    }
    if let Some(id) = top.get("Id")
        && !id.is_string()
    {
        return Err("The policy's Id must be a string.".into());
    }
    let mut sids = HashSet::new();
    for (i, st) in statements(top)?.into_iter().enumerate() {
        check_statement(i, st, &mut sids)?;
    }
    Ok(())
}

fn check_statement(
    i: usize,
    st: &Map<String, Value>,
    sids: &mut HashSet<String>,
) -> Result<(), String> {
    let at = format!("Statement[{i}]");
    for k in st.keys() {
        if !STATEMENT_KEYS.contains(&k.as_str()) {
            return Err(format!(
                "{at} has an unknown element '{k}'; allowed: {}.",
                STATEMENT_KEYS.join(", ")
            ));
        }
    }
    if let Some(sid) = st.get("Sid") {
        let Some(sid) = sid.as_str() else {
            return Err(format!("{at}: Sid must be a string."));
        };
        if !sids.insert(sid.to_string()) {
            return Err(format!(
                "{at}: Sid '{sid}' is used by more than one statement."
            ));
        }
    }
    match st.get("Effect") {
        Some(Value::String(e)) if e == "Allow" || e == "Deny" => {}
        Some(other) => {
            return Err(format!(
                "{at}: Effect must be \"Allow\" or \"Deny\"; got {other}."
            ));
        }
        None => return Err(format!("{at} has no Effect (\"Allow\" or \"Deny\").")),
    }
    match (st.get("Principal"), st.get("NotPrincipal")) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{at} has both Principal and NotPrincipal; give one."
            ));
        }
        (Some(p), None) => check_principal(&format!("{at}.Principal"), p)?,
        (None, Some(p)) => check_principal(&format!("{at}.NotPrincipal"), p)?,
        (None, None) => {}
    }
    let (name, v) = one_of(st, &at, "Action", "NotAction")?;
    for a in string_list(&format!("{at}.{name}"), v)? {
        if !is_action(a) {
            return Err(format!(
                "{at}.{name}: '{a}' is not an action; write SERVICE:ACTION (e.g. \"backup:CopyIntoBackupVault\") or \"*\"."
            ));
        }
    }
    let (name, v) = one_of(st, &at, "Resource", "NotResource")?;
    for r in string_list(&format!("{at}.{name}"), v)? {
        if r != "*" && !r.starts_with("arn:") {
            return Err(format!(
                "{at}.{name}: '{r}' is not a resource; write an ARN (wildcards allowed) or \"*\"."
            ));
        }
    }
    if let Some(c) = st.get("Condition") {
        check_condition(&format!("{at}.Condition"), c)?;
    }
    Ok(())
}

/// The one of `a` and `b` that the statement has; neither or both is an error.
fn one_of<'a>(
    st: &'a Map<String, Value>,
    at: &str,
    a: &'static str,
    b: &'static str,
) -> Result<(&'static str, &'a Value), String> {
    match (st.get(a), st.get(b)) {
        (Some(v), None) => Ok((a, v)),
        (None, Some(v)) => Ok((b, v)),
        (Some(_), Some(_)) => Err(format!("{at} has both {a} and {b}; give one.")),
        (None, None) => Err(format!("{at} has neither {a} nor {b}.")),
    }
}

/// A string or a non-empty list of strings.
fn string_list<'a>(at: &str, v: &'a Value) -> Result<Vec<&'a str>, String> {
    match v {
        Value::String(s) if !s.is_empty() => Ok(vec![s]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) if !s.is_empty() => Ok(s.as_str()),
                _ => Err(format!("{at}: every entry must be a non-empty string.")),
            })
            .collect(),
        _ => Err(format!(
            "{at} must be a non-empty string or a non-empty list of strings."
        )),
    }
}

fn is_action(a: &str) -> bool {
    if a == "*" {
        return true;
    }
    let Some((service, name)) = a.split_once(':') else {
        return false;
    };
    !service.is_empty()
        && service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
}

fn check_principal(at: &str, p: &Value) -> Result<(), String> {
    match p {
        Value::String(s) if s == "*" => Ok(()),
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                if !PRINCIPAL_KEYS.contains(&k.as_str()) {
                    return Err(format!(
                        "{at} has an unknown principal type '{k}'; allowed: {}.",
                        PRINCIPAL_KEYS.join(", ")
                    ));
                }
                let values = string_list(&format!("{at}.{k}"), v)?;
                if k == "AWS" {
                    for a in values {
                        if !(a == "*" || is_account_id(a) || a.starts_with("arn:")) {
                            return Err(format!(
                                "{at}.AWS: '{a}' is not an AWS principal; write an account id, an IAM ARN or \"*\"."
                            ));
                        }
                    }
                }
            }
            Ok(())
        }
        _ => Err(format!(
            "{at} must be \"*\" or an object such as {{\"AWS\": \"arn:aws:iam::111122223333:root\"}}."
        )),
    }
}

fn check_condition(at: &str, c: &Value) -> Result<(), String> {
    let Value::Object(ops) = c else {
        return Err(format!(
            "{at} must be an object of condition operators (e.g. {{\"StringEquals\": {{...}}}})."
        ));
    };
    for (op, keys) in ops {
        let Value::Object(keys) = keys else {
            return Err(format!(
                "{at}.{op} must be an object of condition keys and values."
            ));
        };
        if keys.is_empty() {
            return Err(format!("{at}.{op} is empty."));
        }
        for (k, v) in keys {
            let scalar = |x: &Value| x.is_string() || x.is_boolean() || x.is_number();
            let ok = match v {
                Value::Array(a) => !a.is_empty() && a.iter().all(scalar),
                other => scalar(other),
            };
            if !ok {
                return Err(format!(
                    "{at}.{op}.{k} must be a string, number, boolean or a non-empty list of them."
                ));
            }
        }
    }
    Ok(())
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

// ------------------------------------------------------------------------------------------
// Evaluation

#[cfg(test)]
mod tests {
    use super::*;

    const VAULT: &str = "arn:aws:backup:us-east-1:111122223333:backup-vault:dest";
    const SOURCE: &str = "444455556666";

    fn policy(statements: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":{statements}}}"#)
    }

    #[test]
    fn accepts_the_documented_shapes() {
        let ok = [
            policy(
                r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"backup:CopyIntoBackupVault","Resource":"*"}"#,
            ),
            policy(
                r#"[{"Sid":"a","Effect":"Deny","Principal":"*","Action":["backup:DeleteRecoveryPoint","backup:UpdateRecoveryPointLifecycle"],"Resource":"*"},
                    {"Sid":"b","Effect":"Allow","Principal":{"AWS":["111122223333","*"]},"NotAction":"backup:Delete*","NotResource":"arn:aws:backup:*:*:recovery-point:*","Condition":{"StringEquals":{"aws:PrincipalOrgID":["o-abc"]},"Bool":{"aws:SecureTransport":true}}}]"#,
            ),
            r#"{"Version":"2008-10-17","Id":"p1","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#.to_string(),
        ];
        for p in ok {
            assert_eq!(validate(&p), Ok(()), "{p}");
        }
    }

    #[test]
    fn refuses_malformed_documents_naming_the_fault() {
        let cases = [
            ("not json", "not valid JSON"),
            ("[]", "JSON object"),
            (r#"{"Statement":[]}"#, "no Version"),
            (r#"{"Version":"2020-01-01","Statement":[]}"#, "Version"),
            (&policy("[]"), "empty"),
            (&policy("42"), "object or a list"),
            (r#"{"Version":"2012-10-17"}"#, "no Statement"),
            (
                r#"{"Version":"2012-10-17","Statement":[],"Extra":1}"#,
                "unknown element 'Extra'",
            ),
            (&policy(r#"{"Action":"*","Resource":"*"}"#), "has no Effect"),
            (
                &policy(r#"{"Effect":"Permit","Action":"*","Resource":"*"}"#),
                "Effect must be",
            ),
            (
                &policy(r#"{"Effect":"Allow","Resource":"*"}"#),
                "neither Action nor NotAction",
            ),
            (
                &policy(r#"{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}"#),
                "both Action and NotAction",
            ),
            (
                &policy(r#"{"Effect":"Allow","Action":"*"}"#),
                "neither Resource nor NotResource",
            ),
            (
                &policy(r#"{"Effect":"Allow","Action":"copy","Resource":"*"}"#),
                "is not an action",
            ),
            (
                &policy(r#"{"Effect":"Allow","Action":[],"Resource":"*"}"#),
                "non-empty",
            ),
            (
                &policy(r#"{"Effect":"Allow","Action":"*","Resource":"vault"}"#),
                "is not a resource",
            ),
            (
                &policy(r#"{"Effect":"Allow","Principal":"me","Action":"*","Resource":"*"}"#),
                "Principal must be",
            ),
            (
                &policy(
                    r#"{"Effect":"Allow","Principal":{"User":"x"},"Action":"*","Resource":"*"}"#,
                ),
                "unknown principal type",
            ),
            (
                &policy(
                    r#"{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"*","Resource":"*"}"#,
                ),
                "not an AWS principal",
            ),
            (
                &policy(r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":"yes"}"#),
                "Condition must be",
            ),
            (
                &policy(r#"{"Effect":"Allow","Action":"*","Resource":"*","Effects":"x"}"#),
                "unknown element 'Effects'",
            ),
            (
                &policy(
                    r#"[{"Sid":"x","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"x","Effect":"Allow","Action":"*","Resource":"*"}]"#,
                ),
                "more than one statement",
            ),
        ];
        for (doc, want) in cases {
            let e = validate(doc).unwrap_err();
            assert!(e.contains(want), "{doc}: {e}");
        }
    }

    fn allow(principal: &str, action: &str, resource: &str) -> String {
        policy(&format!(
            r#"{{"Effect":"Allow","Principal":{principal},"Action":{action},"Resource":{resource}}}"#
        ))
    }

    #[test]
    fn copy_is_allowed_for_the_named_account_and_action() {
        for p in [
            allow(
                r#"{"AWS":"arn:aws:iam::444455556666:root"}"#,
                r#""backup:CopyIntoBackupVault""#,
                r#""*""#,
            ),
            allow(r#"{"AWS":"444455556666"}"#, r#""backup:*""#, r#""*""#),
            allow(r#""*""#, r#""*""#, &format!("\"{VAULT}\"")),
            allow(
                r#"{"AWS":["111122223333","arn:aws:iam::444455556666:role/copier"]}"#,
                r#"["backup:copyinto*"]"#,
                r#""arn:aws:backup:us-east-1:111122223333:backup-vault:*""#,
            ),
        ] {
            assert!(copy_allowed(&p, VAULT, SOURCE), "{p}");
        }
    }

    #[test]
    fn copy_is_refused_otherwise() {
        for p in [
            // Another account.
            allow(r#"{"AWS":"777788889999"}"#, r#""*""#, r#""*""#),
            // Another action.
            allow(
                r#"{"AWS":"444455556666"}"#,
                r#""backup:StartCopyJob""#,
                r#""*""#,
            ),
            // Another vault.
            allow(
                r#"{"AWS":"444455556666"}"#,
                r#""*""#,
                r#""arn:aws:backup:us-east-1:111122223333:backup-vault:other""#,
            ),
            // A service principal is not an account.
            allow(r#"{"Service":"backup.amazonaws.com"}"#, r#""*""#, r#""*""#),
            // Conditions cannot be evaluated: no grant.
            policy(
                r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-1"}}}"#,
            ),
            // A matching Deny wins.
            policy(
                r#"[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"},
                    {"Effect":"Deny","Principal":{"AWS":"444455556666"},"Action":"backup:CopyIntoBackupVault","Resource":"*"}]"#,
            ),
            // NotAction excluding the copy.
            policy(
                r#"{"Effect":"Allow","Principal":"*","NotAction":"backup:Copy*","Resource":"*"}"#,
            ),
            "garbage".to_string(),
        ] {
            assert!(!copy_allowed(&p, VAULT, SOURCE), "{p}");
        }
        // A Deny for someone else does not matter.
        let p = policy(
            r#"[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"},
                {"Effect":"Deny","Principal":{"AWS":"777788889999"},"Action":"*","Resource":"*"}]"#,
        );
        assert!(copy_allowed(&p, VAULT, SOURCE));
    }

    #[test]
    fn glob_matches_like_iam() {
        assert!(glob(b"*", b""));
        assert!(glob(b"backup:*", b"backup:CopyIntoBackupVault"));
        assert!(glob(b"b?ckup:*Vault", b"backup:CopyIntoBackupVault"));
        assert!(!glob(b"backup:Copy", b"backup:CopyIntoBackupVault"));
        assert!(glob(b"a*b*c", b"aXbYbZc"));
        assert!(!glob(b"a*b*c", b"aXbYbZ"));
    }
}
