"""The transport: TCP streams to numbered message files and back.

Pure protocol (no sockets, no files, no clocks): ``protocol/`` (its
``__init__`` lists where each rule lives). Adapters: ``folder`` (the port
every layout implements), ``shared`` (one folder on disk; ``pool``: its
consumed files, written again), ``syftbox`` (each sender's datasite),
``seal`` (encrypted files), ``watch`` (file events), ``status`` and
``progress`` (heartbeat records, resumable counters), ``sync_health``
(this site's sync), ``aio`` (bounded waits); ``link`` and ``channel``
drive one party connection and one peer, and ``proxy`` ties them to a
party. Private files and the reader of peer JSON are ``syqure_wf/files``',
the keys ``syqure_wf/keys``'. Nothing here knows of runs, engines or the CLI.

What the runner (``run/``) and the sites (``sites/``) may use of it is the
surface below, imported from this package (``from ..transport import
Proxy``; tests/unit/test_layout.py checks that they use nothing else). It
loads lazily: a party process that takes one module of the transport does
not load the rest.
"""
from __future__ import annotations

from importlib import import_module

# name -> (module, its name there)
_SURFACE = {
    # a party's proxy, in its runner's process
    "Proxy": ("proxy", "Proxy"),
    "ProxySettings": ("settings", "ProxySettings"),
    "make_folder": ("settings", "make_folder"),
    "clean": ("shared", "clean"),
    # the proxy in an MPyC party's own process, as its runner hands it over
    "TRANSPORT_FD": ("party_thread", "FD_VAR"),
    "TRANSPORT_FAILED": ("party_thread", "FAILED"),
    "settings_json": ("party_thread", "settings_json"),
    "beat_until_taken": ("party_thread", "beat_until_taken"),
    "failure_of": ("party_thread", "failure_of"),
    # a party's status record
    "StatusRecord": ("status", "StatusRecord"),
    "read_status": ("status", "read_status"),
    "RUNNING": ("status", "RUNNING"),
    "DONE": ("status", "DONE"),
    "FAILED": ("status", "FAILED"),
    # names, ports and bounds a run's configuration checks against
    "check_id": ("protocol.names", "check_id"),
    "STATUS": ("protocol.names", "STATUS"),
    "leftovers": ("protocol.names", "leftovers"),
    "parse_direction": ("protocol.names", "parse_direction"),
    "max_offset": ("protocol.ports", "max_offset"),
    "ports_used": ("protocol.ports", "ports_used"),
    "TIMEOUTS": ("protocol.defaults", "TIMEOUTS"),
    "SYFTBOX_TIMEOUTS": ("protocol.defaults", "SYFTBOX_TIMEOUTS"),
    "DEFAULT_MAX_MESSAGE": ("protocol.framing", "DEFAULT_MAX_MESSAGE"),
    # the syftbox layout's folders
    "APP": ("syftbox", "APP"),
    "run_folder": ("syftbox", "run_folder"),
    "permissions": ("syftbox", "permissions"),
    # this site's sync, and its probe from inside a network namespace
    "describe_sync": ("sync_health", "describe"),
    "answers": ("sync_health", "answers"),
    "relay_path": ("sync_relay", "relay_path"),
    "prepare_relay": ("sync_relay", "prepare"),
    # file events on a message folder (syqure-wf doctor)
    "POLL": ("watch", "POLL"),
    "WRITES": ("watch", "WRITES"),
    "InotifyWatcher": ("watch", "InotifyWatcher"),
    "mounts": ("watch", "mounts"),
    "mount_of": ("watch", "mount_of"),
    "remote_fs": ("watch", "remote_fs"),
    # bounded waits, and a stop on a signal
    "bounded": ("aio", "bounded"),
    "cancel_all": ("aio", "cancel_all"),
    "SignalStop": ("aio", "SignalStop"),
}

__all__ = sorted(_SURFACE)


def __getattr__(name: str) -> object:
    try:
        module, attr = _SURFACE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(import_module(f".{module}", __name__), attr)
    globals()[name] = value  # looked up once
    return value
