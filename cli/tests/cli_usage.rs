//! The `rota` binary as a librarian meets it: help, missing or broken profiles, and the
//! checks made before anything is sent to a node.

use std::path::Path;
use std::process::{Command, Output};

use rota_certs::issue::CaBundle;
use rota_certs::{Card, StaffUser, Symbol};

fn rota(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rota")).args(args).env_remove("ROTA_PROFILE").output().expect("run rota")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const NO_PROFILE: &str = "error: no profile: pass --profile PATH or set ROTA_PROFILE \
                          (rota-node init prints the path of the admin profile)";

#[test]
fn help_lists_the_command_groups() {
    let o = rota(&["--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for group in [
        "whoami",
        "card",
        "partner",
        "staff",
        "holdings",
        "agreement",
        "request",
        "preview",
        "lending",
        "todo",
        "stats",
    ] {
        assert!(out.lines().any(|l| l.trim_start().starts_with(group)), "--help does not list {group}:\n{out}");
    }
    assert!(out.contains("--profile") && out.contains("--json"), "{out}");
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    let commands: &[&[&str]] = &[
        &["whoami"],
        &["card", "export"],
        &["partner", "add"],
        &["partner", "list"],
        &["partner", "show"],
        &["partner", "suspend"],
        &["partner", "resume"],
        &["partner", "remove"],
        &["partner", "close"],
        &["staff", "issue"],
        &["holdings", "add"],
        &["holdings", "import"],
        &["holdings", "search"],
        &["holdings", "show"],
        &["agreement", "set"],
        &["agreement", "show"],
        &["request", "create"],
        &["request", "list"],
        &["request", "show"],
        &["request", "receive"],
        &["request", "loan"],
        &["request", "return"],
        &["request", "ship-return"],
        &["request", "cancel"],
        &["request", "renew"],
        &["request", "accept"],
        &["request", "decline"],
        &["request", "lost"],
        &["preview"],
        &["lending", "list"],
        &["lending", "show"],
        &["lending", "pick-list"],
        &["lending", "ship"],
        &["lending", "check-in"],
        &["lending", "reject"],
        &["lending", "condition"],
        &["lending", "renew-answer"],
        &["lending", "recall"],
        &["todo"],
        &["stats"],
    ];
    for cmd in commands {
        let mut args = cmd.to_vec();
        args.push("--help");
        let o = rota(&args);
        assert_eq!(o.status.code(), Some(0), "{cmd:?}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("Example"), "{cmd:?} --help has no example:\n{out}");
        assert!(out.contains(&format!("rota {}", cmd.join(" "))), "{cmd:?} example:\n{out}");
    }
}

#[test]
fn no_profile_is_explained() {
    let o = rota(&["partner", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim_end(), NO_PROFILE);
    assert!(o.stdout.is_empty());
    // Global options are accepted after the subcommand too.
    let o = rota(&["partner", "list", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim_end(), NO_PROFILE);
}

#[test]
fn profile_from_the_environment() {
    let o = Command::new(env!("CARGO_BIN_EXE_rota"))
        .args(["whoami"])
        .env("ROTA_PROFILE", "/nonexistent/env-profile.toml")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/env-profile.toml"), "{}", stderr(&o));
}

#[test]
fn missing_profile_file_is_named() {
    let o = rota(&["--profile", "/nonexistent/p.toml", "whoami"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("/nonexistent/p.toml"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(rota(&["partner", "frobnicate"]).status.code(), Some(2));
    assert_eq!(rota(&["partner", "add", "x.card", "--tier", "gold"]).status.code(), Some(2));
    assert_eq!(rota(&["request", "create", "--title", "T"]).status.code(), Some(2));
}

#[test]
fn reject_reason_must_be_an_iso_code() {
    let o = rota(&["lending", "reject", "X", "--reason", "Bogus"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("--reason"), "{err}");
    for code in ["NotHeld", "NotOnShelf", "NonCirculating", "NotAvailableForILL", "PolicyProblem", "PoorCondition"] {
        assert!(err.contains(code), "{code}: {err}");
    }
    // The help lists them too, and a good one gets as far as needing a profile.
    let help = stdout(&rota(&["lending", "reject", "--help"]));
    assert!(help.contains("NotAvailableForILL") && help.contains("PoorCondition"), "{help}");
    let o = rota(&["lending", "reject", "X", "--reason", "NotHeld"]);
    assert_eq!(stderr(&o).trim_end(), NO_PROFILE);
    // Without a reason at all: a usage error.
    assert_eq!(rota(&["lending", "reject", "X"]).status.code(), Some(2));
}

#[test]
fn bad_dates_name_the_option_before_any_profile_is_needed() {
    for args in [
        &["lending", "ship", "X", "--due", "2026-13-01"][..],
        &["lending", "ship", "X", "--due", "31/07/2026"],
        &["lending", "renew-answer", "X", "yes", "--due", "2026-02-30"],
    ] {
        let o = rota(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains("--due"), "{args:?}: {err}");
        assert!(!err.contains("no profile"), "{args:?}: {err}");
    }
    let o = rota(&["lending", "ship", "X", "--due", "2026-07-31"]);
    assert_eq!(stderr(&o).trim_end(), NO_PROFILE);
    // A refused renewal keeps its due date: --due with no is a usage error.
    let o = rota(&["lending", "renew-answer", "X", "no", "--due", "2026-07-31"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--due"), "{}", stderr(&o));
    let o = rota(&["lending", "renew-answer", "X", "maybe"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn import_help_lists_every_column() {
    let o = rota(&["holdings", "import", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for column in [
        "barcode",
        "title",
        "author",
        "publisher",
        "year",
        "isbn",
        "issn",
        "oclc",
        "lccn",
        "format",
        "call_number",
        "location",
        "policy",
        "status",
    ] {
        assert!(out.contains(column), "import --help does not list {column}:\n{out}");
    }
    assert!(out.contains("nothing is written"), "{out}");
    // The item mappings, the modes and examples.
    for want in
        ["koha     952", "sierra   945", "alma     ITM", "tag=TAG,barcode=X", "--replace", "--delete", "--dry-run"]
    {
        assert!(out.contains(want), "import --help does not mention {want}:\n{out}");
    }
    assert!(out.contains("rota holdings import export.mrc --items koha"), "{out}");
}

#[test]
fn bad_expiry_names_the_option_before_any_profile_is_needed() {
    for bad in ["5 weeks", "5w", "soon", "0s"] {
        let o = rota(&["agreement", "set", "DGW", "--expiry", bad]);
        assert_ne!(o.status.code(), Some(0));
        let err = stderr(&o);
        assert!(err.contains("--expiry"), "{bad}: {err}");
        assert!(!err.contains("no profile"), "{bad}: {err}");
    }
    // Typed unquoted, the number alone is checked and refused.
    let o = rota(&["agreement", "set", "DGW", "--expiry", "5", "weeks"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--expiry"), "{}", stderr(&o));
    // A stray word after a good value is a usage error too.
    let o = rota(&["agreement", "set", "DGW", "--expiry", "5d", "weeks"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'weeks'"), "{}", stderr(&o));
    // A good one gets as far as needing a profile.
    let o = rota(&["agreement", "set", "DGW", "--expiry", "4d", "--lend", "yes"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim_end(), NO_PROFILE);
    let o = rota(&["agreement", "set", "DGW", "--lend", "perhaps"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--lend"));
}

#[test]
fn import_checks_the_file_before_needing_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("books.csv");
    std::fs::write(&file, "barcode,title,shelf\nB1,Moby Dick,3\n").unwrap();
    let o = rota(&["holdings", "import", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with(&format!("error: {}: line 1: unknown column \"shelf\"", file.display())), "{err}");
    assert!(!err.contains("no profile"), "{err}");

    // Only a header: nothing to import.
    std::fs::write(&file, "barcode,title\n").unwrap();
    let o = rota(&["holdings", "import", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nothing to import"), "{}", stderr(&o));

    let o = rota(&["holdings", "import", "/nonexistent/books.csv"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/books.csv"), "{}", stderr(&o));

    // Not holdings at all: the file and what it is are named.
    let pdf = dir.path().join("report.pdf");
    std::fs::write(&pdf, "%PDF-1.4\n%âãÏÓ\n").unwrap();
    let o = rota(&["holdings", "import", pdf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("report.pdf") && err.contains("PDF document"), "{err}");

    // --items is for MARC files.
    std::fs::write(&file, "title,barcode\nMoby Dick,B1\n").unwrap();
    let o = rota(&["holdings", "import", file.to_str().unwrap(), "--items", "koha"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--items"), "{}", stderr(&o));

    // A good file gets as far as needing a profile.
    let o = rota(&["holdings", "import", file.to_str().unwrap()]);
    assert_eq!(stderr(&o).trim_end(), NO_PROFILE);
    let list = dir.path().join("barcodes.txt");
    std::fs::write(&list, "# gone\nB1\n").unwrap();
    let o = rota(&["holdings", "import", "--delete", list.to_str().unwrap(), "--dry-run"]);
    assert_eq!(stderr(&o).trim_end(), NO_PROFILE);
}

#[test]
fn import_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.mrc");
    // One record: its leader, a directory of one entry (001), and the 001 field.
    std::fs::write(&file, "00041nam a2200037   4500001000300000\u{1e}B1\u{1e}\u{1d}").unwrap();
    let file = file.to_str().unwrap();

    // A custom mapping without its barcode subfield.
    let o = rota(&["holdings", "import", file, "--items", "tag=952"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("--items") && err.contains("'barcode' is required"), "{err}");
    let o = rota(&["holdings", "import", file, "--items", "tag=952,barcode=p,shelf=c"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown key \"shelf\""), "{}", stderr(&o));
    let o = rota(&["holdings", "import", file, "--items", "aleph"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("koha, sierra, generic, alma"), "{}", stderr(&o));

    // --replace and --delete are different modes; --delete takes the place of FILE.
    let o = rota(&["holdings", "import", "--replace", "--delete", "list.txt"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--replace") && stderr(&o).contains("--delete"), "{}", stderr(&o));
    assert_eq!(rota(&["holdings", "import", file, "--delete", "list.txt"]).status.code(), Some(2));
    assert_eq!(rota(&["holdings", "import", "--dry-run"]).status.code(), Some(2));
    let o = rota(&["holdings", "import", file, "--format", "xlsx"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("marcxml"), "{}", stderr(&o));

    // Good options get as far as needing a profile.
    for format in ["marc", "MARC21", "mrc"] {
        let o = rota(&["holdings", "import", file, "--format", format, "--items", "TAG=949,barcode=i", "--replace"]);
        assert_eq!(stderr(&o).trim_end(), NO_PROFILE, "{format}");
    }
}

fn write_card(dir: &Path) -> (std::path::PathBuf, String) {
    let symbol = Symbol::parse("DGW").unwrap();
    let ca = CaBundle::generate(&symbol, "George Washington University Libraries").unwrap();
    let card = Card::new(
        symbol,
        "George Washington University Libraries".into(),
        "https://rota.library.example:7443".into(),
        ca.cert_pem.clone(),
    )
    .unwrap();
    let path = dir.join("dgw.card");
    std::fs::write(&path, card.to_text()).unwrap();
    (path, card.fingerprint())
}

#[test]
fn partner_add_checks_the_card_and_fingerprint_locally() {
    let dir = tempfile::tempdir().unwrap();
    let (card, fingerprint) = write_card(dir.path());
    let card = card.to_str().unwrap();

    let wrong = "SHA256:00112233";
    let o = rota(&["partner", "add", card, "--tier", "p2p", "--fingerprint", wrong]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("Partner card: DGW (George Washington University Libraries) at https://rota.library.example:7443"),
        "{out}"
    );
    assert!(out.contains(&format!("Fingerprint: {fingerprint}")), "{out}");
    let err = stderr(&o);
    assert!(err.contains(wrong.to_ascii_lowercase().trim_start_matches("sha256:")), "{err}");
    assert!(err.contains(&fingerprint), "{err}");

    // The right fingerprint, typed loosely (upper case, colons), passes the local check.
    let hex = fingerprint.trim_start_matches("SHA256:").to_ascii_uppercase();
    let typed = hex.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":");
    let o = rota(&["partner", "add", card, "--tier", "consortium", "--fingerprint", &typed, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    // With --json the card summary goes to stderr, leaving stdout for JSON.
    assert!(err.contains("Partner card: DGW") && err.contains(NO_PROFILE), "{err}");
    assert!(o.stdout.is_empty());

    // Not a card at all.
    let junk = dir.path().join("junk.card");
    std::fs::write(&junk, "hello\n").unwrap();
    let o = rota(&["partner", "add", junk.to_str().unwrap(), "--tier", "p2p"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("junk.card"), "{}", stderr(&o));
}

#[test]
fn staff_issue_refuses_an_existing_profile_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("profile.toml"), "# old\n").unwrap();
    let o = rota(&["staff", "issue", "alice", "-o", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("profile.toml already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dir.path().join("profile.toml")).unwrap(), "# old\n");

    // Without a profile, nothing is left behind in a new folder.
    let fresh = dir.path().join("fresh");
    let o = rota(&["staff", "issue", "alice", "-o", fresh.to_str().unwrap()]);
    assert_eq!(stderr(&o).trim_end(), NO_PROFILE);
    assert!(!fresh.exists());
}

#[test]
fn unreachable_node_is_named() {
    // A complete, valid profile for a node that is not listening.
    let dir = tempfile::tempdir().unwrap();
    let symbol = Symbol::parse("DGW").unwrap();
    let user = StaffUser::parse("admin").unwrap();
    let ca = CaBundle::generate(&symbol, "Test Library").unwrap();
    let staff = ca.issue_staff(&symbol, &user).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("https://127.0.0.1:{port}");
    rota_certs::files::write_public(&dir.path().join("ca.pem"), ca.cert_pem.as_bytes()).unwrap();
    rota_certs::files::write_public(&dir.path().join("cert.pem"), staff.cert_pem.as_bytes()).unwrap();
    rota_certs::files::write_secret(&dir.path().join("key.pem"), staff.key_pem.as_bytes()).unwrap();
    let profile = rota_certs::profile::Profile {
        node_url: url.clone(),
        symbol: "DGW".into(),
        user: "admin".into(),
        cert: "cert.pem".into(),
        key: "key.pem".into(),
        ca: "ca.pem".into(),
    };
    let path = dir.path().join("profile.toml");
    profile.save(&path).unwrap();

    let o = rota(&["--profile", path.to_str().unwrap(), "partner", "list"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with(&format!("error: cannot reach node {url}: ")), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn partner_close_checks_the_dates_before_needing_a_profile() {
    let o = rota(&["partner", "close", "X", "--from", "2026-12-24", "--to", "2026-12-01"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("--to") && err.contains("--from"), "{err}");
    assert!(!err.contains("no profile"), "{err}");

    for (option, args) in [
        ("--from", &["partner", "close", "X", "--from", "2026-12-32", "--to", "2027-01-02"][..]),
        ("--to", &["partner", "close", "X", "--from", "2026-12-24", "--to", "02/01/2027"]),
    ] {
        let o = rota(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(option), "{args:?}: {err}");
        assert!(!err.contains("no profile"), "{args:?}: {err}");
    }
    // Both dates are needed.
    assert_eq!(rota(&["partner", "close", "X", "--from", "2026-12-24"]).status.code(), Some(2));
    // Good dates (a single day is fine) get as far as needing a profile.
    let o = rota(&["partner", "close", "X", "--from", "2026-12-24", "--to", "2026-12-24", "--note", "moving"]);
    assert_eq!(stderr(&o).trim_end(), NO_PROFILE);
}

#[test]
fn preview_needs_a_title_or_an_identifier() {
    for args in [&["preview"][..], &["preview", "--author", "Melville, Herman"], &["preview", "--title", " "]] {
        let o = rota(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains("--title") && err.contains("--isbn"), "{args:?}: {err}");
        assert!(!err.contains("no profile"), "{args:?}: {err}");
    }
    let o = rota(&["preview", "--issn", "0028-0836"]);
    assert_eq!(stderr(&o).trim_end(), NO_PROFILE);
}

#[test]
fn request_create_force_is_documented() {
    let out = stdout(&rota(&["request", "create", "--help"]));
    assert!(out.contains("--force"), "{out}");
    assert!(out.contains("even though one of our own copies is on the shelf"), "{out}");
}
