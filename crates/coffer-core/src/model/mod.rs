//! The bottom layer of the domain: what Coffer's records are and the rules they obey.
//!
//! Records (vaults, plans, selections, jobs, recovery points, settings, subscriptions,
//! policies, tags), their store keys, their states, the pure rules that check API input
//! (plan documents, lifecycles, restore metadata, access policies) and the transaction-level
//! functions that read and write them, including the outbox events written with each state
//! change. Nothing here knows the server, the engine's repositories or the workers: a function
//! of this layer gets a store transaction, or [`Meta`] (the store and the clock) when it needs
//! its own transaction. Layers above may import this one; this one imports none of them.

pub(crate) mod access_points;
pub mod approvals;
pub mod arn;
pub(crate) mod catalog;
pub mod clock;
pub(crate) mod composite;
pub mod deletions;
pub(crate) mod due;
pub(crate) mod error;
pub mod events;
pub(crate) mod frameworks;
pub mod history;
pub(crate) mod indexes;
pub mod inventory;
pub(crate) mod job_counts;
pub(crate) mod job_index;
pub(crate) mod jobs;
pub(crate) mod legal_holds;
pub(crate) mod lifecycle;
pub(crate) mod paging;
pub(crate) mod plan_rules;
pub(crate) mod plans;
pub(crate) mod queue;
pub(crate) mod recovery_points;
pub mod reports;
pub(crate) mod restore;
pub(crate) mod restore_access;
pub(crate) mod restore_bucket;
pub(crate) mod restore_testing;
pub(crate) mod retention;
pub(crate) mod rp_keys;
pub(crate) mod scans;
pub(crate) mod search;
pub(crate) mod selections;
pub(crate) mod settings;
pub mod states;
pub(crate) mod tags;
pub mod telemetry;
pub mod tier_moves;
pub(crate) mod tiering;
pub(crate) mod vault_lock;
pub(crate) mod vault_notifications;
pub(crate) mod vault_policy;
pub(crate) mod vault_subresource;
pub(crate) mod vaults;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use coffer_store::StoreHandle;

use clock::Clock;

/// The metadata store and the clock: all most API handlers need. Cheap to clone.
#[derive(Clone)]
pub struct Meta {
    store: StoreHandle,
    clock: Clock,
    /// The one-time builds (indexes of a store written by an older Coffer) seen complete by
    /// this process: a build never comes undone, so once one is seen complete its check is
    /// skipped (on PostgreSQL each check is a transaction).
    built: Arc<RwLock<HashSet<&'static str>>>,
}

impl Meta {
    pub fn new(store: StoreHandle, clock: Clock) -> Self {
        Meta {
            store,
            clock,
            built: Arc::default(),
        }
    }

    /// Whether this process has seen the one-time build `what` complete.
    pub(crate) fn seen_built(&self, what: &'static str) -> bool {
        self.built.read().is_ok_and(|b| b.contains(what))
    }

    /// Notes that the one-time build `what` is complete.
    pub(crate) fn note_built(&self, what: &'static str) {
        if let Ok(mut b) = self.built.write() {
            b.insert(what);
        }
    }

    /// Forgets every build seen complete: after the store was wiped, its builds start over.
    pub(crate) fn forget_built(&self) {
        if let Ok(mut b) = self.built.write() {
            b.clear();
        }
    }

    pub fn store(&self) -> &StoreHandle {
        &self.store
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}
