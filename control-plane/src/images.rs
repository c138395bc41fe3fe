//! The one image processor: a photo people upload (a property's, later a
//! post's) is recognised by its content (JPEG, PNG or WebP, whatever its
//! name says), decoded within limits, turned upright by its EXIF
//! orientation, downsized to print resolution, and re-encoded as a new
//! JPEG with a thumbnail beside it.
//!
//! Re-encoding from pixels is what strips metadata: nothing of the
//! original file (EXIF with its camera serial numbers and GPS position,
//! XMP, IPTC, ICC comments) is copied into what is stored, so nothing of
//! it can be published. Decoding runs on the blocking pool, a few at a
//! time, with the decoder's memory and size limits set, so a hostile file
//! (a decompression bomb, a 100,000-pixel-wide PNG) is refused rather than
//! exhausting the server.

use std::io::Cursor;
use std::sync::Arc;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// The largest photo accepted, in bytes.
pub const MAX_PHOTO_BYTES: usize = 20 * 1024 * 1024;
/// The largest photo accepted, in pixels (width times height): 60
/// megapixels is more than any camera a realtor uses.
const MAX_PIXELS: u64 = 60_000_000;
/// The longest side of any photo accepted.
const MAX_SIDE: u32 = 12_000;
/// The longest side of a stored photo: 2,400 px is 8 inches at 300 dpi,
/// the widest a photo is printed on a flyer.
pub const STORED_SIDE: u32 = 2_400;
/// The largest logo accepted.
pub const MAX_LOGO_BYTES: usize = 5 * 1024 * 1024;
/// The longest side of a stored logo: 2 inches at 400 dpi.
pub const LOGO_SIDE: u32 = 800;
/// The longest side of a thumbnail.
pub const THUMB_SIDE: u32 = 480;
/// The smallest side a photo may have: smaller is not a listing photo.
const MIN_SIDE: u32 = 200;
/// Photos decoded at once on this replica.
const SLOTS: usize = 2;

/// A photo as stored: JPEG bytes without metadata.
#[derive(Debug, Clone)]
pub struct ProcessedPhoto {
    pub jpeg: Vec<u8>,
    pub thumbnail: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Decodes photos off the async workers, a few at a time.
#[derive(Debug, Clone)]
pub struct ImageProcessor {
    slots: Arc<Semaphore>,
}

impl Default for ImageProcessor {
    fn default() -> Self {
        Self { slots: Arc::new(Semaphore::new(SLOTS)) }
    }
}

impl ImageProcessor {
    /// Checks and re-encodes an uploaded photo; `field` names it in errors.
    pub async fn photo(&self, bytes: Vec<u8>, field: &'static str) -> Result<ProcessedPhoto> {
        if bytes.len() > MAX_PHOTO_BYTES {
            return Err(Error::PayloadTooLarge { limit: MAX_PHOTO_BYTES });
        }
        self.blocking(move || process(&bytes, field)).await
    }

    /// Checks an uploaded logo and re-encodes it as a PNG (transparency
    /// kept, metadata dropped) no larger than [`LOGO_SIDE`].
    pub async fn logo(&self, bytes: Vec<u8>, field: &'static str) -> Result<Vec<u8>> {
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(Error::PayloadTooLarge { limit: MAX_LOGO_BYTES });
        }
        self.blocking(move || {
            let image = fit(&decode(&bytes, field)?, LOGO_SIDE);
            let mut out = Cursor::new(Vec::new());
            image
                .to_rgba8()
                .write_to(&mut out, ImageFormat::Png)
                .map_err(|e| Error::Internal(anyhow::anyhow!("encoding a logo: {e}")))?;
            Ok(out.into_inner())
        })
        .await
    }

    /// Runs image work (decoding, resampling, laying out a PDF) off the
    /// async workers, a few at a time on this replica.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _slot =
            self.slots.acquire().await.map_err(|_| Error::Unavailable("the server is stopping".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("an image task failed: {e}")))?
    }
}

