//! The Marketer control plane: tenants, users, roles, projects, the audit
//! log and the JSON API (see `ARCHITECTURE.md` for the map).

pub mod admin;
pub mod api;
pub mod auth;
pub mod backup;
pub mod charts;
pub mod cloud;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod error;
pub mod gateway;
pub mod images;
pub mod jobs;
pub mod listener;
pub mod metrics;
pub mod notify;
pub mod pdf;
pub mod publishing;
pub mod secrets;
pub mod server;
pub mod service;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod ui;
