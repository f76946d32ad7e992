//! `rota-bench`: Rota's holdings benchmarks, run against real binaries and the real
//! Library of Congress records (see docs/PERFORMANCE.md).
//!
//! Every figure is the median of several runs, next to a baseline measured in the same run,
//! because these machines are noisy:
//!
//! - `import`: `rota holdings import` of a MARC file into an empty node (a real
//!   `rota-node run` process and the real CLI), a re-import of the unchanged file, and a
//!   `--replace` with 1% of the records removed; the node's peak RSS. Baseline: the
//!   `sqlite3` shell's own CSV bulk load of the same rows (indexes built after the load)
//!   plus the time the parser alone takes to read the file.
//! - `locate`: the availability check through the node's own code (`Node::locate`) over a
//!   catalogue of the file replicated with new barcodes, by ISBN and by title+author.
//!   Baseline: one indexed point lookup by barcode in the same database.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rota_holdings::{Format, HoldingRow, ItemMapping};

#[derive(Parser)]
#[command(about = "Benchmarks for Rota's holdings import and availability check.")]
struct Cli {
    /// Where `rota-node` and `rota` are (build them with `cargo build --release --bins`).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Import a MARC file into an empty node, re-import it, and replace it with 1% removed.
    Import {
        /// A MARC21 file, e.g. target/data/loc-books-250k.mrc from ../shared/data/fetch-loc-books.sh.
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Measure the availability check over the file replicated `copies` times.
    Locate {
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value_t = 4)]
        copies: usize,
        /// Lookups of each kind.
        #[arg(long, default_value_t = 20_000)]
        samples: usize,
    },
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A node running as its own process.
struct NodeProc {
    child: Child,
    profile: PathBuf,
    data_dir: PathBuf,
}

