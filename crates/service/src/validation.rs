//! JSON Schema validation of plugin configs and tool arguments.
//!
//! Messages are built from the failed keyword only, never from the offending value: a config
//! value may be a secret, and error responses and logs must never carry one.

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde_json::Value;

use crate::{FieldError, FieldErrors};

/// Compiles a schema; plugins ship their schemas, so a failure is a plugin bug found at start-up.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// The violations of `validator` by `instance`: the first few in full, the rest counted.
pub fn violations(validator: &Validator, instance: &Value) -> FieldErrors {
    let mut found = FieldErrors::default();
    for error in validator.iter_errors(instance) {
        let path = error.instance_path().as_str().trim_start_matches('/').replace('/', ".");
        for field_error in describe(error.kind(), &path) {
            found.push(field_error);
        }
    }
    found.errors.sort_by(|a, b| a.field.cmp(&b.field));
    found
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
    use crate::MAX_REPORTED_ERRORS;

    #[test]
    fn names_each_failing_field_without_its_value() {
        let schema = json!({
            "type": "object", "additionalProperties": false, "required": ["host", "api_token"],
            "properties": {"host": {"type": "string"}, "api_token": {"type": "string", "minLength": 40, "writeOnly": true}}
        });
        let validator = compile(&schema).unwrap();
        let errors = violations(&validator, &json!({"api_token": "short-secret-value", "extra": 1}));
        let fields: Vec<&str> = errors.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["api_token", "extra", "host"]);
        assert_eq!(errors.omitted, 0);
        assert!(errors.errors.iter().all(|e| !e.message.contains("short-secret-value")));
        assert!(violations(&validator, &json!({"host": "h", "api_token": "x".repeat(40)})).is_empty());
    }

    #[test]
    fn reports_the_first_errors_and_counts_the_rest() {
        let validator = compile(&json!({"type": "array", "items": {"type": "string"}})).unwrap();
        let errors = violations(&validator, &json!(vec![1; 1000]));
        assert_eq!(errors.errors.len(), MAX_REPORTED_ERRORS);
        assert_eq!(errors.omitted, 1000 - MAX_REPORTED_ERRORS);
        assert!(!errors.is_empty());
    }
}
