"""The ``c360`` command refuses bad arguments and files with one clear line, never a
traceback, and before it connects to anything."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from stream.cli import main
from stream.core.rules import RulesError, load

UNREACHABLE = "127.0.0.1:1"  # nothing listens there: a refused connection at once


def run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's refusals
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["replay", "-", "--partitions", "0"], "0 is not ≥ 1"),
        (["tick", "--now", "-5"], "not epoch milliseconds"),
        (["tick", "--now", str(10**20)], "not epoch milliseconds"),
        (["generate", "--produce", "--batch", "1000"], "dead-letters records of over 500"),
        (["generate", "--produce", "--rate", "-3"], "must be > 0"),
        (["generate", "--out", "x.jsonl", "--rate", "5"], "are for --produce"),
        (["generate", "--out", "/nonexistent/dir/e.jsonl"], "no such directory"),
        (["generate", "--out", "-", "--truth", "-"], "--truth needs a file"),
        (["demo", "--persons", "0"], "0 is not ≥ 1"),
        (["demo", "--events", "-5"], "-5 is not ≥ 1"),
        (["generate", "--out", "-", "--seed", "-7"], "-7 is not ≥ 0"),
        (["demo", "--seed", "-7"], "-7 is not ≥ 0"),
        (["replay", "-", "--seed", "-1"], "-1 is not ≥ 0"),
    ],
)
def test_bad_arguments_get_one_clear_line(argv, message, capsys, monkeypatch):
    monkeypatch.setenv("C360_KAFKA_BOOTSTRAP", UNREACHABLE)  # refused before connecting
    code, err = run(argv, capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_settings_are_printed_without_the_api_key(capsys, monkeypatch):
    monkeypatch.setenv("C360_API_KEY", "s3cret-key-value")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "api_key = <set: 16 characters>" in out
    assert "partitions = 4" in out


def test_a_tick_ahead_of_the_clock_needs_future(capsys, monkeypatch):
    # a partition's clock never moves back: a mistyped --now a year ahead judged every
    # lifecycle then, and the ticker's own ticks were dropped until that time came
    import time

    monkeypatch.setenv("C360_KAFKA_BOOTSTRAP", UNREACHABLE)  # refused before connecting
    ahead = int(time.time() * 1000) + 365 * 86_400_000
    code, err = run(["tick", "--now", str(ahead)], capsys)
    assert code == 2 and "hours ahead of the clock" in err and "--future" in err
    code, err = run(["tick", "--now", str(ahead), "--future"], capsys)
    assert code == 1 and "cannot reach Kafka" in err  # sent, as asked


def test_an_output_that_is_a_directory_is_refused(tmp_path, capsys):
    code, err = run(["generate", "--out", str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in err


@pytest.mark.parametrize(
    "argv", [["topics"], ["tick", "--now", "1790000000000"], ["generate", "--produce"]]
)
def test_kafka_out_of_reach_is_one_line(argv, capsys, monkeypatch):
    monkeypatch.setenv("C360_KAFKA_BOOTSTRAP", UNREACHABLE)
    code, err = run([*argv, *(["--events", "10"] if argv[0] == "generate" else [])], capsys)
    assert code == 1 and f"cannot reach Kafka at {UNREACHABLE}" in err
    assert "Traceback" not in err


def test_a_misspelled_variable_is_warned_about(capsys, monkeypatch):
    monkeypatch.setenv("C360_PARTITION", "8")
    code, err = run(["settings"], capsys)
    assert code == 0
    assert "C360_PARTITION is not a c360 setting (did you mean C360_PARTITIONS?)" in err


@pytest.mark.parametrize("argv", [["worker"], ["demo", "--exit"]])
def test_a_data_dir_that_is_a_file_is_refused(argv, tmp_path, capsys, monkeypatch):
    (tmp_path / "f").write_text("")
    monkeypatch.setenv("C360_DATA_DIR", str(tmp_path / "f"))
    monkeypatch.setenv("C360_KAFKA_BOOTSTRAP", UNREACHABLE)  # refused before connecting
    code, err = run(argv, capsys)
    assert code == 2 and "C360_DATA_DIR" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"blocked_label_categories": ["exchnage"]}, "unknown ['exchnage']; known:"),
        ({"lifecycle": {"new_days": 60, "churn_days": 7, "at_risk_days": 5}}, "new_days (60)"),
        ({"lifecycle": {"at_risk_days": 40}}, "at_risk_days (40) is over churn_days (30)"),
        ({"vip": [{"name": "x", "net_worth_usd": -5}]}, "not ≥ 0"),
        ({"vip": [{"name": "x"}]}, "has no threshold"),
        ({"evidence": {"siwe": "strong"}}, "(strengths: verified, observed, asserted)"),
    ],
)
def test_rules_that_would_quietly_do_something_else_are_refused(rules, message, tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    with pytest.raises(RulesError) as err:
        load(path)
    assert message in str(err.value)


def test_replay_refuses_a_file_that_is_not_utf8_and_reads_the_deployments_prefix(
    tmp_path, capsys, monkeypatch
):
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"topic": "web.events", "value": {"anonymousId": "caf\xe9"}}\n')
    code, err = run(["replay", str(latin1)], capsys)
    assert code == 2 and "is not UTF-8 text" in err
    prefixed = tmp_path / "prod.jsonl"
    event = {
        "type": "page",
        "messageId": "m",
        "anonymousId": "d",
        "timestamp": "2026-11-02T09:00:00Z",
    }
    prefixed.write_text(json.dumps({"topic": "prod.web.events", "value": event}) + "\n")
    monkeypatch.setenv("C360_TOPIC_PREFIX", "prod.")
    code, err = run(["replay", str(prefixed)], capsys)
    assert code == 0 and '"persons": 1' in err


def test_generate_refuses_one_file_for_the_events_and_the_truth(tmp_path, capsys, monkeypatch):
    # the truth, written last, replaced the events: rc 0, and the events were gone
    monkeypatch.chdir(tmp_path)
    argv = ["generate", "--persons", "5", "--events", "20", "--out", "run.json"]
    code, err = run([*argv, "--truth", str(tmp_path / "run.json")], capsys)
    assert code == 2 and "the same file" in err
    assert not (tmp_path / "run.json").exists()


def test_generate_writes_the_truth_of_the_events_it_wrote(tmp_path, capsys):
    out, truth = tmp_path / "events.jsonl", tmp_path / "truth.json"
    argv = ["generate", "--persons", "30", "--events", "200", "--out", str(out)]
    assert run([*argv, "--truth", str(truth)], capsys)[0] == 0
    written = json.loads(truth.read_text())
    # the persons whose every identifier the 200 events carried: scoring expects them
    assert 0 < len(written["emitted"]) <= 30
    lines = out.read_text().splitlines()
    assert len(lines) == 200 + 3 + 3  # the events, after three prices and three labels
    keys = {json.loads(line)["key"] for line in lines}
    persons = set(written["emitted"])
    devices = {
        i.split(":", 1)[1]
        for i, p in written["owner"].items()
        if p in persons and i.startswith("anon:")
    }
    assert devices <= keys  # every device of those persons sent events keyed by it


JOURNEY = Path(__file__).parents[1] / "fixtures" / "journey" / "events.jsonl"


def test_replay_reads_the_settings_a_worker_reads(tmp_path, capsys, monkeypatch):
    """A replay is a dry run of what a worker with the same environment does: its rules
    file and its record limits (docs/settings.md: every tool reads them)."""
    rules = tmp_path / "rules.json"  # nothing merges
    rules.write_text(json.dumps({"merge": {"verified": False, "observed": False}}))
    assert main(["replay", str(JOURNEY)]) == 0
    defaults = capsys.readouterr().out
    assert main(["replay", str(JOURNEY), "--rules", str(rules)]) == 0
    with_rules = capsys.readouterr().out
    assert len(with_rules.splitlines()) > len(defaults.splitlines()) == 2
    monkeypatch.setenv("C360_RULES_FILE", str(rules))
    assert main(["replay", str(JOURNEY)]) == 0
    assert capsys.readouterr().out == with_rules

    batch = [
        {
            "type": "page",
            "messageId": f"m{i}",
            "anonymousId": "d",
            "timestamp": "2026-11-02T09:00:00Z",
        }
        for i in range(600)
    ]
    export = tmp_path / "batch.jsonl"
    export.write_text(json.dumps({"topic": "web.events", "key": "d", "value": batch}) + "\n")
    monkeypatch.setenv("C360_BATCH_MAX_EVENTS", "1000")  # the worker takes 600 in a record
    code, err = run(["replay", str(export)], capsys)
    assert code == 0 and '"dead_letters": 0' in err and '"persons": 1' in err


def test_a_lower_batch_limit_is_what_generate_and_the_demo_batch_by(tmp_path, capsys, monkeypatch):
    """C360_BATCH_MAX_EVENTS below the default batch of 200: a file (which batches
    nothing) is written, and records are batched within the limit unless --batch asks for
    more (the demo sent 200-event records its own worker dead-lettered)."""
    from stream import generate
    from stream.loadgen import batched
    from stream.population import Population
    from stream.settings import Settings

    monkeypatch.setenv("C360_BATCH_MAX_EVENTS", "100")
    out = tmp_path / "events.jsonl"
    code, err = run(["generate", "--persons", "20", "--events", "500", "--out", str(out)], capsys)
    assert code == 0, err
    settings = Settings.from_env()
    records = batched(settings, Population(20, seed=7).events(500))
    assert records and max(r.events for r in records) == 100
    parser = argparse.ArgumentParser()
    generate.add_arguments(parser)
    assert generate.refused(parser.parse_args(["--produce"]), settings) is None
    assert "--batch 150" in generate.refused(
        parser.parse_args(["--produce", "--batch", "150"]), settings
    )


def test_records_are_batched_within_the_record_size_limit():
    """C360_RECORD_MAX_BYTES lowered (≥ 1024): a worker dead-letters a larger record
    whole, so generate --produce and the demo must not send one."""
    from stream.loadgen import batched
    from stream.population import Population
    from stream.settings import Settings

    settings = Settings.from_env({"C360_RECORD_MAX_BYTES": "20000"})
    records = batched(settings, Population(20, seed=7).events(2000))
    assert sum(r.events for r in records) == 2000 + 3 + 3  # with the prices and labels
    assert max(len(r.value) for r in records) <= 20000
    assert max(r.events for r in records) > 1  # still batched


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", str(JOURNEY)],
        ["generate", "--persons", "50", "--events", "3000", "--out", "-"],
        ["topics", "--list"],
    ],
)
def test_a_reader_that_stops_early_gets_no_traceback(argv):
    """`c360 replay export.jsonl | head`: the output is cut (exit 1), and that is all."""
    exe = Path(sys.executable).parent / "c360"
    proc = subprocess.Popen([str(exe), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 1
    assert "Traceback" not in err and "Exception ignored" not in err and "None:" not in err


def test_every_option_says_what_it_does_and_its_default(monkeypatch):
    """``c360 replay --help`` listed ``--partitions PARTITIONS`` and ``--seed SEED`` with
    nothing said: what they change and what they are when left out."""
    parsers = []

    def grab(self, args=None, namespace=None):
        parsers.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", grab)
    with pytest.raises(SystemExit):
        main(["settings"])
    (top,) = parsers
    assert "``" not in top.description  # reStructuredText is no help text
    (commands,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    for name, parser in commands.choices.items():
        if name == "connect":  # generated from the connectors' configurations
            continue
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"c360 {name} {action.option_strings or action.dest}: no help"
            if action.option_strings and action.default is not None and action.nargs != 0:
                assert str(action.default) in action.help or "default" in action.help, (
                    f"c360 {name} {action.option_strings}: its default is not said"
                )
