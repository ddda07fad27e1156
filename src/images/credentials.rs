//! Registry credentials from a docker `config.json` (a mounted `kubernetes.io/dockerconfigjson`
//! Secret): the `auths` entries, by registry host.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

/// One registry's basic-auth credentials.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Credential {
    /// The registry host as canonical references name it (`docker.io` for Docker Hub).
    pub host: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credential {
    /// Never the password: settings are logged in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("host", &self.host)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} is not a docker config.json: {reason}")]
    NotDockerConfig { path: String, reason: String },
    #[error("{path}: auths[{server:?}].auth is not base64 of user:password")]
    BadAuth { path: String, server: String },
}

/// The `auths` of a docker `config.json`: registry → base64 `user:password`.
#[derive(Debug, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Debug, Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Every entry of a docker config that carries a user and a password (token-only entries,
/// such as `identitytoken`, are skipped).
pub fn read_docker_config(path: &Path) -> Result<Vec<Credential>, CredentialsError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| CredentialsError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let config: DockerConfig =
        serde_json::from_str(&text).map_err(|e| CredentialsError::NotDockerConfig {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    let mut out = Vec::new();
    for (server, entry) in config.auths {
        // Keys may be URLs (`https://index.docker.io/v1/`): keep the host.
        let host = server
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        let host = if host == "index.docker.io" {
            crate::image_ref::DEFAULT_DOMAIN
        } else {
            host
        }
        .to_owned();
        let bad_auth = || CredentialsError::BadAuth {
            path: shown.clone(),
            server: server.clone(),
        };
        let (user, password) = match (&entry.auth, entry.username, entry.password) {
            (Some(auth), _, _) => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(bad_auth)?;
                let (user, password) = decoded.split_once(':').ok_or_else(bad_auth)?;
                (user.to_owned(), password.to_owned())
            }
            (None, Some(user), Some(password)) => (user, password),
            _ => continue,
        };
        out.push(Credential {
            host,
            user,
            password,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_credentials_from_a_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        // "robot:s3cr:et" (a password may hold ':'), a URL key, and an entry without auth.
        std::fs::write(
            &path,
            r#"{"auths": {
                "registry.example.com": {"auth": "cm9ib3Q6czNjcjpldA=="},
                "https://index.docker.io/v1/": {"username": "me", "password": "pw"},
                "ghcr.io": {"identitytoken": "ignored"}
            }}"#,
        )
        .unwrap();
        let mut got = read_docker_config(&path).unwrap();
        got.sort();
        let pairs: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|c| (c.host.as_str(), c.user.as_str(), c.password.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("docker.io", "me", "pw"),
                ("registry.example.com", "robot", "s3cr:et"),
            ]
        );
        assert!(
            !format!("{:?}", got[0]).contains("pw"),
            "no password in Debug"
        );
        std::fs::write(&path, r#"{"auths": {"r": {"auth": "bm9jb2xvbg=="}}}"#).unwrap();
        let err = read_docker_config(&path).unwrap_err().to_string();
        assert!(err.contains("not base64 of user:password"), "{err}");
        let err = read_docker_config(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
    }
}
