-- The base commit each stage read the repository at (hex SHA-1 of the run's snapshot of
-- BASE_BRANCH). A resumed run pins its snapshot to it, so every stage and the publish of one task
-- work on one base. NULL for stages recorded before this column existed (base unknown).
ALTER TABLE task_stages ADD COLUMN base_commit TEXT;
