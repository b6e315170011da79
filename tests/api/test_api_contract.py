"""The API's contracts with the rest of the repository: the operations equal the Chalice routes, the checked-in
docs/openapi.json equals what the app generates (and is valid OpenAPI), template.yaml has one API event per
route with IAM authorization on all but /health and the environment of ``ApiSettings``, and the function's
build (chalice_app/Makefile) ships a Chalice runtime that needs nothing beyond the core layer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from chalice_app.app import app

from rumguard.api import OPERATIONS, openapi_document, openapi_json
from rumguard.cli import main
from rumguard.local.template import load_template, repo_root
from rumguard.settings import ApiSettings

ROOT = repo_root()
OPENAPI_PATH = ROOT / "docs" / "openapi.json"
API_CODE_URI = "chalice_app"
OPEN_ROUTES = {("GET", "/health")}


def routes() -> set[tuple[str, str]]:
    """The Chalice app's routes as (method, path)."""
    return {(method, path) for path, methods in app.routes.items() for method in methods}


def test_operations_are_the_chalice_routes() -> None:
    assert {(op.method, op.path) for op in OPERATIONS} == routes()
    assert {(op.method, op.path) for op in OPERATIONS if not op.authenticated} == OPEN_ROUTES


def test_openapi_json_is_up_to_date() -> None:
    assert OPENAPI_PATH.read_text(encoding="utf-8") == openapi_json(app.routes), (
        "docs/openapi.json drifted from the app: run `rumguard openapi` and commit the file"
    )


def test_openapi_check_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["openapi", "--check"]) == 0
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert main(["openapi", "--check", "--output", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["openapi", "--output", str(stale)]) == 0
    assert json.loads(stale.read_text(encoding="utf-8")) == json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


def test_openapi_document_is_valid_and_complete() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    validator.validate(document)
    described = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    assert described == routes()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            open_route = (method.upper(), path) in OPEN_ROUTES
            assert operation["security"] == ([] if open_route else [{"sigv4": []}]), (method, path)


def test_openapi_refuses_routes_without_operations() -> None:
    with pytest.raises(ValueError, match="/extra"):
        openapi_document({**{p: list(m) for p, m in app.routes.items()}, "/extra": ["GET"]})


# --- template.yaml ----------------------------------------------------------------------------------------------
def api_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The template's functions whose code is the Chalice app."""
    return {
        logical_id: resource.get("Properties", {})
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Serverless::Function"
        and str(resource.get("Properties", {}).get("CodeUri", "")).rstrip("/") == API_CODE_URI
    }


def authorizer(template: dict[str, Any], event: dict[str, Any]) -> str:
    """The authorizer of an Api event: its own, else its API's default, else the implicit API's."""
    properties = event.get("Properties", {})
    own = properties.get("Auth", {}).get("Authorizer")
    if own:
        return str(own)
    api_ref = properties.get("RestApiId", {})
    api = template["Resources"].get(api_ref.get("Ref", ""), {}) if isinstance(api_ref, dict) else {}
    default = api.get("Properties", {}).get("Auth", {}).get("DefaultAuthorizer")
    if default is None:
        default = template.get("Globals", {}).get("Api", {}).get("Auth", {}).get("DefaultAuthorizer")
    return str(default or "NONE")


def test_template_has_one_api_event_per_route() -> None:
    template = load_template()
    [(logical_id, properties)] = api_functions(template).items()
    assert properties["Handler"] == "app.app"
    events = [e for e in properties.get("Events", {}).values() if e.get("Type") == "Api"]
    declared = [(str(e["Properties"]["Method"]).upper(), e["Properties"]["Path"]) for e in events]
    assert len(declared) == len(set(declared)), f"{logical_id} declares a route twice"
    assert set(declared) == routes()
    for event in events:
        route = (str(event["Properties"]["Method"]).upper(), event["Properties"]["Path"])
        expected = "NONE" if route in OPEN_ROUTES else "AWS_IAM"
        assert authorizer(template, event) == expected, route


def test_template_gives_the_api_function_its_settings() -> None:
    template = load_template()
    [properties] = api_functions(template).values()
    global_variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    variables = {**global_variables, **properties.get("Environment", {}).get("Variables", {})}
    assert set(variables) == ApiSettings.env_names()


# --- the function's build ---------------------------------------------------------------------------------------
def test_the_build_ships_a_chalice_runtime_that_needs_only_the_layer(tmp_path: Path) -> None:
    subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT / "chalice_app"),
            "build-ApiFunction",
            f"ARTIFACTS_DIR={tmp_path}",
            f"PYTHON={sys.executable}",
        ],
        check=True,
        timeout=60,
    )
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.py")) == [
        "app.py",
        "chalice/__init__.py",
        "chalice/app.py",
    ]
    # Lambda's sys.path: the function's code, then the layer (here: lambdas/ and this environment).
    probe = (
        "import sys, app, chalice; "
        f"assert chalice.__file__.startswith({str(tmp_path)!r}), chalice.__file__; "
        "assert 'chalice.cli' not in sys.modules and 'click' not in sys.modules; "
        "print(sorted(app.app.routes))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT / 'lambdas'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "/blocks/{identity_id}" in result.stdout
