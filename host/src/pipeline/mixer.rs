//! Audio mixing for the Composite hub: each port's Opus RTP is decoded to PCM
//! ([`PcmIn`]), every 20 ms each port gets the sum of the *other* ports' audio (nobody hears
//! themselves), encoded back to Opus RTP ([`OpusOut`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use rtc::rtp;
use rtc::shared::marshal::{Marshal, Unmarshal};

use super::own::element;
use crate::media::MediaError;
use crate::sys::lock;

/// Sample rate of the mix.
pub const RATE: usize = 48_000;
/// Channels of the mix.
pub const CHANNELS: usize = 2;
/// One mixing period: 20 ms of interleaved samples (an Opus frame).
pub const CHUNK: usize = RATE / 50 * CHANNELS;
/// PCM kept per input before the oldest is dropped (200 ms: a late input does not grow).
const MAX_BUFFERED: usize = CHUNK * 10;
/// RTP payload type of the decoder's caps.
const OPUS_PT: u8 = 111;

fn fail(message: impl std::fmt::Display) -> MediaError {
    MediaError::Element {
        element: "audio mixer".into(),
        message: message.to_string(),
    }
}

fn pcm_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("layout", "interleaved")
        .field("rate", RATE as i32)
        .field("channels", CHANNELS as i32)
        .build()
}

/// Builds and starts a pipeline of `chain`.
fn start(name: &str, chain: &[gst::Element]) -> Result<gst::Pipeline, MediaError> {
    let pipeline = gst::Pipeline::with_name(name);
    pipeline.add_many(chain).map_err(fail)?;
    gst::Element::link_many(chain).map_err(fail)?;
    pipeline.set_state(gst::State::Playing).map_err(fail)?;
    Ok(pipeline)
}

/// Opus RTP in, PCM out into a FIFO.
pub struct PcmIn {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    pcm: Arc<Mutex<VecDeque<i16>>>,
}

impl PcmIn {
    /// A decoder named `name`.
    pub fn new(name: &str) -> Result<Self, MediaError> {
        let appsrc = gst_app::AppSrc::builder()
            .caps(
                &gst::Caps::builder("application/x-rtp")
                    .field("media", "audio")
                    .field("clock-rate", RATE as i32)
                    .field("encoding-name", "OPUS")
                    .field("payload", OPUS_PT as i32)
                    .build(),
            )
            .format(gst::Format::Time)
            .is_live(true)
            .do_timestamp(true)
            .max_buffers(50)
            .max_bytes(0)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let sink = gst_app::AppSink::builder()
            .caps(&pcm_caps())
            .sync(false)
            .build();
        let pcm: Arc<Mutex<VecDeque<i16>>> = Arc::default();
        let fifo = pcm.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        let mut fifo = lock(&fifo);
                        fifo.extend(
                            map.chunks_exact(2)
                                .map(|b| i16::from_le_bytes([b[0], b[1]])),
                        );
                        let excess = fifo.len().saturating_sub(MAX_BUFFERED);
                        fifo.drain(..excess);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let pipeline = start(
            name,
            &[
                appsrc.clone().upcast(),
                element("rtpopusdepay")?,
                element("opusdec")?,
                element("audioconvert")?,
                element("audioresample")?,
                sink.upcast(),
            ],
        )?;
        Ok(Self {
            pipeline,
            appsrc,
            pcm,
        })
    }

    /// Decodes one packet (never blocks).
    pub fn push(&self, packet: &rtp::Packet) {
        let mut packet = packet.clone();
        packet.header.payload_type = OPUS_PT;
        if let Ok(bytes) = packet.marshal() {
            let _ = self.appsrc.push_buffer(gst::Buffer::from_slice(bytes));
        }
    }

    /// The next 20 ms, if that much arrived.
    pub fn take_chunk(&self) -> Option<Vec<i16>> {
        let mut fifo = lock(&self.pcm);
        (fifo.len() >= CHUNK).then(|| fifo.drain(..CHUNK).collect())
    }
}

impl Drop for PcmIn {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// PCM in, Opus RTP out to a callback.
pub struct OpusOut {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
}

impl OpusOut {
    /// An encoder named `name` handing each packet to `on_packet`.
    pub fn new(
        name: &str,
        on_packet: impl Fn(&rtp::Packet) + Send + Sync + 'static,
    ) -> Result<Self, MediaError> {
        let appsrc = gst_app::AppSrc::builder()
            .caps(&pcm_caps())
            .format(gst::Format::Time)
            .is_live(true)
            .do_timestamp(true)
            .max_buffers(10)
            .max_bytes(0)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let pay = element("rtpopuspay")?;
        pay.set_property("pt", OPUS_PT as u32);
        let sink = gst_app::AppSink::builder().sync(false).build();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok())
                        && let Ok(packet) = rtp::Packet::unmarshal(&mut map.as_slice())
                    {
                        on_packet(&packet);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let pipeline = start(
            name,
            &[
                appsrc.clone().upcast(),
                element("opusenc")?,
                pay,
                sink.upcast(),
            ],
        )?;
        Ok(Self { pipeline, appsrc })
    }

    /// Encodes 20 ms of PCM (never blocks).
    pub fn push(&self, pcm: &[i16]) {
        let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        let _ = self.appsrc.push_buffer(gst::Buffer::from_mut_slice(bytes));
    }
}

impl Drop for OpusOut {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The sum of every chunk but `skip`'s (saturating), or `None` if no other input has audio.
pub fn mix_excluding(chunks: &[Option<Vec<i16>>], skip: usize) -> Option<Vec<i16>> {
    let mut sum: Option<Vec<i32>> = None;
    for (i, chunk) in chunks.iter().enumerate() {
        let Some(chunk) = chunk.as_ref().filter(|_| i != skip) else {
            continue;
        };
        let acc = sum.get_or_insert_with(|| vec![0; chunk.len()]);
        for (a, &s) in acc.iter_mut().zip(chunk) {
            *a += s as i32;
        }
    }
    sum.map(|s| {
        s.into_iter()
            .map(|v| v.clamp(i16::MIN as i32, i16::MAX as i32) as i16)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hears_the_others() {
        let chunks = vec![Some(vec![100i16, -100]), None, Some(vec![30000, -30000])];
        assert_eq!(mix_excluding(&chunks, 0), Some(vec![30000, -30000]));
        assert_eq!(mix_excluding(&chunks, 1), Some(vec![30100, -30100]));
        assert_eq!(mix_excluding(&chunks, 2), Some(vec![100, -100]));
        let loud = vec![Some(vec![30000i16]), Some(vec![30000]), None];
        assert_eq!(mix_excluding(&loud, 2), Some(vec![i16::MAX]));
        assert_eq!(mix_excluding(&[Some(vec![1i16])], 0), None);
    }
}
