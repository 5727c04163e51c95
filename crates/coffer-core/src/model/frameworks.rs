//! Audit frameworks: sets of controls, and how each control is evaluated against Coffer's
//! real state (its inventory, plans, selections, vaults and recovery points).
//!
//! A framework is a record in table `framework` (key `ACCOUNT:REGION:NAME`); CreateFramework's
//! IdempotencyToken maps to the framework it created in `framework_token`. The controls a
//! framework may hold are AWS Backup Audit Manager's, with their input parameters
//! ([`CONTROLS`]): an unknown control or parameter is refused with a message naming it.
//! Coffer evaluates every one of them against its real state. Evaluation is done when a
//! compliance report is built, from one read of the state, so a report says what was true
//! when it was made.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use coffer_api::ApiError;
use coffer_api::types::{ControlScope, FrameworkControl};
use coffer_store::Txn;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::inventory::{Inventory, Resource};
use crate::model::jobs::{JobKind, JobRecord, JobState};
use crate::model::paging::scan_all;
use crate::model::plans::{self, PlanRecord, PlanVersionRecord};
use crate::model::recovery_points::{self, RecoveryPointRecord};
use crate::model::vaults::{self, VaultRecord};
use crate::model::{selections, tags, vault_policy};

pub(crate) const TABLE: &str = "framework";
/// IdempotencyToken -> framework name: key `ACCOUNT:REGION:TOKEN`.
pub(crate) const TOKENS: &str = "framework_token";
/// AWS's quota of frameworks per account and region.
pub(crate) const MAX_FRAMEWORKS: usize = 10;

/// A framework as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FrameworkRecord {
    pub account: String,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub controls: Vec<FrameworkControl>,
    pub creation_time: DateTime<Utc>,
    pub idempotency_token: Option<String>,
}

pub(crate) fn key(account: &str, region: &str, name: &str) -> String {
    format!("{account}:{region}:{name}")
}

pub(crate) fn find(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    name: &str,
) -> Result<Option<FrameworkRecord>> {
    match tx.get(TABLE, &key(account, region, name))? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// How a parameter's value is checked.
#[derive(Clone, Copy)]
enum ParamKind {
    /// A whole number in the range.
    Int(i64, i64),
    /// One of these words (compared case-insensitively).
    OneOf(&'static [&'static str]),
    /// Free text (a list of ARNs).
    Text,
    /// A comma-separated list of 1 to this many region names.
    Regions(usize),
    /// A comma-separated list of 1 to this many 12-digit account ids.
    Accounts(usize),
}

/// The items of a comma-separated list parameter.
fn list_items(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A control of AWS Backup Audit Manager and its input parameters.
pub(crate) struct ControlSpec {
    pub name: &'static str,
    params: &'static [(&'static str, ParamKind)],
    /// Whether Coffer evaluates it.
    evaluated: bool,
}

const DAYS: ParamKind = ParamKind::Int(1, 36_500);

