//! Account settings: the per-region service opt-in and management preferences
//! (Describe/UpdateRegionSettings) and the per-account global settings
//! (Describe/UpdateGlobalSettings).
//!
//! Both live in table `settings`: key `ACCOUNT:REGION:region` holds what UpdateRegionSettings
//! set in one region, key `ACCOUNT::global` what UpdateGlobalSettings set. Only explicit
//! choices are stored; a setting never chosen has its default (the tables below), so the
//! defaults can be read in one place and a describe always shows every setting. Updates merge
//! the given keys into what is stored. The selection resolver asks [`resource_type_opted_in`],
//! the copy jobs ask [`cross_account_backup_enabled`].

use std::collections::BTreeMap;

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};

use crate::model::Meta;
use crate::model::error::Result;
use crate::model::settings::*;

/// Checks that every key of `given` is one of `defaults`' keys.
fn check_keys<V>(member: &str, given: &BTreeMap<String, V>, defaults: &[(&str, V)]) -> Result<()> {
    for k in given.keys() {
        if !defaults.iter().any(|(d, _)| d == k) {
            let valid: Vec<String> = defaults.iter().map(|(d, _)| format!("'{d}'")).collect();
            return Err(ApiError::invalid_parameter(format!(
                "{member}: '{k}' is not a supported resource type; valid types are {}.",
                valid.join(", ")
            ))
            .into());
        }
    }
    Ok(())
}

pub(crate) async fn describe_region(
    meta: &Meta,
    ctx: &RequestContext,
    _input: DescribeRegionSettingsInput,
) -> Result<DescribeRegionSettingsOutput> {
    let k = region_key(&ctx.account_id, &ctx.region);
    let r: RegionRecord = meta.store().read(move |tx| load(tx, &k)).await?;
    Ok(DescribeRegionSettingsOutput {
        resource_type_management_preference: Some(with_defaults(
            MANAGEMENT_DEFAULTS,
            &r.management,
        )),
        resource_type_opt_in_incremental: if r.opt_in_incremental.is_empty() {
            None
        } else {
            Some(r.opt_in_incremental)
        },
        resource_type_opt_in_preference: Some(with_defaults(OPT_IN_DEFAULTS, &r.opt_in)),
    })
}

pub(crate) async fn update_region(
    meta: &Meta,
    ctx: &RequestContext,
    input: UpdateRegionSettingsInput,
) -> Result<()> {
    let opt_in = input.resource_type_opt_in_preference.unwrap_or_default();
    let management = input
        .resource_type_management_preference
        .unwrap_or_default();
    let incremental = input.resource_type_opt_in_incremental.unwrap_or_default();
    if opt_in.is_empty() && management.is_empty() && incremental.is_empty() {
        return Err(ApiError::missing_parameter(
            "Give at least one of ResourceTypeOptInPreference, ResourceTypeManagementPreference and ResourceTypeOptInIncremental.",
        )
        .into());
    }
    check_keys("ResourceTypeOptInPreference", &opt_in, OPT_IN_DEFAULTS)?;
    check_keys(
        "ResourceTypeManagementPreference",
        &management,
        MANAGEMENT_DEFAULTS,
    )?;
    check_keys(
        "ResourceTypeOptInIncremental",
        &incremental,
        OPT_IN_DEFAULTS,
    )?;
    let k = region_key(&ctx.account_id, &ctx.region);
    let now = meta.clock().now();
    meta.store()
        .write(move |tx| -> Result<()> {
            let mut r: RegionRecord = load(tx, &k)?;
            r.opt_in.extend(opt_in);
            r.management.extend(management);
            r.opt_in_incremental.extend(incremental);
            r.updated = Some(now);
            tx.put(TABLE, &k, &serde_json::to_vec(&r)?)?;
            Ok(())
        })
        .await
}

pub(crate) async fn describe_global(
    meta: &Meta,
    ctx: &RequestContext,
    _input: DescribeGlobalSettingsInput,
) -> Result<DescribeGlobalSettingsOutput> {
    let k = global_key(&ctx.account_id);
    let g: GlobalRecord = meta.store().read(move |tx| load(tx, &k)).await?;
    Ok(DescribeGlobalSettingsOutput {
        global_settings: Some(global_with_defaults(&g.settings)),
        last_update_time: g.updated.map(Timestamp),
    })
}

