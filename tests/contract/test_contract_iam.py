"""Least privilege: each function is granted exactly the AWS actions its code calls, each only on the resource
it calls it on, and only in the modes that call it (dry-run is granted no IAM or Cognito write at all).

``NEEDED`` below is the reviewed list, traced to the code; a change to the code that calls a new action must
change it, and the template with it. What SAM adds itself (logs, X-Ray tracing, the on-failure destination, the
scheduler's invoke role) is checked on the transformed template.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Parameters = Mapping[str, str]

NO_VALUE = {"Ref": "AWS::NoValue"}
ANY = "*"
TABLE = {"Fn::GetAtt": ["RumGuardTable", "Arn"]}
#: The alarms the sweeper owns (``<stack>/...``), and every alarm of the region (DescribeAlarms filters by prefix).
OWN_ALARMS = {"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}/*"}
ALL_ALARMS = {"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"}
NO_ALARM_ACTIONS = {"Null": {"cloudwatch:AlarmActions": "true"}}
TOPIC = {"Ref": "NotifyTopic"}
TOPIC_KEY = {"Fn::GetAtt": ["NotifyTopicKey", "Arn"]}
DIGEST_ITEMS = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["notify#*"]}}
BUS = {"Fn::GetAtt": ["RumGuardBus", "Arn"]}
#: The guest role by name, with or without a path (role names are unique in an account).
GUEST_ROLE = (
    {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${GuestRoleName}"},
    {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*/${GuestRoleName}"},
)
IDENTITY_POOL = {
    "Fn::Sub": "arn:${AWS::Partition}:cognito-identity:${AWS::Region}:${AWS::AccountId}:identitypool/${IdentityPoolId}"
}
IN_THE_POOL = {"StringEquals": {"cognito-identity:IdentityPoolArn": IDENTITY_POOL}}
#: What IAM and Cognito writes look like: none of them may be granted in dry-run.
WRITES = {
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "cognito-identity:DeleteIdentities",
    "cognito-identity:UpdateIdentityPool",
}
#: The managed policies SAM attaches to every function role here: CloudWatch Logs (AWSLambdaBasicExecutionRole)
#: and X-Ray (``Tracing: Active``). Both are AWS's own, on Resource "*".
SAM_MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}


def always(parameters: Parameters) -> bool:
    """Called in every mode."""
    return True


def enforcing(parameters: Parameters) -> bool:
    """Called only in enforce mode (``Guard`` skips IAM and Cognito writes in dry-run)."""
    return parameters["Mode"] == "enforce"


def lockdown_on_storm(parameters: Parameters) -> bool:
    """Called only when a block storm may enter guest lockdown (``Guard._storm``, enforce mode)."""
    return enforcing(parameters) and parameters["LockdownOnStorm"] == "true"


@dataclass(frozen=True)
class Need:
    """An action a function's code calls: on which resources, in which modes, under which IAM condition."""

    resources: tuple[Any, ...]
    when: Callable[[Parameters], bool] = always
    condition: Mapping[str, Any] | None = field(default=None)


def on(*resources: Any, when: Callable[[Parameters], bool] = always, condition: Any = None) -> Need:
    """Shorthand for a ``Need``."""
    return Need(resources, when, condition)


#: Every action each function's code calls (rumguard.runtime.aws_guard wires the adapters).
#: Guard.sync_policy through IamGuestRole: read the role's inline policies (GetRole tells a missing role from a
#: missing policy), write them only when enforcing. Every function that changes blocks needs exactly this.
GUEST_ROLE_POLICIES: dict[str, Need] = {
    "iam:GetRole": on(*GUEST_ROLE),
    "iam:ListRolePolicies": on(*GUEST_ROLE),
    "iam:GetRolePolicy": on(*GUEST_ROLE),
    "iam:PutRolePolicy": on(*GUEST_ROLE, when=enforcing),
    "iam:DeleteRolePolicy": on(*GUEST_ROLE, when=enforcing),
}

