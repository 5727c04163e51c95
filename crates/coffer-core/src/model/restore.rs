//! What restore metadata asks for: the target directory, in-place or not, overwrite, and the
//! items to restore. StartRestoreJob checks it with [`plan`] before the job is queued (and
//! refuses a target it can already see is not empty, [`refuse_occupied_target`]), and the
//! data plane reads it again with the same function when the job runs.

use std::collections::BTreeMap;

use coffer_api::ApiError;

use crate::model::error::Result;
use crate::model::recovery_points::Continuous;
use chrono::{DateTime, SecondsFormat, Utc};
use std::path::PathBuf;

use coffer_engine::RestoreOptions;

pub(crate) struct RestorePlan {
    pub(crate) target: PathBuf,
    pub(crate) options: RestoreOptions,
    pub(crate) in_place: bool,
}

pub(crate) fn flag(metadata: &BTreeMap<String, String>, key: &str) -> Result<bool> {
    match metadata.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" || v.is_empty() => Ok(false),
        Some(v) => Err(ApiError::invalid_parameter(format!(
            "Restore metadata '{key}' must be \"true\" or \"false\", not \"{v}\"."
        ))
        .into()),
    }
}

pub(crate) fn plan(
    metadata: &BTreeMap<String, String>,
    source_path: Option<&str>,
) -> Result<RestorePlan> {
    let in_place = flag(metadata, "inPlace")?;
    let overwrite = flag(metadata, "overwrite")?;
    let target = match (
        in_place,
        metadata.get("targetPath").filter(|t| !t.is_empty()),
    ) {
        (true, Some(_)) => {
            return Err(ApiError::invalid_parameter(
                "Give either targetPath or inPlace=true in the restore metadata, not both.",
            )
            .into());
        }
        (true, None) => PathBuf::from(source_path.ok_or_else(|| {
            ApiError::invalid_parameter(
                "This recovery point does not record its source path; restore it to a targetPath.",
            )
        })?),
        (false, Some(t)) => PathBuf::from(t),
        (false, None) => {
            return Err(ApiError::invalid_parameter(
                "Restore metadata must name a targetPath (an absolute directory on the Coffer host), or set inPlace=true to restore over the resource itself.",
            )
            .into());
        }
    };
    if !target.is_absolute() {
        return Err(ApiError::invalid_parameter(format!(
            "targetPath '{}' must be an absolute path.",
            target.display()
        ))
        .into());
    }
    let mut paths = Vec::new();
    if let Some(items) = metadata
        .get("ItemsToRestore")
        .filter(|s| !s.trim().is_empty())
    {
        let list: Vec<String> = serde_json::from_str(items).map_err(|_| {
            ApiError::invalid_parameter(format!(
                "ItemsToRestore must be a JSON array of paths, e.g. [\"docs/a.txt\"]; got {items}"
            ))
        })?;
        for item in list {
            let rel = item.trim_start_matches('/');
            if rel.is_empty() || rel.split('/').any(|c| c == "..") {
                return Err(ApiError::invalid_parameter(format!(
                    "ItemsToRestore entry '{item}' must be a path inside the recovery point."
                ))
                .into());
            }
            paths.push(PathBuf::from(rel));
        }
    }
    Ok(RestorePlan {
        target,
        options: RestoreOptions {
            paths,
            overwrite: overwrite || in_place,
            ..Default::default()
        },
        in_place,
    })
}

// RDS (PostgreSQL)
/// The new database an RDS restore creates: `DBName`, or `DBInstanceIdentifier` when there is
/// no `DBName` (RDS's own restore keys). `Engine`, when given, must be `postgres`. The moment
/// to restore to is [`point_in_time`]'s.
pub(crate) fn database_name(metadata: &BTreeMap<String, String>) -> Result<String> {
    if let Some(engine) = metadata.get("Engine").filter(|e| !e.is_empty())
        && !engine.eq_ignore_ascii_case("postgres")
    {
        return Err(ApiError::invalid_parameter(format!(
            "Restore metadata Engine '{engine}' cannot be restored by Coffer: its RDS resources are PostgreSQL databases (Engine \"postgres\")."
        ))
        .into());
    }
    let name = ["DBName", "DBInstanceIdentifier"]
        .iter()
        .find_map(|k| metadata.get(*k).filter(|v| !v.is_empty()))
        .ok_or_else(|| {
            ApiError::invalid_parameter(
                "Restore metadata must name the new database to create: DBName (or DBInstanceIdentifier).",
            )
        })?;
    if !coffer_engine::sources::postgres::valid_database_name(name) {
        return Err(ApiError::invalid_parameter(format!(
            "DBName '{name}' cannot name a database: use a letter or _ then letters, digits, _ or -, at most 63 characters."
        ))
        .into());
    }
    Ok(name.clone())
}

