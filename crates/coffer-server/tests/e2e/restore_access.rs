//! Restore access to a logically air-gapped vault from another account, with real data:
//! an approval team declared in the configuration is associated with the vault; another
//! account's CreateRestoreAccessBackupVault waits (CREATING) until two distinct members approve
//! through `coffer approvals approve` (a repeated approval counts once, a non-member is
//! refused), then restores the vault's bytes through it, never deletes; revoking ends it.
//! A request nobody approves fails at its expiry. Disassociating the team needs the team's
//! approval too. Sharing an air-gapped vault through
//! its access policy lists it in the other account's ListBackupVaults ByShared=true and lets
//! that account restore (never delete) its recovery points.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_sdk_backup::Client;
use aws_sdk_backup::error::ProvideErrorMetadata;
use aws_sdk_backup::types::{
    BackupJobState, CopyJobState, Lifecycle, MpaSessionStatus, RestoreJobStatus, VaultState,
    VaultType,
};

use crate::harness::*;
use crate::signer::ToSign;

const EFS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-ra";
const ROLE: &str = "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole";
const TEAM: &str = "arn:aws:mpa:us-east-1:111122223333:approval-team/recovery";
const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:approvals";

const B_AKID: &str = "AKIDCOFFERTESTBBBBBB";
const B_SECRET: &str = "coffer-test-secret-key-bbbbbbbbbbbbbbbb";
const B_ACCOUNT: &str = "444455556666";
/// The approval team's members (their own account) and a key that is not a member.
const MEMBERS: [(&str, &str); 3] = [
    (
        "AKIDCOFFERAPPROVER01",
        "approver-secret-0000000000000000000001",
    ),
    (
        "AKIDCOFFERAPPROVER02",
        "approver-secret-0000000000000000000002",
    ),
    (
        "AKIDCOFFERAPPROVER03",
        "approver-secret-0000000000000000000003",
    ),
];
const OUTSIDER: (&str, &str) = (
    "AKIDCOFFEROUTSIDER01",
    "outsider-secret-00000000000000000000001",
);

fn vault_arn(account: &str, name: &str) -> String {
    format!("arn:aws:backup:us-east-1:{account}:backup-vault:{name}")
}

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), b"restore access\n").unwrap();
    let big: Vec<u8> = (0..1_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    std::fs::write(root.join("sub/big.bin"), big).unwrap();
}

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

