//! The field errors of a document that fails its schema or its plugin's checks.

use serde::Serialize;

/// One failing field of a config or of tool arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field, as a dotted path (`host`, `fields.0`); empty for the document itself.
    pub field: String,
    /// What is wrong with it, without its value.
    pub message: String,
}

/// Most field errors one response reports; the rest are only counted, so a hostile document
/// (an array of 100,000 wrong items) costs neither memory nor a megabyte-sized answer.
pub const MAX_REPORTED_ERRORS: usize = 20;

/// The field errors of one document: the first [`MAX_REPORTED_ERRORS`], and how many more there were.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors {
    /// The reported errors, sorted by field.
    pub errors: Vec<FieldError>,
    /// How many further errors were found but not kept.
    pub omitted: usize,
}

impl FieldErrors {
    /// Whether the document had no error at all.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty() && self.omitted == 0
    }

    /// Keeps `error` while under the cap, counts it otherwise.
    pub fn push(&mut self, error: FieldError) {
        if self.errors.contains(&error) {
            return;
        }
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(error);
        } else {
            self.omitted += 1;
        }
    }
}

impl From<Vec<FieldError>> for FieldErrors {
    fn from(errors: Vec<FieldError>) -> Self {
        let mut capped = Self::default();
        for error in errors {
            capped.push(error);
        }
        capped.errors.sort_by(|a, b| a.field.cmp(&b.field));
        capped
    }
}
