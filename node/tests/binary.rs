//! The `rota-node` binary itself: help, init, and refusing a loose key file at start.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rota-node");

#[test]
fn help_lists_the_commands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["init", "run", "demo"] {
        assert!(text.contains(cmd), "{cmd} missing from:\n{text}");
    }
}

#[test]
fn init_then_run_refuses_a_readable_key_and_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dgw");
    let out = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(&data)
        .args([
            "--symbol",
            "DGW",
            "--name",
            "GW Libraries",
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            "https://127.0.0.1:7443",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("profiles/admin/profile.toml") && text.contains("SHA256:"), "{text}");
    // A second init of the same directory is refused and changes nothing.
    let again = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(&data)
        .args(["--symbol", "DGW", "--name", "x", "--public-url", "https://127.0.0.1:7443"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    // Bad input is refused before anything is written.
    let bad = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(dir.path().join("bad"))
        .args(["--symbol", "dgw", "--name", "x", "--public-url", "https://127.0.0.1:7443"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("symbol"));
    assert!(!dir.path().join("bad").exists());

    let key = data.join("tls/node.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let run = Command::new(BIN).args(["run", "--data-dir"]).arg(&data).output().unwrap();
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("chmod 600") && err.contains("node.key"), "{err}");
}
