-- Revisions of an opened PR (issue "The PR conversation"): a review by a person with write
-- permission starts one, which runs Engineer → QA → Security → consensus again on the PR's
-- branch; an approved revision is one new commit on that branch. While a revision runs its task
-- is pending/in_progress again (the claim, lease and fencing of the task serve it), and
-- completed once the revision ends, whatever its end.

CREATE TABLE revisions (
    id SERIAL PRIMARY KEY,
    task INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    -- 1 for the PR's first revision; at most MAX_REVISIONS.
    number INTEGER NOT NULL CHECK (number >= 1),
    trigger VARCHAR(20) NOT NULL CONSTRAINT revisions_trigger_check CHECK (trigger IN ('review')),
    status VARCHAR(20) NOT NULL DEFAULT 'pending'
        CONSTRAINT revisions_status_check CHECK (status IN (
            'pending', 'pushed', 'not_approved', 'failed'
        )),
    -- The conversation it answers (task::Feedback).
    feedback JSONB NOT NULL,
    -- The PR branch's tip it is built on, recorded when its run first read the branch.
    head_commit TEXT,
    -- How it ended (task::RevisionEnd); NULL while pending.
    outcome JSONB,
    -- USD its LLM calls cost, set when it ends.
    cost_usd DOUBLE PRECISION,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    UNIQUE (task, number)
);
-- At most one revision of a task runs at a time.
CREATE UNIQUE INDEX revisions_one_pending ON revisions (task) WHERE status = 'pending';

-- The stages a revision recorded (Engineer, QA, Security), like task_stages: a revision
-- interrupted mid-way resumes from its first stage without a record.
CREATE TABLE revision_stages (
    id BIGSERIAL PRIMARY KEY,
    revision INTEGER NOT NULL REFERENCES revisions (id) ON DELETE CASCADE,
    stage VARCHAR(20) NOT NULL
        CONSTRAINT revision_stages_stage_check CHECK (stage IN ('engineer', 'qa', 'security')),
    output JSONB NOT NULL,
    evidence JSONB,
    score FLOAT,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0 CHECK (cache_creation_input_tokens >= 0),
    cache_read_input_tokens INTEGER NOT NULL DEFAULT 0 CHECK (cache_read_input_tokens >= 0),
    duration_ms BIGINT NOT NULL,
    base_commit TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (revision, stage)
);

-- How far the PR watch has read the PR's conversation (task::FeedbackCursor): the highest
-- review, inline comment and PR comment id seen. NULL before the first read.
ALTER TABLE tasks ADD COLUMN feedback_cursor JSONB;
