//! The metadata store's selection (`--store`): refusals at start, and two servers sharing one
//! PostgreSQL database as one service.

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

/// Two nodes, each with a data directory of its own, on one PostgreSQL database: what one
/// writes, the other answers at once (no node keeps a stale cache).
#[tokio::test]
async fn two_servers_on_one_postgres_database_answer_with_the_same_state() {
    let Some(admin) = ["COFFER_E2E_POSTGRES", "COFFER_TEST_POSTGRES"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
    else {
        eprintln!("SKIPPED: set COFFER_TEST_POSTGRES to a PostgreSQL URL (CI does)");
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
