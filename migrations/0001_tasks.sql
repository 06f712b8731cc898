-- The task queue: one row per task, as in the design, plus the product's columns
-- (labels, attempts, error, updated_at). All timestamps are UTC wall-clock values
-- stored in TIMESTAMP (without time zone) columns.

CREATE TABLE tasks (
    id SERIAL PRIMARY KEY,
    -- Human-chosen id (e.g. `phase1-001`); also part of the branch name `feature/task-<task_id>`.
    task_id VARCHAR(100) UNIQUE NOT NULL,
    description TEXT NOT NULL,
    status VARCHAR(50) NOT NULL DEFAULT 'pending'
        CONSTRAINT tasks_status_check CHECK (status IN (
            'pending', 'in_progress', 'completed', 'failed', 'needs_review', 'cancelled'
        )),
    -- Higher runs first.
    priority INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    pr_url TEXT,
    -- Mean of the scoring roles' scores, 0-100.
    consensus_score FLOAT,
    -- Decision, votes and publish details (written by the pipeline when the task ends).
    result JSONB,
    -- Labels added to the task's pull request besides `autonomous`.
    labels TEXT[] NOT NULL DEFAULT '{}',
    -- How many times the task has been claimed.
    attempts INTEGER NOT NULL DEFAULT 0,
    -- Last error, for failed tasks.
    error TEXT,
    -- Kept current by the trigger below.
    updated_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);

CREATE INDEX idx_status ON tasks (status);
CREATE INDEX idx_priority ON tasks (priority DESC);

-- Serves the claim: the first pending task by priority, then age, then id.
CREATE INDEX idx_tasks_claim ON tasks (priority DESC, created_at, id) WHERE status = 'pending';

-- updated_at follows every UPDATE of a row.
CREATE FUNCTION tasks_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now() AT TIME ZONE 'utc';
    RETURN NEW;
END;
$$;

CREATE TRIGGER tasks_updated_at
    BEFORE UPDATE ON tasks
    FOR EACH ROW
    EXECUTE FUNCTION tasks_set_updated_at();
