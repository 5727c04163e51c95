//! SQLite database files as resources: an online backup taken while a writer keeps
//! inserting, restored to a file that passes `PRAGMA integrity_check` and holds exactly the
//! rows of one moment (a gap-free prefix of what the writer committed); a database file that
//! is gone fails the job saying so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use aws_sdk_backup::types::{BackupJobState, RestoreJobStatus};

use crate::bucket_source::{backup, restore, start};
use crate::harness::*;

const DB_ARN: &str = "arn:aws:sqlite:us-east-1:111122223333:database/app";

fn rows(path: &std::path::Path) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_backed_up_while_written_restores_consistent() {
    let dir = temp_dir();
    let db = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
    )
    .unwrap();
    drop(conn);
    let config = format!(
        "[[resources]]\narn = \"{DB_ARN}\"\nsource = \"{}\"\n\n\
         [[resources]]\narn = \"arn:aws:sqlite:us-east-1:111122223333:database/gone\"\nsource = \"{}\"\n",
        db.display(),
        dir.path().join("gone.db").display()
    );
    let (_server, c) = start(dir.path(), &config).await;

    // The writer inserts rows one transaction at a time until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicI64::new(0));
    let writer = {
        let (stop, written, db) = (stop.clone(), written.clone(), db.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                conn.execute(
                    "INSERT INTO t(id, v) VALUES (?1, ?2)",
                    rusqlite::params![i, format!("row {i} {}", "x".repeat(200))],
                )
                .unwrap();
                written.store(i, Ordering::Relaxed);
            }
            i
        })
    };
    wait_until("the writer to commit rows", 30, || async {
        (written.load(Ordering::Relaxed) > 200).then_some(())
    })
    .await;
    let ended = backup(&c, DB_ARN).await;
    let during = written.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let last = writer.join().unwrap();
    assert_eq!(ended.state, BackupJobState::Completed, "{}", ended.message);
    assert!(
        ended.message.contains("consistent copy"),
        "{}",
        ended.message
    );
    assert!(ended.size > 0);

    let target = dir.path().join("restored");
    let (status, message, _) = restore(
        &c,
        ended.recovery_point.as_deref().unwrap(),
        &[("targetPath", target.to_str().unwrap())],
    )
    .await;
    assert_eq!(status, RestoreJobStatus::Completed, "{message}");
    let restored_db = target.join("app.db");
    let conn = rusqlite::Connection::open(&restored_db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let restored = rows(&restored_db);
    let source = rows(&db);
    assert_eq!(source.len() as i64, last);
    // One moment's rows: ids 1..=n without a gap, each as the writer committed it.
    let n = restored.len();
    assert!(
        n >= 200 && n as i64 <= during,
        "{n} rows restored, {during} written by then"
    );
    assert_eq!(restored[..], source[..n]);

    // A database file that is gone fails the job, naming it.
    let gone = backup(&c, "arn:aws:sqlite:us-east-1:111122223333:database/gone").await;
    assert_eq!(gone.state, BackupJobState::Failed);
    assert!(
        gone.message.contains("source not found") && gone.message.contains("gone.db"),
        "{}",
        gone.message
    );
}
