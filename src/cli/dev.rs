//! The developer tools: `portier bench` and `portier dev-cert`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use portier::policy::PolicySet;
use portier::tls;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Directory of policy files.
    #[arg(long)]
    pub policies: PathBuf,
    /// Timed calls per object and measurement (after a warm-up of a tenth as many).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: u64,
    /// AdmissionReview JSON files, or workload manifests (YAML or JSON) to wrap in reviews.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DevCertArgs {
    /// Directory to write into (created if missing).
    #[arg(long, default_value = "target/dev-certs")]
    pub out_dir: PathBuf,
    /// DNS names or IP addresses the certificate is valid for.
    #[arg(long = "host", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])]
    pub hosts: Vec<String>,
}

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    use std::io::Write;
    let BenchArgs {
        policies,
        iterations,
        files,
    } = args;
    let set = PolicySet::from_dir(&policies)?;
    let mut inputs = Vec::new();
    for file in &files {
        inputs.extend(portier::bench::read_inputs(file)?);
    }
    let mut results = Vec::new();
    let mut stdout = std::io::stdout().lock();
    for input in &inputs {
        let m = portier::bench::measure(input, &set, iterations);
        writeln!(stdout, "{}", m.tsv())?;
        stdout.flush()?;
        results.push(m);
    }
    eprint!(
        "{}",
        portier::bench::summary(&results, set.len(), iterations)
    );
    Ok(ExitCode::SUCCESS)
}

pub fn dev_cert(args: DevCertArgs) -> Result<ExitCode> {
    let DevCertArgs { out_dir, hosts } = args;
    let out_dir = out_dir.as_path();
    let cert = tls::generate_dev_cert(&hosts)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    write_file(&out_dir.join("ca.crt"), &cert.ca_pem, 0o644)?;
    write_file(&out_dir.join("tls.crt"), &cert.cert_pem, 0o644)?;
    write_file(&out_dir.join("tls.key"), &cert.key_pem, 0o600)?;
    println!(
        "wrote {dir}/ca.crt, {dir}/tls.crt and {dir}/tls.key (valid for {hosts})",
        dir = out_dir.display(),
        hosts = hosts.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
