"""Trickle checks, part 3: publishing (preconnect, completion, re-POSTs, takeover, reset)."""

from __future__ import annotations

import random

import trio

from ._context import (
    CheckContext,
    expect,
    expect_connection_close,
    expect_header,
    expect_no_header,
    expect_status,
    expect_text,
)
from ._http import CHUNKED_POST, RESET
from ._runner import (
    Requires,
    check,
)

__all__: list[str] = []

# -- publishing -------------------------------------------------------------------------------


@check("TRK-029", title="POST headers install the segment: a GET for it waits instead of 470")
async def preconnect_installs(ctx: CheckContext) -> None:
    name = await ctx.channel()
    feed = ctx.feed(name, 3)
    watch = await ctx.accepted_watch(name, 3)
    await watch.still_waiting(0.2)
    await feed.send(b"three")
    await watch.received(b"three")
    feed.end()
    _, body = await watch.finished()
    expect(body == b"three", f"GET {name}/3 returned {body!r}")


@check(
    "TRK-032",
    title="a completed POST answers 200, empty body, Lp-Trickle-Seq = resolved seq",
)
async def post_completion(ctx: CheckContext) -> None:
    name = await ctx.channel()
    for seq, resolved in ((0, "0"), (-1, "1")):
        response = await ctx.publish_ok(name, seq, b"data")
        expect(response.content == b"", f"POST {name}/{seq}: body must be empty")
        expect_header(response, "Lp-Trickle-Seq", resolved, f"POST {name}/{seq}")


@check(
    "TRK-034",
    "TRK-035",
    title="re-POST of a completed seq is answered 200 + Connection: close without its body",
)
async def repost_completed(ctx: CheckContext) -> None:
    name = await ctx.channel()
    await ctx.publish_ok(name, 0, b"original")
    connection = await ctx.raw()
    await connection.send_head("POST", ctx.target(name, 0), CHUNKED_POST)
    await connection.send_chunk(b"replacement")
    what = f"re-POST {name}/0 (body still open)"
    head = await connection.answer(2, what)
    expect_status(head, 200, what)
    expect_header(head, "Lp-Trickle-Seq", "0", what)
    expect_connection_close(head, what)
    expect_no_header(head, "Lp-Trickle-Closed", what)
    response = await ctx.get(name, 0)
    expect(response.content == b"original", f"segment 0 changed to {response.content!r}")


@check(
    "TRK-036",
    title="a second POST to a segment whose writer sent bytes answers 409",
    category="hostile",
    deviation=True,
)
async def second_writer(ctx: CheckContext) -> None:
    name = await ctx.channel()
    feed = ctx.feed(name, 0)
    await feed.send(b"first")
    await ctx.wait_next(name, 1)
    response = await ctx.publish(name, 0, b"second")
    expect_status(response, 409, f"second POST {name}/0")
    expect(await ctx.next_write(name) == 1, "the refused POST must not move nextWrite")
    await feed.send(b"-more")
    feed.end()
    expect_status(await feed.result(), 200, f"first POST {name}/0")
    segment = await ctx.get(name, 0)
    expect(segment.content == b"first-more", f"segment 0 holds {segment.content!r}")


@check(
    "TRK-037",
    title="a POST takes over an idle preconnect; the displaced one is answered at once",
    deviation=True,
)
async def takeover(ctx: CheckContext) -> None:
    name = await ctx.channel()
    idle = await ctx.raw()
    await idle.send_head("POST", ctx.target(name, 3), CHUNKED_POST)
    watch = await ctx.accepted_watch(name, 3)
    feed = ctx.feed(name, 3)
    await feed.send(b"taken")
    await watch.received(b"taken")
    what = f"displaced preconnect POST {name}/3"
    head = await idle.answer(1, what)
    expect_status(head, 200, what)
    expect_header(head, "Lp-Trickle-Seq", "3", what)
    expect_connection_close(head, what)
    expect(not feed.done.is_set(), "the new writer must still be open")
    feed.end()
    response = await feed.result()
    expect_status(response, 200, f"new POST {name}/3")
    _, body = await watch.finished()
    expect(body == b"taken", f"GET {name}/3 returned {body!r}")


async def _death_mid_body(ctx: CheckContext, how: str) -> None:
    name = await ctx.channel()
    watch = ctx.watch(name, 0)
    connection = await ctx.raw()
    await connection.send_head("POST", ctx.target(name, 0), CHUNKED_POST)
    await connection.send_chunk(b"partial")
    await watch.received(b"partial")
    if how == "disconnect":
        await connection.aclose()
    else:
        await connection.send_raw(b"zz\r\nnot a chunk\r\n")
    _, body = await watch.finished(1.0)
    expect(body == b"partial", f"GET {name}/0 must end with the bytes received, got {body!r}")


@check(
    "TRK-038",
    title="a publisher dying mid-body closes the segment; subscribers end within 1 s",
    deviation=True,
)
async def publisher_disconnect(ctx: CheckContext) -> None:
    await _death_mid_body(ctx, "disconnect")


