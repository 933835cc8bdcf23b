"""The test client's ring is the collector loadbalancing exporter's: the positions and lookups its own
unit tests pin, and the property the scale-out relies on (adding a backend moves about 1/N of the keys,
only onto the new backend)."""

from __future__ import annotations

import zlib

from tests.scaleout.ring import HashRing, positions_for

SERVICES = [f"service-{i}" for i in range(3000)]


def test_positions_match_the_exporter() -> None:
    assert sorted(positions_for("endpoint-1", 5)) == [1401, 4175, 14133, 17836, 21667]
    assert sorted(positions_for("endpoint-2", 5)) == [10240, 15002, 21263, 26806, 27020]
    ring = HashRing(["endpoint-2", "endpoint-1", "endpoint-1"], points=5)  # order and duplicates ignored
    assert [p for p, _ in ring.items] == [1401, 4175, 10240, 14133, 15002, 17836, 21263, 21667, 26806, 27020]
    assert len(HashRing(["endpoint-1", "endpoint-2"]).items) == 200


def test_lookup_takes_the_next_position_and_wraps() -> None:
    ring = HashRing(["endpoint-1", "endpoint-2"], points=5)
    by_position = dict(ring.items)
    # a key at position p goes to the first point >= p (p itself when taken), past the last to the first
    for wanted, found in ((85, 1401), (1401, 1401), (1402, 4175), (27020, 27020), (27021, 1401),
                          (35999, 1401)):
        key = _key_at(wanted)
        assert ring.endpoint_for(key) == by_position[found], (wanted, found)


def test_adding_a_backend_moves_about_one_in_n_keys_and_only_to_it() -> None:
    two = HashRing(["10.0.0.1:4317", "10.0.0.2:4317"])
    three = HashRing(["10.0.0.1:4317", "10.0.0.2:4317", "10.0.0.3:4317"])
    moved = [s for s in SERVICES if two.endpoint_for(s) != three.endpoint_for(s)]
    assert all(three.endpoint_for(s) == "10.0.0.3:4317" for s in moved)
    assert 0.2 < len(moved) / len(SERVICES) < 0.47  # about 1/3


def _key_at(position: int) -> str:
    """A key whose crc32 lands on ``position``."""
    for i in range(10_000_000):
        key = f"k{i}"
        if zlib.crc32(key.encode()) % 36_000 == position:
            return key
    raise AssertionError(f"no key found for position {position}")
