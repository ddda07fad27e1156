//! `resource-limits`: containers declare cpu/memory requests and limits, within optional
//! maximums.
//!
//! ```yaml
//! params:
//!   require: {requests: [cpu, memory], limits: [cpu, memory]}   # the default when omitted
//!   max: {limits: {cpu: "4", memory: 8Gi}, requests: {cpu: "2"}}
//! ```
//! Containers and init containers are judged; ephemeral containers are exempt (Kubernetes
//! forbids resources on them, and `kubectl debug` must keep working). A missing request
//! counts as equal to its limit, because the API server defaults it so before admission.
//!
//! Mutation (`spec.mutate: true`) fills missing requests and limits from
//! `params.defaults: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 500m, memory: 256Mi}}`
//! on containers and init containers, and never writes a request above its limit (the API
//! server would reject the pod): a filled limit is raised to an existing larger request, a
//! filled request lowered to an existing smaller limit.

use serde::Deserialize;
use serde_json::Value;

use super::edit::{self, Object, RESOURCED_CONTAINERS};
use super::quantity::Quantity;
use super::{Finding, ParamError, Sink};
use crate::pod::{Container, ContainerList, PodSpec, ResourceList};

pub const ID: &str = "resource-limits";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Cpu,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Requests,
    Limits,
}

const SIDES: [Side; 2] = [Side::Requests, Side::Limits];
const RESOURCES: [Resource; 2] = [Resource::Cpu, Resource::Memory];

impl Side {
    fn noun(self) -> &'static str {
        match self {
            Side::Requests => "request",
            Side::Limits => "limit",
        }
    }
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Resource::Cpu => "100m",
            Resource::Memory => "128Mi",
        }
    }
}

fn field(side: Side, resource: Resource) -> &'static str {
    match (side, resource) {
        (Side::Requests, Resource::Cpu) => "resources.requests.cpu",
        (Side::Requests, Resource::Memory) => "resources.requests.memory",
        (Side::Limits, Resource::Cpu) => "resources.limits.cpu",
        (Side::Limits, Resource::Memory) => "resources.limits.memory",
    }
}

