//! The formats a search document can come in, and the plain text taken from each.

use super::SearchError;

/// The largest document accepted: an uploaded file's bytes, or pasted text (20 MiB: room for PDFs
/// with images; pasted text is also bound by the server's limit on request bodies).
pub const MAX_DOCUMENT_BYTES: usize = 20 * 1024 * 1024;

/// A document's format, from a paste's `format` field or an upload's file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Html,
    Pdf,
}

impl Format {
    /// The format named in a paste (`text`, `markdown`, `html`); PDF is for uploads only.
    ///
    /// # Errors
    /// [`SearchError::Invalid`] naming the formats.
    pub fn from_name(name: &str) -> Result<Self, SearchError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "text" | "txt" | "plain" => Ok(Self::Text),
            "markdown" | "md" => Ok(Self::Markdown),
            "html" => Ok(Self::Html),
            other => Err(SearchError::Invalid(format!(
                "format: '{}' is not one of text, markdown, html (upload PDFs as files)",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }

    /// The format of an uploaded file, from its extension: `.txt`, `.md`/`.markdown`,
    /// `.html`/`.htm`, `.pdf`.
    ///
    /// # Errors
    /// [`SearchError::Unsupported`] for any other extension.
    pub fn from_file_name(name: &str) -> Result<Self, SearchError> {
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "txt" | "text" => Ok(Self::Text),
            "md" | "markdown" => Ok(Self::Markdown),
            "html" | "htm" => Ok(Self::Html),
            "pdf" => Ok(Self::Pdf),
            _ => Err(SearchError::Unsupported(format!(
                "'{}': only .txt, .md, .html and .pdf files can be added",
                name.chars().take(80).collect::<String>()
            ))),
        }
    }

    /// The media type stored with the document.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain",
            Self::Markdown => "text/markdown",
            Self::Html => "text/html",
            Self::Pdf => "application/pdf",
        }
    }
}

/// The plain text of a document: UTF-8 text as it is (Markdown keeps its markup, which reads
/// well), HTML rendered to text, PDF text extracted page by page. Line ends are normalised and
/// control characters removed.
///
/// PDF parsing is CPU work: call this from a blocking thread.
///
/// # Errors
/// [`SearchError::TooLarge`] past [`MAX_DOCUMENT_BYTES`]; [`SearchError::Unreadable`] for text
/// that is not UTF-8, a file that is not a PDF or a PDF that cannot be read, and a document
/// without any text.
pub fn extract(format: Format, bytes: &[u8]) -> Result<String, SearchError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(SearchError::TooLarge(format!(
            "the document is {} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes (20 MiB)",
            bytes.len()
        )));
    }
    let utf8 = |what: &str| {
        std::str::from_utf8(bytes)
            .map_err(|e| SearchError::Unreadable(format!("the {what} is not UTF-8 text ({e})")))
    };
    let raw = match format {
        Format::Text => utf8("text")?.to_owned(),
        Format::Markdown => utf8("Markdown")?.to_owned(),
        Format::Html => html2text::config::plain_no_decorate()
            .string_from_read(utf8("HTML")?.as_bytes(), 10_000)
            .map_err(|e| SearchError::Unreadable(format!("the HTML could not be read: {e}")))?,
        Format::Pdf => pdf(bytes)?,
    };
    let text = clean(&raw);
    if text.is_empty() {
        return Err(SearchError::Unreadable(match format {
            Format::Pdf => "the PDF has no text to index (pages that are only images are not read)".into(),
            _ => "the document has no text".into(),
        }));
    }
    Ok(text)
}

fn pdf(bytes: &[u8]) -> Result<String, SearchError> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
    if !bytes[start..].starts_with(b"%PDF-") {
        return Err(SearchError::Unreadable("the file is not a PDF: it does not start with '%PDF-'".into()));
    }
    // The parser can panic on damaged files; a panic here is a file we cannot read, not a crash.
    let result = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(bytes));
    match result {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(SearchError::Unreadable(format!("the PDF could not be read: {e}"))),
        Err(_) => Err(SearchError::Unreadable("the PDF could not be read: it is damaged".into())),
    }
}

/// `\n` line ends, no control characters other than line breaks and tabs (the search snippets use
/// two of them as markers), no byte-order mark, trimmed lines, at most one blank line in a row.
pub fn clean(raw: &str) -> String {
    let unified = raw.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(unified.len());
    let mut blank = 0;
    for line in unified.split('\n') {
        let line: String =
            line.chars().filter(|c| *c == '\t' || !(c.is_control() || *c == '\u{feff}')).collect();
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name_and_extension() {
        assert_eq!(Format::from_name("Markdown").unwrap(), Format::Markdown);
        assert!(matches!(Format::from_name("pdf"), Err(SearchError::Invalid(_))));
        assert_eq!(Format::from_file_name("Notes.HTM").unwrap(), Format::Html);
        assert_eq!(Format::from_file_name("a.b.pdf").unwrap(), Format::Pdf);
        assert!(matches!(Format::from_file_name("photo.png"), Err(SearchError::Unsupported(_))));
        assert!(matches!(Format::from_file_name("README"), Err(SearchError::Unsupported(_))));
    }

    #[test]
    fn extracts_text_from_each_format() {
        assert_eq!(
            extract(Format::Text, b"\xef\xbb\xbfHello\r\nworld\x01\n\n\n\nagain").unwrap(),
            "Hello\nworld\n\nagain"
        );
        let html = b"<html><head><title>T</title><style>p{}</style></head><body><h1>Lanterns</h1>\
            <p>Goblins <b>carry</b> lanterns &amp; maps.</p><script>alert(1)</script></body></html>";
        let text = extract(Format::Html, html).unwrap();
        assert!(text.contains("Goblins carry lanterns & maps."), "{text}");
        assert!(!text.contains("alert"), "{text}");
        assert!(matches!(extract(Format::Text, b"\xff\xfe bad"), Err(SearchError::Unreadable(_))));
        assert!(matches!(extract(Format::Pdf, b"hello, not a pdf"), Err(SearchError::Unreadable(_))));
        assert!(matches!(extract(Format::Pdf, b"%PDF-1.4\n garbage"), Err(SearchError::Unreadable(_))));
        assert!(matches!(extract(Format::Text, b" \n\t "), Err(SearchError::Unreadable(_))));
        let big = vec![b'a'; MAX_DOCUMENT_BYTES + 1];
        assert!(matches!(extract(Format::Text, &big), Err(SearchError::TooLarge(_))));
    }

    #[test]
    fn extracts_text_from_a_pdf() {
        let pdf = super::super::testing::pdf("Goblins guard the lantern vault");
        let text = extract(Format::Pdf, &pdf).unwrap();
        assert!(text.contains("Goblins guard the lantern vault"), "{text:?}");
    }
}
