//! Continuous backup of a PostgreSQL database (an RDS resource) with point-in-time restore,
//! end to end against the real PostgreSQL CI starts (`.ci/postgres`): a plan's continuous rule
//! makes one CONTINUOUS recovery point and its next job extends it, also when Coffer is killed
//! in the middle of that job (the WAL receiver resumes after the restart); a restore to a
//! moment between two commits gives exactly the rows committed by then, the latest restorable
//! time gives every row, and a moment outside the range is refused; disassociating the point
//! deletes it and drops its replication slot on the server. A job whose tools or
//! database cannot be reached fails saying what to fix. Without a PostgreSQL the tests say
//! they skipped (and fail under `CI=true`).

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{BackupJobState, BackupRuleInput, BackupSelection, RestoreJobStatus};

use crate::harness::*;
use crate::postgres_source::{admin_url, psql, split_password};

const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";
const PASSWORD_ENV: &str = "COFFER_E2E_PITR_PASSWORD";
const DAY: i64 = 86_400;

fn rds_arn(name: &str) -> String {
    format!("arn:aws:rds:us-east-1:{ACCOUNT}:db:{name}")
}

/// The database server's clock now, in RFC 3339 with microseconds (the clock commit
/// timestamps use).
fn server_now(url: &str) -> String {
    psql(
        url,
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
}

/// The ids in table `t` of `url`, in order.
fn ids(url: &str) -> Vec<i64> {
    psql(
        url,
        "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM t",
    )
    .split(',')
    .filter(|s| !s.is_empty())
    .map(|s| s.parse().unwrap())
    .collect()
}

fn insert(url: &str, from: i64, to: i64) {
    psql(
        url,
        &format!("INSERT INTO t SELECT g, 'row ' || g FROM generate_series({from}, {to}) g"),
    );
}

fn config(dir: &Path, arn: &str, url: &str) -> String {
    let cfg = dir.join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[resources]]\narn = \"{arn}\"\nurl = \"{url}\"\npassword_env = \"{PASSWORD_ENV}\"\n"
        ),
    )
    .unwrap();
    cfg.display().to_string()
}

