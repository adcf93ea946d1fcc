//! Where a mirror's rows come from: a vtgate and the keyspaces, shards and tables to follow.

use std::path::Path;

use anyhow::{Context, Result};

use crate::source::transport::{Tls, Vtgate};
use crate::source::vstream::{StreamFlags, StreamSpec};

/// A vtgate and what to mirror from it. Defaults as `vtmirror sync`'s: every table of the
/// keyspace, from replica tablets, a heartbeat asked for after 10 idle seconds.
#[derive(Debug, Clone)]
pub struct Source {
    vtgate: Vtgate,
    keyspace: String,
    tables: Vec<String>,
    shards: Vec<String>,
    tablet_type: String,
    caller_id: Option<String>,
}

impl Source {
    /// `keyspace` as `sync --keyspace` takes it: a name, names separated by commas, or `*`.
    /// `vtgate` is HOST:PORT of its gRPC port (`https://HOST:PORT`: TLS, system roots).
    pub fn new(vtgate: &str, keyspace: &str) -> Result<Source> {
        let source = Source {
            vtgate: Vtgate::from(vtgate),
            keyspace: keyspace.to_string(),
            tables: Vec::new(),
            shards: Vec::new(),
            tablet_type: "replica".to_string(),
            caller_id: None,
        };
        source.spec()?;
        Ok(source)
    }

    /// Only these tables (and only these shards, when not empty), as `--tables`/`--shards`.
    pub fn only(mut self, tables: &[&str], shards: &[&str]) -> Result<Source> {
        self.tables = tables.iter().map(|t| t.to_string()).collect();
        self.shards = shards.iter().map(|s| s.to_string()).collect();
        self.spec()?;
        Ok(self)
    }

    /// Tablet type to stream from: `replica` (the default), `primary` or `rdonly`.
    pub fn tablet_type(mut self, tablet_type: &str) -> Result<Source> {
        self.tablet_type = tablet_type.to_string();
        self.spec()?;
        Ok(self)
    }

    /// TLS to vtgate, trusting the PEM CA certificates in `ca_file`.
    pub fn tls_ca(mut self, ca_file: &Path) -> Result<Source> {
        let pem = std::fs::read(ca_file)
            .with_context(|| format!("reading the CA file {}", ca_file.display()))?;
        self.vtgate.tls.get_or_insert_with(Tls::default).ca_pem = Some(pem);
        Ok(self)
    }

    /// The principal sent as each call's effective caller id (vtgate's table ACLs).
    pub fn caller_id(mut self, principal: &str) -> Source {
        self.caller_id = Some(principal.to_string());
        self
    }

    /// The stream this source asks vtgate for; validated by every builder call above.
    pub(crate) fn spec(&self) -> Result<StreamSpec> {
        StreamSpec::from_flags(StreamFlags {
            vtgate: self.vtgate.clone(),
            keyspaces: std::slice::from_ref(&self.keyspace),
            shards: &self.shards,
            tables: &self.tables,
            rules: &[],
            tablet_type: &self.tablet_type,
            heartbeat_secs: 10,
            caller_id: self.caller_id.as_deref(),
        })
    }

    pub(crate) fn vtgate(&self) -> &Vtgate {
        &self.vtgate
    }

    pub(crate) fn caller_id_text(&self) -> Option<&str> {
        self.caller_id.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::Source;

    #[test]
    fn a_source_is_checked_as_the_command_line_checks_its_flags() {
        assert!(Source::new("127.0.0.1:15991", "commerce").is_ok());
        assert!(Source::new("127.0.0.1:15991", "").is_err());
        let source = Source::new("127.0.0.1:15991", "a,b").unwrap();
        let err = source.clone().only(&[], &["-80"]).unwrap_err().to_string();
        assert!(err.contains("one --keyspace"), "{err}");
        assert!(source.clone().only(&["t`x"], &[]).is_err());
        assert!(
            source.clone().only(&["t"], &[]).is_err(),
            "unqualified with two keyspaces"
        );
        assert!(source.clone().only(&["a.t"], &[]).is_ok());
        assert!(source.tablet_type("leader").is_err());
    }

    #[test]
    fn a_source_asks_for_the_tables_and_tablet_type_it_was_given() {
        let source = Source::new("127.0.0.1:15991", "commerce")
            .and_then(|s| s.only(&["customer"], &[]))
            .and_then(|s| s.tablet_type("primary"))
            .unwrap();
        let spec = source.spec().unwrap();
        assert_eq!(spec.selection.tables, vec!["customer".to_string()]);
        assert_eq!(
            spec.tablet_type,
            crate::source::proto::topodata::TabletType::Primary
        );
        assert_eq!(spec.heartbeat_secs, 10, "the command line's default");
    }
}
