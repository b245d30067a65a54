"""``make bench``: run every scenario and print one table.

    python -m bench.run [--quick] [--only NAME ...] [--peers]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from bench.harness import BenchEnv, Result, format_table, workdir

#: Scenario modules in the order they run. A scenario whose protocol is not part of this
#: version yet is simply absent from the list.
SCENARIOS = [
    "store_append",
    "pop3_download",
    "smtp_receive",
    "smtp_relay",
    "imap_fetch",
    "imap_sort_thread",
    "imap_sync",
    "imap_search",
    "imap_idle",
    "imap_latency",
    "hostile_load",
    "large_messages",
    "http_api",
    "jmap_sync",
    "jmap_push",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--peers", action="store_true", help="also measure Postfix/Dovecot")
    parser.add_argument("--only", nargs="*", default=None, help="scenario module names")
    args = parser.parse_args(argv)
    chosen = args.only or SCENARIOS
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        print(f"error: unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    results: list[Result] = []
    failed = 0
    with workdir() as tmp:
        env = BenchEnv(tmp, quick=args.quick, peers=args.peers)
        for name in chosen:
            started = time.monotonic()
            print(f"running {name} ...", file=sys.stderr, flush=True)
            try:
                module = importlib.import_module(f"bench.{name}")
                results.extend(module.run(env))
            except Exception:
                failed += 1
                print(f"scenario {name} failed:", file=sys.stderr)
                traceback.print_exc()
            print(f"  {name} took {time.monotonic() - started:.1f}s", file=sys.stderr)
    print(format_table(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
