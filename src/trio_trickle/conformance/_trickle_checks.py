"""Trickle checks, part 1: changefeed, channels, names, ``/next``, routing and errors.

Registration order is run order: the changefeed start check comes first so
that, on a fresh server, segment 0 of ``_changes`` is still in the ring.
Sequence numbers, publishing, subscribing and teardown checks live in
``_trickle_checks_seq``, ``_trickle_checks_publish``, ``_trickle_checks_subscribe``
and ``_trickle_checks_teardown``.
"""

from __future__ import annotations

import json
from typing import Any

from ._context import (
    CheckContext,
    expect,
    expect_header,
    expect_no_header,
    expect_status,
    expect_text,
)
from ._http import CheckFailed, CheckSkipped, RawResponse
from ._runner import (
    Requires,
    check,
)

__all__: list[str] = []

CHANGES = "_changes"


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise CheckFailed(f"{what}: body is not JSON: {body[:80]!r}") from None


def _in_process(ctx: CheckContext) -> Any:
    if ctx.in_process is None:
        raise CheckSkipped("no in-process hook")
    return ctx.in_process


# -- changefeed -----------------------------------------------------------------------


@check(
    "TRK-085",
    title='changefeed _changes starts with segment 0 = {"added":["_changes"]}',
    requires=Requires(changefeed=True),
)
async def changefeed_start(ctx: CheckContext) -> None:
    response = await ctx.get(CHANGES, 0)
    if response.status_code == 470:
        raise CheckSkipped("segment 0 of _changes already left the ring (needs a fresh server)")
    expect_status(response, 200, "GET _changes/0")
    expect_header(response, "Content-Type", "application/json", "GET _changes/0")
    got = _json(response.content, "GET _changes/0")
    expect(got == {"added": [CHANGES]}, f"GET _changes/0: expected the start message, got {got}")


async def _find_change(ctx: CheckContext, start: int, wanted: dict[str, list[str]]) -> None:
    """Read ``_changes`` from ``start`` until a segment equals ``wanted`` (8 at most)."""
    seen: list[Any] = []
    for seq in range(start, start + 8):
        response, body = await ctx.watch(CHANGES, seq).finished(2.0)
        expect_status(response, 200, f"GET _changes/{seq}")
        message = _json(body, f"GET _changes/{seq}")
        ok = isinstance(message, dict) and set(message) <= {"added", "removed"} and message
        expect(bool(ok), f"_changes/{seq} must hold one added/removed object, got {message!r}")
        if message == wanted:
            return
        seen.append(message)
    raise CheckFailed(f"_changes never published {wanted} (saw {seen})")


@check(
    "TRK-086",
    title="changefeed publishes one added / removed object per creation and DELETE",
    requires=Requires(changefeed=True, creates=True),
)
async def changefeed_events(ctx: CheckContext) -> None:
    start = await ctx.next_write(CHANGES)
    name = await ctx.channel()
    await _find_change(ctx, start, {"added": [name]})
    start = await ctx.next_write(CHANGES)
    expect_status(await ctx.delete(name), 200, f"DELETE {name}")
    await _find_change(ctx, start, {"removed": [name]})


# -- creating and deleting channels ------------------------------------------------------


@check("TRK-004", title="POST {ch} on an existing channel answers 200 and changes nothing")
async def create_existing(ctx: CheckContext) -> None:
    name = await ctx.channel()
    await ctx.publish_ok(name, 0, b"zero")
    response = await ctx.client.post(
        ctx.url(name), headers={"Expect-Content": "application/x-other"}, content=b"ignored"
    )
    expect_status(response, 200, f"POST {name} (exists)")
    expect(response.content == b"", f"POST {name}: body must be empty, got {response.content!r}")
    expect(await ctx.next_write(name) == 1, f"POST {name} must leave nextWrite at 1")
    segment = await ctx.get(name, 0)
    expect_status(segment, 200, f"GET {name}/0")
    expect(segment.content == b"zero", f"GET {name}/0: segment changed: {segment.content!r}")
    mime = ctx.known_mime(name)
    got = segment.headers.get("content-type")
    if mime is not None:
        expect_header(segment, "Content-Type", mime, f"GET {name}/0 after POST {name}")
    expect(got != "application/x-other", "POST {ch} must not change the channel's MIME type")


@check(
    "TRK-005",
    title="POST {ch} for a missing channel with autocreate off answers 404, creates nothing",
    requires=Requires(autocreate=False),
)
async def create_without_autocreate(ctx: CheckContext) -> None:
    name = ctx.name()
    response = await ctx.client.post(ctx.url(name), headers={"Expect-Content": "text/plain"})
    expect_status(response, 404, f"POST {name}")
    expect_status(await ctx.get(name, "next"), 404, f"GET {name}/next after refused create")


