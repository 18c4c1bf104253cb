//! Printing listings: an aligned table with Kafka's upper-case column names,
//! or the same rows as one JSON document. Every listing builds its rows as
//! JSON objects once, so both formats always carry the same data.

use std::io::Write;

use serde_json::Value;

/// `--output` of every listing.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned columns with a header line.
    #[default]
    Table,
    /// One JSON document (an array of objects, or an object).
    Json,
}

/// The `--output` option, flattened into every command group that lists.
#[derive(clap::Args, Debug, Clone)]
pub struct OutputArgs {
    /// Output format of listings.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
}

/// A column: its header and the key of the row object it shows.
pub type Column = (&'static str, &'static str);

/// Render one cell: strings as-is, null as `-`, arrays comma-joined.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a.iter().map(|x| cell(Some(x))).collect::<Vec<_>>().join(","),
        Some(other) => other.to_string(),
    }
}

/// Format rows as a table: columns padded to their widest cell, separated by
/// two spaces; the last column is not padded.
pub fn table(columns: &[Column], rows: &[Value]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| columns.iter().map(|(_, key)| cell(r.get(*key))).collect()).collect();
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.len()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let headers: Vec<String> = columns.iter().map(|(h, _)| h.to_string()).collect();
    for row in std::iter::once(&headers).chain(cells.iter()) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Print rows in the chosen format: a table, or a JSON array of the row objects.
pub fn print_rows(format: Format, columns: &[Column], rows: &[Value]) {
    match format {
        Format::Table => print_str(&table(columns, rows)),
        Format::Json => print_json(&Value::Array(rows.to_vec())),
    }
}

/// Print one JSON document and a newline.
pub fn print_json(v: &Value) {
    print_str(&format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into())));
}

/// Write to stdout; a closed pipe (`| head`) ends output quietly.
pub fn print_str(s: &str) {
    let mut out = std::io::stdout().lock();
    if out.write_all(s.as_bytes()).and_then(|_| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// One line to stdout (`println!` without its panic on a closed pipe).
pub fn print_line(s: &str) {
    print_str(&format!("{s}\n"));
}

/// One line to stderr for notes and warnings beside the answer; a closed or
/// failing stderr is ignored (`eprintln!` would panic, and the panic hook aborts).
pub fn eprint_line(s: &str) {
    eprint_str(&format!("{s}\n"));
}

/// Text to stderr, ignoring failure (see [`eprint_line`]).
pub fn eprint_str(s: &str) {
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_and_shows_nulls() {
        let rows = vec![json!({"a": "x", "b": 1}), json!({"a": "longer", "b": null})];
        let t = table(&[("A", "a"), ("B", "b")], &rows);
        assert_eq!(t, "A       B\nx       1\nlonger  -\n");
    }
}
