//! `rota staff issue`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use rota_certs::StaffUser;
use rota_certs::files::{write_public, write_secret};
use rota_certs::profile::Profile;
use rota_proto::staff::IssueStaffRequest;
use serde_json::json;

use crate::StaffCmd;
use crate::context::{Ctx, RpcResult};
use crate::output::print_json;

pub async fn run(ctx: &Ctx, cmd: StaffCmd) -> anyhow::Result<()> {
    let StaffCmd::Issue { user, output } = cmd;
    let staff = StaffUser::parse(&user).map_err(|e| anyhow!("staff user {user:?}: {e}"))?;
    let dir = output.unwrap_or_else(|| PathBuf::from(format!("rota-profile-{user}")));
    let profile_path = dir.join("profile.toml");
    if profile_path.exists() {
        bail!(
            "{} already exists; choose another folder with -o DIR, or remove the old profile first",
            profile_path.display()
        );
    }
    let created = !dir.exists();
    std::fs::create_dir_all(&dir).map_err(|e| anyhow!("cannot create {}: {e}", dir.display()))?;
    let result = issue(ctx, &staff, &dir).await;
    if result.is_err() && created {
        // Leave nothing behind when the node refused; fails harmlessly if not empty.
        let _ = std::fs::remove_dir(&dir);
    }
    let (symbol, node_url) = result?;
    let shown = profile_path.display().to_string();
    if ctx.json {
        return print_json(&json!({
            "id": format!("urn:rota:staff:{symbol}:{}", staff.as_str()),
            "user": staff.as_str(),
            "symbol": symbol,
            "node_url": node_url,
            "profile": shown,
            "cert": dir.join("cert.pem").display().to_string(),
            "key": dir.join("key.pem").display().to_string(),
            "ca": dir.join("ca.pem").display().to_string(),
        }));
    }
    println!("wrote profile {shown} for {staff} at {symbol} ({node_url})");
    println!("key.pem in that folder is secret: hand the folder over a safe channel.");
    println!("Try it:\n  rota --profile {shown} whoami");
    Ok(())
}

/// Generate a key, have the node sign it, and write the profile folder.
async fn issue(ctx: &Ctx, staff: &StaffUser, dir: &Path) -> anyhow::Result<(String, String)> {
    let (csr_pem, key_pem) = rota_certs::issue::staff_csr(staff).map_err(|e| anyhow!("cannot make a key: {e}"))?;
    let mut node = ctx.connect().await?;
    let request = IssueStaffRequest { user: staff.as_str().to_owned(), csr_pem };
    let issued = node.client.issue_staff(request).await.rpc(&node.url)?;
    let write = |name: &str, contents: &str, secret: bool| {
        let path = dir.join(name);
        let written =
            if secret { write_secret(&path, contents.as_bytes()) } else { write_public(&path, contents.as_bytes()) };
        written.map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
    };
    write("key.pem", &key_pem, true)?;
    write("cert.pem", &issued.cert_pem, false)?;
    write("ca.pem", &issued.ca_pem, false)?;
    let profile = Profile {
        node_url: issued.node_url.clone(),
        symbol: issued.symbol.clone(),
        user: if issued.user.is_empty() { staff.as_str().to_owned() } else { issued.user },
        cert: PathBuf::from("cert.pem"),
        key: PathBuf::from("key.pem"),
        ca: PathBuf::from("ca.pem"),
    };
    let path = dir.join("profile.toml");
    profile.save(&path).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    Ok((issued.symbol, issued.node_url))
}
