"""``slack-test``, ``silence add|list|remove``, ``alerts`` and ``healthcheck`` through argparse."""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from dialnexa_watchdog.alerts.state import AlertState, State
from dialnexa_watchdog.alerts.store import Changes, Store
from dialnexa_watchdog.cli import main
from dialnexa_watchdog.cli.health import healthz_url
from fakeslack import CHANNEL_ID, TOKEN, FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


def run(*argv: str) -> int:
    """The real entry point: parsing, dispatch, and exit codes for config/state errors."""
    return main(list(argv))


def config(tmp_path: Path, slack: str = "", daemon_ran: bool = True) -> str:
    """A config file; with ``daemon_ran`` its state file exists, as after the daemon started
    (these commands open the daemon's state, never a new one)."""
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
    if daemon_ran:
        Store(tmp_path / "state.sqlite3").close()
    return str(path)


def test_silence_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path)
    assert (
        run("silence", "add", "-c", cfg, "--agent", "a1", "--for", "2h", "--reason", "deploy") == 0
    )
    assert "silence 1 added: agent a1, every rule" in capsys.readouterr().out
    silence = ["--agent", "a2", "--rule", "failed-rate", "--for", "30m", "--reason", "carrier test"]
    assert run("silence", "add", "-c", cfg, *silence) == 0
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
    silence = ["--agent", "a1", "--rule", "nope", "--for", "1h", "--reason", "x"]
    assert run("silence", "add", "-c", cfg, *silence) == 2
    assert "no rule named 'nope'" in capsys.readouterr().err
    assert run("silence", "add", "-c", cfg, "--agent", "a1", "--for", "soon", "--reason", "x") == 2


def test_state_directory_missing_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "w.yaml"
    cfg.write_text(f"state: {{path: {tmp_path / 'missing' / 's.sqlite3'}}}\n", encoding="utf-8")
    assert run("silence", "list", "-c", str(cfg)) == 2
    err = capsys.readouterr().err
    assert f"no state file at {tmp_path / 'missing' / 's.sqlite3'}" in err
    assert f"--config {cfg}" in err
    assert not (tmp_path / "missing").exists()


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with no config given: neither --config nor $WATCHDOG_CONFIG."""
    for name in [n for n in os.environ if n.startswith("WATCHDOG_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["alerts"],
        ["silence", "list"],
        ["silence", "add", "--agent", "a1", "--for", "1h", "--reason", "deploy"],
        ["silence", "remove", "1"],
    ],
)
def test_without_config_nothing_is_created_and_the_message_says_where_it_looked(
    no_config: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 9 item 13: these commands used to create ./dialnexa-watchdog.sqlite3 and say
    "no alerts" while the daemon's own state had them firing."""
    assert run(*argv) == 2
    captured = capsys.readouterr()
    default = no_config / "dialnexa-watchdog.sqlite3"
    assert f"no state file at {default}" in captured.err
    assert "no --config given and $WATCHDOG_CONFIG is not set" in captured.err
    assert "no alerts" not in captured.out and "silence 1 added" not in captured.out
    assert list(no_config.iterdir()) == [], "the command created a file"


def test_watchdog_config_variable_is_named_when_it_points_elsewhere(
    no_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = no_config / "daemon.yaml"
    cfg.write_text(f"state: {{path: {no_config / 'elsewhere.sqlite3'}}}\n", encoding="utf-8")
    monkeypatch.setenv("WATCHDOG_CONFIG", str(cfg))
    assert run("alerts") == 2
    err = capsys.readouterr().err
    assert f"no state file at {no_config / 'elsewhere.sqlite3'}" in err
    assert f"$WATCHDOG_CONFIG={cfg}" in err
    # once the daemon has created it, the same command reads it
    Store(no_config / "elsewhere.sqlite3").close()
    assert run("alerts") == 0
    assert "no alerts are pending or firing" in capsys.readouterr().out


def test_a_silence_reaches_the_daemons_state_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path)
    assert run("silence", "add", "-c", cfg, "--agent", "a1", "--for", "1h", "--reason", "x") == 0
    store = Store(tmp_path / "state.sqlite3")
    try:
        (silence,) = store.silences(None)
    finally:
        store.close()
    assert (silence.agent_id, silence.reason) == ("a1", "x")


