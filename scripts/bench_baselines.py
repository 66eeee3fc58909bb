#!/usr/bin/env python3
"""scripts/bench_baselines.py — the baselines of scripts/bench, and its report.

Run with the project's virtualenv (.venv/bin/python): the baselines need boto3 (there with
moto) and jsonschema (scripts/bench installs the pinned version when it is missing).
Each baseline is what the usual hand-written boto3 migration script does, run on the same
data as `migrate`, so that scripts/bench can time it the same way (/usr/bin/time: wall,
user+sys, peak RSS) and print the ratio.

  transform-validate --extracted DIR --schemas DIR --out DIR [--summary FILE]
      reads DIR/{buyers,producers,sales}.jsonl (migrate's extract artifacts), maps every row
      to its item with README's rules (json + uuid + zoneinfo + Decimal) and validates it
      (the rules, then jsonschema against entities/<entity>.schema.json); writes
      OUT/validated/<entity>.jsonl and OUT/rejected/<entity>.jsonl.
  load --endpoint URL --table NAME --file PATH [--threads 16] [--batch 25] [--summary FILE]
      BatchWriteItem of the validated artifact into a table: `threads` threads, each sending
      requests of `batch` items (numbers as Decimal through json.loads(parse_float=Decimal) and
      boto3's TypeSerializer), UnprocessedItems re-sent with backoff.
  scan --endpoint URL --table NAME [--table NAME ...] [--summary FILE]
      a full Scan of each table with boto3's Table resource (one segment, items deserialized),
      as a verification script reads a table back.
  record --results FILE --time FILE ...        (used by scripts/bench) append one measurement
  report --results FILE --meta FILE --out PATH (used by scripts/bench) print the table, write the JSON

Nothing here writes anywhere but the paths it is given.
"""

import argparse
import json
import os
import queue
import random
import re
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

ENTITIES = ("buyers", "producers", "sales")
NAMESPACE = uuid.UUID("e6efba72-f0d7-4be9-bfce-399356e044f7")
MAX_ITEM_BYTES = 400 * 1024
TOTAL_TOLERANCE = Decimal("0.05")
STATUS = {
    "c": "confirmed", "conf": "confirmed", "confirmed": "confirmed",
    "s": "shipped", "spedito": "shipped", "shipped": "shipped",
    "a": "cancelled", "annullato": "cancelled", "cancelled": "cancelled",
    "p": "pending", "pending": "pending",
}


def write_summary(path, summary):
    text = json.dumps(summary, indent=1, sort_keys=True)
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)


# ------------------------------------------------------------------ transform + validate baseline

class Mapper:
    """README's mapping rules, written the way a Python migration script would."""

    def __init__(self):
        from zoneinfo import ZoneInfo
        self.rome = ZoneInfo("Europe/Rome")
        self.run_start = self.fmt_utc(datetime.now(timezone.utc))
        self.local_re = re.compile(r"^[A-Za-z0-9\u0080-\U0010ffff!#$%&'*+/=?^_`{|}~.-]+$")

    @staticmethod
    def fold(v):
        if v is None:
            return None
        v = " ".join(str(v).split())
        return v or None

    @staticmethod
    def trim(v):
        if v is None:
            return None
        v = str(v).strip()
        return v or None

    def upper(self, v):
        v = self.trim(v)
        return v.upper() if v else None

    @staticmethod
    def normalize_vat(raw):
        if raw is None:
            return None
        v = "".join(str(raw).split()).upper()
        if not v:
            return None
        if len(v) == 11 and v.isascii() and v.isdigit():
            return "IT" + v
        return v

    @staticmethod
    def vat_valid(v):
        if len(v) < 4 or not v.isascii() or not ("A" <= v[0] <= "Z" and "A" <= v[1] <= "Z"):
            return False
        rest = v[2:]
        if v[:2] == "IT":
            if len(rest) != 11 or not rest.isdigit():
                return False
            s = 0
            for i, ch in enumerate(rest[:10]):
                d = ord(ch) - 48
                if i % 2 == 0:
                    s += d
                else:
                    d *= 2
                    s += d - 9 if d > 9 else d
            return (10 - s % 10) % 10 == ord(rest[10]) - 48
        return 2 <= len(rest) <= 12 and all("A" <= c <= "Z" or "0" <= c <= "9" for c in rest)

    def email(self, raw):
        """(value, invalid?) — value None when absent or invalid."""
        t = self.trim(raw)
        if t is None:
            return None, False
        e = t.lower()
        if len(e) > 254 or e.count("@") != 1:
            return None, True
        local, domain = e.split("@")
        ok = (0 < len(local) <= 64 and not local.startswith(".") and not local.endswith(".")
              and ".." not in local and all(c.isalnum() or c in "!#$%&'*+/=?^_`{|}~.-" for c in local))
        labels = domain.split(".")
        ok = ok and len(labels) >= 2 and len(domain) <= 253 and all(
            l and not l.startswith("-") and not l.endswith("-") and all(c.isalnum() or c == "-" for c in l)
            for l in labels) and len(labels[-1]) >= 2 and labels[-1].isalpha()
        return (e, False) if ok else (None, True)

    @staticmethod
    def fmt_utc(t):
        return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
            t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond // 1000)

    def timestamp(self, raw):
        if raw is None:
            return None
        local = datetime.fromisoformat(raw)
        # PostgreSQL's `ts AT TIME ZONE 'Europe/Rome'`: in the spring gap the offset before the
        # change, in the autumn overlap the one after it: the smaller of the two in both cases.
        off = min(local.replace(tzinfo=self.rome, fold=0).utcoffset(),
                  local.replace(tzinfo=self.rome, fold=1).utcoffset())
        return self.fmt_utc(local - off)

    def audit(self, row):
        created = self.timestamp(row.get("created_at"))
        updated = self.timestamp(row.get("updated_at"))
        created = created or updated or self.run_start
        return created, updated or created


