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
            // The header must come first and pixels must follow: a file whose header is
            // missing or unknown is not an image once the unknown chunks are gone.
            let kinds: Vec<[u8; 4]> = chunks.iter().map(|chunk| chunk.kind()).collect();
            if kinds.first() != Some(b"IHDR") || !kinds.contains(b"IDAT") {
                return Err(Rejected::Damaged(
                    "the PNG has no header or no image data".to_owned(),
                ));
            }
            png.encoder().bytes().to_vec()
        }
        Kind::Webp => {
            let mut webp = img_parts::webp::WebP::from_bytes(raw).map_err(damaged)?;
            webp.chunks_mut()
                .retain(|chunk| WEBP_CHUNKS.contains(&&chunk.id()));
            let ids: Vec<[u8; 4]> = webp.chunks().iter().map(|chunk| chunk.id()).collect();
            let drawn = ids
                .iter()
                .any(|id| [b"VP8 ", b"VP8L", b"ANMF"].contains(&id));
            if !ids
                .first()
                .is_some_and(|id| [b"VP8 ", b"VP8L", b"VP8X"].contains(&id))
                || !drawn
            {
                return Err(Rejected::Damaged("the WebP has no image data".to_owned()));
            }
            webp.encoder().bytes().to_vec()
        }
    };
    // What is stored must still read as the image that was measured.
    let kept =
        imagesize::blob_size(&bytes).map_err(|error| Rejected::Damaged(error.to_string()))?;
    if (kept.width, kept.height) != (size.width, size.height) {
        return Err(Rejected::Damaged(
            "the image's size changes without its extra data".to_owned(),
        ));
    }
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

    const LIMITS: Limits = Limits {
        max_side: 4000,
        max_pixels: 8_000_000,
    };

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc32fast::hash(&out[4..]).to_be_bytes());
        out
    }

    /// A 1×1 PNG with a text chunk, its header chunk named `header`.
    fn png_with_text(header: &[u8; 4]) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.extend(chunk(header, &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]));
        bytes.extend(chunk(b"tEXt", b"Comment\x00where I live"));
        bytes.extend(chunk(
            b"IDAT",
            &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x04, 0x00, 0x01],
        ));
        bytes.extend(chunk(b"IEND", &[]));
        bytes
    }

    #[test]
    fn a_png_keeps_its_image_and_loses_its_text() {
        let cleaned = clean(Bytes::from(png_with_text(b"IHDR")), &LIMITS).expect("a PNG");
        assert_eq!(
            (cleaned.kind, cleaned.width, cleaned.height),
            (Kind::Png, 1, 1)
        );
        assert!(!cleaned.bytes.windows(4).any(|window| window == b"tEXt"));
    }

    /// Found by `fuzz/` (target `photo`): a WebP whose only chunk is unknown was accepted and
    /// stored as a RIFF container with no image in it.
    #[test]
    fn a_webp_without_image_data_is_refused() {
        let mut bytes = b"RIFF\x1a\x00\x00\x00WEBPV\x108L\x0e\x00\x00\x00".to_vec();
        bytes.extend_from_slice(&[
            0x2f, 0, 0, 0, 0x10, 0x07, 0x70, 0x10, 0x11, 0x11, 0x88, 0x88, 0xfe, 0x07, 0x00,
        ]);
        assert!(matches!(
            clean(Bytes::from(bytes), &LIMITS),
            Err(Rejected::Damaged(_))
        ));
    }

    #[test]
    fn a_png_whose_header_is_unknown_is_refused() {
        assert!(matches!(
            clean(Bytes::from(png_with_text(b"IHDX")), &LIMITS),
            Err(Rejected::Damaged(_))
        ));
    }
}
