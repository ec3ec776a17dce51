//! The store URL: single Redis or cluster, TLS, credentials (never printed), and the first
//! contact with a seed.

use super::*;

/// `url` with any user and password replaced by `***`, for messages.
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".to_owned();
    };
    // Up to the last '@' anywhere: a password with an unescaped '/' or '#' must not leak, and
    // hiding a little too much of an odd URL costs nothing.
    match rest.rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

pub(super) const URL_FORM: &str =
    "use redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (rediss://… for TLS), \
     or redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…] (rediss+cluster://… for TLS) \
     for a Redis Cluster, or redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/MASTER_NAME[/DB] \
     (rediss+sentinel://… for TLS) for a primary found through Redis Sentinel";

/// The scheme of each node (`redis` or `rediss`) and what follows `+cluster://`, for a
/// `redis+cluster://` or `rediss+cluster://` URL.
pub(super) fn cluster_scheme(url: &str) -> Option<(&'static str, &str)> {
    if let Some(rest) = url.strip_prefix("redis+cluster://") {
        Some(("redis", rest))
    } else {
        url.strip_prefix("rediss+cluster://")
            .map(|rest| ("rediss", rest))
    }
}

/// A store URL, parsed.
pub(super) struct Endpoint {
    /// Each node the URL names (a single Redis, or the seed nodes of a cluster), with its
    /// `host:port` for messages. Never empty.
    pub(super) nodes: Vec<(String, Client)>,
    pub(super) cluster: bool,
    pub(super) tls: bool,
    pub(super) db: i64,
    pub(super) has_password: bool,
}

pub(super) fn parse_url(url: &str, ca_pem: Option<&[u8]>) -> Result<Endpoint, StoreError> {
    let invalid = |e: RedisError| {
        StoreError::Config(format!(
            "invalid Redis store URL {:?}: {}; {URL_FORM}",
            redact(url),
            describe(&e)
        ))
    };
    let (node_urls, cluster) = if let Some((scheme, rest)) = cluster_scheme(url) {
        // One URL per seed node, each with the credentials, database and options of the whole.
        let (auth, rest) = match rest.rfind('@') {
            Some(at) => rest.split_at(at + 1),
            None => ("", rest),
        };
        let (hosts, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
        if hosts.split(',').any(str::is_empty) {
            return Err(StoreError::Config(format!(
                "invalid Redis store URL {:?}: name the cluster's seed nodes as HOST[:PORT], \
                 separated by commas; {URL_FORM}",
                redact(url)
            )));
        }
        let urls: Vec<String> = hosts
            .split(',')
            .map(|host| format!("{scheme}://{auth}{host}{tail}"))
            .collect();
        (urls, true)
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        (vec![url.to_owned()], false)
    } else {
        return Err(StoreError::Config(format!(
            "unsupported Redis store URL {:?}: {URL_FORM}",
            redact(url)
        )));
    };
    let mut nodes = Vec::with_capacity(node_urls.len());
    for node_url in node_urls {
        let info = node_url.as_str().into_connection_info().map_err(invalid)?;
        let server = match info.addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                format!("{host}:{port}")
            }
            other => {
                return Err(StoreError::Config(format!(
                    "unsupported Redis address {other}: {URL_FORM}"
                )))
            }
        };
        // RESP3, so the shared connection hears at once when the server goes away and
        // reconnects in the background: the first command after a Redis restart then finds a
        // live connection instead of failing on the dead one.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(settings);
        let client = match ca_pem {
            None => Client::open(info),
            Some(pem) => Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
        }
        .map_err(invalid)?;
        nodes.push((server, client));
    }
    let first = nodes[0].1.get_connection_info();
    let endpoint = Endpoint {
        cluster,
        tls: matches!(first.addr(), ConnectionAddr::TcpTls { .. }),
        db: first.redis_settings().db(),
        has_password: first.redis_settings().password().is_some(),
        nodes,
    };
    if cluster && endpoint.db != 0 {
        return Err(StoreError::Config(format!(
            "invalid Redis store URL {:?}: a Redis Cluster has database 0 only",
            redact(url)
        )));
    }
    Ok(endpoint)
}

/// A cluster client for the seed nodes: it resends nothing by itself (the store decides what
/// may be sent again, see the module doc).
pub(super) fn cluster_builder(
    seeds: &[ConnectionInfo],
    ca_pem: Option<&[u8]>,
) -> ClusterClientBuilder {
    let builder = ClusterClientBuilder::new(seeds.iter().cloned())
        .connection_timeout(CONNECT_TIMEOUT)
        .retries(0);
    match ca_pem {
        None => builder,
        Some(pem) => builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        }),
    }
}

/// A plain connection to one node, checked with PING, so a bad address or password fails at
/// once with a clear message (the connection manager would retry it for seconds, and the
/// cluster client would only say that no seed node answered).
pub(super) async fn probe(
    client: &Client,
    server: &str,
    has_password: bool,
) -> Result<MultiplexedConnection, StoreError> {
    let mut probe = client
        .get_multiplexed_async_connection_with_config(&blocking_config())
        .await
        .map_err(|e| open_error(server, has_password, e))?;
    let ping_cmd = redis::cmd("PING");
    let ping = ping_cmd.query_async::<String>(&mut probe);
    match tokio::time::timeout(RESPONSE_TIMEOUT, ping).await {
        Ok(Ok(_)) => Ok(probe),
        Ok(Err(e)) => Err(open_error(server, has_password, e)),
        Err(_) => Err(StoreError::Unavailable(format!(
            "Redis at {server} did not answer PING within {RESPONSE_TIMEOUT:?}"
        ))),
    }
}

/// Reach the first seed node that answers and check that it is a cluster node. When none
/// answers, a configuration error (a refused password, say) is reported before the others.
pub(super) async fn reach_a_seed(
    nodes: &[(String, Client)],
    has_password: bool,
) -> Result<(), StoreError> {
    let mut failures = Vec::new();
    for (server, client) in nodes {
        let mut conn = match probe(client, server, has_password).await {
            Ok(conn) => conn,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let mut info = redis::cmd("CLUSTER");
        info.arg("INFO");
        let reply = tokio::time::timeout(RESPONSE_TIMEOUT, info.query_async::<Value>(&mut conn));
        if let Ok(Err(e)) = reply.await {
            if e.to_string().contains("cluster support disabled") {
                return Err(StoreError::Config(format!(
                    "Redis at {server} is not a Redis Cluster node (its cluster support is \
                     disabled): use a redis:// URL for a single Redis"
                )));
            }
        }
        // Anything else (CLUSTER INFO not allowed, say) is for the cluster client to find out.
        return Ok(());
    }
    if let Some(i) = failures
        .iter()
        .position(|e| matches!(e, StoreError::Config(_)))
    {
        return Err(failures.swap_remove(i));
    }
    if failures.len() == 1 {
        return Err(failures.remove(0));
    }
    let reasons: Vec<String> = failures
        .iter()
        .map(|e| match e {
            StoreError::Unavailable(why) => why.clone(),
            other => other.to_string(),
        })
        .collect();
    Err(StoreError::Unavailable(format!(
        "no seed node of the Redis Cluster answered: {}",
        reasons.join("; ")
    )))
}
