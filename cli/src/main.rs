//! `rota`: the staff command line for a Rota node.
//!
//! Every library runs its own Rota node; staff use this tool to talk to it over gRPC with
//! mutual TLS, using a profile (node URL, staff certificate, key and CA) written by
//! `rota-node init` or by `rota staff issue`. The tool manages partner cards and partners
//! (and their closure periods), agreements, holdings and their imports (MARC21, MARCXML,
//! CSV), staff certificates, borrowing requests (and a preview of the rota one would get)
//! and lending requests and the actions staff take on them, the daily worklist
//! (`rota todo`) and statistics.
//!
//! Layout: this file holds the command-line grammar (clap) and the dispatch; [`context`]
//! loads the profile and connects; [`output`] formats tables, `key: value` lines, JSON and
//! timestamps; [`import`] streams holdings exports to the node; [`duration`] parses
//! `--expiry` values and formats turnaround times; [`commands`] has one module per command
//! group.

mod commands;
mod context;
mod duration;
mod import;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::context::Ctx;

/// The staff command line for a Rota library node.
///
/// Rota lets libraries lend to each other peer to peer: every library runs a node, and staff
/// use `rota` against their own node. Each command below talks to the node named in your
/// profile, authenticated by the staff certificate the profile points at.
#[derive(Parser, Debug)]
#[command(
    name = "rota",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "\
Getting started:
  rota --profile ~/rota/admin/profile.toml whoami
  export ROTA_PROFILE=~/rota/admin/profile.toml
  rota card export -o my-library.card        # give this file to a partner library
  rota partner add their-library.card --tier p2p
  rota agreement set THEM --lend yes --borrow yes
  rota holdings import books.csv
  rota preview --title \"Moby Dick\"           # who would be asked; sends nothing
  rota request create --title \"Moby Dick\" --patron P123
  rota todo                                  # what needs doing, every day

Run `rota COMMAND --help` for details and examples of each command."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

/// Options accepted before or after any subcommand.
#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// The profile file (profile.toml) naming your node and your staff certificate.
    /// `rota-node init` prints the path of the admin profile; `rota staff issue` writes new ones.
    #[arg(long, global = true, env = "ROTA_PROFILE", value_name = "PATH", display_order = 900)]
    pub profile: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of tables and text.
    #[arg(long, global = true, display_order = 901)]
    pub json: bool,
}

/// `rota certs …`.
#[derive(Subcommand, Debug)]
enum CertsCmd {
    /// Issue a new node certificate from your institution's CA and start using it at once.
    ///
    /// Use it before the node certificate expires, or if its key may have leaked. The node
    /// presents the new certificate to every new connection, in and out, without a restart.
    /// Partners trust your CA rather than the certificate, so they need do nothing, and your
    /// partner card (which carries the CA) does not change. Only the admin user may rotate.
    #[command(after_help = "Example:\n  rota certs rotate")]
    Rotate,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show which node and library you are talking to, and as which staff user.
    ///
    /// A quick check that your profile works: it connects to the node with your staff
    /// certificate and prints the library's symbol, name, public URL, your user name, the
    /// node's version and the fingerprint of your institution's CA.
    #[command(after_help = "Example:\n  rota --profile ./rota-profile-alice/profile.toml whoami")]
    Whoami,
    /// Your node's own certificates.
    #[command(subcommand)]
    Certs(CertsCmd),
    /// Your library's partner card: the file you give to partner libraries.
    #[command(subcommand)]
    Card(CardCmd),
    /// Partner libraries: add them from their card, list, suspend, resume, close for a
    /// period, remove.
    #[command(subcommand)]
    Partner(PartnerCmd),
    /// Staff certificates: issue a profile for a colleague.
    #[command(subcommand)]
    Staff(StaffCmd),
    /// Your library's holdings: add items, import an export (MARC21, MARCXML, CSV), search, show.
    #[command(subcommand)]
    Holdings(HoldingsCmd),
    /// What you lend to and borrow from each partner (loan period, formats, ...).
    #[command(subcommand)]
    Agreement(AgreementCmd),
    /// Borrowing requests: ask partner libraries for an item for one of your patrons.
    #[command(subcommand)]
    Request(RequestCmd),
    /// Show the rota a request for an item would get, with each lender's answer; sends nothing.
    ///
    /// The node builds the rota exactly as `rota request create` would (tiers, priorities,
    /// agreements, closures, the ordering strategy) and asks each lender whether it holds the
    /// item, but places no request. Lenders in the rota are numbered in the order they would
    /// be asked; the others are shown with "-" and the reason they are left out. If your own
    /// library has a copy on the shelf, that is shown first: `rota request create` refuses
    /// such a request unless you pass --force. Give a title or at least one identifier.
    #[command(after_help = "\
Examples:
  rota preview --title \"Moby Dick\" --isbn 9780142437247
  rota preview --oclc 1234567 --format dvd --json
Then, to place the request:
  rota request create --title \"Moby Dick\" --isbn 9780142437247 --patron P123")]
    Preview(PreviewArgs),
    /// Lending requests: what partner libraries have asked your library for.
    #[command(subcommand)]
    Lending(LendingCmd),
    /// The worklist: every borrowing and lending request that needs a person, and what to do.
    ///
    /// Lists each request waiting for staff, on both sides, with what to do next: items to
    /// receive, lend to the patron or send back, items to pull from the shelf and ship,
    /// conditional offers to accept or decline, renewals to answer. "since" is when the
    /// request got into its current state.
    #[command(after_help = "\
