#!/usr/bin/env python3
"""Publishes one Baton event straight to Kafka, as any non-Swift producer can.

    python3 publish_event.py --brokers 127.0.0.1:9092 --name user.created \
        --payload '{"id": "u_1", "email": "ada@example.com", "name": "Ada"}'

Needs `confluent-kafka` (pip install confluent-kafka). The record's key is the event id and its
value an EventEnvelope (docs/asyncapi.yaml); produce with acks=all and wait for the delivery
report, as Baton's own producers do.
"""
import argparse
import datetime
import json
import sys
import uuid

from confluent_kafka import Producer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="baton.events")
    parser.add_argument("--name", required=True)
    parser.add_argument("--payload", default="null", help="JSON")
    parser.add_argument("--id", default=None, help="event id (idempotency); generated when absent")
    args = parser.parse_args()

    envelope = {
        "schemaVersion": 1,
        "id": args.id or f"evt_{uuid.uuid4().hex}",
        "name": args.name,
        "payload": json.loads(args.payload),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    producer = Producer({"bootstrap.servers": args.brokers, "acks": "all", "enable.idempotence": True})
    failures = []
    producer.produce(args.topic, key=envelope["id"], value=json.dumps(envelope).encode(),
                     on_delivery=lambda err, msg: failures.append(err) if err else None)
    if producer.flush(30) != 0 or failures:
        print(f"not delivered: {failures or 'timeout'}", file=sys.stderr)
        return 1
    print(envelope["id"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
