"""Every artefact under deploy/ checked by the tool its users' tooling would apply.

- systemd unit: ``systemd-analyze verify`` (any output fails) and ``systemd-analyze security
  --offline=true`` (exposure <= 2.0).
- Kubernetes: ``kubernetes-validate --strict`` on every manifest and on the kustomize build
  (``kubectl kustomize``); ServiceMonitor and PrometheusRule, which kubernetes-validate skips,
  against strict JSON schemas of the fields we use (written here from the Prometheus Operator
  CRDs' field names and types, not vendored); the ConfigMap's config through the daemon's own
  loader.
- Prometheus: ``promtool check rules`` on rules.yml and on the PrometheusRule's groups,
  ``promtool test rules`` on tests.yml.
- Dockerfile: ``hadolint``.
- Grafana: the dashboard JSON, its variables, and every PromQL expression parsed by promtool,
  using only the daemon's metric names and labels.

A tool that is missing skips its test on a developer's machine but fails it in CI (CI=true),
so CI cannot pass by skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dialnexa_watchdog.config import load_settings
from support import missing
from support import require_tool as tool

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "dialnexa-watchdog.service"
K8S = DEPLOY / "kubernetes"
K8S_CORE = K8S / "core"
K8S_HA = K8S / "ha"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests.yml"
DASHBOARD = DEPLOY / "grafana" / "dialnexa-watchdog.json"
DOCKERFILE = DEPLOY / "Dockerfile"


# Kubernetes versions the manifests must validate against: an old supported one and the
# newest that kubernetes-validate knows.
K8S_VERSIONS = ("1.28.0", None)

# The daemon's public metrics (the spine and alerts issues) and their labels.
METRICS: dict[str, set[str]] = {
    "dialnexa_calls_total": {"agent_id", "status"},
    "dialnexa_agent_outcome_ratio": {"agent_id", "outcome", "window"},
    "dialnexa_agent_window_calls": {"agent_id", "window"},
    "dialnexa_up": set(),
    "dialnexa_last_successful_poll_timestamp_seconds": set(),
    "dialnexa_api_requests_total": {"code"},
    "dialnexa_api_invalid_items_total": set(),
    "dialnexa_calls_stuck_total": {"agent_id"},
    "dialnexa_api_rate_limit_remaining": set(),
    "dialnexa_agents_dropped_total": set(),
    "dialnexa_deferred_ranges": {"kind"},
    "dialnexa_deferred_wait_seconds": set(),
    "dialnexa_agents_api_up": set(),
    "dialnexa_agents_api_requests_total": {"code"},
    "dialnexa_agents_api_invalid_items_total": set(),
    "dialnexa_agent_info": {"agent_id", "title", "published"},
    "dialnexa_alert_firing": {"rule", "agent_id", "severity"},
    "dialnexa_alert_pending": {"rule", "agent_id", "severity"},
    "dialnexa_slack_notifications_total": {"result"},
    "dialnexa_slack_outbox_messages": set(),
    "dialnexa_slack_outbox_parked_messages": set(),
    "dialnexa_slack_actions_connected": {"mode"},
    "dialnexa_state_commit_failures_total": set(),
    "dialnexa_state_uncommitted_changes": set(),
    "dialnexa_leader": set(),
    "dialnexa_standby_history_read_errors_total": set(),
    "dialnexa_standby_history_last_cycle_timestamp_seconds": set(),
    "dialnexa_alert_evidence_ratio": {"rule", "agent_id"},
}
HISTOGRAMS = ("dialnexa_api_request_duration_seconds", "dialnexa_poll_duration_seconds")
for _h in HISTOGRAMS:
    METRICS[f"{_h}_bucket"] = {"le"}
    METRICS[f"{_h}_sum"] = set()
    METRICS[f"{_h}_count"] = set()
TARGET_LABELS = {"job", "instance"}
# What Grafana substitutes for the dashboard's variables when we parse its expressions.
GRAFANA_VARS = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__range": "3h",
    "$job": "dialnexa-watchdog",
    "$instance": ".+",
    "$window": "5m",
    "$agent_id": ".+",
    "$min_calls": "20",
}


# ---- helpers ---------------------------------------------------------------------------------
def jsonschema() -> Any:
    """The jsonschema module (installed with kubernetes-validate); required in CI."""
    try:
        import jsonschema as module  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        missing("jsonschema is not installed (pip install jsonschema)")
    return module


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def manifests() -> list[Path]:
    """Every Kubernetes manifest under deploy/kubernetes (not kustomization or config)."""
    skip = {"kustomization.yaml", "config.yaml"}
    return sorted(p for p in K8S.rglob("*.yaml") if p.name not in skip)


def manifest(kind: str) -> dict[str, Any]:
    found = [d for p in manifests() for d in load_yaml_docs(p) if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} under deploy/kubernetes, found {len(found)}"
    return found[0]


def unit_settings(path: Path = UNIT) -> dict[str, list[str]]:
    """``Key -> [values]`` of a unit file's directives (a key may repeat)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.fixture
