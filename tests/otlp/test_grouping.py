"""``group_items`` (the extraction's grouping of items by group hash) against the obvious Python."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from otlp_gateway.otlp._kernels.fragments import group_items

HASHES = st.lists(st.one_of(st.sampled_from([0, -1, 1, 2**63 - 1, -(2**63), 8, 16]),
                            st.integers(-(2**63), 2**63 - 1)), max_size=300)


@settings(max_examples=300, deadline=None)
@given(hashes=HASHES)
def test_groups_in_order_of_first_appearance_items_in_arrival_order(hashes: list[int]) -> None:
    expected: dict[int, list[int]] = {}
    for i, h in enumerate(hashes):
        expected.setdefault(h, []).append(i)
    order = np.empty(len(hashes), dtype=np.int64)
    bounds = np.empty(len(hashes) + 1, dtype=np.int64)
    groups = group_items(np.array(hashes, dtype=np.int64), order, bounds)
    assert groups == len(expected)
    got = [order[bounds[g]:bounds[g + 1]].tolist() for g in range(groups)]
    assert got == list(expected.values())
