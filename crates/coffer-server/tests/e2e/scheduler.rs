//! The scheduler end to end, on the development clock: a plan runs for 40 days on its own
//! (selections by ARN and tag, a resource added to the inventory mid-run, CreatedBy, lifecycle
//! to cold and deletion, copy actions into a second vault), and start and completion windows
//! end jobs as EXPIRED and ABORTED.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{
    BackupJob, BackupJobState, BackupRuleInput, BackupSelection, Condition, ConditionParameter,
    ConditionType, Conditions, CopyAction, CopyJob, Lifecycle, StorageClass,
};

use crate::harness::*;

const DAY: i64 = 86_400;
const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";
const X_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-x";
const Y_ARN: &str = "arn:aws:ec2:us-east-1:111122223333:volume/vol-y";
const W_ARN: &str = "arn:aws:ec2:us-east-1:111122223333:volume/vol-w";
const Z_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-z";
const BIG_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-big";

/// The dev-mode client: a numeric access key is the account.
fn client(server: &Server) -> Client {
    server.client_as(ACCOUNT, "anything", "us-east-1")
}

/// One `[[resources]]` entry: ARN, source, tags.
type Entry<'a> = (&'a str, &'a Path, &'a [(&'a str, &'a str)]);

/// Writes the configuration file with `resources`.
fn write_config(path: &Path, resources: &[Entry]) {
    let mut text = String::new();
    for (arn, source, tags) in resources {
        let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k} = \"{v}\"")).collect();
        text.push_str(&format!(
            "[[resources]]\narn = \"{arn}\"\nsource = \"{}\"\ntags = {{ {} }}\n\n",
            source.display(),
            tags.join(", ")
        ));
    }
    std::fs::write(path, text).unwrap();
}

fn small_tree(root: &Path, label: &str) {
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::write(root.join("a.txt"), format!("hello {label}\n")).unwrap();
    std::fs::write(root.join("d/b.txt"), format!("more of {label}\n")).unwrap();
}

async fn all_backup_jobs(c: &Client) -> Vec<BackupJob> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_backup_jobs()
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        out.extend(page.backup_jobs().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return out;
        }
    }
}

async fn all_copy_jobs(c: &Client) -> Vec<CopyJob> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_copy_jobs()
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        out.extend(page.copy_jobs().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return out;
        }
    }
}

