//! One file per command of the binary: `serve` (the default), `healthcheck`, `stix`, `opencti`.

pub mod healthcheck;
pub mod opencti;
pub mod serve;
pub mod stix;
