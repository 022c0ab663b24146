//! Hubs (Kurento's Composite, Dispatcher and DispatcherOneToMany) and their `HubPort`s.
//!
//! A hub is an element without media of its own; elements connect to and from its ports. What
//! enters a port leaves by other ports according to the hub:
//!
//! * **Composite**: every port's video is scaled into a cell of a grid (columns =
//!   ⌈√n⌉, aspect ratio kept, centred on black) and the grid leaves every port at the hub's
//!   size and frame rate. Each input is scaled once when it arrives (on its producer's thread);
//!   the hub's thread only copies cells. Audio is mixed ([`super::mixer`]): every 20 ms each
//!   port gets the sum of the other ports' audio.
//! * **Dispatcher**: `connect(source port, sink port)` routes one port's input to another
//!   port's output (a sink port has one source).
//! * **DispatcherOneToMany**: `set_source(port)` sends that port's input out of every other
//!   port.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prism_frame::{FrameBuf, PixelFormat, Rect};
use rtc::rtp;

use super::graph::{AudioSink, Outputs, VideoSink};
use super::mixer::{OpusOut, PcmIn, mix_excluding};
use super::{
    Direction, ElementId, FlowMeter, MediaElement, MediaPipeline, MediaType, PipelineError,
};
use crate::media::rtp::{VideoFrame, running_time};
use crate::media::{FrameConverter, scale_frame};
use crate::sys::lock;

/// Composite output size and rate unless the client sets them.
pub const COMPOSITE_DEFAULT: (u32, u32, u32) = (640, 480, 15);
/// Largest composite output side.
const COMPOSITE_MAX_SIDE: u32 = 3840;
/// Ports per hub.
pub const MAX_HUB_PORTS: usize = 64;

/// What a hub does with its ports' media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubKind {
    /// A grid of every input, `width` x `height` at `fps`.
    Composite {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
        /// Output frames per second.
        fps: u32,
    },
    /// Port-to-port routes.
    Dispatcher,
    /// One source port to all others.
    DispatcherOneToMany,
}

impl HubKind {
    /// Kurento's type name.
    pub fn type_name(self) -> &'static str {
        match self {
            HubKind::Composite { .. } => "Composite",
            HubKind::Dispatcher => "Dispatcher",
            HubKind::DispatcherOneToMany => "DispatcherOneToMany",
        }
    }

    /// A composite of this size and rate, checked.
    pub fn composite(width: u32, height: u32, fps: u32) -> Result<Self, PipelineError> {
        if !(16..=COMPOSITE_MAX_SIDE).contains(&width)
            || !(16..=COMPOSITE_MAX_SIDE).contains(&height)
            || !(1..=60).contains(&fps)
        {
            return Err(PipelineError::InvalidArgument(format!(
                "composite {width}x{height} at {fps} fps: sides must be 16..{COMPOSITE_MAX_SIDE}, \
                 the rate 1..60"
            )));
        }
        Ok(HubKind::Composite {
            width: width & !1,
            height: height & !1,
            fps,
        })
    }
}

/// One port's side of the hub.
struct Port {
    id: ElementId,
    outputs: Outputs,
    flow: FlowMeter,
    hub: Weak<HubShared>,
    /// Composite: this input scaled to its cell, and where the cell is.
    cell: Mutex<Option<(Rect, Arc<FrameBuf>)>>,
    converter: Mutex<FrameConverter>,
    /// Composite: this input's audio, decoded.
    audio_in: Mutex<Option<PcmIn>>,
    /// Composite: the mix of the others, encoded for this port's sinks.
    audio_out: Mutex<Option<OpusOut>>,
}

struct HubShared {
    kind: HubKind,
    /// Ports in creation order (the composite's grid order).
    ports: Mutex<Vec<Arc<Port>>>,
    /// Dispatcher: sink port → source port.
    routes: Mutex<HashMap<ElementId, ElementId>>,
    /// DispatcherOneToMany: the source port.
    source: Mutex<Option<ElementId>>,
    stop: AtomicBool,
    frames_out: AtomicU64,
}

impl HubShared {
    fn ports(&self) -> Vec<Arc<Port>> {
        lock(&self.ports).clone()
    }