async fn start(dir: &Path) -> (Server, PathBuf) {
    let src = dir.join("src");
    make_tree(&src);
    let mut creds = format!(
        "[[credentials]]\naccess_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"{ACCOUNT}\"\n\n[[credentials]]\naccess_key_id = \"{B_AKID}\"\nsecret_access_key = \"{B_SECRET}\"\naccount_id = \"{B_ACCOUNT}\"\n"
    );
    for (k, s) in MEMBERS.iter().chain([&OUTSIDER]) {
        creds.push_str(&format!(
            "\n[[credentials]]\naccess_key_id = \"{k}\"\nsecret_access_key = \"{s}\"\naccount_id = \"999988887777\"\n"
        ));
    }
    let cfg = dir.join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"{creds}
[[resources]]
arn = "{EFS_ARN}"
source = "{}"
name = "ra"

[[approval_teams]]
arn = "{TEAM}"
members = ["{}", "{}", "{}"]
approvals_required = 2
sns_topic_arn = "{TOPIC}"
"#,
            src.display(),
            MEMBERS[0].0,
            MEMBERS[1].0,
            MEMBERS[2].0,
        ),
    )
    .unwrap();
    let data = dir.join("data");
    let server = Server::start(&[
        "--dev",
        "--auth",
        "sigv4",
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await;
    (server, src)
}

fn keep(days: i64) -> Lifecycle {
    Lifecycle::builder().delete_after_days(days).build()
}

/// Backs the fixture up into `primary` and copies it into the air-gapped vault `gap`;
/// answers the air-gapped recovery point's ARN.
async fn protected_point(c: &Client) -> String {
    c.create_backup_vault()
        .backup_vault_name("primary")
        .send()
        .await
        .unwrap();
    c.create_logically_air_gapped_backup_vault()
        .backup_vault_name("gap")
        .min_retention_days(7)
        .max_retention_days(60)
        .send()
        .await
        .unwrap();
    let id = c
        .start_backup_job()
        .backup_vault_name("primary")
        .resource_arn(EFS_ARN)
        .iam_role_arn(ROLE)
        .lifecycle(keep(30))
        .send()
        .await
        .unwrap()
        .backup_job_id
        .unwrap();
    let j = wait_until("the backup", 120, || async {
        let j = c
            .describe_backup_job()
            .backup_job_id(&id)
            .send()
            .await
            .unwrap();
        let ended = !matches!(
            j.state(),
            Some(BackupJobState::Created | BackupJobState::Running | BackupJobState::Pending)
        );
        ended.then_some(j)
    })
    .await;
    assert_eq!(j.state(), Some(&BackupJobState::Completed));
    let id = c
        .start_copy_job()
        .source_backup_vault_name("primary")
        .recovery_point_arn(j.recovery_point_arn().unwrap())
        .destination_backup_vault_arn(vault_arn(ACCOUNT, "gap"))
        .iam_role_arn(ROLE)
        .lifecycle(keep(30))
        .send()
        .await
        .unwrap()
        .copy_job_id
        .unwrap();
    let cj = wait_until("the copy", 120, || async {
        let j = c
            .describe_copy_job()
            .copy_job_id(&id)
            .send()
            .await
            .unwrap()
            .copy_job
            .unwrap();
        let ended = !matches!(
            j.state(),
            Some(CopyJobState::Created | CopyJobState::Running)
        );
        ended.then_some(j)
    })
    .await;
    assert_eq!(cj.state(), Some(&CopyJobState::Completed));
    cj.destination_recovery_point_arn().unwrap().to_string()
}

/// Restores `rp` as the client's account into `target`; waits for the job and checks it
/// COMPLETED.
async fn restore(c: &Client, rp: &str, target: &Path) {
    let id = c
        .start_restore_job()
        .recovery_point_arn(rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target.to_str().unwrap())
        .send()
        .await
        .unwrap()
        .restore_job_id
        .unwrap();
    let done = wait_until("the restore", 120, || async {
        let j = c
            .describe_restore_job()
            .restore_job_id(&id)
            .send()
            .await
            .unwrap();
        let ended = !matches!(
            j.status(),
            Some(RestoreJobStatus::Pending | RestoreJobStatus::Running)
        );
        ended.then_some(j)
    })
    .await;
    assert_eq!(
        done.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        done.status_message()
    );
}

/// The code of a refused StartRestoreJob of `rp`.
async fn restore_refused(c: &Client, rp: &str, target: &Path) -> String {
    let err = c
        .start_restore_job()
        .recovery_point_arn(rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target.to_str().unwrap())
        .send()
        .await
        .unwrap_err();
    err.code().unwrap_or_default().to_string()
}

/// Runs `coffer approvals ARGS` as the member with `key`; answers (success, stdout+stderr).
async fn approvals(server: &Server, key: (&str, &str), args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("approvals")
        .args(args)
        .args(["--endpoint", &server.endpoint])
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .env("AWS_REGION", "us-east-1")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn approve(server: &Server, key: (&str, &str), session: &str) -> (bool, String) {
    approvals(server, key, &["approve", "--session-arn", session]).await
}

/// The sessions the member with `key` sees, as JSON.
async fn sessions(server: &Server, key: (&str, &str)) -> Vec<serde_json::Value> {
    let (ok, text) = approvals(server, key, &["list", "--json"]).await;
    assert!(ok, "{text}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    v["sessions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn restore_access_waits_for_two_members_then_restores_bytes_until_revoked() {
    let dir = temp_dir();
    let (server, src) = start(dir.path()).await;
    let a = server.client();
    let b = server.client_as(B_AKID, B_SECRET, "us-east-1");
    let rp = protected_point(&a).await;
    let gap = vault_arn(ACCOUNT, "gap");

    // Validation, before any team is associated.
    let create = |source: &str, name: &str| {
        b.create_restore_access_backup_vault()
            .source_backup_vault_arn(source)
            .backup_vault_name(name)
    };
    for (source, code) in [
        ("not-an-arn", "InvalidParameterValueException"),
        (
            "arn:aws:backup:eu-west-1:111122223333:backup-vault:gap",
            "InvalidParameterValueException",
        ),
        (
            vault_arn(ACCOUNT, "nope").as_str(),
            "ResourceNotFoundException",
        ),
        (
            vault_arn(ACCOUNT, "primary").as_str(),
            "InvalidRequestException",
        ),
        (gap.as_str(), "InvalidRequestException"),
    ] {
        let err = create(source, "ra-b").send().await.unwrap_err();
        assert_eq!(err.code(), Some(code), "{source}: {:?}", err.message());
    }
    let err = create(&gap, "ra-b").send().await.unwrap_err();
    assert!(
        err.message()
            .unwrap_or_default()
            .contains("AssociateBackupVaultMpaApprovalTeam"),
        "{:?}",
        err.message()
    );
    let associate = |vault: &str, team: &str| {
        a.associate_backup_vault_mpa_approval_team()
            .backup_vault_name(vault)
            .mpa_approval_team_arn(team)
    };
    let err = associate(
        "gap",
        "arn:aws:mpa:us-east-1:111122223333:approval-team/other",
    )
    .send()
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValueException"));
    let err = associate("primary", TEAM).send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    let err = associate("nope", TEAM).send().await.unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    // The first team is associated at once.
    associate("gap", TEAM).send().await.unwrap();
    let d = a
        .describe_backup_vault()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    assert_eq!(d.mpa_approval_team_arn(), Some(TEAM));
    assert_eq!(
        d.latest_mpa_approval_team_update().unwrap().status(),
        Some(&MpaSessionStatus::Approved)
    );

    // B asks for access: CREATING until approved, and nothing can be read or restored yet.
    let created = create(&gap, "ra-b")
        .requester_comment("recovery drill")
        .send()
        .await
        .unwrap();
    assert_eq!(created.vault_state(), Some(&VaultState::Creating));
    let ra_arn = created
        .restore_access_backup_vault_arn()
        .unwrap()
        .to_string();
    assert_eq!(ra_arn, vault_arn(B_ACCOUNT, "ra-b"));
    let described = |name: &'static str| {
        let b = b.clone();
        async move {
            b.describe_backup_vault()
                .backup_vault_name(name)
                .send()
                .await
                .unwrap()
        }
    };
    let d = described("ra-b").await;
    assert_eq!(d.vault_type(), Some(&VaultType::RestoreAccessBackupVault));
    assert_eq!(d.vault_state(), Some(&VaultState::Creating));
    assert_eq!(d.source_backup_vault_arn(), Some(gap.as_str()));
    let session = d.mpa_session_arn().unwrap().to_string();
    assert!(
        session.starts_with("arn:aws:mpa:us-east-1:111122223333:session/recovery/"),
        "{session}"
    );
    let target = dir.path().join("restored");
    assert_eq!(
        restore_refused(&b, &rp, &target).await,
        "AccessDeniedException"
    );
    let err = b
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("ra-b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    let listed = a
        .list_restore_access_backup_vaults()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    let ras = listed.restore_access_backup_vaults();
    assert_eq!(ras.len(), 1);
    assert_eq!(
        ras[0].restore_access_backup_vault_arn(),
        Some(ra_arn.as_str())
    );
    assert_eq!(ras[0].vault_state(), Some(&VaultState::Creating));

    // The approvers see the request; the endpoint refuses an unsigned call.
    let pending = sessions(&server, MEMBERS[0]).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["sessionArn"], session.as_str());
    assert_eq!(pending[0]["status"], "PENDING");
    assert_eq!(pending[0]["operation"], "CreateRestoreAccessBackupVault");
    assert_eq!(pending[0]["requesterAccount"], B_ACCOUNT);
    assert_eq!(pending[0]["requesterComment"], "recovery drill");
    assert!(sessions(&server, OUTSIDER).await.is_empty());
    let (status, _, _) = server.raw("GET", "/_coffer/approvals", &[], b"").await;
    assert_eq!(status, 403);

    // A non-member is refused; one member approving twice counts once.
    let (ok, text) = approve(&server, OUTSIDER, &session).await;
    assert!(!ok && text.contains("not a member"), "{text}");
    let (ok, text) = approve(&server, MEMBERS[0], &session).await;
    assert!(ok && text.contains("PENDING (1 of 2 approvals)"), "{text}");
    let (ok, text) = approve(&server, MEMBERS[0], &session).await;
    assert!(ok && text.contains("PENDING (1 of 2 approvals)"), "{text}");
    assert_eq!(
        described("ra-b").await.vault_state(),
        Some(&VaultState::Creating)
    );
    assert_eq!(
        restore_refused(&b, &rp, &target).await,
        "AccessDeniedException"
    );
    let (ok, text) = approve(&server, MEMBERS[1], &session).await;
    assert!(ok && text.contains("APPROVED (2 of 2 approvals)"), "{text}");
    assert_eq!(
        described("ra-b").await.vault_state(),
        Some(&VaultState::Available)
    );
    let (ok, text) = approve(&server, MEMBERS[2], &session).await;
    assert!(!ok && text.contains("only a PENDING session"), "{text}");

    // Through the restore access vault: the source's points, restored byte for byte.
    let points = b
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("ra-b")
        .send()
        .await
        .unwrap();
    let arns: Vec<_> = points
        .recovery_points()
        .iter()
        .filter_map(|p| p.recovery_point_arn())
        .collect();
    assert_eq!(arns, vec![rp.as_str()]);
    restore(&b, &rp, &target).await;
    assert_eq!(files(&target), files(&src));
    assert_eq!(files(&target).len(), 2);

    // Never deleted through it, nor as the other account.
    for vault in ["ra-b", "gap"] {
        let err = b
            .delete_recovery_point()
            .backup_vault_name(vault)
            .recovery_point_arn(&rp)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("AccessDeniedException"), "{vault}");
    }
    let still = a
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    assert_eq!(still.recovery_points().len(), 1);
    let listed = a
        .list_restore_access_backup_vaults()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    let ras = listed.restore_access_backup_vaults();
    assert_eq!(ras[0].vault_state(), Some(&VaultState::Available));
    assert!(ras[0].approval_date().is_some());

    // Revoked by the source's owner: the vault is gone and so is the access.
    let err = a
        .revoke_restore_access_backup_vault()
        .backup_vault_name("gap")
        .restore_access_backup_vault_arn(vault_arn(B_ACCOUNT, "other"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    a.revoke_restore_access_backup_vault()
        .backup_vault_name("gap")
        .restore_access_backup_vault_arn(&ra_arn)
        .requester_comment("drill over")
        .send()
        .await
        .unwrap();
    let err = b
        .describe_backup_vault()
        .backup_vault_name("ra-b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    let again = dir.path().join("again");
    assert_eq!(
        restore_refused(&b, &rp, &again).await,
        "AccessDeniedException"
    );
    let listed = a
        .list_restore_access_backup_vaults()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    assert!(listed.restore_access_backup_vaults().is_empty());

    let err = a
        .revoke_restore_access_backup_vault()
        .backup_vault_name("gap")
        .restore_access_backup_vault_arn("ra-b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValueException"));
    let err = a
        .list_restore_access_backup_vaults()
        .backup_vault_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    // A request nobody approves fails at its expiry (24 hours of Coffer's clock).
    let late = create(&gap, "ra-late").send().await.unwrap();
    let late_session = described("ra-late")
        .await
        .mpa_session_arn()
        .unwrap()
        .to_string();
    server.move_clock(r#"{"advance_seconds": 90000}"#).await;
    assert_eq!(
        described("ra-late").await.vault_state(),
        Some(&VaultState::Failed)
    );
    let (ok, text) = approve(&server, MEMBERS[0], &late_session).await;
    assert!(!ok && text.contains("expired"), "{text}");
    let listed = a
        .list_restore_access_backup_vaults()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    let ras = listed.restore_access_backup_vaults();
    assert_eq!(ras.len(), 1);
    assert_eq!(
        ras[0].restore_access_backup_vault_arn(),
        late.restore_access_backup_vault_arn()
    );
    assert_eq!(ras[0].vault_state(), Some(&VaultState::Failed));
    assert_eq!(
        restore_refused(&b, &rp, &dir.path().join("late")).await,
        "AccessDeniedException"
    );

    // Removing the team needs the team's approval; meanwhile no other change is taken.
    a.disassociate_backup_vault_mpa_approval_team()
        .backup_vault_name("gap")
        .requester_comment("team rotates")
        .send()
        .await
        .unwrap();
    let d = a
        .describe_backup_vault()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    assert_eq!(d.mpa_approval_team_arn(), Some(TEAM));
    let update = d.latest_mpa_approval_team_update().unwrap();
    assert_eq!(update.status(), Some(&MpaSessionStatus::Pending));
    let removal = update.mpa_session_arn().unwrap().to_string();
    let err = a
        .disassociate_backup_vault_mpa_approval_team()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(approve(&server, MEMBERS[2], &removal).await.0);
    assert!(approve(&server, MEMBERS[0], &removal).await.0);
    let d = a
        .describe_backup_vault()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    assert_eq!(d.mpa_approval_team_arn(), None);
    assert_eq!(
        d.latest_mpa_approval_team_update().unwrap().status(),
        Some(&MpaSessionStatus::Approved)
    );
    let err = a
        .disassociate_backup_vault_mpa_approval_team()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));

    // Every step reached the team's topic (no target is configured for it here, so the
    // messages end as dead letters of the vault owner's account, where they can be read).
    let wanted = [
        "APPROVAL_REQUESTED",
        "APPROVAL_RECEIVED",
        "APPROVAL_SESSION_APPROVED",
        "APPROVAL_SESSION_FAILED",
        "RESTORE_ACCESS_REVOKED",
    ];
    wait_until("the approval notifications", 60, || async {
        let answer = ToSign::new("GET", "/_coffer/notifications/dead-letters")
            .sign(&server)
            .send(&server)
            .await;
        let events: Vec<String> = answer.body["dead_letters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["topic_arn"] == TOPIC)
            .filter_map(|m| m["event"].as_str().map(str::to_string))
            .collect();
        wanted
            .iter()
            .all(|w| events.iter().any(|e| e == w))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_air_gapped_vault_shared_by_policy_is_listed_and_restored_never_deleted() {
    let dir = temp_dir();
    let (server, src) = start(dir.path()).await;
    let a = server.client();
    let b = server.client_as(B_AKID, B_SECRET, "us-east-1");
    let rp = protected_point(&a).await;
    let shared_vaults = || async {
        b.list_backup_vaults()
            .by_shared(true)
            .send()
            .await
            .unwrap()
            .backup_vault_list()
            .iter()
            .filter_map(|v| v.backup_vault_arn().map(str::to_string))
            .collect::<Vec<_>>()
    };
    let list_gap = || {
        b.list_recovery_points_by_backup_vault()
            .backup_vault_name("gap")
            .backup_vault_account_id(ACCOUNT)
            .send()
    };

    // Without a policy, the other account sees nothing and restores nothing.
    assert!(shared_vaults().await.is_empty());
    let err = list_gap().await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let target = dir.path().join("restored");
    assert_eq!(
        restore_refused(&b, &rp, &target).await,
        "AccessDeniedException"
    );
    let unknown = rp.replace(
        rp.rsplit(':').next().unwrap(),
        "00000000-0000-0000-0000-000000000000",
    );
    assert_eq!(
        restore_refused(&b, &unknown, &target).await,
        "AccessDeniedException"
    );

    // The owner shares the air-gapped vault (and, for contrast, the plain vault).
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"share","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{B_ACCOUNT}:root"}},"Action":["backup:ListRecoveryPointsByBackupVault","backup:StartRestoreJob","backup:DeleteRecoveryPoint"],"Resource":"*"}}]}}"#
    );
    for vault in ["gap", "primary"] {
        a.put_backup_vault_access_policy()
            .backup_vault_name(vault)
            .policy(&policy)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(shared_vaults().await, vec![vault_arn(ACCOUNT, "gap")]);
    let shared = b.list_backup_vaults().by_shared(true).send().await.unwrap();
    let v = &shared.backup_vault_list()[0];
    assert_eq!(
        v.vault_type(),
        Some(&VaultType::LogicallyAirGappedBackupVault)
    );
    assert_eq!(v.number_of_recovery_points(), 1);
    let listed = list_gap().await.unwrap();
    let arns: Vec<_> = listed
        .recovery_points()
        .iter()
        .filter_map(|p| p.recovery_point_arn())
        .collect();
    assert_eq!(arns, vec![rp.as_str()]);

    // Restored byte for byte; deleting is refused even though the policy names it.
    restore(&b, &rp, &target).await;
    assert_eq!(files(&target), files(&src));
    let err = b
        .delete_recovery_point()
        .backup_vault_name("gap")
        .recovery_point_arn(&rp)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let own = a
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    assert_eq!(own.recovery_points().len(), 1);

    // The policy removed, the sharing ends.
    a.delete_backup_vault_access_policy()
        .backup_vault_name("gap")
        .send()
        .await
        .unwrap();
    assert!(shared_vaults().await.is_empty());
    assert_eq!(
        list_gap().await.unwrap_err().code(),
        Some("AccessDeniedException")
    );
    assert_eq!(
        restore_refused(&b, &rp, &dir.path().join("after")).await,
        "AccessDeniedException"
    );
}
