//! portier: a Kubernetes admission webhook that judges pods against hot-reloaded policies.
//!
//! Data flows one way: `server` (HTTPS, routes) → `admission` (AdmissionReview in/out) →
//! `engine` (evaluate a pod view) → `policy` (one file per check). `pod` is the borrowed view
//! they share; `reload`, `metrics`, `tls`, `offline` and `images` (registry access for image
//! signatures, whose verdicts the engine reads through a trait) sit beside them, and the command line
//! lives in the binary. `audit` runs the same decoder and engine over what a cluster already
//! runs, read through the Kubernetes API.

pub mod admission;
pub mod alloc_count;
pub mod audit;
pub mod bench;
pub mod cel;
pub mod engine;
pub mod image_pass;
pub mod image_ref;
pub mod images;
pub mod labels;
pub mod metrics;
pub mod mutation;
pub mod namespaces;
pub mod offline;
pub mod outcome;
pub mod pod;
pub mod policy;
pub mod reload;
pub mod row;
pub mod server;
pub mod table;
pub mod tls;
pub mod watch;