impl NodeProc {
    fn start(bins: &Path, root: &Path, symbol: &str) -> anyhow::Result<NodeProc> {
        let port = free_port()?;
        let data_dir = root.join(symbol.to_lowercase());
        let out = Command::new(bins.join("rota-node"))
            .args(["init", "--data-dir"])
            .arg(&data_dir)
            .args(["--symbol", symbol, "--name", &format!("{symbol} benchmark library")])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--public-url", &format!("https://127.0.0.1:{port}")])
            .output()?;
        if !out.status.success() {
            bail!("rota-node init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let child = Command::new(bins.join("rota-node"))
            .args(["run", "--data-dir"])
            .arg(&data_dir)
            .env("ROTA_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?;
        let p = NodeProc { child, profile: data_dir.join("profiles/admin/profile.toml"), data_dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !p.rota(bins).arg("whoami").output()?.status.success() {
            if Instant::now() > deadline {
                bail!("node did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(p)
    }

    fn rota(&self, bins: &Path) -> Command {
        let mut c = Command::new(bins.join("rota"));
        c.arg("--profile").arg(&self.profile);
        c
    }

    /// Peak resident set size so far, from /proc (kB).
    fn peak_rss_kb(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
        Ok(line.split_whitespace().nth(1).context("VmHWM")?.parse()?)
    }

    fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.child.wait()?;
        Ok(())
    }
}

/// Run a command, returning its wall time; fail with its output if it fails.
fn timed(cmd: &mut Command) -> anyhow::Result<f64> {
    let t = Instant::now();
    let out = cmd.output()?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("{cmd:?} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(secs)
}

fn read_all(file: &Path) -> anyhow::Result<(Vec<HoldingRow>, usize)> {
    let f = BufReader::with_capacity(1 << 20, std::fs::File::open(file)?);
    let mut rows = vec![];
    let mut errors = 0;
    for r in rota_holdings::read_rows(f, Format::Marc21, &ItemMapping::Generic) {
        match r {
            Ok(row) => rows.push(row),
            Err(_) => errors += 1,
        }
    }
    Ok((rows, errors))
}

/// The sqlite3 shell's own bulk load of the same rows, as CSV, indexes after the load.
fn sqlite3_load(csv: &Path, dir: &Path) -> anyhow::Result<f64> {
    let db = dir.join("baseline.db");
    let _ = std::fs::remove_file(&db);
    let script = format!(
        "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=FULL;\n\
         CREATE TABLE items (barcode TEXT PRIMARY KEY, title TEXT, author TEXT, publisher TEXT, year TEXT, isbn TEXT, \
         oclc TEXT, lccn TEXT, format TEXT, call_number TEXT, title_key TEXT);\n\
         .mode csv\n.import --skip 1 '{}' items\n\
         CREATE INDEX i1 ON items(isbn); CREATE INDEX i2 ON items(oclc); CREATE INDEX i3 ON items(lccn); \
         CREATE INDEX i4 ON items(title_key);\n",
        csv.display()
    );
    let t = Instant::now();
    let mut child = Command::new("sqlite3")
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("the baseline needs the sqlite3 shell: apt-get install sqlite3")?;
    child.stdin.take().context("stdin")?.write_all(script.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("sqlite3 failed");
    }
    Ok(t.elapsed().as_secs_f64())
}

fn write_csv(rows: &[HoldingRow], path: &Path, copies: usize) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record([
        "barcode",
        "title",
        "author",
        "publisher",
        "year",
        "isbn",
        "oclc",
        "lccn",
        "format",
        "call_number",
        "title_key",
    ])?;
    for k in 0..copies {
        for r in rows {
            let barcode = if k == 0 { r.barcode.clone() } else { format!("{}-{k}", r.barcode) };
            let key = rota_holdings::ids::title_key(&r.title, &r.author);
            let isbn = r.isbns.first().cloned().unwrap_or_default();
            w.write_record([
                &barcode,
                &r.title,
                &r.author,
                &r.publisher,
                &r.year,
                &isbn,
                &r.oclc,
                &r.lccn,
                &r.format,
                &r.call_number,
                &key,
            ])?;
        }
    }
    w.flush()?;
    Ok(())
}

/// The file without every 100th record (1% removed), for `--replace`.
fn without_one_percent(file: &Path, out: &Path) -> anyhow::Result<usize> {
    let data = std::fs::read(file)?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut removed = 0;
    for (i, rec) in data.split_inclusive(|b| *b == 0x1D).enumerate() {
        if i % 100 == 99 {
            removed += 1;
            continue;
        }
        w.write_all(rec)?;
    }
    w.flush()?;
    Ok(removed)
}

fn bench_import(bins: &Path, file: &Path, runs: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let size = std::fs::metadata(file)?.len();
    println!("file: {} ({:.1} MB)", file.display(), size as f64 / 1e6);
    let (rows, errors) = read_all(file)?;
    println!("records: {} rows, {} skipped by the parser", rows.len(), errors);
    let csv = dir.path().join("rows.csv");
    write_csv(&rows, &csv, 1)?;
    drop(rows);
    let smaller = dir.path().join("minus-1pct.mrc");
    let removed = without_one_percent(file, &smaller)?;

    let (mut parse, mut sqlite, mut import, mut reimport, mut replace, mut rss) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for run in 1..=runs {
        let t = Instant::now();
        let (n, _) = read_all(file)?;
        parse.push(t.elapsed().as_secs_f64());
        drop(n);
        sqlite.push(sqlite3_load(&csv, dir.path())?);

        let root = dir.path().join(format!("run{run}"));
        let node = NodeProc::start(bins, &root, "BENCH")?;
        import.push(timed(node.rota(bins).args(["holdings", "import"]).arg(file))?);
        rss.push(node.peak_rss_kb()? as f64 / 1024.0);
        reimport.push(timed(node.rota(bins).args(["holdings", "import"]).arg(file))?);
        replace.push(timed(node.rota(bins).args(["holdings", "import", "--replace"]).arg(&smaller))?);
        node.stop()?;
        println!(
            "run {run}: parse {:.2} s, sqlite3 load {:.2} s, import {:.2} s, re-import {:.2} s, replace {:.2} s, peak RSS {:.0} MB",
            parse[run - 1],
            sqlite[run - 1],
            import[run - 1],
            reimport[run - 1],
            replace[run - 1],
            rss[run - 1]
        );
    }
    let (p, s, i, r, x, m) = (
        median(&mut parse),
        median(&mut sqlite),
        median(&mut import),
        median(&mut reimport),
        median(&mut replace),
        median(&mut rss),
    );
    println!("\nmedians over {runs} runs:");
    println!("  parser alone            {p:.2} s");
    println!("  sqlite3 CSV bulk load   {s:.2} s");
    println!("  baseline (sum)          {:.2} s", p + s);
    println!("  rota holdings import    {i:.2} s   ratio to baseline {:.2}", i / (p + s));
    println!("  re-import, unchanged    {r:.2} s   ratio {:.2}", r / (p + s));
    println!("  --replace, {removed} removed  {x:.2} s   ratio {:.2}", x / (p + s));
    println!("  node peak RSS           {m:.0} MB");
    Ok(())
}

fn bench_locate(bins: &Path, file: &Path, copies: usize, samples: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (rows, _) = read_all(file)?;
    let csv = dir.path().join("items.csv");
    // The CSV holdings format of `rota holdings import`.
    {
        let mut w = csv::Writer::from_path(&csv)?;
        w.write_record([
            "barcode",
            "title",
            "author",
            "publisher",
            "year",
            "isbn",
            "oclc",
            "lccn",
            "format",
            "call_number",
        ])?;
        for k in 0..copies {
            for r in &rows {
                let barcode = if k == 0 { r.barcode.clone() } else { format!("{}-{k}", r.barcode) };
                let isbn = r.isbns.first().cloned().unwrap_or_default();
                w.write_record([
                    &barcode,
                    &r.title,
                    &r.author,
                    &r.publisher,
                    &r.year,
                    &isbn,
                    &r.oclc,
                    &r.lccn,
                    &r.format,
                    &r.call_number,
                ])?;
            }
        }
        w.flush()?;
    }
    let lender = NodeProc::start(bins, dir.path(), "LEND")?;
    let borrower_dir = dir.path().join("borr");
    let port = free_port()?;
    let out = Command::new(bins.join("rota-node"))
        .args(["init", "--data-dir"])
        .arg(&borrower_dir)
        .args([
            "--symbol",
            "BORR",
            "--name",
            "Borrower",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            &format!("https://127.0.0.1:{port}"),
        ])
        .output()?;
    if !out.status.success() {
        bail!("init failed");
    }
    let card = rota_certs::Card::new(
        rota_certs::Symbol::parse("BORR")?,
        "Borrower".into(),
        format!("https://127.0.0.1:{port}"),
        std::fs::read_to_string(borrower_dir.join("tls/ca.pem"))?,
    )?;
    let card_path = dir.path().join("borr.card");
    std::fs::write(&card_path, card.to_text())?;
    timed(lender.rota(bins).args(["partner", "add"]).arg(&card_path).args(["--tier", "p2p"]))?;
    timed(lender.rota(bins).args([
        "agreement",
        "set",
        "BORR",
        "--lend",
        "yes",
        "--borrow",
        "yes",
        "--max-outstanding",
        "100000",
    ]))?;
    let t = timed(lender.rota(bins).args(["holdings", "import"]).arg(&csv))?;
    println!("catalogue: {} items imported in {t:.1} s", rows.len() * copies);
    let data_dir = lender.data_dir.clone();
    lender.stop()?;

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let config = rota_node::config::Config::load(&data_dir)?;
        let (node, _wake) = rota_node::Node::open(config, Arc::new(rota_node::clock::SystemClock)).await?;
        let borr = rota_certs::Symbol::parse("BORR")?;
        let with_isbn: Vec<&HoldingRow> = rows.iter().filter(|r| !r.isbns.is_empty()).collect();
        let step = |n: usize| (n / samples.max(1)).max(1);
        let mut by_isbn = vec![];
        for r in with_isbn.iter().step_by(step(with_isbn.len())).cycle().take(samples) {
            let c = rota_node::domain::Citation::parse(rota_node::domain::RawCitation {
                title: &r.title,
                isbn: &r.isbns[0],
                ..Default::default()
            });
            let Ok(c) = c else { continue };
            let t = Instant::now();
            node.locate(&borr, &c).await?;
            by_isbn.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let mut by_title = vec![];
        for r in rows.iter().step_by(step(rows.len())).cycle().take(samples) {
            let Ok(c) = rota_node::domain::Citation::parse(rota_node::domain::RawCitation {
                title: &r.title,
                author: &r.author,
                ..Default::default()
            }) else {
                continue;
            };
            let t = Instant::now();
            node.locate(&borr, &c).await?;
            by_title.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let mut baseline = vec![];
        for r in rows.iter().step_by(step(rows.len())).cycle().take(samples) {
            let t = Instant::now();
            node.store.item(&r.barcode).await?;
            baseline.push(t.elapsed().as_secs_f64() * 1e3);
        }
        for (name, v) in [
            ("by ISBN", &mut by_isbn),
            ("by title+author", &mut by_title),
            ("baseline: item by barcode", &mut baseline),
        ] {
            v.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{name:<27} n={:<6} p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
                v.len(),
                percentile(v, 0.5),
                percentile(v, 0.99),
                v.last().copied().unwrap_or_default()
            );
        }
        anyhow::Ok(())
    })?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    rota_certs::install_crypto_provider();
    let cli = Cli::parse();
    for b in ["rota-node", "rota"] {
        if !cli.bin_dir.join(b).exists() {
            bail!(
                "{} not found: build with `cargo build --release --bins` or pass --bin-dir",
                cli.bin_dir.join(b).display()
            );
        }
    }
    match cli.cmd {
        Cmd::Import { file, runs } => bench_import(&cli.bin_dir, &file, runs),
        Cmd::Locate { file, copies, samples } => bench_locate(&cli.bin_dir, &file, copies, samples),
    }
}
