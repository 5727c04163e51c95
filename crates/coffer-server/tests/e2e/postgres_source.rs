//! PostgreSQL databases as RDS resources, end to end against a real PostgreSQL (the one CI
//! starts with `.ci/postgres`, given in `COFFER_E2E_POSTGRES` or `COFFER_TEST_POSTGRES`): a
//! database is dumped into a vault, changed, restored into a new database that answers with
//! the rows it had at the backup (every table's checksum compared), with the password kept out
//! of the log; a database that cannot be reached or no longer exists fails its job with a
//! message; a plan's tag selection backs up a database beside a directory. Without a
//! PostgreSQL the tests that need one say they skipped (and fail under `CI=true`).

use std::collections::BTreeMap;

use aws_sdk_backup::Client;
use aws_sdk_backup::types::{
    BackupJob, BackupJobState, BackupRuleInput, BackupSelection, Condition, ConditionType,
    RestoreJobStatus,
};

use crate::harness::*;

const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";
const PASSWORD_ENV: &str = "COFFER_E2E_PGSRC_PASSWORD";
const DAY: i64 = 86_400;

/// The PostgreSQL server to use, or `None` (printing that the test skipped). Under `CI=true`
/// a missing server fails the test.
pub(crate) fn admin_url(test: &str) -> Option<String> {
    let url = ["COFFER_E2E_POSTGRES", "COFFER_TEST_POSTGRES"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    if url.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: CI=true but no PostgreSQL is given; set COFFER_TEST_POSTGRES (.ci/run starts one with .ci/postgres)"
        );
        eprintln!("SKIPPED {test}: set COFFER_TEST_POSTGRES to a PostgreSQL URL (CI does)");
    }
    url
}

