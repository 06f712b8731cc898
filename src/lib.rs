//! autonomous-dev: turns rows of a PostgreSQL `tasks` table into reviewed GitHub pull requests.
//!
//! Data flows one way: [`store`] → [`pipeline`] → ([`llm`] via [`agents`], [`git`], [`github`]) →
//! [`store`]. The [`daemon`] claims tasks and drives the pipeline; both stop on one [`shutdown::Shutdown`] (a leaf module); [`net`] (a leaf) holds the one rule for where a secret may be sent; [`status`] reads the store for the operator (the `--json` views, the status page) and [`metrics`] is a leaf the daemon and the pipeline count into; [`repomap`] parses and ranks the base tree for the Architect (read through [`git`]'s blobs); the [`cli`] is the user's
//! entry point and `main.rs` is a thin shell over [`cli::main`]. Read ARCHITECTURE.md first.

pub mod agents;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod consensus;
pub mod cost;
pub mod daemon;
pub mod gates;
pub mod git;
pub mod github;
pub mod issues;
pub mod llm;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod pipeline;
pub mod repo_config;
pub mod repomap;
pub mod shutdown;
pub mod status;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod verify;
pub mod watch;
