//! Parallel Scans whose pages are read as wire JSON, without the SDK
//! decoding them into `AttributeValue` trees.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::sync::mpsc;

use crate::error::Result;

use super::*;

/// Items a Scan page may hold: without a limit a page is 1 MB of JSON, and
/// decoded pages of full items (several per segment in flight) were most of
/// verify's memory.
pub const SCAN_PAGE_ITEMS: i32 = 1000;

/// One Scan page as the server sent it. Its items are read from the JSON in
/// place ([`RawPage::items`]), or converted to SDK values where that is
/// simpler ([`RawPage::av_items`]): the SDK's own decoding of every page
/// into `AttributeValue` maps was a third of verify's CPU time.
pub struct RawPage {
    body: bytes::Bytes,
    /// Where each item's JSON lies in `body`.
    items: Vec<std::ops::Range<usize>>,
}

impl RawPage {
    /// Reads a Scan response body: the items' places and `LastEvaluatedKey`.
    pub(super) fn parse(body: bytes::Bytes) -> serde_json::Result<(RawPage, Option<AvItem>)> {
        #[derive(serde::Deserialize)]
        struct Page<'a> {
            #[serde(rename = "Items", borrow, default)]
            items: Vec<&'a serde_json::value::RawValue>,
            #[serde(rename = "LastEvaluatedKey", borrow, default)]
            last: Option<&'a serde_json::value::RawValue>,
        }
        let page: Page = serde_json::from_slice(&body)?;
        let base = body.as_ptr() as usize;
        let items = page
            .items
            .iter()
            .map(|raw| {
                let start = raw.get().as_ptr() as usize - base;
                start..start + raw.get().len()
            })
            .collect();
        let last = match page.last {
            Some(raw) => Some(wire_item_to_av(raw.get())?).filter(|k| !k.is_empty()),
            None => None,
        };
        drop(page);
        Ok((RawPage { body, items }, last))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Each item's JSON, in DynamoDB's wire form (`{"PK":{"S":"…"},…}`).
    pub fn items(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|r| {
            // The whole body was read as JSON text, so each slice is UTF-8.
            std::str::from_utf8(&self.body[r.clone()]).expect("a JSON value is UTF-8")
        })
    }

    /// The items as SDK values.
    pub fn av_items(&self) -> serde_json::Result<Vec<AvItem>> {
        self.items().map(wire_item_to_av).collect()
    }
}

/// Takes a successful response's body before the SDK decodes it: [`Sdk`]
/// reads the page itself, and the SDK decodes an empty object.
#[derive(Debug, Clone, Default)]
pub(super) struct TakeBody(std::sync::Arc<std::sync::Mutex<Option<SdkBody>>>);

impl TakeBody {
    pub(super) fn take(&self) -> Option<SdkBody> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Intercept for TakeBody {
    fn name(&self) -> &'static str {
        "migrate::TakeBody"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let response = context.response_mut();
        // Errors keep their body: the SDK reads their code from it.
        if response.status().is_success() {
            let body = std::mem::replace(response.body_mut(), SdkBody::from("{}"));
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
        }
        Ok(())
    }
}

/// Scans `table` with `segments` parallel segments, sending each page to the
/// returned channel. `prefix` keeps only items whose PK starts with it;
/// `keys_only` fetches PK, SK and `createdBy` alone (whose item it is:
/// `backup::owned`). Each page is retried on its own; errors arrive in the
/// channel.
pub fn scan(
    target: &SharedTarget,
    table: &str,
    segments: u32,
    prefix: Option<&str>,
    keys_only: bool,
    policy: &RetryPolicy,
) -> mpsc::Receiver<Result<RawPage>> {
    // One page waiting per segment: pages of full items are ~1 MB of JSON each.
    let (tx, rx) = mpsc::channel(segments as usize);
    for segment in 0..segments {
        let (target, table, tx, policy) = (
            target.clone(),
            table.to_string(),
            tx.clone(),
            policy.clone(),
        );
        let prefix = prefix.map(str::to_string);
        tokio::spawn(async move {
            let mut start: Option<AvItem> = None;
            loop {
                let page = retry_failed(&policy, &format!("scan of {table}"), || {
                    target.scan(ScanRequest {
                        table: &table,
                        index: None,
                        segment,
                        segments,
                        prefix: prefix.as_deref(),
                        keys_only,
                        limit: SCAN_PAGE_ITEMS,
                        start: start.clone(),
                    })
                })
                .await;
                match page {
                    Ok((page, last)) => {
                        start = last;
                        if tx.send(Ok(page)).await.is_err() {
                            return;
                        }
                        if start.is_none() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
    }
    rx
}

/// The items of `index` of `table` whose `PK` starts with `prefix`,
/// counted by a parallel Scan of `segments` segments (keys only).
pub async fn count_index(
    target: &dyn Target,
    table: &str,
    index: &str,
    prefix: &str,
    segments: u32,
    policy: &RetryPolicy,
) -> Result<u64> {
    let what = format!("scan of index {index} of {table}");
    let segments = segments.max(1);
    let counts = futures_util::future::try_join_all((0..segments).map(|segment| {
        let what = &what;
        async move {
            let (mut n, mut start) = (0u64, None);
            loop {
                let (page, last) = retry_failed(policy, what, || {
                    target.scan(ScanRequest {
                        table,
                        index: Some(index),
                        segment,
                        segments,
                        prefix: Some(prefix),
                        keys_only: true,
                        limit: SCAN_PAGE_ITEMS,
                        start: start.clone(),
                    })
                })
                .await?;
                n += page.len() as u64;
                start = last;
                if start.is_none() {
                    return Ok::<u64, crate::error::Error>(n);
                }
            }
        }
    }))
    .await?;
    Ok(counts.into_iter().sum())
}

/// One page of a Query ([`QueryRequest`]), retried: the items, projected
/// to `PK`, and where the next page starts.
pub async fn query_page(
    target: &dyn Target,
    request: &QueryRequest<'_>,
    policy: &RetryPolicy,
) -> Result<(Vec<AvItem>, Option<AvItem>)> {
    let what = format!("query of index {} of {}", request.index, request.table);
    retry_failed(policy, &what, || target.query(request.clone())).await
}
