//! What an operator sees at a glance: the typed views (`view.rs`) that `tasks list`, `tasks
//! show`, `stats` and `status` print as JSON. Reads the store, writes nothing.

mod view;

pub use view::{
    DependencyView, Overview, PrCountsView, PrView, RoleView, SPEND_DAYS, SpendView, StageView,
    StatsView, StatusCount, TaskDetail, TaskPage, TaskSummary,
};
