//! The bounded fuzz campaign CI runs: a few thousand generated requests over the whole
//! request path must all get AWS-shaped answers (no panic, no 5xx but 501, forged requests
//! refused). `COFFER_FUZZ_REQUESTS` and `COFFER_FUZZ_SEED` change its size and seed.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_campaign_is_clean() {
    let n = std::env::var("COFFER_FUZZ_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed = std::env::var("COFFER_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let campaign = coffer_fuzz::Campaign::new();
    let stats = campaign.run(n, seed, 4, |_| {}).await;
    println!("{stats:#?}");
    assert_eq!(stats.requests + stats.unbuildable, n);
    assert!(stats.clean(), "{:#?}", stats.failures);
    // The campaign reaches the handlers, not only the front door: many operations succeed,
    // and the domain's own refusals appear beside validation's.
    assert!(
        stats.operations_succeeded.len() >= 20,
        "only {:?} succeeded",
        stats.operations_succeeded
    );
    assert!(stats.by_code.contains_key("ResourceNotFoundException"));
    assert!(stats.by_status.contains_key(&400));
    assert!(stats.by_status.contains_key(&403));
}
