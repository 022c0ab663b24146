//! Per-store state and the host side of the ABI: the `frame` resource and the `host` imports.
//!
//! A `Store` holds one filter instance. Its data is [`StoreData`]: an empty WASI context (the
//! guest's standard library links against WASI but gets no files, no environment, no network
//! and a frozen clock), the resource table that lends frames to the guest, the memory limiter
//! and the context of the call in progress (who is calling, event and log budgets).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prism_frame::{FrameBuf, FrameError, PixelFormat, Rect, text_size};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{
    EventError, Level, WitColor, WitFrameError, WitPixelFormat, WitPlane, WitRect, prism,
};
use super::events::{EventSink, FilterEvent};
use super::vision::AttachedImages;

/// Longest log line kept from a filter; the rest is cut.
const MAX_LOG_LINE_BYTES: usize = 4096;
/// Longest event name.
const MAX_EVENT_NAME_BYTES: usize = 128;

/// A frame lent to a filter for one `process` call, with an undo journal so a failed call can
/// hand the frame on exactly as it came in.
#[derive(Debug)]
pub struct FrameResource {
    pub(crate) buf: FrameBuf,
    pub(crate) pts_us: u64,
    journal: Vec<Undo>,
}

#[derive(Debug)]
enum Undo {
    /// The whole buffer before a `write` (swapped out, not copied).
    Whole(Vec<u8>),
    /// A region's bytes before a region write or a drawing call.
    Region(Rect, Vec<u8>),
}

impl FrameResource {
    pub(crate) fn new(buf: FrameBuf, pts_us: u64) -> Self {
        Self {
            buf,
            pts_us,
            journal: Vec::new(),
        }
    }

    /// Puts back every byte the filter changed.
    pub(crate) fn rollback(&mut self) {
        while let Some(undo) = self.journal.pop() {
            match undo {
                Undo::Whole(data) => {
                    self.buf
                        .replace_data(data)
                        .expect("invariant: journal keeps the frame size");
                }
                Undo::Region(area, data) => {
                    self.buf
                        .write_region(area, &data)
                        .expect("invariant: journalled regions were read from this frame");
                }
            }
        }
    }

    /// Overwrites a region, journalling the bytes it replaces.
    fn write_region(&mut self, area: Rect, data: &[u8]) -> Result<(), FrameError> {
        let len = self.buf.region_len(area)?;
        if len != data.len() {
            return self.buf.write_region(area, data);
        }
        let old = self
            .buf
            .read_region(area)
            .expect("invariant: region checked above");
        self.buf
            .write_region(area, data)
            .expect("invariant: region and size checked above");
        self.journal.push(Undo::Region(area, old));
        Ok(())
    }

    /// Saves the bytes a drawing call on `area` may change.
    pub(crate) fn save_drawn(&mut self, area: Rect) {
        // Align to even coordinates so i420 chroma is covered too, then clip.
        let x = area.x & !1;
        let y = area.y & !1;
        let grown = Rect::new(
            x,
            y,
            area.width.saturating_add(area.x - x + 1),
            area.height.saturating_add(area.y - y + 1),
        );
        if let Some(clipped) = grown.clip(self.buf.width(), self.buf.height()) {
            let saved = self
                .buf
                .read_region(clipped)
                .expect("invariant: clipped, even-aligned region");
            self.journal.push(Undo::Region(clipped, saved));
        }
    }
}

/// Monotonic time base shared by every filter (`host.now-us`).
fn clock_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Budgets of one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallLimits {
    pub max_events: u32,
    pub max_event_bytes: u32,
    pub max_logs: u32,
}

/// What the host knows about the call in progress.
pub(crate) struct CallContext {
    pub filter: Arc<str>,
    pub limits: CallLimits,
    pub sink: Option<EventSink>,
    pub pts_us: Option<u64>,
    pub events: u32,
    pub logs: u32,
    pub dropped_logs: u64,
    /// The last error-level log line (the SDK logs panics there), for fault reports.
    pub last_error_log: Option<String>,
    /// Time spent in native host work (vision) not yet added to the deadline.
    pub host_credit: Duration,
    /// Deadline extension granted so far in this call.
    pub host_granted: Duration,
}

impl CallContext {
    pub fn begin(&mut self, pts_us: Option<u64>) {
        self.pts_us = pts_us;
        self.events = 0;
        self.logs = 0;
        self.last_error_log = None;
        self.host_credit = Duration::ZERO;
        self.host_granted = Duration::ZERO;
    }
}

/// The data of a filter's `Store`.
pub struct StoreData {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) call: CallContext,
    /// Pictures the host attached to this filter element (`vision.draw-image`).
    pub(crate) images: AttachedImages,
}

