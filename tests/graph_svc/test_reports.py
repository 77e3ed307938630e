"""Reports through real GraphService and ModerationService stubs: a report keeps its snapshot, a repeat
answers the open report, and only callers with the operator token list and resolve them (grpcurl as an
operator runs it included)."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from pydantic import ValidationError
from sqlalchemy import text

from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from graph_svc import models
from graph_svc.reports import MAX_DETAILS, MAX_NOTE, MAX_SNAPSHOT_BYTES
from graph_svc.settings import GraphSettings
from tests.conftest import grpcurl
from tests.graph_svc.conftest import OPERATOR, OPERATOR_TOKEN, refused

POST, USER = graph_pb2.REPORT_SUBJECT_TYPE_POST, graph_pb2.REPORT_SUBJECT_TYPE_USER
OPEN, RESOLVED = graph_pb2.REPORT_STATE_OPEN, graph_pb2.REPORT_STATE_RESOLVED
NO_VIOLATION, ACTION_TAKEN = graph_pb2.REPORT_RESOLUTION_NO_VIOLATION, graph_pb2.REPORT_RESOLUTION_ACTION_TAKEN


def snapshot(**content: object) -> Struct:
    found = Struct()
    found.update(content)
    return found


def report_of(subject_id: int, author_id: int, **overrides: object) -> graph_pb2.CreateReportRequest:
    fields: dict[str, object] = {
        "subject_type": POST,
        "subject_id": subject_id,
        "reported_user_id": author_id,
        "reason": graph_pb2.REPORT_REASON_SPAM,
        "details": "buy followers at ...",
        "snapshot": snapshot(id=str(subject_id), caption="Cheap followers!", media=[{"id": "7"}]),
    }
    fields.update(overrides)
    return graph_pb2.CreateReportRequest(**fields)  # type: ignore[arg-type]


async def test_a_report_keeps_its_snapshot_and_a_repeat_answers_the_open_one(graph, moderation, make_account):
    reporter, author = await make_account(), await make_account()
    request = report_of(424242, author.id)
    first = await graph.CreateReport(request, metadata=reporter.metadata)
    assert (first.reporter_id, first.subject_type, first.subject_id, first.reported_user_id) == (
        reporter.id,
        POST,
        424242,
        author.id,
    )
    assert (first.reason, first.details, first.state, first.resolution) == (
        graph_pb2.REPORT_REASON_SPAM,
        "buy followers at ...",
        OPEN,
        graph_pb2.REPORT_RESOLUTION_UNSPECIFIED,
    )
    assert json_format.MessageToDict(first.snapshot) == {
        "id": "424242",
        "caption": "Cheap followers!",
        "media": [{"id": "7"}],
    }
    assert first.HasField("create_time") and not first.HasField("resolve_time")

    # A repeat (a retry, a double tap) files nothing new, even with other words.
    again = await graph.CreateReport(report_of(424242, author.id, details="twice"), metadata=reporter.metadata)
    assert again == first
    # Someone else's report of the same post is its own.
    other = await graph.CreateReport(request, metadata=author.metadata)
    assert other.id != first.id

    stored = await moderation.GetReport(graph_pb2.GetReportRequest(report_id=first.id), metadata=OPERATOR)
    assert stored == first
    resolved = await moderation.ResolveReport(
        graph_pb2.ResolveReportRequest(report_id=first.id, resolution=NO_VIOLATION, note="an ad, allowed"),
        metadata=OPERATOR,
    )
    assert (resolved.state, resolved.resolution, resolved.resolution_note) == (RESOLVED, NO_VIOLATION, "an ad, allowed")
    assert resolved.HasField("resolve_time") and resolved.snapshot == first.snapshot
    # Once resolved, reporting the post again opens a new report.
    fresh = await graph.CreateReport(request, metadata=reporter.metadata)
    assert fresh.id != first.id and fresh.state == OPEN


async def test_resolving_is_repeatable_but_not_changeable(graph, moderation, make_account):
    reporter, author = await make_account(), await make_account()
    report = await graph.CreateReport(report_of(1, author.id, subject_type=USER), metadata=reporter.metadata)
    resolve = graph_pb2.ResolveReportRequest(report_id=report.id, resolution=ACTION_TAKEN, note="suspended")
    first = await moderation.ResolveReport(resolve, metadata=OPERATOR)
    assert await moderation.ResolveReport(resolve, metadata=OPERATOR) == first
    changed = graph_pb2.ResolveReportRequest(report_id=report.id, resolution=NO_VIOLATION, note="suspended")
    code, reason, _ = await refused(moderation.ResolveReport(changed, metadata=OPERATOR))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REPORT_ALREADY_RESOLVED")
    for request, field in (
        (graph_pb2.ResolveReportRequest(report_id=report.id), "resolution"),
        (graph_pb2.ResolveReportRequest(report_id=report.id, resolution=99), "resolution"),
        (
            graph_pb2.ResolveReportRequest(report_id=report.id, resolution=NO_VIOLATION, note="x" * (MAX_NOTE + 1)),
            "note",
        ),
    ):
        code, _, fields = await refused(moderation.ResolveReport(request, metadata=OPERATOR))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field in fields
    for call in (
        moderation.GetReport(graph_pb2.GetReportRequest(report_id=987654321), metadata=OPERATOR),
        moderation.ResolveReport(
            graph_pb2.ResolveReportRequest(report_id=987654321, resolution=NO_VIOLATION), metadata=OPERATOR
        ),
    ):
        code, reason, _ = await refused(call)
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "REPORT_NOT_FOUND")


async def test_create_report_refuses_what_it_cannot_keep(graph, make_account):
    reporter = await make_account()
    cases = {
        "subject_type": report_of(1, 2, subject_type=graph_pb2.REPORT_SUBJECT_TYPE_UNSPECIFIED),
        "subject_id": report_of(0, 2),
        "reported_user_id": report_of(1, 0),
        "reason": report_of(1, 2, reason=graph_pb2.REPORT_REASON_UNSPECIFIED),
        "details": report_of(1, 2, details="x" * (MAX_DETAILS + 1)),
        "snapshot": report_of(1, 2, snapshot=Struct()),
    }
    cases["snapshot (too big)"] = report_of(1, 2, snapshot=snapshot(caption="x" * MAX_SNAPSHOT_BYTES))
    for field, request in cases.items():
        code, _, fields = await refused(graph.CreateReport(request, metadata=reporter.metadata))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field.split()[0] in fields, field
    # A reason this release does not know is refused too (proto3 enums carry any number).
    unknown = report_of(1, 2)
    unknown.reason = 42  # type: ignore[assignment]
    code, _, fields = await refused(graph.CreateReport(unknown, metadata=reporter.metadata))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "reason" in fields
    code, reason, _ = await refused(graph.CreateReport(report_of(1, 2)))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "NO_CALLER")


async def test_every_reason_and_resolution_is_storable(graph, moderation, make_account):
    """The wire enums, the stored words and the migrated checks agree (a new enum value without a
    migration fails here)."""
    reporter = await make_account()
    for number, name in enumerate(graph_pb2.ReportReason.keys()):
        if number == 0:
            continue
        report = await graph.CreateReport(report_of(10_000 + number, 2, reason=number), metadata=reporter.metadata)
        assert graph_pb2.ReportReason.Name(report.reason) == name
    for resolution in (ACTION_TAKEN, NO_VIOLATION):
        report = await graph.CreateReport(report_of(20_000 + resolution, 2), metadata=reporter.metadata)
        resolved = await moderation.ResolveReport(
            graph_pb2.ResolveReportRequest(report_id=report.id, resolution=resolution), metadata=OPERATOR
        )
        assert resolved.resolution == resolution


async def test_the_migrated_checks_spell_the_models_vocabularies(sql):
    async with sql.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'graph.reports'::regclass AND contype = 'c'"
            )
        )
        checks = dict(rows.all())
    for name, words in (
        ("known_subject_type", models.REPORT_SUBJECT_TYPES),
        ("known_reason", models.REPORT_REASONS),
        ("known_state", models.REPORT_STATES),
        ("known_resolution", models.REPORT_RESOLUTIONS),
    ):
        assert sorted(w.strip("'") for w in _quoted(checks[name])) == sorted(words), name


def _quoted(definition: str) -> list[str]:
    """The quoted words of a CHECK's IN list, as PostgreSQL prints it: ... = ANY (ARRAY['a'::text, ...])."""
    return [part.split("'")[1] for part in definition.split("ARRAY[", 1)[1].split(",")]


