//! systemd integration (`Type=notify`): READY=1 once the daemon can work, STATUS= lines saying
//! what it is doing, STOPPING=1 on shutdown, and WATCHDOG=1 heartbeats when the unit sets
//! WatchdogSec. Every call is a no-op outside systemd (no NOTIFY_SOCKET).

use tracing::debug;

use super::Shutdown;

/// Tells systemd the daemon is ready (after migrations and the first database round trip).
pub fn ready(status: &str) {
    send(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

/// Updates the one-line status `systemctl status autonomous-dev` shows.
pub fn status(status: &str) {
    send(&[sd_notify::NotifyState::Status(status)]);
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    send(&[sd_notify::NotifyState::Stopping]);
}

/// When the unit sets WatchdogSec, spawns a task sending WATCHDOG=1 at half that interval until
/// shutdown; the heartbeat comes from the async runtime, so a wedged runtime stops it.
pub fn spawn_watchdog(shutdown: &Shutdown) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tokio::select! {
                _ = tick.tick() => send(&[sd_notify::NotifyState::Watchdog]),
                _ = shutdown.triggered() => break,
            }
        }
    });
}

fn send(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "sd_notify failed");
    }
}
