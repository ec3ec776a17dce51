//! The HTTP API and what it verifies: the service's routes (`server`) and its OpenAPI document
//! (`openapi`), called in process wherever the socket does not matter, and tokens built to
//! break the verifier (`hostile`).

#[path = "../support/mod.rs"]
mod support;

mod access;
mod census;
mod flood;
mod hostile;
mod networks;
mod oauth;
mod openapi;
mod rotation;
mod server;