NEEDED: dict[str, dict[str, Need]] = {
    "IngestFunction": {
        # DynamoCounterStore.record: UpdateItem per identity, GetItem after a duplicate batch. DynamoDecisionStore:
        # GetItem (block, allowlist, policy version, lockdown), Query (active blocks, the safety valve count),
        # PutItem (audit of a forged identity), UpdateItem (policy version), TransactWriteItems of Put and Update
        # items (create_block, set_lockdown on a storm). Powertools idempotency: Get/Put/Update/DeleteItem.
        "dynamodb:GetItem": on(TABLE),
        "dynamodb:PutItem": on(TABLE),
        "dynamodb:UpdateItem": on(TABLE),
        "dynamodb:DeleteItem": on(TABLE),
        "dynamodb:Query": on(TABLE),
        # IamGuestRole: inline_policies (ListRolePolicies, GetRolePolicy; GetRole to tell a missing role from a
        # missing policy), then put_policy and delete_policy when enforcing.
        **GUEST_ROLE_POLICIES,
        # CognitoIdentityDirectory: describe before every automatic block; delete when enforcing; set_guest_access
        # (DescribeIdentityPool, then UpdateIdentityPool) on a storm with lockdown. DescribeIdentity and
        # DeleteIdentities have no resource type: IAM requires "*", and the pool condition key holds the delete.
        "cognito-identity:DescribeIdentity": on(ANY),
        "cognito-identity:DeleteIdentities": on(ANY, when=enforcing, condition=IN_THE_POOL),
        "cognito-identity:DescribeIdentityPool": on(IDENTITY_POOL, when=lockdown_on_storm),
        "cognito-identity:UpdateIdentityPool": on(IDENTITY_POOL, when=lockdown_on_storm),
        # EventBridgeBus.publish: Identity Blocked, Block Storm, Guest Lockdown Changed (in dry-run too).
        "events:PutEvents": on(BUS),
    },
    "SweeperFunction": {
        # Guard.sweep: expired_blocks (Query), end_block (TransactWriteItems of Update and Put items), then
        # sync_policy: policy_versions and get_lockdown (GetItem), active_blocks (Query), mark_policy_applied
        # (UpdateItem). Nothing is deleted.
        "dynamodb:GetItem": on(TABLE),
        "dynamodb:PutItem": on(TABLE),
        "dynamodb:UpdateItem": on(TABLE),
        "dynamodb:Query": on(TABLE),
        **GUEST_ROLE_POLICIES,
        # Identity Unblocked. The sweeper never calls Cognito (Guard only reads the pool id's region).
        "events:PutEvents": on(BUS),
        # AlarmReconciler over CloudWatchAlarms: describe by prefix, tags of each, then only the differences;
        # never an alarm action.
        "cloudwatch:DescribeAlarms": on(ALL_ALARMS),
        "cloudwatch:ListTagsForResource": on(OWN_ALARMS),
        "cloudwatch:TagResource": on(OWN_ALARMS),
        "cloudwatch:DeleteAlarms": on(OWN_ALARMS),
        "cloudwatch:PutMetricAlarm": on(OWN_ALARMS, condition=NO_ALARM_ACTIONS),
    },
    "ApiFunction": {
        # OperatorService over Guard and DynamoDecisionStore: GetItem (block, allowlist entry, policy version,
        # lockdown), Query (listings, history, active blocks), PutItem (audit records), UpdateItem (policy
        # version), DeleteItem (an allowlist entry, the lockdown item), in TransactWriteItems too.
        "dynamodb:GetItem": on(TABLE),
        "dynamodb:PutItem": on(TABLE),
        "dynamodb:UpdateItem": on(TABLE),
        "dynamodb:DeleteItem": on(TABLE),
        "dynamodb:Query": on(TABLE),
        # sync_policy after every manual change: read the role's inline policies, write them when enforcing.
        **GUEST_ROLE_POLICIES,
        # PUT /blocks describes the identity (guest, or a forced block of a signed-in one), then deletes it when
        # enforcing. PUT /lockdown switches the pool's guest access (Guard.set_lockdown, enforce mode only):
        # operators may do so whatever LockdownOnStorm says.
        "cognito-identity:DescribeIdentity": on(ANY),
        "cognito-identity:DeleteIdentities": on(ANY, when=enforcing, condition=IN_THE_POOL),
        "cognito-identity:DescribeIdentityPool": on(IDENTITY_POOL, when=enforcing),
        "cognito-identity:UpdateIdentityPool": on(IDENTITY_POOL, when=enforcing),
        # Identity Blocked, Identity Unblocked, Guest Lockdown Changed (in dry-run too).
        "events:PutEvents": on(BUS),
    },
    "NotifyFunction": {
        # DynamoDigestStore: add (UpdateItem, GetItem after a refused one), unsent (Query), claim and mark_sent
        # (UpdateItem), on the notify#... items only. SnsTopic.publish, through the topic's KMS key.
        "dynamodb:GetItem": on(TABLE, condition=DIGEST_ITEMS),
        "dynamodb:UpdateItem": on(TABLE, condition=DIGEST_ITEMS),
        "dynamodb:Query": on(TABLE, condition=DIGEST_ITEMS),
        "sns:Publish": on(TOPIC),
        "kms:GenerateDataKey": on(TOPIC_KEY),
        "kms:Decrypt": on(TOPIC_KEY),
    },
}