/// A plan whose continuous rule (hourly) backs up `arn` into vault `main`.
async fn continuous_plan(c: &Client, arn: &str) {
    c.create_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();
    let plan = c
        .create_backup_plan()
        .backup_plan(
            aws_sdk_backup::types::BackupPlanInput::builder()
                .backup_plan_name("pitr")
                .rules(
                    BackupRuleInput::builder()
                        .rule_name("continuous")
                        .target_backup_vault_name("main")
                        .schedule_expression("cron(0 * ? * * *)")
                        .start_window_minutes(60)
                        .enable_continuous_backup(true)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    c.create_backup_selection()
        .backup_plan_id(plan.backup_plan_id().unwrap())
        .backup_selection(
            BackupSelection::builder()
                .selection_name("db")
                .iam_role_arn(ROLE)
                .resources(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// Moves the development clock to `at` and waits for the backup jobs it fires to end.
async fn fire(
    server: &Server,
    c: &Client,
    at: i64,
    jobs: usize,
) -> Vec<aws_sdk_backup::types::BackupJob> {
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(at)))
        .await;
    wait_until("the continuous rule's jobs", 180, || async {
        let all = c
            .list_backup_jobs()
            .send()
            .await
            .unwrap()
            .backup_jobs()
            .to_vec();
        let ended = all.len() == jobs
            && all.iter().all(|j| {
                matches!(
                    j.state(),
                    Some(
                        BackupJobState::Completed
                            | BackupJobState::Failed
                            | BackupJobState::Aborted
                    )
                )
            });
        ended.then_some(all)
    })
    .await
}

async fn restore(c: &Client, rp: &str, name: &str, meta: &[(&str, &str)]) -> RestoreJobStatus {
    let mut req = c
        .start_restore_job()
        .recovery_point_arn(rp)
        .iam_role_arn(ROLE)
        .metadata("DBName", name);
    for (k, v) in meta {
        req = req.metadata(*k, *v);
    }
    let id = req
        .send()
        .await
        .unwrap()
        .restore_job_id()
        .unwrap()
        .to_string();
    let j = wait_restore(c, &id).await;
    assert_eq!(
        j.status(),
        Some(&RestoreJobStatus::Completed),
        "restore {meta:?}: {:?}",
        j.status_message()
    );
    j.status().cloned().unwrap()
}

async fn restore_metadata(c: &Client, rp: &str) -> BTreeMap<String, String> {
    c.get_recovery_point_restore_metadata()
        .backup_vault_name("main")
        .recovery_point_arn(rp)
        .send()
        .await
        .unwrap()
        .restore_metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn drop_databases(admin: &str, names: &[String]) {
    for n in names {
        psql(
            admin,
            &format!("DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)"),
        );
    }
}

#[tokio::test]
async fn a_continuous_backup_restores_the_rows_committed_by_any_moment_of_its_range() {
    let Some(admin) =
        admin_url("a_continuous_backup_restores_the_rows_committed_by_any_moment_of_its_range")
    else {
        return;
    };
    let db = format!("pitr_{}", std::process::id());
    let restored = [format!("{db}_at"), format!("{db}_latest")];
    drop_databases(&admin, &restored);
    psql(
        &admin,
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    let url = postgres_database(&admin, &db);
    psql(
        &url,
        "CREATE TABLE t (id bigint PRIMARY KEY, note text NOT NULL)",
    );
    insert(&url, 1, 3);
    let dir = temp_dir();
    let data = dir.path().join("data");
    let arn = rds_arn("shop");
    let (bare, password) = split_password(&url);
    let cfg = config(dir.path(), &arn, &bare);
    let log = dir.path().join("coffer.log");
    let args = [
        "--dev",
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        &cfg,
    ];
    let server = Server::start_full(
        &args,
        &[
            (PASSWORD_ENV, &password),
            ("COFFER_TEST_PAUSE_AT", "continuous-sync"),
        ],
        Some(&log),
    )
    .await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    let t0 = (server.clock_secs().await / DAY + 1) * DAY;
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0)))
        .await;
    let slots_before = slots(&admin);
    continuous_plan(&c, &arn).await;

    // The first job: the base backup and the WAL since, one CONTINUOUS recovery point.
    let jobs = fire(&server, &c, t0 + 3600 + 60, 1).await;
    assert_eq!(
        jobs[0].state(),
        Some(&BackupJobState::Completed),
        "{jobs:?}"
    );
    let points = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap()
        .recovery_points()
        .to_vec();
    assert_eq!(points.len(), 1, "{points:?}");
    let rp = points[0].recovery_point_arn().unwrap().to_string();
    assert!(
        rp.starts_with(&format!(
            "arn:aws:backup:us-east-1:{ACCOUNT}:recovery-point:continuous:db-shop-"
        )),
        "{rp}"
    );
    assert_eq!(jobs[0].recovery_point_arn(), Some(rp.as_str()));
    let first = restore_metadata(&c, &rp).await;
    let earliest = first["EarliestRestorableTime"].clone();
    assert_eq!(first["LatestRestorableTime"], earliest, "{first:?}");

    // Rows committed after the base backup, a moment between two commits, more rows.
    insert(&url, 4, 6);
    let between = server_now(&url);
    insert(&url, 7, 9);

    // The second job receives the WAL, then Coffer is killed before it is in the vault.
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + 2 * 3600 + 60)))
        .await;
    wait_for_log_within(&log, "job paused by", 120).await;
    server.kill().await;
    insert(&url, 10, 12); // committed while Coffer is down: the slot keeps the WAL

    let server = Server::start_with_env(&args, &[(PASSWORD_ENV, &password)]).await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    let second = wait_until("the interrupted sync to complete", 180, || async {
        let all = c
            .list_backup_jobs()
            .send()
            .await
            .unwrap()
            .backup_jobs()
            .to_vec();
        let done = all.len() == 2
            && all
                .iter()
                .all(|j| j.state() == Some(&BackupJobState::Completed));
        done.then_some(all)
    })
    .await;
    assert!(
        second
            .iter()
            .all(|j| j.recovery_point_arn() == Some(rp.as_str())),
        "{second:?}"
    );
    let points = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap()
        .recovery_points()
        .to_vec();
    assert_eq!(points.len(), 1, "the sync extends the point: {points:?}");
    let meta = restore_metadata(&c, &rp).await;
    assert_eq!(meta["EarliestRestorableTime"], earliest);
    let latest = meta["LatestRestorableTime"].clone();
    assert!(latest > between && between > earliest, "{meta:?} {between}");
    assert_eq!(meta["UseLatestRestorableTime"], "true");

    // A moment between two commits: exactly the rows committed by then.
    restore(&c, &rp, &restored[0], &[("RestoreTime", &between)]).await;
    let at_url = postgres_database(&admin, &restored[0]);
    assert_eq!(ids(&at_url), (1..=6).collect::<Vec<_>>());
    // The latest restorable time: every row, those committed while Coffer was down too.
    restore(
        &c,
        &rp,
        &restored[1],
        &[("UseLatestRestorableTime", "true")],
    )
    .await;
    let latest_url = postgres_database(&admin, &restored[1]);
    assert_eq!(ids(&latest_url), (1..=12).collect::<Vec<_>>());

    // Moments outside the range, and both keys at once, are refused.
    for (key, value) in [
        ("RestoreTime", "2001-01-01T00:00:00Z".to_string()),
        ("RestoreTime", "2999-01-01T00:00:00Z".to_string()),
        ("RestoreTime", "yesterday".to_string()),
    ] {
        let err = c
            .start_restore_job()
            .recovery_point_arn(&rp)
            .iam_role_arn(ROLE)
            .metadata("DBName", format!("{db}_never"))
            .metadata(key, &value)
            .send()
            .await
            .expect_err("a moment outside the range");
        let svc = err.into_service_error();
        assert_eq!(
            svc.meta().code(),
            Some("InvalidParameterValueException"),
            "{svc:?}"
        );
        assert!(
            svc.meta().message().unwrap_or("").contains("RestoreTime"),
            "{svc:?}"
        );
    }

    // A continuous point is not copied (yet): the refusal says what to do instead.
    let err = c
        .start_copy_job()
        .source_backup_vault_name("main")
        .recovery_point_arn(&rp)
        .destination_backup_vault_arn(format!(
            "arn:aws:backup:us-east-1:{ACCOUNT}:backup-vault:main"
        ))
        .iam_role_arn(ROLE)
        .send()
        .await
        .expect_err("a continuous point is not copied");
    let svc = err.into_service_error();
    assert!(svc.is_invalid_request_exception(), "{svc:?}");
    assert!(
        svc.meta()
            .message()
            .unwrap_or("")
            .contains("Restore it to a point in time"),
        "{svc:?}"
    );

    // Disassociating the point deletes it and its data, and drops its replication slot on
    // the server: nothing keeps WAL for Coffer any more.
    let ours = {
        let made: Vec<String> = slots(&admin)
            .into_iter()
            .filter(|s| !slots_before.contains(s))
            .collect();
        assert_eq!(
            made.len(),
            1,
            "one slot made by the continuous backup: {made:?}"
        );
        made[0].clone()
    };
    c.disassociate_recovery_point()
        .backup_vault_name("main")
        .recovery_point_arn(&rp)
        .send()
        .await
        .expect("a continuous point can be disassociated");
    let err = c
        .describe_recovery_point()
        .backup_vault_name("main")
        .recovery_point_arn(&rp)
        .send()
        .await
        .expect_err("the disassociated point is gone");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    wait_until("the replication slot to be dropped", 120, || async {
        (!slots(&admin).contains(&ours)).then_some(())
    })
    .await;
    drop(server);
    drop_databases(&admin, &restored);
    psql(
        &admin,
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}

