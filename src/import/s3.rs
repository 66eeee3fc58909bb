//! The S3 side of the import path: the client (the run's region, profile,
//! credentials and endpoint; `AWS_ENDPOINT_URL_S3` wins for S3 alone), the
//! upload of one part with its SHA-256 (one PutObject, or a multipart
//! upload for a large part), and the check that S3 holds exactly what was
//! sent: its size and its checksum as S3 reports them (docs/import.md).

use std::path::Path;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use aws_smithy_types::base64;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::dynamo::{self, RetryPolicy};
use crate::error::{Error, Result};

/// A part above this many bytes goes up as a multipart upload.
pub const MULTIPART_ABOVE: u64 = 64 * 1024 * 1024;
/// The size of each piece of a multipart upload (S3 wants at least 5 MiB
/// for all but the last).
pub const MULTIPART_PIECE: u64 = 16 * 1024 * 1024;

/// What S3 holds for one uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub bytes: u64,
    /// As S3 reports it: `base64(sha256)`, or for a multipart upload
    /// `base64(sha256(piece digests))-<pieces>`.
    pub checksum: String,
}

/// The S3 client of a run.
pub async fn client(config: &Config) -> Client {
    let sdk = dynamo::sdk_config(&config.target, &config.migration).await;
    let mut builder = aws_sdk_s3::config::Builder::from(&sdk)
        // A part may take longer to send than one DynamoDB request.
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(
                    config
                        .migration
                        .request_timeout
                        .max(Duration::from_secs(300)),
                )
                .build(),
        );
    // `AWS_ENDPOINT_URL_S3` names S3's endpoint alone (the configuration's
    // `target.endpoint` would otherwise win for every service).
    let own = std::env::var("AWS_ENDPOINT_URL_S3")
        .ok()
        .filter(|e| !e.is_empty());
    if let Some(endpoint) = &own {
        builder = builder.endpoint_url(endpoint);
    }
    // A local or self-hosted endpoint (moto, LocalStack) serves buckets by path.
    if config.target.endpoint.is_some() || own.is_some() {
        builder = builder.force_path_style(true);
    }
    Client::from_conf(builder.build())
}

/// Whether `bucket` can be reached; a clear error otherwise.
pub async fn check_bucket(client: &Client, bucket: &str, policy: &RetryPolicy) -> Result<()> {
    dynamo::retrying(policy, &format!("HeadBucket {bucket}"), || {
        client.head_bucket().bucket(bucket).send()
    })
    .await
    .map(|_| ())
    .map_err(|e| {
        let why = match e {
            Error::Target { message, .. } => message,
            other => other.to_string(),
        };
        Error::Preflight(format!(
            "the import bucket {bucket} (target.importBucket) cannot be reached: {why}"
        ))
    })
}

/// Uploads the file at `path` (`bytes` long, SHA-256 `sha256`) as `key`,
/// then checks what S3 reports against it.
pub async fn upload(
    client: &Client,
    bucket: &str,
    key: &str,
    path: &Path,
    bytes: u64,
    sha256: &[u8; 32],
    policy: &RetryPolicy,
) -> Result<Stored> {
    let expected = if bytes > MULTIPART_ABOVE {
        multipart(client, bucket, key, path, bytes, sha256, policy)
            .await
            .map_err(s3_error)?
    } else {
        let checksum = base64::encode(sha256);
        dynamo::retrying(
            policy,
            &format!("PutObject s3://{bucket}/{key}"),
            || async {
                let body = ByteStream::from_path(path)
                    .await
                    .map_err(|e| aws_sdk_s3::error::SdkError::construction_failure(Box::new(e)))?;
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .content_length(bytes as i64)
                    .content_type("application/gzip")
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .checksum_sha256(&checksum)
                    .body(body)
                    .send()
                    .await
            },
        )
        .await
        .map_err(s3_error)?;
        checksum
    };
    let stored = stored(client, bucket, key, policy)
        .await
        .map_err(s3_error)?;
    if stored.bytes != bytes || !same_checksum(&stored.checksum, &expected) {
        return Err(Error::S3(format!(
            "s3://{bucket}/{key}: S3 holds {} bytes with checksum {}, but {} bytes with checksum {expected} \
             were sent",
            stored.bytes, stored.checksum, bytes
        )));
    }
    Ok(stored)
}

/// Whether S3's checksum is the one expected. A multipart object's is
/// `base64(sha256(piece digests))-<pieces>`; some servers (moto) leave out
/// the `-<pieces>`, which the digest of every piece's digest already covers.
fn same_checksum(reported: &str, expected: &str) -> bool {
    let digest = |c: &str| c.split('-').next().unwrap_or("").to_string();
    reported == expected || (expected.contains('-') && digest(reported) == digest(expected))
}

