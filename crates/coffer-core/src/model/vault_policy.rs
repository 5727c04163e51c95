//! A vault's access policy as stored (table `vault_policy`, keyed like the vault), and the two
//! questions Coffer evaluates on it: whether another account may copy into the vault
//! ([`copy_allowed`]), and whether an explicit Deny refuses a call on the vault or its
//! recovery points ([`explicit_deny`]: DeleteRecoveryPoint, UpdateRecoveryPointLifecycle,
//! DeleteBackupVault, and changes to the policy itself).

use chrono::{DateTime, Utc};
use coffer_store::{StoreError, Txn};
use serde::{Deserialize, Serialize};

use crate::model::arn;
use crate::model::error::Result;
use crate::model::vault_subresource::VaultSubResource;
use serde_json::{Map, Value};

/// The access policy of each vault (table `vault_policy`, keyed like the vault).
pub(crate) static POLICY: VaultSubResource = VaultSubResource {
    table: "vault_policy",
    what: "access policy",
};

/// The action a copy job needs on the destination vault.
pub(crate) const COPY_INTO_ACTION: &str = "backup:CopyIntoBackupVault";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PolicyRecord {
    /// The document as the caller sent it.
    pub(crate) policy: String,
    pub(crate) updated: DateTime<Utc>,
}

/// The policy of the vault stored under `vault_key` (see [`vaults::key`]), if it has one.
pub(crate) fn get(tx: &mut dyn Txn, vault_key: &str) -> Result<Option<String>, StoreError> {
    Ok(POLICY.get::<PolicyRecord>(tx, vault_key)?.map(|r| r.policy))
}

/// Removes the policy of a vault (when the vault is deleted).
pub(crate) fn remove(tx: &mut dyn Txn, vault_key: &str) -> Result<(), StoreError> {
    POLICY.remove(tx, vault_key)
}

/// Whether `policy` lets account `account` copy recovery points into the vault `vault_arn`:
/// some Allow statement applies and no Deny statement does (see [`applies`]). Coffer cannot
/// evaluate conditions (it has no organizations or request context keys), so it errs on the
/// safe side: an Allow with a Condition grants nothing, a Deny with a Condition applies. A
/// document that does not parse allows nothing.
pub(crate) fn copy_allowed(policy: &str, vault_arn: &str, account: &str) -> bool {
    allowed(policy, COPY_INTO_ACTION, &[vault_arn], account)
}

/// Whether `policy` grants account `account` the `action` on one of `resources`: some Allow
/// statement without a Condition applies and no Deny statement does (see [`applies`]). What
/// [`copy_allowed`] asks, and what sharing an air-gapped vault with another account asks
/// (listing its recovery points, restoring them; see `model::restore_access`).
pub(crate) fn allowed(policy: &str, action: &str, resources: &[&str], account: &str) -> bool {
    let Some(top) = parsed(policy) else {
        return false;
    };
    let Ok(statements) = statements(&top) else {
        return false;
    };
    let mut allowed = false;
    for st in statements {
        match effect(st) {
            Some(true) if applies(st, action, resources, account) => return false,
            Some(false)
                if !st.contains_key("Condition") && applies(st, action, resources, account) =>
            {
                allowed = true
            }
            _ => {}
        }
    }
    allowed
}

/// The accounts an Allow statement of `policy` names by id or IAM ARN (never `*`): the
/// candidates a vault can be shared with, each then checked with [`allowed`].
pub(crate) fn named_accounts(policy: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Some(top) = parsed(policy) else {
        return out;
    };
    let Ok(statements) = statements(&top) else {
        return out;
    };
    for st in statements
        .into_iter()
        .filter(|st| effect(st) == Some(false))
    {
        let names = match st.get("Principal").and_then(|p| p.get("AWS")) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for n in names {
            let account = if n.len() == 12 && n.bytes().all(|b| b.is_ascii_digit()) {
                Some(n)
            } else {
                arn::parse(n)
                    .filter(|a| a.service == "iam" && !a.account.is_empty())
                    .map(|a| a.account)
            };
            if let Some(a) = account
                && !out.iter().any(|o| o == a)
            {
                out.push(a.to_string());
            }
        }
    }
    out
}

