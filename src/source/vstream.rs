//! Talking to vtgate: connect (through `transport`), build the VStream request from a
//! position, and read responses with a stall timeout.

use std::time::Duration;

use anyhow::{Context, Result};
use tonic::Streaming;

use crate::source::naming::Naming;
use crate::source::proto::binlogdata::{Filter, Rule, VGtid};
use crate::source::proto::topodata::TabletType;
use crate::source::proto::vstream_events;
use crate::source::proto::vtgate::{VStreamFlags, VStreamRequest, VStreamResponse};
use crate::source::proto::vtrpc::CallerId;
use crate::source::selection::Selection;
use crate::source::transport::{Vtgate, VtgateClient, VtgateGrpc};

pub use crate::source::transport::{
    max_message_bytes, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, MAX_MESSAGE_BYTES,
};

/// Everything about the stream that does not change between reconnects.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Address, TLS and credentials.
    pub vtgate: Vtgate,
    /// Keyspaces, shards and tables of the mirror.
    pub selection: Selection,
    pub rules: Vec<Rule>,
    pub tablet_type: TabletType,
    pub heartbeat_secs: u32,
    pub caller_id: Option<String>,
    pub tables_to_copy: Vec<String>,
    /// `VStreamFlags.exclude_keyspace_from_table_name`, off unless asked for (see `request`).
    pub exclude_keyspace_from_table_name: bool,
}

/// The stream flags `sync` and `tail` share, as given on the command line.
pub struct StreamFlags<'a> {
    pub vtgate: Vtgate,
    pub keyspaces: &'a [String],
    pub shards: &'a [String],
    pub tables: &'a [String],
    pub rules: &'a [String],
    pub tablet_type: &'a str,
    pub heartbeat_secs: u32,
    pub caller_id: Option<&'a str>,
}

