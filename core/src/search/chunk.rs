//! Cutting a document's text into chunks of at most `size` tokens (o200k_base, as
//! [`crate::gateway::tokenize::count`] counts them), each starting with up to `overlap` tokens of the
//! end of the one before, so a passage cut at a boundary is still found whole in one of them.
//!
//! The text is first split into units: paragraphs (blank lines), their lines, and the lines'
//! sentences; a sentence too long to be a unit is split between words, and a word too long between
//! characters. Chunks are runs of whole units, ended at a paragraph boundary when one lies in their
//! second half. Overlap is made of whole units too, so it is at most `overlap` tokens.

use crate::gateway::tokenize::count;

/// One chunk of a document: its text and token count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub tokens: usize,
}

#[derive(Debug)]
struct Unit<'a> {
    text: &'a str,
    /// What joins it to the unit before: a blank line, a line break or a space.
    sep: &'static str,
    /// Whether it starts a paragraph (a good place to end the chunk before it).
    paragraph: bool,
    tokens: usize,
}

/// Cuts `text` into chunks of at most `size` tokens with up to `overlap` tokens of overlap.
/// `size` must be at least 1 and `overlap` below `size`; empty text gives no chunks.
pub fn chunk(text: &str, size: usize, overlap: usize) -> Vec<Piece> {
    let size = size.max(1);
    let overlap = overlap.min(size / 2);
    // Units no longer than the overlap can always be carried over; a tiny overlap would cut
    // sentences into single words, so below 8 tokens units may be up to a quarter chunk.
    let cap = if overlap >= 8 { overlap } else { (size / 4).max(1) };
    let units = units(text, cap);
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < units.len() {
        let mut end = start;
        let mut estimate = 0;
        while end < units.len() && (end == start || estimate + units[end].tokens < size) {
            estimate += units[end].tokens + 1;
            end += 1;
        }
        if end < units.len()
            && let Some(p) = (start + (end - start) / 2 + 1..end).rev().find(|&p| units[p].paragraph)
        {
            end = p;
        }
        let mut text = join(&units[start..end]);
        let mut tokens = count(&text) as usize;
        while tokens > size && end - start > 1 {
            end -= 1;
            text = join(&units[start..end]);
            tokens = count(&text) as usize;
        }
        chunks.push(Piece { text, tokens });
        if end == units.len() {
            break;
        }
        let mut next = end;
        let mut carried = 0;
        while next > start + 1 && carried + units[next - 1].tokens <= overlap {
            next -= 1;
            carried += units[next].tokens;
        }
        start = next;
    }
    chunks
}

fn join(units: &[Unit<'_>]) -> String {
    let mut out = String::new();
    for (i, u) in units.iter().enumerate() {
        if i > 0 {
            out.push_str(u.sep);
        }
        out.push_str(u.text);
    }
    out
}

fn units(text: &str, cap: usize) -> Vec<Unit<'_>> {
    let mut out = Vec::new();
    let mut sep = "";
    let mut new_paragraph = true;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            new_paragraph = true;
            continue;
        }
        if !out.is_empty() {
            sep = if new_paragraph { "\n\n" } else { "\n" };
        }
        let mut paragraph = new_paragraph;
        new_paragraph = false;
        for sentence in sentences(line) {
            let tokens = count(sentence) as usize;
            let parts = if tokens <= cap { vec![(sentence, tokens)] } else { split_long(sentence, cap) };
            for (part, tokens) in parts {
                out.push(Unit { text: part, sep, paragraph, tokens });
                sep = " ";
                paragraph = false;
            }
        }
    }
    out
}

