//! Statements whose text depends on a number of rows or ids: one text per power-of-two size, so
//! there are few distinct texts (each prepared once, and each prepared by the statements test).

use std::sync::OnceLock;

/// Most rows in one statement (2,304 parameters at nine columns: within both databases' limits).
pub(crate) const MAX_ROWS: usize = 256;

/// A statement with one text per power-of-two number of rows up to [`MAX_ROWS`], built on
/// first use by `build`.
pub(crate) struct ForRows {
    texts: OnceLock<Vec<String>>,
    build: fn(usize) -> String,
}

impl ForRows {
    /// The statement `build(rows)` makes for each size.
    pub(crate) const fn new(build: fn(usize) -> String) -> Self {
        Self {
            texts: OnceLock::new(),
            build,
        }
    }

    /// The text for `rows` rows, a power of two (as [`power_of_two_chunks`] and [`in_lists`]
    /// give).
    pub(crate) fn get(&self, rows: usize) -> &str {
        debug_assert!(rows.is_power_of_two() && rows <= MAX_ROWS);
        &self.texts()[rows.ilog2() as usize]
    }

    /// Every size's text, smallest first.
    pub(crate) fn texts(&self) -> &[String] {
        self.texts
            .get_or_init(|| (0..=MAX_ROWS.ilog2()).map(|power| (self.build)(1 << power)).collect())
    }
}

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

/// Ids for an `IN` list, in chunks of at most [`MAX_ROWS`], each filled up to the next power of
/// two by repeating its last id (a list with a repeat matches the same rows): one statement per
/// chunk, of one of few texts.
pub(crate) fn in_lists<T>(ids: &[T]) -> impl Iterator<Item = InList<'_, T>> {
    ids.chunks(MAX_ROWS).map(|chunk| InList {
        chunk,
        size: chunk.len().next_power_of_two(),
    })
}

/// One `IN` list of [`in_lists`].
pub(crate) struct InList<'a, T> {
    chunk: &'a [T],
    /// The number of parameters: the statement's size.
    pub(crate) size: usize,
}

impl<'a, T> InList<'a, T> {
    /// The ids to bind, `size` of them.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &'a T> {
        let chunk = self.chunk;
        let last = chunk.last().into_iter().cycle().take(self.size - chunk.len());
        chunk.iter().chain(last)
    }
}

/// `$first, $first+1, …` for `count` parameters.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, …, $columns), ($columns+1, …)`: the values of a multi-row insert of `rows` rows.
pub(crate) fn row_placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", placeholders(row * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_fill_each_chunk_to_a_power_of_two_with_its_last_id() {
        let ids: Vec<i64> = (1..=300).collect();
        let lists: Vec<(usize, Vec<i64>)> = in_lists(&ids).map(|l| (l.size, l.ids().copied().collect())).collect();
        assert_eq!(lists.len(), 2);
        assert_eq!(lists[0].0, 256);
        assert_eq!(lists[0].1, (1..=256).collect::<Vec<_>>());
        assert_eq!(lists[1].0, 64);
        assert_eq!(lists[1].1.len(), 64);
        assert_eq!(&lists[1].1[..44], &(257..=300).collect::<Vec<_>>()[..]);
        assert!(lists[1].1[44..].iter().all(|id| *id == 300));
    }
}
