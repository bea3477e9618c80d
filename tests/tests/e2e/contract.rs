//! What the contract tests share: loading a vendor's machine-readable API description from
//! `shared/vendor-specs`, and checking a recorded request against the OpenAPI 3 operation it names
//! (parameters, request schema, security), with a test's named exceptions. Slack's Swagger 2.0
//! description has its own checks in `slack_contract.rs` and shares the loading.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

/// The API description `file` of `shared/vendor-specs`, parsed by `parse` (JSON or YAML). Outside
/// the project's workplace the shared specs may be absent: then `None`, with a notice, unless `CI`
/// is set (CI always has them).
pub fn load_spec(file: &str, parse: fn(&str) -> Result<Value, String>) -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vendor-specs")
        .join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(parse(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))),
        Err(_) if std::env::var("CI").is_err() => {
            eprintln!("skipping: {} not found", path.display());
            None
        }
        Err(error) => panic!("{}: {error}", path.display()),
    }
}

/// A JSON API description.
pub fn json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// A YAML API description, as the JSON it stands for: mapping keys become strings (OpenAPI's
/// status codes are YAML integers, `200:`), aliases are resolved by the loader.
pub fn yaml(text: &str) -> Result<Value, String> {
    let mut documents = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    match documents.len() {
        1 => yaml_to_json(documents.remove(0)),
        n => Err(format!("expected one YAML document, found {n}")),
    }
}

fn yaml_to_json(node: yaml_rust2::Yaml) -> Result<Value, String> {
    use yaml_rust2::Yaml;
    Ok(match node {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("not a finite number: {text}"))?,
        Yaml::String(s) => Value::String(s),
        Yaml::Array(items) => Value::Array(items.into_iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(entries) => {
            let mut object = Map::new();
            for (key, value) in entries {
                let key = match key {
                    Yaml::String(s) | Yaml::Real(s) => s,
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                object.insert(key, yaml_to_json(value)?);
            }
            Value::Object(object)
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err("unresolved YAML node".into()),
    })
}

/// A deliberate deviation from a description: (operation as `GET /template`, the parameter or
/// property, why).
pub type Exception = (&'static str, &'static str, &'static str);

/// The deviations a vendor's contract test allows, each named with its reason.
#[derive(Default)]
pub struct Exceptions {
    /// Query parameters sent where the operation does not declare them.
    pub query: &'static [Exception],
    /// Properties the request schema requires at the top of the body, left out on purpose.
    pub missing_body_properties: &'static [Exception],
}

fn excepted(list: &[Exception], operation: &str, what: &str) -> bool {
    list.iter().any(|(op, name, _)| *op == operation && *name == what)
}

/// Checks one recorded request against an OpenAPI 3 description: it names a documented,
/// undeprecated operation (path template and method, below the server path); fills only declared
/// path parameters; sends only declared query parameters and every required one; uses an auth
/// scheme the operation declares; and carries a body valid under the operation's JSON request
/// schema with no property that schema does not declare, or no body where it takes none. Returns
/// the security schemes its `Authorization` satisfied.
pub fn check_request(spec: &Value, request: &wiremock::Request, exceptions: &Exceptions) -> Vec<String> {
    let method = request.method.as_str();
    let path = path_below_server(spec, request.url.path());
    let operation =
        operation(spec, method, path).unwrap_or_else(|| panic!("{method} {path} is not a documented operation"));
    let name = operation.name(method);
    assert!(
        operation.operation.get("deprecated") != Some(&json!(true)),
        "{name} is deprecated"
    );
    let parameters = operation.parameters(spec);

    let path_parameters = names_in(&parameters, "path");
    for filled in template_parameters(operation.template) {
        assert!(
            path_parameters.contains(&filled),
            "{name}: path parameter {filled} is not declared"
        );
    }

    let query_parameters = names_in(&parameters, "query");
    let sent: Vec<String> = request.url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    for query in &sent {
        assert!(
            query_parameters.contains(&query.as_str()) || excepted(exceptions.query, &name, query),
            "{name}: query parameter {query} is not declared"
        );
    }
    for required in parameters
        .iter()
        .filter(|p| p["in"] == "query" && p["required"] == true)
        .filter_map(|p| p["name"].as_str())
    {
        assert!(
            sent.iter().any(|s| s == required),
            "{name}: required query parameter {required} is missing"
        );
    }

    let security = operation.security(spec);
    let satisfied = schemes_for_authorization(spec, &security, authorization(request));
    assert!(
        !satisfied.is_empty(),
        "{name}: the Authorization scheme is none of {security:?}"
    );

    match operation.json_request_schema() {
        None => assert!(request.body.is_empty(), "{name} takes no JSON body"),
        Some(schema) => {
            let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
            let violations: Vec<String> = schema_violations(spec, schema, &body)
                .into_iter()
                .filter(|v| {
                    let left_out = |missing: &str| excepted(exceptions.missing_body_properties, &name, missing);
                    !(v.at.is_empty() && v.missing.as_deref().is_some_and(left_out))
                })
                .map(|v| v.to_string())
                .collect();
            assert!(violations.is_empty(), "{name}: body violates {schema}: {violations:?}");
            let undeclared = undeclared_properties(spec, schema, &body);
            assert!(
                undeclared.is_empty(),
                "{name}: body properties not in {schema}: {undeclared:?}"
            );
        }
    }
    satisfied.into_iter().map(str::to_owned).collect()
}

/// A documented operation that a request was matched to.
pub struct Operation<'a> {
    /// The path template, e.g. `/repositories/{workspace}/{repo_slug}`.
    pub template: &'a str,
    /// The path item (holds parameters common to its operations).
    pub item: &'a Value,
    /// The operation under the request's method.
    pub operation: &'a Value,
}

impl<'a> Operation<'a> {
    /// `GET /template`, for messages and exception lists.
    pub fn name(&self, method: &str) -> String {
        format!("{method} {}", self.template)
    }

    /// The parameters declared on the path item and the operation, `$ref`s resolved.
    pub fn parameters(&self, spec: &'a Value) -> Vec<&'a Value> {
        [self.item, self.operation]
            .into_iter()
            .flat_map(|holder| holder["parameters"].as_array().into_iter().flatten())
            .map(|parameter| resolve(spec, parameter))
            .collect()
    }

    /// The schema of the operation's JSON request body, if it takes one.
    pub fn json_request_schema(&self) -> Option<&'a Value> {
        self.operation.pointer("/requestBody/content/application~1json/schema")
    }

    /// The security requirements in force: the operation's, else the description's global ones.
    pub fn security(&self, spec: &'a Value) -> Vec<&'a str> {
        let requirements = self.operation.get("security").unwrap_or(&spec["security"]);
        requirements
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .flat_map(|requirement| requirement.keys().map(String::as_str))
            .collect()
    }
}

/// The names of `parameters` that are `in` a place (`query`, `path`, `formData`, …).
pub fn names_in<'a>(parameters: &[&'a Value], place: &str) -> Vec<&'a str> {
    parameters
        .iter()
        .filter(|p| p["in"] == place)
        .filter_map(|p| p["name"].as_str())
        .collect()
}

