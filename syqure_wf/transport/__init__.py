"""The transport: TCP streams to numbered message files and back.

Pure protocol (no sockets, no files, no clocks): ``protocol/`` (its
``__init__`` lists where each rule lives). Adapters: ``folder`` (what every
layout shares), ``shared`` (one folder on disk), ``syftbox`` (each sender's
datasite), ``seal`` (encrypted files), ``watch`` (file events), ``status``
and ``progress`` (heartbeat records, resumable counters), ``sync_health``
(this site's sync), ``aio`` (bounded waits); ``link`` and ``channel`` drive
one party connection and one peer, and ``proxy`` ties them to a party.
Private files and the reader of peer JSON are ``syqure_wf/files``', the
sites' keys and the handshake ``syqure_wf/keys``'. Nothing here knows of
runs, engines or the CLI."""
