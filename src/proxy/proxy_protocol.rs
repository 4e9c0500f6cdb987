//! PROXY protocol (v1 text, v2 binary) header parser, for a listener behind a TCP
//! load balancer that prepends the client's addresses to each connection
//! (HAProxy's `proxy-protocol.txt`). Pure and incremental: the listener hands over
//! the bytes read so far and learns whether they hold a complete header, need more
//! bytes, or can never become a header. No allocation, no I/O; reading, the
//! deadline and what to do with the addresses belong to the caller.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The connection was relayed for this client (`source`) to this address
    /// (`destination`), as the load balancer saw them.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// A v2 LOCAL command (the balancer's own health check), v1 `UNKNOWN`, or v2
    /// UNSPEC: there is no client address, keep the TCP peer.
    Local,
}

/// Why the bytes can never become a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Neither `PROXY ` (v1) nor the v2 signature: e.g. a client speaking HTTP.
    #[error("not a PROXY protocol header: no `PROXY ` (v1) or v2 signature")]
    NotProxy,
    /// A v1 line that breaks the grammar (fields, spaces, CRLF, length).
    #[error("bad PROXY v1 line: {0}")]
    BadV1(&'static str),
    /// v2 version nibble other than 2.
    #[error("unsupported PROXY v2 version {0} (only 2 is defined)")]
    UnsupportedVersion(u8),
    /// v2 command nibble other than LOCAL (0) or PROXY (1).
    #[error("unsupported PROXY v2 command {0:#x} (only LOCAL 0x0 and PROXY 0x1)")]
    UnsupportedCommand(u8),
    /// v2 family/transport byte other than TCP over IPv4/IPv6 or UNSPEC: UDP and
    /// UNIX sockets have no meaning for an HTTP listener.
    #[error("unsupported PROXY v2 family/transport {0:#04x} (only TCP over IPv4 0x11, TCP over IPv6 0x21, UNSPEC 0x00)")]
    UnsupportedFamily(u8),
    /// v2 header (16 fixed bytes plus its length field) over [`MAX_HEADER_LEN`];
    /// known from the length's high byte alone, hence "at least".
    #[error("PROXY v2 header of at least {0} bytes is over the {MAX_HEADER_LEN}-byte cap")]
    TooLong(usize),
    /// An address or port that does not parse, does not match the family named,
    /// or (v2) an address block shorter than its family needs.
    #[error("bad address in PROXY header: {0}")]
    BadAddress(&'static str),
}

/// The most bytes a header may take (callers stop reading past this). v1 lines are
/// at most 107 bytes. v2 headers are capped here at 2 KiB although their u16 length
/// allows 16 + 65535: the address block is at most 36 bytes (TCP over IPv6), and
/// the TLVs balancers send (ALPN, SNI authority <= 255, unique ID <= 128, SSL
/// details, cloud endpoint IDs, CRC32C) add a few hundred. Opening a connection
/// takes no credentials, so the cap bounds what each client can make us buffer
/// before anything is known about it (64 KiB would be 32 times that).
pub const MAX_HEADER_LEN: usize = 2048;

/// "PROXY" and its single space: every v1 line starts so.
const V1_PREFIX: &[u8] = b"PROXY ";
/// v1 lines are at most 107 bytes including the CRLF (the spec's worst case is
/// `PROXY UNKNOWN` with two full IPv6 addresses and ports).
const V1_MAX_LEN: usize = 107;
/// The v2 signature. Its `\r\n\r\n` start, the `\0` and `QUIT` make HTTP/1 and
/// v1 parsers that receive it by mistake stop at once.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, ver/cmd, family/transport and the u16 length.
const V2_FIXED_LEN: usize = 16;
/// IPv4 (4 + 4) or IPv6 (16 + 16) addresses, then the two ports.
const V2_TCP4_LEN: usize = 12;
const V2_TCP6_LEN: usize = 36;
/// The longest IPv6 text form, with a dotted IPv4 tail (INET6_ADDRSTRLEN - 1).
const IPV6_TEXT_MAX: usize = 45;

/// Parses the header at the start of `buf`.
///
/// `Ok(Some((header, consumed)))` when `buf` starts with a complete header of
/// `consumed` bytes (the bytes after it are the application's); `Ok(None)` when
/// `buf` is a strict prefix of some valid header and more bytes are needed;
/// `Err` as soon as no more bytes can make it valid, so a client speaking plain
/// HTTP is refused at its first byte. The one inexact spot: a v1 IPv6 address
/// still arriving is only checked for its characters and length, and in full once
/// the space after it is there.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyHeaderError> {
    match buf.first() {
        None => Ok(None),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(ProxyHeaderError::NotProxy),
    }
}

