"""Every function in template.yaml points at a real handler, and takes exactly the environment its settings
model reads.

The handler module is imported from the function's ``CodeUri`` the way Lambda imports it (by file, the layer's
``rumguard`` on ``sys.path``), with the template's own environment filled in with plausible values, so its cold
start (settings validation, boto3 clients) runs for real against moto.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any, Protocol

import pytest
from moto import mock_aws

from rumguard.settings import IngestSettings


class SettingsModel(Protocol):
    """What the contract needs of a settings model."""

    @classmethod
    def env_names(cls) -> frozenset[str]:
        """The environment variable names the model reads."""
        ...


#: The settings model of each function. A new function must be added here: its template environment is then
#: held equal to the model's fields.
SETTINGS: dict[str, type[SettingsModel]] = {
    "IngestFunction": IngestSettings,
}

#: Plausible values of parameters that have no default (each must pass the parameter's AllowedPattern).
PARAMETER_EXAMPLES = {
    "GuestLogGroupName": "/aws/vendedlogs/RUMService_RetailDemoStore_Unauthenticated1a2b3c4d",
    "SignedInLogGroupName": "/aws/vendedlogs/RUMService_RetailDemoStore_Authenticated5e6f7a8b",
    "IdentityPoolId": "us-east-1:0b6a1f6e-3c2d-4e5f-8a9b-7c6d5e4f3a2b",
    "GuestRoleName": "RetailDemoStore-CognitoUnauthRole",
}
#: What ``Ref`` returns for a resource of each type.
REF_EXAMPLES = {
    "AWS::DynamoDB::Table": "rumguard-RumGuardTable-1A2B3C4D5E6F",
    "AWS::SQS::Queue": "https://sqs.us-east-1.amazonaws.com/123456789012/rumguard-contract",
    "AWS::SNS::Topic": "arn:aws:sns:us-east-1:123456789012:rumguard-contract",
    "AWS::Events::EventBus": "rumguard-contract",
}


def plausible(value: Any, template: dict[str, Any]) -> str:
    """A value like the one CloudFormation would give this environment variable."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict) and list(value) == ["Ref"]:
        name = value["Ref"]
        parameter = template.get("Parameters", {}).get(name)
        if parameter is not None:
            return parameter_value(name, parameter)
        resource_type = template["Resources"].get(name, {}).get("Type")
        if resource_type in REF_EXAMPLES:
            return REF_EXAMPLES[resource_type]
    pytest.fail(f"no plausible value for {value!r}: add an example to this test")


def parameter_value(name: str, parameter: dict[str, Any]) -> str:
    """The parameter's default, or its example here, checked against the parameter's constraints."""
    if "Default" in parameter:
        value = str(parameter["Default"])
    elif name in PARAMETER_EXAMPLES:
        value = PARAMETER_EXAMPLES[name]
    else:
        pytest.fail(f"parameter {name} has no default: add an example to PARAMETER_EXAMPLES")
    if "AllowedPattern" in parameter:
        assert re.fullmatch(parameter["AllowedPattern"], value), f"{name}: {value!r} fails its AllowedPattern"
    if "AllowedValues" in parameter:
        assert value in parameter["AllowedValues"], f"{name}: {value!r} is not an allowed value"
    return value


def handler_location(properties: dict[str, Any], root: Path) -> tuple[Path, str]:
    """The handler's module file under ``CodeUri`` and its attribute name."""
    module, _, attribute = properties["Handler"].rpartition(".")
    assert module and attribute, f"Handler {properties['Handler']!r} is not <module>.<function>"
    return root / properties["CodeUri"] / Path(*module.split(".")).with_suffix(".py"), attribute


def test_handler_resolves_to_a_callable(
    function_id: str,
    functions: dict[str, dict[str, Any]],
    template: dict[str, Any],
    root: Path,
    fake_aws: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    properties = functions[function_id]
    path, attribute = handler_location(properties, root)
    assert path.is_file(), f"{function_id}: {path.relative_to(root)} does not exist"
    for name, value in properties.get("Environment", {}).get("Variables", {}).items():
        monkeypatch.setenv(name, plausible(value, template))
    # The layer puts rumguard on sys.path as /opt/python does; the handler is loaded as Lambda loads it.
    monkeypatch.syspath_prepend(str(root / "lambdas"))
    module_name = f"contract_{function_id}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, module_name, module)

    with mock_aws():
        spec.loader.exec_module(module)

    assert callable(getattr(module, attribute, None)), f"{function_id}: {properties['Handler']} is not callable"


def test_environment_names_equal_the_settings_fields(function_id: str, functions: dict[str, dict[str, Any]]) -> None:
    assert function_id in SETTINGS, f"{function_id} has no settings model: add it to SETTINGS in this test"
    names = set(functions[function_id].get("Environment", {}).get("Variables", {}))
    assert names == SETTINGS[function_id].env_names()


def test_every_settings_model_belongs_to_a_function(functions: dict[str, dict[str, Any]]) -> None:
    assert set(SETTINGS) <= set(functions), "SETTINGS names functions that template.yaml no longer has"