# --- reading the template's conditions and policies --------------------------------------------------------
def condition_parameters(template: dict[str, Any]) -> list[str]:
    """The parameters the conditions used by the functions' policies depend on."""
    names: set[str] = set()
    used: set[str] = set()

    def uses(node: Any) -> None:
        if isinstance(node, dict):
            if list(node) == ["Fn::If"]:
                used.add(node["Fn::If"][0])
            if list(node) == ["Condition"]:
                used.add(node["Condition"])
            for value in node.values():
                uses(value)
        elif isinstance(node, list):
            for value in node:
                uses(value)

    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            uses(resource.get("Properties", {}).get("Policies", []))
    pending = list(used)
    while pending:
        name = pending.pop()
        before = set(used)
        uses(template["Conditions"][name])
        pending.extend(used - before)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if list(node) == ["Ref"] and node["Ref"] in template.get("Parameters", {}):
                names.add(node["Ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([template["Conditions"][name] for name in used])
    return sorted(names)


def parameter_combinations(template: dict[str, Any]) -> Iterator[dict[str, str]]:
    """Every combination of values of the parameters the conditions depend on (each must list its values)."""
    names = condition_parameters(template)
    choices = []
    for name in names:
        allowed = template["Parameters"][name].get("AllowedValues")
        assert allowed, f"condition parameter {name} needs AllowedValues, so every grant can be checked"
        choices.append([str(value) for value in allowed])
    for values in itertools.product(*choices):
        yield dict(zip(names, values, strict=True))


def evaluate(expression: Any, template: dict[str, Any], parameters: Parameters) -> Any:
    """A condition expression's value for these parameter values (the functions conditions may use)."""
    if isinstance(expression, dict) and len(expression) == 1:
        ((function, argument),) = expression.items()
        if function == "Ref":
            return parameters[argument]
        if function == "Condition":
            return evaluate(template["Conditions"][argument], template, parameters)
        if function == "Fn::Equals":
            left, right = (evaluate(a, template, parameters) for a in argument)
            return str(left) == str(right)
        if function == "Fn::And":
            return all(evaluate(a, template, parameters) for a in argument)
        if function == "Fn::Or":
            return any(evaluate(a, template, parameters) for a in argument)
        if function == "Fn::Not":
            return not evaluate(argument[0], template, parameters)
        raise AssertionError(f"this test does not evaluate {function} in a condition")
    return expression


def resolve(node: Any, conditions: Mapping[str, bool]) -> Any:
    """The node with every ``Fn::If`` decided and ``AWS::NoValue`` removed."""
    if isinstance(node, dict):
        if list(node) == ["Fn::If"]:
            name, yes, no = node["Fn::If"]
            return resolve(yes if conditions[name] else no, conditions)
        resolved = {key: resolve(value, conditions) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value != NO_VALUE}
    if isinstance(node, list):
        return [value for value in (resolve(item, conditions) for item in node) if value != NO_VALUE]
    return node


def as_list(value: Any) -> list[Any]:
    """A policy element that may be one value or a list."""
    return value if isinstance(value, list) else [value]


def canonical(value: Any) -> str:
    """A resource expression, comparable whatever its dict ordering."""
    return json.dumps(value, sort_keys=True)


def statements(properties: dict[str, Any], conditions: Mapping[str, bool]) -> list[dict[str, Any]]:
    """The statements of a function's ``Policies`` as deployed under these conditions."""
    found: list[dict[str, Any]] = []
    for policy in resolve(properties.get("Policies", []), conditions):
        found.extend(as_list(policy["Statement"]))
    return found


def situations(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, str], dict[str, bool]]]:
    """Each combination of condition parameters: a label, the parameter values, the conditions' values."""
    for parameters in parameter_combinations(template):
        conditions = {}
        for name, expression in template.get("Conditions", {}).items():
            try:
                conditions[name] = bool(evaluate(expression, template, parameters))
            except KeyError:
                continue  # a condition no function's policy uses (on a free-text parameter, say)
        label = ", ".join(f"{name}={value}" for name, value in parameters.items())
        yield label, parameters, conditions


# --- the tests ---------------------------------------------------------------------------------------------
def test_every_function_has_its_needs_listed(functions: dict[str, dict[str, Any]]) -> None:
    assert set(NEEDED) == set(functions), "add the new function's actions to NEEDED (or drop a removed one)"


