//! Plain text to Atlassian Document Format, which Jira v3 requires for rich-text fields.

use serde_json::{json, Value};

/// Converts plain text to an ADF document: blank lines separate paragraphs, single line breaks
/// become hard breaks. ADF forbids empty text nodes, so empty lines yield none.
pub fn from_plain_text(text: &str) -> Value {
    let normalized = text.replace("\r\n", "\n");
    let paragraphs: Vec<Value> = normalized
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|paragraph| {
            let mut content = Vec::new();
            for (i, line) in paragraph.trim_matches('\n').split('\n').enumerate() {
                if i > 0 {
                    content.push(json!({"type": "hardBreak"}));
                }
                if !line.is_empty() {
                    content.push(json!({"type": "text", "text": line}));
                }
            }
            json!({"type": "paragraph", "content": content})
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_is_one_paragraph_as_documented() {
        assert_eq!(
            from_plain_text("Printer on fire"),
            json!({"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"Printer on fire"}]}]})
        );
    }

    #[test]
    fn blank_lines_split_paragraphs_and_newlines_become_hard_breaks() {
        assert_eq!(
            from_plain_text("one\ntwo\r\n\r\nthree\n\n\n"),
            json!({"type":"doc","version":1,"content":[
                {"type":"paragraph","content":[{"type":"text","text":"one"},{"type":"hardBreak"},{"type":"text","text":"two"}]},
                {"type":"paragraph","content":[{"type":"text","text":"three"}]}
            ]})
        );
    }

    #[test]
    fn empty_text_gives_an_empty_document() {
        assert_eq!(
            from_plain_text("  \n\n"),
            json!({"type":"doc","version":1,"content":[]})
        );
    }
}