def unit_root(tmp_path: Path) -> Path:
    """A file-system root for ``systemd-analyze --root``: the host's system units (for
    sysinit.target and friends), the unit under test, and a stub at its ExecStart path
    (verify checks that the binary exists; the real one is installed by pip on a host)."""
    root = tmp_path / "root"
    system = Path("/usr/lib/systemd/system")
    if not system.is_dir():
        system = Path("/lib/systemd/system")
    shutil.copytree(system, root / "usr/lib/systemd/system", symlinks=True)
    exec_start = unit_settings()["ExecStart"][0].split()[0].lstrip("-@:+!")
    stub = root / exec_start.lstrip("/")
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    target = root / "etc/systemd/system" / UNIT.name
    target.parent.mkdir(parents=True)
    shutil.copy(UNIT, target)
    return root


# ---- systemd ---------------------------------------------------------------------------------
def test_systemd_unit_verifies_without_any_output(unit_root: Path) -> None:
    analyze = tool("systemd-analyze")
    unit = unit_root / "etc/systemd/system" / UNIT.name
    result = run(analyze, "verify", f"--root={unit_root}", "--man=no", unit)
    output = (result.stdout + result.stderr).strip()
    # systemd-analyze verify exits 0 on unknown keys and bad values: any output is a failure.
    assert result.returncode == 0 and not output, output


def test_systemd_unit_security_exposure_at_most_2(unit_root: Path) -> None:
    analyze = tool("systemd-analyze")
    result = run(
        analyze,
        "security",
        "--offline=true",
        f"--root={unit_root}",
        "--no-pager",
        UNIT.name,
    )
    text = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", text)
    assert match, text
    exposure = float(match.group(1))
    assert exposure <= 2.0, f"exposure {exposure} > 2.0:\n{text}"
    # The tool's own threshold check agrees (its scale is 0..100).
    strict = run(
        analyze,
        "security",
        "--offline=true",
        f"--root={unit_root}",
        "--threshold=20",
        "--no-pager",
        UNIT.name,
    )
    assert strict.returncode == 0, strict.stdout + strict.stderr


def test_systemd_unit_contract() -> None:
    s = unit_settings()
    first = {k: v[0] for k, v in s.items()}
    assert first["Type"] == "notify"
    assert first["NotifyAccess"] == "main"
    assert "WatchdogSec" in first
    assert first["ExecStart"].startswith("/opt/dialnexa-watchdog/bin/dialnexa-watchdog run ")
    assert "--config /etc/dialnexa-watchdog/config.yaml" in first["ExecStart"]
    # Secrets: systemd credentials, read through $CREDENTIALS_DIRECTORY by *_file keys.
    assert any(v.startswith("dialnexa-api-key:") for v in s["LoadCredential"])
    assert first["StateDirectory"] == "dialnexa-watchdog"
    assert "WATCHDOG_STATE__PATH=%S/dialnexa-watchdog/state.sqlite3" in s["Environment"]
    for key, value in {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }.items():
        assert first.get(key) == value, f"{key}={first.get(key)!r}, want {value!r}"
    assert "@system-service" in s["SystemCallFilter"]


