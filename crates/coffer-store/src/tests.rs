//! The store contract, written once so every backend can be held to it.

use super::*;

fn open() -> (tempfile::TempDir, StoreHandle) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
    (dir, store)
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_writes_are_read_back_and_survive_reopen() {
    let (dir, store) = open();
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
    let store = StoreHandle::open(dir.path().join("meta.db").to_str().unwrap()).unwrap();
    let v = store.read(|tx| tx.get("vault", "b")).await.unwrap();
    assert_eq!(v.as_deref(), Some(&b"2"[..]));
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
    let (_dir, store) = open();
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

#[tokio::test(flavor = "multi_thread")]
async fn scan_pages_by_prefix_in_key_order() {
    let (_dir, store) = open();
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

#[tokio::test(flavor = "multi_thread")]
async fn cached_reads_see_every_committed_write() {
    let (_dir, store) = open();
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
            Err::<(), _>(StoreError::Backend("refused".into()))
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
