"""Runner prices: registered USD to advertised wei, and the offchain price check.

A runner registers a USD price per hour, per hour of 720p30 video, or per use;
the orchestrator advertises (and charges) integer wei per second, per 720p30
pixel-second, or per use, through its ETH/USD feed (LR-060, LR-062). The feed is
injected (:class:`PriceFeed`) so the conversion stays pure.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Protocol

import attrs

from .._errors import InvalidMessage
from .._wire.go import decimal_from_wire
from .._wire.live_runner import RunnerPriceInfo
from .._wire.live_runner_discovery import AdvertisedPrice
from .errors import Unavailable

__all__: list[str] = []

INT64_MAX = 2**63 - 1
PIXELS_720P30 = 1280 * 720 * 30
#: USD divisor from a registered unit to the advertised one (LR-062).
USD_DIVISORS = {"hour": 3600, "720p": 3600 * PIXELS_720P30, "fixed": 1}
ADVERTISED_UNITS = {"hour": "seconds", "720p": "720p-pixel-seconds", "fixed": "fixed"}
#: Units the debit monitor bills per second of a session (LR-093).
UNITS_PER_SECOND = {"seconds": 1, "720p-pixel-seconds": PIXELS_720P30}


class PriceFeed(Protocol):
    """The ETH/USD rate, as wei per US dollar; ``None`` while no rate is known."""

    def wei_per_usd(self) -> Fraction | None: ...


@attrs.frozen(kw_only=True)
class StaticPriceFeed:
    """A fixed rate (tests, or an operator pinning one); ``None`` means no rate."""

    rate: Fraction | None = None

    def wei_per_usd(self) -> Fraction | None:
        return self.rate


def advertised_price(price: RunnerPriceInfo, feed: PriceFeed) -> AdvertisedPrice:
    """The wei price to advertise and charge, rounded up to a whole wei (LR-062).

    Raises :class:`Unavailable` (503, LR-071) when there is no rate or the price
    does not fit an int64.
    """
    rate = feed.wei_per_usd()
    if rate is None or rate <= 0:
        raise Unavailable("live runner price unavailable: no ETH/USD rate")
    wei = math.ceil(Fraction(price.price) / USD_DIVISORS[price.unit] * rate)
    if not 0 < wei <= INT64_MAX:
        raise Unavailable("live runner price unavailable: converted price out of range")
    return AdvertisedPrice(price=wei, currency="wei", unit=ADVERTISED_UNITS[price.unit])


def check_offchain_price_info(raw: dict[str, Any] | None) -> None:
    """What master's JSON decoding refuses in ``price_info`` even offchain (LR-020).

    The values themselves are ignored: a missing price, another currency or unit
    all pass. A non-object ``price_info`` is refused by the wire decoding already.
    """
    if raw is None:
        return
    price = raw.get("price")
    if price is not None:
        decimal_from_wire(price, "price_info")
    for key in ("currency", "unit"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidMessage(f"price_info: {key} must be a string")
