"""Online features: per-entity values materialized from a pinned Delta version, served from a key-value store."""
