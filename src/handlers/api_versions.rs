//! ApiVersions (key 18), versions 0-3. Advertises exactly `protocol::SUPPORTED_APIS`.
//! KIP-511: a request with a version we do not support is answered with a v0
//! response carrying UNSUPPORTED_VERSION and our ranges, so the client can retry.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::ApiVersionsResponse;

use crate::protocol::SUPPORTED_APIS;

/// The response for a supported version, or (with `unsupported`) the KIP-511 fallback.
pub fn handle(unsupported: bool) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS.iter().map(|&(k, lo, hi)| ApiVersion::default().with_api_key(k as i16).with_min_version(lo).with_max_version(hi)).collect();
    let mut r = ApiVersionsResponse::default().with_api_keys(api_keys);
    if unsupported {
        r.error_code = crate::error::Error::UnsupportedVersion { api_key: ApiKey::ApiVersions as i16, version: -1 }.code();
    }
    r
}
