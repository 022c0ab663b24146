//! Between GStreamer buffers (rows padded to GStreamer's strides) and packed [`FrameBuf`]s.
//! When the strides already match (the usual case: widths that are multiples of 4) the planes
//! are copied in one piece.

use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use prism_frame::{FrameBuf, PixelFormat};

fn gst_format(format: PixelFormat) -> gst_video::VideoFormat {
    match format {
        PixelFormat::Rgba => gst_video::VideoFormat::Rgba,
        PixelFormat::I420 => gst_video::VideoFormat::I420,
        PixelFormat::Gray8 => gst_video::VideoFormat::Gray8,
    }
}

/// The Prism pixel format of a GStreamer video format, if Prism has one.
pub fn pixel_format(format: gst_video::VideoFormat) -> Option<PixelFormat> {
    match format {
        gst_video::VideoFormat::Rgba => Some(PixelFormat::Rgba),
        gst_video::VideoFormat::I420 => Some(PixelFormat::I420),
        gst_video::VideoFormat::Gray8 => Some(PixelFormat::Gray8),
        _ => None,
    }
}

/// GStreamer's description of raw frames of this format.
pub fn video_info(
    format: PixelFormat,
    width: u32,
    height: u32,
    fps: (i32, i32),
) -> Result<gst_video::VideoInfo, String> {
    gst_video::VideoInfo::builder(gst_format(format), width, height)
        .fps(gst::Fraction::new(fps.0, fps.1))
        .build()
        .map_err(|e| format!("cannot describe {width}x{height} {format}: {e}"))
}

/// Copies plane rows between two layouts.
fn copy_plane(
    src: &[u8],
    src_stride: usize,
    dst: &mut [u8],
    dst_stride: usize,
    row: usize,
    rows: usize,
) {
    if src_stride == dst_stride && src.len() >= row * rows && dst.len() >= row * rows {
        let n = (src_stride * rows.saturating_sub(1) + row)
            .min(src.len())
            .min(dst.len());
        dst[..n].copy_from_slice(&src[..n]);
        return;
    }
    for r in 0..rows {
        dst[r * dst_stride..r * dst_stride + row]
            .copy_from_slice(&src[r * src_stride..r * src_stride + row]);
    }
}

/// A packed frame from a decoded buffer.
pub fn buffer_to_frame(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    format: PixelFormat,
) -> Result<FrameBuf, String> {
    if info.format() != gst_format(format) {
        return Err(format!(
            "expected {} frames, got {:?}",
            format.gst_name(),
            info.format()
        ));
    }
    let vframe = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info)
        .map_err(|e| format!("cannot map a decoded frame: {e}"))?;
    let mut frame = FrameBuf::zeroed(format, info.width(), info.height());
    for (i, plane) in frame.planes().into_iter().enumerate() {
        let src = vframe.plane_data(i as u32).map_err(|e| e.to_string())?;
        let src_stride = vframe.plane_stride()[i] as usize;
        let dst = frame.plane_mut(i);
        let row = (plane.width * plane.bytes_per_sample) as usize;
        copy_plane(
            src,
            src_stride,
            dst,
            plane.stride as usize,
            row,
            plane.height as usize,
        );
    }
    Ok(frame)
}

fn layout_matches(frame: &FrameBuf, info: &gst_video::VideoInfo) -> bool {
    frame
        .planes()
        .iter()
        .enumerate()
        .all(|(i, p)| info.stride()[i] as u32 == p.stride && info.offset()[i] as u32 == p.offset)
        && info.size() == frame.data().len()
}

/// A GStreamer buffer holding a packed frame, taking its memory without a copy when the
/// packed layout is GStreamer's (widths that are multiples of 8).
pub fn frame_into_buffer(
    frame: FrameBuf,
    info: &gst_video::VideoInfo,
) -> Result<gst::Buffer, String> {
    if info.width() == frame.width()
        && info.height() == frame.height()
        && layout_matches(&frame, info)
    {
        return Ok(gst::Buffer::from_mut_slice(frame.into_data()));
    }
    frame_to_buffer(&frame, info)
}

