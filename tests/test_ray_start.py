"""Starting and joining Ray (runtime/launch.py): a failed start is tried once more, then ends in one line; a local
cluster gets a token file only its owner can read; RAY_AUTH_MODE=disabled is obeyed with a warning."""

from __future__ import annotations

import stat

import pytest
import ray

from raympl.errors import RayStartError
from raympl.runtime import launch


def failing(times: int, calls: list):
    def init(*args, **kwargs):
        calls.append(kwargs.get("address", args[0] if args else None))
        if len(calls) <= times:
            raise Exception("The current node timed out during startup. This could happen because ...")
    return init


def test_a_start_that_times_out_is_tried_once_more(monkeypatch):
    calls, lines = [], []
    monkeypatch.setattr(ray, "init", failing(1, calls))
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    launch.start_ray(None, lines.append)
    assert calls == ["local", "local"]
    assert lines == ["warning: could not start a local Ray cluster (The current node timed out during startup. "
                     "This could happen because ...); trying once more"]


def test_a_start_that_fails_twice_ends_in_one_line(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "init", failing(2, calls))
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with pytest.raises(RayStartError) as raised:
        launch.start_ray("10.0.0.9:6379", lambda line: None)
    assert str(raised.value) == ("could not join the Ray cluster at 10.0.0.9:6379 (tried twice): The current node "
                                 "timed out during startup. This could happen because ...")
    assert "\n" not in str(raised.value) and len(calls) == 2


def test_a_local_cluster_gets_an_owner_only_token(monkeypatch, tmp_path):
    lines = []
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "ray" / "auth_token"))
    launch.local_token(lines.append)
    token = tmp_path / "ray" / "auth_token"
    assert len(token.read_text()) == 64 and stat.S_IMODE(token.stat().st_mode) == 0o600 and lines == []
    before = token.read_text()
    launch.local_token(lines.append)  # an existing token is kept
    assert token.read_text() == before


def test_auth_turned_off_by_the_user_is_obeyed_with_a_warning(monkeypatch, tmp_path):
    lines = []
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "auth_token"))
    launch.local_token(lines.append)
    assert not (tmp_path / "auth_token").exists()
    assert lines == ["warning: RAY_AUTH_MODE=disabled: this run's local Ray cluster accepts anyone on this machine "
                     "who reaches its ports (docs/security.md)"]