def test_systemd_credential_reaches_the_config_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit's LoadCredential name is the file its Environment= points the daemon at
    (relative *_file paths resolve against $CREDENTIALS_DIRECTORY), on top of the example
    config the install guide copies."""
    _clean_env(monkeypatch)
    s = unit_settings()
    cred = s["LoadCredential"][0].split(":", 1)[0]
    env = dict(e.split("=", 1) for e in s["Environment"])
    assert env["WATCHDOG_DIALNEXA__API_KEY_FILE"] == cred
    (tmp_path / cred).write_text("sk-test-not-a-real-key\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WATCHDOG_STATE__PATH", str(tmp_path / "state.sqlite3"))
    settings = load_settings(ROOT / "config" / "watchdog.example.yaml")
    assert settings.dialnexa.api_key is not None
    assert settings.dialnexa.api_key.get_secret_value() == "sk-test-not-a-real-key"


# ---- Kubernetes ------------------------------------------------------------------------------
def _kubernetes_validate(*paths: Path) -> None:
    validator = tool("kubernetes-validate")
    for version in K8S_VERSIONS:
        extra = ["-k", version] if version else []
        result = run(validator, "--strict", *extra, *paths)
        text = result.stdout + result.stderr
        assert result.returncode == 0, text
        for line in text.splitlines():
            # kubernetes-validate passes kinds it has no schema for with a WARN: only the two
            # Prometheus Operator kinds may be skipped (they are checked below).
            if line.startswith("WARN"):
                assert "ServiceMonitor" in line or "PrometheusRule" in line, line
            assert not line.startswith("ERROR"), line


@pytest.mark.slow
def test_every_manifest_validates_strictly() -> None:
    paths = manifests()
    assert {p.name for p in paths} >= {
        "deployment.yaml",
        "service.yaml",
        "pvc.yaml",
        "servicemonitor.yaml",
        "prometheusrule.yaml",
        "secret.example.yaml",
    }
    _kubernetes_validate(*paths)


@pytest.fixture(scope="module")
def kustomize_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    kubectl = tool("kubectl")
    out = tmp_path_factory.mktemp("kustomize") / "rendered.yaml"
    result = run(kubectl, "kustomize", K8S)
    assert result.returncode == 0, result.stderr
    out.write_text(result.stdout)
    yield out


@pytest.mark.slow
def test_kustomize_base_builds_and_validates(kustomize_build: Path) -> None:
    docs = load_yaml_docs(kustomize_build)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "PrometheusRule",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )
    assert not any(d["kind"] == "Secret" for d in docs), "the base must not ship a Secret"
    _kubernetes_validate(kustomize_build)
    # The generated ConfigMap (name with a content hash) is what the Deployment mounts.
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == cm["metadata"]["name"]
    assert re.fullmatch(r"dialnexa-watchdog-config-[a-z0-9]{10}", cm["metadata"]["name"])
    assert cm["data"]["config.yaml"] == (K8S_CORE / "config.yaml").read_text()


def test_kustomize_core_builds_without_operator_kinds() -> None:
    kubectl = tool("kubectl")
    result = run(kubectl, "kustomize", K8S_CORE)
    assert result.returncode == 0, result.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(result.stdout) if d}
    assert "ServiceMonitor" not in kinds and "PrometheusRule" not in kinds
    assert {"Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"} <= kinds


def test_kustomization_references_every_manifest() -> None:
    """Without kubectl: every referenced file exists inside its kustomization root, and
    every manifest is referenced (except the Secret example)."""
    referenced: set[Path] = set()
    for kfile in (
        K8S / "kustomization.yaml",
        K8S_CORE / "kustomization.yaml",
        K8S_HA / "kustomization.yaml",
    ):
        k = yaml.safe_load(kfile.read_text())
        for res in k.get("resources", []):
            path = (kfile.parent / res).resolve()
            assert path.exists(), f"{kfile}: {res} does not exist"
            if path.is_dir():  # another kustomization (the HA overlay builds on ../core)
                assert (path / "kustomization.yaml").is_file()
                continue
            assert path.is_relative_to(kfile.parent.resolve())
            referenced.add(path)
        for gen in k.get("configMapGenerator", []):
            for f in gen.get("files", []):
                path = (kfile.parent / f.split("=")[-1]).resolve()
                assert path.is_file() and path.is_relative_to(kfile.parent.resolve())
    unreferenced = {p.resolve() for p in manifests()} - referenced
    assert unreferenced == {(K8S / "secret.example.yaml").resolve()}


@pytest.mark.slow
def test_the_ha_overlay_runs_two_replicas_on_postgresql(tmp_path: Path) -> None:
    """deploy/kubernetes/ha: 2 replicas, RollingUpdate, a PDB, anti-affinity, the state URL
    and password from files of the Secret, no state volume; validates strictly; the base
    (one replica, Recreate, SQLite on a PVC) is unchanged (test_deployment_policy)."""
    kubectl = tool("kubectl")
    result = run(kubectl, "kustomize", K8S_HA)
    assert result.returncode == 0, result.stderr
    rendered = tmp_path / "ha.yaml"
    rendered.write_text(result.stdout)
    docs = load_yaml_docs(rendered)
    kinds = sorted(d["kind"] for d in docs)
    assert "PersistentVolumeClaim" not in kinds and "PodDisruptionBudget" in kinds
    _kubernetes_validate(rendered)
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    spec, pod = deploy["spec"], deploy["spec"]["template"]["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = pod.get("labels") or deploy["spec"]["template"]["metadata"]["labels"]
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    selector = term[0]["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert selector.items() <= labels.items()
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "persistentVolumeClaim" not in volumes["state"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    for e in env.values():
        assert "valueFrom" not in e, f"{e['name']}: a secret in an environment variable"
    mount = next(m for m in c["volumeMounts"] if m["name"] == "secrets")["mountPath"]
    assert env["WATCHDOG_STATE__URL_FILE"]["value"] == f"{mount}/state-url"
    assert env["WATCHDOG_STATE__PASSWORD_FILE"]["value"] == f"{mount}/postgres-password"
    example = (K8S / "secret.example.yaml").read_text()
    assert "# state-url:" in example and "# postgres-password:" in example


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WATCHDOG_") or name in (
            "DIALNEXA_API_KEY",
            "SLACK_BOT_TOKEN",
            "SLACK_WEBHOOK_URL",
            "CREDENTIALS_DIRECTORY",
        ):
            monkeypatch.delenv(name, raising=False)


def test_kubernetes_config_validates_with_the_daemon_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch)
    deploy = manifest("Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    # The Deployment's key-file variable, pointed at a stand-in for the mounted Secret.
    key_file = tmp_path / "dialnexa-api-key"
    key_file.write_text("sk-test-not-a-real-key\n")
    assert env["WATCHDOG_DIALNEXA__API_KEY_FILE"]["value"].endswith("/dialnexa-api-key")
    monkeypatch.setenv("WATCHDOG_DIALNEXA__API_KEY_FILE", str(key_file))
    settings = load_settings(K8S_CORE / "config.yaml")
    assert settings.dialnexa.api_key is not None
    assert settings.dialnexa.api_key.get_secret_value() == "sk-test-not-a-real-key"
    # The YAML's dialnexa section still applies alongside the env variable.
    assert settings.dialnexa.base_url == "https://api.dialnexa.com/v1"

    # Paths and ports line up with the Deployment.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert settings.state.path.parent == Path(mounts["state"])
    assert container["args"] == ["--config", f"{mounts['config']}/config.yaml"]
    assert env["WATCHDOG_DIALNEXA__API_KEY_FILE"]["value"].startswith(mounts["secrets"] + "/")
    port = settings.metrics.host_port[1]
    assert container["ports"][0]["containerPort"] == port
    assert settings.metrics.host_port[0] == "0.0.0.0"


def test_kubernetes_config_is_rejected_when_broken(tmp_path: Path) -> None:
    """The loader test above is not vacuous: a typo in the same file fails it."""
    broken = tmp_path / "config.yaml"
    broken.write_text(
        (K8S_CORE / "config.yaml").read_text().replace("interval: 30s", "intervall: 30s")
    )
    with pytest.raises(Exception, match=r"poll\.intervall"):
        load_settings(broken)


def test_deployment_policy() -> None:
    deploy = manifest("Deployment")
    spec = deploy["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    # RSS target at 10,000 agents is 200 MB: the limit leaves a margin, not a multiple.
    assert c["resources"]["limits"]["memory"] == "320Mi"
    volumes = {v["name"]: v for v in pod["volumes"]}
    pvc = manifest("PersistentVolumeClaim")
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    secret = manifest("Secret")
    assert volumes["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
    # Every secret key the Deployment reads exists in the example.
    keys = set(secret["stringData"]) | {
        line.split(":")[0].strip("# ")
        for line in (K8S / "secret.example.yaml").read_text().splitlines()
        if line.strip().startswith("# slack-")
    }
    # Secrets reach the daemon as files of the secret volume, never as environment variables
    # (which leak into child processes and crash reports).
    for e in c["env"]:
        assert "valueFrom" not in e, f"{e['name']}: a secret in an environment variable"
    assert {"dialnexa-api-key", "slack-bot-token", "slack-webhook-url"} <= keys
    assert all("REPLACE" in v for v in secret["stringData"].values()), "never a real secret"


def test_slack_secrets_are_read_from_the_mounted_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.yaml's commented Slack lines, once uncommented as it says, read the token (or
    webhook URL) from the files the secret volume mounts, named as in secret.example.yaml."""
    _clean_env(monkeypatch)
    container = manifest("Deployment")["spec"]["template"]["spec"]["containers"][0]
    secrets_dir = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["secrets"]
    text = (K8S_CORE / "config.yaml").read_text()
    lines = text.splitlines()
    for mode, key, secret in (
        ("bot", "token_file", "slack-bot-token"),
        ("webhook", "webhook_url_file", "slack-webhook-url"),
    ):
        wanted = f"{key}: {secrets_dir}/{secret}"
        assert any(line.lstrip("# ").startswith(wanted) for line in lines), wanted
        (tmp_path / secret).write_text(
            "xoxb-test-not-a-real-token\n" if mode == "bot" else "https://hooks.example/x\n"
        )
        section = f"slack:\n  {key}: {tmp_path / secret}\n"
        if mode == "bot":
            channel = next(x for x in lines if x.lstrip("# ").startswith("channel:"))
            section += f"  {channel.lstrip('# ')}\n"
        config = tmp_path / f"{mode}.yaml"
        config.write_text(text + section)
        monkeypatch.setenv("WATCHDOG_STATE__PATH", str(tmp_path / "state.sqlite3"))
        settings = load_settings(config)
        assert settings.slack.mode == mode
        if mode == "bot":
            assert settings.slack.token is not None
            assert settings.slack.token.get_secret_value() == "xoxb-test-not-a-real-token"
            assert settings.slack.channel is not None
            assert re.fullmatch(r"C[A-Z0-9]{8,}", settings.slack.channel), "a channel id"


