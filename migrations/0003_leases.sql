-- Leases, fencing, backoff, cancellation and NOTIFY, after the PostgreSQL job queues River, Oban,
-- graphile-worker and pg-boss:
--
-- * A claim takes a lease: `locked_by` (worker id, `host:pid:n`) until `lease_expires_at` (UTC),
--   and increments `fencing_token`. Every write a worker makes names the token it got, so a
--   worker whose lease was reclaimed (it was too slow, or presumed dead) can change nothing.
-- * An in_progress task whose lease expired is claimable again (its worker crashed or hung).
-- * `run_after` (UTC): a pending task is not claimable before it (retry backoff, quota waits).
-- * `cancel_requested`: a person asked to cancel an in_progress task; its worker stops at the
--   next stage boundary.
-- * NOTIFY `autonomous_dev_tasks` (payload: task_id) when a task becomes claimable pending, and
--   `autonomous_dev_cancel` (payload: task_id) when a cancellation is requested.

ALTER TABLE tasks
    ADD COLUMN locked_by TEXT,
    ADD COLUMN lease_expires_at TIMESTAMP,
    ADD COLUMN fencing_token BIGINT NOT NULL DEFAULT 0
        CONSTRAINT tasks_fencing_token_check CHECK (fencing_token >= 0),
    ADD COLUMN run_after TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT false,
    -- Only an in_progress task holds a lease.
    ADD CONSTRAINT tasks_lease_check CHECK (status = 'in_progress' OR lease_expires_at IS NULL);

-- Tasks left in_progress by the previous version (which had no leases: a crashed daemon left them
-- there for good) get an expired lease, so the first claim after the upgrade reclaims them.
-- Upgrade with the old daemon stopped.
UPDATE tasks
SET lease_expires_at = now() AT TIME ZONE 'utc'
WHERE status = 'in_progress';

-- Serves the claim, which now also takes in_progress tasks whose lease expired: the first
-- candidate by priority, then age, then id.
DROP INDEX idx_tasks_claim;
CREATE INDEX idx_tasks_claim ON tasks (priority DESC, created_at, id)
    WHERE status IN ('pending', 'in_progress');

-- NOTIFY autonomous_dev_tasks with the task_id when a task becomes pending and claimable now
-- (inserted, released, retried). A task scheduled for later (run_after in the future) is not
-- announced: the daemon's poll finds it. Delivered when the transaction commits.
CREATE FUNCTION tasks_notify_pending() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('autonomous_dev_tasks', NEW.task_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_notify_inserted
    AFTER INSERT ON tasks
    FOR EACH ROW
    WHEN (NEW.status = 'pending' AND NEW.run_after <= (now() AT TIME ZONE 'utc'))
    EXECUTE FUNCTION tasks_notify_pending();

CREATE TRIGGER tasks_notify_pending
    AFTER UPDATE ON tasks
    FOR EACH ROW
    WHEN (NEW.status = 'pending' AND OLD.status <> 'pending'
          AND NEW.run_after <= (now() AT TIME ZONE 'utc'))
    EXECUTE FUNCTION tasks_notify_pending();

-- NOTIFY autonomous_dev_cancel with the task_id when a cancellation is requested.
CREATE FUNCTION tasks_notify_cancel() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('autonomous_dev_cancel', NEW.task_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_notify_cancel
    AFTER UPDATE ON tasks
    FOR EACH ROW
    WHEN (NEW.cancel_requested AND NOT OLD.cancel_requested)
    EXECUTE FUNCTION tasks_notify_cancel();
