//! Validation of `node.access_log`: the switch, or the format, fields, template and output of lines
//! of its own.

use super::Validator;
use crate::model::defaults::node::access_log as d;
use crate::model::*;
use crate::raw::*;

impl Validator {
    /// The access log settings; `None` = off.
    pub(super) fn access_log(&mut self, raw: Option<&RawAccessLog>) -> Option<AccessLog> {
        let raw = match raw? {
            RawAccessLog::Switch(true) => return Some(AccessLog::Tracing),
            RawAccessLog::Switch(false) => return None,
            RawAccessLog::Lines(raw) => raw,
        };
        let path = "node.access_log";
        let format = match raw.format.as_deref().unwrap_or(d::FORMAT) {
            "json" => {
                if raw.template.is_some() {
                    self.error(format!("{path}.template"), "only with format = \"text\"");
                }
                LineFormat::Json(self.access_fields(path, raw.fields.as_deref()))
            }
            "text" => {
                if raw.fields.is_some() {
                    self.error(
                        format!("{path}.fields"),
                        "only with format = \"json\" (a text line's fields are in its template)",
                    );
                }
                let template = raw.template.as_deref().unwrap_or(d::TEMPLATE);
                LineFormat::Template(self.template(&format!("{path}.template"), template))
            }
            other => {
                self.error(
                    format!("{path}.format"),
                    format!("expected json or text, not {other:?}"),
                );
                LineFormat::Json(AccessField::DEFAULT_JSON.to_vec())
            }
        };
        let output = match raw.output.as_deref().unwrap_or(d::OUTPUT) {
            "stdout" => LogOutput::Stdout,
            "stderr" => LogOutput::Stderr,
            "" => {
                self.error(
                    format!("{path}.output"),
                    "expected stdout, stderr or a file path",
                );
                LogOutput::Stdout
            }
            file => LogOutput::File(file.into()),
        };
        let buffer_lines = self.int(
            &format!("{path}.buffer_lines"),
            raw.buffer_lines,
            d::BUFFER_LINES,
            1,
            10_000_000,
        );
        Some(AccessLog::Lines(AccessLines {
            format,
            output,
            buffer_lines,
        }))
    }

    /// `fields` of a JSON line: known names, each once.
    fn access_fields(&mut self, path: &str, raw: Option<&[String]>) -> Vec<AccessField> {
        let Some(names) = raw else {
            return AccessField::DEFAULT_JSON.to_vec();
        };
        if names.is_empty() {
            self.error(format!("{path}.fields"), "name at least one field");
        }
        let mut fields = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            match AccessField::from_name(name) {
                Some(f) if fields.contains(&f) => self.error(
                    format!("{path}.fields[{i}]"),
                    format!("{name:?} is listed twice"),
                ),
                Some(f) => fields.push(f),
                None => self.error(
                    format!("{path}.fields[{i}]"),
                    format!("unknown field {name:?}; expected one of {}", known_fields()),
                ),
            }
        }
        fields
    }

    /// A text template: literal text with `$name` or `${name}` references (`$$` is a `$`).
    fn template(&mut self, path: &str, text: &str) -> Vec<TemplatePart> {
        match parse_template(text) {
            Ok(parts) => parts,
            Err(e) => {
                self.error(path, e);
                Vec::new()
            }
        }
    }
}

/// The names of every field, for error messages.
fn known_fields() -> String {
    let names: Vec<&str> = AccessField::ALL.iter().map(|f| f.name()).collect();
    names.join(", ")
}

/// Splits a template into literal text and fields.
fn parse_template(text: &str) -> Result<Vec<TemplatePart>, String> {
    if text.bytes().any(|b| b == b'\n' || b == b'\r') {
        return Err("a template is one line: no line breaks".into());
    }
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            literal.push('$');
            rest = after;
            continue;
        }
        let (name, after) = match rest.strip_prefix('{') {
            Some(inner) => {
                let end = inner.find('}').ok_or_else(|| {
                    format!(
                        "unclosed \"${{\" at {:?}",
                        &text[text.len() - rest.len() - 1..]
                    )
                })?;
                (&inner[..end], &inner[end + 1..])
            }
            None => {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        let field = AccessField::from_name(name).ok_or_else(|| {
            format!(
                "unknown field \"${name}\"; expected one of {}",
                known_fields()
            )
        })?;
        if !literal.is_empty() {
            parts.push(TemplatePart::Text(std::mem::take(&mut literal)));
        }
        parts.push(TemplatePart::Field(field));
        rest = after;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(TemplatePart::Text(literal));
    }
    if !parts.iter().any(|p| matches!(p, TemplatePart::Field(_))) {
        return Err("a template names at least one field ($status, $path, ...)".into());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_text_and_fields() {
        let parts = parse_template("$client [${time}] $$5 \"$method$path\"").unwrap();
        assert_eq!(
            parts,
            [
                TemplatePart::Field(AccessField::Client),
                TemplatePart::Text(" [".into()),
                TemplatePart::Field(AccessField::Time),
                TemplatePart::Text("] $5 \"".into()),
                TemplatePart::Field(AccessField::Method),
                TemplatePart::Field(AccessField::Path),
                TemplatePart::Text("\"".into()),
            ]
        );
        assert!(parse_template("$nope")
            .unwrap_err()
            .contains("unknown field \"$nope\""));
        assert!(parse_template("${status").unwrap_err().contains("unclosed"));
        assert!(parse_template("no fields").is_err());
        assert!(parse_template("$status\n").is_err());
        assert!(parse_template(crate::model::defaults::node::access_log::TEMPLATE).is_ok());
    }
}