/// The moment an RDS restore recovers to: `None` for a snapshot point (which takes neither
/// `RestoreTime` nor `UseLatestRestorableTime`); for a continuous point, `RestoreTime` (RFC
/// 3339) when it lies inside the point's restorable range, else its latest restorable time
/// (`UseLatestRestorableTime` `true`, or neither key given).
pub(crate) fn point_in_time(
    metadata: &BTreeMap<String, String>,
    continuous: Option<&Continuous>,
) -> Result<Option<DateTime<Utc>>> {
    let time = metadata.get("RestoreTime").filter(|v| !v.is_empty());
    let latest = match metadata.get("UseLatestRestorableTime").map(String::as_str) {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::invalid_parameter(format!(
                "Restore metadata UseLatestRestorableTime is '{v}'; use true or false."
            ))
            .into());
        }
    };
    let Some(c) = continuous else {
        if let Some(key) = [
            ("RestoreTime", time.is_some()),
            ("UseLatestRestorableTime", latest),
        ]
        .iter()
        .find_map(|(k, set)| set.then_some(*k))
        {
            return Err(ApiError::invalid_parameter(format!(
                "Restore metadata {key} asks for a point-in-time restore, which needs a continuous recovery point; this one is a snapshot. Remove {key}."
            ))
            .into());
        }
        return Ok(None);
    };
    let range = || {
        format!(
            "from {} to {}",
            c.earliest_restorable
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            c.latest_restorable
                .to_rfc3339_opts(SecondsFormat::Micros, true)
        )
    };
    let Some(time) = time else {
        return Ok(Some(c.latest_restorable));
    };
    if latest {
        return Err(ApiError::invalid_parameter(
            "Restore metadata gives both RestoreTime and UseLatestRestorableTime=true; give one of them.",
        )
        .into());
    }
    let at = DateTime::parse_from_rfc3339(time)
        .map_err(|_| {
            ApiError::invalid_parameter(format!(
                "Restore metadata RestoreTime '{time}' is not a timestamp; write it in RFC 3339, e.g. 2024-05-01T12:30:00Z."
            ))
        })?
        .with_timezone(&Utc);
    if at < c.earliest_restorable || at > c.latest_restorable {
        return Err(ApiError::invalid_parameter(format!(
            "Restore metadata RestoreTime {time} is outside the recovery point's restorable range ({}); choose a time inside it or set UseLatestRestorableTime=true.",
            range()
        ))
        .into());
    }
    Ok(Some(at))
}

/// Refuses, when the job is started, a new-location restore into a target that already holds
/// something (a non-empty directory, or a file where the directory should be), unless the
/// metadata says `overwrite`: the run would fail on it anyway, and the caller learns now, with
/// the way out named. A target that fills up between this check and the run is still refused
/// by the run. A target that cannot be read is left for the run to report.
pub(crate) fn refuse_occupied_target(plan: &RestorePlan) -> Result<()> {
    if plan.in_place || plan.options.overwrite {
        return Ok(());
    }
    let t = &plan.target;
    let occupied = match std::fs::symlink_metadata(t) {
        Err(_) => false,
        Ok(m) if m.is_dir() => std::fs::read_dir(t).is_ok_and(|mut d| d.next().is_some()),
        Ok(m) if m.file_type().is_symlink() => false,
        Ok(_) => {
            return Err(ApiError::invalid_parameter(format!(
                "targetPath '{}' is a file, not a directory; choose a directory that is empty or does not exist yet.",
                t.display()
            ))
            .into());
        }
    };
    if occupied {
        return Err(ApiError::invalid_parameter(format!(
            "The restore target '{}' is not empty. Choose an empty or new targetPath, or set overwrite=true in the restore metadata to restore over what is there (files that differ are replaced, others kept).",
            t.display()
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn code(r: Result<Option<DateTime<Utc>>>) -> String {
        match r {
            Err(e) => e.0.code().to_string(),
            Ok(v) => format!("ok {v:?}"),
        }
    }

    #[test]
    fn a_point_in_time_lies_inside_the_continuous_range() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let c = Continuous {
            slot: "coffer_x".into(),
            database: "shop".into(),
            wal: Vec::new(),
            earliest_restorable: at("2026-01-01T10:00:00Z"),
            latest_restorable: at("2026-01-01T12:00:00Z"),
        };
        let inside = meta(&[("RestoreTime", "2026-01-01T11:00:00.5Z")]);
        assert_eq!(
            point_in_time(&inside, Some(&c)).unwrap(),
            Some(at("2026-01-01T11:00:00.5Z"))
        );
        assert_eq!(
            point_in_time(&meta(&[]), Some(&c)).unwrap(),
            Some(c.latest_restorable)
        );
        let latest = meta(&[("UseLatestRestorableTime", "true")]);
        assert_eq!(
            point_in_time(&latest, Some(&c)).unwrap(),
            Some(c.latest_restorable)
        );
        for bad in [
            meta(&[("RestoreTime", "2026-01-01T09:59:59Z")]),
            meta(&[("RestoreTime", "2026-01-01T12:00:01Z")]),
            meta(&[("RestoreTime", "noon")]),
            meta(&[
                ("RestoreTime", "2026-01-01T11:00:00Z"),
                ("UseLatestRestorableTime", "true"),
            ]),
            meta(&[("UseLatestRestorableTime", "yes")]),
        ] {
            assert_eq!(
                code(point_in_time(&bad, Some(&c))),
                "InvalidParameterValueException",
                "{bad:?}"
            );
        }
        // A snapshot point takes neither key.
        assert_eq!(
            code(point_in_time(&inside, None)),
            "InvalidParameterValueException"
        );
        assert_eq!(
            code(point_in_time(&latest, None)),
            "InvalidParameterValueException"
        );
        assert_eq!(point_in_time(&meta(&[]), None).unwrap(), None);
    }
}
