"""``rumguard local``: the embedded AWS served over HTTP, and the real app running against it.

In process: ``LocalStack`` on a free port, the app (through Chalice's test client) configured only by the
environment the stack exports, every AWS call going over HTTP to the server. The README's session itself
(``rumguard local`` and ``chalice local`` as processes, the CLI and plain HTTP against them) is in
test_api_cli.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from chalice.test import Client
from chalice_app.app import api, app
from tests.api.support import CHALICE_DIR

from rumguard.local.stack import UNSET, LocalStack, write_env_file
from rumguard.settings import ApiSettings


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    """The local stack on a free port."""
    with LocalStack(port=0, guests=2) as served:
        yield served


def test_the_exported_environment_configures_the_api(stack: LocalStack) -> None:
    environment = stack.environment()
    assert ApiSettings.env_names() - {
        "BLOCK_BASE_SECONDS",
        "BLOCK_MAX_SECONDS",
        "BLOCK_JITTER",
        "GRACE_SECONDS",
        "MANUAL_BLOCK_SECONDS",
        "SAFETY_VALVE_LIMIT",
        "LOCKDOWN_ON_STORM",
    } <= set(environment)
    settings = ApiSettings.from_environ(environment)
    assert settings.identity_pool_id == environment["IDENTITY_POOL_ID"]
    assert environment["AWS_ENDPOINT_URL"] == stack.endpoint_url
    assert len(environment["RUMGUARD_SAMPLE_GUESTS"].split()) == 2


def test_the_export_lines_are_what_a_shell_gets(stack: LocalStack, tmp_path: Path) -> None:
    env_file = tmp_path / "local.env"
    write_env_file(env_file, stack.exports())
    script = 'source "$1" && for n in "${@:2}"; do printf "%s=%s\\n" "$n" "${!n-unset}"; done'
    shell = subprocess.run(
        ["bash", "-c", script, "bash", str(env_file), *stack.environment(), *UNSET],
        env={"PATH": "/usr/bin:/bin", "AWS_PROFILE": "real", "AWS_SESSION_TOKEN": "real"},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    got = dict(line.split("=", 1) for line in shell.stdout.splitlines())
    assert got == {**stack.environment(), **dict.fromkeys(UNSET, "unset")}


def test_the_app_runs_against_the_served_stack(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)
    api.reset()
    try:
        client = Client(app, project_dir=str(CHALICE_DIR))
        guest = stack.sample_guests[0]
        reply = client.http.put(
            f"/blocks/{guest}", headers={"Content-Type": "application/json"}, body=b'{"reason": "demo"}'
        )
        assert reply.status_code == 201, reply.body
        monitors = json.loads(client.http.get("/monitors").body)
        assert monitors["unattributedActiveBlocks"] == 1
        refused = client.http.put(
            f"/blocks/{stack.sample_signed_in}", headers={"Content-Type": "application/json"}, body=b'{"reason": "x"}'
        )
        assert refused.status_code == 409
        guard = api.service().guard
        assert guard.bus.client.meta.endpoint_url == stack.endpoint_url  # type: ignore[attr-defined]
    finally:
        api.reset()

    # What the API did, read back over HTTP from the server.
    iam = boto3.client("iam", endpoint_url=stack.endpoint_url, region_name=stack.aws.region)
    document = iam.get_role_policy(RoleName=stack.aws.guest_role_name, PolicyName="rumguard-deny-blocks")
    assert guest in json.dumps(document["PolicyDocument"])
    cognito = boto3.client("cognito-identity", endpoint_url=stack.endpoint_url, region_name=stack.aws.region)
    with pytest.raises(cognito.exceptions.ResourceNotFoundException):
        cognito.describe_identity(IdentityId=guest)
    assert cognito.describe_identity(IdentityId=stack.sample_signed_in)["Logins"]
