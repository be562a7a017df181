"""Across organisations: one site submits a run, every site's agent decides by
its own policy and runs its own party (docs/operators.md)."""
