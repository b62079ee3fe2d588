//! DomainTools-Iris-Import: imports the domains of an Iris Investigate search, pasted as the
//! search hash the Iris UI exports, into a MISP event (following Iris's pages up to
//! `results_limit`).

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use super::iris_search;
use super::{Context, Input, Module, ModuleError, Reply};
use crate::misp::Form;
use crate::pyfmt;
use domaintools::Stop;

/// The module's registry entry.
pub(crate) const MODULE: Module = Module {
    name: "DomainTools-Iris-Import",
    descriptor: include_str!("../../modules/DomainTools-Iris-Import.json"),
    run: |ctx, input| Box::pin(run(ctx, input)),
    replies_live_as: Some(domaintools::Family::Iris),
};

/// Domains imported when `results_limit` is unset (the compatibility policy's default; the
/// reference required the setting).
pub(crate) const DEFAULT_RESULTS_LIMIT: u64 = 100;

/// The reference's message for an empty paste, kept verbatim.
pub(crate) const EMPTY_QUERY: &str = "Query is empty. Please input a valid search hash.";

/// MISP's base64, read leniently: padding optional (the reference's decoder insisted on it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

async fn run(ctx: Context, input: Input) -> Result<Reply, ModuleError> {
    let limit = ctx
        .settings
        .number("results_limit", DEFAULT_RESULTS_LIMIT)?;
    if limit == 0 {
        return Err(ModuleError::Config(
            "The results_limit setting is 0, so nothing would be imported: set it to at least 1 (empty means 100)."
                .into(),
        ));
    }
    let hash = search_hash(&input.value)?;
    let collected = iris_search::collect(
        &ctx,
        &[("search_hash", hash.as_str())],
        limit,
        "No results found.",
    )
    .await?;
    let payload = iris_search::domain_entries(&collected.records);
    let imported = collected.records.len();
    let note =
        iris_search::truncation_note(&collected, "this search hash", "imported", imported, limit);
    let (error, comment) = match (&collected.stopped_early, note) {
        (Some(Stop::Failed(_)), note) => (note, None),
        (_, Some(note)) => (None, Some(note)),
        (_, None) => (
            None,
            Some(format!(
                "DomainTools Iris: all {} domains of this search hash imported.",
                pyfmt::thousands(imported as i64)
            )),
        ),
    };
    // An import's results are always stored, so values are plain strings even when the
    // request carries no event_id.
    let ctx = Context {
        form: Form::Stored,
        ..ctx
    };
    Ok(Reply {
        error,
        comment,
        ..ctx.reply(payload)
    })
}

/// The Iris search hash in an import's `data`: MISP base64-encodes the pasted text. Whitespace
/// anywhere (line breaks in a wrapped paste, a trailing newline) and one pair of surrounding
/// quotes are removed; the reference kept them and sent a hash Iris could not read.
pub fn search_hash(data: &str) -> Result<String, ModuleError> {
    let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(ModuleError::Input(EMPTY_QUERY.into()));
    }
    let bytes = BASE64.decode(compact.as_bytes()).map_err(|e| {
        ModuleError::Input(format!(
            "The import data is not valid base64 ({e}); MISP sends the pasted search hash base64-encoded."
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        ModuleError::Input(
            "The pasted search hash is not text: paste the hash from Iris (Menu -> Search -> Filters -> Export)."
                .into(),
        )
    })?;
    let hash: String = strip_quotes(text.trim())
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if hash.is_empty() {
        return Err(ModuleError::Input(EMPTY_QUERY.into()));
    }
    if hash.chars().any(char::is_control) {
        return Err(ModuleError::Input(
            "The pasted search hash contains control characters: paste the hash from Iris (Menu -> Search -> Filters -> Export)."
                .into(),
        ));
    }
    Ok(hash)
}

/// `text` without one pair of matching surrounding quotes (`"…"`, `'…'`, `` `…` ``).
fn strip_quotes(text: &str) -> &str {
    for quote in ['"', '\'', '`'] {
        if let Some(inner) = text
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner.trim();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::{json, Value};

    const HASH: &str = "U2FsdGVkX19bNf46SZMn";

    fn pasted(text: &str) -> String {
        STANDARD.encode(text)
    }

    #[test]
    fn a_plain_paste_is_the_hash() {
        assert_eq!(search_hash(&pasted(HASH)).unwrap(), HASH);
    }

    #[test]
    fn quotes_newlines_and_whitespace_are_removed() {
        for paste in [
            format!("{HASH}\n"),
            format!("{HASH}\r\n"),
            format!("  {HASH}  "),
            format!("\"{HASH}\""),
            format!("'{HASH}'\n"),
            format!("`{HASH}`"),
            format!("\" {HASH} \"\n"),
            format!("{}\n{}", &HASH[..10], &HASH[10..]),
        ] {
            assert_eq!(search_hash(&pasted(&paste)).unwrap(), HASH, "{paste:?}");
        }
    }

    #[test]
    fn base64_from_misp_may_be_wrapped_or_unpadded() {
        let encoded = pasted(HASH);
        assert!(encoded.ends_with('='));
        assert_eq!(search_hash(encoded.trim_end_matches('=')).unwrap(), HASH);
        let wrapped = format!("{}\n{}", &encoded[..8], &encoded[8..]);
        assert_eq!(search_hash(&wrapped).unwrap(), HASH);
    }

    #[test]
    fn empty_pastes_get_the_reference_message() {
        for data in ["", "   ", &pasted(""), &pasted("\n  \n"), &pasted("\"\"")] {
            assert_eq!(
                search_hash(data).unwrap_err().to_string(),
                EMPTY_QUERY,
                "{data:?}"
            );
        }
    }

    #[test]
    fn invalid_base64_and_binary_are_clear_errors() {
        let err = search_hash("not base64!").unwrap_err().to_string();
        assert!(
            err.starts_with("The import data is not valid base64"),
            "{err}"
        );
        let err = search_hash(&STANDARD.encode([0xff, 0xfe, 0x00]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("The pasted search hash is not text"),
            "{err}"
        );
        let err = search_hash(&pasted("abc\u{0}def")).unwrap_err().to_string();
        assert!(err.contains("control characters"), "{err}");
    }

    #[test]
    fn the_descriptor_is_the_reference_import_module() {
        let d: Value = serde_json::from_str(MODULE.descriptor).unwrap();
        assert_eq!(d["type"], "import_mod");
        assert_eq!(d["mispattributes"], json!({"inputSource": ["paste"]}));
        assert_eq!(d["meta"]["module-type"], json!(["import"]));
        assert_eq!(
            d["meta"]["config"],
            json!(["username", "api_key", "results_limit"])
        );
        assert_eq!(d["meta"]["version"], "2.6");
    }
}
