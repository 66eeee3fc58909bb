//! Source drift (docs/checks.md): before extract, the columns each entity
//! reads are compared with the source's catalog; a changed type or
//! nullability stops the command with exit 2 and the list of differences,
//! nothing extracted and nothing written. The dry run shows the check.

mod support;

use support::{Env, text};

#[test]
fn the_sample_schema_passes_and_the_dry_run_shows_it() {
    let env = Env::new("drift_ok");
    env.generate(10, 4, 20, 2);
    let out = env.migrate(&["--dry-run", "--full"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("source check: 30 column(s) of msg, msg_anag match"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_changed_column_is_caught_before_extract() {
    let env = Env::new("drift_type");
    env.generate(10, 4, 20, 2);
    env.sql(
        "ALTER TABLE msg ALTER COLUMN quantity TYPE numeric; \
         ALTER TABLE msg ALTER COLUMN sale_date DROP NOT NULL; \
         ALTER TABLE msg_anag ALTER COLUMN name TYPE text",
    );
    let out = env.migrate(&["--full"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    for needle in [
        "msg.quantity is numeric without precision and scale; expected numeric(12,3)",
        "msg.sale_date allows NULL; expected NOT NULL",
        "msg_anag.name is text; expected character varying(200)",
        "nothing was extracted",
    ] {
        assert!(said.contains(needle), "{needle:?} not in {said}");
    }
    for e in ["buyers", "producers", "sales"] {
        assert!(
            !env.data_dir().join(format!("extracted/{e}.jsonl")).exists(),
            "{e}: nothing extracted"
        );
        assert!(env.scan(e).is_empty(), "{e}: nothing written");
    }
    // The dry run shows the same refusal.
    let dry = env.migrate(&["--dry-run", "--full"]);
    assert_eq!(dry.status.code(), Some(2), "{}", text(&dry));
    assert!(
        text(&dry).contains("msg.quantity is numeric"),
        "{}",
        text(&dry)
    );
}

#[test]
fn a_dropped_column_is_named() {
    let env = Env::new("drift_drop");
    env.sql("ALTER TABLE msg DROP COLUMN payment_method");
    let out = env.migrate(&["--phase", "extract", "--entity", "sales"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("msg.payment_method is missing; expected character varying(30)"),
        "{}",
        text(&out)
    );
    assert!(!env.data_dir().join("extracted/sales.jsonl").exists());
}
