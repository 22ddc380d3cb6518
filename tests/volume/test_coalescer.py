"""Coalescing calls to one destination: what gathers while a batch is on its way goes out
together, each call gets its own answer, and posted items report only their failures."""

from __future__ import annotations

import asyncio

import pytest

from pulzar.volume.batching import Coalescer


async def test_calls_made_while_a_batch_is_out_go_together_each_with_its_answer() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def send(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        await release.wait()
        return [ValueError(f"bad {i}") if i == 3 else i * 10 for i in items]

    coalescer: Coalescer[int, int] = Coalescer(send)
    first = asyncio.ensure_future(coalescer.call(1))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(coalescer.call(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    release.set()
    assert await first == 10
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert batches == [[1], [2, 3, 4]]
    assert results[0] == 20 and results[2] == 40
    assert isinstance(results[1], ValueError)


async def test_posted_items_wait_for_nothing_and_report_their_failures() -> None:
    failed: list[tuple[int, str]] = []
    sent: list[list[int]] = []

    async def send(items: list[int]) -> list[BaseException | None]:
        sent.append(items)
        if 99 in items:
            raise ConnectionError("peer gone")
        return [None if i % 2 else KeyError(i) for i in items]

    coalescer: Coalescer[int, None] = Coalescer(
        send, on_error=lambda item, exc: failed.append((item, type(exc).__name__))
    )
    for i in (1, 2, 3):
        coalescer.post(i)
    assert sent == []  # nothing sent before the loop runs: posting never waits
    await asyncio.sleep(0.01)
    coalescer.post(99)
    coalescer.post(5)
    await asyncio.sleep(0.01)
    assert sent == [[1, 2, 3], [99, 5]]
    assert failed == [(2, "KeyError"), (99, "ConnectionError"), (5, "ConnectionError")]


@pytest.mark.parametrize("size", [1, 3])
async def test_a_batch_never_exceeds_its_limit(size: int) -> None:
    sent: list[list[int]] = []

    async def send(items: list[int]) -> list[BaseException | None]:
        sent.append(items)
        return [None] * len(items)

    coalescer: Coalescer[int, None] = Coalescer(send, max_batch=size)
    await asyncio.gather(*(coalescer.call(i) for i in range(7)))
    assert all(len(batch) <= size for batch in sent)
    assert [i for batch in sent for i in batch] == list(range(7))
