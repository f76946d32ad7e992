//! CLI profiles: which node a staff member talks to, and with which certificate.
//!
//! A profile is a small TOML file. Relative paths in it are read relative to the profile's
//! own folder, so a profile folder can be moved or copied as a whole.
//!
//! ```toml
//! node_url = "https://127.0.0.1:7443"
//! symbol = "DGW"
//! user = "admin"
//! cert = "admin.pem"
//! key = "admin.key"
//! ca = "ca.pem"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::{SecretFileError, read_secret};
use crate::identity::{StaffUser, Symbol};

/// A profile as written in its file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub node_url: String,
    pub symbol: String,
    pub user: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Why a profile could not be used. Each names the file and, where it can, the key.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: key {key:?}: {message}")]
    Field { path: PathBuf, key: &'static str, message: String },
    #[error(transparent)]
    Secret(#[from] SecretFileError),
}

/// A loaded profile: the parsed file plus the PEM material it points at.
#[derive(Clone)]
pub struct LoadedProfile {
    pub path: PathBuf,
    pub node_url: String,
    pub symbol: Symbol,
    pub user: StaffUser,
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for LoadedProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedProfile")
            .field("path", &self.path)
            .field("node_url", &self.node_url)
            .field("symbol", &self.symbol)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Profile {
    /// Write the profile to `path` (the PEM files it names must be written by the caller).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = toml::to_string(self).map_err(std::io::Error::other)?;
        crate::files::write_public(
            path,
            format!("# Rota CLI profile: use with `rota --profile {}`\n{text}", path.display()).as_bytes(),
        )
    }

    /// Read and check a profile, and load the files it names. The key file must be 0600.
    pub fn load(path: &Path) -> Result<LoadedProfile, ProfileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ProfileError::Io { path: path.to_owned(), source })?;
        let p: Profile = toml::from_str(&text)
            .map_err(|e| ProfileError::Parse { path: path.to_owned(), message: e.message().to_owned() })?;
        let field = |key, message: String| ProfileError::Field { path: path.to_owned(), key, message };
        let symbol = Symbol::parse(&p.symbol).map_err(|e| field("symbol", e.to_string()))?;
        let user = StaffUser::parse(&p.user).map_err(|e| field("user", e.to_string()))?;
        crate::card::check_endpoint(&p.node_url).map_err(|m| field("node_url", m))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| if p.is_absolute() { p.to_owned() } else { base.join(p) };
        let read = |key, p: &Path| {
            std::fs::read_to_string(resolve(p)).map_err(|e| field(key, format!("{}: {e}", resolve(p).display())))
        };
        Ok(LoadedProfile {
            path: path.to_owned(),
            node_url: p.node_url.clone(),
            symbol,
            user,
            cert_pem: read("cert", &p.cert)?,
            key_pem: read_secret(&resolve(&p.key))?,
            ca_pem: read("ca", &p.ca)?,
        })
    }
}

impl LoadedProfile {
    /// The rustls client configuration for this profile: our staff certificate, trusting
    /// only our institution's CA, and expecting our own node on the other end.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, crate::tls::TlsError> {
        let ca = crate::tls::certs_from_pem(&self.ca_pem)?;
        crate::tls::client_config(self.symbol.clone(), &ca[0], &self.cert_pem, &self.key_pem)
    }
}
