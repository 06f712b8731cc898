-- Instants instead of wall-clock values: every timestamp column becomes `timestamptz`.
--
-- Until now each column was a TIMESTAMP (without time zone) holding the UTC wall-clock time
-- (`now() AT TIME ZONE 'utc'`). `col AT TIME ZONE 'utc'` reads such a value as UTC and gives
-- the instant it meant, whatever the session's TimeZone, so every existing row keeps its
-- instant. From now on the columns default to `now()` and every statement compares with `now()`;
-- clients read instants (`chrono::DateTime<Utc>`) and no session time zone can shift them.

-- A trigger's WHEN clause that reads a column blocks changing its type: these two read
-- run_after. They are recreated below with `now()`.
DROP TRIGGER tasks_notify_inserted ON tasks;
DROP TRIGGER tasks_notify_pending ON tasks;

ALTER TABLE tasks
    ALTER COLUMN created_at DROP DEFAULT,
    ALTER COLUMN created_at TYPE timestamptz USING created_at AT TIME ZONE 'utc',
    ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN updated_at DROP DEFAULT,
    ALTER COLUMN updated_at TYPE timestamptz USING updated_at AT TIME ZONE 'utc',
    ALTER COLUMN updated_at SET DEFAULT now(),
    ALTER COLUMN started_at TYPE timestamptz USING started_at AT TIME ZONE 'utc',
    ALTER COLUMN completed_at TYPE timestamptz USING completed_at AT TIME ZONE 'utc',
    ALTER COLUMN run_after DROP DEFAULT,
    ALTER COLUMN run_after TYPE timestamptz USING run_after AT TIME ZONE 'utc',
    ALTER COLUMN run_after SET DEFAULT now(),
    ALTER COLUMN lease_expires_at TYPE timestamptz USING lease_expires_at AT TIME ZONE 'utc',
    ALTER COLUMN budget_since TYPE timestamptz USING budget_since AT TIME ZONE 'utc';

ALTER TABLE task_stages
    ALTER COLUMN created_at DROP DEFAULT,
    ALTER COLUMN created_at TYPE timestamptz USING created_at AT TIME ZONE 'utc',
    ALTER COLUMN created_at SET DEFAULT now();

ALTER TABLE llm_calls
    ALTER COLUMN created_at DROP DEFAULT,
    ALTER COLUMN created_at TYPE timestamptz USING created_at AT TIME ZONE 'utc',
    ALTER COLUMN created_at SET DEFAULT now();

-- updated_at follows every UPDATE of a row.
CREATE OR REPLACE FUNCTION tasks_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- As in 0003: NOTIFY autonomous_dev_tasks when a task becomes pending and claimable now.
CREATE TRIGGER tasks_notify_inserted
    AFTER INSERT ON tasks
    FOR EACH ROW
    WHEN (NEW.status = 'pending' AND NEW.run_after <= now())
    EXECUTE FUNCTION tasks_notify_pending();

CREATE TRIGGER tasks_notify_pending
    AFTER UPDATE ON tasks
    FOR EACH ROW
    WHEN (NEW.status = 'pending' AND OLD.status <> 'pending' AND NEW.run_after <= now())
    EXECUTE FUNCTION tasks_notify_pending();