/// Runs `sql` with psql against `url`; returns the unaligned output.
pub(crate) fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([url, "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("run psql (these tests need the PostgreSQL client)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `url` without its password, and the password.
pub(crate) fn split_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.split_once('@').unwrap();
    let (user, password) = userinfo.split_once(':').unwrap();
    (format!("{scheme}://{user}@{host}"), password.to_string())
}

/// Every table of the public schema with its row count and a checksum of its rows.
fn table_checksums(url: &str) -> BTreeMap<String, String> {
    let tables = psql(
        url,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    );
    tables
        .lines()
        .map(|t| {
            let sum = psql(
                url,
                &format!(
                    "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM \"{t}\" t"
                ),
            );
            (t.to_string(), sum)
        })
        .collect()
}

/// A database named `name` (created afresh) with tables of several types, constraints, an
/// index, a view and a sequence.
fn make_database(admin: &str, name: &str) -> String {
    psql(admin, &format!("DROP DATABASE IF EXISTS {name}"));
    let url = postgres_database(admin, name);
    psql(
        &url,
        "CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, price numeric(10,2), \
           added timestamptz DEFAULT now(), tags text[]);
         INSERT INTO items (name, price, tags) SELECT 'item ' || g, g * 1.25, ARRAY['t' || (g % 7)]
           FROM generate_series(1, 20000) g;
         CREATE TABLE blobs (id int PRIMARY KEY, body bytea);
         INSERT INTO blobs SELECT g, decode(md5(g::text) || md5((g * 7)::text), 'hex')
           FROM generate_series(1, 2000) g;
         CREATE TABLE orders (id int PRIMARY KEY, item_id bigint REFERENCES items (id),
           qty int CHECK (qty > 0));
         INSERT INTO orders SELECT g, (g % 20000) + 1, (g % 5) + 1 FROM generate_series(1, 5000) g;
         CREATE INDEX items_name ON items (name);
         CREATE VIEW expensive AS SELECT * FROM items WHERE price > 100;",
    );
    url
}

fn rds_arn(name: &str) -> String {
    format!("arn:aws:rds:us-east-1:{ACCOUNT}:db:{name}")
}

async fn wait_backup(c: &Client, id: &str) -> BackupJob {
    wait_until(&format!("backup job {id}"), 180, || async {
        let j = c
            .describe_backup_job()
            .backup_job_id(id)
            .send()
            .await
            .unwrap();
        let done = matches!(
            j.state(),
            Some(BackupJobState::Completed | BackupJobState::Failed | BackupJobState::Aborted)
        );
        done.then(|| {
            BackupJob::builder()
                .set_state(j.state().cloned())
                .set_status_message(j.status_message().map(str::to_string))
                .set_backup_size_in_bytes(j.backup_size_in_bytes())
                .set_recovery_point_arn(j.recovery_point_arn().map(str::to_string))
                .set_resource_type(j.resource_type().map(str::to_string))
                .build()
        })
    })
    .await
}

async fn start_backup(c: &Client, arn: &str) -> BackupJob {
    let out = c
        .start_backup_job()
        .backup_vault_name("main")
        .resource_arn(arn)
        .iam_role_arn(ROLE)
        .send()
        .await
        .unwrap();
    wait_backup(c, out.backup_job_id().unwrap()).await
}

async fn restore_database(
    c: &Client,
    rp: &str,
    name: &str,
) -> aws_sdk_backup::operation::describe_restore_job::DescribeRestoreJobOutput {
    let out = c
        .start_restore_job()
        .recovery_point_arn(rp)
        .iam_role_arn(ROLE)
        .metadata("DBName", name)
        .metadata("Engine", "postgres")
        .send()
        .await
        .unwrap();
    let id = out.restore_job_id().unwrap().to_string();
    wait_until(&format!("restore job {id}"), 180, || async {
        let j = c
            .describe_restore_job()
            .restore_job_id(&id)
            .send()
            .await
            .unwrap();
        (!matches!(
            j.status(),
            Some(RestoreJobStatus::Pending | RestoreJobStatus::Running)
        ))
        .then_some(j)
    })
    .await
}

async fn make_vault(c: &Client) {
    c.create_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_database_is_dumped_and_restored_into_a_new_database_with_the_same_rows() {
    let Some(admin) = admin_url("a_database_is_dumped_and_restored") else {
        return;
    };
    let pid = std::process::id();
    let (source_db, restored_db) = (format!("pgsrc_{pid}_shop"), format!("pgsrc_{pid}_copy"));
    psql(&admin, &format!("DROP DATABASE IF EXISTS {restored_db}"));
    let source_url = make_database(&admin, &source_db);
    let before = table_checksums(&source_url);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        ["blobs", "items", "orders"],
        "{before:?}"
    );

    let dir = temp_dir();
    let (url, password) = split_password(&source_url);
    let cfg = dir.path().join("coffer.toml");
    let arn = rds_arn("shop");
    std::fs::write(
        &cfg,
        format!(
            "[[credentials]]\naccess_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"{ACCOUNT}\"\n\n\
             [[resources]]\narn = \"{arn}\"\nurl = \"{url}\"\npassword_env = \"{PASSWORD_ENV}\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("coffer.log");
    let server = Server::start_full(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
        &[(PASSWORD_ENV, &password)],
        Some(&log),
    )
    .await;
    let c = server.client();
    make_vault(&c).await;

    let job = start_backup(&c, &arn).await;
    assert_eq!(
        job.state(),
        Some(&BackupJobState::Completed),
        "{:?}",
        job.status_message()
    );
    assert_eq!(job.resource_type(), Some("RDS"));
    let rp = job.recovery_point_arn().unwrap().to_string();
    let size = job.backup_size_in_bytes().unwrap();
    assert!(size > 500_000, "the dump of 27,000 rows is {size} bytes");
    let point = c
        .describe_recovery_point()
        .backup_vault_name("main")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    assert_eq!(point.backup_size_in_bytes(), Some(size));
    assert_eq!(point.resource_type(), Some("RDS"));
    let asks = c
        .get_recovery_point_restore_metadata()
        .backup_vault_name("main")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<&String> = asks.restore_metadata().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["DBName", "Engine"]);

    // Changed after the backup: the restore must bring back the rows as they were.
    psql(
        &source_url,
        "DELETE FROM orders WHERE id > 4000; UPDATE items SET price = 0 WHERE id < 10; \
         CREATE TABLE later (x int); INSERT INTO items (name) VALUES ('after the backup')",
    );
    assert_ne!(table_checksums(&source_url), before);

    let done = restore_database(&c, &rp, &restored_db).await;
    assert_eq!(
        done.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        done.status_message()
    );
    assert_eq!(
        done.created_resource_arn(),
        Some(rds_arn(&restored_db).as_str())
    );
    let restored_url = postgres_database(&admin, &restored_db);
    assert_eq!(table_checksums(&restored_url), before);
    // The sequence, the view and the foreign key came back too.
    assert_eq!(
        psql(&restored_url, "SELECT nextval('items_id_seq')"),
        "20001"
    );
    assert_eq!(
        psql(&restored_url, "SELECT count(*) FROM expensive"),
        psql(
            &admin,
            "SELECT count(*) FROM generate_series(1, 20000) g WHERE g * 1.25 > 100"
        )
    );
    let fk = std::process::Command::new("psql")
        .args([
            &restored_url,
            "-qAtc",
            "INSERT INTO orders VALUES (999999, 424242, 1)",
        ])
        .output()
        .unwrap();
    assert!(!fk.status.success(), "the foreign key was not restored");

    // A restore never replaces a database it did not create.
    let again = restore_database(&c, &rp, &restored_db).await;
    assert_eq!(again.status(), Some(&RestoreJobStatus::Failed));
    assert!(
        again
            .status_message()
            .unwrap_or("")
            .contains("already exists"),
        "{:?}",
        again.status_message()
    );
    assert_eq!(table_checksums(&restored_url), before);
    // Restore metadata that cannot name a database is refused when the job is started.
    let bad = c
        .start_restore_job()
        .recovery_point_arn(&rp)
        .iam_role_arn(ROLE)
        .metadata("DBName", "no'quotes")
        .send()
        .await
        .unwrap_err();
    let bad = format!("{:?}", bad.into_service_error());
    assert!(bad.contains("cannot name a database"), "{bad}");

    drop(server);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("backup job completed"), "{logged}");
    assert!(
        !logged.contains(&password),
        "the database password appears in the log"
    );
    psql(&admin, &format!("DROP DATABASE IF EXISTS {restored_db}"));
    psql(&admin, &format!("DROP DATABASE IF EXISTS {source_db}"));
}

#[tokio::test]
async fn an_unreachable_or_vanished_database_fails_its_backup_with_a_message() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nobody = rds_arn("nobody");
    let mut resources = format!(
        "[[resources]]\narn = \"{nobody}\"\nurl = \"postgres://coffer:not-logged@127.0.0.1:{port}/app\"\n\n"
    );
    let admin = admin_url("an_unreachable_or_vanished_database (vanished part)");
    let gone = rds_arn("gone");
    if let Some(admin) = &admin {
        let (url, _) = split_password(admin);
        let missing = format!(
            "{}/pgsrc_{}_never_made",
            url.rsplit_once('/').unwrap().0,
            std::process::id()
        );
        resources.push_str(&format!(
            "[[resources]]\narn = \"{gone}\"\nurl = \"{missing}\"\npassword_env = \"{PASSWORD_ENV}\"\n\n"
        ));
    }
    let dir = temp_dir();
    let cfg = dir.path().join("coffer.toml");
    std::fs::write(&cfg, resources).unwrap();
    let data = dir.path().join("data");
    let password = admin
        .as_deref()
        .map(|a| split_password(a).1)
        .unwrap_or_default();
    let server = Server::start_with_env(
        &[
            "--dev",
            "--data-dir",
            data.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
        &[(PASSWORD_ENV, &password)],
    )
    .await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    make_vault(&c).await;

    let job = start_backup(&c, &nobody).await;
    assert_eq!(job.state(), Some(&BackupJobState::Failed));
    let message = job.status_message().unwrap_or("");
    assert!(
        message.contains(&format!(
            "postgres://coffer@127.0.0.1:{port}/app cannot be used"
        )) && !message.contains("not-logged"),
        "{message}"
    );
    if admin.is_some() {
        let job = start_backup(&c, &gone).await;
        assert_eq!(job.state(), Some(&BackupJobState::Failed));
        let message = job.status_message().unwrap_or("");
        assert!(message.contains("does not exist"), "{message}");
    }
    let points = c
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("main")
        .send()
        .await
        .unwrap();
    assert!(points.recovery_points().is_empty());
}

#[tokio::test]
async fn a_plan_selects_a_database_and_a_directory_by_tag() {
    let Some(admin) = admin_url("a_plan_selects_a_database_and_a_directory_by_tag") else {
        return;
    };
    let db = format!("pgsrc_{}_plan", std::process::id());
    let db_url = make_database(&admin, &db);
    let dir = temp_dir();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a.txt"), b"selected by tag\n").unwrap();
    let (url, password) = split_password(&db_url);
    let (db_arn, efs_arn, ebs_arn) = (
        rds_arn("plan-db"),
        format!("arn:aws:elasticfilesystem:us-east-1:{ACCOUNT}:file-system/fs-tree"),
        format!("arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-untagged"),
    );
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![1u8; 4096]).unwrap();
    let cfg = dir.path().join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[resources]]\narn = \"{db_arn}\"\nurl = \"{url}\"\npassword_env = \"{PASSWORD_ENV}\"\ntags = {{ backup = \"daily\" }}\n\n\
             [[resources]]\narn = \"{efs_arn}\"\nsource = \"{}\"\ntags = {{ backup = \"daily\" }}\n\n\
             [[resources]]\narn = \"{ebs_arn}\"\nsource = \"{}\"\ntags = {{ backup = \"never\" }}\n",
            tree.display(),
            disk.display()
        ),
    )
    .unwrap();
    let server = Server::start_with_env(
        &["--dev", "--config", cfg.to_str().unwrap()],
        &[(PASSWORD_ENV, &password)],
    )
    .await;
    let c = server.client_as(ACCOUNT, "anything", "us-east-1");
    let t0 = (server.clock_secs().await / DAY + 1) * DAY;
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0)))
        .await;
    make_vault(&c).await;
    let plan = c
        .create_backup_plan()
        .backup_plan(
            aws_sdk_backup::types::BackupPlanInput::builder()
                .backup_plan_name("databases-and-files")
                .rules(
                    BackupRuleInput::builder()
                        .rule_name("daily")
                        .target_backup_vault_name("main")
                        .schedule_expression("cron(0 5 ? * * *)")
                        .start_window_minutes(60)
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
                .selection_name("daily-tag")
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
    server
        .move_clock(&format!("{{\"set\": \"{}\"}}", rfc3339(t0 + 5 * 3600 + 60)))
        .await;
    let jobs = wait_until("the plan's two backups", 180, || async {
        let jobs = c
            .list_backup_jobs()
            .send()
            .await
            .unwrap()
            .backup_jobs()
            .to_vec();
        let ended = jobs.len() == 2
            && jobs.iter().all(|j| {
                matches!(
                    j.state(),
                    Some(BackupJobState::Completed | BackupJobState::Failed)
                )
            });
        ended.then_some(jobs)
    })
    .await;
    let mut by_arn: BTreeMap<String, (String, Option<BackupJobState>)> = BTreeMap::new();
    for j in &jobs {
        by_arn.insert(
            j.resource_arn().unwrap().to_string(),
            (
                j.resource_type().unwrap_or("").to_string(),
                j.state().cloned(),
            ),
        );
    }
    let want: BTreeMap<String, (String, Option<BackupJobState>)> = [
        (
            db_arn.clone(),
            ("RDS".to_string(), Some(BackupJobState::Completed)),
        ),
        (
            efs_arn.clone(),
            ("EFS".to_string(), Some(BackupJobState::Completed)),
        ),
    ]
    .into();
    assert_eq!(by_arn, want, "{jobs:?}");
    let rds_job = jobs
        .iter()
        .find(|j| j.resource_arn() == Some(db_arn.as_str()))
        .unwrap();
    assert!(rds_job.backup_size_in_bytes().unwrap_or(0) > 500_000);
    drop(server);
    psql(&admin, &format!("DROP DATABASE IF EXISTS {db}"));
}
