"""Trickle checks, part 2: sequence numbers and the ring's slots.

What a seq resolves to (``-1``, far ahead, malformed or negative), when
``nextWrite`` moves, and what happens to a slot's old segment when a new one
takes it. Registered after part 1 and before publishing (part 3).
"""

from __future__ import annotations

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
from ._runner import check

__all__: list[str] = []


# -- sequence numbers --------------------------------------------------------------------


@check(
    "TRK-019",
    "TRK-030",
    title="nextWrite becomes seq+1 at the first body byte (not at headers; set, not maximised)",
)
async def next_write_moves(ctx: CheckContext) -> None:
    name = await ctx.channel()
    feed = ctx.feed(name, 3)
    await ctx.accepted_watch(name, 3)
    expect(await ctx.next_write(name) == 0, "POST headers alone must not move nextWrite")
    await feed.send(b"x")
    await ctx.wait_next(name, 4)
    feed.end()
    response = await feed.result()
    expect_status(response, 200, f"POST {name}/3")
    await ctx.publish_ok(name, 1, b"one")
    got = await ctx.next_write(name)
    expect(got == 2, f"after writing seq 1 nextWrite must be set to 2 (not kept at 4), got {got}")


@check(
    "TRK-033",
    "TRK-020",
    "TRK-055",
    "TRK-056",
    title="an empty POST makes an empty closed segment and advances nextWrite",
)
async def empty_segment(ctx: CheckContext) -> None:
    name = await ctx.channel()
    response = await ctx.publish(name, 2, b"")
    expect_status(response, 200, f"POST {name}/2 (Content-Length: 0)")
    expect_header(response, "Lp-Trickle-Seq", "2", f"POST {name}/2")
    expect(await ctx.next_write(name) == 3, "an empty POST to 2 must set nextWrite to 3")
    feed = ctx.feed(name, 3)
    feed.end()
    response = await feed.result()
    expect_status(response, 200, f"POST {name}/3 (empty chunked body)")
    expect_header(response, "Lp-Trickle-Seq", "3", f"POST {name}/3")
    expect(await ctx.next_write(name) == 4, "an empty chunked POST to 3 must set nextWrite to 4")
    segment = await ctx.get(name, 2)
    what = f"GET {name}/2 (empty segment)"
    expect_status(segment, 200, what)
    expect(segment.content == b"", f"{what}: body must be empty")
    expect_header(segment, "Lp-Trickle-Seq", "2", what)
    expect_header(segment, "Lp-Trickle-Latest", "4", what)
    expect_no_header(segment, "Lp-Trickle-Closed", what)


@check("TRK-021", title="seq -1 resolves to nextWrite for POST and GET")
async def seq_minus_one(ctx: CheckContext) -> None:
    name = await ctx.channel()
    await ctx.publish_ok(name, 0, b"a")
    response = await ctx.publish_ok(name, -1, b"b")
    expect_header(response, "Lp-Trickle-Seq", "1", f"POST {name}/-1")
    watch = ctx.watch(name, -1)
    await watch.still_waiting(0.2)
    await ctx.publish_ok(name, 2, b"c")
    head, body = await watch.finished()
    expect_header(head, "Lp-Trickle-Seq", "2", f"GET {name}/-1")
    expect(body == b"c", f"GET {name}/-1 must return segment 2, got {body!r}")


@check(
    "TRK-024",
    title="installing a segment in a slot closes its old occupant",
    key="TRK-024",
)
async def slot_replacement(ctx: CheckContext) -> None:
    ring = ctx.options.ring_size
    name = await ctx.channel()
    preconnect = await ctx.raw()
    await preconnect.send_head("POST", ctx.target(name, 0), CHUNKED_POST)
    watch = ctx.watch(name, 0)
    await watch.still_waiting(0.15)
    await ctx.publish_ok(name, ring, b"new")
    head, body = await watch.finished(1.0)
    expect_status(head, 200, f"GET {name}/0 after seq {ring} took its slot")
    expect(body == b"", f"GET {name}/0: the replaced segment must end empty, got {body!r}")
    expect_header(head, "Lp-Trickle-Seq", "0", f"GET {name}/0")
    what = f"preconnected POST {name}/0 whose segment was replaced"
    answer = await preconnect.answer(1, what)
    expect_status(answer, 200, what)
    expect_header(answer, "Lp-Trickle-Seq", "0", what)
    expect_connection_close(answer, what)


