//! The business metrics of `lots`: lots put up and photo uploads by outcome, every label value
//! from a fixed list and zero from the start.

use gavel_common::metrics::{Metrics, counter_vec};
use prometheus::{IntCounter, IntCounterVec};

use crate::http::ApiError;

pub const PHOTO_OUTCOMES: &[&str] = &["stored", "too_large", "bad_image", "refused", "error"];

#[derive(Clone, Debug)]
pub struct LotMetrics {
    created: IntCounter,
    photos: IntCounterVec,
}

impl LotMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let created = IntCounter::new("lots_created_total", "Lots put up by sellers.")
            .expect("static metric definition is valid");
        let photos = counter_vec(
            "photo_uploads_total",
            "Photo uploads by outcome (stored, too_large, bad_image, refused, error).",
            "outcome",
            PHOTO_OUTCOMES,
        );
        metrics.register(created.clone());
        metrics.register(photos.clone());
        Self { created, photos }
    }

    pub fn lot_created(&self) {
        self.created.inc();
    }

    pub fn photo<T>(&self, result: &Result<T, ApiError>) {
        let outcome = match result {
            Ok(_) => "stored",
            Err(ApiError::TooLarge { .. }) => "too_large",
            Err(ApiError::Photo(_)) => "bad_image",
            Err(ApiError::Internal(_) | ApiError::EngineUnavailable) => "error",
            Err(_) => "refused",
        };
        self.photos.with_label_values(&[outcome]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photo_outcomes_are_bounded_and_exposed_from_the_start() {
        let metrics = Metrics::new("lots");
        let lots = LotMetrics::new(&metrics);
        lots.photo::<()>(&Err(ApiError::TooLarge { max: 1 }));
        let text = metrics.render();
        for outcome in PHOTO_OUTCOMES {
            assert!(
                text.contains(&format!("outcome=\"{outcome}\"")),
                "{outcome}"
            );
        }
        assert!(
            text.contains("gavel_photo_uploads_total{outcome=\"too_large\",service=\"lots\"} 1")
        );
        assert!(text.contains("gavel_lots_created_total{service=\"lots\"} 0"));
    }
}
