//! Tiering configurations: CreateTieringConfiguration, GetTieringConfiguration,
//! UpdateTieringConfiguration, ListTieringConfigurations and DeleteTieringConfiguration.
//!
//! Configurations are validated, stored with their tags and answered for; one configuration
//! applies to a vault (or to every vault, `*`). Coffer has no lower-cost tier, so recording a
//! configuration moves no data (docs/tiering.md).

use coffer_api::types::*;
use coffer_api::{ApiError, RequestContext, Timestamp};
use coffer_store::Txn;

use crate::model::error::{Error, Result};
use crate::model::tiering::*;
use crate::model::{Meta, paging, tags, vaults};

fn not_found(name: &str) -> Error {
    ApiError::not_found(format!(
        "Tiering configuration '{name}' does not exist in this account and region."
    ))
    .into()
}

/// Checks the vault a configuration names (an existing vault of the scope, or `*`) and that no
/// other configuration applies to it already.
fn check_vault(
    tx: &mut dyn Txn,
    ctx: &RequestContext,
    vault_name: &str,
    own_name: &str,
) -> Result<()> {
    if vault_name != ALL_VAULTS
        && tx
            .get(
                vaults::TABLE,
                &vaults::key(&ctx.account_id, &ctx.region, vault_name),
            )?
            .is_none()
    {
        return Err(ApiError::invalid_parameter(format!(
            "BackupVaultName '{vault_name}' is neither a backup vault of this account and region nor '*' (every vault)."
        ))
        .into());
    }
    if let Some(other) = for_vault(tx, &key(&ctx.account_id, &ctx.region, vault_name))?
        && other != own_name
    {
        let what = if vault_name == ALL_VAULTS {
            "to every vault ('*')".to_string()
        } else {
            format!("to backup vault '{vault_name}'")
        };
        return Err(ApiError::conflict(format!(
            "Tiering configuration '{other}' already applies {what}; update or delete it instead."
        ))
        .into());
    }
    Ok(())
}

fn check_input(name: &str, selections: &[ResourceSelection]) -> Result<()> {
    check_name(name).map_err(ApiError::invalid_parameter)?;
    check_selections(selections).map_err(ApiError::invalid_parameter)?;
    Ok(())
}

pub(crate) async fn create(
    meta: &Meta,
    ctx: &RequestContext,
    input: CreateTieringConfigurationInput,
) -> Result<CreateTieringConfigurationOutput> {
    let conf = input.tiering_configuration;
    check_input(&conf.tiering_configuration_name, &conf.resource_selection)?;
    let initial_tags = input.tiering_configuration_tags.unwrap_or_default();
    tags::check_initial(&initial_tags)?;
    let now = meta.clock().now();
    let record = TieringRecord {
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        arn: arn(
            &ctx.region,
            &ctx.account_id,
            &conf.tiering_configuration_name,
        ),
        name: conf.tiering_configuration_name,
        vault_name: conf.backup_vault_name,
        selections: conf.resource_selection,
        creator_request_id: input.creator_request_id,
        creation_time: now,
        last_updated_time: now,
    };
    let ctx = ctx.clone();
    let stored = meta
        .store()
        .write(move |tx| -> Result<TieringRecord> {
            if let Some(existing) = load(tx, &record.key())? {
                if existing.creator_request_id.is_some()
                    && existing.creator_request_id == record.creator_request_id
                {
                    return Ok(existing);
                }
                return Err(ApiError::already_exists(format!(
                    "Tiering configuration '{}' already exists.",
                    record.name
                ))
                .with_member("Arn", existing.arn.clone())
                .into());
            }
            check_vault(tx, &ctx, &record.vault_name, &record.name)?;
            save(tx, &record, None)?;
            tags::set(tx, &record.arn, &initial_tags)?;
            Ok(record)
        })
        .await?;
    Ok(CreateTieringConfigurationOutput {
        creation_time: Some(Timestamp(stored.creation_time)),
        tiering_configuration_arn: Some(stored.arn),
        tiering_configuration_name: Some(stored.name),
    })
}

pub(crate) async fn get(
    meta: &Meta,
    ctx: &RequestContext,
    input: GetTieringConfigurationInput,
) -> Result<GetTieringConfigurationOutput> {
    let name = input.tiering_configuration_name;
    let k = key(&ctx.account_id, &ctx.region, &name);
    let r = meta.store().read(move |tx| load(tx, &k)).await?;
    let r = r.ok_or_else(|| not_found(&name))?;
    Ok(GetTieringConfigurationOutput {
        tiering_configuration: Some(r.to_api()),
    })
}

pub(crate) async fn update(
    meta: &Meta,
    ctx: &RequestContext,
    input: UpdateTieringConfigurationInput,
) -> Result<UpdateTieringConfigurationOutput> {
    let name = input.tiering_configuration_name;
    let conf = input.tiering_configuration;
    check_input(&name, &conf.resource_selection)?;
    let k = key(&ctx.account_id, &ctx.region, &name);
    let now = meta.clock().now();
    let ctx = ctx.clone();
    let r = meta
        .store()
        .write(move |tx| -> Result<TieringRecord> {
            let mut r = load(tx, &k)?.ok_or_else(|| not_found(&name))?;
            check_vault(tx, &ctx, &conf.backup_vault_name, &name)?;
            let old_vault_key = r.vault_key();
            r.vault_name = conf.backup_vault_name;
            r.selections = conf.resource_selection;
            r.last_updated_time = now;
            save(tx, &r, Some(&old_vault_key))?;
            Ok(r)
        })
        .await?;
    Ok(UpdateTieringConfigurationOutput {
        creation_time: Some(Timestamp(r.creation_time)),
        last_updated_time: Some(Timestamp(r.last_updated_time)),
        tiering_configuration_arn: Some(r.arn),
        tiering_configuration_name: Some(r.name),
    })
}

pub(crate) async fn list(
    meta: &Meta,
    ctx: &RequestContext,
    input: ListTieringConfigurationsInput,
) -> Result<ListTieringConfigurationsOutput> {
    let prefix = scope(&ctx.account_id, &ctx.region);
    let (next_token, max) = (input.next_token, input.max_results);
    let (list, next_token) = meta
        .store()
        .read(move |tx| {
            paging::scan_page(tx, TABLE, &prefix, next_token.as_deref(), max, |_, v| {
                let r: TieringRecord = serde_json::from_slice(v)?;
                Ok(Some(r.list_member()))
            })
        })
        .await?;
    Ok(ListTieringConfigurationsOutput {
        next_token,
        tiering_configurations: Some(list),
    })
}

pub(crate) async fn delete(
    meta: &Meta,
    ctx: &RequestContext,
    input: DeleteTieringConfigurationInput,
) -> Result<()> {
    let name = input.tiering_configuration_name;
    let k = key(&ctx.account_id, &ctx.region, &name);
    meta.store()
        .write(move |tx| -> Result<()> {
            let r = load(tx, &k)?.ok_or_else(|| not_found(&name))?;
            remove(tx, &r)?;
            tags::remove_all(tx, &r.arn)?;
            Ok(())
        })
        .await
}
