-- Notifications through a transactional outbox (issue "Work where the team works"): an event row
-- is written by a trigger in the same transaction as the state change that causes it, so a crash
-- never loses one; a sender delivers each event to each configured sink (a webhook, Slack,
-- Telegram) with retries and backoff, recording the delivery so that none is sent twice.

CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    kind VARCHAR(30) NOT NULL
        CONSTRAINT outbox_kind_check CHECK (kind IN (
            'pr_opened', 'revision_pushed', 'needs_review', 'failed', 'blocked',
            'daemon_started', 'daemon_stopped', 'paused', 'resumed', 'daily_report'
        )),
    -- NULL for the daemon's own events and the daily report.
    task_id VARCHAR(100),
    pr_url TEXT,
    -- What happened, in a few words (the error of a failed task, the revision's number).
    detail TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX outbox_created_at ON outbox (created_at);
-- One daily report per UTC day, however many daemons share the database.
CREATE UNIQUE INDEX outbox_one_report_a_day ON outbox (((created_at AT TIME ZONE 'UTC')::date))
    WHERE kind = 'daily_report';

-- One row per event and sink once the sender has seen both: attempts, when to try next, when
-- it was delivered, the last error (never a secret).
CREATE TABLE outbox_deliveries (
    event BIGINT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    sink VARCHAR(20) NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at TIMESTAMPTZ,
    last_error TEXT,
    PRIMARY KEY (event, sink)
);
CREATE INDEX outbox_deliveries_due ON outbox_deliveries (sink, next_at) WHERE delivered_at IS NULL;

-- A task's PR opened (its URL saved), or the task ended for review, failed, or was blocked.
CREATE FUNCTION tasks_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.pr_url IS NULL AND NEW.pr_url IS NOT NULL THEN
        INSERT INTO outbox (kind, task_id, pr_url) VALUES ('pr_opened', NEW.task_id, NEW.pr_url);
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NEW.status IN ('needs_review', 'failed', 'blocked') THEN
        INSERT INTO outbox (kind, task_id, pr_url, detail)
        VALUES (NEW.status, NEW.task_id, NEW.pr_url, NEW.error);
    END IF;
    RETURN NULL;
END;
$$;

-- Only on updates of the columns it reads: a lease renewal runs no trigger.
CREATE TRIGGER tasks_outbox
    AFTER UPDATE OF status, pr_url ON tasks
    FOR EACH ROW
    EXECUTE FUNCTION tasks_outbox();

-- A revision pushed its commit.
CREATE FUNCTION revisions_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'pushed' AND OLD.status IS DISTINCT FROM 'pushed' THEN
        INSERT INTO outbox (kind, task_id, pr_url, detail)
        SELECT 'revision_pushed', t.task_id, t.pr_url, 'revision ' || NEW.number
        FROM tasks t WHERE t.id = NEW.task;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER revisions_outbox
    AFTER UPDATE OF status ON revisions
    FOR EACH ROW
    EXECUTE FUNCTION revisions_outbox();
