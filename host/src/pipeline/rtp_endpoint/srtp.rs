//! SDES-keyed SRTP (RFC 4568) for the `RtpEndpoint`: the crypto suites Kurento names, their
//! keys (configured, random, or read from an `a=crypto` line), and a GStreamer branch
//! (`srtpenc` / `srtpdec`, libsrtp) that protects what is sent and checks and decrypts what
//! arrives.
//!
//! Not DTLS-SRTP: keys travel in the SDP here, which is what cameras and SIP-style servers do;
//! the WebRtcEndpoint's keys come from its DTLS handshake.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::media::MediaError;
use crate::media::rtp::{attach, detach, make};

/// Packets held by each SRTP input before the oldest are dropped (as the ingest's queue).
const SRTP_QUEUE_PACKETS: u64 = 400;

/// Standard base64, padding optional on input (SDPs in the wild write both).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An SRTP crypto suite, as Kurento's `CryptoSuite` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CryptoSuite {
    /// AES-128 counter mode, 32-bit HMAC-SHA1 tag on RTP (80-bit on RTCP, RFC 4568 6.2.2).
    #[serde(rename = "AES_128_CM_HMAC_SHA1_32")]
    Aes128CmHmacSha1_32,
    /// AES-128 counter mode, 80-bit HMAC-SHA1 tag.
    #[serde(rename = "AES_128_CM_HMAC_SHA1_80")]
    Aes128CmHmacSha1_80,
    /// AES-256 counter mode (RFC 6188), 32-bit HMAC-SHA1 tag on RTP.
    #[serde(rename = "AES_256_CM_HMAC_SHA1_32")]
    Aes256CmHmacSha1_32,
    /// AES-256 counter mode, 80-bit HMAC-SHA1 tag.
    #[serde(rename = "AES_256_CM_HMAC_SHA1_80")]
    Aes256CmHmacSha1_80,
}

impl Default for CryptoSuite {
    /// The suite every SDES implementation has.
    fn default() -> Self {
        CryptoSuite::Aes128CmHmacSha1_80
    }
}

impl CryptoSuite {
    /// Every suite.
    pub const ALL: [CryptoSuite; 4] = [
        CryptoSuite::Aes128CmHmacSha1_32,
        CryptoSuite::Aes128CmHmacSha1_80,
        CryptoSuite::Aes256CmHmacSha1_32,
        CryptoSuite::Aes256CmHmacSha1_80,
    ];

    /// Kurento's name (`AES_128_CM_HMAC_SHA1_80`).
    pub fn kurento_name(self) -> &'static str {
        match self {
            CryptoSuite::Aes128CmHmacSha1_32 => "AES_128_CM_HMAC_SHA1_32",
            CryptoSuite::Aes128CmHmacSha1_80 => "AES_128_CM_HMAC_SHA1_80",
            CryptoSuite::Aes256CmHmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            CryptoSuite::Aes256CmHmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
        }
    }

    /// The name in an SDP `a=crypto` line (RFC 4568 for AES-128, RFC 6188 for AES-256).
    pub fn sdp_name(self) -> &'static str {
        match self {
            CryptoSuite::Aes128CmHmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            CryptoSuite::Aes128CmHmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            CryptoSuite::Aes256CmHmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            CryptoSuite::Aes256CmHmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
        }
    }

    /// The suite an SDP names, in either spelling (`AES_CM_128_...` or Kurento's
    /// `AES_128_CM_...`), case-insensitively.
    pub fn from_sdp_name(name: &str) -> Option<Self> {
        let alt = |s: CryptoSuite| s.sdp_name().replace("AES_256_CM", "AES_CM_256");
        Self::ALL.into_iter().find(|s| {
            name.eq_ignore_ascii_case(s.sdp_name())
                || name.eq_ignore_ascii_case(s.kurento_name())
                || name.eq_ignore_ascii_case(&alt(*s))
        })
    }

    /// Bytes of master key followed by master salt: 16 + 14 or 32 + 14.
    pub fn key_len(self) -> usize {
        match self {
            CryptoSuite::Aes128CmHmacSha1_32 | CryptoSuite::Aes128CmHmacSha1_80 => 30,
            CryptoSuite::Aes256CmHmacSha1_32 | CryptoSuite::Aes256CmHmacSha1_80 => 46,
        }
    }

    /// libsrtp's cipher, as GStreamer's `GstSrtpCipherType` nick.
    fn cipher(self) -> &'static str {
        match self {
            CryptoSuite::Aes128CmHmacSha1_32 | CryptoSuite::Aes128CmHmacSha1_80 => "aes-128-icm",
            CryptoSuite::Aes256CmHmacSha1_32 | CryptoSuite::Aes256CmHmacSha1_80 => "aes-256-icm",
        }
    }

    /// The RTP authentication, as GStreamer's `GstSrtpAuthType` nick. RTCP always uses the
    /// 80-bit tag (RFC 4568 6.2.2, and GStreamer's default).
    fn rtp_auth(self) -> &'static str {
        match self {
            CryptoSuite::Aes128CmHmacSha1_32 | CryptoSuite::Aes256CmHmacSha1_32 => "hmac-sha1-32",
            CryptoSuite::Aes128CmHmacSha1_80 | CryptoSuite::Aes256CmHmacSha1_80 => "hmac-sha1-80",
        }
    }
}

