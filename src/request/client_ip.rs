//! Who the client is: the TCP peer, or, when the peer is a trusted proxy, the
//! right-most X-Forwarded-For entry that is not itself a trusted proxy: the one
//! address no client can forge past a proxy we trust.
//! An untrusted peer's X-Forwarded-For is never believed: anyone can send one.

use std::net::{IpAddr, SocketAddr};

use crate::core::config::units::Cidr;

/// The client address and what was learnt finding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    pub ip: IpAddr,
    /// Taken from X-Forwarded-For rather than the TCP peer.
    pub from_xff: bool,
    /// Entries read on the way that were not addresses (skipped, counted in metrics).
    pub malformed: u32,
}

fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

/// One X-Forwarded-For entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:443`. IPv4-mapped IPv6 becomes IPv4, so trust and GeoIP see one form.
pub fn parse_entry(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Some(v4) = dotted_quad(s.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    let ip = match s.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            Some(inner) => IpAddr::V6(inner.parse().ok()?),
            None => s.parse::<SocketAddr>().ok()?.ip(),
        },
    };
    Some(ip.to_canonical())
}

/// A plain dotted quad (`1.2.3.4`: four octets of one to three digits, no
/// leading zeros), the usual X-Forwarded-For entry, read in one pass; None for
/// anything else, which the general parser then reads. It accepts nothing the
/// standard parser refuses: std's parser is generic and costs five times more.
fn dotted_quad(s: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split(|b| *b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let mut v = 0u16;
        for &b in part {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u16::from(b - b'0');
        }
        *octet = u8::try_from(v).ok()?;
    }
    match parts.next() {
        None => Some(octets.into()),
        Some(_) => None,
    }
}