    /// Ports that get what enters `from`.
    fn targets(&self, from: &ElementId) -> Vec<Arc<Port>> {
        let ports = self.ports();
        match self.kind {
            HubKind::Composite { .. } => ports.into_iter().filter(|p| &p.id != from).collect(),
            HubKind::Dispatcher => {
                let routes = lock(&self.routes);
                ports
                    .into_iter()
                    .filter(|p| routes.get(&p.id) == Some(from))
                    .collect()
            }
            HubKind::DispatcherOneToMany => {
                if lock(&self.source).as_ref() != Some(from) {
                    return Vec::new();
                }
                ports.into_iter().filter(|p| &p.id != from).collect()
            }
        }
    }

    /// The grid cell of port number `index` of `count`, and the output size.
    fn cell(&self, index: usize, count: usize) -> Option<Rect> {
        let HubKind::Composite { width, height, .. } = self.kind else {
            return None;
        };
        let count = count.max(1) as u32;
        let cols = (count as f64).sqrt().ceil() as u32;
        let rows = count.div_ceil(cols);
        let (w, h) = ((width / cols) & !1, (height / rows) & !1);
        let i = index as u32;
        Some(Rect::new((i % cols) * w, (i / cols) * h, w, h))
    }
}

/// Where a `width` x `height` picture goes inside `cell`, aspect ratio kept, centred; even
/// coordinates and sizes (I420).
fn fit(cell: Rect, width: u32, height: u32) -> Rect {
    if cell.width < 2 || cell.height < 2 {
        return Rect::new(cell.x & !1, cell.y & !1, 0, 0);
    }
    let scale =
        (cell.width as f64 / width.max(1) as f64).min(cell.height as f64 / height.max(1) as f64);
    let w = ((width as f64 * scale) as u32).clamp(2, cell.width) & !1;
    let h = ((height as f64 * scale) as u32).clamp(2, cell.height) & !1;
    Rect::new(
        (cell.x + (cell.width - w) / 2) & !1,
        (cell.y + (cell.height - h) / 2) & !1,
        w,
        h,
    )
}

impl Port {
    fn hub(&self) -> Option<Arc<HubShared>> {
        self.hub.upgrade()
    }

    /// Composite: scales `frame` into this port's cell.
    fn update_cell(&self, hub: &HubShared, frame: &VideoFrame) {
        let ports = hub.ports();
        let Some(index) = ports.iter().position(|p| p.id == self.id) else {
            return;
        };
        let Some(cell) = hub.cell(index, ports.len()) else {
            return;
        };
        let area = fit(cell, frame.buf.width(), frame.buf.height());
        if area.width == 0 {
            // More ports than the grid has pixels for.
            return;
        }
        let i420 = if frame.buf.format() == PixelFormat::I420 {
            None
        } else {
            match lock(&self.converter).convert(frame.buf.clone(), PixelFormat::I420) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!("composite: cannot convert a frame: {e}");
                    return;
                }
            }
        };
        let source = i420.as_ref().unwrap_or(&frame.buf);
        match scale_frame(source, area.width, area.height) {
            Ok(scaled) => *lock(&self.cell) = Some((area, Arc::new(scaled))),
            Err(e) => tracing::warn!("composite: cannot scale a frame: {e}"),
        }
    }
}

