//! A new lot's first photo, for its announcement. The notifier fetches the bytes from `lots`
//! (inside the cluster; Telegram never has to reach a URL of ours, public or presigned) and
//! uploads them with the first message; Telegram answers with a file id, kept in `lots.
//! photo_file_id`, and every later message about the lot sends that id instead of the bytes.
//! `''` there means the lot has no photo Telegram will take. A photo that cannot be fetched
//! leaves the message text only, never undelivered.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::warn;
use uuid::Uuid;

use crate::telegram::Photo;

/// Telegram takes photos up to 10 MB by upload.
const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;
const STRIPES: usize = 64;

#[derive(Debug, Clone)]
pub struct Photos {
    pool: PgPool,
    http: reqwest::Client,
    lots_url: Option<url::Url>,
    /// One upload per lot at a time: the others wait and then send its file id.
    uploading: Arc<[Arc<Mutex<()>>]>,
}

/// A photo for one message; while `_uploading` is held, no other message uploads the same lot's.
#[derive(Debug)]
pub struct Prepared {
    pub photo: Photo,
    lot_id: Uuid,
    _uploading: Option<OwnedMutexGuard<()>>,
}

#[derive(Deserialize)]
struct LotView {
    #[serde(default)]
    photos: Vec<PhotoView>,
}

#[derive(Deserialize)]
struct PhotoView {
    id: Uuid,
}

impl Photos {
    pub fn new(pool: PgPool, lots_url: Option<url::Url>) -> Result<Self, reqwest::Error> {
        Ok(Self {
            pool,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            lots_url,
            uploading: (0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
        })
    }

    /// The photo to send with a new-lot message, if the lot has one Telegram may take.
    pub async fn prepare(&self, lot_id: Uuid) -> Result<Option<Prepared>, sqlx::Error> {
        let Some(lots_url) = &self.lots_url else {
            return Ok(None);
        };
        let stripe = self.uploading[lot_id.as_u128() as usize % STRIPES].clone();
        let guard = stripe.lock_owned().await;
        let known: Option<Option<String>> =
            sqlx::query_scalar("SELECT photo_file_id FROM lots WHERE lot_id = $1")
                .bind(lot_id)
                .fetch_optional(&self.pool)
                .await?;
        match known.flatten() {
            Some(file_id) if file_id.is_empty() => return Ok(None),
            Some(file_id) => {
                return Ok(Some(Prepared {
                    photo: Photo::FileId(file_id),
                    lot_id,
                    _uploading: None,
                }));
            }
            None => {}
        }
        match self.fetch(lots_url, lot_id).await {
            Ok(Some(photo)) => Ok(Some(Prepared {
                photo,
                lot_id,
                _uploading: Some(guard),
            })),
            Ok(None) => {
                self.store(lot_id, Some("")).await?;
                Ok(None)
            }
            Err(reason) => {
                warn!(%lot_id, reason, "the lot's photo could not be fetched: sending the text alone");
                Ok(None)
            }
        }
    }

    /// Telegram took the photo and named it `file_id`.
    pub async fn sent(
        &self,
        prepared: &Prepared,
        file_id: Option<String>,
    ) -> Result<(), sqlx::Error> {
        if let (Photo::Upload { .. }, Some(file_id)) = (&prepared.photo, file_id) {
            self.store(prepared.lot_id, Some(&file_id)).await?;
        }
        Ok(())
    }

    /// Telegram refused the photo: an upload is not tried again for this lot; a refused file id
    /// is forgotten, so the next message uploads the photo afresh.
    pub async fn refused(&self, prepared: &Prepared) -> Result<(), sqlx::Error> {
        match prepared.photo {
            Photo::Upload { .. } => self.store(prepared.lot_id, Some("")).await,
            Photo::FileId(_) => self.store(prepared.lot_id, None).await,
        }
    }

    async fn store(&self, lot_id: Uuid, file_id: Option<&str>) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE lots SET photo_file_id = $2 WHERE lot_id = $1")
            .bind(lot_id)
            .bind(file_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The lot's first photo from `lots`: `Ok(None)` when it has none.
    async fn fetch(&self, lots_url: &url::Url, lot_id: Uuid) -> Result<Option<Photo>, String> {
        let base = lots_url.as_str().trim_end_matches('/');
        let lot: LotView = self
            .http
            .get(format!("{base}/lots/{lot_id}"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| {
                format!(
                    "asking lots for the lot: {}",
                    gavel_common::error_chain(&error)
                )
            })?
            .json()
            .await
            .map_err(|error| {
                format!(
                    "reading the lot from lots: {}",
                    gavel_common::error_chain(&error)
                )
            })?;
        let Some(first) = lot.photos.first() else {
            return Ok(None);
        };
        let response = self
            .http
            .get(format!("{base}/lots/{lot_id}/photos/{}", first.id))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| {
                format!(
                    "fetching the photo from lots: {}",
                    gavel_common::error_chain(&error)
                )
            })?;
        let extension = match response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
        {
            Some("image/jpeg") => "jpg",
            Some("image/png") => "png",
            Some("image/webp") => "webp",
            other => {
                return Err(format!(
                    "lots served the photo as {other:?}, not an image Telegram shows"
                ));
            }
        };
        if response
            .content_length()
            .is_some_and(|length| length > MAX_PHOTO_BYTES as u64)
        {
            // Telegram refuses larger uploads: the text goes alone, for good.
            return Ok(None);
        }
        let bytes = response.bytes().await.map_err(|error| {
            format!(
                "reading the photo from lots: {}",
                gavel_common::error_chain(&error)
            )
        })?;
        if bytes.len() > MAX_PHOTO_BYTES {
            return Ok(None);
        }
        Ok(Some(Photo::Upload {
            bytes: bytes.to_vec(),
            file_name: format!("{}.{extension}", first.id),
        }))
    }
}
