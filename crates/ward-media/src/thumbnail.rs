//! Thumbnails: image bytes and a requested size in, thumbnail bytes out. Pure — no files, no
//! clock — and CPU-bound: run it off the async workers.
//!
//! Sizes follow the spec's [thumbnail rules](https://spec.matrix.org/latest/client-server-api/#thumbnails):
//! `crop` returns the requested size (aspect ratio of the request, cut from the middle);
//! `scale` keeps the source's aspect ratio and fits within the requested box. Nothing is ever
//! upscaled: a source smaller than the request is returned at its own size (crop: the largest
//! cut of the requested aspect that the source holds).
//!
//! The format is read from the bytes, never from the declared content type; only JPEG, PNG,
//! GIF and WebP are decoded (the first frame of an animation). The output is JPEG for a JPEG
//! source, PNG otherwise, with the EXIF orientation applied and all metadata (camera, GPS)
//! dropped. Before decoding, the header's dimensions are checked against
//! [`SOURCE_PIXELS_MAX`] and [`SOURCE_DIMENSION_MAX_PX`], and the decoder runs with an
//! allocation limit, so a small file that claims to be a huge image (a decompression bomb)
//! is refused instead of exhausting memory.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// Largest source image, in pixels (width × height), that is thumbnailed.
pub const SOURCE_PIXELS_MAX: u64 = 32_000_000;
/// Largest source width or height.
pub const SOURCE_DIMENSION_MAX_PX: u32 = 16_384;
/// Most memory the decoder may allocate for one image.
pub const DECODE_ALLOC_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// JPEG thumbnail quality (0–100).
pub const JPEG_QUALITY: u8 = 80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Crop,
    Scale,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Crop => "crop",
            Method::Scale => "scale",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    /// `image/jpeg` or `image/png`.
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThumbnailError {
    #[error("this kind of file cannot be thumbnailed")]
    Unsupported,
    #[error("the image is too large to thumbnail")]
    TooLarge,
    #[error("the image cannot be decoded: {0}")]
    Invalid(String),
}

/// Makes a thumbnail of `source` for a request of `width` × `height` (both at least 1).
pub fn thumbnail(
    source: &[u8],
    width: u32,
    height: u32,
    method: Method,
) -> Result<Thumbnail, ThumbnailError> {
    if width == 0 || height == 0 {
        return Err(ThumbnailError::Invalid("the requested size is empty".into()));
    }
    let reader = || {
        let mut reader = ImageReader::new(Cursor::new(source))
            .with_guessed_format()
            .map_err(|e| ThumbnailError::Invalid(e.to_string()))?;
        let mut limits = Limits::default();
        limits.max_image_width = Some(SOURCE_DIMENSION_MAX_PX);
        limits.max_image_height = Some(SOURCE_DIMENSION_MAX_PX);
        limits.max_alloc = Some(DECODE_ALLOC_MAX_BYTES);
        reader.limits(limits);
        Ok::<_, ThumbnailError>(reader)
    };
    let format = reader()?.format().ok_or(ThumbnailError::Unsupported)?;
    if ![ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Gif, ImageFormat::WebP].contains(&format) {
        return Err(ThumbnailError::Unsupported);
    }
    let (w, h) = reader()?.into_dimensions().map_err(decode_error)?;
    if w == 0 || h == 0 {
        return Err(ThumbnailError::Invalid("the image is empty".into()));
    }
    if u64::from(w) * u64::from(h) > SOURCE_PIXELS_MAX {
        return Err(ThumbnailError::TooLarge);
    }
    let mut decoder = reader()?.into_decoder().map_err(decode_error)?;
    let orientation = decoder.orientation().map_err(decode_error)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);

    let source_size = (image.width(), image.height());
    let (tw, th) = target_size(source_size, (width, height), method);
    let resized = match method {
        Method::Scale if (tw, th) == source_size => image,
        Method::Scale => image.thumbnail_exact(tw, th),
        Method::Crop => {
            let (x, y, cw, ch) = crop_region(source_size, (tw, th));
            let cut = if (cw, ch) == source_size { image } else { image.crop_imm(x, y, cw, ch) };
            if (cw, ch) == (tw, th) { cut } else { cut.thumbnail_exact(tw, th) }
        }
    };
    encode(resized, format == ImageFormat::Jpeg)
}

