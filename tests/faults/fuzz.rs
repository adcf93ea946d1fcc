//! Fuzzing the wire decoder with proptest: arbitrary and mutated protobuf bytes, mutated
//! FIELD/ROW/COMMIT sequences, and every value conversion with arbitrary bytes. The
//! property: no panic (proptest reports one as a failure, with the shrunk input); the decoder
//! either accepts the input or returns an error; accepted rows have the declared column
//! count; unmutated input is accepted.
//!
//! Bounded for CI (a few thousand cases per target). For a soak:
//! `VTMIRROR_FUZZ_SECONDS=600 cargo test --release --test faults fuzz:: -- --nocapture`
//! (each target runs that long), or `VTMIRROR_FUZZ_CASES=<n>`; `VTMIRROR_FUZZ_SEED=<n>`
//! repeats a run (the seed is printed).

mod cases;
mod mutations;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cases::{case, collation, column_type_text, vitess_type, Case, KEYSPACE};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use prost::Message;
use vtmirror::source::decode::{Change, Decoder, Step};
use vtmirror::source::gtid_set::GtidSet;
use vtmirror::source::proto::binlogdata::{ShardGtid, VEvent, VGtid};
use vtmirror::source::proto::vstream_events::{Event, Response};
use vtmirror::source::proto::vtgate::VStreamResponse;
use vtmirror::source::selection::Selection;
use vtmirror::source::value::{storage_for, to_sql_bytes, ColumnType, Storage, Value};

