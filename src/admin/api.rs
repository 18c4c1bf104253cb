//! The admin listener's routes: one flat match on method and path, like the
//! Kafka router. The JSON API is documented in `openapi.yaml` (served at
//! `/api/v1/openapi.yaml`); the console's files are compiled into the binary, so
//! a broker built with cargo alone serves them.
//!
//! Reads and actions go through the same Kafka handlers clients reach
//! (CreateTopics, DeleteTopics, ListGroups, DescribeGroups, OffsetFetch,
//! ListOffsets, OffsetCommit), called in-process on shard 0: what the API shows
//! and does is what a Kafka client would see and do, in a cluster too.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Method, Response, StatusCode};
use serde::Serialize;

use super::lag::LagTracker;
use super::rates::Rates;
use super::{exposition, groups, overview, records};
use crate::handlers::Ctx;

/// The admin listener's state, on shard 0.
pub struct Admin {
    /// Shard 0's handler context.
    pub ctx: Rc<Ctx>,
    /// Lag samples of the groups coordinated here.
    pub lag: RefCell<LagTracker>,
    /// Recent traffic totals, for rates.
    pub rates: RefCell<Rates>,
}

/// The OpenAPI document of this API.
const OPENAPI: &str = include_str!("openapi.yaml");
const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const STYLE_CSS: &str = include_str!("console/style.css");

/// An answer with a body of `content_type`.
pub fn body(status: StatusCode, content_type: &'static str, bytes: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(bytes.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    // The console's pages and data are never cached: they show the broker now.
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    r
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(v) => body(status, "application/json", v),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", &format!("encoding the answer failed: {e}")),
    }
}

/// The API's error answer: `{"error": CODE, "message": TEXT}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_error(status, serde_json::json!({ "error": code, "message": message }))
}

/// An error answer with extra fields (`leader`, `coordinator`).
pub fn json_error(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    match serde_json::to_vec(&value) {
        Ok(v) => body(status, "application/json", v),
        Err(_) => body(status, "application/json", Bytes::from_static(b"{\"error\":\"INTERNAL\",\"message\":\"\"}")),
    }
}

/// The HTTP status of a Kafka error code answered to an admin action.
pub fn status_of(code: i16) -> StatusCode {
    match code {
        // UNKNOWN_TOPIC_OR_PARTITION, GROUP_ID_NOT_FOUND
        3 | 69 => StatusCode::NOT_FOUND,
        // TOPIC_ALREADY_EXISTS, NON_EMPTY_GROUP, COORDINATOR_LOAD_IN_PROGRESS
        36 | 68 => StatusCode::CONFLICT,
        // INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR,
        // INVALID_REPLICA_ASSIGNMENT, INVALID_CONFIG, INVALID_REQUEST, POLICY_VIOLATION
        17 | 37 | 38 | 39 | 40 | 42 | 44 => StatusCode::BAD_REQUEST,
        // NOT_CONTROLLER, REQUEST_TIMED_OUT, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
        // LEADER_NOT_AVAILABLE, BROKER_NOT_AVAILABLE
        41 | 7 | 15 | 16 | 5 | 8 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A Kafka error code as the API's error answer.
pub fn kafka_error(code: i16, message: Option<&str>) -> Response<Full<Bytes>> {
    let name = exposition::error_name(code);
    error(status_of(code), &name, message.filter(|m| !m.is_empty()).unwrap_or(&name))
}

/// Answers one request.
pub async fn handle(admin: &Admin, method: &Method, path: &str, query: &str, body_bytes: Bytes) -> Response<Full<Bytes>> {
    let segments: Vec<String> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let changes = matches!(*method, Method::POST | Method::DELETE);
    if changes && admin.ctx.shard().cfg.admin_console_read_only {
        return error(StatusCode::FORBIDDEN, "READ_ONLY", "this broker's admin API is read-only (admin.console.read.only=true)");
    }
    match (method, seg.as_slice()) {
        (&Method::GET, []) => body(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML),
        (&Method::GET, ["console", "app.js"]) => body(StatusCode::OK, "application/javascript; charset=utf-8", APP_JS),
        (&Method::GET, ["console", "style.css"]) => body(StatusCode::OK, "text/css; charset=utf-8", STYLE_CSS),
        (&Method::GET, ["metrics"]) => body(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", super::scrape(admin).await),
        (&Method::GET, ["api", "v1", "openapi.yaml"]) => body(StatusCode::OK, "application/yaml", OPENAPI),
        (&Method::GET, ["api", "v1", "cluster"]) => overview::cluster(admin).await,
        (&Method::GET, ["api", "v1", "topics"]) => overview::topics(admin).await,
        (&Method::POST, ["api", "v1", "topics"]) => overview::create_topic(admin, &body_bytes).await,
        (&Method::GET, ["api", "v1", "topics", topic]) => overview::topic(admin, topic).await,
        (&Method::DELETE, ["api", "v1", "topics", topic]) => overview::delete_topic(admin, topic).await,
        (&Method::GET, ["api", "v1", "topics", topic, "partitions", partition, "records"]) => records::page(admin, topic, partition, query).await,
        (&Method::GET, ["api", "v1", "groups"]) => groups::list(admin).await,
        (&Method::GET, ["api", "v1", "groups", group]) => groups::describe(admin, group).await,
        (&Method::GET, ["api", "v1", "groups", group, "lag"]) => groups::lag(admin, group).await,
        (&Method::POST, ["api", "v1", "groups", group, "reset-offsets"]) => groups::reset_offsets(admin, group, &body_bytes).await,
        (_, ["api", ..]) | (_, ["metrics"]) => error(StatusCode::NOT_FOUND, "NOT_FOUND", &format!("no {method} {path} in this API (see /api/v1/openapi.yaml)")),
        _ => error(StatusCode::NOT_FOUND, "NOT_FOUND", &format!("no {path} here")),
    }
}

/// Decodes `%XX` escapes of a path segment (topic and group names may hold
/// characters a browser escapes); an invalid escape is kept as written.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A query string's value for `key` (`a=1&b=2`), decoded.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_decoded() {
        assert_eq!(percent_decode("a%2Fb%20c"), "a/b c");
        assert_eq!(percent_decode("plain.name_1"), "plain.name_1");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("end%2"), "end%2");
    }

    #[test]
    fn query_values_are_found() {
        assert_eq!(query_param("offset=10&limit=5", "limit").as_deref(), Some("5"));
        assert_eq!(query_param("offset=10", "limit"), None);
    }
}
