"""``python -m bench`` / ``kmsgate-bench``: run the benchmark suite and write the report."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from bench.context import Context, Options, Skip
from bench.report import Machine, Report, command_line, now, write_report
from bench.scenarios import SCENARIOS
from bench.targets import check_targets


def parse_args(argv: list[str] | None) -> tuple[Options, bool]:
    parser = argparse.ArgumentParser(prog="kmsgate-bench", description=__doc__)
    parser.add_argument("--target", help="base URL of a running kmsgate (KMS at POST /, gateway at /v1); "
                        "default: start local servers")
    parser.add_argument("--quick", action="store_true", help="short runs and smaller counts (about a minute)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), dest="scenarios",
                        help="run only this scenario (repeatable); default: all but the soak (make soak)")
    parser.add_argument("--budget", type=float, default=600.0, help="total time budget in seconds (default 600)")
    parser.add_argument("--results-dir", default="bench/results")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each figure that has a target, and of its ceiling, alternated; the median "
                        "run of each is reported (default 3; 1 with --quick)")
    parser.add_argument("--soak-duration", type=float, default=600.0,
                        help="seconds of traffic in the soak scenario (default 600)")
    parser.add_argument("--soak-connections", type=int, default=1000,
                        help="mostly idle keep-alive connections the soak holds open (default 1000)")
    parser.add_argument("--no-wrk", action="store_true", help="skip the wrk cross-check")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
    args = parser.parse_args(argv)
    names = tuple(args.scenarios or (name for name, s in SCENARIOS.items() if s.in_default_run))
    options = Options(target=args.target, quick=args.quick, scenarios=names, budget_s=args.budget,
                      results_dir=args.results_dir, concurrency=args.concurrency,
                      client_processes=args.client_processes, use_wrk=not args.no_wrk,
                      progress=not args.no_progress, rounds=args.rounds,
                      soak_duration_s=args.soak_duration, soak_connections=args.soak_connections)
    return options, args.list


def run_suite(options: Options) -> Report:
    """Run the chosen scenarios within the budget; every server started is stopped on the way out."""
    started, t0 = now(), time.monotonic()
    scenarios = [SCENARIOS[n] for n in options.scenarios]
    planned = sum(s.planned_runs(options) for s in scenarios)
    ctx = Context(options, planned)
    try:
        for scenario in scenarios:
            ctx.scenario = scenario.name
            try:
                scenario.run(ctx)
            except Skip as exc:
                ctx.skip(scenario.name, str(exc))
    finally:
        ctx.close()
    return Report(started, command_line(), Machine.detect(), list(ctx.measurements),
                  check_targets(ctx.measurements), list(ctx.skipped), list(ctx.notes), time.monotonic() - t0)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    options, list_only = parse_args(argv)
    if list_only:
        for s in SCENARIOS.values():
            print(f"{s.name:10} {s.description}")
        return 0
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so every server this run started is stopped.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    report = run_suite(options)
    if not report.measurements and report.notes:
        # Only the soak ran: it wrote its own report; the day's suite report is left as it is.
        for note in report.notes:
            print(note)
        for what, reason in report.skipped:
            print(f"skipped {what}: {reason}")
        return 0
    paths = write_report(report, options.results_dir)
    print(f"{len(report.measurements)} figures, {len(report.skipped)} skipped, {report.elapsed_s:.0f} s")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
