//! A raw recording origin: a plain TCP server that stores the exact bytes of
//! each connection and answers one fixed `HTTP/1.1 200 OK` with a
//! Content-Length, then closes. A parsing server would normalise away the
//! evidence of what meridian forwarded.
//!
//! It answers as soon as what arrived is a whole request by `judge` (or one
//! `judge` finds ambiguous), else once the connection has been quiet for a
//! while or its peer closed: a request cut short is recorded as it came.
//! Health probes are answered like anything else and left out of `requests`.
//! `judge` tells whether what one connection received is exactly one
//! unambiguous request.
//!
//! Also compiled into the fuzz crate (`fuzz/src/lib.rs`), whose
//! `listener_requests` target drives it through the real listener.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The answer to every request: a body a deep health probe accepts too.
const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\n{\"status\":\"healthy\"}";
/// Quiet this long with no whole request: whatever came is all there is.
const QUIET: Duration = Duration::from_secs(1);

/// The bytes one connection carried, as they arrive.
type Conn = Arc<Mutex<Vec<u8>>>;

pub struct RawOrigin {
    pub addr: SocketAddr,
    conns: Arc<Mutex<Vec<Conn>>>,
    /// Connections answered and closed.
    done: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawOrigin {
    /// Listens on an ephemeral loopback port.
    pub async fn start() -> RawOrigin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let all = conns.clone();
        let done: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let finished = done.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let bytes = Conn::default();
                all.lock().unwrap().push(bytes.clone());
                let finished = finished.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let wait = if !matches!(judge(&bytes.lock().unwrap()), Ok(None)) {
                            Duration::ZERO
                        } else {
                            QUIET
                        };
                        let got = if bytes.lock().unwrap().is_empty() {
                            Ok(s.read(&mut buf).await)
                        } else {
                            tokio::time::timeout(wait, s.read(&mut buf)).await
                        };
                        match got {
                            Ok(Ok(n)) if n > 0 => {
                                bytes.lock().unwrap().extend_from_slice(&buf[..n])
                            }
                            // Quiet, closed or failed: answer what came, once.
                            _ => {
                                let _ = s.write_all(ANSWER).await;
                                let _ = s.shutdown().await;
                                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                return;
                            }
                        }
                    }
                });
            }
        });
        RawOrigin {
            addr,
            conns,
            done,
            task,
        }
    }

    /// The bytes of every connection that carried something but a health
    /// probe, in the order they were accepted.
    pub fn requests(&self) -> Vec<String> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|c| String::from_utf8_lossy(&c.lock().unwrap()).into_owned())
            .filter(|c| !c.is_empty() && !c.starts_with("GET /health "))
            .collect()
    }

    /// Every connection so far, its bytes as they are now (probes included).
    pub fn connections(&self) -> Vec<Vec<u8>> {
        let conns = self.conns.lock().unwrap();
        conns.iter().map(|c| c.lock().unwrap().clone()).collect()
    }

    /// Waits (up to `within`) until every connection accepted so far has been
    /// answered and closed: what they carried is then all there.
    pub async fn settle(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.done.load(std::sync::atomic::Ordering::SeqCst) < self.conns.lock().unwrap().len()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits up to 3 s for `n` requests, then until every connection so far
    /// was answered (its bytes are then all there).
    pub async fn wait_requests(&self, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.requests().len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A try cut short may still be on its way.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.settle(QUIET * 3).await;
        self.requests()
    }
}

/// What one origin connection received, judged: `Ok(Some(head))` for exactly
/// one complete, unambiguous request (its head lowercased), `Ok(None)` for no
/// complete request (nothing, or a request cut short), `Err` for anything an
/// origin could read in two ways or as two requests.
pub fn judge(b: &[u8]) -> Result<Option<String>, String> {
    let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&b[..end]).map_err(|_| "head not UTF-8".to_string())?;
    if text.replace("\r\n", "").contains(['\r', '\n']) {
        return Err("a bare CR or LF in the head".into());
    }
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or("");
    let parts: Vec<&str> = line.split(' ').collect();
    if parts.len() != 3 || parts[2] != "HTTP/1.1" || parts.iter().any(|p| p.is_empty()) {
        return Err(format!("request line {line:?}"));
    }
    let (mut lengths, mut codings, mut hosts) = (Vec::new(), Vec::new(), 0);
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            return Err(format!("header line {l:?}"));
        };
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(format!("header name {name:?}"));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(format!("control byte in {l:?}"));
        }
        match name.to_ascii_lowercase().as_str() {
            "content-length" => lengths.push(value.trim().to_string()),
            "transfer-encoding" => codings.push(value.trim().to_ascii_lowercase()),
            "host" => hosts += 1,
            _ => {}
        }
    }
    if hosts != 1 {
        return Err(format!("{hosts} Host headers"));
    }
    if !lengths.is_empty() && !codings.is_empty() {
        return Err("Content-Length and Transfer-Encoding".into());
    }
    let body = &b[end + 4..];
    let rest = if !codings.is_empty() {
        if codings != ["chunked"] {
            return Err(format!("Transfer-Encoding {codings:?}"));
        }
        match chunked_end(body)? {
            Some(n) => &body[n..],
            None => return Ok(None),
        }
    } else if !lengths.is_empty() {
        let [n] = &lengths[..] else {
            return Err(format!("Content-Length {lengths:?}"));
        };
        let n: usize = n.parse().map_err(|_| format!("Content-Length {n:?}"))?;
        if body.len() < n {
            return Ok(None);
        }
        &body[n..]
    } else {
        body
    };
    if !rest.is_empty() {
        return Err(format!(
            "bytes after the request: {:?}",
            String::from_utf8_lossy(rest)
        ));
    }
    Ok(Some(text.to_ascii_lowercase()))
}

/// Where a strictly framed chunked body ends (None: it does not, yet).
fn chunked_end(b: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(eol) = b[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&b[at..at + eol]).map_err(|_| "chunk line")?;
        let size = usize::from_str_radix(line, 16).map_err(|_| format!("chunk size {line:?}"))?;
        at += eol + 2;
        if size == 0 {
            // Trailers, then the blank line.
            loop {
                let Some(eol) = b[at..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if b.len() < at + size + 2 {
            return Ok(None);
        }
        if &b[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        at += size + 2;
    }
}
