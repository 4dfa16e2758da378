//! Cairn S3 gateway.
//!
//! Owns the S3 API (authentication, request parsing, XML, errors — through
//! `s3s`), the PUT/GET pipelines that drive the storage nodes, the admin
//! HTTP API, and the `--dev` all-in-one mode. Holds no durable state: every
//! record lives on the storage nodes, so any number of gateways can serve
//! one cluster.
#![warn(missing_docs)]

pub mod admin;
pub mod checksum;
pub mod cluster;
pub mod config;
pub mod cors;
pub mod data;
pub mod dev;
pub mod error;
pub mod framing;
pub mod headers;
pub mod host;
pub mod meta;
pub mod refs;
pub mod request_log;
pub mod s3;
pub mod server;
pub mod state;
pub mod website;

pub use server::run;
pub use state::Gateway;