def clean(item):
    """Leaves out NULLs, blank strings and empty maps."""
    return {k: v for k, v in item.items()
            if v is not None and not (isinstance(v, str) and not v.strip()) and not (isinstance(v, dict) and not v)}


def item_size(v):
    if isinstance(v, str):
        return len(v.encode("utf-8"))
    if isinstance(v, bool) or v is None:
        return 1
    if isinstance(v, (int, Decimal)):
        return (sum(c.isdigit() for c in str(v)) + 1) // 2 + 1
    if isinstance(v, dict):
        return 3 + sum(1 + len(k) + item_size(x) for k, x in v.items())
    if isinstance(v, list):
        return 3 + sum(1 + item_size(x) for x in v)
    return len(str(v))


def top_size(item):
    return sum(len(k) + item_size(v) for k, v in item.items())


def map_party(m, entity, row):
    rejects, warnings = [], []
    legacy = row["first_id"]
    if entity == "buyers":
        kind_name, prefix, id_attr = "buyer", "BUYER#", "buyerId"
        party_type = {2: "company", 3: "individual"}[row["kind"]]
        vat_required = row["kind"] == 2
    else:
        kind_name, prefix, id_attr = "producer", "PRODUCER#", "producerId"
        party_type, vat_required = None, True
    pid = str(uuid.uuid5(NAMESPACE, f"s9:{kind_name}:{legacy}"))
    name = m.fold(row.get("name"))
    if name is None:
        rejects.append("missing_name")
    vat = m.normalize_vat(row.get("vat_number"))
    if vat is None:
        if vat_required:
            rejects.append("invalid_vat")
    elif not m.vat_valid(vat):
        (rejects if vat_required else warnings).append("invalid_vat")
        vat = None
    email, bad_email = m.email(row.get("email"))
    if bad_email:
        warnings.append("invalid_email")
    address = clean({
        "street": m.fold(row.get("address")), "city": m.fold(row.get("city")),
        "province": m.upper(row.get("province")), "zip": m.trim(row.get("zip")),
        "country": m.upper(row.get("country")) or "IT",
    })
    created, updated = m.audit(row)
    item = clean({
        "PK": prefix + pid, "SK": "METADATA", id_attr: pid, "legacyId": legacy, "buyerType": party_type,
        "companyName": name, "vatNumber": vat, "fiscalCode": m.upper(row.get("fiscal_code")),
        "address": address, "email": email, "phone": m.trim(row.get("phone")), "status": "active",
        "createdAt": created, "updatedAt": updated, "createdBy": "migration@system",
    })
    return item, rejects, warnings


def map_sale(m, row):
    rejects, warnings = [], []
    legacy = row["first_id"]
    sid = str(uuid.uuid5(NAMESPACE, f"s9:sale:{legacy}"))
    bid = str(uuid.uuid5(NAMESPACE, f"s9:buyer:{row['buyer_id']}")) if row.get("buyer_id") is not None else None
    pid = str(uuid.uuid5(NAMESPACE, f"s9:producer:{row['producer_id']}")) if row.get("producer_id") is not None else None
    date = row["sale_date"]
    q, p, v, t = (Decimal(row[c]) for c in ("quantity", "unit_price", "vat_rate", "total_amount"))
    if q <= 0 or p < 0:
        rejects.append("invalid_amount")
    if abs(t - q * p * (100 + v) / 100) > TOTAL_TOLERANCE:
        warnings.append("total_mismatch")
    raw_status = row.get("status")
    status = "pending" if raw_status is None else STATUS.get(raw_status.strip().lower())
    if status is None:
        rejects.append("unknown_status")
    description = row.get("description")
    created, updated = m.audit(row)
    index_sk = f"SALE#{date}#{sid}"
    item = clean({
        "PK": "SALE#" + sid, "SK": "METADATA", "saleId": sid, "legacyId": legacy, "buyerId": bid,
        "producerId": pid, "saleDate": date,
        "description": description if description and description.strip() else None,
        "quantity": row["quantity"], "unitPrice": row["unit_price"], "vatRate": row["vat_rate"],
        "totalAmount": row["total_amount"], "currency": m.upper(row.get("currency")) or "EUR",
        "status": status, "paymentMethod": m.trim(row.get("payment_method")),
        "createdAt": created, "updatedAt": updated, "createdBy": "migration@system",
        "GSI1PK": "BUYER#" + bid if bid else None, "GSI1SK": index_sk if bid else None,
        "GSI2PK": "PRODUCER#" + pid if pid else None, "GSI2SK": index_sk if pid else None,
    })
    return item, rejects, warnings