async def test_operators_list_reports_oldest_first_by_state(graph, moderation, make_account):
    reporter = await make_account()
    made = [await graph.CreateReport(report_of(30_000 + i, 2), metadata=reporter.metadata) for i in range(3)]
    await moderation.ResolveReport(
        graph_pb2.ResolveReportRequest(report_id=made[1].id, resolution=NO_VIOLATION), metadata=OPERATOR
    )

    async def listed(state: int) -> list[int]:
        ids, token = [], ""
        while True:
            page = await moderation.ListReports(
                graph_pb2.ListReportsRequest(state=state, page_size=2, page_token=token), metadata=OPERATOR
            )
            ids += [r.id for r in page.reports]
            token = page.next_page_token
            if not token:
                return ids

    mine = {r.id for r in made}
    assert [i for i in await listed(OPEN) if i in mine] == [made[0].id, made[2].id]
    assert [i for i in await listed(RESOLVED) if i in mine] == [made[1].id]
    everything = await listed(graph_pb2.REPORT_STATE_UNSPECIFIED)
    assert [i for i in everything if i in mine] == [r.id for r in made] and everything == sorted(everything)
    code, _, fields = await refused(moderation.ListReports(graph_pb2.ListReportsRequest(state=9), metadata=OPERATOR))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "state" in fields
    first = await moderation.ListReports(graph_pb2.ListReportsRequest(state=OPEN, page_size=1), metadata=OPERATOR)
    code, _, fields = await refused(
        moderation.ListReports(
            graph_pb2.ListReportsRequest(state=RESOLVED, page_token=first.next_page_token), metadata=OPERATOR
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in fields


async def test_moderation_refuses_callers_without_the_operator_token(graph, moderation, make_account):
    reporter = await make_account()
    report = await graph.CreateReport(report_of(40_000, 2), metadata=reporter.metadata)
    calls = [
        lambda metadata: moderation.ListReports(graph_pb2.ListReportsRequest(), metadata=metadata),
        lambda metadata: moderation.GetReport(graph_pb2.GetReportRequest(report_id=report.id), metadata=metadata),
        lambda metadata: moderation.ResolveReport(
            graph_pb2.ResolveReportRequest(report_id=report.id, resolution=ACTION_TAKEN), metadata=metadata
        ),
    ]
    wrong = (("x-operator-token", OPERATOR_TOKEN[:-1] + "?"),)
    for call in calls:
        for metadata in ((), wrong, reporter.metadata, (("x-operator-token", ""),)):
            code, reason, _ = await refused(call(metadata))
            assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "OPERATOR_TOKEN_INVALID")
    assert (
        await moderation.GetReport(graph_pb2.GetReportRequest(report_id=report.id), metadata=OPERATOR)
    ).state == OPEN


async def test_moderation_is_off_without_a_configured_token(graph_addr):
    """The suite's shared graph_svc has no GLIMPSE_OPERATOR_TOKEN: its moderation answers nobody."""
    async with grpc.aio.insecure_channel(graph_addr) as channel:
        moderation = graph_pb2_grpc.ModerationServiceStub(channel)
        for metadata in ((), OPERATOR):
            code, reason, _ = await refused(moderation.ListReports(graph_pb2.ListReportsRequest(), metadata=metadata))
            assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MODERATION_DISABLED")


def test_a_short_operator_token_stops_the_service_at_start():
    with pytest.raises(ValidationError, match="operator_token"):
        GraphSettings(operator_token="too-short")
    assert GraphSettings(operator_token="").operator_token == ""
    assert "x" * 40 not in repr(GraphSettings(operator_token="x" * 40))


async def test_an_operator_lists_and_resolves_with_grpcurl(graph, moderated_graph_addr, make_account):
    """grpcurl runs in a thread: the server it calls answers on this test's event loop."""
    reporter = await make_account()
    report = await graph.CreateReport(report_of(50_000, 2), metadata=reporter.metadata)
    header = f"x-operator-token: {OPERATOR_TOKEN}"
    service = "glimpse.graph.v1.ModerationService"
    query = '{"state": "REPORT_STATE_OPEN", "page_size": 100}'
    listed = await asyncio.to_thread(grpcurl, "-H", header, "-d", query, moderated_graph_addr, f"{service}/ListReports")
    assert listed.returncode == 0, listed.stderr
    assert str(report.id) in [r["id"] for r in json.loads(listed.stdout)["reports"]]
    body = {"report_id": str(report.id), "resolution": "REPORT_RESOLUTION_ACTION_TAKEN", "note": "removed"}
    resolved = await asyncio.to_thread(
        grpcurl, "-H", header, "-d", json.dumps(body), moderated_graph_addr, f"{service}/ResolveReport"
    )
    assert resolved.returncode == 0, resolved.stderr
    assert json.loads(resolved.stdout)["state"] == "REPORT_STATE_RESOLVED"
    refused_call = await asyncio.to_thread(grpcurl, "-d", "{}", moderated_graph_addr, f"{service}/ListReports")
    assert refused_call.returncode != 0 and "OPERATOR_TOKEN_INVALID" in refused_call.stderr + refused_call.stdout
