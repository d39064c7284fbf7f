"""Micro-batching: concurrent requests to one model share a forward pass.

A request's validated columns join a queue. When no pass is running, one starts at once (after one
turn of the event loop, so that requests parsed in the same turn join it): a lone request waits for
nothing. While a pass runs, new requests wait, and the next pass takes them all together, up to
``max_rows`` rows. So a request waits at most for the pass in flight (about a millisecond for a few
rows), and under load every pass predicts many rows for the price of one. Small passes run on the
event loop itself: a pass of a few rows costs less than handing it to a thread, whose every GIL
hand-over can wait out Python's switch interval (5 ms). Passes over ``INLINE_ROWS`` rows run in a
dedicated thread, so that the loop keeps answering meanwhile.

Every model computes each row independently of the others (no batch statistics at inference), so a
row's prediction is the same alone or in a batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from mlops_pipeline.serving.inference import InferenceModel, Predictions
from mlops_pipeline.serving.schema import Columns

DEFAULT_MAX_ROWS = 1024
INLINE_ROWS = 64


@dataclass
class _Pending:
    columns: Columns
    rows: int
    future: asyncio.Future[Predictions]
    form: tuple[int, ...]  # only requests of the same form share a pass (see ``_form``)


class MicroBatcher:
    def __init__(self, model: InferenceModel, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.model = model
        self.max_rows = max_rows
        self._queue: deque[_Pending] = deque()
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.passes = 0  # forward passes run (for metrics and tests)

    async def predict(self, columns: Columns, rows: int) -> Predictions:
        loop = asyncio.get_running_loop()
        pending = _Pending(columns, rows, loop.create_future(), _form(columns))
        self._queue.append(pending)
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        return await pending.future

    def _take(self) -> list[_Pending]:
        """The queued requests of the next pass: at least one, then as many as fit in ``max_rows``
        whose columns have the same form (a parsed series matrix or text) as the first one's."""
        queue = self._queue
        taken = [queue.popleft()]
        rows, form = taken[0].rows, taken[0].form
        while queue and rows + queue[0].rows <= self.max_rows and queue[0].form == form:
            rows += queue[0].rows
            taken.append(queue.popleft())
        return taken

    async def _execute(self, batch: list[_Pending]) -> list[Predictions]:
        if sum(pending.rows for pending in batch) <= INLINE_ROWS:
            return self._run(batch)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, batch)

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # requests parsed in this turn of the loop join the first pass
            while self._queue:
                batch = self._take()
                try:
                    outputs = await self._execute(batch)
                except Exception as exc:
                    if len(batch) == 1:
                        _settle(batch[0], error=exc)
                        continue
                    for one in batch:  # one request's rows broke the pass: each alone, so only it fails
                        try:
                            (output,) = await self._execute([one])
                        except Exception as one_exc:
                            _settle(one, error=one_exc)
                        else:
                            _settle(one, output)
                    continue
                for pending, output in zip(batch, outputs, strict=True):
                    _settle(pending, output)
        finally:
            self._draining = False

    def _run(self, batch: list[_Pending]) -> list[Predictions]:
        self.passes += 1
        if len(batch) == 1:
            return [self.model.predict(batch[0].columns)]
        merged = {name: _concat([pending.columns[name] for pending in batch]) for name in batch[0].columns}
        outputs = self.model.predict(merged)
        pieces, start = [], 0
        for pending in batch:
            end = start + pending.rows
            pieces.append({name: values[start:end] for name, values in outputs.items()})
            start = end
        return pieces

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _form(columns: Columns) -> tuple[int, ...]:
    return tuple(values.ndim if isinstance(values, np.ndarray) else 0 for values in columns.values())


def _settle(pending: _Pending, output: Predictions | None = None, error: Exception | None = None) -> None:
    if pending.future.done():  # the client went away
        return
    if error is not None:
        pending.future.set_exception(error)
    else:
        pending.future.set_result(output or {})


def _concat(parts: list[np.ndarray | list[str]]) -> np.ndarray | list[str]:
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return [value for part in parts for value in part]
