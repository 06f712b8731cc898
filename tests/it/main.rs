//! The integration tests, one binary (one link, one process start per run): each module
//! drives the library or the built daemon against the real things this machine runs — a
//! PostgreSQL database per test (`#[sqlx::test]`), git repositories in temp dirs, bubblewrap —
//! and local servers answering as Anthropic's, OpenAI's and GitHub's documented APIs do.
//! Test names are module-qualified: `cargo test --test it lease::` runs one module.

mod common;

mod agents;
mod cli;
mod crash;
mod daemon;
mod dependencies;
mod dry_run;
mod e2e;
mod evidence;
mod git;
mod github;
mod hostile;
mod issues;
mod lease;
mod llm;
mod lookup;
mod notify;
mod outage;
mod outcome;
mod pipeline;
mod plan;
mod repomap;
mod review;
mod revision;
mod setup;
mod status;
mod store;
mod systemd;
mod verify;
mod watch;