/// The YAML form of the params.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsDoc {
    #[serde(default)]
    require: Option<RequireDoc>,
    #[serde(default)]
    max: Option<SidesDoc>,
    /// Mutation: the values filled in where a container has none.
    #[serde(default)]
    defaults: Option<SidesDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequireDoc {
    #[serde(default)]
    requests: Vec<Resource>,
    #[serde(default)]
    limits: Vec<Resource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SidesDoc {
    #[serde(default)]
    requests: Option<AmountsDoc>,
    #[serde(default)]
    limits: Option<AmountsDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmountsDoc {
    #[serde(default)]
    cpu: Option<QuantityDoc>,
    #[serde(default)]
    memory: Option<QuantityDoc>,
}

/// A quantity in a policy file: `cpu: "500m"`, or a bare number such as `cpu: 2`.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a quantity such as \"500m\", \"2\" or \"1Gi\"")]
enum QuantityDoc {
    Text(String),
    Number(serde_json::Number),
}

impl QuantityDoc {
    fn text(&self) -> String {
        match self {
            QuantityDoc::Text(s) => s.clone(),
            QuantityDoc::Number(n) => n.to_string(),
        }
    }
}

/// An amount from the policy: the parsed value and the text the policy wrote (for messages
/// and for what mutation writes).
#[derive(Debug, Clone)]
struct Amount {
    value: Quantity,
    text: String,
}

type Amounts = [[Option<Amount>; 2]; 2];

/// Compiled params, indexed by [side][resource].
#[derive(Debug)]
pub struct Params {
    required: [[bool; 2]; 2],
    max: Amounts,
    defaults: Amounts,
}

fn compile_amounts(field: &str, doc: Option<&SidesDoc>) -> Result<Amounts, ParamError> {
    let mut amounts: Amounts = Default::default();
    let Some(doc) = doc else {
        return Ok(amounts);
    };
    for (s, (side, given)) in [("requests", &doc.requests), ("limits", &doc.limits)]
        .into_iter()
        .enumerate()
    {
        let Some(given) = given else { continue };
        for (r, (res, raw)) in [("cpu", &given.cpu), ("memory", &given.memory)]
            .into_iter()
            .enumerate()
        {
            let Some(raw) = raw else { continue };
            let text = raw.text();
            let value = Quantity::parse(&text).map_err(|e| {
                ParamError::new(format!("spec.params.{field}.{side}.{res}"), e.to_string())
            })?;
            amounts[s][r] = Some(Amount { value, text });
        }
    }
    Ok(amounts)
}

impl Params {
    pub fn compile(doc: ParamsDoc) -> Result<Params, ParamError> {
        let required = match &doc.require {
            None => [[true; 2]; 2],
            Some(r) => {
                let mark = |list: &[Resource]| RESOURCES.map(|res| list.contains(&res));
                [mark(&r.requests), mark(&r.limits)]
            }
        };
        let max = compile_amounts("max", doc.max.as_ref())?;
        let defaults = compile_amounts("defaults", doc.defaults.as_ref())?;
        for (s, side) in SIDES.into_iter().enumerate() {
            for (r, resource) in RESOURCES.into_iter().enumerate() {
                let field = format!(
                    "spec.params.defaults.{}.{}",
                    match side {
                        Side::Requests => "requests",
                        Side::Limits => "limits",
                    },
                    resource.name()
                );
                if let (Some(d), Some(m)) = (&defaults[s][r], &max[s][r])
                    && d.value > m.value
                {
                    return Err(ParamError::new(
                        field,
                        format!(
                            "{} is above the maximum {}: filled-in pods would be denied",
                            d.text, m.text
                        ),
                    ));
                }
                if let (Side::Requests, Some(req), Some(lim)) =
                    (side, &defaults[0][r], &defaults[1][r])
                    && req.value > lim.value
                {
                    return Err(ParamError::new(
                        field,
                        format!(
                            "the default request {} is above the default limit {}",
                            req.text, lim.text
                        ),
                    ));
                }
            }
        }
        Ok(Params {
            required,
            max,
            defaults,
        })
    }

    /// Whether mutation has defaults to fill in.
    pub fn can_mutate(&self) -> bool {
        self.defaults.iter().flatten().any(Option::is_some)
    }
}

/// Fills missing requests and limits from the defaults; returns whether anything changed.
pub fn mutate(params: &Params, spec: &mut Object) -> bool {
    let mut changed = false;
    for container in edit::containers_mut(spec, RESOURCED_CONTAINERS) {
        for (r, resource) in RESOURCES.into_iter().enumerate() {
            let present = |c: &Object, side: &str| {
                edit::get(c, &["resources", side, resource.name()])
                    .and_then(Value::as_str)
                    .and_then(|t| Quantity::parse(t).ok().map(|q| (q, t.to_owned())))
            };
            let request = present(container, "requests");
            if let (None, Some(default)) = (present(container, "limits"), &params.defaults[1][r]) {
                // Never below an existing request.
                let text = match &request {
                    Some((q, t)) if *q > default.value => t.clone(),
                    _ => default.text.clone(),
                };
                changed |= edit::set_if_absent(
                    container,
                    &["resources", "limits", resource.name()],
                    Value::String(text),
                );
            }
            let limit = present(container, "limits");
            if let (None, Some(default)) = (&request, &params.defaults[0][r]) {
                // Never above an existing limit.
                let text = match &limit {
                    Some((q, t)) if *q < default.value => t.clone(),
                    _ => default.text.clone(),
                };
                changed |= edit::set_if_absent(
                    container,
                    &["resources", "requests", resource.name()],
                    Value::String(text),
                );
            }
        }
    }
    changed
}

/// The value a container effectively has for `side`/`resource`, and whether it was defaulted
/// from the limit.
fn effective<'c>(
    container: &'c Container<'_>,
    side: Side,
    resource: Resource,
) -> Option<(&'c str, bool)> {
    let resources = container.resources.as_ref()?;
    let pick = |list: &'c Option<ResourceList<'_>>| {
        let list = list.as_ref()?;
        match resource {
            Resource::Cpu => list.cpu.as_ref(),
            Resource::Memory => list.memory.as_ref(),
        }
        .map(|q| q.as_str())
    };
    match side {
        Side::Limits => pick(&resources.limits).map(|v| (v, false)),
        Side::Requests => pick(&resources.requests)
            .map(|v| (v, false))
            .or_else(|| pick(&resources.limits).map(|v| (v, true))),
    }
}

pub fn evaluate<'v>(params: &Params, pod: &'v PodSpec<'_>, sink: &mut Sink<'_, '_, 'v>) {
    for at in pod.all_containers() {
        if at.list == ContainerList::EphemeralContainers || !sink.in_scope(&at) {
            continue;
        }
        for (s, side) in SIDES.into_iter().enumerate() {
            for (r, resource) in RESOURCES.into_iter().enumerate() {
                let path = field(side, resource);
                let value = effective(at.container, side, resource);
                let Some((value, defaulted)) = value else {
                    if params.required[s][r] {
                        sink.report(Finding::for_container(
                            &at,
                            path,
                            format!("no {} {} is set", resource.name(), side.noun()),
                            format!("set {path} (for example {})", resource.example()),
                        ));
                    }
                    continue;
                };
                let Some(max) = &params.max[s][r] else {
                    continue;
                };
                match Quantity::parse(value) {
                    Err(e) => sink.report(Finding::for_container(
                        &at,
                        path,
                        e.to_string(),
                        format!(
                            "write {path} as a Kubernetes quantity such as {}",
                            resource.example()
                        ),
                    )),
                    Ok(v) if v > max.value => {
                        let origin = if defaulted {
                            " (defaulted from its limit)"
                        } else {
                            ""
                        };
                        sink.report(Finding::for_container(
                            &at,
                            path,
                            format!(
                                "{} {} {value}{origin} is above the maximum {}",
                                resource.name(),
                                side.noun(),
                                max.text
                            ),
                            format!("lower it to at most {}", max.text),
                        ));
                    }
                    Ok(_) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::testing::{findings, messages};

    const FULL: &str = r#""resources":{"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"cpu":"1","memory":"128Mi"}}"#;

    #[test]
    fn default_requires_all_four_on_containers_and_init_containers() {
        let pod = format!(
            r#"{{"initContainers":[{{"name":"i"}}],"containers":[{{"name":"a",{FULL}}}],"ephemeralContainers":[{{"name":"dbg"}}]}}"#
        );
        assert_eq!(
            findings("check: resource-limits", &pod),
            vec![
                "init container i spec.initContainers[0].resources.requests.cpu",
                "init container i spec.initContainers[0].resources.requests.memory",
                "init container i spec.initContainers[0].resources.limits.cpu",
                "init container i spec.initContainers[0].resources.limits.memory",
            ]
        );
    }

    #[test]
    fn a_limit_alone_satisfies_the_request_as_the_api_server_defaults_it() {
        let pod =
            r#"{"containers":[{"name":"a","resources":{"limits":{"cpu":"1","memory":"1Gi"}}}]}"#;
        assert!(findings("check: resource-limits", pod).is_empty());
    }

    #[test]
    fn require_picks_what_is_needed() {
        let policy = "check: resource-limits\nparams: {require: {limits: [memory]}}";
        let pod = r#"{"containers":[{"name":"a","resources":{"requests":{"cpu":"1"}}}]}"#;
        assert_eq!(
            findings(policy, pod),
            vec!["container a spec.containers[0].resources.limits.memory"]
        );
    }

    #[test]
    fn maximums_compare_quantities_across_units() {
        let policy =
            "check: resource-limits\nparams: {require: {}, max: {limits: {cpu: '2', memory: 1Gi}}}";
        let pod = r#"{"containers":[{"name":"a","resources":{"limits":{"cpu":"2500m","memory":"1024Mi"}}},
            {"name":"b","resources":{"limits":{"cpu":"1.5","memory":"1.1Gi"}}}]}"#;
        let msgs = messages(policy, pod);
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].contains("cpu limit 2500m is above the maximum 2"),
            "{msgs:?}"
        );
        assert!(
            msgs[1].contains("spec.containers[1].resources.limits.memory"),
            "{msgs:?}"
        );
    }

    #[test]
    fn unparsable_quantities_are_reported_not_ignored() {
        let policy = "check: resource-limits\nparams: {max: {requests: {cpu: 1}}}";
        let pod = r#"{"containers":[{"name":"a","resources":{"requests":{"cpu":"lots","memory":"1"},"limits":{"cpu":"1","memory":"1"}}}]}"#;
        let msgs = messages(policy, pod);
        assert_eq!(msgs.len(), 1);
        assert!(
            msgs[0].contains("\"lots\" is not a valid quantity"),
            "{msgs:?}"
        );
    }

    #[test]
    fn bad_params_are_load_errors() {
        let bad = "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: r}\nspec: {check: resource-limits, params: {max: {limits: {cpu: 2x}}}}";
        let e = crate::policy::PolicySet::from_yaml("r.yaml", bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spec.params.max.limits.cpu: \"2x\" is not a valid quantity"),
            "{e}"
        );
        let bad = bad.replace("{max: {limits: {cpu: 2x}}}", "{require: {limits: [gpu]}}");
        let e = crate::policy::PolicySet::from_yaml("r.yaml", &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spec.params.require.limits[0]: unknown variant `gpu`"),
            "{e}"
        );
    }
}
