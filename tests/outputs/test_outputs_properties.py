"""Property tests: whatever the patch (regular or not, any subset of changed spans), each packet carries
exactly its span's bytes, and change detection picks exactly the spans whose bytes differ."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from installation.outputs import OutputConfig, Span, create_output


@st.composite
def patches(draw):
    n = draw(st.integers(1, 12))
    regular = draw(st.booleans())
    length = draw(st.integers(1, 512))
    spans, pos = [], draw(st.integers(0, 5))
    for u in range(n):
        ln = length if regular else draw(st.integers(1, 512))
        gap = 0 if regular else draw(st.integers(0, 7))
        spans.append(Span(u + 1, pos + gap, ln))
        pos += gap + ln
    order = draw(st.permutations(range(n))) if not regular else list(range(n))
    return [spans[i] for i in order], pos


@settings(max_examples=60, deadline=None)
@given(patches(), st.integers(0, 2**32 - 1), st.data())
def test_packets_carry_their_span_bytes(patch, seed, data):
    spans, size = patch
    rng = np.random.default_rng(seed)
    buf = rng.integers(0, 256, size, dtype=np.uint8)
    for protocol, head in (("artnet", 18), ("sacn", 126)):
        spans_p = spans if protocol == "sacn" else [Span(s.address - 1, s.offset, s.length) for s in spans]
        o = create_output(OutputConfig(name="p", protocol=protocol), spans_p)
        o._encode(buf, np.ones(len(spans), bool))
        mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(spans), max_size=len(spans))))
        if mask.any():
            buf2 = buf.copy()
            for i in np.flatnonzero(mask):
                s = spans[i]
                buf2[s.offset:s.offset + s.length] ^= 0xFF
            assert (o._select(buf2, 0.0) | ~mask).all()  # every changed span is picked
            o._sent = buf
            o._repeats[:] = 99
            o._last_tx[:] = 0.0
            assert (o._select(buf2, 0.0) == mask).all()  # and only those
            o._encode(buf2, mask)
            buf = buf2
        for i, s in enumerate(spans):
            p = bytes(o.block.views[i])
            assert p[head:head + s.length] == buf[s.offset:s.offset + s.length].tobytes()
