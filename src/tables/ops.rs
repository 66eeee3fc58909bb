//! The DynamoDB calls behind `migrate tables create`: DescribeTable,
//! CreateTable from a [`TableSpec`], waiting for ACTIVE, DeleteTable.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection as SdkProjection, ProjectionType, ProvisionedThroughput, ScalarAttributeType,
    TableDescription, TableStatus,
};

use super::TableSpec;
use crate::config::Billing;
use crate::dynamo::{self, RetryPolicy, Target};
use crate::entities::table::{Attr, Key, Projection, Scalar};
use crate::error::{Error, Result};

/// The table's description, `None` when it does not exist.
pub async fn describe(
    client: &Client,
    name: &str,
    policy: &RetryPolicy,
) -> Result<Option<TableDescription>> {
    dynamo::describe_table(&dynamo::Sdk(client.clone()), name, policy).await
}

fn sdk_scalar(kind: Scalar) -> ScalarAttributeType {
    match kind {
        Scalar::S => ScalarAttributeType::S,
        Scalar::N => ScalarAttributeType::N,
        Scalar::B => ScalarAttributeType::B,
    }
}

fn sdk_key(key: &Key) -> Vec<KeySchemaElement> {
    let element = |a: Attr, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(a.name)
            .key_type(t)
            .build()
            .expect("name and key type are set")
    };
    std::iter::once(element(key.hash, KeyType::Hash))
        .chain(key.range.map(|r| element(r, KeyType::Range)))
        .collect()
}

/// A table's definition in the SDK's types: CreateTable's and
/// ImportTable's `TableCreationParameters` are both built from it.
#[derive(Debug, Clone)]
pub struct Definition {
    pub attributes: Vec<AttributeDefinition>,
    pub key: Vec<KeySchemaElement>,
    pub indexes: Vec<GlobalSecondaryIndex>,
    pub mode: BillingMode,
    pub throughput: Option<ProvisionedThroughput>,
}

impl Definition {
    pub fn of(spec: &TableSpec, billing: Billing) -> Definition {
        let throughput = match billing {
            Billing::PayPerRequest => None,
            Billing::Provisioned { read, write } => Some(
                ProvisionedThroughput::builder()
                    .read_capacity_units(read)
                    .write_capacity_units(write)
                    .build()
                    .expect("both units are set"),
            ),
        };
        let attributes = spec
            .attributes()
            .into_iter()
            .map(|a| {
                AttributeDefinition::builder()
                    .attribute_name(a.name)
                    .attribute_type(sdk_scalar(a.kind))
                    .build()
                    .expect("name and type are set")
            })
            .collect();
        let indexes = spec
            .indexes
            .iter()
            .map(|i| {
                let projection = SdkProjection::builder()
                    .projection_type(match i.projection {
                        Projection::All => ProjectionType::All,
                        Projection::KeysOnly => ProjectionType::KeysOnly,
                    })
                    .build();
                GlobalSecondaryIndex::builder()
                    .index_name(i.name)
                    .set_key_schema(Some(sdk_key(&i.key)))
                    .projection(projection)
                    .set_provisioned_throughput(throughput.clone())
                    .build()
                    .expect("name, keys and projection are set")
            })
            .collect();
        let mode = match billing {
            Billing::PayPerRequest => BillingMode::PayPerRequest,
            Billing::Provisioned { .. } => BillingMode::Provisioned,
        };
        Definition {
            attributes,
            key: sdk_key(&spec.key),
            indexes,
            mode,
            throughput,
        }
    }
}

/// Sends CreateTable for `spec`. `Ok(false)` when the table already exists
/// (created meanwhile by someone else).
pub async fn create(
    client: &Client,
    spec: &TableSpec,
    billing: Billing,
    policy: &RetryPolicy,
) -> Result<bool> {
    let Definition {
        attributes,
        key,
        indexes,
        mode,
        throughput,
    } = Definition::of(spec, billing);
    dynamo::retrying(policy, &format!("CreateTable {}", spec.name), || async {
        let request = client
            .create_table()
            .table_name(&spec.name)
            .set_attribute_definitions(Some(attributes.clone()))
            .set_key_schema(Some(key.clone()))
            .set_global_secondary_indexes((!indexes.is_empty()).then(|| indexes.clone()))
            .billing_mode(mode.clone())
            .set_provisioned_throughput(throughput.clone());
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    })
    .await
}

/// Whether the table and all its indexes are ACTIVE.
fn is_active(desc: &TableDescription) -> bool {
    desc.table_status() == Some(&TableStatus::Active)
        && desc
            .global_secondary_indexes()
            .iter()
            .all(|g| g.index_status().is_none_or(|s| *s == IndexStatus::Active))
}

/// What a table and its indexes are doing, for messages.
fn status_text(desc: &TableDescription) -> String {
    let mut text = desc
        .table_status()
        .map_or("unknown", |s| s.as_str())
        .to_string();
    for g in desc.global_secondary_indexes() {
        if let Some(s) = g.index_status().filter(|s| **s != IndexStatus::Active) {
            text.push_str(&format!(
                ", {} {}",
                g.index_name().unwrap_or("?"),
                s.as_str()
            ));
        }
    }
    text
}

/// Waits until the table and its indexes are ACTIVE; returns the description.
pub async fn wait_active(
    client: &Client,
    name: &str,
    timeout: Duration,
    policy: &RetryPolicy,
) -> Result<TableDescription> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    let mut said = false;
    loop {
        let desc = describe(client, name, policy).await?.ok_or_else(|| {
            Error::target(format!("table {name} disappeared while being created"))
        })?;
        if is_active(&desc) {
            return Ok(desc);
        }
        if started.elapsed() >= timeout {
            return Err(Error::target(format!(
                "table {name} is not ACTIVE after {}s (now: {}); it may still become ACTIVE: run the command again later",
                timeout.as_secs(),
                status_text(&desc)
            )));
        }
        if !said && started.elapsed() >= Duration::from_secs(2) {
            tracing::info!(
                "waiting for table {name} to become ACTIVE ({})",
                status_text(&desc)
            );
            said = true;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Deletes a table (waiting first if it is still being created) and waits
/// until it is gone. A table that does not exist is fine.
pub async fn delete(
    target: &dyn Target,
    name: &str,
    timeout: Duration,
    policy: &RetryPolicy,
) -> Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match target.delete_table(name).await {
            Ok(()) => {}
            Err(f) if f.class.retryable() && started.elapsed() < timeout => {
                // Being created or updated (or a throttle, a 5xx): again.
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
            Err(f) => {
                return Err(Error::Target {
                    class: f.class,
                    message: format!("DeleteTable {name}: {}", f.message),
                });
            }
        }
        if dynamo::describe_table(target, name, policy)
            .await?
            .is_none()
        {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(Error::target(format!(
                "table {name} is still there {}s after DeleteTable",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}
