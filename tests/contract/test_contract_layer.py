"""The core layer ships exactly the runtime dependencies of pyproject.toml, minus boto3 (the Lambda runtime has
it), at the versions of constraints.txt, and every rumguard module it ships imports only what the layer or the
runtime has: what runs in Lambda is what the tests ran against."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

#: Provided by the Lambda Python runtime, so never in the layer.
RUNTIME_PROVIDED = {"boto3"}
#: What the Lambda runtime lets every function import besides the layer.
RUNTIME_MODULES = {"boto3", "botocore"}


def requirements(path: Path) -> list[Requirement]:
    """The requirement lines of a pip requirements file (comments and blank lines skipped)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line]


def test_layer_requirements_pin_the_runtime_dependencies(root: Path) -> None:
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}
    pinned = {
        canonicalize_name(r.name): str(r.specifier).removeprefix("==") for r in requirements(root / "constraints.txt")
    }
    layer = requirements(root / "lambdas" / "layer-requirements.txt")
    shipped = {canonicalize_name(r.name): r for r in layer}

    assert len(shipped) == len(layer), "a package is listed twice in layer-requirements.txt"
    assert set(shipped) == set(declared) - RUNTIME_PROVIDED
    for name, requirement in shipped.items():
        assert requirement.extras == declared[name].extras, f"{name}: extras differ from pyproject.toml"
        assert not requirement.marker, f"{name}: the layer is built for one platform, markers are not expected"
        assert str(requirement.specifier) == f"=={pinned[name]}", f"{name}: pin it to constraints.txt's version"
        assert declared[name].specifier.contains(pinned[name]), f"{name}: {pinned[name]} is outside pyproject.toml"


def distribution_closure(roots: Iterable[Requirement]) -> set[NormalizedName]:
    """The distributions pip installs for these requirements (as installed here, at the same versions)."""
    seen: set[NormalizedName] = set()
    pending = list(roots)
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        extras = requirement.extras or {""}
        for line in importlib.metadata.requires(name) or []:
            dependency = Requirement(line)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras):
                pending.append(dependency)
    return seen


def local_only(makefile: Path) -> set[str]:
    """The parts of lambdas/rumguard that lambdas/Makefile leaves out of the layer (its LOCAL_ONLY)."""
    match = re.search(r"^LOCAL_ONLY\s*:=(.*)$", makefile.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, "lambdas/Makefile has no LOCAL_ONLY"
    return {part.removeprefix("./") for part in match.group(1).split()}


def runtime_imports(source: Path, module: str) -> Iterator[str]:
    """Absolute names of what a module imports when it runs (``if TYPE_CHECKING:`` blocks skipped); for
    ``from package import name`` both ``package`` and ``package.name`` (which may be a submodule)."""
    package = module if source.name == "__init__.py" else module.rpartition(".")[0]
    pending: list[ast.AST] = [ast.parse(source.read_text(encoding="utf-8"))]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(part for part in (base, node.module) if part)
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)
        pending.extend(ast.iter_child_nodes(node))


def test_layer_modules_import_only_what_the_layer_has(root: Path) -> None:
    lambdas = root / "lambdas"
    left_out = local_only(lambdas / "Makefile")
    shipped = {
        ".".join(path.relative_to(lambdas).with_suffix("").parts).removesuffix(".__init__"): path
        for path in (lambdas / "rumguard").rglob("*.py")
        if path.relative_to(lambdas / "rumguard").parts[0] not in left_out
    }
    distributions = distribution_closure(requirements(lambdas / "layer-requirements.txt"))
    third_party = {
        top
        for top, names in importlib.metadata.packages_distributions().items()
        if any(canonicalize_name(name) in distributions for name in names)
    }
    available = set(sys.stdlib_module_names) | RUNTIME_MODULES | third_party

    problems = set()
    for module, path in shipped.items():
        for imported in runtime_imports(path, module):
            parts = imported.split(".")
            if parts[0] == "rumguard" and len(parts) > 1 and {parts[1], f"{parts[1]}.py"} & left_out:
                problems.add(f"{module} imports rumguard.{parts[1]}, which lambdas/Makefile leaves out of the layer")
            elif parts[0] not in available | {"rumguard"}:
                problems.add(f"{module} imports {parts[0]}, which neither the layer nor the Lambda runtime has")
    assert not problems, "\n".join(sorted(problems))
