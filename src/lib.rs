//! portier: a Kubernetes admission webhook that judges pods against hot-reloaded policies.
//!
//! Data flows one way: `server` (HTTPS, routes) → `admission` (AdmissionReview in/out) →
//! `engine` (evaluate a pod view) → `policy` (one file per check). `pod` is the borrowed view
//! they share; `reload`, `metrics`, `tls`, `offline` and `cli` sit beside them.

pub mod engine;
pub mod pod;
pub mod policy;
