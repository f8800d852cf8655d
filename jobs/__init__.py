"""Thin entry points: parse overrides, build objects from config once, run a job."""
