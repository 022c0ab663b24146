//! `PassThrough`: hands media on unchanged (Kurento's PassThrough), e.g. to split a graph.

use std::sync::Arc;

use prism_frame::PixelFormat;
use rtc::rtp;

use super::graph::{AudioSink, Outputs, VideoSink};
use super::{Direction, ElementId, FlowMeter, MediaElement, MediaType};
use crate::media::rtp::VideoFrame;

struct Shared {
    outputs: Outputs,
    flow: FlowMeter,
}

impl VideoSink for Shared {
    fn push_video(&self, frame: Arc<VideoFrame>) {
        self.flow.mark(Direction::In, MediaType::Video);
        // Hand the same Arc on: no copy, whatever the fan-out.
        if self.outputs.push_shared(frame) > 0 {
            self.flow.mark(Direction::Out, MediaType::Video);
        }
    }

    fn wanted_format(&self) -> Option<PixelFormat> {
        None
    }

    fn end_of_stream(&self) {
        self.outputs.end_of_stream();
    }
}

impl AudioSink for Shared {
    fn push_audio(&self, packet: &rtp::Packet) {
        self.flow.mark(Direction::In, MediaType::Audio);
        if self.outputs.push_audio(packet) > 0 {
            self.flow.mark(Direction::Out, MediaType::Audio);
        }
    }
}

/// A pass-through element.
pub struct PassThrough {
    id: ElementId,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassThrough").field("id", &self.id).finish()
    }
}

impl PassThrough {
    pub(super) fn new(id: ElementId) -> Self {
        Self {
            id,
            shared: Arc::new(Shared {
                outputs: Outputs::default(),
                flow: FlowMeter::default(),
            }),
        }
    }
}

impl MediaElement for PassThrough {
    fn id(&self) -> &ElementId {
        &self.id
    }

    fn type_name(&self) -> &'static str {
        "PassThrough"
    }

    fn outputs(&self) -> Option<&Outputs> {
        Some(&self.shared.outputs)
    }

    fn video_sink(&self) -> Option<Arc<dyn VideoSink>> {
        Some(self.shared.clone())
    }

    fn audio_sink(&self) -> Option<Arc<dyn AudioSink>> {
        Some(self.shared.clone())
    }

    fn flow(&self) -> &FlowMeter {
        &self.shared.flow
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({ "framesOut": self.shared.outputs.frames_out() })
    }

    fn release(&self) {}

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}
