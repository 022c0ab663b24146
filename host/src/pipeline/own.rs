//! GStreamer pipelines that elements run on their own, outside the media pipeline's (players,
//! GStreamer filters): their bus messages are handled on the posting thread, and stopping or
//! dropping them takes them to NULL.

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::media::MediaError;

/// A new GStreamer element of `factory` with a generated name.
pub(super) fn element(factory: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| MediaError::Element {
            element: factory.to_string(),
            message: e.to_string(),
        })
}

/// A pipeline of its own.
pub(super) struct OwnPipeline(gst::Pipeline);

impl OwnPipeline {
    /// An empty pipeline named `name`.
    pub(super) fn new(name: &str) -> Self {
        Self(gst::Pipeline::with_name(name))
    }

    /// Hands every bus message to `handle` on the thread that posts it (messages are not
    /// queued).
    pub(super) fn on_message(&self, handle: impl Fn(&gst::Message) + Send + Sync + 'static) {
        if let Some(bus) = self.0.bus() {
            bus.set_sync_handler(move |_, msg| {
                handle(msg);
                gst::BusSyncReply::Drop
            });
        }
    }

    /// Stops it and forgets the message handler. Idempotent.
    pub(super) fn stop(&self) {
        let _ = self.0.set_state(gst::State::Null);
        if let Some(bus) = self.0.bus() {
            bus.unset_sync_handler();
        }
    }
}

impl std::ops::Deref for OwnPipeline {
    type Target = gst::Pipeline;

    fn deref(&self) -> &gst::Pipeline {
        &self.0
    }
}

impl Drop for OwnPipeline {
    fn drop(&mut self) {
        self.stop();
    }
}
