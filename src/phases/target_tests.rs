//! Load, verify and rollback of one entity run as phases against the
//! in-memory target (docs/design.md, "The Target seam"): what a user would
//! check after each command, with no server behind it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::artifact::ArtifactWriter;
use crate::backup::rollback::{Options, rollback};
use crate::checkpoint::{Checkpoint, Phase, Plan, Step};
use crate::config::Config;
use crate::ctx::Ctx;
use crate::dynamo::{Memory, SharedTarget, Write};
use crate::entities::Entity;
use crate::progress::Progress;

const TABLE: &str = "BuyersTable-t";

fn config(dir: &Path) -> Config {
    // The endpoint refuses connections at once: the calls outside the seam
    // (CreateBackup, the restorable window) fail fast and are warned about.
    let text = format!(
        r#"{{"source": {{"type": "postgresql", "host": "127.0.0.1", "port": 5432, "database": "s9",
              "username": "u", "password": "p", "ssl": false, "schema": "public"}},
            "target": {{"region": "us-east-1", "endpoint": "http://127.0.0.1:9",
              "buyersTable": "{TABLE}", "producersTable": "ProducersTable-t", "salesTable": "SalesTable-t"}},
            "migration": {{"batchSize": 25, "concurrency": 4, "maxRetries": 1, "retryDelay": 0.001,
              "backupBeforeLoad": true}}}}"#
    );
    Config::from_str(&dir.join("config.json"), &text, &|_| None).unwrap()
}

fn buyer(i: u32, name: &str) -> String {
    format!(
        r#"{{"PK":"BUYER#{i:08}","SK":"METADATA","buyerId":"{i:08}","legacyId":{i},"companyName":"{name}","createdBy":"migration@system"}}"#
    )
}

fn ctx(dir: &Path, run_id: &str, target: &SharedTarget) -> Ctx {
    ctx_with(config(dir), dir, run_id, target)
}

fn ctx_with(config: Config, dir: &Path, run_id: &str, target: &SharedTarget) -> Ctx {
    let ctx = Ctx::standalone(
        config,
        dir.to_path_buf(),
        Progress::new(true),
        Arc::new(AtomicBool::new(false)),
        run_id.to_string(),
    );
    ctx.use_target(target.clone());
    ctx
}

/// Writes the validated artifact of buyers `ids` (named `Buyer <i>`).
fn validated(dir: &Path, run_id: &str, ids: impl Iterator<Item = u32>) {
    let path = crate::ctx::artifact_path(dir, Phase::Validate, "buyers");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = ArtifactWriter::create(&path, run_id, "validate", "buyers").unwrap();
    for i in ids {
        w.write_raw_line(buyer(i, &format!("Buyer {i}")).as_bytes())
            .unwrap();
    }
    w.finish().unwrap();
}

