//! The digests a listed pod's containers really run, from its status.
//!
//! A tag verified at admission is only a promise until the kubelet pulls it; the kubelet
//! reports what it pulled as `status.containerStatuses[].imageID`. The audit verifies that
//! digest instead of the spec's reference when the pod reports one.

use serde::Deserialize;

use crate::image_ref;

#[derive(Deserialize)]
struct PodDoc {
    #[serde(default)]
    status: Option<StatusDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusDoc {
    #[serde(default)]
    container_statuses: Vec<ContainerStatusDoc>,
    #[serde(default)]
    init_container_statuses: Vec<ContainerStatusDoc>,
    #[serde(default)]
    ephemeral_container_statuses: Vec<ContainerStatusDoc>,
}

#[derive(Deserialize)]
struct ContainerStatusDoc {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "imageID")]
    image_id: String,
}

/// (container name, digest it runs) for every container status of the pod `json` that names
/// a repository digest. Nothing when the pod has no status or does not parse.
pub fn running_digests(json: &str) -> Vec<(String, String)> {
    let Ok(pod) = serde_json::from_str::<PodDoc>(json) else {
        return Vec::new();
    };
    let Some(status) = pod.status else {
        return Vec::new();
    };
    status
        .container_statuses
        .into_iter()
        .chain(status.init_container_statuses)
        .chain(status.ephemeral_container_statuses)
        .filter_map(|s| {
            let digest = repository_digest(&s.image_id)?.to_owned();
            Some((s.name, digest))
        })
        .collect()
}

/// The manifest digest in an `imageID`: containerd and CRI-O report
/// `docker.io/library/nginx@sha256:...`, dockershim `docker-pullable://nginx@sha256:...`. A
/// bare `sha256:...` is the image's config id, not a manifest digest: nothing to verify.
fn repository_digest(image_id: &str) -> Option<&str> {
    let id = image_id
        .split_once("://")
        .map_or(image_id, |(_, rest)| rest);
    let (_, digest) = id.rsplit_once('@')?;
    image_ref::is_digest(digest).then_some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0f3c35a4d9cfc1e8a5b2a4c3f0f2c0e9a7b8c6d5e4f3a2b1c0d9e8f7a6b5c4d3";

    #[test]
    fn reads_the_repository_digest_each_runtime_reports() {
        let pod = format!(
            r#"{{"status":{{
                "containerStatuses":[
                    {{"name":"app","imageID":"docker.io/library/nginx@{D}"}},
                    {{"name":"old","imageID":"docker-pullable://nginx@{D}"}},
                    {{"name":"local","imageID":"sha256:{}"}},
                    {{"name":"pending","imageID":""}}],
                "initContainerStatuses":[{{"name":"init","imageID":"ghcr.io/a/b@{D}"}}]}}}}"#,
            &D[7..]
        );
        assert_eq!(
            running_digests(&pod),
            vec![
                ("app".to_owned(), D.to_owned()),
                ("old".to_owned(), D.to_owned()),
                ("init".to_owned(), D.to_owned()),
            ]
        );
        assert!(running_digests(r#"{"spec":{}}"#).is_empty());
        assert!(running_digests("not json").is_empty());
        assert!(
            running_digests(
                r#"{"status":{"containerStatuses":[{"name":"x","imageID":"a@sha256:12"}]}}"#
            )
            .is_empty()
        );
    }
}
