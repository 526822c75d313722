"""Test-only fault injection (issue 11): make the daemon die at a named point, as kill -9 would.

``PYVSWITCH_FAULT=<point>[,<point>...]`` in pyvswitchd's environment makes ``fault(point)`` end the process at
once with ``os._exit`` (no cleanup, no flush, no answer to the request in flight), which is what the system
tests use to kill a daemon at an exact step of a protocol instead of racing a signal against it. Points:

* ``migration:source:preparing`` / ``:validated`` / ``:handed_over`` / ``:moved`` / ``:answered``
* ``migration:destination:prepared`` / ``:accepted`` / ``:marked`` / ``:adopted`` / ``:committed``

(``daemon/migration.py`` says where each one is.) This is for tests only: nobody sets it in production, and
unset it costs one dictionary lookup per point.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

ENV = "PYVSWITCH_FAULT"
EXIT_CODE = 86  # distinguishable from a crash or a signal in a test's failure message


def fault(point: str) -> None:
    """Die here if ``PYVSWITCH_FAULT`` names ``point``."""
    wanted = os.environ.get(ENV)
    if wanted and point in wanted.split(","):
        log.critical("fault injection: dying at %s (%s is set)", point, ENV)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_CODE)
