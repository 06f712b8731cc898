-- Dependencies between tasks (`depends_on` in a task file): a task is claimable only when each
-- task it depends on has completed with its PR merged, or completed without a PR. A pending
-- task whose dependency failed, was cancelled, or whose PR was closed unmerged is `blocked`
-- (the reason in `error`) until that dependency is retried; then it is pending again.
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN (
    'pending', 'in_progress', 'completed', 'failed', 'needs_review', 'cancelled', 'blocked'
));

CREATE TABLE task_dependencies (
    task INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    depends_on INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    PRIMARY KEY (task, depends_on),
    CONSTRAINT task_dependencies_not_self CHECK (task <> depends_on)
);

CREATE INDEX idx_task_dependencies_depends_on ON task_dependencies (depends_on);