def transform_validate(args):
    import jsonschema
    t0 = time.monotonic()
    m = Mapper()
    os.makedirs(os.path.join(args.out, "validated"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "rejected"), exist_ok=True)
    valid_ids = {}
    summary = {"entities": {}}
    for entity in ENTITIES:
        with open(os.path.join(args.schemas, f"{entity}.schema.json"), encoding="utf-8") as f:
            schema = json.load(f)
        validator = jsonschema.Draft202012Validator(schema)
        counts = {"input": 0, "valid": 0, "rejected": 0, "warned": 0, "rejectsByReason": {}}
        src = os.path.join(args.extracted, f"{entity}.jsonl")
        out_valid = open(os.path.join(args.out, "validated", f"{entity}.jsonl"), "w", encoding="utf-8")
        out_rej = open(os.path.join(args.out, "rejected", f"{entity}.jsonl"), "w", encoding="utf-8")
        ids = set()
        seen_keys = set()
        if entity == "sales":
            rows = (json.loads(line, parse_float=Decimal) for line in open(src, encoding="utf-8"))
            mapped = (map_sale(m, r) for r in rows)
            vat_count = {}
        else:
            # Parties: all in memory (a few per cent of the rows), for the duplicate-VAT pass.
            mapped = [map_party(m, entity, json.loads(line, parse_float=Decimal))
                      for line in open(src, encoding="utf-8")]
            vat_count = {}
            for item, _, _ in mapped:
                if "vatNumber" in item:
                    vat_count[item["vatNumber"]] = vat_count.get(item["vatNumber"], 0) + 1
        for item, rejects, warnings in mapped:
            counts["input"] += 1
            key = (item["PK"], item["SK"])
            if key in seen_keys:
                rejects.append("duplicate_key")
            seen_keys.add(key)
            if vat_count.get(item.get("vatNumber"), 0) > 1:
                warnings.append("duplicate_vat")
            if entity == "sales":
                if item.get("buyerId") not in valid_ids["buyers"]:
                    rejects.append("orphan_buyer")
                if item.get("producerId") not in valid_ids["producers"]:
                    rejects.append("orphan_producer")
            if top_size(item) > MAX_ITEM_BYTES:
                rejects.append("item_too_large")
            if not rejects and not validator.is_valid(item):
                rejects.append("schema")
                item["_errors"] = [e.message for e in validator.iter_errors(item)]
            if warnings:
                counts["warned"] += 1
            if rejects:
                counts["rejected"] += 1
                for r in rejects:
                    counts["rejectsByReason"][r] = counts["rejectsByReason"].get(r, 0) + 1
                out_rej.write(json.dumps({"legacyId": item["legacyId"], "reasons": rejects, "warnings": warnings,
                                          "item": item}, default=str, ensure_ascii=False) + "\n")
            else:
                counts["valid"] += 1
                if entity != "sales":
                    ids.add(item["buyerId" if entity == "buyers" else "producerId"])
                # json cannot write a Decimal as a number: written as its text, as such scripts do.
                out_valid.write(json.dumps(item, default=str, ensure_ascii=False) + "\n")
        out_valid.close()
        out_rej.close()
        valid_ids[entity] = ids
        summary["entities"][entity] = counts
    summary["items"] = sum(e["input"] for e in summary["entities"].values())
    summary["seconds"] = time.monotonic() - t0
    write_summary(args.summary, summary)


# ------------------------------------------------------------------ boto3 baselines

def boto_client(endpoint, region, pool):
    import boto3
    from botocore.config import Config
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    cfg = Config(max_pool_connections=pool, retries={"max_attempts": 10, "mode": "standard"},
                 connect_timeout=5, read_timeout=120)
    return boto3.session.Session().client("dynamodb", endpoint_url=endpoint, region_name=region, config=cfg)


def load(args):
    from boto3.dynamodb.types import TypeSerializer
    t0 = time.monotonic()
    client = boto_client(args.endpoint, args.region, args.threads + 4)
    ser = TypeSerializer()
    work = queue.Queue(maxsize=args.threads * 4)
    lock = threading.Lock()
    stats = {"items": 0, "requests": 0, "unprocessedItems": 0, "errors": []}

    def worker():
        while True:
            lines = work.get()
            if lines is None:
                return
            try:
                items = [json.loads(l, parse_float=Decimal) for l in lines]
                pending = [{"PutRequest": {"Item": {k: ser.serialize(v) for k, v in it.items()}}} for it in items]
                attempt = 0
                requests = unprocessed = 0
                while pending:
                    resp = client.batch_write_item(RequestItems={args.table: pending})
                    requests += 1
                    pending = resp.get("UnprocessedItems", {}).get(args.table, [])
                    if pending:
                        unprocessed += len(pending)
                        attempt += 1
                        time.sleep(random.uniform(0, min(2.0, 0.05 * 2 ** attempt)))
                with lock:
                    stats["items"] += len(items)
                    stats["requests"] += requests
                    stats["unprocessedItems"] += unprocessed
            except Exception as e:  # noqa: BLE001 - reported, and the exit status says so
                with lock:
                    stats["errors"].append(repr(e)[:300])

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.threads)]
    for th in threads:
        th.start()
    batch = []
    with open(args.file, encoding="utf-8") as f:
        for line in f:
            batch.append(line)
            if len(batch) == args.batch:
                work.put(batch)
                batch = []
    if batch:
        work.put(batch)
    for _ in threads:
        work.put(None)
    for th in threads:
        th.join()
    stats["seconds"] = time.monotonic() - t0
    stats["threads"] = args.threads
    stats["batch"] = args.batch
    stats["errors"] = stats["errors"][:5]
    write_summary(args.summary, stats)
    return 1 if stats["errors"] else 0