impl std::fmt::Display for CryptoSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kurento_name())
    }
}

/// Kurento's `SDES` constructor parameter of an RtpEndpoint (`crypto`). Other fields the
/// client sends along (`__module__`, `__type__`) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SrtpCrypto {
    /// The suite (default `AES_128_CM_HMAC_SHA1_80`).
    #[serde(default)]
    pub crypto: Option<CryptoSuite>,
    /// Master key and salt as plain text: 30 characters for AES-128, 46 for AES-256.
    #[serde(default)]
    pub key: Option<String>,
    /// Master key and salt, base64: 30 or 46 bytes once decoded.
    #[serde(default)]
    pub key_base64: Option<String>,
}

/// Why an SRTP key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// The key is not as long as its suite needs.
    #[error(
        "an {suite} key (master key + salt) is {expected} bytes, this one is {got} \
         (give `key` as {expected} characters or `keyBase64` as {expected} bytes in base64)"
    )]
    KeyLength {
        /// The suite.
        suite: CryptoSuite,
        /// Bytes it needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// Both `key` and `keyBase64` were given.
    #[error("give `key` or `keyBase64`, not both")]
    TwoKeys,
    /// `keyBase64` (or an SDP's inline key) is not base64.
    #[error("the key is not valid base64: {0}")]
    Base64(String),
    /// The SDP's key parameter is not `inline:<key>` or uses a master key identifier.
    #[error("unsupported key parameter {0:?} (expected inline:<base64 key and salt>)")]
    KeyParams(String),
}

/// A suite with its key material (master key followed by master salt).
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    suite: CryptoSuite,
    material: Vec<u8>,
}

impl std::fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SrtpKey")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl SrtpKey {
    /// A key of `suite` from its bytes, checking the length.
    pub fn new(suite: CryptoSuite, material: Vec<u8>) -> Result<Self, SrtpError> {
        if material.len() != suite.key_len() {
            return Err(SrtpError::KeyLength {
                suite,
                expected: suite.key_len(),
                got: material.len(),
            });
        }
        Ok(Self { suite, material })
    }

    /// The key Kurento's constructor parameter describes; a random one when it gives none.
    pub fn from_config(config: &SrtpCrypto) -> Result<Self, SrtpError> {
        let suite = config.crypto.unwrap_or_default();
        match (&config.key, &config.key_base64) {
            (Some(_), Some(_)) => Err(SrtpError::TwoKeys),
            (Some(raw), None) => Self::new(suite, raw.as_bytes().to_vec()),
            (None, Some(b64)) => Self::new(
                suite,
                BASE64
                    .decode(b64.trim())
                    .map_err(|e| SrtpError::Base64(e.to_string()))?,
            ),
            (None, None) => Ok(Self::random(suite)),
        }
    }

    /// A fresh random key.
    pub fn random(suite: CryptoSuite) -> Self {
        // A v4 UUID is 16 bytes from the OS's CSPRNG, of which bytes 6 and 8 carry the version
        // and variant bits: the other 14 are uniformly random.
        let mut material = Vec::with_capacity(suite.key_len());
        while material.len() < suite.key_len() {
            let bytes = *uuid::Uuid::new_v4().as_bytes();
            material.extend(
                bytes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != 6 && *i != 8)
                    .map(|(_, b)| *b),
            );
        }
        material.truncate(suite.key_len());
        Self { suite, material }
    }

    /// The key of an `a=crypto` line's key parameters (`inline:<base64>[|lifetime]`).
    pub fn from_sdp(suite: CryptoSuite, key_params: &str) -> Result<Self, SrtpError> {
        let bad = || SrtpError::KeyParams(key_params.to_string());
        // Several keys (`;`-separated) are allowed by RFC 4568; the first is used.
        let first = key_params.split(';').next().unwrap_or_default().trim();
        let inline = first.strip_prefix("inline:").ok_or_else(bad)?;
        let mut parts = inline.split('|');
        let key = parts.next().unwrap_or_default();
        for extra in parts {
            // A lifetime is fine (libsrtp re-keys never; the stream is shorter than 2^48
            // packets); a master key identifier (`1:4`) needs MKI support, which is not here.
            if extra.contains(':') {
                return Err(bad());
            }
        }
        let material = BASE64
            .decode(key)
            .map_err(|e| SrtpError::Base64(e.to_string()))?;
        Self::new(suite, material)
    }

    /// The suite.
    pub fn suite(&self) -> CryptoSuite {
        self.suite
    }

    /// The key parameter of an `a=crypto` line: `inline:<base64 key and salt>`.
    pub fn sdp_inline(&self) -> String {
        format!("inline:{}", BASE64.encode(&self.material))
    }

    /// The caps `srtpdec` needs to check and decrypt a stream protected with this key.
    fn decoder_caps(&self) -> gst::Caps {
        gst::Caps::builder("application/x-srtp")
            .field("srtp-key", gst::Buffer::from_slice(self.material.clone()))
            .field("srtp-cipher", self.suite.cipher())
            .field("srtp-auth", self.suite.rtp_auth())
            .field("srtcp-cipher", self.suite.cipher())
            .field("srtcp-auth", "hmac-sha1-80")
            .build()
    }
}

