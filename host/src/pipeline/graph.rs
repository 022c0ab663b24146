//! How media moves between elements: a source element's [`Outputs`] hold the sinks connected
//! to it; pushing a frame hands the same `Arc` to every sink (fan-out without copies; a sink
//! that writes copies on write). Sinks never block the caller: each has its own bounded
//! hand-off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use prism_frame::PixelFormat;
use rtc::rtp;

use super::ElementId;
use crate::media::rtp::{VideoCodec, VideoFrame};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MediaType {
    /// Audio (Opus RTP, passed through untouched).
    Audio,
    /// Video (decoded frames).
    Video,
}

impl MediaType {
    /// Both kinds.
    pub const ALL: [MediaType; 2] = [MediaType::Audio, MediaType::Video];
}

/// Something that takes decoded video frames.
pub trait VideoSink: Send + Sync {
    /// Takes a frame; must not block (drop or replace a stale frame instead).
    fn push_video(&self, frame: Arc<VideoFrame>);
    /// The pixel format this sink works in, or `None` if any is fine.
    fn wanted_format(&self) -> Option<PixelFormat>;
    /// The source's stream ended (a played file reached its end): no more frames follow
    /// until a new stream starts. Elements that forward media pass it on after their last
    /// frame.
    fn end_of_stream(&self) {}
    /// The sink's encoded side, if it can keep video as it arrived instead of decoded frames
    /// (a recorder whose container fits the codec: no decode and re-encode).
    fn encoded(&self) -> Option<&dyn EncodedVideoSink> {
        None
    }
}

/// Something that takes video as it arrived over the network, encoded (RTP packets). A sink
/// that takes a codec this way gets the packets from a source that receives them (WebRTC and
/// RTP endpoints) and ignores that source's decoded frames.
pub trait EncodedVideoSink: Send + Sync {
    /// Whether it keeps `codec` as it is.
    fn accepts(&self, codec: VideoCodec) -> bool;
    /// One RTP packet of `codec`; must not block.
    fn push_rtp(&self, codec: VideoCodec, packet: &rtp::Packet);
}

/// Something that takes audio RTP packets.
pub trait AudioSink: Send + Sync {
    /// Takes a packet; must not block.
    fn push_audio(&self, packet: &rtp::Packet);
    /// The source's stream ended (see [`VideoSink::end_of_stream`]); sinks that take both
    /// media may hear it twice.
    fn end_of_stream(&self) {}
}

type Sinks<T> = RwLock<Vec<(ElementId, Arc<T>)>>;

/// The sinks connected to one source element.
#[derive(Default)]
pub struct Outputs {
    video: Sinks<dyn VideoSink>,
    audio: Sinks<dyn AudioSink>,
    frames_out: AtomicU64,
    audio_out: AtomicU64,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("video", &self.video_sinks())
            .field("audio", &self.audio_sinks())
            .finish()
    }
}

fn ids<T: ?Sized>(sinks: &Sinks<T>) -> Vec<ElementId> {
    sinks
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(id, _)| id.clone())
        .collect()
}

fn insert<T: ?Sized>(sinks: &Sinks<T>, id: ElementId, sink: Arc<T>) {
    let mut sinks = sinks.write().unwrap_or_else(|e| e.into_inner());
    sinks.retain(|(other, _)| *other != id);
    sinks.push((id, sink));
}

fn remove<T: ?Sized>(sinks: &Sinks<T>, id: &ElementId) -> bool {
    let mut sinks = sinks.write().unwrap_or_else(|e| e.into_inner());
    let before = sinks.len();
    sinks.retain(|(other, _)| other != id);
    sinks.len() != before
}

impl Outputs {
    /// Connects a video sink (replacing an earlier connection to the same element).
    pub fn add_video(&self, id: ElementId, sink: Arc<dyn VideoSink>) {
        insert(&self.video, id, sink);
    }

    /// Connects an audio sink.
    pub fn add_audio(&self, id: ElementId, sink: Arc<dyn AudioSink>) {
        insert(&self.audio, id, sink);
    }

