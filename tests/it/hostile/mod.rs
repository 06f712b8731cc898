//! The attacks: one test per way a hostile change, task or repository could forge its own
//! evidence or reach the host — a check the change chose ([`check`]), the gates, redaction,
//! paths and prompt delimiters ([`gates`]), the bubblewrap sandbox ([`sandbox`]). The unit's
//! own sandbox is attacked in `systemd`.

mod check;
mod gates;
mod sandbox;
