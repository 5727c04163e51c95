//! AWS Backup Search end to end, driven by the official `aws-sdk-backupsearch` client against
//! a real `coffer` (the same endpoint and credential as AWS Backup, told apart by the signing
//! name): a file found in three indexed recovery points and restored item-level byte for byte;
//! wildcard, size and time filters; stopping; exports to a report bucket read back as CSV and
//! JSON; tags on search jobs; and each refusal with the code the SDK parses.

use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_sdk_backup::types::{BackupJobState, Index, IndexStatus, RestoreJobStatus};
use aws_sdk_backupsearch::config::retry::RetryConfig;
use aws_sdk_backupsearch::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_backupsearch::types::{
    BackupCreationTimeFilter, EbsItemFilter, ExportJobStatus, ExportSpecification, ItemFilters,
    LongCondition, LongConditionOperator, ResourceType, S3ExportSpecification, S3ItemFilter,
    SearchJobState, SearchScope, StringCondition, StringConditionOperator, TimeCondition,
    TimeConditionOperator,
};

use crate::harness::*;

const FS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-search";
const ROLE: &str = "arn:aws:iam::111122223333:role/backup";
const VAULT: &str = "search-vault";

type Search = aws_sdk_backupsearch::Client;
type Backup = aws_sdk_backup::Client;

fn search_client(server: &Server) -> Search {
    let conf = aws_sdk_backupsearch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&server.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(AKID, SECRET, None, None, "coffer-tests"))
        .retry_config(RetryConfig::disabled())
        .build();
    Search::from_conf(conf)
}

/// A server whose inventory holds the tree `dir/src` as an EFS resource, with the report
/// bucket `search-exports` at `dir/exports`.
async fn start(dir: &Path) -> Server {
    start_logging(dir, None).await
}

/// [`start`], logging to `log` when given.
async fn start_logging(dir: &Path, log: Option<&Path>) -> Server {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let cfg = dir.join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[credentials]]\naccess_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"{ACCOUNT}\"\n\n\
             [[resources]]\narn = \"{FS_ARN}\"\nsource = \"{}\"\n\n\
             [[report_buckets]]\nbucket = \"search-exports\"\ndirectory = \"{}\"\n",
            dir.join("src").display(),
            dir.join("exports").display()
        ),
    )
    .unwrap();
    let data = dir.join("data");
    Server::start_logging(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
        log,
    )
    .await
}

fn write(root: &Path, rel: &str, content: &[u8], modified_secs: u64) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(modified_secs))
        .unwrap();
}

/// Backs the tree up with Index ENABLED and waits for the index to be ACTIVE; the point.
async fn indexed_backup(c: &Backup) -> String {
    let job = c
        .start_backup_job()
        .backup_vault_name(VAULT)
        .resource_arn(FS_ARN)
        .iam_role_arn(ROLE)
        .index(Index::Enabled)
        .send()
        .await
        .unwrap();
    let id = job.backup_job_id().unwrap().to_string();
    wait_until("the backup job to complete", 60, || {
        let (c, id) = (c.clone(), id.clone());
        async move {
            let d = c
                .describe_backup_job()
                .backup_job_id(id)
                .send()
                .await
                .unwrap();
            assert_ne!(
                d.state(),
                Some(&BackupJobState::Failed),
                "{:?}",
                d.status_message()
            );
            (d.state() == Some(&BackupJobState::Completed)).then_some(())
        }
    })
    .await;
    let rp = job.recovery_point_arn().unwrap().to_string();
    wait_until("the index to be ACTIVE", 60, || {
        let (c, rp) = (c.clone(), rp.clone());
        async move {
            let d = c
                .get_recovery_point_index_details()
                .backup_vault_name(VAULT)
                .recovery_point_arn(rp)
                .send()
                .await
                .unwrap();
            assert_ne!(d.index_status(), Some(&IndexStatus::Failed));
            (d.index_status() == Some(&IndexStatus::Active)).then_some(())
        }
    })
    .await;
    rp
}