thread_local! {
    /// Set while this thread hands media through a hub: media that comes back to a hub on the
    /// same thread went round a loop of connections (port → ... → port) and is dropped, instead
    /// of recursing until the stack overflows.
    static IN_HUB: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `hand_on` unless this thread is already handing media through a hub.
fn once_per_thread(hand_on: impl FnOnce()) {
    if IN_HUB.with(|busy| busy.replace(true)) {
        return;
    }
    hand_on();
    IN_HUB.with(|busy| busy.set(false));
}

impl VideoSink for Port {
    fn push_video(&self, frame: Arc<VideoFrame>) {
        self.flow.mark(Direction::In, MediaType::Video);
        once_per_thread(|| self.route_video(frame));
    }

    fn wanted_format(&self) -> Option<PixelFormat> {
        match self.hub().map(|h| h.kind) {
            Some(HubKind::Composite { .. }) => Some(PixelFormat::I420),
            _ => None,
        }
    }

    fn end_of_stream(&self) {
        let Some(hub) = self.hub() else { return };
        if !matches!(hub.kind, HubKind::Composite { .. }) {
            once_per_thread(|| {
                for port in hub.targets(&self.id) {
                    port.outputs.end_of_stream();
                }
            });
        }
    }
}

impl Port {
    fn route_video(&self, frame: Arc<VideoFrame>) {
        let Some(hub) = self.hub() else { return };
        if matches!(hub.kind, HubKind::Composite { .. }) {
            self.update_cell(&hub, &frame);
            return;
        }
        for port in hub.targets(&self.id) {
            if port.outputs.push_shared(frame.clone()) > 0 {
                port.flow.mark(Direction::Out, MediaType::Video);
            }
        }
    }
}

impl AudioSink for Port {
    fn push_audio(&self, packet: &rtp::Packet) {
        self.flow.mark(Direction::In, MediaType::Audio);
        let Some(hub) = self.hub() else { return };
        if matches!(hub.kind, HubKind::Composite { .. }) {
            let mut input = lock(&self.audio_in);
            if input.is_none() {
                match PcmIn::new(&format!("mix-in-{}", self.id.gst_name())) {
                    Ok(decoder) => *input = Some(decoder),
                    Err(e) => tracing::warn!("composite: cannot decode audio: {e}"),
                }
            }
            if let Some(decoder) = &*input {
                decoder.push(packet);
            }
            return;
        }
        once_per_thread(|| {
            for port in hub.targets(&self.id) {
                if port.outputs.push_audio(packet) > 0 {
                    port.flow.mark(Direction::Out, MediaType::Audio);
                }
            }
        });
    }
}

/// A hub element (no media of its own).
pub struct Hub {
    id: ElementId,
    shared: Arc<HubShared>,
    flow: FlowMeter,
    /// Composite: the video and audio mixing threads.
    mixers: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("id", &self.id)
            .field("kind", &self.shared.kind)
            .finish()
    }
}

/// The composite's audio thread: every 20 ms, each port with audio sinks gets the mix of the
/// other ports' audio.
fn mix_audio(shared: Weak<HubShared>) {
    every(Duration::from_millis(20), &shared, |hub| {
        let ports = hub.ports();
        let chunks: Vec<Option<Vec<i16>>> = ports
            .iter()
            .map(|p| lock(&p.audio_in).as_ref().and_then(PcmIn::take_chunk))
            .collect();
        for (i, port) in ports.iter().enumerate() {
            if port.outputs.audio_sinks().is_empty() {
                continue;
            }
            let Some(mix) = mix_excluding(&chunks, i) else {
                continue;
            };
            let mut output = lock(&port.audio_out);
            if output.is_none() {
                let weak = Arc::downgrade(port);
                let made = OpusOut::new(&format!("mix-out-{}", port.id.gst_name()), move |p| {
                    if let Some(port) = weak.upgrade()
                        && port.outputs.push_audio(p) > 0
                    {
                        port.flow.mark(Direction::Out, MediaType::Audio);
                    }
                });
                match made {
                    Ok(encoder) => *output = Some(encoder),
                    Err(e) => {
                        tracing::warn!("composite: cannot encode audio: {e}");
                        continue;
                    }
                }
            }
            if let Some(encoder) = &*output {
                encoder.push(&mix);
            }
        }
    });
}

/// Runs `tick` every `period` while the hub lives. A late tick (a busy machine) skips the
/// missed ones instead of bursting.
fn every(period: Duration, shared: &Weak<HubShared>, mut tick: impl FnMut(&HubShared)) {
    let mut next = Instant::now();
    loop {
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
        let Some(hub) = shared.upgrade() else { return };
        if hub.stop.load(Ordering::Acquire) {
            return;
        }
        tick(&hub);
    }
}

/// The composite's thread: one grid frame per tick to every port.
fn mix(shared: Weak<HubShared>, clock_of: gstreamer::Pipeline) {
    let Some(HubKind::Composite { width, height, fps }) = shared.upgrade().map(|s| s.kind) else {
        return;
    };
    every(Duration::from_secs_f64(1.0 / fps as f64), &shared, |hub| {
        let ports = hub.ports();
        let cells: Vec<_> = ports.iter().filter_map(|p| lock(&p.cell).clone()).collect();
        if cells.is_empty() {
            return;
        }
        let mut canvas = FrameBuf::filled(
            PixelFormat::I420,
            width,
            height,
            prism_frame::Color::rgb(0, 0, 0),
        );
        for (area, picture) in cells {
            // Cells move when ports come and go; a cell computed for the old grid is skipped
            // until its next frame.
            if area.x + area.width <= width && area.y + area.height <= height {
                let _ = canvas.write_region(area, picture.data());
            }
        }
        let frame = Arc::new(VideoFrame {
            buf: canvas,
            pts_us: running_time(&clock_of).map(|t| t.useconds()).unwrap_or(0),
            decoded_at: Instant::now(),
        });
        hub.frames_out.fetch_add(1, Ordering::Relaxed);
        for port in &ports {
            if port.outputs.push_shared(frame.clone()) > 0 {
                port.flow.mark(Direction::Out, MediaType::Video);
            }
        }
    });
}

