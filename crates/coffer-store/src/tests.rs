//! The store contract, written once so every backend can be held to it: every test runs on
//! SQLite, and on PostgreSQL too when `COFFER_TEST_POSTGRES` holds a URL (a database there
//! on which the tests may create databases; see `.ci/postgres`). Each test gets a fresh
//! database of its own.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A fresh, empty store location on one backend.
struct Fixture {
    location: String,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn open(&self) -> StoreHandle {
        StoreHandle::open(&self.location).unwrap()
    }
}

/// A fresh SQLite file, and a fresh PostgreSQL database when one is configured.
async fn fixtures() -> Vec<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![Fixture {
        location: dir.path().join("meta.db").to_str().unwrap().to_string(),
        _dir: Some(dir),
    }];
    if let Some(location) = fresh_postgres_database().await {
        out.push(Fixture {
            location,
            _dir: None,
        });
    }
    out
}

/// Creates an empty database on the server named by `COFFER_TEST_POSTGRES` and returns its
/// URL, or `None` when the variable is not set.
async fn fresh_postgres_database() -> Option<String> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let admin = std::env::var("COFFER_TEST_POSTGRES")
        .ok()
        .filter(|v| !v.is_empty())?;
    let name = format!(
        "coffer_store_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to COFFER_TEST_POSTGRES");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"
        ))
        .await
        .expect("create a test database");
    drop(client);
    let _ = driver.await;
    Some(with_database(&admin, &name))
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..authority_end])
}