Examples:
  rota todo
  rota todo --json
Then act on a line, e.g.:
  rota request receive DGW-17
  rota lending ship DGU-42")]
    Todo,
    /// Fill rate, turnaround times and loan counts, per partner and for all partners.
    ///
    /// For each partner: how many requests you sent it and how many it filled (the fill
    /// rate), the median times from request to shipping, shipping to arrival, and loan to
    /// return, and how many items you lent to it and borrowed from it. "-" means no data.
    #[command(after_help = "Examples:\n  rota stats\n  rota stats --partner DGW\n  rota stats --json")]
    Stats {
        /// Only this partner (its institution symbol).
        #[arg(long, value_name = "SYMBOL")]
        partner: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum CardCmd {
    /// Print or save your library's partner card.
    ///
    /// The card holds your library's symbol, name, public endpoint and institution CA
    /// certificate. Give it to a partner library (e-mail is fine: it holds no secret), then
    /// read the fingerprint to each other by phone or in person before they add it.
    #[command(after_help = "Examples:\n  rota card export\n  rota card export -o dgw.card")]
    Export {
        /// Write the card to this file instead of printing it.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PartnerCmd {
    /// Add a partner library from the card file it gave you.
    ///
    /// The card is read and checked here first; its symbol, name, endpoint and fingerprint
    /// are printed. Compare the fingerprint with the one the partner reads to you over the
    /// phone: pass it with --fingerprint and rota refuses the card if they differ. Partners
    /// are asked in tier order (consortium, then p2p, then last_resort) and, within a tier,
    /// lowest priority number first.
    #[command(after_help = "\
Examples:
  rota partner add gwu.card --tier consortium
  rota partner add gwu.card --tier p2p --priority 50 --fingerprint SHA256:3f1c...
Then set what you lend to and borrow from it:
  rota agreement set DGW --lend yes --borrow yes")]
    Add {
        /// The partner's card file (from `rota card export` at their library).
        #[arg(value_name = "CARD_FILE")]
        card: PathBuf,
        /// Which group of partners it belongs to: consortium partners are asked first, then
        /// p2p, then last_resort.
        #[arg(long, value_parser = PossibleValuesParser::new(["consortium", "p2p", "last_resort"]))]
        tier: String,
        /// Order within the tier: lower is asked first.
        #[arg(long, default_value_t = 100, value_name = "N")]
        priority: u32,
        /// The fingerprint the partner told you (SHA256:...); the card is refused if it
        /// differs. Case, spaces and colons are ignored.
        #[arg(long, value_name = "SHA256:…")]
        fingerprint: Option<String>,
    },
    /// List your partner libraries.
    ///
    /// Shows each partner's tier, priority, status (active or suspended), whether your
    /// agreement lends to and borrows from it, and how many messages to it are still
    /// waiting for delivery.
    #[command(after_help = "Examples:\n  rota partner list\n  rota partner list --json")]
    List,
    /// Show one partner in detail, with its agreement and delivery status.
    #[command(after_help = "Example:\n  rota partner show DGW")]
    Show {
        /// The partner's institution symbol.
        symbol: String,
    },
    /// Stop sending requests to a partner and refuse new requests from it.
    ///
    /// Its connections are refused at once, and messages to it wait in the outbox until it is
    /// resumed. Undo with `rota partner resume`.
    #[command(after_help = "Example:\n  rota partner suspend DGW")]
    Suspend {
        /// The partner's institution symbol.
        symbol: String,
    },
    /// Make a suspended partner active again.
    #[command(after_help = "Example:\n  rota partner resume DGW")]
    Resume {
        /// The partner's institution symbol.
        symbol: String,
    },
    /// Close a partner for a period (holidays, a move): it is left out of new rotas meanwhile.
    ///
    /// Both dates are inclusive. Requests already with the partner are not affected; new
    /// requests skip it from --from to --to. The partner is printed with all its current and
    /// future closures; `rota partner show` lists them too.
    #[command(after_help = "\
Examples:
  rota partner close DGW --from 2026-12-24 --to 2027-01-02 --note \"winter holidays\"
  rota partner close DGW --from 2026-07-01 --to 2026-07-31 --note \"moving to the new building\"")]
    Close {
        /// The partner's institution symbol.
        symbol: String,
        /// The first day the partner is closed.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        from: chrono::NaiveDate,
        /// The last day the partner is closed (the same as --from for a single day).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        to: chrono::NaiveDate,
        /// Why, e.g. "winter holidays", shown with the closure.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// Say Hello to a partner's node and compare its terms with yours.
    ///
    /// Your node calls the partner's node over mutual TLS, as it does for requests, and
    /// shows whether it answers, how fast, which protocol version it speaks, and both
    /// agreements side by side: yours with the partner, and the partner's with you as its
    /// node reports it. Then it lists every way the two do not fit, such as you borrowing
    /// from a partner that does not lend to you. Nothing changes on either side. Run it
    /// after both libraries have added each other's cards and set their agreements. The
    /// exit status is 0 only when the partner answered and nothing needs fixing.
    #[command(after_help = "\
Examples:
  rota partner check UVA
  rota partner check UVA --json")]
    Check {
        /// The partner's institution symbol.
        symbol: String,
    },
    /// Remove a partner: its card is no longer trusted and it is no longer asked.
    #[command(after_help = "Example:\n  rota partner remove DGW")]
    Remove {
        /// The partner's institution symbol.
        symbol: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum StaffCmd {
    /// Issue a staff certificate and write a ready-to-use profile folder for a colleague.
    ///
    /// A new private key is generated here and never leaves this machine; only a certificate
    /// request goes to the node, which signs it with your institution's CA. The folder gets
    /// cert.pem, key.pem (readable only by you), ca.pem and profile.toml. Hand the whole
    /// folder to the colleague over a safe channel.
    #[command(after_help = "\
Examples:
  rota staff issue alice
  rota staff issue alice -o /home/alice/rota
Then, as alice:
  rota --profile /home/alice/rota/profile.toml whoami")]
    Issue {
        /// The staff user name to put in the certificate.
        user: String,
        /// The folder to write (created if needed; default ./rota-profile-USER). Refused if it
        /// already holds a profile.toml.
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum HoldingsCmd {
    /// Add or update one item in your holdings.
    ///
    /// The barcode identifies the item: adding a barcode that exists updates it. Partners'
    /// requests are matched against your holdings by ISBN, ISSN, OCLC number, LCCN and title.
    #[command(after_help = "\
Example:
  rota holdings add --barcode 31234000123 --title \"Moby Dick\" --author \"Melville, Herman\" \\
      --isbn 9780142437247 --call-number \"PS2384 .M6\" --location \"Main Stacks\"")]
    Add(Box<ItemArgs>),
    /// Import holdings from a MARC21, MARCXML or CSV export, or withdraw a list of barcodes.
    ///
    /// The format is recognised from the file's first bytes (or say it with --format). The
    /// file is read as a stream and sent to the node in batches; the node applies the whole
    /// import in one transaction once the file has been read, so if the import fails,
    /// nothing is written. A record that cannot be read is skipped and listed, and the rest
    /// still imports. Items are identified by barcode.
    ///
    /// Modes:
    ///   (default)      create new items and update existing ones
    ///   --replace      a full sync: items missing from the file are withdrawn, except items
    ///                  on loan or reserved, which are listed instead. If any record cannot
    ///                  be read, nothing is written (its items would look missing); rows the
    ///                  node refuses do count as missing, so try it with --dry-run first
    ///   --delete LIST  withdraw the barcodes in LIST: one per line (blank lines and lines
    ///                  starting with # are ignored), or a CSV file with a barcode column
    ///   --dry-run      show what would happen; nothing is written
    ///
    /// MARC21 and MARCXML: the title, author, publisher, year, ISBNs, ISSN, OCLC number,
    /// LCCN, format and call number come from each bibliographic record. Without --items,
    /// each record is one item whose barcode is its 001; with --items, one item per item
    /// field (see the mappings below).
    ///
    /// CSV: the file needs a header row naming its columns, in any order:
    ///   barcode      required; identifies the item (existing barcodes are updated)
    ///   title        required
    ///   author, publisher, year, issn, oclc, lccn
    ///   isbn         one or more, separated by ; or |
    ///   format       e.g. book, dvd (empty: book)
    ///   call_number, location
    ///   policy       lendable, not_lendable or library_use_only (empty: lendable)
    ///   status       available, on_loan, reserved, missing or in_process (empty: available)
    /// Other column names are refused. The separator is a comma, or ; or a tab.
    #[command(
        after_help = "\
Examples:
  rota holdings import books.csv
  rota holdings import export.mrc --items koha --dry-run
  rota holdings import --delete withdrawn-barcodes.txt
See --help for the modes, the item mappings and the CSV columns.",
        after_long_help = import_help(),
        verbatim_doc_comment
    )]
    Import(ImportArgs),
    /// Search your holdings by title, author, identifier or barcode.
    #[command(
        after_help = "Examples:\n  rota holdings search \"moby dick\"\n  rota holdings search 9780142437247 --limit 5"
    )]
    Search {
        /// Words or an identifier to look for.
        query: String,
        /// At most this many results.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: u32,
    },
    /// Count your holdings by status, policy and format.
    ///
    /// A quick health check after an import: how many items are on the shelf, on loan,
    /// reserved for partners or missing; how many carry an ISBN, OCLC number or LCCN
    /// (items without identifiers can only be matched by title and author).
    #[command(after_help = "Examples:\n  rota holdings stats\n  rota --json holdings stats")]
    Stats,
    /// Show one item by barcode.
    #[command(after_help = "Example:\n  rota holdings show 31234000123")]
    Show {
        /// The item's barcode.
        barcode: String,
    },
}