def scan(args):
    import boto3
    from botocore.config import Config
    t0 = time.monotonic()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    resource = boto3.session.Session().resource(
        "dynamodb", endpoint_url=args.endpoint, region_name=args.region,
        config=Config(retries={"max_attempts": 10, "mode": "standard"}, read_timeout=120))
    stats = {"items": 0, "pages": 0, "tables": {}}
    for name in args.table:
        table = resource.Table(name)
        kwargs, n = {}, 0
        while True:
            page = table.scan(**kwargs)
            n += len(page["Items"])
            stats["pages"] += 1
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        stats["tables"][name] = n
        stats["items"] += n
    stats["seconds"] = time.monotonic() - t0
    write_summary(args.summary, stats)


# ------------------------------------------------------------------ measurements and the report

def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


SYNC_COUNTS = ("new", "changed", "unchanged", "deleted", "foreign")


def series_seconds(series):
    """How long a load sent its writes: the end of the last point of its `series` (the sampler starts
    when the writes start: in a sync, after the difference is computed; src/report/series.rs)."""
    if series is None:
        return None
    points = series.get("points") or []
    return round(points[-1]["at"], 2) if points else 0.0


def sync_breakdown(data_dir, entity, seconds):
    """Where a sync load's step went, from the last run's lines in reports/migration.log: the step
    ends at its last line (its `seconds` counted back give its start); the Scan is the "sync diff"
    progress bar (its last line's count over its average rate is how long it ran); then the changes
    and before-images written ("sync against"), then the writes (the last "load:" line)."""
    path = os.path.join(data_dir, "reports", "migration.log")
    try:
        lines = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    except (OSError, ValueError):
        return None

    def run_of(l):
        return next((s.get("run_id") for s in l.get("spans") or [] if s.get("run_id")), None)

    def ts(l):
        return datetime.fromisoformat(l["timestamp"].replace("Z", "+00:00")).timestamp()

    run = next((run_of(l) for l in reversed(lines) if run_of(l)), None)
    span = [l for l in lines if run_of(l) == run and (l.get("span") or {}).get("entity") == entity
            and (l.get("span") or {}).get("phase") == "load"]
    msg = lambda l: (l.get("fields") or {}).get("message", "")  # noqa: E731
    diff = [l for l in span if msg(l).startswith(f"{entity} sync diff:")]
    against = [l for l in span if msg(l).startswith(f"{entity}: sync against")]
    load = [l for l in span if msg(l).startswith(f"{entity} load:")]
    if not span or not diff or not against or not load or seconds is None:
        return None
    m = re.match(r"[^:]+: ([\d,]+)/[\d,]+ \(([\d,]+)/s\)", msg(diff[-1]))
    if not m:
        return None
    scanned, rate = int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))
    end = ts(span[-1])
    start = end - seconds
    scan = scanned / rate if rate else 0.0
    t_diff, t_against, t_load = ts(diff[-1]), ts(against[-1]), ts(load[-1])
    return {"scannedItems": scanned,
            "beforeScanSeconds": round(t_diff - scan - start, 2),   # artifact checked and read, ledgers read
            "scanSeconds": round(scan, 2),                          # the parallel Scan, compared page by page
            "changesSeconds": round(t_against - t_diff, 2),         # the artifact read again, changes written
            "writesSeconds": round(t_load - t_against, 2),          # the changes applied
            "afterSeconds": round(end - t_load, 2)}                 # ledger sealed, restorable window


def migrate_items(phase, data_dir):
    """Items a migrate phase handled, from its own reports and manifests, with details."""
    def manifest_records(sub):
        total, per = 0, {}
        for e in ENTITIES:
            p = os.path.join(data_dir, sub, f"{e}.jsonl.manifest.json")
            if os.path.exists(p):
                per[e] = read_json(p)["records"]
                total += per[e]
        return total, per

    if phase in ("extract", "transform"):
        # transform's input is the extract artifact: the rows it mapped
        total, per = manifest_records("extracted")
        return total, {"perEntity": per}
    rep = os.path.join(data_dir, "reports")
    if phase == "validate":
        r = read_json(os.path.join(rep, "validation_report.json"))["entities"]
        return sum(e["input"] for e in r.values()), {
            "perEntity": {k: {"input": v["input"], "valid": v["valid"], "rejected": v["rejected"]} for k, v in r.items()}}
    if phase in ("load", "load-sink", "sync-put-load", "sync-load", "sync-nochange"):
        r = read_json(os.path.join(rep, "load_report.json"))["entities"]
        return sum(e["items"] for e in r.values()), {
            "perEntity": {k: {"items": v["items"], "written": v.get("written"), "failed": v.get("failed"),
                              "requests": v.get("requests"), "retries": v.get("retries"),
                              "throttled": v.get("throttled"), "seconds": v.get("seconds"),
                              "mode": v.get("mode"), "writeUnits": v.get("writeUnitsThisCommand"),
                              "sync": {c: (v.get("sync") or {}).get(c) for c in SYNC_COUNTS} if v.get("sync") else None,
                              "writingSeconds": series_seconds(v.get("series")),
                              "breakdown": sync_breakdown(data_dir, k, v.get("seconds")) if v.get("sync") else None}
                          for k, v in r.items()}}
    if phase in ("verify", "sync-verify"):
        r = read_json(os.path.join(rep, "verification_report.json"))["entities"]
        return sum(e["expected"] for e in r.values()), {
            "perEntity": {k: {"expected": v["expected"], "matched": v.get("matched"), "missing": v.get("missing"),
                              "different": v.get("different"), "extra": v.get("extra"), "ok": v.get("ok"),
                              "seconds": v.get("seconds")} for k, v in r.items()}}
    raise SystemExit(f"unknown phase {phase}")


