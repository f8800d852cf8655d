"""Resilience at the source edge: retries for transient errors, a circuit breaker per source, a read cache."""