def kustomize_namespace() -> str:
    namespaces = {
        yaml.safe_load(k.read_text()).get("namespace")
        for k in (K8S / "kustomization.yaml", K8S_CORE / "kustomization.yaml")
    }
    assert len(namespaces) == 1 and None not in namespaces, namespaces
    return str(namespaces.pop())


def test_every_manifest_names_the_namespace() -> None:
    """kubectl apply -f on one file lands where kubectl apply -k puts everything."""
    ns = kustomize_namespace()
    for path in manifests():
        for doc in load_yaml_docs(path):
            assert doc["metadata"].get("namespace") == ns, f"{path.name}: {doc['kind']}"


def test_kustomize_build_puts_everything_in_the_namespace(kustomize_build: Path) -> None:
    ns = kustomize_namespace()
    for doc in load_yaml_docs(kustomize_build):
        assert doc["metadata"]["namespace"] == ns, doc["kind"]


def test_service_and_servicemonitor_select_the_pod() -> None:
    deploy = manifest("Deployment")
    service = manifest("Service")
    sm = manifest("ServiceMonitor")
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert sm["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for ep in sm["spec"]["endpoints"]:
        assert ep["port"] in port_names
        assert ep["path"] == "/metrics"
    # The job label the rules select on is the Service's name (ServiceMonitor default).
    assert service["metadata"]["name"] == "dialnexa-watchdog"
    assert 'job="dialnexa-watchdog"' in RULES.read_text()


# Strict schemas for the Prometheus Operator kinds, covering the fields a ServiceMonitor and
# a PrometheusRule may have that we would plausibly use. Field names, types and the duration
# pattern follow the operator's CRDs (monitoring.coreos.com/v1); unknown fields are errors,
# as with kubectl's strict field validation.
_DURATION = {
    "type": "string",
    "pattern": "^(0|" + "".join(f"(([0-9]+){u})?" for u in "ywdhms") + "(([0-9]+)ms)?)$",
}
_STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": _STRMAP,
        "annotations": _STRMAP,
    },
    "additionalProperties": False,
}
_LABEL_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": _STRMAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"type": "string"},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
SERVICEMONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                    "additionalProperties": False,
                },
                "jobLabel": {"type": "string"},
                "targetLabels": {"type": "array", "items": {"type": "string"}},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "sampleLimit": {"type": "integer", "minimum": 0},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                            "honorTimestamps": {"type": "boolean"},
                            "params": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                },
                            },
                            "relabelings": {"type": "array", "items": {"type": "object"}},
                            "metricRelabelings": {"type": "array", "items": {"type": "object"}},
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
PROMETHEUSRULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "limit": {"type": "integer"},
                            "labels": _STRMAP,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "properties": {
                                        "record": {"type": "string"},
                                        "alert": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": _DURATION,
                                        "keep_firing_for": _DURATION,
                                        "labels": _STRMAP,
                                        "annotations": _STRMAP,
                                    },
                                    "additionalProperties": False,
                                    "oneOf": [
                                        {"required": ["record"], "not": {"required": ["alert"]}},
                                        {"required": ["alert"], "not": {"required": ["record"]}},
                                    ],
                                },
                            },
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}


