# SPDX-License-Identifier: GPL-3.0-or-later
"""Dict-backed stand-in for Swift's memcache middleware (tests only).

Runs inside the Swift proxy (its own virtualenv), which loads it through
``paste.filter_factory = swift_dict_cache:filter_factory``. tempauth and the
proxy's info caching need ``env['swift.cache']``; with ``workers = 0`` one
process serves everything, so a module-level dict is the whole cache. Values
go through JSON like memcache would, so callers never share mutable objects.
"""

import json
import time

_STORE = {}


class DictCache:
    def _live(self, key):
        item = _STORE.get(key)
        if item is None:
            return None
        value, expires = item
        if expires and expires < time.time():
            del _STORE[key]
            return None
        return value

    def get(self, key, raise_on_error=False):
        value = self._live(key)
        return None if value is None else json.loads(value)

    def set(self, key, value, serialize=True, time=0, min_compress_len=0, raise_on_error=False):
        expires = _expiry(time)
        _STORE[key] = (json.dumps(value), expires)

    def incr(self, key, delta=1, time=0):
        current = self.get(key) or 0
        current = max(0, int(current) + int(delta))
        self.set(key, current, time=time)
        return current

    def decr(self, key, delta=1, time=0):
        return self.incr(key, -delta, time)

    def delete(self, key, server_key=None):
        _STORE.pop(key, None)

    def get_multi(self, keys, server_key):
        return [self.get(key) for key in keys]

    def set_multi(self, mapping, server_key, serialize=True, time=0, min_compress_len=0):
        for key, value in mapping.items():
            self.set(key, value, time=time)


def _expiry(seconds):
    seconds = float(seconds or 0)
    if not seconds:
        return 0
    return seconds if seconds > 30 * 24 * 3600 else time.time() + seconds


def filter_factory(global_conf, **local_conf):
    cache = DictCache()

    def make(app):
        def middleware(env, start_response):
            env["swift.cache"] = cache
            return app(env, start_response)

        return middleware

    return make
