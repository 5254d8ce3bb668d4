"""Chaos soak: many SIGKILLs of bots and the broker on PostgreSQL, then every invariant.

    python bench/chaos_soak.py --rounds 500 --json bench/results/chaos_soak.json
    python bench/chaos_soak.py --rounds 50 --seed 7 --pg postgresql://postgres@127.0.0.1/test
    python bench/chaos_soak.py --rounds 150 --faults standard   # kills + injected faults

Runs in a fresh PostgreSQL schema of --pg (dropped afterwards) and a temporary directory.
Prints one line per round and a JSON report; exits 1 if any invariant was violated.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text

from fleetkit.testing.chaos import FAULT_PRESETS, ChaosPlan, ChaosRun
from report import publish


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--bots", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", choices=sorted(FAULT_PRESETS), default="none",
                        help="inject sandbox faults as well as kills")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    base = args.pg.replace("postgresql://", "postgresql+psycopg://", 1)
    schema = f"soak_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}')}"
    try:
        plan = ChaosPlan(rounds=args.rounds, bots=args.bots, seed=args.seed,
                         faults=FAULT_PRESETS[args.faults])
        with tempfile.TemporaryDirectory(prefix="fleet-soak-") as home:
            report = ChaosRun(plan, Path(home), url, say=lambda line: print(line, flush=True)).run()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    result = {"plan": {"rounds": args.rounds, "bots": args.bots, "seed": args.seed,
                       "faults": args.faults},
              **report.as_json()}
    publish(result, args.json)
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
