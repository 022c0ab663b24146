//! UDP at the edge of the `RtpEndpoint`: binding an RTP/RTCP port pair, choosing the address
//! to announce in `c=`, telling RTP from RTCP on a muxed port, and the receive loop that hands
//! datagrams to the element. Sending is a plain non-blocking `send_to` from whichever thread
//! has a packet (a GStreamer streaming thread, a tokio task): a full socket buffer drops the
//! packet, as a congested network would.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// Largest datagram read (an RTP packet from Prism is at most ~1300 bytes; cameras may use a
/// 1500-byte MTU or jumbo frames).
pub const MAX_DATAGRAM: usize = 9000;
/// Tries at getting an even RTP port with the odd one above it free (RFC 3550 11).
const PAIR_ATTEMPTS: usize = 16;
/// Pause after a failed receive so a persistent socket error does not spin.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(20);

/// The local sockets of one media stream.
#[derive(Debug)]
pub struct PortPair {
    /// RTP (and muxed RTCP).
    pub rtp: UdpSocket,
    /// RTCP when not muxed.
    pub rtcp: UdpSocket,
}

impl PortPair {
    /// The RTP port.
    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().map_or(0, |a| a.port())
    }

    /// The RTCP port.
    pub fn rtcp_port(&self) -> u16 {
        self.rtcp.local_addr().map_or(0, |a| a.port())
    }
}

fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Binds RTP on an even port and RTCP on the next one when it can, else RTCP anywhere (it is
/// announced with `a=rtcp` either way).
pub fn bind_pair(ip: IpAddr) -> io::Result<PortPair> {
    for _ in 0..PAIR_ATTEMPTS {
        let rtp = bind(SocketAddr::new(ip, 0))?;
        let port = rtp.local_addr()?.port();
        if port.is_multiple_of(2)
            && port < u16::MAX
            && let Ok(rtcp) = bind(SocketAddr::new(ip, port + 1))
        {
            return Ok(PortPair { rtp, rtcp });
        }
    }
    Ok(PortPair {
        rtp: bind(SocketAddr::new(ip, 0))?,
        rtcp: bind(SocketAddr::new(ip, 0))?,
    })
}

/// The IP to bind: the first configured address of the wanted family, else the unspecified
/// address of that family.
pub fn bind_ip(bind_addrs: &[String], ipv6: bool) -> IpAddr {
    bind_addrs
        .iter()
        .filter_map(|a| {
            a.parse::<SocketAddr>()
                .map(|s| s.ip())
                .or_else(|_| a.parse::<IpAddr>())
                .ok()
        })
        .find(|ip| ip.is_ipv6() == ipv6)
        .unwrap_or(if ipv6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        })
}

/// The address to put in `c=`: the bound one when it is specific; else the one the system
/// routes to `remote` (or to the outside world) from; else loopback. Finding the route sends
/// nothing (a UDP `connect` only picks the source address).
pub fn announce_ip(bound: IpAddr, remote: Option<IpAddr>) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    let (any, outside, loopback): (IpAddr, IpAddr, IpAddr) = if bound.is_ipv6() {
        (
            Ipv6Addr::UNSPECIFIED.into(),
            // A documentation prefix: routable-looking, never contacted.
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::LOCALHOST.into(),
        )
    } else {
        (
            Ipv4Addr::UNSPECIFIED.into(),
            Ipv4Addr::new(192, 0, 2, 1).into(),
            Ipv4Addr::LOCALHOST.into(),
        )
    };
    let target = remote
        .filter(|r| r.is_ipv6() == bound.is_ipv6() && !r.is_unspecified())
        .unwrap_or(outside);
    UdpSocket::bind(SocketAddr::new(any, 0))
        .and_then(|s| {
            s.connect(SocketAddr::new(target, 9))?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(loopback)
}

/// `addr` in the form a socket of the given family can send to (IPv4 peers of an IPv6 socket
/// become IPv4-mapped addresses).
pub fn reachable(from_ipv6: bool, addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) if from_ipv6 => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        _ => addr,
    }
}

/// What a datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An RTP packet.
    Rtp,
    /// An RTCP (compound) packet.
    Rtcp,
    /// Neither (STUN, garbage).
    Other,
}

/// Classifies a datagram: RTP version 2 either way; on a muxed port RTCP is told apart by its
/// packet type 192-223 in the second byte (RFC 5761 4).
pub fn classify(datagram: &[u8], rtcp_port: bool) -> Kind {
    if datagram.len() < 8 || datagram[0] >> 6 != 2 {
        return Kind::Other;
    }
    if rtcp_port || (192..=223).contains(&datagram[1]) {
        Kind::Rtcp
    } else if datagram.len() >= 12 {
        Kind::Rtp
    } else {
        Kind::Other
    }
}

/// Reads `socket` until the task is aborted, handing each datagram to `on_datagram`.
pub async fn receive_loop(socket: Arc<tokio::net::UdpSocket>, on_datagram: impl Fn(Bytes)) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, _from)) => on_datagram(Bytes::copy_from_slice(&buf[..n])),
            // An ICMP "port unreachable" for an earlier send (the remote is not listening
            // yet, or no longer): nothing wrong with this socket.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                // Other errors do not end the stream either, but are not retried at once.
                tracing::debug!(cause = %e, "RTP receive failed");
                tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_adjacent_when_possible() {
        let pair = bind_pair(Ipv4Addr::LOCALHOST.into()).unwrap();
        assert_ne!(pair.rtp_port(), 0);
        assert_ne!(pair.rtp_port(), pair.rtcp_port());
        if pair.rtp_port().is_multiple_of(2) {
            assert_eq!(pair.rtcp_port(), pair.rtp_port() + 1);
        }
    }

    #[test]
    fn addresses() {
        let any4: IpAddr = Ipv4Addr::UNSPECIFIED.into();
        assert_eq!(bind_ip(&["0.0.0.0:0".into()], false), any4);
        assert_eq!(
            bind_ip(&["127.0.0.1:0".into(), "[::1]:0".into()], true),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
        assert_eq!(
            bind_ip(&["127.0.0.1:0".into()], true),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        );
        let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
        assert_eq!(announce_ip(lo, None), lo);
        assert_eq!(announce_ip(any4, Some(lo)), lo);
        assert!(!announce_ip(any4, None).is_unspecified());
    }

    #[test]
    fn rtp_and_rtcp_apart() {
        let rtp = [0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7];
        let pli = [0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 7];
        assert_eq!(classify(&rtp, false), Kind::Rtp);
        assert_eq!(classify(&pli, false), Kind::Rtcp);
        assert_eq!(classify(&rtp, true), Kind::Rtcp);
        assert_eq!(
            classify(&[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42], false),
            Kind::Other
        );
        assert_eq!(classify(&[0x80], false), Kind::Other);
    }
}
