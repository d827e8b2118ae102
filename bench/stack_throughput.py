"""Verdict throughput of the compose stack's workers on one stream: one replica against two.

Reads the verdicts topic through Kafka's host listener. For each phase it records the topic's
end offsets, runs the given command (a ``sentinel produce`` inside a container, at full speed),
waits for that many new verdicts and reports them per second between the first and the last
verdict's broker timestamp. Run against a stack whose workers are ready (docs/stack.md):

    python bench/stack_throughput.py --bootstrap 127.0.0.1:19092 --count 6000 -- \\
        docker-compose exec -T retrainer sentinel produce --input /data/a.parquet --no-labels

On a 2-core machine the two replicas share the same cores: the numbers show that the split is
correct (each transaction scored once, by either replica), not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid

from confluent_kafka import Consumer, TopicPartition

TOPIC = "sentinel.verdicts"


def end_offsets(consumer: Consumer) -> dict[int, int]:
    meta = consumer.list_topics(TOPIC, timeout=30).topics[TOPIC]
    return {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30)[1]
            for p in meta.partitions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--count", type=int, required=True, help="transactions the command sends")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "enable.auto.commit": False,
                         "group.id": f"bench-{uuid.uuid4().hex[:8]}"})
    start = end_offsets(consumer)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    consumer.assign([TopicPartition(TOPIC, p, o) for p, o in start.items()])
    stamps: list[int] = []
    ids: set[str] = set()
    deadline = time.monotonic() + args.timeout
    while len(stamps) < args.count and time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=1.0):
            if msg.error() is None:
                stamps.append(msg.timestamp()[1])
                ids.add(json.loads(msg.value())["transaction_id"])
    consumer.close()
    if len(stamps) < args.count:
        print(f"only {len(stamps)} of {args.count} verdicts within {args.timeout:.0f}s",
              file=sys.stderr)
        return 1
    seconds = (max(stamps) - min(stamps)) / 1000
    print(json.dumps({"verdicts": len(stamps), "distinct": len(ids), "seconds": round(seconds, 2),
                      "per_second": round(len(stamps) / seconds, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
