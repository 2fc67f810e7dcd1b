"""`python -m tools.stripe_emulator --port 12111 [--webhook-url URL --webhook-secret whsec_...]`."""

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from .app import Emulator
from .server import EmulatorServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.stripe_emulator", description="An offline, stateful Stripe.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--public-url", help="base URL customers reach the hosted pages at (default: http://host:port)")
    parser.add_argument("--webhook-url", help="deliver every event to this URL")
    parser.add_argument("--webhook-secret", help="sign deliveries to --webhook-url with this secret (whsec_...)")
    parser.add_argument("--state-file", type=Path, help="load state from this JSON file at start, save it at exit")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(), format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
    )
    log = logging.getLogger("stripe_emulator")

    emulator = Emulator(args.public_url or f"http://{args.host}:{args.port}")
    if args.state_file and args.state_file.exists():
        emulator.store.load(args.state_file)
        log.info("state loaded from %s", args.state_file)
    if args.webhook_url:
        endpoint = emulator.register_endpoint(args.webhook_url, args.webhook_secret)
        log.info("webhook endpoint %s -> %s", endpoint["id"], args.webhook_url)
    server = EmulatorServer((args.host, args.port), emulator)
    emulator.start()

    def shut_down(signum, frame):
        # shutdown() waits for serve_forever to return, so it runs off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    log.info("Stripe emulator listening on http://%s:%s", args.host, args.port)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        emulator.stop()
        server.server_close()
        if args.state_file:
            emulator.store.save(args.state_file)
            log.info("state saved to %s", args.state_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