def record(args):
    """Appends one measurement (a /usr/bin/time line plus the items) to the results file."""
    with open(args.time, encoding="utf-8") as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
    # /usr/bin/time -o writes "Command exited with non-zero status N" first when N != 0
    wall, user, sys_, rss_kb = lines[-1].split()
    rec = {"size": args.size, "kind": args.kind, "name": args.name, "rc": args.rc,
           "wallSeconds": float(wall), "userSeconds": float(user), "sysSeconds": float(sys_),
           "peakRssMb": round(int(rss_kb) / 1024, 1)}
    if args.kind == "migrate" and args.items is None:
        try:
            rec["items"], rec["detail"] = migrate_items(args.name, args.data_dir)
        except (OSError, KeyError, ValueError) as e:
            rec["items"], rec["detail"] = 0, {"error": f"no report: {e}"}
    if args.summary and os.path.exists(args.summary):
        s = read_json(args.summary)
        rec["items"] = s.get("items", rec.get("items", 0))
        rec["detail"] = s
    if args.items is not None:
        rec["items"] = args.items
    if args.server_cpu is not None:
        rec["serverCpuSeconds"] = args.server_cpu
    cpu = rec["userSeconds"] + rec["sysSeconds"]
    rec["cpuSeconds"] = round(cpu, 2)
    items = rec.get("items") or 0
    rec["itemsPerSecond"] = round(items / rec["wallSeconds"], 1) if rec["wallSeconds"] > 0 else None
    rec["cpuSecondsPerMillion"] = round(cpu / items * 1e6, 2) if items else None
    with open(args.results, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
    extra = f", server CPU {args.server_cpu:.1f}s" if args.server_cpu else ""
    print(f"[bench]   {args.size:5} {args.kind:8} {args.name:18} rc={args.rc} items={items} wall={rec['wallSeconds']:.2f}s "
          f"cpu={cpu:.2f}s rss={rec['peakRssMb']}MB{extra}", flush=True)


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def report(args):
    meta = read_json(args.meta)
    recs = [json.loads(l) for l in open(args.results, encoding="utf-8") if l.strip()]
    by = {(r["size"], r["kind"], r["name"]): r for r in recs}

    def get(size, kind, name):
        return by.get((size, kind, name))

    def combine(name, parts):
        parts = [p for p in parts if p]
        if not parts:
            return None
        wall = sum(p["wallSeconds"] for p in parts)
        cpu = sum(p["userSeconds"] + p["sysSeconds"] for p in parts)
        items = parts[0].get("items") or 0
        return {"name": name, "items": items, "wallSeconds": round(wall, 2), "cpuSeconds": round(cpu, 2),
                "itemsPerSecond": round(items / wall, 1) if wall else None,
                "cpuSecondsPerMillion": round(cpu / items * 1e6, 2) if items else None,
                "peakRssMb": max(p["peakRssMb"] for p in parts),
                "rc": max(p["rc"] for p in parts)}

    server = meta["server"]
    on_moto = server["kind"] == "moto"
    load_target = 1.25 if on_moto else 2.0
    big_sales = meta["size"]["sales"]
    rows = []
    targets = []

    def target(name, measured, goal, met, missed_by=None, note=None):
        t = {"target": name, "measured": measured, "goal": goal, "met": met}
        if missed_by is not None and met is False:
            t["missedBy"] = missed_by
        if note:
            t["note"] = note
        targets.append(t)
        return "yes" if met else ("no" if met is False else "-")

    def ratio(a, b):
        if not a or not b or not a.get("itemsPerSecond") or not b.get("itemsPerSecond"):
            return None
        if a.get("rc") or b.get("rc"):
            return None  # a failed run has no ratio (the table's last line names it)
        return round(a["itemsPerSecond"] / b["itemsPerSecond"], 2)

    def srv_busy(r):
        if r and r.get("serverCpuSeconds") is not None and r["wallSeconds"] > 0:
            return round(100 * r["serverCpuSeconds"] / r["wallSeconds"])
        return None

    phases = {p: get("main", "migrate", p) for p in ("extract", "transform", "validate", "load", "verify")}
    base = {
        "extract": get("main", "baseline", "psql-copy-json"),
        "transform+validate": get("main", "baseline", "python-jsonschema"),
        "load": get("main", "baseline", "boto3-load-16x25"),
        "verify": get("main", "baseline", "boto3-scan"),
    }
    tv = combine("transform+validate", [phases["transform"], phases["validate"]])
    tve = combine("transform+validate, encrypted",
                  [get("main", "migrate", "transform-encrypted"), get("main", "migrate", "validate-encrypted")])
    lines = [("extract", phases["extract"], base["extract"], 1.0),
             ("transform", phases["transform"], None, None),
             ("validate", phases["validate"], None, None),
             ("transform+validate", tv, base["transform+validate"], 10.0),
             ("load", phases["load"], base["load"], load_target),
             # both into scripts/bench_sink.js, which stores nothing and keeps up with any client
             ("load, no bottleneck (sink)", get("main", "migrate", "load-sink"),
              get("main", "baseline", "boto3-load-sink"), 2.0),
             ("verify", phases["verify"], base["verify"], 1.0),
             ("s3 import: upload (client side)", get("main", "migrate", "s3-import-upload"), None, None),
             ("transform+validate, encrypted", tve, None, None)]
    for name, m, b, goal in lines:
        if not m:
            continue
        r = ratio(m, b) if goal else None
        met = None if r is None else r >= goal
        mark = target(f"{name} vs {b['name']}", r, f">= {goal}x", met,
                      missed_by=(round(goal - r, 2) if r is not None else None)) if goal and b else "-"
        rows.append({"phase": name, "items": m.get("items"), "wallSeconds": m["wallSeconds"],
                     "itemsPerSecond": m.get("itemsPerSecond"), "cpuSecondsPerMillion": m.get("cpuSecondsPerMillion"),
                     "peakRssMb": m["peakRssMb"], "rc": m["rc"], "serverBusyPercent": srv_busy(m),
                     "baseline": b["name"] if b and goal else None,
                     "baselineItemsPerSecond": b.get("itemsPerSecond") if b and goal else None,
                     "baselineCpuSecondsPerMillion": b.get("cpuSecondsPerMillion") if b and goal else None,
                     "baselinePeakRssMb": b.get("peakRssMb") if b and goal else None,
                     "baselineServerBusyPercent": srv_busy(b) if b and goal else None,
                     "ratio": r, "target": f">= {goal}x" if goal else None, "met": mark})

    # the sync stage: the sales step's own seconds, from load_report.json and
    # verification_report.json (the records' detail), not the commands' wall time
    sync = sync_stage(get, meta, target)
    for name, key, r in (("sync: put load (sales)", "putLoad", None),
                         ("sync: sync load (sales)", "sync", "syncVsPutLoad"),
                         ("sync: no-change sync (sales)", "noChangeSync", "noChangeVsVerify"),
                         ("sync: verify (sales)", "verify", None)):
        st = (sync or {}).get(key)
        if not st:
            continue
        secs, n = st.get("seconds"), st.get("items")
        goal = {"syncVsPutLoad": "<= 0.2x the put load's time",
                "noChangeVsVerify": "<= 1.0x one verify's time"}.get(r)
        rows.append({"phase": name, "items": n, "wallSeconds": secs,
                     "itemsPerSecond": round(n / secs, 1) if n and secs else None, "cpuSecondsPerMillion": None,
                     "peakRssMb": st.get("peakRssMb"), "rc": st.get("rc"), "serverBusyPercent": st.get("serverBusyPercent"),
                     "baseline": None, "baselineItemsPerSecond": None, "baselineCpuSecondsPerMillion": None,
                     "baselinePeakRssMb": None, "baselineServerBusyPercent": None,
                     "ratio": sync.get(r) if r else None, "target": goal,
                     "met": ("-" if sync.get(r) is None else "yes" if sync[r] <= (0.2 if r == "syncVsPutLoad" else 1.0)
                             else "no") if r else "-",
                     "timeFrom": "the sales step's seconds in the tool's report"})

    # the cost of an encrypted data directory (docs/encryption.md): same run, same extract
    if tv and tve and tv.get("wallSeconds") and not tve.get("rc"):
        v = round(tve["wallSeconds"] / tv["wallSeconds"], 3)
        target("transform+validate encrypted / plain (wall)", v, "<= 1.15", v <= 1.15,
               missed_by=round(v - 1.15, 3))
        for row in rows:
            if row["phase"] == "transform+validate, encrypted":
                row.update(ratio=v, target="<= 1.15x the plain wall time", met="yes" if v <= 1.15 else "no")

    # absolute targets
    up = get("main", "migrate", "s3-import-upload")
    if up and up.get("itemsPerSecond"):
        v = up["itemsPerSecond"]
        target("s3 import upload items/s (sales)", v, ">= 200000", v >= 200000, missed_by=round(200000 - v))
        target("s3 import upload peak RSS MB", up["peakRssMb"], "<= 64", up["peakRssMb"] <= 64,
               missed_by=round(up["peakRssMb"] - 64, 1))
    if tv and tv.get("itemsPerSecond"):
        v = tv["itemsPerSecond"]
        target("transform+validate items/s (all entities, ~90% sales)", v, ">= 300000", v >= 300000,
               missed_by=round(300000 - v))
    for p, m in list(phases.items()) + [("load into the sink", get("main", "migrate", "load-sink"))]:
        if m and m.get("cpuSecondsPerMillion") is not None:
            v = m["cpuSecondsPerMillion"]
            target(f"{p} CPU s per million items", v, "<= 20", v <= 20, missed_by=round(v - 20, 2))
    quick = {p: get("quick", "migrate", p) for p in phases}
    growth = []
    for p, m in phases.items():
        if not m:
            continue
        q = quick.get(p)
        g = {"phase": p, "peakRssMb": m["peakRssMb"], "quickPeakRssMb": q["peakRssMb"] if q else None,
             "ratio": round(m["peakRssMb"] / q["peakRssMb"], 2) if q and q["peakRssMb"] else None}
        growth.append(g)
        note = None if big_sales >= 1_000_000 else f"run at {big_sales:,} sales, not a million"
        target(f"{p} peak RSS", m["peakRssMb"], "<= 100 MB", m["peakRssMb"] <= 100,
               missed_by=round(m["peakRssMb"] - 100, 1), note=note)
        if g["ratio"] is not None:
            target(f"{p} peak RSS vs the {meta['quick']['sales']:,}-sale run", g["ratio"], "<= 1.25x",
                   g["ratio"] <= 1.25, missed_by=round(g["ratio"] - 1.25, 2))

    out = {
        "generatedAt": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "meta": meta,
        "phases": rows,
        "memoryGrowth": growth,
        "sync": sync,
        "targets": targets,
        "measurements": recs,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, args.out)

    # ---- the screen
    sz = meta["size"]
    print()
    print(f"migrate benchmark — {sz['sales']:,} sales / {sz['buyers']:,} buyers / {sz['producers']:,} producers; "
          f"server {server['kind']} {server.get('version') or ''} at {server['url']}")
    print(f"binary {meta['binary']['sha256'][:12]} ({meta['binary']['mtime']}), git {meta['git']}; "
          f"{meta['machine']['cpus']} CPUs, load average {meta['machine']['loadBefore']} before, "
          f"{meta['machine'].get('loadAfter', '?')} after (a shared machine: numbers are noisy)")
    head = ["phase", "items", "wall s", "items/s", "CPU s/M", "RSS MB", "srv%", "baseline items/s",
            "base CPU s/M", "base RSS", "ratio", "target", "met?"]
    table = [head]
    for r in rows:
        table.append([r["phase"], fmt(r["items"]), fmt(r["wallSeconds"], 2), fmt(r["itemsPerSecond"]),
                      fmt(r["cpuSecondsPerMillion"]), fmt(r["peakRssMb"]), fmt(r["serverBusyPercent"]),
                      fmt(r["baselineItemsPerSecond"]), fmt(r["baselineCpuSecondsPerMillion"]),
                      fmt(r["baselinePeakRssMb"]), fmt(r["ratio"], 2) + ("x" if r["ratio"] is not None else ""),
                      r["target"] or "-", r["met"]])
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    for i, row in enumerate(table):
        print("  ".join(str(c).rjust(w) if j else str(c).ljust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    if growth:
        print(f"peak RSS, {sz['sales']:,} sales vs {meta['quick']['sales']:,} sales:  " + "   ".join(
            f"{g['phase']} {fmt(g['peakRssMb'])} / {fmt(g['quickPeakRssMb'])} MB ({fmt(g['ratio'], 2)}x)" for g in growth))
    if sync:
        print_sync(sync)
    missed = [t for t in targets if t["met"] is False]
    print(f"targets: {sum(1 for t in targets if t['met'])} met, {len(missed)} missed"
          + ("" if not missed else ": " + "; ".join(
              f"{t['target']} {fmt(t['measured'], 2)} (goal {t['goal']})" for t in missed)))
    bad = [r for r in recs if r["rc"] != 0]
    if bad:
        print("WARNING: non-zero exit: " + ", ".join(f"{r['size']}/{r['name']} rc={r['rc']}" for r in bad))
    print(f"written: {args.out}")


def sync_stage(get, meta, target):
    """The sync stage's figures and targets (scripts/bench's sync_stage): a put load, the source changed
    (amended, deleted, added sales), a sync, a sync with no change, one verify of the sales. Times are the
    sales step's `seconds` in load_report.json / verification_report.json (the step from its start to its
    end: for a sync, the difference (the artifact read, the ledgers, one Scan, the changes written to disk)
    and the writes); the command's wall time (/usr/bin/time, all entities) is kept beside it."""
    recs = {k: get("main", "migrate", n) for k, n in (("putLoad", "sync-put-load"), ("sync", "sync-load"),
                                                     ("noChangeSync", "sync-nochange"), ("verify", "sync-verify"))}
    if not any(recs.values()):
        return None
    want = meta.get("syncChanges") or {}

    def step(r, verify=False):
        if not r:
            return None
        e = ((r.get("detail") or {}).get("perEntity") or {}).get("sales") or {}
        out = {"seconds": e.get("seconds"), "commandWallSeconds": r["wallSeconds"],
               "commandCpuSeconds": r.get("cpuSeconds"), "peakRssMb": r["peakRssMb"], "rc": r["rc"],
               "serverBusyPercent": round(100 * r["serverCpuSeconds"] / r["wallSeconds"])
               if r.get("serverCpuSeconds") is not None and r["wallSeconds"] > 0 else None}
        if verify:
            out.update({"items": e.get("expected"), "matched": e.get("matched"), "missing": e.get("missing"),
                        "different": e.get("different"), "extra": e.get("extra"), "ok": e.get("ok")})
        else:
            ws = e.get("writingSeconds")
            out.update({"items": e.get("written"), "applied": e.get("items"), "requests": e.get("requests"),
                        "failed": e.get("failed"), "sync": e.get("sync"), "writingSeconds": ws,
                        "breakdown": e.get("breakdown"),
                        "differenceSeconds": round(e["seconds"] - ws, 2)
                        if e.get("sync") and ws is not None and e.get("seconds") is not None else None,
                        "otherEntitiesWritten": {k: v.get("written") for k, v in
                                                 r["detail"]["perEntity"].items() if k != "sales"}})
        return out

    out = {k: step(r, verify=(k == "verify")) for k, r in recs.items()}
    out["sourceChanges"] = want
    ok = lambda r: r and not r.get("rc") and r.get("seconds")  # noqa: E731
    put, sy, nc, ve = out["putLoad"], out["sync"], out["noChangeSync"], out["verify"]
    out["syncVsPutLoad"] = round(sy["seconds"] / put["seconds"], 3) if ok(sy) and ok(put) else None
    out["noChangeVsVerify"] = round(nc["seconds"] / ve["seconds"], 3) if ok(nc) and ok(ve) else None
    r = out["syncVsPutLoad"]
    target("sync load time vs the put load's (sales, same server, same run)", r, "<= 0.2x",
           None if r is None else r <= 0.2, missed_by=None if r is None else round(r - 0.2, 3))
    r = out["noChangeVsVerify"]
    target("no-change sync time vs one verify (sales)", r, "<= 1.0x",
           None if r is None else r <= 1.0, missed_by=None if r is None else round(r - 1.0, 3))
    if sy and want:
        n = want.get("amended", 0) + want.get("deleted", 0) + want.get("added", 0)
        c = sy.get("sync") or {}
        exact = (sy.get("items") == n and c.get("changed") == want.get("amended")
                 and c.get("deleted") == want.get("deleted") and c.get("new") == want.get("added")
                 and not any(sy["otherEntitiesWritten"].values()))
        target("sync writes == the changes made to the source (sales; buyers and producers 0)",
               f"{sy.get('items')} (new {c.get('new')}, changed {c.get('changed')}, deleted {c.get('deleted')})",
               f"== {n} (added {want.get('added')}, amended {want.get('amended')}, deleted {want.get('deleted')})",
               exact)
    if nc:
        w = [nc.get("items")] + list(nc["otherEntitiesWritten"].values())
        target("no-change sync writes == 0 (all entities)", sum(x or 0 for x in w), "== 0",
               all(x == 0 for x in w))
    if ve:
        target("verify after the sync (sales)", "ok" if ve.get("ok") else
               f"missing {ve.get('missing')}, different {ve.get('different')}, extra {ve.get('extra')}",
               "ok", bool(ve.get("ok")) and not ve.get("rc"))
    return out


def print_sync(s):
    def secs(st):
        return f"{fmt(st.get('seconds'), 2)} s (command {fmt(st.get('commandWallSeconds'), 2)} s)"

    print()
    w = s.get("sourceChanges") or {}
    print("sync stage, sales (seconds: the sales step's own, from load_report.json / verification_report.json; "
          "the command's wall, all entities, in brackets)")
    if w:
        print(f"  source changed:  {fmt(w.get('amended'))} amended, {fmt(w.get('deleted'))} deleted, "
              f"{fmt(w.get('added'))} added")
    if s.get("putLoad"):
        print(f"  put load         {fmt(s['putLoad']['items'])} written in {secs(s['putLoad'])}")
    for key, what, vs, name, goal in (("sync", "sync           ", "syncVsPutLoad", "the put load", 0.2),
                                      ("noChangeSync", "no-change sync ", "noChangeVsVerify", "one verify", 1.0)):
        st = s.get(key)
        if not st:
            continue
        c = st.get("sync") or {}
        r = s.get(vs)
        print(f"  {what}  {fmt(st['items'])} written (new {fmt(c.get('new'))}, changed {fmt(c.get('changed'))}, "
              f"deleted {fmt(c.get('deleted'))}, unchanged {fmt(c.get('unchanged'))}, foreign {fmt(c.get('foreign'))}) "
              f"in {secs(st)}: difference {fmt(st.get('differenceSeconds'), 2)} s, writes {fmt(st.get('writingSeconds'), 2)} s;"
              f" {fmt(r, 3)}x {name} (target <= {goal}x: {'-' if r is None else 'met' if r <= goal else 'MISSED'})")
        b = st.get("breakdown")
        if b:
            print(f"                   from the log: {fmt(b['beforeScanSeconds'], 2)} s artifact checked and read, "
                  f"ledgers; {fmt(b['scanSeconds'], 2)} s Scan of {fmt(b['scannedItems'])} items; "
                  f"{fmt(b['changesSeconds'], 2)} s changes written; {fmt(b['writesSeconds'], 2)} s writes; "
                  f"{fmt(b['afterSeconds'], 2)} s after")
    if s.get("verify"):
        v = s["verify"]
        print(f"  verify           {fmt(v.get('matched'))} of {fmt(v.get('items'))} matched "
              f"({'ok' if v.get('ok') else 'NOT ok'}) in {secs(v)}")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("transform-validate")
    p.add_argument("--extracted", required=True)
    p.add_argument("--schemas", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--summary")
    p = sub.add_parser("load")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--table", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--batch", type=int, default=25)
    p.add_argument("--summary")
    p = sub.add_parser("scan")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--table", action="append", required=True)
    p.add_argument("--summary")
    p = sub.add_parser("record")
    p.add_argument("--results", required=True)
    p.add_argument("--time", required=True)
    p.add_argument("--size", required=True)
    p.add_argument("--kind", required=True, choices=["migrate", "baseline"])
    p.add_argument("--name", required=True)
    p.add_argument("--rc", type=int, default=0)
    p.add_argument("--data-dir")
    p.add_argument("--summary")
    p.add_argument("--items", type=int)
    p.add_argument("--server-cpu", type=float)
    p = sub.add_parser("report")
    p.add_argument("--results", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    return {"transform-validate": transform_validate, "load": load, "scan": scan,
            "record": record, "report": report}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
