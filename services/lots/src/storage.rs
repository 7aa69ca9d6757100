//! Photos in S3 (any S3-compatible store): put, get, delete, public URLs, and the bucket itself.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;

use gavel_common::metrics::{Metrics, counter_vec};
use prometheus::IntCounterVec;

use crate::config::S3Config;

#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} failed: {message}")]
pub struct StorageError {
    pub operation: &'static str,
    pub message: String,
}

/// The S3 operations `gavel_s3_errors_total` counts.
pub const OPERATIONS: &[&str] = &[
    "create_bucket",
    "put_object",
    "delete_object",
    "get_object",
    "list_objects",
];

#[derive(Clone, Debug)]
pub struct Storage {
    client: Client,
    bucket: String,
    public_url: Option<url::Url>,
    errors: Option<IntCounterVec>,
}

impl Storage {
    pub fn new(config: &S3Config) -> Self {
        let credentials = Credentials::new(
            config.access_key_id.expose(),
            config.secret_access_key.expose(),
            None,
            None,
            "gavel-config",
        );
        let s3 = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .endpoint_url(config.endpoint.as_str().trim_end_matches('/'))
            .credentials_provider(credentials)
            .force_path_style(config.path_style)
            // Checksums only where S3 requires them: not every S3-compatible store speaks the
            // newer streaming-checksum encoding.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Self {
            client: Client::from_conf(s3),
            bucket: config.bucket.clone(),
            public_url: config.public_url.clone(),
            errors: None,
        }
    }

    /// Counts failed S3 calls in `gavel_s3_errors_total{operation}`.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        let errors = counter_vec(
            "s3_errors_total",
            "Failed S3 calls by operation.",
            "operation",
            OPERATIONS,
        );
        metrics.register(errors.clone());
        self.errors = Some(errors);
        self
    }

    fn failed(&self, operation: &'static str) -> impl Fn(&dyn std::fmt::Debug) -> StorageError {
        let errors = self.errors.clone();
        move |error| {
            if let Some(errors) = &errors {
                errors.with_label_values(&[operation]).inc();
            }
            StorageError {
                operation,
                message: format!("{error:?}"),
            }
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket unless it exists.
    pub async fn ensure_bucket(&self) -> Result<(), StorageError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.failed("create_bucket")(&e))?;
        Ok(())
    }

    /// The readiness check: the bucket answers.
    pub async fn ping(self) -> Result<(), String> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(drop)
            .map_err(|error| format!("{error:?}"))
    }

    pub async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.failed("put_object")(&e))?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.failed("delete_object")(&e))?;
        Ok(())
    }

    /// The public URL of `key`, when photos are served straight from a public bucket or CDN.
    pub fn public_url(&self, key: &str) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|base| format!("{}/{key}", base.as_str().trim_end_matches('/')))
    }

    /// The object's bytes, streamed.
    pub async fn get(&self, key: &str) -> Result<ByteStream, StorageError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.failed("get_object")(&e))?;
        Ok(object.body)
    }

    /// Every key in the bucket (for tests and operators).
    pub async fn keys(&self) -> Result<Vec<String>, StorageError> {
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.failed("list_objects")(&e))?;
        Ok(listed
            .contents()
            .iter()
            .filter_map(|object| object.key().map(str::to_owned))
            .collect())
    }
}
