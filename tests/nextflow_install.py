"""A real Nextflow for the tests and CI (issue 25), installed on first use.

Nextflow's own launcher downloads its jars from Nextflow's site; the same
jars are on Maven Central. This resolves ``io.nextflow:nextflow:VERSION``
with Maven into ~/.cache/syqure-wf/nextflow-VERSION (SYQURE_NEXTFLOW_HOME
overrides) and writes ``bin/nextflow``, a launcher that starts
``nextflow.cli.Launcher`` with the JVM flags of Nextflow's own launcher
script (24.10 line), offline (NXF_OFFLINE) unless told otherwise.

    python3 tests/nextflow_install.py        # installs if needed, prints bin/nextflow

Tests use the ``nextflow`` fixture: the launcher, one NXF_HOME for the session
in a temporary folder, lean JVM options (the first compiler tier; the classes
from an archive made once per Java), and the test skipped, with the reason,
where Java 17 or Maven Central cannot be had."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The newest io.nextflow:nextflow that resolves from Maven Central with all its
# dependencies (checked 2026-11-30): 24.10.4-24.10.6 lack nf-httpfs of their
# version, 25.04.x lack nf-lang and io.seqera:lib-trace.
VERSION = "24.10.0"
JAVA_MIN = 17
HOME = Path(os.environ.get("SYQURE_NEXTFLOW_HOME", f"~/.cache/syqure-wf/nextflow-{VERSION}")).expanduser()

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>syqure-wf</groupId><artifactId>nextflow-install</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>io.nextflow</groupId><artifactId>nextflow</artifactId><version>{version}</version></dependency>
  </dependencies>
</project>
"""

# The JVM options of the `nextflow` launcher script at v24.10 for Java 9 and
# later, and its system properties; -XX:TieredStopAtLevel=1 for commands other
# than run and node, as it does.
LAUNCHER = """#!/usr/bin/env bash
# Nextflow {version} from its Maven Central jars (tests/nextflow_install.py):
# nextflow.cli.Launcher with the JVM flags of Nextflow's own launcher script.
home="$(cd "$(dirname "${{BASH_SOURCE[0]}}")/.." && pwd)"
export NXF_HOME=${{NXF_HOME:-$HOME/.nextflow}}
export NXF_OFFLINE=${{NXF_OFFLINE:-true}}  # Nextflow's own site is out of reach: no update checks
export NXF_CLI="$0 $*"
export NXF_ORG=${{NXF_ORG:-nextflow-io}}
JAVA_CMD=${{JAVA_CMD:-java}}
[[ $NXF_JAVA_HOME ]] && JAVA_CMD="$NXF_JAVA_HOME/bin/java"
opts=(-Dfile.encoding=UTF-8 -Dcom.sun.security.enableAIAcaIssuers=true -Djava.awt.headless=true)
cmd=''
for a in "$@"; do [[ $a != -* ]] && {{ cmd=$a; break; }}; done
[[ $cmd != run && $cmd != node ]] && opts+=(-XX:+TieredCompilation -XX:TieredStopAtLevel=1)
[[ $NXF_OPTS ]] && opts+=($NXF_OPTS)
[[ $NXF_TEMP ]] && opts+=(-Djava.io.tmpdir="$NXF_TEMP")
for p in java.lang java.io java.nio java.net java.util java.util.concurrent.locks \\
         java.util.concurrent.atomic java.nio.file.spi sun.nio.ch sun.nio.fs \\
         sun.net.www.protocol.http sun.net.www.protocol.https sun.net.www.protocol.ftp \\
         sun.net.www.protocol.file jdk.internal.misc jdk.internal.vm java.util.regex; do
  opts+=(--add-opens=java.base/$p=ALL-UNNAMED)
done
[[ $NXF_JVM_ARGS ]] && opts+=($NXF_JVM_ARGS)
exec "$JAVA_CMD" "${{opts[@]}}" -cp "$home/lib/*" nextflow.cli.Launcher "$@"
"""


class Unavailable(Exception):
    """Nextflow cannot be installed here; the message says why."""


def java_version() -> str | None:
    """The version `java -version` reports, e.g. 17.0.15."""
    java = shutil.which("java")
    if not java:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    return next((t.strip('"') for t in out.split() if t.strip('"')[:1].isdigit()), None)


def java_major() -> int | None:
    version = java_version()
    if not version:
        return None
    head = version.split(".")
    return int(head[1]) if head[0] == "1" else int(head[0])


def class_archive(home: Path) -> Path:
    """The JVM's class-data archive of Nextflow's classes, for this Java only."""
    return home / f"classes-java{java_version()}.jsa"


