"""Observability: JSON logs with structured events, Prometheus metrics and OpenTelemetry spans per run."""