/// AWS Backup Audit Manager's controls with their parameters.
pub(crate) const CONTROLS: &[ControlSpec] = &[
    ControlSpec {
        name: "BACKUP_RESOURCES_PROTECTED_BY_BACKUP_PLAN",
        params: &[],
        evaluated: true,
    },
    ControlSpec {
        name: "BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK",
        params: &[
            (
                "requiredFrequencyUnit",
                ParamKind::OneOf(&["hours", "days", "weeks", "months"]),
            ),
            ("requiredFrequencyValue", ParamKind::Int(1, 744)),
            ("requiredRetentionDays", DAYS),
        ],
        evaluated: true,
    },
    ControlSpec {
        name: "BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK",
        params: &[("requiredRetentionDays", DAYS)],
        evaluated: true,
    },
    ControlSpec {
        name: "BACKUP_RECOVERY_POINT_ENCRYPTED",
        params: &[],
        evaluated: true,
    },
    ControlSpec {
        name: "BACKUP_LAST_RECOVERY_POINT_CREATED",
        params: &[
            ("recoveryPointAgeUnit", ParamKind::OneOf(&["hours", "days"])),
            ("recoveryPointAgeValue", ParamKind::Int(1, 744)),
        ],
        evaluated: true,
    },
    ControlSpec {
        name: "RESOURCES_IN_LOGICALLY_AIR_GAPPED_VAULT",
        params: &[
            ("recoveryPointAgeUnit", ParamKind::OneOf(&["hours", "days"])),
            ("recoveryPointAgeValue", ParamKind::Int(1, 2184)),
        ],
        evaluated: true,
    },
    ControlSpec {
        name: "BACKUP_RESOURCES_PROTECTED_BY_BACKUP_VAULT_LOCK",
        params: &[("minRetentionDays", DAYS), ("maxRetentionDays", DAYS)],
        evaluated: true,
    },
    ControlSpec {
        name: "BACKUP_RECOVERY_POINT_MANUAL_DELETION_DISABLED",
        params: &[("principalArnList", ParamKind::Text)],
        evaluated: true,
    },
    ControlSpec {
        name: "BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION",
        params: &[("crossRegionList", ParamKind::Regions(3))],
        evaluated: true,
    },
    ControlSpec {
        name: "BACKUP_RESOURCES_PROTECTED_BY_CROSS_ACCOUNT",
        params: &[("crossAccountList", ParamKind::Accounts(5))],
        evaluated: true,
    },
    ControlSpec {
        name: "RESTORE_TIME_FOR_RESOURCES_MEET_TARGET",
        params: &[("maxRestoreTime", ParamKind::Int(1, 43_200))],
        evaluated: true,
    },
];

fn spec(name: &str) -> Option<&'static ControlSpec> {
    CONTROLS.iter().find(|c| c.name == name)
}

fn check_value(control: &str, param: &str, kind: ParamKind, value: &str) -> Result<()> {
    let bad = |what: String| -> Result<()> {
        Err(ApiError::invalid_parameter(format!(
            "Control {control}: parameter {param} = '{value}' is not valid; {what}."
        ))
        .into())
    };
    match kind {
        ParamKind::Int(lo, hi) => match value.trim().parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(()),
            _ => bad(format!("it must be a whole number from {lo} to {hi}")),
        },
        ParamKind::OneOf(words) => {
            if words.iter().any(|w| w.eq_ignore_ascii_case(value.trim())) {
                Ok(())
            } else {
                bad(format!("it must be one of {}", words.join(", ")))
            }
        }
        ParamKind::Text if value.trim().is_empty() => bad("it must not be empty".into()),
        ParamKind::Text => Ok(()),
        ParamKind::Regions(max) => {
            let items = list_items(value);
            if (1..=max).contains(&items.len()) && items.iter().all(|r| is_region(r)) {
                Ok(())
            } else {
                bad(format!(
                    "it must list 1 to {max} region names, separated by commas"
                ))
            }
        }
        ParamKind::Accounts(max) => {
            let items = list_items(value);
            if (1..=max).contains(&items.len()) && items.iter().all(|a| is_account(a)) {
                Ok(())
            } else {
                bad(format!(
                    "it must list 1 to {max} 12-digit account ids, separated by commas"
                ))
            }
        }
    }
}