def test_servicemonitor_matches_the_operator_schema() -> None:
    jsonschema().validate(manifest("ServiceMonitor"), SERVICEMONITOR_SCHEMA)


def test_prometheusrule_matches_the_operator_schema() -> None:
    jsonschema().validate(manifest("PrometheusRule"), PROMETHEUSRULE_SCHEMA)


def test_operator_schemas_reject_unknown_fields() -> None:
    """The strict schemas are not vacuous: a misspelt field fails."""
    js = jsonschema()
    sm = manifest("ServiceMonitor")
    sm["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(js.ValidationError, match="intervall"):
        js.validate(sm, SERVICEMONITOR_SCHEMA)
    pr = manifest("PrometheusRule")
    pr["spec"]["groups"][1]["rules"][0]["for"] = "5 minutes"
    with pytest.raises(js.ValidationError):
        js.validate(pr, PROMETHEUSRULE_SCHEMA)


def test_prometheusrule_has_the_same_groups_as_rules_yml() -> None:
    rules = yaml.safe_load(RULES.read_text())
    pr = manifest("PrometheusRule")
    assert pr["spec"]["groups"] == rules["groups"], (
        "deploy/kubernetes/prometheusrule.yaml differs from deploy/prometheus/rules.yml: "
        "copy the groups of rules.yml into spec.groups"
    )


# ---- Prometheus rules ------------------------------------------------------------------------
def test_promtool_check_rules() -> None:
    promtool = tool("promtool")
    result = run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules_of_the_prometheusrule(tmp_path: Path) -> None:
    promtool = tool("promtool")
    extracted = tmp_path / "prometheusrule-groups.yml"
    extracted.write_text(yaml.safe_dump({"groups": manifest("PrometheusRule")["spec"]["groups"]}))
    result = run(promtool, "check", "rules", extracted)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_promtool_test_rules() -> None:
    promtool = tool("promtool")
    result = run(promtool, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tested = {
        t["alertname"]
        for case in tests["tests"]
        for t in case.get("alert_rule_test", [])
        if t.get("exp_alerts")
    }
    assert alerts - tested == set(), "alerts never shown firing in tests.yml"


def recorded_names() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def check_metric_names(expr: str, where: str) -> set[str]:
    """The daemon's metric names used in ``expr``; each must exist, with the labels its
    matchers name. Recorded names (``level:metric:operations``) must be rules.yml's."""
    used = set(re.findall(r"(?<![\w:])(dialnexa_[a-z_]+)(?![\w:])", expr))
    for name in used:
        assert name in METRICS, f"{where}: {name} is not one of the daemon's metrics"
    for name, matchers in re.findall(r"(?<![\w:])(dialnexa_[a-z_]+)\{([^}]*)\}", expr):
        for label in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers):
            allowed = METRICS[name] | TARGET_LABELS
            assert label in allowed, f"{where}: {name} has no label {label!r}"
    for name in re.findall(r"(?<![\w:])([a-z_]+:[\w:]+)", expr):
        assert name in recorded_names(), f"{where}: {name} is not recorded in rules.yml"
    return used


@pytest.mark.slow
def test_rules_use_only_the_daemons_metrics() -> None:
    rules = yaml.safe_load(RULES.read_text())
    for g in rules["groups"]:
        for r in g["rules"]:
            name = r.get("record") or r.get("alert")
            check_metric_names(r["expr"], f"rules.yml {name}")


# ---- Dockerfile ------------------------------------------------------------------------------
def test_hadolint() -> None:
    hadolint = tool("hadolint")
    result = run(hadolint, "--no-color", DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_contract() -> None:
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage"
    assert re.search(r"^FROM python:3\.11-slim", text, re.M), "a slim Python base"
    assert 'ENTRYPOINT ["dialnexa-watchdog", "run"]' in text
    assert "/etc/dialnexa-watchdog/config.yaml" in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0")), "runs as a non-root user"
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    # Every COPY source exists in the repository (the build context is its root).
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _dest = line.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"


# ---- Grafana dashboard -----------------------------------------------------------------------
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_targets() -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every query of every panel, rows' nested panels included."""
    out = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                out.append((p["title"], t))

    walk(dashboard()["panels"])
    return out


def substitute(expr: str, values: dict[str, str] = GRAFANA_VARS) -> str:
    # Longest names first, so $__rate_interval is not read as $__range + "te_interval".
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name[1:] + "}", values[name]).replace(name, values[name])
    assert "$" not in expr, f"unknown variable left in {expr!r}"
    return expr


def test_dashboard_is_valid_and_every_panel_queries_the_daemon() -> None:
    d = dashboard()
    assert d["uid"] == "dialnexa-watchdog" and d["title"]
    variables = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "job", "window", "agent_id", "min_calls"} <= variables
    panels = [p for p in d["panels"] if p["type"] != "row"]
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows == ["Workspace overview", "Agent drill-down: $agent_id", "Alerts", "Daemon health"]
    for p in panels:
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        assert p["datasource"]["uid"] == "${datasource}"
        for t in p["targets"]:
            assert t.get("expr"), f"panel {p['title']!r}: a target without a PromQL expr"
            used = check_metric_names(t["expr"], f"panel {p['title']!r}")
            assert used, f"panel {p['title']!r}: {t['expr']!r} uses none of the daemon's metrics"
    # Every variable an expression uses is defined (or is Grafana's built-in).
    for title, t in dashboard_targets():
        for var in re.findall(r"\$\{?(\w+)", t["expr"]):
            assert var in variables or var.startswith("__"), f"{title}: ${var} undefined"
    # Grid: no two panels overlap.
    cells: set[tuple[int, int]] = set()
    for p in d["panels"]:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']!r} overlaps another"
                assert x < 24
                cells.add((x, y))
    # Every panel of the four areas is there.
    titles = " | ".join(p["title"] for p in panels)
    for needle in ("calls per minute", "Worst agents by failed", "Alert states", "latency"):
        assert needle.lower() in titles.lower(), needle