impl Hub {
    fn new(id: ElementId, pipeline: &MediaPipeline, kind: HubKind) -> Result<Self, PipelineError> {
        let shared = Arc::new(HubShared {
            kind,
            ports: Mutex::new(Vec::new()),
            routes: Mutex::new(HashMap::new()),
            source: Mutex::new(None),
            stop: AtomicBool::new(false),
            frames_out: AtomicU64::new(0),
        });
        let mut mixers = Vec::new();
        if matches!(kind, HubKind::Composite { .. }) {
            let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(run)
                    .map_err(|e| PipelineError::InvalidState(format!("cannot start: {e}")))
            };
            let (weak, clock_of) = (Arc::downgrade(&shared), pipeline.gst_pipeline().clone());
            mixers.push(spawn("composite", Box::new(move || mix(weak, clock_of)))?);
            let weak = Arc::downgrade(&shared);
            mixers.push(spawn("composite-audio", Box::new(move || mix_audio(weak)))?);
        }
        Ok(Self {
            id,
            shared,
            flow: FlowMeter::default(),
            mixers: Mutex::new(mixers),
        })
    }

    /// What kind of hub.
    pub fn kind(&self) -> HubKind {
        self.shared.kind
    }

    fn port(&self, id: &ElementId) -> Result<Arc<Port>, PipelineError> {
        self.shared
            .ports()
            .into_iter()
            .find(|p| &p.id == id)
            .ok_or_else(|| {
                PipelineError::InvalidArgument(format!("{id} is not a HubPort of {}", self.id))
            })
    }

    /// Dispatcher: `sink`'s output becomes `source`'s input.
    pub fn route(&self, source: &ElementId, sink: &ElementId) -> Result<(), PipelineError> {
        if self.shared.kind != HubKind::Dispatcher {
            return Err(PipelineError::InvalidState(format!(
                "{} routes no ports (it is a {})",
                self.id,
                self.shared.kind.type_name()
            )));
        }
        self.port(source)?;
        self.port(sink)?;
        lock(&self.shared.routes).insert(sink.clone(), source.clone());
        Ok(())
    }

    /// DispatcherOneToMany: the port whose input every other port sends (`None`: none).
    pub fn set_source(&self, source: Option<&ElementId>) -> Result<(), PipelineError> {
        if self.shared.kind != HubKind::DispatcherOneToMany {
            return Err(PipelineError::InvalidState(format!(
                "{} has no source port (it is a {})",
                self.id,
                self.shared.kind.type_name()
            )));
        }
        if let Some(id) = source {
            self.port(id)?;
        }
        *lock(&self.shared.source) = source.cloned();
        Ok(())
    }

    /// The ports' ids, in creation order.
    pub fn ports(&self) -> Vec<ElementId> {
        self.shared.ports().iter().map(|p| p.id.clone()).collect()
    }
}

impl MediaElement for Hub {
    fn id(&self) -> &ElementId {
        &self.id
    }

    fn type_name(&self) -> &'static str {
        self.shared.kind.type_name()
    }

    fn outputs(&self) -> Option<&Outputs> {
        None
    }

    fn video_sink(&self) -> Option<Arc<dyn VideoSink>> {
        None
    }

    fn audio_sink(&self) -> Option<Arc<dyn AudioSink>> {
        None
    }

    fn flow(&self) -> &FlowMeter {
        &self.flow
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "ports": self.shared.ports().len(),
            "framesOut": self.shared.frames_out.load(Ordering::Relaxed),
        })
    }

    fn release(&self) {
        self.shared.stop.store(true, Ordering::Release);
        lock(&self.shared.ports).clear();
        let mixers = std::mem::take(&mut *lock(&self.mixers));
        for mixer in mixers {
            let _ = mixer.join();
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.release();
    }
}

/// A port of a hub: connect elements to it (input) and from it (the hub's output).
pub struct HubPort {
    port: Arc<Port>,
    hub_id: ElementId,
}

impl std::fmt::Debug for HubPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubPort")
            .field("id", &self.port.id)
            .field("hub", &self.hub_id)
            .finish()
    }
}

