-- Every completed pipeline stage of a task: the role's structured output, its score, the model
-- that answered, the tokens it spent and how long it took. A re-run of a stage replaces its row
-- (UNIQUE (task, stage)); deleting a task deletes its stages.

CREATE TABLE task_stages (
    id BIGSERIAL PRIMARY KEY,
    task INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    stage VARCHAR(20) NOT NULL
        CONSTRAINT task_stages_stage_check CHECK (stage IN (
            'pm', 'architect', 'engineer', 'qa', 'security'
        )),
    -- The role's validated structured output (its tool input).
    output JSONB NOT NULL,
    -- 0-100 for the scoring roles; NULL for the PM, which votes approve/reject.
    score FLOAT,
    model TEXT NOT NULL,
    -- Token usage as the provider reported it.
    input_tokens INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0 CHECK (cache_creation_input_tokens >= 0),
    cache_read_input_tokens INTEGER NOT NULL DEFAULT 0 CHECK (cache_read_input_tokens >= 0),
    -- Wall time of the stage including retries, in milliseconds.
    duration_ms BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    UNIQUE (task, stage)
);
