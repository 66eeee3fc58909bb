//! The DynamoDB side of the import path: `ImportTable` with the table's
//! definition and a client token derived from the run and entity (a call
//! sent again cannot start a second import), and `DescribeImport`.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    ImportStatus, ImportTableDescription, InputCompressionType, InputFormat, S3BucketSource,
    TableCreationParameters,
};

use crate::config::Billing;
use crate::dynamo::{self, RetryPolicy};
use crate::error::{Error, Result};
use crate::tables::{Definition, TableSpec};

/// Where an import stands, as `DescribeImport` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub status: String,
    pub processed_items: u64,
    pub processed_bytes: u64,
    pub imported_items: u64,
    pub errors: u64,
    pub log_group: Option<String>,
    pub failure: Option<String>,
}

impl Progress {
    /// Still running (or being cancelled).
    pub fn running(&self) -> bool {
        self.status == ImportStatus::InProgress.as_str()
            || self.status == ImportStatus::Cancelling.as_str()
    }

    pub fn completed(&self) -> bool {
        self.status == ImportStatus::Completed.as_str()
    }

    fn of(d: &ImportTableDescription) -> Progress {
        let n = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
        Progress {
            status: d
                .import_status()
                .map_or("UNKNOWN", |s| s.as_str())
                .to_string(),
            processed_items: n(Some(d.processed_item_count())),
            processed_bytes: n(d.processed_size_bytes()),
            imported_items: n(Some(d.imported_item_count())),
            errors: n(Some(d.error_count())),
            log_group: d.cloud_watch_log_group_arn().map(str::to_string),
            failure: match (d.failure_code(), d.failure_message()) {
                (None, None) => None,
                (c, m) => Some(
                    format!("{} {}", c.unwrap_or(""), m.unwrap_or(""))
                        .trim()
                        .to_string(),
                ),
            },
        }
    }
}

/// The client token of `entity`'s import in run `run_id`: the same for
/// every call of that run, so DynamoDB answers a repeated call with the
/// import it already started (tokens are kept 8 hours).
pub fn client_token(run_id: &str, entity: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("migrate-import:{run_id}:{entity}").as_bytes(),
    )
    .to_string()
}

/// Starts the import of every object under `s3://bucket/prefix` into a new
/// table `spec`; returns its ARN.
pub async fn start(
    client: &Client,
    spec: &TableSpec,
    billing: Billing,
    bucket: &str,
    prefix: &str,
    token: &str,
    policy: &RetryPolicy,
) -> Result<String> {
    let d = Definition::of(spec, billing);
    let params = TableCreationParameters::builder()
        .table_name(&spec.name)
        .set_attribute_definitions(Some(d.attributes))
        .set_key_schema(Some(d.key))
        .set_global_secondary_indexes((!d.indexes.is_empty()).then_some(d.indexes))
        .billing_mode(d.mode)
        .set_provisioned_throughput(d.throughput)
        .build()
        .map_err(|e| Error::target(format!("ImportTable {}: {e}", spec.name)))?;
    let source = S3BucketSource::builder()
        .s3_bucket(bucket)
        .s3_key_prefix(prefix)
        .build()
        .map_err(|e| Error::target(format!("ImportTable {}: {e}", spec.name)))?;
    let out = dynamo::retrying(policy, &format!("ImportTable {}", spec.name), || {
        client
            .import_table()
            .client_token(token)
            .s3_bucket_source(source.clone())
            .input_format(InputFormat::DynamodbJson)
            .input_compression_type(InputCompressionType::Gzip)
            .table_creation_parameters(params.clone())
            .send()
    })
    .await?;
    out.import_table_description()
        .and_then(|d| d.import_arn())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::target(format!(
                "ImportTable {}: no import ARN in the answer",
                spec.name
            ))
        })
}

/// Where the import `arn` stands.
pub async fn describe(client: &Client, arn: &str, policy: &RetryPolicy) -> Result<Progress> {
    let out = dynamo::retrying(policy, &format!("DescribeImport {arn}"), || {
        client.describe_import().import_arn(arn).send()
    })
    .await?;
    out.import_table_description()
        .map(Progress::of)
        .ok_or_else(|| {
            Error::target(format!(
                "DescribeImport {arn}: no description in the answer"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_the_same_for_a_run_and_entity_and_fits_the_api() {
        let a = client_token("20261206T210000Z-ab12", "sales");
        assert_eq!(a, client_token("20261206T210000Z-ab12", "sales"));
        assert_ne!(a, client_token("20261206T210000Z-ab12", "buyers"));
        assert_ne!(a, client_token("20261207T210000Z-cd34", "sales"));
        assert_eq!(a.len(), 36);
    }
}