def test_policies_are_inline_allow_statements(function_id: str, functions: dict[str, dict[str, Any]]) -> None:
    """No SAM policy templates, managed policies or roles from elsewhere: the statements are the whole grant."""
    properties = functions[function_id]
    assert "Role" not in properties, f"{function_id}: a role from elsewhere escapes this check"
    for policy in properties.get("Policies", []):
        assert isinstance(policy, dict) and set(policy) <= {"Version", "Statement"}, (
            f"{function_id}: {policy!r} is not an inline policy document"
        )
        for statement in as_list(policy["Statement"]):
            if list(statement) == ["Fn::If"]:
                assert statement["Fn::If"][2] == NO_VALUE, f"{function_id}: a conditional grant's else is NoValue"
                statement = statement["Fn::If"][1]
            assert statement.get("Effect") == "Allow"
            assert not {"NotAction", "NotResource", "Principal"} & set(statement), f"{function_id}: {statement}"


def test_each_function_is_granted_exactly_what_its_code_calls(
    function_id: str, functions: dict[str, dict[str, Any]], template: dict[str, Any]
) -> None:
    needed = NEEDED[function_id]
    for label, parameters, conditions in situations(template):
        granted = [a for s in statements(functions[function_id], conditions) for a in as_list(s["Action"])]
        assert len(granted) == len(set(granted)), f"{function_id} ({label}): an action is granted twice"
        expected = {action for action, need in needed.items() if need.when(parameters)}
        assert not set(granted) - expected, f"{function_id} ({label}): not needed: {set(granted) - expected}"
        assert not expected - set(granted), f"{function_id} ({label}): missing: {expected - set(granted)}"


def test_each_action_is_granted_on_its_resource_only(
    function_id: str, functions: dict[str, dict[str, Any]], template: dict[str, Any]
) -> None:
    needed = NEEDED[function_id]
    for label, _, conditions in situations(template):
        for statement in statements(functions[function_id], conditions):
            resources = {canonical(r) for r in as_list(statement["Resource"])}
            for action in as_list(statement["Action"]):
                assert "*" not in action, f"{function_id}: wildcard action {action}"
                need = needed.get(action)
                assert need is not None, f"{function_id}: {action} is not in NEEDED"
                # Resource "*" passes only for the actions listed with ANY (those IAM gives no resource type).
                allowed = {canonical(r) for r in need.resources}
                assert resources <= allowed, f"{function_id} ({label}): {action} on {resources - allowed}"
                assert statement.get("Condition") == need.condition, f"{function_id}: {action}'s Condition"


def test_dry_run_grants_no_iam_or_cognito_writes(
    function_id: str, functions: dict[str, dict[str, Any]], template: dict[str, Any]
) -> None:
    """DESIGN.md: dry-run changes nothing in IAM or Cognito. IAM makes it so even against a bug."""
    checked = 0
    for label, parameters, conditions in situations(template):
        if parameters.get("Mode") != "dry-run":
            continue
        granted = {a for s in statements(functions[function_id], conditions) for a in as_list(s["Action"])}
        assert not granted & WRITES, f"{function_id} ({label}): {granted & WRITES}"
        checked += 1
    assert checked, "the template's conditions no longer depend on Mode"


def test_sam_adds_only_logs_tracing_and_invocation(translated: dict[str, Any]) -> None:
    """What the transform adds to each role besides RUM Guard's own statements (``<Function>RolePolicy<n>``)."""
    resources = translated["Resources"]
    functions = {name: r for name, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    roles = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert roles
    for name, role in roles.items():
        function = name.removesuffix("Role")
        inline = {p["PolicyName"]: p["PolicyDocument"] for p in role.get("Policies", [])}
        if function in functions:
            assert set(role.get("ManagedPolicyArns", [])) == SAM_MANAGED, f"{name}: managed policies"
            extra = {n: d for n, d in inline.items() if not n.startswith(f"{function}RolePolicy")}
            for policy_name, document in extra.items():
                # SAM's policy for an EventInvokeConfig OnFailure destination: send to that queue, nothing else.
                assert policy_name == f"{function}EventInvokeConfigOnFailureSQSPolicy", f"{name}: {policy_name}"
                destination = resources[f"{function}EventInvokeConfig"]["Properties"]["DestinationConfig"]
                assert document["Statement"] == [
                    {
                        "Action": "sqs:SendMessage",
                        "Effect": "Allow",
                        "Resource": destination["OnFailure"]["Destination"],
                    }
                ]
        else:
            # A schedule's role: EventBridge Scheduler may invoke one function, nothing else.
            principals = [s["Principal"]["Service"] for s in role["AssumeRolePolicyDocument"]["Statement"]]
            assert principals == [["scheduler.amazonaws.com"]], f"{name}: an unexpected role"
            assert "ManagedPolicyArns" not in role
            for document in inline.values():
                for statement in document["Statement"]:
                    assert statement["Action"] == "lambda:InvokeFunction", f"{name}: {statement}"
                    target, attribute = statement["Resource"]["Fn::GetAtt"]
                    assert target in functions and attribute == "Arn", f"{name}: {statement}"
