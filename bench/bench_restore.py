"""Restore time of one state partition from its compacted changelog, per million records.

Run (a broker of your own)::

    .venv/bin/python bench/bench_restore.py --bootstrap 127.0.0.1:19392 --n 1000000

Writes ``--n`` changelog-like records (``--keys`` distinct keys, values of ``--value-bytes``
bytes, the size of a card's state) to one partition of a fresh compacted topic inside Kafka
transactions, as the worker's checkpoint does, then times ``stream_app.restore.read_changelog``
over it (read_committed, to the end) ``--repeat`` times and prints JSON with seconds per
million records. Compaction may not have run yet, so every record is read: the worst case.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid

from confluent_kafka import Producer

from sentinel.infra.admin import create_topics, delete_topics
from sentinel.topics import TopicSpec
from stream_app.restore import read_changelog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=50_000)
    ap.add_argument("--value-bytes", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    conf = {"bootstrap.servers": args.bootstrap}
    name = f"restore-{uuid.uuid4().hex[:8]}-changelog"
    create_topics(conf, [TopicSpec(name, name, "key", "state", 1,
                                   {"cleanup.policy": "compact"}, "bench")])
    try:
        p = Producer({**conf, "transactional.id": f"bench-{name}", "linger.ms": 20,
                      "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
        p.init_transactions(30)
        value = os.urandom(args.value_bytes)
        t0 = time.perf_counter()
        per_tx = 10_000
        for start in range(0, args.n, per_tx):
            p.begin_transaction()
            for i in range(start, min(args.n, start + per_tx)):
                while True:
                    try:
                        p.produce(name, value, f"k{i % args.keys}".encode(), partition=0)
                        break
                    except BufferError:
                        p.poll(0.05)
            p.commit_transaction(60)
        write_s = time.perf_counter() - t0
        runs = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            state = read_changelog(conf, name, 0, timeout_s=1800)
            runs.append(time.perf_counter() - t0)
        assert len(state) == min(args.n, args.keys), len(state)
        print(json.dumps({"records": args.n, "keys": args.keys, "value_bytes": args.value_bytes,
                          "write_s": round(write_s, 1),
                          "restore_s": [round(r, 2) for r in runs],
                          "restore_s_per_million": [round(r / args.n * 1e6, 2) for r in runs],
                          "load": os.getloadavg()[0]}))
    finally:
        delete_topics(conf, [name])


if __name__ == "__main__":
    main()
