"""Assembles graph_svc: runtime -> services (accounts, follows) -> servicer -> host (with the outbox relay)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from graph_svc import models
from graph_svc.accounts import AccountService
from graph_svc.credentials import Passwords
from graph_svc.follows import FollowService
from graph_svc.servicer import GraphServicer
from graph_svc.settings import GraphSettings
from mesh.runtime import open_runtime
from mesh.server import ServiceHost
from mesh.tokens import signer_from


@contextlib.asynccontextmanager
async def graph_host(settings: GraphSettings) -> AsyncIterator[ServiceHost]:
    async with open_runtime(settings) as runtime:
        host = runtime.host("graph_svc", settings.listen, settings.metrics_port)
        passwords = Passwords(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        accounts = AccountService(db=runtime.db, ids=runtime.ids, signer=signer_from(settings), passwords=passwords)
        follows = FollowService(
            db=runtime.db, outbox=runtime.outbox(models.outbox, host), max_following=settings.max_following
        )
        host.add_servicer(
            graph_pb2_grpc.add_GraphServiceServicer_to_server,
            GraphServicer(accounts=accounts, follows=follows),
            graph_pb2.DESCRIPTOR.services_by_name["GraphService"],
        )
        yield host
