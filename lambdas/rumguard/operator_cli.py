"""The operator commands: ``rumguard blocks|allow|lockdown`` against a deployed or local operator API, and
``rumguard openapi``, which writes (or checks) ``docs/openapi.json``.

Requests are signed with SigV4 (botocore's ``SigV4Auth``, service ``execute-api``) with the default AWS
credential chain, as API Gateway's IAM authorization expects; ``chalice local`` ignores the signature, and
``rumguard local`` exports fake credentials for it. The API is ``--api-url`` or ``RUMGUARD_API_URL``: the
stage URL of a deployed API (``https://<id>.execute-api.<region>.amazonaws.com/<stage>``) or
``http://127.0.0.1:8000`` for ``chalice local``. The API's errors (``{"error": CODE, "message": TEXT}``)
are printed as they are, with the HTTP status, and the command exits with 1; ``--json`` prints the raw
answers instead of tables.

``rumguard.cli`` registers this module for several subcommands; ``add_arguments`` tells them apart by the
subparser's name.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import Session
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rumguard.api import openapi_json

API_URL_ENV: Final = "RUMGUARD_API_URL"
SERVICE: Final = "execute-api"
TIMEOUT_SECONDS: Final = 30.0
#: ``https://<api id>.execute-api.<region>.amazonaws.com/...``: the region a deployed API signs for.
_EXECUTE_API_HOST: Final = re.compile(r"[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?")
_DURATION: Final = re.compile(r"(\d+)\s*([smhd]?)")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: Below this many columns, ``blocks list`` prints lines instead of a table (which would cut identity ids).
WIDE: Final = 110

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


class CliError(Exception):
    """A failure the command reports in one line (exit status 1)."""


class ApiCallError(CliError):
    """The API answered with an error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message} (HTTP {status})")
        self.status = status
        self.code = code
        self.message = message