/// A GStreamer buffer (GStreamer's strides) holding a packed frame.
pub fn frame_to_buffer(
    frame: &FrameBuf,
    info: &gst_video::VideoInfo,
) -> Result<gst::Buffer, String> {
    if info.width() != frame.width() || info.height() != frame.height() {
        return Err(format!(
            "frame size changed from {}x{} to {}x{}",
            info.width(),
            info.height(),
            frame.width(),
            frame.height()
        ));
    }
    let packed = frame.planes();
    if layout_matches(frame, info) {
        return Ok(gst::Buffer::from_slice(frame.data().to_vec()));
    }
    let mut buffer = gst::Buffer::with_size(info.size()).map_err(|e| e.to_string())?;
    {
        let b = buffer
            .get_mut()
            .expect("invariant: a new buffer is writable");
        let mut vframe = gst_video::VideoFrameRef::from_buffer_ref_writable(b, info)
            .map_err(|e| format!("cannot map an output frame: {e}"))?;
        for (i, plane) in packed.iter().enumerate() {
            let dst_stride = vframe.plane_stride()[i] as usize;
            let dst = vframe.plane_data_mut(i as u32).map_err(|e| e.to_string())?;
            let row = (plane.width * plane.bytes_per_sample) as usize;
            copy_plane(
                frame.plane(i),
                plane.stride as usize,
                dst,
                dst_stride,
                row,
                plane.height as usize,
            );
        }
    }
    Ok(buffer)
}

/// Converts frames between pixel formats (GStreamer's video converter, cached per geometry).
#[derive(Default)]
pub struct FrameConverter {
    cached: Option<(
        gst_video::VideoInfo,
        gst_video::VideoInfo,
        gst_video::VideoConverter,
    )>,
}

impl std::fmt::Debug for FrameConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameConverter").finish_non_exhaustive()
    }
}

impl FrameConverter {
    /// `frame` in `format` (moved through unchanged when it already is).
    pub fn convert(&mut self, frame: FrameBuf, format: PixelFormat) -> Result<FrameBuf, String> {
        if frame.format() == format {
            return Ok(frame);
        }
        let (w, h) = (frame.width(), frame.height());
        let in_info = video_info(frame.format(), w, h, (0, 1))?;
        let out_info = video_info(format, w, h, (0, 1))?;
        let reuse = matches!(&self.cached, Some((i, o, _)) if *i == in_info && *o == out_info);
        if !reuse {
            let converter = gst_video::VideoConverter::new(&in_info, &out_info, None)
                .map_err(|e| format!("cannot convert {} to {format}: {e}", frame.format()))?;
            self.cached = Some((in_info.clone(), out_info.clone(), converter));
        }
        let (_, _, converter) = self.cached.as_mut().expect("invariant: just cached");
        let input = frame_into_buffer(frame, &in_info)?;
        let input = gst_video::VideoFrame::from_buffer_readable(input, &in_info)
            .map_err(|_| "cannot map the frame to convert".to_string())?;
        let output = gst::Buffer::with_size(out_info.size()).map_err(|e| e.to_string())?;
        let mut output = gst_video::VideoFrame::from_buffer_writable(output, &out_info)
            .map_err(|_| "cannot map the converted frame".to_string())?;
        converter.frame(&input, &mut output);
        buffer_to_frame(output.buffer(), &out_info, format)
    }
}

