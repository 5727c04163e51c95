//! Starts `coffer serve` as a child process and builds SDK clients for it.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use aws_sdk_backup::config::retry::RetryConfig;
use aws_sdk_backup::config::{BehaviorVersion, Credentials, Region};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub const AKID: &str = "AKIDCOFFERTEST000001";
pub const SECRET: &str = "coffer-test-secret-key-0000000000000001";
pub const ACCOUNT: &str = "111122223333";

/// With `COFFER_E2E_POSTGRES` set (a PostgreSQL URL on which databases may be created), the
/// `--store` arguments that give a server a database of its own there, named after its data
/// directory so a restart on the same directory finds its state again; otherwise none (SQLite
/// in the data directory). `args` are the server's other arguments; none when they name a
/// store already.
pub fn store_args(args: &[&str]) -> Vec<String> {
    use std::hash::{Hash, Hasher};
    let Some(admin) = std::env::var("COFFER_E2E_POSTGRES")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        return Vec::new();
    };
    if args.contains(&"--store") {
        return Vec::new();
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match args.iter().position(|a| *a == "--data-dir") {
        Some(i) => args.get(i + 1).hash(&mut h),
        None => SystemTime::now().hash(&mut h),
    }
    let name = format!("coffer_e2e_{}_{:016x}", std::process::id(), h.finish());
    vec!["--store".into(), postgres_database(&admin, &name)]
}

/// The `--store` location a server started with `--data-dir data_dir` uses: its own
/// PostgreSQL database under `COFFER_E2E_POSTGRES`, otherwise the data directory's SQLite file.
pub fn store_location(data_dir: &str) -> String {
    match store_args(&["--data-dir", data_dir]).pop() {
        Some(url) => url,
        None => format!("{data_dir}/metadata.db"),
    }
}

