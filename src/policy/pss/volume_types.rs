//! `restrictedVolumes` (restricted, Volume Types): every volume must be a `configMap`, `csi`,
//! `downwardAPI`, `emptyDir`, `ephemeral`, `image`, `persistentVolumeClaim`, `projected` or
//! `secret` volume. It replaces `hostPathVolumes` in the restricted level.
//!
//! A volume that sets none of those is named by its first restricted source in upstream's
//! order, or `unknown` when it sets no source portier knows. (The API server turns a volume
//! without any source into an `emptyDir` before admission; `portier check` does the same.)

use super::text::problem;
use super::{Control, Level};
use crate::pod::{PodView, Volume, VolumeType};
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-volume-types";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "restrictedVolumes",
    name: "Volume Types",
    level: Level::Restricted,
    revisions: &[0],
    overrides: Some("hostPathVolumes"),
    evaluate,
};

/// The volume types the restricted level allows (`image` included at every version, as
/// upstream does since Kubernetes 1.33).
pub const ALLOWED: [VolumeType; 9] = [
    VolumeType::ConfigMap,
    VolumeType::Csi,
    VolumeType::DownwardApi,
    VolumeType::EmptyDir,
    VolumeType::Ephemeral,
    VolumeType::Image,
    VolumeType::PersistentVolumeClaim,
    VolumeType::Projected,
    VolumeType::Secret,
];

/// The order in which upstream names a restricted volume's type.
pub(super) const NAMING_ORDER: [VolumeType; 21] = [
    VolumeType::HostPath,
    VolumeType::GcePersistentDisk,
    VolumeType::AwsElasticBlockStore,
    VolumeType::GitRepo,
    VolumeType::Nfs,
    VolumeType::Iscsi,
    VolumeType::Glusterfs,
    VolumeType::Rbd,
    VolumeType::FlexVolume,
    VolumeType::Cinder,
    VolumeType::Cephfs,
    VolumeType::Flocker,
    VolumeType::Fc,
    VolumeType::AzureFile,
    VolumeType::VsphereVolume,
    VolumeType::Quobyte,
    VolumeType::AzureDisk,
    VolumeType::PhotonPersistentDisk,
    VolumeType::PortworxVolume,
    VolumeType::ScaleIo,
    VolumeType::Storageos,
];

pub(super) fn allowed(volume: &Volume<'_>) -> bool {
    ALLOWED.iter().any(|t| volume.sources.contains(*t))
}

fn evaluate<'v>(_minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    for (i, volume) in pod.spec.volumes().iter().enumerate() {
        if allowed(volume) {
            continue;
        }
        let kind = NAMING_ORDER
            .into_iter()
            .find(|t| volume.sources.contains(*t));
        let (path, type_name) = match kind {
            Some(t) => (format!("volumes[{i}].{}", t.key()), t.key()),
            None => (format!("volumes[{i}]"), "unknown"),
        };
        let detail = format!(
            "volume \"{}\" uses restricted volume type \"{type_name}\"",
            &*volume.name
        );
        sink.report(Finding::pod(
            path,
            problem("restricted volume types", &detail),
            "use a configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected or secret volume",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::run;
    use super::{ALLOWED, NAMING_ORDER};

    #[test]
    fn allowed_types_pass() {
        let volumes: Vec<String> = ALLOWED
            .iter()
            .map(|t| format!(r#"{{"name":"{0}","{0}":{{}}}}"#, t.key()))
            .collect();
        let pod = format!(r#"{{"volumes":[{}]}}"#, volumes.join(","));
        assert!(run("pss-volume-types", &pod).is_empty());
        // An allowed source excuses another one set beside it, as upstream's switch does.
        assert!(
            run(
                "pss-volume-types",
                r#"{"volumes":[{"name":"x","secret":{},"hostPath":{}}]}"#
            )
            .is_empty()
        );
    }

    #[test]
    fn every_other_type_is_named() {
        for t in NAMING_ORDER {
            let pod = format!(r#"{{"volumes":[{{"name":"v","{}":{{}}}}]}}"#, t.key());
            assert_eq!(
                run("pss-volume-types", &pod),
                vec![format!(
                    "spec.volumes[0].{0}: restricted volume types (volume \"v\" uses restricted volume type \"{0}\")",
                    t.key()
                )]
            );
        }
        assert_eq!(
            run(
                "pss-volume-types",
                r#"{"volumes":[{"name":"a","emptyDir":{}},{"name":"u"},{"name":"n","nfs":{},"hostPath":{}}]}"#
            ),
            vec![
                r#"spec.volumes[1]: restricted volume types (volume "u" uses restricted volume type "unknown")"#,
                r#"spec.volumes[2].hostPath: restricted volume types (volume "n" uses restricted volume type "hostPath")"#,
            ]
        );
        assert_eq!(
            NAMING_ORDER.len() + ALLOWED.len(),
            crate::pod::VolumeType::ALL.len()
        );
    }
}