def test_dashboard_exprs_parse_with_promtool(tmp_path: Path) -> None:
    """Each expression, with Grafana's variables substituted, parsed by Prometheus's parser
    (as a recording rule, so no server is needed). The real-server test runs them too."""
    promtool = tool("promtool")
    rules = [
        {"record": f"dashboard:expr_{i}:check", "expr": substitute(t["expr"])}
        for i, (_, t) in enumerate(dashboard_targets())
    ]
    variables = [
        v["definition"]
        for v in dashboard()["templating"]["list"]
        if v.get("definition", "").startswith("label_values(")
    ]
    for i, definition in enumerate(variables):
        metric, label = label_values_query(definition)
        rules.append(
            {"record": f"dashboard:var_{i}:check", "expr": f"group by ({label}) ({metric})"}
        )
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def label_values_query(definition: str) -> tuple[str, str]:
    """``label_values(metric{...}, label)`` -> (selector with variables substituted, label)."""
    m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", definition.strip())
    assert m, definition
    return substitute(m.group(1)), m.group(2)


def test_every_query_filters_by_the_instance_variable() -> None:
    """Two daemons scraped under one job (staging and production, say) are told apart."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    instance = variables["instance"]
    assert instance["type"] == "query" and instance.get("includeAll")
    metric, label = label_values_query(instance["definition"])
    assert label == "instance" and metric.startswith("dialnexa_up")
    selectors = [(title, t["expr"]) for title, t in dashboard_targets()]
    selectors += [
        (f"variable {v['name']}", v["definition"])
        for v in variables.values()
        if v.get("definition", "").startswith("label_values(")
        and v["name"] not in ("job",)
        and v["name"] != "instance"
    ]
    for where, expr in selectors:
        found = re.findall(r"(?<![\w:])(dialnexa_[a-z_]+)(\{[^}]*\})?", expr)
        assert found, where
        for name, matchers in found:
            assert 'instance=~"$instance"' in matchers, f"{where}: {name} not filtered by instance"


# ---- runbooks and annotations ------------------------------------------------------------------
def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load(RULES.read_text())
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def readme_runbook_anchors() -> dict[str, str]:
    """Anchor -> that heading's text, for the headings of the README's Runbook section."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^## Runbook\n(.*?)(?=^## )", text, re.M | re.S)
    assert m, 'the README has no "## Runbook" section followed by another section'
    out: dict[str, str] = {}
    body = m.group(1)
    parts = re.split(r"^### (.+)$", body, flags=re.M)
    for heading, section in zip(parts[1::2], parts[2::2], strict=True):
        out[github_anchor(heading)] = section
    return out


