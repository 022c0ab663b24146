//! `WasmFilter`: one filter instance (its own wasm store) on its own thread.
//!
//! Frames arrive in a one-slot mailbox: when the filter is slower than the frame rate the
//! stale frame is replaced by the newest one and counted as dropped, so a slow filter adds
//! no queueing delay and no memory. Audio passes straight through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use prism_frame::PixelFormat;
use rtc::rtp;

use super::graph::{AudioSink, Outputs, VideoSink, take_frame};
use super::{
    Direction, ElementId, EventBus, EventKind, FlowMeter, LatencyWindow, MediaElement,
    MediaPipeline, MediaType, PipelineError,
};
use crate::media::FrameConverter;
use crate::media::rtp::VideoFrame;
use crate::runtime::{
    AttachedImages, EventSink, FilterEvent, FilterInstance, LoadedFilter, RuntimeError, Verdict,
};
use crate::vision::RgbaImage;

/// Events a filter may queue between two frames before extra ones are dropped.
const FILTER_EVENT_QUEUE: usize = 256;

type ConfigReply = SyncSender<Result<(), RuntimeError>>;

#[derive(Default)]
struct Mailbox {
    frame: Option<Arc<VideoFrame>>,
    config: Option<(String, ConfigReply)>,
    swap: Option<(Arc<LoadedFilter>, ConfigReply)>,
    /// The stream ended after `frame` (passed on once that frame is out).
    eos: bool,
    stop: bool,
}

#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    stale_dropped: AtomicU64,
    processed: AtomicU64,
    filter_dropped: AtomicU64,
}

struct Shared {
    id: ElementId,
    name: String,
    format: Mutex<PixelFormat>,
    /// Hash of the component running now.
    hash: Mutex<String>,
    /// The last configuration the filter accepted (a swapped-in version gets it too).
    config: Mutex<Option<String>>,
    runtime: Arc<crate::runtime::FilterRuntime>,
    mailbox: Mutex<Mailbox>,
    wake: Condvar,
    outputs: Outputs,
    flow: FlowMeter,
    events: EventBus,
    counters: Counters,
    process_time: LatencyWindow,
    /// Pictures the filter draws (`vision.draw-image`); shared with the running instance and
    /// handed to every replacement, so attaching needs no trip through the mailbox.
    images: AttachedImages,
}

impl Shared {
    fn mailbox(&self) -> std::sync::MutexGuard<'_, Mailbox> {
        crate::sys::lock(&self.mailbox)
    }
}

impl VideoSink for Shared {
    fn push_video(&self, frame: Arc<VideoFrame>) {
        self.flow.mark(Direction::In, MediaType::Video);
        self.counters.frames_in.fetch_add(1, Ordering::Relaxed);
        let mut mailbox = self.mailbox();
        if mailbox.frame.replace(frame).is_some() {
            self.counters.stale_dropped.fetch_add(1, Ordering::Relaxed);
        }
        drop(mailbox);
        self.wake.notify_one();
    }

    fn wanted_format(&self) -> Option<PixelFormat> {
        Some(*crate::sys::lock(&self.format))
    }

