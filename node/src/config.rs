//! Node configuration: `config.toml` in the data directory, loaded in two stages (a raw
//! struct with `deny_unknown_fields`, then a checked [`Config`]). Environment variables
//! with the `ROTA_` prefix override single keys (`ROTA_LISTEN`, `ROTA_PUBLIC_URL`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::Symbol;

/// Why the configuration was refused: names the file, the key and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: key {key:?}: {message}")]
    Key { path: PathBuf, key: String, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub symbol: String,
    pub name: String,
    pub listen: String,
    pub public_url: String,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub outbox: RawOutbox,
    #[serde(default)]
    pub timers: RawTimers,
    #[serde(default)]
    pub rota: RawRota,
    #[serde(default)]
    pub storage: RawStorage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStorage {
    /// How long to wait for a database another program has locked before failing.
    pub busy_timeout_ms: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage { busy_timeout_ms: 10_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRota {
    /// Order within a tier: "priority", "balance" or "performance".
    pub strategy: String,
    /// How long a Locate may take before the lender counts as unreachable.
    pub locate_timeout_ms: u64,
}

impl Default for RawRota {
    fn default() -> Self {
        RawRota { strategy: "priority".into(), locate_timeout_ms: 3_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTimers {
    /// How often expiry and overdue timers are checked.
    pub tick_ms: u64,
}

impl Default for RawTimers {
    fn default() -> Self {
        RawTimers { tick_ms: 1_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub handshake_timeout_ms: u64,
    pub max_message_bytes: usize,
    pub max_connections: usize,
    pub request_timeout_ms: u64,
    /// Peer RPCs each partner may make per second, sustained.
    pub partner_rps: u32,
    /// Peer RPCs a partner may make in a burst above that rate.
    pub partner_burst: u32,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            handshake_timeout_ms: 5_000,
            max_message_bytes: 256 * 1024,
            max_connections: 512,
            request_timeout_ms: 15_000,
            partner_rps: 100,
            partner_burst: 200,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOutbox {
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for RawOutbox {
    fn default() -> Self {
        RawOutbox { backoff_initial_ms: 500, backoff_max_ms: 300_000 }
    }
}

/// Network and resource limits (DESIGN §2).
#[derive(Debug, Clone)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub max_message_bytes: usize,
    pub max_connections: usize,
    pub request_timeout: Duration,
    pub partner_rps: u32,
    pub partner_burst: u32,
}

/// Outbox retry policy: exponential backoff with jitter, up to a cap.
#[derive(Debug, Clone)]
pub struct OutboxPolicy {
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub symbol: Symbol,
    pub name: String,
    pub listen: SocketAddr,
    pub public_url: String,
    pub limits: Limits,
    pub outbox: OutboxPolicy,
    /// How often expiry and overdue timers are checked.
    pub timer_tick: Duration,
    pub strategy: crate::domain::Strategy,
    pub locate_timeout: Duration,
    pub busy_timeout: Duration,
}

pub const CONFIG_FILE: &str = "config.toml";

impl Config {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CONFIG_FILE)
    }

    /// Load `DATA_DIR/config.toml`, apply `ROTA_*` overrides, and check every key.
    pub fn load(data_dir: &Path) -> Result<Config, ConfigError> {
        let path = Self::path(data_dir);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io { path: path.clone(), source })?;
        let mut raw: RawConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string() })?;
        if let Ok(v) = std::env::var("ROTA_LISTEN") {
            raw.listen = v;
        }
        if let Ok(v) = std::env::var("ROTA_PUBLIC_URL") {
            raw.public_url = v;
        }
        Self::check(data_dir, &path, raw)
    }

    /// Check a raw configuration. `path` is named in errors.
    pub fn check(data_dir: &Path, path: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
        let key = |key: &str, message: String| ConfigError::Key { path: path.to_owned(), key: key.to_owned(), message };
        let symbol = Symbol::parse(&raw.symbol).map_err(|e| key("symbol", e.to_string()))?;
        rota_certs::card::check_name(&raw.name).map_err(|m| key("name", format!("name {m}")))?;
        let listen = raw
            .listen
            .parse()
            .map_err(|_| key("listen", format!("{:?} is not an address like 127.0.0.1:7443", raw.listen)))?;
        rota_certs::card::check_endpoint(&raw.public_url).map_err(|m| key("public_url", format!("URL {m}")))?;
        let l = &raw.limits;
        if l.max_message_bytes < 4096 || l.max_message_bytes > 16 * 1024 * 1024 {
            return Err(key("limits.max_message_bytes", "must be between 4096 and 16777216".into()));
        }
        if l.partner_rps == 0 || l.partner_burst == 0 {
            return Err(key("limits.partner_rps", "partner_rps and partner_burst must be greater than 0".into()));
        }
        if l.handshake_timeout_ms == 0 || l.max_connections == 0 || l.request_timeout_ms == 0 {
            return Err(key("limits", "timeouts and max_connections must be greater than 0".into()));
        }
        let strategy = crate::domain::Strategy::parse_field(&raw.rota.strategy, "rota.strategy")
            .map_err(|e| key("rota.strategy", e.reason))?;
        if raw.rota.locate_timeout_ms == 0 || raw.rota.locate_timeout_ms > 60_000 {
            return Err(key("rota.locate_timeout_ms", "must be between 1 and 60000".into()));
        }
        if raw.timers.tick_ms == 0 || raw.timers.tick_ms > 3_600_000 {
            return Err(key("timers.tick_ms", "must be between 1 and 3600000".into()));
        }
        if raw.outbox.backoff_initial_ms == 0 || raw.outbox.backoff_max_ms < raw.outbox.backoff_initial_ms {
            return Err(key("outbox", "backoff_initial_ms must be > 0 and at most backoff_max_ms".into()));
        }
        Ok(Config {
            data_dir: data_dir.to_owned(),
            symbol,
            name: raw.name,
            listen,
            public_url: raw.public_url,
            limits: Limits {
                handshake_timeout: Duration::from_millis(l.handshake_timeout_ms),
                max_message_bytes: l.max_message_bytes,
                max_connections: l.max_connections,
                request_timeout: Duration::from_millis(l.request_timeout_ms),
                partner_rps: l.partner_rps,
                partner_burst: l.partner_burst,
            },
            outbox: OutboxPolicy {
                backoff_initial: Duration::from_millis(raw.outbox.backoff_initial_ms),
                backoff_max: Duration::from_millis(raw.outbox.backoff_max_ms),
            },
            timer_tick: Duration::from_millis(raw.timers.tick_ms),
            strategy,
            locate_timeout: Duration::from_millis(raw.rota.locate_timeout_ms),
            busy_timeout: Duration::from_millis(raw.storage.busy_timeout_ms.clamp(1, 600_000)),
        })
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }
    pub fn ca_cert_path(&self) -> PathBuf {
        self.tls_dir().join("ca.pem")
    }
    pub fn ca_key_path(&self) -> PathBuf {
        self.tls_dir().join("ca.key")
    }
    pub fn node_cert_path(&self) -> PathBuf {
        self.tls_dir().join("node.pem")
    }
    pub fn node_key_path(&self) -> PathBuf {
        self.tls_dir().join("node.key")
    }
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("rota.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawConfig {
        RawConfig {
            symbol: "DGW".into(),
            name: "GWU".into(),
            listen: "127.0.0.1:7443".into(),
            public_url: "https://127.0.0.1:7443".into(),
            limits: RawLimits::default(),
            outbox: RawOutbox::default(),
            timers: RawTimers::default(),
            rota: RawRota::default(),
            storage: RawStorage::default(),
        }
    }

    #[test]
    fn errors_name_file_and_key() {
        let p = Path::new("/srv/rota/config.toml");
        let e = Config::check(Path::new("/srv/rota"), p, RawConfig { listen: "nowhere".into(), ..raw() })
            .unwrap_err()
            .to_string();
        assert!(e.contains("/srv/rota/config.toml") && e.contains("\"listen\""), "{e}");
        assert!(Config::check(Path::new("/x"), p, raw()).is_ok());
        let bad: Result<RawConfig, _> =
            toml::from_str("symbol='DGW'\nname='x'\nlisten='1'\npublic_url='x'\ncolour='red'\n");
        assert!(bad.unwrap_err().to_string().contains("colour"));
    }
}
