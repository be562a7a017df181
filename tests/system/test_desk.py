"""``syqure-wf desk`` (issue 35): the steward's page, served for site 1 of
three real sites (the real SyftBox server and clients, an agent each), and
used from a real headless Chromium: the waiting run is found, read and
approved, and it completes. A peer's program that carries markup (a
``<script>`` and an ``<img onerror>``) shows as text and runs nothing.

Policies: sites 0 and 2 list the test's programs; site 1 lists none and
asks its operator (submitters cp0 and cp1), and tells a hook (notify)."""
from __future__ import annotations

import json
import os
import re
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from browser import chromium
from conftest import PY, REPO, Procs, wait_until
from jobs import EXAMPLE, cli
from sites_net import Sites, run_digest_of, sh
from syftbox_net import EMAILS

ATTACK = ("# <script>document.title='pwned-script'</script>"
          "<img src=x onerror=\"document.title='pwned-img'\">\n")
HOOK = """import json, sys
record = json.load(sys.stdin)
with open({out!r}, "a") as f:
    f.write(json.dumps(record) + "\\n")
"""
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (desk|agent)\b")
PROGRAMS = {"marked.py": ATTACK, "plain.py": "# a run for the steward to reject\n"}


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    root = tmp_path_factory.mktemp("desk")
    programs = root / "programs"
    programs.mkdir()
    digests = []
    for name, head in PROGRAMS.items():
        (programs / name).write_text(head + (EXAMPLE / "allele_counts.py").read_text())
        digests.append(run_digest_of({"engine": {"name": "mpyc", "program": name}}, programs, EMAILS,
                                     {1: "counts", 2: "counts"}))  # the roles a run is approved with
    data = EXAMPLE / "data"
    (root / "hook.py").write_text(HOOK.format(out=str(root / "notified.jsonl")))
    s = Sites(root, policies={
        0: {"submitters": ["*"], "programs": digests},
        # peers: Sites lists every site's key (a key never met would wait, or be refused at site 2)
        1: {"submitters": EMAILS[:2], "programs": [],
            "inputs": {"counts": str(data / "site1.json")}, "notify": {"command": [PY, "./hook.py"]}},
        2: {"submitters": ["*"], "programs": digests, "unlisted_programs": "reject",
            "inputs": {"counts": str(data / "site2.json")}}})
    yield s
    s.close()


@pytest.fixture(scope="module")
def desk(sites):
    """Site 1's desk: its URL (from its first line) and its process."""
    procs = Procs()
    proc = procs.start(cli("desk", *sites.site(1), "--port", "0"), log=sites.root / "desk.log")
    first = wait_until(lambda: (lines := Path(proc.log).read_text().splitlines()) and lines[0], 30,
                       "the desk's first line", seen=lambda: Path(proc.log).read_text())
    yield first, proc
    procs.cleanup()


def get(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers or {}), timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_desk_needs_its_token_and_a_csrf_token_to_change_anything(sites, desk):
    url, _ = desk
    assert url.startswith("http://127.0.0.1:") and "/?token=" in url, url
    base, token = url.split("?token=")
    path = sites.folder(1) / "syqure-wf" / EMAILS[1] / "desk.token"
    assert path.read_text().strip() == token and stat.S_IMODE(path.stat().st_mode) == 0o600
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "desk=" + token}):
        assert get(base, headers=headers)[0] == 401
    assert get(base + "?token=" + token[:-1] + "x")[0] == 401
    code, page = get(base, headers={"Authorization": "Bearer " + token})
    assert code == 200 and EMAILS[1] in page
    run_id = sites.submit(sites.config("desk-csrf", "plain.py"))
    sites.wait_state(run_id, 1, "pending_approval")
    form = f"action=approve&run_id={run_id}&submitter={EMAILS[0]}&manifest=x".encode()
    for extra in (b"", b"&csrf=forged"):
        code, _ = get(base + "decide", form + extra, {"Authorization": "Bearer " + token})
        assert code == 403
    assert sites.state(run_id, 1, seen_by=1)["state"] == "pending_approval"
    # a stale page (another manifest version) decides nothing either
    code, page = get(base + "run?id=" + run_id, headers={"Authorization": "Bearer " + token})
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    code, said = get(base + "decide", form + f"&csrf={csrf}".encode(), {"Authorization": "Bearer " + token})
    assert code == 409 and "changed since it was read" in said
    assert sites.state(run_id, 1, seen_by=1)["state"] == "pending_approval"
    assert sh("reject", run_id, "--reason", "done testing", *sites.site(1)).returncode == 0
    # every log line dated in UTC (the desk's requests, without the token; the agents')
    logged = Path(desk[1].log).read_text().splitlines()[2:] + sites.agent_log(1).splitlines()
    assert logged and all(STAMP.match(line) for line in logged), logged
    assert not any(token in line for line in logged)


