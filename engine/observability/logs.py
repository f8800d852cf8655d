"""Logging: JSON lines to the log file, at the configured level; the console shows only what a person needs.

Every line carries `pipeline_id`, `data_source` and `record_count` (null when they do not apply), so a
log pipeline can filter one run or one source without parsing messages.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from engine.observability.context import current_pipeline
from engine.observability.events import EVENT_LOGGER

CONSOLE_LOGGERS = ("engine", "jobs")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the run's ids and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        pipeline = current_pipeline()
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pipeline_id": pipeline.pipeline_id if pipeline else None,
            "job": pipeline.job if pipeline else None,
            "event": None,
            "data_source": None,
            "record_count": None,
        }
        line |= {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _person_readable(record: logging.LogRecord) -> bool:
    """The console shows an event only when it needs attention (a warning or worse); all are in the file."""
    return record.name != EVENT_LOGGER or record.levelno >= logging.WARNING


def configure_logging(log_dir: Path, level: int = logging.INFO) -> Path:
    """Send records at `level` and above to `log_dir/featurelake.log` as JSON, featurelake's INFO to the console."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "featurelake.log"
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(JsonFormatter())
    root.addHandler(file_handler)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.setLevel(max(level, logging.INFO))
    console.addFilter(_person_readable)
    for name in CONSOLE_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if not getattr(h, "featurelake_console", False)]
        console.featurelake_console = True  # type: ignore[attr-defined]
        logger.addHandler(console)
    logging.captureWarnings(True)  # library warnings go to the log file, not the console
    for noisy in ("py4j", "mlflow", "alembic", "ray", "urllib3", "matplotlib", "opentelemetry"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return log_file
