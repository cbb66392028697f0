"""``slack-test``, ``silence add|list|remove`` and ``alerts`` through argparse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dialnexa_watchdog.alerts.state import AlertState, State
from dialnexa_watchdog.alerts.store import Changes, Store
from dialnexa_watchdog.cli import main
from fakeslack import CHANNEL_ID, TOKEN, FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


def run(*argv: str) -> int:
    """The real entry point: parsing, dispatch, and exit codes for config/state errors."""
    return main(list(argv))


def config(tmp_path: Path, slack: str = "") -> str:
    path = tmp_path / "watchdog.yaml"
    path.write_text(
        f"""
state: {{path: {tmp_path / "state.sqlite3"}}}
rules:
  - {{name: failed-rate, outcome: failed, window: 15m, threshold: 0.25}}
{slack}
""",
        encoding="utf-8",
    )
    return str(path)


def test_silence_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path)
    assert (
        run("silence", "add", "-c", cfg, "--agent", "a1", "--for", "2h", "--reason", "deploy") == 0
    )
    assert "silence 1 added: agent a1, every rule" in capsys.readouterr().out
    assert run("silence", "add", "-c", cfg, "--agent", "a2", "--rule", "failed-rate",
               "--for", "30m", "--reason", "carrier test") == 0  # fmt: skip
    assert run("silence", "list", "-c", cfg) == 0
    out = capsys.readouterr().out
    assert "a1" in out and "carrier test" in out and "failed-rate" in out
    assert run("silence", "remove", "-c", cfg, "1") == 0
    assert run("silence", "remove", "-c", cfg, "1") == 1
    run("silence", "list", "-c", cfg)
    assert "deploy" not in capsys.readouterr().out


def test_silence_add_rejects_unknown_rule_and_bad_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path)
    assert run("silence", "add", "-c", cfg, "--agent", "a1", "--rule", "nope",
               "--for", "1h", "--reason", "x") == 2  # fmt: skip
    assert "no rule named 'nope'" in capsys.readouterr().err
    assert run("silence", "add", "-c", cfg, "--agent", "a1", "--for", "soon", "--reason", "x") == 2


def test_state_directory_missing_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "w.yaml"
    cfg.write_text(f"state: {{path: {tmp_path / 'missing' / 's.sqlite3'}}}\n", encoding="utf-8")
    assert run("silence", "list", "-c", str(cfg)) == 2
    assert "does not exist" in capsys.readouterr().err


def test_alerts_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path)
    assert run("alerts", "-c", cfg) == 0
    assert "no alerts are pending or firing" in capsys.readouterr().out
    store = Store(tmp_path / "state.sqlite3")
    now = 1_750_000_000.0
    st = AlertState("failed-rate", "agt_k7m2", "critical", State.FIRING, now, now,
                    fired_at=now, rate=0.31, calls=42, threshold=0.25)  # fmt: skip
    store.commit(now, Changes(states=[(st, None)]))
    store.close()
    assert run("alerts", "-c", cfg) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "RULE", "AGENT", "STATE", "SEVERITY", "RATE", "THRESHOLD", "CALLS", "SINCE", "SILENCED"
    ]  # fmt: skip
    assert out[1].split()[:7] == ["failed-rate", "agt_k7m2", "firing", "critical", "31.0%",
                                  "25.0%", "42"]  # fmt: skip


def test_slack_test_ok_and_failures(
    tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    section = f"slack: {{token: {TOKEN}, channel: '{CHANNEL_ID}', api_url: '{slack.api_url}'}}"
    cfg = config(tmp_path, section)
    assert run("slack-test", "-c", cfg) == 0
    out = capsys.readouterr().out
    assert "token ok: bot user watchdog in workspace Acme" in out
    assert f"posted a test message to {CHANNEL_ID}" in out
    assert len(slack.posts()) == 1

    slack.member_of.clear()
    assert run("slack-test", "-c", cfg) == 1
    err = capsys.readouterr().err
    assert "not_in_channel" in err and "/invite" in err

    bad = config(tmp_path, section.replace(TOKEN, "xoxb-wrong"))
    assert run("slack-test", "-c", bad) == 1
    err = capsys.readouterr().err
    assert "invalid_auth" in err and "xoxb-wrong" not in err


def test_slack_test_webhook_and_unconfigured(
    tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, f"slack: {{webhook_url: '{slack.webhook_url}'}}")
    assert run("slack-test", "-c", cfg) == 0
    assert len(slack.webhooks()) == 1
    slack.fail("webhook", status=404, error="no_service")
    assert run("slack-test", "-c", cfg) == 1
    err = capsys.readouterr().err
    assert "no_service" in err and slack.webhook_url not in err
    assert run("slack-test", "-c", config(tmp_path)) == 2
    assert "Slack is not configured" in capsys.readouterr().err
