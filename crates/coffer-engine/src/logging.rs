//! Bridges the `log` records that `rustic_core` and `rustic_backend` emit into `tracing`, so
//! that Coffer's one subscriber sees them with the rest of the server's events.

use std::sync::Once;

static BRIDGE: Once = Once::new();

/// Route `log` records into `tracing`. Safe to call many times; only the first call acts.
///
/// If another `log` logger was installed first, the bridge stays off and a `tracing` warning says
/// so; nothing fails.
pub fn bridge_log_to_tracing() {
    BRIDGE.call_once(|| {
        if let Err(err) = tracing_log::LogTracer::init() {
            tracing::warn!("could not bridge `log` into `tracing`: {err}");
        }
    });
}
