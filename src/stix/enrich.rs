//! One enrichment: the DomainTools lookup for an observable (Iris Investigate by `domain`, or
//! by `ip` with paging up to a limit), the mapping, the bundle, and a one-line summary that the
//! `stix` command prints and the connector reports as the work's message.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ids;
use super::mapping::{self, map_records, MapOptions, Mapping, Observable, ObservableKind};
use super::Tlp;
use domaintools::{Caller, Client, Paging, Stop};

/// Settings of the enrichment itself (the same for the `stix` command and the connector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrichSettings {
    /// TLP marking of every created object.
    pub marking: Tlp,
    /// Most domains mapped for one IPv4 address (at least 1).
    pub ip_domain_limit: usize,
    /// `confidence` on relationships, when set.
    pub confidence: Option<u8>,
    /// The Iris product that looks domains up.
    pub product: IrisProduct,
}

impl Default for EnrichSettings {
    fn default() -> Self {
        Self {
            marking: Tlp::Amber,
            ip_domain_limit: 100,
            confidence: None,
            product: IrisProduct::Investigate,
        }
    }
}

/// The Iris product an account has (`DOMAINTOOLS_PRODUCT`): both answer a domain with the same
/// record; only Investigate pivots on an IPv4 address (OpenCTI-Platform/connectors#6552 asks
/// for Enrich-only accounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IrisProduct {
    /// Iris Investigate: domains and IPv4 addresses.
    #[default]
    Investigate,
    /// Iris Enrich: domains only.
    Enrich,
}

impl std::fmt::Display for IrisProduct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IrisProduct::Investigate => "investigate",
            IrisProduct::Enrich => "enrich",
        })
    }
}

impl std::str::FromStr for IrisProduct {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "investigate" | "iris-investigate" => Ok(IrisProduct::Investigate),
            "enrich" | "iris-enrich" => Ok(IrisProduct::Enrich),
            _ => Err(format!("{text:?} is not investigate or enrich")),
        }
    }
}

/// A finished enrichment.
#[derive(Debug, Clone)]
pub struct Enrichment {
    /// The STIX 2.1 bundle.
    pub bundle: Value,
    /// What the mapping made of the records.
    pub mapping: Mapping,
    /// Whether DomainTools had anything for the observable.
    pub found: bool,
    /// Domains Iris matched for an IPv4 address (may exceed those mapped).
    pub total: Option<u64>,
    /// What happened, in one line, for a person.
    pub summary: String,
}

/// Why an enrichment produced nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrichError {
    /// The DomainTools call failed (its message never holds a key or a signature).
    #[error(transparent)]
    DomainTools(#[from] domaintools::Error),
    /// Iris answers no results at all when a query matches too many domains.
    #[error(
        "DomainTools Iris Investigate matched too many domains for {value} and returned none \
         ({message})"
    )]
    LimitExceeded {
        /// The observable's value.
        value: String,
        /// DomainTools' message.
        message: String,
    },
    /// Iris Enrich has no IP pivot.
    #[error(
        "Iris Enrich looks up domains only, not the IPv4 address {value} \
         (DOMAINTOOLS_PRODUCT=investigate pivots on IPs)"
    )]
    NotInProduct {
        /// The observable's value.
        value: String,
    },
    /// An error DomainTools reported inside a successful answer.
    #[error("DomainTools Iris Investigate reported an error for {value}: {message}")]
    Reported {
        /// The observable's value.
        value: String,
        /// DomainTools' message.
        message: String,
    },
}

