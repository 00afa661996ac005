"""The runner's input guards and failure summaries, piece by piece (RUN-121..RUN-125).

The integration tests in ``test_runner_hardening`` drive these over sockets;
here each rule is pinned down on its own, including the cases no real input
can reach any more (a session that breaks before it reports started).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from trio_trickle import InvalidMessage
from trio_trickle._sdk.live_pipeline import encode_event_segment
from trio_trickle._session.failures import MAX_FAILURE_MESSAGE, describe_failure, first_failure
from trio_trickle._session.io import ParamsJob, ParamsQueue
from trio_trickle._session.manager import StreamManager
from trio_trickle._session.session import Session, StartFailed
from trio_trickle._wire.json_codec import is_utf8_json, without_surrogates
from trio_trickle._wire.runner import (
    PredictRequest,
    StreamParamsRequest,
    StreamStartRequest,
    StreamStopRequest,
)
from trio_trickle._wire.validate import channel_url_problem
from trio_trickle.examples import Passthrough

BASE = "http://127.0.0.1:9/ai/trickle/s"


async def _cancelled() -> trio.Cancelled:
    """A real ``trio.Cancelled``, as a cancelled nursery child would raise it."""
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled as exc:
            return exc
    raise AssertionError("not cancelled")


# -- RUN-125 ---------------------------------------------------------------------------


@pytest.mark.spec("RUN-125")
async def test_describe_failure_names_the_first_real_leaf() -> None:
    cancelled = await _cancelled()
    leaf = ValueError("bad frame\nsecond line\nthird")
    group = BaseExceptionGroup("outer", [cancelled, ExceptionGroup("inner", [leaf, KeyError("k")])])
    assert first_failure(group) is leaf
    assert describe_failure(group) == "ValueError: bad frame"
    assert describe_failure(RuntimeError()) == "RuntimeError"
    assert describe_failure(RuntimeError("  \n  ")) == "RuntimeError"
    only_cancelled = BaseExceptionGroup("x", [cancelled])
    assert first_failure(only_cancelled) is only_cancelled


@pytest.mark.spec("RUN-125")
def test_describe_failure_is_bounded() -> None:
    huge = ExceptionGroup("g", [OSError("x" * 2_000_000)])
    text = describe_failure(huge)
    assert len(text) == MAX_FAILURE_MESSAGE
    assert text.startswith("OSError: xxx")
    assert text.endswith("...")
    assert "ExceptionGroup" not in text
    # Whatever the failure, a stream_stopped event carrying it stays far below 1 MiB.
    event = {"type": "stream_stopped", "reason": "failed", "error": text, "detail": "d" * 1024}
    assert (
        len(encode_event_segment({"queue_event_type": "ai_stream_events", "event": event})) < 4096
    )


# -- RUN-124 ---------------------------------------------------------------------------


def _request() -> StreamStartRequest:
    return StreamStartRequest(
        gateway_request_id="s",
        control_url=BASE + "-control",
        events_url=BASE + "-events",
        subscribe_url=BASE,
    )


class BreaksBeforeStart(Session):
    """A session with a bug before it reports started (no real input reaches one now)."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        raise LookupError("secret detail")


class EndsBeforeStart(Session):
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        return


@pytest.mark.spec("RUN-124")
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (BreaksBeforeStart, "stream start failed: LookupError"),
        (EndsBeforeStart, "stream start failed: the stream ended before it started"),
    ],
)
async def test_a_session_that_fails_before_starting_is_a_start_failure(
    kind: type[Session], message: str
) -> None:
    pipeline = Passthrough()
    manager = StreamManager(pipeline)
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        assert manager._nursery is not None
        assert manager._client is not None
        session = kind(_request(), pipeline, client=manager._client)
        with pytest.raises(StartFailed) as caught:
            await manager._nursery.start(manager._run_session, session)
        assert str(caught.value) == message
        nursery.cancel_scope.cancel()


# -- RUN-121 ---------------------------------------------------------------------------


@pytest.mark.spec("RUN-121")
async def test_the_params_queue_answers_every_job_once_closed() -> None:
    queue = ParamsQueue()
    waiting = ParamsJob(params={"a": 1}, from_control=False)
    queue.put(waiting)
    queue.cancel_all()
    assert (waiting.done.is_set(), waiting.stopped, waiting.error) == (True, True, None)
    late = ParamsJob(params={"b": 2}, from_control=False)
    queue.put(late)
    assert late.stopped
    assert len(queue) == 0
    # The first outcome wins: a stopped job is not turned into a failure afterwards.
    late.fail("boom")
    assert (late.stopped, late.error) == (True, None)


# -- RUN-122 / RUN-123 -------------------------------------------------------------------


@pytest.mark.spec("RUN-122")
def test_text_utf8_cannot_carry_is_found_and_refused() -> None:
    assert is_utf8_json({"a": ["b", {"c": "\U0001f600"}], "n": 1.5, "z": None})
    for bad in ("\ud800", {"\udfff": 1}, [1, {"k": ["\udc00"]}]):
        assert not is_utf8_json(bad)
    assert without_surrogates("a\ud800b") == "a\ufffdb"
    assert without_surrogates("ok \U0001f600") == "ok \U0001f600"
    with pytest.raises(InvalidMessage):
        StreamParamsRequest(params={"p": "\ud800"})
    with pytest.raises(InvalidMessage):
        StreamStartRequest(gateway_request_id="\ud800", control_url=BASE, events_url=BASE)
    with pytest.raises(InvalidMessage):
        StreamStopRequest(reason="\ud800")
    assert StreamStopRequest.from_wire({"reason": "x\ud800"}).reason == "x\ufffd"
    with pytest.raises(InvalidMessage):
        encode_event_segment({"event": {"type": "t", "v": "\ud800"}})
    PredictRequest(arguments={"t": "\U0001f600"}).require_unicode()
    with pytest.raises(InvalidMessage) as caught:
        PredictRequest(arguments={"t": ["\ud800"]}).require_unicode()
    assert caught.value.status == 422


CHANNEL_URLS: list[tuple[str, bool]] = [
    ("http://h/ch", True),
    ("https://h:8443/ai/trickle/ch-out/", True),
    ("http://[::1]:80/ch", True),
    ("http://h", False),
    ("http://h/", False),
    ("http://h:1/?x", False),
    ("http://h/ch?x=1", False),
    ("http://h/ch#f", False),
    ("http://h/c h", False),
    ("http://h/ch\r\n", False),
    ("http://h/ch\x7f", False),
    ("http://h/\u00e9", False),
    ("http://h:65536/ch", False),
    ("http://h:x/ch", False),
    ("http:///ch", False),
    ("ftp://h/ch", False),
    ("http://h/" + "c" * 2048, False),
]


@pytest.mark.spec("RUN-123")
@pytest.mark.parametrize(("url", "ok"), CHANNEL_URLS)
def test_channel_urls(url: str, ok: bool) -> None:
    assert (channel_url_problem(url, 2048) is None) is ok
    body: dict[str, Any] = {
        "gateway_request_id": "s",
        "control_url": BASE,
        "events_url": BASE,
        "subscribe_url": url,
    }
    if ok:
        StreamStartRequest.from_wire(body).require_channel_paths()
    else:
        with pytest.raises(InvalidMessage):
            StreamStartRequest.from_wire(body).require_channel_paths()
