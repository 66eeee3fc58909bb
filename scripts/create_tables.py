#!/usr/bin/env python3
"""Create the DynamoDB tables `migrate` loads into (SPEC §5), idempotently.

Every table: key schema PK (S, HASH) + SK (S, RANGE), on-demand (PAY_PER_REQUEST).
The sales table also has GSI1 (GSI1PK, GSI1SK) and GSI2 (GSI2PK, GSI2SK), projection ALL.

Usage (run with the project's virtualenv, which has boto3):
  .venv/bin/python scripts/create_tables.py --config config.example.json [--recreate]
  .venv/bin/python scripts/create_tables.py --endpoint http://127.0.0.1:4566 --region us-east-1 \\
      buyers=BuyersTable-dev producers=ProducersTable-dev sales=SalesTable-dev

  --config PATH    read target.endpoint, target.region, target.{buyers,producers,sales}Table
  --endpoint URL   DynamoDB endpoint; beats the config. Default: the config's target.endpoint,
                   else $AWS_ENDPOINT_URL_DYNAMODB, else $AWS_ENDPOINT_URL, else real AWS
  --region R       beats the config; default target.region, $AWS_REGION, $AWS_DEFAULT_REGION, us-east-1
  KIND=NAME        kind is buyers, producers or sales (singular forms accepted); beats the config
  --recreate       delete each table first (its data is lost) and create it again
  --allow-aws      needed to touch a non-loopback endpoint or real AWS (no endpoint)

Dummy credentials (test/test) are used against a local endpoint when none are configured.
An existing table with the expected keys is left as it is; one with other keys is an error
(use --recreate). Exit status: 0 done, 1 a table could not be created, 2 bad usage.
"""

import argparse
import json
import os
import re
import sys
import time
from urllib.parse import urlparse

KINDS = {
    "buyers": "buyers", "buyer": "buyers", "buyersTable": "buyers",
    "producers": "producers", "producer": "producers", "producersTable": "producers",
    "sales": "sales", "sale": "sales", "salesTable": "sales",
}
CONFIG_KEYS = {"buyers": "buyersTable", "producers": "producersTable", "sales": "salesTable"}
SALES_INDEXES = {"GSI1": ("GSI1PK", "GSI1SK"), "GSI2": ("GSI2PK", "GSI2SK")}
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def fail(message, status=1):
    print(f"[create_tables] ERROR: {message}", file=sys.stderr)
    sys.exit(status)


def say(message):
    print(f"[create_tables] {message}", flush=True)


def expand_env(value, path):
    """Expand ${VAR} from the environment; an unset variable is an error naming it."""
    if not isinstance(value, str):
        return value

    def sub(match):
        name = match.group(1)
        if name not in os.environ:
            fail(f"{path}: environment variable {name} is not set", 2)
        return os.environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, value)


