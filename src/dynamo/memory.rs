//! [`Target`] in memory: tables of items in DynamoDB's wire JSON, ordered by
//! `PK` and `SK`, and faults a unit test queues for the next calls
//! (throttling, 5xx, timeouts, unprocessed writes or keys, items refused,
//! a missing table). The logic of load, verify, sync and rollback runs
//! against it in unit tests; the integration tests run against real servers.
//!
//! It keeps AWS's limits as DynamoDB does: more than 25 writes or 100 keys
//! in one call are refused, a missing table is terminal, and a Scan's limit
//! counts the items it reads before its filter.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, KeySchemaElement, KeyType, ScalarAttributeType,
    TableDescription, TableStatus,
};
use serde_json::{Map, Value};

use super::*;

/// Which call a fault is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Write,
    Scan,
    Get,
    Describe,
    Delete,
    Query,
}

/// What the next call of an [`Op`] does instead of answering normally.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Fails with this class and message.
    Fail(Class, String),
    /// Times out (transient).
    Timeout,
    /// Applies all but the last `n` writes (or finds all but the last `n`
    /// keys) and hands those back unprocessed.
    Unprocessed(usize),
}

type Key = (String, String);

#[derive(Default)]
struct State {
    tables: BTreeMap<String, BTreeMap<Key, String>>,
    faults: VecDeque<(Op, Fault)>,
    /// Writes of items with these `PK`s are refused (`ValidationException`).
    refused: Vec<String>,
    calls: [u64; 6],
    /// Descriptions set by a test; other tables are described as keyed by
    /// `PK` and `SK` (strings), `ACTIVE`, without indexes.
    described: BTreeMap<String, TableDescription>,
}

impl State {
    fn begin(&mut self, op: Op) -> Option<Fault> {
        self.calls[op as usize] += 1;
        let at = self.faults.iter().position(|(o, _)| *o == op)?;
        self.faults.remove(at).map(|(_, f)| f)
    }

    /// Counts one call of `op` carrying `len` requests and applies its
    /// injected fault: `Ok(n)` is how many of the requests (from the end) come
    /// back unprocessed. More than `max` requests are refused as AWS does.
    fn admit(
        &mut self,
        op: Op,
        len: usize,
        max: usize,
        call: &str,
    ) -> std::result::Result<usize, Failed> {
        let unprocessed = match self.begin(op) {
            Some(Fault::Unprocessed(n)) => n.min(len),
            Some(f) => return Err(failure(f).expect("a failing fault")),
            None => 0,
        };
        if len > max {
            return Err(Failed::new(
                Class::Refused,
                format!("ValidationException: Too many items requested for the {call} call"),
            ));
        }
        Ok(unprocessed)
    }

    /// The key attributes of global secondary index `index` of `table`, as
    /// the table's description (set by [`Memory::describe_as`]) declares it.
    fn index_key(
        &self,
        table: &str,
        index: &str,
    ) -> std::result::Result<(String, Option<String>), Failed> {
        let gsi = self
            .described
            .get(table)
            .and_then(|d| {
                d.global_secondary_indexes()
                    .iter()
                    .find(|g| g.index_name() == Some(index))
            })
            .ok_or_else(|| {
                Failed::new(
                    Class::Terminal,
                    format!("ValidationException: table {table} has no index {index}"),
                )
            })?;
        let name = |t: KeyType| {
            gsi.key_schema()
                .iter()
                .find(|k| *k.key_type() == t)
                .map(|k| k.attribute_name().to_string())
        };
        Ok((
            name(KeyType::Hash).unwrap_or_default(),
            name(KeyType::Range),
        ))
    }

    fn table(&mut self, name: &str) -> std::result::Result<&mut BTreeMap<Key, String>, Failed> {
        self.tables.get_mut(name).ok_or_else(|| {
            Failed::new(
                Class::Terminal,
                format!("ResourceNotFoundException: table {name} not found"),
            )
        })
    }
}

/// An in-memory table store.
#[derive(Default)]
pub struct Memory {
    state: Mutex<State>,
}

fn failure(fault: Fault) -> Option<Failed> {
    match fault {
        Fault::Fail(class, message) => Some(Failed::new(class, message)),
        Fault::Timeout => Some(Failed {
            timeout: true,
            ..Failed::transient("timed out")
        }),
        Fault::Unprocessed(_) => None,
    }
}

fn key(item: &AvItem) -> Key {
    let s = |k: &str| match item.get(k) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => av_str(other),
    };
    (s("PK"), s("SK"))
}

