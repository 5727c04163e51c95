//! What an operator meets around the API: `serve --help`, `coffer config check`,
//! `coffer inventory`, and the log (plain text when not a terminal, failed sign-ins at WARN
//! without secrets, no engine chatter at INFO, configuration reloads saying what changed).

use std::path::Path;
use std::time::Duration;

use aws_sdk_backup::types::BackupJobState;

use crate::harness::*;

fn coffer(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(args)
        .env_remove("COFFER_CONFIG")
        .env_remove("COFFER_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn serve_help_shows_defaults_and_file_keys() {
    let (ok, help) = coffer(&["serve", "--help"]);
    assert!(ok, "{help}");
    for want in [
        "[default: 127.0.0.1:9191] [file key: listen]",
        "[default: coffer-data; a temporary directory with --dev] [file key: data_dir]",
        "[default: sigv4; none with --dev] [file key: auth]",
        "[default: 2] [file key: max_concurrent_jobs]",
        "[default: text] [file key: log_format]",
        "[env: COFFER_LISTEN=]",
        "coffer config check FILE",
    ] {
        assert!(help.contains(want), "missing {want:?} in:\n{help}");
    }
    // Replay says what it needs rather than replaying everything by default.
    let (ok, out) = coffer(&["notifications", "replay"]);
    assert!(!ok && out.contains("<--id <MESSAGE_ID>|--all>"), "{out}");
}

const EFS: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-docs";
const EBS: &str = "arn:aws:ec2:us-east-1:111122223333:volume/vol-1";

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn config_check_finds_every_problem_without_starting() {
    let dir = temp_dir();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let good = write(
        &dir.path().join("good.toml"),
        &format!(
            r#"
[[credentials]]
access_key_id = "AKIAEXAMPLE000000001"
secret_access_key = "s3cr3t"
account_id = "111122223333"

[[resources]]
arn = "{EFS}"
source = "{}"

[[resources]]
arn = "{EBS}"
source = "{}/vm.img"

[[notification_targets]]
topic_arn = "arn:aws:sns:us-east-1:111122223333:t"
webhook = "http://127.0.0.1:9000/hook"
"#,
            docs.display(),
            dir.path().display()
        ),
    );
    let (ok, out) = coffer(&["config", "check", &good]);
    assert!(ok, "{out}");
    assert!(
        out.contains("valid (1 credential, 2 resources, 1 notification target)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("warning: {EBS}: source")) && out.contains("vm.img"),
        "a missing source is a warning: {out}"
    );

    let bad = write(
        &dir.path().join("bad.toml"),
        r#"
[[credentials]]
access_key_id = "AKIAEXAMPLE000000001"
secret_access_key = "s3cr3t"
account_id = "1111"

[[resources]]
arn = "arn:aws:s3:::my-bucket"
source = "/srv/bucket"

[[resources]]
arn = "arn:aws:dynamodb:us-east-1:111122223333:table/main"
source = "/srv/db"

[[notification_targets]]
topic_arn = "arn:aws:sns:us-east-1:111122223333:t"
"#,
    );
    let (ok, out) = coffer(&["config", "check", &bad]);
    assert!(!ok, "{out}");
    assert!(out.contains("must be 12 digits, got '1111'"), "{out}");
    assert!(
        out.contains("arn:aws:dynamodb:us-east-1:111122223333:table/main is not a kind of resource Coffer can back up")
            && out.contains("EFS file systems (arn:aws:elasticfilesystem:REGION:ACCOUNT:file-system/ID")
            && out.contains("EBS volumes (arn:aws:ec2:REGION:ACCOUNT:volume/ID"),
        "an unsupported ARN says which kinds are supported: {out}"
    );
    assert!(out.contains("arn:aws:s3:::my-bucket"), "{out}");
    assert!(
        out.contains("give exactly one of webhook or sns_endpoint"),
        "{out}"
    );
    assert!(out.contains("4 errors"), "{out}");

    let broken = write(&dir.path().join("broken.toml"), "listen = [\n");
    let (ok, out) = coffer(&["config", "check", &broken]);
    assert!(
        !ok && out.contains("parsing the configuration file"),
        "{out}"
    );
    let unknown = write(&dir.path().join("unknown.toml"), "lisen = \"x\"\n");
    let (ok, out) = coffer(&["config", "check", &unknown]);
    assert!(!ok && out.contains("unknown field `lisen`"), "{out}");
}

#[test]
fn inventory_lists_resources_and_checks_each_source() {
    let dir = temp_dir();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.txt"), b"a").unwrap();
    let image = dir.path().join("vm.img");
    std::fs::write(&image, vec![0u8; 4096]).unwrap();
    let cfg = dir.path().join("coffer.toml");
    let text = format!(
        r#"
[[resources]]
arn = "{EFS}"
source = "{}"
name = "docs"
tags = {{ backup = "daily" }}

[[resources]]
arn = "{EBS}"
source = "{}"
"#,
        docs.display(),
        image.display()
    );
    let cfg_s = write(&cfg, &text);
    let (ok, out) = coffer(&["inventory", "--config", &cfg_s]);
    assert!(ok, "{out}");
    let line = |arn: &str| {
        out.lines()
            .find(|l| l.starts_with(arn))
            .unwrap_or_else(|| panic!("no line for {arn}: {out}"))
            .to_string()
    };
    let efs = line(EFS);
    assert!(
        efs.contains("EFS") && efs.contains("docs [backup=daily]"),
        "{efs}"
    );
    assert!(efs.contains("ok: directory, 1 entries at the top"), "{efs}");
    assert!(line(EBS).contains("ok: file, 4096 bytes"), "{out}");

    // A directory where a volume is expected, and a missing source: listed, and exit 1.
    let broken = text
        .replace(&image.display().to_string(), &docs.display().to_string())
        .replace(&docs.display().to_string(), "/nonexistent/docs");
    write(&cfg, &broken);
    let (ok, out) = coffer(&["inventory", "--config", &cfg_s]);
    assert!(!ok, "{out}");
    assert!(
        line_of(&out, EFS).contains("UNREACHABLE: source /nonexistent/docs: No such file"),
        "{out}"
    );
    let docs_as_volume = text.replace(&image.display().to_string(), &docs.display().to_string());
    write(&cfg, &docs_as_volume);
    let (ok, out) = coffer(&["inventory", "--config", &cfg_s]);
    assert!(!ok, "{out}");
    assert!(
        line_of(&out, EBS).contains("is a directory (EBS resources are one file or block device)"),
        "{out}"
    );
}

fn line_of(out: &str, arn: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(arn))
        .unwrap_or_else(|| panic!("no line for {arn}: {out}"))
        .to_string()
}

#[tokio::test]
async fn the_log_is_plain_warns_of_failed_sign_ins_and_says_what_a_reload_changed() {
    let dir = temp_dir();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.txt"), b"hello").unwrap();
    let cfg = dir.path().join("coffer.toml");
    let text = format!(
        "[[credentials]]\naccess_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"{ACCOUNT}\"\n\n[[resources]]\narn = \"{EFS}\"\nsource = \"{}\"\n",
        docs.display()
    );
    write(&cfg, &text);
    let log = dir.path().join("coffer.log");
    let data = dir.path().join("data");
    let server = Server::start_logging(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
        Some(&log),
    )
    .await;

    // Wrong secrets, several times: one WARN line naming the key, never the secret.
    let wrong_secret = "definitely-not-the-secret-0123456789";
    for _ in 0..3 {
        let err = server
            .client_as(AKID, wrong_secret, "us-east-1")
            .list_backup_vaults()
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err.into_service_error().meta().code(),
            Some("InvalidSignatureException")
        );
    }
    let text_now = wait_for_log(&log, "failed sign-in").await;
    let line = text_now
        .lines()
        .find(|l| l.contains("failed sign-in"))
        .unwrap();
    assert!(
        line.contains(" WARN ")
            && line.contains(AKID)
            && line.contains("InvalidSignatureException"),
        "{line}"
    );
    assert_eq!(
        text_now.matches("failed sign-in").count(),
        1,
        "rate-limited:\n{text_now}"
    );
    assert!(!text_now.contains(wrong_secret) && !text_now.contains(SECRET));

    // A backup: the engine's chatter (rustic_core) stays out of the INFO log.
    let c = server.client();
    c.create_backup_vault()
        .backup_vault_name("logged")
        .send()
        .await
        .unwrap();
    let job = c
        .start_backup_job()
        .backup_vault_name("logged")
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
        assert!(
            matches!(
                j.state(),
                Some(BackupJobState::Created | BackupJobState::Running)
            ),
            "{j:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A resource and a listen address added to the file: the first applies now, the log says
    // the second waits for a restart.
    let vm = dir.path().join("vm.img");
    std::fs::write(&vm, b"disk").unwrap();
    write(
        &cfg,
        &format!(
            "listen = \"127.0.0.1:9999\"\n{text}\n[[resources]]\narn = \"{EBS}\"\nsource = \"{}\"\n",
            vm.display()
        ),
    );
    server.hup();
    let all = wait_for_log(&log, "configuration reloaded").await;
    let reload = all
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .unwrap();
    assert!(
        reload.contains(&format!("resource {EBS} added")),
        "{reload}"
    );
    let all = wait_for_log(&log, "take effect at the next start").await;
    assert!(
        all.lines()
            .any(|l| l.contains("take effect at the next start") && l.contains("listen")),
        "{all}"
    );
    assert!(
        !all.contains('\u{1b}'),
        "no colour codes in a log file:\n{all}"
    );
    assert!(
        !all.contains("rustic_core"),
        "engine chatter at INFO:\n{all}"
    );
}
