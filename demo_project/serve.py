"""Serve the demo as production would: gunicorn (gthread) on :8000, uvicorn (ASGI) on :8001.

``make demo`` runs this after migrating. Both servers use the pooled ENGINE, each worker with
its own pools, and publish their pools to the file cache the admin dashboard reads, so the
dashboard shows every process. DEBUG stays on (a demo on 127.0.0.1 only) so that the debug
toolbar shows. Ctrl-C stops both servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

HOST = "127.0.0.1"
WSGI_PORT = int(os.environ.get("DEMO_PORT", "8000"))
ASGI_PORT = WSGI_PORT + 1


def servers() -> dict[str, list[str]]:
    python = sys.executable
    return {
        "gunicorn": [
            python,
            "-m",
            "gunicorn",
            "demo_project.wsgi:application",
            "--bind",
            f"{HOST}:{WSGI_PORT}",
            "--worker-class",
            "gthread",
            "--workers",
            "2",
            "--threads",
            "4",
            "--access-logfile",
            "-",
        ],
        "uvicorn": [
            python,
            "-m",
            "uvicorn",
            "demo_project.asgi:application",
            "--host",
            HOST,
            "--port",
            str(ASGI_PORT),
            "--lifespan",
            "off",
        ],
    }


def banner() -> str:
    wsgi, asgi = f"http://{HOST}:{WSGI_PORT}", f"http://{HOST}:{ASGI_PORT}"
    return f"""
django_pool demo (log in as demo / demo)
  shop, and what to look at ........ {wsgi}/
  leaderboard (sync server) ........ {wsgi}/leaderboard/
  leaderboard (ASGI, uvicorn) ...... {asgi}/leaderboard/
  a mistake for the toolbar panel .. {wsgi}/mistakes/slow-call/
  admin pool dashboard ............. {wsgi}/admin/django_pool/poolstatus/
  traffic, in a second terminal .... .venv/bin/python manage.py simulate_traffic
  tenants, each with its own pool .. {wsgi}/tenants/small/  {wsgi}/tenants/large/
gunicorn (2 gthread workers x 4 threads) on :{WSGI_PORT}, uvicorn on :{ASGI_PORT}.
Ctrl-C stops both.
"""


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (a process manager, timeout) stops both servers too


def main() -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):  # also where a shell left SIGINT ignored
        signal.signal(signum, _interrupt)
    started = {name: subprocess.Popen(command) for name, command in servers().items()}
    print(banner(), flush=True)
    try:
        while all(process.poll() is None for process in started.values()):
            time.sleep(0.5)
        for name, process in started.items():
            if process.poll() is not None:
                print(f"{name} exited with {process.returncode}; stopping the other.", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nStopping the demo servers.", flush=True)
        return 0
    finally:
        for process in started.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
