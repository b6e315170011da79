"""Read template.yaml, so the embedded AWS builds its resources from the same definitions we deploy.

The fixtures and the demo create the DynamoDB table from the template's own ``AWS::DynamoDB::Table``
resource: a fake that is built from the real definition cannot drift from it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

#: The logical id of the single RUM Guard table in template.yaml.
TABLE_RESOURCE: Final = "RumGuardTable"


def repo_root() -> Path:
    """The checkout that holds template.yaml (this file lives in lambdas/rumguard/local/)."""
    return Path(__file__).resolve().parents[3]


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that keeps CloudFormation's short-form tags (``!Ref``, ``!Sub``...) as plain data."""


def _tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


@cache
def load_template(path: Path | None = None) -> dict[str, Any]:
    """template.yaml as a dictionary (short-form tags become their long forms)."""
    source = path or repo_root() / "template.yaml"
    with source.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    return document


def table_definition(table_name: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """``create_table`` arguments for the RUM Guard table, taken from the template's resource."""
    resource = (template or load_template())["Resources"][TABLE_RESOURCE]["Properties"]
    definition: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": resource["KeySchema"],
        "AttributeDefinitions": resource["AttributeDefinitions"],
        "BillingMode": resource.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if "GlobalSecondaryIndexes" in resource:
        definition["GlobalSecondaryIndexes"] = resource["GlobalSecondaryIndexes"]
    return definition


def ttl_attribute(template: dict[str, Any] | None = None) -> str:
    """The table's TTL attribute name."""
    resource = (template or load_template())["Resources"][TABLE_RESOURCE]["Properties"]
    return str(resource["TimeToLiveSpecification"]["AttributeName"])
