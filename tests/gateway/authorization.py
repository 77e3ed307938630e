"""The shape of an authorization matrix: user B acts on something of user A's through the live gateway,
gets the status the row expects, and afterwards A's side is exactly as it was."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import Account


@dataclass(frozen=True)
class Stack:
    """What rows act through: the live gateway, and (for posts) a way to upload a photo as a user."""

    http: httpx.AsyncClient
    upload: Callable[[Account], Awaitable[int]] | None = None


Made = dict[str, Any]
Arrange = Callable[[Stack, Account, Account], Awaitable[Made]]
Act = Callable[[Stack, Account, Made], Awaitable[httpx.Response]]
Observe = Callable[[Stack, Account, Made], Awaitable[Any]]
Check = Callable[[Stack, httpx.Response, Account, Made], Awaitable[None]]


@dataclass(frozen=True)
class Row:
    """`arrange(stack, a, c)` makes A's resource (C is a third user it may involve) and returns what
    the row needs; `act(stack, b, made)` is B's request; `observe(stack, a, made)` reads A's side,
    which must be the same before and after it; `check(stack, response, a, made)` looks further."""

    name: str
    arrange: Arrange
    act: Act
    status: int
    observe: Observe
    reason: str | None = None
    check: Check | None = None

    def __str__(self) -> str:
        return self.name


async def run_row(row: Row, stack: Stack, a: Account, b: Account, c: Account) -> None:
    made = await row.arrange(stack, a, c)
    before = await row.observe(stack, a, made)
    response = await row.act(stack, b, made)
    assert response.status_code == row.status, response.text
    if row.reason is not None:
        details = response.json()["error"]["details"]
        assert [d["reason"] for d in details if d["type"] == "ErrorInfo"] == [row.reason]
    assert await row.observe(stack, a, made) == before, "A's side changed"
    if row.check is not None:
        await row.check(stack, response, a, made)
