"""`make run`: the API on the embedded local platform, behind Chalice's local gateway.

Prints the base URL and the API key, settles jobs left over from a previous run, and
keeps a background sweep that launches queued jobs and marks dead ones Failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading


def sweep_forever(stop: threading.Event, interval: float) -> None:
    from chalicelib.services import events
    from chalicelib.wiring import services

    log = logging.getLogger("aifactory.sweep")
    while not stop.wait(interval):
        try:
            services().platform.recover()
            events.deliver_pending(services())
        except Exception:  # noqa: BLE001 - the sweep must outlive a bad job directory
            log.exception("sweep failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--sweep-interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("AIFACTORY_STAGE", "local")

    from chalice.config import Config
    from chalice.local import create_local_server

    from chalicelib import settings
    from chalicelib.adapters.local.source_tree import REPO_ROOT
    from chalicelib.wiring import services

    sys.path.insert(0, str(REPO_ROOT))
    from app import app

    config = Config.create(
        chalice_stage="local", app_name="ai-factory", chalice_app=app, project_dir=str(REPO_ROOT)
    )
    server = create_local_server(app, config, args.host, args.port)
    port = server.server.server_address[1]
    os.environ.setdefault("AIFACTORY_PUBLIC_URL", f"http://{args.host}:{port}")
    settings.reset()
    services().platform.recover()
    stop = threading.Event()
    threading.Thread(target=sweep_forever, args=(stop, args.sweep_interval), daemon=True).start()

    def shutdown(signum, frame):  # noqa: ARG001
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    config = settings.current()
    config.home.mkdir(parents=True, exist_ok=True)
    (config.home / "url").write_text(config.public_url + "\n")  # where the CLI finds this server
    print(f"AI Factory API (stage local) on {config.public_url}", flush=True)
    print(f"API key: {settings.current().api_key}", flush=True)
    print(f"State: {settings.current().home}", flush=True)
    server.server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
