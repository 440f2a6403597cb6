//! Per-request behaviour specs (`latency=<ms>,fail=<status>,cut=<n>,stall,malformed,error_event`).

/// What a request asked the mock to do besides answering normally.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Behavior {
    /// Milliseconds to wait before answering.
    pub latency_ms: Option<u64>,
    /// Status to fail with, after the key check.
    pub fail: Option<u16>,
    /// Streaming: content chunks to send before dropping the connection.
    pub cut: Option<usize>,
    /// Never answer (plain) or stop sending after the first content chunk (stream).
    pub stall: bool,
    /// Answer with a body (plain) or a `data:` line (stream) that is not valid JSON.
    pub malformed: bool,
    /// Streaming: send the provider's in-stream error after the first content chunk.
    pub error_event: bool,
}

impl Behavior {
    /// Parses a comma-separated spec; the error names the offending item.
    pub fn parse(spec: &str) -> Result<Behavior, String> {
        let mut b = Behavior::default();
        for item in spec.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            match item.split_once('=') {
                Some(("latency", v)) => {
                    b.latency_ms = Some(v.trim().parse().map_err(|_| invalid(item, "milliseconds"))?);
                }
                Some(("fail", v)) => {
                    let status: u16 = v.trim().parse().map_err(|_| invalid(item, "an HTTP status"))?;
                    if !(400..=599).contains(&status) {
                        return Err(invalid(item, "an HTTP status from 400 to 599"));
                    }
                    b.fail = Some(status);
                }
                Some(("cut", v)) => {
                    b.cut = Some(v.trim().parse().map_err(|_| invalid(item, "a chunk count"))?);
                }
                None if item == "stall" => b.stall = true,
                None if item == "malformed" => b.malformed = true,
                None if item == "error_event" => b.error_event = true,
                _ => {
                    return Err(format!(
                        "invalid mock behaviour `{item}`: expected latency=<ms>, fail=<status>, cut=<n>, \
                         stall, malformed or error_event"
                    ));
                }
            }
        }
        Ok(b)
    }

    /// Combines two specs: values set in `other` win, flags add up.
    pub fn merge(self, other: Behavior) -> Behavior {
        Behavior {
            latency_ms: other.latency_ms.or(self.latency_ms),
            fail: other.fail.or(self.fail),
            cut: other.cut.or(self.cut),
            stall: self.stall || other.stall,
            malformed: self.malformed || other.malformed,
            error_event: self.error_event || other.error_event,
        }
    }
}

fn invalid(item: &str, expected: &str) -> String {
    format!("invalid mock behaviour `{item}`: expected {expected}")
}

/// Splits `model@spec` into the model name and the spec, if any.
pub(crate) fn split_model(model: &str) -> (&str, Option<&str>) {
    match model.split_once('@') {
        Some((name, spec)) => (name, Some(spec)),
        None => (model, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_merges() {
        let a = Behavior::parse("latency=20, fail=503").unwrap();
        assert_eq!(a.latency_ms, Some(20));
        assert_eq!(a.fail, Some(503));
        let b = Behavior::parse("cut=2,stall,malformed,error_event,fail=429").unwrap();
        let m = a.merge(b);
        assert_eq!((m.latency_ms, m.fail, m.cut), (Some(20), Some(429), Some(2)));
        assert!(m.stall && m.malformed && m.error_event);
        assert!(Behavior::parse("").unwrap() == Behavior::default());
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(Behavior::parse("fail=200").is_err());
        assert!(Behavior::parse("fail=abc").is_err());
        assert!(Behavior::parse("latency=-1").is_err());
        assert!(Behavior::parse("explode").is_err());
    }

    #[test]
    fn splits_model_names() {
        assert_eq!(split_model("gpt-4o@fail=503"), ("gpt-4o", Some("fail=503")));
        assert_eq!(split_model("gpt-4o"), ("gpt-4o", None));
    }
}
