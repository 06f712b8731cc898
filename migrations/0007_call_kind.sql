-- Why each LLM call was made: a role's first request ('answer'), a corrective retry after an
-- invalid answer ('correction'), or a new answer after the pipeline's feedback, e.g. a failed
-- verification ('feedback'). Calls recorded before this column existed count as 'answer'.
ALTER TABLE llm_calls ADD COLUMN kind VARCHAR(20) NOT NULL DEFAULT 'answer'
    CONSTRAINT llm_calls_kind_check CHECK (kind IN ('answer', 'correction', 'feedback'));
