"""The ``/discovery`` listing and advertised prices."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from tests.unit.test_registry_support import (
    SERVICE,
    WEI_PER_USD,
    beat,
    make_registry,
    register,
)
from trio_trickle._registry.errors import Unavailable
from trio_trickle._registry.pricing import StaticPriceFeed, advertised_price
from trio_trickle._wire.live_runner import RunnerPriceInfo
from trio_trickle._wire.live_runner_discovery import AdvertisedPrice
from trio_trickle._wire.live_runner_payment import PaymentHeaders


@pytest.mark.spec("LR-054")
def test_empty_registry_lists_one_address_without_runners() -> None:
    assert make_registry().discovery(0.0).to_wire() == [{"address": SERVICE}]


@pytest.mark.spec("LR-056", "LR-057", "LR-058", "LR-061")
def test_listing_shapes_and_urls() -> None:
    registry = make_registry()
    register(registry, runner_id="p", version="1.4.0", metadata="m", gpu={"name": "L40S"})
    register(registry, runner_id="s", mode="single-shot")
    persistent, single = registry.discovery(0.0).to_wire()[0]["runners"]
    assert persistent == {
        "url": f"{SERVICE}/apps/p/session",
        "gpu": {"name": "L40S"},
        "app": "live-video-to-video/scope",
        "version": "1.4.0",
        "metadata": "m",
        "mode": "persistent",
        "capacity": 2,
        "capacity_used": 0,
        "capacity_available": 2,
    }
    assert single["url"] == f"{SERVICE}/apps/s/app"
    assert single["mode"] == "single-shot"
    assert "runner.internal" not in repr(registry.discovery(0.0).to_wire())


@pytest.mark.spec("LR-059")
def test_load_counts_sessions_and_can_go_negative() -> None:
    registry = make_registry()
    route, secret = register(registry, capacity=2)
    registry.reserve(route, PaymentHeaders(), 0.0)
    registry.reserve(route, PaymentHeaders(), 0.0)
    registry.heartbeat(beat(capacity=1), secret, 1.0)
    (listed,) = registry.discovery(1.0).entries[0].runners
    assert (listed.capacity, listed.capacity_used, listed.capacity_available) == (1, 2, -1)


@pytest.mark.spec("LR-060", "LR-062")
@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ({"price": 3.6, "unit": "hour"}, AdvertisedPrice(price=500_000_000_000, unit="seconds")),
        (
            {"price": "0.5", "unit": "fixed"},
            AdvertisedPrice(price=250_000_000_000_000, unit="fixed"),
        ),
        (
            {"price": 1, "unit": "720p"},
            AdvertisedPrice(
                price=math.ceil(WEI_PER_USD / (3600 * 1280 * 720 * 30)), unit="720p-pixel-seconds"
            ),
        ),
    ],
)
def test_onchain_advertises_wei_rounded_up(
    price: dict[str, Any], expected: AdvertisedPrice
) -> None:
    registry = make_registry(onchain=True)
    register(registry, price_info=price)
    (listed,) = registry.discovery(0.0).entries[0].runners
    assert listed.price_info == expected
    assert listed.to_wire()["price_info"]["currency"] == "wei"


@pytest.mark.spec("LR-062")
def test_a_sub_wei_price_rounds_up_to_one_wei() -> None:
    tiny = RunnerPriceInfo(price=Decimal("0.000001"), unit="720p")
    feed = StaticPriceFeed(rate=Fraction(1))  # 1 wei per USD: far below a wei per pixel
    assert advertised_price(tiny, feed).price == 1
    with pytest.raises(Unavailable):
        advertised_price(tiny, StaticPriceFeed(rate=None))


@pytest.mark.spec("LR-060")
def test_unconvertible_price_is_listed_without_price_info() -> None:
    registry = make_registry(onchain=True, rate=None)
    register(registry)
    (listed,) = registry.discovery(0.0).entries[0].runners
    assert listed.price_info is None
    assert listed.app == "live-video-to-video/scope"
