"""The drop-oldest outlet: never blocks, never raises, counts drops, thread-safe."""

from __future__ import annotations

import trio

from trio_trickle._telemetry.outlet import DropOldestOutlet


async def test_drop_oldest_and_count() -> None:
    outlet: DropOldestOutlet[int] = DropOldestOutlet(3)
    for i in range(10):
        assert outlet.put(i)
    assert outlet.dropped == 7
    assert outlet.accepted == 10
    assert await outlet.get_batch() == [7, 8, 9]
    outlet.close()
    assert outlet.put(99) is False
    assert await outlet.get_batch() == []


async def test_flood_from_threads_is_delivered_in_order_or_counted() -> None:
    outlet: DropOldestOutlet[int] = DropOldestOutlet(1000)
    received: list[int] = []

    def produce() -> None:
        for i in range(100_000):
            outlet.put(i)

    async with trio.open_nursery() as nursery:

        async def consume() -> None:
            while batch := await outlet.get_batch(500):
                received.extend(batch)

        nursery.start_soon(consume)
        with trio.fail_after(20):
            await trio.to_thread.run_sync(produce)
        outlet.close()
    assert received == sorted(received)
    assert len(received) + outlet.dropped == 100_000
    assert received[-1] == 99_999


async def test_waiting_consumer_is_woken_from_a_thread() -> None:
    outlet: DropOldestOutlet[str] = DropOldestOutlet(8)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, outlet.put, "x")
            assert await outlet.get_batch() == ["x"]
