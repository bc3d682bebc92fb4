"""The emulated S3's object bodies: in memory while small, in a file of their own beyond."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepnet.engine.bodies import SpilledBody


def test_a_small_body_stays_in_memory_and_a_large_one_goes_to_a_file() -> None:
    # Given a buffer that keeps 16 bytes in memory
    body = SpilledBody(5 * 2**20, memory_bytes=16)

    # When 10 bytes are written, then 10 more
    body.write(b"0123456789")
    small = body.spilled
    body.write(b"abcdefghij")

    # Then it spilled when it outgrew memory, and reads the same either way
    assert not small and body.spilled
    assert body.seek(0) == 0 and body.read() == b"0123456789abcdefghij"
    body.seek(5)
    assert body.read(3) == b"567" and body.tell() == 8


def test_closing_a_spilled_body_removes_its_file() -> None:
    # Given a spilled body
    body = SpilledBody(memory_bytes=4)
    body.write(b"more than four")
    path = body._path
    assert path is not None and os.path.exists(path)

    # When it is closed (moto disposes of a replaced or deleted key so)
    body.close()

    # Then its file is gone and it reads no more, as a closed file
    assert not os.path.exists(path)
    with pytest.raises(ValueError, match="closed file"):
        body.read()


def test_no_descriptor_is_held_between_calls() -> None:
    # Given many spilled bodies
    before = len(os.listdir("/proc/self/fd"))
    bodies = [SpilledBody(memory_bytes=1) for _ in range(200)]
    for index, body in enumerate(bodies):
        body.write(index.to_bytes(4, "big"))

    # When they are counted against the open descriptors
    after = len(os.listdir("/proc/self/fd"))

    # Then none is open
    assert after == before
    for body in bodies:
        body.close()


operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.binary(max_size=40)),
        st.tuples(st.just("seek"), st.integers(0, 120)),
        st.tuples(st.just("read"), st.integers(-1, 50)),
        st.tuples(st.just("truncate"), st.none()),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(operations, st.integers(0, 64))
def test_it_behaves_as_a_bytes_buffer(ops: list[tuple[str, object]], memory: int) -> None:
    # Given the same operations on a SpilledBody and on io.BytesIO
    body, model = SpilledBody(memory_bytes=memory), io.BytesIO()

    # When each is applied to both
    for name, argument in ops:
        if name == "write":
            assert body.write(argument) == model.write(argument)  # type: ignore[arg-type]
        elif name == "seek":
            assert body.seek(argument) == model.seek(argument)  # type: ignore[arg-type]
        elif name == "read":
            assert body.read(argument) == model.read(argument)  # type: ignore[arg-type]
        else:
            assert body.truncate() == model.truncate()

    # Then the whole contents agree
    body.seek(0), model.seek(0)
    assert body.read() == model.read()
    body.close()
