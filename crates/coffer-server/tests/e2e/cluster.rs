//! Three `coffer` nodes on one PostgreSQL database and one bucket behave as one service
//! (docs/cluster.md): any node answers with the same state; 30 backup jobs started across the
//! nodes and a scheduled plan's firing each run on exactly one node; one node is killed
//! (SIGKILL) while it runs backups and the others take its jobs over when their leases run
//! out; every job ends once, every recovery point restores byte for byte, every event
//! reaches the webhook once (but the one message the killed node may have been sending at
//! the kill, which the nodes' logs name: that one at most twice), and each vault has exactly
//! one repository in the bucket.
//!
//! Needs PostgreSQL (`COFFER_E2E_POSTGRES` or `COFFER_TEST_POSTGRES`, `.ci/postgres`) and the
//! S3 server (`.ci/s3`); without them it says it skipped, under `CI=true` it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{
    BackupJobState, BackupPlanInput, BackupRuleInput, BackupSelection, BackupVaultEvent, Condition,
    ConditionType, RestoreJobStatus,
};
use chrono::Timelike;

use crate::bucket_source::{ROLE, s3_endpoint};
use crate::harness::*;
use crate::jobs::snapshot;
use crate::notifications::{Receiver, counts, reserve_port};
use crate::s3_vault::{SECRET_ENV, objects_under, vault_storage_toml};

const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:cluster-events";
const RESOURCES: usize = 10;
const JOBS: usize = 30;
/// The resources the scheduled plan selects (by tag).
const SCHEDULED: usize = 3;

fn arn(i: usize) -> String {
    format!("arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-node{i}")
}

/// PostgreSQL's admin URL, or `None` after saying why (failing under `CI=true`).
fn postgres_admin() -> Option<String> {
    let url = ["COFFER_E2E_POSTGRES", "COFFER_TEST_POSTGRES"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    if url.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no PostgreSQL: run `eval \"$(.ci/postgres start DIR)\"` before the tests"
        );
        eprintln!(
            "skipped: the cluster test needs PostgreSQL (set COFFER_E2E_POSTGRES or COFFER_TEST_POSTGRES, e.g. from `.ci/postgres start /tmp/pg`)"
        );
    }
    url
}

/// A small tree per resource, different for each (debug builds chunk and compress slowly, and
/// 33 backups and 33 restores run on a machine shared with other work).
fn source_tree(root: &Path, i: usize) {
    std::fs::create_dir_all(root.join("d")).unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ ((i as u64 + 1) << 32);
    let mut data = vec![0u8; 48 * 1024];
    for chunk in data.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(root.join("d/data.bin"), &data).unwrap();
    std::fs::write(root.join("name.txt"), format!("resource {i}\n")).unwrap();
}

fn config(dir: &Path, hook: std::net::SocketAddr, ep: &coffer_engine::S3Endpoint) -> PathBuf {
    let mut text = format!(
        r#"
[[credentials]]
access_key_id = "{AKID}"
secret_access_key = "{SECRET}"
account_id = "{ACCOUNT}"

[[notification_targets]]
topic_arn = "{TOPIC}"
webhook = "http://{hook}/hook"
"#
    );
    for i in 0..RESOURCES {
        let tag = if i < SCHEDULED { "sched" } else { "api" };
        text.push_str(&format!(
            "\n[[resources]]\narn = \"{}\"\nsource = \"{}\"\ntags = {{ cluster = \"{tag}\" }}\n",
            arn(i),
            dir.join(format!("src{i}")).display()
        ));
    }
    let prefix = format!("cluster-{}", uuid::Uuid::new_v4().simple());
    text.push_str(&vault_storage_toml(ep, &prefix));
    std::fs::write(dir.join("prefix"), &prefix).unwrap();
    let path = dir.join("coffer.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The master key every node shares (owner-only, as Coffer requires).
fn write_master_key(data_dir: &Path, hex: &str) {
    std::fs::create_dir_all(data_dir).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(data_dir.join("master.key"))
        .unwrap();
    f.write_all(hex.as_bytes()).unwrap();
}

/// The job ids a node's log says it started and completed.
fn logged_jobs(log: &Path, what: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| {
            let rest = &l[l.find(" job=")? + 5..];
            Some(rest.split_whitespace().next()?.to_string())
        })
        .collect()
}

/// The values of `name` on the log lines that say `what`.
fn field(log: &str, what: &str, name: &str) -> Vec<String> {
    let key = format!(" {name}=");
    log.lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| {
            let rest = &l[l.find(&key)? + key.len()..];
            Some(rest.split_whitespace().next()?.to_string())
        })
        .collect()
}

