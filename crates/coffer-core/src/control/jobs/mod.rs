//! The job operations: Start/Describe/List/Stop of backup, copy and restore jobs, restore
//! metadata and validation, and the job summaries. Jobs themselves (records, states, the
//! queue) are in the model layer; running them is the data plane's.

pub(crate) mod backup;
pub(crate) mod copy;
pub(crate) mod restore;
pub(crate) mod summaries;
