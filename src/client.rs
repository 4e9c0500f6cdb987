//! Who the client is: the TCP peer, or, when the peer is a trusted proxy, the
//! right-most X-Forwarded-For entry that is not itself a trusted proxy.
//! An untrusted peer's X-Forwarded-For is never believed.

use std::net::{IpAddr, SocketAddr};

use crate::config::units::Cidr;

/// The client address and what was learnt finding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    pub ip: IpAddr,
    /// Taken from X-Forwarded-For rather than the TCP peer.
    pub from_xff: bool,
    /// Entries that were not addresses (skipped, and counted in metrics).
    pub malformed: u32,
}

fn trusted(ip: IpAddr, proxies: &[Cidr]) -> bool {
    proxies.iter().any(|c| c.contains(ip))
}

/// One X-Forwarded-For entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
pub fn parse_entry(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip().to_canonical())
}

/// The client of a request from `peer` carrying the X-Forwarded-For header values `xff`.
pub fn client_ip<'a>(
    peer: IpAddr,
    xff: impl Iterator<Item = &'a str>,
    proxies: &[Cidr],
) -> ClientAddr {
    let peer = peer.to_canonical();
    let mut out = ClientAddr {
        ip: peer,
        from_xff: false,
        malformed: 0,
    };
    if !trusted(peer, proxies) {
        return out;
    }
    // Several headers join into one list, in order; walk it from the right.
    let headers: Vec<&str> = xff.collect();
    let entries = headers.iter().rev().flat_map(|h| h.rsplit(','));
    let mut leftmost_valid = None;
    for entry in entries {
        if entry.trim().is_empty() {
            continue;
        }
        match parse_entry(entry) {
            None => out.malformed += 1,
            Some(ip) if trusted(ip, proxies) => leftmost_valid = Some(ip),
            Some(ip) => {
                out.ip = ip;
                out.from_xff = true;
                return out;
            }
        }
    }
    // Every entry was a trusted proxy: the furthest one is the best we know.
    if let Some(ip) = leftmost_valid {
        out.ip = ip;
        out.from_xff = true;
    }
    out
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

    #[test]
    fn right_most_untrusted_entry_wins() {
        let p = cidrs(&["10.0.0.0/8", "127.0.0.1/32"]);
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
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let p = cidrs(&["10.0.0.0/8"]);
        let c = client_ip(ip("192.0.2.1"), ["8.8.8.8"].into_iter(), &p);
        assert_eq!(
            c,
            ClientAddr {
                ip: ip("192.0.2.1"),
                from_xff: false,
                malformed: 0
            }
        );
    }

    #[test]
    fn formats_and_garbage() {
        let p = cidrs(&["::1/128", "127.0.0.0/8"]);
        for (xff, want, bad) in [
            ("2001:db8::7", "2001:db8::7", 0),
            ("[2001:db8::7]:443", "2001:db8::7", 0),
            ("203.0.113.5:1234", "203.0.113.5", 0),
            ("::ffff:203.0.113.5", "203.0.113.5", 0),
            ("203.0.113.5, unknown, , 300.1.1.1", "203.0.113.5", 2),
            ("not-an-ip", "::1", 1),
            ("127.0.0.9, 127.0.0.8", "127.0.0.9", 0),
        ] {
            let c = client_ip(ip("::1"), [xff].into_iter(), &p);
            assert_eq!((c.ip, c.malformed), (ip(want), bad), "{xff}");
        }
    }

    proptest! {
        #[test]
        fn an_untrusted_peers_header_never_matters(a in any::<[u8; 4]>(), xff in ".{0,80}") {
            let peer = IpAddr::from([11, a[1], a[2], a[3]]);
            let p = cidrs(&["10.0.0.0/8"]);
            let c = client_ip(peer, [xff.as_str()].into_iter(), &p);
            prop_assert_eq!(c, ClientAddr { ip: peer, from_xff: false, malformed: 0 });
        }

        #[test]
        fn a_trusted_peers_answer_is_an_entry_or_the_peer(entries in prop::collection::vec(any::<[u8; 4]>(), 0..5)) {
            let p = cidrs(&["10.0.0.0/8"]);
            let xff = entries.iter().map(|e| IpAddr::from(*e).to_string()).collect::<Vec<_>>().join(", ");
            let peer = ip("10.9.9.9");
            let c = client_ip(peer, [xff.as_str()].into_iter(), &p);
            prop_assert!(c.ip == peer || entries.iter().any(|e| IpAddr::from(*e) == c.ip));
            prop_assert!(!(c.from_xff && entries.is_empty()));
        }
    }
}
