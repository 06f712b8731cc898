//! What an operator sees at a glance: the typed views (`view.rs`) that `tasks list`, `tasks
//! show`, `stats` and `status` print as JSON and the status page renders as HTML
//! (`html.rs`), and the page's server with `/metrics` and `/healthz` (`server.rs`, axum; on
//! when STATUS_ADDR is set). Reads the store, writes nothing.

mod html;
mod server;
mod view;

pub use server::{COOKIE, Live, ProcessLive, StatusError, StatusServer, check_access, router};
pub use view::{
    DependencyView, Overview, PrCountsView, PrView, RoleView, SPEND_DAYS, SpendView, StageView,
    StatsView, StatusCount, TaskDetail, TaskPage, TaskSummary,
};