def make_class_archive(launcher: Path) -> None:
    """Archive the classes a small run loads (Java's dynamic CDS): each later
    start maps them instead of loading them, about 1 s less on 2 cores.
    Best effort: without it Nextflow starts as usual."""
    archive = class_archive(launcher.parent.parent)
    with tempfile.TemporaryDirectory(prefix="nextflow-cds-") as tmp:
        (Path(tmp) / "main.nf").write_text("process A {\n  output: stdout\n  script: 'echo a'\n}\n"
                                           "workflow { A() }\n")
        env = {**os.environ, "NXF_HOME": str(Path(tmp) / "home"), "NXF_ANSI_LOG": "false",
               "NXF_OPTS": f"-XX:TieredStopAtLevel=1 -XX:ArchiveClassesAtExit={archive}"}
        try:
            subprocess.run([str(launcher), "run", "main.nf"], cwd=tmp, env=env, capture_output=True, timeout=300,
                           stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            archive.unlink(missing_ok=True)


def ensure_tools(say) -> None:
    """Java and Maven from Debian where they are missing and this user may install."""
    if shutil.which("java") and shutil.which("mvn"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    say("installing Java 17 and Maven from Debian")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "openjdk-17-jdk-headless", "maven"],
                       env=env, capture_output=True, timeout=900)
    except subprocess.TimeoutExpired:
        pass  # the checks below say what is missing


def install(home: Path = HOME, say=lambda line: None) -> Path:
    """The launcher, made (once, under a lock) if needed."""
    launcher = home / "bin" / "nextflow"
    if launcher.exists():
        return launcher
    ensure_tools(say)
    major = java_major()
    if major is None or major < JAVA_MIN:
        raise Unavailable(f"Nextflow {VERSION} needs Java {JAVA_MIN} or later: "
                          + ("no java on PATH" if major is None else f"java is {major}"))
    if not shutil.which("mvn"):
        raise Unavailable("no mvn on PATH: Maven resolves Nextflow's jars from Maven Central")
    from filelock import FileLock

    home.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(home) + ".lock", timeout=900):
        if launcher.exists():
            return launcher
        say(f"resolving io.nextflow:nextflow:{VERSION} from Maven Central into {home}")
        with tempfile.TemporaryDirectory(prefix="nextflow-install-") as tmp:
            (Path(tmp) / "pom.xml").write_text(POM.format(version=VERSION))
            lib = Path(tmp) / "lib"
            try:
                done = subprocess.run(["mvn", "-B", "-q", "dependency:copy-dependencies", f"-DoutputDirectory={lib}"],
                                      cwd=tmp, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise Unavailable("resolving Nextflow's jars from Maven Central took over 900 s") from None
            if done.returncode != 0 or not (lib / f"nextflow-{VERSION}.jar").exists():
                errors = [line for line in (done.stdout + done.stderr).splitlines() if "ERROR" in line]
                raise Unavailable(f"Maven could not resolve io.nextflow:nextflow:{VERSION}: "
                                  + (errors[0][:300] if errors else "no jars"))
            shutil.rmtree(home, ignore_errors=True)
            (home / "bin").mkdir(parents=True)
            shutil.move(str(lib), home / "lib")
        tmp_launcher = launcher.with_name(".nextflow.tmp")
        tmp_launcher.write_text(LAUNCHER.format(version=VERSION))
        tmp_launcher.chmod(0o755)
        os.replace(tmp_launcher, launcher)  # last: its presence says the install is whole
    return launcher


def install_with_archive(home: Path = HOME, say=lambda line: None) -> Path:
    launcher = install(home, say)
    if not class_archive(home).exists():
        from filelock import FileLock

        with FileLock(str(home) + ".lock", timeout=900):
            if not class_archive(home).exists():
                say(f"archiving Nextflow's classes for Java {java_version()}")
                make_class_archive(launcher)
    return launcher


class Nextflow:
    """The installed launcher with one NXF_HOME for a test session. Runs are
    lean: the JVM's first compiler tier only (a test's pipeline runs for
    seconds, not hours), no ANSI log."""

    def __init__(self, launcher: Path, home: Path):
        self.launcher, self.home = launcher, home
        opts = "-XX:TieredStopAtLevel=1"
        archive = class_archive(launcher.parent.parent)
        if archive.exists():
            opts += f" -XX:SharedArchiveFile={archive}"
        self.env = {**os.environ, "NXF_HOME": str(home), "NXF_OFFLINE": "true", "NXF_ANSI_LOG": "false",
                    "NXF_OPTS": opts, "NXF_DISABLE_CHECK_LATEST": "true"}

    def args(self, *args) -> list[str]:
        return [str(self.launcher), *map(str, args)]

    def run(self, *args, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.args(*args), cwd=cwd, env={**self.env, **(env or {})}, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def nextflow_or_skip(home: Path):
    import pytest

    try:
        return Nextflow(install_with_archive(), home)
    except Unavailable as exc:
        pytest.skip(str(exc))


if __name__ == "__main__":
    try:
        print(install_with_archive(say=lambda line: print(line, file=sys.stderr)))
    except Unavailable as exc:
        sys.exit(f"nextflow_install: {exc}")