def test_alerts_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path)
    assert run("alerts", "-c", cfg) == 0
    assert "no alerts are pending or firing" in capsys.readouterr().out
    store = Store(tmp_path / "state.sqlite3")
    now = 1_750_000_000.0
    st = AlertState(
        "failed-rate",
        "agt_k7m2",
        "critical",
        State.FIRING,
        now,
        now,
        fired_at=now,
        rate=0.31,
        calls=42,
        threshold=0.25,
    )
    seq = AlertState(
        "failed-seq",
        "agt_new",
        "critical",
        State.FIRING,
        now,
        now,
        fired_at=now,
        rate=0.5,
        calls=12,
        threshold=0.15,
        baseline=0.05,
        baseline_source="fallback: too little history",
    )
    store.commit(now, Changes(states=[(st, None), (seq, None)]))
    store.close()
    assert run("alerts", "-c", cfg) == 0
    out = capsys.readouterr().out.splitlines()
    header = "RULE AGENT STATE SEVERITY RATE THRESHOLD CALLS SINCE SILENCED ACKED BASELINE"
    assert " ".join(out[0].split()) == header
    assert " ".join(out[1].split()[:7]) == "failed-rate agt_k7m2 firing critical 31.0% 25.0% 42"
    assert out[1].rstrip().endswith(" -")  # a window rule has no baseline
    assert out[2].startswith("failed-seq")
    assert out[2].rstrip().endswith("5.0% fallback: too little history")


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


# ---- healthcheck: what the container HEALTHCHECK runs -------------------------------------------
class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(self.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, type[_Health]]]:
    handler = type("Health", (_Health,), {"status": 200, "paths": []})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.slow
def test_healthcheck_follows_metrics_listen(
    tmp_path: Path,
    health_server: tuple[http.server.HTTPServer, type[_Health]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, handler = health_server
    port = server.server_address[1]
    cfg = tmp_path / "w.yaml"
    cfg.write_text(f"metrics: {{listen: '127.0.0.1:{port}'}}\n")
    assert run("healthcheck", "-c", str(cfg)) == 0
    assert f"http://127.0.0.1:{port}/healthz answered 200" in capsys.readouterr().out
    assert handler.paths == ["/healthz"]
    handler.status = 503
    assert run("healthcheck", "-c", str(cfg)) == 1
    assert "answered 503" in capsys.readouterr().err
    # the environment moves it, as it moves the daemon (no config file at all here)
    monkeypatch.delenv("WATCHDOG_CONFIG", raising=False)
    monkeypatch.setenv("WATCHDOG_METRICS__LISTEN", f"0.0.0.0:{port}")
    handler.status = 200
    assert run("healthcheck") == 0
    assert handler.paths == ["/healthz"] * 3


def test_healthcheck_nothing_listening(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        cfg = tmp_path / "w.yaml"
        cfg.write_text(f"metrics: {{listen: '127.0.0.1:{port}'}}\n")
        assert run("healthcheck", "-c", str(cfg), "--timeout", "2s") == 1
    assert "unhealthy: cannot reach" in capsys.readouterr().err


def test_healthz_url_reaches_wildcard_addresses_through_loopback() -> None:
    assert healthz_url(("0.0.0.0", 10811)) == "http://127.0.0.1:10811/healthz"
    assert healthz_url(("", 10811)) == "http://127.0.0.1:10811/healthz"
    assert healthz_url(("::", 10811)) == "http://[::1]:10811/healthz"
    assert healthz_url(("::1", 9)) == "http://[::1]:9/healthz"
    assert healthz_url(("10.0.0.5", 10811)) == "http://10.0.0.5:10811/healthz"


@pytest.mark.parametrize("command", [("alerts",), ("silence", "list")])
def test_a_damaged_state_file_is_reported_and_left_where_the_daemon_expects_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    cfg = config(tmp_path)
    state = tmp_path / "state.sqlite3"
    state.write_bytes(b"not a database at all, just some bytes" * 100)
    before = state.read_bytes()
    assert run(*command, "--config", cfg) == 2
    err = capsys.readouterr().err
    assert f"{state} is damaged" in err and "Traceback" not in err
    assert state.read_bytes() == before  # not moved aside, not replaced by a new store
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.sqlite3", "watchdog.yaml"]