/// Size and SHA-256 checksum of an object, as S3 reports them.
pub async fn stored(
    client: &Client,
    bucket: &str,
    key: &str,
    policy: &RetryPolicy,
) -> Result<Stored> {
    let head = dynamo::retrying(policy, &format!("HeadObject s3://{bucket}/{key}"), || {
        client
            .head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
    })
    .await
    .map_err(s3_error)?;
    Ok(Stored {
        bytes: head.content_length().unwrap_or(-1).max(0) as u64,
        checksum: head.checksum_sha256().unwrap_or("(none)").to_string(),
    })
}

/// A multipart upload in pieces of [`MULTIPART_PIECE`]; returns the
/// composite checksum S3 should then report. Aborted on failure, so no
/// half-uploaded object is left behind.
async fn multipart(
    client: &Client,
    bucket: &str,
    key: &str,
    path: &Path,
    bytes: u64,
    sha256: &[u8; 32],
    policy: &RetryPolicy,
) -> Result<String> {
    let what = format!("s3://{bucket}/{key}");
    let created = dynamo::retrying(policy, &format!("CreateMultipartUpload {what}"), || {
        client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type("application/gzip")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
    })
    .await
    .map_err(s3_error)?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| Error::S3(format!("CreateMultipartUpload {what}: no upload id")))?
        .to_string();
    let result = pieces(client, bucket, key, &upload_id, path, bytes, sha256, policy).await;
    if result.is_err() {
        // Best effort: a bucket lifecycle rule cleans up what this leaves.
        if let Err(e) = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await
        {
            tracing::warn!(
                "AbortMultipartUpload {what}: {}; the incomplete upload stays until the bucket's lifecycle removes it",
                dynamo::describe(&e)
            );
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn pieces(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    path: &Path,
    bytes: u64,
    sha256: &[u8; 32],
    policy: &RetryPolicy,
) -> Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    // The file as read now must be the file as written: its SHA-256 then.
    let mut whole = Sha256::new();
    let what = format!("s3://{bucket}/{key}");
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut digests = Vec::new();
    let mut completed = Vec::new();
    let mut offset = 0u64;
    let mut number = 1i32;
    while offset < bytes {
        let len = MULTIPART_PIECE.min(bytes - offset);
        let mut piece = vec![0u8; len as usize];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut piece))
            .map_err(|e| Error::io(path, e))?;
        whole.update(&piece);
        let digest: [u8; 32] = Sha256::digest(&piece).into();
        let checksum = base64::encode(digest);
        let piece = bytes::Bytes::from(piece);
        let out = dynamo::retrying(policy, &format!("UploadPart {number} of {what}"), || {
            client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(len as i64)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .checksum_sha256(&checksum)
                .body(ByteStream::from(piece.clone()))
                .send()
        })
        .await
        .map_err(s3_error)?;
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .checksum_sha256(&checksum)
                .build(),
        );
        digests.extend_from_slice(&digest);
        offset += len;
        number += 1;
    }
    if <[u8; 32]>::from(whole.finalize()) != *sha256 {
        return Err(Error::S3(format!(
            "{what}: {} no longer has the SHA-256 it was written with; nothing was completed",
            path.display()
        )));
    }
    let done = CompletedMultipartUpload::builder()
        .set_parts(Some(completed))
        .build();
    dynamo::retrying(policy, &format!("CompleteMultipartUpload {what}"), || {
        client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(done.clone())
            .send()
    })
    .await
    .map_err(s3_error)?;
    Ok(format!(
        "{}-{}",
        base64::encode(Sha256::digest(&digests)),
        number - 1
    ))
}

/// Every object under `prefix` with its size, in key order.
pub async fn list(
    client: &Client,
    bucket: &str,
    prefix: &str,
    policy: &RetryPolicy,
) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = dynamo::retrying(
            policy,
            &format!("ListObjectsV2 s3://{bucket}/{prefix}"),
            || {
                client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.clone())
                    .send()
            },
        )
        .await
        .map_err(s3_error)?;
        for o in page.contents() {
            if let Some(k) = o.key() {
                out.push((k.to_string(), o.size().unwrap_or(0).max(0) as u64));
            }
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    out.sort();
    Ok(out)
}

/// The retry loop names its failures as DynamoDB's; these are S3's.
fn s3_error(e: Error) -> Error {
    match e {
        Error::Target { message, .. } => Error::S3(message),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::same_checksum;

    #[test]
    fn a_multipart_checksum_matches_with_or_without_its_piece_count() {
        assert!(same_checksum("abc=", "abc="));
        assert!(same_checksum("abc=-3", "abc=-3"));
        assert!(same_checksum("abc=", "abc=-3"));
        assert!(!same_checksum("abd=", "abc=-3"));
        assert!(!same_checksum("abc=", "abd="));
        assert!(!same_checksum("(none)", "abc="));
    }
}
