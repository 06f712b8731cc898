-- Tasks from GitHub issues, and a task's own reviewers (issue "Work where the team works").
-- A task born of an issue records its number and author; the issue watch keeps the ETag of its
-- conditional list request; the outbox carries the issue number, so the issue gets the queued
-- comment and the outcome comment through the same transactional outbox as every notification.

ALTER TABLE tasks
    -- The GitHub issue the task came from (task_id `gh-<number>`); NULL for loaded tasks.
    ADD COLUMN issue_number INTEGER,
    -- That issue's author (a login).
    ADD COLUMN issue_author VARCHAR(100),
    -- Requested on the task's PR besides REVIEWERS: logins and `org/team` teams.
    ADD COLUMN reviewers TEXT[] NOT NULL DEFAULT '{}';
CREATE UNIQUE INDEX tasks_one_per_issue ON tasks (issue_number) WHERE issue_number IS NOT NULL;

-- One row per watched label: the ETag of the last list of its open issues.
CREATE TABLE issue_watch (
    label VARCHAR(50) PRIMARY KEY,
    etag TEXT,
    looked_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE outbox ADD COLUMN issue_number INTEGER;
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN (
    'queued', 'pr_opened', 'revision_pushed', 'needs_review', 'failed', 'blocked',
    'daemon_started', 'daemon_stopped', 'paused', 'resumed', 'daily_report'
));

-- As in 0012, with the task's issue.
CREATE OR REPLACE FUNCTION tasks_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.pr_url IS NULL AND NEW.pr_url IS NOT NULL THEN
        INSERT INTO outbox (kind, task_id, pr_url, issue_number)
        VALUES ('pr_opened', NEW.task_id, NEW.pr_url, NEW.issue_number);
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NEW.status IN ('needs_review', 'failed', 'blocked') THEN
        INSERT INTO outbox (kind, task_id, pr_url, detail, issue_number)
        VALUES (NEW.status, NEW.task_id, NEW.pr_url, NEW.error, NEW.issue_number);
    END IF;
    RETURN NULL;
END;
$$;

-- A task born of an issue is queued: the issue is told so.
CREATE FUNCTION tasks_queued_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (kind, task_id, issue_number)
    VALUES ('queued', NEW.task_id, NEW.issue_number);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_queued_outbox
    AFTER INSERT ON tasks
    FOR EACH ROW
    WHEN (NEW.issue_number IS NOT NULL)
    EXECUTE FUNCTION tasks_queued_outbox();