fn process(bytes: &[u8], field: &'static str) -> Result<ProcessedPhoto> {
    let image = decode(bytes, field)?;
    if image.width().min(image.height()) < MIN_SIDE {
        return Err(Error::invalid(
            field,
            format!(
                "is {}×{} pixels; a listing photo needs at least {MIN_SIDE} pixels a side",
                image.width(),
                image.height()
            ),
        ));
    }
    let stored = flatten(&fit(&image, STORED_SIDE));
    let thumb = flatten(&fit(&image, THUMB_SIDE));
    Ok(ProcessedPhoto {
        width: stored.width(),
        height: stored.height(),
        jpeg: jpeg(&stored, 85)?,
        thumbnail: jpeg(&thumb, 80)?,
    })
}

/// An uploaded JPEG, PNG or WebP, checked by content and within the pixel
/// limits, turned upright; `field` names it in errors.
fn decode(bytes: &[u8], field: &'static str) -> Result<DynamicImage> {
    let format = image::guess_format(bytes).ok();
    if !matches!(format, Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) {
        return Err(Error::UnsupportedMediaType(format!(
            "{field} is not a JPEG, PNG or WebP image (its content was checked, not its name)"
        )));
    }
    let unreadable = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => Error::invalid(
            field,
            format!(
                "is too large to process: at most {MAX_SIDE} pixels a side and {MAX_PIXELS} pixels in all"
            ),
        ),
        other => Error::invalid(field, format!("could not be read as an image: {other}")),
    };
    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(format.unwrap_or(ImageFormat::Jpeg));
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    // RGBA at 8 bits, plus the decoder's own buffers.
    limits.max_alloc = Some(MAX_PIXELS * 4 + 64 * 1024 * 1024);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Error::invalid(
            field,
            format!("has {width}×{height} pixels; at most {MAX_PIXELS} in all"),
        ));
    }
    let orientation = decoder.orientation().map_err(unreadable)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// The image scaled down (never up) so its longest side is at most `side`.
fn fit(image: &DynamicImage, side: u32) -> DynamicImage {
    if image.width().max(image.height()) <= side {
        image.clone()
    } else {
        image.resize(side, side, image::imageops::FilterType::CatmullRom)
    }
}

/// RGB pixels, transparent parts on white (JPEG has no transparency).
fn flatten(image: &DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = u16::from(p[3]);
        let over = |c: u8| -> u8 {
            // c·a + 255·(255 − a), over 255, rounded; at most 255.
            u8::try_from((u16::from(c) * a + 255 * (255 - a) + 127) / 255).unwrap_or(u8::MAX)
        };
        image::Rgb([over(p[0]), over(p[1]), over(p[2])])
    })
}

fn jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .map_err(|e| Error::Internal(anyhow::anyhow!("encoding a JPEG: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([u8::try_from(x % 256).unwrap(), u8::try_from(y % 256).unwrap(), 128])
        })
    }

    #[test]
    fn large_photos_are_downsized_and_thumbnailed() {
        let original = jpeg(&sample(2500, 1250), 90).unwrap();
        let out = process(&original, "file").unwrap();
        assert_eq!((out.width, out.height), (2400, 1200));
        let thumb = image::load_from_memory(&out.thumbnail).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (480, 240));
    }

    #[test]
    fn transparent_png_becomes_a_jpeg_on_white() {
        let mut png = Vec::new();
        let rgba = image::RgbaImage::from_pixel(300, 300, image::Rgba([0, 0, 0, 0]));
        DynamicImage::ImageRgba8(rgba).write_to(&mut Cursor::new(&mut png), ImageFormat::Png).unwrap();
        let out = process(&png, "file").unwrap();
        let back = image::load_from_memory(&out.jpeg).unwrap().to_rgb8();
        assert!(back.get_pixel(150, 150).0.iter().all(|c| *c > 245), "white, not black");
    }

    #[test]
    fn what_is_not_a_photo_is_refused_by_content() {
        let err = process(b"%PDF-1.7 not an image", "file").unwrap_err();
        assert!(matches!(err, Error::UnsupportedMediaType(_)), "{err:?}");
        let tiny = jpeg(&sample(100, 80), 90).unwrap();
        assert!(process(&tiny, "file").unwrap_err().to_string().contains("at least 200"));
        let broken = b"\xFF\xD8\xFF\xE0 this is no JPEG after its first bytes";
        assert!(matches!(process(broken, "file"), Err(Error::Invalid { .. })));
    }
}
