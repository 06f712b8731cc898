-- Revisions of an opened PR (issue "The PR conversation"): a review by a person with write
-- permission, a failing check on the PR's head, or a base that moved into a conflict starts one,
-- which runs Engineer → QA → Security → consensus again on the PR's
-- branch; an approved revision is one new commit on that branch. While a revision runs its task
-- is pending/in_progress again (the claim, lease and fencing of the task serve it), and
-- completed once the revision ends, whatever its end.

CREATE TABLE revisions (
    id SERIAL PRIMARY KEY,
    task INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    -- 1 for the PR's first revision; at most MAX_REVISIONS.
    number INTEGER NOT NULL CHECK (number >= 1),
    -- What started it: review feedback, failing checks (at most MAX_CI_FIXES of those), or a
    -- conflict with the base (the base is merged in).
    trigger VARCHAR(20) NOT NULL
        CONSTRAINT revisions_trigger_check CHECK (trigger IN ('review', 'check', 'conflict')),
    status VARCHAR(20) NOT NULL DEFAULT 'pending'
        CONSTRAINT revisions_status_check CHECK (status IN (
            'pending', 'pushed', 'not_approved', 'failed'
        )),
    -- The conversation or the failed checks it answers (task::Feedback).
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

-- The PR's head commit as last seen, and how the watch last saw its checks
-- (task::ChecksSeen: the head they ran on, the ETags of the check runs and the combined status,
-- whether their failure was acted on). NULL before the first look.
-- The head at which a conflict with the base was acted on (a merge requested): once per head.
ALTER TABLE tasks
    ADD COLUMN pr_head TEXT,
    ADD COLUMN checks_seen JSONB,
    ADD COLUMN conflict_head TEXT;
