//! The one DynamoDB client of a run: region, endpoint, profile and
//! credentials from the configuration, the SDK's own retries off (every retry
//! is decided and counted in [`super::retry`] and the batch writer).

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;

use crate::config::{MigrationConfig, TargetConfig};

/// Builds the one client of the run from the target configuration.
pub async fn client(target: &TargetConfig, migration: &MigrationConfig) -> Client {
    Client::new(&sdk_config(target, migration).await)
}

/// The SDK configuration of [`client`] (region, endpoint, credentials,
/// timeouts, no SDK retries), shared with the CloudWatch metrics client.
pub async fn sdk_config(
    target: &TargetConfig,
    migration: &MigrationConfig,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(target.region.clone()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(migration.request_timeout)
                .build(),
        );
    if let Some(profile) = &target.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &target.endpoint {
        loader = loader.endpoint_url(endpoint);
        // A local server needs no real credentials; do not send the SDK off
        // to look for them (instance metadata lookups take seconds to fail).
        if is_loopback(endpoint)
            && std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && target.profile.is_none()
        {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "migrate-local",
            ));
        }
    }
    loader.load().await
}

/// Whether the endpoint URL is on this machine (localhost, 127.x, [::1]).
pub fn is_loopback(endpoint: &str) -> bool {
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "localhost" || host.starts_with("127.") || endpoint.contains("[::1]")
}
