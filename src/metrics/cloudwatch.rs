//! CloudWatch: PutMetricData in batches, with the region, endpoint and
//! credentials of the DynamoDB client. Metrics `RecordsProcessed`, `Errors`,
//! `Duration` (seconds), `RetryCount`, `Throttles`, each with the dimensions
//! `Entity`, `Phase` and `RunId`.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

use super::{Key, Values};
use crate::config::Config;

/// Steps per PutMetricData request: 5 datapoints each, 20 a request (well
/// under the service's limit).
const STEPS_PER_REQUEST: usize = 4;

/// How long one publication may take before it is given up (a warning).
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Publishes to one namespace.
pub struct Publisher {
    client: Client,
    namespace: String,
}

impl Publisher {
    pub async fn new(config: &Config, namespace: &str) -> Publisher {
        let sdk = crate::dynamo::sdk_config(&config.target, &config.migration).await;
        Publisher {
            client: Client::new(&sdk),
            namespace: namespace.to_string(),
        }
    }

    /// Sends `values` (what changed since the last publication); on an
    /// error, how many of them were sent before it.
    pub async fn put(&self, values: &[(Key, Values)]) -> Result<(), (usize, String)> {
        for (i, chunk) in values.chunks(STEPS_PER_REQUEST).enumerate() {
            self.put_some(chunk)
                .await
                .map_err(|e| (i * STEPS_PER_REQUEST, e))?;
        }
        Ok(())
    }

    async fn put_some(&self, values: &[(Key, Values)]) -> Result<(), String> {
        let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
        let mut data = Vec::new();
        for ((run_id, entity, phase), v) in values {
            let dims = [
                ("Entity", entity.as_str()),
                ("Phase", phase.as_str()),
                ("RunId", run_id.as_str()),
            ];
            for (name, value, unit) in [
                ("RecordsProcessed", v.records as f64, StandardUnit::Count),
                ("Errors", v.errors as f64, StandardUnit::Count),
                ("Duration", v.seconds, StandardUnit::Seconds),
                ("RetryCount", v.retries as f64, StandardUnit::Count),
                ("Throttles", v.throttles as f64, StandardUnit::Count),
            ] {
                let mut d = MetricDatum::builder()
                    .metric_name(name)
                    .value(value)
                    .unit(unit)
                    .timestamp(now);
                for (k, v) in dims {
                    d = d.dimensions(Dimension::builder().name(k).value(v).build());
                }
                data.push(d.build());
            }
        }
        let send = self
            .client
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(data))
            .send();
        match tokio::time::timeout(TIMEOUT, send).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "PutMetricData to {}: {}",
                self.namespace,
                aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
            )),
            Err(_) => Err(format!(
                "PutMetricData to {}: no answer in {}s",
                self.namespace,
                TIMEOUT.as_secs()
            )),
        }
    }
}
