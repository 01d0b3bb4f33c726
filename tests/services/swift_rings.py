# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the account, container and object rings of a one-device Swift (run with the Swift venv's python).

    python swift_rings.py ETC_DIR ACCOUNT_PORT CONTAINER_PORT OBJECT_PORT

2^6 partitions, 1 replica, one device ``d1`` on 127.0.0.1. One interpreter
builds all three: three ``swift-ring-builder`` calls cost about a second each.
"""

import sys

from swift.common.ring import RingBuilder


def main(etc: str, ports: list[str]) -> None:
    for name, port in zip(("account", "container", "object"), ports, strict=True):
        builder = RingBuilder(6, 1, 1)
        device = {"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port), "device": "d1", "weight": 1.0}
        builder.add_dev(device)
        builder.rebalance()
        builder.save(f"{etc}/{name}.builder")
        builder.get_ring().save(f"{etc}/{name}.ring.gz")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
