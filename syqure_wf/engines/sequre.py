"""Sequre: a ``.codon`` program built once by Codon with the Sequre plugin
(``build.py``), then run as ``BINARY [engine.args] PID`` by every party.

What real Sequre builds do (both flavours' stdlib/sequre/): the port base is
compiled in (``COMMUNICATION_PORT = 9000``, channel {a, b} on 9000 + the
offset of PROTOCOL.md), lower pid listens on all interfaces, higher pid
dials the address of ``SEQURE_CP_IPS``. So every party and its proxy use the
same ports, and several parties on one host need a network namespace each.
Flavours: the fork (the seed's build) sends Sequre frames from byte 0
(``sequre`` framing); upstream sends raw seed bytes first and turns TLS on
by default (``stream`` framing carries both).

``engine.command`` runs your own launcher instead (``{program} {pid}``...),
with no build; such a build may read ``SEQURE_PORT_BASE``
(``port_base_compiled_in: false``).
"""
from __future__ import annotations

import ctypes.util
import os
import shlex
from pathlib import Path

from .engine import Engine, Launch, common_env, fill, placeholders, program_problem, which

COMPILED_IN_PORT = 9000  # Sequre's COMMUNICATION_PORT, both flavours
CERT_FILES = ("ca.pem", "cp{pid}.pem", "cp{pid}-key.pem")


