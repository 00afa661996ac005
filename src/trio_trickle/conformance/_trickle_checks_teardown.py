"""Trickle checks, part 5: closing one segment, closing a channel, the idle sweep.

The sweep checks need a server started with a tiny idle timeout; the suite is
told it with ``--idle-timeout`` (and ``--sweep-interval``) and otherwise skips
them, so no run waits five minutes.
"""

from __future__ import annotations

import trio

from ._context import (
    ChannelSetup,
    CheckContext,
    SuiteOptions,
    expect,
    expect_connection_close,
    expect_header,
    expect_no_header,
    expect_status,
    expect_text,
)
from ._http import CHUNKED_POST, CheckFailed
from ._runner import (
    Requires,
    check,
)

__all__: list[str] = []


async def _delete_segment_when_installed(ctx: CheckContext, name: str, seq: int) -> None:
    """DELETE {ch}/{seq}, retrying while the POST headers that install it are in flight."""
    with trio.move_on_after(1.5):
        while True:
            response = await ctx.delete(name, seq)
            if response.status_code == 200:
                return
            await trio.sleep(0.05)
    raise CheckFailed(f"DELETE {name}/{seq} never answered 200 (last {response.status_code})")


# -- closing one segment ---------------------------------------------------------------------


@check(
    "TRK-062",
    title="DELETE {ch}/{seq} ends waiting (empty, no Closed) and streaming subscribers",
)
async def delete_segment(ctx: CheckContext) -> None:
    name = await ctx.channel()
    waiting = ctx.watch(name, 0)
    await waiting.still_waiting(0.15)
    response = await ctx.delete(name, 0)
    expect_status(response, 200, f"DELETE {name}/0")
    head, body = await waiting.finished(1.0)
    what = f"waiting GET {name}/0 after DELETE {name}/0"
    expect_status(head, 200, what)
    expect(body == b"", f"{what}: body must be empty, got {body!r}")
    expect_header(head, "Lp-Trickle-Seq", "0", what)
    expect_no_header(head, "Lp-Trickle-Closed", what)
    feed = ctx.feed(name, 1)
    await feed.send(b"part")
    streaming = ctx.watch(name, 1)
    await streaming.received(b"part")
    expect_status(await ctx.delete(name, 1), 200, f"DELETE {name}/1")
    _, body = await streaming.finished(1.0)
    expect(body == b"part", f"streaming GET {name}/1 must end after its bytes, got {body!r}")


@check(
    "TRK-063",
    title="a waiting zero-byte POST whose segment is DELETEd is answered 200 + Connection: close",
)
async def delete_segment_under_preconnect(ctx: CheckContext) -> None:
    name = await ctx.channel()
    preconnect = await ctx.raw()
    await preconnect.send_head("POST", ctx.target(name, 3), CHUNKED_POST)
    await _delete_segment_when_installed(ctx, name, 3)
    what = f"preconnected POST {name}/3 after DELETE {name}/3"
    head = await preconnect.answer(1, what)
    expect_status(head, 200, what)
    expect_header(head, "Lp-Trickle-Seq", "3", what)
    expect_connection_close(head, what)
    expect_no_header(head, "Lp-Trickle-Closed", what)


@check("TRK-064", title="DELETE {ch}/{seq} does not change nextWrite")
async def delete_segment_keeps_next(ctx: CheckContext) -> None:
    name = await ctx.channel()
    await ctx.publish_ok(name, 0, b"a")
    waiting = ctx.watch(name, 1)
    await waiting.still_waiting(0.1)
    expect_status(await ctx.delete(name, 1), 200, f"DELETE {name}/1 (pre-created)")
    expect(await ctx.next_write(name) == 1, "DELETE of the pre-created seq 1 moved nextWrite")
    expect_status(await ctx.delete(name, 0), 200, f"DELETE {name}/0 (complete)")
    expect(await ctx.next_write(name) == 1, "DELETE of the complete seq 0 moved nextWrite")
    _, body = await waiting.finished(1.0)
    expect(body == b"", f"GET {name}/1 after its DELETE returned {body!r}")


