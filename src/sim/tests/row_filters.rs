//! A rule filter with a WHERE clause, as vstreamer (v24) applies it: without a vindex match an
//! UPDATE that moves a row out of the filter is sent with both images, and a client applying
//! it keeps the row (issue 29); with the match vtmirror adds (`source::rule_filter`) only the
//! passing images are sent and the client ends with exactly the filtered rows.

use super::*;
use crate::sim::model::TxnSpec;
use crate::source::rule_filter::prepare;

const RULE: &str = "select * from accounts where balance in (1, 2)";

/// One transaction setting every account's balance to `balance(id)`.
fn set_balances(model: &SharedModel, balance: impl Fn(i64) -> i64) {
    let mut txn = TxnSpec::new();
    for (id, mut row) in model.table_rows("accounts") {
        row[1] = Some(balance(id).to_string().into_bytes());
        txn = txn.update("accounts", row);
    }
    model.apply(&txn).unwrap();
}

/// Copies `accounts` through `filter`, moves every row (half of those in the filter leave, as
/// many others enter), and returns what a client applying the stream holds, and the filtered
/// source.
async fn mirror_through(filter: String) -> (BTreeMap<i64, Row>, BTreeMap<i64, Row>) {
    let mut h = harness(40, small_batches(7)).await;
    set_balances(&h.model, |id| id % 4);
    let mut req = request(all_shards(""), VStreamFlags::default());
    let rule = &mut req.filter.as_mut().unwrap().rules[0];
    rule.r#match = "accounts".into();
    rule.filter = filter;
    let mut s = open(&mut h, req).await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, fully_copied).await;
    set_balances(&h.model, |id| (id + 1) % 4);
    let mut m = read_until_caught_up(&mut s, &mut evs, &h.model).await;
    let passes = |row: &Row| matches!(row[1].as_deref(), Some(b"1") | Some(b"2"));
    let mut want = h.model.table_rows("accounts");
    want.retain(|_, row| passes(row));
    h.server.shutdown().await;
    (m.tables.remove("accounts").unwrap_or_default(), want)
}

#[tokio::test]
async fn without_a_vindex_match_rows_leaving_the_filter_arrive_as_updates_and_stay() {
    let (got, want) = mirror_through(RULE.to_string()).await;
    let stayed = got.keys().filter(|k| !want.contains_key(*k)).count();
    assert!(
        stayed > 0,
        "vstreamer's both-images update keeps the rows that left"
    );
}

#[tokio::test]
async fn with_the_added_vindex_match_the_client_holds_exactly_the_filtered_rows() {
    let sent = prepare("accounts", RULE).unwrap();
    assert!(sent.contains("in_keyrange"), "{sent}");
    let (got, want) = mirror_through(sent).await;
    assert!(!want.is_empty());
    assert_eq!(got, want);
}
