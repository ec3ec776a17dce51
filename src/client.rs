//! The HTTP client of Tessera's `/v1` API (feature `client`): one place that knows how to reach
//! a server with a bearer token, used by the command line's `--server` mode and by verify-only
//! instances that follow an issuer's `/v1/state`.
//!
//! What it guarantees, whoever calls it:
//! - the token goes only in the `Authorization` header, is kept in memory zeroized on drop, and
//!   never appears in an error or in `Debug`;
//! - redirects are not followed (they would carry the token somewhere nobody named);
//! - answers are read up to [`MAX_ANSWER`] bytes, into memory zeroized on drop (an answer may
//!   hold a new token);
//! - errors name the server's base URL and the cause, never the request.
//!
//! What an answer *means* (a refusal to show, an outage to retry) is the caller's to decide:
//! [`ClientError`] says what happened, in terms of HTTP.

use reqwest::header::IF_MATCH;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::error::Error as _;
use std::time::Duration;
use zeroize::Zeroizing;

/// The largest answer read; a longer one is cut off and reported unreadable.
pub const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// How the client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// How long a request may take, unless the call says otherwise.
    pub timeout: Duration,
    /// Extra CA certificates (PEM), for a server with a private CA.
    pub ca_pem: Option<Vec<u8>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            ca_pem: None,
        }
    }
}

/// Why a call got no usable answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not an `http(s)://` URL of a server: the message says what is wrong.
    #[error("{0}")]
    BadUrl(String),
    /// The token holds characters no token has (it is not quoted).
    #[error("the token holds spaces, control or non-ASCII characters")]
    BadToken,
    /// The CA bundle holds no certificate, or the HTTP client could not be made.
    #[error("{0}")]
    Setup(String),
    /// No whole answer: no connection, no answer in time, or a broken one.
    #[error("{what} the server at {base}: {cause}")]
    Unreachable {
        /// `cannot connect to`, `no answer in time from` or `no answer from`.
        what: &'static str,
        /// The server's base URL.
        base: String,
        /// The causes, without the URL.
        cause: String,
    },
    /// The server answered with a status that is not a success.
    #[error("the server at {base} answered {status}")]
    Status {
        /// The server's base URL.
        base: String,
        /// The status.
        status: StatusCode,
        /// The API's error, when the answer was one (`{"error": {"code", "message"}}`).
        error: Option<ApiError>,
    },
    /// A success whose body is not what the API answers.
    #[error("the server at {base} gave an answer that cannot be read: {detail}")]
    Unreadable {
        /// The server's base URL.
        base: String,
        /// What was wrong with it.
        detail: String,
    },
}

/// The API's error body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    /// The stable reason code.
    pub code: String,
    /// What is wrong, for a person.
    pub message: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ApiError,
}

/// A client of one server, with one bearer token.
pub struct ApiClient {
    client: reqwest::Client,
    base: String,
    token: Zeroizing<String>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client of the server at `base` (see [`base_url`]), sending `token`.
    pub fn new(
        base: &str,
        token: Zeroizing<String>,
        options: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let base = base_url(base)?;
        let token = Zeroizing::new(token.trim().to_owned());
        // Checked here so the header cannot fail later with a message about its value.
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClientError::BadToken);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &options.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .ok()
                .filter(|certs| !certs.is_empty())
                .ok_or_else(|| {
                    ClientError::Setup("the CA bundle holds no PEM certificate".into())
                })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| ClientError::Setup(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self {
            client,
            base,
            token,
        })
    }

    /// The server's base URL, as normalised.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Send `method path` (with `If-Match: "<revision>"` when `expect` is given, a JSON `body`
    /// when given, and `timeout` instead of the client's when given); the decoded answer. An
    /// empty answer decodes as JSON `null`, so `()` takes a 204.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        expect: Option<u64>,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<T, ClientError> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.as_str());
        if let Some(revision) = expect {
            request = request.header(IF_MATCH, format!("\"{revision}\""));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        self.send(request).await
    }

    /// `POST /v1/revoke` (RFC 7009) with the client's own token in the form: its holder's way
    /// to kill it. No `Authorization` header: holding the token is the authority. The answer is
    /// the same whether or not the token was valid.
    pub async fn revoke_own(&self) -> Result<(), ClientError> {
        let request = self
            .client
            .post(format!("{}/v1/revoke", self.base))
            .form(&[("token", self.token.as_str())]);
        self.send(request).await
    }

    /// Send `request`; its answer decoded, or the API's error.
    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let answer = read_capped(response)
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !status.is_success() {
            let error = serde_json::from_slice::<ErrorBody>(&answer)
                .ok()
                .map(|body| body.error);
            return Err(ClientError::Status {
                base: self.base.clone(),
                status,
                error,
            });
        }
        let json: &[u8] = if answer.is_empty() { b"null" } else { &answer };
        serde_json::from_slice(json).map_err(|e| ClientError::Unreadable {
            base: self.base.clone(),
            detail: e.to_string(),
        })
    }

    fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        let what = if error.is_timeout() {
            "no answer in time from"
        } else if error.is_connect() {
            "cannot connect to"
        } else {
            "no answer from"
        };
        ClientError::Unreachable {
            what,
            base: self.base.clone(),
            cause: causes(error),
        }
    }
}

