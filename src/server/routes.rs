//! What each route needs of its caller, in one table. The extractors in [`super::auth`] enforce
//! it (a handler reaches the token service only through one of them), and a test walks every
//! route the router serves against this table: no token gets 401, a token short of the need
//! gets 403, and neither ever gets a 200 or a 5xx.

use crate::permissions::TesseraRole;
use std::fmt;

/// What a route needs of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: public.
    Nothing,
    /// A valid token (what it may do is the route's own question, as for `/v1/auth`).
    ValidToken,
    /// A `tessera` grant with at least this role, or super-admin.
    Tessera(TesseraRole),
    /// A super-admin token.
    SuperAdmin,
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Nothing => f.write_str("nothing"),
            Need::ValidToken => f.write_str("a valid token"),
            Need::Tessera(role) => write!(f, "a tessera:{role} or super-admin token"),
            Need::SuperAdmin => f.write_str("a super-admin token"),
        }
    }
}

/// One route: its method, its path as the OpenAPI document writes it, and its need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The HTTP method, upper case.
    pub method: &'static str,
    /// The path template, e.g. `/v1/tokens/{id}`.
    pub path: &'static str,
    /// What the caller needs.
    pub need: Need,
}

const fn route(method: &'static str, path: &'static str, need: Need) -> Route {
    Route { method, path, need }
}

/// `/v1/auth` answers these methods alike.
const AUTH_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

const fn auth_routes(path: &'static str) -> [Route; 7] {
    let mut routes = [route("GET", path, Need::ValidToken); 7];
    let mut i = 0;
    while i < AUTH_METHODS.len() {
        routes[i].method = AUTH_METHODS[i];
        i += 1;
    }
    routes
}

const PUBLIC_AND_VERIFY: [Route; 11] = [
    route("POST", "/v1/verify", Need::Nothing),
    // Holding the token is the authority (RFC 7009); a leak report needs none.
    route("POST", "/v1/revoke", Need::Nothing),
    route("POST", "/v1/leaks", Need::Nothing),
    route(
        "POST",
        "/v1/introspect",
        Need::Tessera(TesseraRole::Introspect),
    ),
    route(
        "GET",
        "/.well-known/oauth-authorization-server",
        Need::Nothing,
    ),
    route("GET", "/v1/keys", Need::Nothing),
    route("GET", "/healthz", Need::Nothing),
    route("GET", "/readyz", Need::Nothing),
    route("GET", "/openapi.json", Need::Nothing),
    route("GET", "/metrics", Need::Nothing),
    route("GET", "/", Need::Nothing),
];

const MANAGEMENT: [Route; 9] = [
    route("POST", "/v1/tokens", Need::SuperAdmin),
    route("GET", "/v1/tokens", Need::SuperAdmin),
    route("GET", "/v1/tokens/{id}", Need::SuperAdmin),
    route("PATCH", "/v1/tokens/{id}", Need::SuperAdmin),
    route("DELETE", "/v1/tokens/{id}", Need::SuperAdmin),
    route("POST", "/v1/tokens/{id}/regenerate", Need::SuperAdmin),
    route("GET", "/v1/audit", Need::SuperAdmin),
    route("GET", "/v1/webhooks/deliveries", Need::SuperAdmin),
    route("GET", "/v1/state", Need::Tessera(TesseraRole::ReadState)),
];

/// Every route of an issuer. A verify-only instance serves the same minus the management
/// routes and `/`.
pub fn table() -> Vec<Route> {
    let mut routes = Vec::new();
    routes.extend(auth_routes("/v1/auth"));
    routes.extend(auth_routes("/v1/auth/"));
    routes.extend(auth_routes("/v1/auth/{path}"));
    routes.extend(PUBLIC_AND_VERIFY);
    routes.extend(MANAGEMENT);
    routes
}