/// The next frame of a raw-video appsink and its running time (its timestamp in the sample's
/// segment, so a seek or a segment not starting at 0 keeps frames in time): `Ok(None)` for a
/// sample without one (or that cannot be read, logged), an error when the caps are not a
/// format Prism uses.
pub fn pull_frame(
    sink: &gstreamer_app::AppSink,
) -> Result<Option<(FrameBuf, Option<gst::ClockTime>)>, gst::FlowError> {
    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
        return Ok(None);
    };
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|_| gst::FlowError::NotNegotiated)?;
    let format = pixel_format(info.format()).ok_or(gst::FlowError::NotNegotiated)?;
    match buffer_to_frame(buffer, &info, format) {
        Ok(buf) => {
            let running = buffer.pts().map(|pts| {
                sample
                    .segment()
                    .and_then(|s| s.downcast_ref::<gst::ClockTime>())
                    .and_then(|s| s.to_running_time(pts))
                    .unwrap_or(pts)
            });
            Ok(Some((buf, running)))
        }
        Err(e) => {
            tracing::warn!("dropping an unreadable frame: {e}");
            Ok(None)
        }
    }
}

/// `frame` scaled to `width` x `height` (same pixel format), with GStreamer's scaler.
pub fn scale_frame(frame: &FrameBuf, width: u32, height: u32) -> Result<FrameBuf, String> {
    let format = frame.format();
    let in_info = video_info(format, frame.width(), frame.height(), (0, 1))?;
    let out_info = video_info(format, width, height, (0, 1))?;
    let converter = gst_video::VideoConverter::new(&in_info, &out_info, None)
        .map_err(|e| format!("cannot scale to {width}x{height}: {e}"))?;
    let input = frame_to_buffer(frame, &in_info)?;
    let input = gst_video::VideoFrame::from_buffer_readable(input, &in_info)
        .map_err(|_| "cannot map the frame to scale".to_string())?;
    let output = gst::Buffer::with_size(out_info.size()).map_err(|e| e.to_string())?;
    let mut output = gst_video::VideoFrame::from_buffer_writable(output, &out_info)
        .map_err(|_| "cannot map the scaled frame".to_string())?;
    converter.frame(&input, &mut output);
    buffer_to_frame(output.buffer(), &out_info, format)
}

#[cfg(test)]
mod tests {
    use prism_frame::{Color, Rect};

    use super::*;

    #[test]
    fn round_trip_through_padded_strides() {
        gst::init().unwrap();
        // Width 6: GStreamer pads I420 luma rows to 8 bytes and chroma rows to 4.
        let mut frame = FrameBuf::zeroed(PixelFormat::I420, 6, 4);
        frame.fill_rect(Rect::new(2, 0, 4, 2), Color::rgb(250, 10, 10));
        let info = video_info(PixelFormat::I420, 6, 4, (30, 1)).unwrap();
        assert_eq!(info.stride()[0], 8);
        let buffer = frame_to_buffer(&frame, &info).unwrap();
        let back = buffer_to_frame(buffer.as_ref(), &info, PixelFormat::I420).unwrap();
        assert_eq!(back, frame);
    }

    #[test]
    fn scales_keeping_colour() {
        gst::init().unwrap();
        let frame = FrameBuf::filled(PixelFormat::Rgba, 64, 48, Color::rgb(10, 200, 30));
        let small = scale_frame(&frame, 32, 24).unwrap();
        assert_eq!((small.width(), small.height()), (32, 24));
        assert_eq!(&small.pixel(16, 12).unwrap()[..3], &[10, 200, 30]);
    }

    #[test]
    fn converts_rgba_to_i420_and_back() {
        gst::init().unwrap();
        let frame = FrameBuf::filled(PixelFormat::Rgba, 16, 8, Color::rgb(200, 40, 40));
        let mut conv = FrameConverter::default();
        let i420 = conv.convert(frame, PixelFormat::I420).unwrap();
        assert_eq!(i420.format(), PixelFormat::I420);
        let rgba = conv.convert(i420, PixelFormat::Rgba).unwrap();
        let px = rgba.pixel(3, 3).unwrap();
        assert!((px[0] as i32 - 200).abs() < 8, "{px:?}");
        assert!((px[1] as i32 - 40).abs() < 8, "{px:?}");
    }
}
