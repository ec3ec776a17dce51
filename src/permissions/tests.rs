//! The permission model's tests: JSON in and out, validation, and the decision.

use super::*;

const EXAMPLE: &str = r#"{"grants": [
  {"resource": "devtron-app", "role": "trigger", "project": "payments",
   "environments": ["prod", "staging"], "apps": ["*"]},
  {"resource": "helm-app", "role": "edit", "project": "infra",
   "environments": ["prod-cluster__monitoring"], "apps": ["grafana"]},
  {"resource": "kubernetes", "role": "view", "cluster": "prod",
   "namespaces": ["*"], "groups": ["", "apps"], "kinds": ["Deployment", "Pod"], "names": ["*"]},
  {"resource": "chart-group", "role": "view", "groups": ["*"]}
]}"#;

fn parse(json: &str) -> Result<Permissions, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

#[track_caller]
fn assert_rejected(json: &str, expected: &str) {
    match parse(json) {
        Ok(value) => panic!("accepted {json}: {value:?}"),
        Err(message) => assert!(
            message.contains(expected),
            "error for {json}\n  was: {message}\n  expected to contain: {expected}"
        ),
    }
}

/// Patterns from their written form; `""` is the core group.
fn patterns(texts: &[&str]) -> Patterns {
    texts
        .iter()
        .map(|text| Pattern::parse_in(text, true).unwrap())
        .collect()
}

fn pattern(text: &str) -> Pattern {
    Pattern::parse(text).unwrap()
}

fn devtron(role: DevtronRole, project: &str, envs: &[&str], apps: &[&str]) -> Grant {
    Grant::DevtronApp(AppGrant {
        role,
        project: pattern(project),
        environments: patterns(envs),
        apps: patterns(apps),
    })
}

fn helm(role: HelmRole, project: &str, envs: &[&str], apps: &[&str]) -> Grant {
    Grant::HelmApp(AppGrant {
        role,
        project: pattern(project),
        environments: patterns(envs),
        apps: patterns(apps),
    })
}

fn kubernetes(role: KubernetesRole, cluster: &str, lists: [&[&str]; 4]) -> Grant {
    let [namespaces, groups, kinds, names] = lists;
    Grant::Kubernetes(KubernetesGrant {
        role,
        cluster: pattern(cluster),
        namespaces: patterns(namespaces),
        groups: patterns(groups),
        kinds: patterns(kinds),
        names: patterns(names),
    })
}

fn chart_group(role: ChartGroupRole, groups: &[&str]) -> Grant {
    Grant::ChartGroup(ChartGroupGrant {
        role,
        groups: patterns(groups),
    })
}

fn grants(grants: Vec<Grant>) -> Permissions {
    Permissions::Grants(grants)
}

fn devtron_access<'a>(role: DevtronRole, scope: [&'a str; 3]) -> Access<'a> {
    let [project, environment, app] = scope;
    Access::DevtronApp {
        role,
        project,
        environment,
        app,
    }
}

fn helm_access<'a>(role: HelmRole, scope: [&'a str; 3]) -> Access<'a> {
    let [project, environment, app] = scope;
    Access::HelmApp {
        role,
        project,
        environment,
        app,
    }
}

fn kubernetes_access<'a>(role: KubernetesRole, scope: [&'a str; 5]) -> Access<'a> {
    let [cluster, namespace, group, kind, name] = scope;
    Access::Kubernetes {
        role,
        cluster,
        namespace,
        group,
        kind,
        name,
    }
}

/// For every granted role and every required role: allowed iff granted is at or above
/// required, by position on the ladder (not only by the derived `Ord`).
#[track_caller]
fn assert_ladder<R: Copy + fmt::Display>(all: &[R], allows: impl Fn(R, R) -> bool) {
    for (granted_at, &granted) in all.iter().enumerate() {
        for (required_at, &required) in all.iter().enumerate() {
            assert_eq!(
                allows(granted, required),
                granted_at >= required_at,
                "granted {granted}, required {required}"
            );
        }
    }
}

// --- the authorization table -------------------------------------------------------

