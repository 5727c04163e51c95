//! `coffer`: a self-hosted backup service speaking the AWS Backup API.
//!
//! This crate is wiring only: it reads configuration, opens the metadata store, builds the
//! domain service and serves it over HTTP. Everything with meaning lives in the library
//! crates (see docs/architecture.md).

mod admin;
mod approvals;
mod cli;
mod config;
mod console;
mod logging;
mod metrics;
mod notify;
mod reload;
mod s3_endpoint;
mod server;
mod wire;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: a request allocates and frees many small buffers
/// (the body, the decoded records, the encoded answer) across worker threads, and glibc's
/// malloc spent a tenth of the CPU of a read under load in a profile (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use config::{Config, ServeArgs};

#[derive(Parser)]
#[command(
    name = "coffer",
    version,
    about = "A self-hosted backup service speaking the AWS Backup API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded defaults: SQLite in ./coffer-data, 127.0.0.1:9191, SigV4).
    Serve(ServeArgs),
    /// Print the table of implemented operations, read off the code (Markdown).
    Coverage,
    /// Vault keys: `coffer vault-key export --vault NAME` prints what plain restic needs.
    #[command(subcommand)]
    VaultKey(VaultKeyCommand),
    /// Configuration files: `coffer config check FILE` validates one without starting.
    #[command(subcommand)]
    Config(cli::ConfigCommand),
    /// List the declared resources ([[resources]]) and check that each source can be read.
    Inventory(cli::InventoryArgs),
    /// Notification delivery: list the dead letters, replay them.
    #[command(subcommand)]
    Notifications(cli::NotificationsCommand),
    /// Approval teams: list the sessions awaiting a member's approval, approve one.
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
    /// Scale benchmark: fill a new store with many accounts' vaults, plans, recovery points
    /// (metadata only) and ended jobs (docs/benchmarks.md, "Scale").
    BenchSeed(cli::BenchSeedArgs),
    /// The metadata store: `coffer store copy --from A --to B` copies every record into a new,
    /// empty store (SQLite to PostgreSQL and back; docs/store.md).
    #[command(subcommand)]
    Store(cli::StoreCommand),
}

#[derive(Subcommand)]
enum VaultKeyCommand {
    /// Print a vault's repository and password, to open it with plain `restic` or `rustic`.
    Export(server::ExportArgs),
}

/// A check that found problems (already printed) ends the process with status 1.
fn exit_if_not(ok: bool) -> anyhow::Result<()> {
    if ok {
        Ok(())
    } else {
        Err(anyhow::anyhow!("problems found (listed above)"))
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coffer: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let config = Config::resolve(args)?;
                server::run(config).await
            }
            Command::Coverage => server::print_coverage().await,
            Command::VaultKey(VaultKeyCommand::Export(args)) => {
                server::export_vault_key(args).await
            }
            Command::Config(cli::ConfigCommand::Check { file }) => {
                exit_if_not(cli::config_check(&file)?)
            }
            Command::Inventory(args) => exit_if_not(cli::inventory(&args.config)?),
            Command::Notifications(cmd) => cli::notifications(cmd).await,
            Command::Approvals(cmd) => approvals::run(cmd).await,
            Command::BenchSeed(args) => cli::bench_seed(args).await,
            Command::Store(cmd) => cli::store(cmd).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffer: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