# --- the HTTP client -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ApiClient:
    """The operator API at ``base_url``, with SigV4-signed requests (unsigned when ``credentials`` is None)."""

    base_url: str
    region: str
    credentials: Credentials | None
    timeout: float = TIMEOUT_SECONDS

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str | int | None] | None = None,
    ) -> tuple[int, Any]:
        """``(status, JSON answer)``; raises ``ApiCallError`` for an error answer, ``CliError`` when unreachable."""
        url = self.base_url.rstrip("/") + path
        params = {name: str(value) for name, value in (query or {}).items() if value is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json"} if data is not None else {}
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        if self.credentials is not None:
            SigV4Auth(self.credentials.get_frozen_credentials(), SERVICE, self.region).add_auth(request)
        prepared = request.prepare()
        payload = prepared.body if isinstance(prepared.body, bytes) else None
        outgoing = urllib.request.Request(  # noqa: S310 - the URL is the operator's own API (http or https)
            prepared.url, data=payload, headers=dict(prepared.headers.items()), method=method
        )
        try:
            with urllib.request.urlopen(outgoing, timeout=self.timeout) as response:  # noqa: S310
                return response.status, _json(response.read())
        except urllib.error.HTTPError as error:
            answer = _json(error.read())
            if isinstance(answer, dict) and isinstance(answer.get("error"), str):
                raise ApiCallError(error.code, answer["error"], str(answer.get("message", ""))) from None
            # API Gateway's own answers (an unsigned request, a denied caller) carry only a "message".
            message = answer.get("message") if isinstance(answer, dict) else None
            raise ApiCallError(error.code, f"http-{error.code}", str(message or error.reason)) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise CliError(f"cannot reach the API at {self.base_url}: {reason}") from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return {"message": raw.decode(errors="replace")[:300]}


def identity_path(prefix: str, identity: str) -> str:
    """``/blocks/<identity>`` with the id percent-encoded, as SigV4 expects of a path."""
    return f"{prefix}/{urllib.parse.quote(identity, safe='')}"


def _env(name: str) -> str | None:
    """A variable of the shell: a command line is configured by it (the functions use settings models)."""
    return os.environ.get(name) or None


def region_for(url: str, explicit: str | None) -> str:
    """The region to sign for: ``--region``, the API's host name, or the shell's AWS region."""
    if explicit:
        return explicit
    match = _EXECUTE_API_HOST.fullmatch(urllib.parse.urlsplit(url).hostname or "")
    if match:
        return match.group(1)
    return _env("AWS_REGION") or _env("AWS_DEFAULT_REGION") or Session().get_config_variable("region") or "us-east-1"


def client_for(args: argparse.Namespace) -> ApiClient:
    """The API client the arguments describe."""
    url = args.api_url or _env(API_URL_ENV)
    if not url:
        raise CliError(f"no API URL: give --api-url or set {API_URL_ENV} (http://127.0.0.1:8000 for chalice local)")
    if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
        raise CliError(f"{url!r} is not an http(s) URL")
    credentials = None
    if not args.no_sign:
        credentials = Session(profile=args.profile).get_credentials()
        if credentials is None:
            raise CliError("no AWS credentials to sign with (configure a profile or the AWS_* variables, or --no-sign)")
    return ApiClient(url, region_for(url, args.region), credentials)


def parse_duration(text: str) -> int:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h`` or ``7d``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 15m, 2h or 7d")
    return int(match.group(1)) * _UNITS[match.group(2)]


# --- output ----------------------------------------------------------------------------------------------------
def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def _blocks_table(blocks: Sequence[Mapping[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Identity", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Rule", no_wrap=True)
    table.add_column("Expires (UTC)", no_wrap=True)
    table.add_column("Reason", overflow="fold", min_width=12)
    for block in blocks:
        expires = block.get("expiresAt")
        table.add_row(
            block["identityId"],
            block["status"] + (" (dry-run)" if block.get("dryRun") else ""),
            block["rule"],
            datetime.fromisoformat(expires).strftime("%m-%d %H:%M") if expires else "-",
            escape(block["reason"]),
        )
    return table


def _block_lines(block: Mapping[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("identity", block["identityId"]),
        ("status", block["status"] + (" (dry-run: IAM and Cognito untouched)" if block.get("dryRun") else "")),
        ("monitor", block.get("appMonitor") or "-"),
        ("rule", block["rule"]),
        ("reason", block["reason"]),
        ("actor", block["actor"]),
        ("offence", str(block["offence"])),
        ("created", _when(block["createdAt"])),
        ("expires", _when(block.get("expiresAt"))),
    ]
    if block.get("endedAt"):
        rows += [
            ("ended", f"{_when(block['endedAt'])} by {block.get('endedBy')}: {block.get('endReason')}"),
            ("grace until", _when(block.get("graceUntil"))),
        ]
    if block.get("counts"):
        rows.append(("counts", ", ".join(f"{k}={v}" for k, v in block["counts"].items())))
    for name, value in rows:
        table.add_row(name, escape(value))
    return table


def _history_table(history: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="Decisions", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("When", "Action", "Actor", "Rule", "Reason"):
        table.add_column(column, overflow="fold")
    for record in history:
        table.add_row(
            _when(record["at"]),
            record["action"],
            escape(record["actor"]),
            record.get("rule") or "-",
            escape(record["reason"]),
        )
    return table


def _print_json(answer: Any) -> None:
    stdout.print_json(data=answer)


# --- commands --------------------------------------------------------------------------------------------------
Command = Callable[[ApiClient, argparse.Namespace], int]


def blocks_list(api: ApiClient, args: argparse.Namespace) -> int:
    """``rumguard blocks list``."""
    query: dict[str, str | int | None] = {
        "status": args.status,
        "monitor": args.monitor,
        "limit": args.limit,
        "nextToken": args.next_token,
    }
    blocks: list[dict[str, Any]] = []
    while True:
        _, page = api.call("GET", "/blocks", query=query)
        blocks.extend(page["blocks"])
        token = page.get("nextToken")
        if not token or not args.all:
            break
        query["nextToken"] = token
    if args.json:
        _print_json({"blocks": blocks, "nextToken": None if args.all else token})
        return 0
    title = f"{len(blocks)} {args.status} block(s)"
    if stdout.width >= WIDE:
        stdout.print(_blocks_table(blocks, title))
    else:  # a table would cut the identity ids, which operators copy: one line per block instead
        stdout.print(title)
        for block in blocks:
            expires = _when(block.get("expiresAt"))
            line = f"{block['identityId']}  {block['status']}  {block['rule']}  expires {expires}  {block['reason']}"
            stdout.print(escape(line), highlight=False)
    if token and not args.all:
        stdout.print(f"more: --next-token {token}  (or --all)")
    return 0


def blocks_show(api: ApiClient, args: argparse.Namespace) -> int:
    """``rumguard blocks show``."""
    _, detail = api.call("GET", identity_path("/blocks", args.identity))
    if args.json:
        _print_json(detail)
        return 0
    state = "[bold red]blocked[/]" if detail["blocked"] else "[green]not blocked[/]"
    stdout.print(f"{detail['identityId']}: {state}")
    if detail["block"] is not None:
        stdout.print(_block_lines(detail["block"]))
    stdout.print(_history_table(detail["history"]))
    return 0


def blocks_add(api: ApiClient, args: argparse.Namespace) -> int:
    """``rumguard blocks add``."""
    body: dict[str, Any] = {"reason": args.reason, "force": args.force}
    if args.duration is not None:
        body["durationSeconds"] = args.duration
    if args.monitor:
        body["appMonitor"] = args.monitor
    status, block = api.call("PUT", identity_path("/blocks", args.identity), body)
    if args.json:
        _print_json(block)
        return 0
    verb = "blocked" if status == 201 else "already blocked (unchanged)"
    stdout.print(f"{block['identityId']}: {verb} until {_when(block.get('expiresAt'))}")
    stdout.print(_block_lines(block))
    return 0


def blocks_remove(api: ApiClient, args: argparse.Namespace) -> int:
    """``rumguard blocks remove``."""
    _, block = api.call("DELETE", identity_path("/blocks", args.identity), {"reason": args.reason})
    if args.json:
        _print_json(block)
        return 0
    grace = block.get("graceUntil")
    after = f"; automatic rules leave it alone until {_when(grace)}" if grace else ""
    stdout.print(f"{block['identityId']}: unblocked{after}")
    return 0


def _allow_lines(entry: Mapping[str, Any]) -> str:
    until = f"until {_when(entry['expiresAt'])}" if entry.get("expiresAt") else "without expiry"
    state = "" if entry.get("active", True) else " [yellow](expired)[/]"
    return f"{entry['identityId']}: allowlisted {until} by {escape(entry['actor'])}: {escape(entry['reason'])}{state}"


def allow_add(api: ApiClient, args: argparse.Namespace) -> int:
    """``rumguard allow add``."""
    body: dict[str, Any] = {"reason": args.reason}
    if args.expires_in is not None:
        body["durationSeconds"] = args.expires_in
    if args.expires_at is not None:
        body["expiresAt"] = args.expires_at
    _, change = api.call("PUT", identity_path("/allowlist", args.identity), body)
    if args.json:
        _print_json(change)
        return 0
    stdout.print(_allow_lines(change["allow"]))
    if change.get("unblocked"):
        stdout.print("it was blocked: the block has ended")
    return 0


def allow_remove(api: ApiClient, args: argparse.Namespace) -> int:
    """``rumguard allow remove``."""
    _, entry = api.call("DELETE", identity_path("/allowlist", args.identity), {"reason": args.reason})
    if args.json:
        _print_json(entry)
        return 0
    stdout.print(f"{entry['identityId']}: removed from the allowlist")
    return 0


def allow_show(api: ApiClient, args: argparse.Namespace) -> int:
    """``rumguard allow show``."""
    _, entry = api.call("GET", identity_path("/allowlist", args.identity))
    if args.json:
        _print_json(entry)
        return 0
    stdout.print(_allow_lines(entry))
    return 0


def _lockdown_lines(state: Mapping[str, Any]) -> str:
    if not state["enabled"]:
        return "guest lockdown: [green]off[/]"
    since, actor, reason = _when(state["since"]), escape(state["actor"]), escape(state["reason"])
    return f"guest lockdown: [bold red]on[/] since {since} by {actor}: {reason}"


def lockdown_switch(api: ApiClient, args: argparse.Namespace) -> int:
    """``rumguard lockdown on|off``."""
    _, state = api.call("PUT", "/lockdown", {"enabled": args.action == "on", "reason": args.reason})
    if args.json:
        _print_json(state)
        return 0
    stdout.print(_lockdown_lines(state) + ("" if state["changed"] else " (unchanged)"))
    return 0


def lockdown_status(api: ApiClient, args: argparse.Namespace) -> int:
    """``rumguard lockdown status``."""
    _, state = api.call("GET", "/lockdown")
    if args.json:
        _print_json(state)
        return 0
    stdout.print(_lockdown_lines(state))
    return 0


# --- rumguard openapi --------------------------------------------------------------------------------------------
def chalice_routes(app_path: Path) -> dict[str, list[str]]:
    """``app.routes`` of the Chalice app at ``app_path`` (imported by file, as Lambda does): path -> methods."""
    spec = importlib.util.spec_from_file_location("rumguard_operator_app", app_path)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot load {app_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {path: list(methods) for path, methods in module.app.routes.items()}


def openapi(args: argparse.Namespace) -> int:
    """``rumguard openapi``: write the OpenAPI document, or with ``--check`` fail when the file differs."""
    from rumguard.local.template import repo_root

    root = repo_root()
    text = openapi_json(chalice_routes(args.app or root / "chalice_app" / "app.py"))
    output: Path = args.output or root / "docs" / "openapi.json"
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            stderr.print(f"{output} is out of date: run `rumguard openapi` and commit it")
            return 1
        stdout.print(f"{output} is up to date")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    stdout.print(f"wrote {output}")
    return 0


# --- arguments -------------------------------------------------------------------------------------------------
def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("API")
    group.add_argument("--api-url", help=f"the API's URL (default: ${API_URL_ENV})")
    group.add_argument("--region", help="region to sign for (default: from the URL, else the AWS region)")
    group.add_argument("--profile", help="AWS profile of the credentials to sign with")
    group.add_argument("--no-sign", action="store_true", help="send unsigned requests (chalice local only)")
    group.add_argument("--json", action="store_true", help="print the API's JSON answers")


def _identity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("identity", help="a Cognito identity id (<region>:<uuid>)")


def _reason(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--reason", "-r", required=required, help="why (kept in the audit trail)")


def _action(
    actions: Any, name: str, handler: Command, help_text: str, *extras: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text, description=help_text)
    for extra in extras:
        extra(parser)
    _connection_arguments(parser)
    parser.set_defaults(handler=handler)
    return parser


def _blocks_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = _action(actions, "list", blocks_list, "list blocks, newest first")
    listing.add_argument("--status", choices=["active", "expired", "unblocked", "all"], default="active")
    listing.add_argument("--monitor", help="only blocks about this app monitor")
    listing.add_argument("--limit", type=int, default=50, help="blocks per page (1 to 100)")
    listing.add_argument("--next-token", help="the page after this token")
    listing.add_argument("--all", action="store_true", help="follow every page")
    _action(actions, "show", blocks_show, "an identity's block and its decision history", _identity)
    add = _action(
        actions, "add", blocks_add, "block an identity (a repeat returns the active block)", _identity, _reason
    )
    add.add_argument("--duration", type=parse_duration, help="how long (90s, 15m, 2h, 7d); default: the API's")
    add.add_argument("--force", action="store_true", help="block even a signed-in identity")
    add.add_argument("--monitor", help="the app monitor the block is about")
    _action(actions, "remove", blocks_remove, "unblock an identity (starts its grace period)", _identity, _reason)


def _allow_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = _action(actions, "add", allow_add, "allowlist an identity (unblocks it if blocked)", _identity, _reason)
    expiry = add.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in", type=parse_duration, help="entry lifetime (90s, 15m, 2h, 7d)")
    expiry.add_argument("--expires-at", help="entry end, ISO 8601 with offset (2026-12-31T00:00:00Z)")
    _action(actions, "remove", allow_remove, "remove an identity from the allowlist", _identity, _reason)
    _action(actions, "show", allow_show, "an identity's allowlist entry", _identity)


def _lockdown_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    _action(actions, "on", lockdown_switch, "refuse guests, deny guest sessions issued before now", _reason)
    _action(actions, "off", lockdown_switch, "let guests in again", _reason)
    _action(actions, "status", lockdown_status, "whether the guest lockdown is on")


def _openapi_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, help="where to write (default: docs/openapi.json)")
    parser.add_argument("--app", type=Path, help="the Chalice app (default: chalice_app/app.py)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the app")


#: subcommand -> its arguments (``rumguard.cli`` registers this module under each name).
SUBCOMMANDS: Final[dict[str, Callable[[argparse.ArgumentParser], None]]] = {
    "blocks": _blocks_arguments,
    "allow": _allow_arguments,
    "lockdown": _lockdown_arguments,
    "openapi": _openapi_arguments,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of the subcommand this parser is for (its last word: ``rumguard blocks`` -> blocks)."""
    name = parser.prog.rsplit(" ", 1)[-1]
    if name not in SUBCOMMANDS:
        raise ValueError(f"rumguard.operator_cli has no subcommand {name!r}")
    SUBCOMMANDS[name](parser)


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; errors are one line on stderr and exit status 1."""
    try:
        if args.command == "openapi":
            return openapi(args)
        handler: Command = args.handler
        return handler(client_for(args), args)
    except CliError as error:
        stderr.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
        return 1
