//! Checking and cleaning an uploaded photo: the bytes decide the type (JPEG, PNG or WebP, whatever
//! the upload claims), the header gives the dimensions, and everything that does not draw the
//! image is dropped without re-encoding it: metadata (EXIF with its GPS position, XMP, comments),
//! unknown chunks and segments, and anything after the image's end. What is kept is an allowlist,
//! so a payload hidden in a place no viewer reads (a `<script>` after a JPEG's end, a private PNG
//! chunk) is not stored, and never served.

use bytes::Bytes;

/// The largest image accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest width or height, in pixels.
    pub max_side: u32,
    /// Largest width × height.
    pub max_pixels: u64,
}

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

    pub fn from_content_type(content_type: &str) -> Option<Self> {
        [Self::Jpeg, Self::Png, Self::Webp]
            .into_iter()
            .find(|kind| kind.content_type() == content_type)
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

pub fn clean(raw: Bytes, limits: &Limits) -> Result<Clean, Rejected> {
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
        Kind::Jpeg => clean_jpeg(&raw)?,
        Kind::Png => {
            let mut png = img_parts::png::Png::from_bytes(raw).map_err(damaged)?;
            let chunks = png.chunks_mut();
            // Nothing after the end of the image.
            if let Some(end) = chunks.iter().position(|chunk| &chunk.kind() == b"IEND") {
                chunks.truncate(end + 1);
            }
            chunks.retain(|chunk| PNG_CHUNKS.contains(&&chunk.kind()));
            png.encoder().bytes().to_vec()
        }
        Kind::Webp => {
            let mut webp = img_parts::webp::WebP::from_bytes(raw).map_err(damaged)?;
            webp.chunks_mut()
                .retain(|chunk| WEBP_CHUNKS.contains(&&chunk.id()));
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

/// PNG chunks that draw or colour the image; everything else (text, EXIF, time, private and
/// unknown chunks, animation) is dropped.
const PNG_CHUNKS: [&[u8; 4]; 11] = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB",
    b"pHYs",
];

/// WebP chunks that draw or colour the image (still or animated); EXIF, XMP and unknown chunks
/// are dropped.
const WEBP_CHUNKS: [&[u8; 4]; 7] = [
    b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ICCP", b"ANIM", b"ANMF",
];

const MARKER: u8 = 0xFF;
const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;

/// Whether a JPEG segment is kept: frame headers, tables, restart interval and scans; of the
/// application segments only the ICC profile (APP2) and Adobe's colour transform (APP14), which
/// change how the image looks. Comments, EXIF/XMP (APP1) and the rest are dropped.
fn keep_jpeg_segment(marker: u8, payload: &[u8]) -> bool {
    match marker {
        // SOF0..SOF15 (less DHT, JPG, DAC, which are listed on their own), DHT, DAC, DQT, DRI, SOS.
        0xC0..=0xCF | 0xDB | 0xDD | SOS => true,
        0xE2 => payload.starts_with(b"ICC_PROFILE\0"),
        0xEE => payload.starts_with(b"Adobe"),
        _ => false,
    }
}

/// Rewrites a JPEG keeping only the segments that draw it, and nothing after its end (EOI).
fn clean_jpeg(bytes: &[u8]) -> Result<Vec<u8>, Rejected> {
    let damaged = |what: &str| Rejected::Damaged(what.to_owned());
    if bytes.get(..2) != Some(&[MARKER, SOI][..]) {
        return Err(damaged("no start of image"));
    }
    let mut out = vec![MARKER, SOI];
    let mut at = 2;
    let mut scanned = false;
    loop {
        // A marker, possibly after fill bytes (0xFF repeated).
        if bytes.get(at) != Some(&MARKER) {
            return Err(damaged("a segment does not start with a marker"));
        }
        while bytes.get(at + 1) == Some(&MARKER) {
            at += 1;
        }
        let marker = *bytes.get(at + 1).ok_or_else(|| damaged("truncated"))?;
        at += 2;
        match marker {
            EOI => {
                if !scanned {
                    return Err(damaged("no image data"));
                }
                out.extend_from_slice(&[MARKER, EOI]);
                return Ok(out);
            }
            // Markers without a length (restart markers, TEM) carry nothing.
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let length = bytes
            .get(at..at + 2)
            .map(|pair| usize::from(u16::from_be_bytes([pair[0], pair[1]])))
            .filter(|length| *length >= 2)
            .ok_or_else(|| damaged("a segment length is missing"))?;
        let segment = bytes
            .get(at..at + length)
            .ok_or_else(|| damaged("a segment is truncated"))?;
        if keep_jpeg_segment(marker, &segment[2..]) {
            out.extend_from_slice(&[MARKER, marker]);
            out.extend_from_slice(segment);
        }
        at += length;
        if marker == SOS {
            scanned = true;
            // Entropy-coded data runs to the next marker; 0xFF00 (a stuffed 0xFF) and restart
            // markers belong to it.
            let start = at;
            while at < bytes.len() {
                if bytes[at] == MARKER
                    && let Some(&next) = bytes.get(at + 1)
                    && next != 0x00
                    && !(0xD0..=0xD7).contains(&next)
                {
                    break;
                }
                at += 1;
            }
            out.extend_from_slice(&bytes[start..at]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &[u8] = b"<script>alert(document.cookie)</script>";

    fn jpeg() -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xD8];
        bytes.extend_from_slice(&[
            0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
        ]);
        bytes.extend_from_slice(&[0xFF, 0xFE, 0x00, 2 + SCRIPT.len() as u8]);
        bytes.extend_from_slice(SCRIPT);
        bytes.extend_from_slice(&[
            0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x02, 0x00, 0x03, 0x01, 0x01, 0x11, 0x00,
        ]);
        bytes.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
        bytes.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        bytes.extend_from_slice(&[0xFF, 0xD9]);
        bytes
    }

    #[test]
    fn a_jpeg_keeps_its_image_and_loses_comments_and_whatever_follows_its_end() {
        let mut upload = jpeg();
        upload.extend_from_slice(SCRIPT);
        let clean = clean_jpeg(&upload).expect("a JPEG");
        assert!(!clean.windows(SCRIPT.len()).any(|window| window == SCRIPT));
        assert!(clean.ends_with(&[0xFF, 0xD9]));
        // The scan data, stuffed bytes and restart marker included, is kept as it was.
        assert!(
            clean
                .windows(7)
                .any(|window| window == [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56])
        );
        assert!(
            clean
                .windows(4)
                .any(|window| window == [0xFF, 0xC0, 0x00, 0x0B])
        );
        assert!(
            !clean.windows(2).any(|window| window == [0xFF, 0xE0]),
            "no APP0 either"
        );
    }

    #[test]
    fn a_damaged_jpeg_is_refused() {
        let whole = jpeg();
        for cut in [3, 10, whole.len() - 2] {
            assert!(clean_jpeg(&whole[..cut]).is_err(), "cut at {cut}");
        }
    }
}
