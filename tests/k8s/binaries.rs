//! Where the API server's binaries come from: `KUBEBUILDER_ASSETS`, then
//! `../shared/k8s/kube-apiserver.gz` beside the repository, then `$PATH` (see the module above).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::HOW_TO_GET_ONE;

pub(super) struct Binaries {
    pub(super) apiserver: PathBuf,
    pub(super) etcd: PathBuf,
    pub(super) origin: String,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

pub(super) fn find_binaries(scratch: &Path) -> Result<Binaries, String> {
    if let Some(assets) = std::env::var_os("KUBEBUILDER_ASSETS").filter(|v| !v.is_empty()) {
        let assets = PathBuf::from(assets);
        let apiserver = assets.join("kube-apiserver");
        let etcd = assets.join("etcd");
        for bin in [&apiserver, &etcd] {
            if !bin.is_file() {
                return Err(format!(
                    "KUBEBUILDER_ASSETS={} has no {}: {HOW_TO_GET_ONE}",
                    assets.display(),
                    bin.file_name().unwrap_or_default().to_string_lossy()
                ));
            }
        }
        return Ok(Binaries {
            apiserver,
            etcd,
            origin: format!("KUBEBUILDER_ASSETS={}", assets.display()),
        });
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/k8s/kube-apiserver.gz");
    if shared.is_file() {
        let Some(etcd) = on_path("etcd") else {
            return Err(format!(
                "found {} but no etcd on $PATH (Debian: apt-get install etcd-server): {HOW_TO_GET_ONE}",
                shared.display()
            ));
        };
        let apiserver = scratch.join("kube-apiserver");
        gunzip(&shared, &apiserver)?;
        return Ok(Binaries {
            apiserver,
            etcd,
            origin: shared.display().to_string(),
        });
    }
    match (on_path("kube-apiserver"), on_path("etcd")) {
        (Some(apiserver), Some(etcd)) => Ok(Binaries {
            apiserver,
            etcd,
            origin: "$PATH".to_owned(),
        }),
        _ => Err(HOW_TO_GET_ONE.to_owned()),
    }
}

/// Unpacks with the system's gzip (an essential package on Debian), not a new dependency.
fn gunzip(from: &Path, to: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let out = std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let status = Command::new("gzip")
        .arg("-dc")
        .arg(from)
        .stdout(out)
        .status()
        .map_err(|e| format!("cannot run gzip to unpack {}: {e}", from.display()))?;
    if !status.success() {
        return Err(format!("gzip -dc {} failed: {status}", from.display()));
    }
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", to.display()))
}