/// Checks a framework's controls: each a known control that Coffer evaluates, named once,
/// with known parameters of valid values, and a scope of at most 100 resource ids.
pub(crate) fn check_controls(controls: &[FrameworkControl]) -> Result<()> {
    if controls.is_empty() {
        return Err(ApiError::invalid_parameter(
            "FrameworkControls must name at least one control.",
        )
        .into());
    }
    let mut seen = BTreeSet::new();
    for c in controls {
        let name = c.control_name.as_str();
        let Some(s) = spec(name) else {
            let known: Vec<&str> = CONTROLS.iter().map(|c| c.name).collect();
            return Err(ApiError::invalid_parameter(format!(
                "Unknown control '{name}'; the controls are {}.",
                known.join(", ")
            ))
            .into());
        };
        if !s.evaluated {
            return Err(ApiError::invalid_parameter(format!(
                "Control {name} is not evaluated by Coffer yet; see docs/audit.md for the controls it evaluates."
            ))
            .into());
        }
        if !seen.insert(name) {
            return Err(ApiError::invalid_parameter(format!(
                "Control {name} is named twice in FrameworkControls."
            ))
            .into());
        }
        for p in c.control_input_parameters.iter().flatten() {
            let pname = p.parameter_name.as_deref().unwrap_or_default();
            let Some((_, kind)) = s.params.iter().find(|(n, _)| *n == pname) else {
                let known: Vec<&str> = s.params.iter().map(|(n, _)| *n).collect();
                return Err(ApiError::invalid_parameter(format!(
                    "Control {name} has no input parameter '{pname}'; its parameters are: {}.",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
                .into());
            };
            check_value(
                name,
                pname,
                *kind,
                p.parameter_value.as_deref().unwrap_or_default(),
            )?;
        }
    }
    Ok(())
}

/// Whether an evaluated thing complies with a control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compliance {
    Compliant,
    NonCompliant,
}

impl Compliance {
    pub fn as_str(self) -> &'static str {
        match self {
            Compliance::Compliant => "COMPLIANT",
            Compliance::NonCompliant => "NON_COMPLIANT",
        }
    }
    fn of(ok: bool) -> Self {
        if ok {
            Compliance::Compliant
        } else {
            Compliance::NonCompliant
        }
    }
}

/// One evaluated resource (or recovery point, or plan) of one control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Evaluation {
    pub resource_arn: String,
    pub resource_type: String,
    pub status: Compliance,
    /// Why, in a sentence.
    pub reason: String,
}

/// What the controls are evaluated against: one read of one account and region.
pub(crate) struct State {
    pub now: DateTime<Utc>,
    pub resources: Vec<Resource>,
    pub points: Vec<RecoveryPointRecord>,
    pub vaults: BTreeMap<String, VaultRecord>,
    pub plans: Vec<(PlanRecord, PlanVersionRecord, BTreeMap<String, String>)>,
    /// Resource ARN -> ids of the plans whose selections pick it now.
    pub protected_by: BTreeMap<String, Vec<String>>,
    /// Recovery points in the other regions and accounts the cross-region and cross-account
    /// controls name.
    pub elsewhere: Vec<RecoveryPointRecord>,
    /// The restore jobs of the account and region.
    pub restores: Vec<JobRecord>,
    /// Vault name -> its access policy document, for the vaults that have one.
    pub policies: BTreeMap<String, String>,
    /// The account the state is of (Coffer's callers are its root identity).
    pub account: String,
}

/// The store prefixes of the other regions and accounts `controls` name.
fn other_scopes(controls: &[FrameworkControl], account: &str, region: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in controls {
        if let Some(list) = param(c, "crossRegionList") {
            out.extend(
                list_items(list)
                    .into_iter()
                    .filter(|r| *r != region)
                    .map(|r| format!("{account}:{r}:")),
            );
        }
        if let Some(list) = param(c, "crossAccountList") {
            out.extend(
                list_items(list)
                    .into_iter()
                    .filter(|a| *a != account)
                    .map(|a| format!("{a}:")),
            );
        }
    }
    out
}