/// Which way a packet goes through the SRTP branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Received RTP, decrypted.
    RtpIn,
    /// Received RTCP, decrypted.
    RtcpIn,
    /// RTP to send, protected.
    RtpOut,
    /// RTCP to send, protected.
    RtcpOut,
}

impl Flow {
    const ALL: [Flow; 4] = [Flow::RtpIn, Flow::RtcpIn, Flow::RtpOut, Flow::RtcpOut];

    fn name(self) -> &'static str {
        match self {
            Flow::RtpIn => "rtp-in",
            Flow::RtcpIn => "rtcp-in",
            Flow::RtpOut => "rtp-out",
            Flow::RtcpOut => "rtcp-out",
        }
    }

    fn input_caps(self) -> &'static str {
        match self {
            Flow::RtpIn => "application/x-srtp",
            Flow::RtcpIn => "application/x-srtcp",
            Flow::RtpOut => "application/x-rtp",
            Flow::RtcpOut => "application/x-rtcp",
        }
    }
}

/// Counters of one SRTP branch.
#[derive(Debug, Default)]
pub struct SrtpStats {
    /// Received SRTP packets handed to the decoder.
    pub rtp_in: AtomicU64,
    /// Of those, the ones that came out authentic and decrypted.
    pub rtp_decrypted: AtomicU64,
}

/// One stream's SRTP in GStreamer: `appsrc ! srtpdec ! appsink` for what arrives (RTP and
/// RTCP), `appsrc ! srtpenc ! appsink` for what leaves. Packets that fail authentication (a
/// wrong key, tampering) are dropped by `srtpdec`.
pub struct SrtpBranch {
    bin: gst::Bin,
    inputs: [gst_app::AppSrc; 4],
    decoder: gst::Element,
    stats: Arc<SrtpStats>,
}

impl std::fmt::Debug for SrtpBranch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpBranch")
            .field("name", &self.bin.name())
            .finish_non_exhaustive()
    }
}

fn element_error(element: &str, message: impl std::fmt::Display) -> MediaError {
    MediaError::Element {
        element: element.to_string(),
        message: message.to_string(),
    }
}