@check(
    "TRK-024",
    key="TRK-024b",
    title="a GET pre-create also closes the stalled segment it replaces",
    deviation=True,
)
async def precreate_replacement(ctx: CheckContext) -> None:
    ring = ctx.options.ring_size
    name = await ctx.channel()
    feed = ctx.feed(name, 0)
    await feed.send(b"stall")
    watch = ctx.watch(name, 0)
    await watch.received(b"stall")
    for seq in range(1, ring):
        await ctx.publish_ok(name, seq, b"x")
    ctx.watch(name, ring)  # pre-creates seq `ring` in slot 0
    _, body = await watch.finished(1.0)
    expect(body == b"stall", f"GET {name}/0 must end with its bytes, got {body!r}")


@check(
    "TRK-025",
    title="bytes that arrive for a closed segment are discarded",
    deviation=True,
)
async def late_bytes_discarded(ctx: CheckContext) -> None:
    name = await ctx.channel()
    feed = ctx.feed(name, 0)
    await feed.send(b"Hello")
    watch = ctx.watch(name, 0)
    await watch.received(b"Hello")
    await ctx.publish_ok(name, 1, b"reset", headers=RESET)
    _, body = await watch.finished(1.0)
    expect(body == b"Hello", f"GET {name}/0 must end after Hello, got {body!r}")
    await feed.send(b"World")
    feed.end()
    await feed.result()
    response = await ctx.get(name, 0)
    expect(response.content == b"Hello", f"closed segment 0 changed to {response.content!r}")


async def _bad_seq(ctx: CheckContext, name: str, seq: str) -> None:
    for method in ("POST", "GET", "DELETE"):
        body = b"x" if method == "POST" else None
        response = await ctx.client.request(method, ctx.url(name, seq), content=body)
        what = f"{method} {name}/{seq}"
        expect_status(response, 400, what)
        expect_text(response, "Invalid idx", what)


@check("TRK-026", title="a seq that is not a decimal integer answers 400 Invalid idx")
async def non_integer_seq(ctx: CheckContext) -> None:
    name = await ctx.channel()
    for seq in ("abc", "1.5", "0x10", "1e3", "%201", "99999999999999999999"):
        await _bad_seq(ctx, name, seq)
    expect(await ctx.next_write(name) == 0, "refused POSTs must not write")


@check(
    "TRK-026",
    key="TRK-026b",
    title="a seq with a '+' sign or more than 18 digits answers 400 Invalid idx",
    deviation=True,
)
async def unusual_integer_seq(ctx: CheckContext) -> None:
    name = await ctx.channel()
    for seq in ("+1", "1000000000000000000"):
        await _bad_seq(ctx, name, seq)


@check(
    "TRK-027",
    title="negative seqs other than the specials answer 400 Invalid idx",
    category="hostile",
    deviation=True,
)
async def negative_seq(ctx: CheckContext) -> None:
    name = await ctx.channel()
    for method, seq in (("POST", -2), ("POST", -7), ("GET", -3), ("GET", -10), ("DELETE", -1)):
        body = b"x" if method == "POST" else None
        response = await ctx.client.request(method, ctx.url(name, seq), content=body)
        what = f"{method} {name}/{seq}"
        expect_status(response, 400, what)
        expect_text(response, "Invalid idx", what)
    await ctx.publish_ok(name, 0, b"still alive")
    response = await ctx.get(name, 0)
    expect(response.content == b"still alive", "the channel must still work afterwards")


@check("TRK-028", title="a POST far ahead of nextWrite is accepted")
async def far_ahead_post(ctx: CheckContext) -> None:
    name = await ctx.channel()
    response = await ctx.publish_ok(name, 1000, b"far")
    expect_header(response, "Lp-Trickle-Seq", "1000", f"POST {name}/1000")
    expect(await ctx.next_write(name) == 1001, "nextWrite must become 1001")
    segment = await ctx.get(name, 1000)
    expect(segment.content == b"far", f"GET {name}/1000 returned {segment.content!r}")
