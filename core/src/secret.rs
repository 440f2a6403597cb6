//! A wrapper that keeps secrets (database passwords, API keys, tokens) out of logs and output.

use std::fmt;

/// A value that must never be printed. `Debug` and `Display` show `[redacted]`; read the value with
/// [`Secret::expose`] only where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value itself. Call this only at the point of use, never to log or display it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Shows a connection URL with any password replaced by `****`, e.g. for `goblin check-config`.
pub fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails on URLs that cannot carry one, and this one does.
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        Ok(_) => raw.to_string(),
        // Not a URL we can take apart: show only its scheme.
        Err(_) => match raw.split_once(':') {
            Some((scheme, _)) => format!("{scheme}:[unparsable, hidden]"),
            None => "[unparsable, hidden]".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn mask_url_hides_password_only() {
        assert_eq!(
            mask_url("postgres://goblin:s3cret@db.internal:5432/goblin"),
            "postgres://goblin:****@db.internal:5432/goblin"
        );
        assert_eq!(mask_url("sqlite://./data/goblin.db?mode=rwc"), "sqlite://./data/goblin.db?mode=rwc");
        assert_eq!(mask_url("redis://:pw@127.0.0.1:6379/0"), "redis://:****@127.0.0.1:6379/0");
        assert!(!mask_url("postgres//user:pw@").contains("pw"));
    }
}