pub(crate) async fn update_global(
    meta: &Meta,
    ctx: &RequestContext,
    input: UpdateGlobalSettingsInput,
) -> Result<()> {
    let given = input.global_settings.unwrap_or_default();
    if given.is_empty() {
        return Err(ApiError::missing_parameter(
            "GlobalSettings is required: name at least one setting, e.g. {\"isCrossAccountBackupEnabled\": \"true\"}.",
        )
        .into());
    }
    for (k, v) in &given {
        if !GLOBAL_DEFAULTS.iter().any(|(d, _)| d == k) {
            let valid: Vec<String> = GLOBAL_DEFAULTS
                .iter()
                .map(|(d, _)| format!("'{d}'"))
                .collect();
            return Err(ApiError::invalid_parameter(format!(
                "GlobalSettings: '{k}' is not a global setting; valid settings are {}.",
                valid.join(", ")
            ))
            .into());
        }
        if v != "true" && v != "false" {
            return Err(ApiError::invalid_parameter(format!(
                "GlobalSettings: the value of '{k}' must be \"true\" or \"false\"; got '{v}'."
            ))
            .into());
        }
    }
    let k = global_key(&ctx.account_id);
    let now = meta.clock().now();
    meta.store()
        .write(move |tx| -> Result<()> {
            let mut g: GlobalRecord = load(tx, &k)?;
            g.settings.extend(given);
            g.updated = Some(now);
            tx.put(TABLE, &k, &serde_json::to_vec(&g)?)?;
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_was_never_set() {
        let mut set = BTreeMap::new();
        set.insert("S3".to_string(), true);
        let all = with_defaults(OPT_IN_DEFAULTS, &set);
        assert_eq!(all.len(), OPT_IN_DEFAULTS.len());
        assert!(all["S3"]);
        assert!(all["EBS"]);
        assert!(!all["Timestream"]);
    }

    #[test]
    fn unknown_resource_types_are_named_with_the_valid_ones() {
        let mut given = BTreeMap::new();
        given.insert("Floppy".to_string(), true);
        let e = check_keys("ResourceTypeOptInPreference", &given, OPT_IN_DEFAULTS).unwrap_err();
        let m = e.0.message().to_string();
        assert!(
            m.contains("'Floppy'") && m.contains("'Storage Gateway'"),
            "{m}"
        );
    }
}

#[cfg(test)]
mod lookup_tests {
    use super::*;
    use crate::Clock;
    use coffer_store::StoreError;
    use coffer_store::StoreHandle;

    #[tokio::test(flavor = "multi_thread")]
    async fn lookups_for_other_modules_see_defaults_and_updates() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
        let meta = crate::model::Meta::new(store, Clock::movable());
        let ctx = RequestContext::new("111122223333", "us-east-1");
        let read = |rt: &'static str, account: &'static str| {
            meta.store()
                .read(move |tx| -> Result<(bool, bool), StoreError> {
                    Ok((
                        resource_type_opted_in(tx, account, "us-east-1", rt)?,
                        cross_account_backup_enabled(tx, account)?,
                    ))
                })
        };
        assert_eq!(read("S3", "111122223333").await.unwrap(), (false, false));
        assert_eq!(read("EBS", "111122223333").await.unwrap(), (true, false));
        // A type AWS does not list (Coffer's own, such as SQLite) needs no opt-in.
        assert_eq!(read("SQLite", "111122223333").await.unwrap(), (true, false));
        update_region(
            &meta,
            &ctx,
            UpdateRegionSettingsInput {
                resource_type_opt_in_preference: Some(BTreeMap::from([("S3".into(), true)])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        update_global(
            &meta,
            &ctx,
            UpdateGlobalSettingsInput {
                global_settings: Some(BTreeMap::from([(
                    "isCrossAccountBackupEnabled".into(),
                    "true".into(),
                )])),
            },
        )
        .await
        .unwrap();
        assert_eq!(read("S3", "111122223333").await.unwrap(), (true, true));
        assert_eq!(read("S3", "444455556666").await.unwrap(), (false, false));
    }
}