    /// Disconnects a sink; whether it was connected.
    pub fn remove(&self, id: &ElementId, media: MediaType) -> bool {
        match media {
            MediaType::Video => remove(&self.video, id),
            MediaType::Audio => remove(&self.audio, id),
        }
    }

    /// The connected video sinks.
    pub fn video_sinks(&self) -> Vec<ElementId> {
        ids(&self.video)
    }

    /// The connected audio sinks.
    pub fn audio_sinks(&self) -> Vec<ElementId> {
        ids(&self.audio)
    }

    /// Whether anything takes video.
    pub fn wants_video(&self) -> bool {
        !self
            .video
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// The pixel format that suits the connected sinks: the one they all ask for, else I420
    /// (what decoders give and encoders take).
    pub fn preferred_format(&self) -> PixelFormat {
        let sinks = self.video.read().unwrap_or_else(|e| e.into_inner());
        let mut wanted = sinks.iter().filter_map(|(_, s)| s.wanted_format());
        match wanted.next() {
            Some(first) if wanted.all(|f| f == first) => first,
            _ => PixelFormat::I420,
        }
    }

    /// Hands a frame to every video sink; the last one gets the frame itself, so a single sink
    /// can take it over without a copy. Returns how many sinks got it.
    pub fn push_video(&self, frame: VideoFrame) -> usize {
        self.push_shared(Arc::new(frame))
    }

    /// [`Outputs::push_video`] for a frame that is already shared.
    pub fn push_shared(&self, frame: Arc<VideoFrame>) -> usize {
        let sinks = self.video.read().unwrap_or_else(|e| e.into_inner());
        let Some(((_, last), rest)) = sinks.split_last() else {
            return 0;
        };
        for (_, sink) in rest {
            sink.push_video(frame.clone());
        }
        last.push_video(frame);
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        sinks.len()
    }

    /// How many sinks keep `codec` as it arrives.
    pub fn encoded_sinks(&self, codec: VideoCodec) -> usize {
        let sinks = self.video.read().unwrap_or_else(|e| e.into_inner());
        sinks
            .iter()
            .filter(|(_, s)| s.encoded().is_some_and(|e| e.accepts(codec)))
            .count()
    }

    /// Hands an encoded video packet to the sinks that keep `codec` as it is; how many.
    pub fn push_encoded(&self, codec: VideoCodec, packet: &rtp::Packet) -> usize {
        let sinks = self.video.read().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for (_, sink) in sinks.iter() {
            if let Some(encoded) = sink.encoded()
                && encoded.accepts(codec)
            {
                encoded.push_rtp(codec, packet);
                n += 1;
            }
        }
        n
    }

    /// Tells every sink that the stream ended.
    pub fn end_of_stream(&self) {
        let video = self.video.read().unwrap_or_else(|e| e.into_inner());
        for (_, sink) in video.iter() {
            sink.end_of_stream();
        }
        let audio = self.audio.read().unwrap_or_else(|e| e.into_inner());
        for (_, sink) in audio.iter() {
            sink.end_of_stream();
        }
    }

    /// Hands an audio packet to every audio sink.
    pub fn push_audio(&self, packet: &rtp::Packet) -> usize {
        let sinks = self.audio.read().unwrap_or_else(|e| e.into_inner());
        for (_, sink) in sinks.iter() {
            sink.push_audio(packet);
        }
        if !sinks.is_empty() {
            self.audio_out.fetch_add(1, Ordering::Relaxed);
        }
        sinks.len()
    }

    /// Frames handed on so far.
    pub fn frames_out(&self) -> u64 {
        self.frames_out.load(Ordering::Relaxed)
    }

    /// Audio packets handed on so far.
    pub fn audio_packets_out(&self) -> u64 {
        self.audio_out.load(Ordering::Relaxed)
    }
}

/// Takes the frame out of its `Arc` when this is the only holder, else copies it (fan-out to
/// a sink that writes).
pub fn take_frame(frame: Arc<VideoFrame>) -> VideoFrame {
    Arc::try_unwrap(frame).unwrap_or_else(|shared| (*shared).clone())
}
