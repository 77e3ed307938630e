"""Accounts through a real GraphService stub: registration rules, login, tokens, lookups, search."""

from __future__ import annotations

import random
import unicodedata
import uuid

import grpc
import pytest
from argon2 import PasswordHasher, Type
from argon2.exceptions import VerifyMismatchError
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from glimpse.graph.v1 import graph_pb2
from mesh.identity import as_caller
from tests.conftest import PASSWORD

# The password: composed (NFC) as most keyboards type it, decomposed (NFD) as some inputs do.
UNICODE_PASSWORD = "Grüße aus Köln, café crème"
NFC, NFD = unicodedata.normalize("NFC", UNICODE_PASSWORD), unicodedata.normalize("NFD", UNICODE_PASSWORD)


def _details(error: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    """(ErrorInfo.reason, {field: description}) carried in the error's google.rpc.Status."""
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries no google.rpc.Status details"
    reason, fields = "", {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = {v.field: v.description for v in bad.field_violations}
    return reason, fields


def register(name: str, password: str = PASSWORD, email: str | None = None) -> graph_pb2.RegisterUserRequest:
    return graph_pb2.RegisterUserRequest(username=name, email=email or f"{name}@example.com", password=password)


async def test_register_normalizes_username_and_hides_credentials(graph, new_username):
    name = new_username()
    user = await graph.RegisterUser(register(name.upper()))
    assert user.username == name
    assert user.id > 0
    assert user.display_name == name
    assert user.follower_count == 0 and user.following_count == 0
    assert not hasattr(user, "password_hash") and not hasattr(user, "email")


async def test_username_is_unique_case_insensitively(graph, new_username):
    name = new_username()
    await graph.RegisterUser(register(name))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await graph.RegisterUser(register(name.upper(), email=f"other_{name}@example.com"))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert _details(caught.value) == ("USERNAME_TAKEN", {"username": "taken"})


async def test_email_is_unique(graph, new_username):
    first, second = new_username(), new_username()
    await graph.RegisterUser(register(first, email=f"{first}@example.com"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await graph.RegisterUser(register(second, email=f"{first.upper()}@EXAMPLE.com"))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert _details(caught.value)[0] == "EMAIL_TAKEN"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("", "at least 8"),
        ("short1", "at least 8"),
        ("password1", "too easy"),
        ("aaaaaaaaaaaa", "too easy"),
        # Leaked or patterned: zxcvbn scores them below 2 (the newcomer's "password123" was accepted).
        ("password123", "very common password"),
        ("qwerty2024", "too easy"),
        ("abcdefgh1", "too easy"),
        ("x" * 129, "at most"),
    ],
)
async def test_weak_passwords_are_refused_and_nothing_is_stored(graph, new_username, password, why):
    name = new_username()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await graph.RegisterUser(register(name, password=password))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, fields = _details(caught.value)
    assert reason == "WEAK_PASSWORD" and why in fields["password"]
    with pytest.raises(grpc.aio.AioRpcError) as lookup:
        await graph.LookupUser(graph_pb2.LookupUserRequest(username=name))
    assert lookup.value.code() == grpc.StatusCode.NOT_FOUND


async def test_password_containing_username_is_weak(graph, new_username):
    name = new_username()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await graph.RegisterUser(register(name, password=f"my {name} pass"))
    assert _details(caught.value)[0] == "WEAK_PASSWORD"


@pytest.mark.parametrize("username", ["ab", "a" * 31, "has space", "émile", "dot..dot", ".lead", "semi;colon", ""])
async def test_malformed_usernames_are_invalid(graph, username):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await graph.RegisterUser(register(username, email="someone@example.com"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "username" in _details(caught.value)[1]


async def test_malformed_email_is_invalid(graph, new_username):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await graph.RegisterUser(register(new_username(), email="not-an-email"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "email" in _details(caught.value)[1]


async def test_login_by_username_or_email_returns_verifiable_tokens(graph, graph_settings, new_username):
    from mesh.tokens import ACCESS, REFRESH, signer_from

    name = new_username()
    user = await graph.RegisterUser(register(name))
    signer = signer_from(graph_settings)
    for login in (name, name.upper(), f"{name}@example.com"):
        session = await graph.AuthenticateUser(graph_pb2.AuthenticateUserRequest(login=login, password=PASSWORD))
        assert session.user.id == user.id
        assert signer.verify(session.access_token, ACCESS) == user.id
        assert signer.verify(session.refresh_token, REFRESH) == user.id
        assert session.access_token_expire_time.ToDatetime() < session.refresh_token_expire_time.ToDatetime()


async def test_wrong_password_and_unknown_user_look_the_same(graph, new_username):
    name = new_username()
    await graph.RegisterUser(register(name))
    errors = []
    for login, password in ((name, "wrong password!"), (new_username(), PASSWORD)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await graph.AuthenticateUser(graph_pb2.AuthenticateUserRequest(login=login, password=password))
        errors.append((caught.value.code(), caught.value.details()))
    assert errors[0] == errors[1] == (grpc.StatusCode.UNAUTHENTICATED, "wrong username or password")


async def test_refresh_needs_a_refresh_token(graph, new_username):
    name = new_username()
    await graph.RegisterUser(register(name))
    session = await graph.AuthenticateUser(graph_pb2.AuthenticateUserRequest(login=name, password=PASSWORD))
    renewed = await graph.RefreshAccessToken(graph_pb2.RefreshAccessTokenRequest(refresh_token=session.refresh_token))
    assert renewed.user.id == session.user.id and renewed.access_token
    for bad in (session.access_token, "garbage", ""):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await graph.RefreshAccessToken(graph_pb2.RefreshAccessTokenRequest(refresh_token=bad))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_get_batch_get_and_lookup(graph, make_account):
    a, b = await make_account(), await make_account()
    assert (await graph.GetUser(graph_pb2.GetUserRequest(user_id=a.id))).username == a.user.username
    batch = await graph.BatchGetUsers(graph_pb2.BatchGetUsersRequest(user_ids=[b.id, 12345, a.id, b.id]))
    assert [u.id for u in batch.users] == [b.id, a.id, b.id]
    found = await graph.LookupUser(graph_pb2.LookupUserRequest(username="@" + a.user.username.upper()))
    assert found.id == a.id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await graph.GetUser(graph_pb2.GetUserRequest(user_id=12345))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as too_many:
        await graph.BatchGetUsers(graph_pb2.BatchGetUsersRequest(user_ids=list(range(1, 102))))
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# Search ------------------------------------------------------------------------------------------


async def search(
    graph, query: str, viewer: graph_pb2.User | None = None, page_size: int = 100, page_token: str = ""
) -> graph_pb2.SearchUsersResponse:
    request = graph_pb2.SearchUsersRequest(query=query, page_size=page_size, page_token=page_token)
    return await graph.SearchUsers(request, metadata=as_caller(viewer.id) if viewer else ())


async def search_names(graph, query: str, viewer: graph_pb2.User | None = None) -> list[str]:
    return [user.username for user in (await search(graph, query, viewer)).users]


async def all_pages(graph, query: str, page_size: int, viewer: graph_pb2.User | None = None) -> list[str]:
    names, token = [], ""
    while True:
        page = await search(graph, query, viewer, page_size, token)
        names += [user.username for user in page.users]
        token = page.next_page_token
        if not token:
            return names


async def test_search_ranks_exact_then_prefix_then_two_edits_then_similar(graph):
    # A stem of its own, so that the run's other users (u<run>_<n>) are not near these names.
    stem = f"q{uuid.uuid4().hex[:8]}"
    query = f"{stem}ada"
    users = {}
    for name, display_name in [
        (f"{stem}ada_a", ""),
        (f"{stem}ada_b", ""),
        (f"{stem}adx", ""),  # one substitution
        (f"{stem}da", ""),  # one deletion
        (f"{stem}byron", f"{query} Byron"),  # only the display name matches, but exactly
        (query, ""),
    ]:
        users[name] = await graph.RegisterUser(
            graph_pb2.RegisterUserRequest(
                username=name, email=f"{name}@example.com", password=PASSWORD, display_name=display_name
            )
        )
    # Equal similarity (one differing letter each): the more followed first, whatever the alphabet says.
    follow = graph_pb2.FollowUserRequest(target_user_id=users[f"{stem}ada_b"].id)
    await graph.FollowUser(follow, metadata=as_caller(users[f"{stem}adx"].id))
    found = await search_names(graph, query)
    assert found[:3] == [query, f"{stem}ada_b", f"{stem}ada_a"]
    assert set(found[3:5]) == {f"{stem}adx", f"{stem}da"}
    assert found[5] == f"{stem}byron"
    # Pages follow the same order, each user once, across ties of score and followers.
    assert await all_pages(graph, query, page_size=1) == found
    assert await all_pages(graph, query, page_size=2) == found
    # Case, spaces and '@' do not matter.
    assert (await search_names(graph, f"  @{query.upper()} "))[:3] == found[:3]


async def test_one_and_two_typos_find_the_user(graph):
    users = {name: await graph.RegisterUser(register(name)) for name in ("reed0", "reed1", "reed10", "ada.lovelace")}
    # reed1 is as trigram-similar to "rede0" as reed0 is (0.2) and more followed: only the edit distance
    # (2 against 3) puts reed0 first.
    follow = graph_pb2.FollowUserRequest(target_user_id=users["reed1"].id)
    await graph.FollowUser(follow, metadata=as_caller(users["reed10"].id))
    for query in ("reed0", "reeed0", "rede0", "reed0 ", "@reed0"):
        assert (await search_names(graph, query))[0] == "reed0", query
    # Two typos: a deletion and a transposition, a missing dot and letter.
    for query in ("ada.lvelac", "adalovlace", "ada.lovleace"):
        assert (await search_names(graph, query))[0] == "ada.lovelace", query


async def test_display_names_match_with_typos_too(graph, new_username):
    name = new_username()
    await graph.RegisterUser(
        graph_pb2.RegisterUserRequest(
            username=name, email=f"{name}@example.com", password=PASSWORD, display_name="Zephyrine Quackenbush"
        )
    )
    for query in ("Zephyrine Quackenbush", "quackenbush", "quakenbush", "zephyrine"):
        assert name in await search_names(graph, query), query


async def test_blocked_users_never_appear(graph, make_account):
    viewer, blocked, blocker = await make_account(), await make_account(), await make_account()
    for target, by in ((blocked, viewer), (viewer, blocker)):
        await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=target.id), metadata=by.metadata)
    for other in (blocked, blocker):
        name = other.user.username
        # Exact, prefix and a typo: found by anyone else, never by the viewer (nor the viewer by them).
        for query in (name, name[:-1], name[:-1] + "x"):
            assert name in await search_names(graph, query), query
            assert name not in await search_names(graph, query, viewer.user), query
        assert viewer.user.username not in await search_names(graph, viewer.user.username, other.user)


async def test_search_rejects_bad_queries_and_foreign_tokens(graph, new_username):
    for query in ("", "   ", "@", "x" * 65):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await search(graph, query)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(_details(caught.value)[1]) == ["query"]
    # What is no username is still a display name to look for: nothing matches, nothing fails (LIKE's
    # wildcards are plain text here). Letters no generated name holds: "50% off_" once matched
    # another test's user "u2d1876ff_50" by similarity, which is the search working.
    assert await search_names(graph, "zq% wv_") == []
    prefix = new_username()
    for i in range(3):
        await graph.RegisterUser(register(f"{prefix}x{i}"))
    page = await search(graph, prefix, page_size=1)
    for token in ("!!not-base64!!", "eyJmb28iOiAxfQ", page.next_page_token):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await search(graph, prefix + "x0", page_token=token)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in caught.value.details()


def login(name: str, password: str) -> graph_pb2.AuthenticateUserRequest:
    return graph_pb2.AuthenticateUserRequest(login=name, password=password)


async def test_a_password_logs_in_in_any_unicode_form(graph, new_username):
    assert NFC != NFD
    name = new_username()
    user = await graph.RegisterUser(register(name, password=NFC))
    # NFD; NFC with a no-break space and an ideographic space for two of its spaces (RFC 8265 maps them).
    for form in (NFD, NFC, NFC.replace(" ", "\u00a0", 1).replace(" ", "\u3000", 1)):
        session = await graph.AuthenticateUser(login(name, form))
        assert session.user.id == user.id
    # Registered decomposed, it logs in composed.
    other = new_username()
    await graph.RegisterUser(register(other, password=NFD))
    assert (await graph.AuthenticateUser(login(other, NFC))).user.username == other
    # Preparation is no case or width folding: those would be other passwords.
    for wrong in (NFC.upper(), NFC.replace("G", "\uff27")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await graph.AuthenticateUser(login(name, wrong))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_hash_of_a_raw_unnormalised_password_logs_in_and_is_rehashed(graph, graph_settings, new_username):
    """Accounts registered before passwords were prepared hold argon2(raw NFD text)."""
    name = new_username()
    user = await graph.RegisterUser(register(name))
    hasher = PasswordHasher(
        time_cost=graph_settings.argon2_time_cost,
        memory_cost=graph_settings.argon2_memory_kib,
        parallelism=graph_settings.argon2_parallelism,
        type=Type.ID,
    )
    legacy_hash = hasher.hash(NFD)
    engine = create_async_engine(graph_settings.database_url)
    stored = text("SELECT password_hash FROM graph.users WHERE id = :id")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE graph.users SET password_hash = :hash WHERE id = :id"),
                {"hash": legacy_hash, "id": user.id},
            )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await graph.AuthenticateUser(login(name, NFD + "x"))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        async with engine.connect() as conn:
            assert (await conn.execute(stored, {"id": user.id})).scalar_one() == legacy_hash

        assert (await graph.AuthenticateUser(login(name, NFD))).user.id == user.id
        async with engine.connect() as conn:
            new_hash = (await conn.execute(stored, {"id": user.id})).scalar_one()
    finally:
        await engine.dispose()
    assert new_hash != legacy_hash
    assert hasher.verify(new_hash, NFC)
    with pytest.raises(VerifyMismatchError):
        hasher.verify(new_hash, NFD)
    # Rehashed to the prepared form, it now logs in from any form.
    assert (await graph.AuthenticateUser(login(name, NFC))).user.id == user.id
    assert (await graph.AuthenticateUser(login(name, NFD))).user.id == user.id


async def test_password_length_counts_the_prepared_form(graph, new_username):
    # Seven characters composed, eleven code points decomposed: too short.
    short = unicodedata.normalize("NFD", "éèêëabc")
    assert len(short) == 11
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await graph.RegisterUser(register(new_username(), password=short))
    assert _details(caught.value) == ("WEAK_PASSWORD", {"password": "must be at least 8 characters"})
    # 128 characters composed (the most allowed), 192 code points decomposed: accepted.
    # (random letters, not a repeat, which the strength estimate would refuse)
    rng = random.Random(128)
    longest = unicodedata.normalize("NFD", "".join(rng.choice("éèàüabcdefgh1234") for _ in range(128)))
    assert len(longest) > 128
    name = new_username()
    await graph.RegisterUser(register(name, password=longest))
    assert (await graph.AuthenticateUser(login(name, unicodedata.normalize("NFC", longest)))).user.username == name


@pytest.mark.parametrize("control", ["\t", "\n", "\x00", "\x7f", "\x85"])
async def test_passwords_with_control_characters_are_refused(graph, new_username, control):
    name = new_username()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await graph.RegisterUser(register(name, password=f"a long enough{control}passphrase"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "password" in _details(caught.value)[1]