@check("TRK-065", title="DELETE {ch}/{seq} of an absent seq answers 400 Nonexistent segment")
async def delete_absent_segment(ctx: CheckContext) -> None:
    ring = ctx.options.ring_size
    name = await ctx.channel()
    await ctx.publish_ok(name, 0, b"a")
    for seq, why in ((2, "empty slot"), (ring, "slot holds seq 0")):
        response = await ctx.delete(name, seq)
        what = f"DELETE {name}/{seq} ({why})"
        expect_status(response, 400, what)
        expect_text(response, "Nonexistent segment", what)


@check("TRK-066", title="DELETE {ch}/{seq} for a missing channel answers 404")
async def delete_segment_missing_channel(ctx: CheckContext) -> None:
    name = ctx.name()
    expect_status(await ctx.delete(name, 0), 404, f"DELETE {name}/0 (missing channel)")


# -- closing a channel -------------------------------------------------------------------------


@check(
    "TRK-068",
    "TRK-067",
    title="a GET waiting on a channel that is DELETEd gets EOS (200, empty, Closed)",
)
async def waiting_get_eos(ctx: CheckContext) -> None:
    name = await ctx.channel()
    await ctx.publish_ok(name, 0, b"a")
    waiting = ctx.watch(name, 1)
    await waiting.still_waiting(0.15)
    expect_status(await ctx.delete(name), 200, f"DELETE {name}")
    head, body = await waiting.finished(1.0)
    what = f"waiting GET {name}/1 after DELETE {name}"
    expect_status(head, 200, what)
    expect(body == b"", f"{what}: body must be empty")
    expect_header(head, "Lp-Trickle-Seq", "1", what)
    expect_header(head, "Lp-Trickle-Latest", "1", what)
    expect_header(head, "Lp-Trickle-Closed", "terminated", what)
    expect_status(await ctx.get(name, "next"), 404, f"GET {name}/next after DELETE")


@check(
    "TRK-069",
    "TRK-035",
    title="a zero-byte POST waiting on a channel that is DELETEd gets 200 + Closed + close",
)
async def waiting_post_eos(ctx: CheckContext) -> None:
    name = await ctx.channel()
    preconnect = await ctx.raw()
    await preconnect.send_head("POST", ctx.target(name, 3), CHUNKED_POST)
    await ctx.accepted_watch(name, 3)
    expect_status(await ctx.delete(name), 200, f"DELETE {name}")
    what = f"preconnected POST {name}/3 after DELETE {name}"
    head = await preconnect.answer(1, what)
    expect_status(head, 200, what)
    expect_header(head, "Lp-Trickle-Seq", "3", what)
    expect_header(head, "Lp-Trickle-Closed", "terminated", what)
    expect_connection_close(head, what)


@check(
    "TRK-070",
    "TRK-071",
    title="streaming GET and POST finish cleanly when their channel is DELETEd",
)
async def streams_at_close(ctx: CheckContext) -> None:
    name = await ctx.channel()
    feed = ctx.feed(name, 0)
    await feed.send(b"abc")
    streaming = ctx.watch(name, 0)
    await streaming.received(b"abc")
    expect_status(await ctx.delete(name), 200, f"DELETE {name}")
    _, body = await streaming.finished(1.0)
    expect(body == b"abc", f"streaming GET {name}/0 must end after abc, got {body!r}")
    await feed.send(b"def")
    feed.end()
    response = await feed.result()
    expect_status(response, 200, f"POST {name}/0 that outlived its channel")
    expect_header(response, "Lp-Trickle-Seq", "0", f"POST {name}/0")
    expect(bytes(streaming.body) == b"abc", "bytes sent after the close reached a subscriber")


@check(
    "TRK-072",
    title="after DELETE every request answers as for a missing channel; re-creation is fresh",
)
async def after_close(ctx: CheckContext) -> None:
    name = await ctx.channel()
    await ctx.publish_ok(name, 0, b"old")
    expect_status(await ctx.delete(name), 200, f"DELETE {name}")
    for response, what in (
        (await ctx.get(name, "next"), f"GET {name}/next"),
        (await ctx.get(name, 0), f"GET {name}/0"),
        (await ctx.delete(name, 0), f"DELETE {name}/0"),
    ):
        expect_status(response, 404, f"{what} after DELETE")
    response = await ctx.delete(name)
    expect_status(response, 400, f"second DELETE {name}")
    expect_text(response, "Invalid stream", f"second DELETE {name}")
    if ctx.options.autocreate is False:
        expect_status(await ctx.publish(name, 1, b"x"), 404, f"POST {name}/1 after DELETE")
    if ctx.options.setup is ChannelSetup.PRECREATED:
        return
    await ctx.create(name)
    expect(await ctx.next_write(name) == 0, "a re-created channel must start at nextWrite 0")
    fresh = ctx.watch(name, 0)
    await fresh.still_waiting(0.15)