/// Looks `observable` up in Iris Investigate and maps the records to a bundle.
/// `observable_tlp` raises the relationships' marking (see [`MapOptions`]).
pub async fn enrich(
    client: &Client,
    caller: Caller<'_>,
    observable: &Observable,
    settings: &EnrichSettings,
    observable_tlp: Option<Tlp>,
    now: DateTime<Utc>,
) -> Result<Enrichment, EnrichError> {
    let found = match observable.kind {
        ObservableKind::DomainName => {
            let value = observable.value.as_str();
            let response = match settings.product {
                IrisProduct::Investigate => {
                    client.iris_investigate(caller, &[("domain", value)]).await
                }
                IrisProduct::Enrich => client.iris_enrich(caller, &[value]).await,
            }
            .map_err(|error| EnrichError::of(error, &observable.value))?;
            Found {
                total: None,
                records: response
                    .results
                    .iter()
                    .map(domaintools::Record::value)
                    .collect(),
                failed_page: None,
            }
        }
        ObservableKind::Ipv4Addr if settings.product == IrisProduct::Enrich => {
            return Err(EnrichError::NotInProduct {
                value: observable.value.clone(),
            });
        }
        ObservableKind::Ipv4Addr => {
            let params = [("ip", observable.value.as_str())];
            investigate_all(
                client,
                caller,
                &params,
                settings.ip_domain_limit,
                &observable.value,
            )
            .await?
        }
    };
    let options = MapOptions {
        marking: settings.marking,
        relationship_marking: observable_tlp
            .map_or(settings.marking, |tlp| tlp.max(settings.marking)),
        confidence: settings.confidence,
        now,
    };
    let mapping = map_records(observable, &found.records, &options);
    let summary = summarize(observable, &found, &mapping, settings.ip_domain_limit);
    Ok(Enrichment {
        bundle: mapping::bundle(mapping.objects.clone(), &ids::uuid4()),
        found: mapping.records > 0,
        total: found.total,
        mapping,
        summary,
    })
}

/// The records of a lookup.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Results matched in all, when Iris says.
    pub(crate) total: Option<u64>,
    /// Records read, at most the limit.
    pub(crate) records: Vec<Value>,
    /// A later page that failed: what was read before it is kept.
    pub(crate) failed_page: Option<(usize, String)>,
}

impl EnrichError {
    /// The enrichment's wording of a DomainTools failure for `value`.
    fn of(error: domaintools::Error, value: &str) -> Self {
        match error {
            domaintools::Error::LimitExceeded { message } => EnrichError::LimitExceeded {
                value: value.to_owned(),
                message: message.unwrap_or_else(|| "no message".to_owned()),
            },
            domaintools::Error::Reported { message, .. } => EnrichError::Reported {
                value: value.to_owned(),
                message,
            },
            other => EnrichError::DomainTools(other),
        }
    }
}

