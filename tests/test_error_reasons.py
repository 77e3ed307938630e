"""Every ErrorInfo `reason` the code can raise is in a catalogue clients can read, and every catalogued
reason is raised somewhere: a service's own reasons in its proto's `ErrorReason` enum, the mesh-wide and
gateway reasons in gateway.resources.GENERIC_ERROR_REASONS (the OpenAPI error description lists both).

The code is read, not run: each call that passes `reason=` (or error_info's first argument), and each
call of a DomainError class or a reason-defaulting factory (invalid_field) that relies on its default.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from gateway import errors as gateway_errors
from gateway.resources import GENERIC_ERROR_REASONS, SERVICE_ERROR_REASONS
from mesh import errors as mesh_errors

ROOT = Path(__file__).resolve().parents[1]
GENERIC = set(GENERIC_ERROR_REASONS)
# Every proto package that declares a gRPC service ("glimpse.post.v1"), from the .proto files.
SERVICE_PROTOS = {
    re.search(r"^package ([\w.]+);", text, re.M)[1]
    for text in (path.read_text() for path in (ROOT / "proto").rglob("*.proto"))
    if re.search(r"^service \w+", text, re.M)
}
# The package whose reasons each service's catalogue holds: post_svc's are glimpse.post.v1's. A
# service package without a proto (fanout_svc: health only) serves no API, so no reason reaches a client.
CATALOGUE = {
    f"{package.split('.')[1]}_svc": package
    for package in sorted(SERVICE_PROTOS)
    if (ROOT / f"{package.split('.')[1]}_svc").is_dir()
}
# The shared packages may raise only the generic reasons (the gateway also any service's: it reports
# a service's condition on its behalf, e.g. POST_NOT_FOUND).
SHARED = ("mesh", "timelines", "gateway")

# Reasons computed at run time, by (file, expression): every value the expression can take. None marks
# a reason passed on from elsewhere (an upstream's ErrorInfo), checked where it is raised.
DYNAMIC: dict[tuple[str, str], set[str] | None] = {
    # The two unique columns of graph.users.
    ("graph_svc/repository.py", "f'{field.upper()}_TAKEN'"): {"USERNAME_TAKEN", "EMAIL_TAKEN"},
    ("gateway/errors.py", "_REASON_FOR_HTTP.get(status_code, code.name)"): {
        *(
            gateway_errors._REASON_FOR_HTTP.get(status, code.name)
            for status, code in gateway_errors._CODE_FOR_HTTP.items()
            if status < 500
        ),
        grpc.StatusCode.INVALID_ARGUMENT.name,  # any other 4xx
    },
    ("gateway/errors.py", "info.reason"): None,
    # Why a user reported something (graph.v1.ReportReason), not an error's reason.
    ("graph_svc/servicer.py", "graph_pb2.ReportReason.Value(f'REPORT_REASON_{report.reason.upper()}')"): set(),
    ("graph_svc/servicer.py", "_word(graph_pb2.ReportReason.DESCRIPTOR, request.reason)"): set(),
    ("gateway/routes/privacy.py", "graph_pb2.ReportReason.Value(f'REPORT_REASON_{body.reason.upper()}')"): set(),
    ("mesh/errors.py", "self.reason"): None,
}


@dataclass(frozen=True)
class Raised:
    where: str  # "path:line"
    reasons: frozenset[str]


def python_files(package: str) -> Iterator[Path]:
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def parsed(package: str) -> Iterator[tuple[str, ast.Module]]:
    for path in python_files(package):
        yield str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path))


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def error_factories() -> dict[str, str | None]:
    """Callables that raise or build a DomainError, by name -> the reason they give when called without
    one (None: the class sets its own reason in its __init__, which is read as any other call)."""
    known: dict[str, str | None] = {
        cls.__name__: cls.default_reason for cls in [mesh_errors.DomainError, *_subclasses(mesh_errors.DomainError)]
    }
    trees = [tree for package in (*CATALOGUE, *SHARED) for _, tree in parsed(package)]
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                defaults = dict(zip(reversed(node.args.args), reversed(node.args.defaults), strict=False))
                defaults |= {a: d for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True) if d}
                for arg, default in defaults.items():
                    if arg.arg == "reason" and isinstance(default, ast.Constant) and isinstance(default.value, str):
                        known[node.name] = default.value
    changed = True
    while changed:  # DomainError subclasses defined outside mesh.errors (e.g. the gateway's RateLimited)
        changed = False
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in known:
                    bases = [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in known]
                    if bases:
                        own_init = any(isinstance(s, ast.FunctionDef) and s.name == "__init__" for s in node.body)
                        known[node.name] = None if own_init else known[bases[0]]
                        changed = True
    return known


FACTORIES = error_factories()


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


class _Reader(ast.NodeVisitor):
    """Collects the reasons of every error-raising call in one module."""

    def __init__(self, path: str, tree: ast.Module) -> None:
        self.path = path
        self.tree = tree
        self.parameters: list[set[str]] = []
        self.raised: list[Raised] = []
        self.unknown: list[str] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = node.args
        self.parameters.append({a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]})
        self.generic_visit(node)
        self.parameters.pop()

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.visit_FunctionDef(node)

    def visit_Call(self, node: ast.Call) -> None:
        callee = _callee(node)
        reason = next((k.value for k in node.keywords if k.arg == "reason"), None)
        if reason is None and callee == "error_info" and node.args:
            reason = node.args[0]
        if reason is not None:
            self._record(node, self._resolve(reason))
        elif FACTORIES.get(callee) is not None:
            self._record(node, {FACTORIES[callee] or ""})
        self.generic_visit(node)

    def _record(self, node: ast.Call, reasons: set[str] | None) -> None:
        if reasons is not None:
            self.raised.append(Raised(f"{self.path}:{node.lineno}", frozenset(reasons)))

    def _resolve(self, expr: ast.expr) -> set[str] | None:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.Name):
            if self.parameters and expr.id in self.parameters[-1]:
                return None  # a parameter passed through: its callers are read too
            value = self._module_constant(expr.id)
            if isinstance(value, str):
                return {value}
        key = (self.path, ast.unparse(expr))
        if key in DYNAMIC:
            return DYNAMIC[key]
        self.unknown.append(f"{self.path}:{expr.lineno}: reason={key[1]}")
        return None

    def _module_constant(self, name: str) -> object:
        """A module-level string constant of this file, or one it imports by name."""
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return node.value.value if isinstance(node.value, ast.Constant) else None
            if isinstance(node, ast.ImportFrom) and node.module and any(a.name == name for a in node.names):
                return getattr(importlib.import_module(node.module), name, None)
        return None


def raised_in(package: str) -> tuple[list[Raised], list[str]]:
    raised: list[Raised] = []
    unknown: list[str] = []
    for path, tree in parsed(package):
        reader = _Reader(path, tree)
        reader.visit(tree)
        raised += reader.raised
        unknown += reader.unknown
    return raised, unknown


def _outside(raised: list[Raised], allowed: set[str]) -> list[str]:
    return [f"{r.where}: {sorted(r.reasons - allowed)}" for r in raised if not r.reasons <= allowed]


def test_every_service_proto_has_an_error_reason_catalogue_in_the_openapi_description():
    assert set(CATALOGUE.values()) == SERVICE_PROTOS, "a service proto without its *_svc package"
    assert set(SERVICE_ERROR_REASONS) == SERVICE_PROTOS, (
        "each service proto needs an `enum ErrorReason` (gateway.resources finds it after `make proto`)"
    )


@pytest.mark.parametrize("package", list(CATALOGUE))
def test_a_service_raises_only_catalogued_reasons_and_every_one_of_its_own(package):
    catalogue = SERVICE_ERROR_REASONS.get(CATALOGUE[package])
    assert catalogue is not None, f"{CATALOGUE[package]} has no `enum ErrorReason` (or `make proto` was not run)"
    own = set(catalogue)
    raised, unknown = raised_in(package)
    assert not unknown, f"reasons this test cannot work out; list their values in DYNAMIC: {unknown}"
    missing = _outside(raised, own | GENERIC)
    assert not missing, f"add these to the ErrorReason enum of {CATALOGUE[package]} (or the generic list): {missing}"
    stale = own - {reason for r in raised for reason in r.reasons}
    assert not stale, f"{CATALOGUE[package]}.ErrorReason lists reasons nothing raises: {sorted(stale)}"


def test_shared_code_raises_only_generic_reasons_and_the_gateway_only_catalogued_ones():
    every_service = {reason for reasons in SERVICE_ERROR_REASONS.values() for reason in reasons}
    for package in SHARED:
        raised, unknown = raised_in(package)
        assert not unknown, f"reasons this test cannot work out; list their values in DYNAMIC: {unknown}"
        allowed = GENERIC | every_service if package == "gateway" else GENERIC
        missing = _outside(raised, allowed)
        assert not missing, f"add these to GENERIC_ERROR_REASONS in gateway/resources.py: {missing}"


def test_every_generic_reason_is_raised_somewhere():
    raised = {reason for package in (*CATALOGUE, *SHARED) for r in raised_in(package)[0] for reason in r.reasons}
    assert not GENERIC - raised, f"GENERIC_ERROR_REASONS lists reasons nothing raises: {sorted(GENERIC - raised)}"


def test_the_reader_finds_what_it_must(tmp_path):
    """The reader itself: a literal, a module constant, a passed-on parameter and a class default."""
    source = inspect.cleandoc(
        """
        GONE = "THING_GONE"
        def check(reason):
            raise NotFound("gone", reason=GONE)
            raise PermissionDenied("no")
            raise invalid_field("x", "bad")
            raise FailedPrecondition("later", reason="NOT_YET")
            raise Unavailable("down", reason=reason)
        """
    )
    tree = ast.parse(source)
    reader = _Reader("example.py", tree)
    reader.visit(tree)
    assert [sorted(r.reasons) for r in reader.raised] == [
        ["THING_GONE"],
        ["PERMISSION_DENIED"],
        ["INVALID_ARGUMENT"],
        ["NOT_YET"],
    ]
    assert not reader.unknown


def test_the_openapi_error_description_lists_every_reason():
    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    app = create_app(GatewaySettings.model_validate({"log_json": False}))
    description = app.openapi()["components"]["schemas"]["ErrorStatus"]["properties"]["details"]["description"]
    every_service = {reason for reasons in SERVICE_ERROR_REASONS.values() for reason in reasons}
    assert "ErrorReason" in description
    assert not {r for r in GENERIC | every_service if r not in description}
