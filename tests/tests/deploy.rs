//! The files in `deploy/` stay true to the workspace: the Dockerfile copies every crate the
//! build needs, the example config is a config the node accepts, and the systemd unit runs
//! the node the way the README says.

use std::path::{Path, PathBuf};

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(top().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn the_dockerfile_copies_every_workspace_member() {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let members: Vec<String> =
        manifest["workspace"]["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect();
    assert!(members.len() >= 5, "{members:?}");
    let docker = read("deploy/Dockerfile");
    let copied: Vec<&str> = docker
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for m in &members {
        assert!(copied.contains(&m.as_str()), "deploy/Dockerfile does not COPY workspace member {m}: {copied:?}");
    }
    assert!(docker.contains("COPY Cargo.toml Cargo.lock ./"), "the manifest and the lock file are copied");
    assert!(docker.contains("--locked --bin rota-node --bin rota"), "the builder stage builds both binaries");
    assert!(docker.contains("USER rota"), "the node does not run as root in the image");
}

#[test]
fn the_example_config_is_one_the_node_accepts() {
    let text = read("deploy/config.example.toml");
    let raw: rota_node::config::RawConfig = toml::from_str(&text).expect("deploy/config.example.toml parses");
    let dir = tempfile::tempdir().unwrap();
    let config = rota_node::config::Config::check(dir.path(), Path::new("deploy/config.example.toml"), raw.clone())
        .expect("deploy/config.example.toml passes the node's checks");
    // The example says its [limits], [outbox], [timers], [rota] and [storage] values are the
    // defaults: they are.
    use rota_node::config::{RawLimits, RawOutbox, RawRota, RawStorage, RawTimers};
    fn v<T: serde::Serialize>(t: T) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(t)
    }
    assert_eq!(v(&raw.limits).unwrap(), v(RawLimits::default()).unwrap(), "[limits]");
    assert_eq!(v(&raw.outbox).unwrap(), v(RawOutbox::default()).unwrap(), "[outbox]");
    assert_eq!(v(&raw.timers).unwrap(), v(RawTimers::default()).unwrap(), "[timers]");
    assert_eq!(v(&raw.rota).unwrap(), v(RawRota::default()).unwrap(), "[rota]");
    assert_eq!(v(&raw.storage).unwrap(), v(RawStorage::default()).unwrap(), "[storage]");
    assert_eq!(config.symbol.as_str(), "DGW");
    assert_eq!(config.limits.max_message_bytes, 256 * 1024);
    assert_eq!(config.listen.port(), 7443);
}

#[test]
fn the_systemd_unit_runs_the_node_unprivileged_on_its_state_directory() {
    let unit = read("deploy/rota-node.service");
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "ExecStart=/usr/local/bin/rota-node run --data-dir /var/lib/rota",
        "User=rota",
        "StateDirectory=rota",
        "StateDirectoryMode=0700",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "KillSignal=SIGTERM",
    ] {
        assert!(has(line), "deploy/rota-node.service lacks `{line}`");
    }
}
