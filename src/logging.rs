//! Log output: `tracing` to stderr through a bounded queue and a writer thread, so
//! a slow disk or pipe never stalls a proxy thread. When the queue is full, lines
//! are dropped and counted rather than waited for.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;

/// Lines that can wait for the writer thread.
const QUEUE: usize = 16 * 1024;

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped because the writer could not keep up.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Relaxed)
}

/// A `MakeWriter` whose writers hand each formatted line to the writer thread.
#[derive(Clone)]
pub struct NonBlocking {
    tx: SyncSender<Vec<u8>>,
}

impl NonBlocking {
    /// Starts the writer thread (once per process) writing to stderr.
    pub fn stderr() -> NonBlocking {
        static TX: OnceLock<SyncSender<Vec<u8>>> = OnceLock::new();
        let tx = TX.get_or_init(|| {
            let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
            std::thread::Builder::new()
                .name("log writer".into())
                .spawn(move || {
                    let mut err = std::io::stderr().lock();
                    for line in rx {
                        let _ = err.write_all(&line);
                    }
                })
                .expect("spawn the log writer thread");
            tx
        });
        NonBlocking { tx: tx.clone() }
    }
}

/// One event's bytes, sent as a whole when the formatter is done with it.
pub struct LineWriter {
    tx: SyncSender<Vec<u8>>,
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
        if self.buf.is_empty() {
            return;
        }
        match self.tx.try_send(std::mem::take(&mut self.buf)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Relaxed);
            }
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for NonBlocking {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            tx: self.tx.clone(),
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
        .with_writer(NonBlocking::stderr());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
