//! Path segments of Graph URLs, from config and from users. Each segment is percent-encoded on its
//! own, so none can end its segment early or add a query; dot segments are refused outright, since
//! URL parsers resolve them (`..` and its encoded forms alike) and would climb out of the resource.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Left as they are in ids: RFC 3986's unreserved characters and the `:`, `@` and `,` that Graph's
/// own ids carry (`19:…@thread.tacv2`, `host,guid,guid`), exactly as Graph's documentation writes them.
const ID: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'@')
    .remove(b',');

/// Left as they are in item names: only the unreserved characters. `:` in particular is encoded,
/// because it ends the path in Graph's `root:/{path}:` addressing.
const ITEM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One id (team, channel, site, tenant) as a path segment; refuses what cannot be one.
pub fn id_segment(id: &str) -> Result<String, String> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\\']) {
        return Err(format!(
            "{id:?} is not a valid id: it must not be empty, '.', '..' or contain '/' or '\\'"
        ));
    }
    Ok(utf8_percent_encode(id, ID).to_string())
}

/// A user's path inside a drive (`Reports/2024/q1.xlsx`) as encoded segments joined by `/`. One
/// leading and one trailing `/` are allowed; empty, `.` and `..` segments and backslashes are not.
pub fn item_path(path: &str) -> Result<String, String> {
    if path.contains('\\') {
        return Err("the path must use '/' between folders, not '\\'".into());
    }
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err("the path is empty".into());
    }
    let mut encoded = Vec::new();
    for segment in trimmed.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!(
                "the path {path:?} has an empty, '.' or '..' segment; give a path from the drive's root"
            ));
        }
        encoded.push(utf8_percent_encode(segment, ITEM).to_string());
    }
    Ok(encoded.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_graphs_own_punctuation_and_encode_the_rest() {
        assert_eq!(
            id_segment("19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2").unwrap(),
            "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2"
        );
        assert_eq!(
            id_segment("contoso.sharepoint.com,2C712604-1370-44E7,2D2244C3").unwrap(),
            "contoso.sharepoint.com,2C712604-1370-44E7,2D2244C3"
        );
        assert_eq!(id_segment("a b?c#d%e").unwrap(), "a%20b%3Fc%23d%25e");
        for bad in ["", ".", "..", "a/b", "a\\b"] {
            assert!(id_segment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn item_paths_encode_each_segment_and_refuse_climbing() {
        assert_eq!(item_path("Reports/Q1 plan.docx").unwrap(), "Reports/Q1%20plan.docx");
        assert_eq!(item_path("/a/b/").unwrap(), "a/b");
        assert_eq!(item_path("x:y?z#%.txt").unwrap(), "x%3Ay%3Fz%23%25.txt");
        assert_eq!(item_path("dossier/été.txt").unwrap(), "dossier/%C3%A9t%C3%A9.txt");
        assert_eq!(item_path("%2e%2e/a").unwrap(), "%252e%252e/a");
        for bad in ["", "/", "../a", "a/../b", "a/./b", "a//b", ".", "a\\b", "//a"] {
            assert!(item_path(bad).is_err(), "{bad:?}");
        }
    }
}
