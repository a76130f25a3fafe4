use super::*;

fn load(toml: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load(Sources {
        toml,
        env,
        ..Sources::default()
    })
}

#[test]
fn a_config_file_is_read() {
    let path = std::env::temp_dir().join(format!("herald-config-test-{}.toml", std::process::id()));
    std::fs::write(&path, "bind = \"127.0.0.1:7003\"").unwrap();
    let c = Config::load(Sources {
        file: Some(&path),
        ..Sources::default()
    });
    std::fs::remove_file(&path).unwrap();
    assert_eq!(c.unwrap().bind.to_string(), "127.0.0.1:7003");
    let missing = Config::load(Sources {
        file: Some(Path::new("/nonexistent/herald.toml")),
        ..Sources::default()
    });
    assert_eq!(missing.unwrap_err().key, "--config");
}

fn error_key(toml: Option<&str>, env: &[(&str, &str)]) -> String {
    load(toml, env).unwrap_err().key
}

#[test]
fn no_config_gives_the_dev_app() {
    let c = load(None, &[]).unwrap();
    assert!(c.dev_app);
    let app = c.apps.by_key("app-key").unwrap();
    assert_eq!(app.id, "app-id");
    assert!(app.features.client_events);
    assert_eq!(c.bind.to_string(), "0.0.0.0:6001");
    assert_eq!(c.metrics_bind.to_string(), "0.0.0.0:9601");
}

#[test]
fn the_documented_example_loads() {
    let c = load(Some(r#"
bind = "127.0.0.1:7001"
metrics_bind = "127.0.0.1:9701"

[[apps]]
id = "app-1"
key = "app-key"
secret = "app-secret"
client_events = true
user_authentication = true
max_event_payload_kb = 10

[[apps.webhooks]]
url = "http://127.0.0.1:6099/webhook"
event_types = ["channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event"]
"#), &[]).unwrap();
    assert!(!c.dev_app);
    let app = c.apps.by_id("app-1").unwrap();
    assert!(app.features.client_events);
    assert_eq!(app.webhooks[0].event_types.len(), 5);
    assert_eq!(c.bind.to_string(), "127.0.0.1:7001");
}

#[test]
fn environment_overrides_the_file_and_defines_an_app() {
    let c = load(
        Some("bind = \"127.0.0.1:7001\""),
        &[
            ("HERALD_BIND", "127.0.0.1:7002"),
            ("HERALD_APP_ID", "1"),
            ("HERALD_APP_KEY", "k"),
            ("HERALD_APP_SECRET", "s"),
            ("PATH", "/bin"),
        ],
    )
    .unwrap();
    assert_eq!(c.bind.to_string(), "127.0.0.1:7002");
    assert!(c.apps.by_key("k").is_some());
    assert!(!c.dev_app);
}

#[test]
fn bad_values_name_their_key() {
    assert_eq!(error_key(Some("bnd = \"x\""), &[]), "bnd");
    assert_eq!(error_key(Some("bind = \"nope\""), &[]), "bind");
    assert_eq!(
        error_key(None, &[("HERALD_METRICS_BIND", "x")]),
        "metrics_bind"
    );
    assert_eq!(
        error_key(None, &[("HERALD_REDIS_URL", "http://x")]),
        "redis_url"
    );
    assert_eq!(
        error_key(None, &[("HERALD_ACTIVITY_TIMEOUT_SECS", "0")]),
        "activity_timeout_secs"
    );
    assert_eq!(error_key(None, &[("HERALD_APP_ID", "1")]), "app_id");
    assert_eq!(
        error_key(Some("[[apps]]\nid=\"a\"\nkey=\"k\"\nsecret=\"\""), &[]),
        "apps[0].secret"
    );
    assert_eq!(
        error_key(
            Some("[[apps]]\nid=\"a\"\nkey=\"k\"\nsecret=\"s\"\nmax_event_payload_kb=0"),
            &[]
        ),
        "apps[0].max_event_payload_kb"
    );
    let hook = "[[apps]]\nid=\"a\"\nkey=\"k\"\nsecret=\"s\"\n[[apps.webhooks]]\nurl=\"http://x/y\"\nevent_types=[\"nope\"]";
    assert_eq!(
        error_key(Some(hook), &[]),
        "apps[0].webhooks[0].event_types"
    );
    let dup =
        "[[apps]]\nid=\"a\"\nkey=\"k\"\nsecret=\"s\"\n[[apps]]\nid=\"a\"\nkey=\"k2\"\nsecret=\"s\"";
    assert_eq!(error_key(Some(dup), &[]), "apps");
}

#[test]
fn unknown_app_keys_fail() {
    let e = load(
        Some("[[apps]]\nid=\"a\"\nkey=\"k\"\nsecret=\"s\"\nclient_event=true"),
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("client_event"), "{e}");
}

#[test]
fn unknown_environment_names_are_reported_not_fatal() {
    let c = load(
        None,
        &[
            ("HERALD_REDIS_ULR", "x"),
            ("HERALD_PORT", "tcp://10.0.0.1:6001"),
            ("HERALD_SERVICE_HOST", "10.0.0.1"),
            ("HERALD_PORT_6001_TCP_ADDR", "10.0.0.1"),
            ("HERALD_METRICS_SERVICE_HOST", "10.0.0.2"),
            ("HERALD_METRICS_PORT_9601_TCP", "tcp://x"),
            ("HERALD_LOG", "debug"),
        ],
    )
    .unwrap();
    assert_eq!(c.ignored_env, vec!["HERALD_REDIS_ULR".to_owned()]);
}

/// The `config` crate reads `name[N]` in a key as a list index and allocated N elements:
/// `'a[66666660]' = 0` asked for 6 GB (found by fuzzing). Odd keys are refused first.
#[test]
fn keys_that_are_not_plain_names_are_refused_before_loading() {
    for toml in [
        "'pr1D66Z[66666660]' = 0",
        "'a.b' = 1",
        "[[apps]]\nid = \"x\"\nkey = \"k\"\nsecret = \"s\"\n'id[9999999]' = 1",
    ] {
        let e = load(Some(toml), &[]).unwrap_err();
        assert_eq!(e.message, "not a configuration key", "{toml}: {e}");
    }
    let e = load(Some("bind = "), &[]).unwrap_err();
    assert!(e.message.starts_with("invalid TOML"), "{e}");
    // Environment names with odd characters are never passed on; a huge list index in a plain
    // name is an ordinary error.
    assert!(load(None, &[("HERALD_APPS[99999999]__ID", "x")]).is_ok());
    assert!(load(None, &[("HERALD_APPS__99999999__ID", "x")]).is_err());
}

#[test]
fn the_listen_backlog_defaults_to_4096_and_must_be_positive() {
    assert_eq!(load(None, &[]).unwrap().listen_backlog, 4096);
    let c = load(None, &[("HERALD_LISTEN_BACKLOG", "8192")]).unwrap();
    assert_eq!(c.listen_backlog, 8192);
    assert_eq!(error_key(Some("listen_backlog = 0"), &[]), "listen_backlog");
}

#[test]
fn every_key_is_settable_from_the_environment_and_documented() {
    let keys = raw::env_keys();
    for key in [
        "bind",
        "admin_token",
        "trusted_proxies",
        "listen_backlog",
        "apps",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
    // Every top-level key has its line in the README's configuration reference.
    let readme = include_str!("../../../../README.md");
    for key in keys.iter().filter(|k| *k != "apps") {
        let env_name = format!("HERALD_{}", key.to_ascii_uppercase());
        let documented = readme.contains(&env_name)
            || readme.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} ")) || l.starts_with(&format!("{key}="))
            });
        assert!(
            documented,
            "{key} is not in README.md's configuration reference"
        );
    }
    let c = load(None, &[("HERALD_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")]).unwrap();
    assert_eq!(c.trusted_proxies.len(), 2);
    let c = load(None, &[("HERALD_ADMIN_TOKEN", "a-long-admin-token")]).unwrap();
    assert!(c.admin_token.is_some());
    assert_eq!(
        error_key(None, &[("HERALD_ADMIN_TOKEN", "short")]),
        "admin_token"
    );
}

