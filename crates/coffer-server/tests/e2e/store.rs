//! The metadata store's selection (`--store`): refusals at start, two servers sharing one
//! PostgreSQL database as one service, and `coffer store copy` carrying a store into another.

use std::process::Command;

use crate::harness::*;

/// Runs `coffer serve` with `args` (and `COFFER_STORE` when given), expecting it to refuse
/// to start; returns its stderr.
fn refused_start(args: &[&str], env_store: Option<&str>) -> String {
    let dir = temp_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env_remove("COFFER_STORE")
        .env("COFFER_LOG", "warn");
    if let Some(s) = env_store {
        cmd.env("COFFER_STORE", s);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "coffer started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The flag, the variable and the file key all choose the store.
#[tokio::test]
async fn an_unknown_store_kind_is_refused_with_the_accepted_forms() {
    let url = "mysql://admin:s3cret-pw@127.0.0.1/coffer";
    let dir = temp_dir();
    let file = dir.path().join("coffer.toml");
    std::fs::write(&file, format!("store = \"{url}\"\n")).unwrap();
    for err in [
        refused_start(&["--store", url], None),
        refused_start(&[], Some(url)),
        refused_start(&["--config", file.to_str().unwrap()], None),
    ] {
        assert!(
            err.contains("mysql:// is not a store Coffer knows"),
            "{err}"
        );
        assert!(err.contains("postgres://"), "{err}");
        assert!(!err.contains("s3cret-pw"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test]
async fn an_unreachable_postgres_fails_the_start_naming_the_server_not_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://coffer:hunter2-secret@127.0.0.1:{port}/coffer");
    let err = refused_start(&["--store", &url], None);
    assert!(err.contains("opening the metadata store"), "{err}");
    assert!(
        err.contains(&format!("postgresql coffer@127.0.0.1:{port}/coffer")),
        "{err}"
    );
    assert!(!err.contains("hunter2-secret"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The PostgreSQL URL the tests create their databases through (`COFFER_E2E_POSTGRES` or
/// `COFFER_TEST_POSTGRES`); `None`, with a SKIPPED line, when neither is set.
fn postgres_admin() -> Option<String> {
    let url = ["COFFER_E2E_POSTGRES", "COFFER_TEST_POSTGRES"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()));
    if url.is_none() {
        eprintln!("SKIPPED: set COFFER_TEST_POSTGRES to a PostgreSQL URL (CI does)");
    }
    url
}

/// Two nodes, each with a data directory of its own, on one PostgreSQL database: what one
/// writes, the other answers at once (no node keeps a stale cache).
#[tokio::test]
async fn two_servers_on_one_postgres_database_answer_with_the_same_state() {
    let Some(admin) = postgres_admin() else {
        return;
    };
    let url = postgres_database(&admin, &format!("coffer_e2e_shared_{}", std::process::id()));
    let (dir_a, dir_b) = (temp_dir(), temp_dir());
    let node = |dir: &tempfile::TempDir| {
        [
            "--data-dir".to_string(),
            dir.path().to_str().unwrap().to_string(),
            "--store".to_string(),
            url.clone(),
            "--access-key-id".to_string(),
            AKID.to_string(),
            "--secret-access-key".to_string(),
            SECRET.to_string(),
            "--account-id".to_string(),
            ACCOUNT.to_string(),
        ]
    };
    let args_a = node(&dir_a);
    let args_b = node(&dir_b);
    let a = Server::start(&args_a.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let b = Server::start(&args_b.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let (ca, cb) = (a.client(), b.client());

    let created = ca
        .create_backup_vault()
        .backup_vault_name("shared")
        .send()
        .await
        .unwrap();
    let described = cb
        .describe_backup_vault()
        .backup_vault_name("shared")
        .send()
        .await
        .unwrap();
    assert_eq!(described.backup_vault_arn(), created.backup_vault_arn());

    // A second create of the same name on the other node is refused: one vault, not two.
    let again = cb
        .create_backup_vault()
        .backup_vault_name("shared")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        again.into_service_error().meta().code(),
        Some("AlreadyExistsException")
    );

    cb.delete_backup_vault()
        .backup_vault_name("shared")
        .send()
        .await
        .unwrap();
    let listed = ca.list_backup_vaults().send().await.unwrap();
    assert!(
        listed.backup_vault_list().is_empty(),
        "{:?}",
        listed.backup_vault_list()
    );
    let gone = ca
        .describe_backup_vault()
        .backup_vault_name("shared")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        gone.into_service_error().meta().code(),
        Some("ResourceNotFoundException")
    );
}

/// `coffer ARGS` run to its end: (success, stdout, stderr).
fn coffer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(args)
        .env_remove("COFFER_STORE")
        .env("COFFER_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A store seeded with `coffer bench-seed` (SQLite), copied with `coffer store copy` into a new
/// PostgreSQL database, serves what was seeded to a server started on that database; a second
/// copy into the same database is refused and leaves it as it was.
#[tokio::test]
async fn a_store_copied_to_postgres_serves_what_was_seeded() {
    let Some(admin) = postgres_admin() else {
        return;
    };
    let dir = temp_dir();
    let sqlite = dir.path().join("seeded.db");
    let sqlite = sqlite.to_str().unwrap();
    let (ok, out, err) = coffer(&[
        "bench-seed",
        "--store",
        sqlite,
        "--accounts",
        "1",
        "--vaults-per-account",
        "3",
        "--plans",
        "5",
        "--recovery-points",
        "40",
        "--jobs",
        "30",
    ]);
    assert!(ok, "bench-seed failed: {out}{err}");

    let url = postgres_database(&admin, &format!("coffer_e2e_copy_{}", std::process::id()));
    // postgres://USER:PASSWORD@HOST:PORT/DB
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, pw)| pw.to_string())
        .unwrap_or_default();
    let (ok, out, err) = coffer(&["store", "copy", "--from", sqlite, "--to", &url]);
    assert!(ok, "store copy failed: {out}{err}");
    assert!(err.contains("rows/s"), "no progress on stderr: {err}");
    let copied: u64 = out
        .strip_prefix("copied ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary: {out}"));
    assert!(copied > 40 + 30 + 5 + 3, "{out}");
    assert!(
        out.contains(&format!("from sqlite {sqlite} to postgresql ")),
        "{out}"
    );
    assert!(!password.is_empty() && !out.contains(&password) && !err.contains(&password));

    // Again into the database that now holds records: refused, nothing changed.
    let (ok, out2, err2) = coffer(&["store", "copy", "--from", sqlite, "--to", &url]);
    assert!(!ok, "a second copy into a used database succeeded: {out2}");
    assert!(err2.contains("already holds records"), "{err2}");
    assert!(
        !err2.contains("panicked") && !err2.contains(&password),
        "{err2}"
    );

    let data = temp_dir();
    let server = Server::start(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--store",
        &url,
        "--access-key-id",
        AKID,
        "--secret-access-key",
        SECRET,
        "--account-id",
        "100000000000",
    ])
    .await;
    let c = server.client();
    let vaults = c.list_backup_vaults().send().await.unwrap();
    let mut names: Vec<&str> = vaults
        .backup_vault_list()
        .iter()
        .map(|v| v.backup_vault_name().unwrap_or(""))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["bench-vault-000", "bench-vault-001", "bench-vault-002"]
    );
    let mut points = 0;
    for name in names {
        let mut token = None;
        loop {
            let page = c
                .list_recovery_points_by_backup_vault()
                .backup_vault_name(name)
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            points += page.recovery_points().len();
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    assert_eq!(points, 40);
    let plans = c.list_backup_plans().send().await.unwrap();
    assert_eq!(plans.backup_plans_list().len(), 5);
}
