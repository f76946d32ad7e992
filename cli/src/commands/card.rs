//! `rota card export`.

use anyhow::anyhow;
use rota_proto::staff::Empty;
use serde_json::json;

use crate::CardCmd;
use crate::context::{Ctx, RpcResult};
use crate::output::print_json;

pub async fn run(ctx: &Ctx, cmd: CardCmd) -> anyhow::Result<()> {
    let CardCmd::Export { output } = cmd;
    let mut node = ctx.connect().await?;
    let card = node.client.export_card(Empty {}).await.rpc(&node.url)?;
    if let Some(path) = &output {
        rota_certs::files::write_public(path, card.text.as_bytes())
            .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    }
    if ctx.json {
        return print_json(&json!({
            "symbol": card.symbol,
            "name": card.name,
            "endpoint": card.endpoint,
            "fingerprint": card.fingerprint,
            "text": card.text,
            "file": output.as_ref().map(|p| p.display().to_string()),
        }));
    }
    match output {
        Some(path) => {
            println!("wrote {}", path.display());
            println!("fingerprint: {}", card.fingerprint);
            println!("Give the file to your partner, and read them the fingerprint by phone.");
        }
        None => print!("{}", card.text),
    }
    Ok(())
}