def test_every_alert_has_a_runbook_in_the_readme() -> None:
    anchors = readme_runbook_anchors()
    bases = set()
    for r in alert_rules():
        url = r["annotations"].get("runbook_url", "")
        base, _, anchor = url.partition("#")
        assert base.startswith("https://") and base.endswith("/README.md"), url
        bases.add(base)
        assert anchor == github_anchor(r["alert"]), f"{r['alert']}: anchor {anchor!r}"
        section = anchors.get(anchor)
        assert section is not None, f"{r['alert']}: no '### {r['alert']}' under ## Runbook"
        for part in ("Meaning", "Check", "Fix"):
            assert f"**{part}**" in section, f"{r['alert']}: the runbook lacks **{part}**"
    assert len(bases) == 1, f"one base URL for every runbook, got {bases}"
    # and no runbook for an alert that does not exist
    assert set(anchors) == {github_anchor(r["alert"]) for r in alert_rules()}


def test_summaries_are_fixed_capitalised_sentences() -> None:
    """Prometheus conventions: the summary is the same for every instance (it groups and
    reads well in a notification title); labels and values go to the description."""
    for r in alert_rules():
        summary, description = r["annotations"]["summary"], r["annotations"]["description"]
        assert "{{" not in summary and "$" not in summary, f"{r['alert']}: templated summary"
        assert summary[0].isupper() and summary.endswith("."), f"{r['alert']}: {summary!r}"
        assert len(summary) <= 80, f"{r['alert']}: summary longer than a line"
        assert description.strip(), r["alert"]


