"""The dynamic batcher, in-process: merged calls, exact splits, isolation of failures, no mixed versions."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from groundwork.engines.serve.batching import BatchError, DynamicBatcher
from groundwork.errors import UnprocessableInput


class Doubler:
    """A model that doubles its rows and remembers every call's batch size."""

    def __init__(self, tag: int = 0) -> None:
        self.calls: list[int] = []
        self.tag = tag

    def predict_array(self, batch: Any) -> Any:
        self.calls.append(len(batch))
        if np.any(batch < 0):
            raise UnprocessableInput("negative input")
        return batch * 2 + self.tag


async def submit(batcher: DynamicBatcher, model: Any, rows: np.ndarray) -> Any:
    batcher.arriving()
    return await batcher.submit(model, rows, len(rows))


@pytest.mark.parametrize("inline", [False, True, None])
def test_concurrent_requests_share_calls_and_each_gets_its_rows(inline: bool | None) -> None:
    async def main() -> None:
        model = Doubler()
        batcher = DynamicBatcher(max_batch_size=32, max_wait_ms=5, inline=inline)
        inputs = [np.arange(i, i + 1 + i % 3, dtype=np.float64).reshape(-1, 1) for i in range(200)]
        results = await asyncio.gather(*(submit(batcher, model, x) for x in inputs))
        for x, got in zip(inputs, results, strict=True):
            np.testing.assert_array_equal(got, x * 2)
        assert sum(model.calls) == sum(len(x) for x in inputs)
        assert len(model.calls) < len(inputs) / 4  # merged: far fewer calls than requests
        assert max(model.calls) <= 32
        batcher.close()

    asyncio.run(main())


class Slow(Doubler):
    def predict_array(self, batch: Any) -> Any:
        import time

        time.sleep(0.005)
        return super().predict_array(batch)


class Recording(Doubler):
    """Remembers whether each call ran on the event loop's thread."""

    def __init__(self, loop_thread: int) -> None:
        super().__init__()
        self.loop_thread = loop_thread
        self.on_loop: list[bool] = []

    def predict_array(self, batch: Any) -> Any:
        import threading

        self.on_loop.append(threading.get_ident() == self.loop_thread)
        return super().predict_array(batch)


def test_the_automatic_mode_runs_fast_models_inline_and_slow_ones_in_the_thread() -> None:
    import threading

    async def main() -> None:
        fast = Recording(threading.get_ident())
        batcher = DynamicBatcher(max_batch_size=8, max_wait_ms=0, inline=None)
        assert not batcher.runs_inline  # nothing measured yet: the thread
        for i in range(40):
            await submit(batcher, fast, np.full((1, 1), float(i)))
        # The first call runs in the thread; once measured fast, calls run on the loop.
        assert fast.on_loop[0] is False and sum(fast.on_loop) >= 30
        slow = Slow()
        for _ in range(20):  # a slower version swapped in: once its recent calls are all slow, past the bar
            await submit(batcher, slow, np.ones((1, 1)))
        assert batcher.call_s is not None and batcher.call_s > 0.0005 and not batcher.runs_inline
        batcher.close()

    asyncio.run(main())


class Delayed(Recording):
    """A fast model whose every fourth call returns late, as when another thread held the GIL."""

    def predict_array(self, batch: Any) -> Any:
        import time

        if len(self.on_loop) % 4 == 3:
            time.sleep(0.005)
        return super().predict_array(batch)


def test_a_fast_model_delayed_now_and_then_stays_on_the_loop() -> None:
    import threading

    async def main() -> None:
        model = Delayed(threading.get_ident())
        batcher = DynamicBatcher(max_batch_size=8, max_wait_ms=0, inline=None)
        for i in range(40):
            await submit(batcher, model, np.full((1, 1), float(i)))
        # A moving average of these calls is over 1 ms (past the 0.5 ms bar): all but the
        # first would then run in the thread. The fastest recent call is the model's own time.
        assert model.on_loop[0] is False and sum(model.on_loop) >= 35
        assert batcher.call_s is not None and batcher.call_s < 0.0005 and batcher.runs_inline
        batcher.close()

    asyncio.run(main())


def test_a_lone_request_does_not_wait_for_company() -> None:
    async def main() -> None:
        model = Doubler()
        batcher = DynamicBatcher(max_batch_size=64, max_wait_ms=60_000)  # would hang if it waited
        got = await asyncio.wait_for(submit(batcher, model, np.ones((1, 1))), timeout=30)
        np.testing.assert_array_equal(got, [[2.0]])
        batcher.close()

    asyncio.run(main())


def test_a_bad_request_fails_alone() -> None:
    async def main() -> None:
        model = Doubler()
        batcher = DynamicBatcher(max_batch_size=64, max_wait_ms=5)
        inputs = [np.full((1, 1), -1.0 if i == 7 else float(i)) for i in range(20)]
        results = await asyncio.gather(*(submit(batcher, model, x) for x in inputs), return_exceptions=True)
        for i, result in enumerate(results):
            if i == 7:
                assert isinstance(result, BatchError) and isinstance(result.cause, UnprocessableInput)
            else:
                np.testing.assert_array_equal(result, inputs[i] * 2)
        batcher.close()

    asyncio.run(main())


def test_requests_checked_against_different_versions_never_share_a_call() -> None:
    async def main() -> None:
        old, new = Doubler(tag=0), Doubler(tag=1000)
        batcher = DynamicBatcher(max_batch_size=64, max_wait_ms=5)
        plan = [old if i % 2 else new for i in range(40)]
        results = await asyncio.gather(*(submit(batcher, m, np.full((1, 1), float(i))) for i, m in enumerate(plan)))
        for i, (model, got) in enumerate(zip(plan, results, strict=True)):
            assert got[0][0] == i * 2 + model.tag
        assert sum(old.calls) == 20 and sum(new.calls) == 20
        batcher.close()

    asyncio.run(main())


def test_a_request_larger_than_the_batch_runs_alone() -> None:
    async def main() -> None:
        model = Doubler()
        batcher = DynamicBatcher(max_batch_size=4, max_wait_ms=1)
        big, small = np.ones((10, 1)), np.ones((2, 1))
        got = await asyncio.gather(submit(batcher, model, big), submit(batcher, model, small))
        assert [len(g) for g in got] == [10, 2]
        assert model.calls[0] == 10
        batcher.close()

    asyncio.run(main())


def test_a_model_returning_the_wrong_number_of_rows_is_an_error() -> None:
    class Broken:
        def predict_array(self, batch: Any) -> Any:
            return batch[:1]

    async def main() -> None:
        batcher = DynamicBatcher(max_batch_size=8, max_wait_ms=1)
        with pytest.raises(BatchError, match="returned 1 rows of output for 3 rows"):
            await submit(batcher, Broken(), np.ones((3, 1)))
        batcher.close()

    asyncio.run(main())
