"""The protobuf contracts stay lint-clean (buf, STANDARD rules minus the AIP resource-return ones)."""

from __future__ import annotations

import ast
import contextlib
import subprocess
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_buf_lint_is_clean():
    result = subprocess.run(
        [str(ROOT / ".venv/bin/buf"), "lint"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_architecture_rules_hold():
    """import-linter's contracts (pyproject.toml): mesh imports no service or service contract,
    services never import each other, shared layouts import no service."""
    result = subprocess.run(
        [str(ROOT / ".venv/bin/lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_event_message_is_registered_once():
    """Adding an event = a message in events.proto + one line in mesh.events.REGISTRY: a message
    without its line fails here."""
    from glimpse.events.v1 import events_pb2
    from mesh.events import REGISTRY, stream_table

    declared = set(events_pb2.DESCRIPTOR.message_types_by_name)
    assert {entry.message.__name__ for entry in REGISTRY} == declared
    subjects = [s for subjects in stream_table().values() for s in subjects]
    assert len(subjects) == len(set(subjects)), "a subject is stored by two streams"


def _string_literals(path: Path) -> list[tuple[int, str]]:
    literals = []
    with path.open("rb") as source:
        for token in tokenize.tokenize(source.readline):
            if token.type == tokenize.STRING:
                with contextlib.suppress(ValueError, SyntaxError):
                    value = ast.literal_eval(token.string)
                    if isinstance(value, str):
                        literals.append((token.start[0], value))
    return literals


def test_no_event_subject_is_spelled_outside_the_registry():
    """A string that is exactly a registered subject, or a wildcard over one ("graph.>"), may only
    appear in mesh/events.py: everyone else uses its constants."""
    from mesh.events import REGISTRY

    subjects = {e.subject for e in REGISTRY} | {e.subject.split(".")[0] + ".>" for e in REGISTRY}
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in {".venv", "gen"} or relative == Path("mesh/events.py"):
            continue
        offenders += [f"{relative}:{line}: {value!r}" for line, value in _string_literals(path) if value in subjects]
    assert not offenders, "use the mesh.events constants:\n" + "\n".join(offenders)
