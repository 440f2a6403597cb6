//! Turning what a person typed into a safe full-text query, and the index's snippets into HTML.
//!
//! A query is read as a list of words: letters and digits, everything else is a separator, so the
//! operators and quotes of FTS5's query language or of `websearch_to_tsquery` can never reach the
//! database as syntax. A chunk matches when it holds any of the words (common English words are
//! left out when others remain); ranking (bm25 on SQLite, ts_rank_cd on PostgreSQL) puts chunks
//! with more of them, and rarer ones, first.

/// Snippet markers: control characters, which ingestion removes from every document, so they can
/// only come from the database's highlighter.
pub const MARK_START: char = '\u{1}';
pub const MARK_END: char = '\u{2}';

/// At most this many words of a query are searched for.
pub const MAX_TERMS: usize = 32;

const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i",
    "if", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "should", "that", "the", "their",
    "there", "this", "to", "was", "we", "what", "when", "where", "which", "who", "why", "will", "with",
    "you", "your",
];

/// The words of a query, lower-cased, without repeats; common words are dropped unless nothing
/// else is left.
pub fn terms(query: &str) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_lowercase();
        if !all.contains(&word) {
            all.push(word);
        }
    }
    let content: Vec<String> = all.iter().filter(|w| !STOPWORDS.contains(&w.as_str())).cloned().collect();
    let mut out = if content.is_empty() { all } else { content };
    out.truncate(MAX_TERMS);
    out
}

/// An FTS5 MATCH expression: each term a quoted string (terms hold only letters and digits),
/// joined by OR.
pub fn fts5_match(terms: &[String]) -> String {
    terms.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" OR ")
}

/// The text for PostgreSQL's `websearch_to_tsquery`: the terms joined by `or`.
pub fn websearch(terms: &[String]) -> String {
    terms.join(" or ")
}

/// A snippet as HTML: the document's text escaped, the matches in `<mark>`.
pub fn highlight(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 32);
    let mut open = false;
    for c in raw.chars() {
        match c {
            MARK_START if !open => {
                out.push_str("<mark>");
                open = true;
            }
            MARK_END if open => {
                out.push_str("</mark>");
                open = false;
            }
            MARK_START | MARK_END => {}
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    if open {
        out.push_str("</mark>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_become_plain_words() {
        assert_eq!(terms("How do I rotate the encryption key?"), ["rotate", "encryption", "key"]);
        assert_eq!(terms("the OR and"), ["the", "or", "and"]);
        assert_eq!(
            terms("\"unterminated AND (x* OR -y) NEAR(a b) col:z ^start"),
            ["unterminated", "x", "y", "near", "b", "col", "z", "start"]
        );
        assert!(terms("*** \"\" ()").is_empty());
        assert_eq!(terms("Größe café"), ["größe", "café"]);
        assert_eq!(fts5_match(&terms("x* y")), "\"x\" OR \"y\"");
        assert_eq!(websearch(&terms("a-b")), "b");
        assert_eq!(terms(&"w ".repeat(100)).len(), 1);
    }

    #[test]
    fn snippets_are_escaped_with_marks_only() {
        let raw = format!("<script>alert('x')</script> & {MARK_START}goblins{MARK_END} \"here\"");
        assert_eq!(
            highlight(&raw),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; <mark>goblins</mark> &quot;here&quot;"
        );
        assert_eq!(highlight(&format!("{MARK_START}open")), "<mark>open</mark>");
    }
}