@check(
    "TRK-006",
    "TRK-016",
    title="POST {ch} creates with Expect-Content as MIME (empty when absent), body ignored",
    requires=Requires(http_create=True),
)
async def create_with_mime(ctx: CheckContext) -> None:
    for mime in ("application/x-conformance", None):
        name = ctx.name()
        headers = {} if mime is None else {"Expect-Content": mime}
        response = await ctx.client.post(ctx.url(name), headers=headers, content=b"ignored")
        expect_status(response, 200, f"POST {name}")
        expect(response.content == b"", f"POST {name}: body must be empty")
        expect(await ctx.next_write(name) == 0, f"new channel {name} must start at nextWrite 0")
        await ctx.publish_ok(name, 0, b"data")
        segment = await ctx.get(name, 0)
        expect_status(segment, 200, f"GET {name}/0")
        expect_header(segment, "Content-Type", mime or "", f"GET {name}/0")


@check(
    "TRK-008",
    title="in-process create works regardless of autocreate and is idempotent",
    requires=Requires(in_process=True, creates=True),
)
async def create_in_process(ctx: CheckContext) -> None:
    hooks = _in_process(ctx)
    name = ctx.name()
    hooks.create_channel(name, "text/x-first")
    expect(await ctx.next_write(name) == 0, "in-process created channel must exist at 0")
    await ctx.publish_ok(name, 0, b"one")
    hooks.create_channel(name, "text/x-second")
    expect(await ctx.next_write(name) == 1, "a second in-process create must change nothing")
    segment = await ctx.get(name, 0)
    expect_header(segment, "Content-Type", "text/x-first", f"GET {name}/0")


@check(
    "TRK-009",
    title="before-create hook refusal answers its 4xx and message, also for existing channels",
    requires=Requires(hooks=True, in_process=True),
)
async def hook_refuses_create(ctx: CheckContext) -> None:
    hooks = _in_process(ctx)
    name = ctx.name(hooks.deny_prefix)
    response = await ctx.client.post(ctx.url(name), headers={"Expect-Content": "text/plain"})
    expect_status(response, hooks.deny_status, f"POST {name} (hook refuses)")
    expect_text(response, hooks.deny_message, f"POST {name} (hook refuses)")
    expect_status(await ctx.get(name, "next"), 404, f"GET {name}/next after refusal")
    existing = ctx.name(hooks.deny_prefix)
    hooks.create_channel(existing, "text/plain")
    response = await ctx.client.post(ctx.url(existing))
    expect_status(response, hooks.deny_status, f"POST {existing} (exists; hook runs first)")


@check(
    "TRK-010",
    "TRK-014",
    title="failing hooks answer 500; before-delete refusal keeps the channel",
    requires=Requires(hooks=True, in_process=True),
)
async def hook_failures(ctx: CheckContext) -> None:
    hooks = _in_process(ctx)
    if hooks.fail_prefix is None:
        raise CheckSkipped("no failing-hook name prefix configured")
    failing = ctx.name(hooks.fail_prefix)
    expect_status(await ctx.client.post(ctx.url(failing)), 500, f"POST {failing} (hook fails)")
    expect_status(await ctx.get(failing, "next"), 404, f"GET {failing}/next after failure")
    refused = ctx.name(hooks.deny_prefix)
    hooks.create_channel(refused, "text/plain")
    response = await ctx.delete(refused)
    expect_status(response, hooks.deny_status, f"DELETE {refused} (hook refuses)")
    expect_status(await ctx.get(refused, "next"), 200, f"{refused} must survive the refusal")
    missing = ctx.name(hooks.deny_prefix)
    response = await ctx.delete(missing)
    expect_status(response, hooks.deny_status, f"DELETE {missing} (missing; hook runs first)")
    failing = ctx.name(hooks.fail_prefix)
    hooks.create_channel(failing, "text/plain")
    expect_status(await ctx.delete(failing), 500, f"DELETE {failing} (hook fails)")
    expect_status(await ctx.get(failing, "next"), 200, f"{failing} must survive a failed hook")


@check(
    "TRK-011",
    title="an autocreating segment POST passes the before-create hook",
    requires=Requires(hooks=True, in_process=True, autocreate=True),
    deviation=True,
)
async def hook_on_autocreate(ctx: CheckContext) -> None:
    hooks = _in_process(ctx)
    name = ctx.name(hooks.deny_prefix)
    response = await ctx.publish(name, 0, b"x", headers={"Content-Type": "text/plain"})
    expect_status(response, hooks.deny_status, f"POST {name}/0 (autocreate, hook refuses)")
    expect_status(await ctx.get(name, "next"), 404, f"GET {name}/next after refusal")


