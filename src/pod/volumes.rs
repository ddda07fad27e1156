//! The volumes of a pod: which kinds of source each sets, and the host path of a `hostPath`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::Text;

/// The kinds of volume source (the keys of a Kubernetes `VolumeSource`), in the API's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolumeType {
    HostPath,
    EmptyDir,
    GcePersistentDisk,
    AwsElasticBlockStore,
    GitRepo,
    Secret,
    Nfs,
    Iscsi,
    Glusterfs,
    PersistentVolumeClaim,
    Rbd,
    FlexVolume,
    Cinder,
    Cephfs,
    Flocker,
    DownwardApi,
    Fc,
    AzureFile,
    ConfigMap,
    VsphereVolume,
    Quobyte,
    AzureDisk,
    PhotonPersistentDisk,
    Projected,
    PortworxVolume,
    ScaleIo,
    Storageos,
    Csi,
    Ephemeral,
    Image,
}

impl VolumeType {
    pub const ALL: [VolumeType; 30] = [
        Self::HostPath,
        Self::EmptyDir,
        Self::GcePersistentDisk,
        Self::AwsElasticBlockStore,
        Self::GitRepo,
        Self::Secret,
        Self::Nfs,
        Self::Iscsi,
        Self::Glusterfs,
        Self::PersistentVolumeClaim,
        Self::Rbd,
        Self::FlexVolume,
        Self::Cinder,
        Self::Cephfs,
        Self::Flocker,
        Self::DownwardApi,
        Self::Fc,
        Self::AzureFile,
        Self::ConfigMap,
        Self::VsphereVolume,
        Self::Quobyte,
        Self::AzureDisk,
        Self::PhotonPersistentDisk,
        Self::Projected,
        Self::PortworxVolume,
        Self::ScaleIo,
        Self::Storageos,
        Self::Csi,
        Self::Ephemeral,
        Self::Image,
    ];

    /// The field name in a volume, e.g. `hostPath`.
    pub fn key(self) -> &'static str {
        match self {
            Self::HostPath => "hostPath",
            Self::EmptyDir => "emptyDir",
            Self::GcePersistentDisk => "gcePersistentDisk",
            Self::AwsElasticBlockStore => "awsElasticBlockStore",
            Self::GitRepo => "gitRepo",
            Self::Secret => "secret",
            Self::Nfs => "nfs",
            Self::Iscsi => "iscsi",
            Self::Glusterfs => "glusterfs",
            Self::PersistentVolumeClaim => "persistentVolumeClaim",
            Self::Rbd => "rbd",
            Self::FlexVolume => "flexVolume",
            Self::Cinder => "cinder",
            Self::Cephfs => "cephfs",
            Self::Flocker => "flocker",
            Self::DownwardApi => "downwardAPI",
            Self::Fc => "fc",
            Self::AzureFile => "azureFile",
            Self::ConfigMap => "configMap",
            Self::VsphereVolume => "vsphereVolume",
            Self::Quobyte => "quobyte",
            Self::AzureDisk => "azureDisk",
            Self::PhotonPersistentDisk => "photonPersistentDisk",
            Self::Projected => "projected",
            Self::PortworxVolume => "portworxVolume",
            Self::ScaleIo => "scaleIO",
            Self::Storageos => "storageos",
            Self::Csi => "csi",
            Self::Ephemeral => "ephemeral",
            Self::Image => "image",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.key() == key)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// The set of sources a volume sets (the API server allows exactly one; a manifest may hold
/// none, or several).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VolumeSources(u32);

impl VolumeSources {
    pub fn contains(self, t: VolumeType) -> bool {
        self.0 & t.bit() != 0
    }

    pub fn insert(&mut self, t: VolumeType) {
        self.0 |= t.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = VolumeType> {
        VolumeType::ALL
            .into_iter()
            .filter(move |t| self.contains(*t))
    }
}

/// A volume of the pod: its name, which source keys it sets (a key whose value is `null`
/// counts as unset, as for the API server), and the host path of a `hostPath` volume.
#[derive(Debug, Default)]
pub struct Volume<'a> {
    pub name: Text<'a>,
    pub sources: VolumeSources,
    pub host_path: Option<HostPathSource<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HostPathSource<'a> {
    #[serde(borrow, default)]
    pub path: Option<Text<'a>>,
    #[serde(borrow, rename = "type", default)]
    pub kind: Option<Text<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Volume<'a> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct VolumeVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for VolumeVisitor<'a> {
            type Value = Volume<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a volume")
            }

            fn visit_map<M: de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut volume = Volume::default();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if &*key == "name" {
                        let name: Option<Text<'de>> = map.next_value()?;
                        volume.name = name.unwrap_or_default();
                        continue;
                    }
                    match VolumeType::from_key(&key) {
                        Some(VolumeType::HostPath) => {
                            volume.host_path = map.next_value()?;
                            if volume.host_path.is_some() {
                                volume.sources.insert(VolumeType::HostPath);
                            }
                        }
                        Some(t) => {
                            if map.next_value::<Option<de::IgnoredAny>>()?.is_some() {
                                volume.sources.insert(t);
                            }
                        }
                        None => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(volume)
            }
        }

        de.deserialize_map(VolumeVisitor(std::marker::PhantomData))
    }
}