struct Cluster {
    nodes: Vec<Option<Server>>,
    logs: Vec<PathBuf>,
    clients: Vec<Client>,
}

async fn start_cluster(dir: &Path, store: &str, secret: &str) -> Cluster {
    let key = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let cfg = dir.join("coffer.toml");
    let (mut nodes, mut logs, mut clients) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..3 {
        let data = dir.join(format!("node{n}"));
        write_master_key(&data, &key);
        let log = dir.join(format!("node{n}.log"));
        let mut env = vec![(SECRET_ENV, secret)];
        if n == 2 {
            // The node that is killed holds its running backups (claimed, under lease) until
            // it dies, so the kill always lands in the middle of a backup job.
            env.push(("COFFER_TEST_PAUSE_AT", "backup"));
        }
        let server = Server::start_full(
            &[
                "--data-dir",
                data.to_str().unwrap(),
                "--config",
                cfg.to_str().unwrap(),
                "--store",
                store,
                "--job-lease-seconds",
                "5",
                "--max-concurrent-jobs",
                "4",
            ],
            &env,
            Some(&log),
        )
        .await;
        clients.push(server.client());
        nodes.push(Some(server));
        logs.push(log);
    }
    Cluster {
        nodes,
        logs,
        clients,
    }
}

/// A plan firing once a day at the whole minute two minutes from now (UTC), selecting the
/// resources tagged `cluster = sched` into vault `sched`.
async fn scheduled_plan(c: &Client) -> String {
    let at = chrono::Utc::now() + chrono::Duration::minutes(2);
    let cron = format!("cron({} {} ? * * *)", at.minute(), at.hour());
    let plan = c
        .create_backup_plan()
        .backup_plan(
            BackupPlanInput::builder()
                .backup_plan_name("cluster")
                .rules(
                    BackupRuleInput::builder()
                        .rule_name("soon")
                        .target_backup_vault_name("sched")
                        .schedule_expression(cron)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let id = plan.backup_plan_id().unwrap().to_string();
    c.create_backup_selection()
        .backup_plan_id(&id)
        .backup_selection(
            BackupSelection::builder()
                .selection_name("tagged")
                .iam_role_arn(ROLE)
                .list_of_tags(
                    Condition::builder()
                        .condition_type(ConditionType::Stringequals)
                        .condition_key("cluster")
                        .condition_value("sched")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    id
}

/// Every backup job the cluster knows, once all have ended (`want` of them).
async fn all_ended(c: &Client, want: usize) -> Vec<aws_sdk_backup::types::BackupJob> {
    wait_until(&format!("{want} backup jobs ended"), 600, || async {
        let jobs = c
            .list_backup_jobs()
            .max_results(1000)
            .send()
            .await
            .unwrap()
            .backup_jobs()
            .to_vec();
        let ended = jobs.iter().all(|j| {
            !matches!(
                j.state(),
                Some(
                    BackupJobState::Created
                        | BackupJobState::Pending
                        | BackupJobState::Running
                        | BackupJobState::Aborting
                )
            )
        });
        (jobs.len() >= want && ended).then_some(jobs)
    })
    .await
}

#[tokio::test]
async fn three_nodes_share_one_store_and_bucket_and_survive_a_killed_node() {
    let Some(admin) = postgres_admin() else {
        return;
    };
    let Some(ep) = s3_endpoint() else { return };
    let dir = temp_dir();
    for i in 0..RESOURCES {
        source_tree(&dir.path().join(format!("src{i}")), i);
    }
    let hook = reserve_port();
    let receiver = Receiver::start(hook).await;
    config(dir.path(), hook, &ep);
    let store = postgres_database(
        &admin,
        &format!(
            "coffer_cluster_{}_{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ),
    );
    let mut cluster = start_cluster(dir.path(), &store, &ep.secret_access_key).await;
    let c = cluster.clients.clone();

    // Any node answers with the state another node wrote.
    for v in ["v0", "v1", "v2", "sched"] {
        c[0].create_backup_vault()
            .backup_vault_name(v)
            .send()
            .await
            .unwrap();
        c[0].put_backup_vault_notifications()
            .backup_vault_name(v)
            .sns_topic_arn(TOPIC)
            .backup_vault_events(BackupVaultEvent::BackupJobCompleted)
            .send()
            .await
            .unwrap();
    }
    for node in &c[1..] {
        let d = node
            .describe_backup_vault()
            .backup_vault_name("v2")
            .send()
            .await
            .unwrap();
        assert_eq!(d.backup_vault_name(), Some("v2"));
    }
    let plan = scheduled_plan(&c[1]).await;
    let seen = c[2]
        .get_backup_plan()
        .backup_plan_id(&plan)
        .send()
        .await
        .unwrap();
    assert_eq!(seen.backup_plan().unwrap().backup_plan_name(), "cluster");

    // 30 backups, started round robin on the three nodes (each wakes its own runner).
    for i in 0..JOBS {
        c[i % 3]
            .start_backup_job()
            .backup_vault_name(format!("v{}", i % 3))
            .resource_arn(arn(i % RESOURCES))
            .iam_role_arn(ROLE)
            .send()
            .await
            .unwrap();
    }

    // Node 2 is killed while it runs backups.
    let log2 = cluster.logs[2].clone();
    let held = wait_until("node 2 to run a backup", 120, || {
        let log2 = log2.clone();
        async move { logged_jobs(&log2, "backup job started").first().cloned() }
    })
    .await;
    let j = c[0]
        .describe_backup_job()
        .backup_job_id(&held)
        .send()
        .await
        .unwrap();
    assert_eq!(
        j.state(),
        Some(&BackupJobState::Running),
        "node 2 holds {held}"
    );
    cluster.nodes[2].take().unwrap().kill().await;
    let orphaned = logged_jobs(&log2, "backup job started");

    // Every job ends once, completed; the scheduled firing made its jobs once.
    let jobs = all_ended(&c[0], JOBS + SCHEDULED).await;
    let from_plan: Vec<_> = jobs
        .iter()
        .filter(|j| j.created_by().and_then(|b| b.backup_plan_id()) == Some(plan.as_str()))
        .collect();
    assert_eq!(
        from_plan.len(),
        SCHEDULED,
        "one firing, one job per resource"
    );
    assert_eq!(jobs.len(), JOBS + SCHEDULED, "no job created twice");
    for j in &jobs {
        assert_eq!(
            j.state(),
            Some(&BackupJobState::Completed),
            "{:?}: {:?}",
            j.backup_job_id(),
            j.status_message()
        );
    }
    for id in &orphaned {
        assert!(
            jobs.iter().any(|j| j.backup_job_id() == Some(id.as_str())),
            "node 2's job {id} was taken over"
        );
    }
    let mut completions: BTreeMap<String, usize> = BTreeMap::new();
    for log in &cluster.logs {
        for id in logged_jobs(log, "backup job completed") {
            *completions.entry(id).or_default() += 1;
        }
    }
    for j in &jobs {
        let id = j.backup_job_id().unwrap();
        assert_eq!(
            completions.get(id),
            Some(&1),
            "job {id} completed on one node once"
        );
    }

    // Every recovery point restores byte for byte (restores spread over the live nodes).
    let mut restores = Vec::new();
    for (k, j) in jobs.iter().enumerate() {
        let i = (0..RESOURCES)
            .find(|i| j.resource_arn() == Some(arn(*i).as_str()))
            .unwrap();
        let target = dir.path().join(format!("restored/{k}"));
        let out = c[k % 2]
            .start_restore_job()
            .recovery_point_arn(j.recovery_point_arn().unwrap())
            .iam_role_arn(ROLE)
            .metadata("targetPath", target.to_str().unwrap())
            .send()
            .await
            .unwrap();
        restores.push((out.restore_job_id().unwrap().to_string(), target, i));
    }
    for (id, target, i) in &restores {
        let r = wait_restore(&c[0], id).await;
        assert_eq!(
            r.status(),
            Some(&RestoreJobStatus::Completed),
            "{:?}",
            r.status_message()
        );
        assert_eq!(
            snapshot(target),
            snapshot(&dir.path().join(format!("src{i}"))),
            "restore {id}"
        );
    }

    // Every BACKUP_JOB_COMPLETED event arrived once, whichever node delivered it; the one
    // exception is a message node 2 was sending when it was killed (its outcome was never
    // recorded, so the node that took the topic over sent it again and logged that it did):
    // that one arrived once or twice. An attempt of a live node is never taken over.
    let got = wait_until("every event delivered", 180, || async {
        let got = receiver.got();
        (got.len() >= jobs.len()
            && counts(cluster.nodes[0].as_ref().unwrap()).await["pending"] == 0)
            .then_some(got)
    })
    .await;
    let killed = field(
        &std::fs::read_to_string(&cluster.logs[2]).unwrap(),
        "notification delivery started",
        "holder",
    );
    let killed = killed.first().expect("node 2 logged its delivery holder");
    let mut resent = BTreeSet::new();
    for log in &cluster.logs[..2] {
        let text = std::fs::read_to_string(log).unwrap();
        let what = "notification was being sent by a worker that stopped";
        let holders = field(&text, what, "previous_holder");
        assert!(
            holders.iter().all(|h| h == killed),
            "only node 2's attempt is taken over: {holders:?}"
        );
        resent.extend(field(&text, what, "id"));
    }
    assert!(
        resent.len() <= 1,
        "node 2 sent one message at a time: {resent:?}"
    );
    let mut by_message: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &got {
        let message = r.body["MessageId"].as_str().unwrap().to_string();
        let job = r.body["MessageAttributes"]["Id"]["Value"].as_str().unwrap();
        by_message.entry(message).or_default().push(job.to_string());
    }
    for (message, jobs) in &by_message {
        let most = if resent.contains(message) { 2 } else { 1 };
        assert!(
            jobs.len() <= most && jobs.iter().all(|j| *j == jobs[0]),
            "message {message} arrived {} times (at most {most}): {by_message:?}",
            jobs.len()
        );
    }
    let events: Vec<&String> = by_message.values().map(|jobs| &jobs[0]).collect();
    let unique: BTreeSet<&String> = events.iter().copied().collect();
    assert_eq!(
        events.len(),
        unique.len(),
        "one event per job: {by_message:?}"
    );
    let want: BTreeSet<String> = jobs
        .iter()
        .map(|j| j.backup_job_id().unwrap().to_string())
        .collect();
    assert_eq!(unique.into_iter().cloned().collect::<BTreeSet<_>>(), want);

    // One repository per vault in the bucket: the nodes never created one twice.
    let prefix = std::fs::read_to_string(dir.path().join("prefix")).unwrap();
    let configs: Vec<String> = objects_under(&ep, &format!("{prefix}/"))
        .await
        .into_iter()
        .filter(|k| k.ends_with("/config"))
        .collect();
    assert_eq!(configs.len(), 4, "{configs:?}");
}
