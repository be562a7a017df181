"""A throwaway SLURM cluster on the test host: Debian's slurm-wlm (22.05)
and munge, one slurmctld and three slurmd (-N node-a, node-b, node-c), its
own munge socket, slurm.conf, state, spool and free ports under a temp
folder; no accounting database (MinJobAge is long, so squeue sees finished
jobs). Snakemake's job-step executor runs srun without $SLURM_CONF, so each
slurmd runs in a private mount namespace where /etc/slurm is the test's
folder: its jobs find the test slurm.conf at the default path, and the
host's /etc/slurm is never touched. With ``views``, each node also sees
``shared`` through a FUSE mount of its own (bindfs over the folder, in its
namespace), as cluster nodes see an NFS export: no node's writes raise a
change event on another (fuse_views.py). Installed from Debian when missing (CI runs as root); skipped, with
the reason, where that cannot be done. Everything it started is stopped."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from conftest import debian_packages, one_at_a_time

NODES = ("node-a", "node-b", "node-c")
PACKAGES = ("slurm-wlm", "munge")
BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scancel", "sinfo")


def ensure_installed() -> None:
    if all(shutil.which(b) or Path("/usr/sbin", b).exists() for b in BINARIES):
        return
    debian_packages(PACKAGES, False, "SLURM")
    # the packages start their own daemons on the default config: not ours
    for service in ("slurmctld", "slurmd", "munge"):
        subprocess.run(["service", service, "stop"], capture_output=True, timeout=60)


def free_ports(count: int) -> list[int]:
    socks, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class Cluster:
    def __init__(self, root: Path, views: bool = False):
        self.root = root
        self.views = views
        self.shared = root / "shared"  # seen by each node through its own mount when ``views``
        self.procs: list[subprocess.Popen] = []
        self.conf = root / "etc" / "slurm.conf"
        self.socket = root / "munge" / "munge.socket"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        # one test cluster on this host at a time (its nodes' names, its daemons'
        # mount namespaces), held from start to stop: another worker's waits
        self.lock = one_at_a_time("slurm-cluster", timeout=1800)

    def start(self) -> "Cluster":
        ensure_installed()
        self.lock.acquire()
        root = self.root
        for d in ("munge", "state", "log", "etc", *(f"spool/{n}" for n in NODES)):
            (root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(root / "munge", 0o700)
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self._spawn([sbin("munged"), "--foreground", "--force", f"--socket={self.socket}", f"--key-file={key}",
                     f"--pid-file={root / 'munge' / 'munged.pid'}", f"--seed-file={root / 'munge' / 'seed'}",
                     f"--log-file={root / 'log' / 'munged.log'}"], "munged")
        self._wait(lambda: self.socket.exists(), 20, "munged's socket")
        ctld, *node_ports = free_ports(1 + len(NODES))
        host = socket.gethostname().split(".")[0]
        nodes = "\n".join(f"NodeName={n} NodeHostname={host} NodeAddr=127.0.0.1 Port={p} CPUs=2 "
                          "RealMemory=8000 State=UNKNOWN" for n, p in zip(NODES, node_ports))
        self.conf.write_text(f"""ClusterName=syqure-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld}
SlurmUser=root
SlurmdUser=root
MailProg=/bin/true
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}/%n
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'slurmd'}-%n.pid
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log'}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
{nodes}
PartitionName=compute Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP
""")
        self._spawn([sbin("slurmctld"), "-D", "-c", "-f", str(self.conf)], "slurmctld")
        Path("/etc/slurm").mkdir(exist_ok=True)  # the mount point (the package makes it)
        self.shared.mkdir(exist_ok=True)
        for n in NODES:
            # bindfs runs in the node's namespace, in the foreground, its pid kept to stop it
            view = ('bindfs -f "$SHARED" "$SHARED" & echo $! > "$VIEW_PID"; i=0; '
                    'until mountpoint -q "$SHARED"; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done; '
                    if self.views else "")
            self._spawn(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                         f'mount --bind "$0" /etc/slurm && {view}exec "$@"', str(self.conf.parent),
                         sbin("slurmd"), "-D", "-N", n, "-f", "/etc/slurm/slurm.conf"], f"slurmd-{n}",
                        {"SHARED": str(self.shared), "VIEW_PID": str(self.root / f"view-{n}.pid")})
        self._wait(self._idle, 60, "three idle nodes in sinfo")
        return self

    def _spawn(self, args, name, env=None) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")
        self.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           env={**self.env, **(env or {})}, start_new_session=True))
        log.close()

    def _idle(self) -> bool:
        for p in self.procs:
            if p.poll() is not None:
                raise AssertionError(f"{p.args[0]} exited with {p.returncode}: {self.logs()}")
        out = self.run("sinfo", "-h", "-N", "-o", "%N %t").stdout
        states = dict(line.split() for line in out.splitlines() if line.strip())
        return all(states.get(n) == "idle" for n in NODES)

    @staticmethod
    def _wait(predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"SLURM test cluster: no {what} after {timeout} s")

    def run(self, *args, timeout=30) -> subprocess.CompletedProcess:
        # cwd: sbatch writes its job's slurm-N.out where it is run, never into the checkout
        return subprocess.run([*args], env=self.env, cwd=self.root, capture_output=True, text=True, timeout=timeout)

    def jobs(self) -> list[str]:
        """Jobs queued or running: 'id name state node'."""
        out = self.run("squeue", "-h", "-o", "%i %j %T %N").stdout
        return [line for line in out.splitlines() if line.strip()]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                         for p in sorted((self.root / "log").glob("*")) if p.is_file())

    def stop(self) -> None:
        for line in self.jobs() if self.conf.exists() else []:
            self.run("scancel", line.split()[0])
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait(10)
        for pidfile in self.root.glob("view-*.pid"):  # a view ends with its bindfs, and its namespace with it
            try:
                pid = int(pidfile.read_text())
                os.kill(pid, 15)
                self._wait(lambda: not Path(f"/proc/{pid}").exists(), 10, f"bindfs {pid} to exit")
            except (ValueError, ProcessLookupError, AssertionError):
                pass
        self.lock.release()  # (nothing, if start never took it)
