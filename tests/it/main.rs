//! The integration tests, as one test binary (one link, one harness in `common`): each
//! module below was a test binary of its own. End-to-end tests drive the router with
//! `oneshot` or a real server over TCP, in front of the fake DomainTools API.

mod common;

// `common/golden.rs` is also compiled into the library's unit tests, where it finds MISP's
// catalogue as `crate::misp`; this import gives it the same path here.
use misp_domaintools::misp;

mod binary;
mod e2e_classic;
mod e2e_iris;
mod fake_api;
mod fake_feeds;
mod feed_client;
mod feeds_misp;
mod fuzz_corpus;
mod http_api;
mod iris_modules_e2e;
mod misp_modules;
mod misp_objects;
mod misp_stored;
mod opencti_amqp;
mod opencti_connector;
mod opencti_feeds;
mod opencti_logs;
mod opencti_platforms;
mod opencti_tls;
mod quota;
mod redis_cache;
mod reliability_bad_input;
mod reliability_faults;
mod reliability_hostile;
mod reliability_load;
mod reliability_properties;
mod reliability_secrets;
mod reliability_shutdown;
mod reliability_upstream;
mod reply_cache;
mod stix_bundles;
