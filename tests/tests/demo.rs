//! The README's first command: the demo network runs, the request rolls from the
//! consortium partner (NotOnShelf) to the peer-to-peer partner, which supplies.

use std::process::Command;

#[test]
fn demo_once_rolls_to_the_p2p_partner_and_completes_the_journey() {
    let bins = rota_tests::bin_dir();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bins.join("rota-node"))
        .args(["demo", "--once", "--dir"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("is now will_supply: UVA will supply it"), "{stdout}");
    assert!(stdout.contains("Request DGW-1 is now completed."), "{stdout}");
    assert!(stdout.contains("checked_in"), "{stdout}");
    assert!(stdout.contains("Unfilled: NotOnShelf"), "{stdout}");
    assert!(stdout.contains("imported 1000 items"), "{stdout}");
}