fn decode_error(e: image::ImageError) -> ThumbnailError {
    match e {
        image::ImageError::Limits(_) => ThumbnailError::TooLarge,
        image::ImageError::Unsupported(_) => ThumbnailError::Unsupported,
        other => ThumbnailError::Invalid(other.to_string()),
    }
}

fn encode(image: DynamicImage, jpeg: bool) -> Result<Thumbnail, ThumbnailError> {
    let (width, height) = (image.width(), image.height());
    let mut bytes = Vec::new();
    let internal =
        |e: image::ImageError| ThumbnailError::Invalid(format!("cannot encode the thumbnail: {e}"));
    let content_type = if jpeg {
        // JPEG has no alpha channel.
        JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
            .encode_image(&DynamicImage::ImageRgb8(image.to_rgb8()))
            .map_err(internal)?;
        "image/jpeg"
    } else {
        let image = if image.color().has_alpha() {
            DynamicImage::ImageRgba8(image.to_rgba8())
        } else {
            DynamicImage::ImageRgb8(image.to_rgb8())
        };
        image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).map_err(internal)?;
        "image/png"
    };
    Ok(Thumbnail { bytes, content_type, width, height })
}

/// The size of the thumbnail for a source of `source` pixels and a request of `requested`.
pub fn target_size(source: (u32, u32), requested: (u32, u32), method: Method) -> (u32, u32) {
    let (sw, sh) = (u64::from(source.0.max(1)), u64::from(source.1.max(1)));
    let (w, h) = (u64::from(requested.0.max(1)), u64::from(requested.1.max(1)));
    let size = |a: u64, b: u64| (clamp(a), clamp(b));
    match method {
        Method::Scale => {
            if sw <= w && sh <= h {
                size(sw, sh)
            } else if sw * h >= sh * w {
                // Relatively wider than the box: the width decides.
                size(w, div_round(sh * w, sw))
            } else {
                size(div_round(sw * h, sh), h)
            }
        }
        Method::Crop => {
            if sw >= w && sh >= h {
                size(w, h)
            } else if sw * h <= sh * w {
                // The source's width is the tighter bound: shrink the request to it.
                size(sw, (h * sw / w).min(sh))
            } else {
                size((w * sh / h).min(sw), sh)
            }
        }
    }
}

/// The middle part of the source with the aspect ratio of `target`, as (x, y, width, height).
fn crop_region(source: (u32, u32), target: (u32, u32)) -> (u32, u32, u32, u32) {
    let (sw, sh) = (u64::from(source.0), u64::from(source.1));
    let (tw, th) = (u64::from(target.0.max(1)), u64::from(target.1.max(1)));
    let (cw, ch) =
        if sw * th > sh * tw { (div_round(sh * tw, th), sh) } else { (sw, div_round(sw * th, tw)) };
    let (cw, ch) = (cw.clamp(1, sw), ch.clamp(1, sh));
    (offset((sw - cw) / 2), offset((sh - ch) / 2), clamp(cw), clamp(ch))
}

