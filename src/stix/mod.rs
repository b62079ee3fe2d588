//! The DomainTools enrichment as STIX 2.1, for OpenCTI and any other STIX consumer.
//!
//! # Layout
//! - [`ids`]: deterministic ids (UUIDv5 over RFC 8785 canonical JSON), as `stix2` and pycti.
//! - [`validate`]: domain, IPv4 and e-mail syntax checks.
//! - [`mapping`]: the pure mapping from Iris Investigate records to STIX objects.
//! - [`enrich`]: the DomainTools calls (with IP pivot paging) followed by the mapping; used by
//!   the `stix` command and the OpenCTI connector alike.
//!
//! Everything here is independent of OpenCTI's transport: the connector only adds the
//! platform protocol around [`enrich::enrich`].

pub mod enrich;
pub mod ids;
pub mod mapping;
pub(crate) mod validate;

use std::fmt;
use std::str::FromStr;

pub use enrich::{enrich, EnrichError, EnrichSettings, Enrichment, IrisProduct};
pub use mapping::{map_records, MapOptions, Mapping, Observable, ObservableKind, Skipped};

/// OpenCTI's SCO extension (author and score of an observable), as pycti's `STIX_EXT_OCTI_SCO`.
pub const OPENCTI_SCO_EXTENSION: &str =
    "extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82";

/// A Traffic Light Protocol level, ordered from the least to the most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tlp {
    /// TLP:CLEAR (TLP 1.0's TLP:WHITE).
    Clear,
    /// TLP:GREEN.
    Green,
    /// TLP:AMBER.
    Amber,
    /// TLP:AMBER+STRICT (TLP 2.0).
    AmberStrict,
    /// TLP:RED.
    Red,
}

impl Tlp {
    /// The marking-definition id every STIX tool (TLP 1.0 ids from the STIX 2.1 spec) and
    /// OpenCTI (its fixed id for TLP:AMBER+STRICT) use for this level.
    pub fn marking_id(self) -> &'static str {
        match self {
            Tlp::Clear => "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
            Tlp::Green => "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
            Tlp::Amber => "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
            Tlp::AmberStrict => "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37",
            Tlp::Red => "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        }
    }

    /// The name OpenCTI gives the marking ("TLP:AMBER").
    pub fn name(self) -> &'static str {
        match self {
            Tlp::Clear => "TLP:CLEAR",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        }
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Tlp {
    type Err = String;

    /// Accepts OpenCTI's names in any case, with or without the `TLP:` prefix; TLP:WHITE is
    /// TLP:CLEAR. Anything else is an error, never a silent default.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let level = upper.strip_prefix("TLP:").unwrap_or(&upper);
        match level {
            "CLEAR" | "WHITE" => Ok(Tlp::Clear),
            "GREEN" => Ok(Tlp::Green),
            "AMBER" => Ok(Tlp::Amber),
            "AMBER+STRICT" => Ok(Tlp::AmberStrict),
            "RED" => Ok(Tlp::Red),
            _ => Err(format!(
                "unknown TLP level {s:?} (expected TLP:CLEAR, TLP:WHITE, TLP:GREEN, TLP:AMBER, \
                 TLP:AMBER+STRICT or TLP:RED)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlp_names_parse_and_order() {
        assert_eq!("TLP:AMBER".parse(), Ok(Tlp::Amber));
        assert_eq!("tlp:amber+strict".parse(), Ok(Tlp::AmberStrict));
        assert_eq!("TLP:WHITE".parse(), Ok(Tlp::Clear));
        assert_eq!("red".parse(), Ok(Tlp::Red));
        assert!("TLP:PURPLE".parse::<Tlp>().is_err());
        assert!("".parse::<Tlp>().is_err());
        assert!(
            Tlp::Clear < Tlp::Green && Tlp::Amber < Tlp::AmberStrict && Tlp::AmberStrict < Tlp::Red
        );
        assert_eq!(
            Tlp::Amber.marking_id(),
            "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
        );
        assert_eq!(Tlp::AmberStrict.to_string(), "TLP:AMBER+STRICT");
    }
}