/// A server's base URL: `http` or `https`, a host, no credentials (the token is sent apart), no
/// query or fragment; a path prefix is kept (a server behind a proxy), without its final `/`.
pub fn base_url(text: &str) -> Result<String, ClientError> {
    let shown = crate::redact::url(text);
    let url = Url::parse(text.trim())
        .map_err(|e| ClientError::BadUrl(format!("{shown:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(ClientError::BadUrl(format!(
            "{shown:?} is not an http(s):// URL"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ClientError::BadUrl(format!(
            "{shown:?} holds credentials; the URL names only the server"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::BadUrl(format!(
            "{shown:?} has a query or fragment; give the server's base URL"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The answer's body, up to [`MAX_ANSWER`] bytes, in memory zeroized on drop.
async fn read_capped(
    mut response: reqwest::Response,
) -> Result<Zeroizing<Vec<u8>>, reqwest::Error> {
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER {
            // Cut off: the decoder then reports an unreadable answer.
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its causes, `a: b: c`, without the URL (the caller names it once).
fn causes(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut next: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = next {
        let part = match e.downcast_ref::<reqwest::Error>() {
            Some(e) if e.url().is_some() => {
                // reqwest's own text names the URL; say what kind of failure it was instead.
                next = e.source();
                continue;
            }
            _ => e.to_string(),
        };
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
        next = e.source();
    }
    if text.is_empty() {
        text.push_str("the request failed");
    }
    crate::redact::url(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_normalised() {
        assert_eq!(
            base_url("https://tessera.example.com/").unwrap(),
            "https://tessera.example.com"
        );
        assert_eq!(
            base_url("http://127.0.0.1:8080/tessera/").unwrap(),
            "http://127.0.0.1:8080/tessera"
        );
        for bad in [
            "tessera.example.com",
            "ftp://host",
            "https://host/?x=1",
            "file:/tmp/x",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_url_with_credentials_is_refused_without_showing_them() {
        let text = base_url("https://admin:hunter2@tessera.example.com")
            .unwrap_err()
            .to_string();
        assert!(text.contains("holds credentials"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn a_malformed_token_is_refused_without_quoting_it() {
        let options = ClientOptions::default();
        for token in ["  ", "v4.public.secret part"] {
            let error =
                ApiClient::new("http://127.0.0.1:1", Zeroizing::new(token.into()), &options)
                    .unwrap_err();
            assert!(matches!(error, ClientError::BadToken));
            assert!(!format!("{error} {error:?}").contains("secret"));
        }
    }

    #[test]
    fn the_debug_form_holds_no_token() {
        let client = ApiClient::new(
            "http://127.0.0.1:1",
            Zeroizing::new("v4.public.abc".into()),
            &ClientOptions::default(),
        )
        .unwrap();
        let text = format!("{client:?}");
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(!text.contains("v4.public.abc"), "{text}");
    }
}
