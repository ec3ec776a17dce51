//! `tessera serve`: the HTTP service. Parses its options, sets up logging, opens the state
//! (generating a key on a first start with the embedded store), binds, and serves until Ctrl-C
//! or SIGTERM, finishing the requests in flight. SIGHUP reloads the key folder.

use super::report::{eprint_line, Failure};
use super::token::{ReplicaArgs, StoreArg};
use super::webhooks::SECRET_VAR;
use crate::lifecycle::NoticeThreshold;
use crate::lifecycle::{Expiry, Policy};
use crate::server;
use crate::startup::{self, ServerConfig};
use crate::verifier::{DEFAULT_ISSUER, DEFAULT_LEEWAY_SECS};
use crate::webhook::WebhookSecret;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Options of `tessera serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A TOML file with any of these options, by their long names (`listen = "0.0.0.0:8080"`,
    /// `trusted-proxy = ["10.0.0.1"]`); the command line and the environment override it
    #[arg(long, value_name = "FILE", env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,

    /// The address to listen on
    #[arg(
        long,
        value_name = "ADDR",
        env = "TESSERA_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    listen: SocketAddr,

    /// The key folder; with the embedded store, a key pair is generated there on a first start
    #[arg(long, value_name = "DIR", env = "TESSERA_KEYS", default_value = "keys")]
    keys: PathBuf,

    #[command(flatten)]
    store: StoreArg,

    #[command(flatten)]
    replicas: ReplicaArgs,

    /// The issuer written into tokens and required of them
    #[arg(long, value_name = "NAME", env = "TESSERA_ISSUER", default_value = DEFAULT_ISSUER)]
    issuer: String,

    /// Clock skew tolerated on token times, in seconds
    #[arg(long, value_name = "SECONDS", env = "TESSERA_LEEWAY", default_value_t = DEFAULT_LEEWAY_SECS,
          value_parser = clap::value_parser!(i64).range(0..=86_400))]
    leeway: i64,

    /// Refuse every token (`stale_state`) once the token state has not been heard from for this
    /// many seconds
    #[arg(long, value_name = "SECONDS", env = "TESSERA_STALENESS_BOUND", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    staleness_bound: u64,

    /// Past the staleness bound, keep verifying from the last known token state instead of
    /// refusing (deleted tokens may then pass; logged as an error every 5 s)
    #[arg(long, env = "TESSERA_FAIL_OPEN", value_parser = clap::builder::FalseyValueParser::new())]
    fail_open: bool,

    /// Refuse token expiries more than this many days away (and `never`)
    #[arg(long, value_name = "DAYS", env = "TESSERA_MAX_LIFETIME_DAYS",
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    max_lifetime_days: Option<u32>,

    /// A proxy in front of the service whose `X-Forwarded-For` names the client (repeat the
    /// option, or separate addresses with commas in the variable); any other peer is the client
    #[arg(
        long = "trusted-proxy",
        value_name = "IP",
        env = "TESSERA_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<std::net::IpAddr>,

    /// Tokens with bad signatures one client may send in 10 s before its signature checks are
    /// refused (429) for 60 s; its tokens already verified keep working (0: no limit)
    #[arg(long, value_name = "COUNT", env = "TESSERA_BAD_SIGNATURE_BUDGET",
          default_value_t = crate::server::budget::DEFAULT_LIMIT)]
    bad_signature_budget: u32,

    /// Only verify: /v1/auth, /v1/verify, /v1/keys, health and metrics; no management API and
    /// no secret key needed (public key files suffice). The token state comes from
    /// --state-from, or from a shared --store (Redis)
    #[arg(long, env = "TESSERA_VERIFY_ONLY", value_parser = clap::builder::FalseyValueParser::new())]
    verify_only: bool,

    /// Whenever no live super-admin exists (a first start, or the last one expired), create
    /// one named `admin` and write it to this file (mode 0600), replacing what the file held:
    /// read it, then delete the file
    #[arg(
        long,
        value_name = "FILE",
        env = "TESSERA_BOOTSTRAP_TOKEN",
        conflicts_with = "verify_only"
    )]
    bootstrap_token: Option<PathBuf>,

    /// The lifetime of a token made by --bootstrap-token: 7d, 30d, 60d, 90d, never, a date
    /// (the end of that day, 23:59:59 UTC) or an RFC 3339 time
    #[arg(
        long,
        value_name = "EXPIRY",
        env = "TESSERA_BOOTSTRAP_EXPIRES",
        default_value = "90d",
        value_parser = parse_expiry,
    )]
    bootstrap_expires: Expiry,

    /// Post an event of every token change to this URL, signed with the secret in
    /// TESSERA_WEBHOOK_SECRET (Standard Webhooks), retried for up to 24 h; repeat the option
    /// (or separate URLs with commas in the variable) for several receivers
    #[arg(
        long = "webhook",
        value_name = "URL",
        env = "TESSERA_WEBHOOKS",
        value_delimiter = ',',
        conflicts_with = "verify_only"
    )]
    webhooks: Vec<String>,

    /// Add a `token.expiring` event this long before a token expires, once per threshold:
    /// days (7d) or hours (12h), separated by commas; `none` for no notices (a
    /// `token.expired` event still follows each expiry)
    #[arg(long, value_name = "LIST", env = "TESSERA_NOTIFY_EXPIRING", default_value = "7d,1d",
          value_parser = parse_thresholds)]
    notify_expiring: Thresholds,

    /// The webhook secret from the config file (the variable is read at start).
    #[arg(skip)]
    webhook_secret: Option<Arc<WebhookSecret>>,

    /// With --verify-only: follow the token state of the issuer at this URL (its /v1/state),
    /// reading it with the super-admin token in TESSERA_STATE_TOKEN
    #[arg(
        long,
        value_name = "URL",
        env = "TESSERA_STATE_FROM",
        requires = "verify_only"
    )]
    state_from: Option<String>,
}

pub(crate) const AFTER_HELP: &str = "\
Each option is taken from the command line, else its TESSERA_* variable, else the --config
file (TOML, keys as the long names: listen, keys, store, redis-min-replicas,
redis-wait-timeout, issuer, leeway, staleness-bound, fail-open, max-lifetime-days,
trusted-proxy, bad-signature-budget, verify-only, state-from, bootstrap-token,
bootstrap-expires, webhook, notify-expiring; and webhook-secret, whose variable is TESSERA_WEBHOOK_SECRET),
else its default.
Logs go to stderr; set TESSERA_LOG (e.g. `debug`, `tessera=debug`) to change the level.
Stop with Ctrl-C or SIGTERM: requests in flight are finished first.

Examples:
  tessera serve
  tessera serve --listen 0.0.0.0:8080 --store redis://10.0.0.5:6379/0 --keys /etc/tessera/keys
  TESSERA_STATE_TOKEN=... tessera serve --verify-only --keys public-keys \\
    --state-from http://issuer:8080";

/// Run `tessera serve`.
pub(crate) fn run(mut args: ServeArgs, matches: Option<&ArgMatches>) -> Result<ExitCode, Failure> {
    if let Some(path) = args.config.clone() {
        apply_file(&mut args, matches, &path)?;
    }
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format_args!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(args))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn serve(args: ServeArgs) -> Result<ExitCode, Failure> {
    let config = ServerConfig {
        keys_dir: args.keys.clone(),
        store_url: args.store.store.clone(),
        store_options: args.replicas.options(),
        issuer: args.issuer,
        leeway: chrono::Duration::seconds(args.leeway),
        staleness_bound: Duration::from_secs(args.staleness_bound),
        fail_open: args.fail_open,
        policy: Policy {
            max_lifetime: args
                .max_lifetime_days
                .map(|d| chrono::Duration::days(i64::from(d))),
            ..Policy::default()
        },
        trusted_proxies: args.trusted_proxies,
        bad_signature_budget: args.bad_signature_budget,
        verify_only: args.verify_only,
        state_from: match args.state_from {
            Some(url) => {
                let token = std::env::var("TESSERA_STATE_TOKEN").map_err(|_| {
                    Failure::new(
                        "--state-from needs a token in TESSERA_STATE_TOKEN that may read the \
                         state: {\"resource\": \"tessera\", \"role\": \"read-state\"}",
                    )
                    .hint("the token is read from the environment so it stays out of `ps`")
                })?;
                Some((url, token.trim().to_owned()))
            }
            None => None,
        },
        bootstrap_token: args.bootstrap_token.clone(),
        bootstrap_expires: args.bootstrap_expires,
        webhook_secret: webhook_secret(args.webhook_secret.clone())?,
        webhooks: args.webhooks.clone(),
        notify_expiring: args.notify_expiring.0.clone(),
        ..ServerConfig::default()
    };
    let (state, startup) = startup::open(&config)
        .await
        .map_err(|e| Failure::new(crate::redact::url(&e.to_string())))?;
    if let Some(kid) = &startup.generated_key {
        tracing::info!(
            key_id = %kid,
            keys = %args.keys.display(),
            "first start: generated a signing key pair (the secret file is mode 0600)"
        );
    }
    if config.fail_open {
        tracing::warn!("--fail-open: past the staleness bound, tokens are verified against the last known token state");
    }
    server::reload_keys_on_hangup(state.clone(), args.keys.clone())
        .map_err(|e| Failure::new(format_args!("cannot listen for SIGHUP (key reloads): {e}")))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::new(format_args!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::new(format_args!("cannot read the listening address: {e}")))?;
    tracing::info!(
        address = %format!("http://{local}"),
        store = %crate::redact::url(&config.store_url),
        keys = %args.keys.display(),
        "tessera is listening"
    );
    if let Some(made) = &startup.bootstrapped {
        tracing::warn!(
            file = %made.path.display(),
            id = %made.id,
            name = %made.name,
            expires = %made
                .expires_at
                .map_or_else(|| "never".to_owned(), |at| crate::claims::format_time(&at)),
            "no live super-admin: made one and wrote it to the file, mode 0600; read it, then \
             delete the file"
        );
    } else if args.bootstrap_token.is_some() {
        tracing::info!("a live super-admin exists: --bootstrap-token made none");
    } else if startup.no_tokens {
        eprint_line(
            "no tokens yet: start with --bootstrap-token FILE to make the first super-admin \
             token, or stop the server and run `tessera token create --name admin --super-admin`",
        );
    }
    server::serve(listener, state, server::shutdown_signal())
        .await
        .map_err(|e| Failure::new(format_args!("the server failed: {e}")))?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The `--notify-expiring` list, as one value.
#[derive(Debug, Clone)]
struct Thresholds(Vec<NoticeThreshold>);

fn parse_thresholds(text: &str) -> Result<Thresholds, String> {
    NoticeThreshold::parse_list(text).map(Thresholds)
}

/// The webhook secret: from TESSERA_WEBHOOK_SECRET, else the config file's.
fn webhook_secret(
    from_file: Option<Arc<WebhookSecret>>,
) -> Result<Option<Arc<WebhookSecret>>, Failure> {
    match std::env::var(SECRET_VAR) {
        Ok(text) => text
            .parse()
            .map(|secret| Some(Arc::new(secret)))
            .map_err(|e| Failure::new(format_args!("{SECRET_VAR}: {e}"))),
        Err(_) => Ok(from_file),
    }
}

/// `tessera serve --config FILE`: every option by its long name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<SocketAddr>,
    keys: Option<PathBuf>,
    store: Option<String>,
    redis_min_replicas: Option<u32>,
    redis_wait_timeout: Option<u64>,
    issuer: Option<String>,
    leeway: Option<i64>,
    staleness_bound: Option<u64>,
    fail_open: Option<bool>,
    max_lifetime_days: Option<u32>,
    trusted_proxy: Option<Vec<std::net::IpAddr>>,
    bad_signature_budget: Option<u32>,
    verify_only: Option<bool>,
    state_from: Option<String>,
    bootstrap_token: Option<PathBuf>,
    bootstrap_expires: Option<String>,
    webhook: Option<Vec<String>>,
    webhook_secret: Option<String>,
    notify_expiring: Option<String>,
}

/// Take from the file every option that neither the command line nor the environment set.
fn apply_file(
    args: &mut ServeArgs,
    matches: Option<&ArgMatches>,
    path: &std::path::Path,
) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(format_args!("cannot read {}: {e}", path.display())))?;
    let file: FileConfig = toml::from_str(&text).map_err(|e| {
        Failure::new(format_args!("{}: {}", path.display(), e.message()))
            .hint("the keys are the long option names of `tessera serve --help`")
    })?;
    let unset = |id: &str| {
        !matches!(
            matches.and_then(|m| m.value_source(id)),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let out_of_range = |key: &str, range: &str| {
        Failure::new(format_args!("{}: {key} must be in {range}", path.display()))
    };
    macro_rules! take {
        ($field:ident, $id:literal, $target:expr) => {
            if let Some(value) = file.$field {
                if unset($id) {
                    $target = value;
                }
            }
        };
    }
    take!(listen, "listen", args.listen);
    take!(keys, "keys", args.keys);
    take!(store, "store", args.store.store);
    if let Some(n) = file.redis_min_replicas {
        if n > 100 {
            return Err(out_of_range("redis-min-replicas", "0..=100"));
        }
        if unset("redis_min_replicas") {
            args.replicas.redis_min_replicas = n;
        }
    }
    if let Some(ms) = file.redis_wait_timeout {
        if !(1..=4000).contains(&ms) {
            return Err(out_of_range("redis-wait-timeout", "1..=4000"));
        }
        if unset("redis_wait_timeout") {
            args.replicas.redis_wait_timeout = ms;
        }
    }
    take!(issuer, "issuer", args.issuer);
    if let Some(leeway) = file.leeway {
        if !(0..=86_400).contains(&leeway) {
            return Err(out_of_range("leeway", "0..=86400"));
        }
        if unset("leeway") {
            args.leeway = leeway;
        }
    }
    if let Some(bound) = file.staleness_bound {
        if !(1..=86_400).contains(&bound) {
            return Err(out_of_range("staleness-bound", "1..=86400"));
        }
        if unset("staleness_bound") {
            args.staleness_bound = bound;
        }
    }
    take!(fail_open, "fail_open", args.fail_open);
    if let Some(days) = file.max_lifetime_days {
        if !(1..=36_500).contains(&days) {
            return Err(out_of_range("max-lifetime-days", "1..=36500"));
        }
        if unset("max_lifetime_days") {
            args.max_lifetime_days = Some(days);
        }
    }
    take!(trusted_proxy, "trusted_proxies", args.trusted_proxies);
    take!(
        bad_signature_budget,
        "bad_signature_budget",
        args.bad_signature_budget
    );
    take!(verify_only, "verify_only", args.verify_only);
    if let Some(url) = file.state_from {
        if unset("state_from") {
            args.state_from = Some(url);
        }
    }
    if let Some(token_file) = file.bootstrap_token {
        if unset("bootstrap_token") {
            args.bootstrap_token = Some(token_file);
        }
    }
    if let Some(expiry) = file.bootstrap_expires {
        let expiry = parse_expiry(&expiry).map_err(|e| {
            Failure::new(format_args!("{}: bootstrap-expires: {e}", path.display()))
        })?;
        if unset("bootstrap_expires") {
            args.bootstrap_expires = expiry;
        }
    }
    take!(webhook, "webhooks", args.webhooks);
    if let Some(list) = file.notify_expiring {
        let list = parse_thresholds(&list)
            .map_err(|e| Failure::new(format_args!("{}: notify-expiring: {e}", path.display())))?;
        if unset("notify_expiring") {
            args.notify_expiring = list;
        }
    }
    if let Some(secret) = file.webhook_secret {
        let secret: WebhookSecret = secret
            .parse()
            .map_err(|e| Failure::new(format_args!("{}: webhook-secret: {e}", path.display())))?;
        args.webhook_secret = Some(Arc::new(secret));
    }
    if args.state_from.is_some() && !args.verify_only {
        return Err(Failure::new("state-from needs verify-only"));
    }
    if args.bootstrap_token.is_some() && args.verify_only {
        return Err(Failure::new(
            "bootstrap-token cannot be used with verify-only",
        ));
    }
    Ok(())
}

/// An expiry as `--expires` takes it, with the message alone (not the field name).
fn parse_expiry(text: &str) -> Result<Expiry, String> {
    super::token::expiry(text).map_err(|(message, _)| message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_expiry_takes_a_plain_date_as_the_end_of_that_day() {
        let end = chrono::DateTime::parse_from_rfc3339("2027-01-31T23:59:59Z").unwrap();
        assert_eq!(parse_expiry("2027-01-31"), Ok(Expiry::At(end.to_utc())));
        assert_eq!(parse_expiry("90d"), Ok(Expiry::Days(90)));
        let refused = parse_expiry("2027-02-30").unwrap_err();
        assert_eq!(refused, "2027-02-30 is not a date of the calendar");
    }
}
