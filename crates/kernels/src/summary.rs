//! Summary kernels: TF's `tensorflow.Summary` protobuf (summary.proto) for scalars, histograms
//! and images, as TF's `ScalarSummary`, `HistogramSummary`, `ImageSummary` and `MergeSummary`
//! kernels write it: TF's default histogram buckets, TF's float-to-uint8 image scaling, PNG
//! pixels. The bytes are what TensorBoard reads from an event file.

use crate::{KResult, KernelError};
use ndarray::ArrayViewD;
use prost::Message;

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` (the fields of its `value` oneof as options: the same bytes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    #[prost(message, optional, tag = "4")]
    pub image: Option<Image>,
    #[prost(message, optional, tag = "5")]
    pub histo: Option<HistogramProto>,
}

/// `tensorflow.Summary.Image`: a PNG.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    #[prost(int32, tag = "1")]
    pub height: i32,
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// 1 grayscale, 3 RGB, 4 RGBA.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

/// `tensorflow.HistogramProto`: bucket `i` counts values in `(bucket_limit[i-1], bucket_limit[i]]`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramProto {
    #[prost(double, tag = "1")]
    pub min: f64,
    #[prost(double, tag = "2")]
    pub max: f64,
    #[prost(double, tag = "3")]
    pub num: f64,
    #[prost(double, tag = "4")]
    pub sum: f64,
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}

/// A serialized summary of one scalar.
pub fn scalar(tag: &str, value: f64) -> Vec<u8> {
    let v = SummaryValue { tag: tag.into(), simple_value: Some(value as f32), ..Default::default() };
    Summary { value: vec![v] }.encode_to_vec()
}

/// TF's default bucket limits: ±1e-12·1.1^k up to 1e20, then ±f64::MAX, and 0.
fn default_limits() -> &'static [f64] {
    static LIMITS: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    LIMITS.get_or_init(|| {
        let mut pos = Vec::new();
        let mut v = 1e-12;
        while v < 1e20 {
            pos.push(v);
            v *= 1.1;
        }
        pos.push(f64::MAX);
        let mut all: Vec<f64> = pos.iter().rev().map(|x| -x).collect();
        all.push(0.0);
        all.extend(pos);
        all
    })
}

/// A serialized histogram of `values` over TF's default buckets, with runs of empty buckets
/// merged into one (as TF writes them). NaN or infinity is an error, as in TF.
pub fn histogram(tag: &str, values: impl Iterator<Item = f64>) -> KResult<Vec<u8>> {
    let limits = default_limits();
    let mut counts = vec![0.0; limits.len()];
    let mut h = HistogramProto { min: f64::MAX, max: -f64::MAX, ..Default::default() };
    for x in values {
        if !x.is_finite() {
            return Err(KernelError(format!("Nan in summary histogram for: {tag}")));
        }
        // The first limit above x (TF's upper_bound).
        counts[limits.partition_point(|&l| l <= x)] += 1.0;
        h.min = h.min.min(x);
        h.max = h.max.max(x);
        h.num += 1.0;
        h.sum += x;
        h.sum_squares += x * x;
    }
    let mut i = 0;
    while i < counts.len() {
        let (mut end, count) = (limits[i], counts[i]);
        let mut j = i + 1;
        if count == 0.0 {
            while j < counts.len() && counts[j] == 0.0 {
                end = limits[j];
                j += 1;
            }
        }
        h.bucket_limit.push(end);
        h.bucket.push(count);
        i = j;
    }
    let v = SummaryValue { tag: tag.into(), histo: Some(h), ..Default::default() };
    Ok(Summary { value: vec![v] }.encode_to_vec())
}

/// Serialized PNG summaries of the first `max_images` images of a `[batch, height, width,
/// channels]` tensor (1, 3 or 4 channels), tagged `tag/image` for one image and `tag/image/i`
/// otherwise. Floats are scaled per image as TF does: by 255/max when none is negative, else by
/// 127/max|x| around 128, then truncated; non-finite pixels are red.
pub fn images(tag: &str, x: &ArrayViewD<f32>, max_images: usize) -> KResult<Vec<u8>> {
    let &[batch, h, w, c] = x.shape() else {
        return Err(KernelError(format!("images must be 4-D [batch, height, width, channels], got {:?}", x.shape())));
    };
    let color = match c {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        _ => return Err(KernelError(format!("images need 1, 3 or 4 channels, got {c}"))),
    };
    let n = batch.min(max_images);
    let mut value = Vec::with_capacity(n);
    for i in 0..n {
        let img = x.index_axis(ndarray::Axis(0), i);
        let finite = img.iter().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        const ZERO: f32 = 1e-6;
        let (scale, offset) = if lo < 0.0 {
            let m = lo.abs().max(hi.abs());
            (if m < ZERO { 0.0 } else { 127.0 / m }, 128.0)
        } else {
            (if hi < ZERO { 0.0 } else { 255.0 / hi }, 0.0)
        };
        let bad: [u8; 4] = [255, 0, 0, 255];
        let mut pixels = Vec::with_capacity(h * w * c);
        for (k, &v) in img.iter().enumerate() {
            pixels.push(if v.is_finite() { (v * scale + offset) as u8 } else { bad[k % c] });
        }
        let mut encoded = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut encoded, w as u32, h as u32);
            enc.set_color(color);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().map_err(|e| KernelError(format!("PNG: {e}")))?;
            writer.write_image_data(&pixels).map_err(|e| KernelError(format!("PNG: {e}")))?;
        }
        let image = Image { height: h as i32, width: w as i32, colorspace: c as i32, encoded_image_string: encoded };
        let tag = if max_images == 1 { format!("{tag}/image") } else { format!("{tag}/image/{i}") };
        value.push(SummaryValue { tag, image: Some(image), ..Default::default() });
    }
    Ok(Summary { value }.encode_to_vec())
}

/// One summary holding the values of all of `summaries`; a tag seen twice is an error, as in TF.
pub fn merge<'a>(summaries: impl Iterator<Item = &'a [u8]>) -> KResult<Vec<u8>> {
    let mut all = Summary::default();
    let mut tags = std::collections::HashSet::new();
    for bytes in summaries {
        let s = Summary::decode(bytes)
            .map_err(|e| KernelError(format!("could not parse one of the summary inputs: {e}")))?;
        for v in s.value {
            if !tags.insert(v.tag.clone()) {
                return Err(KernelError(format!("Duplicate tag {} found in summary inputs", v.tag)));
            }
            all.value.push(v);
        }
    }
    Ok(all.encode_to_vec())
}
