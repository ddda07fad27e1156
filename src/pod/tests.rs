use super::*;
use std::borrow::Cow;

#[test]
fn decodes_a_deployment_template_and_borrows_strings() {
    let json = r#"{"apiVersion":"apps/v1","kind":"Deployment",
        "metadata":{"name":"web","namespace":"shop","labels":{"a":"b"}},
        "spec":{"replicas":2,"template":{"metadata":{"labels":{"a":"b"}},
          "spec":{"hostNetwork":true,"containers":[{"name":"app","image":"nginx:1",
            "resources":{"limits":{"cpu":"1","memory":"1Gi","nvidia.com/gpu":"1"}}}]}}}}"#;
    let w = decode_workload(WorkloadKind::Deployment, json).unwrap();
    assert_eq!(w.name.as_deref(), Some("web"));
    let spec = w.spec.unwrap();
    assert_eq!(spec.host_network, Some(true));
    let c = &spec.containers()[0];
    assert!(matches!(c.name, Cow::Borrowed("app")));
    assert!(matches!(
        c.image.as_ref().unwrap().0,
        Cow::Borrowed("nginx:1")
    ));
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits.cpu.as_ref().unwrap().as_str(), "1");
}

#[test]
fn decodes_a_cronjob_and_tolerates_nulls() {
    let json = r#"{"metadata":{"name":"nightly"},"spec":{"schedule":"@daily","jobTemplate":
        {"spec":{"template":{"spec":{"containers":[{"name":"x","ports":null,
          "securityContext":null}],"initContainers":null}}}}}}"#;
    let w = decode_workload(WorkloadKind::CronJob, json).unwrap();
    let spec = w.spec.unwrap();
    assert_eq!(spec.containers().len(), 1);
    assert!(spec.init_containers().is_empty());
    assert_eq!(
        WorkloadKind::CronJob.pod_spec_path(),
        "spec.jobTemplate.spec.template.spec"
    );
}

#[test]
fn all_containers_walks_every_list_with_positions() {
    let json = r#"{"spec":{"initContainers":[{"name":"i"}],"containers":[{"name":"a"},{"name":"b"}],
        "ephemeralContainers":[{"name":"e"}]}}"#;
    let w = decode_workload(WorkloadKind::Pod, json).unwrap();
    let spec = w.spec.unwrap();
    let seen: Vec<_> = spec
        .all_containers()
        .map(|c| (c.list.field(), c.index, c.container.name.to_string()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("initContainers", 0, "i".to_owned()),
            ("containers", 0, "a".to_owned()),
            ("containers", 1, "b".to_owned()),
            ("ephemeralContainers", 0, "e".to_owned()),
        ]
    );
}

#[test]
fn wrong_shapes_are_errors_that_name_the_field() {
    let json = r#"{"spec":{"containers":[{"name":"a","securityContext":{"runAsUser":"root"}}]}}"#;
    assert!(decode_workload(WorkloadKind::Pod, json).is_err());
    let why = explain_decode_error(WorkloadKind::Pod, json);
    assert!(
        why.starts_with("spec.containers[0].securityContext.runAsUser"),
        "{why}"
    );
    assert!(decode_workload(WorkloadKind::Pod, r#"{"spec":{"containers":{}}}"#).is_err());
    assert!(decode_workload(WorkloadKind::Pod, r#"[]"#).is_err());
}

#[test]
fn quantities_accept_numbers_from_yaml() {
    let json =
        r#"{"spec":{"containers":[{"name":"a","resources":{"requests":{"cpu":1,"memory":0.5}}}]}}"#;
    let w = decode_workload(WorkloadKind::Pod, json).unwrap();
    let spec = w.spec.unwrap();
    let req = spec.containers()[0]
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap();
    assert_eq!(req.cpu.as_ref().unwrap().as_str(), "1");
    assert_eq!(req.memory.as_ref().unwrap().as_str(), "0.5");
}

#[test]
fn keeps_only_security_annotations_of_the_pod_or_its_template() {
    let pod = r#"{"metadata":{"name":"p","annotations":{"team":"a",
        "container.apparmor.security.beta.kubernetes.io/app":"runtime/default",
        "seccomp.security.alpha.kubernetes.io/pod":null}},"spec":{}}"#;
    let w = decode_workload(WorkloadKind::Pod, pod).unwrap();
    let kept: Vec<_> = w.pod_annotations.iter().collect();
    assert_eq!(
        kept,
        vec![
            (
                "container.apparmor.security.beta.kubernetes.io/app",
                "runtime/default"
            ),
            ("seccomp.security.alpha.kubernetes.io/pod", ""),
        ]
    );
    assert_eq!(
        w.pod().unwrap().annotations.get("team"),
        None,
        "other annotations are skipped"
    );

    // Controllers: the template's annotations, not the controller's own.
    let deployment = r#"{"metadata":{"annotations":{"container.apparmor.security.beta.kubernetes.io/x":"unconfined"}},
        "spec":{"template":{"metadata":{"annotations":{"container.apparmor.security.beta.kubernetes.io/app":"localhost/p"}},
        "spec":{"containers":[{"name":"app"}]}}}}"#;
    let w = decode_workload(WorkloadKind::Deployment, deployment).unwrap();
    let view = w.pod().unwrap();
    assert_eq!(
        view.annotations
            .get("container.apparmor.security.beta.kubernetes.io/app"),
        Some("localhost/p")
    );
    assert_eq!(view.annotations.iter().count(), 1);

    let cron = r#"{"spec":{"jobTemplate":{"spec":{"template":{"metadata":{"annotations":
        {"container.seccomp.security.alpha.kubernetes.io/c":"unconfined"}},"spec":{}}}}}}"#;
    let w = decode_workload(WorkloadKind::CronJob, cron).unwrap();
    assert_eq!(
        w.pod_annotations
            .get("container.seccomp.security.alpha.kubernetes.io/c"),
        Some("unconfined")
    );
    assert!(
        decode_workload(
            WorkloadKind::Pod,
            r#"{"metadata":{"annotations":{"container.apparmor.security.beta.kubernetes.io/a":1}}}"#
        )
        .is_err()
    );
}

