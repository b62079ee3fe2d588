//! Request parameters as DomainTools reads them: the query string, then the form or JSON body,
//! merged in order, with PHP-style `name[]` lists accepted under either spelling.

use serde_json::Value;

/// Parameters that are secrets and so never reach the request log.
const SECRET_PARAMS: [&str; 2] = ["signature", "api_key"];

/// The merged parameters of one request, in arrival order.
#[derive(Debug, Default)]
pub(super) struct Params(Vec<(String, String)>);

/// What the body held, when it could not be read as parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyProblem {
    /// Larger than the fake accepts, or the connection failed while reading it.
    Unreadable,
    /// Declared or sniffed as JSON but not a JSON object.
    NotAJsonObject,
}

impl Params {
    /// The first value of a scalar parameter.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value, trimmed, unless absent or blank: the client sends unset optional
    /// parameters as empty strings (`exclude=`), which mean "not given".
    pub fn given(&self, name: &str) -> Option<&str> {
        self.first(name)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    /// Every value of a list parameter, sent as `name[]=a&name[]=b` (the Python client),
    /// `name=a&name=b` (the OpenAPI spelling) or a JSON array.
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name || key.strip_suffix("[]") == Some(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Like [`Params::list`], also splitting comma-joined values, trimmed, blanks dropped.
    pub fn split_list(&self, name: &str) -> Vec<&str> {
        self.list(name)
            .into_iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .collect()
    }

    /// Every parameter except the secrets, for the request log.
    pub fn loggable(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(key, _)| !SECRET_PARAMS.contains(&key.as_str()))
            .cloned()
            .collect()
    }

    /// Every parameter, secrets included, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Merges the query with the body. The body is read as a form or as a JSON object according to
/// its `Content-Type`, sniffed when there is none; other bodies (IrisQL's `text/plain`) carry
/// no parameters.
pub(super) fn parse(
    query: Option<&str>,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> (Params, Option<BodyProblem>) {
    let mut pairs: Vec<(String, String)> = query
        .map(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let Some(body) = body else {
        return (Params(pairs), Some(BodyProblem::Unreadable));
    };
    let mut problem = None;
    match body_kind(content_type, body) {
        BodyKind::Form => pairs.extend(url::form_urlencoded::parse(body).into_owned()),
        BodyKind::Json => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => {
                for (key, value) in object {
                    flatten_into(&mut pairs, &key, value);
                }
            }
            _ => problem = Some(BodyProblem::NotAJsonObject),
        },
        BodyKind::Ignored => {}
    }
    (Params(pairs), problem)
}

enum BodyKind {
    Form,
    Json,
    Ignored,
}

fn body_kind(content_type: Option<&str>, body: &[u8]) -> BodyKind {
    let Some(first) = body.iter().find(|byte| !byte.is_ascii_whitespace()) else {
        return BodyKind::Ignored;
    };
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    match media_type.as_deref() {
        Some("application/x-www-form-urlencoded") => BodyKind::Form,
        Some(json) if json == "application/json" || json.ends_with("+json") => BodyKind::Json,
        Some(_) => BodyKind::Ignored,
        None if matches!(first, b'{' | b'[') => BodyKind::Json,
        None => BodyKind::Form,
    }
}

/// A JSON body member as form parameters: arrays repeat the key, like `name[]` in a form.
fn flatten_into(pairs: &mut Vec<(String, String)>, key: &str, value: Value) {
    match value {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                if let Some(text) = scalar_text(item) {
                    pairs.push((key.to_owned(), text));
                }
            }
        }
        other => {
            if let Some(text) = scalar_text(other) {
                pairs.push((key.to_owned(), text));
            }
        }
    }
}

fn scalar_text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        nested => Some(nested.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(query: &str, content_type: Option<&str>, body: &[u8]) -> Params {
        let (params, problem) = parse(Some(query), content_type, Some(body));
        assert_eq!(problem, None);
        params
    }

    #[test]
    fn query_then_form_body_in_order() {
        let params = parsed(
            "a=1&b=x%2By",
            Some("application/x-www-form-urlencoded"),
            b"c=3&domain=a.com%2Cb.com&d=+",
        );
        assert_eq!(params.first("b"), Some("x+y"));
        assert_eq!(params.first("domain"), Some("a.com,b.com"));
        assert_eq!(params.given("d"), None);
        let keys: Vec<&str> = params.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "c", "domain", "d"]);
    }

    #[test]
    fn both_list_spellings_and_json_arrays() {
        let params = parsed(
            "tlds%5B%5D=com&tlds=net&tlds[]=org,io",
            Some("application/json; charset=utf-8"),
            br#"{"watchlist_domain_ids":["a","b"],"n":3,"flag":true,"none":null,"o":{"x":1}}"#,
        );
        assert_eq!(params.list("tlds"), ["com", "net", "org,io"]);
        assert_eq!(params.split_list("tlds"), ["com", "net", "org", "io"]);
        assert_eq!(params.list("watchlist_domain_ids"), ["a", "b"]);
        assert_eq!(params.first("n"), Some("3"));
        assert_eq!(params.first("flag"), Some("true"));
        assert_eq!(params.first("none"), None);
        assert_eq!(params.first("o"), Some(r#"{"x":1}"#));
    }

    #[test]
    fn secrets_never_reach_the_log() {
        let params = parsed(
            "api_username=u&signature=s&api_key=k&timestamp=t",
            None,
            b"",
        );
        assert_eq!(
            params.loggable(),
            [
                ("api_username".to_owned(), "u".to_owned()),
                ("timestamp".to_owned(), "t".to_owned())
            ]
        );
    }

    #[test]
    fn bad_bodies_are_reported_not_fatal() {
        let (_, problem) = parse(None, Some("application/json"), Some(b"[1,2]"));
        assert_eq!(problem, Some(BodyProblem::NotAJsonObject));
        let (_, problem) = parse(None, None, Some(b"{not json"));
        assert_eq!(problem, Some(BodyProblem::NotAJsonObject));
        let (params, problem) = parse(Some("a=1"), None, None);
        assert_eq!(problem, Some(BodyProblem::Unreadable));
        assert_eq!(params.first("a"), Some("1"));
        // Invalid UTF-8 is replaced, never a panic.
        let params = parsed("x=%FF%FE", None, b"y=\xff");
        assert_eq!(params.first("x"), Some("\u{fffd}\u{fffd}"));
        assert_eq!(params.first("y"), Some("\u{fffd}"));
        let (params, problem) = parse(None, Some("text/plain"), Some(b"domain = x"));
        assert_eq!((params.first("domain"), problem), (None, None));
    }
}
