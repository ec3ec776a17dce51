//! `GET /openapi.json` against the service it describes: the document served is the one the
//! router is built with (`server::api_document`: one list makes both), every documented
//! operation is served and every other method on its path is refused by the router's 405, and
//! real responses, successes and errors, validate against the document's schemas, status codes
//! and headers.
//!
//! | module | checks |
//! |---|---|
//! | `routes` | the document against the router, both ways, on both kinds of instance |
//! | `responses` | real answers, successes and errors, against the document |

#![cfg(feature = "server")]

mod responses;
mod routes;

use crate::support::app::{Answer, App, Base, Server};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tessera::server;
use tessera::startup::ServerConfig;

/// Every method a route could be given.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The requests these tests make, to the issuer or the verify-only edge (both on sockets: the
/// edge follows the issuer's `/v1/state` over HTTP), answers kept whole for the document.
trait Probe {
    async fn send(
        &self,
        base: &Base,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer;

    /// `method path` on the issuer, as its super-admin.
    async fn admin_call(&self, method: Method, path: &str, body: Option<Value>) -> Answer;

    /// `GET /openapi.json` at `base`, itself checked against the document.
    async fn document(&self, base: &Base) -> Document;
}

impl Probe for App {
    async fn send(
        &self,
        base: &Base,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = base.request(method, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send().await
    }

    async fn admin_call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(
            &self.server.base,
            method,
            path,
            Some(&self.admin),
            body,
            &[],
        )
        .await
    }

    async fn document(&self, base: &Base) -> Document {
        let answer = self
            .send(base, Method::GET, "/openapi.json", None, None, &[])
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.headers["content-type"], "application/json");
        let doc = Document(answer.json());
        doc.check(
            "/openapi.json",
            "get",
            &answer,
            "the document describes itself",
        );
        doc
    }
}

/// Whether `answer` is the router's own 404 (no route) or 405 (no such method on a route).
fn is_fallback(answer: &Answer) -> bool {
    let code = || serde_json::from_str::<Value>(&answer.text).unwrap_or_default();
    (answer.status == StatusCode::NOT_FOUND && code()["error"]["message"] == "no such endpoint")
        || answer.status == StatusCode::METHOD_NOT_ALLOWED
}

/// The OpenAPI document, and the checks of a response against it.
struct Document(Value);

impl Document {
    /// Path template -> methods.
    fn operations(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.0["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .map(|(path, item)| {
                let methods = item
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| METHODS.contains(&k.as_str()))
                    .cloned()
                    .collect();
                (path.clone(), methods)
            })
            .collect()
    }

    /// Follow a local `$ref`.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(target) => {
                let pointer = target.strip_prefix('#').expect("a local reference");
                self.resolve(self.0.pointer(pointer).unwrap_or_else(|| {
                    panic!("{target} does not resolve");
                }))
            }
            None => value,
        }
    }

    /// Validate `instance` against `schema`, whose references point into this document.
    fn validate(&self, schema: &Value, instance: &Value, what: &str) -> Result<(), String> {
        let mut root = schema.clone();
        let object = root.as_object_mut().expect("a schema object");
        object.insert("components".into(), self.0["components"].clone());
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{what}: {instance} does not match {schema}:\n{}",
                errors.join("\n")
            ))
        }
    }

    /// The response matches what `method path` documents for its status: the status is
    /// documented, the body has the documented media type and schema (or is empty when none
    /// is documented), and the documented required headers are there and match.
    fn check(&self, path: &str, method: &str, answer: &Answer, what: &str) {
        if let Err(e) = self.conforms(path, method, answer, what) {
            panic!("{e}");
        }
    }

    fn conforms(
        &self,
        path: &str,
        method: &str,
        answer: &Answer,
        what: &str,
    ) -> Result<(), String> {
        let operation = &self.0["paths"][path][method];
        if !operation.is_object() {
            return Err(format!("{what}: {method} {path} undocumented"));
        }
        let status = answer.status.as_str();
        let response = operation["responses"]
            .get(status)
            .map(|r| self.resolve(r))
            .ok_or_else(|| {
                format!(
                    "{what}: {method} {path} answered {status}, which it does not document: {}",
                    answer.text
                )
            })?;
        match response.get("content").and_then(Value::as_object) {
            None if answer.text.is_empty() => {}
            None => return Err(format!("{what}: no body documented, got {}", answer.text)),
            Some(content) => {
                let media = answer
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let media = media.split(';').next().unwrap().trim();
                let documented = content
                    .get(media)
                    .ok_or_else(|| format!("{what}: content type {media:?} undocumented"))?;
                let instance = if media == "application/json" {
                    serde_json::from_str(&answer.text)
                        .map_err(|e| format!("{what}: not JSON ({e}): {}", answer.text))?
                } else {
                    Value::String(answer.text.clone())
                };
                self.validate(&documented["schema"], &instance, what)?;
            }
        }
        if let Some(headers) = response.get("headers").and_then(Value::as_object) {
            for (name, spec) in headers {
                let spec = self.resolve(spec);
                match answer.headers.get(name.as_str()) {
                    None if spec["required"] == true => {
                        return Err(format!("{what}: header {name} missing"))
                    }
                    None => {}
                    Some(value) => {
                        let value = Value::String(value.to_str().unwrap().to_owned());
                        self.validate(&spec["schema"], &value, &format!("{what}: header {name}"))?;
                    }
                }
            }
        }
        Ok(())
    }
}
