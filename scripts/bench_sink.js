#!/usr/bin/env node
// scripts/bench_sink.js — a DynamoDB endpoint that is never the bottleneck, for the benchmark's
// "load on a server that is not the bottleneck" row. It speaks the DynamoDB JSON protocol just far
// enough for a load: CreateTable / DescribeTable / DeleteTable / ListTables keep table definitions,
// BatchWriteItem counts the PutRequest and DeleteRequest entries of each request and answers
// `{"UnprocessedItems":{}}`, Scan answers an empty page (the load's backup of an empty table).
// It STORES NOTHING and checks no signature: what it measures is how fast a client can drive a
// server that keeps up (real DynamoDB scales its partitions; no local implementation does). The
// bench reads the counts back (`POST /` with X-Amz-Target `Sink.Stats`, or GET /stats) to check
// that every item arrived. Not for tests: the correctness suite runs against moto.
//
//   node scripts/bench_sink.js [--host 127.0.0.1] [--port 4569] [--latency-ms N]
//   --latency-ms N  answer every BatchWriteItem N ms late (a server that keeps up, at a distance)
'use strict';
const http = require('http');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const host = opt('--host', '127.0.0.1');
const port = Number(opt('--port', '4569'));
const latencyMs = Number(opt('--latency-ms', '0'));

const tables = new Map(); // name -> { def, puts, deletes, requests }
const PUT = Buffer.from('"PutRequest"');
const DEL = Buffer.from('"DeleteRequest"');
const FIRST_TABLE = /"RequestItems"\s*:\s*\{\s*"((?:[^"\\]|\\.)*)"/;

function count(buf, needle) {
  let n = 0;
  for (let i = buf.indexOf(needle); i >= 0; i = buf.indexOf(needle, i + needle.length)) n++;
  return n;
}

function description(name, t) {
  const indexes = (t.def.GlobalSecondaryIndexes || []).map((g) => ({ ...g, IndexStatus: 'ACTIVE' }));
  return {
    ...(indexes.length ? { GlobalSecondaryIndexes: indexes } : {}),
    TableName: name,
    TableStatus: 'ACTIVE',
    KeySchema: t.def.KeySchema || [],
    AttributeDefinitions: t.def.AttributeDefinitions || [],
    BillingModeSummary: { BillingMode: t.def.BillingMode || 'PAY_PER_REQUEST' },
    ItemCount: 0,
    TableSizeBytes: 0,
    CreationDateTime: t.created,
    TableArn: `arn:aws:dynamodb:us-east-1:000000000000:table/${name}`,
  };
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/x-amz-json-1.0',
    'Content-Length': Buffer.byteLength(text),
    'x-amzn-RequestId': 'sink',
  });
  res.end(text);
}

function error(res, type, message) {
  send(res, 400, { __type: `com.amazonaws.dynamodb.v20120810#${type}`, message });
}

function stats() {
  const out = {};
  for (const [name, t] of tables) out[name] = { puts: t.puts, deletes: t.deletes, requests: t.requests };
  return { tables: out };
}

function handle(req, res, body) {
  const target = String(req.headers['x-amz-target'] || '');
  const op = target.slice(target.indexOf('.') + 1);
  if (req.method === 'GET' || op === 'Stats') return send(res, 200, stats());
  if (op === 'BatchWriteItem') {
    const head = body.subarray(0, 2048).toString('utf8');
    const m = FIRST_TABLE.exec(head);
    const name = m ? JSON.parse(`"${m[1]}"`) : '';
    const t = tables.get(name);
    if (!t) return error(res, 'ResourceNotFoundException', `Requested resource not found: ${name}`);
    const puts = count(body, PUT);
    const deletes = count(body, DEL);
    if (puts + deletes > 25) {
      return error(res, 'ValidationException', 'Too many items requested for the BatchWriteItem call');
    }
    t.puts += puts;
    t.deletes += deletes;
    t.requests += 1;
    if (latencyMs > 0) return setTimeout(() => send(res, 200, { UnprocessedItems: {} }), latencyMs);
    return send(res, 200, { UnprocessedItems: {} });
  }
  let input;
  try {
    input = body.length ? JSON.parse(body.toString('utf8')) : {};
  } catch (e) {
    return error(res, 'SerializationException', String(e));
  }
  const name = input.TableName;
  switch (op) {
    case 'CreateTable': {
      if (tables.has(name)) return error(res, 'ResourceInUseException', `Table already exists: ${name}`);
      const t = { def: input, puts: 0, deletes: 0, requests: 0, created: Date.now() / 1000 };
      tables.set(name, t);
      return send(res, 200, { TableDescription: description(name, t) });
    }
    case 'DescribeTable': {
      const t = tables.get(name);
      if (!t) return error(res, 'ResourceNotFoundException', `Requested resource not found: Table: ${name} not found`);
      return send(res, 200, { Table: description(name, t) });
    }
    case 'DeleteTable': {
      const t = tables.get(name);
      if (!t) return error(res, 'ResourceNotFoundException', `Requested resource not found: Table: ${name} not found`);
      tables.delete(name);
      return send(res, 200, { TableDescription: description(name, t) });
    }
    case 'ListTables':
      return send(res, 200, { TableNames: [...tables.keys()].sort() });
    case 'Scan':
      if (!tables.has(name)) return error(res, 'ResourceNotFoundException', `Requested resource not found: ${name}`);
      return send(res, 200, { Items: [], Count: 0, ScannedCount: 0 });
    default:
      return error(res, 'UnknownOperationException', `the bench sink does not implement ${op || 'this request'}`);
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => handle(req, res, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
});
server.keepAliveTimeout = 60000;
server.listen(port, host, () => process.stdout.write(`bench sink on http://${host}:${port}\n`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
