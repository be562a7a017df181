"""One output format (docs/outputs.md): summary.json beside the results, the
same schema for `syqure-wf run`, `collect` and the submit step; the real
runs check their summaries in tests/system (test_run.py, test_workflows.py,
test_nextflow.py and test_sites.py)."""
from __future__ import annotations

import json

import jsonschema
import pytest

from conftest import REPO
from summary_schema import SCHEMA

EXAMPLE = REPO / "examples/allele-counts"


def test_collect_of_one_party_names_only_the_result_here(tmp_path):
    """A site's workflow runs one party: the summary lists every party, with a
    result only for the one beside it (what collect reads: status records)."""
    from syqure_wf.run.summary import of_parties

    (tmp_path / "party-1.json").write_text("{}")
    records = {0: {"state": "done", "host": "h", "channels": {"0-1": {"sent_messages": 3, "peer": 1, "x": "p"}}},
               1: {"state": "done", "output": "/secret/path", "times": {"finished": 1.5}}, 2: None}
    summary = of_parties("r1", records, tmp_path)
    jsonschema.validate(summary, SCHEMA)
    assert [p["result"] for p in summary["parties"]] == [None, "party-1.json", None]
    assert summary["parties"][0]["channels"] == {"0-1": {"sent_messages": 3, "peer": 1}}
    assert summary["parties"][2]["state"] == "never started"
    assert "/secret" not in json.dumps(summary) and '"h"' not in json.dumps(summary)


def test_submit_summary_names_each_site_by_the_manifests_pid(tmp_path):
    from syqure_wf.run.summary import of_sites

    (tmp_path / "party-0.json").write_text("{}")
    sites = [(1, "b@x", {"pid": 0, "state": "done", "approved_by": "hand"}), (0, "a@x", {"state": "done"}),
             (2, "c@x", None)]
    summary = of_sites("r2", "sha256:abc", sites, tmp_path)
    jsonschema.validate(summary, SCHEMA)
    assert [(p["pid"], p["site"], p["state"], p["result"]) for p in summary["parties"]] == [
        (0, "a@x", "done", "party-0.json"), (1, "b@x", "done", None), (2, "c@x", "no answer", None)]


@pytest.mark.parametrize("change", [
    {"format": 2}, {"how": "other"}, {"parties": []}, {"extra": 1}, {"run_id": ""},
    {"parties": [{"pid": 0, "state": "done", "site": None, "result": "../x.json"}]},
    {"parties": [{"pid": 0, "state": "done", "site": None, "result": None, "output": "/a/b"}]},
])
def test_the_schema_refuses_another_shape(change):
    good = {"format": 1, "how": "parties", "run_id": "r", "program": None,
            "parties": [{"pid": 0, "state": "done", "site": None, "result": "party-0.json"}]}
    jsonschema.validate(good, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, **change}, SCHEMA)
