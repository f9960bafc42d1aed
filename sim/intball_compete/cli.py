"""``intball compete``: run behaviors locally, or serve the competition API.

    intball compete run BEHAVIOR [--mission ID] [--seeds N] [--first-seed S] [--json OUT]
                                 [--localization truth-noise|vision] [--workers W] [--ray-address ADDR]
    intball compete serve --data DIR [--port 8090] [--workers W] [--ray-address ADDR]

``--mission`` defaults to the current mission (``missions.DEFAULT_MISSION``). ``run`` exit
status: 0 = every run ended ``ok``, 1 = some did not, 2 = bad input (the upload check's reason
is printed). This module imports only argparse at load time (``intball --help``
stays fast); the simulator is imported by the workers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="compete_command", required=True)
    run = sub.add_parser("run", help="evaluate a behavior (.py or .zip) on N seeds of a mission")
    run.add_argument("behavior", metavar="BEHAVIOR", help="behavior.py or a zip with behavior.py")
    run.add_argument(
        "--mission", default=None, help="scenario id (default: the current one, kibo-targets-v2)"
    )
    run.add_argument("--seeds", type=int, default=10, metavar="N", help="number of seeds (default 10)")
    run.add_argument("--first-seed", type=int, default=0, metavar="S", help="first seed (default 0)")
    run.add_argument("--json", metavar="OUT", help="write all results (with trajectories) to this file")
    run.add_argument("--localization", choices=("truth-noise", "truth", "vision"), default="truth-noise")
    run.add_argument("--workers", type=int, default=None, metavar="W", help="local processes (default: CPUs)")
    run.add_argument(
        "--ray-address", default=None, metavar="ADDR", help="evaluate on Ray ('local' or an address)"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(compete_func=run_command)
    serve = sub.add_parser("serve", help="serve the competition HTTP API on 127.0.0.1")
    serve.add_argument("--data", required=True, metavar="DIR", help="data directory (SQLite store)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--workers", type=int, default=1, metavar="W")
    serve.add_argument("--ray-address", default=None, metavar="ADDR")
    serve.set_defaults(compete_func=serve_command)


def run(args: argparse.Namespace) -> int:
    return int(args.compete_func(args))


def run_command(args: argparse.Namespace) -> int:
    from intball_compete.evaluate import RunSpec, evaluate_batch, summarize  # noqa: PLC0415
    from intball_compete.missions import DEFAULT_MISSION, MISSION_IDS  # noqa: PLC0415
    from intball_compete.upload import UploadRejected, unpack  # noqa: PLC0415

    path = Path(args.behavior)
    if not path.is_file():
        print(f"intball compete run: error: behavior file not found: {path}", file=sys.stderr)
        return 2
    args.mission = args.mission or DEFAULT_MISSION
    if args.mission not in MISSION_IDS:
        print(
            f"intball compete run: error: unknown mission {args.mission!r}; known: {', '.join(MISSION_IDS)}",
            file=sys.stderr,
        )
        return 2
    if not 1 <= args.seeds <= 1000 or args.first_seed < 0:
        print(
            "intball compete run: error: --seeds must be in [1, 1000] and --first-seed >= 0", file=sys.stderr
        )
        return 2
    data = path.read_bytes()
    try:
        unpack(path.name, data)
    except UploadRejected as exc:
        print(f"intball compete run: error: {path}: {exc}", file=sys.stderr)
        return 2
    specs = [
        RunSpec(data, path.name, args.mission, seed, args.localization)
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]
    results = evaluate_batch(
        specs, workers=args.workers, ray_address=args.ray_address, progress=not args.no_progress
    )
    for r in results:
        terms = ", ".join(f"{k} {v:+.1f}" for k, v in r.get("terms", {}).items())
        print(f"seed {r['seed']:3d}: {r['status']:<12} total {r['total']:7.2f}  ({terms})")
        if r["status"] != "ok":
            print(f"          {r['reason'].strip().splitlines()[-1] if r['reason'].strip() else ''}")
    summary = summarize(results)
    print(
        f"mean total over {summary['runs']} seeds: {summary['mean_total']:.2f} ({args.mission}, "
        f"rule {summary['rule']})  statuses {summary['statuses']}"
    )
    if args.json:
        out = {"mission": args.mission, "behavior": str(path), "summary": summary, "runs": results}
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0 if all(r["status"] == "ok" for r in results) else 1


def serve_command(args: argparse.Namespace) -> int:
    from aiohttp import web  # noqa: PLC0415

    from intball_compete.service import Evaluator  # noqa: PLC0415
    from intball_compete.store import Store  # noqa: PLC0415
    from intball_compete.web import create_app  # noqa: PLC0415

    store = Store(args.data)
    evaluator = Evaluator(store, workers=args.workers, ray_address=args.ray_address).start()
    root = web.Application()
    root.add_subapp("/api/compete", create_app(store, evaluator))
    print(f"competition API on http://{args.host}:{args.port}/api/compete ({store.requeued} runs resumed)")
    try:
        web.run_app(root, host=args.host, port=args.port, print=None)
    finally:
        evaluator.stop()
        store.close()
    return 0