impl StreamSpec {
    /// Validates command-line stream flags into a spec.
    pub fn from_flags(flags: StreamFlags) -> Result<Self> {
        if let Some(table) = flags.tables.iter().find(|t| t.contains('`')) {
            // vttablet (v24) fails such a copy with "UnescapeID err" and vtgate retries it
            // forever without telling the client: refuse instead of hanging.
            anyhow::bail!(
                "table {table:?}: Vitess cannot stream a table whose name contains a backtick"
            );
        }
        let selection = Selection::parse(flags.keyspaces, flags.shards, flags.tables)?;
        let mut rules = selection_rules(&selection, flags.rules);
        for rule in &mut rules {
            rule.filter = crate::source::rule_filter::prepare(&rule.r#match, &rule.filter)?;
        }
        Ok(StreamSpec {
            vtgate: flags.vtgate,
            selection,
            rules,
            tablet_type: parse_tablet_type(flags.tablet_type)?,
            heartbeat_secs: flags.heartbeat_secs,
            caller_id: flags.caller_id.map(str::to_string),
            tables_to_copy: Vec::new(),
            exclude_keyspace_from_table_name: false,
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
                rules: with_online_ddl_rule(&self.rules),
                field_event_mode: 0,
            }),
            flags: Some(VStreamFlags {
                heartbeat_interval: self.heartbeat_secs,
                // Off by default: with it, vttestserver (v24) was seen to deliver a copied row
                // twice in place of another, undecodable bytes, or a vtgate crash (events
                // shared instead of cloned while being marshalled). Without it vtgate clones
                // every event (a copy ≈ 1.5× slower at the source, BENCHMARKS.md); the decoder
                // accepts both `keyspace.table` and bare names.
                exclude_keyspace_from_table_name: self.exclude_keyspace_from_table_name,
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

/// Connects to vtgate as `vtgate` says (TLS, credentials): see `transport`.
pub async fn connect(vtgate: &Vtgate) -> Result<VtgateClient> {
    crate::source::transport::connect(vtgate).await
}

pub async fn open_stream(
    client: &mut VtgateClient,
    request: VStreamRequest,
) -> Result<Streaming<VStreamResponse>> {
    Ok(client
        .v_stream(request)
        .await
        .context("starting the VStream")?
        .into_inner())
}

/// Starts the VStream decoded into `vstream_events` (what the sync reads, with fewer
/// allocations than the full `VStreamResponse`).
pub async fn open_event_stream(
    grpc: &mut VtgateGrpc,
    request: VStreamRequest,
) -> Result<Streaming<vstream_events::Response>> {
    // As the generated client does: a channel that is not ready is a retryable Unknown.
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(format!("Service was not ready: {e}")))
        .context("starting the VStream")?;
    let codec = tonic_prost::ProstCodec::<VStreamRequest, vstream_events::Response>::default();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/vtgateservice.Vitess/VStream");
    let mut request = tonic::Request::new(request);
    request
        .extensions_mut()
        .insert(tonic::GrpcMethod::new("vtgateservice.Vitess", "VStream"));
    Ok(grpc
        .server_streaming(request, path, codec)
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

/// Online DDL alters a shadow table (`_vt_vrp_…`) and swaps it in later; vttablet sends a
/// DDL event only when the filter matches the table it names, so with table names alone the
/// shadow's ALTER would be missing at the cut-over. This rule adds those DDL events (vttablet
/// sends no rows of internal tables, and the decoder skips any). Only `/.*` is known to cover
/// the shadows already; any other regex may not, and a redundant rule is harmless.
pub const ONLINE_DDL_RULE: &str = "/^_vt_vrp_";

fn with_online_ddl_rule(rules: &[Rule]) -> Vec<Rule> {
    let mut rules = rules.to_vec();
    if !rules.iter().any(|r| r.r#match == "/.*") {
        rules.push(table_rule(ONLINE_DDL_RULE, ""));
    }
    rules
}

/// The filter rules of a selection: its tables, then `--rule` arguments; none = every table.
pub fn selection_rules(selection: &Selection, rule_args: &[String]) -> Vec<Rule> {
    match selection.naming() {
        Naming::Bare(_) => rules(&selection.tables, rule_args),
        // A rule applies in every keyspace of the stream, and vttablet refuses a plain table
        // name its keyspace lacks: name the tables by exact-match patterns instead (the
        // decoder keeps only the keyspaces' chosen tables).
        // A table a `--rule` names keeps only that rule (see `rules`).
        Naming::Qualified => {
            let mut bare = selection.bare_tables();
            bare.retain(|t| !rules(&[], rule_args).iter().any(|r| &r.r#match == t));
            rules(&exact_patterns(&bare), rule_args)
        }
    }
}

/// `/^name$/` patterns matching exactly these table names (Go regexp syntax, which vttablet
/// uses: punctuation is escaped with a backslash).
fn exact_patterns(tables: &[String]) -> Vec<String> {
    tables
        .iter()
        .map(|t| {
            let mut pattern = String::from("/^");
            for c in t.chars() {
                if c.is_ascii_punctuation() && c != '_' {
                    pattern.push('\\');
                }
                pattern.push(c);
            }
            pattern.push('$');
            pattern
        })
        .collect()
}

/// Filter rules from `--tables a,b` and `--rule MATCH[=FILTER]`; none = every table.
///
/// vttablet plans a table by the first rule that matches it, so a table named both by
/// `--tables` and by a `--rule` gets only the rule: its own plain rule first would stream
/// the whole table and silently ignore the rule's filter.
pub fn rules(tables: &[String], rule_args: &[String]) -> Vec<Rule> {
    let user: Vec<Rule> = rule_args
        .iter()
        .map(|arg| {
            let (m, f) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
            table_rule(m, f)
        })
        .collect();
    let mut rules: Vec<Rule> = tables
        .iter()
        .filter(|t| !t.is_empty() && !user.iter().any(|r| &r.r#match == *t))
        .map(|t| table_rule(t, ""))
        .collect();
    rules.extend(user);
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
    fn a_table_named_by_tables_and_by_a_rule_keeps_only_the_rules_filter() {
        let rule = "t=select * from t where x = 1".to_string();
        let r = rules(&["t".into(), "u".into()], std::slice::from_ref(&rule));
        let matched: Vec<&str> = r.iter().map(|r| r.r#match.as_str()).collect();
        assert_eq!(
            matched,
            ["u", "t"],
            "vttablet plans a table by its first rule"
        );
        let several = Selection::parse(&["a,b".into()], &[], &["a.t".into(), "b.u".into()]);
        let r = selection_rules(&several.unwrap(), &[rule]);
        let matched: Vec<&str> = r.iter().map(|r| r.r#match.as_str()).collect();
        assert_eq!(matched, ["/^u$", "t"]);
    }

    #[test]
    fn caller_id_and_heartbeat_are_sent() {
        let spec = StreamSpec {
            vtgate: Vtgate::from("x:1"),
            selection: Selection::keyspace("ks"),
            rules: rules(&[], &[]),
            tablet_type: TabletType::Replica,
            heartbeat_secs: 5,
            caller_id: Some("mirror_user".into()),
            tables_to_copy: vec![],
            exclude_keyspace_from_table_name: false,
        };
        let req = spec.request(VGtid::default());
        assert!(
            !req.flags.as_ref().unwrap().exclude_keyspace_from_table_name,
            "vttestserver can lose copied rows with this flag"
        );
        assert_eq!(req.caller_id.unwrap().principal, "mirror_user");
        assert_eq!(req.flags.unwrap().heartbeat_interval, 5);
        assert_eq!(req.tablet_type, TabletType::Replica as i32);
    }

    #[test]
    fn several_keyspaces_name_tables_by_exact_patterns() {
        let p = exact_patterns(&["corder".into(), "a.b$".into()]);
        assert_eq!(p, vec!["/^corder$".to_string(), "/^a\\.b\\$$".to_string()]);
        let r = rules(&p, &[]);
        assert_eq!(r[0].filter, "", "a pattern needs no SELECT");
    }

    #[test]
    fn table_names_alone_still_stream_online_ddl_shadow_alters() {
        let named = with_online_ddl_rule(&rules(&["t".into()], &[]));
        assert_eq!(named.len(), 2);
        assert_eq!(named[1].r#match, ONLINE_DDL_RULE);
        assert_eq!(named[1].filter, "");
        let every = with_online_ddl_rule(&rules(&[], &[]));
        assert_eq!(every.len(), 1, "/.* already matches the shadow tables");
    }
}
