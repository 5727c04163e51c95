//! Time travel end to end: moving the development clock runs the skipped time as if Coffer
//! had been up. A daily rule with a one-hour start window completes every day whether the
//! clock moves a day at a time or eight days at once, each job at its own scheduled time, and
//! the lifecycle keeps the right recovery points; the README's walkthrough (AWS's default
//! start window, a day at a time from any time of day) completes every run; and the log
//! tells the story of the days that ran: each firing, job start and end, and deletion.

use std::path::Path;

use aws_sdk_backup::Client;
use aws_sdk_backup::primitives::{DateTime, DateTimeFormat};
use aws_sdk_backup::types::{
    BackupJob, BackupJobState, BackupPlanInput, BackupRuleInput, BackupSelection, Condition,
    ConditionType, Lifecycle,
};
use serde_json::Value;

use crate::harness::*;

const DAY: i64 = 86_400;
const ROLE: &str = "arn:aws:iam::111122223333:role/backup";
const DOCS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-docs";

/// A server in development mode with one tagged directory in its inventory.
async fn server_with_docs(dir: &Path) -> Server {
    server_with_docs_logging(dir, None).await
}

/// [`server_with_docs`], logging at the default level into `log` when given.
async fn server_with_docs_logging(dir: &Path, log: Option<&Path>) -> Server {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.txt"), b"hello\n").unwrap();
    let cfg = dir.join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[resources]]\narn = \"{DOCS_ARN}\"\nsource = \"{}\"\ntags = {{ backup = \"daily\" }}\n",
            docs.display()
        ),
    )
    .unwrap();
    Server::start_logging(&["--dev", "--config", cfg.to_str().unwrap()], log).await
}

/// Vault `main` and a plan backing up the tagged resources with `rule`.
async fn plan(c: &Client, rule: BackupRuleInput) {
    c.create_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();
    let plan = c
        .create_backup_plan()
        .backup_plan(
            BackupPlanInput::builder()
                .backup_plan_name("daily")
                .rules(rule)
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
                .selection_name("tagged")
                .iam_role_arn(ROLE)
                .list_of_tags(
                    Condition::builder()
                        .condition_type(ConditionType::Stringequals)
                        .condition_key("backup")
                        .condition_value("daily")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn backup_jobs(c: &Client) -> Vec<BackupJob> {
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
            out.sort_by_key(|j| j.creation_date().unwrap().secs());
            return out;
        }
    }
}

/// The recovery points' creation dates in vault `main`, oldest first.
async fn point_dates(c: &Client) -> Vec<i64> {
    let points = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();
    let mut dates: Vec<i64> = points
        .recovery_points()
        .iter()
        .map(|p| p.creation_date().unwrap().secs())
        .collect();
    dates.sort();
    dates
}

fn count(answer: &Value, kind: &str, state: &str) -> i64 {
    answer["jobs"][kind][state].as_i64().unwrap_or(0)
}

/// From midnight, a daily 05:00 rule with a 60-minute start window and DeleteAfterDays 3,
/// the clock moved by `jumps` days at a time to eight days later: eight COMPLETED jobs,
/// each created, started and completed at its day's 05:00, and the three newest points kept.
async fn eight_days(jumps: &[i64]) {
    assert_eq!(jumps.iter().sum::<i64>(), 8);
    let dir = temp_dir();
    let server = server_with_docs(dir.path()).await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    let t0 = (server.clock_secs().await / DAY + 1) * DAY;
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0)))
        .await;
    plan(
        &c,
        BackupRuleInput::builder()
            .rule_name("daily")
            .target_backup_vault_name("main")
            .schedule_expression("cron(0 5 ? * * *)")
            .start_window_minutes(60)
            .lifecycle(Lifecycle::builder().delete_after_days(3).build())
            .build()
            .unwrap(),
    )
    .await;

    let (mut days, mut firings, mut completed, mut deleted) = (0, 0, 0, 0);
    for jump in jumps {
        let answer = server.advance_clock(jump * DAY).await;
        days += jump;
        // The clock runs on from each target with wall time between two moves.
        let now = DateTime::from_str(answer["now"].as_str().unwrap(), DateTimeFormat::DateTime)
            .unwrap()
            .secs();
        assert!((0..60).contains(&(now - t0 - days * DAY)), "{answer}");
        assert_eq!(answer["firings"].as_i64(), Some(*jump), "{answer}");
        assert_eq!(count(&answer, "backup", "COMPLETED"), *jump, "{answer}");
        assert_eq!(answer["still_running"].as_i64(), Some(0), "{answer}");
        firings += answer["firings"].as_i64().unwrap();
        completed += count(&answer, "backup", "COMPLETED");
        deleted += answer["deleted"].as_i64().unwrap();
    }
    assert_eq!((firings, completed, deleted), (8, 8, 5));

    // The answer came once the jobs were done: nothing is left to wait for.
    let jobs = backup_jobs(&c).await;
    assert_eq!(jobs.len(), 8);
    for (day, j) in jobs.iter().enumerate() {
        let five = t0 + day as i64 * DAY + 5 * 3600;
        assert_eq!(
            j.state(),
            Some(&BackupJobState::Completed),
            "{:?}",
            j.status_message()
        );
        assert_eq!(j.creation_date().unwrap().secs(), five, "day {day}");
        assert_eq!(j.start_by().unwrap().secs(), five + 3600);
        assert_eq!(
            j.completion_date().unwrap().secs(),
            five,
            "jobs take no simulated time"
        );
        assert!(j.backup_size_in_bytes().unwrap() > 0);
    }
    // Points of days 0-4 reached DeleteAfterDays (05:00 three days later) before day 8 began.
    let kept: Vec<i64> = (5..8).map(|d| t0 + d * DAY + 5 * 3600).collect();
    assert_eq!(point_dates(&c).await, kept);
}

