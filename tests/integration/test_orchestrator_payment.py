"""An onchain orchestrator over real sockets: priced discovery, the 402 challenge, paid retry.

The ticket handling is the registry unit tests' ``FakeVerifier`` (payments are
readable strings) and the ETH/USD rate a ``StaticPriceFeed``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio

from tests.integration.orchestrator_support import SECRET, o2r_messages, register
from tests.unit.test_registry_support import PAYER, WEI_PER_USD, FakeVerifier
from trio_trickle._orchestrator.config import OrchestratorConfig
from trio_trickle._orchestrator.process import OrchestratorHandle, open_orchestrator
from trio_trickle._registry.config import RegistryConfig
from trio_trickle._registry.pricing import StaticPriceFeed

#: 3.6 USD per hour at 5e14 wei per USD: 5e11 wei per second.
PRICE = {"price": 3.6, "currency": "usd", "unit": "hour"}
WEI_PER_SECOND = 500_000_000_000


@asynccontextmanager
async def onchain(
    verifier: FakeVerifier,
) -> AsyncIterator[tuple[OrchestratorHandle, httpx.AsyncClient]]:
    def registry(url: str) -> RegistryConfig:
        return RegistryConfig(service_uri=url, orchestrator_secret=SECRET, onchain=True)

    config = OrchestratorConfig(secret=SECRET, registry=registry)
    feed = StaticPriceFeed(rate=WEI_PER_USD)
    async with (
        open_orchestrator(config, verifier=verifier, price_feed=feed) as handle,
        httpx.AsyncClient(base_url=handle.url, timeout=10) as client,
    ):
        yield handle, client


def _paid(manifest: str, price: int = WEI_PER_SECOND) -> dict[str, str]:
    return {
        "Livepeer-Payment": f"{PAYER};{manifest};{manifest};{price};1",
        "Livepeer-Segment": "ok",
    }


@pytest.mark.spec("LR-017", "LR-060", "LR-062")
async def test_onchain_discovery_advertises_wei_and_refuses_unpriced_runners() -> None:
    with trio.fail_after(10):
        async with onchain(FakeVerifier()) as (_handle, client):
            unpriced = await client.post(
                "/runners/heartbeat",
                json={"runner_url": "http://127.0.0.1:9/", "app": "a"},
                headers={"Authorization": SECRET},
            )
            assert unpriced.status_code == 400
            await register(client, price_info=PRICE)
            (runner,) = (await client.get("/discovery")).json()[0]["runners"]
            assert runner["price_info"] == {
                "price": WEI_PER_SECOND,
                "currency": "wei",
                "unit": "seconds",
            }


@pytest.mark.spec("LR-073", "LR-074", "LR-075", "LR-085", "LR-086", "LR-089")
async def test_challenge_then_paid_retry_reserves_the_manifest_id() -> None:
    verifier = FakeVerifier()
    with trio.fail_after(10):
        async with onchain(verifier) as (handle, client):
            runner_id = (await register(client, price_info=PRICE))["runner_id"]
            path = f"/apps/{runner_id}/session"
            no_payer = await client.post(path, json={})
            assert no_payer.status_code == 402
            assert no_payer.headers["content-type"] == "application/json"
            assert no_payer.json() == {
                "error": {"message": "invalid live runner payment signer address"}
            }
            challenge = await client.post(path, json={}, headers={"Livepeer-Payer-Address": PAYER})
            assert challenge.status_code == 402
            body = challenge.json()
            manifest = body["manifest_id"]
            assert body["orchestrator"] == handle.url
            assert (
                body["payment_url"] == f"{handle.url}/apps/{runner_id}/session/{manifest}/payment"
            )
            assert body["payment_params"]
            paid = await client.post(path, json={}, headers=_paid(manifest))
            assert paid.status_code == 200, paid.text
            assert paid.json()["session_id"] == manifest
            again = await client.post(path, json={}, headers=_paid(manifest))
            assert again.status_code == 409
            assert again.text == "session already exists\n"


@pytest.mark.spec("LR-081", "LR-082", "LR-083", "LR-088")
async def test_bad_payments_are_refused_and_reserve_nothing() -> None:
    verifier = FakeVerifier(rejected_senders={PAYER})
    with trio.fail_after(10):
        async with onchain(verifier) as (handle, client):
            runner_id = (await register(client, price_info=PRICE))["runner_id"]
            path = f"/apps/{runner_id}/session"
            garbled = await client.post(
                path, json={}, headers={"Livepeer-Payment": "x", "Livepeer-Segment": "ok"}
            )
            assert garbled.status_code == 402
            forged = await client.post(
                path, json={}, headers={**_paid("m1"), "Livepeer-Segment": "bad"}
            )
            assert forged.status_code == 403
            mismatched = await client.post(
                path,
                json={},
                headers={"Livepeer-Payment": f"{PAYER};m1;other;1;1", "Livepeer-Segment": "ok"},
            )
            assert mismatched.status_code == 403
            assert mismatched.text == "mismatched manifest and auth token\n"
            rejected = await client.post(path, json={}, headers=_paid("m1"))
            assert rejected.status_code == 400
            (view,) = handle.registry.runners()
            assert view.session_ids == ()
            stop = await client.post(f"{path}/m1/stop")
            assert stop.headers["Livepeer-Session-Release-Reason"] == "payment_rejected"


@pytest.mark.spec("LR-093", "LR-094")
async def test_debit_monitor_releases_a_session_its_balance_no_longer_covers() -> None:
    verifier = FakeVerifier(credit=WEI_PER_SECOND + 1)  # one second of service

    def registry(url: str) -> RegistryConfig:
        return RegistryConfig(
            service_uri=url, orchestrator_secret=SECRET, onchain=True, payment_interval=0.05
        )

    config = OrchestratorConfig(secret=SECRET, registry=registry)
    feed = StaticPriceFeed(rate=WEI_PER_USD)
    with trio.fail_after(10):
        async with (
            open_orchestrator(config, verifier=verifier, price_feed=feed) as handle,
            httpx.AsyncClient(base_url=handle.url, timeout=10) as client,
        ):
            first = await register(client, price_info=PRICE)
            path = f"/apps/{first['runner_id']}/session"
            paid = await client.post(path, json={}, headers=_paid("m1"))
            assert paid.status_code == 200, paid.text
            # The runner's O2R channel says when and why the session ended.
            _reserved, released = await o2r_messages(client, first["o2r"]["url"], 2)
            assert released["reason"] == "payment_failed"
            assert verifier.debits  # it was billed while the balance lasted
            assert handle.registry.runners()[0].session_ids == ()


@pytest.mark.spec("LR-097", "LR-098", "LR-099")
async def test_top_ups_on_a_paid_session() -> None:
    verifier = FakeVerifier()
    with trio.fail_after(10):
        async with onchain(verifier) as (_handle, client):
            runner_id = (await register(client, price_info=PRICE))["runner_id"]
            path = f"/apps/{runner_id}/session"
            assert (await client.post(path, json={}, headers=_paid("m1"))).status_code == 200
            topped = await client.post(f"{path}/m1/payment", headers=_paid("m1"))
            assert topped.status_code == 200
            other = await client.post(f"{path}/m1/payment", headers=_paid("m2"))
            assert other.status_code == 403
            assert other.text == "mismatched session and payment manifest\n"
            verifier.rejected_senders.add(PAYER)
            rejected = await client.post(f"{path}/m1/payment", headers=_paid("m1"))
            assert rejected.status_code == 400
            fixed = await register(client, price_info={**PRICE, "unit": "fixed"})
            fixed_path = f"/apps/{fixed['runner_id']}/session"
            listed = (await client.get("/discovery")).json()[0]["runners"]
            (price,) = [r["price_info"] for r in listed if fixed["runner_id"] in r["url"]]
            verifier.rejected_senders.clear()
            reserved = await client.post(fixed_path, json={}, headers=_paid("f1", price["price"]))
            assert reserved.status_code == 200, reserved.text
            no_top_up = await client.post(f"{fixed_path}/f1/payment", headers=_paid("f1"))
            assert no_top_up.status_code == 409
