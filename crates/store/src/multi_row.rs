//! Multi-row statements: rows sent in chunks of power-of-two sizes, one statement text per size.

use std::sync::OnceLock;

/// Most rows in one statement (2,304 parameters at nine columns: within both databases' limits).
const MAX_ROWS: usize = 256;

/// `items` in chunks of power-of-two sizes (at most [`MAX_ROWS`]), for multi-row statements:
/// one round trip per chunk instead of per row, and few distinct texts for the prepared-statement
/// cache.
pub(crate) fn power_of_two_chunks<T>(mut rest: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (chunk, tail) = rest.split_at((1usize << rest.len().ilog2()).min(MAX_ROWS));
        rest = tail;
        Some(chunk)
    })
}

/// The statement for a chunk of `rows` rows (a power of two), built by `build` once per size.
pub(crate) fn statement_for_rows(
    cache: &'static OnceLock<Vec<String>>,
    rows: usize,
    build: fn(usize) -> String,
) -> &'static str {
    let statements = cache.get_or_init(|| (0..=MAX_ROWS.ilog2()).map(|power| build(1 << power)).collect());
    &statements[rows.ilog2() as usize]
}

/// `($1, …, $columns), ($columns+1, …)`: the values of a multi-row insert of `rows` rows.
pub(crate) fn row_placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=columns)
                .map(|column| format!("${}", row * columns + column))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
