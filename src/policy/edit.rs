//! Small edits on a pod spec held as JSON, for the checks' mutations.
//!
//! Mutations only ever fill what is absent: a missing or `null` field gets a value, and missing
//! parent objects are created. A value the user wrote is never changed, and a parent of the
//! wrong type (which the API server would have rejected anyway) is left alone.

use serde_json::{Map, Value};

pub type Object = Map<String, Value>;

/// The value at `path` below `obj`, treating `null` as absent.
pub fn get<'o>(obj: &'o Object, path: &[&str]) -> Option<&'o Value> {
    let (last, parents) = path.split_last()?;
    let mut current = obj;
    for key in parents {
        current = current.get(*key)?.as_object()?;
    }
    current.get(*last).filter(|v| !v.is_null())
}

/// Sets `path` below `obj` to `value` if it is absent, creating missing parent objects.
/// Returns whether anything was written.
pub fn set_if_absent(obj: &mut Object, path: &[&str], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = obj;
    for key in parents {
        let slot = current
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if slot.is_null() {
            *slot = Value::Object(Map::new());
        }
        let Some(next) = slot.as_object_mut() else {
            return false;
        };
        current = next;
    }
    match current.get(*last) {
        Some(v) if !v.is_null() => false,
        _ => {
            current.insert((*last).to_owned(), value);
            true
        }
    }
}

/// The container objects of `lists` (e.g. `containers`, `initContainers`) in the pod spec.
pub fn containers_mut<'s>(
    spec: &'s mut Object,
    lists: &'static [&'static str],
) -> impl Iterator<Item = &'s mut Object> {
    spec.iter_mut()
        .filter(move |(key, _)| lists.contains(&key.as_str()))
        .filter_map(|(_, list)| list.as_array_mut())
        .flat_map(|items| items.iter_mut())
        .filter_map(Value::as_object_mut)
}

/// The container objects of `lists`, read-only.
pub fn containers<'s>(
    spec: &'s Object,
    lists: &'static [&'static str],
) -> impl Iterator<Item = &'s Object> {
    spec.iter()
        .filter(move |(key, _)| lists.contains(&key.as_str()))
        .filter_map(|(_, list)| list.as_array())
        .flat_map(|items| items.iter())
        .filter_map(Value::as_object)
}

/// Every container list of a pod spec.
pub const ALL_CONTAINERS: &[&str] = &["initContainers", "containers", "ephemeralContainers"];
/// The lists whose containers may carry resources (ephemeral containers may not).
pub const RESOURCED_CONTAINERS: &[&str] = &["initContainers", "containers"];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_only_what_is_absent_and_creates_parents() {
        let mut obj = json!({"a": {"b": 1}, "n": null, "s": "x"})
            .as_object()
            .unwrap()
            .clone();
        assert!(!set_if_absent(&mut obj, &["a", "b"], json!(2)));
        assert!(set_if_absent(&mut obj, &["a", "c"], json!(3)));
        assert!(set_if_absent(&mut obj, &["n", "d", "e"], json!(true)));
        assert!(set_if_absent(&mut obj, &["new", "x"], json!("y")));
        assert!(
            !set_if_absent(&mut obj, &["s", "t"], json!(1)),
            "a string is not a parent"
        );
        assert_eq!(
            Value::Object(obj.clone()),
            json!({"a": {"b": 1, "c": 3}, "n": {"d": {"e": true}}, "s": "x", "new": {"x": "y"}})
        );
        assert_eq!(get(&obj, &["a", "b"]), Some(&json!(1)));
        assert_eq!(get(&obj, &["a", "zz"]), None);
    }
}
