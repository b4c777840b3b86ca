"""localstripe, bound to loopback only and never pickling its store to /tmp.

    python localstripe_server.py PORT

localstripe's own `start()` binds every interface and writes
/tmp/localstripe.pickle after each write; here its aiohttp app is served on
127.0.0.1 and the save is a no-op. Reset between tests: DELETE /_config/data."""

import logging
import sys

from aiohttp import web
from localstripe import resources, server

resources.Store.dump_to_disk = lambda self: None

if __name__ == "__main__":
    # localstripe reports webhook deliveries on this logger; the tests read it.
    log = logging.getLogger("aiohttp.access")
    log.setLevel(logging.INFO)
    log.addHandler(logging.StreamHandler())
    web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