/// The sentences of one line: cut after `.`, `!`, `?` (and their full-width forms) followed by a
/// space.
fn sentences(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut begin = 0;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = i + c.len_utf8();
        let ends = matches!(c, '.' | '!' | '?' | '。' | '！' | '？');
        if ends && chars.peek().is_some_and(|(_, n)| n.is_whitespace()) {
            let s = line[begin..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            begin = end;
        }
    }
    let rest = line[begin..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// A sentence longer than `cap` tokens, as runs of whole words (a word longer than `cap` bytes is
/// cut between characters: a token is at least one byte, so such a piece has at most `cap` tokens).
fn split_long(sentence: &str, cap: usize) -> Vec<(&str, usize)> {
    let mut words: Vec<&str> = Vec::new();
    for word in sentence.split_whitespace() {
        if word.len() <= cap {
            words.push(word);
            continue;
        }
        let mut begin = 0;
        for (i, c) in word.char_indices() {
            if i + c.len_utf8() - begin > cap && i > begin {
                words.push(&word[begin..i]);
                begin = i;
            }
        }
        words.push(&word[begin..]);
    }
    // Runs of words are slices of the sentence: find each word's place in it to keep one slice.
    let mut out = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    let mut run_tokens = 0;
    let mut search_from = 0;
    for word in words {
        let at = search_from + sentence[search_from..].find(word).unwrap_or(0);
        let word_end = at + word.len();
        search_from = word_end;
        let word_tokens = count(word) as usize;
        match run {
            Some((b, _)) if run_tokens + word_tokens <= cap => {
                run = Some((b, word_end));
                run_tokens += word_tokens;
            }
            Some((b, e)) => {
                let piece = &sentence[b..e];
                out.push((piece, count(piece) as usize));
                run = Some((at, word_end));
                run_tokens = word_tokens;
            }
            None => {
                run = Some((at, word_end));
                run_tokens = word_tokens;
            }
        }
    }
    if let Some((b, e)) = run {
        let piece = &sentence[b..e];
        out.push((piece, count(piece) as usize));
    }
    // The sum of words' counts is an estimate: a run that came out over `cap` is split in two.
    let mut checked = Vec::new();
    for (piece, tokens) in out {
        if tokens <= cap || !piece.contains(' ') {
            checked.push((piece, tokens));
            continue;
        }
        let mid = piece[..piece.len() / 2].rfind(' ').unwrap_or_else(|| piece.find(' ').unwrap_or(0));
        let (a, b) = (piece[..mid].trim(), piece[mid..].trim());
        for p in [a, b] {
            if !p.is_empty() {
                checked.push((p, count(p) as usize));
            }
        }
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(paragraphs: usize) -> String {
        (0..paragraphs)
            .map(|p| {
                (0..6)
                    .map(|s| format!("Paragraph {p} sentence {s} talks about goblins and their lanterns."))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    #[test]
    fn chunks_stay_within_the_size_and_overlap() {
        let text = sample(12);
        let pieces = chunk(&text, 64, 16);
        assert!(pieces.len() > 5, "{}", pieces.len());
        for p in &pieces {
            assert!(p.tokens <= 64, "{} tokens: {}", p.tokens, p.text);
            assert_eq!(p.tokens, count(&p.text) as usize);
        }
        for pair in pieces.windows(2) {
            // The next chunk starts with the last sentence of the one before.
            let first_sentence = &pair[1].text[..=pair[1].text.find('.').unwrap()];
            assert!(
                pair[0].text.contains(first_sentence),
                "no overlap between {:?} and {:?}",
                pair[0],
                pair[1]
            );
        }
        // Every sentence is in some chunk.
        for s in text.split(". ") {
            let s = s.trim_end_matches('.');
            assert!(pieces.iter().any(|p| p.text.contains(s)), "lost: {s}");
        }
    }

    #[test]
    fn prefers_paragraph_boundaries_and_handles_no_overlap() {
        let text = sample(4);
        let pieces = chunk(&text, 120, 0);
        for p in &pieces {
            assert!(p.tokens <= 120);
        }
        // Without overlap the chunks put back together are the text.
        let words: Vec<&str> = pieces.iter().flat_map(|p| p.text.split_whitespace()).collect();
        assert_eq!(words, text.split_whitespace().collect::<Vec<_>>());
        // Most chunks end where a paragraph ends.
        let at_paragraph = pieces.iter().filter(|p| p.text.ends_with("lanterns.")).count();
        assert!(at_paragraph >= pieces.len() - 1);
    }

    #[test]
    fn long_sentences_and_words_are_split() {
        let long_sentence = "word ".repeat(500);
        let long_word = "x".repeat(3000);
        for text in [long_sentence.as_str(), long_word.as_str(), "short"] {
            let pieces = chunk(text, 50, 10);
            assert!(!pieces.is_empty());
            for p in &pieces {
                assert!(p.tokens <= 50, "{}", p.tokens);
            }
        }
        assert!(chunk("", 50, 10).is_empty());
        assert!(chunk("  \n\n  ", 50, 10).is_empty());
    }
}
