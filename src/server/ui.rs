//! The API tokens web page: `GET /` and its two assets, `/ui/app.js` and `/ui/app.css`.
//!
//! The page is what an administrator coming from Devtron knows as Global Configurations ->
//! Authorization -> API tokens. It is plain HTML, one ES module (written as several files by
//! concept and concatenated at compile time) and one style sheet under `src/server/ui/`,
//! embedded in the binary with `include_str!`, so tessera needs no Node.js to
//! build or run and the page always matches the binary that serves it.
//!
//! This module owns only the serving: content types, caching and the security headers. The
//! page has no endpoint of its own: it signs in with a super-admin token (held in the tab's
//! session storage, never in a cookie, so there is no ambient credential to forge requests
//! with) and does everything through the same `/v1` API as any other client. It is routed on
//! issuers only, since a verify-only instance has no management API to drive.
//!
//! Every response carries a Content-Security-Policy that allows no inline script or style and
//! no other origin, `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
//! Assets are revalidated on every load (`no-cache`) against an `ETag` that is a hash of their
//! content, computed at compile time, so a new binary never serves a stale script.

use super::AppState;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The policy of the page: its own script and styles only, data: images, API calls to its own
/// origin, no forms posted anywhere, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// One embedded file: its bytes, its content type and the ETag of its content.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: &'static str,
}

/// FNV-1a, 64 bits: a content hash the compiler can compute, for ETags (not for security).
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `"` + 16 hex digits + `"`, as an ETag.
const fn etag_bytes(hash: u64) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

/// An [`Asset`] from a file under `src/server/ui/`, its ETag computed at compile time.
macro_rules! asset {
    ($($file:literal),+; $content_type:literal) => {{
        const BODY: &str = concat!($(include_str!(concat!("ui/", $file))),+);
        const ETAG: [u8; 18] = etag_bytes(fnv1a(BODY.as_bytes()));
        Asset {
            body: BODY,
            content_type: $content_type,
            etag: match std::str::from_utf8(&ETAG) {
                Ok(text) => text,
                Err(_) => panic!("an ETag is ASCII"),
            },
        }
    }};
}

static PAGE: Asset = asset!("index.html"; "text/html; charset=utf-8");
/// The page's script, one module served as `/ui/app.js`: its files by concept, concatenated at
/// compile time in this order (they share one module scope; `main.js`, last, starts the page).
static SCRIPT: Asset = asset!(
    "rules.js",
    "api.js",
    "dom.js",
    "session.js",
    "tokens.js",
    "grants.js",
    "form.js",
    "dialogs.js",
    "views.js",
    "routes.js",
    "main.js";
    "text/javascript; charset=utf-8"
);
static STYLE: Asset = asset!("app.css"; "text/css; charset=utf-8");

/// The page's routes, merged into the issuer's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(style))
}

async fn page(headers: HeaderMap) -> Response {
    serve(&PAGE, &headers)
}

async fn script(headers: HeaderMap) -> Response {
    serve(&SCRIPT, &headers)
}

async fn style(headers: HeaderMap) -> Response {
    serve(&STYLE, &headers)
}

/// The asset, or 304 when the client's copy (named by `If-None-Match`) is current.
fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let current = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == asset.etag || tag == "*");
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (header::ETAG, HeaderValue::from_static(asset.etag)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ),
    ];
    if current {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_hex_content_hashes() {
        assert_eq!(&etag_bytes(0x0123_4567_89ab_cdef), b"\"0123456789abcdef\"");
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(PAGE.etag, SCRIPT.etag);
        assert_eq!(PAGE.etag.len(), 18);
    }

    #[test]
    fn the_page_loads_its_assets_and_nothing_inline() {
        assert!(PAGE
            .body
            .contains(r#"<script type="module" src="/ui/app.js"></script>"#));
        assert!(PAGE.body.contains(r#"href="/ui/app.css""#));
        // CSP would block these: the page must not depend on them.
        assert!(!PAGE.body.contains(" style="));
        assert!(!PAGE.body.contains("<style"));
        let handler = PAGE.body.match_indices(" on").any(|(at, _)| {
            let rest = &PAGE.body[at + 3..];
            let name = rest.len()
                - rest
                    .trim_start_matches(|c: char| c.is_ascii_lowercase())
                    .len();
            name > 0 && rest[name..].starts_with('=')
        });
        assert!(!handler, "no inline event handlers");
        assert_eq!(PAGE.body.matches("<script").count(), 1);
    }

    #[test]
    fn the_script_is_its_files_in_order_and_starts_last() {
        let first = include_str!("ui/rules.js");
        let last = include_str!("ui/main.js");
        assert!(SCRIPT.body.starts_with(first));
        assert!(SCRIPT.body.ends_with(last));
        assert!(
            last.trim_end().ends_with("start();"),
            "main.js starts the page"
        );
        assert_eq!(SCRIPT.body.matches("\nstart();").count(), 1);
        // One module scope: no file may import or export.
        assert!(!SCRIPT.body.contains("\nimport ") && !SCRIPT.body.contains("\nexport "));
    }
}