/// Reads the state of `account`/`region` that the controls look at.
pub(crate) fn read_state(
    tx: &mut dyn Txn,
    account: &str,
    region: &str,
    inventory: &Inventory,
    controls: &[FrameworkControl],
    now: DateTime<Utc>,
) -> Result<State> {
    let scope = format!("{account}:{region}:");
    let mut elsewhere = Vec::new();
    for prefix in other_scopes(controls, account, region) {
        for (_, v) in scan_all(tx, recovery_points::TABLE, &prefix)? {
            elsewhere.push(serde_json::from_slice::<RecoveryPointRecord>(&v)?);
        }
    }
    let mut restores = Vec::new();
    for (_, v) in scan_all(tx, JobKind::Restore.table(), &scope)? {
        restores.push(serde_json::from_slice::<JobRecord>(&v)?);
    }
    let mut points = Vec::new();
    for (_, v) in scan_all(tx, recovery_points::TABLE, &scope)? {
        points.push(serde_json::from_slice::<RecoveryPointRecord>(&v)?);
    }
    let mut vault_map = BTreeMap::new();
    let mut policies = BTreeMap::new();
    for (k, v) in scan_all(tx, vaults::TABLE, &scope)? {
        let vault: VaultRecord = serde_json::from_slice(&v)?;
        if let Some(policy) = vault_policy::get(tx, &k)? {
            policies.insert(vault.name.clone(), policy);
        }
        vault_map.insert(vault.name.clone(), vault);
    }
    let mut plan_list = Vec::new();
    let mut protected_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, v) in scan_all(tx, plans::TABLE, &plans::scope(account, region))? {
        let plan: PlanRecord = plans::decode(&v)?;
        if plan.deletion_date.is_some() {
            continue;
        }
        let version = plans::load_version(tx, &plan, plan.current_sequence)?;
        let sels = selections::of_plan(tx, account, region, &plan.id)?;
        for (r, _) in selections::resolve(tx, account, region, &sels, inventory)? {
            protected_by.entry(r.arn).or_default().push(plan.id.clone());
        }
        let plan_tags = tags::get(tx, &plan.arn)?;
        plan_list.push((plan, version, plan_tags));
    }
    Ok(State {
        now,
        resources: inventory.in_scope(account, region),
        points,
        vaults: vault_map,
        plans: plan_list,
        protected_by,
        elsewhere,
        restores,
        policies,
        account: account.to_string(),
    })
}

fn param<'a>(c: &'a FrameworkControl, name: &str) -> Option<&'a str> {
    c.control_input_parameters
        .iter()
        .flatten()
        .find(|p| p.parameter_name.as_deref() == Some(name))
        .and_then(|p| p.parameter_value.as_deref())
        .map(str::trim)
}

fn int_param(c: &FrameworkControl, name: &str, default: i64) -> i64 {
    param(c, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether a resource (type, ARN, tags) is in a control's scope: every criterion given must
/// match; resource ids match the whole ARN or its last part (`fs-docs`).
fn in_scope(
    scope: Option<&ControlScope>,
    rtype: &str,
    arn: &str,
    rtags: Option<&BTreeMap<String, String>>,
) -> bool {
    let Some(s) = scope else { return true };
    let types_ok = s
        .compliance_resource_types
        .as_ref()
        .is_none_or(|t| t.is_empty() || t.iter().any(|x| x.eq_ignore_ascii_case(rtype)));
    let short = arn.rsplit(['/', ':']).next().unwrap_or(arn);
    let ids_ok = s
        .compliance_resource_ids
        .as_ref()
        .is_none_or(|ids| ids.is_empty() || ids.iter().any(|i| i == arn || i == short));
    let tags_ok = s.tags.as_ref().is_none_or(|want| {
        want.iter()
            .all(|(k, v)| rtags.is_some_and(|t| t.get(k) == Some(v)))
    });
    types_ok && ids_ok && tags_ok
}

impl State {
    fn resource_tags(&self, arn: &str) -> Option<&BTreeMap<String, String>> {
        self.resources
            .iter()
            .find(|r| r.arn == arn)
            .map(|r| &r.tags)
    }

    fn scoped_resources<'a>(
        &'a self,
        c: &'a FrameworkControl,
    ) -> impl Iterator<Item = &'a Resource> {
        self.resources.iter().filter(move |r| {
            in_scope(
                c.control_scope.as_ref(),
                &r.resource_type,
                &r.arn,
                Some(&r.tags),
            )
        })
    }

    fn scoped_points<'a>(
        &'a self,
        c: &'a FrameworkControl,
    ) -> impl Iterator<Item = &'a RecoveryPointRecord> {
        self.points.iter().filter(move |p| {
            in_scope(
                c.control_scope.as_ref(),
                &p.resource_type,
                &p.resource_arn,
                self.resource_tags(&p.resource_arn),
            )
        })
    }

    /// The recovery points of one resource, newest first.
    fn points_of(&self, arn: &str) -> Vec<&RecoveryPointRecord> {
        let mut v: Vec<_> = self
            .points
            .iter()
            .filter(|p| p.resource_arn == arn)
            .collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.creation_date));
        v
    }
}