@check("TRK-012", title="DELETE {ch} answers 200 with an empty body and removes the channel")
async def delete_channel(ctx: CheckContext) -> None:
    name = await ctx.channel()
    response = await ctx.delete(name)
    expect_status(response, 200, f"DELETE {name}")
    expect(response.content == b"", f"DELETE {name}: body must be empty")
    expect_status(await ctx.get(name, "next"), 404, f"GET {name}/next after DELETE")


@check("TRK-013", title="DELETE {ch} for a missing channel answers 400 Invalid stream")
async def delete_missing(ctx: CheckContext) -> None:
    name = ctx.name()
    response = await ctx.delete(name)
    expect_status(response, 400, f"DELETE {name} (missing)")
    expect_text(response, "Invalid stream", f"DELETE {name} (missing)")


@check(
    "TRK-015",
    title="channel limit: a creation beyond it answers 503 and creates nothing",
    requires=Requires(http_create=True, max_channels=True),
    deviation=True,
    timeout=lambda o: 5.0 + 0.02 * (o.max_channels or 0),
)
async def channel_limit(ctx: CheckContext) -> None:
    limit = ctx.options.max_channels or 0
    created: list[str] = []
    for _ in range(limit + 1):
        name = ctx.name()
        response = await ctx.client.post(ctx.url(name), headers={"Expect-Content": "text/plain"})
        if response.status_code == 503:
            gone = await ctx.get(name, "next")
            expect_status(gone, 404, f"{name} refused with 503 must not exist")
            expect(bool(created) or limit == 0, "503 before any channel could be created")
            expect_status(await ctx.delete(created[0]), 200, f"DELETE {created[0]}")
            retry = await ctx.client.post(ctx.url(name))
            expect_status(retry, 200, f"POST {name} after a channel was freed")
            return
        expect_status(response, 200, f"POST {name} (channel {len(created) + 1} of {limit})")
        created.append(name)
    raise CheckFailed(f"{limit + 1} creations succeeded with --max-channels {limit}")


# -- channel names ---------------------------------------------------------------------------


@check(
    "TRK-001",
    title="names of unreserved characters up to 256 long work",
    requires=Requires(creates=True),
)
async def valid_names(ctx: CheckContext) -> None:
    stem = ctx.name()
    names = [(stem + "-" + "x" * 256)[:256], stem + "-._~AZaz09"]
    for name in names:
        await ctx.create(name)
        await ctx.publish_ok(name, 0, b"ok")
        response = await ctx.get(name, 0)
        expect_status(response, 200, f"GET {name[:40]}.../0")
        expect(response.content == b"ok", f"GET {name[:40]}.../0 returned {response.content!r}")


async def _raw_request(ctx: CheckContext, method: str, target: str, body: bytes) -> RawResponse:
    connection = await ctx.raw()
    return await connection.request(method, target, [("Connection", "close")], body)


_SEQ_SUFFIXES = (
    ("POST", "", b""),
    ("POST", "/0", b"x"),
    ("GET", "/0", b""),
    ("GET", "/next", b""),
    ("DELETE", "", b""),
)


@check(
    "TRK-002",
    title="invalid channel names are answered 400",
    deviation=True,
)
async def invalid_names(ctx: CheckContext) -> None:
    bad = ["a%20b", "a*b", "caf%C3%A9", "a%01b", "a%3Fb", "%2E", "%2E%2E", ".", "..", "y" * 257]
    for name in bad:
        for method, suffix, body in _SEQ_SUFFIXES:
            response = await _raw_request(ctx, method, ctx.base_path + name + suffix, body)
            expect_status(response, 400, f"{method} {name[:40]}{suffix}")


@check(
    "TRK-002",
    key="TRK-002b",
    title="an escaped '/' in a channel name is refused, never read as a path separator",
    deviation=True,
)
async def escaped_slash_name(ctx: CheckContext) -> None:
    stem = await ctx.channel()
    name = f"{stem}%2F0"
    for method, suffix, body in _SEQ_SUFFIXES:
        response = await _raw_request(ctx, method, ctx.base_path + name + suffix, body)
        expect_status(response, 400, f"{method} {name}{suffix}")
    expect(await ctx.next_write(stem) == 0, f"requests for '{name}' wrote into channel {stem}")


# -- /next ---------------------------------------------------------------------------------------


