"""Fixtures of the contract tests: template.yaml as the embedded AWS reads it, each function's effective
properties (SAM ``Globals`` applied), and the template after the SAM transform (what CloudFormation deploys),
so the tests hold the template and the code to one another.

A test that takes ``function_id`` runs once per ``AWS::Serverless::Function`` in the template: a new function
is checked without editing the tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from rumguard.local.template import load_template, repo_root

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
#: Credentials and region for boto3 clients created at import time; moto answers every call.
FAKE_AWS_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_TRACE_DISABLED": "1",
}


def function_ids(template: dict[str, Any]) -> list[str]:
    """Logical ids of the template's serverless functions."""
    return sorted(
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == SERVERLESS_FUNCTION
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tests that take ``function_id`` once per function of template.yaml."""
    if "function_id" in metafunc.fixturenames:
        ids = function_ids(load_template())
        metafunc.parametrize("function_id", ids, ids=ids)


@pytest.fixture(scope="session")
def root() -> Path:
    """The checkout: template.yaml, pyproject.toml, constraints.txt, lambdas/."""
    return repo_root()


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml, read the way the embedded AWS reads it (short-form tags in their long forms)."""
    return load_template()


@pytest.fixture(scope="session")
def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each serverless function's properties with ``Globals.Function`` applied as SAM applies them: the
    function's own value wins, and environment variables are merged."""
    globals_ = template.get("Globals", {}).get("Function", {})
    effective: dict[str, dict[str, Any]] = {}
    for logical_id in function_ids(template):
        own = template["Resources"][logical_id].get("Properties", {})
        properties = {**globals_, **own}
        variables = {
            **globals_.get("Environment", {}).get("Variables", {}),
            **own.get("Environment", {}).get("Variables", {}),
        }
        if variables:
            properties["Environment"] = {"Variables": variables}
        effective[logical_id] = properties
    return effective


class _NoManagedPolicyLookups:
    """SAM looks managed policies up by name only for names in ``Policies``; RUM Guard uses none."""

    def load(self) -> dict[str, str]:
        raise AssertionError("SAM looked up a managed policy by name: Policies must hold inline statements only")


@pytest.fixture(scope="session")
def translated(root: Path) -> dict[str, Any]:
    """template.yaml as ``sam deploy`` hands it to CloudFormation: the SAM transform applied, offline.

    The code locations become placeholder S3 URIs (what ``sam package`` puts there); the region is fixed, as
    SAM needs one for ARNs it writes itself.
    """
    document: dict[str, Any] = yaml_parse((root / "template.yaml").read_text(encoding="utf-8"))
    for resource in document["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in properties:
                properties[key] = "s3://rumguard-contract/code.zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", FAKE_AWS_ENVIRONMENT["AWS_DEFAULT_REGION"])
        output: dict[str, Any] = transform(document, {}, _NoManagedPolicyLookups())
    return output


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """A region, fake credentials and no X-Ray, for code that builds boto3 clients (inside ``mock_aws``)."""
    for name, value in FAKE_AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