/// The refusal of `action` on `resources` (the first is named) by an explicit Deny in the
/// vault's access policy, for a caller of `account`: AccessDeniedException, as AWS answers
/// when a resource-based policy denies a call. A Deny applies whatever its Condition says
/// (Coffer's callers are their account's root identity, which the usual exceptions for
/// chosen roles do not cover); a policy that does not parse denies nothing.
pub(crate) fn explicit_deny(
    policy: &str,
    action: &str,
    resources: &[&str],
    account: &str,
) -> Option<coffer_api::ApiError> {
    let top = parsed(policy)?;
    let statements = statements(&top).ok()?;
    let denied = statements
        .into_iter()
        .any(|st| effect(st) == Some(true) && applies(st, action, resources, account));
    denied.then(|| {
        coffer_api::ApiError::new(
            403,
            "AccessDeniedException",
            format!(
                "User: arn:aws:iam::{account}:root is not authorized to perform: {action} on resource: {} with an explicit deny in a resource-based policy (the backup vault's access policy).",
                resources.first().copied().unwrap_or("*")
            ),
        )
    })
}

/// Refuses `action` when the access policy of the vault stored under `vault_key` denies it
/// (see [`explicit_deny`]).
pub(crate) fn check_not_denied(
    tx: &mut dyn Txn,
    vault_key: &str,
    action: &str,
    resources: &[&str],
    account: &str,
) -> Result<()> {
    match get(tx, vault_key)? {
        Some(policy) => match explicit_deny(&policy, action, resources, account) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        },
        None => Ok(()),
    }
}

fn parsed(policy: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(policy) {
        Ok(Value::Object(top)) => Some(top),
        _ => None,
    }
}

/// `Some(true)` for a Deny statement, `Some(false)` for an Allow.
pub(crate) fn effect(st: &Map<String, Value>) -> Option<bool> {
    match st.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Some(false),
        Some("Deny") => Some(true),
        _ => None,
    }
}

/// Whether a statement covers `action` on any of `resources` for a caller of `account`: its
/// principal matches the account (`"*"`, `{"AWS": "*"}`, the account id, or any IAM ARN of
/// that account such as `arn:aws:iam::ACCOUNT:root` or a role; NotPrincipal inverts; a Deny
/// without a principal applies to everyone), its Action / NotAction matches `action` (IAM
/// wildcards, case-insensitive: `*`, `backup:*`, `backup:Delete*`), and its Resource /
/// NotResource matches one of `resources` (wildcards, case-sensitive).
pub(crate) fn applies(
    st: &Map<String, Value>,
    action: &str,
    resources: &[&str],
    account: &str,
) -> bool {
    let deny = effect(st) == Some(true);
    let principal = match (st.get("Principal"), st.get("NotPrincipal")) {
        (Some(p), _) => principal_matches(p, account),
        (None, Some(p)) => !principal_matches(p, account),
        (None, None) => deny,
    };
    let action = match (st.get("Action"), st.get("NotAction")) {
        (Some(a), _) => any_matches(a, action, false),
        (None, Some(a)) => !any_matches(a, action, false),
        (None, None) => false,
    };
    let resource = resources
        .iter()
        .any(|r| match (st.get("Resource"), st.get("NotResource")) {
            (Some(x), _) => any_matches(x, r, true),
            (None, Some(x)) => !any_matches(x, r, true),
            (None, None) => false,
        });
    principal && action && resource
}

pub(crate) fn principal_matches(p: &Value, account: &str) -> bool {
    let matches_one = |a: &str| {
        a == "*"
            || a == account
            || arn::parse(a).is_some_and(|x| x.service == "iam" && x.account == account)
    };
    match p {
        Value::String(s) => s == "*",
        Value::Object(m) => match m.get("AWS") {
            Some(Value::String(s)) => matches_one(s),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).any(matches_one),
            _ => false,
        },
        _ => false,
    }
}

