//! The shell A/B: one minimal hyper proxy, run under two shells, so that what
//! differs between the two modes is the shell alone (`loadtest/shell_ab` drives it).
//!
//!   tokio    a current-thread tokio runtime and a bare `TcpListener` accept loop
//!            (what meridian's data path does, src/proxy/listener.rs)
//!   pingora  Pingora 0.9's `Server` (one thread) and a listening `Service` whose
//!            `ServerApp` hands each accepted `Stream` to the same hyper code
//!
//! The proxy, the same in both: a hyper HTTP/1 server connection (keep-alive) facing
//! the client and, per client connection, one hyper HTTP/1 client connection to the
//! origin, opened on the first request, kept for the client connection's life, used
//! one request at a time and reopened if it closes. Each request goes out as it came
//! (origin-form URI, the client's headers, nothing appended) and the origin's answer
//! is streamed back.
//!
//!   cargo build --release --example shell_ab
//!   shell_ab <tokio|pingora> LISTEN ORIGIN      (SHELL_AB_NO_STEAL=1: see run_pingora)

use std::error::Error;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use pingora::apps::ServerApp;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::protocols::Stream;
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::listening::Service;
use tokio::net::{TcpListener, TcpStream};

// The same allocator as the meridian binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn Error + Send + Sync>;

/// The origin connection of one client connection, when it has one. A mutex only
/// because hyper's service is `Fn`; HTTP/1 calls it one request at a time, so it is
/// never contended (and both modes pay it alike).
type Upstream = Arc<Mutex<Option<SendRequest<Incoming>>>>;

/// Serves one client connection to its end: the code both shells run.
async fn serve<I>(io: I, origin: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let upstream: Upstream = Arc::new(Mutex::new(None));
    let service = service_fn(move |req| forward(req, origin, upstream.clone()));
    // An error here is the client's or the origin's going away: nothing to report.
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
}

/// One request to the origin on this client connection's origin connection, and its
/// answer back (the body streams: hyper polls it as it writes to the client).
async fn forward(
    req: Request<Incoming>,
    origin: SocketAddr,
    upstream: Upstream,
) -> Result<Response<Incoming>, BoxError> {
    // Taken out for the request (a guard must not live across an await), put back after.
    let kept = upstream.lock().unwrap().take();
    let mut sender = match kept {
        Some(s) if !s.is_closed() => s,
        _ => connect(origin).await?,
    };
    // The previous answer's body may still be finishing on this connection.
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    *upstream.lock().unwrap() = Some(sender);
    Ok(resp)
}

async fn connect(origin: SocketAddr) -> Result<SendRequest<Incoming>, BoxError> {
    let tcp = TcpStream::connect(origin).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    // The connection's own task reads and writes the origin socket; it ends when the
    // origin closes or the sender is dropped (the client connection ended).
    tokio::spawn(conn);
    Ok(sender)
}

/// Shell A: a bare tokio listener on a current-thread runtime.
fn run_tokio(listen: &str, origin: SocketAddr) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(listen).await.expect("bind LISTEN");
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                // Ctrl-C ends the process normally, so a profiler (callgrind) writes its
                // output; the Pingora shell does the same on SIGINT.
                _ = tokio::signal::ctrl_c() => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    // As Pingora's listener does for every accepted TCP stream.
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(TokioIo::new(stream), origin));
                }
                // Out of descriptors, most likely: back off rather than spin.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
}

/// Shell B: the connection as Pingora's listening service hands it over.
struct HyperApp {
    origin: SocketAddr,
}

#[async_trait]
impl ServerApp for HyperApp {
    async fn process_new(self: &Arc<Self>, stream: Stream, _: &ShutdownWatch) -> Option<Stream> {
        serve(TokioIo::new(stream), self.origin).await;
        None // hyper has served the connection to its end: nothing to hand back
    }
}

fn run_pingora(listen: &str, origin: SocketAddr) {
    // Pingora's defaults otherwise: its one thread is a one-worker multi-thread
    // (work-stealing) tokio runtime. SHELL_AB_NO_STEAL=1 asks for its other flavour,
    // a current-thread runtime like the tokio mode's, to see what that part costs.
    let conf = ServerConf {
        threads: 1,
        work_stealing: std::env::var_os("SHELL_AB_NO_STEAL").is_none(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = Service::new("shell_ab".to_string(), HyperApp { origin });
    // No L4 buffers: hyper buffers reads and writes itself, so Pingora's (64 KiB read,
    // 1,460 B write by default) would only add a copy and memory per connection.
    let l4 = L4BufferSettings::unbuffered();
    service.add_listener(ListenerConfig::tcp(listen).l4_buffer(l4));
    server.add_service(service);
    server.run_forever();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, listen, origin] = &args[..] else {
        eprintln!("usage: shell_ab <tokio|pingora> LISTEN ORIGIN");
        std::process::exit(2);
    };
    let origin: SocketAddr = origin.parse().expect("ORIGIN is host:port");
    match mode.as_str() {
        "tokio" => run_tokio(listen, origin),
        "pingora" => run_pingora(listen, origin),
        _ => {
            eprintln!("mode is tokio or pingora");
            std::process::exit(2);
        }
    }
}
