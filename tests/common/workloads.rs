//! Pods and pod controllers for the audit tests, as k8s-openapi types, valid for the real API
//! server (selectors match their templates, Job templates never restart) and served as they are
//! by the stand-in. Metadata comes from the caller: the real API server gives uids, the stand-in
//! makes them up.

use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodSecurityContext, PodSpec, PodTemplateSpec, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

/// How a test pod spec is wrong.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flaws {
    pub privileged: bool,
    pub root: bool,
    pub host_network: bool,
}

pub const CLEAN: Flaws = Flaws {
    privileged: false,
    root: false,
    host_network: false,
};
pub const PRIVILEGED: Flaws = Flaws {
    privileged: true,
    root: false,
    host_network: false,
};
pub const ROOT: Flaws = Flaws {
    privileged: false,
    root: true,
    host_network: false,
};

fn label_map(labels: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Name, namespace and labels; no uid (the API server assigns it).
pub fn object_meta(name: &str, ns: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(ns.to_owned()),
        labels: (!labels.is_empty()).then(|| label_map(labels)),
        ..ObjectMeta::default()
    }
}

/// A controller reference to the `T` named `name` whose uid is `uid`.
pub fn controller_ref<T: Resource>(name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: T::API_VERSION.to_owned(),
        kind: T::KIND.to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub fn pod_spec(flaws: Flaws) -> PodSpec {
    PodSpec {
        host_network: flaws.host_network.then_some(true),
        security_context: Some(PodSecurityContext {
            run_as_non_root: (!flaws.root).then_some(true),
            ..PodSecurityContext::default()
        }),
        containers: vec![Container {
            name: "app".to_owned(),
            image: Some("registry.example.com/app:1".to_owned()),
            security_context: flaws.privileged.then(|| SecurityContext {
                privileged: Some(true),
                ..SecurityContext::default()
            }),
            ..Container::default()
        }],
        ..PodSpec::default()
    }
}

pub fn template(labels: &[(&str, &str)], flaws: Flaws) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(label_map(labels)),
            ..ObjectMeta::default()
        }),
        spec: Some(pod_spec(flaws)),
    }
}

/// A Job's template: the API server refuses `restartPolicy: Always` (the default) there.
fn job_template(labels: &[(&str, &str)], flaws: Flaws) -> PodTemplateSpec {
    let mut t = template(labels, flaws);
    if let Some(spec) = t.spec.as_mut() {
        spec.restart_policy = Some("Never".to_owned());
    }
    t
}

fn selector(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(label_map(labels)),
        ..LabelSelector::default()
    }
}

pub fn pod(metadata: ObjectMeta, flaws: Flaws) -> Pod {
    Pod {
        metadata,
        spec: Some(pod_spec(flaws)),
        ..Pod::default()
    }
}

pub fn deployment(metadata: ObjectMeta, labels: &[(&str, &str)], flaws: Flaws) -> Deployment {
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            selector: selector(labels),
            template: template(labels, flaws),
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

pub fn replica_set(metadata: ObjectMeta, labels: &[(&str, &str)], flaws: Flaws) -> ReplicaSet {
    ReplicaSet {
        metadata,
        spec: Some(ReplicaSetSpec {
            selector: selector(labels),
            template: Some(template(labels, flaws)),
            ..ReplicaSetSpec::default()
        }),
        ..ReplicaSet::default()
    }
}

pub fn stateful_set(metadata: ObjectMeta, labels: &[(&str, &str)], flaws: Flaws) -> StatefulSet {
    let service_name = metadata.name.clone();
    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            selector: selector(labels),
            service_name,
            template: template(labels, flaws),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

pub fn cron_job(metadata: ObjectMeta, labels: &[(&str, &str)], flaws: Flaws) -> CronJob {
    CronJob {
        metadata,
        spec: Some(CronJobSpec {
            schedule: "@daily".to_owned(),
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec {
                    template: job_template(labels, flaws),
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    }
}

pub fn job(metadata: ObjectMeta, labels: &[(&str, &str)], flaws: Flaws) -> Job {
    Job {
        metadata,
        spec: Some(JobSpec {
            template: job_template(labels, flaws),
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// The policies the audit tests judge with, against the real API server and the stand-in:
/// one per mode, and an exclusion.
pub const AUDIT_POLICIES: &str = "\
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: disallow-privileged}
spec: {check: privileged, mode: enforce}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: require-run-as-non-root}
spec: {check: run-as-non-root, mode: warn}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: disallow-host-namespaces}
spec: {check: host-namespaces, mode: audit, exclude: {namespaces: [legacy]}}
";
