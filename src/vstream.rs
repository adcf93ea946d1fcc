//! Talking to vtgate: connect (keepalive, message size), build the VStream request from a
//! position, and read responses with a stall timeout.

use std::time::Duration;

use anyhow::{Context, Result};
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

use crate::proto::binlogdata::{Filter, Rule, VGtid};
use crate::proto::topodata::TabletType;
use crate::proto::vtgate::{VStreamFlags, VStreamRequest, VStreamResponse};
use crate::proto::vtgateservice::vitess_client::VitessClient;
use crate::proto::vtrpc::CallerId;

/// vtgate's own limit is 16 MiB by default; a single huge row is sent alone and may exceed
/// any packet size, so accept up to this much.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// HTTP/2 keepalive, the only liveness check with `--heartbeat 0` and before a stream's first
/// message: a PING after this long without a byte from vtgate (so never while it streams
/// events or heartbeats). Not lower: vtgate's gRPC server (grpc-go) counts PINGs closer than
/// `--grpc_server_keepalive_enforcement_policy_min_time` (default 10 s) as abuse and answers
/// them with GOAWAY `too_many_pings`; 15 s keeps a margin over that.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// ... and the connection counts as dead if the PONG takes longer than this. The PONG queues
/// behind up to an HTTP/2 window of data already in flight, so a slow link needs seconds.
/// A black-holed connection is detected after interval + timeout = 25 s (measured in
/// `tests/network_faults.rs`; 30 s with the former 20 s interval).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything about the stream that does not change between reconnects.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub vtgate: String,
    pub keyspace: String,
    pub rules: Vec<Rule>,
    pub tablet_type: TabletType,
    pub heartbeat_secs: u32,
    pub caller_id: Option<String>,
    pub tables_to_copy: Vec<String>,
}

/// The stream flags `sync` and `tail` share, as given on the command line.
pub struct StreamFlags<'a> {
    pub vtgate: &'a str,
    pub keyspace: &'a str,
    pub tables: &'a [String],
    pub rules: &'a [String],
    pub tablet_type: &'a str,
    pub heartbeat_secs: u32,
    pub caller_id: Option<&'a str>,
}

impl StreamSpec {
    /// Validates command-line stream flags into a spec.
    pub fn from_flags(flags: StreamFlags) -> Result<Self> {
        Ok(StreamSpec {
            vtgate: flags.vtgate.to_string(),
            keyspace: flags.keyspace.to_string(),
            rules: rules(flags.tables, flags.rules),
            tablet_type: parse_tablet_type(flags.tablet_type)?,
            heartbeat_secs: flags.heartbeat_secs,
            caller_id: flags.caller_id.map(str::to_string),
            tables_to_copy: Vec::new(),
        })
    }

    pub fn request(&self, position: VGtid) -> VStreamRequest {
        VStreamRequest {
            caller_id: self.caller_id.as_ref().map(|principal| CallerId {
                principal: principal.clone(),
                component: "vtmirror".into(),
                ..Default::default()
            }),
            tablet_type: self.tablet_type as i32,
            vgtid: Some(position),
            filter: Some(Filter {
                rules: self.rules.clone(),
                field_event_mode: 0,
            }),
            flags: Some(VStreamFlags {
                heartbeat_interval: self.heartbeat_secs,
                // Bare table names: one keyspace per mirror, and it saves work on both ends.
                exclude_keyspace_from_table_name: true,
                tables_to_copy: self.tables_to_copy.clone(),
                // Large transactions stream in chunks instead of being buffered by vtgate.
                transaction_chunk_size: 16 * 1024 * 1024,
                ..Default::default()
            }),
        }
    }

    /// How long the stream may stay silent before it counts as stalled.
    pub fn stall_timeout(&self) -> Option<Duration> {
        (self.heartbeat_secs > 0)
            .then(|| Duration::from_secs(u64::from(self.heartbeat_secs) * 3 + 5))
    }
}

pub async fn connect(vtgate: &str) -> Result<VitessClient<Channel>> {
    let uri = if vtgate.contains("://") {
        vtgate.to_string()
    } else {
        format!("http://{vtgate}")
    };
    let endpoint = Endpoint::from_shared(uri)
        .with_context(|| format!("invalid vtgate address {vtgate}"))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to vtgate at {vtgate}"))?;
    Ok(VitessClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

pub async fn open_stream(
    client: &mut VitessClient<Channel>,
    request: VStreamRequest,
) -> Result<Streaming<VStreamResponse>> {
    Ok(client
        .v_stream(request)
        .await
        .context("starting the VStream")?
        .into_inner())
}

/// Parses `primary|replica|rdonly`.
pub fn parse_tablet_type(text: &str) -> Result<TabletType> {
    match text.to_ascii_lowercase().as_str() {
        "primary" | "master" => Ok(TabletType::Primary),
        "replica" => Ok(TabletType::Replica),
        "rdonly" | "batch" => Ok(TabletType::Rdonly),
        other => anyhow::bail!("unknown tablet type {other:?} (use primary, replica or rdonly)"),
    }
}

/// A rule for one table. vttablet plans a plain table name's replication from the filter as a
/// SELECT (an empty filter fails there with "Query was empty"), so it always gets one.
fn table_rule(table: &str, filter: &str) -> Rule {
    let filter = if filter.is_empty() && !table.starts_with('/') {
        format!("select * from `{}`", table.replace('`', "``"))
    } else {
        filter.to_string()
    };
    Rule {
        r#match: table.to_string(),
        filter,
    }
}

/// Filter rules from `--tables a,b` and `--rule MATCH[=FILTER]`; none = every table.
pub fn rules(tables: &[String], rule_args: &[String]) -> Vec<Rule> {
    let mut rules: Vec<Rule> = tables
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| table_rule(t, ""))
        .collect();
    for arg in rule_args {
        let (m, f) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
        rules.push(table_rule(m, f));
    }
    if rules.is_empty() {
        rules.push(table_rule("/.*", ""));
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_tables_or_rules_means_every_table() {
        let r = rules(&[], &[]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].r#match, "/.*");
    }

    #[test]
    fn rule_arguments_split_at_the_first_equals_sign() {
        let r = rules(
            &["a".into()],
            &["t=select id, name from t where x = 1".into()],
        );
        assert_eq!(r[0].r#match, "a");
        assert_eq!(
            r[0].filter, "select * from `a`",
            "a table name always gets a SELECT"
        );
        assert_eq!(r[1].r#match, "t");
        assert_eq!(r[1].filter, "select id, name from t where x = 1");
    }

    #[test]
    fn caller_id_and_heartbeat_are_sent() {
        let spec = StreamSpec {
            vtgate: "x:1".into(),
            keyspace: "ks".into(),
            rules: rules(&[], &[]),
            tablet_type: TabletType::Replica,
            heartbeat_secs: 5,
            caller_id: Some("mirror_user".into()),
            tables_to_copy: vec![],
        };
        let req = spec.request(VGtid::default());
        assert_eq!(req.caller_id.unwrap().principal, "mirror_user");
        assert_eq!(req.flags.unwrap().heartbeat_interval, 5);
        assert_eq!(req.tablet_type, TabletType::Replica as i32);
    }
}
