//! The shutdown signal, an explicit object passed down to everything that must stop cleanly: a
//! leaf module, taken by both the daemon (stop claiming, abandon at the deadline) and the
//! pipeline (stop at a stage boundary), so neither imports the other for it.
//!
//! Two moments: *triggered* (SIGTERM/SIGINT arrived: stop claiming, stop at the next stage
//! boundary) and the *deadline*, `grace` later, when a stage still running is abandoned and its
//! task released back to pending.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Cloneable handle on the process's shutdown.
#[derive(Debug, Clone)]
pub struct Shutdown {
    token: CancellationToken,
    grace: Duration,
}

impl Shutdown {
    /// A shutdown that has not been triggered; `grace` is how long a running stage may continue.
    pub fn new(grace: Duration) -> Shutdown {
        Shutdown {
            token: CancellationToken::new(),
            grace,
        }
    }

    /// Triggers the shutdown (idempotent).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// True once triggered.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when triggered.
    pub async fn triggered(&self) {
        self.token.cancelled().await
    }

    /// Completes `grace` after the trigger: the moment to abandon work in flight.
    pub async fn deadline(&self) {
        self.triggered().await;
        tokio::time::sleep(self.grace).await
    }

    /// Spawns a task that triggers this shutdown on SIGTERM or SIGINT.
    pub fn trigger_on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = self.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(
                signal = name,
                "shutting down: no new claims, releasing work in flight"
            );
            shutdown.trigger();
        });
        Ok(())
    }
}