/// The fields of `rota holdings add`.
#[derive(Args, Debug)]
pub struct ItemArgs {
    /// The item's barcode (unique in your library).
    #[arg(long)]
    pub barcode: String,
    /// The item's title.
    #[arg(long)]
    pub title: String,
    /// Author, as in your catalogue ("Melville, Herman").
    #[arg(long)]
    pub author: Option<String>,
    /// Publisher.
    #[arg(long)]
    pub publisher: Option<String>,
    /// Publication year.
    #[arg(long)]
    pub year: Option<String>,
    /// ISBN (10 or 13 digits).
    #[arg(long)]
    pub isbn: Option<String>,
    /// ISSN, for serials.
    #[arg(long)]
    pub issn: Option<String>,
    /// OCLC number.
    #[arg(long)]
    pub oclc: Option<String>,
    /// Library of Congress control number.
    #[arg(long)]
    pub lccn: Option<String>,
    /// The item's format, e.g. book, dvd, journal.
    #[arg(long, default_value = "book")]
    pub format: String,
    /// Whether partners may borrow it.
    #[arg(long, default_value = "lendable",
          value_parser = PossibleValuesParser::new(["lendable", "not_lendable", "library_use_only"]))]
    pub policy: String,
    /// Where the item is now.
    #[arg(long, default_value = "available",
          value_parser = PossibleValuesParser::new(["available", "on_loan", "reserved", "missing", "in_process"]))]
    pub status: String,
    /// Call number, e.g. "PS2384 .M6".
    #[arg(long)]
    pub call_number: Option<String>,
    /// Shelving location, e.g. "Main Stacks".
    #[arg(long)]
    pub location: Option<String>,
}