def read_config(path):
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except OSError as e:
        fail(f"cannot read {path}: {e}", 2)
    except json.JSONDecodeError as e:
        fail(f"{path} is not valid JSON: {e}", 2)
    target = config.get("target")
    if not isinstance(target, dict):
        fail(f"{path}: no 'target' object", 2)
    return {k: expand_env(v, f"$.target.{k}") for k, v in target.items()}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Create the DynamoDB target tables of migrate (PK/SK, on-demand, sales GSI1/GSI2).")
    parser.add_argument("--config", help="config file whose 'target' section names endpoint, region and tables")
    parser.add_argument("--endpoint", help="DynamoDB endpoint URL (default: config, then AWS_ENDPOINT_URL_DYNAMODB)")
    parser.add_argument("--region", help="AWS region (default: config, then AWS_REGION, then us-east-1)")
    parser.add_argument("--recreate", action="store_true", help="delete the tables first and create them again")
    parser.add_argument("--allow-aws", action="store_true", help="allow a non-loopback endpoint or real AWS")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a table (default 120)")
    parser.add_argument("tables", nargs="*", metavar="KIND=NAME", help="buyers=NAME producers=NAME sales=NAME")
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    target = read_config(args.config) if args.config else {}

    tables = {}
    for kind, key in CONFIG_KEYS.items():
        if target.get(key):
            tables[kind] = target[key]
    for spec in args.tables:
        kind, sep, name = spec.partition("=")
        if not sep or not name or kind not in KINDS:
            fail(f"bad table argument {spec!r}: expected buyers=NAME, producers=NAME or sales=NAME", 2)
        tables[KINDS[kind]] = name
    if not tables:
        fail("no tables named: give --config or KIND=NAME arguments", 2)
    for kind, name in tables.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", name):
            fail(f"{kind}: {name!r} is not a valid DynamoDB table name", 2)

    endpoint = (args.endpoint or target.get("endpoint") or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
                or os.environ.get("AWS_ENDPOINT_URL") or None)
    region = (args.region or target.get("region") or os.environ.get("AWS_REGION")
              or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    local = bool(endpoint) and (urlparse(endpoint).hostname or "") in LOOPBACK
    if not local and not args.allow_aws:
        where = endpoint or "real AWS (no endpoint)"
        fail(f"refusing to create tables at {where}: not a loopback endpoint; add --allow-aws if you mean it", 2)

    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        fail("boto3 is not installed: run this with the project's .venv/bin/python (scripts/services.sh creates it)", 2)

    if local:
        # A local endpoint accepts any credentials; supply dummies when none are configured.
        if boto3.session.Session().get_credentials() is None:
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")

    client = boto3.client(
        "dynamodb", region_name=region, endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30))

    say(f"endpoint {endpoint or 'AWS'} region {region}")
    failed = False
    for kind in ("buyers", "producers", "sales"):
        if kind not in tables:
            continue
        try:
            ensure_table(client, kind, tables[kind], args.recreate, args.timeout)
        except (BotoCoreError, ClientError, TableMismatch, TimeoutError) as e:
            print(f"[create_tables] ERROR: {kind} table {tables[kind]}: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


class TableMismatch(Exception):
    pass


def describe(client, name):
    try:
        return client.describe_table(TableName=name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        return None


def wait_status(client, name, want_gone, timeout):
    deadline = time.monotonic() + timeout
    while True:
        table = describe(client, name)
        if want_gone and table is None:
            return
        if not want_gone and table is not None and table.get("TableStatus") == "ACTIVE" and all(
                g.get("IndexStatus", "ACTIVE") == "ACTIVE" for g in table.get("GlobalSecondaryIndexes", [])):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {'deleted' if want_gone else 'ACTIVE'} after {timeout:.0f}s")
        time.sleep(0.5)


def key_schema(pk, sk):
    return [{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}]


def check_shape(kind, name, table):
    keys = {k["AttributeName"]: k["KeyType"] for k in table.get("KeySchema", [])}
    if keys != {"PK": "HASH", "SK": "RANGE"}:
        raise TableMismatch(f"exists with key schema {keys}, expected PK (HASH) + SK (RANGE); use --recreate")
    if kind == "sales":
        have = {g["IndexName"]: {k["AttributeName"]: k["KeyType"] for k in g["KeySchema"]}
                for g in table.get("GlobalSecondaryIndexes", [])}
        for index, (pk, sk) in SALES_INDEXES.items():
            if have.get(index) != {pk: "HASH", sk: "RANGE"}:
                raise TableMismatch(f"index {index} is missing or has other keys ({have.get(index)}); use --recreate")


def ensure_table(client, kind, name, recreate, timeout):
    table = describe(client, name)
    if table is not None and recreate:
        say(f"{kind}: deleting {name}")
        client.delete_table(TableName=name)
        wait_status(client, name, True, timeout)
        table = None
    if table is not None:
        check_shape(kind, name, table)
        wait_status(client, name, False, timeout)
        say(f"{kind}: {name} exists with the expected keys; left as it is")
        return

    attributes = ["PK", "SK"]
    request = {
        "TableName": name,
        "KeySchema": key_schema("PK", "SK"),
        "BillingMode": "PAY_PER_REQUEST",
    }
    if kind == "sales":
        request["GlobalSecondaryIndexes"] = [
            {"IndexName": index, "KeySchema": key_schema(pk, sk), "Projection": {"ProjectionType": "ALL"}}
            for index, (pk, sk) in SALES_INDEXES.items()
        ]
        for pk, sk in SALES_INDEXES.values():
            attributes += [pk, sk]
    request["AttributeDefinitions"] = [{"AttributeName": a, "AttributeType": "S"} for a in attributes]
    try:
        client.create_table(**request)
    except client.exceptions.ResourceInUseException:
        pass  # created concurrently by someone else: check it below like an existing one
    wait_status(client, name, False, timeout)
    check_shape(kind, name, describe(client, name))
    say(f"{kind}: created {name}" + (" with GSI1, GSI2" if kind == "sales" else ""))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
