//! `procMount_restricted` (restricted, from v1.35; /proc Mount Type): as baseline `procMount`
//! before v1.35, without the `hostUsers: false` relaxation. It replaces `procMount` in the
//! restricted level, so a restricted pod may not unmask /proc even in a user namespace.

use super::{Control, Level, proc_mount};
use crate::pod::PodView;
use crate::policy::Sink;

pub const ID: &str = "pss-proc-mount-restricted";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "procMount_restricted",
    name: "/proc Mount Type (restricted)",
    level: Level::Restricted,
    revisions: &[35],
    overrides: Some("procMount"),
    evaluate,
};

fn evaluate<'v>(_minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    proc_mount::check(pod, sink);
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, each_list, run};

    #[test]
    fn never_relaxed_and_defined_from_v1_35() {
        let c = r#"{"name":"c","securityContext":{"procMount":"Unmasked"}}"#;
        for (list, pod) in each_list(c) {
            let userns = pod.replacen('{', r#"{"hostUsers":false,"#, 1);
            assert_eq!(
                run("pss-proc-mount-restricted", &userns),
                vec![format!(
                    "spec.{list}[0].securityContext.procMount: procMount (container \"c\" must not set securityContext.procMount to \"Unmasked\")"
                )]
            );
        }
        let e = crate::policy::PolicySet::from_yaml(
            "p.yaml",
            "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec: {check: pss-proc-mount-restricted, params: {version: v1.34}}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("spec.params.version"), "{e}");
        assert!(
            run(
                &at("pss-proc-mount-restricted", "v1.35"),
                r#"{"containers":[{"name":"c"}]}"#
            )
            .is_empty()
        );
    }
}
