//! `rota-node init`: a new library's data directory, built completely or not at all.

use std::path::{Path, PathBuf};

use rota_certs::files::{write_public, write_secret};
use rota_certs::profile::Profile;
use rota_certs::{CaBundle, StaffUser, Symbol};

use crate::config::{CONFIG_FILE, Config, RawConfig, RawLimits, RawOutbox, RawRota, RawStorage, RawTimers};
use crate::store::Store;

/// What `init` asks for.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub symbol: String,
    pub name: String,
    pub listen: String,
    pub public_url: String,
}

/// What `init` made.
#[derive(Clone, Debug)]
pub struct InitReport {
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub profile: PathBuf,
    pub fingerprint: String,
}

/// The host part of `https://host:port`.
pub fn url_host(url: &str) -> String {
    let rest = url.trim_start_matches("https://").trim_end_matches('/');
    if let Some(v6) = rest.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("").to_owned();
    }
    rest.rsplit_once(':').map_or(rest, |(h, _)| h).to_owned()
}

/// Create the data directory: config, institution CA, node certificate, an `admin` staff
/// certificate with its CLI profile, and the database. Everything is built in a sibling
/// temporary directory and moved into place, so a failure leaves nothing behind. An
/// existing empty directory (a mount point, say) is filled in place.
pub async fn init(opts: &InitOptions) -> anyhow::Result<InitReport> {
    let dir = &opts.data_dir;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::bail!(
            "{}: already exists and is not empty; choose another --data-dir (a node is initialised once)",
            dir.display()
        );
    }
    let raw = RawConfig {
        symbol: opts.symbol.clone(),
        name: opts.name.clone(),
        listen: opts.listen.clone(),
        public_url: opts.public_url.clone(),
        limits: RawLimits::default(),
        outbox: RawOutbox::default(),
        timers: RawTimers::default(),
        rota: RawRota::default(),
        storage: RawStorage::default(),
    };
    // Check everything before writing anything.
    let checked = Config::check(dir, Path::new("--options"), raw.clone())?;
    let symbol: Symbol = checked.symbol.clone();
    // Build in a hidden directory (beside the target, or inside it when the target is an
    // existing empty directory such as a mount point), then move it into place.
    let existing = dir.exists();
    let parent = if existing {
        dir.as_path()
    } else {
        dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    };
    std::fs::create_dir_all(parent)?;
    let tmp = tempdir_in(parent)?;
    let placed = match build(&tmp, &raw, &symbol).await {
        Ok(()) if existing => move_entries(&tmp, dir),
        Ok(()) => std::fs::rename(&tmp, dir).map_err(Into::into),
        Err(e) => Err(e),
    };
    if let Err(e) = placed {
        let _ = std::fs::remove_dir_all(&tmp);
        if existing {
            // Leave the directory as empty as we found it.
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir_all(entry.path()).or_else(|_| std::fs::remove_file(entry.path()));
            }
        }
        return Err(e);
    }
    let abs = std::fs::canonicalize(dir)?;
    let report = InitReport {
        config: abs.join(CONFIG_FILE),
        profile: abs.join("profiles/admin/profile.toml"),
        fingerprint: rota_certs::tls::certs_from_pem(&std::fs::read_to_string(abs.join("tls/ca.pem"))?)
            .map(|c| rota_certs::fingerprint_of_der(&c[0]))?,
        data_dir: abs,
    };
    Ok(report)
}

/// Move everything in `from` into `to`, then remove `from`.
fn move_entries(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::rename(entry.path(), to.join(entry.file_name()))?;
    }
    std::fs::remove_dir(from)?;
    Ok(())
}

fn tempdir_in(parent: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let p = parent.join(format!(".rota-init-{}", uuid::Uuid::new_v4().simple()));
    std::fs::DirBuilder::new().mode(0o700).create(&p)?;
    Ok(p)
}

async fn build(dir: &Path, raw: &RawConfig, symbol: &Symbol) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let mk = |p: &Path| std::fs::DirBuilder::new().mode(0o700).recursive(true).create(p);
    mk(&dir.join("tls"))?;
    mk(&dir.join("profiles/admin"))?;
    let ca = CaBundle::generate(symbol, &raw.name)?;
    let node = ca.issue_node(symbol, &[url_host(&raw.public_url)])?;
    let admin_user = StaffUser::parse("admin")?;
    let admin = ca.issue_staff(symbol, &admin_user)?;
    write_public(&dir.join("tls/ca.pem"), ca.cert_pem.as_bytes())?;
    write_secret(&dir.join("tls/ca.key"), ca.key_pem().as_bytes())?;
    write_public(&dir.join("tls/node.pem"), node.cert_pem.as_bytes())?;
    write_secret(&dir.join("tls/node.key"), node.key_pem.as_bytes())?;
    let text = format!(
        "# Rota node configuration. Keys are documented in deploy/config.example.toml.\n{}",
        toml::to_string(raw)?
    );
    write_public(&dir.join(CONFIG_FILE), text.as_bytes())?;
    let pdir = dir.join("profiles/admin");
    write_public(&pdir.join("cert.pem"), admin.cert_pem.as_bytes())?;
    write_secret(&pdir.join("key.pem"), admin.key_pem.as_bytes())?;
    write_public(&pdir.join("ca.pem"), ca.cert_pem.as_bytes())?;
    Profile {
        node_url: raw.public_url.clone(),
        symbol: symbol.to_string(),
        user: admin_user.to_string(),
        cert: "cert.pem".into(),
        key: "key.pem".into(),
        ca: "ca.pem".into(),
    }
    .save(&pdir.join("profile.toml"))?;
    let store = Store::open(&dir.join("rota.db")).await?;
    store.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path, symbol: &str) -> InitOptions {
        InitOptions {
            data_dir: dir.to_owned(),
            symbol: symbol.into(),
            name: "Test".into(),
            listen: "127.0.0.1:7443".into(),
            public_url: "https://127.0.0.1:7443".into(),
        }
    }

    #[tokio::test]
    async fn fills_an_existing_empty_directory_and_leaves_nothing_after_a_failure() {
        let root = tempfile::tempdir().unwrap();
        let mount = root.path().join("mount");
        std::fs::create_dir(&mount).unwrap();
        let r = init(&opts(&mount, "DGW")).await.unwrap();
        assert!(r.config.exists() && r.profile.exists());
        let hidden: Vec<_> = std::fs::read_dir(&mount)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".rota-init"))
            .collect();
        assert!(hidden.is_empty());
        // Bad options: nothing written anywhere.
        let fresh = root.path().join("fresh");
        assert!(init(&opts(&fresh, "bad symbol")).await.is_err());
        assert!(!fresh.exists());
        let leftovers: Vec<_> = std::fs::read_dir(root.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }
}