class Sequre(Engine):
    name = "sequre"
    default_port_base = COMPILED_IN_PORT
    same_port_base = True
    environment = ("SEQURE_GMP_PATH", "SEQURE_OPENSSL_PATH", "SEQURE_LIBCRYPTO_PATH", "LD_LIBRARY_PATH",
                   "OMP_NUM_THREADS")
    scratch = ("/dev/shm",)  # Codon's OpenMP registers itself there (shm_open), or aborts

    # -- what the flavour speaks
    def flavour(self, spec: dict) -> str:
        if spec.get("flavour"):
            return spec["flavour"]
        if spec.get("command"):
            return "unknown"
        from .build import toolchain
        from ..errors import ConfigError

        try:
            return toolchain(spec, spec.get("env")).flavour
        except ConfigError:
            return "unknown"  # no Codon here: config_problem says so

    def tls(self, spec: dict) -> bool:
        if "tls" in spec:
            return bool(spec["tls"])
        return self.flavour(spec) == "upstream"  # upstream's own default

    def default_framing(self, spec):
        # upstream's raw seed exchange and TLS are no Sequre frames
        return "stream" if self.tls(spec) or self.flavour(spec) == "upstream" else "sequre"

    def framing_problem(self, spec, framing):
        if framing != "sequre":
            return None
        if self.tls(spec):
            return ("Sequre with TLS sends encrypted bytes, not Sequre frames: "
                    "use framing: stream (or engine.tls: false)")
        if self.flavour(spec) == "upstream":
            return "upstream Sequre sends raw seed bytes before its frames: use framing: stream"
        return None

    def shared_port_base(self, spec: dict) -> bool:
        return spec.get("port_base_compiled_in", not spec.get("command"))

    def open_listener(self, spec: dict) -> str | None:
        # both flavours' comms.codon: CSocket(ip_address='0.0.0.0', ...) for the lower pid's
        # channels and the data-sharing port; no setting changes it
        return None if spec.get("command") else "0.0.0.0 (every interface, compiled into Sequre)"

    def needs_isolation(self, cfg) -> bool:
        """Several parties of this build on one host would want the same ports."""
        return self.shared_port_base(cfg.engine) and cfg.transport != "tcp"

    # -- checks before anything starts
    def config_problem(self, cfg):
        spec = cfg.engine
        command = spec.get("command")
        if command is None or "{program}" in command:
            problem = program_problem(cfg, (".codon", ".py"))  # Codon compiles both
            if problem:
                return problem
        if self.needs_build(spec):
            from .build import toolchain
            from ..errors import ConfigError

            try:
                toolchain(spec, spec.get("env"))
            except ConfigError as exc:
                return str(exc)
        if command is not None:
            argv = shlex.split(command)
            if not argv or (argv[0] != "{python}" and which(argv[0]) is None):
                return (f"engine.command: {argv[0] if argv else '(empty)'} was not found: install Codon "
                        "with the Sequre plugin, or set engine.command to your sequre.sh")
        if self.tls(spec) and not self.cert_dir(cfg):
            return ("engine.tls: Sequre's TLS needs certificates (ca.pem, cp<pid>.pem, cp<pid>-key.pem): "
                    "set engine.cert_dir or SEQURE_CERT_DIR, or engine.tls: false")
        if self.tls(spec):
            missing = [f.format(pid=p.pid) for p in cfg.parties for f in CERT_FILES
                       if not (self.cert_dir(cfg) / f.format(pid=p.pid)).is_file()]
            if missing:
                return f"engine.cert_dir: {self.cert_dir(cfg)} has no {missing[0]}"
        return None

    def cert_dir(self, cfg) -> Path | None:
        given = cfg.engine.get("cert_dir") or (cfg.engine.get("env") or {}).get("SEQURE_CERT_DIR") \
            or os.environ.get("SEQURE_CERT_DIR")
        return cfg.resolve(given) if given else None

    # -- the party's process
    def launch(self, cfg, pid):
        spec = cfg.engine
        values = placeholders(cfg, pid)
        args = [fill(a, values, "engine.args") for a in spec.get("args", [])]
        if spec.get("command"):
            argv = [fill(a, values, "engine.command") for a in shlex.split(spec["command"])] + args
        else:
            argv = [str(self.binary(cfg)), *args, str(pid)]
        env = common_env(cfg, pid)
        base = cfg.party(0).base_port if cfg.transport == "tcp" else cfg.party(pid).base_port
        env.update(SEQURE_CP_IPS=",".join([cfg.host] * cfg.n), SEQURE_CP_COUNT=str(cfg.n),
                   SEQURE_PORT_BASE=str(base), SEQURE_USE_TLS="1" if self.tls(spec) else "0")
        if self.tls(spec):
            env["SEQURE_CERT_DIR"] = str(self.cert_dir(cfg))
        if "SEQURE_GMP_PATH" not in os.environ and "SEQURE_GMP_PATH" not in env:
            gmp = gmp_library()
            if gmp:
                env["SEQURE_GMP_PATH"] = gmp
        return Launch(argv, env)

    def reads(self, cfg, launch):
        """The build, the libraries it loads (Codon's runtime and the plugin's,
        where its run path says), its certificates with TLS."""
        if cfg.engine.get("command"):
            return super().reads(cfg, launch)
        binary = self.binary(cfg)
        out = [binary, *linked_libraries(binary)]
        if self.tls(cfg.engine):
            out.append(self.cert_dir(cfg))
        return out

    def binary(self, cfg) -> Path:
        """The built program: given (``engine.binary``, from a workflow's build
        step) or this machine's cached build."""
        if cfg.engine.get("binary"):
            return cfg.resolve(cfg.engine["binary"])
        from .build import binary_path

        return binary_path(cfg.engine, cfg.resolve(cfg.engine["program"]), cfg.engine.get("env"))

    def needs_build(self, spec: dict) -> bool:
        return not spec.get("command") and not spec.get("binary")

    def settled(self, spec: dict) -> dict:
        # a party given the built binary then needs no Codon to know its wire
        if not spec.get("command") and "flavour" not in spec and self.flavour(spec) != "unknown":
            return {**spec, "flavour": self.flavour(spec)}
        return spec


def gmp_library() -> str | None:
    """The fork dlopens "libgmp.so", which only the -dev package provides: name the runtime library."""
    if ctypes.util.find_library("gmp") is None:
        return None
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
        for name in ("libgmp.so", "libgmp.so.10"):
            if os.path.exists(os.path.join(folder, name)):
                return os.path.join(folder, name)
    return None


def linked_libraries(binary: Path) -> list[Path]:
    """The shared libraries the dynamic loader finds for ``binary`` (ldd)."""
    import re
    import subprocess

    try:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [Path(m.group(1)) for m in re.finditer(r"=>\s*(/\S+)", out)]
