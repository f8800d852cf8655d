"""Delta table versions: history, time travel, tags, diffs and maintenance."""