fn resource_eval(r: &Resource, ok: bool, reason: String) -> Evaluation {
    Evaluation {
        resource_arn: r.arn.clone(),
        resource_type: r.resource_type.clone(),
        status: Compliance::of(ok),
        reason,
    }
}

fn point_eval(p: &RecoveryPointRecord, ok: bool, reason: String) -> Evaluation {
    Evaluation {
        resource_arn: p.arn.clone(),
        resource_type: "RecoveryPoint".into(),
        status: Compliance::of(ok),
        reason,
    }
}

fn protected_by_plan(s: &State, c: &FrameworkControl) -> Vec<Evaluation> {
    s.scoped_resources(c)
        .map(|r| match s.protected_by.get(&r.arn) {
            Some(ids) => resource_eval(
                r,
                true,
                format!("selected by backup plan {}", ids.join(", ")),
            ),
            None => resource_eval(
                r,
                false,
                "no backup plan's selection picks this resource".into(),
            ),
        })
        .collect()
}

fn minimum_retention(s: &State, c: &FrameworkControl) -> Vec<Evaluation> {
    let required = int_param(c, "requiredRetentionDays", 35);
    s.scoped_points(c)
        .map(
            |p| match p.lifecycle.as_ref().and_then(|l| l.delete_after_days) {
                None => point_eval(p, true, "kept until deleted (no DeleteAfterDays)".into()),
                Some(d) => point_eval(
                    p,
                    d >= required,
                    format!("retained {d} days; {required} required"),
                ),
            },
        )
        .collect()
}

fn encrypted(s: &State, c: &FrameworkControl) -> Vec<Evaluation> {
    s.scoped_points(c)
        .map(|p| {
            let ok = !p.encryption_key_arn.is_empty();
            let why = if ok {
                format!("encrypted under {}", p.encryption_key_arn)
            } else {
                "no encryption key recorded".to_string()
            };
            point_eval(p, ok, why)
        })
        .collect()
}

/// The oldest a recovery point may be, from `recoveryPointAgeValue` (1) and
/// `recoveryPointAgeUnit` (`days`): the age, the value and the unit.
fn max_age(c: &FrameworkControl) -> (Duration, i64, String) {
    let value = int_param(c, "recoveryPointAgeValue", 1);
    let unit = param(c, "recoveryPointAgeUnit")
        .unwrap_or("days")
        .to_ascii_lowercase();
    let age = if unit == "hours" {
        Duration::hours(value)
    } else {
        Duration::days(value)
    };
    (age, value, unit)
}

/// Each resource in scope: compliant when one of its recovery points in a logically
/// air-gapped vault (a copy keeps its source's creation date) was created within the age.
fn in_air_gapped_vault(s: &State, c: &FrameworkControl) -> Vec<Evaluation> {
    let (age, value, unit) = max_age(c);
    let since = s.now - age;
    s.scoped_resources(c)
        .map(|r| {
            let newest = s
                .points_of(&r.arn)
                .into_iter()
                .filter(|p| s.vaults.get(&p.vault_name).is_some_and(|v| v.air_gapped))
                .max_by_key(|p| p.creation_date);
            match newest {
                Some(p) if p.creation_date >= since => resource_eval(
                    r,
                    true,
                    format!(
                        "recovery point {} in logically air-gapped vault {}, created {}",
                        p.id,
                        p.vault_name,
                        p.creation_date.to_rfc3339()
                    ),
                ),
                Some(p) => resource_eval(
                    r,
                    false,
                    format!(
                        "newest recovery point in a logically air-gapped vault created {}, more than {value} {unit} ago",
                        p.creation_date.to_rfc3339()
                    ),
                ),
                None => resource_eval(
                    r,
                    false,
                    "no recovery point in a logically air-gapped vault".into(),
                ),
            }
        })
        .collect()
}

