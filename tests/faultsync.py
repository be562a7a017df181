"""A file sync with faults, standing in for SyftBox between two machines'
folders in one test: it mirrors each datasite from its owner's folder into
the other folders, like SyftBox, but delays files, sends markers first,
writes files in place and partly (completing them later), and delivers
old files again. Deletions by the owner are mirrored too."""
from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path


class FaultSync(threading.Thread):
    def __init__(self, folders: dict[str, Path], seed: int = 1, interval: float = 0.02):
        super().__init__(daemon=True)
        self.folders = folders  # email -> that machine's SyftBox folder
        self.rng = random.Random(seed)
        self.interval = interval
        self.stop_flag = threading.Event()
        self.copied: dict[tuple[str, str], bytes] = {}  # (dst, rel) -> content sent
        self.old: list[tuple[Path, bytes]] = []
        self.faults = {"truncated": 0, "redelivered": 0, "marker_first": 0}

    def run(self) -> None:
        while not self.stop_flag.is_set():
            for owner, src_root in self.folders.items():
                site = src_root / "datasites" / owner
                for dst_owner, dst_root in self.folders.items():
                    if dst_owner != owner:
                        self._mirror(site, dst_root / "datasites" / owner)
            self._redeliver()
            time.sleep(self.interval)

    def _mirror(self, src: Path, dst: Path) -> None:
        if not src.is_dir():
            return
        present = []
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith(".") or name.endswith(".tmp"):
                    continue  # like SyftBox: hidden and temporary files stay home
                present.append(Path(dirpath, name).relative_to(src))
        # markers (small files) first, as SyftBox does
        present.sort(key=lambda rel: (not rel.name.endswith((".ready", ".end")), str(rel)))
        if any(rel.name.endswith(".ready") for rel in present):
            self.faults["marker_first"] += 1
        for rel in present:
            try:
                data = (src / rel).read_bytes()
            except FileNotFoundError:
                continue
            key = (str(dst), str(rel))
            if self.copied.get(key) == data:
                continue
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if len(data) > 16 and self.rng.random() < 0.2:
                target.write_bytes(data[: self.rng.randrange(1, len(data))])  # in place, partly
                self.faults["truncated"] += 1
                time.sleep(self.rng.uniform(0, 0.01))
            target.write_bytes(data)
            self.copied[key] = data
            if rel.parent.name.count("_to_") and self.rng.random() < 0.05:
                self.old.append((target, data))
        for key in [k for k in self.copied if k[0] == str(dst)]:
            rel = Path(key[1])
            if not (src / rel).exists():  # deleted by its owner: mirror the deletion
                try:
                    (dst / rel).unlink()
                except FileNotFoundError:
                    pass
                del self.copied[key]

    def _redeliver(self) -> None:
        # old files come back (a re-sync): the reader must ignore them
        if self.old and self.rng.random() < 0.3:
            target, data = self.old.pop(self.rng.randrange(len(self.old)))
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                self.faults["redelivered"] += 1

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(timeout=10)
