//! The console's pages and actions, rendered on the server from `BackupService` answers. Every
//! value from the store or the user is escaped (`html-escape`) before it reaches the page.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use chrono::Duration;
use coffer_api::types::{
    BackupJob, CopyJob, DescribeBackupVaultInput, GetBackupPlanInput, GetBackupPlanOutput,
    GetBackupSelectionInput, GetBackupVaultAccessPolicyInput, GetBackupVaultNotificationsInput,
    ListBackupJobsInput, ListBackupPlansInput, ListBackupSelectionsInput, ListBackupVaultsInput,
    ListCopyJobsInput, ListRecoveryPointsByBackupVaultInput, ListRestoreJobsInput,
    RecoveryPointByBackupVault, RestoreJobsListMember, StartRestoreJobInput,
};
use coffer_api::{ApiError, BackupService, ModelEnum, Timestamp};
use coffer_core::model::states::{FromWire, JobState};
use coffer_core::{Destination, TravelError};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::{Ctx, html, redirect};

/// At most this many jobs of each kind are read for a page.
const MAX_JOBS: usize = 500;

fn e(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

fn a(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).into_owned()
}

fn opt(s: &Option<String>) -> String {
    e(s.as_deref().unwrap_or(""))
}

fn ts(t: &Option<Timestamp>) -> String {
    t.as_ref()
        .map(|t| t.0.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn state<S: ModelEnum>(s: &Option<S>) -> String {
    state_text(s.as_ref().map_or("", ModelEnum::as_str))
}

fn state_text(s: &str) -> String {
    format!(r#"<span class="state {}">{}</span>"#, a(s), e(s))
}

fn csrf_field(ctx: &Ctx<'_>) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        a(&ctx.csrf)
    )
}

/// The page frame: navigation, who is signed in, the content.
pub fn layout(ctx: &Ctx<'_>, title: &str, body: &str) -> String {
    layout_with(ctx, title, body, false)
}

fn layout_with(ctx: &Ctx<'_>, title: &str, body: &str, refresh: bool) -> String {
    let who = match &ctx.access_key_id {
        Some(k) => format!(
            "{} · account {} · {}",
            e(k),
            e(&ctx.account),
            e(&ctx.region)
        ),
        None => format!(
            "development mode · account {} · {}",
            e(&ctx.account),
            e(&ctx.region)
        ),
    };
    let clock = if ctx.dev {
        r#"<a href="/console/clock">Clock</a>"#
    } else {
        ""
    };
    let sign_out = if ctx.access_key_id.is_some() {
        format!(
            r#"<form method="post" action="/console/sign-out">{}<button class="secondary" id="sign-out">Sign out</button></form>"#,
            csrf_field(ctx)
        )
    } else {
        String::new()
    };
    let refresh = if refresh {
        r#"<meta http-equiv="refresh" content="2">"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · Coffer</title>{refresh}
<link rel="stylesheet" href="/console/console.css"></head>
<body><header><a class="brand" href="/console">Coffer</a>
<a href="/console">Dashboard</a><a href="/console/vaults">Vaults</a><a href="/console/plans">Plans</a><a href="/console/jobs">Jobs</a>
<a href="/console/inventory">Inventory</a><a href="/console/notifications">Notifications</a>{clock}
<span class="who">{who}</span>{sign_out}</header>
<main><h1>{title}</h1>
{body}
</main></body></html>"#,
        title = e(title),
    )
}

pub fn sign_in(error: Option<&str>) -> String {
    let error = error
        .map(|m| format!(r#"<div class="error" id="error">{}</div>"#, e(m)))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · Coffer</title>
<link rel="stylesheet" href="/console/console.css"></head>
<body><main class="signin"><h1>Sign in to Coffer</h1>{error}
<form method="post" action="/console/sign-in" class="card">
<label for="access_key_id">Access key id</label><input type="text" id="access_key_id" name="access_key_id" autocomplete="username" required>
<label for="secret_access_key">Secret access key</label><input type="password" id="secret_access_key" name="secret_access_key" autocomplete="current-password" required>
<label for="region">Region</label><input type="text" id="region" name="region" placeholder="us-east-1">
<p><button id="sign-in">Sign in</button></p>
<p class="muted">Use a credential Coffer is configured with (the one it generated is in DATA_DIR/credentials.json). The account of the key scopes what you see.</p>
</form></main></body></html>"#
    )
}

fn error_box(what: &str, err: &ApiError) -> String {
    format!(
        r#"<div class="error">{}: {} ({})</div>"#,
        e(what),
        e(err.message()),
        e(err.code())
    )
}

pub async fn get(ctx: &Ctx<'_>, path: &str, query: Option<&str>) -> Option<String> {
    let _ = query;
    Some(match path {
        "/console" => dashboard(ctx).await,
        "/console/vaults" => vaults(ctx).await,
        "/console/jobs" => jobs(ctx).await,
        "/console/plans" => plans(ctx).await,
        "/console/inventory" => inventory(ctx),
        "/console/notifications" => notifications(ctx).await,
        "/console/clock" if ctx.dev => clock(ctx, None),
        _ => {
            if let Some(name) = path.strip_prefix("/console/vaults/") {
                vault(ctx, name).await
            } else if let Some(id) = path.strip_prefix("/console/jobs/restore/") {
                restore_job(ctx, id).await
            } else {
                return None;
            }
        }
    })
}

pub async fn post(
    ctx: &Ctx<'_>,
    path: &str,
    form: &HashMap<String, String>,
) -> Response<Full<Bytes>> {
    let field = |k: &str| {
        form.get(k)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    match path {
        "/console/restore" => {
            let vault = field("vault");
            let target = field("target_path");
            let role = field("iam_role_arn");
            let input = StartRestoreJobInput {
                recovery_point_arn: field("recovery_point_arn"),
                iam_role_arn: Some(if role.is_empty() {
                    format!(
                        "arn:aws:iam::{}:role/service-role/AWSBackupDefaultServiceRole",
                        ctx.account
                    )
                } else {
                    role
                }),
                metadata: BTreeMap::from([("targetPath".to_string(), target)]),
                ..Default::default()
            };
            match ctx.coffer.start_restore_job(&ctx.request(), input).await {
                Ok(out) => redirect(
                    &format!(
                        "/console/jobs/restore/{}",
                        out.restore_job_id.unwrap_or_default()
                    ),
                    None,
                ),
                Err(err) => {
                    let body = format!(
                        "{}<p><a href=\"/console/vaults/{}\">Back to the vault</a></p>",
                        error_box("The restore was not started", &err),
                        a(&vault)
                    );
                    html(
                        StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST),
                        layout(ctx, "Restore not started", &body),
                    )
                }
            }
        }
        "/console/notifications/replay" => {
            let replayed = ctx
                .coffer
                .outbox()
                .replay_dead(Some(&ctx.account), None)
                .await;
            match replayed {
                Ok(r) => {
                    for m in &r {
                        tracing::info!(topic = %m.topic_arn, event = %m.event, id = %m.id, "dead letter replayed from the console");
                    }
                    redirect("/console/notifications", None)
                }
                Err(err) => {
                    tracing::error!(error = %err, "replaying dead letters failed");
                    html(
                        StatusCode::SERVICE_UNAVAILABLE,
                        layout(
                            ctx,
                            "Notifications",
                            r#"<div class="error">The metadata store is not available.</div>"#,
                        ),
                    )
                }
            }
        }
        "/console/clock" if ctx.dev => {
            let hours: i64 = match field("advance_hours").parse() {
                Ok(h) if h > 0 => h,
                _ => {
                    return html(
                        StatusCode::BAD_REQUEST,
                        clock(ctx, Some("Give a whole number of hours, at least 1.")),
                    );
                }
            };
            let Some(by) = Duration::try_hours(hours) else {
                return html(
                    StatusCode::BAD_REQUEST,
                    clock(ctx, Some("That is too many hours to advance by.")),
                );
            };
            // The skipped time runs as if Coffer had been up (docs/scheduler.md).
            match ctx.coffer.travel(Destination::Advance(by)).await {
                Ok(_) => redirect("/console/clock", None),
                Err(TravelError::Refused(err)) => {
                    html(StatusCode::BAD_REQUEST, clock(ctx, Some(&err)))
                }
                Err(TravelError::Failed(err)) => html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    clock(ctx, Some(err.message())),
                ),
            }
        }
        _ => html(
            StatusCode::NOT_FOUND,
            layout(ctx, "Not found", "<p>There is no such console action.</p>"),
        ),
    }
}

async fn backup_jobs(ctx: &Ctx<'_>, since: Option<Timestamp>) -> Result<Vec<BackupJob>, ApiError> {
    let mut all = Vec::new();
    let mut next = None;
    loop {
        let out = ctx
            .coffer
            .list_backup_jobs(
                &ctx.request(),
                ListBackupJobsInput {
                    by_created_after: since,
                    next_token: next,
                    ..Default::default()
                },
            )
            .await?;
        all.extend(out.backup_jobs.unwrap_or_default());
        next = out.next_token;
        if next.is_none() || all.len() >= MAX_JOBS {
            return Ok(all);
        }
    }
}

async fn copy_jobs(ctx: &Ctx<'_>, since: Option<Timestamp>) -> Result<Vec<CopyJob>, ApiError> {
    let mut all = Vec::new();
    let mut next = None;
    loop {
        let out = ctx
            .coffer
            .list_copy_jobs(
                &ctx.request(),
                ListCopyJobsInput {
                    by_created_after: since,
                    next_token: next,
                    ..Default::default()
                },
            )
            .await?;
        all.extend(out.copy_jobs.unwrap_or_default());
        next = out.next_token;
        if next.is_none() || all.len() >= MAX_JOBS {
            return Ok(all);
        }
    }
}

async fn restore_jobs(
    ctx: &Ctx<'_>,
    since: Option<Timestamp>,
) -> Result<Vec<RestoreJobsListMember>, ApiError> {
    let mut all = Vec::new();
    let mut next = None;
    loop {
        let out = ctx
            .coffer
            .list_restore_jobs(
                &ctx.request(),
                ListRestoreJobsInput {
                    by_created_after: since,
                    next_token: next,
                    ..Default::default()
                },
            )
            .await?;
        all.extend(out.restore_jobs.unwrap_or_default());
        next = out.next_token;
        if next.is_none() || all.len() >= MAX_JOBS {
            return Ok(all);
        }
    }
}

async fn recovery_points(
    ctx: &Ctx<'_>,
    vault: &str,
) -> Result<Vec<RecoveryPointByBackupVault>, ApiError> {
    let mut all = Vec::new();
    let mut next = None;
    loop {
        let out = ctx
            .coffer
            .list_recovery_points_by_backup_vault(
                &ctx.request(),
                ListRecoveryPointsByBackupVaultInput {
                    backup_vault_name: vault.to_string(),
                    next_token: next,
                    ..Default::default()
                },
            )
            .await?;
        all.extend(out.recovery_points.unwrap_or_default());
        next = out.next_token;
        if next.is_none() {
            return Ok(all);
        }
    }
}

/// (name, recovery points, bytes) of every vault of the account.
async fn vault_sizes(ctx: &Ctx<'_>) -> Result<Vec<(String, i64, i64, bool)>, ApiError> {
    let mut rows = Vec::new();
    let mut next = None;
    loop {
        let out = ctx
            .coffer
            .list_backup_vaults(
                &ctx.request(),
                ListBackupVaultsInput {
                    next_token: next,
                    ..Default::default()
                },
            )
            .await?;
        for v in out.backup_vault_list.unwrap_or_default() {
            let name = v.backup_vault_name.clone().unwrap_or_default();
            let size = recovery_points(ctx, &name)
                .await?
                .iter()
                .filter_map(|p| p.backup_size_in_bytes)
                .sum();
            rows.push((
                name,
                v.number_of_recovery_points.unwrap_or(0),
                size,
                v.locked.unwrap_or(false),
            ));
        }
        next = out.next_token;
        if next.is_none() {
            return Ok(rows);
        }
    }
}

/// A shown state as text ("" when absent).
fn shown<S: ModelEnum>(s: &Option<S>) -> String {
    s.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// A job (of any kind, by its shown state) that ended without completing.
fn is_failure<W>(s: &Option<W>) -> bool
where
    JobState: FromWire<W>,
{
    s.as_ref()
        .and_then(JobState::from_wire)
        .is_some_and(|s| s.is_terminal() && s != JobState::Completed)
}

/// A job (of any kind, by its shown state) waiting or running.
fn is_active<W>(s: &Option<W>) -> bool
where
    JobState: FromWire<W>,
{
    s.as_ref()
        .and_then(JobState::from_wire)
        .is_some_and(|s| s.is_waiting() || s == JobState::Running)
}

async fn dashboard(ctx: &Ctx<'_>) -> String {
    let since = Some(Timestamp(ctx.coffer.clock().now() - Duration::hours(24)));
    let mut body = String::new();
    let (b, c, r) = (
        backup_jobs(ctx, since).await,
        copy_jobs(ctx, since).await,
        restore_jobs(ctx, since).await,
    );
    let (b, c, r) = match (b, c, r) {
        (Ok(b), Ok(c), Ok(r)) => (b, c, r),
        (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
            return layout(ctx, "Dashboard", &error_box("Jobs could not be read", &err));
        }
    };
    // Jobs of the last 24 hours by kind and state.
    let mut counts: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for j in &b {
        *counts.entry(("Backup", shown(&j.state))).or_default() += 1;
    }
    for j in &c {
        *counts.entry(("Copy", shown(&j.state))).or_default() += 1;
    }
    for j in &r {
        *counts.entry(("Restore", shown(&j.status))).or_default() += 1;
    }
    body.push_str("<h2>Jobs of the last 24 hours</h2>");
    if counts.is_empty() {
        body.push_str(r#"<p class="muted">No jobs in the last 24 hours.</p>"#);
    } else {
        body.push_str(
            r#"<table id="job-counts"><tr><th>Kind</th><th>State</th><th>Jobs</th></tr>"#,
        );
        for ((kind, s), n) in &counts {
            body.push_str(&format!(
                r#"<tr><td>{kind}</td><td>{}</td><td class="num">{n}</td></tr>"#,
                state_text(s)
            ));
        }
        body.push_str("</table>");
    }
    // Failures with their messages.
    let mut failures = String::new();
    for j in b.iter().filter(|j| is_failure(&j.state)) {
        failures.push_str(&format!(
            "<tr><td>Backup</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            opt(&j.backup_job_id),
            opt(&j.resource_arn),
            state(&j.state),
            opt(&j.status_message)
        ));
    }
    for j in c.iter().filter(|j| is_failure(&j.state)) {
        failures.push_str(&format!(
            "<tr><td>Copy</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            opt(&j.copy_job_id),
            opt(&j.resource_arn),
            state(&j.state),
            opt(&j.status_message)
        ));
    }
    for j in r.iter().filter(|j| is_failure(&j.status)) {
        failures.push_str(&format!(
            "<tr><td>Restore</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            opt(&j.restore_job_id),
            opt(&j.recovery_point_arn),
            state(&j.status),
            opt(&j.status_message)
        ));
    }
    body.push_str("<h2>Failures</h2>");
    if failures.is_empty() {
        body.push_str(r#"<p class="muted">None in the last 24 hours.</p>"#);
    } else {
        body.push_str(&format!(
            r#"<table id="failures"><tr><th>Kind</th><th>Job</th><th>Resource / recovery point</th><th>State</th><th>Message</th></tr>{failures}</table>"#
        ));
    }
    // The latest backups.
    body.push_str("<h2>Latest backups</h2>");
    if b.is_empty() {
        body.push_str(r#"<p class="muted">No backups in the last 24 hours.</p>"#);
    } else {
        body.push_str(r#"<table id="latest-backups"><tr><th>Created</th><th>Resource</th><th>Vault</th><th>State</th><th>Size</th><th>Recovery point</th></tr>"#);
        let mut latest: Vec<&BackupJob> = b.iter().collect();
        latest.sort_by(|x, y| {
            let k = |j: &BackupJob| j.creation_date.as_ref().map(|t| t.0);
            k(y).cmp(&k(x))
        });
        for j in latest.into_iter().take(10) {
            body.push_str(&format!(
                r#"<tr><td>{}</td><td>{}</td><td><a href="/console/vaults/{}">{}</a></td><td>{}</td><td class="num">{}</td><td><code>{}</code></td></tr>"#,
                ts(&j.creation_date),
                opt(&j.resource_name),
                a(j.backup_vault_name.as_deref().unwrap_or("")),
                opt(&j.backup_vault_name),
                state(&j.state),
                j.backup_size_in_bytes.map(bytes).unwrap_or_default(),
                opt(&j.recovery_point_arn)
            ));
        }
        body.push_str("</table>");
    }
    // Storage per vault.
    body.push_str("<h2>Storage per vault</h2>");
    match vault_sizes(ctx).await {
        Ok(rows) if rows.is_empty() => {
            body.push_str(r#"<p class="muted">No vaults yet.</p>"#);
        }
        Ok(rows) => {
            body.push_str(r#"<table id="storage"><tr><th>Vault</th><th>Recovery points</th><th>Size</th></tr>"#);
            for (name, n, size, _) in rows {
                body.push_str(&format!(
                    r#"<tr><td><a href="/console/vaults/{}">{}</a></td><td class="num">{n}</td><td class="num">{}</td></tr>"#,
                    a(&name),
                    e(&name),
                    bytes(size)
                ));
            }
            body.push_str("</table>");
        }
        Err(err) => body.push_str(&error_box("Vaults could not be read", &err)),
    }
    // The next scheduled runs of every plan.
    body.push_str("<h2>Next scheduled runs</h2>");
    match plan_details(ctx).await {
        Ok(plans) => {
            let mut runs: Vec<(Timestamp, String, String)> = Vec::new();
            for p in &plans {
                let name = p
                    .backup_plan
                    .as_ref()
                    .map(|b| b.backup_plan_name.clone())
                    .unwrap_or_default();
                for r in p.scheduled_runs_preview.iter().flatten() {
                    let rule = rule_name(p, r.rule_id.as_deref());
                    if let Some(t) = r.execution_time {
                        runs.push((t, name.clone(), rule));
                    }
                }
            }
            runs.sort_by_key(|(t, _, _)| t.0);
            if runs.is_empty() {
                body.push_str(
                    r#"<p class="muted">No scheduled runs (no plans with scheduled rules).</p>"#,
                );
            } else {
                body.push_str(
                    r#"<table id="next-runs"><tr><th>When</th><th>Plan</th><th>Rule</th></tr>"#,
                );
                for (t, plan, rule) in runs.into_iter().take(10) {
                    body.push_str(&format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                        ts(&Some(t)),
                        e(&plan),
                        e(&rule)
                    ));
                }
                body.push_str("</table>");
            }
        }
        Err(err) => body.push_str(&error_box("Plans could not be read", &err)),
    }
    let running = b.iter().any(|j| is_active(&j.state)) || r.iter().any(|j| is_active(&j.status));
    layout_with(ctx, "Dashboard", &body, running)
}

/// Every plan of the account with the next runs of its rules.
async fn plan_details(ctx: &Ctx<'_>) -> Result<Vec<GetBackupPlanOutput>, ApiError> {
    let rq = ctx.request();
    let mut ids = Vec::new();
    let mut next = None;
    loop {
        let out = ctx
            .coffer
            .list_backup_plans(
                &rq,
                ListBackupPlansInput {
                    next_token: next,
                    ..Default::default()
                },
            )
            .await?;
        ids.extend(
            out.backup_plans_list
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.backup_plan_id),
        );
        next = out.next_token;
        if next.is_none() {
            break;
        }
    }
    let mut plans = Vec::new();
    for id in ids {
        plans.push(
            ctx.coffer
                .get_backup_plan(
                    &rq,
                    GetBackupPlanInput {
                        backup_plan_id: id,
                        max_scheduled_runs_preview: Some(5),
                        ..Default::default()
                    },
                )
                .await?,
        );
    }
    Ok(plans)
}

fn rule_name(plan: &GetBackupPlanOutput, rule_id: Option<&str>) -> String {
    plan.backup_plan
        .as_ref()
        .and_then(|b| {
            b.rules
                .iter()
                .find(|r| r.rule_id.as_deref() == rule_id && rule_id.is_some())
        })
        .map(|r| r.rule_name.clone())
        .unwrap_or_else(|| rule_id.unwrap_or("").to_string())
}

async fn plans(ctx: &Ctx<'_>) -> String {
    let plans = match plan_details(ctx).await {
        Ok(p) => p,
        Err(err) => return layout(ctx, "Plans", &error_box("Plans could not be read", &err)),
    };
    if plans.is_empty() {
        return layout(
            ctx,
            "Plans",
            r#"<p class="muted">No backup plans (<code>aws backup create-backup-plan</code>).</p>"#,
        );
    }
    let rq = ctx.request();
    let mut body = String::new();
    for p in &plans {
        let Some(plan) = &p.backup_plan else { continue };
        let id = p.backup_plan_id.clone().unwrap_or_default();
        body.push_str(&format!(
            r#"<h2>{}</h2><div class="card plan"><p><code>{}</code> · version <code>{}</code> · last run {}</p>
<table><tr><th>Rule</th><th>Schedule</th><th>Vault</th><th>Windows (min)</th><th>Lifecycle</th><th>Next runs</th></tr>"#,
            e(&plan.backup_plan_name),
            e(&id),
            opt(&p.version_id),
            p.last_execution_date
                .as_ref()
                .map(|t| ts(&Some(*t)))
                .unwrap_or_else(|| "never".into())
        ));
        for r in &plan.rules {
            let next: Vec<String> = p
                .scheduled_runs_preview
                .iter()
                .flatten()
                .filter(|x| x.rule_id.is_some() && x.rule_id == r.rule_id)
                .map(|x| ts(&x.execution_time))
                .collect();
            let lifecycle = r
                .lifecycle
                .as_ref()
                .map(|l| {
                    let mut parts = Vec::new();
                    if let Some(d) = l.move_to_cold_storage_after_days {
                        parts.push(format!("cold after {d} days"));
                    }
                    if let Some(d) = l.delete_after_days {
                        parts.push(format!("deleted after {d} days"));
                    }
                    parts.join(", ")
                })
                .unwrap_or_default();
            body.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code> {}</td><td>{}</td><td>start {} · complete {}</td><td>{}</td><td>{}</td></tr>",
                e(&r.rule_name),
                opt(&r.schedule_expression),
                opt(&r.schedule_expression_timezone),
                e(&r.target_backup_vault_name),
                r.start_window_minutes.map(|m| m.to_string()).unwrap_or_default(),
                r.completion_window_minutes.map(|m| m.to_string()).unwrap_or_default(),
                e(&lifecycle),
                next.join("<br>")
            ));
        }
        body.push_str("</table><h3>Selections</h3>");
        let selections = ctx
            .coffer
            .list_backup_selections(
                &rq,
                ListBackupSelectionsInput {
                    backup_plan_id: id.clone(),
                    ..Default::default()
                },
            )
            .await;
        match selections {
            Ok(out) => {
                let list = out.backup_selections_list.unwrap_or_default();
                if list.is_empty() {
                    body.push_str(
                        r#"<p class="muted">No selections: this plan backs up nothing.</p>"#,
                    );
                }
                for sel in list {
                    let got = ctx
                        .coffer
                        .get_backup_selection(
                            &rq,
                            GetBackupSelectionInput {
                                backup_plan_id: id.clone(),
                                selection_id: sel.selection_id.clone().unwrap_or_default(),
                            },
                        )
                        .await;
                    let Ok(got) = got else { continue };
                    let Some(s) = got.backup_selection else {
                        continue;
                    };
                    let mut what = Vec::new();
                    if let Some(r) = s.resources.as_ref().filter(|r| !r.is_empty()) {
                        what.push(format!("resources {}", r.join(", ")));
                    }
                    if let Some(r) = s.not_resources.as_ref().filter(|r| !r.is_empty()) {
                        what.push(format!("except {}", r.join(", ")));
                    }
                    for t in s.list_of_tags.iter().flatten() {
                        what.push(format!(
                            "tag {} {} {}",
                            t.condition_key, t.condition_type, t.condition_value
                        ));
                    }
                    body.push_str(&format!(
                        "<p><b>{}</b>: {}</p>",
                        e(&s.selection_name),
                        e(&what.join("; "))
                    ));
                }
            }
            Err(err) => body.push_str(&error_box("Selections could not be read", &err)),
        }
        body.push_str("</div>");
    }
    layout(ctx, "Plans", &body)
}

async fn vaults(ctx: &Ctx<'_>) -> String {
    let body = match vault_sizes(ctx).await {
        Ok(rows) if rows.is_empty() => {
            r#"<p class="muted">No vaults yet (<code>aws backup create-backup-vault</code>).</p>"#
                .to_string()
        }
        Ok(rows) => {
            let mut t = String::from(
                r#"<table id="vaults"><tr><th>Vault</th><th>Recovery points</th><th>Size</th><th>Locked</th></tr>"#,
            );
            for (name, n, size, locked) in rows {
                t.push_str(&format!(
                    r#"<tr><td><a href="/console/vaults/{}">{}</a></td><td class="num">{n}</td><td class="num">{}</td><td>{}</td></tr>"#,
                    a(&name),
                    e(&name),
                    bytes(size),
                    if locked { "yes" } else { "no" }
                ));
            }
            t.push_str("</table>");
            t
        }
        Err(err) => error_box("Vaults could not be read", &err),
    };
    layout(ctx, "Vaults", &body)
}

async fn vault(ctx: &Ctx<'_>, name: &str) -> String {
    let rq = ctx.request();
    let v = match ctx
        .coffer
        .describe_backup_vault(
            &rq,
            DescribeBackupVaultInput {
                backup_vault_name: name.to_string(),
                ..Default::default()
            },
        )
        .await
    {
        Ok(v) => v,
        Err(err) => {
            return layout(ctx, name, &error_box("The vault could not be read", &err));
        }
    };
    let mut body = format!(
        r#"<div class="card"><p>ARN <code>{}</code></p><p>Created {} · {} recovery points</p>"#,
        opt(&v.backup_vault_arn),
        ts(&v.creation_date),
        v.number_of_recovery_points.unwrap_or(0)
    );
    if v.locked == Some(true) {
        body.push_str(&format!(
            "<p>Vault Lock: retention {} to {} days{}</p>",
            v.min_retention_days
                .map(|d| d.to_string())
                .unwrap_or_else(|| "any".into()),
            v.max_retention_days
                .map(|d| d.to_string())
                .unwrap_or_else(|| "any".into()),
            v.lock_date
                .as_ref()
                .map(|_| format!(", immutable from {}", ts(&v.lock_date)))
                .unwrap_or_else(|| " (governance mode)".into())
        ));
    } else {
        body.push_str("<p>Vault Lock: none</p>");
    }
    match ctx
        .coffer
        .get_backup_vault_notifications(
            &rq,
            GetBackupVaultNotificationsInput {
                backup_vault_name: name.to_string(),
            },
        )
        .await
    {
        Ok(n) => body.push_str(&format!(
            "<p>Notifications to <code>{}</code>: {}</p>",
            opt(&n.sns_topic_arn),
            e(&n.backup_vault_events
                .iter()
                .flatten()
                .map(ModelEnum::as_str)
                .collect::<Vec<_>>()
                .join(", "))
        )),
        Err(_) => body.push_str("<p>Notifications: none</p>"),
    }
    match ctx
        .coffer
        .get_backup_vault_access_policy(
            &rq,
            GetBackupVaultAccessPolicyInput {
                backup_vault_name: name.to_string(),
            },
        )
        .await
    {
        Ok(p) => body.push_str(&format!(
            "<p>Access policy:</p><pre>{}</pre>",
            opt(&p.policy)
        )),
        Err(_) => body.push_str("<p>Access policy: none</p>"),
    }
    body.push_str("</div><h2>Recovery points</h2>");
    match recovery_points(ctx, name).await {
        Ok(points) if points.is_empty() => {
            body.push_str(r#"<p class="muted">No recovery points.</p>"#);
        }
        Ok(points) => {
            body.push_str(r#"<table id="recovery-points"><tr><th>Created</th><th>Resource</th><th>Status</th><th>Storage</th><th>Size</th><th>Restore into a directory</th></tr>"#);
            for p in points {
                let arn = p.recovery_point_arn.clone().unwrap_or_default();
                let storage = p
                    .calculated_lifecycle
                    .as_ref()
                    .and_then(|l| l.delete_at.as_ref())
                    .map(|d| format!("deleted at {}", ts(&Some(*d))))
                    .unwrap_or_default();
                body.push_str(&format!(
                    r#"<tr><td>{}</td><td>{}<br><code>{}</code></td><td>{}</td><td>{}</td><td class="num">{}</td><td>
<form method="post" action="/console/restore" class="inline">{}<input type="hidden" name="vault" value="{}"><input type="hidden" name="recovery_point_arn" value="{}">
<input type="text" name="target_path" placeholder="/absolute/empty/directory" required aria-label="target directory"><button>Restore</button></form></td></tr>"#,
                    ts(&p.creation_date),
                    opt(&p.resource_name),
                    opt(&p.resource_arn),
                    state(&p.status),
                    e(&storage),
                    p.backup_size_in_bytes.map(bytes).unwrap_or_default(),
                    csrf_field(ctx),
                    a(name),
                    a(&arn),
                ));
            }
            body.push_str("</table>");
        }
        Err(err) => body.push_str(&error_box("Recovery points could not be read", &err)),
    }
    layout(ctx, &format!("Vault {name}"), &body)
}

async fn jobs(ctx: &Ctx<'_>) -> String {
    let (b, c, r) = (
        backup_jobs(ctx, None).await,
        copy_jobs(ctx, None).await,
        restore_jobs(ctx, None).await,
    );
    let (b, c, r) = match (b, c, r) {
        (Ok(b), Ok(c), Ok(r)) => (b, c, r),
        (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
            return layout(ctx, "Jobs", &error_box("Jobs could not be read", &err));
        }
    };
    let mut body = String::from(
        r#"<h2>Backup jobs</h2><table id="backup-jobs"><tr><th>Created</th><th>Job</th><th>Resource</th><th>Vault</th><th>State</th><th>Done</th><th>Transferred</th><th>Message</th></tr>"#,
    );
    for j in &b {
        body.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            ts(&j.creation_date),
            opt(&j.backup_job_id),
            opt(&j.resource_name),
            opt(&j.backup_vault_name),
            state(&j.state),
            opt(&j.percent_done),
            j.bytes_transferred.map(bytes).unwrap_or_default(),
            opt(&j.status_message)
        ));
    }
    body.push_str(r#"</table><h2>Copy jobs</h2><table id="copy-jobs"><tr><th>Created</th><th>Job</th><th>Resource</th><th>Destination</th><th>State</th><th>Message</th></tr>"#);
    for j in &c {
        body.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            ts(&j.creation_date),
            opt(&j.copy_job_id),
            opt(&j.resource_name),
            opt(&j.destination_backup_vault_arn),
            state(&j.state),
            opt(&j.status_message)
        ));
    }
    body.push_str(r#"</table><h2>Restore jobs</h2><table id="restore-jobs"><tr><th>Created</th><th>Job</th><th>Recovery point</th><th>Status</th><th>Done</th><th>Message</th></tr>"#);
    for j in &r {
        body.push_str(&format!(
            r#"<tr><td>{}</td><td><a href="/console/jobs/restore/{}"><code>{}</code></a></td><td><code>{}</code></td><td>{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            ts(&j.creation_date),
            a(j.restore_job_id.as_deref().unwrap_or("")),
            opt(&j.restore_job_id),
            opt(&j.recovery_point_arn),
            state(&j.status),
            opt(&j.percent_done),
            opt(&j.status_message)
        ));
    }
    body.push_str("</table>");
    let running = b.iter().any(|j| is_active(&j.state))
        || c.iter().any(|j| is_active(&j.state))
        || r.iter().any(|j| is_active(&j.status));
    layout_with(ctx, "Jobs", &body, running)
}

async fn restore_job(ctx: &Ctx<'_>, id: &str) -> String {
    let input = coffer_api::types::DescribeRestoreJobInput {
        restore_job_id: id.to_string(),
    };
    match ctx.coffer.describe_restore_job(&ctx.request(), input).await {
        Ok(j) => {
            let running = is_active(&j.status);
            let body = format!(
                r#"<div class="card" id="restore-job"><p>Status <span id="restore-status">{}</span>{}</p>
<p>Recovery point <code>{}</code></p>{}<p>Created {} · completed {}</p><p>{}</p></div>
<p><a href="/console/jobs">All jobs</a></p>"#,
                state(&j.status),
                j.percent_done
                    .as_deref()
                    .map(|p| format!(" · {}% done", e(p)))
                    .unwrap_or_default(),
                opt(&j.recovery_point_arn),
                j.created_resource_arn
                    .as_deref()
                    .filter(|r| !r.is_empty())
                    .map(|r| format!("<p>Created resource <code>{}</code></p>", e(r)))
                    .unwrap_or_default(),
                ts(&j.creation_date),
                ts(&j.completion_date),
                opt(&j.status_message)
            );
            layout_with(ctx, &format!("Restore job {id}"), &body, running)
        }
        Err(err) => layout(
            ctx,
            "Restore job",
            &error_box("The restore job could not be read", &err),
        ),
    }
}

fn inventory(ctx: &Ctx<'_>) -> String {
    let resources = ctx.coffer.inventory().in_scope(&ctx.account, &ctx.region);
    if resources.is_empty() {
        return layout(
            ctx,
            "Inventory",
            r#"<p class="muted">No resources of this account and region are declared ([[resources]] in the configuration file, see docs/jobs.md).</p>"#,
        );
    }
    let mut body = String::from(
        r#"<table id="inventory"><tr><th>Resource</th><th>Type</th><th>Name</th><th>Tags</th><th>Source</th><th>Reachable</th></tr>"#,
    );
    for r in resources {
        let tags = r
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let reach = match crate::cli::reachable(&r) {
            Ok(what) => format!(r#"<span class="state COMPLETED">yes</span> ({})"#, e(&what)),
            Err(why) => format!(r#"<span class="state FAILED">no</span>: {}"#, e(&why)),
        };
        body.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{reach}</td></tr>",
            e(&r.arn),
            e(&r.resource_type),
            e(&r.name),
            e(&tags),
            e(&r.source.display().to_string())
        ));
    }
    body.push_str("</table>");
    layout(ctx, "Inventory", &body)
}

async fn notifications(ctx: &Ctx<'_>) -> String {
    let outbox = ctx.coffer.outbox();
    let (counts, dead) = match (outbox.counts().await, outbox.dead_letters(usize::MAX).await) {
        (Ok(c), Ok(d)) => (c, d),
        _ => {
            return layout(
                ctx,
                "Notifications",
                r#"<div class="error">The metadata store is not available.</div>"#,
            );
        }
    };
    let mine: Vec<_> = dead.iter().filter(|m| m.account == ctx.account).collect();
    let mut body = format!(
        r#"<div class="card"><p>Waiting for delivery (all accounts): <b id="pending">{}</b> · dead letters (all accounts): <b>{}</b> · dead letters of this account: <b id="dead">{}</b></p></div>"#,
        counts.pending,
        counts.failed,
        mine.len()
    );
    if !mine.is_empty() {
        body.push_str(&format!(
            r#"<form method="post" action="/console/notifications/replay">{}<button id="replay">Replay this account's dead letters</button></form>
<table id="dead-letters"><tr><th>When</th><th>Vault</th><th>Event</th><th>Topic</th><th>Reason</th></tr>"#,
            csrf_field(ctx)
        ));
        for m in mine.iter().take(500) {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                e(&m.timestamp.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
                e(&m.vault_name),
                e(m.event.as_str()),
                e(&m.topic_arn),
                e(m.dead_reason.as_deref().unwrap_or(""))
            ));
        }
        body.push_str("</table>");
    }
    layout(ctx, "Notifications", &body)
}

fn clock(ctx: &Ctx<'_>, error: Option<&str>) -> String {
    let error = error
        .map(|m| format!(r#"<div class="error">{}</div>"#, e(m)))
        .unwrap_or_default();
    let body = format!(
        r#"{error}<div class="card"><p>Coffer's clock: <b id="now">{}</b></p>
<form method="post" action="/console/clock" class="inline">{}<label>Advance by <input type="text" name="advance_hours" value="24" aria-label="hours"> hours</label><button>Advance</button></form>
<p class="muted">Development mode only. The scheduled work due by then starts before the page comes back.</p></div>
<h2>Account and region shown</h2>
<form method="post" action="/console/scope" class="inline">{}<input type="text" name="account" value="{}" aria-label="account"><input type="text" name="region" value="{}" aria-label="region"><button>Switch</button></form>"#,
        e(&ctx
            .coffer
            .clock()
            .now()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string()),
        csrf_field(ctx),
        csrf_field(ctx),
        a(&ctx.account),
        a(&ctx.region)
    );
    layout(ctx, "Clock", &body)
}
