//! What of a verified webhook is kept beside its event: enough to verify and normalize it again
//! after a rule change, and nothing that would let a reader of the store pose as the sender.

use std::borrow::Cow;

use crate::config::Secret;
use crate::proto::v1::{Header, WebhookDelivery};
use crate::verify::{Scheme, Verifier, standard_webhooks};
use crate::webhook::RawWebhook;

/// Headers every delivery keeps: neither authenticates anyone.
const ALWAYS_KEPT: [&str; 2] = ["content-type", "traceparent"];

/// Stands where a token was found in a kept body.
const REDACTED: &[u8] = b"REDACTED";

impl Verifier {
    /// The delivery to keep for `raw`, which this verifier accepted: its body, the headers its
    /// scheme signs (never the ones that carry a secret: `authorization`, a token header), its
    /// path without the query (which may carry the token) and its peer address. A configured
    /// token that the body repeats (Abowire v1 echoes its destination URL, token included) is
    /// replaced by `REDACTED`, as it is, percent-encoded or JSON-escaped: such a body is no
    /// longer byte-exact, which token schemes do not need to verify it again.
    pub fn delivery(&self, raw: RawWebhook) -> WebhookDelivery {
        let signed: &[&str] = match &self.scheme {
            Scheme::StandardWebhooks(_) => &standard_webhooks::SIGNED_HEADERS,
            _ => &[],
        };
        let headers = raw
            .headers
            .iter()
            .filter(|(name, _)| {
                ALWAYS_KEPT
                    .iter()
                    .chain(signed)
                    .any(|kept| name.eq_ignore_ascii_case(kept))
            })
            .map(|(name, value)| Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        let tokens: &[Secret] = match &self.scheme {
            Scheme::QueryToken(verifier) => verifier.tokens(),
            Scheme::HeaderToken(verifier) => verifier.tokens(),
            _ => &[],
        };
        let request_path = raw.path().to_owned();
        let remote_addr = raw
            .remote_addr
            .map(|address| address.to_string())
            .unwrap_or_default();
        let mut body = raw.body;
        for token in tokens {
            for form in token_forms(token.expose()) {
                body = redact(body, form.as_bytes());
            }
        }
        WebhookDelivery {
            body,
            headers,
            request_path,
            remote_addr,
        }
    }
}

/// A token as it may appear in a body: as configured, percent-encoded as in a URL, and with
/// `/` escaped as JSON allows.
fn token_forms(token: &str) -> Vec<Cow<'_, str>> {
    let mut forms = vec![Cow::Borrowed(token)];
    let encoded: String = token
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect();
    for form in [
        encoded.clone(),
        encoded.to_ascii_lowercase(),
        token.replace('/', "\\/"),
    ] {
        if !forms.iter().any(|known| *known == form) {
            forms.push(Cow::Owned(form));
        }
    }
    forms
}

/// `body` with every occurrence of `secret` replaced by [`REDACTED`]; untouched (no copy) when
/// there is none, as for nearly every body.
fn redact(body: Vec<u8>, secret: &[u8]) -> Vec<u8> {
    if secret.is_empty() || !body.windows(secret.len()).any(|window| window == secret) {
        return body;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body.as_slice();
    while let Some(at) = rest
        .windows(secret.len())
        .position(|window| window == secret)
    {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(REDACTED);
        rest = &rest[at + secret.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::VerificationConfig;
    use crate::verify::standard_webhooks::StandardWebhooksKeys;

    fn raw(uri: &str, headers: &[(&str, &str)], body: &[u8]) -> RawWebhook {
        RawWebhook {
            body: body.to_vec(),
            remote_addr: Some("192.0.2.7".parse().unwrap()),
            ..RawWebhook::for_test(uri, headers)
        }
    }

    fn names(delivery: &WebhookDelivery) -> Vec<&str> {
        delivery.headers.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn a_signed_delivery_keeps_the_signed_headers_body_and_path() {
        let keys = StandardWebhooksKeys::decode(
            &[Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
            &[],
        )
        .unwrap();
        let config = VerificationConfig::StandardWebhooks {
            keys,
            tolerance: Duration::from_secs(300),
        };
        let verifier = Verifier::from_config(&config, None);
        let headers = [
            ("Content-Type", "application/json"),
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1"),
            ("webhook-signature", "v1,x"),
            ("svix-id", "msg_1"),
            ("authorization", "Bearer t"),
            ("x-other", "1"),
        ];
        let delivery = verifier.delivery(raw("/webhooks/gigs?x=1", &headers, b"{}"));
        assert_eq!(
            names(&delivery),
            [
                "Content-Type",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "svix-id"
            ]
        );
        assert_eq!(delivery.body, b"{}");
        assert_eq!(delivery.request_path, "/webhooks/gigs");
        assert_eq!(delivery.remote_addr, "192.0.2.7");
    }

    #[test]
    fn a_token_delivery_keeps_neither_the_token_nor_the_header_or_query_it_came_in() {
        let tokens = vec![Secret::new("s3cret")];
        let configs = [
            VerificationConfig::QueryToken {
                param: "token".into(),
                tokens: tokens.clone(),
            },
            VerificationConfig::HeaderToken {
                header: ::http::HeaderName::from_static("x-token"),
                prefix: String::new(),
                tokens,
            },
        ];
        for config in configs {
            let verifier = Verifier::from_config(&config, None);
            let headers = [
                ("content-type", "application/json"),
                ("x-token", "s3cret"),
                ("webhook-id", "msg_1"),
            ];
            let body = br#"{"url":"https://h/webhooks/a?token=s3cret"}"#;
            let delivery = verifier.delivery(raw("/webhooks/a?token=s3cret", &headers, body));
            let scheme = verifier.scheme_name();
            assert_eq!(names(&delivery), ["content-type"], "{scheme}");
            assert_eq!(
                delivery.body, br#"{"url":"https://h/webhooks/a?token=REDACTED"}"#,
                "{scheme}"
            );
            assert_eq!(delivery.request_path, "/webhooks/a", "{scheme}");
        }
    }

    #[test]
    fn tokens_are_redacted_in_every_form_and_nothing_else_changes() {
        let body =
            br#"{"destination":"https://h/webhooks/a?token=a%2Bb%2Fc","x":"a+b/c","y":"a+b\/c"}"#;
        let mut redacted = body.to_vec();
        for form in token_forms("a+b/c") {
            redacted = redact(redacted, form.as_bytes());
        }
        assert_eq!(
            String::from_utf8(redacted).unwrap(),
            r#"{"destination":"https://h/webhooks/a?token=REDACTED","x":"REDACTED","y":"REDACTED"}"#
        );
        let untouched = b"{\"a\":1}".to_vec();
        assert_eq!(redact(untouched.clone(), b"secret"), untouched);
    }
}
