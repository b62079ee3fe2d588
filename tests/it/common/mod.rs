//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

pub mod child;
pub mod fuzz_entry;
pub mod golden;
pub mod misp_objects;
pub mod opencti;
pub mod pymisp_check;
pub mod server;
pub mod stix_check;