/// The options of `rota holdings import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The holdings file: MARC21 (.mrc), MARCXML (.xml) or CSV.
    #[arg(value_name = "FILE", required_unless_present = "delete", conflicts_with = "delete")]
    pub file: Option<PathBuf>,
    /// The file's format, when it is not recognised from its first bytes.
    #[arg(long, value_enum, value_name = "FORMAT", ignore_case = true)]
    pub format: Option<FormatArg>,
    /// Which MARC field holds the items, and its subfields: koha, sierra, generic, alma or
    /// tag=TAG,barcode=X,... (see below). Default: each record is one item, its barcode the 001.
    #[arg(long, value_name = "MAPPING", value_parser = rota_holdings::ItemMapping::parse)]
    pub items: Option<rota_holdings::ItemMapping>,
    /// A full sync: withdraw the items that are not in the file (items on loan or reserved
    /// are kept and listed).
    #[arg(long)]
    pub replace: bool,
    /// Withdraw the barcodes listed in this file (one per line, or a CSV file with a barcode
    /// column) instead of importing a holdings file.
    #[arg(long, value_name = "BARCODES_FILE", conflicts_with_all = ["replace", "format", "items"])]
    pub delete: Option<PathBuf>,
    /// Show what the import would do, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The holdings formats `--format` names.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatArg {
    /// MARC21 binary (ISO 2709), usually .mrc.
    #[value(alias = "marc21", alias = "mrc")]
    Marc,
    /// MARCXML.
    #[value(alias = "xml")]
    Marcxml,
    /// Rota's CSV holdings format.
    Csv,
}

