"""Write the card-transactions example's data: `examples/transactions.parquet`, the same bytes on every run.

Customers with numeric ids buy on some days of 2024, several times on many days; a few stop for months
and come back, one buys forty times a day, and some amounts are missing; each purchase has an id. Rows
are shuffled, as a table filled by many writers would be. `python scripts/example_data.py [--out PATH]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SEED = 2024
OUT = Path(__file__).resolve().parents[1] / "examples" / "transactions.parquet"
SCHEMA = pa.schema(
    [
        ("txn_id", pa.int64()),
        ("customer_id", pa.int64()),
        ("txn_day", pa.date32()),
        ("amount", pa.float64()),
        ("channel", pa.string()),
    ]
)
FIRST, DAYS = dt.date(2024, 1, 1), 366


def transactions(seed: int = SEED) -> list[tuple]:
    rng = random.Random(seed)
    customers = [*range(1, 61), 9_000_000_001]  # the last one buys forty times a day
    rows = []
    for customer in customers:
        start = rng.randrange(0, 200)
        stop = rng.randrange(start + 30, DAYS + 1)
        pause = range(rng.randrange(start, stop), rng.randrange(start, stop) + 120) if customer % 7 == 0 else range(0)
        rate = 40.0 if customer > 1000 else rng.uniform(0.1, 2.5)
        for day in range(start, stop):
            if day in pause:
                continue
            for _ in range(_poisson(rng, rate)):
                amount = None if rng.random() < 0.03 else round(rng.lognormvariate(3.0, 1.0), 2)
                channel = rng.choice(["card", "online", "wallet"])
                rows.append((len(rows) + 1, customer, FIRST + dt.timedelta(days=day), amount, channel))
    rng.shuffle(rows)
    return rows


def _poisson(rng: random.Random, rate: float) -> int:
    """Knuth's method: the number of events in one day at `rate` per day."""
    limit, count, product = pow(2.718281828459045, -rate), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def write(path: Path, seed: int = SEED) -> int:
    rows = transactions(seed)
    table = pa.Table.from_pylist([dict(zip(SCHEMA.names, row, strict=True)) for row in rows], schema=SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=8192)
    return table.num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    print(f"{write(args.out):,} transactions written to {args.out}")


if __name__ == "__main__":
    main()
