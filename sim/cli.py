"""`python -m sim serve`: the simulator as a standalone process.

Users try the remediator, its what-if and its benchmarks against a stand-in
they can leave running and point other tools at (the CLI, a browser, the demo),
so the simulator also runs on its own: it prints the endpoint and the CA bundle
to give clients, serves until interrupted (Ctrl-C or SIGTERM), and exits 0. The
project's `localazure serve` (localazure/cli.py) calls `serve(argv)` directly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from sim.simulator import ArmSimulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sim serve", description="Serve the local ARM simulator on 127.0.0.1."
    )
    parser.add_argument("--port", type=int, default=0, help="loopback port (default: a free one)")
    parser.add_argument(
        "--seed",
        action="append",
        default=[],
        metavar="FILE",
        help="ARM JSON or `az ... list` output to load (repeatable)",
    )
    parser.add_argument(
        "--throttling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="enforce ARM's request limits (default: on)",
    )
    parser.add_argument(
        "--nic-update-long-running",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="answer a NIC update 200 Updating with an operation to poll (default: off, synchronous "
        "200 Succeeded as recorded from Azure)",
    )
    parser.add_argument("--time-scale", type=float, default=1.0, help="run the clocks this much faster")
    parser.add_argument("--provision-delay", type=float, default=0.3, help="simulated seconds")
    parser.add_argument("--lro-duration", type=float, default=0.05, help="simulated seconds")
    parser.add_argument("--child-events", action="store_true", help="events for platform-made children")
    parser.add_argument(
        "--list-lag",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="simulated seconds lists lag the writes (default: 1.0; 0: current)",
    )
    parser.add_argument(
        "--graph-lag",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="simulated seconds Resource Graph lags the writes (default: 5.0; 0: current)",
    )
    parser.add_argument(
        "--events-at",
        choices=("acceptance", "completion"),
        default="acceptance",
        help="publish a write's event when ARM accepts it (default) or when its operation completes",
    )
    parser.add_argument(
        "--authorization",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="authorize requests as ARM does (default: on; --owner OID gives a principal Owner)",
    )
    parser.add_argument(
        "--owner",
        action="append",
        default=[],
        metavar="OID",
        help="an object id that is Owner at the root scope '/' (repeatable)",
    )
    return parser


def serve(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until SIGINT or SIGTERM; returns the exit status (0, or 2 for bad options).

    `argv` are the options after `serve`. Prints `endpoint <url>`, `ca_bundle <path>` and
    `seeded <n>` lines, flushed, before serving. Must run in the main thread (it installs signal
    handlers, and restores the previous ones on the way out).
    """
    args = _parser().parse_args(list(argv) if argv is not None else None)
    if args.time_scale <= 0:
        print("--time-scale must be positive", file=sys.stderr)
        return 2
    if args.list_lag < 0 or args.graph_lag < 0:
        print("--list-lag and --graph-lag must not be negative", file=sys.stderr)
        return 2
    stop = threading.Event()

    def interrupted(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ArmSimulator(
            port=args.port,
            throttling=args.throttling,
            time_scale=args.time_scale,
            provision_delay_s=args.provision_delay,
            lro_duration_s=args.lro_duration,
            child_events=args.child_events,
            authorization=args.authorization,
            nic_update_long_running=args.nic_update_long_running,
            list_lag_s=args.list_lag,
            graph_lag_s=args.graph_lag,
            events_at=args.events_at,
        ) as simulator:
            for owner in args.owner:
                simulator.grant(owner, "Owner", "/")
            loaded = sum(simulator.seed_file(path) for path in args.seed)
            print(f"endpoint {simulator.endpoint}", flush=True)
            print(f"ca_bundle {simulator.ca_bundle}", flush=True)
            print(f"seeded {loaded}", flush=True)
            while not stop.wait(0.2):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sim serve [options]`."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] != "serve":
        print(
            "usage: python -m sim serve [--port P] [--seed FILE ...] [--[no-]throttling] [--time-scale X] "
            "[--[no-]authorization] [--owner OID ...] [--[no-]nic-update-long-running] [--list-lag S] "
            "[--graph-lag S] [--events-at acceptance|completion]"
        )
        return 2
    return serve(arguments[1:])
