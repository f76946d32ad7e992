//! `rota agreement …`.

use rota_proto::staff::{SetAgreementRequest, SymbolRequest};

use crate::AgreementCmd;
use crate::context::{Ctx, RpcResult};
use crate::output::{agreement_fields, agreement_json, print_fields, print_json};

/// `--formats` as sent: `all` (or nothing) means every format, which is an empty list.
pub fn parse_formats(s: &str) -> Vec<String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Vec::new();
    }
    s.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect()
}

pub async fn run(ctx: &Ctx, cmd: AgreementCmd) -> anyhow::Result<()> {
    let agreement = match cmd {
        AgreementCmd::Set(a) => {
            if let Some(word) = a.stray.first() {
                crate::usage_error(format!(
                    "unexpected argument '{word}'; write durations without a space \
                     (--expiry 4d) and quote values that contain spaces"
                ));
            }
            let (formats, set_formats) = match &a.formats {
                Some(f) => (parse_formats(f), true),
                None => (Vec::new(), false),
            };
            let request = SetAgreementRequest {
                partner: a.symbol,
                lend: a.lend,
                borrow: a.borrow,
                loan_days: a.loan_days,
                renewals: a.renewals,
                max_outstanding: a.max_outstanding,
                formats,
                set_formats,
                expiry_seconds: a.expiry,
            };
            let mut node = ctx.connect().await?;
            node.client.set_agreement(request).await.rpc(&node.url)?
        }
        AgreementCmd::Show { symbol } => {
            let mut node = ctx.connect().await?;
            node.client.get_agreement(SymbolRequest { symbol }).await.rpc(&node.url)?
        }
    };
    if ctx.json {
        return print_json(&agreement_json(&agreement));
    }
    print_fields(&agreement_fields(&agreement));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(parse_formats("book, dvd,"), vec!["book", "dvd"]);
        assert!(parse_formats("all").is_empty());
        assert!(parse_formats("ALL").is_empty());
    }
}
