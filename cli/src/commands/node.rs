//! `rota whoami` and `rota certs rotate`.

use rota_proto::staff::Empty;
use serde_json::json;

use crate::context::{Ctx, RpcResult};
use crate::output::{print_fields, print_json};

pub async fn whoami(ctx: &Ctx) -> anyhow::Result<()> {
    let mut node = ctx.connect().await?;
    let info = node.client.node_info(Empty {}).await.rpc(&node.url)?;
    if ctx.json {
        return print_json(&json!({
            "symbol": info.symbol,
            "name": info.name,
            "public_url": info.public_url,
            "staff_user": info.staff_user,
            "version": info.version,
            "fingerprint": info.fingerprint,
            "node_url": node.url,
            "profile": node.profile.path.display().to_string(),
        }));
    }
    print_fields(&[
        ("library", format!("{} ({})", info.symbol, info.name)),
        ("public url", info.public_url),
        ("you are", info.staff_user),
        ("node version", info.version),
        ("CA fingerprint", info.fingerprint),
        ("node url", node.url.clone()),
        ("profile", node.profile.path.display().to_string()),
    ]);
    Ok(())
}

pub async fn rotate(ctx: &Ctx) -> anyhow::Result<()> {
    let mut node = ctx.connect().await?;
    let c = node.client.rotate_certificate(Empty {}).await.rpc(&node.url)?;
    let expires = crate::output::time_json(c.not_after_unix_ms);
    if ctx.json {
        return print_json(&json!({ "fingerprint": c.fingerprint, "serial": c.serial, "not_after": expires }));
    }
    println!("The node now presents a new certificate. Partners need do nothing: they trust your CA.");
    print_fields(&[
        ("fingerprint", c.fingerprint),
        ("serial", c.serial),
        ("expires", expires.as_str().unwrap_or_default().to_owned()),
    ]);
    Ok(())
}
