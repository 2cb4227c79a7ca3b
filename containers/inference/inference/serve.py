"""`python -m inference.serve [--model-dir DIR] [--host H] [--port N]`: load the model, then serve.

SageMaker runs `serve` (containers/inference/serve) with no arguments: the model is in
`/opt/ml/model` and the port is 8080 or `SAGEMAKER_BIND_TO_PORT`. The local hosting
platform runs the same module with explicit arguments on a loopback port. The model is
loaded and warmed up before the socket opens, so the first successful `/ping` means ready.
waitress serves it: a production WSGI server with a thread pool, no development server.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

import waitress

from inference.app import InferenceApp
from inference.predict import Predictor
from inference.settings import Settings

log = logging.getLogger("inference.serve")


def parse_args(argv=None) -> Settings:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m inference.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=settings.model_dir, help="checkpoint directory")
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--threads", type=int, default=settings.threads)
    parser.add_argument("--device", default=settings.device, help="cpu, cuda, cuda:N (default: auto)")
    args = parser.parse_args(argv)
    return dataclasses.replace(
        settings,
        model_dir=args.model_dir,
        host=args.host,
        port=args.port,
        threads=args.threads,
        device=args.device,
    )


def build_app(settings: Settings) -> InferenceApp:
    predictor = Predictor(settings.model_dir, settings.device)
    predictor.warm_up()
    log.info(
        "loaded %s model (%s classes) from %s on %s",
        predictor.task,
        len(predictor.class_names),
        settings.model_dir,
        predictor.device,
    )
    return InferenceApp(predictor, settings)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = parse_args(argv)
    try:
        app = build_app(settings)
    except (FileNotFoundError, ValueError) as exc:
        log.error("cannot load the model: %s", exc)
        return 2
    log.info(
        "serving on http://%s:%d (max batch %d, max wait %d ms, %d threads)",
        settings.host,
        settings.port,
        settings.max_batch_size,
        settings.max_batch_wait_ms,
        settings.threads,
    )
    waitress.serve(
        app,
        host=settings.host,
        port=settings.port,
        threads=settings.threads,
        ident="aifactory-inference",
        # waitress's own cap is a backstop; the app answers 413 with the JSON error first.
        max_request_body_size=settings.max_request_bytes + 1024 * 1024,
        channel_timeout=120,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