fn segment_of((pk, sk): &Key, segments: u32) -> u32 {
    // FNV-1a: stable, so a segment's pages never overlap another's.
    let mut h: u32 = 0x811c_9dc5;
    for b in pk.bytes().chain([0]).chain(sk.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h % segments.max(1)
}

fn wire_key((pk, sk): &Key) -> Value {
    serde_json::json!({"PK": {"S": pk}, "SK": {"S": sk}})
}

impl Memory {
    pub fn new() -> Memory {
        Memory::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates an empty table (a no-op when it exists).
    pub fn create_table(&self, name: &str) {
        self.lock().tables.entry(name.to_string()).or_default();
    }

    /// Creates the table (when missing) and describes it as `desc` from now
    /// on (its indexes, status, key schema).
    pub fn describe_as(&self, name: &str, desc: TableDescription) {
        let mut st = self.lock();
        st.tables.entry(name.to_string()).or_default();
        st.described.insert(name.to_string(), desc);
    }

    /// The tables that exist.
    pub fn table_names(&self) -> Vec<String> {
        self.lock().tables.keys().cloned().collect()
    }

    /// Puts an item given in DynamoDB's wire JSON, creating the table.
    pub fn put_wire(&self, table: &str, item: &str) {
        let w = Write::put_wire(item).expect("an item in wire JSON");
        let mut st = self.lock();
        let t = st.tables.entry(table.to_string()).or_default();
        t.insert(key(&w.key), item.trim().to_string());
    }

    /// Puts an item given as an artifact line (plain JSON), creating the table.
    pub fn put_json(&self, table: &str, line: &str) {
        let w = Write::put_json(line).expect("an item as a JSON object");
        self.put_wire(table, w.item_wire().expect("a put"));
    }

    /// The table's items in wire JSON, in key order (empty when it does not exist).
    pub fn items(&self, table: &str) -> Vec<String> {
        let st = self.lock();
        st.tables
            .get(table)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// One item by key, in wire JSON.
    pub fn item(&self, table: &str, pk: &str, sk: &str) -> Option<String> {
        let st = self.lock();
        st.tables
            .get(table)?
            .get(&(pk.to_string(), sk.to_string()))
            .cloned()
    }

    /// Queues a fault for the next call of `op` that has none queued before it.
    pub fn fail_next(&self, op: Op, fault: Fault) {
        self.lock().faults.push_back((op, fault));
    }

    /// From now on, any write of an item with this `PK` refuses its batch.
    pub fn refuse_pk(&self, pk: &str) {
        self.lock().refused.push(pk.to_string());
    }

    /// How many calls of `op` were made, faults included.
    pub fn calls(&self, op: Op) -> u64 {
        self.lock().calls[op as usize]
    }

    fn do_write(
        &self,
        table: &str,
        writes: &[(u64, Write)],
    ) -> std::result::Result<Vec<AvItem>, Failed> {
        let mut st = self.lock();
        let unprocessed = st.admit(
            Op::Write,
            writes.len(),
            MAX_BATCH_WRITE_ITEMS,
            "BatchWriteItem",
        )?;
        if let Some((_, w)) = writes
            .iter()
            .find(|(_, w)| st.refused.contains(&key(&w.key).0))
        {
            return Err(Failed::new(
                Class::Refused,
                format!("ValidationException: item {} refused", w.describe_key()),
            ));
        }
        let t = st.table(table)?;
        let (apply, left) = writes.split_at(writes.len() - unprocessed);
        for (_, w) in apply {
            match w.item_wire() {
                Some(item) => t.insert(key(&w.key), item.to_string()),
                None => t.remove(&key(&w.key)),
            };
        }
        Ok(left.iter().map(|(_, w)| w.key.clone()).collect())
    }

    fn do_scan(
        &self,
        r: &ScanRequest<'_>,
    ) -> std::result::Result<(RawPage, Option<AvItem>), Failed> {
        let mut st = self.lock();
        if let Some(f) = st.begin(Op::Scan).and_then(failure) {
            return Err(f);
        }
        let index = match r.index {
            Some(i) => Some(st.index_key(r.table, i)?),
            None => None,
        };
        let t = st.table(r.table)?;
        let start = r.start.as_ref().map(key);
        let range = match &start {
            Some(k) => t.range::<Key, _>((Bound::Excluded(k), Bound::Unbounded)),
            None => t.range::<Key, _>(..),
        };
        let (mut items, mut evaluated, mut last, mut more) = (Vec::new(), 0, None, false);
        for (k, item) in range.filter(|(k, _)| segment_of(k, r.segments) == r.segment) {
            if evaluated == r.limit.max(1) {
                more = true;
                break;
            }
            evaluated += 1;
            last = Some(k.clone());
            if r.prefix.is_some_and(|p| !k.0.starts_with(p)) {
                continue;
            }
            let mut v: Map<String, Value> = serde_json::from_str(item).expect("stored wire JSON");
            if let Some((hash, range)) = &index {
                // A sparse index holds the items that have its keys.
                if !v.contains_key(hash) || range.as_ref().is_some_and(|r| !v.contains_key(r)) {
                    continue;
                }
            }
            if r.keys_only {
                v.retain(|name, _| matches!(name.as_str(), "PK" | "SK" | "createdBy"));
            }
            items.push(Value::Object(v));
        }
        let mut body = serde_json::json!({"Items": items, "Count": items.len()});
        if more && let Some(k) = &last {
            body["LastEvaluatedKey"] = wire_key(k);
        }
        RawPage::parse(bytes::Bytes::from(body.to_string()))
            .map_err(|e| Failed::new(Class::Terminal, e.to_string()))
    }

    fn do_get(
        &self,
        table: &str,
        keys: Vec<AvItem>,
    ) -> std::result::Result<(Vec<AvItem>, Vec<AvItem>), Failed> {
        let mut st = self.lock();
        let unprocessed = st.admit(Op::Get, keys.len(), MAX_BATCH_GET_KEYS, "BatchGetItem")?;
        let t = st.table(table)?;
        let mut keys = keys;
        let left = keys.split_off(keys.len() - unprocessed);
        let found = keys
            .iter()
            .filter_map(|k| t.get(&key(k)))
            .map(|item| wire_item_to_av(item).expect("stored wire JSON"))
            .collect();
        Ok((found, left))
    }
}

/// A table keyed by `PK` and `SK` (strings), `ACTIVE`, holding `items`.
pub fn pk_sk_description(name: &str, items: usize) -> TableDescription {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type are set")
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("name and key type are set")
    };
    TableDescription::builder()
        .table_name(name)
        .table_status(TableStatus::Active)
        .attribute_definitions(attr("PK"))
        .attribute_definitions(attr("SK"))
        .key_schema(key("PK", KeyType::Hash))
        .key_schema(key("SK", KeyType::Range))
        .item_count(items as i64)
        .build()
}

impl Memory {
    fn do_describe(&self, table: &str) -> std::result::Result<Option<TableDescription>, Failed> {
        let mut st = self.lock();
        st.admit(Op::Describe, 0, 0, "DescribeTable")?;
        let Some(items) = st.tables.get(table).map(BTreeMap::len) else {
            return Ok(None);
        };
        Ok(Some(match st.described.get(table) {
            Some(d) => d.clone(),
            None => pk_sk_description(table, items),
        }))
    }

    fn do_query(
        &self,
        r: &QueryRequest<'_>,
    ) -> std::result::Result<(Vec<AvItem>, Option<AvItem>), Failed> {
        let mut st = self.lock();
        st.admit(Op::Query, 0, 0, "Query")?;
        st.index_key(r.table, r.index)?;
        let t = st.table(r.table)?;
        let items = t
            .iter()
            .filter(|(k, _)| k.0.starts_with(r.prefix))
            .map(|(_, item)| wire_item_to_av(item).expect("stored wire JSON"))
            .filter(|av| av.get(r.hash.0) == Some(&r.hash.1))
            .map(|av| av.into_iter().filter(|(n, _)| n == "PK").collect())
            .collect();
        Ok((items, None))
    }

    fn do_delete(&self, table: &str) -> std::result::Result<(), Failed> {
        let mut st = self.lock();
        st.admit(Op::Delete, 0, 0, "DeleteTable")?;
        st.tables.remove(table);
        st.described.remove(table);
        Ok(())
    }
}

impl Target for Memory {
    fn write<'a>(&'a self, table: &'a str, writes: &'a [(u64, Write)]) -> Call<'a, Vec<AvItem>> {
        Box::pin(std::future::ready(self.do_write(table, writes)))
    }

    fn scan<'a>(&'a self, request: ScanRequest<'a>) -> Call<'a, (RawPage, Option<AvItem>)> {
        Box::pin(std::future::ready(self.do_scan(&request)))
    }

    fn get<'a>(
        &'a self,
        table: &'a str,
        keys: Vec<AvItem>,
    ) -> Call<'a, (Vec<AvItem>, Vec<AvItem>)> {
        Box::pin(std::future::ready(self.do_get(table, keys)))
    }

    fn describe<'a>(&'a self, table: &'a str) -> Call<'a, Option<TableDescription>> {
        Box::pin(std::future::ready(self.do_describe(table)))
    }

    fn delete_table<'a>(&'a self, table: &'a str) -> Call<'a, ()> {
        Box::pin(std::future::ready(self.do_delete(table)))
    }

    fn query<'a>(&'a self, request: QueryRequest<'a>) -> Call<'a, (Vec<AvItem>, Option<AvItem>)> {
        Box::pin(std::future::ready(self.do_query(&request)))
    }
}