#[test]
fn app_stores_are_checked_against_the_rest_of_the_configuration() {
    let redis = "redis_url = \"redis://127.0.0.1:6379\"\n";
    assert_eq!(error_key(Some("app_store = \"redis\""), &[]), "app_store");
    assert_eq!(
        error_key(Some(&format!("{redis}app_store = \"memory\"")), &[]),
        "app_store"
    );
    assert_eq!(error_key(Some("app_store = \"couchdb\""), &[]), "app_store");
    assert_eq!(
        error_key(Some("app_store = \"postgres\""), &[]),
        "app_store_url"
    );
    assert_eq!(
        error_key(
            Some("app_store = \"postgres\"\napp_store_url = \"mysql://h/db\""),
            &[]
        ),
        "app_store_url"
    );
    assert_eq!(
        error_key(
            Some(
                "app_store = \"mysql\"\napp_store_url = \"mysql://h/db\"\napp_store_table = \"a;b\""
            ),
            &[]
        ),
        "app_store_table"
    );
    assert_eq!(
        error_key(Some("app_store_url = \"postgres://h/db\""), &[]),
        "app_store_url"
    );
    let ok = load(Some(&format!("{redis}app_store = \"redis\"")), &[]).unwrap();
    assert_eq!(ok.app_store.name(), "redis");
    assert!(!ok.dev_app, "a store's apps replace the development app");
    let sql = load(
        Some("app_store = \"postgres\""),
        &[("HERALD_APP_STORE_URL", "postgres://u:pw@h/db")],
    )
    .unwrap();
    assert!(
        !format!("{:?}", sql.app_store).contains("pw"),
        "{:?}",
        sql.app_store
    );
    // Rebalancing knobs.
    assert_eq!(
        error_key(Some("rebalance_max_per_second = 0"), &[]),
        "rebalance_max_per_second"
    );
    let d = load(None, &[]).unwrap();
    assert_eq!(d.rebalance.tolerance_percent, 20);
}