impl From<FormatArg> for rota_holdings::Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Marc => rota_holdings::Format::Marc21,
            FormatArg::Marcxml => rota_holdings::Format::MarcXml,
            FormatArg::Csv => rota_holdings::Format::Csv,
        }
    }
}

/// The end of `rota holdings import --help`: the item mappings and examples.
fn import_help() -> String {
    format!(
        "{}\n\n\
Example CSV file:
  barcode,title,author,isbn,call_number,location
  31234000123,Moby Dick,\"Melville, Herman\",9780142437247,PS2384 .M6,Main Stacks

Examples:
  rota holdings import books.csv
  rota holdings import export.mrc --items koha
  rota holdings import export.xml --items tag=949,barcode=i,location=l,call=a
  rota holdings import full-export.mrc --items sierra --replace --dry-run
  rota holdings import --delete withdrawn-barcodes.txt",
        rota_holdings::MAPPING_HELP
    )
}

#[derive(Subcommand, Debug)]
pub enum AgreementCmd {
    /// Set the terms you have agreed with a partner.
    ///
    /// Only the options you give are changed; the others keep their current value (or the
    /// default, for a first agreement). --lend says whether you lend to the partner,
    /// --borrow whether you ask it for items.
    #[command(after_help = "\
Examples:
  rota agreement set DGW --lend yes --borrow yes
  rota agreement set DGW --loan-days 28 --renewals 1 --max-outstanding 10
  rota agreement set DGW --formats book,dvd --expiry 4d
  rota agreement set DGW --formats all")]
    Set(AgreementSetArgs),
    /// Show the terms agreed with a partner.
    #[command(after_help = "Example:\n  rota agreement show DGW")]
    Show {
        /// The partner's institution symbol.
        symbol: String,
    },
}

