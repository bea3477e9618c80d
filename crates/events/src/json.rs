//! Whether a webhook's body is JSON its readers can decode, checked without building the value.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Whether `bytes` decode as a `serde_json::Value`: what `from_slice::<Value>` accepts (strings
/// that are UTF-8 without lone surrogates, numbers in range, nesting within serde_json's limit),
/// without allocating the tree it would build and drop. `IgnoredAny` cannot stand in: it skips
/// string contents unchecked.
pub(crate) fn decodes_as_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Checked>(bytes).is_ok()
}

/// A JSON value that was read and checked, and not kept.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    // serde_json hands strings over only once it has checked them.
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::decodes_as_json;

    #[test]
    fn accepts_exactly_what_a_value_decodes() {
        let deep_ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let cases: Vec<(&[u8], bool)> = vec![
            (
                br#"{"webhookEvent":"jira:issue_created","issue":{"id":"1","n":[1,-2.5e3,true,null]}}"#,
                true,
            ),
            (b" [1, 2] ", true),
            (b"\"text\"", true),
            (b"18446744073709551616", true),
            (br#"{"a":1,"a":2}"#, true),
            (br#"{"k":"\u00e9\ud83d\ude00"}"#, true),
            (deep_ok.as_bytes(), true),
            (b"{\"k\":\"caf\xe9\"}", false),
            (b"{\"caf\xe9\":1}", false),
            (br#"{"k":"\ud800"}"#, false),
            (b"1e400", false),
            (too_deep.as_bytes(), false),
            (b"{\"a\":1} trailing", false),
            (b"", false),
            (b"{'a':1}", false),
            (b"\xef\xbb\xbf{}", false),
            (b"NaN", false),
        ];
        for (bytes, expected) in cases {
            let as_value = serde_json::from_slice::<Value>(bytes).is_ok();
            assert_eq!(
                as_value,
                expected,
                "the case itself: {}",
                String::from_utf8_lossy(bytes)
            );
            assert_eq!(decodes_as_json(bytes), expected, "{}", String::from_utf8_lossy(bytes));
        }
    }
}
