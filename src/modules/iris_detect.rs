//! DomainTools-Iris-Detect: imports the new or watched domains of Iris Detect monitors into a
//! MISP event, with the reference's import form (userConfig), its own entry shape, offset
//! paging up to `results_limit`, and the optional "blocked" escalation of new domains.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{Context, Input, Module, ModuleError, Reply, Settings, DEMO_NOTE};
use crate::misp::EXTERNAL_ANALYSIS;
use crate::pyfmt;
use domaintools::classic::shown;
use domaintools::iris_detect::MAX_PAGE_SIZE;
use domaintools::{DetectList, DetectQuery, EscalationType};

/// The module's registry entry.
pub(crate) const MODULE: Module = Module {
    name: "DomainTools-Iris-Detect",
    descriptor: include_str!("../../modules/DomainTools-Iris-Detect.json"),
    run: |ctx, input| Box::pin(run(ctx, input)),
    replies_live_as: None,
};

/// Domains imported when `results_limit` is unset: one Detect page, as the reference imported.
pub(crate) const DEFAULT_RESULTS_LIMIT: u64 = 100;
/// The most domains one import reads, whatever `results_limit` says: ten full pages.
pub(crate) const MAX_DOMAINS: u64 = 1_000;
/// The most Detect pages one import reads (pages hold 50 domains with domain data).
pub(crate) const MAX_PAGES: usize = 10;
/// Ids per escalation request: one page's worth, like the reference's single call.
const ESCALATION_BATCH: usize = 100;

/// The formats `is_valid_datetime` accepts, as the reference words them.
const DATE_FORMATS: &str = "YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+00:00";

/// The import form's values, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DetectSettings {
    /// `api_endpoint`: which watchlist to import.
    pub list: DetectList,
    /// `test_mode`: Detect's preview (a few results, no hourly limit).
    pub preview: bool,
    /// `monitor_id`: one monitor, or all.
    pub monitor_id: Option<String>,
    /// `risk_score_ranges`: one range such as `70-99`.
    pub(crate) risk_score_range: Option<&'static str>,
    /// `discovered_date`, sent as `discovered_since` (new list only, like the reference).
    pub discovered_date: Option<String>,
    /// `changed_since` (watched list only, like the reference).
    pub changed_since: Option<String>,
    /// `escalated_since` (watched list only).
    pub escalated_since: Option<String>,
    /// `escalation_types` (watched list only).
    pub escalation_type: Option<EscalationType>,
    /// `tag_domains_as_blocked`: escalate imported new domains as `blocked`.
    pub(crate) tag_as_blocked: bool,
    /// `include_domain_data`: name servers, mail servers and IPs with each domain.
    pub include_domain_data: bool,
    /// Domains to import at most (`results_limit`, capped at [`MAX_DOMAINS`]).
    pub limit: u64,
    /// `results_limit` as set, to say when [`MAX_DOMAINS`] cut it down.
    pub(crate) requested_limit: u64,
}

impl DetectSettings {
    /// Reads and checks the form: dates first, in the reference's order, then the selects,
    /// the checkboxes and `results_limit`. Every error names the setting.
    pub(crate) fn from_settings(settings: &Settings) -> Result<Self, ModuleError> {
        let discovered_date = date(settings, "discovered_date")?;
        let changed_since = date(settings, "changed_since")?;
        let escalated_since = date(settings, "escalated_since")?;
        let risk_score_range = select(
            settings,
            "risk_score_ranges",
            &[
                ("None", None),
                ("0-0", Some("0-0")),
                ("1-39", Some("1-39")),
                ("40-69", Some("40-69")),
                ("70-99", Some("70-99")),
                ("100-100", Some("100-100")),
            ],
            &[],
        )?;
        let escalation_type = select(
            settings,
            "escalation_types",
            &[
                ("All", None),
                ("Blocklist API", Some(EscalationType::Blocked)),
                ("Google Safe Browsing", Some(EscalationType::GoogleSafe)),
            ],
            &[
                ("blocked", Some(EscalationType::Blocked)),
                ("google_safe", Some(EscalationType::GoogleSafe)),
            ],
        )?;
        let list = select(
            settings,
            "api_endpoint",
            &[("new", DetectList::New), ("watched", DetectList::Watched)],
            &[],
        )?;
        let requested_limit = settings.number("results_limit", DEFAULT_RESULTS_LIMIT)?;
        if requested_limit == 0 {
            return Err(ModuleError::Config(
                "The results_limit setting is 0, so nothing would be imported: set it to at least 1 (empty means 100)."
                    .into(),
            ));
        }
        Ok(Self {
            list,
            preview: checkbox(settings, "test_mode")?,
            monitor_id: settings.text("monitor_id").filter(|m| m != "None"),
            risk_score_range,
            discovered_date,
            changed_since,
            escalated_since,
            escalation_type,
            tag_as_blocked: checkbox(settings, "tag_domains_as_blocked")?,
            include_domain_data: checkbox(settings, "include_domain_data")?,
            limit: requested_limit.min(MAX_DOMAINS),
            requested_limit,
        })
    }

