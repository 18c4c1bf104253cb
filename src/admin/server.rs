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
//!
//! And it must not be driven by web pages the operator happens to have open
//! ([`check_browser_rules`]): a listener on a loopback address answers only
//! requests whose `Host` is a loopback name (a DNS-rebinding page's Host is its
//! own domain); a change (POST, DELETE) must come without an `Origin` or from the
//! listener's own origin, and a POST must carry `Content-Type: application/json`
//! (which a cross-site page cannot send without a CORS preflight, and no CORS
//! header is ever sent).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use glommio::net::TcpListener;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, Response, StatusCode};

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
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
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
                async move { Ok::<_, std::convert::Infallible>(respond(&admin, req, loopback).await) }
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

/// The host part of a `Host` or `Origin` authority (`[::1]:9644` -> `::1`).
fn host_of(authority: &str) -> &str {
    let a = authority.rsplit_once("://").map_or(authority, |(_, rest)| rest);
    match a.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => a.split(':').next().unwrap_or(""),
    }
}

/// The rules that keep web pages from using the listener through the operator's
/// browser (see the module doc); `Err` is the refusal.
pub fn check_browser_rules(method: &Method, headers: &HeaderMap, loopback: bool) -> Result<(), (StatusCode, &'static str, String)> {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header(header::HOST).unwrap_or("");
    if loopback {
        let h = host_of(host);
        let local = h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !local {
            return Err((StatusCode::FORBIDDEN, "FORBIDDEN_HOST", format!("Host `{host}` is not this loopback listener's (use 127.0.0.1 or localhost)")));
        }
    }
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    if let Some(origin) = header(header::ORIGIN) {
        let same = origin.rsplit_once("://").is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host));
        if !same {
            return Err((
                StatusCode::FORBIDDEN,
                "CROSS_ORIGIN",
                format!("a change from origin `{origin}` is refused: only this console's own pages may make changes"),
            ));
        }
    }
    if *method == Method::POST && !header(header::CONTENT_TYPE).is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("application/json")) {
        return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", "a POST must carry Content-Type: application/json".to_string()));
    }
    Ok(())
}

/// One request: the browser rules, its body read within its bound, then the API's answer.
async fn respond(admin: &Admin, req: Request<Incoming>, loopback: bool) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    if let Err((status, code, message)) = check_browser_rules(&parts.method, &parts.headers, loopback) {
        return api::error(status, code, &message);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_loopback_listener_answers_only_loopback_hosts() {
        for ok in ["127.0.0.1:9644", "localhost:9644", "[::1]:9644", "LOCALHOST"] {
            assert!(check_browser_rules(&Method::GET, &headers(&[(header::HOST, ok)]), true).is_ok(), "{ok}");
        }
        let rebound = headers(&[(header::HOST, "evil.example:9644")]);
        assert_eq!(check_browser_rules(&Method::GET, &rebound, true).unwrap_err().1, "FORBIDDEN_HOST");
        assert!(check_browser_rules(&Method::GET, &rebound, false).is_ok(), "a listener exposed on purpose answers any Host");
    }

    #[test]
    fn changes_need_the_same_origin_and_json() {
        let host = (header::HOST, "127.0.0.1:9644");
        let json = (header::CONTENT_TYPE, "application/json");
        assert!(check_browser_rules(&Method::POST, &headers(&[host.clone(), json.clone()]), true).is_ok(), "curl sends no Origin");
        assert!(check_browser_rules(&Method::POST, &headers(&[host.clone(), json.clone(), (header::ORIGIN, "http://127.0.0.1:9644")]), true).is_ok());
        let cross = headers(&[host.clone(), json.clone(), (header::ORIGIN, "https://evil.example")]);
        assert_eq!(check_browser_rules(&Method::DELETE, &cross, true).unwrap_err().1, "CROSS_ORIGIN");
        let form = headers(&[host.clone(), (header::CONTENT_TYPE, "text/plain")]);
        assert_eq!(check_browser_rules(&Method::POST, &form, true).unwrap_err().0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(check_browser_rules(&Method::DELETE, &headers(&[host]), true).is_ok());
    }
}
