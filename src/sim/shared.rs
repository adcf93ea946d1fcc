//! `SharedModel`: the model behind a mutex, plus a change counter that wakes streams.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::model::{Model, ModelError, Row, TxnSpec};
use super::schema::ModelSpec;
use crate::source::proto::binlogdata::VGtid;
use crate::source::proto::query::Field;

/// The model shared by the server, workloads and tests: a mutex plus a change counter that
/// wakes up streams whenever a transaction is applied.
#[derive(Debug)]
pub struct SharedModel {
    model: Mutex<Model>,
    version: watch::Sender<u64>,
}

impl SharedModel {
    /// Wraps a new model built from `spec`.
    pub fn new(spec: ModelSpec) -> Arc<Self> {
        Self::from_model(Model::new(spec))
    }

    /// Wraps an existing model.
    pub fn from_model(model: Model) -> Arc<Self> {
        let (version, _) = watch::channel(0);
        Arc::new(Self {
            model: Mutex::new(model),
            version,
        })
    }

    /// Locks the model (a poisoned lock is recovered: the model is never left half-updated).
    pub fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the model without waking streams.
    pub fn read<R>(&self, f: impl FnOnce(&Model) -> R) -> R {
        f(&self.lock())
    }

    /// Runs `f` on the model, then wakes every stream.
    pub fn write<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        let r = f(&mut self.lock());
        self.version.send_modify(|v| *v += 1);
        r
    }

    /// A receiver that changes after every `write`.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// `Model::apply` + wake-up.
    pub fn apply(&self, txn: &TxnSpec) -> Result<usize, ModelError> {
        self.write(|m| m.apply(txn))
    }
    /// `Model::positions`.
    pub fn positions(&self) -> VGtid {
        self.read(|m| m.positions())
    }
    /// `Model::table_rows`.
    pub fn table_rows(&self, table: &str) -> BTreeMap<i64, Row> {
        self.read(|m| m.table_rows(table))
    }
    /// `Model::fields`.
    pub fn fields(&self, table: &str) -> Vec<Field> {
        self.read(|m| m.fields(table))
    }
    /// `Model::total_rows`.
    pub fn total_rows(&self) -> usize {
        self.read(|m| m.total_rows())
    }
}