    /// The listing request at `offset`. Which filters go to which list is the reference's
    /// choice: new gets `discovered_since`; watched gets the changed/escalated filters.
    pub fn query(&self, offset: u64) -> DetectQuery {
        let mut q = DetectQuery {
            monitor_id: self.monitor_id.clone(),
            include_domain_data: self.include_domain_data,
            preview: self.preview,
            offset,
            risk_score_ranges: self
                .risk_score_range
                .map(str::to_owned)
                .into_iter()
                .collect(),
            ..DetectQuery::default()
        };
        match self.list {
            DetectList::New => q.discovered_since = self.discovered_date.clone(),
            DetectList::Watched => {
                q.changed_since = self.changed_since.clone();
                q.escalated_since = self.escalated_since.clone();
                q.escalation_types = self.escalation_type.into_iter().collect();
            }
        }
        q
    }

    /// Settings the chosen list does not use (the reference ignored them silently).
    pub(crate) fn unused(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        match self.list {
            DetectList::New => {
                if self.changed_since.is_some() {
                    out.push("changed_since");
                }
                if self.escalated_since.is_some() {
                    out.push("escalated_since");
                }
                if self.escalation_type.is_some() {
                    out.push("escalation_types");
                }
            }
            DetectList::Watched => {
                if self.discovered_date.is_some() {
                    out.push("discovered_date");
                }
                if self.tag_as_blocked {
                    out.push("tag_domains_as_blocked");
                }
            }
        }
        out
    }
}

/// A userConfig Select: MISP sends the option's index as a string (`"0"`, `"1"`, …). The
/// option's text and the API's own spellings (`aliases`) are accepted too; unset is option 0.
fn select<T: Copy>(
    settings: &Settings,
    key: &str,
    options: &[(&str, T)],
    aliases: &[(&str, T)],
) -> Result<T, ModuleError> {
    let Some(raw) = settings.text(key) else {
        return options
            .first()
            .map(|(_, value)| *value)
            .ok_or_else(|| ModuleError::Config(format!("The {key} setting has no options.")));
    };
    if let Some((_, value)) = raw.parse::<usize>().ok().and_then(|i| options.get(i)) {
        return Ok(*value);
    }
    if let Some((_, value)) = options
        .iter()
        .chain(aliases)
        .find(|(name, _)| name.eq_ignore_ascii_case(&raw))
    {
        return Ok(*value);
    }
    let listed: Vec<String> = options
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{i} {name}"))
        .collect();
    Err(ModuleError::Config(format!(
        "The {key} setting must be an option number from 0 to {} ({}), not {}.",
        options.len().saturating_sub(1),
        listed.join(", "),
        shown(&raw)
    )))
}

/// A userConfig Boolean: MISP sends `"1"` when ticked, `"0"` otherwise.
fn checkbox(settings: &Settings, key: &str) -> Result<bool, ModuleError> {
    let Some(raw) = settings.text(key) else {
        return Ok(false);
    };
    match raw.to_ascii_lowercase().as_str() {
        "0" | "false" | "off" | "no" => Ok(false),
        "1" | "true" | "on" | "yes" => Ok(true),
        _ => Err(ModuleError::Config(format!(
            "The {key} setting is a checkbox: \"1\" (ticked) or \"0\", not {}.",
            shown(&raw)
        ))),
    }
}

/// A date setting: unset, empty or `"None"` mean no filter; anything else must pass the
/// reference's `is_valid_datetime`.
fn date(settings: &Settings, key: &str) -> Result<Option<String>, ModuleError> {
    let Some(raw) = settings.text(key).filter(|d| d != "None") else {
        return Ok(None);
    };
    if is_valid_datetime(&raw) {
        Ok(Some(raw))
    } else {
        Err(ModuleError::Config(format!(
            "Incorrect data format for {key} ({}), should be {DATE_FORMATS} (for example 2022-02-28 or 2022-02-28T01:23:45+00:00).",
            shown(&raw)
        )))
    }
}