fn ebs_scope() -> SearchScope {
    SearchScope::builder()
        .backup_resource_types(ResourceType::Ebs)
        .build()
        .unwrap()
}

fn path_is(op: StringConditionOperator, v: &str) -> StringCondition {
    StringCondition::builder()
        .operator(op)
        .value(v)
        .build()
        .unwrap()
}

/// Starts a search and waits until it has ended; its id.
async fn search(s: &Search, scope: SearchScope, filter: Option<EbsItemFilter>) -> String {
    let mut filters = ItemFilters::builder();
    if let Some(f) = filter {
        filters = filters.ebs_item_filters(f);
    }
    let id = s
        .start_search_job()
        .search_scope(scope)
        .item_filters(filters.build())
        .send()
        .await
        .unwrap()
        .search_job_identifier()
        .unwrap()
        .to_string();
    wait_search(s, &id).await;
    id
}

/// Waits until search job `id` is no longer RUNNING; its state then.
/// The export job `eid` once it is no longer running.
async fn wait_export(
    s: &Search,
    eid: &str,
) -> aws_sdk_backupsearch::operation::get_search_result_export_job::GetSearchResultExportJobOutput {
    wait_until("the export to end", 60, || {
        let (s, eid) = (s.clone(), eid.to_string());
        async move {
            let j = s
                .get_search_result_export_job()
                .export_job_identifier(eid)
                .send()
                .await
                .unwrap();
            (j.status() != Some(&ExportJobStatus::Running)).then_some(j)
        }
    })
    .await
}

async fn wait_search(s: &Search, id: &str) -> SearchJobState {
    wait_until("the search job to end", 60, || {
        let (s, id) = (s.clone(), id.to_string());
        async move {
            let j = s
                .get_search_job()
                .search_job_identifier(id)
                .send()
                .await
                .unwrap();
            (j.status() != &SearchJobState::Running).then(|| j.status().clone())
        }
    })
    .await
}

