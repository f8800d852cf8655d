"""Logging: everything to a log file; the console shows only what a person needs."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

CONSOLE_LOGGERS = ("engine", "jobs")


def configure_logging(log_dir: Path) -> Path:
    """Send all records to `log_dir/featurelake.log` and featurelake's own INFO lines to the console."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "featurelake.log"
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.INFO)
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.setLevel(logging.INFO)
    for name in CONSOLE_LOGGERS:
        logging.getLogger(name).addHandler(console)
    logging.captureWarnings(True)  # library warnings go to the log file, not the console
    for noisy in ("py4j", "mlflow", "alembic", "ray", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return log_file
