//! A resumed copy of a keyspace that was resharded before its copy began: it starts on the
//! shards vtgate serves now (`resume::onto_serving_shards` says why that is exact).

use anyhow::Result;

use super::SyncOptions;
use crate::error::{classify, render, Class};
use crate::mirror::resume::{onto_serving_shards, Start};
use crate::source::vgtid;

/// `start`, moved onto the serving shards where a keyspace's copy has not begun on shards
/// vtgate no longer serves. Asks vtgate only when some shard's copy has not begun; a vtgate
/// that does not answer the listing, or refuses it, leaves `start` as it is. Key-range mirrors (`--shards`)
/// keep the shards they chose.
pub async fn follow_reshard_before_copy(opts: &SyncOptions, mut start: Start) -> Result<Start> {
    let not_begun = (start.vgtid.shard_gtids.iter())
        .any(|s| s.gtid.is_empty() && s.table_p_ks.is_empty() && !s.shard.is_empty());
    if !start.resumed
        || start.copy_completed
        || !opts.spec.selection.shards.is_empty()
        || !not_begun
    {
        return Ok(start);
    }
    // The listing only helps here: a definite refusal of it must not stop a mirror that
    // resumed fine before (a transient one is retried like the stream would be).
    let catalog = match crate::source::catalog::fetch(&opts.spec).await {
        Ok(Some(catalog)) => catalog,
        Ok(None) => return Ok(start),
        Err(e) if classify(&e) == Class::Definite => {
            tracing::warn!(error = %render(&e), "could not list the shards vtgate serves; resuming on the stored ones");
            return Ok(start);
        }
        Err(e) => return Err(e),
    };
    if let Some((vgtid, keyspaces)) = onto_serving_shards(&start.vgtid, &catalog.shards) {
        tracing::warn!(
            keyspaces = ?keyspaces,
            position = %vgtid::to_json(&vgtid),
            "resharded before its copy began: copying from the shards vtgate serves now"
        );
        start.vgtid = vgtid;
    }
    Ok(start)
}
