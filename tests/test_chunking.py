"""How the driver cuts the plan's stream into chunks: even last rounds, and larger chunks for fast items."""

import pyarrow as pa
import pytest

from batch_nst.job import chunking
from batch_nst.job.chunking import Chunker


@pytest.mark.parametrize("n, batch, workers, sizes", [
    (40, 8, 1, [8] * 5),
    (40, 8, 2, [7] * 5 + [5]),  # six chunks: three rounds of two, not 3 + 2 with one idle worker
    (3, 8, 2, [2, 1]),
    (10, 1, 3, [1] * 10),
])
def test_chunks_keep_every_worker_busy_in_the_last_round(n, batch, workers, sizes):
    chunks = list(Chunker(n, batch, workers).chunks(range(n)))
    assert [len(c) for c in chunks] == sizes
    assert [i for c in chunks for i in c] == list(range(n))  # order (styles together) kept


def _finished(chunker: Chunker, items: int, seconds_each: float) -> None:
    chunker.observe(pa.table({"seconds": [seconds_each] * items}))


def test_fast_items_get_chunks_of_several_batches_in_whole_rounds():
    """Tiny sprites: a batch of 16 in 0.5 s, so a chunk of one batch is mostly Ray's round trip."""
    n, batch, workers = 10_000, 16, 4
    chunker = Chunker(n, batch, workers)
    stream = chunker.chunks(range(n))
    first = [next(stream) for _ in range(workers)]
    assert [len(c) for c in first] == [batch] * workers  # before anything came back: one batch each
    _finished(chunker, batch, 0.5 / batch)
    rest = list(stream)
    wanted = batch * int(chunking.CHUNK_SECONDS / 0.5)
    assert wanted - batch < len(rest[0]) <= wanted  # evened out over the rounds left
    assert len(rest) % workers == 0  # rounds of one chunk per worker, the last one's too
    assert [i for c in first + rest for i in c] == list(range(n))


def test_chunks_grow_to_at_most_max_batches_and_slow_items_stay_at_one_batch():
    quick, slow = Chunker(100_000, 16, 2), Chunker(1_000, 16, 2)
    _finished(quick, 16, 1e-6)
    _finished(slow, 16, 3.0)  # a 512 px item at 1000 steps: a batch holds more than a chunk's time
    assert quick.size() == 16 * chunking.MAX_BATCHES and slow.size() == 16


def test_failed_records_without_seconds_do_not_change_the_pace():
    chunker = Chunker(1_000, 16, 2)
    chunker.observe(pa.table({"seconds": pa.array([None, None], pa.float64())}))
    assert chunker.size() == 16


def test_chunk_seconds_sets_the_batches_a_chunk_holds_and_must_be_positive():
    from batch_nst.errors import ParamsError
    from batch_nst.job.driver import JobConfig

    longer = Chunker(100_000, 16, 2, seconds=8.0)
    _finished(longer, 16, 1.0 / 16)  # a batch a second
    assert longer.size() == 16 * 8
    with pytest.raises(ParamsError, match="--chunk-seconds must be > 0"):
        JobConfig(manifest="m.csv", output_root="out", chunk_seconds=0)