/// Creates database `name` (if missing) on the server of the PostgreSQL URL `admin` and
/// returns its URL. Uses `psql`.
pub fn postgres_database(admin: &str, name: &str) -> String {
    let psql = |sql: &str| {
        let out = std::process::Command::new("psql")
            .args([admin, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
            .output()
            .expect("run psql (tests on PostgreSQL need the PostgreSQL client)");
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    if psql(&format!(
        "SELECT 1 FROM pg_database WHERE datname = '{name}'"
    ))
    .is_empty()
    {
        psql(&format!(
            "CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"
        ));
    }
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{name}{query}", &base[..authority_end])
}

/// A running `coffer serve`.
pub struct Server {
    child: Child,
    pub endpoint: String,
    /// Everything the server printed on stdout before it was ready.
    pub banner: String,
}

impl Server {
    /// Starts `coffer serve --listen 127.0.0.1:0` with `args`, waiting until it listens.
    pub async fn start(args: &[&str]) -> Server {
        Server::start_full(args, &[], None).await
    }

    /// Like `start`; with `log`, the server logs at its default level (`COFFER_LOG` unset)
    /// into that file instead of at WARN onto the test's stderr.
    pub async fn start_logging(args: &[&str], log: Option<&Path>) -> Server {
        Server::start_full(args, &[], log).await
    }

    /// Like [`Server::start`], with extra environment variables (test hooks such as
    /// `COFFER_TEST_PAUSE_AT`).
    pub async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_full(args, env, None).await
    }

    pub async fn start_full(args: &[&str], env: &[(&str, &str)], log: Option<&Path>) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
        cmd.envs(env.iter().copied());
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .args(store_args(args))
            .env_remove("COFFER_LISTEN")
            .env_remove("COFFER_STORE")
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        match log {
            Some(path) => {
                cmd.env_remove("COFFER_LOG")
                    .stderr(std::fs::File::create(path).expect("create the log file"));
            }
            None => {
                cmd.env("COFFER_LOG", "warn").stderr(Stdio::inherit());
            }
        }
        let mut child = cmd.spawn().expect("start coffer");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("coffer exited before listening");
                banner.push_str(&line);
                banner.push('\n');
                if let Some(rest) = line.strip_prefix("Coffer listening on ") {
                    return rest.trim().to_string();
                }
            }
        })
        .await
        .expect("coffer did not start within 30 s");
        // Keep reading stdout so the child never blocks on a full pipe.
        let rest = tokio::time::timeout(Duration::from_millis(200), async {
            let mut more = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                more.push_str(&l);
                more.push('\n');
                if l.contains("backup list-backup-vaults") {
                    break;
                }
            }
            more
        })
        .await
        .unwrap_or_default();
        banner.push_str(&rest);
        Server {
            child,
            endpoint,
            banner,
        }
    }

    /// Starts a server with the test credential in `data_dir`.
    pub async fn with_credential(data_dir: &Path) -> Server {
        Server::start(&[
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--access-key-id",
            AKID,
            "--secret-access-key",
            SECRET,
            "--account-id",
            ACCOUNT,
        ])
        .await
    }

    /// A client signing with the test credential in us-east-1.
    pub fn client(&self) -> aws_sdk_backup::Client {
        self.client_as(AKID, SECRET, "us-east-1")
    }

    pub fn client_as(&self, akid: &str, secret: &str, region: &str) -> aws_sdk_backup::Client {
        aws_sdk_backup::Client::from_conf(self.config(akid, secret, region).build())
    }

    pub fn config(
        &self,
        akid: &str,
        secret: &str,
        region: &str,
    ) -> aws_sdk_backup::config::Builder {
        aws_sdk_backup::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(region.to_string()))
            .credentials_provider(Credentials::new(akid, secret, None, None, "coffer-tests"))
            .retry_config(RetryConfig::disabled())
    }

    /// A client whose clock is `skew` behind the real one.
    pub fn client_with_clock(&self, at: SystemTime) -> aws_sdk_backup::Client {
        let conf = self
            .config(AKID, SECRET, "us-east-1")
            .time_source(aws_smithy_async::time::StaticTimeSource::new(at))
            .build();
        aws_sdk_backup::Client::from_conf(conf)
    }

    /// The server's process id (to read its memory use in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("coffer is running")
    }

    /// Sends SIGHUP to the server (it re-reads its configuration file's inventory).
    pub fn hup(&self) {
        let pid = self.child.id().expect("coffer is running");
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP {pid} failed");
    }

    /// Moves the development clock (`{"set": ...}` or `{"advance_seconds": ...}`) and returns
    /// the answer, which comes once the scheduler has caught up.
    pub async fn move_clock(&self, body: &str) -> serde_json::Value {
        let (status, _, answer) = self
            .raw(
                "POST",
                "/_coffer/clock",
                &[("content-type", "application/json")],
                body.as_bytes(),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        serde_json::from_str(&answer).unwrap()
    }

    /// Moves the development clock `secs` seconds on ([`Server::move_clock`]).
    pub async fn advance_clock(&self, secs: i64) -> serde_json::Value {
        self.move_clock(&format!("{{\"advance_seconds\": {secs}}}"))
            .await
    }

    /// The development clock's now, in seconds since the epoch.
    pub async fn clock_secs(&self) -> i64 {
        let (_, _, body) = self.raw("GET", "/_coffer/clock", &[], b"").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        aws_sdk_backup::primitives::DateTime::from_str(
            v["now"].as_str().unwrap(),
            aws_sdk_backup::primitives::DateTimeFormat::DateTime,
        )
        .unwrap()
        .secs()
    }

    /// Sends SIGTERM and waits for the process to exit, at most `within`; returns its exit
    /// status.
    pub async fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().expect("coffer is running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("coffer did not exit within {within:?} of SIGTERM"))
            .unwrap()
    }

    /// Kills the process at once (no graceful shutdown), as a crash would.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
        let _ = self.child.wait().await;
    }

    /// Sends one raw HTTP/1.1 request; returns (status, headers text, body).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, String) {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head.to_lowercase(), body.to_string())
    }
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Waits until `check` answers `Some` (polling every 100 ms, for at most `secs` seconds) and
/// returns its answer; fails the test naming `what` when it never does. Tests wait on
/// conditions this way, never on a fixed sleep.
pub async fn wait_until<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most 10 s) until the server's log file says `want`; returns the whole log.
pub async fn wait_for_log(log: &Path, want: &str) -> String {
    for _ in 0..100 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(want) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the log never said {want:?}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// `secs` (Unix time) as RFC 3339, the form `POST /_coffer/clock` takes in `set`.
pub fn rfc3339(secs: i64) -> String {
    aws_sdk_backup::primitives::DateTime::from_secs(secs)
        .fmt(aws_sdk_backup::primitives::DateTimeFormat::DateTime)
        .unwrap()
}

/// Polls `fetch` every 100 ms until `running` says the job ended; panics after `secs`.
pub async fn wait_until_ended<T, F, Fut>(
    what: &str,
    secs: u64,
    fetch: F,
    running: impl Fn(&T) -> bool,
) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for _ in 0..secs * 10 {
        let j = fetch().await;
        if !running(&j) {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not end within {secs} s");
}

/// Waits (at most 180 s) until backup job `id` has ended; returns its description.
pub async fn wait_backup(
    c: &aws_sdk_backup::Client,
    id: &str,
) -> aws_sdk_backup::operation::describe_backup_job::DescribeBackupJobOutput {
    wait_until_ended(
        &format!("backup job {id}"),
        180,
        || async {
            c.describe_backup_job()
                .backup_job_id(id)
                .send()
                .await
                .unwrap()
        },
        |j| {
            matches!(
                j.state(),
                Some(
                    aws_sdk_backup::types::BackupJobState::Created
                        | aws_sdk_backup::types::BackupJobState::Running
                        | aws_sdk_backup::types::BackupJobState::Pending
                        | aws_sdk_backup::types::BackupJobState::Aborting
                )
            )
        },
    )
    .await
}

/// Waits (at most 180 s) until restore job `id` has ended; returns its description.
pub async fn wait_restore(
    c: &aws_sdk_backup::Client,
    id: &str,
) -> aws_sdk_backup::operation::describe_restore_job::DescribeRestoreJobOutput {
    wait_until_ended(
        &format!("restore job {id}"),
        180,
        || async {
            c.describe_restore_job()
                .restore_job_id(id)
                .send()
                .await
                .unwrap()
        },
        |j| {
            matches!(
                j.status(),
                Some(
                    aws_sdk_backup::types::RestoreJobStatus::Pending
                        | aws_sdk_backup::types::RestoreJobStatus::Running
                )
            )
        },
    )
    .await
}

/// Waits (at most 180 s) until copy job `id` has ended; returns it.
pub async fn wait_copy(c: &aws_sdk_backup::Client, id: &str) -> aws_sdk_backup::types::CopyJob {
    wait_until_ended(
        &format!("copy job {id}"),
        180,
        || async {
            c.describe_copy_job()
                .copy_job_id(id)
                .send()
                .await
                .unwrap()
                .copy_job
                .unwrap()
        },
        |j| {
            matches!(
                j.state(),
                Some(
                    aws_sdk_backup::types::CopyJobState::Created
                        | aws_sdk_backup::types::CopyJobState::Running
                )
            )
        },
    )
    .await
}