/// The options of `rota agreement set`.
#[derive(Args, Debug)]
pub struct AgreementSetArgs {
    /// The partner's institution symbol.
    pub symbol: String,
    /// Lend items to this partner.
    #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
    pub lend: Option<bool>,
    /// Ask this partner for items.
    #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
    pub borrow: Option<bool>,
    /// Loan period, in days, for items you lend to this partner.
    #[arg(long, value_name = "N")]
    pub loan_days: Option<u32>,
    /// How many renewals the partner may ask for.
    #[arg(long, value_name = "N")]
    pub renewals: Option<u32>,
    /// The most items the partner may have from you at once.
    #[arg(long, value_name = "N")]
    pub max_outstanding: Option<u32>,
    /// Comma-separated formats you lend to this partner (e.g. book,dvd), or `all`.
    #[arg(long, value_name = "LIST")]
    pub formats: Option<String>,
    /// How long a partner has to answer a request before the next partner is asked: a
    /// number with unit s, m, h or d (30s, 15m, 96h, 4d).
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_duration)]
    pub expiry: Option<u64>,
    /// Stray words, e.g. the `weeks` of `--expiry 5 weeks`: collected so that the option's
    /// own value is checked (and named in the error) first, then refused as a usage error.
    #[arg(hide = true)]
    pub stray: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum RequestCmd {
    /// Ask partner libraries for an item on behalf of a patron.
    ///
    /// The node builds the rota (the ordered list of partners to ask) from your partners'
    /// tiers, priorities and agreements, asks the first, and moves on by itself when one
    /// cannot supply. Give as many identifiers as you know: they make matching reliable.
    #[command(after_help = "\
Example:
  rota request create --title \"Moby Dick\" --author \"Melville, Herman\" \\
      --isbn 9780142437247 --patron P123 --need-before 2025-06-30
Then follow it with:
  rota request show ID")]
    Create(CreateRequestArgs),
    /// List borrowing requests, newest first.
    #[command(after_help = "Examples:\n  rota request list\n  rota request list --status shipped --limit 100")]
    List {
        /// Only requests in this state.
        #[arg(long, value_name = "STATE")]
        status: Option<String>,
        /// At most this many requests (the node gives at most 10,000).
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: u32,
    },
    /// Show a borrowing request: its details, its rota, and its timeline.
    #[command(after_help = "Example:\n  rota request show DGW-17")]
    Show {
        /// The request id (printed by `rota request create` and `rota request list`).
        id: String,
    },
    /// The item has arrived from the lender.
    ///
    /// Scan the item's barcode with --barcode and the node checks it is the item the lender
    /// said it shipped, refusing a mix-up. Then lend it to the patron with `rota request loan`.
    #[command(after_help = "\
Examples:
  rota request receive DGW-17
  rota request receive DGW-17 --barcode 31234000123")]
    Receive {
        /// The request id.
        id: String,
        /// The lender's barcode on the item that arrived, checked against the one it shipped.
        #[arg(long, value_name = "BARCODE")]
        barcode: Option<String>,
    },
    /// The item goes out to the patron.
    #[command(after_help = "Example:\n  rota request loan DGW-17")]
    Loan {
        /// The request id.
        id: String,
    },
    /// The patron has returned the item.
    ///
    /// Then send it back to the lender and record that with `rota request ship-return`.
    #[command(after_help = "Example:\n  rota request return DGW-17")]
    Return {
        /// The request id.
        id: String,
    },
    /// The item is on its way back to the lender.
    ///
    /// The lender checks it in when it arrives, which completes the request.
    #[command(after_help = "Example:\n  rota request ship-return DGW-17")]
    ShipReturn {
        /// The request id.
        id: String,
    },
    /// Cancel a request: the lender being asked is told, and no other lender is asked.
    #[command(after_help = "\
Examples:
  rota request cancel DGW-17
  rota request cancel DGW-17 --reason \"patron bought a copy\"")]
    Cancel {
        /// The request id.
        id: String,
        /// Why, for the lender and the timeline.
        #[arg(long, value_name = "TEXT", default_value = "cancelled by staff")]
        reason: String,
    },
    /// Ask the lender to renew the loan.
    ///
    /// The lender answers yes (with a new due date) or no; see it with `rota request show`.
    #[command(after_help = "Example:\n  rota request renew DGW-17")]
    Renew {
        /// The request id.
        id: String,
    },
    /// Accept a lender's conditional offer (e.g. library use only); it then ships the item.
    ///
    /// `rota request show` shows the condition; `rota todo` lists offers waiting for an answer.
    #[command(after_help = "Example:\n  rota request accept DGW-17")]
    Accept {
        /// The request id.
        id: String,
    },
    /// Decline a lender's conditional offer; the rota rolls on to the next lender.
    #[command(after_help = "Example:\n  rota request decline DGW-17")]
    Decline {
        /// The request id.
        id: String,
    },
    /// The item is lost: the lender is told and the request closes.
    #[command(after_help = "Example:\n  rota request lost DGW-17")]
    Lost {
        /// The request id.
        id: String,
    },
}

/// The options of `rota request create`.
#[derive(Args, Debug)]
pub struct CreateRequestArgs {
    /// Title of the wanted item.
    #[arg(long)]
    pub title: String,
    #[arg(long)]
    pub author: Option<String>,
    /// ISBN (10 or 13 digits).
    #[arg(long)]
    pub isbn: Option<String>,
    /// ISSN, for serials.
    #[arg(long)]
    pub issn: Option<String>,
    /// OCLC number.
    #[arg(long)]
    pub oclc: Option<String>,
    /// Library of Congress control number.
    #[arg(long)]
    pub lccn: Option<String>,
    /// The wanted format, e.g. book, dvd.
    #[arg(long, default_value = "book")]
    pub format: String,
    /// Your patron's id (stays in your library: partners do not see it).
    #[arg(long, value_name = "ID")]
    pub patron: String,
    /// A note for the lender.
    #[arg(long)]
    pub note: Option<String>,
    /// The date after which the patron no longer needs the item.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub need_before: Option<chrono::NaiveDate>,
    /// Place the request even though one of our own copies is on the shelf (the node refuses
    /// otherwise, naming the barcode).
    #[arg(long)]
    pub force: bool,
}

/// The options of `rota preview`: a citation, as for `rota request create`.
#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("citation").args(["title", "isbn", "oclc", "lccn", "issn"]).required(true).multiple(true)
))]
pub struct PreviewArgs {
    /// Title of the wanted item.
    #[arg(long)]
    pub title: Option<String>,
    /// Author, as in the catalogue ("Melville, Herman").
    #[arg(long)]
    pub author: Option<String>,
    /// ISBN (10 or 13 digits).
    #[arg(long)]
    pub isbn: Option<String>,
    /// OCLC number.
    #[arg(long)]
    pub oclc: Option<String>,
    /// Library of Congress control number.
    #[arg(long)]
    pub lccn: Option<String>,
    /// ISSN, for serials.
    #[arg(long)]
    pub issn: Option<String>,
    /// The wanted format, e.g. book, dvd (as for `rota request create`).
    #[arg(long, default_value = "book")]
    pub format: String,
}

