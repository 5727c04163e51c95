//! `copy` (`coffer store copy`): every row arrives unchanged, SQLite -> PostgreSQL -> SQLite
//! (SQLite -> SQLite without `COFFER_TEST_POSTGRES`), and what it refuses.

use super::*;

/// One row of the records table.
type Raw = (String, String, Vec<u8>);

/// Every row of the store at `location`, read with a client of its own, in (tbl, key) byte order.
async fn all_rows(location: &str) -> Vec<Raw> {
    let mut rows: Vec<Raw> = if StoreHandle::is_postgres(location) {
        let (client, connection) = tokio_postgres::connect(location, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .query("SELECT tbl, key, value FROM records", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    } else {
        let conn = rusqlite::Connection::open(location).unwrap();
        let mut stmt = conn.prepare("SELECT tbl, key, value FROM records").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    };
    rows.sort();
    rows
}

/// Runs a copy off the runtime's threads, as the CLI does.
async fn run_copy(from: &str, to: &str) -> Result<CopySummary> {
    let (from, to) = (from.to_string(), to.to_string());
    tokio::task::spawn_blocking(move || {
        let mut calls = 0u64;
        let mut last = 0u64;
        let summary = copy(&from, &to, &mut |p: &CopyProgress| {
            calls += 1;
            assert!(p.rows > last && p.rows <= p.total, "{p:?}");
            last = p.rows;
        })?;
        // One call per batch of 1000 rows at most.
        assert_eq!(calls, summary.rows.div_ceil(1000));
        Ok(summary)
    })
    .await
    .unwrap()
}

/// Fills a store with rows of several tables: more rows than one batch, binary values (every
/// byte, an empty value), keys with multibyte characters and keys whose byte order differs
/// from a locale's order.
async fn fill(store: &StoreHandle) -> usize {
    store
        .write(|tx| {
            let mut n = 0;
            for i in 0..2500u32 {
                tx.put(
                    "job",
                    &format!("111122223333:us-east-1:{i:05}"),
                    &i.to_le_bytes(),
                )?;
                n += 1;
            }
            let every_byte: Vec<u8> = (0..=255u8).collect();
            tx.put("vault", "111122223333:us-east-1:bytes", &every_byte)?;
            tx.put("vault", "111122223333:us-east-1:empty", b"")?;
            for key in [
                "111122223333:eu-west-3:coffre-été",
                "111122223333:ap-northeast-1:金庫",
                "111122223333:us-east-1:crab-🦀",
                "111122223333:us-east-1:B",
                "111122223333:us-east-1:a",
                "111122223333:us-east-1:_z",
                "111122223333:us-east-1:ü-\u{10FFFF}",
            ] {
                tx.put("vault", key, format!("{{\"name\":\"{key}\"}}").as_bytes())?;
                tx.put("tag_index", &format!("{key}:é"), &[0xff, 0x00, 0xfe])?;
                n += 2;
            }
            tx.put(
                "outbox",
                "0000000001",
                b"{\"event\":\"BACKUP_JOB_COMPLETED\"}",
            )?;
            tx.put("marker", "index_backfill:v1", b"done")?;
            Ok::<_, StoreError>(n + 4)
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_carries_every_row_unchanged_to_postgres_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db").to_str().unwrap().to_string();
    let back = dir.path().join("sub/back.db").to_str().unwrap().to_string();
    let written = fill(&StoreHandle::open(&source).unwrap()).await;
    let want = all_rows(&source).await;
    assert_eq!(want.len(), written);

    // Through PostgreSQL when there is one, else through a second SQLite file.
    let middle = match fresh_postgres_database().await {
        Some(url) => url,
        None => {
            eprintln!("COFFER_TEST_POSTGRES not set: copying SQLite -> SQLite -> SQLite");
            dir.path().join("middle.db").to_str().unwrap().to_string()
        }
    };
    let there = run_copy(&source, &middle).await.unwrap();
    assert_eq!(all_rows(&middle).await, want);
    assert_eq!(there.rows, written as u64);
    assert_eq!(there.tables["job"], 2500);
    assert_eq!(there.tables["vault"], 9);
    assert_eq!(there.tables["tag_index"], 7);
    assert_eq!(there.tables["outbox"], 1);
    assert_eq!(there.tables["marker"], 1);
    let bytes: usize = want.iter().map(|(_, k, v)| k.len() + v.len()).sum();
    assert_eq!(there.bytes, bytes as u64);
    assert!(there.from.starts_with("sqlite "), "{}", there.from);
    if StoreHandle::is_postgres(&middle) {
        // The copied rows were vacuumed and analyzed after the commit.
        assert!(
            matches!(there.vacuum, Some(Ok(_))),
            "VACUUM (ANALYZE) after the copy: {:?}",
            there.vacuum
        );
        let (client, connection) = tokio_postgres::connect(&middle, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL \
                 FROM pg_stat_user_tables WHERE relname = 'records'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!((row.get::<_, bool>(0), row.get::<_, bool>(1)), (true, true));
    } else {
        assert!(there.vacuum.is_none(), "{:?}", there.vacuum);
    }

    let back_again = run_copy(&middle, &back).await.unwrap();
    assert_eq!(back_again.rows, written as u64);
    assert_eq!(all_rows(&back).await, want);

    // The copy is a working store: its scans page in the same order as the source's.
    let (a, b) = (
        StoreHandle::open(&source).unwrap(),
        StoreHandle::open(&middle).unwrap(),
    );
    for store in [a, b] {
        let page = store
            .read(|tx| tx.scan("vault", "111122223333:us-east-1:", None, 100))
            .await
            .unwrap();
        let keys: Vec<&str> = page.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "111122223333:us-east-1:B",
                "111122223333:us-east-1:_z",
                "111122223333:us-east-1:a",
                "111122223333:us-east-1:bytes",
                "111122223333:us-east-1:crab-🦀",
                "111122223333:us-east-1:empty",
                "111122223333:us-east-1:ü-\u{10FFFF}",
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_refuses_a_target_that_holds_records_and_leaves_it_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db").to_str().unwrap().to_string();
    fill(&StoreHandle::open(&source).unwrap()).await;
    let mut targets = vec![dir.path().join("used.db").to_str().unwrap().to_string()];
    if let Some(url) = fresh_postgres_database().await {
        targets.push(url);
    }
    for target in targets {
        let store = StoreHandle::open(&target).unwrap();
        store
            .write(|tx| tx.put("vault", "999999999999:us-east-1:mine", b"kept"))
            .await
            .unwrap();
        drop(store);
        let err = run_copy(&source, &target).await.unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
        assert!(message.contains("already holds records"), "{message}");
        assert!(message.contains("new, empty store"), "{message}");
        if StoreHandle::is_postgres(&target) {
            let config: tokio_postgres::Config = target.parse().unwrap();
            let password = std::str::from_utf8(config.get_password().unwrap()).unwrap();
            assert!(
                !message.contains(password),
                "the message shows the password"
            );
        }
        assert_eq!(
            all_rows(&target).await,
            [(
                "vault".to_string(),
                "999999999999:us-east-1:mine".to_string(),
                b"kept".to_vec()
            )]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_refuses_the_same_store_and_a_source_that_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db");
    fill(&StoreHandle::open(source.to_str().unwrap()).unwrap()).await;
    let want = all_rows(source.to_str().unwrap()).await;
    // The same file spelled another way.
    let other_spelling = format!("sqlite://{}/./source.db", dir.path().display());
    let err = run_copy(source.to_str().unwrap(), &other_spelling)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("name the same store"), "{err}");
    assert_eq!(all_rows(source.to_str().unwrap()).await, want);

    let missing = dir.path().join("typo.db");
    let target = dir.path().join("target.db");
    let err = run_copy(missing.to_str().unwrap(), target.to_str().unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("there is no store to copy"),
        "{err}"
    );
    assert!(!missing.exists() && !target.exists());

    let err = run_copy("mysql://u@h/db", target.to_str().unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("mysql:// is not a store"), "{err}");

    if let Some(url) = fresh_postgres_database().await {
        drop(StoreHandle::open(&url).unwrap());
        let err = run_copy(&url, &url).await.unwrap_err();
        assert!(err.to_string().contains("name the same store"), "{err}");
    }
}

/// A copy that fails part-way (PostgreSQL refuses a key with a NUL character, which SQLite
/// stores) commits nothing: the target stays empty, and the error says what the server said.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_copy_leaves_the_postgres_target_empty() {
    let Some(url) = fresh_postgres_database().await else {
        eprintln!("COFFER_TEST_POSTGRES not set: skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db").to_str().unwrap().to_string();
    let store = StoreHandle::open(&source).unwrap();
    fill(&store).await;
    // Last in key order, after several batches went out.
    store
        .write(|tx| tx.put("zzz", "nul\0key", b"x"))
        .await
        .unwrap();
    drop(store);
    let err = run_copy(&source, &url).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("writing postgresql"), "{message}");
    assert!(message.contains("0x00"), "{message}");
    assert!(all_rows(&url).await.is_empty());
}