pub(crate) fn any_matches(patterns: &Value, target: &str, case_sensitive: bool) -> bool {
    let one = |p: &str| {
        if case_sensitive {
            glob(p.as_bytes(), target.as_bytes())
        } else {
            glob(
                p.to_ascii_lowercase().as_bytes(),
                target.to_ascii_lowercase().as_bytes(),
            )
        }
    };
    match patterns {
        Value::String(s) => one(s),
        Value::Array(a) => a.iter().filter_map(Value::as_str).any(one),
        _ => false,
    }
}

/// IAM wildcard matching: `*` is any run of characters, `?` any one character.
pub(crate) fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The statements of a policy object (one object or a non-empty array of objects).
pub(crate) fn statements(top: &Map<String, Value>) -> Result<Vec<&Map<String, Value>>, String> {
    match top.get("Statement") {
        Some(Value::Object(s)) => Ok(vec![s]),
        Some(Value::Array(a)) if a.is_empty() => {
            Err("The policy's Statement list is empty; give at least one statement.".into())
        }
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_object()
                    .ok_or_else(|| format!("Statement[{i}] must be a JSON object."))
            })
            .collect(),
        Some(_) => Err("The policy's Statement must be an object or a list of objects.".into()),
        None => Err("The policy has no Statement.".into()),
    }
}

#[cfg(test)]
mod deny_tests {
    use super::*;

    const VAULT: &str = "arn:aws:backup:us-east-1:111122223333:backup-vault:v";
    const RP: &str = "arn:aws:backup:us-east-1:111122223333:recovery-point:abc";

    fn policy(statement: serde_json::Value) -> String {
        serde_json::json!({"Version": "2012-10-17", "Statement": [statement]}).to_string()
    }

    #[test]
    fn an_explicit_deny_refuses_only_what_it_names() {
        let p = policy(serde_json::json!({
            "Effect": "Deny", "Principal": "*",
            "Action": "backup:Delete*", "Resource": "*"
        }));
        let e = explicit_deny(
            &p,
            "backup:DeleteRecoveryPoint",
            &[RP, VAULT],
            "111122223333",
        )
        .unwrap();
        assert_eq!((e.status(), e.code()), (403, "AccessDeniedException"));
        assert!(e.message().contains(RP), "{}", e.message());
        assert!(
            explicit_deny(
                &p,
                "backup:UpdateRecoveryPointLifecycle",
                &[RP],
                "111122223333"
            )
            .is_none()
        );
        // Another account's principals, another vault's resource, an Allow: no refusal.
        let other = policy(serde_json::json!({
            "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
            "Action": "backup:*", "Resource": "*"
        }));
        assert!(
            explicit_deny(&other, "backup:DeleteRecoveryPoint", &[RP], "111122223333").is_none()
        );
        let elsewhere = policy(serde_json::json!({
            "Effect": "Deny", "Principal": "*", "Action": "*",
            "Resource": "arn:aws:backup:us-east-1:111122223333:backup-vault:other"
        }));
        assert!(
            explicit_deny(
                &elsewhere,
                "backup:DeleteBackupVault",
                &[VAULT],
                "111122223333"
            )
            .is_none()
        );
        let allow = policy(serde_json::json!({
            "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"
        }));
        assert!(
            explicit_deny(&allow, "backup:DeleteRecoveryPoint", &[RP], "111122223333").is_none()
        );
        // NotAction: everything but reading is denied.
        let not_action = policy(serde_json::json!({
            "Effect": "Deny", "Principal": "*", "NotAction": "backup:Describe*", "Resource": "*"
        }));
        assert!(
            explicit_deny(
                &not_action,
                "backup:DeleteBackupVault",
                &[VAULT],
                "111122223333"
            )
            .is_some()
        );
        assert!(
            explicit_deny(
                &not_action,
                "backup:DescribeBackupVault",
                &[VAULT],
                "111122223333"
            )
            .is_none()
        );
    }
}