# ---- the default port ---------------------------------------------------------------------------
def test_one_default_port_everywhere() -> None:
    """metrics.listen's default, the example, the Kubernetes config and manifests and the
    Dockerfile agree; 9811 (registered to zrepl) is gone."""
    from dialnexa_watchdog.config import DEFAULT_PORT, MetricsSettings

    assert DEFAULT_PORT != 9811
    assert MetricsSettings().host_port == ("0.0.0.0", DEFAULT_PORT)
    ports = {
        "example": load_settings(
            ROOT / "config" / "watchdog.example.yaml", environ={}
        ).metrics.host_port[1],
        "k8s config": load_settings(K8S_CORE / "config.yaml", environ={}).metrics.host_port[1],
        "containerPort": manifest("Deployment")["spec"]["template"]["spec"]["containers"][0][
            "ports"
        ][0]["containerPort"],
        "Service": manifest("Service")["spec"]["ports"][0]["port"],
        "NetworkPolicy": manifest("NetworkPolicy")["spec"]["ingress"][0]["ports"][0]["port"],
        "EXPOSE": int(re.findall(r"^EXPOSE (\d+)", DOCKERFILE.read_text(), re.M)[0]),
    }
    assert set(ports.values()) == {DEFAULT_PORT}, ports
    for path in [*DEPLOY.rglob("*"), ROOT / "config" / "watchdog.example.yaml"]:
        if path.is_file():
            assert not re.search(r"(?<!\d)9811", path.read_text()), path
    # The README names the old port only where it says why it changed.
    readme = (ROOT / "README.md").read_text()
    readme = re.sub(r"\*\*Why port 10811\.\*\*.*?\n\n", "", readme, flags=re.S)
    assert "zrepl" not in readme and not re.search(r"(?<!\d)9811(?!\d)", readme)


def test_dockerfile_healthcheck_follows_metrics_listen() -> None:
    """The HEALTHCHECK asks the CLI, which reads the same config as run (no port written in
    the Dockerfile), and run takes its config from $WATCHDOG_CONFIG as healthcheck does."""
    text = DOCKERFILE.read_text()
    (check,) = re.findall(r"^HEALTHCHECK .*?\n(?:\s+.*\n)*?\s*CMD (\[.*\])", text, re.M)
    assert json.loads(check)[:2] == ["dialnexa-watchdog", "healthcheck"]
    assert not re.search(r"\b\d{4,5}\b", check), check
    assert "--config" not in text.split("ENTRYPOINT", 1)[1], "run and healthcheck share a config"
    assert re.search(r"^\s+WATCHDOG_CONFIG=/etc/dialnexa-watchdog/config.yaml", text, re.M)


# ---- the shipped rules -----------------------------------------------------------------------
def test_kubernetes_config_ships_the_examples_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    example = load_settings(ROOT / "config" / "watchdog.example.yaml")
    k8s = load_settings(K8S_CORE / "config.yaml")
    assert [r.model_dump() for r in k8s.rules] == [r.model_dump() for r in example.rules]
    assert len(k8s.rules) >= 4


# ---- packaging ------------------------------------------------------------------------------
def test_license_and_one_version_source() -> None:
    import tomllib
    from importlib.metadata import metadata, version

    import dialnexa_watchdog

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert "version" not in project and "version" in project["dynamic"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert version("dialnexa-watchdog") == dialnexa_watchdog.__version__
    assert metadata("dialnexa-watchdog")["License-Expression"] == "Apache-2.0"
    # the image tag the manifests and README use is the package version
    images = yaml.safe_load((K8S_CORE / "kustomization.yaml").read_text())["images"]
    assert images[0]["newTag"] == dialnexa_watchdog.__version__
    assert (ROOT / "watchdog" / "py.typed").is_file()
