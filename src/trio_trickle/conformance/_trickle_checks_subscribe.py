"""Trickle checks, part 4: subscribing (-2, the ring, delivery, headers, HEAD)."""

from __future__ import annotations

import random

import trio

from ._context import (
    CheckContext,
    expect,
    expect_header,
    expect_no_header,
    expect_status,
    expect_text,
)
from ._http import CheckFailed, RawClosed
from ._runner import (
    check,
)

__all__: list[str] = []


# -- sequence specials and the ring --------------------------------------------------------


@check("TRK-022", title="GET seq -2 resolves to nextWrite-1 (0 on a fresh channel)")
async def seq_minus_two(ctx: CheckContext) -> None:
    name = await ctx.channel()
    watch = ctx.watch(name, -2)
    await watch.still_waiting(0.15)
    await ctx.publish_ok(name, 0, b"zero")
    head, body = await watch.finished()
    expect_header(head, "Lp-Trickle-Seq", "0", f"GET {name}/-2 (fresh)")
    expect(body == b"zero", f"GET {name}/-2 (fresh) returned {body!r}")
    await ctx.publish_ok(name, 1, b"one")
    response = await ctx.get(name, -2)
    expect_header(response, "Lp-Trickle-Seq", "1", f"GET {name}/-2")
    expect(response.content == b"one", f"GET {name}/-2 returned {response.content!r}")


@check(
    "TRK-023",
    "TRK-057",
    title="the ring keeps ring-size segments; evicted or far-ahead seqs answer 470",
)
async def ring_eviction(ctx: CheckContext) -> None:
    ring = ctx.options.ring_size
    name = await ctx.channel()
    for seq in range(ring + 1):
        await ctx.publish_ok(name, seq, f"s{seq}".encode())
    for seq in range(1, ring + 1):
        response = await ctx.get(name, seq)
        expect_status(response, 200, f"GET {name}/{seq}")
        expect(response.content == f"s{seq}".encode(), f"GET {name}/{seq}: wrong bytes")
    for seq in (0, ring + 3):
        response = await ctx.get(name, seq)
        what = f"GET {name}/{seq}"
        expect_status(response, 470, what)
        expect_header(response, "Lp-Trickle-Latest", str(ring + 1), what)
        expect_header(response, "Lp-Trickle-Seq", str(seq), what)
        expect_text(response, "Entry not found", what)


@check("TRK-031", title="each body chunk reaches subscribers before the POST ends")
async def chunk_by_chunk(ctx: CheckContext) -> None:
    name = await ctx.channel()
    feed = ctx.feed(name, 0)
    watch = ctx.watch(name, 0)
    for part, so_far in ((b"first-", b"first-"), (b"second-", b"first-second-"), (b"3", None)):
        await feed.send(part)
        if so_far is not None:
            await watch.received(so_far, within=1.0)
            expect(not feed.done.is_set(), "the POST must still be open")
    feed.end()
    expect_status(await feed.result(), 200, f"POST {name}/0")
    _, body = await watch.finished()
    expect(body == b"first-second-3", f"GET {name}/0 returned {body!r}")


@check(
    "TRK-053",
    "TRK-054",
    title="every subscriber gets byte 0 then live bytes, in order, and a clean end",
)
async def late_joiners(ctx: CheckContext) -> None:
    name = await ctx.channel()
    limit = ctx.options.max_segment_bytes or (1 << 20)
    rng = random.Random(53)
    payload = rng.randbytes(min(150_000, limit))
    cuts = sorted(rng.sample(range(1, len(payload)), 40))
    parts = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    feed = ctx.feed(name, 0)
    watches = [ctx.watch(name, 0)]
    sent = b""
    for index, part in enumerate(parts):
        await feed.send(part)
        sent += part
        if index in (1, 20):
            await watches[0].received(sent)
            watches.append(ctx.watch(name, 0))
    feed.end()
    expect_status(await feed.result(), 200, f"POST {name}/0")
    watches.append(ctx.watch(name, 0))
    for number, watch in enumerate(watches):
        _, body = await watch.finished()
        expect(body == payload, f"subscriber {number} got {len(body)} bytes, not the segment")


# -- subscribing ----------------------------------------------------------------------------


@check(
    "TRK-048",
    "TRK-051",
    "TRK-016",
    title="a stored segment answers 200 with Lp-Trickle-Seq, the channel's Content-Type, bytes",
)
async def stored_segment(ctx: CheckContext) -> None:
    name = await ctx.channel("text/plain")
    await ctx.publish_ok(name, 0, b"payload")
    response = await ctx.get(name, 0)
    what = f"GET {name}/0"
    expect_status(response, 200, what)
    expect_header(response, "Lp-Trickle-Seq", "0", what)
    expect_header(response, "Content-Type", ctx.mime(name), what)
    expect(response.content == b"payload", f"{what} returned {response.content!r}")


