//! What production brings, against the real-tablet cluster (keyspace `onlineddl`, one shard,
//! a primary and a replica), with writes going on: `PlannedReparentShard` and
//! `EmergencyReparentShard` (the primary's vttablet SIGKILLed) in the middle of a sync's copy
//! and of its replication, streaming from the replica and from the primary; vtgate SIGKILLed
//! and restarted; a copy the tablets cut into short cycles; the sync SIGKILLed in between.
//! Each mirror ends equal to the source row by row; its stored checkpoint never moves
//! backwards (each sample's GTID set contains the one before); each fault says how long the
//! sync took to commit again.

mod copy_cycles;
mod harness;

use std::time::Duration;

use crate::support::vitess::*;
use harness::*;

const TABLE: &str = "fo_rows";
const ROWS: i64 = 200_000;

/// What one mirror goes through: a reparent in its copy, a vtgate restart (before or after its
/// replication's reparent), the other kind of reparent in replication, SIGKILLs in between.
struct Plan {
    tablet_type: &'static str,
    in_copy: Reparent,
    in_replication: Reparent,
    vtgate_restart_in_replication: bool,
}

/// Every reparent kind in both phases from both tablet types.
const PLANS: [Plan; 4] = [
    Plan {
        tablet_type: "replica",
        in_copy: Reparent::Planned,
        in_replication: Reparent::Emergency,
        vtgate_restart_in_replication: false,
    },
    Plan {
        tablet_type: "primary",
        in_copy: Reparent::Emergency,
        in_replication: Reparent::Planned,
        vtgate_restart_in_replication: true,
    },
    Plan {
        tablet_type: "primary",
        in_copy: Reparent::Planned,
        in_replication: Reparent::Emergency,
        vtgate_restart_in_replication: false,
    },
    Plan {
        tablet_type: "replica",
        in_copy: Reparent::Emergency,
        in_replication: Reparent::Planned,
        vtgate_restart_in_replication: true,
    },
];

fn vtgate_restart(m: &mut Mirror, writes: &mut Writes, c: &Cluster, report: &mut Vec<String>) {
    let phase = stored_phase(&m.db);
    let away = writes.around_vtgate_restart(c);
    let converged = m.converges("a vtgate restart");
    report.push(format!(
        "{}: vtgate SIGKILLed and restarted ({away:.1?}) in {phase:?}, committed again {converged:.1?} after it served",
        m.tablet_type
    ));
}

fn run_plan(plan: &Plan, m: &mut Mirror, writes: &mut Writes, c: &Cluster) -> Vec<String> {
    let mut report = Vec::new();
    m.start(&c.grpc);
    m.wait_for_phase("copy");
    let phase = stored_phase(&m.db);
    let took = plan.in_copy.run(writes, c);
    let converged = m.converges("a reparent during the copy");
    report.push(format!(
        "{}: {:?} reparent ({took:.1?}) begun in {phase:?}, ended in {:?}; committed again {converged:.1?} later",
        m.tablet_type,
        plan.in_copy,
        stored_phase(&m.db)
    ));
    m.sigkill("after the reparent during the copy");
    m.start(&c.grpc);
    if !plan.vtgate_restart_in_replication {
        std::thread::sleep(Duration::from_millis(400));
        vtgate_restart(m, writes, c, &mut report);
    }
    m.wait_for_phase("replication");
    let took = plan.in_replication.run(writes, c);
    let converged = m.converges("a reparent during replication");
    report.push(format!(
        "{}: {:?} reparent ({took:.1?}) during replication, committed again {converged:.1?} later",
        m.tablet_type, plan.in_replication
    ));
    if plan.vtgate_restart_in_replication {
        vtgate_restart(m, writes, c, &mut report);
    }
    m.sigkill("in replication");
    report
}

#[test]
fn planned_and_emergency_reparents_and_vtgate_restarts_during_copy_and_replication_lose_nothing() {
    let Some(c) = cluster("RESHARD_") else { return };
    fresh_table(&c, TABLE, ROWS);
    let dir = tempfile::tempdir().unwrap();
    let mut writes = Writes::start(&c, TABLE, ROWS);
    let mut mirrors = Vec::new();
    let mut report = Vec::new();
    for (i, plan) in PLANS.iter().enumerate() {
        let db = dir.path().join(format!("{i}-{}.db", plan.tablet_type));
        let mut m = Mirror::new(db, plan.tablet_type, TABLE);
        report.extend(run_plan(plan, &mut m, &mut writes, &c));
        mirrors.push(m);
    }
    writes.pause();
    for m in &mut mirrors {
        let rows = m.equals_the_source(&c);
        report.push(format!(
            "{}: {rows} rows equal to the source",
            m.tablet_type
        ));
    }
    println!(
        "failover scenarios ({} write rounds):\n  {}",
        writes.rounds,
        report.join("\n  ")
    );
    run_sql(&mut c.sql(KEYSPACE), &[&format!("DROP TABLE {TABLE}")]);
}
