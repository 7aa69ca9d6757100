//! Checking and cleaning an uploaded photo: the bytes decide the type (JPEG, PNG or WebP, whatever
//! the upload claims), the header gives the dimensions, and metadata (EXIF with its GPS position,
//! XMP, comments) is removed without re-encoding the image.

use bytes::Bytes;
use img_parts::ImageEXIF;

use crate::config::PhotoLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Webp,
}

impl Kind {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the file is not a JPEG, PNG or WebP image")]
    NotAnImage,
    #[error(
        "the image is {width}×{height} pixels; at most {max_side} per side and {max_pixels} in all are accepted"
    )]
    TooLarge {
        width: u64,
        height: u64,
        max_side: u32,
        max_pixels: u64,
    },
    #[error("the image is damaged: {0}")]
    Damaged(String),
}

/// A photo ready to store.
#[derive(Debug, Clone)]
pub struct Clean {
    pub kind: Kind,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

pub fn sniff(bytes: &[u8]) -> Option<Kind> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Kind::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Kind::Png)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(Kind::Webp)
    } else {
        None
    }
}

pub fn clean(raw: Bytes, limits: &PhotoLimits) -> Result<Clean, Rejected> {
    let kind = sniff(&raw).ok_or(Rejected::NotAnImage)?;
    let size = imagesize::blob_size(&raw).map_err(|error| Rejected::Damaged(error.to_string()))?;
    let (width, height) = (size.width as u64, size.height as u64);
    if width == 0 || height == 0 {
        return Err(Rejected::Damaged("zero-sized image".to_owned()));
    }
    if width > u64::from(limits.max_side)
        || height > u64::from(limits.max_side)
        || width * height > limits.max_pixels
    {
        return Err(Rejected::TooLarge {
            width,
            height,
            max_side: limits.max_side,
            max_pixels: limits.max_pixels,
        });
    }
    let damaged = |error: img_parts::Error| Rejected::Damaged(error.to_string());
    let bytes = match kind {
        Kind::Jpeg => {
            let mut jpeg = img_parts::jpeg::Jpeg::from_bytes(raw).map_err(damaged)?;
            jpeg.set_exif(None);
            // APP1 also carries XMP; comments (COM) can carry anything: keep only what draws
            // the image (and the ICC profile, which colours it).
            jpeg.segments_mut().retain(|segment| {
                let marker = segment.marker();
                !(marker == img_parts::jpeg::markers::APP1
                    || marker == img_parts::jpeg::markers::COM
                    || (img_parts::jpeg::markers::APP3..=img_parts::jpeg::markers::APP15)
                        .contains(&marker))
            });
            jpeg.encoder().bytes().to_vec()
        }
        Kind::Png => {
            let mut png = img_parts::png::Png::from_bytes(raw).map_err(damaged)?;
            png.set_exif(None);
            png.chunks_mut().retain(|chunk| {
                !matches!(
                    &chunk.kind(),
                    b"tEXt" | b"zTXt" | b"iTXt" | b"eXIf" | b"tIME"
                )
            });
            png.encoder().bytes().to_vec()
        }
        Kind::Webp => {
            let mut webp = img_parts::webp::WebP::from_bytes(raw).map_err(damaged)?;
            webp.set_exif(None);
            webp.chunks_mut().retain(|chunk| &chunk.id() != b"XMP ");
            webp.encoder().bytes().to_vec()
        }
    };
    Ok(Clean {
        kind,
        width: size.width as u32,
        height: size.height as u32,
        bytes,
    })
}
