//! [`Target`] over the AWS SDK's DynamoDB client: each call one request,
//! its failure classified ([`Failed::of`]). Write bodies are the writes'
//! bytes serialized once ([`Write`]); Scan pages are read as wire JSON
//! ([`RawPage`]) without the SDK decoding them.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TableDescription};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

use super::scan::TakeBody;
use super::*;

/// DynamoDB through the run's client.
#[derive(Clone)]
pub struct Sdk(pub Client);

impl Sdk {
    /// The client wrapped as the run's shared target.
    pub fn shared(client: Client) -> SharedTarget {
        std::sync::Arc::new(Sdk(client))
    }
}

impl Target for Sdk {
    fn write<'a>(&'a self, table: &'a str, writes: &'a [(u64, Write)]) -> Call<'a, Vec<AvItem>> {
        Box::pin(async move {
            // The SDK builds an empty request; its body is replaced, before
            // it is signed, by the entries serialized once when they were read.
            let body = bytes::Bytes::from(batch_body(table, writes));
            let resp = self
                .0
                .batch_write_item()
                .request_items(table, Vec::new())
                .customize()
                .mutate_request(move |req| {
                    req.headers_mut()
                        .insert("content-length", body.len().to_string());
                    *req.body_mut() = SdkBody::from(body.clone());
                })
                .send()
                .await
                .map_err(|err| Failed::of(&err))?;
            Ok(resp
                .unprocessed_items()
                .and_then(|m| m.get(table))
                .map(|v| v.iter().filter_map(request_key).cloned().collect())
                .unwrap_or_default())
        })
    }

    fn scan<'a>(&'a self, r: ScanRequest<'a>) -> Call<'a, (RawPage, Option<AvItem>)> {
        let mut req = self
            .0
            .scan()
            .table_name(r.table)
            .set_index_name(r.index.map(str::to_string))
            .segment(r.segment as i32)
            .total_segments(r.segments as i32)
            .consistent_read(r.index.is_none())
            .limit(r.limit)
            .set_exclusive_start_key(r.start);
        if let Some(p) = r.prefix {
            req = req
                .filter_expression("begins_with(#pk, :prefix)")
                .expression_attribute_names("#pk", "PK")
                .expression_attribute_values(":prefix", AttributeValue::S(p.to_string()));
        }
        if r.keys_only {
            req = req
                .projection_expression("#pk, #sk, #cb")
                .expression_attribute_names("#pk", "PK")
                .expression_attribute_names("#sk", "SK")
                .expression_attribute_names("#cb", "createdBy");
        }
        let taken = TakeBody::default();
        let call = req.customize().interceptor(taken.clone()).send();
        let timeout = self
            .0
            .config()
            .timeout_config()
            .and_then(|t| t.operation_attempt_timeout())
            .unwrap_or(std::time::Duration::from_secs(60));
        Box::pin(async move {
            call.await.map_err(|err| Failed::of(&err))?;
            let body = taken
                .take()
                .ok_or_else(|| Failed::transient("the response had no body"))?;
            let read = tokio::time::timeout(timeout, ByteStream::new(body).collect());
            let bytes = read
                .await
                .map_err(|_| Failed::transient("timed out reading the page"))?
                .map_err(|e| Failed::transient(format!("reading the page: {e}")))?
                .into_bytes();
            RawPage::parse(bytes)
                .map_err(|e| Failed::transient(format!("the page is not a Scan response: {e}")))
        })
    }

    fn get<'a>(
        &'a self,
        table: &'a str,
        keys: Vec<AvItem>,
    ) -> Call<'a, (Vec<AvItem>, Vec<AvItem>)> {
        Box::pin(async move {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .expect("keys set");
            let out = self
                .0
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|err| Failed::of(&err))?;
            let found = out
                .responses()
                .and_then(|r| r.get(table))
                .cloned()
                .unwrap_or_default();
            let left = out
                .unprocessed_keys()
                .and_then(|m| m.get(table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            Ok((found, left))
        })
    }

    fn describe<'a>(&'a self, table: &'a str) -> Call<'a, Option<TableDescription>> {
        Box::pin(async move {
            match self.0.describe_table().table_name(table).send().await {
                Ok(out) => Ok(out.table),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    Ok(None)
                }
                Err(e) => Err(Failed::of(&e)),
            }
        })
    }

    fn query<'a>(&'a self, r: QueryRequest<'a>) -> Call<'a, (Vec<AvItem>, Option<AvItem>)> {
        Box::pin(async move {
            let out = self
                .0
                .query()
                .table_name(r.table)
                .index_name(r.index)
                .key_condition_expression("#h = :h")
                .filter_expression("begins_with(#pk, :prefix)")
                .projection_expression("#pk")
                .expression_attribute_names("#h", r.hash.0)
                .expression_attribute_names("#pk", "PK")
                .expression_attribute_values(":h", r.hash.1)
                .expression_attribute_values(":prefix", AttributeValue::S(r.prefix.into()))
                .set_exclusive_start_key(r.start)
                .send()
                .await
                .map_err(|err| Failed::of(&err))?;
            Ok((out.items().to_vec(), out.last_evaluated_key().cloned()))
        })
    }

    fn delete_table<'a>(&'a self, table: &'a str) -> Call<'a, ()> {
        Box::pin(async move {
            match self.0.delete_table().table_name(table).send().await {
                Ok(_) => Ok(()),
                Err(e) => match e.as_service_error() {
                    Some(s) if s.is_resource_not_found_exception() => Ok(()),
                    Some(s) if s.is_resource_in_use_exception() => Err(Failed::transient(format!(
                        "DeleteTable {table}: {}",
                        describe(&e)
                    ))),
                    _ => Err(Failed::of(&e)),
                },
            }
        })
    }
}