/// `buf` starts with `P`.
fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyHeaderError> {
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] != V1_PREFIX[..n] {
        return Err(ProxyHeaderError::NotProxy);
    }
    // The CR must leave room for its LF within the 107 bytes.
    let window = &buf[..buf.len().min(V1_MAX_LEN - 1)];
    let Some(cr) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        if buf.len() >= V1_MAX_LEN - 1 {
            return Err(ProxyHeaderError::BadV1("no CRLF within 107 bytes"));
        }
        let body = buf.get(V1_PREFIX.len()..).unwrap_or_default();
        return v1_body(body, false).map(|_| None);
    };
    // A lone CR or LF does not end the line, and cannot appear in one.
    if buf[cr] == b'\n' {
        return Err(ProxyHeaderError::BadV1("LF without CR"));
    }
    let body = buf
        .get(V1_PREFIX.len()..cr)
        .ok_or(ProxyHeaderError::BadV1("line ends before `PROXY `"))?;
    match buf.get(cr + 1) {
        // Only the LF may follow: the line must already be whole.
        None => v1_body(body, true).map(|_| None),
        Some(b'\n') => Ok(v1_body(body, true)?.map(|h| (h, cr + 2))),
        Some(_) => Err(ProxyHeaderError::BadV1("CR not followed by LF")),
    }
}