#[derive(Subcommand, Debug)]
pub enum LendingCmd {
    /// List requests partner libraries have sent you, newest first.
    #[command(after_help = "Examples:\n  rota lending list\n  rota lending list --status will_supply --limit 200")]
    List {
        /// Only requests in this state.
        #[arg(long, value_name = "STATE")]
        status: Option<String>,
        /// At most this many requests (the node gives at most 10,000).
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: u32,
    },
    /// Show a lending request: the borrower, the item matched, and the timeline.
    #[command(after_help = "Example:\n  rota lending show DGU-42")]
    Show {
        /// The request id (the borrower's id, as shown by `rota lending list`).
        id: String,
    },
    /// The items to pull from the shelf for partners, in shelf order.
    ///
    /// Every item you have agreed to supply and not yet shipped, sorted by location and
    /// call number for one walk through the stacks. Ship each with `rota lending ship`.
    #[command(after_help = "Examples:\n  rota lending pick-list\n  rota lending pick-list --json")]
    PickList,
    /// The item has been sent to the borrower.
    ///
    /// The due date is the one you give with --due or, by default, the node sets it from the
    /// loan period of your agreement with the borrower.
    #[command(after_help = "\
Examples:
  rota lending ship DGU-42
  rota lending ship DGU-42 --due 2025-07-31 --note \"please do not bend\"")]
    Ship {
        /// The request id.
        id: String,
        /// When the borrower must return it (default: the agreement's loan period).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        due: Option<chrono::NaiveDate>,
        /// A note for the borrower.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// The item is back from the borrower: check it in, which completes the request.
    #[command(after_help = "Example:\n  rota lending check-in DGU-42")]
    CheckIn {
        /// The request id.
        id: String,
    },
    /// Say you cannot supply the item; the borrower moves on to its next lender.
    #[command(after_help = "\
Examples:
  rota lending reject DGU-42 --reason NotOnShelf
  rota lending reject DGU-42 --reason PoorCondition --note \"spine broken\"")]
    Reject {
        /// The request id.
        id: String,
        /// Why, as an ISO 18626 reason code.
        #[arg(long, value_name = "CODE", value_enum, ignore_case = true)]
        reason: RejectReason,
        /// More detail for the borrower.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// Offer the item on a condition the borrower must accept before you ship it.
    ///
    /// The borrowing library accepts or declines; if it declines, or does not answer in
    /// time, it moves on to its next lender.
    #[command(after_help = "\
Examples:
  rota lending condition DGU-42 --code LibraryUseOnly --note \"reading room only\"
  rota lending condition DGU-42 --code NoReproduction --note \"no photocopies\"")]
    Condition {
        /// The request id.
        id: String,
        /// A short condition code, e.g. LibraryUseOnly or NoReproduction.
        #[arg(long, value_name = "CODE")]
        code: String,
        /// The condition in words, for the borrowing library's staff.
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
    /// Answer a borrower's renewal request: yes (with a new due date) or no.
    ///
    /// With yes, the new due date is the one you give with --due or, by default, the node
    /// sets it from the loan period of your agreement. `rota todo` lists renewals to answer.
    #[command(after_help = "\
Examples:
  rota lending renew-answer DGU-42 yes
  rota lending renew-answer DGU-42 yes --due 2025-08-31
  rota lending renew-answer DGU-42 no")]
    RenewAnswer {
        /// The request id.
        id: String,
        /// Whether you grant the renewal.
        #[arg(value_name = "yes|no", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
        answer: bool,
        /// With yes: the new due date (default: the agreement's loan period).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        due: Option<chrono::NaiveDate>,
    },
    /// Ask the borrower to send the item back before its due date.
    #[command(after_help = "\
Examples:
  rota lending recall DGU-42
  rota lending recall DGU-42 --note \"needed for a course reserve\"")]
    Recall {
        /// The request id.
        id: String,
        /// Why, for the borrower.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
}

