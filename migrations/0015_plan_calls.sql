-- A call of `autonomous-dev plan` is made for no task and no stage: both NULL, together. Its
-- spend counts toward DAILY_BUDGET_USD (the day's sum over this table), toward no task's
-- MAX_TASK_COST_USD.
ALTER TABLE llm_calls
    ALTER COLUMN task DROP NOT NULL,
    ALTER COLUMN stage DROP NOT NULL,
    ADD CONSTRAINT llm_calls_plan_check CHECK ((task IS NULL) = (stage IS NULL));