fn last_recovery_point(s: &State, c: &FrameworkControl) -> Vec<Evaluation> {
    let (age, value, unit) = max_age(c);
    let since = s.now - age;
    s.scoped_resources(c)
        .map(|r| match s.points_of(&r.arn).first() {
            Some(p) if p.creation_date >= since => resource_eval(
                r,
                true,
                format!(
                    "last recovery point {} created {}",
                    p.id,
                    p.creation_date.to_rfc3339()
                ),
            ),
            Some(p) => resource_eval(
                r,
                false,
                format!(
                    "last recovery point created {}, more than {value} {unit} ago",
                    p.creation_date.to_rfc3339()
                ),
            ),
            None => resource_eval(r, false, "no recovery point".into()),
        })
        .collect()
}

fn vault_lock(s: &State, c: &FrameworkControl) -> Vec<Evaluation> {
    let min = param(c, "minRetentionDays").and_then(|v| v.parse::<i64>().ok());
    let max = param(c, "maxRetentionDays").and_then(|v| v.parse::<i64>().ok());
    let lock_ok = |v: &VaultRecord| {
        v.lock.as_ref().is_some_and(|l| {
            min.is_none_or(|m| l.min_retention_days.is_some_and(|x| x >= m))
                && max.is_none_or(|m| l.max_retention_days.is_some_and(|x| x <= m))
        })
    };
    s.scoped_resources(c)
        .map(|r| {
            let locked = s
                .points_of(&r.arn)
                .into_iter()
                .find(|p| s.vaults.get(&p.vault_name).is_some_and(lock_ok));
            match locked {
                Some(p) => resource_eval(
                    r,
                    true,
                    format!("recovery point {} in locked vault {}", p.id, p.vault_name),
                ),
                None => resource_eval(
                    r,
                    false,
                    "no recovery point in a vault whose lock meets the control".into(),
                ),
            }
        })
        .collect()
}

/// Per backup vault: compliant when its access policy explicitly denies
/// `backup:DeleteRecoveryPoint` to the account's callers, which Coffer then enforces on
/// DeleteRecoveryPoint (the same [`vault_policy::explicit_deny`] decides both). The control's
/// `principalArnList` (the roles still allowed) changes nothing: Coffer's callers are their
/// account's root identity, which such an exception never names.
fn manual_deletion_disabled(s: &State) -> Vec<Evaluation> {
    s.vaults
        .values()
        .map(|v| {
            let rp_pattern = format!(
                "{}:recovery-point:*",
                v.arn.split(":backup-vault:").next().unwrap_or_default()
            );
            let denied = s.policies.get(&v.name).is_some_and(|p| {
                vault_policy::explicit_deny(
                    p,
                    "backup:DeleteRecoveryPoint",
                    &[&rp_pattern, &v.arn],
                    &s.account,
                )
                .is_some()
            });
            let reason = match (denied, s.policies.contains_key(&v.name)) {
                (true, _) => "the vault's access policy denies backup:DeleteRecoveryPoint".into(),
                (false, true) => {
                    "the vault's access policy does not deny backup:DeleteRecoveryPoint".into()
                }
                (false, false) => {
                    "the vault has no access policy denying backup:DeleteRecoveryPoint".into()
                }
            };
            Evaluation {
                resource_arn: v.arn.clone(),
                resource_type: "BackupVault".into(),
                status: Compliance::of(denied),
                reason,
            }
        })
        .collect()
}

/// The longest a rule's schedule may leave between runs, from the control's parameters.
fn required_interval(c: &FrameworkControl) -> Duration {
    let value = int_param(c, "requiredFrequencyValue", 1);
    match param(c, "requiredFrequencyUnit")
        .unwrap_or("days")
        .to_ascii_lowercase()
        .as_str()
    {
        "hours" => Duration::hours(value),
        "weeks" => Duration::weeks(value),
        "months" => Duration::days(31 * value),
        _ => Duration::days(value),
    }
}

