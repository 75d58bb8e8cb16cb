"""`python -m bench run|seed ...`: the benchmark suite's command line."""

from __future__ import annotations

import argparse
import asyncio

from bench import run, seed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run.add_arguments(commands.add_parser("run", help="Run the benchmark suite."))
    seeding = commands.add_parser("seed", help="Build (or reuse) one data set.")
    seeding.add_argument("--database-url", required=True)
    seeding.add_argument("--users", type=int, default=10_000)
    seeding.add_argument("--friends", type=int, default=200)
    seeding.add_argument("--posts", type=int, default=1_000_000)
    seeding.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    if args.command == "run":
        run.main(args)
    else:
        spec = seed.DataSetSpec(users=args.users, friends=args.friends, posts=args.posts)
        asyncio.run(seed.ensure(args.database_url, spec, reuse=args.reuse))


if __name__ == "__main__":
    main()
