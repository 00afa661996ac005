"""Hypothesis strategies for the trickle wire vocabulary."""

from __future__ import annotations

from hypothesis import strategies as st

from trio_trickle.wire import ChannelChange, PublishRequestMeta, SegmentMeta

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

channel_names = st.text(alphabet=UNRESERVED, min_size=1, max_size=256).filter(
    lambda name: name not in (".", "..")
)
seqs = st.integers(min_value=-2, max_value=10**18 - 1)


@st.composite
def segment_metas(draw: st.DrawFn) -> SegmentMeta:
    return SegmentMeta(
        seq=draw(st.none() | seqs),
        latest=draw(st.none() | seqs),
        closed=draw(st.booleans()),
    )


@st.composite
def publish_metas(draw: st.DrawFn) -> PublishRequestMeta:
    content_type = draw(
        st.none()
        | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
    )
    return PublishRequestMeta(reset=draw(st.booleans()), content_type=content_type)


@st.composite
def channel_changes(draw: st.DrawFn) -> ChannelChange:
    names = st.lists(channel_names, max_size=3)
    return ChannelChange(added=draw(names), removed=draw(names))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
header_maps = st.dictionaries(
    st.sampled_from(
        [
            "Lp-Trickle-Seq",
            "lp-trickle-latest",
            "LP-TRICKLE-CLOSED",
            "Lp-Trickle-Reset",
            "Content-Type",
            "X-Other",
        ]
    ),
    st.text(max_size=24),
    max_size=5,
)
