//! The admin listener's connections: hyper's HTTP/1.1 on shard 0's executor.
//!
//! It must survive slow and hostile clients the way the Kafka listener does:
//! at most `admin.max.connections` connections (more are closed at accept),
//! a socket silent or not reading for `admin.request.timeout.ms` is closed
//! (glommio's read/write timeouts: a slowloris header, an idle keep-alive, a
//! client that stops reading a large scrape), request heads bounded by hyper's
//! buffer ([`MAX_HEAD_BYTES`]), bodies by `admin.request.max.bytes` (413), and a
//! connection lives at most [`MAX_CONNECTION_LIFE`]. Its tasks run in their own
//! task queue with a small share, so a scrape yields to Kafka traffic.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use glommio::net::TcpListener;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::api::{self, Admin};
use crate::io::hyper_io::HyperIo;

/// The largest request head (request line and headers) hyper buffers.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A connection is closed after this long whatever it does (a client that trickles
/// bytes just fast enough to dodge the read timeout ends here).
pub const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(300);

/// Accepts admin connections until the broker stops.
pub async fn serve(admin: Rc<Admin>, listener: TcpListener) {
    let open = Rc::new(Cell::new(0usize));
    let cfg = admin.ctx.shard().cfg.clone();
    let timeout = Duration::from_millis(cfg.admin_request_timeout_ms);
    loop {
        let shard = admin.ctx.shard();
        let stop = shard.stop_signal.wait();
        if shard.stopping.get() {
            break;
        }
        let stream = futures::select! {
            s = listener.accept().fuse() => s,
            _ = stop.fuse() => break,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                crate::warn_limited!("admin listener: accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.get() >= cfg.admin_max_connections {
            crate::info_limited!(limit = cfg.admin_max_connections, "admin connection refused: admin.max.connections reached");
            continue;
        }
        let _ = stream.set_read_timeout(Some(timeout));
        let _ = stream.set_write_timeout(Some(timeout));
        open.set(open.get() + 1);
        let (admin, open) = (admin.clone(), open.clone());
        glommio::spawn_local(async move {
            let svc_admin = admin.clone();
            let service = hyper::service::service_fn(move |req| {
                let admin = svc_admin.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&admin, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new().max_buf_size(MAX_HEAD_BYTES).serve_connection(HyperIo(stream), service);
            futures::select! {
                _ = conn.fuse() => {}
                _ = glommio::timer::sleep(MAX_CONNECTION_LIFE).fuse() => {}
            }
            open.set(open.get() - 1);
        })
        .detach();
    }
}

/// One request: its body read within its bound, then the API's answer.
async fn respond(admin: &Admin, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let limit = admin.ctx.shard().cfg.admin_request_max_bytes;
    let body = match Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return api::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                &format!("request bodies are limited to {limit} bytes (admin.request.max.bytes)"),
            );
        }
        Err(e) => return api::error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &format!("reading the request body failed: {e}")),
    };
    api::handle(admin, &parts.method, parts.uri.path(), parts.uri.query().unwrap_or(""), body).await
}