fn temp_dir() -> std::path::PathBuf {
    let tmp = std::env::temp_dir().join(format!("migrate-phases-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&tmp).unwrap();
    tmp
}

/// One phase of buyers as the runner runs it: the outcome recorded in the
/// step; the problems.
async fn unit(
    phase: Phase,
    ctx: &Ctx,
    cp: &mut Checkpoint,
    step: &mut Step,
) -> crate::error::Result<Vec<String>> {
    let unit = super::Unit {
        ctx,
        cp,
        entity: buyers(),
        step,
    };
    let outcome = super::run(phase, unit).await?;
    Ok(outcome.record(step))
}

fn buyers() -> &'static Entity {
    crate::entities::find("buyers").unwrap()
}

#[tokio::test]
async fn load_verify_and_rollback_through_the_in_memory_target() {
    let tmp = temp_dir();
    let dir = tmp.as_path();
    let memory = Arc::new(Memory::new());
    // Before the migration: buyer 0 as an earlier load left it, and an
    // item that is not the migration's.
    memory.put_json(TABLE, &buyer(0, "Before"));
    memory.put_json(
        TABLE,
        r#"{"PK":"USER#x","SK":"METADATA","createdBy":"someone"}"#,
    );
    let target: SharedTarget = memory.clone();

    let mut cp = Checkpoint::new_run(
        dir,
        Plan {
            phases: vec![Phase::Load, Phase::Verify],
            entities: vec!["buyers".into()],
        },
        None,
    );
    validated(dir, &cp.run_id, 0..50);

    let run = ctx(dir, &cp.run_id.clone(), &target);
    let mut step = Step::start(&run.run_id);
    let problems = unit(Phase::Load, &run, &mut cp, &mut step).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!((step.written, step.failed), (Some(50), Some(0)));
    assert_eq!(memory.items(TABLE).len(), 51);
    assert!(
        memory
            .item(TABLE, "BUYER#00000000", "METADATA")
            .unwrap()
            .contains("Buyer 0")
    );

    let mut step = Step::start(&run.run_id);
    let problems = unit(Phase::Verify, &run, &mut cp, &mut step).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        (step.records_in, step.records_out, step.rejected),
        (50, 50, 0)
    );

    // Someone deletes buyer 10 and edits buyer 20 after the load.
    let gone: crate::entities::Item =
        serde_json::from_str(r#"{"PK":"BUYER#00000010","SK":"METADATA"}"#).unwrap();
    let edits = [
        (0, Write::delete(&gone)),
        (1, Write::put_json(&buyer(20, "Edited")).unwrap()),
    ];
    target.write(TABLE, &edits).await.unwrap();
    let mut step = Step::start(&run.run_id);
    let problems = unit(Phase::Verify, &run, &mut cp, &mut step).await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("1 missing, 1 different, 0 extra"),
        "{}",
        problems[0]
    );
    assert_eq!(step.rejected, 2);

    // Rollback to the baseline: what the load wrote goes, buyer 0 comes
    // back as it was, the edited buyer is left alone (drift) and the item
    // that is not the migration's is never touched.
    let undo = ctx(dir, "rollback-t", &target);
    let options = Options {
        yes: true,
        force: false,
        last: false,
    };
    let report = rollback(&undo, buyers(), options).await.unwrap();
    assert_eq!(report.drift, 1, "{report:?}");
    assert_eq!(report.restored, 1, "{report:?}");
    let left = memory.items(TABLE);
    assert_eq!(left.len(), 3, "{left:#?}");
    assert!(
        memory
            .item(TABLE, "BUYER#00000000", "METADATA")
            .unwrap()
            .contains("Before")
    );
    assert!(
        memory
            .item(TABLE, "BUYER#00000020", "METADATA")
            .unwrap()
            .contains("Edited")
    );
    assert!(memory.item(TABLE, "USER#x", "METADATA").is_some());
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[tokio::test]
async fn the_dry_run_plans_puts_or_only_the_changes() {
    let tmp = temp_dir();
    let dir = tmp.as_path();
    let memory = Arc::new(Memory::new());
    let target: SharedTarget = memory.clone();
    validated(dir, "plan-t", 0..60);

    // Put mode: every validated item, 25 a request, 1 write unit each.
    memory.create_table(TABLE);
    let run = ctx(dir, "plan-t", &target);
    let (rows, _) = super::plan::plan(&run, &[buyers()]).await.unwrap();
    let row = &rows[0];
    assert_eq!((row.items, row.requests, row.units), (60, 3, 60), "{row:?}");
    assert!(row.sync.is_none());

    // Sync mode against a table holding 50 of them, one edited since, and
    // one the source no longer has: only the difference is planned, and
    // nothing is written.
    for i in 0..50 {
        let name = if i == 7 {
            "Edited".into()
        } else {
            format!("Buyer {i}")
        };
        memory.put_json(TABLE, &buyer(i, &name));
    }
    memory.put_json(TABLE, &buyer(99, "Gone"));
    let mut config = config(dir);
    config.migration.load_mode = crate::config::LoadMode::Sync;
    let run = ctx_with(config, dir, "plan-t", &target);
    let writes_before = memory.calls(crate::dynamo::Op::Write);
    let (rows, _) = super::plan::plan(&run, &[buyers()]).await.unwrap();
    let row = &rows[0];
    let c = row.sync.expect("sync counts");
    assert_eq!(
        (c.new, c.changed, c.unchanged, c.deleted, c.foreign),
        (10, 1, 49, 1, 0),
        "{row:?}"
    );
    assert_eq!((row.items, row.requests), (12, 1), "{row:?}");
    assert_eq!(memory.calls(crate::dynamo::Op::Write), writes_before);
    assert_eq!(memory.items(TABLE).len(), 51);
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[tokio::test]
async fn the_index_check_names_a_missing_index_before_anything_is_written() {
    let memory = Arc::new(Memory::new());
    let tmp = temp_dir();
    let config = config(&tmp);
    let sales = crate::entities::find("sales").unwrap();
    let table = config.target.table_for("sales", &config.path).unwrap();
    memory.create_table(table);
    let policy = crate::dynamo::RetryPolicy::from_config(&config.migration);
    let err = crate::preflight::indexes::check(&*memory, &config, &[sales], &policy)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("table {table} (sales)")), "{text}");
    assert!(text.contains("GSI1") && text.contains("GSI2"), "{text}");
    assert_eq!(memory.calls(crate::dynamo::Op::Write), 0);
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[tokio::test]
async fn verify_refuses_an_artifact_edited_since_validate_and_reports_nothing() {
    let tmp = temp_dir();
    let dir = tmp.as_path();
    let memory = Arc::new(Memory::new());
    let target: SharedTarget = memory.clone();
    memory.create_table(TABLE);
    validated(dir, "edit-t", 0..30);
    // One letter changed in place: same size, other bytes.
    let path = crate::ctx::artifact_path(dir, Phase::Validate, "buyers");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("Buyer 17", "Buyer 71", 1)).unwrap();

    let run = ctx(dir, "edit-t", &target);
    let mut cp = Checkpoint::new_run(
        dir,
        Plan {
            phases: vec![Phase::Verify],
            entities: vec!["buyers".into()],
        },
        None,
    );
    let mut step = Step::start(&run.run_id);
    let err = unit(Phase::Verify, &run, &mut cp, &mut step)
        .await
        .unwrap_err();
    assert!(matches!(err, crate::error::Error::Artifact { .. }), "{err}");
    assert!(!run.report("verification_report.json").exists());
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[tokio::test]
async fn rolling_back_a_table_an_import_created_deletes_it() {
    let tmp = temp_dir();
    let dir = tmp.as_path();
    let memory = Arc::new(Memory::new());
    let target: SharedTarget = memory.clone();
    for i in 0..7 {
        memory.put_json(TABLE, &buyer(i, "Imported"));
    }
    let mut cp = Checkpoint::new_run(
        dir,
        Plan {
            phases: vec![Phase::Load],
            entities: vec!["buyers".into()],
        },
        None,
    );
    cp.baselines.insert(
        "buyers".into(),
        crate::checkpoint::Baseline {
            backup: None,
            pinned_at: chrono::Utc::now(),
            run_id: cp.run_id.clone(),
            ledgers: Vec::new(),
            last_sync: None,
            created_by_import: Some(crate::import::state::Created {
                table: TABLE.into(),
                run_id: cp.run_id.clone(),
                import_arn: Some("arn:aws:dynamodb:x:import/1".into()),
                requested_at: chrono::Utc::now(),
            }),
        },
    );
    cp.save().unwrap();

    let undo = ctx(dir, "rollback-import-t", &target);
    let options = Options {
        yes: true,
        force: false,
        last: false,
    };
    let report = rollback(&undo, buyers(), options).await.unwrap();
    assert_eq!(report.deleted, 7, "{report:?}");
    assert!(memory.table_names().is_empty());
    assert_eq!(memory.calls(crate::dynamo::Op::Delete), 1);
    // Again: the table is gone, nothing to do.
    let again = rollback(&undo, buyers(), options).await.unwrap();
    assert_eq!(again.deleted, 0, "{again:?}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[tokio::test]
async fn a_sync_writes_only_the_changes_and_rollback_last_undoes_it() {
    let tmp = temp_dir();
    let dir = tmp.as_path();
    let memory = Arc::new(Memory::new());
    let target: SharedTarget = memory.clone();
    memory.create_table(TABLE);
    let plan = || Plan {
        phases: vec![Phase::Load],
        entities: vec!["buyers".into()],
    };

    // Night 1: a put load of 40 buyers.
    let mut cp = Checkpoint::new_run(dir, plan(), None);
    validated(dir, &cp.run_id, 0..40);
    let run = ctx(dir, &cp.run_id.clone(), &target);
    let mut step = Step::start(&run.run_id);
    unit(Phase::Load, &run, &mut cp, &mut step).await.unwrap();
    cp.put("buyers", Phase::Load, step).unwrap();
    assert_eq!(memory.items(TABLE).len(), 40);

    // Night 2: the source lost buyer 3, gained 40 and 41, and buyer 5 was
    // renamed. A sync writes those four changes and nothing else.
    let mut cp = Checkpoint::new_run(dir, plan(), Some(cp));
    let ids = (0..42).filter(|i| *i != 3);
    let path = crate::ctx::artifact_path(dir, Phase::Validate, "buyers");
    let mut w = ArtifactWriter::create(&path, &cp.run_id, "validate", "buyers").unwrap();
    for i in ids {
        let name = if i == 5 {
            "Renamed".into()
        } else {
            format!("Buyer {i}")
        };
        w.write_raw_line(buyer(i, &name).as_bytes()).unwrap();
    }
    w.finish().unwrap();
    let mut config = config(dir);
    config.migration.load_mode = crate::config::LoadMode::Sync;
    let run = ctx_with(config, dir, &cp.run_id.clone(), &target);
    let writes_before = memory.calls(crate::dynamo::Op::Write);
    let mut step = Step::start(&run.run_id);
    unit(Phase::Load, &run, &mut cp, &mut step).await.unwrap();
    let c = step.sync.as_ref().expect("a sync").counts;
    assert_eq!(
        (c.new, c.changed, c.unchanged, c.deleted),
        (2, 1, 38, 1),
        "{c:?}"
    );
    assert_eq!(step.written, Some(4));
    assert_eq!(memory.calls(crate::dynamo::Op::Write) - writes_before, 1);
    cp.put("buyers", Phase::Load, step).unwrap();
    assert!(memory.item(TABLE, "BUYER#00000003", "METADATA").is_none());
    assert!(
        memory
            .item(TABLE, "BUYER#00000005", "METADATA")
            .unwrap()
            .contains("Renamed")
    );

    // rollback --last: the table as night 1 left it.
    let undo = ctx(dir, "rollback-last-t", &target);
    let options = Options {
        yes: true,
        force: false,
        last: true,
    };
    let report = rollback(&undo, buyers(), options).await.unwrap();
    assert_eq!(report.drift, 0, "{report:?}");
    let left = memory.items(TABLE);
    assert_eq!(left.len(), 40, "{left:#?}");
    assert!(
        memory
            .item(TABLE, "BUYER#00000005", "METADATA")
            .unwrap()
            .contains("Buyer 5")
    );
    assert!(memory.item(TABLE, "BUYER#00000003", "METADATA").is_some());
    assert!(memory.item(TABLE, "BUYER#00000041", "METADATA").is_none());
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[tokio::test]
async fn the_index_check_counts_and_samples_through_the_seam() {
    use aws_sdk_dynamodb::types::{
        GlobalSecondaryIndexDescription, KeySchemaElement, KeyType, TableDescription,
    };
    let sales = crate::entities::find("sales").unwrap();
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    let mut desc = TableDescription::builder();
    for (gsi, h, r) in [("GSI1", "GSI1PK", "GSI1SK"), ("GSI2", "GSI2PK", "GSI2SK")] {
        desc = desc.global_secondary_indexes(
            GlobalSecondaryIndexDescription::builder()
                .index_name(gsi)
                .key_schema(key(h, KeyType::Hash))
                .key_schema(key(r, KeyType::Range))
                .build(),
        );
    }
    let memory = Memory::new();
    memory.describe_as("SalesTable-t", desc.build());
    // 12 sales of 3 buyers; every third one has no producer (not in GSI2).
    let lines: Vec<String> = (0..12)
        .map(|i| {
            let producer = if i % 3 == 0 {
                String::new()
            } else {
                r#","GSI2PK":"PRODUCER#p","GSI2SK":"SALE#d""#.to_string()
            };
            format!(
                r#"{{"PK":"SALE#{i:02}","SK":"METADATA","GSI1PK":"BUYER#{}","GSI1SK":"SALE#d#{i:02}"{producer}}}"#,
                i % 3
            )
        })
        .collect();
    for l in &lines {
        memory.put_json("SalesTable-t", l);
    }
    let expected = || {
        let mut e = super::verify::indexes::Expecting::new(sales);
        for l in &lines {
            e.add(&crate::json::Obj::parse(l).unwrap());
        }
        e.finish()
    };
    let policy = crate::dynamo::RetryPolicy::from_config(&config(&std::env::temp_dir()).migration);
    let (section, bad) =
        super::verify::indexes::verify(&memory, "SalesTable-t", sales, expected(), 2, &policy)
            .await
            .unwrap();
    assert_eq!(bad, 0, "{section:#?}");
    assert_eq!(section[0]["expected"], 12);
    assert_eq!(section[1]["countByScan"], 8);

    // A sale whose buyer is lost from the table's item: GSI1 no longer
    // holds it, and the check says which index and which sale.
    memory.put_json(
        "SalesTable-t",
        r#"{"PK":"SALE#04","SK":"METADATA","GSI2PK":"PRODUCER#p","GSI2SK":"SALE#d"}"#,
    );
    let (section, bad) =
        super::verify::indexes::verify(&memory, "SalesTable-t", sales, expected(), 2, &policy)
            .await
            .unwrap();
    assert_eq!(bad, 1, "{section:#?}");
    assert_eq!(section[0]["countByScan"], 11);
    assert_eq!(section[0]["ok"], false);
    let text = section[0].to_string();
    assert!(text.contains("SALE#04"), "{text}");
}
