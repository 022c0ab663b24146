//! Why an `RtpEndpoint` operation fails, and the Kurento protocol code of each reason.

use std::net::IpAddr;

use super::SrtpError;
use crate::pipeline::PipelineError;

/// Which negotiation step a remote SDP was given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpStage {
    /// `process_offer`.
    Offer,
    /// `process_answer`.
    Answer,
}

impl std::fmt::Display for SdpStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SdpStage::Offer => "offer",
            SdpStage::Answer => "answer",
        })
    }
}

/// Why an RtpEndpoint operation failed. [`RtpEndpointError::kurento_code`] maps it to the
/// protocol.
#[derive(Debug, thiserror::Error)]
pub enum RtpEndpointError {
    /// The SDP could not be parsed.
    #[error("malformed SDP: {0}")]
    BadSdp(String),
    /// The SDP parsed, but nothing in it is usable (codecs, transport, keys...).
    #[error("no usable media in the {stage}: {reasons}")]
    Incompatible {
        /// Offer or answer.
        stage: SdpStage,
        /// Why, per `m=` section.
        reasons: String,
    },
    /// The `crypto` constructor parameter is unusable.
    #[error("bad crypto parameter: {0}")]
    Crypto(#[from] SrtpError),
    /// The endpoint has already negotiated (or has an offer out, for `process_offer`).
    #[error("the endpoint is already negotiated: {0}")]
    AlreadyNegotiated(&'static str),
    /// `process_answer` before `generate_offer`.
    #[error("no offer was generated: call generateOffer before processAnswer")]
    NotOfferGenerated,
    /// `process_answer` twice.
    #[error("the answer was already processed")]
    AnswerAlreadyProcessed,
    /// UDP ports could not be opened.
    #[error("cannot open UDP ports on {address}: {source}")]
    Transport {
        /// Where.
        address: IpAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The endpoint has been released.
    #[error("the endpoint has been released")]
    Released,
    /// The pipeline refused the element.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl RtpEndpointError {
    /// The Kurento protocol error code (Kurento's names in the comments).
    pub fn kurento_code(&self) -> i64 {
        match self {
            // SDP_PARSE_ERROR
            RtpEndpointError::BadSdp(_) => 40201,
            // SDP_END_POINT_PROCESS_OFFER_ERROR / SDP_END_POINT_PROCESS_ANSWER_ERROR
            RtpEndpointError::Incompatible {
                stage: SdpStage::Offer,
                ..
            } => 40205,
            RtpEndpointError::Incompatible {
                stage: SdpStage::Answer,
                ..
            } => 40206,
            // MEDIA_OBJECT_ILLEGAL_PARAM_ERROR
            RtpEndpointError::Crypto(_) => 40107,
            // SDP_END_POINT_ALREADY_NEGOTIATED
            RtpEndpointError::AlreadyNegotiated(_) => 40208,
            // SDP_END_POINT_NOT_OFFER_GENERATED
            RtpEndpointError::NotOfferGenerated => 40209,
            // SDP_END_POINT_ANSWER_ALREADY_PROCCESED
            RtpEndpointError::AnswerAlreadyProcessed => 40210,
            // SDP_END_POINT_CANNOT_CREATE_SESSON
            RtpEndpointError::Transport { .. } => 40211,
            // MEDIA_OBJECT_NOT_FOUND
            RtpEndpointError::Released
            | RtpEndpointError::Pipeline(PipelineError::Released)
            | RtpEndpointError::Pipeline(PipelineError::NoSuchElement(_)) => 40101,
            // NOT_ENOUGH_RESOURCES
            RtpEndpointError::Pipeline(_) => 40009,
        }
    }
}
