"""Point-in-time training sets: pinned inputs joined as of each spine row's time."""
