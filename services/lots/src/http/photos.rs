//! Photo upload and removal. An upload is read as a stream and refused (413) as soon as it passes
//! the limit, so an oversize body is never read to the end; its bytes then decide its type; a
//! refused photo leaves nothing behind in S3 or the database.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use gavel_common::auth::Authenticated;
use gavel_common::problem::Problem;
use gavel_types::{AccountId, LotId};

use super::lots::{PhotoView, parse_lot};
use super::{ApiError, AppState};
use crate::photos;
use crate::store;

/// Room for the multipart framing around the file itself.
const MULTIPART_OVERHEAD: usize = 16 * 1024;

/// Upload a photo (multipart field `photo`; JPEG, PNG or WebP).
#[utoipa::path(post, path = "/lots/{lot_id}/photos", security(("bearer" = [])), params(("lot_id" = uuid::Uuid, Path)),
    request_body(content_type = "multipart/form-data", description = "field `photo`: the image"),
    responses((status = 201, body = PhotoView), (status = 403), (status = 404), (status = 409, description = "too many photos"),
              (status = 413, description = "over the size limit"), (status = 415, description = "not a JPEG, PNG or WebP"),
              (status = 422, description = "too many pixels or damaged")))]
pub async fn upload(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(lot_id): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<PhotoView>), ApiError> {
    let stored = store_photo(&state, claims, &lot_id, request).await;
    state.metrics.photo(&stored);
    Ok((StatusCode::CREATED, Json(stored?)))
}

async fn store_photo(
    state: &AppState,
    claims: gavel_common::auth::Claims,
    lot_id: &str,
    request: Request,
) -> Result<PhotoView, ApiError> {
    let lot = parse_lot(lot_id)?;
    let caller = AccountId(claims.sub);
    let limit = state.limits.max_bytes;
    // Refuse before reading anything what is refused anyway.
    check_room(state, lot, caller).await?;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit + MULTIPART_OVERHEAD) {
        return Err(ApiError::TooLarge { max: limit });
    }
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|rejection| {
            Problem::new(
                rejection.status(),
                "bad_multipart",
                "Expected multipart/form-data with a `photo` field",
            )
            .with_detail(rejection.body_text())
        })?;
    let raw = read_photo(&mut multipart, limit).await?;
    let clean = photos::clean(raw, &state.limits.image())?;

    let id = uuid::Uuid::now_v7();
    let key = format!("lots/{lot}/{id}.{}", clean.kind.extension());
    let size = i32::try_from(clean.bytes.len()).unwrap_or(i32::MAX);
    state
        .storage
        .put(&key, clean.bytes, clean.kind.content_type())
        .await?;
    // From here on, any failure must take the object back out.
    let recorded = record(
        state,
        lot,
        caller,
        id,
        &key,
        clean.kind.content_type(),
        clean.width,
        clean.height,
        size,
    )
    .await;
    let position = match recorded {
        Ok(position) => position,
        Err(error) => {
            if let Err(cleanup) = state.storage.delete(&key).await {
                tracing::error!(%cleanup, %key, "could not remove the object of a refused photo");
            }
            return Err(error);
        }
    };
    let url = url(state, lot, id, &key);
    let view = PhotoView {
        id,
        position,
        url,
        content_type: clean.kind.content_type().to_owned(),
        width: i32::try_from(clean.width).unwrap_or(i32::MAX),
        height: i32::try_from(clean.height).unwrap_or(i32::MAX),
    };
    Ok(view)
}

/// Where a browser fetches a photo: the public bucket (or CDN) when configured, otherwise `lots`
/// itself through the site's own origin.
pub(super) fn url(state: &AppState, lot: LotId, photo: uuid::Uuid, key: &str) -> String {
    state.storage.public_url(key).unwrap_or_else(|| {
        format!(
            "{}/lots/{lot}/photos/{photo}",
            state.limits.url_prefix.trim_end_matches('/')
        )
    })
}

/// A photo's bytes, from the bucket, with an image type fixed at upload and headers that keep a
/// browser from treating it as anything but an image.
#[utoipa::path(get, path = "/lots/{lot_id}/photos/{photo_id}",
    params(("lot_id" = uuid::Uuid, Path), ("photo_id" = uuid::Uuid, Path)),
    responses((status = 200, description = "the image", content_type = "image/jpeg"), (status = 404)))]
