//! The AdmissionReview fields portier reads, borrowed from the request body.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::pod::Text;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReviewIn<'a> {
    #[serde(borrow, default)]
    pub(super) api_version: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) request: Option<RequestIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RequestIn<'a> {
    #[serde(borrow, default)]
    pub(super) uid: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) kind: Option<GroupVersionKind<'a>>,
    #[serde(borrow, default)]
    pub(super) resource: Option<GroupVersionResource<'a>>,
    #[serde(borrow, default)]
    pub(super) sub_resource: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) name: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) namespace: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) operation: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) user_info: Option<UserInfo<'a>>,
    #[serde(borrow, default)]
    pub(super) object: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "oldObject")]
    pub(super) old_object: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct GroupVersionKind<'a> {
    #[serde(borrow, default)]
    pub(super) group: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) kind: Option<Text<'a>>,
}

#[derive(Deserialize)]
pub(super) struct GroupVersionResource<'a> {
    #[serde(borrow, default)]
    pub(super) group: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) version: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) resource: Option<Text<'a>>,
}

#[derive(Deserialize)]
pub(super) struct UserInfo<'a> {
    #[serde(borrow, default)]
    pub(super) username: Option<Text<'a>>,
}

/// Just enough to fail closed when the rest of a review has the wrong shape.
#[derive(Deserialize)]
pub(super) struct UidOnly<'a> {
    #[serde(borrow, default)]
    pub(super) request: Option<UidRequest<'a>>,
}

#[derive(Deserialize)]
pub(super) struct UidRequest<'a> {
    #[serde(borrow, default)]
    pub(super) uid: Option<Text<'a>>,
}
