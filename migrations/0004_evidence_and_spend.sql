-- Evidence and spend (issue: votes grounded in evidence, hard cost caps).

-- What a stage rests on beyond the model's answer: for the Engineer its verification runs and
-- repair rounds, for Security the deterministic gates and the final verification. NULL for the
-- other stages.
ALTER TABLE task_stages ADD COLUMN evidence JSONB;

-- The ledger of every LLM call: tokens as the provider reported them and their price in USD. The
-- budget caps are checked against it (MAX_TASK_COST_USD per task, DAILY_BUDGET_USD per UTC day)
-- and `tasks show` / `stats` read costs from it. A call is recorded even when its stage is not
-- (an invalid answer, a crash): spend is spend. Rows survive `tasks retry --fresh`.
CREATE TABLE llm_calls (
    id BIGSERIAL PRIMARY KEY,
    task INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    stage VARCHAR(20) NOT NULL
        CONSTRAINT llm_calls_stage_check CHECK (stage IN (
            'pm', 'architect', 'engineer', 'qa', 'security'
        )),
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL CHECK (output_tokens >= 0),
    cache_creation_input_tokens INTEGER NOT NULL CHECK (cache_creation_input_tokens >= 0),
    cache_read_input_tokens INTEGER NOT NULL CHECK (cache_read_input_tokens >= 0),
    cost_usd DOUBLE PRECISION NOT NULL CHECK (cost_usd >= 0),
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);
CREATE INDEX llm_calls_task ON llm_calls (task);
CREATE INDEX llm_calls_created_at ON llm_calls (created_at);

-- A person's `tasks retry` starts a new budget: MAX_TASK_COST_USD counts the calls made since
-- (NULL: since the task was created).
ALTER TABLE tasks ADD COLUMN budget_since TIMESTAMP;
