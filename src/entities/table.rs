//! What an entity declares about its DynamoDB table: the key schema and the
//! global secondary indexes its items are read through. `migrate tables
//! create` builds the tables from these declarations, and the dry run's
//! estimate reads which indexes an item lands in (docs/tables.md).

/// The type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// A string (`S`).
    S,
    /// A number (`N`).
    N,
    /// Binary (`B`).
    B,
}

impl Scalar {
    /// DynamoDB's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Scalar::S => "S",
            Scalar::N => "N",
            Scalar::B => "B",
        }
    }
}

/// One key attribute: its name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub name: &'static str,
    pub kind: Scalar,
}

/// A string key attribute.
pub const fn s(name: &'static str) -> Attr {
    Attr {
        name,
        kind: Scalar::S,
    }
}

/// A key schema: the partition (HASH) attribute and the optional sort
/// (RANGE) attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub hash: Attr,
    pub range: Option<Attr>,
}

impl Key {
    /// The key's attributes, partition first.
    pub fn attrs(&self) -> impl Iterator<Item = Attr> {
        std::iter::once(self.hash).chain(self.range)
    }
}

impl std::fmt::Display for Key {
    /// `PK (S, HASH) + SK (S, RANGE)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, HASH)", self.hash.name, self.hash.kind.as_str())?;
        if let Some(r) = self.range {
            write!(f, " + {} ({}, RANGE)", r.name, r.kind.as_str())?;
        }
        Ok(())
    }
}

/// Which attributes an index copies from the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// Every attribute.
    All,
    /// Only the table's and the index's keys.
    KeysOnly,
}

impl Projection {
    /// DynamoDB's name of the projection type.
    pub fn as_str(self) -> &'static str {
        match self {
            Projection::All => "ALL",
            Projection::KeysOnly => "KEYS_ONLY",
        }
    }
}

/// A global secondary index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub key: Key,
    pub projection: Projection,
}

impl Index {
    /// Whether an item appears in the index: it has every key attribute of
    /// the index (DynamoDB leaves an item without them out: a sparse index).
    pub fn holds(&self, has: impl Fn(&str) -> bool) -> bool {
        self.key.attrs().all(|a| has(a.name))
    }
}

/// An entity's table: the key schema and the indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    pub key: Key,
    pub indexes: &'static [Index],
}

/// `PK` (S, HASH) + `SK` (S, RANGE): the key of every entity's items (the
/// load and verify address items by these two attributes).
pub const PK_SK: Key = Key {
    hash: s("PK"),
    range: Some(s("SK")),
};

impl TableDef {
    /// `PK`/`SK` and no index.
    pub const PK_SK_ONLY: TableDef = TableDef {
        key: PK_SK,
        indexes: &[],
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_holds_items_with_all_its_keys() {
        let gsi = Index {
            name: "GSI1",
            key: Key {
                hash: s("GSI1PK"),
                range: Some(s("GSI1SK")),
            },
            projection: Projection::All,
        };
        assert!(gsi.holds(|a| a == "GSI1PK" || a == "GSI1SK"));
        assert!(!gsi.holds(|a| a == "GSI1PK"), "sparse: no sort key");
        assert!(!gsi.holds(|_| false));
        assert_eq!(PK_SK.to_string(), "PK (S, HASH) + SK (S, RANGE)");
    }
}