def test_a_steward_approves_in_a_browser_and_peer_markup_stays_text(sites, desk, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = desk
    run_id = sites.submit(sites.config("desk-browser", "marked.py"))
    sites.wait_state(run_id, 1, "pending_approval")
    filed = sh("show", run_id, "--html", *sites.site(1)).stdout  # the sheet to file, as inert as the page
    assert "&lt;script&gt;" in filed and "<script" not in filed and "<img" not in filed and "<h1" in filed
    with chromium() as browser:
        browser.get(url)
        assert "token=" not in browser.current_url  # moved into a cookie
        waiting = browser.find_element(By.ID, "waiting")
        waiting.find_element(By.LINK_TEXT, run_id).click()
        wait_until(lambda: browser.find_elements(By.ID, "approve"), 30, "the review sheet")
        page = browser.find_element(By.TAG_NAME, "body").text
        assert "asks an operator (program)" in page and sites.digest("marked.py") in page
        assert ATTACK.strip() in page  # the peer's markup, as text
        assert browser.find_elements(By.CSS_SELECTOR, "main script, main img") == []
        assert "pwned" not in browser.title
        browser.find_element(By.ID, "approve").click()
        wait_until(lambda: "pending_approval" not in browser.find_element(By.ID, "title").text, 30,
                   "the page to show the run approved")
        assert "pwned" not in browser.title
    waited = sites.wait(run_id, results=tmp_path / "results")
    assert waited.returncode == 0, waited.stderr
    watched = sh("watch", run_id, "--timeout", "120", *sites.site(2), timeout=180)  # at a site that did not submit
    assert watched.returncode == 0 and f"party 1 {EMAILS[1]}: done by hand" in watched.stdout, watched.stdout
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", line)
               for line in watched.stdout.splitlines()), watched.stdout
    assert sites.state(run_id, 1)["approved_by"] == "hand"
    decisions = [e for e in sites.audit(1) if e["run_id"] == run_id and e["event"] == "decision"]
    assert [e["how"] for e in decisions] == ["waiting", "hand"]
    result = json.loads((tmp_path / "results" / run_id / "party-1.json").read_text())
    assert "allele_count" in result


def notified(sites: Sites, run_id: str) -> list[dict]:
    path = sites.root / "notified.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [r for r in map(json.loads, lines) if r.get("run_id") == run_id]


def test_the_notify_hook_hears_a_run_wait_and_end(sites, tmp_path):
    run_id = sites.submit(sites.config("desk-hook", "plain.py"))
    sites.wait_state(run_id, 1, "pending_approval")
    told = wait_until(lambda: notified(sites, run_id), 30, "the hook to hear of the waiting run")
    assert told[0]["state"] == "pending_approval" and told[0]["code"] == "program"
    assert told[0]["submitter"] == EMAILS[0] and told[0]["program"] == sites.digest("plain.py")
    sites.wait_state(run_id, 1, "pending_approval", seen_by=0)
    status = sh("status", run_id, *sites.site(0)).stdout  # by when the waiting site must answer (7 days)
    assert f"{EMAILS[1]}: pending_approval" in status and ", approve by 20" in status, status
    pending = sh("runs", "--pending", "--json", *sites.site(1))
    assert [r["run_id"] for r in json.loads(pending.stdout)] == [run_id], pending.stdout + pending.stderr
    sheet = json.loads(sh("show", run_id, "--json", *sites.site(1)).stdout)
    assert sheet["state"] == "pending_approval" and sheet["files"] == ["plain.py"]
    fields = {f["label"]: f for f in sheet["fields"]}
    assert fields["digest"]["value"] == sites.digest("plain.py")
    assert [row[1] for row in fields["parties"]["table"]["body"]] == EMAILS
    assert sh("approve", run_id, *sites.site(1)).returncode == 0
    assert sites.wait(run_id, results=tmp_path / "results").returncode == 0
    wait_until(lambda: [r["state"] for r in notified(sites, run_id)] == ["pending_approval", "done"], 30,
               "the hook to hear the run done", seen=lambda: notified(sites, run_id))
    party_log = (sites.private(1, run_id) / "party.log").read_text()  # its party's progress, dated
    assert re.search(r"^\d{4}-\d\d-\d\dT[\d:.]+Z party\[1\]: progress: .*peer 0: sent \d+ msgs/", party_log, re.M), \
        party_log
    events = [e for e in sites.audit(1) if e["run_id"] == run_id and e["event"] == "notified"]
    assert [(e["state"], e["how"], e.get("failed")) for e in events] == [
        ("pending_approval", "command", None), ("done", "command", None)]


def test_durations_on_the_command_line(tmp_path):
    from syqure_wf.cli.duration import seconds

    assert [seconds(t) for t in ("7d", "36h", "90m", "30s", "3600", "1.5h", "2w")] == [
        604800, 129600, 5400, 30, 3600, 5400, 1209600]
    for bad in ("", "7 days", "-1d", "1y", "d"):
        with pytest.raises(ValueError):
            seconds(bad)
    done = sh("submit", "--config", EXAMPLE / "config.yaml", "--expires", "soon", "--syftbox-folder", tmp_path,
              "--email", "a@b.c")
    assert done.returncode == 2 and "not a duration" in done.stderr


