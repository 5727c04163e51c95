//! The web console in a real headless browser (Debian's `chromium` and `chromium-driver`,
//! driven over WebDriver): sign in with a configured credential, see a completed backup on
//! the dashboard, start a restore from a vault's page and watch it complete, then check the
//! restored files. Screenshots of each step are saved under the test's target temp directory
//! (`console-screenshots/`), or in `COFFER_SCREENSHOT_DIR` when set. Also, without a browser:
//! the session cookie's attributes, CSRF refusal, and the sign-in refusing a wrong secret.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_backup::types::BackupJobState;
use base64::Engine;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::harness::*;

const EFS: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-console";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one headless Chromium session.
struct Browser {
    _driver: Child,
    http: reqwest::Client,
    base: String,
}

impl Browser {
    async fn start() -> Browser {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: the console test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/apt-packages lists them)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        for i in 0.. {
            if let Ok(r) = http.get(format!("{root}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(i < 100, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,1000"]
            }
        }}});
        let mut b = Browser {
            _driver: driver,
            http,
            base: root.clone(),
        };
        let session = b.call("POST", "/session", Some(caps)).await;
        let id = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        b.base = format!("{root}/session/{id}");
        // Finding an element waits for it (pages load after a click).
        b.call("POST", "/timeouts", Some(json!({"implicit": 10_000})))
            .await;
        b
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body).await {
            Ok(v) => v,
            Err((status, v)) => panic!("WebDriver {method} {path}: {status} {v}"),
        }
    }

    /// A WebDriver call; an error answer comes back as its status and body.
    async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (reqwest::StatusCode, Value)> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.unwrap_or(json!({})).to_string()),
        };
        let resp = req.send().await.expect("WebDriver request");
        let status = resp.status();
        let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        if status.is_success() {
            Ok(v["value"].clone())
        } else {
            Err((status, v))
        }
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.call("POST", &format!("/element/{el}/click"), None)
            .await;
    }

    /// The text of the element `css` selects. A page that refreshes itself (a running job's
    /// page) can replace the element between finding it and reading it, or be mid-load: then
    /// it is found again, for at most 5 s.
    async fn text(&self, css: &str) -> String {
        let mut last = String::new();
        for _ in 0..50 {
            let found = self
                .try_call(
                    "POST",
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            let el = match found {
                Ok(v) => v[ELEMENT].as_str().unwrap().to_string(),
                Err((status, v)) => {
                    last = format!("{status} {v}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self
                .try_call("GET", &format!("/element/{el}/text"), None)
                .await
            {
                Ok(v) => return v.as_str().unwrap().to_string(),
                Err((status, v)) => {
                    last = format!("{status} {v}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("the text of {css} could not be read: {last}");
    }

    async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn screenshot(&self, dir: &Path, name: &str) {
        let b64 = self.call("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(dir.join(name), png).unwrap();
    }

    async fn close(self) {
        self.call("DELETE", "", None).await;
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("COFFER_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn server_with_backup(dir: &Path) -> (Server, PathBuf) {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"restored by the console\n").unwrap();
    std::fs::write(src.join("sub/b.bin"), vec![42u8; 50_000]).unwrap();
    let cfg = dir.join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[credentials]]\naccess_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"{ACCOUNT}\"\n\n[[resources]]\narn = \"{EFS}\"\nsource = \"{}\"\nname = \"console-docs\"\n",
            src.display()
        ),
    )
    .unwrap();
    let data = dir.join("data");
    let server = Server::start(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("console-vault")
        .send()
        .await
        .unwrap();
    let job = c
        .start_backup_job()
        .backup_vault_name("console-vault")
        .resource_arn(EFS)
        .iam_role_arn("arn:aws:iam::111122223333:role/backup")
        .send()
        .await
        .unwrap()
        .backup_job_id
        .unwrap();
    for i in 0.. {
        let j = c
            .describe_backup_job()
            .backup_job_id(&job)
            .send()
            .await
            .unwrap();
        if j.state() == Some(&BackupJobState::Completed) {
            break;
        }
        assert!(i < 300, "the backup did not end: {j:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (server, src)
}

#[tokio::test]
async fn sign_in_see_the_backup_and_restore_from_the_console_in_a_browser() {
    let dir = temp_dir();
    let (server, src) = server_with_backup(dir.path()).await;
    let shots = screenshot_dir();
    let browser = Browser::start().await;
    let console = format!("{}/console", server.endpoint);

    // Not signed in: the sign-in page. A wrong secret is refused.
    browser.goto(&console).await;
    assert!(browser.url().await.ends_with("/console/sign-in"));
    browser.type_into("#access_key_id", AKID).await;
    browser
        .type_into("#secret_access_key", "not-the-secret")
        .await;
    browser.click("#sign-in").await;
    assert!(
        browser.text("#error").await.contains("do not match"),
        "a wrong secret is refused"
    );
    browser.type_into("#access_key_id", AKID).await;
    browser.type_into("#secret_access_key", SECRET).await;
    browser.screenshot(&shots, "01-sign-in.png").await;
    browser.click("#sign-in").await;

    // The dashboard shows the completed backup and the vault's storage.
    let latest = browser.text("#latest-backups").await;
    assert!(browser.url().await.ends_with("/console"));
    assert!(
        latest.contains("console-docs") && latest.contains("COMPLETED"),
        "{latest}"
    );
    assert!(browser.text("#job-counts").await.contains("COMPLETED"));
    assert!(browser.text("#storage").await.contains("console-vault"));
    assert!(browser.text("header .who").await.contains(ACCOUNT));
    browser.screenshot(&shots, "02-dashboard.png").await;

    // Restore from the vault's page into a directory chosen in the form.
    browser
        .goto(&format!("{console}/vaults/console-vault"))
        .await;
    let target = dir.path().join("restored-by-browser");
    browser
        .type_into(
            "#recovery-points input[name=target_path]",
            target.to_str().unwrap(),
        )
        .await;
    browser.screenshot(&shots, "03-vault.png").await;
    browser.click("#recovery-points button").await;
    let mut status = browser.text("#restore-status").await;
    assert!(browser.url().await.contains("/console/jobs/restore/"));
    for _ in 0..120 {
        // The page refreshes itself while the job runs.
        status = browser.text("#restore-status").await;
        if status != "PENDING" && status != "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        status,
        "COMPLETED",
        "{}",
        browser.text("#restore-job").await
    );
    browser.screenshot(&shots, "04-restore-completed.png").await;
    browser.close().await;

    assert_eq!(
        std::fs::read(target.join("a.txt")).unwrap(),
        std::fs::read(src.join("a.txt")).unwrap()
    );
    assert_eq!(
        std::fs::read(target.join("sub/b.bin")).unwrap(),
        vec![42u8; 50_000]
    );
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_actions_need_the_csrf_token() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let server = Server::with_credential(&dir.path().join("data")).await;
    let form = |body: &str| -> Vec<u8> { body.as_bytes().to_vec() };
    let ct = ("content-type", "application/x-www-form-urlencoded");

    // An action without a session goes to the sign-in page.
    let (status, head, _) = server
        .raw("POST", "/console/restore", &[ct], &form("csrf=x"))
        .await;
    assert_eq!(status, 303);
    assert!(head.contains("location: /console/sign-in"), "{head}");

    let (status, head, _) = server
        .raw(
            "POST",
            "/console/sign-in",
            &[ct],
            &form(&format!("access_key_id={AKID}&secret_access_key={SECRET}")),
        )
        .await;
    assert_eq!(status, 303, "{head}");
    let cookie_line = head
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .expect("a session cookie");
    for attr in ["httponly", "samesite=strict", "path=/console"] {
        assert!(cookie_line.contains(attr), "{cookie_line}");
    }
    let session = cookie_line
        .trim_start_matches("set-cookie: ")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let cookie = ("cookie", session.as_str());

    // Signed in: pages answer; an action with a wrong token, or from another site, is refused.
    let (status, _, page) = server.raw("GET", "/console/vaults", &[cookie], b"").await;
    assert_eq!(status, 200);
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page carries a CSRF token");
    let (status, _, body) = server
        .raw(
            "POST",
            "/console/notifications/replay",
            &[ct, cookie],
            &form("csrf=wrong"),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("security token"), "{body}");
    let (status, _, _) = server
        .raw(
            "POST",
            "/console/notifications/replay",
            &[ct, cookie, ("origin", "http://evil.example")],
            &form(&format!("csrf={token}")),
        )
        .await;
    assert_eq!(status, 403);
    let (status, head, _) = server
        .raw(
            "POST",
            "/console/notifications/replay",
            &[ct, cookie],
            &form(&format!("csrf={token}")),
        )
        .await;
    assert_eq!(status, 303, "{head}");

    // A wrong secret gets no session.
    let (status, head, _) = server
        .raw(
            "POST",
            "/console/sign-in",
            &[ct],
            &form(&format!("access_key_id={AKID}&secret_access_key=wrong")),
        )
        .await;
    assert_eq!(status, 401);
    assert!(!head.contains("set-cookie"), "{head}");
    let (_, _, metrics) = server.raw("GET", "/metrics", &[], b"").await;
    assert!(
        metrics.contains(r#"coffer_sign_in_failures_total{error="console sign-in refused"} 1"#),
        "{metrics}"
    );

    // Signing out ends the session.
    let (status, _, _) = server
        .raw(
            "POST",
            "/console/sign-out",
            &[ct, cookie],
            &form(&format!("csrf={token}")),
        )
        .await;
    assert_eq!(status, 303);
    let (status, head, _) = server.raw("GET", "/console", &[cookie], b"").await;
    assert_eq!(status, 303);
    assert!(head.contains("location: /console/sign-in"), "{head}");
}

#[tokio::test]
async fn plans_show_their_rules_next_runs_and_selections_in_development_mode() {
    let server = Server::start(&["--dev"]).await;
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("plan-vault")
        .send()
        .await
        .unwrap();
    let rule = aws_sdk_backup::types::BackupRuleInput::builder()
        .rule_name("nightly")
        .target_backup_vault_name("plan-vault")
        .schedule_expression("cron(0 5 ? * * *)")
        .lifecycle(
            aws_sdk_backup::types::Lifecycle::builder()
                .delete_after_days(7)
                .build(),
        )
        .build()
        .unwrap();
    let plan = c
        .create_backup_plan()
        .backup_plan(
            aws_sdk_backup::types::BackupPlanInput::builder()
                .backup_plan_name("console-plan")
                .rules(rule)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .backup_plan_id
        .unwrap();
    c.create_backup_selection()
        .backup_plan_id(&plan)
        .backup_selection(
            aws_sdk_backup::types::BackupSelection::builder()
                .selection_name("tagged")
                .iam_role_arn("arn:aws:iam::000000000000:role/backup")
                .list_of_tags(
                    aws_sdk_backup::types::Condition::builder()
                        .condition_type(aws_sdk_backup::types::ConditionType::Stringequals)
                        .condition_key("backup")
                        .condition_value("daily")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // No sign-in in development mode: the first visit gets a session.
    let (status, head, page) = server.raw("GET", "/console/plans", &[], b"").await;
    assert_eq!(status, 200, "{page}");
    assert!(head.contains("set-cookie: coffer_console="), "{head}");
    for want in [
        "console-plan",
        "nightly",
        "cron(0 5 ? * * *)",
        "plan-vault",
        "deleted after 7 days",
        "<b>tagged</b>: tag backup STRINGEQUALS daily",
    ] {
        assert!(page.contains(want), "missing {want:?} in {page}");
    }
    // Five next runs of the rule, each at 05:00 UTC.
    assert_eq!(page.matches("05:00:00 UTC").count(), 5, "{page}");
    let (_, _, dashboard) = server.raw("GET", "/console", &[], b"").await;
    let next = dashboard
        .split(r#"<table id="next-runs">"#)
        .nth(1)
        .expect("the dashboard lists the next runs");
    assert!(
        next.contains("console-plan") && next.contains("05:00:00 UTC"),
        "{next}"
    );
}
