//! Log output: `tracing` and the access log write whole lines into a shared,
//! bounded buffer; a writer thread empties it to stderr every few milliseconds in
//! one `write` per batch. A proxy thread never waits on a disk or pipe, never wakes
//! another thread and never makes a syscall to log: appending a line is a short
//! mutex hold. When the buffer is full (the sink cannot keep up), lines are dropped
//! and counted rather than waited for.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, Once};
use std::time::Duration;

use crate::util::lock::lock;

/// Bytes that may wait for the writer thread (a few seconds of lines at full rate).
const CAPACITY: usize = 8 << 20;
/// How long a line may wait before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(5);

static DROPPED: AtomicU64 = AtomicU64::new(0);
static JSON: AtomicBool = AtomicBool::new(false);

/// Log lines dropped because the writer could not keep up.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Relaxed)
}

/// True with `--log-format json` (the access log formats its own lines).
pub fn json() -> bool {
    JSON.load(Relaxed)
}

/// The pending bytes; the writer thread that drains them starts on first use.
fn pending() -> &'static Mutex<Vec<u8>> {
    static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    static WRITER: Once = Once::new();
    WRITER.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("log writer".into())
            .spawn(|| drain(&PENDING));
        if let Err(e) = spawned {
            // Logging must never take the gateway down: lines fill the buffer and
            // are then dropped and counted.
            eprintln!("meridian: cannot start the log writer thread: {e}");
        }
    });
    &PENDING
}

fn drain(pending: &Mutex<Vec<u8>>) {
    let mut batch = Vec::with_capacity(64 << 10);
    let mut err = std::io::stderr();
    loop {
        std::thread::sleep(FLUSH_EVERY);
        std::mem::swap(&mut *lock(pending), &mut batch);
        if !batch.is_empty() {
            let _ = err.write_all(&batch);
            batch.clear();
            // A burst may have grown it far: do not keep that much around.
            batch.shrink_to(1 << 20);
        }
    }
}

/// Queues whole lines for the writer thread; drops and counts them when full.
pub fn send(lines: &[u8]) {
    let mut p = lock(pending());
    if p.len() + lines.len() > CAPACITY {
        drop(p);
        DROPPED.fetch_add(1, Relaxed);
        return;
    }
    p.extend_from_slice(lines);
}

/// The `MakeWriter` for `tracing`: each event is formatted into a `LineWriter`
/// and queued whole when it is dropped.
#[derive(Clone, Copy)]
pub struct NonBlocking;

/// One event's bytes.
pub struct LineWriter {
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            send(&self.buf);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for NonBlocking {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            buf: Vec::with_capacity(256),
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` filters (default `info`), text or JSON.
pub fn init(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for people: files, pipes and log shippers get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(NonBlocking);
    if format == "json" {
        JSON.store(true, Relaxed);
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Writes out what is queued (for an orderly exit: the writer thread may sleep).
pub fn flush() {
    let batch = std::mem::take(&mut *lock(pending()));
    let _ = std::io::stderr().write_all(&batch);
}
