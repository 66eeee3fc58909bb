//! Money reconciliation (docs/checks.md): verify sums count, `totalAmount`
//! and `quantity` per month and currency at the source (SQL over the
//! extract query, in the extract's snapshot), in the table (the verify
//! Scan) and in the rejected report, and fails unless source = loaded +
//! rejected holds exactly in every group.

mod support;

use serde_json::Value;
use support::{Env, text};

fn reconciliation(env: &Env) -> Value {
    env.report("reports/verification_report.json")["entities"]["sales"]["reconciliation"].clone()
}

#[test]
fn reconciliation_holds_and_catches_a_changed_amount() {
    let env = Env::new("recon");
    env.generate(40, 12, 300, 13);
    let out = env.migrate(&["--full"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("reconciled sales: source = loaded + rejected"),
        "{}",
        text(&out)
    );
    let r = reconciliation(&env);
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        r["sourceTaken"]
            .as_str()
            .unwrap()
            .starts_with("extract snapshot"),
        "{r}"
    );
    let groups = r["groups"].as_array().unwrap();
    assert!(groups.len() > 1, "{r}");
    assert!(groups.iter().all(|g| g["ok"] == true), "{r}");
    assert!(groups.iter().any(|g| g["currency"] != "EUR"), "{r}");

    // The source side agrees with PostgreSQL counted here, and the loaded
    // and rejected sides with the table and the rejected report.
    let sql = env.sql("SELECT count(*) || ' ' || sum(total_amount) || ' ' || sum(quantity) FROM msg WHERE enabled");
    let source = &r["total"]["source"];
    assert_eq!(
        format!(
            "{} {} {}",
            source["count"],
            source["totalAmount"].as_str().unwrap(),
            source["quantity"].as_str().unwrap()
        ),
        sql.trim(),
        "{r}"
    );
    assert_eq!(
        r["total"]["loaded"]["count"].as_u64(),
        Some(env.scan("sales").len() as u64)
    );
    let rejected = env.jsonl("reports/rejected/sales.jsonl").len() as u64;
    assert!(rejected > 0);
    assert_eq!(
        r["total"]["rejected"]["count"].as_u64(),
        Some(rejected),
        "{r}"
    );

    // One loaded sale's total changed by a cent in the table.
    let (_, mut item) = env.scan("sales").into_iter().next().unwrap();
    let month = item["saleDate"].as_str().unwrap()[..7].to_string();
    let currency = item["currency"].as_str().unwrap().to_string();
    let total: rust_decimal::Decimal = item["totalAmount"].to_string().parse().unwrap();
    let changed = total + rust_decimal::Decimal::new(1, 2);
    item.insert(
        "totalAmount".into(),
        Value::Number(changed.to_string().parse().unwrap()),
    );
    env.put("sales", &item);
    let out = env.migrate(&["--phase", "verify", "--entity", "sales"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("sales: reconciliation failed in 1 of"),
        "{}",
        text(&out)
    );
    let r = reconciliation(&env);
    assert_eq!(r["ok"], false, "{r}");
    let bad: Vec<&Value> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["ok"] == false)
        .collect();
    assert_eq!(bad.len(), 1, "{r}");
    assert_eq!(bad[0]["month"], month.as_str());
    assert_eq!(bad[0]["currency"], currency.as_str());
    let diffs = bad[0]["differences"].to_string();
    assert!(
        diffs.contains("totalAmount") && !diffs.contains("count"),
        "{diffs}"
    );
}