#[tokio::test]
async fn a_day_at_a_time_runs_every_daily_backup() {
    eight_days(&[1; 8]).await;
}

#[tokio::test]
async fn one_eight_day_jump_runs_every_daily_backup() {
    eight_days(&[8]).await;
}

/// The README's walkthrough: AWS's default start window (8 hours), the clock moved a day at a
/// time from whatever time of day it is, thirty times; every run completes and the lifecycle
/// keeps seven points.
#[tokio::test]
async fn the_readme_walkthrough_completes_every_day() {
    let dir = temp_dir();
    let server = server_with_docs(dir.path()).await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    plan(
        &c,
        BackupRuleInput::builder()
            .rule_name("daily")
            .target_backup_vault_name("main")
            .schedule_expression("cron(0 5 ? * * *)")
            .lifecycle(Lifecycle::builder().delete_after_days(7).build())
            .build()
            .unwrap(),
    )
    .await;
    for _ in 0..30 {
        let answer = server.move_clock("{\"advance_seconds\": 86400}").await;
        assert_eq!(answer["firings"].as_i64(), Some(1), "{answer}");
        assert_eq!(count(&answer, "backup", "COMPLETED"), 1, "{answer}");
    }
    let jobs = backup_jobs(&c).await;
    assert_eq!(jobs.len(), 30);
    for j in &jobs {
        assert_eq!(
            j.state(),
            Some(&BackupJobState::Completed),
            "{:?}",
            j.status_message()
        );
        assert_eq!(j.creation_date().unwrap().secs() % DAY, 5 * 3600);
        let created = j.creation_date().unwrap().secs();
        assert_eq!(
            j.start_by().unwrap().secs(),
            created + 480 * 60,
            "the default window"
        );
    }
    let newest = jobs.last().unwrap().creation_date().unwrap().secs();
    let kept: Vec<i64> = (0..7).rev().map(|d| newest - d * DAY).collect();
    assert_eq!(point_dates(&c).await, kept);
}

/// Three days of a daily rule whose points live one day: the log at its default level has
/// one INFO line per firing (naming the plan), per job start and completion (naming the job
/// and, at the end, its recovery point and bytes) and per lifecycle deletion, and no line
/// of the vault engine's chatter.
#[tokio::test]
async fn the_log_tells_what_ran() {
    let dir = temp_dir();
    let log = dir.path().join("coffer.log");
    let server = server_with_docs_logging(dir.path(), Some(&log)).await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    plan(
        &c,
        BackupRuleInput::builder()
            .rule_name("daily")
            .target_backup_vault_name("main")
            .schedule_expression("cron(0 5 ? * * *)")
            .lifecycle(Lifecycle::builder().delete_after_days(1).build())
            .build()
            .unwrap(),
    )
    .await;
    let answer = server.move_clock("{\"advance_seconds\": 259200}").await;
    assert_eq!(answer["firings"].as_i64(), Some(3), "{answer}");
    let deleted = answer["deleted"].as_i64().unwrap();
    assert!(deleted >= 1, "{answer}");
    let jobs = backup_jobs(&c).await;
    assert_eq!(jobs.len(), 3);
    let plan_id = jobs[0]
        .created_by()
        .unwrap()
        .backup_plan_id()
        .unwrap()
        .to_string();

    let text = wait_for_log(&log, "lifecycle deleted a recovery point").await;
    let lines = |what: &str| -> Vec<&str> {
        text.lines()
            .filter(|l| l.contains(" INFO ") && l.contains(what))
            .collect()
    };
    let fired = lines("backup plan fired");
    assert_eq!(fired.len(), 3, "{text}");
    assert!(fired.iter().all(|l| l.contains(&plan_id)), "{fired:?}");
    for j in &jobs {
        let id = j.backup_job_id().unwrap();
        let point = j.recovery_point_arn().unwrap();
        let started: Vec<_> = lines("backup job started")
            .into_iter()
            .filter(|l| l.contains(id))
            .collect();
        assert_eq!(started.len(), 1, "{id}: {text}");
        let ended: Vec<_> = lines("backup job completed")
            .into_iter()
            .filter(|l| l.contains(id))
            .collect();
        assert_eq!(ended.len(), 1, "{id}: {text}");
        assert!(ended[0].contains(point), "{}", ended[0]);
        assert!(ended[0].contains("duration_secs="), "{}", ended[0]);
        let bytes = format!("backup_size={}", j.backup_size_in_bytes().unwrap());
        assert!(ended[0].contains(&bytes), "{bytes}: {}", ended[0]);
    }
    assert_eq!(
        lines("lifecycle deleted a recovery point").len() as i64,
        deleted,
        "{text}"
    );
    assert!(
        !text.contains("rustic_core"),
        "engine chatter at INFO: {text}"
    );

    // The metrics counted the same story: three firings on time (no lag on the development
    // clock's steps), three completed backups, the deletions.
    let (_, _, body) = server.raw("GET", "/metrics", &[], b"").await;
    let m = crate::metrics::samples(&body);
    let value = |k: &str| crate::metrics::value(&m, k);
    assert_eq!(value("coffer_scheduler_lag_seconds_count"), 3.0, "{body}");
    assert_eq!(value("coffer_scheduler_lag_seconds_sum"), 0.0, "{body}");
    assert_eq!(
        value(r#"coffer_jobs_ended_total{kind="backup",state="COMPLETED"}"#),
        3.0
    );
    assert_eq!(
        value(r#"coffer_lifecycle_actions_total{action="delete"}"#),
        deleted as f64
    );
}
