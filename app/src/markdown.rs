//! Markdown from a model, made safe to put into the page. The same function renders on the server and
//! in the browser (while an answer streams in), so the two always agree.
//!
//! Security: a model's answer is untrusted text (it can repeat whatever a prompt or a document fed
//! it). Every piece of raw HTML in it (`Event::Html`, `Event::InlineHtml`) is shown as text, never
//! parsed as markup; links keep only `http:`, `https:` and `mailto:` targets or relative ones (a
//! `javascript:` or `data:` link becomes its plain text); and images become links, so an answer can
//! neither run script nor make the browser fetch an address on its own (a tracking or data-leaking
//! image).

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// Escapes text for an HTML attribute value in double quotes.
fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The link target a browser would follow, when it is one we allow: `http:`, `https:`, `mailto:`, or
/// relative (no scheme). Browsers drop control characters and whitespace inside a URL before reading
/// its scheme (`java\tscript:` is `javascript:`), so the check looks at what is left after removing
/// them, and that is also what is written out.
fn safe_href(url: &str) -> Option<String> {
    let cleaned: String = url.chars().filter(|c| !c.is_control() && !c.is_whitespace()).collect();
    let scheme_end = cleaned.find([':', '/', '?', '#']);
    match scheme_end {
        Some(i) if cleaned.as_bytes()[i] == b':' => {
            let scheme = cleaned[..i].to_ascii_lowercase();
            matches!(scheme.as_str(), "http" | "https" | "mailto").then_some(cleaned)
        }
        _ => Some(cleaned),
    }
}

fn open_link(href: &str, title: &str) -> Event<'static> {
    let title = if title.is_empty() { String::new() } else { format!(" title=\"{}\"", attr(title)) };
    Event::Html(CowStr::from(format!(
        "<a href=\"{}\"{title} rel=\"nofollow noopener noreferrer\" target=\"_blank\">",
        attr(href)
    )))
}

/// HTML for `markdown`, with the model's own HTML shown as text (see the module notes).
pub fn render(markdown: &str) -> String {
    let mut events: Vec<Event> = Vec::new();
    // For each open link or image: whether it was written as an `<a>` (and so needs its `</a>`).
    let mut open: Vec<bool> = Vec::new();
    for event in Parser::new_ext(markdown, options()) {
        match event {
            // Raw HTML from the model: shown, never parsed.
            Event::Html(text) | Event::InlineHtml(text) => events.push(Event::Text(text)),
            Event::Start(Tag::HtmlBlock) => events.push(Event::Start(Tag::Paragraph)),
            Event::End(TagEnd::HtmlBlock) => events.push(Event::End(TagEnd::Paragraph)),
            Event::Start(Tag::Link { link_type, dest_url, title, .. }) => {
                let dest = if link_type == LinkType::Email {
                    format!("mailto:{dest_url}")
                } else {
                    dest_url.to_string()
                };
                let inside_link = open.iter().any(|o| *o);
                match safe_href(&dest).filter(|_| !inside_link) {
                    Some(href) => {
                        events.push(open_link(&href, &title));
                        open.push(true);
                    }
                    None => open.push(false),
                }
            }
            Event::Start(Tag::Image { dest_url, title, .. }) => {
                let inside_link = open.iter().any(|o| *o);
                match safe_href(&dest_url).filter(|_| !inside_link) {
                    Some(href) => {
                        events.push(open_link(&href, &title));
                        open.push(true);
                    }
                    None => open.push(false),
                }
                events.push(Event::Text(CowStr::from("image: ")));
            }
            Event::End(TagEnd::Link | TagEnd::Image) => {
                if open.pop() == Some(true) {
                    events.push(Event::Html(CowStr::from("</a>")));
                }
            }
            other => events.push(other),
        }
    }
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events.into_iter());
    out
}

/// The words of `markdown` without its markup, for reading an answer aloud.
pub fn plain_text(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    for event in Parser::new_ext(markdown, options()) {
        match event {
            Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak => out.push(' '),
            Event::End(TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::Item | TagEnd::CodeBlock) => {
                out.push('\n');
            }
            _ => {}
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_html() {
        assert_eq!(render("**bold** and *it*"), "<p><strong>bold</strong> and <em>it</em></p>\n");
        let code = render("```rust\nlet a = 1 < 2;\n```");
        assert!(code.contains("<code class=\"language-rust\">let a = 1 &lt; 2;"), "{code}");
        assert!(render("| a |\n|---|\n| b |").contains("<table>"));
    }

    #[test]
    fn raw_html_is_shown_as_text() {
        for hostile in [
            "<img src=x onerror=\"window.__xss=1\">",
            "before <script>alert(1)</script> after",
            "<div>\n<iframe src=\"https://evil.example\"></iframe>\n</div>",
            "x <svg onload=alert(1)> y",
            "<!-- comment --> <a href=\"javascript:alert(1)\">x</a>",
        ] {
            let html = render(hostile);
            for tag in ["<img", "<script", "<iframe", "<svg", "<div", "<!--", "<a href"] {
                assert!(!html.contains(tag), "{hostile:?} gave {html:?}");
            }
            assert!(html.contains("&lt;"), "{hostile:?} is shown: {html:?}");
        }
    }

    #[test]
    fn only_safe_links_are_links() {
        let ok = render("[docs](https://example.com/a?b=\"c\") <https://x.test> [rel](/chat)");
        assert!(
            ok.contains(
                r#"<a href="https://example.com/a?b=&quot;c&quot;" rel="nofollow noopener noreferrer""#
            ),
            "{ok}"
        );
        assert!(ok.contains(r#"<a href="https://x.test""#), "{ok}");
        assert!(ok.contains(r#"<a href="/chat""#), "{ok}");
        assert!(render("<a@b.test>").contains(r#"href="mailto:a@b.test""#));
        for bad in [
            "[x](javascript:alert(1))",
            "[x](JavaScript:alert(1))",
            "[x](java\tscript:alert(1))",
            "[x](javascript&#58;alert(1))",
            "[x]( data:text/html,<script>alert(1)</script>)",
            "[x](vbscript:msgbox)",
            "<javascript:alert(1)>",
        ] {
            let html = render(bad);
            assert!(!html.contains("<a") && !html.contains("href"), "{bad:?} gave {html:?}");
        }
    }

    #[test]
    fn images_become_links() {
        let html = render("![a cat](https://img.example/cat.png) ![x](javascript:alert(1))");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains(r#"<a href="https://img.example/cat.png""#), "{html}");
        assert!(html.contains("image: a cat</a>"), "{html}");
        assert!(html.contains("image: x") && !html.contains("javascript"), "{html}");
    }

    #[test]
    fn plain_text_drops_the_markup() {
        assert_eq!(plain_text("# Hi\n\n**bold** `code`\n- one\n- two"), "Hi\nbold code\none\ntwo");
    }
}
