//! GStreamer glue: files in, frames out, and back.
//!
//! [`Decoder`] reads any image or video GStreamer can decode (`filesrc ! decodebin !
//! videoconvert ! appsink`) as packed [`FrameBuf`]s in the pixel format a filter asked for, so
//! nothing converts twice. [`Encoder`] writes frames to a PNG/JPEG image or a WebM/MKV/MP4
//! video. Live WebRTC ingest and egress build on the same frame conversion.
//!
//! Not here: filters (runtime/), the WebRTC session (webrtc/).

mod convert;
pub mod rtp;

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use prism_frame::{FrameBuf, PixelFormat};

pub use convert::{
    FrameConverter, buffer_to_frame, frame_into_buffer, frame_to_buffer, pixel_format, pull_frame,
    scale_frame, video_info,
};

/// How long to wait for the next decoded frame before calling the pipeline stuck.
const PULL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why media could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// GStreamer could not start.
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),
    /// The input could not be opened or decoded.
    #[error("cannot decode {path}: {message}")]
    Decode {
        /// The input file.
        path: String,
        /// GStreamer's words.
        message: String,
    },
    /// The output could not be written.
    #[error("cannot write {path}: {message}")]
    Encode {
        /// The output file.
        path: String,
        /// The cause.
        message: String,
    },
    /// A GStreamer element is missing or refused its configuration.
    #[error("GStreamer element {element}: {message}")]
    Element {
        /// The element (factory or branch) name.
        element: String,
        /// GStreamer's words.
        message: String,
    },
    /// The output file type is not one Prism writes.
    #[error("unsupported output {path}: use .png, .jpg, .webm, .mkv or .mp4")]
    UnsupportedOutput {
        /// The output file.
        path: String,
    },
}

/// Initialises GStreamer once per process.
pub fn init() -> Result<(), MediaError> {
    gst::init().map_err(|e| MediaError::Init(e.to_string()))
}

/// The first error message on a pipeline's bus, if any.
fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(err) = msg.view() {
            let debug = err.debug().map(|d| format!(" ({d})")).unwrap_or_default();
            return Some(format!("{}{debug}", err.error()));
        }
    }
    None
}

/// A decoded frame with its timestamp.
#[derive(Debug)]
pub struct DecodedFrame {
    /// The pixels, packed.
    pub buf: FrameBuf,
    /// Presentation timestamp, microseconds.
    pub pts_us: u64,
}

/// Decodes an image or video file into frames of one pixel format.
pub struct Decoder {
    path: PathBuf,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    format: PixelFormat,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("path", &self.path)
            .field("format", &self.format)
            .finish()
    }
}

impl Decoder {
    /// Opens `path` and starts decoding to `format`.
    pub fn open(path: &Path, format: PixelFormat) -> Result<Self, MediaError> {
        init()?;
        let fail = |message: String| MediaError::Decode {
            path: path.display().to_string(),
            message,
        };
        if !path.is_file() {
            return Err(fail("no such file".into()));
        }
        let pipeline = gst::Pipeline::new();
        let make = |name: &str| {
            gst::ElementFactory::make(name)
                .build()
                .map_err(|e| fail(format!("GStreamer element {name} is missing: {e}")))
        };
        let src = gst::ElementFactory::make("filesrc")
            .property("location", path.to_string_lossy().as_ref())
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let decode = make("decodebin")?;
        let convert = make("videoconvert")?;
        let sink = gst_app::AppSink::builder()
            .caps(
                &gst::Caps::builder("video/x-raw")
                    .field("format", format.gst_name())
                    .build(),
            )
            .sync(false)
            .max_buffers(4)
            .build();
        pipeline
            .add_many([&src, &decode, &convert, sink.upcast_ref()])
            .map_err(|e| fail(e.to_string()))?;
        src.link(&decode).map_err(|e| fail(e.to_string()))?;
        convert.link(&sink).map_err(|e| fail(e.to_string()))?;
        let convert_weak = convert.downgrade();
        decode.connect_pad_added(move |_, pad| {
            let Some(convert) = convert_weak.upgrade() else {
                return;
            };
            let is_video = pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                .unwrap_or(false);
            if let Some(sink_pad) = convert.static_pad("sink")
                && is_video
                && !sink_pad.is_linked()
                && let Err(e) = pad.link(&sink_pad)
            {
                tracing::warn!(error = ?e, "cannot link decoded video");
            }
        });
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            fail(bus_error(&pipeline).unwrap_or_else(|| "the pipeline would not start".into()))
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            pipeline,
            sink,
            format,
        })
    }

    /// Duration of the input, if it has one (videos; not images).
    pub fn duration(&self) -> Option<Duration> {
        self.pipeline
            .query_duration::<gst::ClockTime>()
            .map(|d| Duration::from_nanos(d.nseconds()))
            .filter(|d| !d.is_zero())
    }

    /// Frames per second of the decoded stream, if known.
    pub fn framerate(&self) -> Option<(i32, i32)> {
        let caps = self.sink.static_pad("sink")?.current_caps()?;
        let info = gst_video::VideoInfo::from_caps(&caps).ok()?;
        let fps = info.fps();
        (fps.numer() > 0).then(|| (fps.numer(), fps.denom()))
    }

    /// The next frame, or `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<DecodedFrame>, MediaError> {
        let fail = |message: String| MediaError::Decode {
            path: self.path.display().to_string(),
            message,
        };
        let timeout = gst::ClockTime::from_nseconds(PULL_TIMEOUT.as_nanos() as u64);
        let Some(sample) = self.sink.try_pull_sample(timeout) else {
            if let Some(err) = bus_error(&self.pipeline) {
                return Err(fail(err));
            }
            if self.sink.is_eos() {
                return Ok(None);
            }
            return Err(fail(format!(
                "no frame within {} s",
                PULL_TIMEOUT.as_secs()
            )));
        };
        let caps = sample
            .caps()
            .ok_or_else(|| fail("a sample without caps".into()))?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| fail(e.to_string()))?;
        let buffer = sample
            .buffer()
            .ok_or_else(|| fail("a sample without a buffer".into()))?;
        let pts_us = buffer.pts().map(|t| t.useconds()).unwrap_or(0);
        let buf = convert::buffer_to_frame(buffer, &info, self.format).map_err(fail)?;
        Ok(Some(DecodedFrame { buf, pts_us }))
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Output container chosen from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputKind {
    Png,
    Jpeg,
    Webm,
    Matroska,
    Mp4,
}