/// The longest gap between the next runs of a rule's schedule (over 60 runs), if it runs.
fn longest_gap(rule: &coffer_api::types::BackupRule, now: DateTime<Utc>) -> Option<Duration> {
    let expr = rule
        .schedule_expression
        .as_deref()
        .unwrap_or(coffer_cron::Schedule::DEFAULT_EXPRESSION);
    let tz = rule
        .schedule_expression_timezone
        .as_deref()
        .unwrap_or("Etc/UTC");
    let schedule = coffer_cron::Schedule::parse(expr, tz).ok()?;
    let runs = schedule.upcoming(now, 60);
    runs.windows(2).map(|w| w[1] - w[0]).max()
}

fn plan_frequency(s: &State, c: &FrameworkControl) -> Vec<Evaluation> {
    let interval = required_interval(c);
    let retention = int_param(c, "requiredRetentionDays", 35);
    let mut out = Vec::new();
    for (plan, version, plan_tags) in &s.plans {
        if !in_scope(
            c.control_scope.as_ref(),
            "BackupPlan",
            &plan.arn,
            Some(plan_tags),
        ) {
            continue;
        }
        let good = version.document.rules.iter().find(|rule| {
            let often = longest_gap(rule, s.now).is_some_and(|g| g <= interval);
            let kept = rule
                .lifecycle
                .as_ref()
                .and_then(|l| l.delete_after_days)
                .is_none_or(|d| d >= retention);
            often && kept
        });
        out.push(Evaluation {
            resource_arn: plan.arn.clone(),
            resource_type: "BackupPlan".into(),
            status: Compliance::of(good.is_some()),
            reason: match good {
                Some(rule) => format!("rule {} runs often enough and keeps its points long enough", rule.rule_name),
                None => format!(
                    "no rule runs at least every {} hours and keeps recovery points {retention} days",
                    interval.num_hours()
                ),
            },
        });
    }
    out
}

/// Resources with a recovery point in one of the listed other regions (`regions`) or
/// accounts (`accounts`): copies made there by copy jobs or copy actions.
fn protected_elsewhere(s: &State, c: &FrameworkControl, what: &str) -> Vec<Evaluation> {
    let listed: Vec<String> = param(c, what)
        .map(list_items)
        .unwrap_or_default()
        .into_iter()
        .map(String::from)
        .collect();
    let cross_region = what == "crossRegionList";
    let mut out = Vec::new();
    for r in s.scoped_resources(c) {
        let found = s.elsewhere.iter().find(|p| {
            p.resource_arn == r.arn
                && if cross_region {
                    p.account == r.account && p.region != r.region && listed.contains(&p.region)
                } else {
                    p.account != r.account && listed.contains(&p.account)
                }
        });
        out.push(match found {
            Some(p) => resource_eval(
                r,
                true,
                format!(
                    "recovery point {} in {} ({} {})",
                    p.id, p.vault_arn, p.account, p.region
                ),
            ),
            None => resource_eval(
                r,
                false,
                format!("no recovery point in any of {}", listed.join(", ")),
            ),
        });
    }
    out
}

/// Resources whose latest completed restore took at most `maxRestoreTime` minutes (from
/// the job's start, or its creation, to its completion); resources never restored are not
/// evaluated.
fn restore_time(s: &State, c: &FrameworkControl) -> Vec<Evaluation> {
    let max = Duration::minutes(int_param(c, "maxRestoreTime", 720));
    let mut out = Vec::new();
    for r in s.scoped_resources(c) {
        let latest = s
            .restores
            .iter()
            .filter(|j| j.resource_arn == r.arn && j.state == JobState::Completed)
            .filter_map(|j| {
                j.completion_date
                    .map(|done| (done, done - j.started_at.unwrap_or(j.creation_date), &j.id))
            })
            .max_by_key(|(done, _, _)| *done);
        if let Some((_, took, id)) = latest {
            let ok = took <= max;
            out.push(resource_eval(
                r,
                ok,
                format!(
                    "restore job {id} took {} s; target {} s",
                    took.num_seconds(),
                    max.num_seconds()
                ),
            ));
        }
    }
    out
}