/// Checks the line after `PROXY ` (without the CRLF): in full when `complete`, else
/// as a prefix of some valid line. Returns the header when complete.
fn v1_body(body: &[u8], complete: bool) -> Result<Option<Header>, ProxyHeaderError> {
    use ProxyHeaderError::{BadAddress, BadV1};
    const PROTOCOLS: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];
    let mut fields = body.split(|&b| b == b' ');
    let count = body.iter().filter(|&&b| b == b' ').count() + 1;
    // split() always yields at least one field.
    let protocol = fields.next().unwrap_or_default();
    if count == 1 && !complete {
        return if PROTOCOLS.iter().any(|p| p.starts_with(protocol)) {
            Ok(None)
        } else {
            Err(BadV1("protocol is not TCP4, TCP6 or UNKNOWN"))
        };
    }
    let v6 = match protocol {
        // "the receiver must ignore anything presented before the CRLF".
        b"UNKNOWN" => return Ok(complete.then_some(Header::Local)),
        b"TCP4" => false,
        b"TCP6" => true,
        _ => return Err(BadV1("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    if count > 5 {
        return Err(BadV1(
            "more than two addresses and two ports, or a doubled space",
        ));
    }
    if complete && count < 5 {
        return Err(BadV1("needs two addresses and two ports"));
    }
    let mut ips = [None; 2];
    let mut ports = [0u16; 2];
    for (i, field) in fields.enumerate() {
        // Every field but the last one present is followed by a space: whole.
        let whole = complete || i + 2 < count;
        if whole && field.is_empty() {
            return Err(BadV1("empty field (a doubled space?)"));
        }
        if i < 2 {
            ips[i] = if v6 {
                ipv6(field, whole)
            } else {
                ipv4(field, whole)
            }
            .ok_or(match (v6, i) {
                (false, 0) => BadAddress("v1 source is not an IPv4 address (TCP4)"),
                (false, _) => BadAddress("v1 destination is not an IPv4 address (TCP4)"),
                (true, 0) => BadAddress("v1 source is not an IPv6 address (TCP6)"),
                (true, _) => BadAddress("v1 destination is not an IPv6 address (TCP6)"),
            })?;
        } else {
            ports[i - 2] = decimal(field)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(BadAddress(
                    "v1 port is not a decimal 0..=65535 without leading zeros",
                ))?;
        }
    }
    Ok(match ips {
        [Some(src), Some(dst)] if complete => Some(Header::Proxied {
            source: SocketAddr::new(src, ports[0]),
            destination: SocketAddr::new(dst, ports[1]),
        }),
        _ => None,
    })
}

/// A decimal number as the spec writes them: digits only, no sign, no leading
/// zero (octal confusion), at most 5 digits. Empty (a field still to come) is 0:
/// callers reject empty whole fields first.
fn decimal(s: &[u8]) -> Option<u32> {
    if s.len() > 5 || (s.len() > 1 && s[0] == b'0') || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// `Some(Some(ip))` for a whole dotted quad; for a partial one `Some(None)` while
/// `s` can still grow into one (any prefix of a valid octet is itself a valid
/// octet, so this is exact); `None` when it cannot.
fn ipv4(s: &[u8], whole: bool) -> Option<Option<IpAddr>> {
    let parts = s.iter().filter(|&&b| b == b'.').count() + 1;
    if parts > 4 || (whole && parts < 4) {
        return None;
    }
    let mut octets = [0u8; 4];
    for (i, part) in s.split(|&b| b == b'.').enumerate() {
        // Only the last octet of a partial address may still be empty.
        if part.is_empty() && (whole || i + 1 < parts) {
            return None;
        }
        octets[i] = u8::try_from(decimal(part)?).ok()?;
    }
    Some(whole.then(|| IpAddr::V4(Ipv4Addr::from(octets))))
}

/// As [`ipv4`] for an IPv6 address in text form (`::ffff:1.2.3.4` stays as
/// written, IPv4-mapped); a partial one is only checked for its characters and
/// length, as an exact prefix check of the IPv6 grammar is not worth its code.
fn ipv6(s: &[u8], whole: bool) -> Option<Option<IpAddr>> {
    let allowed = |b: &u8| b.is_ascii_hexdigit() || *b == b':' || *b == b'.';
    if s.len() > IPV6_TEXT_MAX || !s.iter().all(allowed) {
        return None;
    }
    if !whole {
        return Some(None);
    }
    let text = std::str::from_utf8(s).ok()?;
    Some(Some(IpAddr::V6(text.parse::<Ipv6Addr>().ok()?)))
}

/// `buf` starts with `\r`. Each field is checked as soon as its byte is there.
fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyHeaderError> {
    use ProxyHeaderError::*;
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(NotProxy);
    }
    let mut proxy = false;
    if let Some(&ver_cmd) = buf.get(12) {
        if ver_cmd >> 4 != 2 {
            return Err(UnsupportedVersion(ver_cmd >> 4));
        }
        proxy = match ver_cmd & 0x0f {
            0x0 => false,
            0x1 => true,
            cmd => return Err(UnsupportedCommand(cmd)),
        };
    }
    // LOCAL: "the receiver must ... discard the protocol block including the
    // family", so its family byte and address block are not read.
    let family = buf.get(13).copied().unwrap_or(0);
    let addresses = match family {
        _ if !proxy => 0,
        0x00 => 0,
        0x11 => V2_TCP4_LEN,
        0x21 => V2_TCP6_LEN,
        other => return Err(UnsupportedFamily(other)),
    };
    // The high length byte alone can already be over the cap.
    if let Some(&high) = buf.get(14) {
        let least = V2_FIXED_LEN + (usize::from(high) << 8);
        if least > MAX_HEADER_LEN {
            return Err(TooLong(least));
        }
    }
    let Some(&[high, low]) = buf.get(14..16) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([high, low]));
    let total = V2_FIXED_LEN + len;
    if total > MAX_HEADER_LEN {
        return Err(TooLong(total));
    }
    if len < addresses {
        return Err(BadAddress(
            "v2 length shorter than the address block of its family",
        ));
    }
    let Some(block) = buf.get(V2_FIXED_LEN..total) else {
        return Ok(None);
    };
    // TLVs after the addresses (ALPN, SNI, ...) are skipped: nothing here uses
    // them, and they are counted in `len`.
    let header = match addresses {
        V2_TCP4_LEN => block.first_chunk().map(v2_tcp4),
        V2_TCP6_LEN => block.first_chunk().map(v2_tcp6),
        _ => Some(Header::Local),
    }
    // Not reached: `len >= addresses` was checked above.
    .ok_or(BadAddress("v2 address block cut short"))?;
    Ok(Some((header, total)))
}

