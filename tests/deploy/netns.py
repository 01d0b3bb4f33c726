# SPDX-License-Identifier: GPL-3.0-or-later
"""Network namespaces joined by a veth pair, and code that runs inside one.

Each namespace is a separate host: its own loopback, addresses and ports. The
root namespace has no route to them, so nothing in the test ever sends to a
namespace address from the root namespace: :meth:`NetNamespace.call` runs a
function in a thread that has joined the namespace (``setns`` changes the
network namespace of the calling thread only), and every socket it opens, or
every process it starts, lives there.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import logging
import os
import secrets
import subprocess
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
T = TypeVar("T")


class NetnsError(RuntimeError):
    """A namespace or link could not be set up."""


def _ip(*argv: str) -> None:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(argv)} failed: {done.stderr.strip()}")


def _join(path: str) -> None:
    """Move the calling thread into the network namespace at ``path``."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise NetnsError(f"setns({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)


class NetNamespace:
    """A named network namespace (``ip netns``) with loopback up."""

    def __init__(self, name: str):
        self.name = name
        self.path = f"{NETNS_DIR}/{name}"
        _ip("netns", "add", name)
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        try:
            _ip("-n", name, "link", "set", "lo", "up")
        except NetnsError:
            self.delete()
            raise

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` run by a thread inside the namespace.

        Always the same thread, so objects bound to a thread (a pika
        connection) may be used across calls; processes it starts (and their
        children) stay in the namespace.
        """
        if self._worker is None:
            self._worker = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"netns-{self.name}", initializer=_join, initargs=(self.path,)
            )
        return self._worker.submit(function, *args, **kwargs).result()

    def delete(self) -> None:
        """Delete the namespace; its veth ends go with it. Safe to call twice."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        if os.path.exists(self.path):
            try:
                _ip("netns", "delete", self.name)
            except NetnsError as err:
                log.warning("%s", err)


class Link:
    """Two namespaces joined by a veth pair on a private /24: ``a`` gets .1, ``b`` gets .2."""

    def __init__(self, prefix: str = "10.231.77"):
        tag = secrets.token_hex(3)
        self.a = NetNamespace(f"apw-{tag}-a")
        try:
            self.b = NetNamespace(f"apw-{tag}-b")
        except BaseException:
            self.a.delete()
            raise
        self.a_ip, self.b_ip = f"{prefix}.1", f"{prefix}.2"
        try:
            # Created inside a, its peer placed straight into b: neither end ever exists in the root namespace.
            _ip("-n", self.a.name, *"link add veth-a type veth peer name veth-b netns".split(), self.b.name)
            for ns, dev, ip in ((self.a, "veth-a", self.a_ip), (self.b, "veth-b", self.b_ip)):
                _ip("-n", ns.name, "addr", "add", f"{ip}/24", "dev", dev)
                _ip("-n", ns.name, "link", "set", dev, "up")
        except BaseException:
            self.delete()
            raise

    def delete(self) -> None:
        for ns in (self.b, self.a):
            with contextlib.suppress(NetnsError):
                ns.delete()