/// Why a lender cannot supply: the ISO 18626 ReasonUnfilled codes, spelled as the standard does.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// Your library does not own it.
    #[value(name = "NotHeld")]
    NotHeld,
    /// You own it, but it is not on the shelf (on loan, missing, at the bindery).
    #[value(name = "NotOnShelf")]
    NotOnShelf,
    /// It does not leave the library (reference, special collections).
    #[value(name = "NonCirculating")]
    NonCirculating,
    /// It may circulate locally but is not lent to other libraries.
    #[value(name = "NotAvailableForILL")]
    NotAvailableForIll,
    /// The request breaks your lending policy or your agreement with the borrower.
    #[value(name = "PolicyProblem")]
    PolicyProblem,
    /// It is too fragile or damaged to send.
    #[value(name = "PoorCondition")]
    PoorCondition,
}

impl RejectReason {
    /// The code as sent to the node.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::NotHeld => "NotHeld",
            RejectReason::NotOnShelf => "NotOnShelf",
            RejectReason::NonCirculating => "NonCirculating",
            RejectReason::NotAvailableForIll => "NotAvailableForILL",
            RejectReason::PolicyProblem => "PolicyProblem",
            RejectReason::PoorCondition => "PoorCondition",
        }
    }
}

/// `yes` or `no` (also accepts `y`, `n`, `true`, `false`).
fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" => Ok(true),
        "no" | "n" | "false" => Ok(false),
        _ => Err("expected yes or no".into()),
    }
}

/// A calendar date written `YYYY-MM-DD`.
fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| "expected a date written YYYY-MM-DD, e.g. 2025-06-30".into())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx::new(cli.global);
    match cli.command {
        Command::Whoami => commands::node::whoami(&ctx).await,
        Command::Certs(CertsCmd::Rotate) => commands::node::rotate(&ctx).await,
        Command::Card(cmd) => commands::card::run(&ctx, cmd).await,
        Command::Partner(cmd) => commands::partner::run(&ctx, cmd).await,
        Command::Staff(cmd) => commands::staff::run(&ctx, cmd).await,
        Command::Holdings(cmd) => commands::holdings::run(&ctx, cmd).await,
        Command::Agreement(cmd) => commands::agreement::run(&ctx, cmd).await,
        Command::Request(cmd) => commands::request::run(&ctx, cmd).await,
        Command::Preview(args) => commands::request::preview(&ctx, args).await,
        Command::Lending(cmd) => commands::lending::run(&ctx, cmd).await,
        Command::Todo => commands::worklist::todo(&ctx).await,
        Command::Stats { partner } => commands::worklist::stats(&ctx, partner).await,
    }
}

/// Exit as clap does for a usage error (status 2).
pub fn usage_error(message: impl std::fmt::Display) -> ! {
    use clap::CommandFactory;
    Cli::command().error(clap::error::ErrorKind::UnknownArgument, message).exit()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    rota_certs::install_crypto_provider();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn yes_no() {
        assert_eq!(parse_yes_no("yes"), Ok(true));
        assert_eq!(parse_yes_no("No"), Ok(false));
        assert!(parse_yes_no("maybe").is_err());
    }

    #[test]
    fn dates() {
        assert!(parse_date("2025-06-30").is_ok());
        assert!(parse_date("30/06/2025").is_err());
        assert!(parse_date("2025-02-30").is_err());
    }

    #[test]
    fn global_options_after_the_subcommand() {
        let cli = Cli::try_parse_from(["rota", "partner", "list", "--json", "--profile", "p.toml"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.profile, Some(PathBuf::from("p.toml")));
    }

    #[test]
    fn preview_needs_a_title_or_an_identifier() {
        assert!(Cli::try_parse_from(["rota", "preview", "--title", "Moby Dick"]).is_ok());
        assert!(Cli::try_parse_from(["rota", "preview", "--oclc", "12", "--issn", "1234-5678"]).is_ok());
        let err = Cli::try_parse_from(["rota", "preview", "--author", "Melville"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn force_defaults_to_off() {
        let cli = Cli::try_parse_from(["rota", "request", "create", "--title", "T", "--patron", "P"]).unwrap();
        let Command::Request(RequestCmd::Create(a)) = cli.command else { panic!("not create") };
        assert!(!a.force);
        let cli =
            Cli::try_parse_from(["rota", "request", "create", "--title", "T", "--patron", "P", "--force"]).unwrap();
        let Command::Request(RequestCmd::Create(a)) = cli.command else { panic!("not create") };
        assert!(a.force);
    }

    #[test]
    fn tier_names() {
        let ok = Cli::try_parse_from(["rota", "partner", "add", "c.card", "--tier", "last_resort"]);
        assert!(ok.is_ok());
        let bad = Cli::try_parse_from(["rota", "partner", "add", "c.card", "--tier", "gold"]);
        assert!(bad.is_err());
    }
}
