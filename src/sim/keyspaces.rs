//! The keyspaces one simulated vtgate serves: one `SharedModel` per keyspace, names distinct.
//!
//! Locks are always taken in the order the keyspaces were given (`lock_all`), so a stream
//! (which reads every keyspace it serves at once) never deadlocks with another stream; writers
//! (workloads, tests) lock one keyspace at a time.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, MutexGuard};
use std::task::Poll;

use tokio::sync::watch;

use super::model::Model;
use super::shared::SharedModel;

/// The served keyspaces, in the order given.
#[derive(Debug, Clone)]
pub struct Keyspaces {
    models: Vec<Arc<SharedModel>>,
}

impl Keyspaces {
    /// At least one model, with distinct keyspace names.
    pub fn new(models: Vec<Arc<SharedModel>>) -> anyhow::Result<Self> {
        if models.is_empty() {
            anyhow::bail!("the simulated vtgate needs at least one keyspace");
        }
        let mut seen = BTreeSet::new();
        for m in &models {
            let name = m.read(|m| m.spec.keyspace.clone());
            if !seen.insert(name.clone()) {
                anyhow::bail!("keyspace {name:?} is given twice to the simulated vtgate");
            }
        }
        Ok(Self { models })
    }

    /// The first keyspace's model (`new` refuses an empty list).
    pub fn first(&self) -> &Arc<SharedModel> {
        &self.models[0]
    }

    /// Every keyspace's model, in the order given.
    pub fn all(&self) -> &[Arc<SharedModel>] {
        &self.models
    }

    /// The model of keyspace `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<SharedModel>> {
        self.models
            .iter()
            .find(|m| m.read(|m| m.spec.keyspace == name))
    }

    /// Locks every keyspace, always in the same order.
    pub fn lock_all(&self) -> Vec<MutexGuard<'_, Model>> {
        self.models.iter().map(|m| m.lock()).collect()
    }

    /// One change receiver per keyspace (see `any_changed`).
    pub fn subscribe_all(&self) -> Vec<watch::Receiver<u64>> {
        self.models.iter().map(|m| m.subscribe()).collect()
    }
}

/// Plain references to locked models (what request resolution and streams read).
pub fn refs<'a>(guards: &'a [MutexGuard<'_, Model>]) -> Vec<&'a Model> {
    guards.iter().map(|g| &**g).collect()
}

/// Keyspace names in the order vtgate lists them (topo's sorted `GetSrvKeyspaceNames`), with
/// each one's index in `models`.
pub fn sorted_names(models: &[&Model]) -> Vec<(String, usize)> {
    let mut names: Vec<(String, usize)> = models
        .iter()
        .enumerate()
        .map(|(i, m)| (m.spec.keyspace.clone(), i))
        .collect();
    names.sort();
    names
}

/// Marks every receiver as seen.
pub fn mark_seen(changes: &mut [watch::Receiver<u64>]) {
    for rx in changes {
        rx.borrow_and_update();
    }
}

/// Waits until any keyspace changes: true, or false once a model is gone. Cancel-safe (like
/// `watch::Receiver::changed`); pending forever for no receivers.
pub async fn any_changed(changes: &mut [watch::Receiver<u64>]) -> bool {
    let mut waits: Vec<_> = changes
        .iter_mut()
        .map(|rx| Box::pin(rx.changed()))
        .collect();
    std::future::poll_fn(|cx| {
        for wait in waits.iter_mut() {
            if let Poll::Ready(r) = wait.as_mut().poll(cx) {
                return Poll::Ready(r.is_ok());
            }
        }
        Poll::Pending
    })
    .await
}
