"""Request ids sort by arrival time (so the store's indexes append) and stay unguessable."""

from __future__ import annotations

import os
import re
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.edge.request_ids import new_request_id

SHAPE = re.compile(r"req_[0-9a-f]{32}")


def test_an_id_has_the_documented_shape_and_starts_with_its_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    rid = new_request_id()
    after = time.time_ns() // 1_000_000
    assert SHAPE.fullmatch(rid)
    assert before <= int(rid[4:16], 16) <= after


@settings(max_examples=25, deadline=None)
@given(gap_ms=st.integers(2, 5))
def test_ids_of_later_milliseconds_sort_after_earlier_ones(gap_ms: int) -> None:
    first = new_request_id()
    time.sleep(gap_ms / 1000)
    assert new_request_id() > first


def test_ids_are_unique_and_their_random_part_varies() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    tails = {rid[16:] for rid in ids}
    assert len(tails) == len(ids)
    assert len({rid[16] for rid in ids}) == 16  # every hex digit turns up in the random part


def test_a_forked_worker_never_repeats_its_parents_ids() -> None:
    """Random bytes are drawn in blocks; a child forked mid-block must not reuse them."""
    new_request_id()  # the parent holds a partly used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave without running anything else
        os.write(write, ",".join(new_request_id()[16:] for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split(","))
    parent = {new_request_id()[16:] for _ in range(5)}
    assert len(child) == 5
    assert not child & parent
