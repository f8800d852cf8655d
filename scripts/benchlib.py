"""What the benchmark scripts share: peak memory probes for the driver JVM and this process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class PeakRss:
    """Peak resident memory of a process between `reset()` and `read()` (Linux VmHWM)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def reset(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def read(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def jvm_pid() -> int:
    """The pid of the Spark driver JVM started by this process."""
    out = subprocess.run(["pgrep", "-P", str(os.getpid()), "java"], capture_output=True, text=True).stdout.split()
    return int(out[0])
