//! The cost guard: prices every LLM call, records it in the store's ledger, and refuses a call
//! whose worst case would break a cap — MAX_TASK_COST_USD per task (the task fails, "budget
//! exceeded", nothing pushed) or DAILY_BUDGET_USD per UTC day (the task goes back to pending and
//! the daemon stops claiming until midnight UTC). [`PlanMeter`] does the same for the calls of
//! `autonomous-dev plan`, made for no task: the day's cap, and the task cap over the plan's own
//! calls.

use chrono::Utc;

use super::TaskState;
use crate::agents::{Meter, MeterError};
use crate::cost::{self, PriceTable, Prices};
use crate::llm::ToolRequest;
use crate::store::{Call, Store};
use crate::task::{CallKind, Stage, Usage};

/// The caps and the prices they are computed with.
#[derive(Debug, Clone)]
pub struct Budget {
    /// USD per million tokens of every model a role may use (checked at start).
    pub prices: PriceTable,
    /// MAX_TASK_COST_USD (default 2.00): a task's spend, counted from its
    /// creation or its last manual retry, never exceeds it.
    pub max_task_usd: f64,
    /// DAILY_BUDGET_USD: spend of all tasks and `plan`s per UTC day; `None` for no daily cap.
    pub daily_usd: Option<f64>,
}

impl Budget {
    /// How long claiming must pause because today's spend reached DAILY_BUDGET_USD (until
    /// midnight UTC); `None` when there is budget left or no daily cap.
    pub async fn daily_pause(
        &self,
        store: &dyn TaskState,
    ) -> Result<Option<std::time::Duration>, crate::store::StoreError> {
        let Some(daily) = self.daily_usd else {
            return Ok(None);
        };
        if store.spend_today().await? < daily {
            return Ok(None);
        }
        let now = Utc::now();
        Ok(Some(
            (cost::next_utc_midnight(now) - now)
                .to_std()
                .unwrap_or_default(),
        ))
    }

    /// The most `request` can cost, in USD: its input bounded by its size in bytes, its whole
    /// output budget (`max_tokens`). Errors: no price for its model.
    fn worst_case(&self, request: &ToolRequest) -> Result<f64, MeterError> {
        let prices = self.prices(&request.model)?;
        Ok(prices.worst_case(
            cost::input_token_bound(request.input_bytes()),
            request.max_tokens,
        ))
    }

    /// Refuses a call that could cost up to `worst` USD when `today` USD were spent since
    /// midnight UTC and DAILY_BUDGET_USD would be passed ([`MeterError::DailyBudget`], resuming
    /// at the next midnight UTC).
    fn check_daily(&self, today: f64, worst: f64) -> Result<(), MeterError> {
        match self.daily_usd {
            Some(daily) if today + worst > daily => Err(MeterError::DailyBudget {
                message: format!(
                    "${today:.4} spent today (UTC) and the next call could cost up to \
                     ${worst:.4}, over DAILY_BUDGET_USD ${daily:.2}"
                ),
                resume_at: cost::next_utc_midnight(Utc::now()),
            }),
            _ => Ok(()),
        }
    }

    fn prices(&self, model: &str) -> Result<Prices, MeterError> {
        self.prices.get(model).ok_or_else(|| {
            MeterError::TaskBudget(format!(
                "no price for model '{model}' (add it to MODEL_PRICES)"
            ))
        })
    }
}

/// The [`Meter`] of one stage of one task.
pub(super) struct StageMeter<'a> {
    pub store: &'a dyn TaskState,
    pub budget: &'a Budget,
    /// `tasks.id`.
    pub task: i32,
    pub stage: Stage,
}

