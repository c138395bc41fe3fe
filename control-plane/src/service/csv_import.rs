//! Reading CSV imports, the one way every import (properties, leads) reads
//! a file: a header line naming known columns, each row checked on its
//! own, every refused row named by line and field, and a report saying
//! what was created. An import creates every row or none: the callers
//! write all rows in one transaction, and only when no row was refused.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Error, Result};

/// The largest CSV file imported at once.
pub const MAX_IMPORT_BYTES: usize = 5 * 1024 * 1024;
/// The most rows one import creates.
pub const MAX_IMPORT_ROWS: usize = 1_000;

/// A refused row of an import.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowProblem {
    /// The line of the file (the header is line 1).
    pub line: u64,
    pub field: String,
    pub message: String,
}

/// What an import did: every row created, or none and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportReport {
    /// Rows in the file (without the header).
    pub rows: usize,
    /// Records created: all the rows, or 0 when any was refused.
    pub imported: usize,
    /// Every problem found, by line; empty when the import was done.
    pub refused: Vec<RowProblem>,
    /// The new records' ids, in the file's order.
    pub ids: Vec<Uuid>,
    /// Whether this was a check only (`dry_run`).
    pub dry_run: bool,
}

impl ImportReport {
    /// The report of a file read: nothing created yet.
    pub fn new(rows: usize, dry_run: bool) -> Self {
        Self { rows, imported: 0, refused: Vec::new(), ids: Vec::new(), dry_run }
    }
}

/// The rows read, with their lines, and the problems of the others.
pub type Rows<T> = (Vec<(u64, T)>, Vec<RowProblem>);

/// Reads a CSV file whose columns are among `columns` (name, required).
/// Each row's values are given to `row` by column name (absent columns
/// read as empty); a row whose `row` fails is refused with the field its
/// error names. A file that cannot be read as a whole (no header, an
/// unknown or missing column, too many rows) is an error.
pub fn read_rows<T>(
    bytes: &[u8],
    columns: &[(&str, bool)],
    row: impl Fn(&dyn Fn(&str) -> String) -> Result<T>,
) -> Result<Rows<T>> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(Error::PayloadTooLarge { limit: MAX_IMPORT_BYTES });
    }
    let mut reader = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| Error::invalid("file", format!("the header line could not be read: {e}")))?
        .clone();
    let names: Vec<String> =
        headers.iter().map(|h| h.trim().trim_start_matches('\u{feff}').to_lowercase()).collect();
    for (i, name) in names.iter().enumerate() {
        if !columns.iter().any(|(c, _)| c == name) {
            let all: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
            return Err(Error::invalid(
                "file",
                format!("unknown column \"{name}\"; the columns are {}", all.join(", ")),
            ));
        }
        if names[..i].contains(name) {
            return Err(Error::invalid("file", format!("the column \"{name}\" is named twice")));
        }
    }
    for (column, required) in columns {
        if *required && !names.iter().any(|n| n == column) {
            return Err(Error::invalid("file", format!("the column \"{column}\" is missing")));
        }
    }
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(2);
        if rows.len() + refused.len() >= MAX_IMPORT_ROWS {
            return Err(Error::invalid("file", format!("has more than {MAX_IMPORT_ROWS} rows; split it")));
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                refused.push(RowProblem {
                    line,
                    field: "file".into(),
                    message: format!("could not be read: {e}"),
                });
                continue;
            }
        };
        let get = |column: &str| -> String {
            names.iter().position(|n| n == column).and_then(|i| record.get(i)).unwrap_or("").to_owned()
        };
        match row(&get) {
            Ok(value) => rows.push((line, value)),
            Err(Error::Invalid { field, message }) => refused.push(RowProblem { line, field, message }),
            Err(other) => refused.push(RowProblem { line, field: "row".into(), message: other.to_string() }),
        }
    }
    Ok((rows, refused))
}

/// A value that must be one of an enumeration's texts (any case).
pub fn choice<T: std::str::FromStr + strum::IntoEnumIterator + Into<&'static str>>(
    field: &str,
    value: &str,
) -> Result<T> {
    value.to_lowercase().parse().map_err(|_| {
        let all: Vec<&'static str> = T::iter().map(Into::into).collect();
        Error::invalid(field, format!("\"{value}\" is not one of {}", all.join(", ")))
    })
}

/// The rows whose key (when they have one) an earlier row has too, named
/// by `field` with the first line that has it. Keys are compared as given.
pub fn repeated<T>(rows: &[(u64, T)], field: &str, key: impl Fn(&T) -> Option<String>) -> Vec<RowProblem> {
    let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut problems = Vec::new();
    for (line, value) in rows {
        let Some(k) = key(value) else { continue };
        match seen.get(&k) {
            Some(first) => problems.push(RowProblem {
                line: *line,
                field: field.to_owned(),
                message: format!("{k} is also on line {first}"),
            }),
            None => {
                seen.insert(k, *line);
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[(&str, bool)] = &[("name", true), ("age", false)];

    fn age(get: &dyn Fn(&str) -> String) -> Result<(String, u8)> {
        let age = get("age");
        let age = if age.is_empty() {
            0
        } else {
            age.parse().map_err(|_| Error::invalid("age", format!("\"{age}\" is not a number")))?
        };
        Ok((get("name"), age))
    }

    #[test]
    fn rows_are_read_by_column_name_and_bad_ones_named_by_line() {
        let (rows, refused) =
            read_rows(b"\xef\xbb\xbfAge,name\n 7 ,Ann\nold,Bob\n,Cy\n", COLUMNS, age).unwrap();
        assert_eq!(rows, [(2, ("Ann".to_owned(), 7)), (4, ("Cy".to_owned(), 0))]);
        assert_eq!(refused.len(), 1);
        assert_eq!((refused[0].line, refused[0].field.as_str()), (3, "age"));
    }

    #[test]
    fn a_file_with_unknown_repeated_or_missing_columns_is_refused_whole() {
        for (file, says) in [
            (&b"name,colour\n"[..], "unknown column \"colour\""),
            (b"name,name\n", "named twice"),
            (b"age\n", "\"name\" is missing"),
        ] {
            let err = read_rows(file, COLUMNS, age).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    }

    #[test]
    fn a_row_with_too_many_values_is_refused_and_a_huge_file_is_not_read() {
        let (rows, refused) = read_rows(b"name\nAnn\nBob,9\n", COLUMNS, age).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((refused[0].line, refused[0].field.as_str()), (3, "file"));
        let many = format!("name\n{}", "x\n".repeat(MAX_IMPORT_ROWS + 1));
        assert!(read_rows(many.as_bytes(), COLUMNS, age).unwrap_err().to_string().contains("split it"));
    }

    #[test]
    fn repeated_keys_name_the_first_line() {
        let rows = vec![(2, "a"), (3, "b"), (4, "a"), (5, "")];
        let problems = repeated(&rows, "email", |v| (!v.is_empty()).then(|| (*v).to_owned()));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 4);
        assert!(problems[0].message.contains("line 2"));
    }
}