/// A clock that always reads zero: filters get time only through `host.now-us`.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl StoreData {
    pub(crate) fn new(
        filter: Arc<str>,
        memory_bytes: u64,
        limits: CallLimits,
        sink: Option<EventSink>,
        images: AttachedImages,
    ) -> Self {
        let wasi = WasiCtxBuilder::new()
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .allow_blocking_current_thread(false)
            .build();
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(memory_bytes).unwrap_or(usize::MAX))
            .instances(64)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limits: store_limits,
            call: CallContext {
                filter,
                limits,
                sink,
                pts_us: None,
                events: 0,
                logs: 0,
                dropped_logs: 0,
                last_error_log: None,
                host_credit: Duration::ZERO,
                host_granted: Duration::ZERO,
            },
            images,
        }
    }

    pub(crate) fn lend(
        &mut self,
        frame: FrameResource,
    ) -> wasmtime::Result<Resource<FrameResource>> {
        Ok(self.table.push(frame)?)
    }

    pub(crate) fn take_back(
        &mut self,
        handle: Resource<FrameResource>,
    ) -> wasmtime::Result<FrameResource> {
        Ok(self.table.delete(handle)?)
    }

    pub(crate) fn frame(
        &mut self,
        handle: &Resource<FrameResource>,
    ) -> wasmtime::Result<&mut FrameResource> {
        Ok(self.table.get_mut(handle)?)
    }

    pub(crate) fn frame_ref(
        &self,
        handle: &Resource<FrameResource>,
    ) -> wasmtime::Result<&FrameResource> {
        Ok(self.table.get(handle)?)
    }
}

/// `frame.write-region` reading the guest's list in place instead of lifting it into a `Vec`
/// first: one copy of the pixels fewer on the hot path of band-wise filters. Linked over the
/// `bindgen!` version (see `runtime::link`).
pub(crate) fn write_region_from_guest(
    mut store: wasmtime::StoreContextMut<'_, StoreData>,
    (handle, area, data): (
        Resource<FrameResource>,
        WitRect,
        wasmtime::component::WasmList<u8>,
    ),
) -> wasmtime::Result<(Result<(), WitFrameError>,)> {
    // Move the frame out of the table while the guest's bytes are borrowed from the store.
    let empty = FrameResource::new(FrameBuf::zeroed(PixelFormat::Gray8, 0, 0), 0);
    let mut frame = std::mem::replace(store.data_mut().frame(&handle)?, empty);
    let result = frame.write_region(area.into(), data.as_le_slice(&store));
    *store.data_mut().frame(&handle)? = frame;
    Ok((result.map_err(Into::into),))
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl prism::filter::types::Host for StoreData {}

impl prism::filter::types::HostFrame for StoreData {
    fn width(&mut self, f: Resource<FrameResource>) -> wasmtime::Result<u32> {
        Ok(self.frame(&f)?.buf.width())
    }

    fn height(&mut self, f: Resource<FrameResource>) -> wasmtime::Result<u32> {
        Ok(self.frame(&f)?.buf.height())
    }

    fn format(&mut self, f: Resource<FrameResource>) -> wasmtime::Result<WitPixelFormat> {
        Ok(self.frame(&f)?.buf.format().into())
    }

    fn pts_us(&mut self, f: Resource<FrameResource>) -> wasmtime::Result<u64> {
        Ok(self.frame(&f)?.pts_us)
    }

    fn planes(&mut self, f: Resource<FrameResource>) -> wasmtime::Result<Vec<WitPlane>> {
        Ok(self
            .frame(&f)?
            .buf
            .planes()
            .into_iter()
            .map(Into::into)
            .collect())
    }

    fn byte_length(&mut self, f: Resource<FrameResource>) -> wasmtime::Result<u32> {
        Ok(self.frame(&f)?.buf.data().len() as u32)
    }

    fn read(&mut self, f: Resource<FrameResource>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.frame(&f)?.buf.data().to_vec())
    }

    fn read_region(
        &mut self,
        f: Resource<FrameResource>,
        area: WitRect,
    ) -> wasmtime::Result<Result<Vec<u8>, WitFrameError>> {
        Ok(self
            .frame(&f)?
            .buf
            .read_region(area.into())
            .map_err(Into::into))
    }

    fn write(
        &mut self,
        f: Resource<FrameResource>,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), WitFrameError>> {
        let frame = self.frame(&f)?;
        // The lifted list becomes the frame's buffer; the old buffer becomes the undo record.
        Ok(match frame.buf.replace_data(data) {
            Ok(old) => {
                frame.journal.push(Undo::Whole(old));
                Ok(())
            }
            Err(e) => Err(e.into()),
        })
    }

    fn write_region(
        &mut self,
        f: Resource<FrameResource>,
        area: WitRect,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), WitFrameError>> {
        // Normally shadowed by `write_region_from_guest`, which skips this intermediate Vec.
        Ok(self
            .frame(&f)?
            .write_region(area.into(), &data)
            .map_err(Into::into))
    }

    fn draw_rect(
        &mut self,
        f: Resource<FrameResource>,
        area: WitRect,
        colour: WitColor,
        thickness: u32,
    ) -> wasmtime::Result<()> {
        let frame = self.frame(&f)?;
        frame.save_drawn(area.into());
        frame.buf.draw_rect(area.into(), colour.into(), thickness);
        Ok(())
    }

    fn fill_rect(
        &mut self,
        f: Resource<FrameResource>,
        area: WitRect,
        colour: WitColor,
    ) -> wasmtime::Result<()> {
        let frame = self.frame(&f)?;
        frame.save_drawn(area.into());
        frame.buf.fill_rect(area.into(), colour.into());
        Ok(())
    }

    fn draw_text(
        &mut self,
        f: Resource<FrameResource>,
        text: String,
        x: u32,
        y: u32,
        scale: u32,
        colour: WitColor,
    ) -> wasmtime::Result<()> {
        let frame = self.frame(&f)?;
        let (w, h) = text_size(&text, scale);
        frame.save_drawn(Rect::new(x, y, w, h));
        frame.buf.draw_text(&text, x, y, scale, colour.into());
        Ok(())
    }

    fn drop(&mut self, f: Resource<FrameResource>) -> wasmtime::Result<()> {
        // Frames are only ever lent (`borrow<frame>`); the host takes them back itself.
        self.table.delete(f)?;
        Ok(())
    }
}