/// TCP over IPv4: source, destination, source port, destination port.
fn v2_tcp4(block: &[u8; V2_TCP4_LEN]) -> Header {
    let [a, b, c, d, e, f, g, h, sp0, sp1, dp0, dp1] = *block;
    Header::Proxied {
        source: SocketAddr::from(([a, b, c, d], u16::from_be_bytes([sp0, sp1]))),
        destination: SocketAddr::from(([e, f, g, h], u16::from_be_bytes([dp0, dp1]))),
    }
}

/// TCP over IPv6: the same layout with 16-byte addresses.
fn v2_tcp6(b: &[u8; V2_TCP6_LEN]) -> Header {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&b[..16]);
    dst.copy_from_slice(&b[16..32]);
    Header::Proxied {
        source: SocketAddr::from((src, u16::from_be_bytes([b[32], b[33]]))),
        destination: SocketAddr::from((dst, u16::from_be_bytes([b[34], b[35]]))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    fn proxied(source: &str, destination: &str) -> Header {
        Header::Proxied {
            source: sa(source),
            destination: sa(destination),
        }
    }

    /// A v2 header: signature, `ver_cmd`, `family`, the length, then `block`.
    fn v2(ver_cmd: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([ver_cmd, family]);
        h.extend(u16::try_from(block.len()).expect("u16").to_be_bytes());
        h.extend(block);
        h
    }

    const V2_TCP4_BLOCK: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 7, 0xd4, 0x31, 0x01, 0xbb];

    fn v2_tcp6_block() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend("2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        b.extend("2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        b.extend(54321u16.to_be_bytes());
        b.extend(443u16.to_be_bytes());
        b
    }

    /// Whole, and then every strict prefix: incomplete, never an error.
    fn check_valid(h: &[u8], want: Header) {
        assert_eq!(
            parse(h),
            Ok(Some((want, h.len()))),
            "{:?}",
            String::from_utf8_lossy(h)
        );
        for n in 0..h.len() {
            assert_eq!(
                parse(&h[..n]),
                Ok(None),
                "prefix {n} of {:?}",
                String::from_utf8_lossy(h)
            );
        }
    }

    fn err(h: &[u8]) -> ProxyHeaderError {
        match parse(h) {
            Err(e) => e,
            ok => panic!("{:?} parsed: {ok:?}", String::from_utf8_lossy(h)),
        }
    }

    #[test]
    fn v1_tcp4() {
        check_valid(
            b"PROXY TCP4 192.0.2.1 198.51.100.7 54321 443\r\n",
            proxied("192.0.2.1:54321", "198.51.100.7:443"),
        );
        check_valid(
            b"PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n",
            proxied("255.255.255.255:65535", "0.0.0.0:0"),
        );
    }

    #[test]
    fn v1_tcp6_keeps_mapped_addresses() {
        check_valid(
            b"PROXY TCP6 2001:db8::1 2001:DB8::2 54321 443\r\n",
            proxied("[2001:db8::1]:54321", "[2001:db8::2]:443"),
        );
        check_valid(
            b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n",
            proxied("[::ffff:192.0.2.1]:1", "[::1]:2"),
        );
        check_valid(
            b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 ::ffff:ffff 65535 65535\r\n",
            proxied(
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                "[::ffff:ffff]:65535",
            ),
        );
    }

    #[test]
    fn v1_unknown_is_local_and_its_rest_ignored() {
        check_valid(b"PROXY UNKNOWN\r\n", Header::Local);
        check_valid(
            b"PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n",
            Header::Local,
        );
        check_valid(b"PROXY UNKNOWN  whatever \x00\xff\r\n", Header::Local);
        // The longest line: 107 bytes with the CRLF.
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX_LEN - 2, b'x');
        line.extend(b"\r\n");
        check_valid(&line, Header::Local);
        line.insert(20, b'x');
        assert_eq!(
            err(&line),
            ProxyHeaderError::BadV1("no CRLF within 107 bytes")
        );
    }

    #[test]
    fn v2_ipv4_ipv6() {
        check_valid(
            &v2(0x21, 0x11, &V2_TCP4_BLOCK),
            proxied("192.0.2.1:54321", "198.51.100.7:443"),
        );
        check_valid(
            &v2(0x21, 0x21, &v2_tcp6_block()),
            proxied("[2001:db8::1]:54321", "[2001:db8::2]:443"),
        );
    }

    #[test]
    fn v2_local_and_unspec_keep_the_peer() {
        check_valid(&v2(0x20, 0x00, &[]), Header::Local);
        // LOCAL ignores the family and whatever block comes with it.
        check_valid(&v2(0x20, 0x11, &V2_TCP4_BLOCK), Header::Local);
        check_valid(&v2(0x20, 0x12, &[1, 2, 3]), Header::Local);
        // PROXY with UNSPEC: no address, so the real endpoints.
        check_valid(&v2(0x21, 0x00, &[]), Header::Local);
        check_valid(&v2(0x21, 0x00, &[9; 40]), Header::Local);
    }

    #[test]
    fn v2_tlvs_are_skipped_but_counted() {
        let mut block = V2_TCP4_BLOCK.to_vec();
        // PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY "example.com", PP2_TYPE_NOOP.
        block.extend([0x01, 0x00, 0x02, b'h', b'2']);
        block.extend([0x02, 0x00, 0x0b]);
        block.extend(b"example.com");
        block.extend([0x04, 0x00, 0x03, 0, 0, 0]);
        check_valid(
            &v2(0x21, 0x11, &block),
            proxied("192.0.2.1:54321", "198.51.100.7:443"),
        );
        let mut block6 = v2_tcp6_block();
        block6.extend([0x05, 0x00, 0x04, 1, 2, 3, 4]);
        check_valid(
            &v2(0x21, 0x21, &block6),
            proxied("[2001:db8::1]:54321", "[2001:db8::2]:443"),
        );
    }

    #[test]
    fn v2_length_cap() {
        let mut block = V2_TCP4_BLOCK.to_vec();
        block.resize(MAX_HEADER_LEN - V2_FIXED_LEN, 0);
        let h = v2(0x21, 0x11, &block);
        assert_eq!(h.len(), MAX_HEADER_LEN);
        assert_eq!(
            parse(&h),
            Ok(Some((
                proxied("192.0.2.1:54321", "198.51.100.7:443"),
                MAX_HEADER_LEN
            )))
        );
        block.push(0);
        let h = v2(0x21, 0x11, &block);
        assert_eq!(err(&h[..16]), ProxyHeaderError::TooLong(MAX_HEADER_LEN + 1));
        // 0xffff is refused from its first byte, not after 64 KiB.
        let h = v2(0x21, 0x11, &[0; 0xffff]);
        assert!(matches!(err(&h[..15]), ProxyHeaderError::TooLong(_)));
        assert!(err(&h[..15]).to_string().contains("2048-byte cap"));
    }

    #[test]
    fn bytes_after_the_header_are_not_consumed() {
        let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for h in [
            b"PROXY TCP4 192.0.2.1 198.51.100.7 54321 443\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2(0x21, 0x11, &V2_TCP4_BLOCK),
            v2(0x20, 0x00, &[]),
        ] {
            let mut buf = h.clone();
            buf.extend(request);
            let (_, n) = parse(&buf).unwrap().unwrap();
            assert_eq!(n, h.len());
            assert_eq!(&buf[n..], request);
        }
        // A v1 line followed by another CRLF: only the first line is the header.
        let (_, n) = parse(b"PROXY UNKNOWN\r\n\r\n").unwrap().unwrap();
        assert_eq!(n, 15);
    }

    #[test]
    fn plain_http_is_refused_at_once() {
        use ProxyHeaderError::NotProxy;
        for (req, at) in [
            (&b"GET / HTTP/1.1\r\n"[..], 1),
            (b"POST / HTTP/1.1\r\n", 2),
            (b"PUT / HTTP/1.1\r\n", 2),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 3),
            (b"PATCH / HTTP/1.1\r\n", 2),
            (b"\x16\x03\x01\x02\x00", 1),
            (b"\r\n\r\nGET", 5),
            (b"proxy TCP4", 1),
            (b"PROXY\r\n", 6),
        ] {
            assert_eq!(parse(&req[..at - 1]), Ok(None), "{req:?}");
            assert_eq!(parse(&req[..at]), Err(NotProxy), "{req:?}");
            assert_eq!(parse(req), Err(NotProxy), "{req:?}");
        }
    }

    #[test]
    fn v2_bad_signature_version_command_family() {
        use ProxyHeaderError::*;
        let mut h = v2(0x21, 0x11, &V2_TCP4_BLOCK);
        h[10] = b'X';
        assert_eq!(err(&h[..11]), NotProxy);
        // Version 1 in the v2 format, and 3.
        assert_eq!(
            err(&v2(0x11, 0x11, &V2_TCP4_BLOCK)[..13]),
            UnsupportedVersion(1)
        );
        assert_eq!(err(&v2(0x31, 0x11, &V2_TCP4_BLOCK)), UnsupportedVersion(3));
        assert_eq!(
            err(&v2(0x22, 0x11, &V2_TCP4_BLOCK)[..13]),
            UnsupportedCommand(2)
        );
        // UDP, UNIX and undefined families: refused as soon as the byte is there.
        for family in [0x12, 0x22, 0x31, 0x32, 0x10, 0x13, 0x41, 0xff] {
            assert_eq!(
                err(&v2(0x21, family, &[0; 216])[..14]),
                UnsupportedFamily(family)
            );
        }
        assert!(err(&v2(0x21, 0x12, &[0; 12])).to_string().contains("0x12"));
        // A length too short for the family's addresses.
        assert_eq!(
            err(&v2(0x21, 0x11, &V2_TCP4_BLOCK[..11])[..16]),
            BadAddress("v2 length shorter than the address block of its family")
        );
        assert!(matches!(err(&v2(0x21, 0x21, &[0; 35])), BadAddress(_)));
    }

    #[test]
    fn v1_malformed() {
        use ProxyHeaderError::*;
        for (line, want) in [
            (
                &b"PROXY TCP4 192.0.2.1 198.51.100.7 54321 443\n"[..],
                BadV1("LF without CR"),
            ),
            (
                b"PROXY TCP4 192.0.2.1 198.51.100.7 54321 443\rX",
                BadV1("CR not followed by LF"),
            ),
            (b"PROXY UNKNOWN\r\r\n", BadV1("CR not followed by LF")),
            (
                b"PROXY  TCP4",
                BadV1("protocol is not TCP4, TCP6 or UNKNOWN"),
            ),
            (
                b"PROXY TCP5",
                BadV1("protocol is not TCP4, TCP6 or UNKNOWN"),
            ),
            (
                b"PROXY tcp4",
                BadV1("protocol is not TCP4, TCP6 or UNKNOWN"),
            ),
            (
                b"PROXY UNKNOWNX",
                BadV1("protocol is not TCP4, TCP6 or UNKNOWN"),
            ),
            (
                b"PROXY TCP4\r\n",
                BadV1("needs two addresses and two ports"),
            ),
            (
                b"PROXY TCP4 192.0.2.1 198.51.100.7 54321\r\n",
                BadV1("needs two addresses and two ports"),
            ),
            (
                b"PROXY TCP4 192.0.2.1  198",
                BadV1("empty field (a doubled space?)"),
            ),
            (
                b"PROXY TCP4 192.0.2.1 198.51.100.7 54321 443 ",
                BadV1("more than two addresses and two ports, or a doubled space"),
            ),
        ] {
            assert_eq!(err(line), want, "{:?}", String::from_utf8_lossy(line));
        }
        // Over 107 bytes without a CRLF, even while each field is still plausible.
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN - 1, b'a');
        // 105 bytes could still end with the CRLF at 106 and 107; 106 cannot.
        assert_eq!(parse(&long[..V1_MAX_LEN - 2]), Ok(None));
        assert_eq!(err(&long), BadV1("no CRLF within 107 bytes"));
    }

    #[test]
    fn v1_bad_ports_and_addresses() {
        let port = ProxyHeaderError::BadAddress(
            "v1 port is not a decimal 0..=65535 without leading zeros",
        );
        for ports in [
            "65536 1", "1 65536", "080 1", "00 1", "+80 1", "-1 1", "1 8a", "123456 1", "1 99999",
        ] {
            let line = format!("PROXY TCP4 192.0.2.1 198.51.100.7 {ports}\r\n");
            assert_eq!(err(line.as_bytes()), port, "{line}");
        }
        for (line, what) in [
            (
                "PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n",
                "source is not an IPv4",
            ),
            (
                "PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n",
                "source is not an IPv4",
            ),
            ("PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n", "source is not an IPv4"),
            (
                "PROXY TCP4 1.2.3.4.5 1.2.3.4 1 2\r\n",
                "source is not an IPv4",
            ),
            (
                "PROXY TCP4 1.2.3.4 1..3.4 1 2\r\n",
                "destination is not an IPv4",
            ),
            ("PROXY TCP4 ::1 1.2.3.4 1 2\r\n", "source is not an IPv4"),
            (
                "PROXY TCP4 1.2.3.4 2001:db8::1 1 2\r\n",
                "destination is not an IPv4",
            ),
            ("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "source is not an IPv6"),
            ("PROXY TCP6 ::1 ::g 1 2\r\n", "destination is not an IPv6"),
            ("PROXY TCP6 1:::2 ::1 1 2\r\n", "source is not an IPv6"),
            (
                "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
                "source is not an IPv6",
            ),
        ] {
            let e = err(line.as_bytes());
            assert!(e.to_string().contains(what), "{line}: {e}");
        }
    }

    /// Fields are judged as they arrive, not only at the CRLF.
    #[test]
    fn v1_errors_before_the_line_ends() {
        for partial in [
            "PROXY TCP4 256",
            "PROXY TCP4 1.2.3.4.",
            "PROXY TCP4 01",
            "PROXY TCP4 ::",
            "PROXY TCP4 1.2.3.4 5.6.7.8 080",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536",
            "PROXY TCP6 ::1 ::2 1 2 ",
            "PROXY TCP6 x",
        ] {
            assert!(parse(partial.as_bytes()).is_err(), "{partial}");
        }
        // Once the CR is there the line must be whole.
        assert!(parse(b"PROXY TCP4 1.2.3.4\r").is_err());
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), Ok(None));
        for partial in [
            "PROXY TCP4 1.2.3.",
            "PROXY TCP4 1.2.3.4 5.6.7.8 6553",
            "PROXY TCP6 ::ffff:1.2",
        ] {
            assert_eq!(parse(partial.as_bytes()), Ok(None), "{partial}");
        }
    }

    /// A v1 or v2 header, and what it says, from arbitrary addresses.
    fn valid_header() -> impl Strategy<Value = (Vec<u8>, Header)> {
        // Zero and 0xffff groups often: `::` and `::ffff:a.b.c.d` in text form.
        let group = prop_oneof![Just(0u16), Just(0xffff), any::<u16>()];
        let v6 = prop::array::uniform8(group)
            .prop_map(|g| Ipv6Addr::new(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]));
        let ip = prop_oneof![
            any::<[u8; 4]>().prop_map(|o| IpAddr::from(Ipv4Addr::from(o))),
            v6.prop_map(IpAddr::V6),
        ];
        let pair = (ip.clone(), any::<u16>(), ip, any::<u16>())
            .prop_filter("one family", |(s, _, d, _)| s.is_ipv4() == d.is_ipv4());
        let v1 = pair.clone().prop_map(|(s, sp, d, dp)| {
            let proto = if s.is_ipv4() { "TCP4" } else { "TCP6" };
            let line = format!("PROXY {proto} {s} {d} {sp} {dp}\r\n");
            (
                line.into_bytes(),
                Header::Proxied {
                    source: (s, sp).into(),
                    destination: (d, dp).into(),
                },
            )
        });
        let unknown = "[ -~]{0,90}".prop_map(|rest| {
            let line = if rest.is_empty() {
                "PROXY UNKNOWN\r\n".to_string()
            } else {
                format!("PROXY UNKNOWN {rest}\r\n")
            };
            (line.into_bytes(), Header::Local)
        });
        let tlvs = prop::collection::vec(any::<u8>(), 0..300);
        let v2_proxy = (pair, tlvs.clone()).prop_map(|((s, sp, d, dp), tlvs)| {
            let mut block = Vec::new();
            let family = match (s, d) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    block.extend(s.octets());
                    block.extend(d.octets());
                    0x11
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    block.extend(s.octets());
                    block.extend(d.octets());
                    0x21
                }
                _ => unreachable!("filtered"),
            };
            block.extend(sp.to_be_bytes());
            block.extend(dp.to_be_bytes());
            block.extend(tlvs);
            (
                v2(0x21, family, &block),
                Header::Proxied {
                    source: (s, sp).into(),
                    destination: (d, dp).into(),
                },
            )
        });
        let v2_local = (any::<u8>(), tlvs)
            .prop_map(|(family, block)| (v2(0x20, family, &block), Header::Local));
        prop_oneof![v1, unknown, v2_proxy, v2_local]
    }

    /// Random bytes, often behind the start of a header so the parser gets past it.
    fn noise() -> impl Strategy<Value = Vec<u8>> {
        let start = prop_oneof![
            Just(Vec::new()),
            Just(b"PROXY ".to_vec()),
            Just(b"PROXY TCP4 ".to_vec()),
            Just(b"PROXY TCP6 ".to_vec()),
            Just(V2_SIGNATURE.to_vec()),
            Just([&V2_SIGNATURE[..], &[0x21, 0x11]].concat()),
        ];
        (start, prop::collection::vec(any::<u8>(), 0..256)).prop_map(|(mut s, tail)| {
            s.extend(tail);
            s
        })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(buf in noise()) {
            match parse(&buf) {
                Ok(Some((_, n))) => prop_assert!(n <= buf.len() && n <= MAX_HEADER_LEN),
                Ok(None) => prop_assert!(buf.len() < MAX_HEADER_LEN),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn a_header_is_consumed_exactly(
            (header, want) in valid_header(),
            tail in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut buf = header.clone();
            buf.extend(&tail);
            prop_assert_eq!(parse(&buf), Ok(Some((want, header.len()))));
            for n in 0..header.len() {
                prop_assert_eq!(parse(&header[..n]), Ok(None), "prefix {}", n);
            }
        }
    }
}