def test_a_key_given_twice_is_refused_in_every_file_a_person_edits(tmp_path):
    from syqure_wf.errors import ConfigError
    from syqure_wf.run.doctor.slurm import profile_settings
    from syqure_wf.sites.policy import load

    policy = tmp_path / "policy.yaml"
    policy.write_text(f"submitters: ['*']\npeers: [{EMAILS[0]}]\nprograms: []\npeers: [{EMAILS[2]}]\n")
    with pytest.raises(ConfigError, match=r"line 4\).*'peers' is given twice \(first on line 2\)"):
        load(policy)
    run = tmp_path / "run.yaml"
    run.write_text("engine: {name: mpyc, program: x.py}\nparties: 3\nengine: {name: mpyc, program: y.py}\n")
    done = sh("digest", "--config", run)
    assert done.returncode != 0 and "'engine' is given twice" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text("executor: slurm\njobs: 3\nexecutor: local\n")
    with pytest.raises(ConfigError, match="'executor' is given twice"):
        profile_settings(str(tmp_path / "profile"))


def test_the_operators_policy_example_is_one_valid_policy(tmp_path):
    from syqure_wf.sites.policy import load

    readme = (REPO / "docs" / "operators.md").read_text()
    block = readme.split("# policy.yaml at hospital B\n", 1)[1].split("```", 1)[0]
    (tmp_path / "policy.yaml").write_text(block.replace('"SHA256:..."', '"SHA256:' + "A" * 43 + '"'))
    policy = load(tmp_path / "policy.yaml")
    assert policy.computes_with("aggregator@hospital-a.org") and policy.computes_with("biobank@hospital-c.org")


def test_policy_check_says_what_a_policy_means_and_what_looks_wrong(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"submitters: [{EMAILS[0]}]\npeers: ['*']\nunlisted_programs: reject\n"
                      f"inputs: {{counts: {tmp_path / 'missing.json'}}}\nmax_seconds: 3600\n"
                      "notify: {command: [./hook.sh], when: [pending_approval]}\n")
    done = sh("policy", "check", policy)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    for said in (f"Considers runs submitted by {EMAILS[0]}", "Computes with any site",
                 "any other run is rejected", "runs at most 1 hour", "a run waits at most 7 days",
                 "When a run is pending_approval, it runs ['./hook.sh']"):
        assert said in done.stdout, (said, done.stdout)
    assert "warning: input 'counts'" in done.stderr
    policy.write_text(f"submitters: [{EMAILS[0]}]\nnotify: {{when: [started]}}\n")
    done = sh("policy", "check", policy)
    assert done.returncode != 0 and "notify" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    schema = json.loads(sh("policy", "schema").stdout)
    assert "notify" in schema["properties"] and "peers" in schema["properties"]


def test_the_site_defaults_from_the_syftbox_clients_own_config(tmp_path):
    (tmp_path / "box" / "datasites").mkdir(parents=True)
    config = tmp_path / "client.json"
    config.write_text(json.dumps({"data_dir": str(tmp_path / "box"), "email": EMAILS[1],
                                  "server_url": "http://127.0.0.1:1", "client_url": "http://127.0.0.1:2"}))
    env = {k: v for k, v in os.environ.items() if k not in ("SYFTBOX_FOLDER", "SYFTBOX_EMAIL")}
    done = sh("runs", "--pending", env={**env, "SYFTBOX_CLIENT_CONFIG_PATH": str(config)})
    assert done.returncode == 0 and done.stdout.startswith("RUN"), done.stderr
    done = sh("runs", env={**env, "HOME": str(tmp_path), "SYFTBOX_CLIENT_CONFIG_PATH": str(tmp_path / "none")})
    assert done.returncode == 2 and "--syftbox-folder" in done.stderr


def test_a_party_progress_line_names_messages_bytes_and_whom_it_waits_on():
    from syqure_wf.run.progressline import line

    assert line(None) == "progress: starting, no channel open yet"
    record = {"state": "running", "channels": {
        "0": {"peer": 0, "sent_messages": 12, "sent_bytes": 3400, "received_messages": 10, "received_bytes": 2100,
              "waiting_s": 0.2},
        "2": {"peer": 2, "sent_messages": 3, "sent_bytes": 90, "received_messages": 0, "received_bytes": 0,
              "waiting_s": 14.6}}}
    assert line(record) == ("progress: running; peer 0: sent 12 msgs/3.4 KB, received 10 msgs/2.1 KB; "
                            "peer 2: sent 3 msgs/90 B, received 0 msgs/0 B; waiting on 2 (15 s)")


def test_the_policy_schema_ships_as_a_file_for_editors():
    from importlib import resources

    shipped = json.loads(resources.files("syqure_wf").joinpath("schemas/policy.schema.json").read_text())
    now = json.loads(sh("policy", "schema").stdout)
    assert shipped == now, ("syqure_wf/schemas/policy.schema.json is not the policy's schema: regenerate it with "
                            "syqure-wf policy schema > syqure_wf/schemas/policy.schema.json")