#[async_trait::async_trait]
impl Meter for StageMeter<'_> {
    /// Worst case of `request` (input bounded by its size, the whole output budget) against
    /// what the task and the day have spent.
    async fn before_call(&self, request: &ToolRequest) -> Result<(), MeterError> {
        let worst = self.budget.worst_case(request)?;
        let spent = self.store.task_spend(self.task).await.map_err(ledger)?;
        let cap = self.budget.max_task_usd;
        if spent + worst > cap {
            return Err(MeterError::TaskBudget(format!(
                "the task has spent ${spent:.4} and the next {} call could cost up to \
                 ${worst:.4}, over MAX_TASK_COST_USD ${cap:.2}",
                self.stage.role_name()
            )));
        }
        if self.budget.daily_usd.is_some() {
            let today = self.store.spend_today().await.map_err(ledger)?;
            self.budget.check_daily(today, worst)?;
        }
        Ok(())
    }

    async fn after_call(
        &self,
        model: &str,
        usage: Usage,
        kind: CallKind,
    ) -> Result<(), MeterError> {
        let cost_usd = self.budget.prices(model)?.cost(&usage);
        let call = Call {
            task: self.task,
            stage: self.stage,
            model,
            kind,
            usage,
            cost_usd,
        };
        crate::metrics::global().llm_call(self.stage, model, kind, usage, cost_usd);
        self.store.record_call(&call).await.map_err(ledger)
    }
}

/// The [`Meter`] of the calls of one `autonomous-dev plan`, made for no task: each call is
/// checked before it is sent, its worst case added to what the plan has spent against
/// MAX_TASK_COST_USD and to the day's spend (the ledger's) against DAILY_BUDGET_USD, and
/// recorded in the ledger after ([`Store::record_plan_call`]), so the daemon's daily cap sees
/// it.
pub struct PlanMeter {
    store: Store,
    budget: Budget,
    spent: std::sync::Mutex<Spent>,
}

/// What the calls a [`PlanMeter`] metered cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spent {
    /// Calls answered.
    pub calls: u32,
    /// Their tokens, summed.
    pub usage: Usage,
    /// Their price, in USD.
    pub usd: f64,
}

impl PlanMeter {
    /// A meter over `store`'s ledger that has spent nothing yet.
    pub fn new(store: Store, budget: Budget) -> PlanMeter {
        PlanMeter {
            store,
            budget,
            spent: std::sync::Mutex::default(),
        }
    }

    /// What the calls metered so far cost.
    pub fn spent(&self) -> Spent {
        *self.spent.lock().expect("never poisoned")
    }
}

#[async_trait::async_trait]
impl Meter for PlanMeter {
    /// Refuses a call whose worst case, added to what the plan spent, exceeds
    /// MAX_TASK_COST_USD ([`MeterError::TaskBudget`]), or added to today's spend exceeds
    /// DAILY_BUDGET_USD ([`MeterError::DailyBudget`]).
    async fn before_call(&self, request: &ToolRequest) -> Result<(), MeterError> {
        let worst = self.budget.worst_case(request)?;
        let spent = self.spent().usd;
        let cap = self.budget.max_task_usd;
        if spent + worst > cap {
            return Err(MeterError::TaskBudget(format!(
                "the plan has spent ${spent:.4} and the next call could cost up to ${worst:.4}, \
                 over MAX_TASK_COST_USD ${cap:.2}"
            )));
        }
        if self.budget.daily_usd.is_some() {
            let today = self.store.spend_today().await.map_err(ledger)?;
            self.budget.check_daily(today, worst)?;
        }
        Ok(())
    }

    async fn after_call(
        &self,
        model: &str,
        usage: Usage,
        kind: CallKind,
    ) -> Result<(), MeterError> {
        let cost_usd = self.budget.prices(model)?.cost(&usage);
        {
            let mut spent = self.spent.lock().expect("never poisoned");
            spent.calls += 1;
            spent.usage += usage;
            spent.usd += cost_usd;
        }
        self.store
            .record_plan_call(model, kind, usage, cost_usd)
            .await
            .map_err(ledger)
    }
}

fn ledger(e: crate::store::StoreError) -> MeterError {
    MeterError::Ledger(e.to_string())
}