/// Waits until no backup or copy job is waiting or running.
async fn settle(c: &Client) {
    for _ in 0..1200 {
        let backups_busy = all_backup_jobs(c).await.iter().any(|j| {
            matches!(
                j.state(),
                Some(BackupJobState::Created)
                    | Some(BackupJobState::Pending)
                    | Some(BackupJobState::Running)
                    | Some(BackupJobState::Aborting)
            )
        });
        let copies_busy = !backups_busy
            && all_copy_jobs(c).await.iter().any(|j| {
                matches!(
                    j.state().map(|s| s.as_str()),
                    Some("CREATED") | Some("RUNNING")
                )
            });
        if !backups_busy && !copies_busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("jobs did not settle within 60 s");
}

fn rule_name(j: &BackupJob) -> &str {
    j.created_by()
        .and_then(|c| c.backup_rule_name())
        .unwrap_or("")
}

/// Monday is 1, with 1970-01-01 (day 0) a Thursday.
fn is_monday(day: i64) -> bool {
    (day + 4).rem_euclid(7) == 1
}

#[tokio::test]
async fn a_plan_runs_for_forty_days_on_its_own() {
    let dir = temp_dir();
    let (x, y, w, z) = (
        dir.path().join("x"),
        dir.path().join("y.img"),
        dir.path().join("w.img"),
        dir.path().join("z"),
    );
    small_tree(&x, "x");
    small_tree(&z, "z");
    std::fs::write(&y, vec![7u8; 64 * 1024]).unwrap();
    std::fs::write(&w, vec![9u8; 64 * 1024]).unwrap();
    let cfg = dir.path().join("coffer.toml");
    let x_tags: &[(&str, &str)] = &[("backup", "daily"), ("team", "web")];
    let y_tags: &[(&str, &str)] = &[("backup", "daily")];
    let w_tags: &[(&str, &str)] = &[("backup", "never")];
    let z_tags: &[(&str, &str)] = &[("backup", "daily"), ("team", "ops")];
    write_config(
        &cfg,
        &[
            (X_ARN, &x, x_tags),
            (Y_ARN, &y, y_tags),
            (W_ARN, &w, w_tags),
        ],
    );
    // All forty days of jobs are counted at the end: keep them past the 30-day default.
    let server = Server::start(&[
        "--dev",
        "--history-retention-days",
        "60",
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await;
    let c = client(&server);

    // Start at a midnight (UTC): day i's runs are at T0 + i days + 05:00, and the clock moves
    // to 30 s after them, one day at a time.
    let t0 = (server.clock_secs().await / DAY + 1) * DAY;
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0)))
        .await;
    for v in ["main", "copies"] {
        c.create_backup_vault()
            .backup_vault_name(v)
            .send()
            .await
            .unwrap();
    }
    let copies_arn = "arn:aws:backup:us-east-1:111122223333:backup-vault:copies";
    let daily = BackupRuleInput::builder()
        .rule_name("daily")
        .target_backup_vault_name("main")
        .schedule_expression("cron(0 5 ? * * *)")
        .start_window_minutes(60)
        .completion_window_minutes(180)
        .lifecycle(Lifecycle::builder().delete_after_days(30).build())
        .recovery_point_tags("made-by", "scheduler")
        .build()
        .unwrap();
    let weekly = BackupRuleInput::builder()
        .rule_name("weekly")
        .target_backup_vault_name("main")
        .schedule_expression("cron(0 5 ? * MON *)")
        .lifecycle(
            Lifecycle::builder()
                .move_to_cold_storage_after_days(7)
                .delete_after_days(97)
                .build(),
        )
        .copy_actions(
            CopyAction::builder()
                .destination_backup_vault_arn(copies_arn)
                .lifecycle(Lifecycle::builder().delete_after_days(365).build())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let plan = c
        .create_backup_plan()
        .backup_plan(
            aws_sdk_backup::types::BackupPlanInput::builder()
                .backup_plan_name("forty-days")
                .rules(daily)
                .rules(weekly)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let plan_id = plan.backup_plan_id().unwrap().to_string();
    // X by ARN, and X, Y (and later Z) by tag: X is selected twice but backed up once per run.
    c.create_backup_selection()
        .backup_plan_id(&plan_id)
        .backup_selection(
            BackupSelection::builder()
                .selection_name("by-arn")
                .iam_role_arn(ROLE)
                .resources("arn:aws:elasticfilesystem:*:*:file-system/fs-x")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    c.create_backup_selection()
        .backup_plan_id(&plan_id)
        .backup_selection(
            BackupSelection::builder()
                .selection_name("by-tag")
                .iam_role_arn(ROLE)
                .list_of_tags(
                    Condition::builder()
                        .condition_type(ConditionType::Stringequals)
                        .condition_key("backup")
                        .condition_value("daily")
                        .build()
                        .unwrap(),
                )
                .conditions(
                    Conditions::builder()
                        .string_not_equals(
                            ConditionParameter::builder()
                                .condition_key("aws:ResourceTag/team")
                                .condition_value("db")
                                .build(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    for day in 0..40i64 {
        if day == 20 {
            // Z joins the inventory; the next run picks it up by its tag.
            write_config(
                &cfg,
                &[
                    (X_ARN, &x, x_tags),
                    (Y_ARN, &y, y_tags),
                    (W_ARN, &w, w_tags),
                    (Z_ARN, &z, z_tags),
                ],
            );
            server.hup();
            // Z is in the inventory once StartBackupJob stops saying it is not (an invalid
            // lifecycle makes sure no job is created).
            for _ in 0..100 {
                let e = c
                    .start_backup_job()
                    .backup_vault_name("main")
                    .resource_arn(Z_ARN)
                    .iam_role_arn(ROLE)
                    .lifecycle(Lifecycle::builder().delete_after_days(0).build())
                    .send()
                    .await
                    .unwrap_err();
                let e = format!("{:?}", e.as_service_error());
                if !e.contains("inventory") {
                    assert!(e.contains("DeleteAfterDays"), "{e}");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Just after the day's 05:00 runs, well inside their one-hour start window.
        server
            .move_clock(&format!(
                "{{\"set\": \"{}\"}}",
                rfc3339(t0 + day * DAY + 5 * 3600 + 30)
            ))
            .await;
        settle(&c).await;
    }
    let t_end = t0 + 39 * DAY + 5 * 3600 + 30;

    let jobs = all_backup_jobs(&c).await;
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for j in &jobs {
        assert_eq!(
            j.state(),
            Some(&BackupJobState::Completed),
            "{:?}",
            j.status_message()
        );
        *per.entry((
            rule_name(j).to_string(),
            j.resource_arn().unwrap().to_string(),
        ))
        .or_default() += 1;
    }
    let mondays = (0..40).filter(|d| is_monday(t0 / DAY + d)).count();
    let late_mondays = (20..40).filter(|d| is_monday(t0 / DAY + d)).count();
    let key = |r: &str, a: &str| (r.to_string(), a.to_string());
    let mut expected = BTreeMap::from([
        (key("daily", X_ARN), 40),
        (key("daily", Y_ARN), 40),
        (key("daily", Z_ARN), 20),
        (key("weekly", X_ARN), mondays),
        (key("weekly", Y_ARN), mondays),
        (key("weekly", Z_ARN), late_mondays),
    ]);
    expected.retain(|_, n| *n > 0);
    assert_eq!(per, expected);

    // CreatedBy says which plan, version and rule made each job; windows count from the
    // scheduled time.
    let current = c
        .get_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();
    let daily_rule_id = current.backup_plan().unwrap().rules()[0]
        .rule_id()
        .unwrap()
        .to_string();
    let j = jobs.iter().find(|j| rule_name(j) == "daily").unwrap();
    let cb = j.created_by().unwrap();
    assert_eq!(cb.backup_plan_id(), Some(plan_id.as_str()));
    assert_eq!(cb.backup_plan_arn(), plan.backup_plan_arn());
    assert_eq!(cb.backup_plan_name(), Some("forty-days"));
    assert_eq!(cb.backup_plan_version(), plan.version_id());
    assert_eq!(cb.backup_rule_id(), Some(daily_rule_id.as_str()));
    assert_eq!(cb.backup_rule_cron(), Some("cron(0 5 ? * * *)"));
    assert_eq!(cb.backup_rule_timezone(), Some("Etc/UTC"));
    let created = j.creation_date().unwrap().secs();
    assert_eq!(created % DAY, 5 * 3600, "created at the scheduled time");
    assert_eq!(j.start_by().unwrap().secs(), created + 3600);
    assert_eq!(
        j.expected_completion_date().unwrap().secs(),
        created + 3 * 3600
    );
    assert_eq!(
        current.last_execution_date().unwrap().secs(),
        jobs.iter()
            .map(|j| j.creation_date().unwrap().secs())
            .max()
            .unwrap()
    );

    // Lifecycle: daily points older than 30 days are gone; weekly ones older than 7 are cold.
    let points = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();
    let points = points.recovery_points();
    let mut daily_left: BTreeMap<&str, usize> = BTreeMap::new();
    let mut weekly_points = 0;
    for p in points {
        let rule = p.created_by().unwrap().backup_rule_name().unwrap();
        let created = p.creation_date().unwrap().secs();
        if rule == "daily" {
            assert!(
                created + 30 * DAY > t_end,
                "expired point {p:?} still there"
            );
            *daily_left.entry(p.resource_arn().unwrap()).or_default() += 1;
        } else {
            weekly_points += 1;
            let d = c
                .describe_recovery_point()
                .backup_vault_name("main")
                .recovery_point_arn(p.recovery_point_arn().unwrap())
                .send()
                .await
                .unwrap();
            let cold = created + 7 * DAY <= t_end;
            assert_eq!(
                d.storage_class(),
                Some(if cold {
                    &StorageClass::Cold
                } else {
                    &StorageClass::Warm
                }),
                "point created {created}, now {t_end}"
            );
        }
    }
    assert_eq!(
        daily_left,
        BTreeMap::from([(X_ARN, 30), (Y_ARN, 30), (Z_ARN, 20)])
    );
    assert_eq!(weekly_points, 2 * mondays + late_mondays);

    // Copy actions filled the second vault, one copy per weekly backup.
    let copies = all_copy_jobs(&c).await;
    assert_eq!(copies.len(), weekly_points);
    for cj in &copies {
        assert_eq!(cj.state().map(|s| s.as_str()), Some("COMPLETED"));
        let source = jobs
            .iter()
            .find(|j| j.backup_job_id() == cj.created_by_backup_job_id())
            .expect("CreatedByBackupJobId names the backup");
        assert_eq!(rule_name(source), "weekly");
        assert_eq!(
            cj.created_by().unwrap().backup_plan_id(),
            Some(plan_id.as_str())
        );
    }
    let copied = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("copies")
        .send()
        .await
        .unwrap();
    assert_eq!(copied.recovery_points().len(), weekly_points);
    for p in copied.recovery_points() {
        assert_eq!(p.lifecycle().and_then(|l| l.delete_after_days()), Some(365));
    }
}

#[tokio::test]
async fn start_and_completion_windows_end_scheduled_jobs() {
    let dir = temp_dir();
    let big = dir.path().join("big");
    small_tree(&big, "big");
    let small = dir.path().join("small");
    small_tree(&small, "small");
    let cfg = dir.path().join("coffer.toml");
    write_config(&cfg, &[(BIG_ARN, &big, &[]), (X_ARN, &small, &[])]);
    // Backups hold once running until they are cancelled (the data plane's test hook), so the
    // "slow" job is still running when its completion window ends, however fast the machine.
    let server = Server::start_with_env(
        &[
            "--dev",
            "--config",
            cfg.to_str().unwrap(),
            "--max-concurrent-jobs",
            "1",
        ],
        &[("COFFER_TEST_PAUSE_AT", "backup")],
    )
    .await;
    let c = client(&server);
    let t0 = (server.clock_secs().await / DAY + 1) * DAY;
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0)))
        .await;
    c.create_backup_vault()
        .backup_vault_name("vv")
        .send()
        .await
        .unwrap();
    // The big tree at 05:00 with a two-hour completion window; the small one at 06:00 with a
    // one-hour start window, while the only worker is busy with the big one.
    for (name, cron, arn, complete) in [
        ("slow", "cron(0 5 ? * * *)", BIG_ARN, 120),
        ("waits", "cron(0 6 ? * * *)", X_ARN, 10080),
    ] {
        let plan = c
            .create_backup_plan()
            .backup_plan(
                aws_sdk_backup::types::BackupPlanInput::builder()
                    .backup_plan_name(name)
                    .rules(
                        BackupRuleInput::builder()
                            .rule_name(name)
                            .target_backup_vault_name("vv")
                            .schedule_expression(cron)
                            .start_window_minutes(60)
                            .completion_window_minutes(complete)
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
                    .selection_name(name)
                    .iam_role_arn(ROLE)
                    .resources(arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    // (The answer's counts may be zero: the scheduler's own loop can fire first. Either way
    // the job exists and has been claimed before the answer.)
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + 5 * 3600 + 30)))
        .await;
    assert_eq!(all_backup_jobs(&c).await.len(), 1);
    let slow = all_backup_jobs(&c).await.pop().unwrap();
    let slow_id = slow.backup_job_id().unwrap().to_string();
    assert_eq!(slow.state(), Some(&BackupJobState::Running));

    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + 6 * 3600 + 30)))
        .await;
    let waits = all_backup_jobs(&c)
        .await
        .into_iter()
        .find(|j| j.resource_arn() == Some(X_ARN))
        .unwrap();
    assert_eq!(waits.state(), Some(&BackupJobState::Created));

    // 07:01: the start window of the waiting job (06:00 + 60 min) and the completion window
    // of the running one (05:00 + 120 min) have both ended.
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + 7 * 3600 + 60)))
        .await;
    let waits = c
        .describe_backup_job()
        .backup_job_id(waits.backup_job_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        waits.state(),
        Some(&BackupJobState::Expired),
        "the clock answer comes after the runner pass that expires it"
    );
    assert!(
        waits.status_message().unwrap().contains("start window"),
        "{:?}",
        waits.status_message()
    );
    let mut slow = None;
    for _ in 0..600 {
        let j = c
            .describe_backup_job()
            .backup_job_id(&slow_id)
            .send()
            .await
            .unwrap();
        if !matches!(
            j.state(),
            Some(BackupJobState::Running) | Some(BackupJobState::Aborting)
        ) {
            slow = Some(j);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let slow = slow.expect("the slow job ended");
    assert_eq!(
        slow.state(),
        Some(&BackupJobState::Aborted),
        "{:?}",
        slow.status_message()
    );
    assert!(
        slow.status_message().unwrap().contains("completion window"),
        "{:?}",
        slow.status_message()
    );
}