@check(
    "TRK-078",
    "TRK-018",
    title="GET {ch}/next answers nextWrite as body (no newline) and Lp-Trickle-Latest",
)
async def next_sequence(ctx: CheckContext) -> None:
    name = await ctx.channel()
    for expected, publish in ((0, None), (2, 1)):
        if publish is not None:
            await ctx.publish_ok(name, 0, b"a")
            await ctx.publish_ok(name, publish, b"b")
        response = await ctx.get(name, "next")
        expect_status(response, 200, f"GET {name}/next")
        expect(
            response.content == str(expected).encode(),
            f"GET {name}/next: expected body {expected!r}, got {response.content!r}",
        )
        expect_header(response, "Lp-Trickle-Latest", str(expected), f"GET {name}/next")


@check("TRK-079", title="GET {ch}/next for a missing channel answers 404 Stream not found")
async def next_missing(ctx: CheckContext) -> None:
    name = ctx.name()
    response = await ctx.get(name, "next")
    expect_status(response, 404, f"GET {name}/next")
    expect_text(response, "Stream not found", f"GET {name}/next")


@check("TRK-080", title="POST and DELETE {ch}/next answer 400 Invalid idx")
async def next_other_methods(ctx: CheckContext) -> None:
    name = await ctx.channel()
    for response, what in (
        (await ctx.publish(name, "next", b"x"), f"POST {name}/next"),
        (await ctx.delete(name, "next"), f"DELETE {name}/next"),
    ):
        expect_status(response, 400, what)
        expect_text(response, "Invalid idx", what)
    expect(await ctx.next_write(name) == 0, "POST {ch}/next must not write anything")


# -- routing and errors -------------------------------------------------------------------------


def _allow(response: Any) -> set[str]:
    return {m.strip().upper() for m in response.headers.get("allow", "").split(",") if m.strip()}


@check("TRK-081", title="a method not served on a route answers 405 with Allow")
async def method_not_allowed(ctx: CheckContext) -> None:
    name = await ctx.channel()
    for method, url, allowed in (
        ("GET", ctx.url(name), {"DELETE", "POST"}),
        ("PUT", ctx.url(name), {"DELETE", "POST"}),
        ("PUT", ctx.url(name, 0), {"DELETE", "GET", "POST"}),
        ("PATCH", ctx.url(name, "next"), {"DELETE", "GET", "POST"}),
    ):
        response = await ctx.client.request(method, url)
        what = f"{method} {url.removeprefix(ctx.base)}"
        expect_status(response, 405, what)
        got = _allow(response)
        expect(
            got in (allowed, allowed | {"HEAD"}),
            f"{what}: Allow must list {sorted(allowed)} (HEAD optional), got {sorted(got)}",
        )


@check(
    "TRK-082",
    "TRK-003",
    title="paths that are not {base}{ch} or {base}{ch}/{seq} answer 404",
)
async def wrong_shapes(ctx: CheckContext) -> None:
    name = await ctx.channel()
    root = ctx.base[: len(ctx.base) - len(ctx.base_path)]
    cases = [
        ("GET", ctx.base),
        ("POST", ctx.base),
        ("GET", ctx.url(name, "0/extra")),
        ("POST", ctx.url(name, "0/extra")),
    ]
    if ctx.base_path != "/":
        outside = f"{root}/trickle-conformance-elsewhere/{name}"
        cases += [("POST", outside), ("GET", outside + "/0"), ("POST", outside + "/0")]
    for method, url in cases:
        response = await ctx.client.request(method, url, content=b"x" if method == "POST" else None)
        expect_status(response, 404, f"{method} {url}")
    expect(await ctx.next_write(name) == 0, "a request of the wrong shape must not write")


@check(
    "TRK-083",
    title="error responses are text/plain; charset=utf-8 with go-livepeer's bodies",
)
async def error_bodies(ctx: CheckContext) -> None:
    name = await ctx.channel()
    missing = ctx.name()
    cases = [
        (await ctx.get(missing, 0), "Stream not found", f"GET {missing}/0"),
        (await ctx.get(name, "abc"), "Invalid idx", f"GET {name}/abc"),
        (await ctx.delete(missing), "Invalid stream", f"DELETE {missing}"),
        (await ctx.delete(name, 3), "Nonexistent segment", f"DELETE {name}/3"),
        (await ctx.get(name, 7), "Entry not found", f"GET {name}/7"),
    ]
    for response, text, what in cases:
        expect_text(response, text, what)
        expect_header(response, "Content-Type", "text/plain; charset=utf-8", what)


@check("TRK-047", title="GET for a missing channel answers 404 with no trickle headers")
async def get_missing(ctx: CheckContext) -> None:
    name = ctx.name()
    for seq in (0, -1, 5):
        response = await ctx.get(name, seq)
        what = f"GET {name}/{seq}"
        expect_status(response, 404, what)
        expect_text(response, "Stream not found", what)
        for header in ("Lp-Trickle-Seq", "Lp-Trickle-Latest", "Lp-Trickle-Closed"):
            expect_no_header(response, header, what)
