//! The backup export: a whole table, read with a parallel consistent Scan,
//! written item by item exactly as DynamoDB sent it (its wire JSON: every
//! type, sets and binaries included, numbers as spelled) to
//! `data/backups/<name>-<run>.jsonl` with a manifest; plus an on-demand
//! `CreateBackup` where the endpoint supports it. A restore sends those
//! bytes back unchanged (`dynamo::Write::put_wire`).

use chrono::Utc;

use super::backup_dir;
use crate::artifact::ArtifactWriter;
use crate::checkpoint::BackupInfo;
use crate::ctx::Ctx;
use crate::dynamo::{self, RetryPolicy};
use crate::error::Result;

/// Exports `table` for `name` (an entity) and requests an on-demand backup
/// where supported.
pub async fn take(ctx: &Ctx, table: &str, name: &str, policy: &RetryPolicy) -> Result<BackupInfo> {
    let path = backup_dir(&ctx.data_dir).join(format!("{name}-{}.jsonl", ctx.run_id));
    let mut writer = ArtifactWriter::create(&path, &ctx.run_id, "backup", name)?;
    let bar = ctx.progress.bar(name, "backup", None);
    let mut pages = dynamo::scan(
        &ctx.target().await,
        table,
        ctx.config.migration.scan_segments,
        None,
        false,
        policy,
    );
    while let Some(page) = pages.recv().await {
        let page = page?;
        for item in page.items() {
            writer.write_raw_line(item.as_bytes())?;
        }
        bar.inc(page.len() as u64);
    }
    bar.finish();
    let manifest = writer.finish()?;
    let backup_arn = match ctx
        .dynamo()
        .await
        .create_backup()
        .table_name(table)
        .backup_name(format!("{table}-{name}-{}", ctx.run_id))
        .send()
        .await
    {
        Ok(out) => out.backup_details().map(|d| d.backup_arn().to_string()),
        Err(e) => {
            tracing::warn!(
                "on-demand CreateBackup of {table} not available here ({}); the export in {} is the backup",
                dynamo::describe(&e),
                path.display()
            );
            None
        }
    };
    tracing::info!(items = manifest.records, arn = ?backup_arn, "backed up {table} to {}", path.display());
    Ok(BackupInfo {
        table: table.to_string(),
        path,
        items: manifest.records,
        sha256: manifest.sha256,
        backup_arn,
        taken_at: Utc::now(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue as A;

    use crate::artifact::{ArtifactReader, ArtifactWriter};
    use crate::dynamo::{AvItem, Write, wire_item_to_av};

    /// What a Scan page holds for an item of every type, nested too.
    const WIRE: &str = r#"{"PK":{"S":"BUYER#1"},"SK":{"S":"METADATA"},"s":{"S":"é\n\"x"},"n":{"N":"1.50"},"big":{"N":"12345678901234567890123456789012345678"},"b":{"B":"AP8H"},"ss":{"SS":["q","p"]},"ns":{"NS":["2.50","-1"]},"bs":{"BS":["AQ==","Ag=="]},"t":{"BOOL":true},"z":{"NULL":true},"l":{"L":[{"N":"7"},{"SS":["a"]},{"M":{"deep":{"B":"AQID"}}}]},"m":{"M":{"e":{"S":""},"f":{"BOOL":false},"g":{"L":[]}}}}"#;

    #[test]
    fn every_type_round_trips_byte_for_byte() {
        let dir = std::env::temp_dir().join(format!("migrate-export-{}", uuid::Uuid::new_v4()));
        let path = dir.join("buyers-r.jsonl");
        let mut w = ArtifactWriter::create(&path, "r", "backup", "buyers").unwrap();
        w.write_raw_line(WIRE.as_bytes()).unwrap();
        w.finish().unwrap();
        let mut r = ArtifactReader::open(&path).unwrap();
        let mut line = String::new();
        assert!(r.next_line(&mut line).unwrap());
        assert_eq!(line, WIRE, "the backup holds the bytes the server sent");
        let put = Write::put_wire(&line).unwrap();
        assert_eq!(put.item_wire(), Some(WIRE), "the restore sends them back");
        assert_eq!(put.key["PK"], A::S("BUYER#1".into()));
        assert_eq!(put.key["SK"], A::S("METADATA".into()));
        // and they mean every type as it was
        let item: AvItem = wire_item_to_av(put.item_wire().unwrap()).unwrap();
        let blob = |b: &[u8]| Blob::new(b.to_vec());
        let expected: AvItem = HashMap::from([
            ("PK".into(), A::S("BUYER#1".into())),
            ("SK".into(), A::S("METADATA".into())),
            ("s".into(), A::S("é\n\"x".into())),
            ("n".into(), A::N("1.50".into())),
            (
                "big".into(),
                A::N("12345678901234567890123456789012345678".into()),
            ),
            ("b".into(), A::B(blob(&[0, 255, 7]))),
            ("ss".into(), A::Ss(vec!["q".into(), "p".into()])),
            ("ns".into(), A::Ns(vec!["2.50".into(), "-1".into()])),
            ("bs".into(), A::Bs(vec![blob(&[1]), blob(&[2])])),
            ("t".into(), A::Bool(true)),
            ("z".into(), A::Null(true)),
            (
                "l".into(),
                A::L(vec![
                    A::N("7".into()),
                    A::Ss(vec!["a".into()]),
                    A::M(HashMap::from([("deep".into(), A::B(blob(&[1, 2, 3])))])),
                ]),
            ),
            (
                "m".into(),
                A::M(HashMap::from([
                    ("e".into(), A::S(String::new())),
                    ("f".into(), A::Bool(false)),
                    ("g".into(), A::L(vec![])),
                ])),
            ),
        ]);
        assert_eq!(item, expected);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
