//! `hostPathVolumes` (baseline, HostPath Volumes): no `hostPath` volume. Restricted replaces
//! this control by `restrictedVolumes`, which forbids hostPath among others.

use super::text::problem;
use super::{Control, Level};
use crate::pod::{PodView, VolumeType};
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-host-path-volumes";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "hostPathVolumes",
    name: "HostPath Volumes",
    level: Level::Baseline,
    revisions: &[0],
    overrides: None,
    evaluate,
};

fn evaluate<'v>(_minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    for (i, volume) in pod.spec.volumes().iter().enumerate() {
        if volume.sources.contains(VolumeType::HostPath) {
            sink.report(Finding::pod(
                format!("volumes[{i}].hostPath"),
                problem("hostPath volumes", &format!("volume \"{}\"", &*volume.name)),
                "use another volume type, such as a persistentVolumeClaim, configMap or emptyDir",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::run;

    #[test]
    fn host_path_volumes_are_denied_others_pass() {
        let pod = r#"{"volumes":[{"name":"a","emptyDir":{}},{"name":"h","hostPath":{"path":"/"}},
            {"name":"n","hostPath":null},{"name":"p","persistentVolumeClaim":{"claimName":"x"}},
            {"name":"g","gcePersistentDisk":{"pdName":"x"}}]}"#;
        assert_eq!(
            run("pss-host-path-volumes", pod),
            vec![r#"spec.volumes[1].hostPath: hostPath volumes (volume "h")"#]
        );
        assert!(run("pss-host-path-volumes", r#"{"volumes":null}"#).is_empty());
    }
}