/// The request's path below the description's first server URL (`/2.0` for Bitbucket).
pub fn path_below_server<'p>(spec: &Value, path: &'p str) -> &'p str {
    let server = spec
        .pointer("/servers/0/url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let authority_and_path = server.split_once("://").map_or(server, |(_, rest)| rest);
    let base = authority_and_path
        .find('/')
        .map_or("", |slash| &authority_and_path[slash..])
        .trim_end_matches('/');
    path.strip_prefix(base)
        .unwrap_or_else(|| panic!("{path} is not below the server path {base}"))
}

/// The operation documented for `method` on the path template matching `path` (relative to the
/// server). Where several templates match, the one with the most literal segments wins, as
/// OpenAPI prescribes (`/a/mine` before `/a/{id}`).
pub fn operation<'a>(spec: &'a Value, method: &str, path: &str) -> Option<Operation<'a>> {
    let segments: Vec<&str> = path.split('/').collect();
    let (template, item) = spec["paths"]
        .as_object()?
        .iter()
        .filter(|(template, _)| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len() && parts.iter().zip(&segments).all(|(t, s)| is_parameter(t) || t == s)
        })
        .max_by_key(|(template, _)| template.split('/').filter(|t| !is_parameter(t)).count())?;
    let operation = item.get(method.to_lowercase())?;
    Some(Operation {
        template,
        item,
        operation,
    })
}

/// The `{name}` segments of a path template.
pub fn template_parameters(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter(|t| is_parameter(t))
        .map(|t| &t[1..t.len() - 1])
        .collect()
}

fn is_parameter(segment: &str) -> bool {
    segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}')
}

/// Follows a local `$ref` (`#/components/…`) to what it names; anything else as it is.
pub fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let target = reference
                .strip_prefix('#')
                .and_then(|pointer| spec.pointer(pointer))
                .unwrap_or_else(|| panic!("unresolvable $ref {reference}"));
            resolve(spec, target)
        }
        None => node,
    }
}

