"""Assembles graph_svc: runtime and a media_svc client -> services (accounts, follows, privacy,
profile, blocks, mutes, visibility, reports) -> servicers (GraphService; ModerationService behind the
operator credential) -> host (with the outbox relay and the consumer of media_svc's avatar events)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import AsyncIterator

from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from glimpse.media.v1 import media_pb2_grpc
from graph_svc import models
from graph_svc.accounts import AccountService
from graph_svc.blocks import BlockService
from graph_svc.credentials import Passwords
from graph_svc.erasure import ErasureService
from graph_svc.follows import FollowService
from graph_svc.moderation import OperatorCredential
from graph_svc.mutes import MuteService
from graph_svc.password_change import PasswordChangeService
from graph_svc.privacy import PrivacyService
from graph_svc.profile import ProfileService, avatar_consumer
from graph_svc.reports import ReportService
from graph_svc.servicer import GraphServicer, ModerationServicer
from graph_svc.sessions import SessionService
from graph_svc.settings import GraphSettings
from graph_svc.visibility import VisibilityService
from mesh.bus import run_consumer
from mesh.channels import open_channel
from mesh.runtime import open_runtime
from mesh.server import ServiceHost
from mesh.tokens import signer_from


@contextlib.asynccontextmanager
async def graph_host(settings: GraphSettings) -> AsyncIterator[ServiceHost]:
    async with open_runtime(settings) as runtime, open_channel(settings.media_addr) as media_channel:
        host = runtime.host("graph_svc", settings.listen, settings.metrics_port)
        passwords = Passwords(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        db = runtime.db
        outbox = runtime.outbox(models.outbox, host)  # one relay for the whole schema
        reports = ReportService(db=db, ids=runtime.ids)
        signer = signer_from(settings)
        privacy = PrivacyService(db=db, outbox=outbox)
        profile = ProfileService(
            db=db,
            outbox=outbox,
            privacy=privacy,
            media=media_pb2_grpc.MediaServiceStub(media_channel),
            media_timeout=settings.upstream_timeout_seconds,
        )
        host.add_background(functools.partial(run_consumer, runtime.bus, avatar_consumer(profile)))
        servicer = GraphServicer(
            accounts=AccountService(db=db, ids=runtime.ids, signer=signer, passwords=passwords),
            sessions=SessionService(db=db, ids=runtime.ids, signer=signer),
            password_changes=PasswordChangeService(db=db, passwords=passwords),
            erasure=ErasureService(
                db=db,
                outbox=outbox,
                passwords=passwords,
                username_hold=dt.timedelta(seconds=settings.username_hold_seconds),
            ),
            follows=FollowService(db=db, outbox=outbox, max_following=settings.max_following),
            privacy=privacy,
            profile=profile,
            blocks=BlockService(db=db, outbox=outbox),
            mutes=MuteService(db=db, outbox=outbox),
            visibility=VisibilityService(db=db),
            reports=reports,
        )
        host.add_servicer(
            graph_pb2_grpc.add_GraphServiceServicer_to_server,
            servicer,
            graph_pb2.DESCRIPTOR.services_by_name["GraphService"],
        )
        host.add_servicer(
            graph_pb2_grpc.add_ModerationServiceServicer_to_server,
            ModerationServicer(reports=reports, credential=OperatorCredential(settings.operator_token)),
            graph_pb2.DESCRIPTOR.services_by_name["ModerationService"],
        )
        yield host