    fn end_of_stream(&self) {
        self.mailbox().eos = true;
        self.wake.notify_one();
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

/// A WASM filter element.
pub struct WasmFilter {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for WasmFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmFilter")
            .field("id", &self.shared.id)
            .field("filter", &self.shared.name)
            .finish()
    }
}

impl WasmFilter {
    pub(super) fn new(
        id: ElementId,
        pipeline: &MediaPipeline,
        filter: &Arc<LoadedFilter>,
        config: Option<&str>,
    ) -> Result<Self, PipelineError> {
        let (sink, events_rx) = EventSink::channel(FILTER_EVENT_QUEUE);
        let mut instance = pipeline.context().filters.instantiate(filter, Some(sink))?;
        if let Some(config) = config {
            instance.configure(config)?;
        }
        let shared = Arc::new(Shared {
            id: id.clone(),
            name: filter.info.name.clone(),
            format: Mutex::new(filter.info.format),
            hash: Mutex::new(filter.hash.clone()),
            config: Mutex::new(config.map(str::to_string)),
            runtime: pipeline.context().filters.clone(),
            mailbox: Mutex::new(Mailbox::default()),
            wake: Condvar::new(),
            outputs: Outputs::default(),
            flow: FlowMeter::default(),
            events: pipeline.events().clone(),
            counters: Counters::default(),
            process_time: LatencyWindow::default(),
            images: instance.images().clone(),
        });
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name(format!("filter-{}", filter.info.name))
            .spawn(move || run(worker_shared, instance, events_rx))
            .map_err(|e| RuntimeError::Io {
                path: "filter thread".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            shared,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// The filter's name (from `describe`).
    pub fn filter_name(&self) -> &str {
        &self.shared.name
    }

    /// Hash of the component running now.
    pub fn filter_hash(&self) -> String {
        crate::sys::lock(&self.shared.hash).clone()
    }

    /// Replaces the running component with `filter` (another version) between two frames,
    /// configured as the current one was; waits until it runs. On failure the old one stays.
    pub fn swap_filter(&self, filter: &Arc<LoadedFilter>) -> Result<(), RuntimeError> {
        let filter = filter.clone();
        self.ask(move |mailbox, reply| mailbox.swap = Some((filter, reply)))
    }

    /// Attaches a picture the filter can draw by `name` (`vision.draw-image`), replacing one
    /// of that name; `None` detaches it. Takes effect from the filter's next draw; the filter
    /// never sees the bytes. Load pictures with [`crate::vision::load_image`].
    pub fn set_image(&self, name: &str, image: Option<Arc<RgbaImage>>) -> Result<(), RuntimeError> {
        self.shared.images.set(name, image)
    }

    /// Reconfigures the filter (JSON); waits for the filter's answer.
    pub fn configure(&self, json: &str) -> Result<(), RuntimeError> {
        let json = json.to_string();
        self.ask(move |mailbox, reply| mailbox.config = Some((json, reply)))
    }

    /// Puts a request in the mailbox and waits for the filter thread's answer.
    fn ask(&self, put: impl FnOnce(&mut Mailbox, ConfigReply)) -> Result<(), RuntimeError> {
        let failed = |message: &str| RuntimeError::Configure {
            filter: self.shared.name.clone(),
            message: message.into(),
        };
        let (tx, rx) = sync_channel(1);
        {
            let mut mailbox = self.shared.mailbox();
            if mailbox.stop {
                return Err(failed("the element has been released"));
            }
            put(&mut mailbox, tx);
        }
        self.shared.wake.notify_one();
        rx.recv()
            .unwrap_or_else(|_| Err(failed("the filter thread ended")))
    }
}

fn forward_events(shared: &Shared, events: &Receiver<FilterEvent>) {
    while let Ok(event) = events.try_recv() {
        shared.events.emit(&shared.id, EventKind::Filter { event });
    }
}

/// A new instance of `filter` configured like the running one.
fn replacement(
    shared: &Shared,
    filter: &Arc<LoadedFilter>,
) -> Result<(FilterInstance, Receiver<FilterEvent>), RuntimeError> {
    let (sink, events) = EventSink::channel(FILTER_EVENT_QUEUE);
    let mut instance = shared.runtime.instantiate(filter, Some(sink))?;
    instance.share_images(shared.images.clone());
    let config = crate::sys::lock(&shared.config).clone();
    if let Some(config) = config {
        instance.configure(&config)?;
    }
    Ok((instance, events))
}

fn run(shared: Arc<Shared>, mut instance: FilterInstance, mut events: Receiver<FilterEvent>) {
    let mut converter = FrameConverter::default();
    loop {
        let (frame, config, swap, eos) = {
            let mut mailbox = shared.mailbox();
            while mailbox.frame.is_none()
                && mailbox.config.is_none()
                && mailbox.swap.is_none()
                && !mailbox.eos
                && !mailbox.stop
            {
                mailbox = shared.wake.wait(mailbox).unwrap_or_else(|e| e.into_inner());
            }
            if mailbox.stop {
                return;
            }
            (
                mailbox.frame.take(),
                mailbox.config.take(),
                mailbox.swap.take(),
                std::mem::take(&mut mailbox.eos),
            )
        };
        if let Some((json, reply)) = config {
            let result = instance.configure(&json);
            if result.is_ok() {
                *crate::sys::lock(&shared.config) = Some(json);
            }
            let _ = reply.send(result);
            forward_events(&shared, &events);
        }
        if let Some((filter, reply)) = swap {
            let result = replacement(&shared, &filter).map(|(new, new_events)| {
                forward_events(&shared, &events);
                instance = new;
                events = new_events;
                *crate::sys::lock(&shared.format) = filter.info.format;
                *crate::sys::lock(&shared.hash) = filter.hash.clone();
            });
            let _ = reply.send(result);
        }
        if let Some(frame) = frame {
            filter_frame(&shared, &mut instance, &events, &mut converter, frame);
        }
        if eos {
            // What the filter still held (a plate it was waiting on) goes out before the end.
            instance.end_of_stream();
            forward_events(&shared, &events);
            shared.outputs.end_of_stream();
        }
    }
}

/// Runs one frame through the filter and hands the result on.
fn filter_frame(
    shared: &Shared,
    instance: &mut FilterInstance,
    events: &Receiver<FilterEvent>,
    converter: &mut FrameConverter,
    frame: Arc<VideoFrame>,
) {
    let VideoFrame {
        buf,
        pts_us,
        decoded_at,
    } = take_frame(frame);
    let format = *crate::sys::lock(&shared.format);
    let mut buf = match converter.convert(buf, format) {
        Ok(buf) => buf,
        Err(message) => {
            shared.events.emit(&shared.id, EventKind::Error { message });
            return;
        }
    };
    let started = Instant::now();
    let verdict = instance.process(&mut buf, pts_us);
    shared.process_time.record(started.elapsed());
    shared.counters.processed.fetch_add(1, Ordering::Relaxed);
    forward_events(shared, events);
    match verdict {
        Verdict::Forward => {
            if shared.outputs.push_video(VideoFrame {
                buf,
                pts_us,
                decoded_at,
            }) > 0
            {
                shared.flow.mark(Direction::Out, MediaType::Video);
            }
        }
        Verdict::Drop => {
            shared
                .counters
                .filter_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl MediaElement for WasmFilter {
    fn id(&self) -> &ElementId {
        &self.shared.id
    }

    fn type_name(&self) -> &'static str {
        "WasmFilter"
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
        let c = &self.shared.counters;
        let (p50, p99) = self
            .shared
            .process_time
            .percentiles_ms()
            .unwrap_or((0.0, 0.0));
        serde_json::json!({
            "filter": self.shared.name,
            "format": crate::sys::lock(&self.shared.format).name(),
            "hash": self.filter_hash(),
            "framesIn": c.frames_in.load(Ordering::Relaxed),
            "framesProcessed": c.processed.load(Ordering::Relaxed),
            "framesDroppedStale": c.stale_dropped.load(Ordering::Relaxed),
            "framesDroppedByFilter": c.filter_dropped.load(Ordering::Relaxed),
            "processMsP50": p50,
            "processMsP99": p99,
        })
    }

    fn release(&self) {
        self.shared.mailbox().stop = true;
        self.shared.wake.notify_all();
        let worker = crate::sys::lock(&self.worker).take();
        if let Some(worker) = worker {
            let _ = worker.join();
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl Drop for WasmFilter {
    fn drop(&mut self) {
        self.release();
    }
}