/// The reference's `is_valid_datetime`: Python `datetime.strptime` with `%Y-%m-%d` or
/// `%Y-%m-%dT%H:%M:%S+00:00`. Like strptime, month, day, hour, minute and second may have one
/// digit, the day may be a space and a digit, the `T` may be lower case, and the date must
/// exist (year 1 to 9999, February 29 only in leap years, seconds up to 59). Only ASCII digits
/// are taken (Python would also read other Unicode digits, which the API would not).
pub(crate) fn is_valid_datetime(s: &str) -> bool {
    let (date, time) = match s.find(['T', 't']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let (Some(year), Some(month), Some(day)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if year.len() != 4 || !all_digits(year) {
        return false;
    }
    let day = match day.strip_prefix(' ') {
        // `%d` also matches a space and one digit from 1 to 9.
        Some(d) if d.len() == 1 && d != "0" => d,
        Some(_) => return false,
        None => day,
    };
    let (Some(year), Some(month), Some(day)) = (
        number(year, 4, 1, 9999),
        number(month, 2, 1, 12),
        number(day, 2, 1, 31),
    ) else {
        return false;
    };
    if chrono::NaiveDate::from_ymd_opt(year as i32, month, day).is_none() {
        return false;
    }
    let Some(time) = time else {
        return true;
    };
    let Some(clock) = time.strip_suffix("+00:00") else {
        return false;
    };
    let mut parts = clock.splitn(3, ':');
    let (Some(hour), Some(minute), Some(second)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    number(hour, 2, 0, 23).is_some()
        && number(minute, 2, 0, 59).is_some()
        && number(second, 2, 0, 59).is_some()
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `s` as a number of 1 to `max_len` ASCII digits within `min..=max`.
fn number(s: &str, max_len: usize, min: u32, max: u32) -> Option<u32> {
    if s.len() > max_len || !all_digits(s) {
        return None;
    }
    s.parse::<u32>().ok().filter(|n| (min..=max).contains(n))
}

async fn run(ctx: Context, _input: Input) -> Result<Reply, ModuleError> {
    // The import's `data` is empty (the form has no paste box): only the settings matter.
    let settings = DetectSettings::from_settings(&ctx.settings)?;
    let listing = read_pages(&ctx, &settings).await?;
    let terms = monitored_terms(&ctx, &listing.domains).await;
    let (mut results, ids) = map_with_terms(&listing.domains, &terms);
    if results.is_empty() {
        return Err(ModuleError::NoResults("No results found.".into()));
    }
    if ctx.demo {
        mark_demo(&mut results);
    }

    let mut error = listing.failed.as_ref().map(|e| {
        format!("Reading the next Iris Detect page failed, so the import is partial: {e}")
    });
    let mut notes = vec![summary(&settings, &listing)];
    if settings.tag_as_blocked && settings.list == DetectList::New {
        match escalate(&ctx, &ids).await {
            Ok(count) => notes.push(format!(
                "Tagged {} of them as blocked in Iris Detect.",
                pyfmt::thousands(count as i64)
            )),
            Err(e) => {
                error = Some(format!(
                "The domains were imported, but tagging them as blocked in Iris Detect failed: {e}"
            ))
            }
        }
    }
    let unused = settings.unused();
    if !unused.is_empty() {
        notes.push(format!(
            "Not used with the {} list (as in DomainTools' own module): {}.",
            settings.list.name(),
            unused.join(", ")
        ));
    }
    Ok(Reply {
        results,
        error,
        comment: Some(notes.join(" ")),
        ..Reply::default()
    })
}

/// What the listing pages gave.
#[derive(Debug, Default)]
struct Listing {
    domains: Vec<Value>,
    total_count: Option<u64>,
    pages: usize,
    /// Domains exist past what was read because of [`MAX_PAGES`].
    page_cap: bool,
    /// A page after the first failed.
    failed: Option<domaintools::Error>,
}

/// Reads pages from offset 0 until `settings.limit` domains, the end of the list, or
/// [`MAX_PAGES`]. Test mode reads one page: a preview is not meant to be paged.
async fn read_pages(ctx: &Context, settings: &DetectSettings) -> Result<Listing, ModuleError> {
    let limit = usize::try_from(settings.limit).unwrap_or(usize::MAX);
    let mut listing = Listing::default();
    let mut offset: u64 = 0;
    loop {
        let page = match ctx
            .client
            .iris_detect_domains(ctx.caller(), settings.list, &settings.query(offset))
            .await
        {
            Ok(page) => page,
            Err(e) if listing.pages > 0 => {
                listing.failed = Some(e);
                break;
            }
            Err(e) => return Err(e.into()),
        };
        listing.pages += 1;
        if listing.pages == 1 {
            listing.total_count = page.total_count;
        }
        let received = page.watchlist_domains.len() as u64;
        listing.domains.extend(page.watchlist_domains);
        if listing.domains.len() >= limit {
            listing.domains.truncate(limit);
            break;
        }
        offset += received;
        let exhausted = match listing.total_count {
            Some(total) => offset >= total,
            None => received < page.limit.unwrap_or(MAX_PAGE_SIZE),
        };
        if settings.preview || received == 0 || exhausted {
            break;
        }
        if listing.pages >= MAX_PAGES {
            listing.page_cap = true;
            break;
        }
    }
    Ok(listing)
}

/// The reply's comment: how many domains were imported out of how many, and why not all.
fn summary(settings: &DetectSettings, listing: &Listing) -> String {
    let imported = listing.domains.len() as u64;
    let list = settings.list.name();
    let total = listing.total_count.unwrap_or(imported).max(imported);
    let n = |v: u64| pyfmt::thousands(i64::try_from(v).unwrap_or(i64::MAX));
    if imported >= total {
        return format!(
            "DomainTools Iris Detect: imported all {} {list} domains.",
            n(imported)
        );
    }
    let why = if listing.failed.is_some() {
        "a page could not be read".to_owned()
    } else if settings.preview {
        "test mode returns a preview only".to_owned()
    } else if listing.page_cap {
        format!("this server reads at most {MAX_PAGES} pages per import")
    } else if settings.requested_limit > MAX_DOMAINS && imported >= MAX_DOMAINS {
        format!(
            "this server imports at most {} domains at a time",
            n(MAX_DOMAINS)
        )
    } else {
        format!("results_limit is {}", n(settings.requested_limit))
    };
    format!(
        "DomainTools Iris Detect: imported {} of {} {list} domains ({why}).",
        n(imported),
        n(total)
    )
}

/// Escalates every imported domain as `blocked`, one request per [`ESCALATION_BATCH`] ids;
/// returns how many DomainTools confirmed.
async fn escalate(ctx: &Context, ids: &[String]) -> Result<usize, domaintools::Error> {
    let mut confirmed = 0;
    for batch in ids.chunks(ESCALATION_BATCH) {
        let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
        let answer = ctx
            .client
            .iris_detect_escalate(ctx.caller(), EscalationType::Blocked, &batch)
            .await?;
        // Older answers may omit the records; then the request's ids are what was escalated.
        confirmed += if answer.escalations.is_empty() {
            batch.len()
        } else {
            answer.escalations.len()
        };
    }
    Ok(confirmed)
}

/// Maps Detect watchlist domains to the reference's import entries: per domain, the domain,
/// then (with domain data) its name servers, mail servers and IPs. These entries have their
/// own shape (`type` and a string `values`) and are not de-duplicated, as in the reference.
/// Also returns the watchlist ids of the mapped domains, for the escalation. The module
/// itself always has the monitored terms ([`map_with_terms`]); without them this is the
/// reference's own form, which the golden tests compare.
#[cfg(test)]
pub(crate) fn map(domains: &[Value]) -> (Vec<Value>, Vec<String>) {
    map_with_terms(domains, &HashMap::new())
}

/// The monitored terms (by monitor id) of the monitors that found `domains`: one call when
/// any domain names a monitor. Only the comments need them, so a failure costs the terms, not
/// the import.
async fn monitored_terms(ctx: &Context, domains: &[Value]) -> HashMap<String, String> {
    let named = domains.iter().any(|wd| {
        wd.get("monitor_ids")
            .and_then(Value::as_array)
            .is_some_and(|ids| !ids.is_empty())
    });
    if !named {
        return HashMap::new();
    }
    match ctx.client.iris_detect_monitors(ctx.caller()).await {
        Ok(monitors) => monitors.into_iter().collect(),
        Err(error) => {
            tracing::warn!(%error, "Iris Detect monitors unavailable; domains are imported without their monitored terms");
            HashMap::new()
        }
    }
}

/// [`map`], with each domain's comment naming the monitored terms that found it.
pub fn map_with_terms(
    domains: &[Value],
    terms: &HashMap<String, String>,
) -> (Vec<Value>, Vec<String>) {
    let mut entries = Vec::new();
    let mut ids = Vec::new();
    for wd in domains {
        let Some(domain) = wd.get("domain").and_then(attribute_value) else {
            continue;
        };
        entries.push(entry(
            "domain",
            domain.clone(),
            &[],
            Some(domain_comment(wd, terms)),
        ));
        if let Some(id) = wd.get("id").and_then(attribute_value) {
            ids.push(id);
        }
        for (key, field, kind, tag, what) in [
            (
                "name_server",
                "host",
                "domain",
                "Name Server",
                "Name Server",
            ),
            ("mx", "host", "domain", "Mail Host", "Mail Host"),
            ("ip", "ip", "ip-src", "IP", "IP"),
        ] {
            for item in crate::pyfmt::list(wd, key) {
                if let Some(value) = item.get(field).and_then(attribute_value) {
                    entries.push(entry(kind, value, &[tag], Some(format!("{what} {domain}"))));
                }
            }
        }
    }
    (entries, ids)
}

/// What a watchlist domain's own attribute says about it: the list, when Iris Detect discovered
/// and last changed it, its risk score and status. (The reply's summary used to be the
/// import's top-level comment, which MISP put on every domain.)
fn domain_comment(wd: &Value, terms: &HashMap<String, String>) -> String {
    let text = |key: &str| wd.get(key).and_then(attribute_value);
    let day = |key: &str| text(key).map(|d| d.chars().take(10).collect::<String>());
    let mut parts = vec![match text("state") {
        Some(state) => format!("Iris Detect {state} domain"),
        None => "Iris Detect domain".to_owned(),
    }];
    if let Some(discovered) = day("discovered_date") {
        parts.push(format!("discovered {discovered}"));
    }
    if let Some(changed) = day("changed_date") {
        parts.push(format!("changed {changed}"));
    }
    if let Some(score) = text("risk_score") {
        parts.push(format!("risk score {score}"));
    }
    if let Some(status) = text("status") {
        parts.push(status);
    }
    let found_by: Vec<&str> = pyfmt::list(wd, "monitor_ids")
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|id| terms.get(id).map(String::as_str))
        .collect();
    if !found_by.is_empty() {
        parts.push(format!("monitored term {}", found_by.join(", ")));
    }
    parts.join(", ")
}

/// A value MISP can store: a non-empty string (numbers are written out), nothing else.
fn attribute_value(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// One Detect entry, keys in the reference's order.
fn entry(kind: &str, value: String, extra_tags: &[&str], comment: Option<String>) -> Value {
    let mut tags = vec!["DomainTools", "Iris Detect"];
    tags.extend_from_slice(extra_tags);
    let mut out = Map::new();
    out.insert("categories".into(), json!([EXTERNAL_ANALYSIS]));
    out.insert("type".into(), json!(kind));
    out.insert("values".into(), json!(value));
    out.insert("tags".into(), json!(tags));
    if let Some(comment) = comment {
        out.insert("comment".into(), json!(comment));
    }
    Value::Object(out)
}

/// Demo mode: every entry says it is sample data (domain entries get it as their comment).
fn mark_demo(entries: &mut [Value]) {
    for entry in entries {
        let Some(object) = entry.as_object_mut() else {
            continue;
        };
        let comment = match object.get("comment").and_then(Value::as_str) {
            Some(comment) => format!("{DEMO_NOTE} {comment}"),
            None => DEMO_NOTE.to_owned(),
        };
        object.insert("comment".into(), Value::String(comment));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::misp::CATALOGUE;

    fn settings(v: Value) -> Settings {
        Settings::from_value(Some(&v))
    }

    fn parse(v: Value) -> Result<DetectSettings, ModuleError> {
        DetectSettings::from_settings(&settings(v))
    }

    fn params(s: &DetectSettings) -> Vec<String> {
        s.query(0)
            .params()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    #[test]
    fn default_config_is_the_new_list_with_no_filters() {
        let s = parse(json!({"username": "u", "api_key": "k"})).unwrap();
        assert_eq!(s.list, DetectList::New);
        assert_eq!(s.limit, 100);
        assert_eq!(
            params(&s),
            ["include_domain_data=false", "preview=false", "offset=0"]
        );
        // What MISP sends for an untouched form.
        let s = parse(json!({
            "api_endpoint": "0", "test_mode": "0", "monitor_id": "", "risk_score_ranges": "0",
            "discovered_date": "", "changed_since": "", "escalated_since": "",
            "escalation_types": "0", "tag_domains_as_blocked": "0", "include_domain_data": "0",
            "results_limit": null
        }))
        .unwrap();
        assert_eq!(
            params(&s),
            ["include_domain_data=false", "preview=false", "offset=0"]
        );
        assert!(!s.tag_as_blocked);
    }

    #[test]
    fn api_endpoint_selects_the_list() {
        for (raw, list) in [
            ("0", DetectList::New),
            ("1", DetectList::Watched),
            ("watched", DetectList::Watched),
            ("", DetectList::New),
        ] {
            assert_eq!(
                parse(json!({"api_endpoint": raw})).unwrap().list,
                list,
                "{raw}"
            );
        }
        assert_eq!(
            parse(json!({"api_endpoint": "2"})).unwrap_err().to_string(),
            "The api_endpoint setting must be an option number from 0 to 1 (0 new, 1 watched), not \"2\"."
        );
    }

    #[test]
    fn test_mode_is_preview() {
        let s = parse(json!({"test_mode": "1"})).unwrap();
        assert!(s.preview);
        assert!(params(&s).contains(&"preview=true".to_owned()));
        assert!(!parse(json!({"test_mode": "0"})).unwrap().preview);
        assert!(parse(json!({"test_mode": true})).unwrap().preview);
        assert_eq!(
            parse(json!({"test_mode": "maybe"}))
                .unwrap_err()
                .to_string(),
            "The test_mode setting is a checkbox: \"1\" (ticked) or \"0\", not \"maybe\"."
        );
    }

    #[test]
    fn monitor_id_is_sent_when_set() {
        let s = parse(json!({"monitor_id": " nAwmQg2pqg "})).unwrap();
        assert_eq!(params(&s)[0], "monitor_id=nAwmQg2pqg");
        assert_eq!(parse(json!({"monitor_id": ""})).unwrap().monitor_id, None);
        assert_eq!(
            parse(json!({"monitor_id": "None"})).unwrap().monitor_id,
            None
        );
    }

    #[test]
    fn risk_score_ranges_by_index_or_text() {
        let expected = [
            None,
            Some("0-0"),
            Some("1-39"),
            Some("40-69"),
            Some("70-99"),
            Some("100-100"),
        ];
        for (i, range) in expected.iter().enumerate() {
            let s = parse(json!({"risk_score_ranges": i.to_string()})).unwrap();
            assert_eq!(s.risk_score_range, *range, "{i}");
        }
        assert_eq!(
            parse(json!({"risk_score_ranges": "70-99"}))
                .unwrap()
                .risk_score_range,
            Some("70-99")
        );
        let s = parse(json!({"risk_score_ranges": "4", "api_endpoint": "1"})).unwrap();
        assert!(params(&s).contains(&"risk_score_ranges[]=70-99".to_owned()));
        assert_eq!(
            parse(json!({"risk_score_ranges": "6"})).unwrap_err().to_string(),
            "The risk_score_ranges setting must be an option number from 0 to 5 (0 None, 1 0-0, 2 1-39, 3 40-69, 4 70-99, 5 100-100), not \"6\"."
        );
    }

    #[test]
    fn dates_go_to_the_reference_lists() {
        let config = json!({
            "discovered_date": "2022-02-28", "changed_since": "2022-03-01",
            "escalated_since": "2022-03-02T01:23:45+00:00", "escalation_types": "1"
        });
        let mut new = parse(config.clone()).unwrap();
        assert_eq!(
            params(&new),
            [
                "include_domain_data=false",
                "preview=false",
                "offset=0",
                "discovered_since=2022-02-28"
            ]
        );
        assert_eq!(
            new.unused(),
            ["changed_since", "escalated_since", "escalation_types"]
        );
        new.list = DetectList::Watched;
        assert_eq!(
            params(&new),
            [
                "include_domain_data=false",
                "preview=false",
                "offset=0",
                "changed_since=2022-03-01",
                "escalated_since=2022-03-02T01:23:45+00:00",
                "escalation_types[]=blocked"
            ]
        );
        assert_eq!(new.unused(), ["discovered_date"]);
    }

    #[test]
    fn each_date_field_is_validated_and_named() {
        for key in ["discovered_date", "changed_since", "escalated_since"] {
            let err = parse(json!({ key: "28/02/2022" })).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("Incorrect data format for {key} (\"28/02/2022\"), should be YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+00:00 (for example 2022-02-28 or 2022-02-28T01:23:45+00:00).")
            );
            assert_eq!(
                parse(json!({ key: "None" }))
                    .unwrap()
                    .query(0)
                    .params()
                    .len(),
                3
            );
        }
        // The first bad date, in the reference's order, is the one reported.
        let err = parse(json!({"escalated_since": "x", "discovered_date": "y"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("discovered_date"), "{err}");
    }

    #[test]
    fn escalation_types_by_index_text_or_api_name() {
        for (raw, t) in [
            ("0", None),
            ("1", Some(EscalationType::Blocked)),
            ("2", Some(EscalationType::GoogleSafe)),
            ("Google Safe Browsing", Some(EscalationType::GoogleSafe)),
            ("google_safe", Some(EscalationType::GoogleSafe)),
            ("blocked", Some(EscalationType::Blocked)),
        ] {
            assert_eq!(
                parse(json!({"escalation_types": raw}))
                    .unwrap()
                    .escalation_type,
                t,
                "{raw}"
            );
        }
        assert!(parse(json!({"escalation_types": "3"})).is_err());
    }

    #[test]
    fn checkboxes_tag_and_domain_data() {
        let s = parse(json!({"tag_domains_as_blocked": "1", "include_domain_data": "1"})).unwrap();
        assert!(s.tag_as_blocked && s.include_domain_data);
        assert!(params(&s).contains(&"include_domain_data=true".to_owned()));
        assert!(s.unused().is_empty(), "blocking applies to the new list");
        let watched = parse(json!({"tag_domains_as_blocked": "1", "api_endpoint": "1"})).unwrap();
        assert_eq!(watched.unused(), ["tag_domains_as_blocked"]);
        assert!(parse(json!({"include_domain_data": "2"}))
            .unwrap_err()
            .to_string()
            .contains("include_domain_data"));
    }

    #[test]
    fn results_limit_is_capped_and_checked() {
        assert_eq!(parse(json!({"results_limit": "250"})).unwrap().limit, 250);
        let big = parse(json!({"results_limit": "5000"})).unwrap();
        assert_eq!((big.limit, big.requested_limit), (MAX_DOMAINS, 5000));
        assert!(parse(json!({"results_limit": "0"})).is_err());
        assert_eq!(
            parse(json!({"results_limit": "lots"}))
                .unwrap_err()
                .to_string(),
            "The results_limit setting must be a whole number, not \"lots\"."
        );
    }

    #[test]
    fn python_strptime_acceptance() {
        for ok in [
            "2022-02-28",
            "2022-2-3",
            "2024-02-29",
            "0999-01-01",
            "2022-02-28T01:23:45+00:00",
            "2022-02-28T1:2:3+00:00",
            "2022-02-28t01:23:45+00:00",
            "2022-02- 5",
            "9999-12-31T23:59:59+00:00",
        ] {
            assert!(is_valid_datetime(ok), "{ok}");
        }
        for bad in [
            "",
            "2022-02-30",
            "2023-02-29",
            "0000-01-01",
            "22-02-28",
            "2022-13-01",
            "2022-00-10",
            "2022-02-00",
            "2022-02-028",
            "2022-02-28Z",
            "2022-02-28T01:23:45Z",
            "2022-02-28T01:23:45+01:00",
            "2022-02-28T01:23:45.5+00:00",
            "2022-02-28T24:00:00+00:00",
            "2022-02-28T01:60:00+00:00",
            "2022-02-28T01:23:60+00:00",
            "2022-02-28T01:23+00:00",
            "2022-02-28 01:23:45+00:00",
            " 2022-02-28",
            "2022-02-28 ",
            "2022-02- 0",
            "2022-+2-28",
            "２０２２-02-28",
            "15/01/2024",
            "not-a-date",
        ] {
            assert!(!is_valid_datetime(bad), "{bad}");
        }
    }

    fn fixture(name: &str) -> Value {
        let path = format!("{}/{name}", domaintools_fake::FIXTURES_DIR);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn recorded_new_domains_become_one_entry_each() {
        let page = fixture("iris-detect-new.json");
        let (entries, ids) = map(page["watchlist_domains"].as_array().unwrap());
        assert_eq!(entries.len(), 100);
        assert_eq!(ids.len(), 100);
        assert_eq!(
            entries[0],
            json!({"categories": ["External analysis"], "type": "domain",
                   "values": "googletydep.com", "tags": ["DomainTools", "Iris Detect"],
                   "comment": "Iris Detect new domain, discovered 2025-04-05, changed 2025-04-05, risk score 100, active"})
        );
        assert_eq!(ids[0], "ka0oL0AegW");
        for e in &entries {
            assert!(e["values"].as_str().is_some_and(|v| !v.is_empty()));
        }
    }

    #[test]
    fn domain_data_adds_name_servers_mail_hosts_and_ips_undeduplicated() {
        let wd = |d: &str| {
            json!({"domain": d, "id": format!("id-{d}"),
                   "name_server": [{"host": "ns1.shared.example"}, {"host": ""}],
                   "mx": [{"host": "mx.shared.example"}], "ip": [{"ip": "192.0.2.1", "country_code": "us"}, {"ip": null}]})
        };
        let (entries, ids) = map(&[wd("a.example"), wd("b.example"), json!({"id": "no-domain"})]);
        assert_eq!(ids, ["id-a.example", "id-b.example"]);
        let shown: Vec<_> = entries
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap(),
                    e["values"].as_str().unwrap(),
                    e["comment"].as_str().unwrap_or("-"),
                    e["tags"][2].as_str().unwrap_or("-"),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("domain", "a.example", "Iris Detect domain", "-"),
                (
                    "domain",
                    "ns1.shared.example",
                    "Name Server a.example",
                    "Name Server"
                ),
                (
                    "domain",
                    "mx.shared.example",
                    "Mail Host a.example",
                    "Mail Host"
                ),
                ("ip-src", "192.0.2.1", "IP a.example", "IP"),
                ("domain", "b.example", "Iris Detect domain", "-"),
                (
                    "domain",
                    "ns1.shared.example",
                    "Name Server b.example",
                    "Name Server"
                ),
                (
                    "domain",
                    "mx.shared.example",
                    "Mail Host b.example",
                    "Mail Host"
                ),
                ("ip-src", "192.0.2.1", "IP b.example", "IP"),
            ]
        );
        for e in &entries {
            assert!(CATALOGUE.allows(EXTERNAL_ANALYSIS, e["type"].as_str().unwrap()));
        }
    }

    #[test]
    fn demo_mode_marks_every_entry() {
        let (mut entries, _) = map(&[json!({"domain": "a.example", "ip": [{"ip": "192.0.2.1"}]})]);
        mark_demo(&mut entries);
        assert_eq!(
            entries[0]["comment"],
            format!("{DEMO_NOTE} Iris Detect domain")
        );
        assert_eq!(entries[1]["comment"], format!("{DEMO_NOTE} IP a.example"));
    }

    #[test]
    fn the_summary_says_what_was_left_out() {
        let s = parse(json!({})).unwrap();
        let listing = |n: usize, total: Option<u64>| Listing {
            domains: vec![json!({}); n],
            total_count: total,
            pages: 1,
            ..Listing::default()
        };
        assert_eq!(
            summary(&s, &listing(100, Some(30640))),
            "DomainTools Iris Detect: imported 100 of 30,640 new domains (results_limit is 100)."
        );
        assert_eq!(
            summary(&s, &listing(5, Some(5))),
            "DomainTools Iris Detect: imported all 5 new domains."
        );
        let preview = parse(json!({"test_mode": "1", "api_endpoint": "1"})).unwrap();
        assert_eq!(
            summary(&preview, &listing(2, Some(5))),
            "DomainTools Iris Detect: imported 2 of 5 watched domains (test mode returns a preview only)."
        );
        let big = parse(json!({"results_limit": "5000"})).unwrap();
        assert_eq!(
            summary(&big, &listing(1000, Some(30640))),
            "DomainTools Iris Detect: imported 1,000 of 30,640 new domains (this server imports at most 1,000 domains at a time)."
        );
        let mut capped = listing(500, Some(30640));
        capped.page_cap = true;
        assert!(
            summary(&big, &capped).ends_with("(this server reads at most 10 pages per import).")
        );
    }

    #[test]
    fn the_descriptor_carries_the_reference_user_config_in_order() {
        let d: Value = serde_json::from_str(MODULE.descriptor).unwrap();
        assert_eq!(d["type"], "import_mod");
        assert_eq!(d["mispattributes"]["inputSource"], json!([]));
        let keys: Vec<&str> = d["mispattributes"]["userConfig"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "api_endpoint",
                "test_mode",
                "monitor_id",
                "risk_score_ranges",
                "discovered_date",
                "changed_since",
                "escalated_since",
                "escalation_types",
                "tag_domains_as_blocked",
                "include_domain_data"
            ]
        );
        let uc = &d["mispattributes"]["userConfig"];
        assert_eq!(uc["api_endpoint"]["options"], json!(["new", "watched"]));
        assert_eq!(uc["api_endpoint"]["value"], "0");
        assert_eq!(
            uc["risk_score_ranges"]["options"],
            json!(["None", "0-0", "1-39", "40-69", "70-99", "100-100"])
        );
        assert_eq!(
            uc["escalation_types"]["options"],
            json!(["All", "Blocklist API", "Google Safe Browsing"])
        );
        assert_eq!(
            uc["test_mode"]["message"],
            "To help with testing and configuration, you can limit the API response to 2 results and not be limited by hourly restrictions."
        );
        assert_eq!(uc["discovered_date"]["errorMessage"], "Wrong date format");
        assert!(uc["api_endpoint"]["message"]
            .as_str()
            .unwrap()
            .starts_with("\n            Import newly discovered domains"));
        assert_eq!(
            d["meta"]["description"],
            "\n                Imports newly discovered and/or newly changed domains from DomainTools Iris Detect product.\n                Set up and manage monitored terms using the Iris Detect UI (https://iris.domaintools.com/detect/) then automatically import them into MISP using this module.\n                Requires Iris Detect account provisioning\n                "
        );
    }
}
