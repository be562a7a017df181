"""The transport: TCP streams to numbered message files and back.

Pure protocol (no sockets, no files): ``ports``, ``framing``, ``mailbox``.
Adapters: ``folder`` (shared layout), ``syftbox`` (each sender's datasite),
``seal`` (encrypted files), ``watch`` (file events), ``status`` and
``progress`` (heartbeats, liveness, resumable counters), ``aio`` (bounded
waits), and ``proxy``, which ties them to a party's sockets. Nothing here
knows of runs, engines or the CLI."""