/// Every result of a search job, paging with a small page: (path, size, recovery point).
async fn results(s: &Search, id: &str) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = s
            .list_search_job_results()
            .search_job_identifier(id)
            .max_results(2)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        for r in page.results() {
            let e = r.as_ebs_result_item().expect("an EBS result item");
            out.push((
                e.file_path().unwrap().to_string(),
                e.file_size().unwrap(),
                e.backup_resource_arn().unwrap().to_string(),
            ));
        }
        token = page.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_file_is_found_in_three_recovery_points_and_restored_alone_byte_for_byte() {
    let dir = temp_dir();
    let server = start(dir.path()).await;
    let (c, s) = (server.client(), search_client(&server));
    c.create_backup_vault()
        .backup_vault_name(VAULT)
        .send()
        .await
        .unwrap();
    let src = dir.path().join("src");
    write(&src, "notes/other.md", b"not this one", 1_000);
    let mut points = Vec::new();
    let versions: [&[u8]; 3] = [b"version one\n", b"version two, longer\n", b"v3\n"];
    for v in versions {
        write(&src, "docs/report.txt", v, 2_000);
        points.push(indexed_backup(&c).await);
    }

    let id = search(
        &s,
        ebs_scope(),
        Some(
            EbsItemFilter::builder()
                .file_paths(path_is(
                    StringConditionOperator::EqualsTo,
                    "/docs/report.txt",
                ))
                .build(),
        ),
    )
    .await;
    let job = s
        .get_search_job()
        .search_job_identifier(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(job.status(), &SearchJobState::Completed);
    let progress = job.current_search_progress().unwrap();
    assert_eq!(progress.recovery_points_scanned_count(), Some(3));
    assert_eq!(progress.items_scanned_count(), Some(6));
    assert_eq!(progress.items_matched_count(), Some(3));
    let found = results(&s, &id).await;
    let mut want: Vec<(String, i64, String)> = versions
        .iter()
        .zip(&points)
        .map(|(v, rp)| ("/docs/report.txt".to_string(), v.len() as i64, rp.clone()))
        .collect();
    want.sort();
    assert_eq!(found, want);
    let backups = s
        .list_search_job_backups()
        .search_job_identifier(&id)
        .send()
        .await
        .unwrap();
    let mut scanned: Vec<String> = backups
        .results()
        .iter()
        .map(|b| b.backup_resource_arn().unwrap().to_string())
        .collect();
    scanned.sort();
    let mut all = points.clone();
    all.sort();
    assert_eq!(scanned, all);

    // Restore just that file from the second point, by the path the search returned.
    let (path, _, rp) = found
        .iter()
        .find(|(_, _, rp)| *rp == points[1])
        .unwrap()
        .clone();
    let target = dir.path().join("restored");
    let r = c
        .start_restore_job()
        .recovery_point_arn(&rp)
        .iam_role_arn(ROLE)
        .metadata("targetPath", target.to_str().unwrap())
        .metadata("ItemsToRestore", serde_json::json!([path]).to_string())
        .send()
        .await
        .unwrap();
    let rid = r.restore_job_id().unwrap().to_string();
    let done = wait_until("the restore to end", 60, || {
        let (c, rid) = (c.clone(), rid.clone());
        async move {
            let j = c
                .describe_restore_job()
                .restore_job_id(rid)
                .send()
                .await
                .unwrap();
            (!matches!(
                j.status(),
                Some(RestoreJobStatus::Pending | RestoreJobStatus::Running)
            ))
            .then_some(j)
        }
    })
    .await;
    assert_eq!(
        done.status(),
        Some(&RestoreJobStatus::Completed),
        "{:?}",
        done.status_message()
    );
    assert_eq!(
        std::fs::read(target.join("docs/report.txt")).unwrap(),
        versions[1]
    );
    assert!(
        !target.join("notes").exists(),
        "only the chosen file is restored"
    );
}

#[tokio::test]
async fn filters_stop_export_tags_and_refusals() {
    let dir = temp_dir();
    let server = start(dir.path()).await;
    let (c, s) = (server.client(), search_client(&server));
    c.create_backup_vault()
        .backup_vault_name(VAULT)
        .send()
        .await
        .unwrap();
    let src = dir.path().join("src");
    write(&src, "a/one.txt", &[1; 10], 1_000_000);
    write(&src, "a/two.txt", &[2; 500], 2_000_000);
    write(&src, "a/deep/three.txt", &[3; 5_000], 3_000_000);
    write(&src, "b/four.log", &[4; 50], 4_000_000);
    write(&src, "b/five, \"quoted\".txt", &[5; 7], 5_000_000);
    let rp = indexed_backup(&c).await;
    let paths =
        |r: Vec<(String, i64, String)>| r.into_iter().map(|(p, _, _)| p).collect::<Vec<_>>();

    // Wildcard path: `*` crosses directories.
    let id = search(
        &s,
        ebs_scope(),
        Some(
            EbsItemFilter::builder()
                .file_paths(path_is(StringConditionOperator::EqualsTo, "/a/*.txt"))
                .build(),
        ),
    )
    .await;
    assert_eq!(
        paths(results(&s, &id).await),
        ["/a/deep/three.txt", "/a/one.txt", "/a/two.txt"]
    );
    // Size range: two filters, both required (10 <= size <= 500).
    let size = |op, v| {
        EbsItemFilter::builder()
            .sizes(
                LongCondition::builder()
                    .operator(op)
                    .value(v)
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let id = s
        .start_search_job()
        .search_scope(ebs_scope())
        .item_filters(
            ItemFilters::builder()
                .ebs_item_filters(size(LongConditionOperator::GreaterThanEqualTo, 10))
                .ebs_item_filters(size(LongConditionOperator::LessThanEqualTo, 500))
                .build(),
        )
        .send()
        .await
        .unwrap()
        .search_job_identifier()
        .unwrap()
        .to_string();
    wait_search(&s, &id).await;
    assert_eq!(
        paths(results(&s, &id).await),
        ["/a/one.txt", "/a/two.txt", "/b/four.log"]
    );
    let at_most = EbsItemFilter::builder()
        .sizes(
            LongCondition::builder()
                .operator(LongConditionOperator::LessThanEqualTo)
                .value(500)
                .build()
                .unwrap(),
        )
        .file_paths(path_is(StringConditionOperator::EndsWith, ".txt"))
        .build();
    let id = search(&s, ebs_scope(), Some(at_most)).await;
    assert_eq!(
        paths(results(&s, &id).await),
        ["/a/one.txt", "/a/two.txt", "/b/five, \"quoted\".txt"]
    );
    // Modification time range (from 2,000,000 s to 4,000,000 s after the epoch).
    let time = |op, secs| {
        TimeCondition::builder()
            .operator(op)
            .value(aws_sdk_backupsearch::primitives::DateTime::from_secs(secs))
            .build()
            .unwrap()
    };
    let window = EbsItemFilter::builder()
        .last_modification_times(time(TimeConditionOperator::GreaterThanEqualTo, 2_000_000))
        .file_paths(path_is(StringConditionOperator::BeginsWith, "/a/"))
        .build();
    let id = search(&s, ebs_scope(), Some(window)).await;
    assert_eq!(
        paths(results(&s, &id).await),
        ["/a/deep/three.txt", "/a/two.txt"]
    );
    // A creation-time scope that excludes the point finds nothing to read.
    let old = SearchScope::builder()
        .backup_resource_types(ResourceType::Ebs)
        .backup_resource_creation_time(
            BackupCreationTimeFilter::builder()
                .created_before(aws_sdk_backupsearch::primitives::DateTime::from_secs(1_000))
                .build(),
        )
        .build()
        .unwrap();
    let id = search(&s, old, None).await;
    let j = s
        .get_search_job()
        .search_job_identifier(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        j.search_scope_summary()
            .unwrap()
            .total_recovery_points_to_scan_count(),
        Some(0)
    );
    assert!(results(&s, &id).await.is_empty());
    // ... and one naming the point by ARN finds all five files.
    let by_arn = SearchScope::builder()
        .backup_resource_types(ResourceType::Ebs)
        .backup_resource_arns(&rp)
        .build()
        .unwrap();
    let all_id = search(&s, by_arn, None).await;
    assert_eq!(results(&s, &all_id).await.len(), 5);

    // A search that has ended cannot be stopped.
    let e = s
        .stop_search_job()
        .search_job_identifier(&all_id)
        .send()
        .await
        .unwrap_err();
    let e = e.into_service_error();
    assert!(e.is_conflict_exception(), "{e:?}");

    // Export to the configured bucket; read the CSV and the JSON back.
    let export = s
        .start_search_result_export_job()
        .search_job_identifier(&all_id)
        .export_specification(ExportSpecification::S3ExportSpecification(
            S3ExportSpecification::builder()
                .destination_bucket("search-exports")
                .destination_prefix("runs/first")
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap();
    let eid = export.export_job_identifier().to_string();
    let ended = wait_export(&s, &eid).await;
    assert_eq!(
        ended.status(),
        Some(&ExportJobStatus::Completed),
        "{:?}",
        ended.status_message()
    );
    let out = dir.path().join("exports/runs/first").join(&eid);
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "FilePath,FileSize,LastModifiedTime,BackupResourceArn,SourceResourceArn,BackupVaultName"
        )
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 5);
    assert!(
        rows.contains(
            &format!("/a/two.txt,500,1970-01-24T03:33:20.000Z,{rp},{FS_ARN},{VAULT}").as_str()
        ),
        "{csv}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("\"/b/five, \"\"quoted\"\".txt\",7,")),
        "{csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let items = json.as_array().unwrap();
    assert_eq!(items.len(), 5);
    let deep = items
        .iter()
        .find(|i| i["FilePath"] == "/a/deep/three.txt")
        .unwrap();
    assert_eq!(deep["FileSize"], 5000);
    assert_eq!(deep["BackupResourceArn"], rp.as_str());
    let listed = s
        .list_search_result_export_jobs()
        .search_job_identifier(&all_id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.export_jobs().len(), 1);
    assert_eq!(listed.export_jobs()[0].export_job_identifier(), eid);

    // Tags on a search job: set at start, added, listed, removed (tagKeys in the query).
    let tagged = s
        .start_search_job()
        .search_scope(ebs_scope())
        .tags("team", Some("storage".into()))
        .send()
        .await
        .unwrap();
    let arn = tagged.search_job_arn().unwrap().to_string();
    s.tag_resource()
        .resource_arn(&arn)
        .tags("env", Some("test".into()))
        .tags("owner", Some("ops".into()))
        .send()
        .await
        .unwrap();
    let t = s
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let tags = t.tags().unwrap();
    assert_eq!(tags.len(), 3);
    assert_eq!(tags["env"].as_deref(), Some("test"));
    s.untag_resource()
        .resource_arn(&arn)
        .tag_keys("env")
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let t = s
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(t.tags().unwrap().keys().collect::<Vec<_>>(), ["owner"]);
    // The job runs in the background: wait for it to end before filtering by COMPLETED.
    let tagged_id = tagged.search_job_identifier().unwrap().to_string();
    assert_eq!(wait_search(&s, &tagged_id).await, SearchJobState::Completed);
    let listed = s
        .list_search_jobs()
        .by_status(SearchJobState::Completed)
        .send()
        .await
        .unwrap();
    assert!(
        listed
            .search_jobs()
            .iter()
            .any(|j| j.search_job_arn() == Some(arn.as_str()))
    );

    // Refusals, each with its code.
    let e = s
        .get_search_job()
        .search_job_identifier("no-such-job")
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_resource_not_found_exception());
    let e = s
        .list_tags_for_resource()
        .resource_arn("arn:aws:backup:us-east-1:111122223333:search-job/nope")
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_resource_not_found_exception());
    let e = s
        .start_search_job()
        .search_scope(ebs_scope())
        .item_filters(
            ItemFilters::builder()
                .s3_item_filters(
                    S3ItemFilter::builder()
                        .object_keys(path_is(StringConditionOperator::Contains, "x"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");
    assert!(
        e.to_string().contains("EBSItemFilters") || format!("{e:?}").contains("EBSItemFilters")
    );
    let e = s
        .start_search_job()
        .search_scope(ebs_scope())
        .item_filters(
            ItemFilters::builder()
                .ebs_item_filters(
                    EbsItemFilter::builder()
                        .creation_times(time(TimeConditionOperator::EqualsTo, 1))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");
    let e = s
        .list_search_job_results()
        .search_job_identifier(&all_id)
        .max_results(0)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");
    let e = s
        .start_search_result_export_job()
        .search_job_identifier(&all_id)
        .export_specification(ExportSpecification::S3ExportSpecification(
            S3ExportSpecification::builder()
                .destination_bucket("nobody-configured-this")
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");
    let e = s
        .start_search_result_export_job()
        .search_job_identifier("no-such-job")
        .export_specification(ExportSpecification::S3ExportSpecification(
            S3ExportSpecification::builder()
                .destination_bucket("search-exports")
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let e = s
        .get_search_result_export_job()
        .export_job_identifier("no-such-export")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
}

/// Every result of a search job: (path, size, modified ms).
async fn all_results(s: &Search, id: &str) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = s
            .list_search_job_results()
            .search_job_identifier(id)
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        for r in page.results() {
            let e = r.as_ebs_result_item().expect("an EBS result item");
            let t = e.last_modified_time().unwrap();
            out.push((
                e.file_path().unwrap().to_string(),
                e.file_size().unwrap(),
                t.secs() * 1000 + i64::from(t.subsec_nanos() / 1_000_000),
            ));
        }
        token = page.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    out.sort();
    out
}

/// Sets a point's index DISABLED and waits until it is gone, or ENABLED and waits until it is
/// ACTIVE.
async fn set_index(c: &Backup, rp: &str, on: bool) {
    c.update_recovery_point_index_settings()
        .backup_vault_name(VAULT)
        .recovery_point_arn(rp)
        .index(if on { Index::Enabled } else { Index::Disabled })
        .send()
        .await
        .unwrap();
    wait_until("the index to change", 60, || {
        let (c, rp) = (c.clone(), rp.to_string());
        async move {
            let d = c
                .get_recovery_point_index_details()
                .backup_vault_name(VAULT)
                .recovery_point_arn(rp)
                .send()
                .await;
            match d {
                Ok(d) if on => (d.index_status() == Some(&IndexStatus::Active)).then_some(()),
                Ok(_) => None,
                Err(_) => (!on).then_some(()),
            }
        }
    })
    .await;
}

/// The `key=value` field of the log line that contains `marker`.
fn log_field(log: &str, marker: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no log line with {marker}:\n{log}"));
    let v = line
        .split(&format!("{key}="))
        .nth(1)
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    v.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The second backup's index is built from the first's: only the directories on the way to
/// the change are read (the log counts the trees read and the files taken over), and it
/// lists every file of the tree with its size and time, exactly as a full build of the same
/// point then does. Over two catalogue parts, a needle (EQUALS_TO) and a prefix
/// (BEGINS_WITH) find just their files, with every file counted as scanned.
#[tokio::test]
async fn an_index_built_from_the_previous_one_equals_a_full_build() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    for d in 0..25 {
        for f in 0..200 {
            let rel = format!("w{d:02}/f{f:04}.txt");
            write(&src, &rel, rel.as_bytes(), 1_600_000_000 + d * 1000 + f);
        }
    }
    let log = dir.path().join("coffer.log");
    let server = start_logging(dir.path(), Some(&log)).await;
    let (c, s) = (server.client(), search_client(&server));
    c.create_backup_vault()
        .backup_vault_name(VAULT)
        .send()
        .await
        .unwrap();
    let rp1 = indexed_backup(&c).await;
    write(&src, "w07/f0003.txt", b"changed, longer", 1_700_000_000);
    write(&src, "w19/new.txt", b"new", 1_700_000_001);
    let rp2 = indexed_backup(&c).await;
    let id2 = rp2.rsplit(':').next().unwrap().to_string();

    let text = wait_for_log(&log, &format!("{id2} files=5001 incremental=true")).await;
    let marker = format!("{id2} files=5001 incremental=true");
    // The root, w07 and w19, in both snapshots.
    assert_eq!(log_field(&text, &marker, "trees_read"), 6, "{text}");
    assert_eq!(log_field(&text, &marker, "files_reused"), 5001 - 201 - 200);

    let mut expected = Vec::new();
    for d in std::fs::read_dir(&src).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            let f = f.unwrap();
            let m = f.metadata().unwrap();
            let ms = m
                .modified()
                .unwrap()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let rel = f.path().strip_prefix(&src).unwrap().display().to_string();
            expected.push((format!("/{rel}"), m.len() as i64, ms));
        }
    }
    expected.sort();
    assert_eq!(expected.len(), 5001);
    let of_rp2 = || {
        SearchScope::builder()
            .backup_resource_types(ResourceType::Ebs)
            .backup_resource_arns(&rp2)
            .build()
            .unwrap()
    };
    let every = search(&s, of_rp2(), None).await;
    let incremental = all_results(&s, &every).await;
    assert_eq!(incremental, expected);

    // A needle in the second part, and a prefix: only their files, all files scanned.
    let needle = EbsItemFilter::builder()
        .file_paths(path_is(StringConditionOperator::EqualsTo, "/w24/f0199.txt"))
        .build();
    let id = search(&s, of_rp2(), Some(needle)).await;
    let found = all_results(&s, &id).await;
    assert_eq!(found, vec![expected.last().unwrap().clone()]);
    let job = s
        .get_search_job()
        .search_job_identifier(&id)
        .send()
        .await
        .unwrap();
    let progress = job.current_search_progress().unwrap();
    assert_eq!(progress.items_scanned_count(), Some(5001));
    assert_eq!(progress.items_matched_count(), Some(1));
    let prefix = EbsItemFilter::builder()
        .file_paths(path_is(StringConditionOperator::BeginsWith, "w19/"))
        .build();
    let id = search(&s, of_rp2(), Some(prefix)).await;
    let w19: Vec<_> = expected
        .iter()
        .filter(|e| e.0.starts_with("/w19/"))
        .cloned()
        .collect();
    assert_eq!(w19.len(), 201);
    assert_eq!(all_results(&s, &id).await, w19);

    // A full build of the same point: without the first point's index there is no base.
    set_index(&c, &rp1, false).await;
    set_index(&c, &rp2, false).await;
    set_index(&c, &rp2, true).await;
    let marker = format!("{id2} files=5001 incremental=false");
    let text = wait_for_log(&log, &marker).await;
    // The root and the 25 directories.
    assert_eq!(log_field(&text, &marker, "trees_read"), 26, "{text}");
    let every = search(&s, of_rp2(), None).await;
    assert_eq!(all_results(&s, &every).await, incremental);
}

/// History retention: an ended search job (with its result rows and ClientToken) and an
/// ended export job (with its token) are forgotten once they ended longer ago than the
/// retention (30 days by default); the export's files stay in their bucket, and the search's
/// token then starts a new job.
#[tokio::test]
async fn ended_searches_and_exports_are_forgotten_after_the_retention() {
    const DAY: i64 = 86_400;
    let dir = temp_dir();
    write(
        &dir.path().join("src"),
        "docs/a.txt",
        b"hello\n",
        1_700_000_000,
    );
    let cfg = dir.path().join("coffer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[resources]]\narn = \"{FS_ARN}\"\nsource = \"{}\"\n\n\
             [[report_buckets]]\nbucket = \"search-exports\"\ndirectory = \"{}\"\n",
            dir.path().join("src").display(),
            dir.path().join("exports").display()
        ),
    )
    .unwrap();
    let server = Server::start(&[
        "--dev",
        "--account-id",
        ACCOUNT,
        "--config",
        cfg.to_str().unwrap(),
    ])
    .await;
    let (c, s) = (server.client(), search_client(&server));
    c.create_backup_vault()
        .backup_vault_name(VAULT)
        .send()
        .await
        .unwrap();
    indexed_backup(&c).await;
    let start = |token: &'static str| {
        let s = s.clone();
        async move {
            s.start_search_job()
                .search_scope(ebs_scope())
                .client_token(token)
                .send()
                .await
                .unwrap()
                .search_job_identifier()
                .unwrap()
                .to_string()
        }
    };
    let id = start("search-token").await;
    assert_eq!(wait_search(&s, &id).await, SearchJobState::Completed);
    assert_eq!(results(&s, &id).await.len(), 1, "one file found");
    let eid = s
        .start_search_result_export_job()
        .search_job_identifier(&id)
        .client_token("export-token")
        .export_specification(ExportSpecification::S3ExportSpecification(
            S3ExportSpecification::builder()
                .destination_bucket("search-exports")
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap()
        .export_job_identifier()
        .to_string();
    let ended = wait_export(&s, &eid).await;
    assert_eq!(ended.status(), Some(&ExportJobStatus::Completed));
    let csv = dir.path().join("exports").join(&eid).join("results.csv");
    assert!(csv.is_file(), "the export wrote {}", csv.display());

    // 29 days on, both are still there.
    server.advance_clock(29 * DAY).await;
    s.get_search_job()
        .search_job_identifier(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(results(&s, &id).await.len(), 1);

    // 31 days on, both are gone; the export's files stay.
    server.advance_clock(2 * DAY).await;
    let e = s
        .get_search_job()
        .search_job_identifier(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let e = s
        .list_search_job_results()
        .search_job_identifier(&id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let e = s
        .get_search_result_export_job()
        .export_job_identifier(&eid)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let listed = s.list_search_jobs().send().await.unwrap();
    assert!(listed.search_jobs().is_empty(), "{listed:?}");
    assert!(csv.is_file(), "the export's files stay");
    // The search's token went with it: the same token starts a new job.
    let again = start("search-token").await;
    assert_ne!(again, id);
    assert_eq!(wait_search(&s, &again).await, SearchJobState::Completed);
    assert_eq!(results(&s, &again).await.len(), 1);
}