impl OutputKind {
    fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "png" => OutputKind::Png,
            "jpg" | "jpeg" => OutputKind::Jpeg,
            "webm" => OutputKind::Webm,
            "mkv" => OutputKind::Matroska,
            "mp4" => OutputKind::Mp4,
            _ => return None,
        })
    }

    fn is_image(self) -> bool {
        matches!(self, OutputKind::Png | OutputKind::Jpeg)
    }

    /// The encoder and muxer part of the pipeline description.
    fn tail(self) -> &'static str {
        match self {
            OutputKind::Png => "pngenc snapshot=true",
            OutputKind::Jpeg => "jpegenc snapshot=true",
            OutputKind::Webm => "vp8enc deadline=1 cpu-used=8 target-bitrate=4000000 ! webmmux",
            OutputKind::Matroska => {
                "x264enc speed-preset=veryfast tune=zerolatency ! h264parse ! matroskamux"
            }
            OutputKind::Mp4 => "x264enc speed-preset=veryfast ! h264parse ! mp4mux",
        }
    }
}

/// Writes frames to an image or a video file.
pub struct Encoder {
    path: PathBuf,
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    info: gst_video::VideoInfo,
    image: bool,
    frames: u64,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("path", &self.path)
            .field("frames", &self.frames)
            .finish()
    }
}

impl Encoder {
    /// Creates `path` for frames of this format and size. The file type follows the extension.
    pub fn create(
        path: &Path,
        format: PixelFormat,
        width: u32,
        height: u32,
        fps: (i32, i32),
    ) -> Result<Self, MediaError> {
        init()?;
        let fail = |message: String| MediaError::Encode {
            path: path.display().to_string(),
            message,
        };
        let kind = OutputKind::from_path(path).ok_or_else(|| MediaError::UnsupportedOutput {
            path: path.display().to_string(),
        })?;
        let info = video_info(format, width, height, fps).map_err(fail)?;
        let location = path.to_string_lossy().replace('"', "\\\"");
        let description = format!(
            "appsrc name=src format=time is-live=false ! videoconvert ! {} ! filesink location=\"{location}\"",
            kind.tail()
        );
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| fail(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| fail("not a pipeline".into()))?;
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| fail("appsrc missing".into()))?;
        let caps = info.to_caps().map_err(|e| fail(e.to_string()))?;
        src.set_caps(Some(&caps));
        src.set_max_bytes(64 * 1024 * 1024);
        src.set_block(true);
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            fail(bus_error(&pipeline).unwrap_or_else(|| "the pipeline would not start".into()))
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            pipeline,
            src,
            info,
            image: kind.is_image(),
            frames: 0,
        })
    }

    /// Whether this writes a single image (only the first frame is kept).
    pub fn is_image(&self) -> bool {
        self.image
    }

    /// Queues one frame.
    pub fn push(&mut self, frame: &FrameBuf, pts_us: u64) -> Result<(), MediaError> {
        if self.image && self.frames > 0 {
            return Ok(());
        }
        let fail = |message: String| MediaError::Encode {
            path: self.path.display().to_string(),
            message,
        };
        let mut buffer = frame_to_buffer(frame, &self.info).map_err(fail)?;
        {
            let b = buffer
                .get_mut()
                .expect("invariant: a new buffer is writable");
            b.set_pts(gst::ClockTime::from_useconds(pts_us));
            let fps = self.info.fps();
            if fps.numer() > 0 {
                b.set_duration(gst::ClockTime::from_nseconds(
                    1_000_000_000 * fps.denom() as u64 / fps.numer() as u64,
                ));
            }
        }
        self.src.push_buffer(buffer).map_err(|e| {
            fail(bus_error(&self.pipeline).unwrap_or_else(|| format!("push failed: {e:?}")))
        })?;
        self.frames += 1;
        Ok(())
    }

    /// Ends the stream and waits until the file is complete.
    pub fn finish(self) -> Result<u64, MediaError> {
        let fail = |message: String| MediaError::Encode {
            path: self.path.display().to_string(),
            message,
        };
        let _ = self.src.end_of_stream();
        let bus = self.pipeline.bus().ok_or_else(|| fail("no bus".into()))?;
        let timeout = gst::ClockTime::from_seconds(60);
        let result = match bus
            .timed_pop_filtered(timeout, &[gst::MessageType::Eos, gst::MessageType::Error])
        {
            Some(msg) => match msg.view() {
                gst::MessageView::Error(err) => Err(fail(err.error().to_string())),
                _ => Ok(self.frames),
            },
            None => Err(fail("the encoder did not finish within 60 s".into())),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        result
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