/// One way a body falls short of its schema.
pub struct Violation {
    /// Where in the body (JSON pointer).
    pub at: String,
    /// The validator's words.
    pub message: String,
    /// For a missing required property, its name.
    pub missing: Option<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Validates `body` against `schema` (usually a `$ref` into the description's components).
pub fn schema_violations(spec: &Value, schema: &Value, body: &Value) -> Vec<Violation> {
    let mut document = schema.clone();
    if let Some(object) = document.as_object_mut() {
        object.insert("components".into(), json!({"schemas": spec["components"]["schemas"]}));
    }
    let validator = jsonschema::validator_for(&document).expect("spec schema compiles");
    validator
        .iter_errors(body)
        .map(|error| Violation {
            at: error.instance_path().to_string(),
            message: error.to_string(),
            missing: match error.kind() {
                jsonschema::error::ValidationErrorKind::Required { property } => property.as_str().map(str::to_owned),
                _ => None,
            },
        })
        .collect()
}

/// Body properties (dotted paths) that `schema` does not declare: not among its `properties`
/// (through `$ref` and `allOf`), where it does not admit others with `additionalProperties`.
/// A validator accepts them silently, since OpenAPI objects are open by default.
pub fn undeclared_properties(spec: &Value, schema: &Value, body: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk_declared(spec, schema, body, "", &mut found);
    found
}

fn walk_declared(spec: &Value, schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    match value {
        Value::Object(object) => {
            let (declared, open) = declared_properties(spec, schema);
            for (key, child) in object {
                let here = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                match declared.get(key.as_str()) {
                    Some(child_schema) => walk_declared(spec, child_schema, child, &here, found),
                    None if open => {}
                    None => found.push(here),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk_declared(spec, item_schema, item, &format!("{at}[{i}]"), found);
                }
            }
        }
        _ => {}
    }
}

/// The property schemas an object schema declares, its `allOf` parts merged, and whether it
/// admits other properties.
fn declared_properties<'a>(spec: &'a Value, schema: &'a Value) -> (BTreeMap<&'a str, &'a Value>, bool) {
    let schema = resolve(spec, schema);
    let mut declared: BTreeMap<&str, &Value> = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, property)| (name.as_str(), property))
        .collect();
    let mut open = matches!(
        schema.get("additionalProperties"),
        Some(Value::Bool(true) | Value::Object(_))
    );
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (more, part_open) = declared_properties(spec, part);
        declared.extend(more);
        open |= part_open;
    }
    (declared, open)
}

/// The security schemes (of `names`) an `Authorization` header's scheme belongs to: `Basic` to
/// an `http`/`basic` scheme; `Bearer` to an `http`/`bearer` scheme or an `oauth2` one, whose access
/// tokens travel as bearer tokens (RFC 6750).
pub fn schemes_for_authorization<'a>(spec: &Value, names: &[&'a str], authorization: &str) -> Vec<&'a str> {
    let scheme = authorization.split(' ').next().unwrap_or_default().to_ascii_lowercase();
    names
        .iter()
        .copied()
        .filter(|name| {
            let declared = &spec["components"]["securitySchemes"][*name];
            let http_scheme = declared["scheme"].as_str().map(str::to_ascii_lowercase);
            match declared["type"].as_str() {
                Some("http") => http_scheme.as_deref() == Some(scheme.as_str()),
                Some("oauth2") => scheme == "bearer",
                _ => false,
            }
        })
        .collect()
}

/// The request's `Authorization` header, or "".
pub fn authorization(request: &wiremock::Request) -> &str {
    request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[test]
fn yaml_keys_become_strings_and_numbers_stay_numbers() {
    let value = yaml("responses:\n  200:\n    description: ok\nminimum: 1\nratio: 0.5\nflag: true\n").unwrap();
    assert_eq!(
        value,
        json!({"responses": {"200": {"description": "ok"}}, "minimum": 1, "ratio": 0.5, "flag": true})
    );
}

#[test]
fn the_most_literal_template_wins() {
    let spec = json!({"paths": {
        "/a/{id}": {"get": {"operationId": "byId"}},
        "/a/mine": {"get": {"operationId": "mine"}}
    }});
    assert_eq!(
        operation(&spec, "GET", "/a/mine").unwrap().operation["operationId"],
        "mine"
    );
    assert_eq!(
        operation(&spec, "GET", "/a/7").unwrap().operation["operationId"],
        "byId"
    );
    assert!(operation(&spec, "POST", "/a/7").is_none());
}

#[test]
fn undeclared_properties_follow_refs_and_all_of_and_respect_open_objects() {
    let spec = json!({"components": {"schemas": {
        "base": {"properties": {"type": {"type": "string"}}},
        "comment": {"allOf": [
            {"$ref": "#/components/schemas/base"},
            {"properties": {
                "content": {"$ref": "#/components/schemas/content"},
                "extra": {"type": "object", "additionalProperties": true}
            }}
        ]},
        "content": {"properties": {"raw": {"type": "string"}}}
    }}});
    let schema = json!({"$ref": "#/components/schemas/comment"});
    let body = json!({"type": "c", "content": {"raw": "x", "html": "y"}, "extra": {"any": 1}, "stray": 2});
    assert_eq!(
        undeclared_properties(&spec, &schema, &body),
        vec!["content.html".to_owned(), "stray".to_owned()]
    );
}
