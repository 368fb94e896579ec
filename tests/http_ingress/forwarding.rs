//! Who the sender is: `Forwarded` and `X-Forwarded-For` count only from trusted proxies, and
//! allowlists go by the socket address otherwise.

use super::*;

#[tokio::test]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    let toml = test_config_toml(MIB) + "\n[http]\ntrusted_proxies = [\"127.0.0.0/8\"]\n";
    let server = TestServer::start_with(&toml).await;
    let addr = server.http_addr;
    let order = fixture("mobile_manager/order.complete.json");
    let alert = fixture("mobile_manager/alert.on.json");
    type Case<'a> = (&'a str, &'a [u8], Vec<(&'a str, &'a str)>, u16);
    let cases: Vec<Case> = vec![
        ("mm-ip", &order, vec![("x-forwarded-for", "192.0.2.7")], 200),
        (
            "mm-ip",
            &alert,
            vec![("X-Forwarded-For", "198.51.100.1, 192.0.2.7")],
            200,
        ),
        // The sender appended an allowlisted address after the real one: the proxy's entry is
        // the rightmost, and it is the real (refused) client.
        (
            "mm-ip",
            &order,
            vec![("x-forwarded-for", "192.0.2.7, 198.51.100.1")],
            401,
        ),
        (
            "mm-ip",
            &order,
            vec![("forwarded", "for=192.0.2.8;proto=https")],
            200,
        ),
        ("mm-ip", &order, vec![("forwarded", "for=unknown")], 401),
        (
            "mm-ip",
            &order,
            vec![
                ("forwarded", "for=192.0.2.7"),
                ("x-forwarded-for", "198.51.100.1"),
            ],
            401,
        ),
        ("mm-ip", &order, vec![], 401),
        (
            "mm-allowlisted",
            &order,
            vec![("forwarded", "for=\"[2001:db8::7]:4711\"")],
            200,
        ),
    ];
    for (source, body, headers, status) in cases {
        let mut request = token_request(source, "token", MM_TOKEN, body);
        for (name, value) in &headers {
            request.headers.push(header(name, value));
        }
        let answer = post_webhook(addr, &request).await;
        assert_eq!(
            answer.status, status,
            "{source} {headers:?}: {:?}",
            answer.json
        );
        if status == 401 {
            assert_eq!(answer.reason(), "ADDRESS_NOT_ALLOWED");
        }
    }
    server.shutdown().await;
}

/// With no trusted proxies the socket address alone decides: a loopback sender is accepted by a
/// loopback allowlist whatever address it claims, and refused by any other list however it
/// claims to be in it.
#[tokio::test]
async fn allowlists_go_by_the_socket_address_without_trusted_proxies() {
    let toml = test_config_toml(MIB)
        + &format!(
            r#"
[[sources]]
name = "mm-loopback"
provider = "mobile_manager"
allowed_cidrs = ["127.0.0.0/8"]
verification = {{ scheme = "query_token", tokens = ["{MM_TOKEN}"] }}

[[sources]]
name = "mm-ip-loopback"
provider = "mobile_manager"
verification = {{ scheme = "ip_allowlist", cidrs = ["127.0.0.0/8"] }}

[[sources]]
name = "mm-ten"
provider = "mobile_manager"
allowed_cidrs = ["10.0.0.0/8"]
verification = {{ scheme = "query_token", tokens = ["{MM_TOKEN}"] }}
"#
        );
    let server = TestServer::start_with(&toml).await;
    let addr = server.http_addr;
    let order = fixture("mobile_manager/order.complete.json");
    let alert = fixture("mobile_manager/alert.on.json");
    let no_header: &[(&str, &str)] = &[];
    let forged_outside: &[(&str, &str)] = &[
        ("x-forwarded-for", "198.51.100.1"),
        ("forwarded", "for=198.51.100.1"),
    ];
    let forged_inside: &[(&str, &str)] = &[
        ("x-forwarded-for", "10.1.2.3"),
        ("forwarded", "for=10.1.2.3"),
    ];
    for source in ["mm-loopback", "mm-ip-loopback"] {
        for (headers, body) in [(no_header, &order), (forged_outside, &alert)] {
            let mut request = token_request(source, "token", MM_TOKEN, body);
            for (name, value) in headers {
                request.headers.push(header(name, value));
            }
            let what = format!("{source} {headers:?}");
            let (id, _, duplicate) = assert_accepted(&post_webhook(addr, &request).await, &what);
            assert!(!duplicate, "{what}");
            assert!(id.starts_with(&format!("{source}:")), "{what}: {id}");
        }
    }
    for headers in [no_header, forged_inside] {
        let mut request = token_request("mm-ten", "token", MM_TOKEN, &order);
        for (name, value) in headers {
            request.headers.push(header(name, value));
        }
        let answer = post_webhook(addr, &request).await;
        assert_refused(&answer, 401, "ADDRESS_NOT_ALLOWED", &format!("{headers:?}"));
    }
    server.shutdown().await;
}