pub async fn serve(
    State(state): State<AppState>,
    Path((lot_id, photo_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let lot = parse_lot(&lot_id)?;
    let photo: uuid::Uuid = photo_id
        .parse()
        .map_err(|_| ApiError::Problem(Problem::invalid("photo_id", "a photo id is a UUID")))?;
    let (key, content_type): (String, String) =
        sqlx::query_as("SELECT object_key, content_type FROM photos WHERE id = $1 AND lot_id = $2")
            .bind(photo)
            .bind(lot.0)
            .fetch_optional(&state.pool)
            .await?
            .ok_or(ApiError::NotFound("photo"))?;
    let kind = photos::Kind::from_content_type(&content_type).ok_or_else(|| {
        ApiError::Internal(format!("stored photo {photo} has content type {content_type:?}").into())
    })?;
    let body = state.storage.get(&key).await?;
    let stream = futures_util::stream::unfold(body, |mut body| async move {
        match body.next().await {
            Some(Ok(chunk)) => Some((Ok::<_, std::io::Error>(chunk), body)),
            Some(Err(error)) => Some((Err(std::io::Error::other(error)), body)),
            None => None,
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, kind.content_type()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox",
            ),
            (header::CONTENT_DISPOSITION, "inline"),
            // A photo id names one upload forever.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (
                axum::http::HeaderName::from_static("cross-origin-resource-policy"),
                "same-site",
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

async fn check_room(state: &AppState, lot: LotId, caller: AccountId) -> Result<(), ApiError> {
    let row = store::load(&state.pool, lot, false)
        .await?
        .ok_or(ApiError::NotFound("lot"))?;
    if row.seller != caller.0 {
        return Err(ApiError::NotSeller);
    }
    let count = store::photos(&state.pool, lot).await?.len() as i64;
    if count >= state.limits.max_per_lot {
        return Err(ApiError::conflict(
            "too_many_photos",
            format!("A lot has at most {} photos", state.limits.max_per_lot),
        ));
    }
    Ok(())
}

/// Reads the `photo` field, stopping as soon as it passes `limit`.
async fn read_photo(multipart: &mut Multipart, limit: usize) -> Result<Bytes, ApiError> {
    let bad = |error: axum::extract::multipart::MultipartError| {
        ApiError::Problem(
            Problem::new(
                error.status(),
                "bad_multipart",
                "The multipart body is malformed",
            )
            .with_detail(error.body_text()),
        )
    };
    let Some(mut field) = multipart.next_field().await.map_err(bad)? else {
        return Err(ApiError::Problem(Problem::invalid(
            "photo",
            "the multipart body has no `photo` field",
        )));
    };
    if field.name() != Some("photo") {
        // Not read: an upload carries the photo and nothing else.
        let name = field
            .name()
            .unwrap_or("")
            .chars()
            .take(40)
            .collect::<String>();
        return Err(ApiError::Problem(Problem::invalid(
            "photo",
            format!("unexpected multipart field `{name}`: send only the `photo` field"),
        )));
    }
    let mut bytes = BytesMut::new();
    while let Some(chunk) = field.chunk().await.map_err(bad)? {
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { max: limit });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.freeze())
}

/// Inserts the photo row under the lot's lock (re-checking ownership and room); returns its
/// position.
#[expect(clippy::too_many_arguments, reason = "one row's columns")]
async fn record(
    state: &AppState,
    lot: LotId,
    caller: AccountId,
    id: uuid::Uuid,
    key: &str,
    content_type: &str,
    width: u32,
    height: u32,
    size: i32,
) -> Result<i32, ApiError> {
    let mut tx = state.pool.begin().await?;
    let row = store::load(&mut *tx, lot, true)
        .await?
        .ok_or(ApiError::NotFound("lot"))?;
    if row.seller != caller.0 {
        return Err(ApiError::NotSeller);
    }
    let existing = store::photos(&mut *tx, lot).await?;
    if existing.len() as i64 >= state.limits.max_per_lot {
        return Err(ApiError::conflict(
            "too_many_photos",
            format!("A lot has at most {} photos", state.limits.max_per_lot),
        ));
    }
    let position = existing
        .iter()
        .map(|photo| photo.position)
        .max()
        .unwrap_or(0)
        + 1;
    sqlx::query(
        "INSERT INTO photos (id, lot_id, position, object_key, content_type, width, height, bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(lot.0)
    .bind(position)
    .bind(key)
    .bind(content_type)
    .bind(i32::try_from(width).unwrap_or(i32::MAX))
    .bind(i32::try_from(height).unwrap_or(i32::MAX))
    .bind(size)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(position)
}

/// Remove a photo (seller only).
#[utoipa::path(delete, path = "/lots/{lot_id}/photos/{photo_id}", security(("bearer" = [])),
    params(("lot_id" = uuid::Uuid, Path), ("photo_id" = uuid::Uuid, Path)), responses((status = 204), (status = 403), (status = 404)))]
pub async fn remove(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path((lot_id, photo_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let lot = parse_lot(&lot_id)?;
    let photo: uuid::Uuid = photo_id
        .parse()
        .map_err(|_| ApiError::Problem(Problem::invalid("photo_id", "a photo id is a UUID")))?;
    let mut tx = state.pool.begin().await?;
    let row = store::load(&mut *tx, lot, true)
        .await?
        .ok_or(ApiError::NotFound("lot"))?;
    if row.seller != claims.sub {
        return Err(ApiError::NotSeller);
    }
    let key: Option<String> =
        sqlx::query_scalar("DELETE FROM photos WHERE id = $1 AND lot_id = $2 RETURNING object_key")
            .bind(photo)
            .bind(lot.0)
            .fetch_optional(&mut *tx)
            .await?;
    let key = key.ok_or(ApiError::NotFound("photo"))?;
    tx.commit().await?;
    // The row is gone, so nobody is shown the object any more; a failed delete only wastes space.
    if let Err(error) = state.storage.delete(&key).await {
        tracing::warn!(%error, %key, "photo object not deleted");
    }
    Ok(StatusCode::NO_CONTENT)
}
