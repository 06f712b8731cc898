-- A person's approval of a needs_review task (`tasks approve ID --by NAME`): who approved it.
-- Set as the task goes back to pending; the run that follows publishes the recorded change as
-- its PR (label `human-approved`, the approver named in the body) instead of holding it again.
-- Cleared by `tasks retry`, which asks for a new judgment.
ALTER TABLE tasks ADD COLUMN approved_by TEXT;
