//! Tiering configurations carried out: part of the lifecycle sweep that moves the data of S3
//! recovery points older than their configuration's TieringDownSettingsInDays into the
//! low-cost tier, when the server configures one (docs/tiering.md). Without a low-cost tier
//! the configurations are recorded and nothing moves.

use chrono::{DateTime, Utc};

use crate::dataplane::Executor;
use crate::dataplane::tiers::{self, Moved};
use crate::model::error::Result;
use crate::model::recovery_points::RecoveryPointRecord;
use crate::model::states::Tier;
use crate::model::tier_moves;

/// Moves the points of `points` (key, record) that a tiering configuration sends to the
/// low-cost tier by `now`. Returns how many moved, and the next time one is due.
pub(crate) async fn sweep_low_cost(
    plane: &Executor,
    points: &[(String, RecoveryPointRecord)],
    now: DateTime<Utc>,
) -> Result<(usize, Option<DateTime<Utc>>)> {
    let configured = plane
        .storage()
        .is_ok_and(|s| s.tier_dir(Tier::LowCost).is_some());
    if !configured {
        return Ok((0, None));
    }
    let candidates: Vec<RecoveryPointRecord> = points
        .iter()
        .filter(|(_, rp)| tier_moves::may_move(rp, Tier::LowCost) && rp.tier.is_none())
        .map(|(_, rp)| rp.clone())
        .collect();
    let dues = plane
        .store()
        .read(
            move |tx| -> Result<Vec<(RecoveryPointRecord, DateTime<Utc>)>> {
                let mut out = Vec::new();
                for rp in candidates {
                    if let Some(due) = tier_moves::low_cost_due(tx, &rp)? {
                        out.push((rp, due));
                    }
                }
                Ok(out)
            },
        )
        .await?;
    let (mut moved, mut next) = (0, None::<DateTime<Utc>>);
    for (rp, due) in dues {
        if due > now {
            next = Some(next.map_or(due, |n| n.min(due)));
            continue;
        }
        match tiers::move_point(plane, &rp.key(), Tier::LowCost).await {
            Ok(Moved::Done) => {
                tracing::info!(recovery_point = %rp.arn, vault = %rp.vault_name, resource = %rp.resource_arn, "a tiering configuration moved a recovery point to the low-cost tier");
                moved += 1;
            }
            Ok(Moved::Skipped) => {}
            Err(e) => {
                tracing::warn!(recovery_point = %rp.arn, error = %coffer_api::error_chain(&e.0), "moving a recovery point to the low-cost tier failed; the next sweep tries again");
            }
        }
    }
    Ok((moved, next))
}
