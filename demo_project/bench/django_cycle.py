"""Run ``ensure_connection(); close()`` N times on the pooled ENGINE, for an instruction count.

``make bench``'s micro section times this cycle ("Django level"); on a noisy machine its
wall-clock figures swing by ±20 %. Under callgrind the count of instructions is repeatable,
so a change to the borrow path can be measured exactly:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python -m demo_project.bench.django_cycle 1000
    (the same with 6000; instructions per cycle = (total at 6000 - total at 1000) / 5000)

A second argument picks the cycle: ``native`` (Django's pool, with ``close()``),
``persistent`` (``ensure_connection(); close_old_connections()`` on a kept connection), or
``django_pool_request`` and ``persistent_own``, a request's cycle on that alias alone
(``ensure_connection(); close_if_unusable_or_obsolete()``: django_pool parks and takes back).

Run it in two checkouts (``git worktree add``) to compare revisions.
"""

from __future__ import annotations

import sys

from demo_project.bench import micro
from demo_project.devdb import database_settings

# A request's cycle on one alias alone -> that alias.
OWN_ALIAS = {"django_pool_request": "django_pool", "persistent_own": "persistent"}


def main() -> None:
    micro.configure_django(database_settings(micro.DB_NAME))
    name = sys.argv[2] if len(sys.argv) > 2 else "django_pool"
    if name == "persistent":
        loop = micro.persistent_loop()
    elif name in OWN_ALIAS:
        loop = micro.request_loop(OWN_ALIAS[name], every_alias=False)
    else:
        loop = micro.django_loop(name)
    loop(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)


if __name__ == "__main__":
    main()
