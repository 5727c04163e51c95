//! RDS resources (PostgreSQL databases) in jobs: the connection a backup dumps through, built
//! from the inventory entry and the password in the environment at the moment the job runs,
//! and the restore of a dump into a new database on the resource's server (the database the
//! restore metadata names, see `model::restore::database_name`); a continuous recovery point
//! is restored to a moment of its range (`dataplane::pitr`).

use std::sync::Arc;

use coffer_engine::sources::postgres::{self as pg, PgConn, PostgresDump};
use coffer_engine::{Error as EngineError, SourceSpec};

use crate::dataplane::jobs::{JobControl, engine_stopped, finish};
use crate::dataplane::{Executor, tiers};
use crate::model::error::Result;
use crate::model::inventory::Resource;
use crate::model::jobs::JobRecord;
use crate::model::recovery_points::RecoveryPointRecord;
use crate::model::restore::{database_name, point_in_time};
use crate::model::states::JobState;
use crate::model::vaults::VaultRecord;

/// How to reach `resource`'s database now (see `DatabaseSource::connection`).
pub(crate) fn connection(resource: &Resource) -> coffer_engine::Result<PgConn> {
    resource
        .database
        .as_ref()
        .ok_or_else(|| EngineError::InvalidInput(format!("{} has no database url", resource.arn)))?
        .connection(&resource.arn)
}

/// The backup source of an RDS resource: its database dumped with `pg_dump`.
pub(crate) fn source(resource: &Resource) -> coffer_engine::Result<SourceSpec> {
    Ok(SourceSpec::Custom(Arc::new(PostgresDump::new(connection(
        resource,
    )?))))
}

/// `arn:aws:rds:REGION:ACCOUNT:db:NAME`, the ARN of a database a restore created.
fn database_arn(job: &JobRecord, name: &str) -> String {
    format!("arn:aws:rds:{}:{}:db:{name}", job.region, job.account)
}

/// Restores an RDS recovery point: creates the database the metadata names on the resource's
/// server (marked with the job's id, so a run after a crash replaces its own half-restored
/// database but never someone else's), streams the dump into it with `pg_restore`, and drops
/// it again when the restore fails. Returns the created database's ARN for the caller to
/// record the job COMPLETED with, or `None` when the job has already been ended here.
pub(crate) async fn restore(
    plane: &Executor,
    job: &JobRecord,
    rp: &RecoveryPointRecord,
    vault: &VaultRecord,
    control: &JobControl,
) -> Result<Option<String>> {
    let name = database_name(&job.metadata)?;
    let at = point_in_time(&job.metadata, rp.continuous.as_ref())?;
    let Some(resource) = plane.inventory().get(&rp.resource_arn) else {
        let message = format!(
            "Resource {} is no longer in Coffer's inventory; a restore creates its database on that resource's server, so declare it again.",
            rp.resource_arn
        );
        finish(
            plane,
            job,
            JobState::Failed,
            Some(message),
            "RESOURCE_NOT_FOUND",
        )
        .await;
        return Ok(None);
    };
    let server = match connection(&resource) {
        Ok(c) => c,
        Err(e) => {
            engine_stopped(plane, job, control, &e, JobState::Aborted).await;
            return Ok(None);
        }
    };
    let marker = format!("coffer-restore:{}", job.id);
    if let Err(e) = prepare(&server, &name, &marker, &resource.arn).await {
        engine_stopped(plane, job, control, &e, JobState::Aborted).await;
        return Ok(None);
    }
    let restored = match at {
        Some(at) => {
            let dest = server.with_database(&name);
            crate::dataplane::pitr::restore(plane, job, rp, vault, dest, at, control).await?
        }
        None => {
            let repo = tiers::repo_holding(plane, vault, rp).await?;
            pg::restore_database_async(
                repo,
                rp.snapshot.clone(),
                server.with_database(&name),
                control.observer(),
                control.cancel.clone(),
            )
            .await
            .map(|_| ())
        }
    };
    if let Err(e) = restored {
        let (s, n) = (server.clone(), name.clone());
        if let Err(drop_err) = pg::blocking(move || s.drop_database(&n)).await {
            tracing::warn!(job = %job.id, error = %drop_err, "cannot drop the database of a failed restore");
        }
        engine_stopped(plane, job, control, &e, JobState::Aborted).await;
        return Ok(None);
    }
    Ok(Some(database_arn(job, &name)))
}

/// Creates the restore's database; one this job created in an earlier run is dropped first.
async fn prepare(
    server: &PgConn,
    name: &str,
    marker: &str,
    arn: &str,
) -> coffer_engine::Result<()> {
    let (server, name, marker, arn) = (
        server.clone(),
        name.to_string(),
        marker.to_string(),
        arn.to_string(),
    );
    pg::blocking(move || {
        match server.database_comment(&name)? {
            None => {}
            Some(c) if c == marker => server.drop_database(&name)?,
            Some(_) => {
                return Err(EngineError::Database(format!(
                    "database {name} already exists on the server of {arn}; a restore creates a new database: choose another DBName"
                )));
            }
        }
        server.create_database(&name, &marker)
    })
    .await
}
