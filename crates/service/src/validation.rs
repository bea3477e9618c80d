//! JSON Schema validation of plugin configs and tool arguments.
//!
//! Messages are built from the failed keyword only, never from the offending value: a config
//! value may be a secret, and error responses and logs must never carry one.

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde::Serialize;
use serde_json::Value;

/// One failing field of a config or of tool arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field, as a dotted path (`host`, `fields.0`); empty for the document itself.
    pub field: String,
    /// What is wrong with it, without its value.
    pub message: String,
}

/// Compiles a schema; plugins ship their schemas, so a failure is a plugin bug found at start-up.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// Every violation of `validator` by `instance`.
pub fn violations(validator: &Validator, instance: &Value) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = validator
        .iter_errors(instance)
        .flat_map(|error| {
            let path = error.instance_path().as_str().trim_start_matches('/').replace('/', ".");
            describe(error.kind(), &path)
        })
        .collect();
    errors.sort_by(|a, b| a.field.cmp(&b.field));
    errors.dedup();
    errors
}

fn describe(kind: &ValidationErrorKind, path: &str) -> Vec<FieldError> {
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let at = |message: String| {
        vec![FieldError {
            field: path.to_owned(),
            message,
        }]
    };
    match kind {
        ValidationErrorKind::Required { property } => {
            vec![FieldError {
                field: join(property.as_str().unwrap_or_default()),
                message: "is required".into(),
            }]
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| FieldError {
                field: join(name),
                message: "is not a known field".into(),
            })
            .collect(),
        ValidationErrorKind::Type { kind } => at(format!("must be of type {}", type_name(kind))),
        ValidationErrorKind::MinLength { limit } => at(format!("must be at least {limit} characters long")),
        ValidationErrorKind::MaxLength { limit } => at(format!("must be at most {limit} characters long")),
        ValidationErrorKind::Pattern { pattern } => at(format!("must match the pattern {pattern}")),
        ValidationErrorKind::Minimum { limit } => at(format!("must be at least {limit}")),
        ValidationErrorKind::Maximum { limit } => at(format!("must be at most {limit}")),
        ValidationErrorKind::Enum { options } => at(format!("must be one of {options}")),
        other => at(format!("fails the {} constraint", other.keyword())),
    }
}

fn type_name(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(set) => format!("{set:?}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_each_failing_field_without_its_value() {
        let schema = json!({
            "type": "object", "additionalProperties": false, "required": ["host", "api_token"],
            "properties": {"host": {"type": "string"}, "api_token": {"type": "string", "minLength": 40, "writeOnly": true}}
        });
        let validator = compile(&schema).unwrap();
        let errors = violations(&validator, &json!({"api_token": "short-secret-value", "extra": 1}));
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["api_token", "extra", "host"]);
        assert!(errors.iter().all(|e| !e.message.contains("short-secret-value")));
        assert!(violations(&validator, &json!({"host": "h", "api_token": "x".repeat(40)})).is_empty());
    }
}
