//! Plain Pingora: a reverse proxy to one origin with no routing, no metrics, no
//! logging: the floor meridian's per-request cost is compared against
//! (`loadtest/perf`). Same Pingora settings as `meridian run`: one thread, the
//! upstream pool, no L4 read buffer, and meridian's default `timeouts` on the
//! origin, which Pingora's timer pays for per request.
//!
//!   cargo run --release --example passthrough -- LISTEN ORIGIN

use async_trait::async_trait;
use meridian::core::config::Timeouts;
use pingora::listeners::{L4BufferSettings, ListenerConfig, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;

// The same allocator as the meridian binary, so the comparison is of the proxy work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Passthrough {
    origin: std::net::SocketAddr,
    timeouts: Timeouts,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        let t = &self.timeouts;
        let mut peer = HttpPeer::new(self.origin, false, String::new());
        peer.options.connection_timeout = Some(t.connect.get());
        peer.options.read_timeout = Some(t.read.get());
        peer.options.idle_timeout = Some(t.idle.get());
        Ok(Box::new(peer))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(origin)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: passthrough LISTEN ORIGIN");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads: std::env::var("MERIDIAN_THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(1),
        upstream_keepalive_pool_size: 1024,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        Passthrough {
            origin: origin.parse().expect("ORIGIN is host:port"),
            timeouts: Timeouts::default(),
        },
    );
    let l4 = L4BufferSettings::new(0, DEFAULT_L4_WRITE_BUFFER_SIZE);
    proxy.add_listener(ListenerConfig::tcp(listen).l4_buffer(l4));
    server.add_service(proxy);
    server.run_forever();
}