impl HubPort {
    /// The hub it belongs to.
    pub fn hub(&self) -> &ElementId {
        &self.hub_id
    }
}

impl MediaElement for HubPort {
    fn id(&self) -> &ElementId {
        &self.port.id
    }

    fn type_name(&self) -> &'static str {
        "HubPort"
    }

    fn outputs(&self) -> Option<&Outputs> {
        Some(&self.port.outputs)
    }

    fn video_sink(&self) -> Option<Arc<dyn VideoSink>> {
        Some(self.port.clone())
    }

    fn audio_sink(&self) -> Option<Arc<dyn AudioSink>> {
        Some(self.port.clone())
    }

    fn flow(&self) -> &FlowMeter {
        &self.port.flow
    }

    fn forwards_input(&self) -> bool {
        // What enters a port leaves by other ports, never its own.
        false
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "hub": self.hub_id.as_str(),
            "framesOut": self.port.outputs.frames_out(),
        })
    }

    fn release(&self) {
        lock(&self.port.audio_in).take();
        lock(&self.port.audio_out).take();
        if let Some(hub) = self.port.hub() {
            lock(&hub.ports).retain(|p| p.id != self.port.id);
            lock(&hub.routes)
                .retain(|sink, source| sink != &self.port.id && source != &self.port.id);
            let mut source = lock(&hub.source);
            if source.as_ref() == Some(&self.port.id) {
                *source = None;
            }
            // The grid changed: cells are recomputed from each port's next frame.
            for p in lock(&hub.ports).iter() {
                *lock(&p.cell) = None;
            }
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl MediaPipeline {
    /// Adds a hub.
    pub fn add_hub(&self, kind: HubKind) -> Result<Arc<Hub>, PipelineError> {
        self.add("kurento", kind.type_name(), |id| {
            Hub::new(id, self, kind).map(Arc::new)
        })
    }

    /// Adds a port to the hub `hub`.
    pub fn add_hub_port(&self, hub: &ElementId) -> Result<Arc<HubPort>, PipelineError> {
        let hub = self.element_as::<Hub>(hub)?;
        let full = || {
            PipelineError::InvalidState(format!("{} has {MAX_HUB_PORTS} ports, the limit", hub.id))
        };
        if hub.shared.ports().len() >= MAX_HUB_PORTS {
            return Err(full());
        }
        let port = self.add("kurento", "HubPort", |id| {
            Ok(Arc::new(HubPort {
                port: Arc::new(Port {
                    id,
                    outputs: Outputs::default(),
                    flow: FlowMeter::default(),
                    hub: Arc::downgrade(&hub.shared),
                    cell: Mutex::new(None),
                    converter: Mutex::new(FrameConverter::default()),
                    audio_in: Mutex::new(None),
                    audio_out: Mutex::new(None),
                }),
                hub_id: hub.id.clone(),
            }))
        })?;
        let mut ports = lock(&hub.shared.ports);
        // Ports added at the same time all passed the check above: the limit is enforced
        // again where ports are counted, and a port over it is released.
        if ports.len() >= MAX_HUB_PORTS {
            drop(ports);
            let _ = self.release_element(&port.port.id);
            return Err(full());
        }
        ports.push(port.port.clone());
        for p in ports.iter() {
            *lock(&p.cell) = None;
        }
        Ok(port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_cells_and_fitting() {
        let hub = HubShared {
            kind: HubKind::composite(640, 480, 15).unwrap(),
            ports: Mutex::new(Vec::new()),
            routes: Mutex::new(HashMap::new()),
            source: Mutex::new(None),
            stop: AtomicBool::new(false),
            frames_out: AtomicU64::new(0),
        };
        assert_eq!(hub.cell(0, 1), Some(Rect::new(0, 0, 640, 480)));
        // Two inputs: two columns, one row.
        assert_eq!(hub.cell(1, 2), Some(Rect::new(320, 0, 320, 480)));
        // Three: 2x2, the third bottom left.
        assert_eq!(hub.cell(2, 3), Some(Rect::new(0, 240, 320, 240)));
        // A 4:3 picture in a 320x480 cell: 320x240, centred vertically.
        assert_eq!(
            fit(Rect::new(320, 0, 320, 480), 640, 480),
            Rect::new(320, 120, 320, 240)
        );
        assert!(HubKind::composite(0, 480, 15).is_err());
        assert!(HubKind::composite(640, 480, 0).is_err());
    }
}