@check("TRK-017", title="a segment POST's Content-Type never changes the channel's MIME type")
async def post_content_type_ignored(ctx: CheckContext) -> None:
    name = await ctx.channel("text/plain")
    await ctx.publish_ok(name, 0, b"x", headers={"Content-Type": "application/x-changed"})
    response = await ctx.get(name, 0)
    expect_header(response, "Content-Type", ctx.mime(name), f"GET {name}/0")


@check("TRK-049", title="GET pre-creates nextWrite (and 1 on a fresh channel), 470 beyond")
async def get_precreate(ctx: CheckContext) -> None:
    name = await ctx.channel()
    zero, one = ctx.watch(name, 0), ctx.watch(name, 1)
    await zero.still_waiting(0.15)
    await one.still_waiting(0.0)
    response = await ctx.get(name, 2)
    expect_status(response, 470, f"GET {name}/2 on a fresh channel")
    expect_header(response, "Lp-Trickle-Latest", "0", f"GET {name}/2")
    for seq, watch in ((0, zero), (1, one)):
        await ctx.publish_ok(name, seq, f"s{seq}".encode())
        _, body = await watch.finished()
        expect(body == f"s{seq}".encode(), f"GET {name}/{seq} returned {body!r}")
    head = ctx.watch(name, 2)
    await head.still_waiting(0.1)
    response = await ctx.get(name, 3)
    expect_status(response, 470, f"GET {name}/3 at nextWrite 2")
    expect_header(response, "Lp-Trickle-Latest", "2", f"GET {name}/3")
    expect_header(response, "Lp-Trickle-Seq", "3", f"GET {name}/3")


@check("TRK-050", title="an accepted GET sends no headers before the segment's first byte")
async def headers_wait_for_data(ctx: CheckContext) -> None:
    name = await ctx.channel()
    feed = ctx.feed(name, 0)
    watch = ctx.watch(name, 0)
    await watch.still_waiting(0.3)
    await feed.send(b"x")
    head = await watch.head(1.0)
    expect_status(head, 200, f"GET {name}/0")
    feed.end()


@check("TRK-052", title="Lp-Trickle-Latest on data responses iff it differs from the seq")
async def latest_header(ctx: CheckContext) -> None:
    name = await ctx.channel()
    await ctx.publish_ok(name, 0, b"a")
    await ctx.publish_ok(name, 1, b"b")
    response = await ctx.get(name, 0)
    expect_header(response, "Lp-Trickle-Latest", "2", f"GET {name}/0 at nextWrite 2")
    live = ctx.watch(name, 2)
    await live.still_waiting(0.1)
    await ctx.publish_ok(name, 2, b"c")
    head, _ = await live.finished()
    expect_no_header(head, "Lp-Trickle-Latest", f"GET {name}/2 accepted at nextWrite 2")


@check("TRK-058", title="a subscriber that stops reading does not hold up the publisher")
async def stalled_subscriber(ctx: CheckContext) -> None:
    name = await ctx.channel()
    size = min(4 << 20, ctx.options.max_segment_bytes or (4 << 20))
    data = random.Random(58).randbytes(size)
    stalled = await ctx.raw()
    await stalled.send_head("GET", ctx.target(name, 0))
    reader = ctx.watch(name, 0)
    await reader.still_waiting(0.1)
    feed = ctx.feed(name, 0)
    for start in range(0, size, 65536):
        await feed.send(data[start : start + 65536])
    feed.end()
    expect_status(await feed.result(2.0), 200, f"POST {name}/0 ({size} bytes)")
    _, body = await reader.finished()
    expect(body == data, f"the reading subscriber got {len(body)} of {size} bytes")


@check("TRK-061", title="HEAD on a segment is answered like GET without a body, or 405")
async def head_request(ctx: CheckContext) -> None:
    name = await ctx.channel()
    await ctx.publish_ok(name, 0, b"data")
    connection = await ctx.raw()
    what = f"HEAD {name}/0"
    try:
        with trio.move_on_after(2):
            head = await connection.request("HEAD", ctx.target(name, 0))
            if head.status_code == 405:
                return
            expect_status(head, 200, what)
            expect_header(head, "Lp-Trickle-Seq", "0", what)
            if "close" in head.headers.get("connection", "").lower():
                return  # announced: the connection may end here
            what = f"GET {name}/next on the kept-alive connection after HEAD"
            after = await connection.request("GET", ctx.target(name, "next"))
            expect_status(after, 200, what)
            return
    except RawClosed as exc:
        raise CheckFailed(f"{what}: {exc} before a complete response") from None
    raise CheckFailed(f"{what}: no complete response within 2 s")
