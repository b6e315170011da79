"""Every function in template.yaml points at a real handler, and takes exactly the environment its settings
model reads, with the code's defaults and within the bounds the settings accept.

The handler module is imported from the function's ``CodeUri`` the way Lambda imports it (by file, the layer's
``rumguard`` on ``sys.path``), with the template's own environment filled in with plausible values, so its cold
start (settings validation, boto3 clients) runs for real against moto.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest
from moto import mock_aws

from rumguard.settings import ApiSettings, IngestSettings, NotifySettings, SettingsError, SweeperSettings


class SettingsModel(Protocol):
    """What the contract needs of a settings model."""

    @classmethod
    def env_names(cls) -> frozenset[str]:
        """The environment variable names the model reads."""
        ...

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> object:
        """Read and validate; raises ``SettingsError``."""
        ...


#: The settings model of each function. A new function must be added here: its template environment is then
#: held equal to the model's fields.
SETTINGS: dict[str, type[SettingsModel]] = {
    "IngestFunction": IngestSettings,
    "SweeperFunction": SweeperSettings,
    "NotifyFunction": NotifySettings,
    "ApiFunction": ApiSettings,
}
#: A number parameter without MaxValue: the settings must accept at least this much.
LARGE = 10**9

#: Plausible values of parameters that have no default (each must pass the parameter's AllowedPattern).
PARAMETER_EXAMPLES = {
    "GuestLogGroupName": "/aws/vendedlogs/RUMService_RetailDemoStore_Unauthenticated1a2b3c4d",
    "SignedInLogGroupName": "/aws/vendedlogs/RUMService_RetailDemoStore_Authenticated5e6f7a8b",
    "IdentityPoolId": "us-east-1:0b6a1f6e-3c2d-4e5f-8a9b-7c6d5e4f3a2b",
    "GuestRoleName": "RetailDemoStore-CognitoUnauthRole",
}
#: What CloudFormation's pseudo parameters give.
PSEUDO_PARAMETERS = {
    "AWS::StackName": "rumguard-contract",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
}
#: What ``Ref`` returns for a resource of each type.
REF_EXAMPLES = {
    "AWS::CloudWatch::Dashboard": "rumguard-contract",
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
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
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


def template_environment(
    function_id: str, functions: dict[str, dict[str, Any]], template: dict[str, Any]
) -> dict[str, str]:
    """The function's environment as a stack made with the parameters' defaults (or examples) gives it."""
    variables = functions[function_id].get("Environment", {}).get("Variables", {})
    return {name: plausible(value, template) for name, value in variables.items()}


def test_template_defaults_are_the_code_defaults(
    function_id: str, functions: dict[str, dict[str, Any]], template: dict[str, Any]
) -> None:
    """Leaving out a variable the code has a default for changes nothing: the template's value is that default."""
    model = SETTINGS[function_id]
    environment = template_environment(function_id, functions, template)
    deployed = model.from_environ(environment)
    for name in sorted(environment):
        try:
            by_code = model.from_environ({k: v for k, v in environment.items() if k != name})
        except SettingsError:
            continue  # no default in the code (a resource name, the mode): the template must give it
        assert by_code == deployed, f"{function_id}: {name}={environment[name]!r}, but the code's default differs"


def test_parameter_bounds_are_what_the_settings_accept(
    function_id: str, functions: dict[str, dict[str, Any]], template: dict[str, Any]
) -> None:
    """A stack can be given no value its functions refuse at cold start, and every value they take is possible."""
    model = SETTINGS[function_id]
    parameters = template.get("Parameters", {})
    environment = template_environment(function_id, functions, template)
    variables = functions[function_id].get("Environment", {}).get("Variables", {})
    for name, value in variables.items():
        if not (isinstance(value, dict) and list(value) == ["Ref"] and value["Ref"] in parameters):
            continue
        parameter = parameters[value["Ref"]]
        accepted = [str(v) for v in parameter.get("AllowedValues", [])]
        refused: list[str] = []
        if parameter["Type"] == "Number":
            assert "MinValue" in parameter, f"{value['Ref']}: a number parameter needs a MinValue"
            accepted.append(str(parameter["MinValue"]))
            refused.append(str(parameter["MinValue"] - 1))
            if "MaxValue" in parameter:
                accepted.append(str(parameter["MaxValue"]))
                refused.append(str(parameter["MaxValue"] + 1))
            else:
                accepted.append(str(LARGE))
        for candidate in accepted:
            try:
                model.from_environ({**environment, name: candidate})
            except SettingsError as error:
                pytest.fail(f"{function_id}: {value['Ref']} allows {candidate!r}, which {name} refuses: {error}")
        for candidate in refused:
            with pytest.raises(SettingsError):
                model.from_environ({**environment, name: candidate})
                pytest.fail(f"{function_id}: {name} accepts {candidate!r}, which {value['Ref']} refuses")
