//! Benchmark driver for the engine: one operation per process, so that an outer script can
//! measure wall time and peak memory with `/usr/bin/time -v` and compare with `restic` on the
//! same data in the same run (see `bench/engine/run.sh` and docs/benchmarks.md).
//!
//! ```text
//! engine-bench init    STATE VAULT
//! engine-bench backup  STATE VAULT SOURCE RECOVERY_POINT_ID   # parent: the latest snapshot
//! engine-bench restore STATE VAULT TARGET                     # restores the latest snapshot
//! engine-bench backup-postgres STATE VAULT URL RECOVERY_POINT_ID  # pg_dump of the database
//! engine-bench backup-bucket STATE VAULT BUCKET RECOVERY_POINT_ID # parent: the latest snapshot
//! ```
//! STATE is a directory holding the master key and the vault's sealed key. `backup-bucket` reads
//! the S3-compatible server from `COFFER_BENCH_S3_ENDPOINT`, `COFFER_BENCH_S3_ACCESS_KEY` and
//! `COFFER_BENCH_S3_SECRET_KEY` (region `us-east-1`), so no secret appears in the process list.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use coffer_engine::sources::postgres::{PgConn, PostgresDump};
use coffer_engine::{
    CancelToken, MasterKey, Progress, RestoreOptions, S3Endpoint, SealedVaultKey, SourceSpec,
    VaultLocation, VaultRepo,
};

fn open(state: &Path, vault: &Path) -> coffer_engine::Result<VaultRepo> {
    let master = MasterKey::load_or_create(&state.join("master.key"))?;
    let sealed = std::fs::read_to_string(state.join("sealed"))
        .map_err(|e| coffer_engine::Error::InvalidInput(format!("sealed key: {e}")))?;
    VaultRepo::open(
        VaultLocation::local(vault),
        &SealedVaultKey::from_string(sealed),
        &master,
    )
}

/// The S3-compatible server of `backup-bucket`, from the environment.
fn s3_endpoint() -> coffer_engine::Result<S3Endpoint> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            coffer_engine::Error::InvalidInput(format!("set {name} for backup-bucket"))
        })
    };
    Ok(S3Endpoint {
        endpoint: var("COFFER_BENCH_S3_ENDPOINT")?,
        region: "us-east-1".into(),
        access_key_id: var("COFFER_BENCH_S3_ACCESS_KEY")?,
        secret_access_key: var("COFFER_BENCH_S3_SECRET_KEY")?,
    })
}

fn run(args: &[String]) -> coffer_engine::Result<String> {
    let arg = |i: usize| PathBuf::from(args.get(i).cloned().unwrap_or_default());
    let (state, vault) = (arg(2), arg(3));
    let start = Instant::now();
    let quiet = |_: &Progress| {};
    let out = match args.get(1).map(String::as_str) {
        Some("init") => {
            std::fs::create_dir_all(&state).ok();
            let master = MasterKey::load_or_create(&state.join("master.key"))?;
            let (_, sealed) = VaultRepo::create(VaultLocation::local(&vault), &master)?;
            std::fs::write(state.join("sealed"), sealed.as_str())
                .map_err(|e| coffer_engine::Error::InvalidInput(format!("sealed key: {e}")))?;
            "created".to_string()
        }
        Some("backup") => {
            let v = open(&state, &vault)?;
            let parent = v.list_snapshots()?.pop().map(|s| s.snapshot);
            let rp = args.get(5).cloned().unwrap_or_else(|| "bench".into());
            let o = v.backup(
                &SourceSpec::Directory(arg(4)),
                &rp,
                parent.as_ref(),
                &[],
                quiet,
                CancelToken::new(),
            )?;
            format!(
                "files={} total_bytes={} bytes_added={} bytes_stored={} unmodified={} warnings={}",
                o.files,
                o.total_bytes,
                o.bytes_added,
                o.bytes_stored,
                o.files_unmodified,
                o.warnings.len()
            )
        }
        Some("backup-postgres") => {
            let v = open(&state, &vault)?;
            let conn = PgConn::parse(args.get(4).map_or("", String::as_str), None)?;
            let rp = args.get(5).cloned().unwrap_or_else(|| "bench".into());
            let source = SourceSpec::Custom(std::sync::Arc::new(PostgresDump::new(conn)));
            let o = v.backup(&source, &rp, None, &[], quiet, CancelToken::new())?;
            format!(
                "total_bytes={} bytes_added={} bytes_stored={}",
                o.total_bytes, o.bytes_added, o.bytes_stored
            )
        }
        Some("backup-bucket") => {
            let v = open(&state, &vault)?;
            let parent = v.list_snapshots()?.pop().map(|s| s.snapshot);
            let rp = args.get(5).cloned().unwrap_or_else(|| "bench".into());
            let source = SourceSpec::Bucket {
                endpoint: s3_endpoint()?,
                bucket: args.get(4).cloned().unwrap_or_default(),
            };
            let o = v.backup(
                &source,
                &rp,
                parent.as_ref(),
                &[],
                quiet,
                CancelToken::new(),
            )?;
            format!(
                "files={} total_bytes={} bytes_added={} bytes_stored={} unmodified={} warnings={}",
                o.files,
                o.total_bytes,
                o.bytes_added,
                o.bytes_stored,
                o.files_unmodified,
                o.warnings.len()
            )
        }
        Some("restore") => {
            let v = open(&state, &vault)?;
            let snap = v
                .list_snapshots()?
                .pop()
                .ok_or_else(|| coffer_engine::Error::RecoveryPointNotFound("latest".into()))?;
            let o = v.restore(
                &snap.snapshot,
                &arg(4),
                &RestoreOptions::default(),
                quiet,
                CancelToken::new(),
            )?;
            format!("files={} bytes={}", o.files_restored, o.bytes_restored)
        }
        _ => {
            return Err(coffer_engine::Error::InvalidInput(
                "usage: engine-bench init|backup|backup-postgres|backup-bucket|restore STATE VAULT [SOURCE|URL|BUCKET|TARGET] [RP_ID]"
                    .into(),
            ));
        }
    };
    Ok(format!(
        "{out} seconds={:.3}",
        start.elapsed().as_secs_f64()
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("engine-bench: {}", e.status_message());
            ExitCode::FAILURE
        }
    }
}