impl SrtpBranch {
    /// Builds the branch `name` in `pipeline`: what is sent is protected with `local`, what
    /// arrives is checked with `remote` (whatever its SSRC). `on_packet` gets each packet
    /// that comes out, on a GStreamer streaming thread.
    pub fn new(
        pipeline: &gst::Pipeline,
        name: &str,
        local: &SrtpKey,
        remote: &SrtpKey,
        on_packet: impl Fn(Flow, Bytes) + Send + Sync + 'static,
    ) -> Result<Self, MediaError> {
        let bin = gst::Bin::with_name(name);
        let decoder = make("srtpdec", "srtpdec")?;
        let encoder = make("srtpenc", "srtpenc")?;
        encoder.set_property("key", gst::Buffer::from_slice(local.material.clone()));
        encoder.set_property_from_str("rtp-cipher", local.suite.cipher());
        encoder.set_property_from_str("rtp-auth", local.suite.rtp_auth());
        encoder.set_property_from_str("rtcp-cipher", local.suite.cipher());
        encoder.set_property_from_str("rtcp-auth", "hmac-sha1-80");
        // The remote's SSRCs are not known in advance (SDES does not need a=ssrc): every new
        // one gets the remote key.
        let caps = remote.decoder_caps();
        decoder.connect("request-key", false, move |_| Some(caps.to_value()));
        bin.add_many([&decoder, &encoder])
            .map_err(|e| element_error(name, e))?;

        let stats = Arc::new(SrtpStats::default());
        let on_packet = Arc::new(on_packet);
        let mut inputs = Vec::with_capacity(4);
        for flow in Flow::ALL {
            let (sink_pad, src_pad) = match flow {
                Flow::RtpIn => (
                    decoder.static_pad("rtp_sink"),
                    decoder.static_pad("rtp_src"),
                ),
                Flow::RtcpIn => (
                    decoder.static_pad("rtcp_sink"),
                    decoder.static_pad("rtcp_src"),
                ),
                // Requesting a sink pad of srtpenc makes its source pad at once.
                Flow::RtpOut => (
                    encoder.request_pad_simple("rtp_sink_0"),
                    encoder.static_pad("rtp_src_0"),
                ),
                Flow::RtcpOut => (
                    encoder.request_pad_simple("rtcp_sink_0"),
                    encoder.static_pad("rtcp_src_0"),
                ),
            };
            let (Some(sink_pad), Some(src_pad)) = (sink_pad, src_pad) else {
                return Err(element_error(name, format!("no pads for {}", flow.name())));
            };
            let appsrc = gst_app::AppSrc::builder()
                .name(format!("{}-src", flow.name()))
                .caps(&gst::Caps::new_empty_simple(flow.input_caps()))
                .is_live(true)
                .format(gst::Format::Time)
                .do_timestamp(true)
                .max_buffers(SRTP_QUEUE_PACKETS)
                // Bounded by packets, not bytes (the 200 kB default would drop packets
                // long before the queue is full).
                .max_bytes(0)
                .leaky_type(gst_app::AppLeakyType::Downstream)
                .build();
            let appsink = gst_app::AppSink::builder()
                .name(format!("{}-sink", flow.name()))
                .sync(false)
                .build();
            appsink.set_async(false);
            let callback = on_packet.clone();
            let counted = stats.clone();
            appsink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(buffer) = sample.buffer_owned()
                            && let Ok(mapped) = buffer.into_mapped_buffer_readable()
                        {
                            if flow == Flow::RtpIn {
                                counted.rtp_decrypted.fetch_add(1, Ordering::Relaxed);
                            }
                            callback(flow, Bytes::from_owner(mapped));
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            bin.add_many([appsrc.upcast_ref::<gst::Element>(), appsink.upcast_ref()])
                .map_err(|e| element_error(name, e))?;
            let linked = appsrc
                .static_pad("src")
                .map(|p| p.link(&sink_pad).is_ok())
                .unwrap_or(false)
                && appsink
                    .static_pad("sink")
                    .map(|p| src_pad.link(&p).is_ok())
                    .unwrap_or(false);
            if !linked {
                return Err(element_error(name, format!("cannot link {}", flow.name())));
            }
            inputs.push(appsrc);
        }
        let inputs: [gst_app::AppSrc; 4] =
            inputs.try_into().expect("invariant: one input per flow");
        attach(pipeline, &bin)?;
        Ok(Self {
            bin,
            inputs,
            decoder,
            stats,
        })
    }

    /// Hands a packet in (`RtpIn`/`RtcpIn`: as received; `RtpOut`/`RtcpOut`: to protect).
    /// Never blocks: a full queue drops its oldest packet.
    pub fn push(&self, flow: Flow, packet: Bytes) {
        let index = Flow::ALL
            .iter()
            .position(|f| *f == flow)
            .expect("invariant: every flow is in Flow::ALL");
        if flow == Flow::RtpIn {
            self.stats.rtp_in.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.inputs[index].push_buffer(gst::Buffer::from_slice(packet));
    }

    /// Counters.
    pub fn stats(&self) -> &SrtpStats {
        &self.stats
    }

    /// Received packets `srtpdec` refused (failed authentication or replayed), if it says.
    pub fn rejected(&self) -> Option<u64> {
        let stats = self.decoder.property::<gst::Structure>("stats");
        stats
            .get::<u32>("recv-drop-count")
            .map(u64::from)
            .or_else(|_| stats.get::<u64>("recv-drop-count"))
            .ok()
    }
}

impl Drop for SrtpBranch {
    fn drop(&mut self) {
        detach(&self.bin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_by_either_name() {
        for suite in CryptoSuite::ALL {
            assert_eq!(CryptoSuite::from_sdp_name(suite.sdp_name()), Some(suite));
            assert_eq!(
                CryptoSuite::from_sdp_name(suite.kurento_name()),
                Some(suite)
            );
        }
        assert_eq!(
            CryptoSuite::from_sdp_name("aes_cm_256_hmac_sha1_80"),
            Some(CryptoSuite::Aes256CmHmacSha1_80)
        );
        assert_eq!(CryptoSuite::from_sdp_name("AEAD_AES_128_GCM"), None);
    }

    #[test]
    fn keys_from_the_constructor() {
        let raw = |suite, key: &str| SrtpCrypto {
            crypto: Some(suite),
            key: Some(key.into()),
            key_base64: None,
        };
        let ok = SrtpKey::from_config(&raw(
            CryptoSuite::Aes128CmHmacSha1_80,
            "0123456789abcdef0123456789abcd",
        ))
        .unwrap();
        assert_eq!(ok.material.len(), 30);
        let err = SrtpKey::from_config(&raw(
            CryptoSuite::Aes256CmHmacSha1_32,
            "0123456789abcdef0123456789abcd",
        ))
        .unwrap_err();
        assert_eq!(
            err,
            SrtpError::KeyLength {
                suite: CryptoSuite::Aes256CmHmacSha1_32,
                expected: 46,
                got: 30
            }
        );
        assert!(err.to_string().contains("46"), "{err}");
        let b64 = SrtpCrypto {
            crypto: None,
            key: None,
            key_base64: Some(BASE64.encode([7u8; 30])),
        };
        assert_eq!(SrtpKey::from_config(&b64).unwrap().material, vec![7u8; 30]);
        let both = SrtpCrypto {
            key: Some("x".into()),
            ..b64.clone()
        };
        assert_eq!(SrtpKey::from_config(&both), Err(SrtpError::TwoKeys));
        let garbage = SrtpCrypto {
            key_base64: Some("%%%".into()),
            ..SrtpCrypto::default()
        };
        assert!(matches!(
            SrtpKey::from_config(&garbage),
            Err(SrtpError::Base64(_))
        ));
    }

    #[test]
    fn kurento_json_with_type_tags() {
        let json = r#"{"__module__":"kurento","__type__":"SDES","crypto":"AES_256_CM_HMAC_SHA1_80",
                       "keyBase64":"abc"}"#;
        let c: SrtpCrypto = serde_json::from_str(json).unwrap();
        assert_eq!(c.crypto, Some(CryptoSuite::Aes256CmHmacSha1_80));
        assert_eq!(c.key_base64.as_deref(), Some("abc"));
    }

    #[test]
    fn random_keys_differ_and_round_trip_through_sdp() {
        for suite in CryptoSuite::ALL {
            let a = SrtpKey::random(suite);
            let b = SrtpKey::random(suite);
            assert_ne!(a, b);
            assert_eq!(a.material.len(), suite.key_len());
            let back = SrtpKey::from_sdp(suite, &a.sdp_inline()).unwrap();
            assert_eq!(back, a);
            let with_lifetime = format!("{}|2^31", a.sdp_inline());
            assert_eq!(SrtpKey::from_sdp(suite, &with_lifetime).unwrap(), a);
            let with_mki = format!("{}|2^31|1:4", a.sdp_inline());
            assert!(matches!(
                SrtpKey::from_sdp(suite, &with_mki),
                Err(SrtpError::KeyParams(_))
            ));
        }
        assert!(matches!(
            SrtpKey::from_sdp(CryptoSuite::Aes128CmHmacSha1_80, "inline:QUJD"),
            Err(SrtpError::KeyLength { got: 3, .. })
        ));
        assert!(SrtpKey::from_sdp(CryptoSuite::Aes128CmHmacSha1_80, "uri:x").is_err());
        assert!(format!("{:?}", SrtpKey::random(CryptoSuite::default())).contains("suite"));
    }
}