#[test]
fn role_ladders_list_their_roles_lowest_first() {
    assert_eq!(
        DevtronRole::ALL.map(DevtronRole::as_str),
        ["view", "trigger", "admin", "manager"]
    );
    assert_eq!(
        HelmRole::ALL.map(HelmRole::as_str),
        ["view", "edit", "admin"]
    );
    assert_eq!(
        KubernetesRole::ALL.map(KubernetesRole::as_str),
        ["view", "edit", "admin"]
    );
    assert_eq!(
        ChartGroupRole::ALL.map(ChartGroupRole::as_str),
        ["view", "update", "admin"]
    );
    assert!(DevtronRole::ALL.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(HelmRole::ALL.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(KubernetesRole::ALL.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(ChartGroupRole::ALL.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn a_devtron_role_allows_exactly_the_roles_up_to_it() {
    let scope = ["payments", "prod", "api"];
    assert_ladder(&DevtronRole::ALL, |granted, required| {
        grants(vec![devtron(granted, "payments", &["prod"], &["api"])])
            .allows(&devtron_access(required, scope))
    });
}

#[test]
fn a_helm_role_allows_exactly_the_roles_up_to_it() {
    let scope = ["infra", "prod__monitoring", "grafana"];
    assert_ladder(&HelmRole::ALL, |granted, required| {
        grants(vec![helm(
            granted,
            "infra",
            &["prod__monitoring"],
            &["grafana"],
        )])
        .allows(&helm_access(required, scope))
    });
}

#[test]
fn a_kubernetes_role_allows_exactly_the_roles_up_to_it() {
    let scope = ["prod", "default", "apps", "Deployment", "web"];
    assert_ladder(&KubernetesRole::ALL, |granted, required| {
        let lists: [&[&str]; 4] = [&["default"], &["apps"], &["Deployment"], &["web"]];
        grants(vec![kubernetes(granted, "prod", lists)]).allows(&kubernetes_access(required, scope))
    });
}

#[test]
fn a_chart_group_role_allows_exactly_the_roles_up_to_it() {
    assert_ladder(&ChartGroupRole::ALL, |granted, required| {
        grants(vec![chart_group(granted, &["base"])]).allows(&Access::ChartGroup {
            role: required,
            group: "base",
        })
    });
}

#[test]
fn a_tessera_role_allows_exactly_the_roles_up_to_it_and_nothing_else() {
    assert_eq!(
        TesseraRole::ALL.map(TesseraRole::as_str),
        ["introspect", "read-state"]
    );
    assert_ladder(&TesseraRole::ALL, |granted, required| {
        grants(vec![Grant::Tessera(TesseraGrant { role: granted })])
            .allows(&Access::Tessera { role: required })
    });
    // A tessera grant answers no question about another resource, and no grant of another
    // resource answers one about tessera.
    let read_state = grants(vec![Grant::Tessera(TesseraGrant {
        role: TesseraRole::ReadState,
    })]);
    assert!(!read_state.allows(&Access::ChartGroup {
        role: ChartGroupRole::View,
        group: "base",
    }));
    assert!(
        !grants(vec![chart_group(ChartGroupRole::Admin, &["*"])]).allows(&Access::Tessera {
            role: TesseraRole::Introspect
        })
    );
    assert!(Permissions::SuperAdmin.allows(&Access::Tessera {
        role: TesseraRole::ReadState
    }));
}

#[test]
fn a_tessera_grant_has_a_role_and_no_scope() {
    let json = r#"{"grants":[{"resource":"tessera","role":"read-state"}]}"#;
    let read = parse(json).unwrap();
    assert_eq!(serde_json::to_string(&read).unwrap(), json);
    assert_eq!(read.summary(), "tessera:read-state");
    assert_rejected(
        r#"{"grants":[{"resource":"tessera","role":"read-state","groups":["*"]}]}"#,
        "groups",
    );
    assert_rejected(
        r#"{"grants":[{"resource":"tessera","role":"admin"}]}"#,
        "introspect",
    );
    assert_rejected(r#"{"grants":[{"resource":"tessera"}]}"#, "role");
    let question = Access::from_fields("tessera", "introspect", |_| None).unwrap();
    assert_eq!(
        question,
        Access::Tessera {
            role: TesseraRole::Introspect
        }
    );
}

#[test]
fn exact_patterns_match_only_the_same_bytes() {
    let exact = pattern("payments");
    assert_eq!(exact, Pattern::Exact("payments".into()));
    assert!(exact.matches("payments"));
    assert!(!exact.matches("Payments"));
    assert!(!exact.matches("payments2"));
    assert!(!exact.matches("payment"));
    assert!(!exact.matches(""));
    assert!(!exact.matches("*"));
}

#[test]
fn the_star_pattern_matches_everything() {
    assert_eq!(pattern("*"), Pattern::Any);
    for value in ["", "*", "anything", "ÄÖ", "a*b"] {
        assert!(Pattern::Any.matches(value), "{value:?}");
    }
}

#[test]
fn prefix_patterns_match_values_starting_with_the_prefix() {
    let prefix = pattern("pay*");
    assert_eq!(prefix, Pattern::Prefix("pay".into()));
    assert!(prefix.matches("pay"));
    assert!(prefix.matches("payments"));
    assert!(prefix.matches("pay*"));
    assert!(!prefix.matches("pa"));
    assert!(!prefix.matches("Payments"));
    assert!(!prefix.matches("xpayments"));
    assert!(!prefix.matches(""));
}

#[test]
fn the_empty_core_group_matches_only_the_empty_group() {
    let lists: [&[&str]; 4] = [&["*"], &[""], &["*"], &["*"]];
    let perms = grants(vec![kubernetes(KubernetesRole::View, "*", lists)]);
    let ask = |group| kubernetes_access(KubernetesRole::View, ["c", "ns", group, "Pod", "p"]);
    assert!(perms.allows(&ask("")));
    assert!(!perms.allows(&ask("apps")));
    assert!(!perms.allows(&ask("*")));
}

#[test]
fn control_characters_are_refused_in_every_encoding_width() {
    for text in ["a\u{0}b", "tab\there", "del\u{7f}", "c1\u{85}", "c1\u{9f}"] {
        let err = Pattern::parse(text).unwrap_err().to_string();
        assert!(err.contains("control characters"), "{text:?}: {err}");
    }
    // Neighbours of the C1 range are ordinary characters.
    for text in ["\u{a0}nbsp", "caf\u{e9}", "\u{7e}"] {
        assert!(Pattern::parse(text).is_ok(), "{text:?}");
    }
}

#[test]
fn a_question_for_a_star_value_is_taken_literally() {
    let perms = grants(vec![devtron(DevtronRole::View, "p", &["e"], &["web*"])]);
    assert!(!perms.allows(&devtron_access(DevtronRole::View, ["p", "e", "*"])));
    assert!(perms.allows(&devtron_access(DevtronRole::View, ["p", "e", "web*"])));
}

#[test]
fn every_devtron_scope_field_must_match() {
    let perms = grants(vec![devtron(
        DevtronRole::Admin,
        "payments",
        &["prod"],
        &["api"],
    )]);
    let ask = |scope| perms.allows(&devtron_access(DevtronRole::View, scope));
    assert!(ask(["payments", "prod", "api"]));
    assert!(!ask(["billing", "prod", "api"]));
    assert!(!ask(["payments", "staging", "api"]));
    assert!(!ask(["payments", "prod", "web"]));
}

#[test]
fn every_helm_scope_field_must_match() {
    let perms = grants(vec![helm(
        HelmRole::Admin,
        "infra",
        &["c__ns"],
        &["grafana"],
    )]);
    let ask = |scope| perms.allows(&helm_access(HelmRole::View, scope));
    assert!(ask(["infra", "c__ns", "grafana"]));
    assert!(!ask(["other", "c__ns", "grafana"]));
    assert!(!ask(["infra", "c__other", "grafana"]));
    assert!(!ask(["infra", "c__ns", "loki"]));
}

#[test]
fn every_kubernetes_scope_field_must_match() {
    let lists: [&[&str]; 4] = [&["default"], &["apps"], &["Deployment"], &["web"]];
    let perms = grants(vec![kubernetes(KubernetesRole::Admin, "prod", lists)]);
    let ask = |scope| perms.allows(&kubernetes_access(KubernetesRole::View, scope));
    let good = ["prod", "default", "apps", "Deployment", "web"];
    assert!(ask(good));
    let other = ["dev", "kube-system", "batch", "Job", "db"];
    for field in 0..good.len() {
        let mut scope = good;
        scope[field] = other[field];
        assert!(!ask(scope), "{scope:?}");
    }
}

#[test]
fn the_chart_group_must_match() {
    let perms = grants(vec![chart_group(ChartGroupRole::Admin, &["base*"])]);
    let ask = |group| {
        perms.allows(&Access::ChartGroup {
            role: ChartGroupRole::View,
            group,
        })
    };
    assert!(ask("base-charts"));
    assert!(!ask("extra"));
}

#[test]
fn any_pattern_in_a_list_suffices() {
    let perms = grants(vec![devtron(
        DevtronRole::View,
        "p",
        &["prod", "staging"],
        &["api", "web*"],
    )]);
    let ask = |env, app| perms.allows(&devtron_access(DevtronRole::View, ["p", env, app]));
    assert!(ask("prod", "api"));
    assert!(ask("staging", "web-frontend"));
    assert!(!ask("dev", "api"));
}

#[test]
fn grants_of_another_resource_kind_never_match() {
    let all: &[&str] = &["*"];
    let perms = grants(vec![
        devtron(DevtronRole::Manager, "*", all, all),
        kubernetes(KubernetesRole::Admin, "*", [all, all, all, all]),
        chart_group(ChartGroupRole::Admin, all),
    ]);
    // Helm is the one kind without a grant here, even though devtron-app has the same scope.
    assert!(!perms.allows(&helm_access(HelmRole::View, ["p", "e", "a"])));
    let only_helm = grants(vec![helm(HelmRole::Admin, "*", all, all)]);
    assert!(!only_helm.allows(&devtron_access(DevtronRole::View, ["p", "e", "a"])));
    assert!(!only_helm.allows(&kubernetes_access(KubernetesRole::View, ["c"; 5])));
    assert!(!only_helm.allows(&Access::ChartGroup {
        role: ChartGroupRole::View,
        group: "g",
    }));
}

#[test]
fn one_allowing_grant_among_several_suffices() {
    let perms = grants(vec![
        devtron(DevtronRole::View, "payments", &["prod"], &["*"]),
        devtron(DevtronRole::Trigger, "payments", &["staging"], &["*"]),
        chart_group(ChartGroupRole::View, &["*"]),
    ]);
    let ask = |role, env| perms.allows(&devtron_access(role, ["payments", env, "api"]));
    assert!(ask(DevtronRole::View, "prod"));
    assert!(!ask(DevtronRole::Trigger, "prod"));
    assert!(ask(DevtronRole::Trigger, "staging"));
    assert!(!ask(DevtronRole::Admin, "staging"));
}

#[test]
fn super_admin_allows_everything_in_every_kind() {
    let perms = Permissions::SuperAdmin;
    assert!(perms.is_super_admin());
    for role in DevtronRole::ALL {
        assert!(perms.allows(&devtron_access(role, ["", "x", "*"])));
    }
    for role in HelmRole::ALL {
        assert!(perms.allows(&helm_access(role, ["p", "e", "a"])));
    }
    for role in KubernetesRole::ALL {
        assert!(perms.allows(&kubernetes_access(role, ["c", "n", "", "Pod", "x"])));
    }
    for role in ChartGroupRole::ALL {
        assert!(perms.allows(&Access::ChartGroup { role, group: "g" }));
    }
    assert!(!grants(vec![chart_group(ChartGroupRole::View, &["*"])]).is_super_admin());
}

// --- JSON ---------------------------------------------------------------------------

fn example() -> Permissions {
    grants(vec![
        devtron(
            DevtronRole::Trigger,
            "payments",
            &["prod", "staging"],
            &["*"],
        ),
        helm(
            HelmRole::Edit,
            "infra",
            &["prod-cluster__monitoring"],
            &["grafana"],
        ),
        kubernetes(
            KubernetesRole::View,
            "prod",
            [&["*"], &["", "apps"], &["Deployment", "Pod"], &["*"]],
        ),
        chart_group(ChartGroupRole::View, &["*"]),
    ])
}

#[test]
fn the_example_parses_into_the_expected_grants() {
    assert_eq!(parse(EXAMPLE).unwrap(), example());
    assert_eq!(
        parse(r#"{"super_admin": true}"#).unwrap(),
        Permissions::SuperAdmin
    );
}

#[test]
fn serialization_is_deterministic_and_round_trips() {
    let json = serde_json::to_string(&example()).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"grants":["#,
            r#"{"resource":"devtron-app","role":"trigger","project":"payments","#,
            r#""environments":["prod","staging"],"apps":["*"]},"#,
            r#"{"resource":"helm-app","role":"edit","project":"infra","#,
            r#""environments":["prod-cluster__monitoring"],"apps":["grafana"]},"#,
            r#"{"resource":"kubernetes","role":"view","cluster":"prod","#,
            r#""namespaces":["*"],"groups":["","apps"],"kinds":["Deployment","Pod"],"names":["*"]},"#,
            r#"{"resource":"chart-group","role":"view","groups":["*"]}"#,
            r#"]}"#
        )
    );
    assert_eq!(parse(&json).unwrap(), example());
    let admin = serde_json::to_string(&Permissions::SuperAdmin).unwrap();
    assert_eq!(admin, r#"{"super_admin":true}"#);
    assert_eq!(parse(&admin).unwrap(), Permissions::SuperAdmin);
}

#[test]
fn every_role_of_every_kind_round_trips() {
    let mut all = Vec::new();
    all.extend(DevtronRole::ALL.map(|role| devtron(role, "p*", &["e"], &["a"])));
    all.extend(HelmRole::ALL.map(|role| helm(role, "p", &["e*"], &["a"])));
    all.extend(
        KubernetesRole::ALL.map(|role| kubernetes(role, "c", [&["n"], &[""], &["K"], &["x*"]])),
    );
    all.extend(ChartGroupRole::ALL.map(|role| chart_group(role, &["g"])));
    let perms = grants(all);
    let json = serde_json::to_string(&perms).unwrap();
    assert_eq!(parse(&json).unwrap(), perms);
}

#[test]
fn the_summary_is_one_readable_line() {
    assert_eq!(Permissions::SuperAdmin.summary(), "super-admin");
    assert_eq!(
        example().summary(),
        "devtron-app:trigger project=payments envs=prod,staging apps=*; \
         helm-app:edit project=infra envs=prod-cluster__monitoring apps=grafana; \
         kubernetes:view cluster=prod namespaces=* groups=\"\",apps kinds=Deployment,Pod names=*; \
         chart-group:view groups=*"
    );
}

#[test]
fn unknown_roles_are_named_with_the_allowed_ones() {
    assert_rejected(
        r#"{"grants":[{"resource":"devtron-app","role":"edit","project":"p","environments":["e"],"apps":["a"]}]}"#,
        r#"unknown role "edit" for devtron-app: expected one of view, trigger, admin, manager"#,
    );
    assert_rejected(
        r#"{"grants":[{"resource":"chart-group","role":"edit","groups":["g"]}]}"#,
        r#"unknown role "edit" for chart-group: expected one of view, update, admin"#,
    );
    assert_rejected(
        r#"{"grants":[{"resource":"helm-app","role":"View","project":"p","environments":["e"],"apps":["a"]}]}"#,
        r#"unknown role "View" for helm-app: expected one of view, edit, admin"#,
    );
}

#[test]
fn unknown_resources_are_named_with_the_allowed_ones() {
    assert_rejected(
        r#"{"grants":[{"resource":"devtron","role":"view"}]}"#,
        r#"unknown resource "devtron"; expected one of devtron-app, helm-app, kubernetes, chart-group"#,
    );
    assert_rejected(
        r#"{"grants":[{"role":"view","groups":["g"]}]}"#,
        r#"grant is missing "resource""#,
    );
}

#[test]
fn missing_fields_are_named() {
    assert_rejected(
        r#"{"grants":[{"resource":"devtron-app","role":"view","project":"p","apps":["a"]}]}"#,
        r#"devtron-app grant is missing "environments""#,
    );
    assert_rejected(
        r#"{"grants":[{"resource":"kubernetes","role":"view","cluster":"c","namespaces":["n"],"groups":[""],"kinds":["Pod"]}]}"#,
        r#"kubernetes grant is missing "names""#,
    );
    assert_rejected(
        r#"{"grants":[{"resource":"chart-group","groups":["g"]}]}"#,
        r#"chart-group grant is missing "role""#,
    );
    assert_rejected(
        r#"{"grants":[{"resource":"helm-app","role":"view","environments":["e"],"apps":["a"]}]}"#,
        r#"helm-app grant is missing "project""#,
    );
}

#[test]
fn fields_of_another_resource_are_rejected() {
    assert_rejected(
        r#"{"grants":[{"resource":"devtron-app","role":"view","project":"p","environments":["e"],"apps":["a"],"cluster":"c"}]}"#,
        r#"field "cluster" does not belong to a devtron-app grant"#,
    );
    assert_rejected(
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":["g"],"apps":["a"]}]}"#,
        r#"field "apps" does not belong to a chart-group grant"#,
    );
}

#[test]
fn unknown_fields_are_rejected_at_every_level() {
    assert_rejected(
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":["g"],"colour":"red"}]}"#,
        "unknown field `colour`",
    );
    assert_rejected(r#"{"super_admin":true,"extra":1}"#, "unknown field `extra`");
}

#[test]
fn empty_scope_lists_are_rejected() {
    assert_rejected(
        r#"{"grants":[{"resource":"devtron-app","role":"view","project":"p","environments":["e"],"apps":[]}]}"#,
        r#""apps" must list at least one pattern"#,
    );
    assert_rejected(
        r#"{"grants":[{"resource":"kubernetes","role":"view","cluster":"c","namespaces":["n"],"groups":[],"kinds":["Pod"],"names":["*"]}]}"#,
        r#""groups" must list at least one pattern"#,
    );
}

#[test]
fn limits_are_enforced_with_counts() {
    let grant = r#"{"resource":"chart-group","role":"view","groups":["g"]}"#;
    let many = vec![grant; 70].join(",");
    assert_rejected(
        &format!(r#"{{"grants":[{many}]}}"#),
        "too many grants: 70 (at most 64)",
    );
    let at_limit = vec![grant; MAX_GRANTS].join(",");
    assert!(parse(&format!(r#"{{"grants":[{at_limit}]}}"#)).is_ok());

    let many = vec![r#""g""#; 65].join(",");
    assert_rejected(
        &format!(r#"{{"grants":[{{"resource":"chart-group","role":"view","groups":[{many}]}}]}}"#),
        r#"too many patterns in "groups": 65 (at most 64)"#,
    );

    let long = "x".repeat(MAX_PATTERN_LEN + 1);
    assert_rejected(
        &format!(
            r#"{{"grants":[{{"resource":"chart-group","role":"view","groups":["{long}"]}}]}}"#
        ),
        "pattern too long: 254 bytes (at most 253)",
    );
    let longest = "x".repeat(MAX_PATTERN_LEN);
    assert!(parse(&format!(
        r#"{{"grants":[{{"resource":"chart-group","role":"view","groups":["{longest}"]}}]}}"#
    ))
    .is_ok());
}

#[test]
fn stars_may_only_end_a_pattern() {
    assert_rejected(
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":["a*b"]}]}"#,
        r#"invalid pattern "a*b": "*" may only end a pattern"#,
    );
    assert_rejected(
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":["**"]}]}"#,
        r#"invalid pattern "**": "*" may only end a pattern"#,
    );
    assert_rejected(
        r#"{"grants":[{"resource":"helm-app","role":"view","project":"*x","environments":["e"],"apps":["a"]}]}"#,
        r#"invalid pattern "*x": "*" may only end a pattern"#,
    );
}

#[test]
fn empty_patterns_are_rejected_outside_kubernetes_groups() {
    for json in [
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":[""]}]}"#,
        r#"{"grants":[{"resource":"devtron-app","role":"view","project":"","environments":["e"],"apps":["a"]}]}"#,
        r#"{"grants":[{"resource":"kubernetes","role":"view","cluster":"c","namespaces":[""],"groups":[""],"kinds":["Pod"],"names":["*"]}]}"#,
        r#"{"grants":[{"resource":"kubernetes","role":"view","cluster":"","namespaces":["n"],"groups":[""],"kinds":["Pod"],"names":["*"]}]}"#,
    ] {
        assert_rejected(json, r#"invalid pattern "": a pattern may not be empty"#);
    }
}

#[test]
fn control_characters_are_rejected_in_patterns() {
    assert_rejected(
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":["a\nb"]}]}"#,
        r#"invalid pattern "a\nb": control characters are not allowed"#,
    );
}

#[test]
fn errors_say_which_grant_is_wrong() {
    let json = r#"{"grants":[{"resource":"chart-group","role":"view","groups":["g"]},
                             {"resource":"chart-group","role":"view","groups":[]}]}"#;
    assert_rejected(
        json,
        r#"grants[1]: "groups" must list at least one pattern"#,
    );
}

#[test]
fn the_top_level_must_be_exactly_one_of_super_admin_and_grants() {
    assert_rejected(
        r#"{"grants":[]}"#,
        r#""grants" must list at least one grant"#,
    );
    assert_rejected(r#"{"super_admin":false}"#, r#"use "grants" instead"#);
    assert_rejected(
        r#"{"super_admin":true,"grants":[{"resource":"chart-group","role":"view","groups":["g"]}]}"#,
        "not both",
    );
    assert_rejected("{}", "no permissions given");
    assert_rejected(r#"{"super_admin":null}"#, "invalid type: null");
    assert_rejected(
        r#"{"super_admin":true,"grants":null}"#,
        "invalid type: null",
    );
}

#[test]
fn duplicate_keys_are_rejected_at_every_level() {
    let grant = r#"{"resource":"chart-group","role":"view","groups":["g"]}"#;
    assert_rejected(
        &format!(r#"{{"grants":[{grant}],"grants":[{grant}]}}"#),
        "duplicate field `grants`",
    );
    assert_rejected(
        r#"{"super_admin":true,"super_admin":true}"#,
        "duplicate field `super_admin`",
    );
    assert_rejected(
        r#"{"grants":[{"resource":"chart-group","role":"view","role":"admin","groups":["g"]}]}"#,
        "duplicate field `role`",
    );
    assert_rejected(
        r#"{"grants":[{"resource":"chart-group","resource":"chart-group","role":"view","groups":["g"]}]}"#,
        "duplicate field `resource`",
    );
    assert_rejected(
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":["g"],"groups":["h"]}]}"#,
        "duplicate field `groups`",
    );
}

#[test]
fn odd_input_is_an_error_not_a_panic() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_grant = format!(r#"{{"grants":[{deep}]}}"#);
    let chart = r#"{"resource":"chart-group","role":"view","groups":["g"]}"#;
    let deep_after_limit = format!(r#"{{"grants":[{},{deep}]}}"#, vec![chart; 64].join(","));
    let huge_list = format!(r#"{{"grants":[{}]}}"#, vec!["1"; 200_000].join(","));
    let huge_patterns = format!(
        r#"{{"grants":[{{"resource":"chart-group","role":"view","groups":[{}]}}]}}"#,
        vec![r#""g""#; 200_000].join(",")
    );
    let huge_role = format!(
        r#"{{"grants":[{{"resource":"chart-group","role":"{}","groups":["g"]}}]}}"#,
        "é".repeat(100_000)
    );
    let odd = [
        "",
        "null",
        "true",
        "1",
        "\"super_admin\"",
        "[]",
        "[{\"super_admin\":true}]",
        r#"{"super_admin":1}"#,
        r#"{"super_admin":"true"}"#,
        r#"{"grants":{}}"#,
        r#"{"grants":[1]}"#,
        r#"{"grants":[null]}"#,
        r#"{"grants":[{}]}"#,
        r#"{"grants":[{"resource":7}]}"#,
        r#"{"grants":[{"resource":"chart-group","role":["view"],"groups":["g"]}]}"#,
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":"g"}]}"#,
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":[1,2]}]}"#,
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":[["g"]]}]}"#,
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":[{"a":{"b":[]}}]}]}"#,
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":["\ud800"]}]}"#,
        r#"{"grants":[{"resource":"chart-group","role":"view","groups":null}]}"#,
        &deep,
        &deep_grant,
        &deep_after_limit,
        &huge_list,
        &huge_patterns,
        &huge_role,
    ];
    for json in odd {
        let shown: String = json.chars().take(80).collect();
        assert!(parse(json).is_err(), "accepted {shown}");
    }
    assert!(
        parse(&huge_role).unwrap_err().len() < 400,
        "echoed input is shortened"
    );
}

#[test]
fn mutated_input_never_panics_and_never_yields_an_invalid_value() {
    // A cheap, deterministic fuzz: every single-byte substitution of the example.
    let base = EXAMPLE.as_bytes();
    for at in 0..base.len() {
        for byte in *b"\"*,:[]{}0 x\\" {
            let mut json = base.to_vec();
            json[at] = byte;
            if let Ok(perms) = serde_json::from_slice::<Permissions>(&json) {
                assert_eq!(perms.validate(), Ok(()));
                let again = serde_json::to_vec(&perms).unwrap();
                assert_eq!(
                    serde_json::from_slice::<Permissions>(&again).unwrap(),
                    perms
                );
            }
        }
        let _ = serde_json::from_slice::<Permissions>(&base[..at]);
    }
}

// --- validation of values built in code ----------------------------------------------

#[test]
fn validate_applies_the_same_rules_to_values_built_in_code() {
    assert_eq!(example().validate(), Ok(()));
    assert_eq!(Permissions::SuperAdmin.validate(), Ok(()));
    assert_eq!(grants(vec![]).validate(), Err(PermissionError::NoGrants));

    let many = grants(vec![chart_group(ChartGroupRole::View, &["g"]); 65]);
    assert_eq!(
        many.validate().unwrap_err().to_string(),
        "too many grants: 65 (at most 64)"
    );

    let with_groups = |groups: Vec<Pattern>| {
        grants(vec![Grant::ChartGroup(ChartGroupGrant {
            role: ChartGroupRole::View,
            groups: groups.into(),
        })])
        .validate()
        .map_err(|e| e.to_string())
    };
    let rejects = |groups: Vec<Pattern>, expected: &str| {
        let message = with_groups(groups).unwrap_err();
        assert!(message.contains(expected), "{message}");
    };
    rejects(vec![], r#""groups" must list at least one pattern"#);
    rejects(vec![Pattern::Exact(SmolStr::default())], "may not be empty");
    rejects(
        vec![Pattern::Prefix(SmolStr::default())],
        "non-empty prefix",
    );
    rejects(
        vec![Pattern::Exact("a*".into())],
        "an exact pattern may not contain",
    );
    rejects(vec![Pattern::Exact("a*b".into())], "may only end a pattern");
    rejects(vec![Pattern::Prefix("a*".into())], "may only end a pattern");
    rejects(
        vec![Pattern::Prefix("x".repeat(253).into())],
        "pattern too long: 254 bytes",
    );
    rejects(vec![Pattern::Any; 65], "too many patterns");
    assert_eq!(
        with_groups(vec![Pattern::Prefix("x".repeat(252).into())]),
        Ok(())
    );

    let core = kubernetes(KubernetesRole::View, "c", [&["n"], &[""], &["Pod"], &["*"]]);
    assert_eq!(grants(vec![core]).validate(), Ok(()));
    let mut empty_namespace =
        kubernetes(KubernetesRole::View, "c", [&["n"], &[""], &["Pod"], &["*"]]);
    if let Grant::Kubernetes(grant) = &mut empty_namespace {
        grant.namespaces = Patterns::from_elem(Pattern::Exact(SmolStr::default()), 1);
    }
    assert!(grants(vec![empty_namespace]).validate().is_err());
}

#[test]
fn invalid_values_refuse_to_serialize() {
    let bad = grants(vec![Grant::ChartGroup(ChartGroupGrant {
        role: ChartGroupRole::View,
        groups: Patterns::new(),
    })]);
    let error = serde_json::to_string(&bad).unwrap_err().to_string();
    assert!(error.contains("must list at least one pattern"), "{error}");
}

#[test]
fn pattern_parse_and_display_are_inverse() {
    for text in ["*", "a", "a*", "prod-cluster__monitoring", "ÄÖ*"] {
        assert_eq!(pattern(text).to_string(), text);
    }
    assert!(Pattern::parse("").is_err());
    assert!(Pattern::parse("a**").is_err());
}

#[test]
fn roles_and_resources_parse_from_their_names() {
    assert_eq!("manager".parse(), Ok(DevtronRole::Manager));
    assert_eq!("update".parse(), Ok(ChartGroupRole::Update));
    assert_eq!("kubernetes".parse(), Ok(Resource::Kubernetes));
    for resource in Resource::ALL {
        assert_eq!(resource.to_string().parse(), Ok(resource));
    }
    assert_eq!(
        "manager".parse::<HelmRole>().unwrap_err().to_string(),
        r#"unknown role "manager" for helm-app: expected one of view, edit, admin"#
    );
}

// --- Access::from_fields ---------------------------------------------------------------

fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
    move |field| {
        pairs
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, value)| *value)
    }
}

#[test]
fn from_fields_builds_app_questions() {
    let fields = [
        ("project", "payments"),
        ("environment", "prod"),
        ("app", "api"),
    ];
    let access = Access::from_fields("devtron-app", "trigger", lookup(&fields)).unwrap();
    assert_eq!(
        access,
        devtron_access(DevtronRole::Trigger, ["payments", "prod", "api"])
    );
    assert_eq!(access.resource(), Resource::DevtronApp);
    let access = Access::from_fields("helm-app", "edit", lookup(&fields)).unwrap();
    assert_eq!(
        access,
        helm_access(HelmRole::Edit, ["payments", "prod", "api"])
    );
    assert_eq!(access.resource(), Resource::HelmApp);
}

#[test]
fn from_fields_builds_kubernetes_questions_with_the_core_group_by_default() {
    let mut fields = vec![
        ("cluster", "prod"),
        ("namespace", "default"),
        ("kind", "Pod"),
        ("name", "web"),
    ];
    let access = Access::from_fields("kubernetes", "view", lookup(&fields)).unwrap();
    assert_eq!(
        access,
        kubernetes_access(KubernetesRole::View, ["prod", "default", "", "Pod", "web"])
    );
    assert_eq!(access.resource(), Resource::Kubernetes);
    fields.push(("group", "apps"));
    let access = Access::from_fields("kubernetes", "admin", lookup(&fields)).unwrap();
    assert_eq!(
        access,
        kubernetes_access(
            KubernetesRole::Admin,
            ["prod", "default", "apps", "Pod", "web"]
        )
    );
}

#[test]
fn from_fields_builds_chart_group_questions() {
    let access = Access::from_fields("chart-group", "update", lookup(&[("group", "base")]));
    assert_eq!(
        access,
        Ok(Access::ChartGroup {
            role: ChartGroupRole::Update,
            group: "base",
        })
    );
    assert_eq!(access.unwrap().resource(), Resource::ChartGroup);
}

#[test]
fn from_fields_names_what_is_missing_or_wrong() {
    let error = |resource, role, fields: &[(&str, &str)]| {
        Access::from_fields(resource, role, lookup(fields))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error("devtron-app", "view", &[("project", "p"), ("app", "a")]),
        r#"devtron-app access is missing "environment""#
    );
    assert_eq!(
        error(
            "helm-app",
            "view",
            &[("project", "p"), ("environment", "e")]
        ),
        r#"helm-app access is missing "app""#
    );
    assert_eq!(
        error(
            "kubernetes",
            "view",
            &[("cluster", "c"), ("namespace", "n"), ("name", "x")]
        ),
        r#"kubernetes access is missing "kind""#
    );
    assert_eq!(
        error("chart-group", "view", &[]),
        r#"chart-group access is missing "group""#
    );
    assert!(error("devtron", "view", &[]).starts_with(r#"unknown resource "devtron""#));
    assert!(error("chart-group", "edit", &[("group", "g")])
        .starts_with(r#"unknown role "edit" for chart-group"#));
}

#[test]
fn from_fields_answers_match_the_grants() {
    let perms = parse(EXAMPLE).unwrap();
    let fields = [
        ("cluster", "prod"),
        ("namespace", "kube-system"),
        ("kind", "Pod"),
        ("name", "coredns"),
    ];
    let core_pod = Access::from_fields("kubernetes", "view", lookup(&fields)).unwrap();
    assert!(perms.allows(&core_pod));
    let edit = Access::from_fields("kubernetes", "edit", lookup(&fields)).unwrap();
    assert!(!perms.allows(&edit));
}