/// The names of Coffer's replication slots on the server.
fn slots(admin: &str) -> Vec<String> {
    psql(
        admin,
        "SELECT coalesce(string_agg(slot_name, ','), '') FROM pg_replication_slots \
         WHERE slot_name LIKE 'coffer\\_%'",
    )
    .split(',')
    .filter(|s| !s.is_empty())
    .map(str::to_string)
    .collect()
}

/// Like `wait_for_log`, with a longer wait (the first steps of a sync take a while).
async fn wait_for_log_within(log: &Path, want: &str, secs: u64) {
    wait_until(&format!("the log saying {want:?}"), secs, || async {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(want)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_continuous_backup_without_its_tools_or_its_database_fails_saying_what_to_fix() {
    let Some(admin) =
        admin_url("a_continuous_backup_without_its_tools_or_its_database_fails_saying_what_to_fix")
    else {
        return;
    };
    let db = format!("pitr_{}_tools", std::process::id());
    let url = postgres_database(&admin, &db);
    let (bare, password) = split_password(&url);
    let cases = [
        // No PostgreSQL tools where Coffer is told to look.
        (bare.clone(), true, "pg_receivewal was not found"),
        // A server that does not answer.
        (
            "postgres://coffer@127.0.0.1:1/nothing".to_string(),
            false,
            "127.0.0.1",
        ),
    ];
    for (target, no_tools, want) in cases {
        let dir = temp_dir();
        let empty = dir.path().join("no-tools");
        std::fs::create_dir_all(&empty).unwrap();
        let arn = rds_arn("shop");
        let cfg = config(dir.path(), &arn, &target);
        let mut env = vec![(PASSWORD_ENV, password.as_str())];
        let empty_s = empty.display().to_string();
        if no_tools {
            env.push(("COFFER_PG_BINDIR", empty_s.as_str()));
        }
        let server = Server::start_with_env(&["--dev", "--config", &cfg], &env).await;
        let c = server.client_as(ACCOUNT, "anything", "us-east-1");
        let t0 = (server.clock_secs().await / DAY + 1) * DAY;
        server
            .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0)))
            .await;
        continuous_plan(&c, &arn).await;
        let jobs = fire(&server, &c, t0 + 3600 + 60, 1).await;
        assert_eq!(jobs[0].state(), Some(&BackupJobState::Failed), "{jobs:?}");
        let message = jobs[0].status_message().unwrap_or("");
        assert!(message.contains(want), "{want}: {message}");
        assert!(!message.contains(&password), "{message}");
        let points = c
            .list_recovery_points_by_backup_vault()
            .backup_vault_name("main")
            .send()
            .await
            .unwrap();
        assert!(points.recovery_points().is_empty(), "{points:?}");
    }
    psql(
        &admin,
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}
