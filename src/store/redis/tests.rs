//! Unit tests of the parts that need no server: URLs, redaction, key names, cluster errors.

use super::*;

#[test]
fn redact_hides_credentials() {
    assert_eq!(redact("redis://:pw@h:1/0"), "redis://***@h:1/0");
    assert_eq!(redact("rediss://u:pw@h/0?x#y"), "rediss://***@h/0?x#y");
    assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
    assert_eq!(redact("redis://:p/w@h:1/0"), "redis://***@h:1/0");
    assert_eq!(redact("nope"), "(not a URL)");
}

#[test]
fn a_cluster_url_names_each_seed_with_the_credentials_of_the_whole() {
    let endpoint = parse_url("redis+cluster://:p%40ss@h1:7000,h2,10.0.0.3:7002/0", None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(endpoint.cluster && !endpoint.tls && endpoint.has_password);
    let names: Vec<&str> = endpoint.nodes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["h1:7000", "h2:6379", "10.0.0.3:7002"]);
    for (_, client) in &endpoint.nodes {
        let info = client.get_connection_info();
        assert_eq!(info.redis_settings().password(), Some("p@ss"));
        assert_eq!(info.redis_settings().db(), 0);
    }
    let endpoint = parse_url("rediss+cluster://u:pw@h1:7000", None).unwrap();
    assert!(endpoint.cluster && endpoint.tls && endpoint.has_password);
    let single = parse_url("redis://h:1/2", None).unwrap();
    assert!(!single.cluster && single.db == 2 && single.nodes.len() == 1);
    for bad in [
        "redis+cluster://",
        "redis+cluster://:pw@h1:1,,h2:2",
        "redis+cluster://h1:1,",
        "redis+cluster://:pw@h1:1/2",
        "redis+cluster+x://h1:1",
    ] {
        match parse_url(bad, None) {
            Err(StoreError::Config(message)) => {
                assert!(!message.contains("pw@"), "{message}")
            }
            Err(e) => panic!("{bad}: {e:?}"),
            Ok(_) => panic!("{bad} parsed"),
        }
    }
    assert_eq!(
        redact("redis+cluster://:pw@h1:1,h2:2"),
        "redis+cluster://***@h1:1,h2:2"
    );
}

#[test]
fn the_cluster_refusals_that_mean_nothing_ran() {
    let error = |reply: &str| {
        redis::parse_redis_value(reply.as_bytes())
            .unwrap()
            .extract_error()
            .unwrap_err()
    };
    for reply in [
        "-MOVED 4452 127.0.0.1:7001\r\n",
        "-ASK 4452 127.0.0.1:7001\r\n",
        "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
        "-CLUSTERDOWN The cluster is down\r\n",
        "-LOADING Redis is loading the dataset in memory\r\n",
        "-READONLY You can't write against a read only replica.\r\n",
    ] {
        assert!(cluster_did_not_run(&error(reply)), "{reply}");
    }
    for reply in [
        "-ERR Error running script\r\n",
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        "-NOSCRIPT No matching script\r\n",
    ] {
        assert!(!cluster_did_not_run(&error(reply)), "{reply}");
    }
    assert!(!aborted_by_cluster(&error("-MOVED 1 h:1\r\n")));
    let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
    assert!(!cluster_did_not_run(&timeout));
}

#[test]
fn keys_share_one_hash_tag() {
    let keys = Keys::new("t1");
    for key in [
        &keys.records,
        &keys.names,
        &keys.state,
        &keys.drops,
        &keys.rev,
        &keys.feed,
        &keys.audit,
    ] {
        assert!(key.starts_with("{t1}:"), "{key}");
    }
}

#[test]
fn stream_ids_are_revisions() {
    assert_eq!(parse_stream_id("f", "42-0").unwrap(), 42);
    assert!(parse_stream_id("f", "42-1").is_err());
    assert!(parse_stream_id("f", "x-0").is_err());
}

#[test]
fn a_sentinel_url_names_the_sentinels_the_primary_and_the_nodes_credentials() {
    let spec = parse_sentinel_url("redis+sentinel://u:p%40ss@s1:26380,s2,10.0.0.3:5000/mymaster/3")
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = spec.sentinels.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["s1:26380", "s2:26379", "10.0.0.3:5000"]);
    assert_eq!(spec.master, "mymaster");
    assert!(spec.db == 3 && spec.has_password && !spec.tls);
    // The Sentinels are asked without the nodes' credentials.
    for (_, info) in &spec.sentinels {
        assert_eq!(info.redis_settings().password(), None);
        assert_eq!(info.redis_settings().db(), 0);
    }
    let spec = parse_sentinel_url("rediss+sentinel://s1/m").unwrap();
    assert!(spec.tls && spec.db == 0 && !spec.has_password);
    assert!(matches!(
        spec.sentinels[0].1.addr(),
        ConnectionAddr::TcpTls { port: 26379, .. }
    ));
    assert_eq!(
        redact("redis+sentinel://:pw@h1:1,h2:2/m/0"),
        "redis+sentinel://***@h1:1,h2:2/m/0"
    );
}