const DEFAULT_CASES: u32 = 20_000;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `property` over `strategy` for the configured cases or seconds; prints executions.
fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let seconds = env_number("VTMIRROR_FUZZ_SECONDS").map(Duration::from_secs);
    let cases = env_number("VTMIRROR_FUZZ_CASES")
        .map_or(DEFAULT_CASES, |n| n.clamp(1, u64::from(u32::MAX)) as u32);
    let seed = env_number("VTMIRROR_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let executions = AtomicU64::new(0);
    let started = Instant::now();
    let mut round = 0u64;
    loop {
        let config = Config {
            cases,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed.wrapping_add(round)),
            max_shrink_iters: 10_000,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let result = runner.run(&strategy, |input| {
            executions.fetch_add(1, Ordering::Relaxed);
            property(input)
        });
        if let Err(e) = result {
            panic!(
                "fuzz {name} (VTMIRROR_FUZZ_SEED={}) failed: {e}",
                seed.wrapping_add(round)
            );
        }
        round += 1;
        if seconds.is_none_or(|s| started.elapsed() >= s) {
            break;
        }
    }
    println!(
        "fuzz {name}: {} executions in {:.1} s, 0 panics (seed {seed}, {round} rounds)",
        executions.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

/// The position the stream started from: behind the valid sequence's VGTID.
fn start_position() -> VGtid {
    VGtid {
        shard_gtids: ["-80", "80-"]
            .iter()
            .map(|s| ShardGtid {
                keyspace: KEYSPACE.into(),
                shard: (*s).into(),
                gtid: "MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5".into(),
                table_p_ks: vec![],
            })
            .collect(),
    }
}

/// The events as the sync's own message types see them.
fn sync_view(events: Vec<VEvent>) -> Result<Vec<Event>, TestCaseError> {
    events
        .into_iter()
        .map(Event::try_from)
        .collect::<Result<_, _>>()
        .map_err(|e| TestCaseError::fail(format!("re-encoding an event: {e}")))
}

/// Decodes until the first error; checks every accepted row. Ok(true) when all was accepted.
fn decode_all(events: Vec<Event>) -> Result<bool, TestCaseError> {
    let mut decoder = Decoder::new(&Selection::keyspace(KEYSPACE)).starting_at(&start_position());
    for event in events {
        let mut steps = Vec::new();
        let outcome = decoder.decode(event, &mut steps);
        check_rows(&steps)?;
        if outcome.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn check_rows(steps: &[Step]) -> Result<(), TestCaseError> {
    for step in steps {
        let Step::Rows {
            schema, changes, ..
        } = step
        else {
            continue;
        };
        let table = &schema.schema;
        for change in changes {
            let (have, want) = match change {
                Change::Upsert(values) => (values.len(), table.columns.len()),
                Change::Delete(key) => (key.len(), table.pk.len()),
                Change::Merge { values, .. } => (values.len(), table.columns.len()),
            };
            prop_assert_eq!(have, want, "accepted row with the wrong column count");
        }
    }
    Ok(())
}

/// Raw bytes: either anything, or a valid response's encoding with bytes flipped, inserted,
/// removed or cut (so decoding gets past the first field).
fn response_bytes() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (case(0), vec((any::<usize>(), any::<u8>(), 0u8..4), 1..6)).prop_map(
        |(case, edits): (Case, Vec<(usize, u8, u8)>)| {
            let mut bytes = VStreamResponse {
                events: case.valid_events(),
            }
            .encode_to_vec();
            for (at, byte, kind) in edits {
                let i = at % (bytes.len() + 1);
                match kind {
                    0 if i < bytes.len() => bytes[i] ^= byte.max(1),
                    1 => bytes.insert(i, byte),
                    2 if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    _ => bytes.truncate(i),
                }
            }
            bytes
        },
    );
    prop_oneof![1 => vec(any::<u8>(), 0..512), 3 => mutated]
}

#[test]
fn arbitrary_and_mutated_protobuf_bytes_never_panic_the_decoder() {
    fuzz("protobuf bytes", response_bytes(), |bytes| {
        // Decoded as the sync decodes the wire (names as unchecked bytes).
        if let Ok(response) = Response::decode(bytes.as_slice()) {
            decode_all(response.events)?;
        }
        Ok(())
    });
}

#[test]
fn mutated_field_row_commit_sequences_are_decoded_or_refused() {
    let (mutated, accepted_mutated) = (AtomicU64::new(0), AtomicU64::new(0));
    fuzz("FIELD/ROW/COMMIT sequences", case(4), |case| {
        let accepted = decode_all(sync_view(case.events())?)?;
        if case.mutations.is_empty() {
            prop_assert!(accepted, "a valid sequence was refused");
        } else {
            mutated.fetch_add(1, Ordering::Relaxed);
            accepted_mutated.fetch_add(u64::from(accepted), Ordering::Relaxed);
        }
        Ok(())
    });
    let (m, a) = (mutated.into_inner(), accepted_mutated.into_inner());
    println!(
        "  of {m} mutated sequences {a} were accepted, {} refused",
        m - a
    );
    assert!(a > 0 && a < m, "the mutations reach both outcomes");
}

/// Bytes a value conversion may meet: anything, or numbers in every notation.
fn value_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    let bytes = prop_oneof![
        vec(any::<u8>(), 0..40),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        any::<f64>().prop_map(|f| format!("{f:E}").into_bytes()),
        "[0-9eE+.-]{0,24}".prop_map(String::into_bytes),
    ];
    prop::option::weighted(0.95, bytes)
}

#[test]
fn every_value_type_converts_arbitrary_bytes_or_refuses_them() {
    let column = (
        vitess_type(),
        collation(),
        column_type_text(),
        any::<bool>(),
    );
    fuzz(
        "value conversions",
        (column, value_bytes()),
        |((t, c, ct, strings), raw)| {
            let col = ColumnType {
                vitess_type: t,
                collation: c,
                column_type: ct,
                enum_set_strings: strings,
            };
            let Ok(value) = to_sql_bytes(&col, raw.as_deref()) else {
                return Ok(());
            };
            let fits = match (storage_for(t, c), &value) {
                (_, Value::Null) => raw.is_none(),
                (Storage::Integer, Value::Integer(_)) => true,
                (Storage::IntegerOrText, Value::Integer(_)) => true,
                // Text is bound to SQLite unchecked, so it must always be valid UTF-8.
                (Storage::IntegerOrText | Storage::Text, Value::Text(text)) => {
                    std::str::from_utf8(text).is_ok()
                }
                (Storage::Real, Value::Real(_)) => true,
                (Storage::Blob, Value::Blob(b)) => raw.as_deref() == Some(&b[..]),
                _ => false,
            };
            prop_assert!(fits, "type {} stored as {:?}", t, value);
            Ok(())
        },
    );
}

#[test]
fn gtid_sets_parse_or_refuse_and_contain_themselves() {
    let text = prop_oneof![
        "\\PC{0,40}",
        "([0-9a-fA-F-]{8,36}(:[0-9]{1,3}(-[0-9]{1,3})?){0,3},?){0,3}",
        "(3e11fa47-71ca-11e1-9e33-c80aa9429562(:[a-z_]{0,3})?(:[0-9]{1,20}(-[0-9]{1,20})?){1,3},?){1,3}",
    ];
    fuzz("GTID sets", text, |text| {
        if let Ok(set) = GtidSet::parse(&text) {
            prop_assert!(set.contains(&set));
            prop_assert!(set.contains(&GtidSet::default()));
        }
        Ok(())
    });
}
