//! The spend ledger: one `llm_calls` row per LLM call, with its tokens and price (a call of
//! `autonomous-dev plan` has no task and no stage). The cost guard reads a task's spend
//! (MAX_TASK_COST_USD) and the day's (DAILY_BUDGET_USD) from it; `tasks show` and `stats`
//! report costs from it.
//!
//! Recording is not fenced by the lease: a call that was made cost money whether or not the
//! worker still owns the task.

use super::{Store, StoreError, token_column};
use crate::task::{CallKind, Stage, Usage};

/// One LLM call to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Call<'a> {
    /// `tasks.id` of the task the call was made for.
    pub task: i32,
    pub stage: Stage,
    pub model: &'a str,
    pub kind: CallKind,
    pub usage: Usage,
    /// Price of `usage` in USD.
    pub cost_usd: f64,
}

/// What one stage of a task cost, over all its calls (corrective retries, repair rounds and
/// attempts whose answer was never recorded included).
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct StageCost {
    pub stage: Stage,
    pub calls: i64,
    /// How many of `calls` were corrective retries ([`CallKind::Correction`]).
    pub corrections: i64,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub usage: Usage,
    pub cost_usd: f64,
}

const RECORD_CALL: &str = "\
    INSERT INTO llm_calls (task, stage, model, kind, input_tokens, output_tokens, \
                           cache_creation_input_tokens, cache_read_input_tokens, cost_usd) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// A call of `autonomous-dev plan`: no task, no stage (migration 0015).
const RECORD_PLAN_CALL: &str = "\
    INSERT INTO llm_calls (task, stage, model, kind, input_tokens, output_tokens, \
                           cache_creation_input_tokens, cache_read_input_tokens, cost_usd) \
    VALUES (NULL, NULL, $1, $2, $3, $4, $5, $6, $7)";

/// $1 tasks.id: USD spent since the task's budget started (`budget_since`, reset by `tasks retry`).
const TASK_SPEND: &str = "\
    SELECT COALESCE(sum(c.cost_usd), 0) AS spent \
    FROM llm_calls c JOIN tasks t ON t.id = c.task \
    WHERE c.task = $1 AND c.created_at >= COALESCE(t.budget_since, '-infinity')";

/// USD spent since midnight UTC.
const SPEND_TODAY: &str = "\
    SELECT COALESCE(sum(cost_usd), 0) AS spent \
    FROM llm_calls \
    WHERE created_at >= date_trunc('day', now(), 'UTC')";

/// $1 tasks.id, $2 every stage in pipeline order: one row per stage with calls. The token sums
/// are INTEGER like the columns they add up: a task's calls stay far below 2^31 tokens
/// (MAX_TASK_COST_USD stops it long before), and an overflow would be an error, never a wrong
/// number.
const STAGE_COSTS: &str = "\
    SELECT stage, \
           count(*) AS calls, \
           count(*) FILTER (WHERE kind = 'correction') AS corrections, \
           sum(input_tokens)::integer AS input_tokens, \
           sum(output_tokens)::integer AS output_tokens, \
           sum(cache_creation_input_tokens)::integer AS cache_creation_input_tokens, \
           sum(cache_read_input_tokens)::integer AS cache_read_input_tokens, \
           sum(cost_usd) AS cost_usd \
    FROM llm_calls \
    WHERE task = $1 \
    GROUP BY stage \
    ORDER BY array_position($2::varchar[], stage)";

impl Store {
    /// Appends `call` to the ledger (not fenced: see the module comment).
    ///
    /// # Errors
    /// [`StoreError::Database`] when the row cannot be written.
    pub async fn record_call(&self, call: &Call<'_>) -> Result<(), StoreError> {
        sqlx::query(RECORD_CALL)
            .bind(call.task)
            .bind(call.stage)
            .bind(call.model)
            .bind(call.kind)
            .bind(token_column(call.usage.input_tokens))
            .bind(token_column(call.usage.output_tokens))
            .bind(token_column(call.usage.cache_creation_input_tokens))
            .bind(token_column(call.usage.cache_read_input_tokens))
            .bind(call.cost_usd)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Appends a call of `autonomous-dev plan` to the ledger: made for no task and no stage,
    /// so it counts toward the day's spend (DAILY_BUDGET_USD) and no task's. `kind` and
    /// `usage` as in [`Call`]; `cost_usd` the price of `usage`.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the row cannot be written.
    pub async fn record_plan_call(
        &self,
        model: &str,
        kind: CallKind,
        usage: Usage,
        cost_usd: f64,
    ) -> Result<(), StoreError> {
        sqlx::query(RECORD_PLAN_CALL)
            .bind(model)
            .bind(kind)
            .bind(token_column(usage.input_tokens))
            .bind(token_column(usage.output_tokens))
            .bind(token_column(usage.cache_creation_input_tokens))
            .bind(token_column(usage.cache_read_input_tokens))
            .bind(cost_usd)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// USD the task (by `tasks.id`) has spent since its budget started: since it was created, or
    /// since a person last retried it.
    pub async fn task_spend(&self, task: i32) -> Result<f64, StoreError> {
        let spent = sqlx::query_scalar(TASK_SPEND)
            .bind(task)
            .fetch_one(&self.pool)
            .await?;
        Ok(spent)
    }

    /// USD spent since midnight UTC by every task and every `plan` (all daemons sharing the
    /// database).
    pub async fn spend_today(&self) -> Result<f64, StoreError> {
        let spent = sqlx::query_scalar(SPEND_TODAY)
            .fetch_one(&self.pool)
            .await?;
        Ok(spent)
    }

    /// The task's (by `tasks.id`) cost per stage over its whole life, in pipeline order.
    pub async fn stage_costs(&self, task: i32) -> Result<Vec<StageCost>, StoreError> {
        let costs = sqlx::query_as(STAGE_COSTS)
            .bind(task)
            .bind(Stage::ALL)
            .fetch_all(&self.pool)
            .await?;
        Ok(costs)
    }
}
