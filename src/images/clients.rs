//! Registry clients, one per set of registry access settings (protocols, credentials, mirrors),
//! kept only while a loaded policy still has those settings.
//!
//! A client holds credentials and the registries' bearer tokens. Once no policy has its
//! settings (a reload removed the policy or rotated its credentials), nothing asks for it
//! again; keeping it would grow memory with every rotation and keep secrets the policies no
//! longer hold. Rules hold their settings in an `Arc`, so each client keeps a `Weak` to every
//! settings it served, and goes once they are all dropped: the old policy set going away
//! (after the last review or audit that read it) is the signal, and reload needs no hook.
//! That holds as long as only the policy set holds the settings for long: a client must not
//! keep an `Arc` to them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

pub(crate) struct Clients<C, S> {
    by_access: Mutex<HashMap<u64, Kept<C, S>>>,
}

struct Kept<C, S> {
    client: Arc<C>,
    /// One per live settings with this access id (a policy and its later revisions share it).
    users: Vec<Weak<S>>,
}

impl<C, S> Clients<C, S> {
    pub(crate) fn new() -> Self {
        Clients {
            by_access: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `settings` (identified by `access_id`), built by `build` if none serves
    /// them yet. Clients whose settings are all gone are dropped here: this runs once per
    /// verification, on its way to the registry, so cached reviews never pay for it.
    pub(crate) fn get_or_build<E>(
        &self,
        access_id: u64,
        settings: &Arc<S>,
        build: impl FnOnce() -> Result<C, E>,
    ) -> Result<Arc<C>, E> {
        let mut by_access = self.by_access.lock().unwrap_or_else(|p| p.into_inner());
        // Registered before the sweep: a new revision of a policy whose old revision is gone
        // keeps the client (and its tokens) when its access settings did not change.
        if let Some(kept) = by_access.get_mut(&access_id)
            && !kept
                .users
                .iter()
                .any(|u| std::ptr::eq(u.as_ptr(), Arc::as_ptr(settings)))
        {
            kept.users.push(Arc::downgrade(settings));
        }
        by_access.retain(|_, kept| {
            kept.users.retain(|u| u.strong_count() > 0);
            !kept.users.is_empty()
        });
        if let Some(kept) = by_access.get(&access_id) {
            return Ok(Arc::clone(&kept.client));
        }
        let client = Arc::new(build()?);
        by_access.insert(
            access_id,
            Kept {
                client: Arc::clone(&client),
                users: vec![Arc::downgrade(settings)],
            },
        );
        Ok(client)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_access
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// Settings as a policy set holds them; the string stands for the credentials.
    type Settings = Arc<&'static str>;

    fn client_for(
        clients: &Clients<String, &'static str>,
        access_id: u64,
        settings: &Settings,
        built: &mut u32,
    ) -> Arc<String> {
        let result: Result<_, Infallible> = clients.get_or_build(access_id, settings, || {
            *built += 1;
            Ok(format!("client {built} for {settings}"))
        });
        let Ok(client) = result;
        client
    }

    #[test]
    fn equal_settings_share_one_client() {
        let clients = Clients::new();
        let (policy_a, policy_b) = (Arc::new("user:pw"), Arc::new("user:pw"));
        let mut built = 0;
        let first = client_for(&clients, 1, &policy_a, &mut built);
        let second = client_for(&clients, 1, &policy_b, &mut built);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!((built, clients.len()), (1, 1));
        // Still served while one of the two policies holds the settings.
        drop(policy_a);
        let third = client_for(&clients, 1, &policy_b, &mut built);
        assert!(Arc::ptr_eq(&first, &third));
        assert_eq!(built, 1);
    }

    #[test]
    fn a_client_goes_once_no_policy_has_its_settings() {
        let clients = Clients::new();
        let mut built = 0;
        let old = Arc::new("user:old-password");
        let stale = client_for(&clients, 1, &old, &mut built);
        // The reload: the credentials rotated, the old set is dropped.
        let new = Arc::new("user:new-password");
        drop(old);
        let fresh = client_for(&clients, 2, &new, &mut built);
        assert_eq!(clients.len(), 1, "the old credentials' client is gone");
        assert_eq!(*stale, "client 1 for user:old-password");
        assert_eq!(*fresh, "client 2 for user:new-password");
    }

    #[test]
    fn a_new_revision_with_the_same_access_keeps_the_client() {
        let clients = Clients::new();
        let mut built = 0;
        let revision_1 = Arc::new("user:pw");
        let first = client_for(&clients, 1, &revision_1, &mut built);
        let revision_2 = Arc::new("user:pw");
        drop(revision_1);
        let second = client_for(&clients, 1, &revision_2, &mut built);
        assert!(Arc::ptr_eq(&first, &second), "its tokens are kept");
        assert_eq!(built, 1);
    }

    #[test]
    fn a_client_whose_settings_return_is_built_anew() {
        let clients = Clients::new();
        let mut built = 0;
        let settings = Arc::new("user:pw");
        client_for(&clients, 1, &settings, &mut built);
        drop(settings);
        let other = Arc::new("other:pw");
        client_for(&clients, 2, &other, &mut built);
        let settings = Arc::new("user:pw");
        client_for(&clients, 1, &settings, &mut built);
        assert_eq!((built, clients.len()), (3, 2));
    }

    #[test]
    fn a_failed_build_keeps_nothing() {
        let clients: Clients<String, &'static str> = Clients::new();
        let settings = Arc::new("user:pw");
        let failed: Result<_, &str> = clients.get_or_build(1, &settings, || Err("no roots"));
        assert_eq!(failed.err(), Some("no roots"));
        assert_eq!(clients.len(), 0);
    }
}
