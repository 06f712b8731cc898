-- The task's pull request as the daemon last saw it on GitHub, watched with conditional
-- requests until it is merged or closed: its state and since when (GitHub's `created_at`,
-- `merged_at` or `closed_at`), the ETag of the last answer (sent back as If-None-Match: a 304
-- does not count against GitHub's rate limit), and when it was last looked at.
ALTER TABLE tasks
    ADD COLUMN pr_state VARCHAR(10)
        CONSTRAINT tasks_pr_state_check CHECK (pr_state IN ('open', 'merged', 'closed')),
    ADD COLUMN pr_state_at TIMESTAMPTZ,
    ADD COLUMN pr_etag TEXT,
    ADD COLUMN pr_checked_at TIMESTAMPTZ;

-- Serves the watch: completed tasks whose PR is not merged or closed, least recently looked at.
CREATE INDEX idx_tasks_pr_watch ON tasks (pr_checked_at NULLS FIRST)
    WHERE status = 'completed' AND pr_url IS NOT NULL
      AND (pr_state IS NULL OR pr_state = 'open');
