//! `portier check`: manifests judged offline, exactly as admission would.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::ValueEnum;

use super::EXIT_VIOLATION;
use portier::images::Verifier;
use portier::metrics::Metrics;
use portier::offline;
use portier::policy::PolicySet;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Directory of policy files.
    #[arg(long)]
    pub policies: PathBuf,
    /// Manifest file (multi-document YAML, JSON, a List), a directory of them, or - for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Apply /mutate's patches first and print the patched objects (YAML) on stdout; the
    /// report (on stderr) and the exit code then judge the patched objects.
    #[arg(long)]
    pub mutate: bool,
    /// Verify image signatures for signed-images policies against the registries, as
    /// admission does (off by default: without it those policies report nothing).
    #[arg(long)]
    pub verify_images: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

pub fn run(args: CheckArgs) -> Result<ExitCode> {
    let CheckArgs {
        policies,
        files,
        output,
        mutate,
        verify_images,
    } = args;
    let (policies, files) = (policies.as_path(), files.as_slice());
    let set = PolicySet::from_dir(policies)?;
    let mode = if mutate {
        offline::Mutate::Yes
    } else {
        offline::Mutate::No
    };
    let signed_images = set.signed_images_policies();
    let online = if verify_images && !signed_images.is_empty() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Some((runtime, Verifier::new(Arc::new(Metrics::new()))))
    } else {
        None
    };
    let images = match &online {
        Some((runtime, verifier)) => offline::Images::Verify { verifier, runtime },
        None => offline::Images::Offline,
    };
    if !verify_images && !signed_images.is_empty() {
        eprintln!(
            "portier: note: image signatures were not verified, so {} judged image references and digests only; pass --verify-images to verify them against the registries",
            signed_images.join(", ")
        );
    }
    let report = offline::check_paths(files, &set, &mut std::io::stdin().lock(), mode, images)?;
    let rendered = match output {
        Output::Table => offline::render_table(&report),
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&report.rows)?),
    };
    if mutate {
        for object in &report.mutated {
            print!("---\n{}", serde_saphyr::to_string(object)?);
        }
        eprint!("{rendered}");
        eprintln!("{} object(s) patched by /mutate", report.patched);
    } else {
        print!("{rendered}");
    }
    Ok(if report.denies() {
        ExitCode::from(EXIT_VIOLATION)
    } else {
        ExitCode::SUCCESS
    })
}
