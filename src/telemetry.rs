//! Logging: to journald with structured fields (TASK_ID, STAGE) under systemd, readable lines on
//! stderr otherwise. RUST_LOG filters (default `info`).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// Installs the global subscriber. Under systemd (JOURNAL_STREAM set) events go to journald,
/// with span fields such as `task_id` and `stage` as the journal fields TASK_ID and STAGE, so
/// `journalctl -u autonomous-dev TASK_ID=phase1-001` filters one task.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|layer| {
            layer
                .with_field_prefix(None)
                .with_syslog_identifier("autonomous-dev".into())
        });
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .init();
}
