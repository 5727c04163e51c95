//! `coffer-fuzz`: the long fuzz campaign over Coffer's request path (see docs/hardening.md).
//!
//! `cargo run --release -p coffer-fuzz -- [REQUESTS] [SEED] [CONCURRENCY] [PASSES]` (defaults
//! 1,000,000 requests, seed 1, 8 at a time, one pass) prints progress every 100,000 requests and
//! a summary; it exits non-zero if any request panicked, got a 5xx other than 501, got a
//! malformed error, or was forged and not refused. With several passes the same requests are
//! sent again on the same store, which creates no new state: memory that still grows from pass
//! to pass would be a leak.

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let passes: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let stats = rt.block_on(async {
        let campaign = coffer_fuzz::Campaign::new();
        for pass in 1..passes {
            let s = campaign.run(n, seed, concurrency, |_| {}).await;
            eprintln!(
                "pass {pass}: {} requests, clean {}, rss {} -> {} kB",
                s.requests,
                s.clean(),
                s.rss_before_kb,
                s.rss_after_kb
            );
            if !s.clean() {
                return s;
            }
        }
        campaign
            .run(n, seed, concurrency, |s| {
                if s.requests.is_multiple_of(100_000) {
                    eprintln!(
                        "{:>9} requests {:>7.1}s  rss {:>7} kB  panics {} 5xx {} malformed {} forged-accepted {}",
                        s.requests,
                        s.elapsed.as_secs_f64(),
                        coffer_fuzz::rss_kb(),
                        s.panics,
                        s.server_errors,
                        s.malformed,
                        s.forged_accepted
                    );
                }
            })
            .await
    });
    println!("requests:          {}", stats.requests);
    println!("unbuildable:       {}", stats.unbuildable);
    println!("seconds:           {:.1}", stats.elapsed.as_secs_f64());
    println!(
        "requests/second:   {:.0}",
        stats.requests as f64 / stats.elapsed.as_secs_f64().max(0.001)
    );
    println!("succeeded (2xx):   {}", stats.succeeded);
    println!("by status:         {:?}", stats.by_status);
    println!(
        "operations with a success: {} of {}",
        stats.operations_succeeded.len(),
        coffer_api::OPERATIONS.len()
    );
    println!("by error code:     {:?}", stats.by_code);
    println!("panics:            {}", stats.panics);
    println!("5xx (not 501):     {}", stats.server_errors);
    println!("malformed errors:  {}", stats.malformed);
    println!("forged accepted:   {}", stats.forged_accepted);
    println!("rss before:        {} kB", stats.rss_before_kb);
    println!("rss after:         {} kB", stats.rss_after_kb);
    for f in &stats.failures {
        println!("FAILURE {f}");
    }
    if !stats.clean() {
        std::process::exit(1);
    }
}