# -- idle sweep -----------------------------------------------------------------------------------


def _sweep_timeout(options: SuiteOptions) -> float:
    return 2 * options.sweep_window + 5.0


async def _wait_swept(ctx: CheckContext, name: str, limit: float) -> float:
    """Poll ``/next`` until 404; returns when (trio clock) it was first seen gone."""
    with trio.move_on_after(limit):
        while True:
            if (await ctx.get(name, "next")).status_code != 200:
                return trio.current_time()
            await trio.sleep(0.02)
    raise CheckFailed(f"idle channel {name} still exists {limit:.2f} s after its last publish")


SWEEP = Requires(idle_timeout=True, creates=True)


@check(
    "TRK-073",
    title="a channel idle for the idle timeout is closed; its waiting GET gets EOS",
    requires=SWEEP,
    timeout=_sweep_timeout,
)
async def idle_sweep(ctx: CheckContext) -> None:
    idle = ctx.options.idle_timeout or 0.0
    name = await ctx.channel()
    await ctx.publish_ok(name, 0, b"a")
    published = trio.current_time()
    waiting = ctx.watch(name, 1)
    gone = await _wait_swept(ctx, name, ctx.options.sweep_window + 1.0)
    expect(
        gone - published >= idle - 0.1,
        f"{name} was closed {gone - published:.2f} s after its last publish (idle timeout {idle})",
    )
    head, _ = await waiting.finished(1.0)
    expect_header(head, "Lp-Trickle-Closed", "terminated", f"waiting GET {name}/1 at the sweep")


@check(
    "TRK-073",
    key="TRK-073b",
    title="segment POSTs (with data or empty) count as activity and keep a channel alive",
    requires=SWEEP,
    timeout=_sweep_timeout,
)
async def publishing_keeps_alive(ctx: CheckContext) -> None:
    idle = ctx.options.idle_timeout or 0.0
    name = await ctx.channel()
    end = trio.current_time() + 1.5 * ctx.options.sweep_window
    seq = 0
    while trio.current_time() < end:
        await trio.sleep(idle * 0.3)
        await ctx.publish_ok(name, seq, b"tick" if seq % 2 else b"")
        seq += 1
    expect_status(await ctx.get(name, "next"), 200, f"{name} was swept while publishing")


@check(
    "TRK-074",
    title="subscriber requests do not count as activity for the idle timeout",
    requires=SWEEP,
    timeout=_sweep_timeout,
)
async def reading_is_not_activity(ctx: CheckContext) -> None:
    name = await ctx.channel()
    await ctx.publish_ok(name, 0, b"a")
    deadline = trio.current_time() + ctx.options.sweep_window + 1.0
    while trio.current_time() < deadline:
        if (await ctx.get(name, 0)).status_code == 404:
            return
        await trio.sleep(0.03)
    raise CheckFailed(f"{name} survived its idle timeout while only being read")


@check(
    "TRK-075",
    title="an idle channel is closed by idle timeout + sweep interval",
    requires=SWEEP,
    timeout=_sweep_timeout,
)
async def sweep_window(ctx: CheckContext) -> None:
    name = await ctx.channel()
    created = trio.current_time()
    window = ctx.options.sweep_window
    gone = await _wait_swept(ctx, name, 2 * window + 1.0)
    expect(
        gone - created <= window + 0.3,
        f"{name} closed {gone - created:.2f} s after creation; the window is {window:.2f} s",
    )


@check(
    "TRK-076",
    title="the idle sweep spares channels whose names start with _",
    requires=SWEEP,
    timeout=_sweep_timeout,
)
async def underscore_survives(ctx: CheckContext) -> None:
    name = ctx.name("_" + ctx.options.channel_prefix)
    await ctx.create(name)
    await trio.sleep(ctx.options.sweep_window + 0.5)
    expect_status(await ctx.get(name, "next"), 200, f"{name} must survive the idle sweep")