/// Offsets lie within the source, whose size is `u32`.
fn offset(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn div_round(a: u64, b: u64) -> u64 {
    (a + b / 2) / b.max(1)
}

/// Sizes here are at most the source's or the request's, which are `u32`; at least 1.
fn clamp(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb, Rgba};

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = ImageBuffer::from_fn(w, h, |x, y| Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255]));
        let mut out = Vec::new();
        DynamicImage::ImageRgba8(img).write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
        out
    }

    fn encoded(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
        let img = ImageBuffer::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 64]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    fn decoded_size(bytes: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory(bytes).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn crop_gives_the_requested_size() {
        let t = thumbnail(&png(800, 600), 96, 96, Method::Crop).unwrap();
        assert_eq!((t.width, t.height, t.content_type), (96, 96, "image/png"));
        assert_eq!(decoded_size(&t.bytes), (96, 96));
    }

    #[test]
    fn scale_fits_within_and_keeps_the_aspect() {
        let t = thumbnail(&encoded(1000, 500, ImageFormat::Jpeg), 320, 240, Method::Scale).unwrap();
        assert_eq!((t.width, t.height, t.content_type), (320, 160, "image/jpeg"));
        assert_eq!(decoded_size(&t.bytes), (320, 160));
    }

    #[test]
    fn gif_and_webp_sources_give_png() {
        for format in [ImageFormat::Gif, ImageFormat::WebP] {
            let t = thumbnail(&encoded(200, 100, format), 32, 32, Method::Crop).unwrap();
            assert_eq!((t.width, t.height, t.content_type), (32, 32, "image/png"), "{format:?}");
        }
    }

    #[test]
    fn never_upscales() {
        let t = thumbnail(&png(50, 40), 320, 240, Method::Scale).unwrap();
        assert_eq!((t.width, t.height), (50, 40));
        let t = thumbnail(&png(50, 40), 96, 96, Method::Crop).unwrap();
        assert_eq!((t.width, t.height), (40, 40));
    }

    #[test]
    fn target_sizes() {
        use Method::*;
        assert_eq!(target_size((800, 600), (320, 240), Scale), (320, 240));
        assert_eq!(target_size((600, 800), (320, 240), Scale), (180, 240));
        assert_eq!(target_size((1000, 10), (320, 240), Scale), (320, 3));
        assert_eq!(target_size((100_000, 1), (32, 32), Scale), (32, 1));
        assert_eq!(target_size((10, 10), (320, 240), Scale), (10, 10));
        assert_eq!(target_size((800, 600), (32, 32), Crop), (32, 32));
        assert_eq!(target_size((800, 600), (640, 800), Crop), (480, 600));
        assert_eq!(target_size((20, 600), (96, 96), Crop), (20, 20));
        assert_eq!(crop_region((800, 600), (96, 96)), (100, 0, 600, 600));
        assert_eq!(crop_region((600, 800), (320, 240)), (0, 175, 600, 450));
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        assert_eq!(thumbnail(b"%PDF-1.7 ...", 32, 32, Method::Crop), Err(ThumbnailError::Unsupported));
        assert_eq!(thumbnail(b"", 32, 32, Method::Crop), Err(ThumbnailError::Unsupported));
        let svg = b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>";
        assert_eq!(thumbnail(svg, 32, 32, Method::Crop), Err(ThumbnailError::Unsupported));
        // A PNG cut short.
        let truncated = &png(100, 100)[..60];
        assert!(matches!(thumbnail(truncated, 32, 32, Method::Crop), Err(ThumbnailError::Invalid(_))));
        assert!(matches!(thumbnail(&png(10, 10), 0, 32, Method::Crop), Err(ThumbnailError::Invalid(_))));
    }

    #[test]
    fn refuses_decompression_bombs() {
        // A valid PNG header claiming 60,000 × 60,000 pixels, with almost no data behind it.
        assert_eq!(thumbnail(&claiming(60_000, 60_000), 32, 32, Method::Crop), Err(ThumbnailError::TooLarge));
        // Within each dimension, but too many pixels altogether.
        assert_eq!(thumbnail(&claiming(8_000, 8_000), 32, 32, Method::Crop), Err(ThumbnailError::TooLarge));
    }

    /// A small PNG whose header says it is `w` × `h` pixels.
    fn claiming(w: u32, h: u32) -> Vec<u8> {
        let mut bytes = png(1, 1);
        // Signature (8), IHDR length (4), "IHDR" (4), width, height, … then the chunk's CRC.
        bytes[16..20].copy_from_slice(&w.to_be_bytes());
        bytes[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
