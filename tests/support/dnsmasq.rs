//! A real DNS server for tests of origins behind names: Debian's dnsmasq
//! (`dnsmasq-base`, installed by `.ci/run`) on a free loopback port, answering
//! only from a hosts file the test rewrites, every answer with a 1 s TTL.
//!
//! It is authoritative for `example.test` (`--local=/example.test/`): a name there
//! that is not in the file gets NXDOMAIN and a name with only A records gets an
//! empty AAAA answer. Without that flag dnsmasq, having no upstream server, answers
//! both with REFUSED, which a resolver rightly counts as an error and not as "no
//! such name". Use names under `example.test`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, temp_dir};

/// dnsmasq serving `127.0.0.1:port`, stopped by PID on drop.
pub struct Dnsmasq {
    child: Option<Child>,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    dir: PathBuf,
    hosts: PathBuf,
}

/// The binary: `/usr/sbin` is not on every user's `PATH`.
fn binary() -> PathBuf {
    let sbin = Path::new("/usr/sbin/dnsmasq");
    if sbin.exists() {
        sbin.to_path_buf()
    } else {
        PathBuf::from("dnsmasq")
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 just now (dnsmasq serves both).
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The hosts file for `records`, `(address, name)`: one line per record, so a
/// name given twice has two A (or AAAA) records.
fn hosts_text<S: AsRef<str>>(records: &[(S, &str)]) -> String {
    records
        .iter()
        .map(|(ip, name)| {
            let ip = ip.as_ref();
            ip.parse::<IpAddr>()
                .unwrap_or_else(|e| panic!("record {ip} {name}: {e}"));
            format!("{ip} {name}\n")
        })
        .collect()
}

impl Dnsmasq {
    /// Starts dnsmasq answering `records` (`(address, name)`) and waits until it
    /// answers queries. A port taken between choosing and binding it makes dnsmasq
    /// exit at once: it is then started again on another port.
    pub async fn start<S: AsRef<str>>(records: &[(S, &str)]) -> Dnsmasq {
        let dir = temp_dir("dnsmasq");
        let hosts = dir.join("hosts");
        std::fs::write(&hosts, hosts_text(records)).unwrap();
        for _ in 0..10 {
            let port = free_port();
            let log = std::fs::File::create(dir.join("dnsmasq.log")).unwrap();
            let child = Command::new(binary())
                .arg("-k")
                .arg("--conf-file=/dev/null")
                .arg("--no-resolv")
                .arg("--no-hosts")
                .arg(format!("--addn-hosts={}", hosts.display()))
                .arg("--local=/example.test/")
                .arg("--listen-address=127.0.0.1")
                .arg("--bind-interfaces")
                .arg(format!("--port={port}"))
                .arg("--local-ttl=1")
                .arg("--user=root")
                .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("start dnsmasq: {e} (install Debian's dnsmasq-base; .ci/run does)")
                });
            let mut d = Dnsmasq {
                child: Some(child),
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                dir: dir.clone(),
                hosts: hosts.clone(),
            };
            if d.wait_answering().await {
                return d;
            }
            d.stop();
        }
        panic!(
            "dnsmasq did not start in 10 tries; its last log:\n{}",
            std::fs::read_to_string(dir.join("dnsmasq.log")).unwrap_or_default()
        );
    }

    /// Whether it answers within 10 s; false if it exited first (port taken).
    async fn wait_answering(&mut self) -> bool {
        let addr = self.addr;
        let child = self.child.as_mut().unwrap();
        eventually(Duration::from_secs(10), "dnsmasq answering", || {
            let exited = child.try_wait().unwrap();
            async move {
                if exited.is_some() {
                    return Ok(false);
                }
                match query(addr, "ready.example.test", QTYPE_A).await {
                    Ok(_) => Ok(true),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("dnsmasq running").id()
    }

    /// `"127.0.0.1:PORT"`, for `resolver.nameservers`.
    pub fn nameserver(&self) -> String {
        self.addr.to_string()
    }

    /// Replaces every record with `records`, makes dnsmasq re-read them (SIGHUP),
    /// and waits until it answers each name in `records` with exactly its
    /// addresses (IPv4 ones: AAAA answers are not checked).
    pub async fn set<S: AsRef<str>>(&self, records: &[(S, &str)]) {
        // Written whole and renamed, so dnsmasq never reads half a file.
        let next = self.dir.join("hosts.next");
        std::fs::write(&next, hosts_text(records)).unwrap();
        std::fs::rename(&next, &self.hosts).unwrap();
        let ok = Command::new("kill")
            .arg("-HUP")
            .arg(self.pid().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -HUP dnsmasq failed");
        let mut names: Vec<&str> = records.iter().map(|(_, n)| *n).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let mut want: Vec<Ipv4Addr> = records
                .iter()
                .filter(|(_, n)| *n == name)
                .filter_map(|(ip, _)| ip.as_ref().parse().ok())
                .collect();
            want.sort_unstable();
            let (addr, want) = (self.addr, &want);
            eventually(
                Duration::from_secs(10),
                &format!("dnsmasq answering {name} with {want:?}"),
                || async move {
                    let mut got = query(addr, name, QTYPE_A)
                        .await
                        .map_err(|e| e.to_string())?
                        .v4;
                    got.sort_unstable();
                    if got == *want {
                        Ok(())
                    } else {
                        Err(format!("{got:?}"))
                    }
                },
            )
            .await;
        }
    }

    /// Stops it (SIGKILL to its PID): from now on queries go unanswered.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What dnsmasq logged (start-up errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

pub const QTYPE_A: u16 = 1;
pub const QTYPE_AAAA: u16 = 28;

/// A DNS answer, as far as these tests read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED.
    pub rcode: u8,
    /// The A records' addresses, in the order given.
    pub v4: Vec<Ipv4Addr>,
    /// How many answer records of any type.
    pub records: usize,
    /// The TTLs of the answer records.
    pub ttls: Vec<u32>,
}

/// One query (`QTYPE_A`, `QTYPE_AAAA`) for `name` over UDP to `server`, made by
/// hand (a dozen bytes) so the tests need no DNS library; an error after 1 s
/// without an answer.
pub async fn query(server: SocketAddr, name: &str, qtype: u16) -> std::io::Result<Answer> {
    let id: u16 = rand::random();
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    // Flags: recursion desired; one question, no other records.
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // class IN
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(server).await?;
    socket.send(&q).await?;
    let mut buf = [0u8; 1500];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no DNS answer"))??;
        let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
        let a = parse(&buf[..n]).ok_or_else(|| bad("malformed DNS answer"))?;
        if a.0 == id {
            return Ok(a.1);
        }
    }
}

/// `(id, answer)` of a DNS message, None if it is cut short.
fn parse(m: &[u8]) -> Option<(u16, Answer)> {
    let u16_at = |i: usize| Some(u16::from_be_bytes([*m.get(i)?, *m.get(i + 1)?]));
    let id = u16_at(0)?;
    let rcode = m.get(3)? & 0x0f;
    let (questions, answers) = (u16_at(4)?, u16_at(6)?);
    let mut at = 12;
    // A name: labels up to a zero byte, or ending in a 2-byte compression pointer.
    let skip_name = |mut at: usize| -> Option<usize> {
        loop {
            let len = *m.get(at)?;
            if len & 0xc0 == 0xc0 {
                return Some(at + 2);
            }
            at += 1 + len as usize;
            if len == 0 {
                return Some(at);
            }
        }
    };
    for _ in 0..questions {
        at = skip_name(at)? + 4;
    }
    let mut answer = Answer {
        rcode,
        v4: Vec::new(),
        records: 0,
        ttls: Vec::new(),
    };
    for _ in 0..answers {
        at = skip_name(at)?;
        let rtype = u16_at(at)?;
        let ttl = u32::from_be_bytes(m.get(at + 4..at + 8)?.try_into().ok()?);
        let len = u16_at(at + 8)? as usize;
        let data = m.get(at + 10..at + 10 + len)?;
        if rtype == QTYPE_A && len == 4 {
            answer
                .v4
                .push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        answer.records += 1;
        answer.ttls.push(ttl);
        at += 10 + len;
    }
    Some((id, answer))
}
