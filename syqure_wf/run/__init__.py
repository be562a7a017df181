"""Runs: a run configuration (``config``), one party with its proxy and
program (``party``), every party on one machine (``local``), the workflow
steps (``steps``), network namespaces (``isolation``) and the machine check
(``doctor``). Built on ``transport`` and ``engines``; the CLI sits on top."""