/// The client of a request from `peer` carrying the X-Forwarded-For header values
/// `xff`, in order (several headers form one list, left to right).
///
/// When `peer` is in `trusted`, the entries are read right to left: trusted ones are
/// skipped, malformed ones skipped and counted, and the first other one is the
/// client. When every entry is trusted, the left-most is the furthest hop known.
/// Otherwise (untrusted peer, or no usable entry) the client is the peer itself.
pub fn client_ip<'a>(
    peer: IpAddr,
    xff: impl Iterator<Item = &'a str>,
    trusted: &[Cidr],
) -> ClientAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return ClientAddr {
            ip: peer,
            from_xff: false,
            malformed: 0,
        };
    }
    // The answer lies in the last header holding an untrusted entry, so headers are
    // taken in order and each read from its right end: no list is collected.
    let mut client = None;
    let mut malformed = 0u32; // malformed entries right of `client`
    let mut leftmost_trusted = None;
    for header in xff {
        let mut found = None;
        let mut header_malformed = 0u32;
        let mut header_leftmost = None;
        for entry in header.rsplit(',') {
            if entry.trim().is_empty() {
                continue;
            }
            match parse_entry(entry) {
                None => header_malformed = header_malformed.saturating_add(1),
                Some(ip) if is_trusted(ip, trusted) => header_leftmost = Some(ip),
                Some(ip) => {
                    found = Some(ip);
                    break;
                }
            }
        }
        if found.is_some() {
            client = found;
            malformed = header_malformed;
        } else {
            malformed = malformed.saturating_add(header_malformed);
            leftmost_trusted = leftmost_trusted.or(header_leftmost);
        }
    }
    match client.or(leftmost_trusted) {
        Some(ip) => ClientAddr {
            ip,
            from_xff: true,
            malformed,
        },
        None => ClientAddr {
            ip: peer,
            from_xff: false,
            malformed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    const PROXIES: [&str; 3] = ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"];

    proptest! {
        // The fast path reads a dotted quad exactly as the standard parser
        // does, and takes nothing the standard parser refuses.
        #[test]
        fn a_dotted_quad_reads_as_std_reads_it(a: u8, b: u8, c: u8, d: u8) {
            let s = format!("{a}.{b}.{c}.{d}");
            prop_assert_eq!(dotted_quad(s.as_bytes()), s.parse().ok());
        }

        #[test]
        fn the_fast_path_accepts_nothing_std_refuses(s in "[0-9.]{0,17}|[0-9a-f:.x ]{0,12}") {
            if let Some(v4) = dotted_quad(s.as_bytes()) {
                prop_assert_eq!(Some(v4), s.parse().ok());
            }
        }
    }

    #[test]
    fn odd_quads_are_left_to_the_standard_parser() {
        for s in [
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "1..2.3",
            "1.2.3.4 ",
            "",
        ] {
            assert_eq!(dotted_quad(s.as_bytes()), None, "{s}");
        }
    }

    #[test]
    fn right_most_untrusted_entry_wins() {
        let p = cidrs(&PROXIES);
        let c = client_ip(
            ip("127.0.0.1"),
            ["1.1.1.1, 8.8.8.8, 10.1.1.1"].into_iter(),
            &p,
        );
        assert_eq!(
            c,
            ClientAddr {
                ip: ip("8.8.8.8"),
                from_xff: true,
                malformed: 0
            }
        );
        // Several headers are one list.
        let c = client_ip(
            ip("10.0.0.1"),
            ["9.9.9.9", "8.8.4.4, 10.2.2.2"].into_iter(),
            &p,
        );
        assert_eq!(c.ip, ip("8.8.4.4"));
        let c = client_ip(ip("10.0.0.1"), ["9.9.9.9", "10.2.2.2", ""].into_iter(), &p);
        assert_eq!(c.ip, ip("9.9.9.9"));
        // Only entries right of the answer are read, so only those are counted.
        let c = client_ip(
            ip("10.0.0.1"),
            ["junk, 9.9.9.9, junk", "10.2.2.2, ?"].into_iter(),
            &p,
        );
        assert_eq!((c.ip, c.malformed), (ip("9.9.9.9"), 2));
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let p = cidrs(&PROXIES);
        let c = client_ip(ip("192.0.2.1"), ["8.8.8.8"].into_iter(), &p);
        assert_eq!(
            c,
            ClientAddr {
                ip: ip("192.0.2.1"),
                from_xff: false,
                malformed: 0
            }
        );
        // A trusted proxy reached over IPv4-mapped IPv6 is still trusted.
        let c = client_ip(ip("::ffff:10.0.0.1"), ["8.8.8.8"].into_iter(), &p);
        assert_eq!(c.ip, ip("8.8.8.8"));
    }

    #[test]
    fn no_header_or_nothing_usable_leaves_the_peer() {
        let p = cidrs(&PROXIES);
        let none: [&str; 0] = [];
        let c = client_ip(ip("10.0.0.1"), none.into_iter(), &p);
        assert_eq!((c.ip, c.from_xff, c.malformed), (ip("10.0.0.1"), false, 0));
        let c = client_ip(ip("10.0.0.1"), [" , unknown ,"].into_iter(), &p);
        assert_eq!((c.ip, c.from_xff, c.malformed), (ip("10.0.0.1"), false, 1));
    }

    #[test]
    fn formats_and_garbage() {
        let p = cidrs(&["::1/128", "127.0.0.0/8"]);
        for (xff, want, bad) in [
            ("2001:db8::7", "2001:db8::7", 0),
            ("[2001:db8::7]:443", "2001:db8::7", 0),
            ("[2001:db8::7]", "2001:db8::7", 0),
            ("203.0.113.5:1234", "203.0.113.5", 0),
            ("::ffff:203.0.113.5", "203.0.113.5", 0),
            ("203.0.113.5, unknown, , 300.1.1.1", "203.0.113.5", 2),
            (
                "203.0.113.5,[1.2.3.4],1.2.3.4:99999,fe80::1%eth0",
                "203.0.113.5",
                3,
            ),
            ("not-an-ip", "::1", 1),
            // All trusted: the left-most, the furthest hop known.
            ("127.0.0.9, 127.0.0.8", "127.0.0.9", 0),
        ] {
            let c = client_ip(ip("::1"), [xff].into_iter(), &p);
            assert_eq!((c.ip, c.malformed), (ip(want), bad), "{xff}");
        }
    }

    /// An entry and what it means, so a model can predict the answer without parsing.
    #[derive(Debug, Clone)]
    enum Entry {
        Untrusted(IpAddr, String),
        Trusted(IpAddr, String),
        Garbage(String),
    }

    fn entry() -> impl Strategy<Value = Entry> {
        let v4 = any::<[u8; 4]>().prop_map(IpAddr::from);
        let v6 = any::<[u16; 8]>().prop_map(IpAddr::from);
        let untrusted = prop_oneof![v4, v6]
            .prop_filter("outside the proxies", |ip| {
                !is_trusted(ip.to_canonical(), &cidrs(&PROXIES))
            })
            .prop_map(|ip| ip.to_canonical());
        let trusted = prop_oneof![
            any::<[u8; 3]>().prop_map(|b| IpAddr::from([10, b[0], b[1], b[2]])),
            any::<u128>().prop_map(|x| IpAddr::V6(((0xfd << 120) | (x >> 8)).into())),
        ];
        // Each address in one of the spellings proxies use.
        let spell = |ip: IpAddr, form: u8| match (ip, form % 3) {
            (IpAddr::V4(a), 1) => format!("{a}:{}", 1024 + u16::from(form)),
            (IpAddr::V6(a), 1) => format!("[{a}]:443"),
            (IpAddr::V6(a), 2) => format!("[{a}]"),
            (IpAddr::V4(a), 2) => format!("::ffff:{a}"),
            _ => ip.to_string(),
        };
        prop_oneof![
            3 => (untrusted, any::<u8>()).prop_map(move |(ip, f)| Entry::Untrusted(ip, spell(ip, f))),
            3 => (trusted, any::<u8>()).prop_map(move |(ip, f)| Entry::Trusted(ip, spell(ip, f))),
            1 => "[a-z:.\\[\\]0-9]{1,12}"
                .prop_filter("not an address", |s| parse_entry(s).is_none())
                .prop_map(Entry::Garbage),
        ]
    }

    fn headers() -> impl Strategy<Value = Vec<Vec<Entry>>> {
        prop::collection::vec(prop::collection::vec(entry(), 0..5), 0..4)
    }

    fn render(h: &[Vec<Entry>]) -> Vec<String> {
        h.iter()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| match e {
                        Entry::Untrusted(_, s) | Entry::Trusted(_, s) | Entry::Garbage(s) => {
                            s.as_str()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect()
    }

    proptest! {
        #[test]
        fn an_untrusted_peers_header_never_matters(
            peer in prop_oneof![any::<[u8; 4]>().prop_map(IpAddr::from), any::<[u16; 8]>().prop_map(IpAddr::from)]
                .prop_filter("untrusted", |ip| !is_trusted(ip.to_canonical(), &cidrs(&PROXIES))),
            h in headers(),
            noise in ".{0,60}",
        ) {
            let mut values = render(&h);
            values.push(noise);
            let c = client_ip(peer, values.iter().map(String::as_str), &cidrs(&PROXIES));
            prop_assert_eq!(c, ClientAddr { ip: peer.to_canonical(), from_xff: false, malformed: 0 });
        }

        #[test]
        fn a_trusted_peer_yields_the_right_most_untrusted_entry(h in headers()) {
            let peer = ip("10.9.9.9");
            let values = render(&h);
            let c = client_ip(peer, values.iter().map(String::as_str), &cidrs(&PROXIES));
            let flat: Vec<&Entry> = h.iter().flatten().collect();
            let last_untrusted = flat.iter().rposition(|e| matches!(e, Entry::Untrusted(..)));
            let (want, counted) = match last_untrusted {
                Some(i) => (Some(match flat[i] { Entry::Untrusted(ip, _) => *ip, _ => unreachable!() }), &flat[i + 1..]),
                None => (flat.iter().find_map(|e| match e { Entry::Trusted(ip, _) => Some(*ip), _ => None }), &flat[..]),
            };
            let garbage = counted.iter().filter(|e| matches!(e, Entry::Garbage(_))).count() as u32;
            prop_assert_eq!(c, ClientAddr { ip: want.unwrap_or(peer), from_xff: want.is_some(), malformed: garbage });
            // Joining the headers into one changes nothing.
            let joined = values.join(",");
            prop_assert_eq!(client_ip(peer, [joined.as_str()].into_iter(), &cidrs(&PROXIES)), c);
        }
    }
}
