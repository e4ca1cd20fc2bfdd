"""Joining a Ray cluster needs token authentication, unless --ray-insecure (issue #14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from vidpipe.errors import UsageError
from vidpipe.pipeline.ray_pool import check_ray_auth, ray_auth_problem

NO_RAY_AUTH = {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "", "RAY_AUTH_TOKEN_PATH": ""}


def test_token_sources_in_rays_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert "no Ray authentication token" in ray_auth_problem({}, home)
    assert ray_auth_problem({"RAY_AUTH_TOKEN": "s3cret"}, home) is None
    assert ray_auth_problem({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "s3cret"}, home) is None
    token_file = tmp_path / "token"
    assert ray_auth_problem({"RAY_AUTH_TOKEN_PATH": str(token_file)}, home)  # named file missing
    token_file.write_text("s3cret\n")
    assert ray_auth_problem({"RAY_AUTH_TOKEN_PATH": str(token_file)}, home) is None
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("  \n")
    assert ray_auth_problem({}, home)  # an empty default token file is no token
    (home / ".ray" / "auth_token").write_text("s3cret")
    assert ray_auth_problem({}, home) is None  # Ray turns auth on by itself when it finds a token
    # An explicit "disabled" wins over any token: the driver would not authenticate.
    assert "disabled" in ray_auth_problem({"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "s3cret"}, home)
    assert ray_auth_problem({"RAY_AUTH_MODE": "", "RAY_AUTH_TOKEN": "s3cret"}, home)  # set but empty: off, as Ray reads it


def test_check_refuses_an_unauthenticated_cluster_unless_insecure(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for key in NO_RAY_AUTH:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(UsageError, match="--ray-insecure"):
        check_ray_auth("10.0.0.1:6379")
    check_ray_auth("10.0.0.1:6379", insecure=True)
    check_ray_auth(None)  # a private local instance is not a cluster others can reach
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "s3cret")
    check_ray_auth("10.0.0.1:6379")


def test_cli_refuses_a_cluster_address_without_auth_before_the_case(tmp_path: Path, sample_media: Path) -> None:
    pytest.importorskip("ray")
    env = {**NO_RAY_AUTH, "HOME": str(tmp_path / "home")}
    proc = run_cli("ingest", str(sample_media), "--case", str(tmp_path / "case"), "--engine", "ray",
                   "--ray-address", "127.0.0.1:1", "--json", check=False, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--ray-insecure" in proc.stderr and "RAY_AUTH_MODE=token" in proc.stderr
    assert not (tmp_path / "case").exists()  # refused before anything was created
    proc = run_cli("ingest", str(sample_media), "--case", str(tmp_path / "case"), "--engine", "ray",
                   "--ray-insecure", check=False, env=env)
    assert proc.returncode == 2 and "--ray-insecure needs --ray-address" in proc.stderr
