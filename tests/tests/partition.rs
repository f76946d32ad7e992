//! A network partition between two real nodes, made with a network namespace and a veth
//! pair (the namespace is this test's own host): requests in flight across the cut wait,
//! and converge once the link heals. Skipped, with a message, where the machine cannot make
//! namespaces (it needs root and iproute2).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rota_certs::profile::Profile;
use rota_proto::staff::{self as spb, staff_client::StaffClient};
use rota_tests::{bin_dir, eventually};
use tonic::transport::Channel;

struct Net {
    ns: String,
    veth: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

impl Net {
    /// A namespace joined to this one by a veth pair: 10.201.X.1 here, 10.201.X.2 inside.
    fn new(x: u8) -> Option<Net> {
        let ns = format!("rota-part-{}", std::process::id());
        let veth = format!("rv{}", std::process::id() % 100_000);
        let peer = format!("{veth}p");
        let ok = ip(&["netns", "add", &ns])
            && ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])
            && ip(&["link", "set", &peer, "netns", &ns])
            && ip(&["addr", "add", &format!("10.201.{x}.1/30"), "dev", &veth])
            && ip(&["link", "set", &veth, "up"])
            && ip(&["netns", "exec", &ns, "ip", "addr", "add", &format!("10.201.{x}.2/30"), "dev", &peer])
            && ip(&["netns", "exec", &ns, "ip", "link", "set", &peer, "up"])
            && ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        let net = Net { ns, veth };
        ok.then_some(net)
    }

    fn cut(&self) {
        assert!(ip(&["link", "set", &self.veth, "down"]));
    }

    fn heal(&self) {
        assert!(ip(&["link", "set", &self.veth, "up"]));
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        ip(&["link", "delete", &self.veth]);
        ip(&["netns", "delete", &self.ns]);
    }
}

struct NodeProc {
    data: PathBuf,
    child: Child,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(root: &Path, symbol: &str, addr: &str, ns: Option<&str>) -> NodeProc {
    let data = root.join(symbol.to_lowercase());
    // An ephemeral port: from the address itself here, or (inside the namespace, whose ports
    // are all free) one the kernel hands out on loopback.
    let probe = if ns.is_some() { "127.0.0.1".to_owned() } else { addr.to_owned() };
    let port = std::net::TcpListener::bind((probe.as_str(), 0)).unwrap().local_addr().unwrap().port();
    let out = Command::new(bin_dir().join("rota-node"))
        .args(["init", "--data-dir"])
        .arg(&data)
        .args([
            "--symbol",
            symbol,
            "--name",
            symbol,
            "--listen",
            &format!("{addr}:{port}"),
            "--public-url",
            &format!("https://{addr}:{port}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = data.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("backoff_max_ms = 300000", "backoff_max_ms = 500")
            .replace("backoff_initial_ms = 500", "backoff_initial_ms = 50"),
    )
    .unwrap();
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin_dir().join("rota-node"));
            c
        }
        None => Command::new(bin_dir().join("rota-node")),
    };
    let child =
        cmd.args(["run", "--data-dir"]).arg(&data).env("ROTA_LOG", "warn").stdout(Stdio::null()).spawn().unwrap();
    NodeProc { data, child }
}

async fn staff(n: &NodeProc) -> StaffClient<Channel> {
    let p = Profile::load(&n.data.join("profiles/admin/profile.toml")).unwrap();
    eventually("node to accept staff", Duration::from_secs(30), || {
        let p = p.clone();
        async move {
            let ch = rota_proto::channel::connect(&p.node_url, p.client_config().ok()?, Duration::from_secs(5))
                .await
                .ok()?;
            let mut c = StaffClient::new(ch);
            c.node_info(spb::Empty {}).await.ok()?;
            Some(c)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_across_a_cut_link_converge_after_it_heals() {
    let x = (std::process::id() % 200) as u8 + 20;
    let Some(net) = Net::new(x) else {
        rota_tests::skip_unless_ci("cannot create a network namespace here (needs root and iproute2)");
        return;
    };
    rota_tests::setup();
    let root = tempfile::tempdir().unwrap();
    let dgw = start(root.path(), "DGW", &format!("10.201.{x}.1"), None);
    let uva = start(root.path(), "UVA", &format!("10.201.{x}.2"), Some(&net.ns));
    let (mut sd, mut su) = (staff(&dgw).await, staff(&uva).await);
    for (mut a, mut b, sym) in [(sd.clone(), su.clone(), "UVA"), (su.clone(), sd.clone(), "DGW")] {
        let card = b.export_card(spb::Empty {}).await.unwrap().into_inner();
        a.add_partner(spb::AddPartnerRequest {
            card_text: card.text,
            tier: "p2p".into(),
            priority: 1,
            expected_fingerprint: card.fingerprint,
        })
        .await
        .unwrap();
        a.set_agreement(spb::SetAgreementRequest {
            partner: sym.into(),
            lend: Some(true),
            borrow: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for i in 0..10 {
        su.add_item(spb::Item {
            barcode: format!("U-{i}"),
            title: format!("Book {i}"),
            lccn: format!("{:08}", 20_000_000 + i),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    // One request before the cut, to see the link work.
    let cite = |i: i32| spb::Citation {
        title: format!("Book {i}"),
        lccn: format!("{:08}", 20_000_000 + i),
        ..Default::default()
    };
    let first = sd
        .create_request(spb::CreateRequestRequest {
            citation: Some(cite(0)),
            patron_id: "P".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .id;

    net.cut();
    // Requests placed during the cut: Locate cannot reach UVA, but UVA stays in the rota
    // (unreachable lenders are kept) and the Request waits in the outbox.
    let mut ids = vec![first];
    for i in 1..6 {
        let r = sd
            .create_request(spb::CreateRequestRequest {
                citation: Some(cite(i)),
                patron_id: "P".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        ids.push(r.into_inner().id);
    }
    let p = sd.get_partner(spb::SymbolRequest { symbol: "UVA".into() }).await.unwrap().into_inner();
    assert!(p.pending_messages >= 1, "{p:?}");

    net.heal();
    eventually("every request across the cut to converge", Duration::from_secs(60), || {
        let mut s = sd.clone();
        let ids = ids.clone();
        async move {
            for id in ids {
                if s.get_request(spb::IdRequest { id }).await.ok()?.into_inner().state != "will_supply" {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    for id in &ids {
        let l = su.get_lending(spb::IdRequest { id: id.clone() }).await.unwrap().into_inner();
        assert_eq!(l.state, "will_supply");
        assert_eq!(l.timeline.iter().filter(|e| e.event == "request_received").count(), 1);
    }
}