impl prism::filter::host::Host for StoreData {
    fn log(&mut self, level: Level, mut message: String) -> wasmtime::Result<()> {
        let call = &mut self.call;
        if message.len() > MAX_LOG_LINE_BYTES {
            let cut = (0..=MAX_LOG_LINE_BYTES)
                .rev()
                .find(|&i| message.is_char_boundary(i));
            message.truncate(cut.unwrap_or(0));
            message.push('…');
        }
        if matches!(level, Level::Error) {
            call.last_error_log = Some(message.clone());
        }
        call.logs += 1;
        if call.logs > call.limits.max_logs {
            call.dropped_logs += 1;
            return Ok(());
        }
        let filter = &*call.filter;
        match level {
            Level::Trace => tracing::trace!(filter, "{message}"),
            Level::Debug => tracing::debug!(filter, "{message}"),
            Level::Info => tracing::info!(filter, "{message}"),
            Level::Warn => tracing::warn!(filter, "{message}"),
            Level::Error => tracing::error!(filter, "{message}"),
        }
        Ok(())
    }

    fn emit_event(
        &mut self,
        name: String,
        payload_json: String,
    ) -> wasmtime::Result<Result<(), EventError>> {
        let call = &mut self.call;
        if call.events >= call.limits.max_events {
            return Ok(Err(EventError::RateLimited));
        }
        if name.is_empty() || name.len() > MAX_EVENT_NAME_BYTES {
            return Ok(Err(EventError::TooLarge(format!(
                "event names are 1 to {MAX_EVENT_NAME_BYTES} bytes, got {}",
                name.len()
            ))));
        }
        if payload_json.len() > call.limits.max_event_bytes as usize {
            return Ok(Err(EventError::TooLarge(format!(
                "event payloads are at most {} bytes, got {}",
                call.limits.max_event_bytes,
                payload_json.len()
            ))));
        }
        let payload = match serde_json::from_str(&payload_json) {
            Ok(v) => v,
            Err(e) => return Ok(Err(EventError::InvalidJson(e.to_string()))),
        };
        call.events += 1;
        if let Some(sink) = &call.sink {
            sink.send(FilterEvent::Event {
                filter: call.filter.to_string(),
                name,
                payload,
                pts_us: call.pts_us,
            });
        }
        Ok(Ok(()))
    }

    fn now_us(&mut self) -> wasmtime::Result<u64> {
        Ok(clock_origin().elapsed().as_micros() as u64)
    }
}

#[cfg(test)]
mod tests {
    use prism_frame::{Color, PixelFormat};

    use super::*;

    #[test]
    fn rollback_restores_every_change() {
        let original = FrameBuf::filled(PixelFormat::I420, 9, 7, Color::rgb(10, 200, 30));
        let mut frame = FrameResource::new(original.clone(), 0);
        frame.save_drawn(Rect::new(3, 3, 5, 3));
        frame
            .buf
            .fill_rect(Rect::new(3, 3, 5, 3), Color::rgb(255, 0, 0));
        let old = frame
            .buf
            .replace_data(vec![1; original.data().len()])
            .unwrap();
        frame.journal.push(Undo::Whole(old));
        assert_eq!(frame.journal.len(), 2);
        frame.rollback();
        assert_eq!(frame.buf, original);
        assert!(frame.journal.is_empty());
    }
}
