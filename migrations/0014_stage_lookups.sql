-- The look-ups (read_file, search, find_symbol) the Architect and the Engineer made before they
-- submitted, recorded with their stage as a JSON array of {tool, arguments, result_bytes,
-- error?} (task::Lookup); empty for the other roles and for stages recorded before.
ALTER TABLE task_stages ADD COLUMN lookups JSONB NOT NULL DEFAULT '[]';
ALTER TABLE revision_stages ADD COLUMN lookups JSONB NOT NULL DEFAULT '[]';

-- An LLM call answering the results of look-ups ('lookup').
ALTER TABLE llm_calls DROP CONSTRAINT llm_calls_kind_check;
ALTER TABLE llm_calls ADD CONSTRAINT llm_calls_kind_check
    CHECK (kind IN ('answer', 'correction', 'feedback', 'lookup'));
