# SPDX-License-Identifier: GPL-3.0-or-later
"""The machine the charm manages: commands, files, ownership.

Every path the charm touches goes through :meth:`Host.path`, and every
command through :meth:`Host.run`, so unit tests can run the real charm logic
against a temporary root folder and record the commands instead of running
apt, pip or systemctl on the test machine.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


class HostError(Exception):
    """A command or file operation failed; the message says which."""


class Host:
    def __init__(self, root: str | os.PathLike = "/"):
        self.root = Path(root)

    def path(self, absolute: str) -> Path:
        """The real location of an absolute path of the managed machine."""
        return self.root / absolute.lstrip("/")

    def run(self, argv: list[str], timeout: float = 3600, env: dict[str, str] | None = None) -> str:
        """Run a command, return its stdout. Raises HostError with its stderr on failure."""
        log.info("running %s", " ".join(argv))
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd="/"
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise HostError(f"{argv[0]}: {err}") from None
        if done.returncode != 0:
            raise HostError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-1000:]}")
        return done.stdout

    def chown(self, path: Path, user: str, group: str) -> None:
        shutil.chown(path, user=user, group=group)

    def write_file(self, absolute: str, content: str, mode: int = 0o644, owner: tuple[str, str] | None = None) -> bool:
        """Write atomically (temp file + rename). Returns False when the content was already the same."""
        target = self.path(absolute)
        if target.exists() and target.read_text() == content and (target.stat().st_mode & 0o7777) == mode:
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            os.chmod(tmp, mode)
            if owner:
                self.chown(Path(tmp), *owner)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    def copy_file(self, source: Path, absolute: str, mode: int = 0o644) -> bool:
        return self.write_file(absolute, source.read_text(), mode)

    def remove(self, absolute: str) -> bool:
        try:
            self.path(absolute).unlink()
        except FileNotFoundError:
            return False
        return True

    def symlink(self, target: str, absolute: str) -> None:
        """Point ``absolute`` at ``target`` (both paths of the managed machine), replacing a link."""
        link = self.path(absolute)
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)