/// Iris Investigate with `params` through the client's `position` paging, `limit` records at
/// most (pages of that size, up to Iris's largest). A failing first page is an error; a
/// failing later page keeps what came before.
pub(crate) async fn investigate_all(
    client: &Client,
    caller: Caller<'_>,
    params: &[(&str, &str)],
    limit: usize,
    value: &str,
) -> Result<Found, EnrichError> {
    let limit = limit.max(1);
    let paging = Paging {
        limit,
        page_size: Some(limit),
    };
    let pages = client
        .iris_investigate_pages(caller, params, paging)
        .await
        .map_err(|error| EnrichError::of(error, value))?;
    let failed_page = match &pages.stopped_early {
        Some(Stop::Failed(error)) => Some((pages.pages + 1, error.to_string())),
        _ => None,
    };
    Ok(Found {
        total: Some(pages.total_count.unwrap_or(pages.records.len() as u64)),
        records: pages.records,
        failed_page,
    })
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn summarize(observable: &Observable, found: &Found, mapping: &Mapping, limit: usize) -> String {
    let mut summary = if mapping.records == 0 {
        match observable.kind {
            ObservableKind::DomainName => format!("{} not found on DomainTools.", observable.value),
            ObservableKind::Ipv4Addr => {
                format!("DomainTools knows no domain on {}.", observable.value)
            }
        }
    } else {
        let objects = plural(mapping.objects.len(), "STIX object", "STIX objects");
        match observable.kind {
            ObservableKind::DomainName => {
                let score = mapping
                    .score
                    .map_or_else(|| "no risk score".to_owned(), |s| format!("risk score {s}"));
                format!(
                    "Observable found on DomainTools: {} ({score}) gave {objects}.",
                    observable.value
                )
            }
            ObservableKind::Ipv4Addr => {
                let read = found.records.len();
                let total = found.total.unwrap_or(read as u64);
                let domains = plural(mapping.records, "domain", "domains");
                if total > read as u64 {
                    format!(
                        "Observable found on DomainTools: {total} domains use {}; the first \
                         {read} were read (limit {limit}), {domains} mapped to {objects}.",
                        observable.value
                    )
                } else {
                    format!(
                        "Observable found on DomainTools: {domains} on {} mapped to {objects}.",
                        observable.value
                    )
                }
            }
        }
    };
    if !mapping.skipped.is_empty() {
        summary.push_str(&format!(
            " {} skipped as invalid.",
            plural(mapping.skipped.len(), "value", "values")
        ));
    }
    if let Some((page, error)) = &found.failed_page {
        summary.push_str(&format!(
            " Page {page} of the results failed and was left out: {error}"
        ));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use domaintools::{ClientConfig, Credentials, Proxy};
    use domaintools_fake::{FakeApi, Fault};

    fn client(base_url: String) -> Client {
        let mut config = ClientConfig::new("OpenCTI", "test");
        config.base_url = base_url;
        config.proxy = Proxy::None;
        // These tests replay the same search with different faults: no cached pages.
        config.cache.max_bytes = 0;
        Client::new(config).unwrap()
    }

    #[tokio::test]
    async fn paging_stops_at_the_limit_and_reports_the_total() {
        let fake = FakeApi::new().with_user("u", "k");
        let running = fake.spawn().await.unwrap();
        let client = client(running.base_url());
        let credentials = Credentials::new("u", "k");
        let caller = Caller::new(&credentials, "test");

        let found = investigate_all(&client, caller, &[("search_hash", "many-1234")], 1100, "x")
            .await
            .unwrap();
        assert_eq!(found.records.len(), 1100);
        assert_eq!(found.total, Some(1234));
        let pages = fake.calls_to("/v1/iris-investigate/");
        assert_eq!(pages, 3, "500 + 500 + 500 read, 1100 kept");

        fake.clear_requests();
        let found = investigate_all(&client, caller, &[("search_hash", "many-7")], 100, "x")
            .await
            .unwrap();
        assert_eq!((found.records.len(), found.total), (7, Some(7)));
        let sizes: Vec<String> = fake
            .requests()
            .iter()
            .flat_map(|r| {
                r.params
                    .iter()
                    .filter(|(k, _)| k == "page_size")
                    .map(|(_, v)| v.clone())
            })
            .collect();
        assert_eq!(sizes, ["100"]);
    }

    #[tokio::test]
    async fn a_failing_later_page_keeps_the_first() {
        let fake = FakeApi::new().with_user("u", "k");
        let running = fake.spawn().await.unwrap();
        let client = client(running.base_url());
        let credentials = Credentials::new("u", "k");
        let caller = Caller::new(&credentials, "test");
        // The first page passes (a zero-latency fault slot consumed), the second fails.
        fake.inject(
            "/v1/iris-investigate/",
            Fault::Slow(std::time::Duration::ZERO),
            Some(1),
        );
        // A 500 is not retried (a 503 would be, and succeed).
        let failure = Fault::NonJson {
            status: 500,
            body: "oops".into(),
        };
        fake.inject("/v1/iris-investigate/", failure.clone(), Some(1));
        let found = investigate_all(&client, caller, &[("search_hash", "many-600")], 1000, "x")
            .await
            .unwrap();
        assert_eq!(found.records.len(), 500);
        let (page, error) = found.failed_page.clone().unwrap();
        assert_eq!(page, 2);
        assert!(error.contains("500"), "{error}");

        fake.inject("/v1/iris-investigate/", failure, Some(1));
        let error = investigate_all(&client, caller, &[("search_hash", "many-600")], 1000, "x")
            .await
            .unwrap_err();
        assert!(matches!(error, EnrichError::DomainTools(_)));

        let error = investigate_all(&client, caller, &[("ip", "8.8.8.8")], 100, "8.8.8.8")
            .await
            .unwrap_err();
        assert!(
            matches!(error, EnrichError::LimitExceeded { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("8.8.8.8"));
    }
}