/// Evaluates one control of a framework against `state`.
pub(crate) fn evaluate(state: &State, c: &FrameworkControl) -> Vec<Evaluation> {
    match c.control_name.as_str() {
        "BACKUP_RESOURCES_PROTECTED_BY_BACKUP_PLAN" => protected_by_plan(state, c),
        "BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK" => minimum_retention(state, c),
        "BACKUP_RECOVERY_POINT_ENCRYPTED" => encrypted(state, c),
        "BACKUP_LAST_RECOVERY_POINT_CREATED" => last_recovery_point(state, c),
        "BACKUP_RESOURCES_PROTECTED_BY_BACKUP_VAULT_LOCK" => vault_lock(state, c),
        "BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK" => plan_frequency(state, c),
        "BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION" => {
            protected_elsewhere(state, c, "crossRegionList")
        }
        "BACKUP_RESOURCES_PROTECTED_BY_CROSS_ACCOUNT" => {
            protected_elsewhere(state, c, "crossAccountList")
        }
        "RESTORE_TIME_FOR_RESOURCES_MEET_TARGET" => restore_time(state, c),
        "BACKUP_RECOVERY_POINT_MANUAL_DELETION_DISABLED" => manual_deletion_disabled(state),
        "RESOURCES_IN_LOGICALLY_AIR_GAPPED_VAULT" => in_air_gapped_vault(state, c),
        // Refused when the framework was created (check_controls).
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_api::types::ControlInputParameter;

    fn control(name: &str, params: &[(&str, &str)]) -> FrameworkControl {
        FrameworkControl {
            control_name: name.into(),
            control_input_parameters: Some(
                params
                    .iter()
                    .map(|(n, v)| ControlInputParameter {
                        parameter_name: Some(n.to_string()),
                        parameter_value: Some(v.to_string()),
                    })
                    .collect(),
            ),
            control_scope: None,
        }
    }

    #[test]
    fn unknown_controls_and_parameters_are_named() {
        let e = check_controls(&[control("NO_SUCH_CONTROL", &[])]).unwrap_err();
        assert!(
            e.0.message().contains("NO_SUCH_CONTROL"),
            "{}",
            e.0.message()
        );
        let e = check_controls(&[control(
            "BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK",
            &[("requiredDays", "7")],
        )])
        .unwrap_err();
        assert!(
            e.0.message().contains("'requiredDays'"),
            "{}",
            e.0.message()
        );
        let e = check_controls(&[control(
            "BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK",
            &[("requiredRetentionDays", "many")],
        )])
        .unwrap_err();
        assert!(
            e.0.message().contains("requiredRetentionDays"),
            "{}",
            e.0.message()
        );
        assert!(
            check_controls(&[control(
                "BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK",
                &[
                    ("requiredFrequencyUnit", "hours"),
                    ("requiredFrequencyValue", "24"),
                    ("requiredRetentionDays", "35")
                ],
            )])
            .is_ok()
        );
    }

    #[test]
    fn scope_matches_types_ids_and_tags() {
        let arn = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-docs";
        let tags: BTreeMap<String, String> = [("team".to_string(), "a".to_string())].into();
        let scope = ControlScope {
            compliance_resource_ids: Some(vec!["fs-docs".into()]),
            compliance_resource_types: Some(vec!["EFS".into()]),
            tags: Some(tags.clone()),
        };
        assert!(in_scope(Some(&scope), "EFS", arn, Some(&tags)));
        assert!(!in_scope(Some(&scope), "EBS", arn, Some(&tags)));
        assert!(!in_scope(Some(&scope), "EFS", arn, None));
    }
}