#[test]
fn with_database_replaces_only_the_database() {
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:5/postgres?sslmode=disable", "x"),
        "postgres://u:p@127.0.0.1:5/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_writes_are_read_back_and_survive_reopen() {
    for fx in fixtures().await {
        eprintln!("backend: {}", fx.location.split(':').next().unwrap_or(""));
        let store = fx.open();
        store
            .write(|tx| {
                tx.put("vault", "a", b"1")?;
                assert!(tx.insert_new("vault", "b", b"2")?);
                assert!(!tx.insert_new("vault", "b", b"3")?);
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        drop(store);
        let store = fx.open();
        let v = store.read(|tx| tx.get("vault", "b")).await.unwrap();
        assert_eq!(v.as_deref(), Some(&b"2"[..]));
    }
}

#[derive(Debug)]
enum DomainError {
    Refused,
    Store,
}

impl From<StoreError> for DomainError {
    fn from(_: StoreError) -> Self {
        DomainError::Store
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_rolls_the_transaction_back() {
    for fx in fixtures().await {
        eprintln!("backend: {}", fx.location.split(':').next().unwrap_or(""));
        let store = fx.open();
        let r: std::result::Result<(), DomainError> = store
            .write(|tx| {
                tx.put("vault", "a", b"1")?;
                Err(DomainError::Refused)
            })
            .await;
        assert!(matches!(r, Err(DomainError::Refused)));
        assert!(
            store
                .read(|tx| tx.get("vault", "a"))
                .await
                .unwrap()
                .is_none()
        );
        let _ = DomainError::Store;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_pages_by_prefix_in_key_order() {
    for fx in fixtures().await {
        eprintln!("backend: {}", fx.location.split(':').next().unwrap_or(""));
        let store = fx.open();
        store
            .write(|tx| {
                for k in ["acct1:r:c", "acct1:r:a", "acct1:r:b", "acct2:r:a"] {
                    tx.put("vault", k, k.as_bytes())?;
                }
                tx.put("plan", "acct1:r:z", b"x")?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        let page1 = store
            .read(|tx| tx.scan("vault", "acct1:", None, 2))
            .await
            .unwrap();
        let keys: Vec<_> = page1.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["acct1:r:a", "acct1:r:b"]);
        let page2 = store
            .read(|tx| tx.scan("vault", "acct1:", Some("acct1:r:b"), 2))
            .await
            .unwrap();
        let keys: Vec<_> = page2.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["acct1:r:c"]);
        assert!(
            store
                .write(|tx| tx.delete("vault", "acct1:r:c"))
                .await
                .unwrap()
        );
        store.clear().await.unwrap();
        assert!(
            store
                .read(|tx| tx.scan("vault", "", None, 100))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn a_prefix_ends_at_its_last_character_raised_by_one() {
    use crate::prefix_end;
    assert_eq!(prefix_end("acct1:").as_deref(), Some("acct1;"));
    assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(prefix_end("a\u{10FFFF}\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(prefix_end("x\u{D7FF}").as_deref(), Some("x\u{E000}"));
    assert_eq!(prefix_end("ü").as_deref(), Some("ý"));
    assert_eq!(prefix_end(""), None);
    assert_eq!(prefix_end("\u{10FFFF}"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_finds_every_key_of_its_prefix_whatever_follows() {
    for fx in fixtures().await {
        eprintln!("backend: {}", fx.location.split(':').next().unwrap_or(""));
        let store = fx.open();
        let keys = [
            "a",
            "a:\u{10FFFF}",
            "a:\u{10FFFF}z",
            "a:\u{10FFFF}\u{10FFFF}",
            "a;",
            "\u{D7FF}x",
            "\u{E000}",
            "\u{10FFFF}",
            "\u{10FFFF}\u{10FFFF}q",
        ];
        store
            .write(move |tx| {
                for k in keys {
                    tx.put("vault", k, k.as_bytes())?;
                }
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        let scan = |prefix: &'static str, after: Option<&'static str>| {
            let store = store.clone();
            async move {
                let rows = store
                    .read(move |tx| tx.scan("vault", prefix, after, 100))
                    .await
                    .unwrap();
                rows.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            scan("a:", None).await,
            ["a:\u{10FFFF}", "a:\u{10FFFF}z", "a:\u{10FFFF}\u{10FFFF}"]
        );
        assert_eq!(
            scan("a:\u{10FFFF}", Some("a:\u{10FFFF}z")).await,
            ["a:\u{10FFFF}\u{10FFFF}"]
        );
        assert_eq!(scan("\u{D7FF}", None).await, ["\u{D7FF}x"]);
        assert_eq!(
            scan("\u{10FFFF}", None).await,
            ["\u{10FFFF}", "\u{10FFFF}\u{10FFFF}q"]
        );
        assert_eq!(scan("", None).await.len(), keys.len());
        store.clear().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn get_many_answers_each_key_in_order_and_prefetched_reads_stay_true() {
    for fx in fixtures().await {
        eprintln!("backend: {}", fx.location.split(':').next().unwrap_or(""));
        let store = fx.open();
        store
            .write(|tx| {
                tx.put("job", "a", b"1")?;
                tx.put("job", "b", b"2")?;
                tx.put("other", "a", b"x")?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        let keys: Vec<String> = ["b", "missing", "a", "b"].map(String::from).to_vec();
        let got = store
            .read(move |tx| tx.get_many("job", &keys))
            .await
            .unwrap();
        assert_eq!(
            got,
            [
                Some(b"2".to_vec()),
                None,
                Some(b"1".to_vec()),
                Some(b"2".to_vec())
            ]
        );
        let (a, other, b_after_put, c) = store
            .write(|tx| {
                let mut p = crate::Prefetched::read(
                    tx,
                    vec![(
                        "job",
                        vec!["a".to_string(), "b".to_string(), "c".to_string()],
                    )],
                )?;
                let a = p.get("job", "a")?;
                let other = p.get("other", "a")?;
                p.put("job", "b", b"3")?;
                let b = p.get("job", "b")?;
                p.put("job", "c", b"4")?;
                let c = p.get("job", "c")?;
                Ok::<_, StoreError>((a, other, b, c))
            })
            .await
            .unwrap();
        assert_eq!(a.as_deref(), Some(&b"1"[..]));
        assert_eq!(
            other.as_deref(),
            Some(&b"x"[..]),
            "another table reads through"
        );
        assert_eq!(
            b_after_put.as_deref(),
            Some(&b"3"[..]),
            "a write forgets what was read ahead"
        );
        assert_eq!(
            c.as_deref(),
            Some(&b"4"[..]),
            "a key read ahead as absent, then written"
        );
        store.clear().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_reads_see_every_committed_write() {
    for fx in fixtures().await {
        eprintln!("backend: {}", fx.location.split(':').next().unwrap_or(""));
        let store = fx.open();
        assert!(store.get_cached("vault", "k").await.unwrap().is_none());
        store.write(|tx| tx.put("vault", "k", b"1")).await.unwrap();
        assert_eq!(
            store
                .get_cached("vault", "k")
                .await
                .unwrap()
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"1"[..])
        );
        assert_eq!(
            store
                .scan_cached("vault", "", None, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        store.write(|tx| tx.put("vault", "k", b"2")).await.unwrap();
        store.write(|tx| tx.put("vault", "k2", b"3")).await.unwrap();
        assert_eq!(
            store
                .get_cached("vault", "k")
                .await
                .unwrap()
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"2"[..])
        );
        assert_eq!(
            store
                .scan_cached("vault", "", None, 10)
                .await
                .unwrap()
                .len(),
            2
        );
        // A rolled-back write leaves the cached value right too.
        let _ = store
            .write(|tx| {
                tx.put("vault", "k", b"rolled back")?;
                Err::<(), _>(StoreError::msg(ErrorKind::Other, "refused"))
            })
            .await;
        assert_eq!(
            store
                .get_cached("vault", "k")
                .await
                .unwrap()
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"2"[..])
        );
        store.write(|tx| tx.delete("vault", "k")).await.unwrap();
        assert!(store.get_cached("vault", "k").await.unwrap().is_none());
        store.clear().await.unwrap();
        assert!(
            store
                .scan_cached("vault", "", None, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn an_unknown_store_scheme_is_refused_with_the_accepted_forms() {
    let err = StoreHandle::open("mysql://u@h/db").err().expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("mysql:// is not a store Coffer knows"),
        "{text}"
    );
    assert!(text.contains("postgres://"), "{text}");
}

/// Two handles on one store stand for two nodes (or two processes on one SQLite file).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_on_several_handles_lose_no_update() {
    for fx in fixtures().await {
        eprintln!("backend: {}", fx.location.split(':').next().unwrap_or(""));
        let nodes = [fx.open(), fx.open()];
        let mut tasks = Vec::new();
        for i in 0..60 {
            let store = nodes[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                store
                    .write(|tx| {
                        let n = match tx.get("counter", "c")? {
                            Some(v) => String::from_utf8(v).unwrap().parse::<u64>().unwrap(),
                            None => 0,
                        };
                        tx.put("counter", "c", (n + 1).to_string().as_bytes())?;
                        Ok::<_, StoreError>(())
                    })
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let v = nodes[0].read(|tx| tx.get("counter", "c")).await.unwrap();
        assert_eq!(v.as_deref(), Some(&b"60"[..]), "{}", fx.location);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn insert_new_claims_a_key_once_across_handles() {
    for fx in fixtures().await {
        eprintln!("backend: {}", fx.location.split(':').next().unwrap_or(""));
        let nodes = [fx.open(), fx.open()];
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = nodes[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                store
                    .write(move |tx| {
                        let won = tx.insert_new("sched_firing", "plan:rule:05:00", b"x")?;
                        if won {
                            tx.put("job", &format!("job-{i}"), b"created")?;
                        }
                        Ok::<_, StoreError>(won)
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
        let jobs = nodes[1]
            .read(|tx| tx.scan("job", "", None, 100))
            .await
            .unwrap();
        assert_eq!(jobs.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_scan_in_byte_order_on_every_backend() {
    for fx in fixtures().await {
        let store = fx.open();
        let keys = ["a:B", "a:a", "a:Z", "a:é", "a:_", "a:-", "a:10", "a:9"];
        store
            .write(move |tx| {
                for k in keys {
                    tx.put("t", k, b"")?;
                }
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        let got: Vec<String> = store
            .read(|tx| tx.scan("t", "a:", None, 100))
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{}", fx.location);
    }
}

/// The cause of a store error, as the backend's own error type.
fn cause<T: std::error::Error + 'static>(e: &StoreError) -> Option<&T> {
    std::error::Error::source(e).and_then(|s| s.downcast_ref::<T>())
}

/// Another connection holds SQLite's write lock: the store's write fails as a retryable
/// conflict that keeps rusqlite's error as its source, and succeeds once the lock is gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_sqlite_database_is_a_retryable_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let store =
        SqliteStore::open_with_busy_timeout(&path, std::time::Duration::from_millis(50)).unwrap();
    let store = StoreHandle::new_single_writer(Arc::new(store));
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let err = store
        .write(|tx| tx.put("vault", "a", b"1"))
        .await
        .expect_err("the write lock is held by another connection");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.is_retryable());
    let sqlite = cause::<rusqlite::Error>(&err).expect("rusqlite's error is the source");
    assert_eq!(
        sqlite.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy)
    );

    other.execute_batch("COMMIT").unwrap();
    store.write(|tx| tx.put("vault", "a", b"1")).await.unwrap();
    let v = store.read(|tx| tx.get("vault", "a")).await.unwrap();
    assert_eq!(v.as_deref(), Some(&b"1"[..]));
}

/// A new SQLite store is made with 8 KiB pages (a job or recovery point record fits its
/// B-tree page), and a store made with 4 KiB pages opens, reads and writes as before.
#[tokio::test(flavor = "multi_thread")]
async fn new_sqlite_stores_use_8_kib_pages_and_older_ones_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let page_size = |p: &std::path::Path| -> i64 {
        rusqlite::Connection::open(p)
            .unwrap()
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap()
    };
    let new = dir.path().join("new.db");
    let store = StoreHandle::open(new.to_str().unwrap()).unwrap();
    store
        .write(|tx| tx.put("t", "k", &[7u8; 1500]))
        .await
        .unwrap();
    drop(store);
    assert_eq!(page_size(&new), 8192);

    let old = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&old).unwrap();
        c.pragma_update(None, "page_size", 4096).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch(
            "CREATE TABLE records (tbl TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
             PRIMARY KEY (tbl, key)) WITHOUT ROWID;",
        )
        .unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
    }
    let store = StoreHandle::open(old.to_str().unwrap()).unwrap();
    store
        .write(|tx| tx.put("t", "k", &[9u8; 1500]))
        .await
        .unwrap();
    let back = store.read(|tx| tx.get("t", "k")).await.unwrap();
    assert_eq!(back, Some(vec![9u8; 1500]));
    drop(store);
    assert_eq!(page_size(&old), 4096);
}

/// A file that is not a SQLite database is corruption, which no retry mends.
#[test]
fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = StoreHandle::open(path.to_str().unwrap())
        .err()
        .expect("a damaged file is refused");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(!err.is_retryable());
    assert!(cause::<rusqlite::Error>(&err).is_some());
}

/// A SQLite file in a directory that cannot be created: the store is unavailable.
#[test]
fn a_sqlite_file_that_cannot_be_created_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let err = StoreHandle::open(blocker.join("meta.db").to_str().unwrap())
        .err()
        .expect("no database under a file");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert!(cause::<std::io::Error>(&err).is_some(), "{err:?}");
}

/// A PostgreSQL URL where no server listens, or one that does not parse, makes the store
/// unavailable; the error keeps the client's error as its source and never shows the password.
#[test]
fn a_bad_postgres_url_is_unavailable() {
    let err = StoreHandle::open("postgres://coffer:s3cret-pw@127.0.0.1:1/coffer")
        .err()
        .expect("nothing listens on port 1");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert!(cause::<tokio_postgres::Error>(&err).is_some(), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains("s3cret-pw"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");

    let err = StoreHandle::open("postgres://coffer@127.0.0.1:notaport/coffer")
        .err()
        .expect("a port that is not a number");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string().contains("not a valid connection URL"),
        "{err}"
    );
}

#[test]
fn only_conflicts_and_unavailability_are_retryable() {
    let io = || std::io::Error::other("x");
    assert!(StoreError::new(ErrorKind::Conflict, "c", io()).is_retryable());
    assert!(StoreError::new(ErrorKind::Unavailable, "u", io()).is_retryable());
    assert!(!StoreError::corrupt("record", io()).is_retryable());
    assert!(!StoreError::msg(ErrorKind::Other, "o").is_retryable());
    assert!(!StoreError::Task("t".into()).is_retryable());
    let e = StoreError::corrupt("vault v", io()).map_message(|m| format!("reading {m}"));
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert_eq!(e.to_string(), "metadata store corrupt: reading vault v");
    assert!(std::error::Error::source(&e).is_some());
}

/// PostgreSQL only: the checks below need a server (they pass trivially without one, so CI
/// sets `COFFER_TEST_POSTGRES`; see `.ci/run`).
mod postgres_only {
    use super::*;
    use tokio_postgres::error::SqlState;

    async fn admin(url: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn nodes_starting_together_migrate_once() {
        let Some(url) = fresh_postgres_database().await else {
            return;
        };
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::task::spawn_blocking(move || StoreHandle::open(&url).map(|_| ()))
            })
            .collect();
        for o in opens {
            o.await.unwrap().unwrap();
        }
        let c = admin(&url).await;
        let rows = c
            .query("SELECT version FROM coffer_schema_migrations", &[])
            .await
            .unwrap();
        let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(versions, [1]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_newer_schema_is_refused_with_a_message() {
        let Some(url) = fresh_postgres_database().await else {
            return;
        };
        drop(StoreHandle::open(&url).unwrap());
        admin(&url)
            .await
            .batch_execute("INSERT INTO coffer_schema_migrations (version) VALUES (99)")
            .await
            .unwrap();
        let err = StoreHandle::open(&url)
            .err()
            .expect("a newer schema is refused");
        assert!(
            err.to_string()
                .contains("schema version 99, newer than this Coffer"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_description_and_errors_never_show_the_password() {
        let Some(url) = fresh_postgres_database().await else {
            return;
        };
        let config: tokio_postgres::Config = url.parse().unwrap();
        let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
        let store = StoreHandle::open(&url).unwrap();
        let described = store.describe();
        assert!(described.starts_with("postgresql "), "{described}");
        assert!(!described.contains(&password), "{described}");
        // A wrong password: the error names the user and the server, not the secret.
        let wrong = url.replacen(&password, "not-the-password", 1);
        let err = StoreHandle::open(&wrong)
            .err()
            .expect("wrong password refused");
        let text = err.to_string();
        assert!(!text.contains("not-the-password"), "{text}");
        assert!(text.contains("password authentication failed"), "{text}");
    }

    /// A write waits for another node's open write transaction instead of failing, and then
    /// sees what that transaction committed.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_writer_waits_for_another_nodes_transaction_and_sees_its_commit() {
        let Some(url) = fresh_postgres_database().await else {
            return;
        };
        let store = StoreHandle::open(&url).unwrap();
        let mut other = admin(&url).await;
        let tx = other.transaction().await.unwrap();
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&crate::postgres::WRITE_LOCK],
        )
        .await
        .unwrap();
        tx.execute(
            "INSERT INTO records (tbl, key, value) VALUES ('counter', 'c', '41')",
            &[],
        )
        .await
        .unwrap();
        let s = store.clone();
        let waiting = tokio::spawn(async move {
            s.write(|tx| {
                let n: u64 = String::from_utf8(tx.get("counter", "c")?.unwrap_or_default())
                    .unwrap()
                    .parse()
                    .unwrap_or(0);
                tx.put("counter", "c", (n + 1).to_string().as_bytes())?;
                Ok::<_, StoreError>(n)
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "the write did not wait for the lock"
        );
        tx.commit().await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), 41);
        let v = store.read(|tx| tx.get("counter", "c")).await.unwrap();
        assert_eq!(v.as_deref(), Some(&b"42"[..]));
    }

    /// The server ends every connection of the node (a restart, a failover): the next
    /// transactions reconnect instead of failing.
    #[tokio::test(flavor = "multi_thread")]
    async fn transactions_reconnect_after_the_server_closed_the_connections() {
        let Some(url) = fresh_postgres_database().await else {
            return;
        };
        let store = StoreHandle::open(&url).unwrap();
        for i in 0..4 {
            let v = i.to_string();
            store
                .write(move |tx| tx.put("vault", "k", v.as_bytes()))
                .await
                .unwrap();
        }
        let ended: i64 = admin(&url)
            .await
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'coffer'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(ended >= 1, "no connection of the store was open");
        store
            .write(|tx| tx.put("vault", "k", b"after"))
            .await
            .unwrap();
        let v = store.read(|tx| tx.get("vault", "k")).await.unwrap();
        assert_eq!(v.as_deref(), Some(&b"after"[..]));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn read_transactions_refuse_writes() {
        let Some(url) = fresh_postgres_database().await else {
            return;
        };
        let store = StoreHandle::open(&url).unwrap();
        let r = store.read(|tx| tx.put("vault", "a", b"1")).await;
        assert!(r.is_err());
        assert!(
            store
                .read(|tx| tx.get("vault", "a"))
                .await
                .unwrap()
                .is_none()
        );
    }

    /// Two serializable transactions that read what the other writes: the loser's error
    /// (40001) is a retryable conflict; a connection the server ends is unavailability.
    #[tokio::test(flavor = "multi_thread")]
    async fn serialization_failures_are_conflicts_and_dropped_connections_unavailable() {
        let Some(url) = fresh_postgres_database().await else {
            return;
        };
        let mut a = admin(&url).await;
        let mut b = admin(&url).await;
        a.batch_execute("CREATE TABLE t (x INT)").await.unwrap();
        let ta = a
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::Serializable)
            .start()
            .await
            .unwrap();
        let tb = b
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::Serializable)
            .start()
            .await
            .unwrap();
        ta.batch_execute("SELECT count(*) FROM t; INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        tb.batch_execute("SELECT count(*) FROM t; INSERT INTO t VALUES (2)")
            .await
            .unwrap();
        ta.commit().await.unwrap();
        let lost = tb.commit().await.expect_err("one of the two must fail");
        assert_eq!(lost.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
        let err = StoreError::from(lost);
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(err.is_retryable());
        assert!(err.to_string().contains("40001"), "{err}");

        let c = admin(&url).await;
        let pid: i32 = c
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        admin(&url)
            .await
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        let gone = c
            .query_one("SELECT 1", &[])
            .await
            .expect_err("the server ended the connection");
        let err = StoreError::from(gone);
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    }

    #[test]
    fn the_write_lock_in_the_begin_statement_is_the_constant() {
        assert!(crate::postgres::BEGIN_WRITE.contains(&crate::postgres::WRITE_LOCK.to_string()));
    }
}

/// Group commit: write transactions queued while the writer is busy commit together, each in
/// its own savepoint. One that fails, panics or asks not to commit is rolled back alone; its
/// neighbours in the batch commit, with one commit (one fsync) for all of them.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_write_in_a_batch_does_not_undo_its_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let sqlite = Arc::new(SqliteStore::open(&path).unwrap());
    let before = sqlite.commits();

    // The first write holds the writer until every other one is queued behind it.
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let first = sqlite.run_write(Box::new(move |tx| {
        hold.recv().unwrap();
        tx.put("t", "first", b"1")?;
        Ok(true)
    }));
    let mut queued = Vec::new();
    for i in 0..40 {
        let work: TxnWork = Box::new(move |tx| {
            tx.put("t", &format!("k{i:02}"), format!("v{i}").as_bytes())?;
            match i % 10 {
                3 => Err(StoreError::msg(ErrorKind::Other, "refused by the domain")),
                5 => Ok(false),
                7 => panic!("a bug in write {i}"),
                _ => Ok(true),
            }
        });
        queued.push(sqlite.run_write(work));
    }
    release.send(()).unwrap();
    first.await.unwrap();
    let mut outcomes = Vec::new();
    for q in queued {
        outcomes.push(q.await);
    }
    // The writer may take the first write alone or with some of the others: either way the
    // 41 writes took at most two commits.
    let commits = sqlite.commits() - before;
    assert!(
        (1..=2).contains(&commits),
        "41 writes took {commits} commits"
    );

    let store = StoreHandle::new_single_writer(sqlite.clone());
    for (i, outcome) in outcomes.iter().enumerate() {
        let stored = store
            .read(move |tx| tx.get("t", &format!("k{i:02}")))
            .await
            .unwrap();
        match i % 10 {
            3 | 7 => {
                assert!(outcome.is_err(), "write {i}: {outcome:?}");
                assert!(stored.is_none(), "write {i} was rolled back");
            }
            5 => {
                assert!(outcome.is_ok(), "write {i}: {outcome:?}");
                assert!(stored.is_none(), "write {i} asked not to commit");
            }
            _ => {
                assert!(outcome.is_ok(), "write {i}: {outcome:?}");
                assert_eq!(stored, Some(format!("v{i}").into_bytes()), "write {i}");
            }
        }
    }
    let panicked = outcomes[7].as_ref().unwrap_err().to_string();
    assert!(panicked.contains("a bug in write 7"), "{panicked}");
    let first = store.read(|tx| tx.get("t", "first")).await.unwrap();
    assert_eq!(first.as_deref(), Some(&b"1"[..]));
}

/// Many writers at once: every write a caller was told succeeded is in the store after it is
/// closed and opened again, and none that failed is.
#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_write_is_there_after_reopening() {
    for fx in fixtures().await {
        eprintln!("backend: {}", fx.location.split(':').next().unwrap_or(""));
        let store = fx.open();
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .write(move |tx| {
                        tx.put("acked", &format!("k{i:03}"), &i.to_be_bytes())?;
                        if i % 17 == 0 {
                            return Err(StoreError::msg(ErrorKind::Other, "refused"));
                        }
                        Ok(())
                    })
                    .await
            }));
        }
        let mut acked = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            if t.await.unwrap().is_ok() {
                acked.push(i as u32);
            }
        }
        assert_eq!(acked.len(), 200 - 12, "{}", fx.location);
        drop(store);
        let store = fx.open();
        let rows = store
            .read(|tx| tx.scan("acked", "", None, 1000))
            .await
            .unwrap();
        let got: Vec<u32> = rows
            .iter()
            .map(|(_, v)| u32::from_be_bytes(v.as_slice().try_into().unwrap()))
            .collect();
        assert_eq!(got, acked, "{}", fx.location);
    }
}

/// SQLite reads run on the caller's own thread (no hop to the blocking pool), see the writes
/// committed before them, and cannot write (as PostgreSQL's READ ONLY reads cannot).
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_reads_run_on_the_callers_thread_and_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
    store.write(|tx| tx.put("t", "a", b"1")).await.unwrap();
    let caller = std::thread::current().id();
    let (thread, value) = store
        .read(|tx| Ok::<_, StoreError>((std::thread::current().id(), tx.get("t", "a")?)))
        .await
        .unwrap();
    assert_eq!(thread, caller);
    assert_eq!(value.as_deref(), Some(&b"1"[..]));

    let refused = store.read(|tx| tx.put("t", "b", b"2")).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(store.read(|tx| tx.get("t", "b")).await.unwrap().is_none());
    // A panic in a read is the caller's error (its connection is closed), and reads go on.
    let panicked = store
        .read(|_tx| -> Result<()> { panic!("a bug in a read") })
        .await;
    assert!(
        panicked
            .unwrap_err()
            .to_string()
            .contains("a bug in a read")
    );
    let again = store.read(|tx| tx.get("t", "a")).await.unwrap();
    assert_eq!(again.as_deref(), Some(&b"1"[..]));
}

/// A long scan in a read (past the rows read on the caller's thread) returns every row, in
/// order, on a multi-threaded runtime and on a current-thread one.
#[test]
fn long_scans_return_every_row_on_either_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("meta.db").to_str().unwrap().to_string();
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let store = multi.block_on(async {
        let store = StoreHandle::open(&location).unwrap();
        store
            .write(|tx| {
                for i in 0..2000u32 {
                    tx.put("long", &format!("k{i:05}"), &i.to_be_bytes())?;
                }
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        store
    });
    let check = |rows: Vec<Record>| {
        assert_eq!(rows.len(), 2000);
        for (i, (k, _)) in rows.iter().enumerate() {
            assert_eq!(k, &format!("k{i:05}"));
        }
    };
    let on_worker = {
        let store = store.clone();
        multi.block_on(async move {
            tokio::spawn(
                async move { store.read(|tx| tx.scan("long", "", None, usize::MAX)).await },
            )
            .await
            .unwrap()
        })
    };
    check(on_worker.unwrap());
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    check(
        current
            .block_on(store.read(|tx| tx.scan("long", "", None, usize::MAX)))
            .unwrap(),
    );
}

#[path = "copy_tests.rs"]
mod copy_tests;
