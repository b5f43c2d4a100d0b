"""Settings refuse typos and bad values by name; every config file mloop reads refuses unknown keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mloop.errors import InvalidInput
from mloop.settings import VARIABLES, Settings
from mloop.workspace import Workspace


@pytest.mark.parametrize(
    ("variable", "nearest"),
    [("MLOOP_LOG_TRANSPRT", "MLOOP_LOG_TRANSPORT"), ("MLOOP_DATABASE", "MLOOP_DATABASE_URL"), ("mloop_hom", "MLOOP_HOME")],
)
def test_an_unknown_variable_is_refused_with_the_nearest_setting(monkeypatch: pytest.MonkeyPatch, variable: str, nearest: str) -> None:
    monkeypatch.setenv(variable, "redis://127.0.0.1:6379/0")
    with pytest.raises(InvalidInput, match=f"Unknown setting {variable}: did you mean {nearest}\\?") as info:
        Settings()
    assert info.value.field == variable


def test_what_kubernetes_injects_for_a_service_named_mloop_is_not_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("MLOOP_SERVICE_HOST", "10.0.0.1"), ("MLOOP_SERVICE_PORT", "8080"), ("MLOOP_SERVICE_PORT_HTTP", "8080"),
                        ("MLOOP_PORT", "tcp://10.0.0.1:8080"), ("MLOOP_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
                        ("MLOOP_PORT_8080_TCP_ADDR", "10.0.0.1"), ("MLOOP_PORT_8080_TCP_PROTO", "tcp"), ("MLOOP_PORT_8080_TCP_PORT", "8080")):
        monkeypatch.setenv(name, value)
    assert Settings().auth is True
    monkeypatch.setenv("MLOOP_PORTS", "8080")  # close, but not what Kubernetes writes
    with pytest.raises(InvalidInput, match="Unknown setting MLOOP_PORTS"):
        Settings()


def test_a_name_like_no_setting_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_ZZZ", "1")
    with pytest.raises(InvalidInput, match="no setting has a similar name") as info:
        Workspace.open()
    assert "MLOOP_HOME" in info.value.message  # the valid ones are listed


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [("MLOOP_MONITOR_INTERVAL", "-1", "greater than or equal to 0"), ("MLOOP_LOG_FLUSH_INTERVAL", "soon", "valid number"),
     ("MLOOP_AUTH", "maybe", "valid boolean"), ("MLOOP_JWT_LEEWAY", "61", "less than or equal to 60"),
     ("MLOOP_MONITOR_INTERVAL", "inf", "finite number"), ("MLOOP_EVENT_POLL_INTERVAL", "nan", "finite number")],
)
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, rule: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidInput, match=rule) as info:
        Settings()
    assert info.value.field == variable and info.value.message.startswith(f"{variable}: ")


def test_a_bad_value_given_in_python_names_the_argument() -> None:
    with pytest.raises(InvalidInput) as info:
        Settings(log_flush_interval=0)
    assert info.value.field == "log_flush_interval"


def test_settings_cross_a_process_boundary_only_as_their_own_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, auth=False, log_flush_interval=0.25, database_url="sqlite:///x.db")
    env = settings.environment()
    assert set(env) <= set(VARIABLES) and env["MLOOP_AUTH"] == "false" and env["MLOOP_LOG_FLUSH_INTERVAL"] == "0.25"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings() == settings


def test_every_variable_is_documented() -> None:
    doc = Settings.__doc__ or ""
    assert [v for v in VARIABLES if f"``{v}``" not in doc] == []


def test_the_workspace_marker_refuses_unknown_keys_and_formats(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    marker = ws.root / "workspace.json"
    marker.write_text(json.dumps({"format": 1, "fromat": 2}))
    with pytest.raises(InvalidInput, match="unknown key 'fromat'") as info:
        Workspace.open(ws.root)
    assert info.value.field == "workspace.json.fromat"
    marker.write_text(json.dumps({"format": 99}))
    with pytest.raises(InvalidInput, match="format 99 is not one this mloop reads"):
        Workspace.open(ws.root)
    marker.write_text("{not json")
    with pytest.raises(InvalidInput, match="not readable JSON"):
        Workspace.open(ws.root)


def test_a_monitor_file_refuses_unknown_top_level_keys(tmp_path: Path) -> None:
    from mloop.monitoring import load_monitors

    path = tmp_path / "monitors.yaml"
    path.write_text("monitors:\n  - name: a\n    deployment: d\n    window: {kind: streaming}\n    concept: {detector: adwin}\nmonitor_interval: 5\n")
    with pytest.raises(InvalidInput, match="unknown key 'monitor_interval'") as info:
        load_monitors(path)
    assert info.value.field == "monitor_interval"
