//! The pipeline: PM → Architect → Engineer → QA → Security → Consensus → Publish.
