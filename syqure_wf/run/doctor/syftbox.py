"""SyftBox: each party's folder and datasite, its client and its server."""
from __future__ import annotations

from .check import Check, fail, ok


def syftbox_checks(cfg, pids) -> list[Check]:
    from ...files.syftbox_client import find_client
    from ...transport.sync_health import answers

    out = []
    for pid in pids:
        email, folder = cfg.party(pid).email, cfg.syftbox_folder(pid)
        label = f"syftbox {pid}" if len(pids) > 1 else "syftbox"
        if not folder.is_dir():
            out.append(fail(label, f"{folder} does not exist", "start the SyftBox client, or set syftbox.folder"))
            continue
        if not (folder / "datasites" / email).is_dir():
            out.append(fail(label, f"{folder}/datasites/{email} does not exist",
                            f"log the SyftBox client in as {email} with this folder"))
            continue
        client = find_client(folder)
        if client is None:
            out.append(fail(label, f"no SyftBox client runs for {folder}",
                            f"start it: syftbox client -e {email} -d {folder}"))
            continue
        if not answers(client.client_url):
            out.append(fail(label, f"the SyftBox client at {client.client_url} does not answer", "restart it"))
            continue
        if client.server_url and not answers(client.server_url):
            out.append(fail(label, f"the SyftBox server {client.server_url} does not answer",
                            "check the network, or wait for the server"))
            continue
        out.append(ok(label, f"{email}: client {client.client_url} up, server {client.server_url} answers"))
    return out
