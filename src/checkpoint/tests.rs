//! Unit tests of `checkpoint`.

use super::*;

#[test]
fn round_trip() {
    let dir = std::env::temp_dir().join(format!("migrate-cp-{}", uuid::Uuid::new_v4()));
    crate::artifact::create_private_dir(&dir).unwrap();
    let mut cp = Checkpoint::new_run(
        &dir,
        Plan {
            phases: Phase::ALL.to_vec(),
            entities: vec!["buyers".into()],
        },
        None,
    );
    let mut step = Step::start(&cp.run_id);
    step.confirmed = Some(50);
    cp.put("buyers", Phase::Load, step).unwrap();
    let back = Checkpoint::load(&dir).unwrap().unwrap();
    assert_eq!(
        back.step("buyers", Phase::Load).unwrap().confirmed,
        Some(50)
    );
    assert_eq!(back.run_id, cp.run_id);
    // The baseline survives a new run.
    let mut cp = back;
    cp.baselines.insert(
        "buyers".into(),
        Baseline {
            backup: None,
            pinned_at: Utc::now(),
            run_id: cp.run_id.clone(),
            ledgers: Vec::new(),
            last_sync: None,
            created_by_import: None,
        },
    );
    cp.save().unwrap();
    let next = Checkpoint::new_run(
        &dir,
        Plan {
            phases: vec![Phase::Verify],
            entities: vec!["buyers".into()],
        },
        Checkpoint::load(&dir).unwrap(),
    );
    assert_ne!(next.run_id, cp.run_id);
    assert_eq!(next.baselines, cp.baselines);
    std::fs::remove_dir_all(dir).unwrap();
}
