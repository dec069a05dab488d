import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from stream.replay import ReplayError, main, read_inputs

JOURNEY = Path(__file__).parents[1] / "fixtures" / "journey" / "events.jsonl"


def test_replay_prints_one_line_per_person_and_a_summary(capsys):
    out = io.StringIO()
    assert main(str(JOURNEY), 4, 0, None, out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2 and all(line["person_id"].startswith("p") for line in lines)
    summary = json.loads(capsys.readouterr().err.splitlines()[0].removeprefix("summary: "))
    assert (summary["persons"], summary["events"]) == (2, 14)
    # what a rule change moves: refusals by rule, splits, merges (retried ones apart)
    assert summary["refused_by_rule"] == {} and summary["splits"] == 0
    assert summary["merges"] > 0 and summary["merges_retried"] == 0


def test_replay_accepts_prefixed_topics_and_ticks():
    lines = [
        json.dumps({"topic": "c360.web.events", "value": {"type": "page"}}),
        json.dumps({"topic": "tick", "value": {"now": 1790000000000}}),
    ]
    items = list(read_inputs(lines))
    assert [i.topic for i in items] == ["web.events", "tick"] and items[1].now == 1790000000000


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 1: not JSON"),
        ('{"key": 1}', "expected an object with a 'topic'"),
        ('{"topic": "nope", "value": {}}', "unknown topic 'nope'"),
        ('{"topic": "tick", "value": {"now": "soon"}}', "integer 'now'"),
        # what `c360 tick --now` refuses: a partition's clock never moves back, so one
        # tick in the far future would make every later event and tick of the replay old
        ('{"topic": "tick", "value": {"now": true}}', "integer 'now'"),
        ('{"topic": "tick", "value": {"now": -5}}', "between 2000 and 2100"),
        ('{"topic": "tick", "value": 1790000000}', "between 2000 and 2100"),  # seconds
        ('{"topic": "tick", "value": {"now": 100000000000000000000}}', "between 2000 and 2100"),
    ],
)
def test_bad_lines_get_a_clear_error(line, message):
    with pytest.raises(ReplayError, match=message):
        list(read_inputs([line]))


def test_the_cli_dry_runs_a_rule_change(tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps({"merge": {"verified": True, "observed": False, "asserted": False}})
    )
    exe = Path(sys.executable).parent / "c360"
    done = subprocess.run(
        [str(exe), "replay", str(JOURNEY), "--rules", str(rules)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    persons = [json.loads(line) for line in done.stdout.splitlines()]
    # without observed evidence, the wallet connect alone does not merge; SIWE still does
    journey = [p for p in persons if "anon:dev-A" in p["identifiers"].get("anon", [])]
    assert len(journey) == 1 and len(journey[0]["identifiers"]["wallet"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"limits": {"phone": 1}}))
    done = subprocess.run(
        [str(exe), "replay", str(JOURNEY), "--rules", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 2 and "unknown identifier types ['phone']" in done.stderr


def test_replay_summary_counts_refusals_by_rule(tmp_path, capsys):
    def identify(n: int, user: str) -> str:
        value = {
            "type": "identify",
            "messageId": f"m{n}",
            "anonymousId": "dev-1",
            "userId": user,
            "timestamp": "2026-11-02T09:00:00Z",
            "context": {"c360": {"auth": "server"}},
        }
        return json.dumps({"topic": "web.events", "value": value})

    export = tmp_path / "export.jsonl"
    export.write_text(identify(1, "user-1") + "\n" + identify(2, "user-2") + "\n")
    assert main(str(export), 2, 0, None, io.StringIO()) == 0
    summary = json.loads(capsys.readouterr().err.splitlines()[0].removeprefix("summary: "))
    assert summary["refused_by_rule"] == {"limit:user": 1}  # one device, two user ids
    assert (summary["merges"], summary["splits"], summary["merges_retried"]) == (1, 0, 0)
