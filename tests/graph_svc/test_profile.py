"""Profile editing through UpdateUser's mask: display_name, bio and website, each checked and normalised,
the whole request refused (naming the field) with nothing changed, only the fields named changed."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from glimpse.graph.v1 import graph_pb2
from graph_svc.profile import normalised_website
from mesh.errors import InvalidArgument
from tests.graph_svc.conftest import refused, user_of


def update(paths: list[str], **fields: object) -> graph_pb2.UpdateUserRequest:
    return graph_pb2.UpdateUserRequest(user=graph_pb2.User(**fields), update_mask=FieldMask(paths=paths))


async def test_only_the_fields_named_change(graph, make_account):
    owner = await make_account()
    changed = await graph.UpdateUser(
        update(
            ["display_name", "bio", "website"],
            display_name="  Ada Lovelace ",
            bio="Maths\r\nPoetry",
            website="ada.example",
        ),
        metadata=owner.metadata,
    )
    assert (changed.display_name, changed.bio, changed.website) == (
        "Ada Lovelace",
        "Maths\nPoetry",
        "https://ada.example",
    )

    # Fields sent but not named are not read; named ones are, "" included (clears).
    again = await graph.UpdateUser(
        update(["bio"], display_name="ignored", bio="", website="https://ignored.example"), metadata=owner.metadata
    )
    assert (again.display_name, again.bio, again.website) == ("Ada Lovelace", "", "https://ada.example")
    assert not again.is_private and not again.HasField("avatar_url")

    both = await graph.UpdateUser(
        update(["is_private", "website"], is_private=True, website=""), metadata=owner.metadata
    )
    assert both.is_private and both.website == "" and both.display_name == "Ada Lovelace"
    assert (await user_of(graph, owner)) == both


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("display_name", "x" * 65),
        ("display_name", "two\nlines"),
        ("display_name", "evil\u202emoc.elgoog"),
        ("bio", "b" * 151),
        ("bio", "tab\tstop"),
        ("website", "javascript:alert(1)"),
        ("website", "ftp://files.example"),
        ("website", "https://bank.example@evil.example"),
        ("website", "https://"),
        ("website", "https://exa mple.com"),
        ("website", "https://example.com/" + "p" * 200),
        ("website", "https://example.com:99999"),
    ],
)
async def test_a_bad_value_is_refused_naming_its_field_and_nothing_changes(graph, make_account, field, value):
    owner = await make_account()
    before = await graph.UpdateUser(
        update(["display_name", "bio", "website"], display_name="Before", bio="Old bio", website="https://old.example"),
        metadata=owner.metadata,
    )
    # A good value for every other field in the same request: all or none.
    good = {"display_name": "After", "bio": "New bio", "website": "https://new.example", field: value}
    code, _, fields = await refused(
        graph.UpdateUser(
            update(["display_name", "bio", "website", "is_private"], is_private=True, **good), metadata=owner.metadata
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(fields) == [field], fields
    assert (await user_of(graph, owner)) == before


async def test_limits_are_inclusive(graph, make_account):
    owner = await make_account()
    longest = await graph.UpdateUser(
        update(["display_name", "bio"], display_name="é" * 64, bio="🙂" * 150), metadata=owner.metadata
    )
    assert (len(longest.display_name), len(longest.bio)) == (64, 150)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("", ""),
        ("  ", ""),
        ("example.com", "https://example.com"),
        ("HTTP://Example.COM:80/Path?q=1#top", "http://example.com/Path?q=1#top"),
        ("https://example.com:443/", "https://example.com/"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("https://[2001:db8::1]:8080/", "https://[2001:db8::1]:8080/"),
        ("example.com:8080/x", "https://example.com:8080/x"),
        ("192.0.2.7", "https://192.0.2.7"),
    ],
)
def test_websites_are_normalised(given, stored):
    assert normalised_website(given) == stored


def test_a_website_names_only_its_own_field():
    with pytest.raises(InvalidArgument) as refused_website:
        normalised_website("mailto:ada@example.com")
    assert list(refused_website.value.fields) == ["website"]


async def test_search_finds_a_new_display_name(graph, make_account):
    owner = await make_account()
    await graph.UpdateUser(update(["display_name"], display_name="Quintessa Marlowe"), metadata=owner.metadata)
    found = await graph.SearchUsers(graph_pb2.SearchUsersRequest(query="quintessa marlow"))
    assert owner.id in [u.id for u in found.users]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        # A newcomer got "is not a valid URL (Port could not be cast to integer value as 'alert(1)')".
        ("javascript:alert(1)", "must be an http or https URL, not javascript:"),
        ("mailto:ada@example.com", "must be an http or https URL, not mailto:"),
        ("ftp://files.example", "must be an http or https URL, not ftp:"),
        ("https://example.com:port", "has a port that is not a number from 1 to 65535"),
        # ...and "ada" was accepted as https://ada.
        ("ada", "must name a public host such as ada.com, not ada"),
        ("http://localhost/", "must name a public host such as localhost.com, not localhost"),
    ],
)
def test_a_refused_website_says_what_to_write(given, message):
    with pytest.raises(InvalidArgument) as refused:
        normalised_website(given)
    assert refused.value.fields == {"website": message}
