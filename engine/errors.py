"""Typed errors: each one is reported as a single line naming the problem."""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (Spark's messages run on with plans and hints)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


def describe(error: BaseException) -> str:
    """The error's type and first line, as a failed trial or variant records it."""
    return f"{type(error).__name__}: {first_line(error)}"


class FeaturelakeError(Exception):
    """Base class: an expected failure that the CLI reports in one line."""


class SetupError(FeaturelakeError):
    """The environment (venv, jar cache, versions) does not match what the engine needs."""


class ConfigError(FeaturelakeError):
    """A configuration value is missing, unknown or malformed."""


class SourceError(FeaturelakeError):
    """A source is missing or cannot be read."""


class ValidationFailed(FeaturelakeError):
    """Blocking data-quality checks failed; nothing was written downstream."""


class ClusterError(FeaturelakeError):
    """A compute cluster the config names (a Ray address) cannot be reached."""


class CheckError(FeaturelakeError):
    """A data-quality check cannot be evaluated on its data (a missing column, a wrong type, a bad pattern)."""
