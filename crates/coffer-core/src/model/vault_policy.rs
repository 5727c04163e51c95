//! A vault's access policy as stored (table `vault_policy`, keyed like the vault), and the one
//! question Coffer evaluates on it: whether another account may copy into the vault
//! ([`copy_allowed`]).

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
/// some Allow statement applies and no Deny statement does.
///
/// A statement applies when its principal matches the account (`"*"`, `{"AWS": "*"}`, the
/// account id, or any IAM ARN of that account such as `arn:aws:iam::ACCOUNT:root` or a role;
/// NotPrincipal inverts), its Action / NotAction matches `backup:CopyIntoBackupVault` (IAM
/// wildcards, case-insensitive: `*`, `backup:*`, `backup:Copy*`), and its Resource /
/// NotResource matches the vault's ARN (wildcards, case-sensitive). Coffer cannot evaluate
/// conditions (it has no organizations or request context keys), so it errs on the safe side:
/// an Allow with a Condition grants nothing, a Deny with a Condition applies, and a Deny
/// without a principal applies to everyone. A document that does not parse allows nothing.
#[allow(dead_code)] // used by the copy jobs (next issue)
pub(crate) fn copy_allowed(policy: &str, vault_arn: &str, account: &str) -> bool {
    let Ok(Value::Object(top)) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    let Ok(statements) = statements(&top) else {
        return false;
    };
    let mut allowed = false;
    for st in statements {
        let deny = match st.get("Effect").and_then(Value::as_str) {
            Some("Allow") => false,
            Some("Deny") => true,
            _ => continue,
        };
        let conditional = st.contains_key("Condition");
        let principal = match (st.get("Principal"), st.get("NotPrincipal")) {
            (Some(p), _) => principal_matches(p, account),
            (None, Some(p)) => !principal_matches(p, account),
            (None, None) => deny,
        };
        let action = match (st.get("Action"), st.get("NotAction")) {
            (Some(a), _) => any_matches(a, COPY_INTO_ACTION, false),
            (None, Some(a)) => !any_matches(a, COPY_INTO_ACTION, false),
            (None, None) => false,
        };
        let resource = match (st.get("Resource"), st.get("NotResource")) {
            (Some(r), _) => any_matches(r, vault_arn, true),
            (None, Some(r)) => !any_matches(r, vault_arn, true),
            (None, None) => false,
        };
        if !(principal && action && resource) {
            continue;
        }
        if deny {
            return false;
        }
        if !conditional {
            allowed = true;
        }
    }
    allowed
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
