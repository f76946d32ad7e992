//! The command context: global options, the profile, and the connection to the node.
//!
//! The profile is loaded and the node contacted only when a command first needs it, so
//! every check that can be made locally (arguments, card files, holdings files, output folders)
//! runs, and fails, before anything touches the network.

use std::error::Error as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use rota_certs::profile::{LoadedProfile, Profile};
use rota_proto::staff::staff_client::StaffClient;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::GlobalOpts;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What every command gets: the global options, and the node once connected.
pub struct Ctx {
    pub json: bool,
    profile_path: Option<PathBuf>,
}

/// A connected node.
pub struct Node {
    pub client: StaffClient<Channel>,
    pub url: String,
    pub profile: LoadedProfile,
}

impl Ctx {
    pub fn new(global: GlobalOpts) -> Self {
        Ctx { json: global.json, profile_path: global.profile }
    }

    /// Load the profile (without connecting).
    pub fn profile(&self) -> anyhow::Result<LoadedProfile> {
        let path = self.profile_path.as_ref().ok_or_else(|| {
            anyhow!(
                "no profile: pass --profile PATH or set ROTA_PROFILE \
                 (rota-node init prints the path of the admin profile)"
            )
        })?;
        Profile::load(path).map_err(|e| anyhow!("cannot use profile: {e}"))
    }

    /// Load the profile and connect to its node.
    pub async fn connect(&self) -> anyhow::Result<Node> {
        let profile = self.profile()?;
        let config = profile.client_config().with_context(|| format!("profile {}", profile.path.display()))?;
        let url = profile.node_url.clone();
        let channel = rota_proto::channel::connect(&url, config, REQUEST_TIMEOUT)
            .await
            .map_err(|e| anyhow!("cannot reach node {url}: {}", chain(e.as_ref())))?;
        Ok(Node { client: StaffClient::new(channel), url, profile })
    }
}

/// An error and its sources, joined with ": ", skipping repeats (transport errors often
/// say the same thing at two levels).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// Turn a refused or failed call into a message a librarian can act on.
pub fn status_error(url: &str, status: &Status) -> anyhow::Error {
    let mut message = status.message().to_owned();
    if let Some(source) = status.source() {
        let more = chain(source);
        if !more.is_empty() && !message.contains(&more) {
            message = if message.is_empty() { more } else { format!("{message}: {more}") };
        }
    }
    if message.is_empty() {
        message = status.code().description().to_owned();
    }
    match status.code() {
        Code::Unavailable => anyhow!("cannot reach node {url}: {message}"),
        Code::Unauthenticated => {
            anyhow!("node {url} did not accept this profile's certificate: {message}")
        }
        Code::PermissionDenied => anyhow!("not allowed: {message}"),
        Code::DeadlineExceeded => anyhow!("node {url} did not answer in time: {message}"),
        _ => anyhow!("{message}"),
    }
}

/// `.rpc(&node.url)` on a call's result: the reply's message, or a readable error.
pub trait RpcResult<T> {
    fn rpc(self, url: &str) -> anyhow::Result<T>;
}

impl<T> RpcResult<T> for Result<tonic::Response<T>, Status> {
    fn rpc(self, url: &str) -> anyhow::Result<T> {
        self.map(tonic::Response::into_inner).map_err(|s| status_error(url, &s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages() {
        let url = "https://lib.example:7443";
        let e = status_error(url, &Status::unavailable("connection refused")).to_string();
        assert_eq!(e, "cannot reach node https://lib.example:7443: connection refused");
        let e = status_error(url, &Status::not_found("no partner DGW")).to_string();
        assert_eq!(e, "no partner DGW");
        let e = status_error(url, &Status::permission_denied("admins only")).to_string();
        assert!(e.starts_with("not allowed: admins only"), "{e}");
        let e = status_error(url, &Status::unauthenticated("")).to_string();
        assert!(e.contains(url) && e.contains("certificate"), "{e}");
    }

    #[test]
    fn missing_profile_is_explained() {
        let ctx = Ctx::new(GlobalOpts { profile: None, json: false });
        let e = ctx.profile().unwrap_err().to_string();
        assert!(e.starts_with("no profile: pass --profile PATH or set ROTA_PROFILE"), "{e}");
    }
}