#[test]
fn decodes_volume_types_security_fields_and_handler_hosts() {
    let json = r#"{"spec":{"os":{"name":"windows"},"hostUsers":false,
        "securityContext":{"seLinuxOptions":{"type":"spc_t"},"sysctls":[{"name":"kernel.msgmax","value":"1"}],
          "appArmorProfile":{"type":"Unconfined"},"windowsOptions":{"hostProcess":true}},
        "volumes":[{"name":"h","hostPath":{"path":"/etc"}},{"name":"c","configMap":{"name":"x"}},
          {"name":"n","secret":null},{"name":"two","nfs":{},"emptyDir":{}},{"name":"odd","future":{}}],
        "containers":[{"name":"a","securityContext":{"procMount":"Unmasked","capabilities":{"add":["NET_ADMIN"]}},
          "livenessProbe":{"httpGet":{"host":"10.0.0.1","port":80}},"startupProbe":{"exec":{"command":["x"]}},
          "lifecycle":{"preStop":{"tcpSocket":{"host":"db","port":5432}}}}]}}"#;
    let w = decode_workload(WorkloadKind::Pod, json).unwrap();
    let spec = w.spec.unwrap();
    assert!(spec.is_windows());
    assert!(spec.in_user_namespace());
    let psc = spec.pod_security().unwrap();
    assert_eq!(psc.sysctls()[0].name.0, "kernel.msgmax");
    assert_eq!(
        psc.windows_options.as_ref().unwrap().host_process,
        Some(true)
    );
    let v = spec.volumes();
    assert_eq!(
        v[0].sources.iter().collect::<Vec<_>>(),
        vec![VolumeType::HostPath]
    );
    assert_eq!(
        v[0].host_path.as_ref().unwrap().path.as_deref(),
        Some("/etc")
    );
    assert!(v[1].sources.contains(VolumeType::ConfigMap));
    assert!(v[2].sources.is_empty(), "a null source is unset");
    assert_eq!(
        v[3].sources.iter().collect::<Vec<_>>(),
        vec![VolumeType::EmptyDir, VolumeType::Nfs]
    );
    assert!(v[4].sources.is_empty(), "unknown keys are no known source");
    assert_eq!(&*v[4].name, "odd");
    let c = &spec.containers()[0];
    let handlers: Vec<_> = c
        .handlers()
        .map(|(field, h)| {
            let host = h
                .http_get
                .as_ref()
                .or(h.tcp_socket.as_ref())
                .and_then(|a| a.host.as_deref());
            (field, host)
        })
        .collect();
    assert_eq!(
        handlers,
        vec![
            ("livenessProbe", Some("10.0.0.1")),
            ("startupProbe", None),
            ("lifecycle.preStop", Some("db")),
        ]
    );
    let sc = c.security().unwrap();
    assert_eq!(sc.proc_mount.as_deref(), Some("Unmasked"));
    assert_eq!(sc.capabilities.as_ref().unwrap().add()[0].0, "NET_ADMIN");
    assert!(!PodSpec::default().is_windows());
}

#[test]
fn only_judged_kinds_are_recognised() {
    assert_eq!(
        WorkloadKind::from_group_kind("apps", "Deployment"),
        Some(WorkloadKind::Deployment)
    );
    assert_eq!(WorkloadKind::from_group_kind("", "Deployment"), None);
    assert_eq!(WorkloadKind::from_group_kind("", "ConfigMap"), None);
    assert_eq!(
        WorkloadKind::from_group_kind("batch", "CronJob"),
        Some(WorkloadKind::CronJob)
    );
}