@check(
    "TRK-038",
    key="TRK-038b",
    title="a malformed chunked body closes the segment; subscribers end within 1 s",
    category="hostile",
    deviation=True,
)
async def publisher_malformed(ctx: CheckContext) -> None:
    await _death_mid_body(ctx, "malformed")


@check(
    "TRK-039",
    title="a publisher dying before its first byte leaves the segment open for a retry",
)
async def publisher_dies_early(ctx: CheckContext) -> None:
    name = await ctx.channel()
    connection = await ctx.raw()
    await connection.send_head("POST", ctx.target(name, 3), CHUNKED_POST)
    watch = await ctx.accepted_watch(name, 3)
    await connection.aclose()
    await watch.still_waiting(0.3)
    response = await ctx.publish_ok(name, 3, b"retry")
    expect_header(response, "Lp-Trickle-Seq", "3", f"retry POST {name}/3")
    _, body = await watch.finished()
    expect(body == b"retry", f"GET {name}/3 returned {body!r}")


@check(
    "TRK-040",
    title="a body over the size limit answers 413; the segment keeps exactly the limit",
    category="hostile",
    deviation=True,
    requires=Requires(max_segment_bytes=True),
    timeout=lambda o: 5.0 + (o.max_segment_bytes or 0) / 5e6,
)
async def oversize(ctx: CheckContext) -> None:
    limit = ctx.options.max_segment_bytes or 0
    name = await ctx.channel()
    data = random.Random(40).randbytes(limit + 1)
    watch = ctx.watch(name, 0)
    connection = await ctx.raw()
    await connection.send_head("POST", ctx.target(name, 0), CHUNKED_POST)
    try:
        for start in range(0, len(data), 65536):
            await connection.send_chunk(data[start : start + 65536])
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the server may stop reading once it has answered
    what = f"POST {name}/0 with {limit + 1} bytes"
    head = await connection.answer(3, what)
    expect_status(head, 413, what)
    _, body = await watch.finished()
    expect(body == data[:limit], f"segment must hold exactly {limit} bytes, got {len(body)}")


@check(
    "TRK-041",
    "TRK-042",
    title="Lp-Trickle-Reset closes older segments and spares newer preconnects",
)
async def reset(ctx: CheckContext) -> None:
    name = await ctx.channel()
    feed = ctx.feed(name, 0)
    await feed.send(b"Hello")
    older = ctx.watch(name, 0)
    await older.received(b"Hello")
    ahead = ctx.feed(name, 3)
    newer = await ctx.accepted_watch(name, 3)
    response = await ctx.publish_ok(name, -1, b"after-reset", headers=RESET)
    expect_header(response, "Lp-Trickle-Seq", "1", f"POST {name}/-1 with reset")
    _, body = await older.finished(1.0)
    expect(body == b"Hello", f"GET {name}/0 must end after the reset with Hello, got {body!r}")
    await newer.still_waiting(0.2)
    await ahead.send(b"three")
    await newer.received(b"three")
    ahead.end()
    await newer.finished()
    segment = await ctx.get(name, 1)
    expect(segment.content == b"after-reset", f"GET {name}/1 returned {segment.content!r}")


@check(
    "TRK-043",
    title="a segment POST to a missing channel (autocreate off) answers 404 + Connection: close",
    requires=Requires(autocreate=False),
)
async def post_missing_channel(ctx: CheckContext) -> None:
    name = ctx.name()
    response = await ctx.publish(name, 0, b"x")
    what = f"POST {name}/0 (missing)"
    expect_status(response, 404, what)
    expect_text(response, "Stream not found", what)
    expect_connection_close(response, what)
    expect_status(await ctx.get(name, "next"), 404, f"{name} must not be created")


@check(
    "TRK-044",
    title="an autocreating segment POST uses its Content-Type as the channel's MIME type",
    requires=Requires(autocreate=True, creates=True),
)
async def autocreate_mime(ctx: CheckContext) -> None:
    name = ctx.name()
    response = await ctx.publish_ok(name, 0, b"auto", headers={"Content-Type": "video/mp2t"})
    expect_header(response, "Lp-Trickle-Seq", "0", f"POST {name}/0 (autocreate)")
    segment = await ctx.get(name, 0)
    expect_header(segment, "Content-Type", "video/mp2t", f"GET {name}/0")
    expect(segment.content == b"auto", f"GET {name}/0 returned {segment.content!r}")


@check("TRK-046", title="segment POSTs work with Content-Length and with chunked bodies")
async def body_framings(ctx: CheckContext) -> None:
    name = await ctx.channel()
    await ctx.publish_ok(name, 0, b"length-body")
    feed = ctx.feed(name, 1)
    await feed.send(b"chunked-")
    await feed.send(b"body")
    feed.end()
    expect_status(await feed.result(), 200, f"chunked POST {name}/1")
    for seq, expected in ((0, b"length-body"), (1, b"chunked-body")):
        segment = await ctx.get(name, seq)
        expect(segment.content == expected, f"GET {name}/{seq} returned {segment.content!r}")
