//! Demo photos drawn in code: a lit object on a table against a soft backdrop, so that the local
//! catalogue looks like a catalogue and not a row of gradients. PNG via the `png` crate.

/// What the picture shows, roughly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A round thing: a watch face, a plate, a globe.
    Disc,
    /// A tall thing: a vase, a bottle, a lamp.
    Tall,
    /// A flat box: a book, a camera, a radio.
    Block,
}

/// Colours of one picture: backdrop, object, accent (a rim or a spine).
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pub backdrop: [u8; 3],
    pub object: [u8; 3],
    pub accent: [u8; 3],
}

/// A `width`×`height` RGB PNG of `shape` in `palette`.
pub fn picture(width: u32, height: u32, shape: Shape, palette: Palette) -> Vec<u8> {
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    let (w, h) = (f64::from(width), f64::from(height));
    let horizon = h * 0.68;
    for y in 0..height {
        for x in 0..width {
            let (px, py) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
            let colour = shade(px / w, py / h, horizon / h, shape, palette, w / h);
            pixels.extend_from_slice(&colour);
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Best);
        let mut writer = encoder
            .write_header()
            .unwrap_or_else(|error| unreachable!("a PNG header into memory: {error}"));
        writer
            .write_image_data(&pixels)
            .unwrap_or_else(|error| unreachable!("PNG data into memory: {error}"));
    }
    out
}

/// The colour at (`u`, `v`) in 0..1 (left→right, top→bottom); `aspect` is width / height.
fn shade(u: f64, v: f64, horizon: f64, shape: Shape, palette: Palette, aspect: f64) -> [u8; 3] {
    // Backdrop: lit from the upper left, darker toward the corners; the table below is a darker,
    // warmer band.
    let light = 1.0 - 0.35 * ((u - 0.3).powi(2) + (v - 0.2).powi(2)).sqrt();
    let mut colour = if v < horizon {
        scale(palette.backdrop, 0.75 + 0.3 * light)
    } else {
        let table = mix(palette.backdrop, [90, 70, 55], 0.55);
        scale(table, 0.55 + 0.35 * light - 0.2 * (v - horizon))
    };
    // The object stands on the table, centred; distances in units of the picture's height.
    let x = (u - 0.5) * aspect;
    let (inside, across, down) = match shape {
        Shape::Disc => {
            let r = 0.24;
            let (cx, cy) = (0.0, horizon - r);
            let d = (x - cx).hypot(v - cy);
            (r - d, (x - cx) / r, (v - cy) / r)
        }
        Shape::Tall => {
            // A vase: the half-width follows a curve over its height.
            let (top, bottom) = (horizon - 0.55, horizon);
            let t = ((v - top) / (bottom - top)).clamp(0.0, 1.0);
            let half = 0.07 + 0.11 * (std::f64::consts::PI * (0.15 + 0.7 * t)).sin();
            let vertical = (v - top).min(bottom - v);
            ((half - x.abs()).min(vertical), x / half, t * 2.0 - 1.0)
        }
        Shape::Block => {
            let (half_w, top, bottom) = (0.28, horizon - 0.3, horizon);
            let edge = (half_w - x.abs()).min((v - top).min(bottom - v));
            (edge, x / half_w, (v - top) / (bottom - top) * 2.0 - 1.0)
        }
    };
    // A soft shadow on the table, to the right of the object.
    if v >= horizon {
        let shadow = ((x - 0.06) / 0.34).powi(2) + ((v - horizon - 0.02) / 0.05).powi(2);
        if shadow < 1.0 {
            colour = scale(colour, 0.65 + 0.35 * shadow);
        }
    }
    // Anti-aliased edge: coverage over about one pixel at 480 px of height.
    let coverage = (inside * 480.0 + 0.5).clamp(0.0, 1.0);
    if coverage > 0.0 {
        // Lit from the upper left: brighter toward it, a rim of the accent colour, a highlight.
        let from_light = ((across + 0.45) / 1.45).clamp(-1.0, 1.0);
        let lit = 0.6 + 0.45 * (1.0 - from_light * from_light) - 0.15 * down;
        let mut body = scale(palette.object, lit.clamp(0.3, 1.25));
        if inside < 0.012 {
            body = mix(body, palette.accent, 0.7);
        }
        let glint = ((across + 0.45).powi(2) + (down + 0.5).powi(2)).sqrt();
        if glint < 0.18 {
            body = mix(body, [255, 255, 255], 0.55 * (1.0 - glint / 0.18));
        }
        colour = mix(colour, body, coverage);
    }
    colour
}

fn scale(colour: [u8; 3], factor: f64) -> [u8; 3] {
    colour.map(|channel| (f64::from(channel) * factor).round().clamp(0.0, 255.0) as u8)
}

fn mix(a: [u8; 3], b: [u8; 3], t: f64) -> [u8; 3] {
    let mut out = [0; 3];
    for (index, slot) in out.iter_mut().enumerate() {
        let value = f64::from(a[index]) * (1.0 - t) + f64::from(b[index]) * t;
        *slot = value.round().clamp(0.0, 255.0) as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const PALETTE: Palette = Palette {
        backdrop: [214, 200, 180],
        object: [180, 140, 50],
        accent: [90, 60, 20],
    };

    fn decode(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let mut reader = png::Decoder::new(bytes).read_info().expect("a PNG");
        let mut buffer = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buffer).expect("a frame");
        buffer.truncate(info.buffer_size());
        (info, buffer)
    }

    #[test]
    fn each_shape_is_a_real_png_of_its_size_with_more_than_a_gradient_in_it() {
        for shape in [Shape::Disc, Shape::Tall, Shape::Block] {
            let bytes = picture(480, 360, shape, PALETTE);
            let (info, pixels) = decode(&bytes);
            assert_eq!((info.width, info.height), (480, 360), "{shape:?}");
            let colours: HashSet<&[u8]> = pixels.chunks(3).collect();
            assert!(colours.len() > 500, "{shape:?}: {} colours", colours.len());
            // The middle of the picture is the object, not the backdrop at the top.
            let at = |x: usize, y: usize| &pixels[(y * 480 + x) * 3..(y * 480 + x) * 3 + 3];
            assert_ne!(at(240, 200), at(240, 10), "{shape:?}");
            assert!(bytes.len() < 200_000, "{shape:?}: {} bytes", bytes.len());
        }
    }
}
