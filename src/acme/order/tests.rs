//! The order driven through a scripted service, request by request.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

const DIR: &str = "https://ca.test/dir";

fn settings(http01: bool, tls_alpn01: bool) -> Settings {
    Settings {
        directory: DIR.into(),
        contact: Some("mailto:admin@mx.test".into()),
        names: vec!["mx.test".into()],
        http01,
        tls_alpn01,
    }
}

fn ok(status: u16, nonce: &str, location: Option<&str>, body: &str) -> Response {
    Response {
        status,
        location: location.map(str::to_string),
        replay_nonce: (!nonce.is_empty()).then(|| nonce.to_string()),
        retry_after: None,
        body: body.as_bytes().to_vec(),
    }
}

/// The protected header and payload of a signed request.
fn signed(request: &Request) -> (serde_json::Value, String) {
    let jws: serde_json::Value = serde_json::from_str(request.body.as_ref().unwrap()).unwrap();
    let decode = |field: &str| {
        URL_SAFE_NO_PAD
            .decode(jws[field].as_str().unwrap())
            .unwrap()
    };
    let header = serde_json::from_slice(&decode("protected")).unwrap();
    (header, String::from_utf8(decode("payload")).unwrap())
}

fn send(step: Step) -> Request {
    match step {
        Step::Send(request) => request,
        other => panic!("expected a request, not {other:?}"),
    }
}

const DIRECTORY: &str = r#"{"newNonce":"https://ca.test/nonce","newAccount":"https://ca.test/acct","newOrder":"https://ca.test/order"}"#;
const ORDER: &str = r#"{"status":"pending","authorizations":["https://ca.test/authz/1"],"finalize":"https://ca.test/fin/1"}"#;

fn authz(status: &str) -> String {
    format!(
        r#"{{"status":"{status}","identifier":{{"type":"dns","value":"mx.test"}},"challenges":[
        {{"type":"tls-alpn-01","url":"https://ca.test/chal/alpn","token":"tokA","status":"pending"}},
        {{"type":"http-01","url":"https://ca.test/chal/http","token":"tokH","status":"pending"}},
        {{"type":"dns-01","url":"https://ca.test/chal/dns","token":"tokD","status":"pending"}}]}}"#
    )
}

/// Drives the order up to the published answer; returns the driver,
/// the answer and the time.
fn up_to_answer(http01: bool, tls_alpn01: bool) -> (Driver, Answer, Instant) {
    let now = Instant::now();
    let key = AccountKey::generate().unwrap();
    let thumbprint = key.thumbprint();
    let mut order = Driver::new(settings(http01, tls_alpn01), key, now);
    let request = send(order.start());
    assert_eq!((request.method, request.url.as_str()), (Method::Get, DIR));
    let request = send(order.receive(ok(200, "", None, DIRECTORY), now));
    // A directory answer carries no nonce here: a HEAD asks for one.
    assert_eq!(
        (request.method, request.url.as_str()),
        (Method::Head, "https://ca.test/nonce")
    );
    let request = send(order.receive(ok(200, "n1", None, ""), now));
    assert_eq!(request.url, "https://ca.test/acct");
    let (header, payload) = signed(&request);
    assert_eq!(header["nonce"], "n1");
    assert_eq!(header["url"], "https://ca.test/acct");
    assert!(header.get("jwk").is_some() && header.get("kid").is_none());
    assert!(payload.contains("\"termsOfServiceAgreed\":true"));
    assert!(payload.contains("mailto:admin@mx.test"));
    let acct = Some("https://ca.test/acct/7");
    let request = send(order.receive(ok(201, "n2", acct, "{}"), now));
    assert_eq!(request.url, "https://ca.test/order");
    let (header, payload) = signed(&request);
    assert_eq!(header["kid"], "https://ca.test/acct/7");
    assert_eq!(header["nonce"], "n2");
    assert!(header.get("jwk").is_none());
    assert!(payload.contains("\"value\":\"mx.test\""));
    let location = Some("https://ca.test/order/1");
    let request = send(order.receive(ok(201, "n3", location, ORDER), now));
    assert_eq!(request.url, "https://ca.test/authz/1");
    assert_eq!(signed(&request).1, "", "POST-as-GET");
    let step = order.receive(ok(200, "n4", None, &authz("pending")), now);
    let Step::Publish(answer) = step else {
        panic!("{step:?}")
    };
    let token = match &answer {
        Answer::Http01 { token, .. } => token,
        Answer::TlsAlpn01 { .. } => "tokA",
    };
    let key_authorization = match &answer {
        Answer::Http01 {
            key_authorization, ..
        }
        | Answer::TlsAlpn01 {
            key_authorization, ..
        } => key_authorization,
    };
    assert_eq!(*key_authorization, format!("{token}.{thumbprint}"));
    (order, answer, now)
}

#[test]
fn issues_a_certificate_by_http01() {
    let (mut order, answer, now) = up_to_answer(true, true);
    assert!(matches!(answer, Answer::Http01 { ref token, .. } if token == "tokH"));
    let request = send(order.resume(now));
    assert_eq!(request.url, "https://ca.test/chal/http");
    assert_eq!(signed(&request).1, "{}");
    let step = order.receive(ok(200, "n5", None, "{}"), now);
    assert!(
        matches!(step, Step::Wait(d) if d == ACME_POLL_FIRST),
        "{step:?}"
    );
    let request = send(order.resume(now));
    assert_eq!(request.url, "https://ca.test/authz/1");
    // Still pending: the waits grow.
    let step = order.receive(ok(200, "n6", None, &authz("pending")), now);
    assert!(
        matches!(step, Step::Wait(d) if d == ACME_POLL_FIRST * 2),
        "{step:?}"
    );
    send(order.resume(now));
    let request = send(order.receive(ok(200, "n7", None, &authz("valid")), now));
    assert_eq!(request.url, "https://ca.test/order/1");
    let ready = r#"{"status":"ready","authorizations":["https://ca.test/authz/1"],"finalize":"https://ca.test/fin/1"}"#;
    let request = send(order.receive(ok(200, "n8", None, ready), now));
    assert_eq!(request.url, "https://ca.test/fin/1");
    let (_, payload) = signed(&request);
    assert!(payload.starts_with("{\"csr\":\""), "{payload}");
    let processing = r#"{"status":"processing","authorizations":["https://ca.test/authz/1"],"finalize":"https://ca.test/fin/1"}"#;
    let mut busy = ok(200, "n9", None, processing);
    busy.retry_after = Some(2);
    let step = order.receive(busy, now);
    assert!(
        matches!(step, Step::Wait(d) if d == Duration::from_secs(2)),
        "{step:?}"
    );
    let request = send(order.resume(now));
    assert_eq!(request.url, "https://ca.test/order/1");
    let valid = r#"{"status":"valid","authorizations":["https://ca.test/authz/1"],"finalize":"https://ca.test/fin/1","certificate":"https://ca.test/cert/1"}"#;
    let request = send(order.receive(ok(200, "n10", None, valid), now));
    assert_eq!(request.url, "https://ca.test/cert/1");
    assert!(request.pem);
    let (chain, _) = crate::tls::selfsigned::generate("mx.test").unwrap();
    let step = order.receive(ok(200, "n11", None, &chain), now);
    let Step::Done { chain: got, key } = step else {
        panic!("{step:?}")
    };
    assert_eq!(got, chain);
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn answers_tls_alpn01_when_http_is_off() {
    let (mut order, answer, now) = up_to_answer(false, true);
    assert!(matches!(answer, Answer::TlsAlpn01 { ref name, .. } if name == "mx.test"));
    let request = send(order.resume(now));
    assert_eq!(request.url, "https://ca.test/chal/alpn");
}

#[test]
fn fails_when_no_offered_challenge_can_be_answered() {
    let now = Instant::now();
    let mut order = Driver::new(settings(false, false), AccountKey::generate().unwrap(), now);
    send(order.start());
    send(order.receive(ok(200, "n0", None, DIRECTORY), now));
    send(order.receive(ok(201, "n1", Some("https://ca.test/acct/1"), "{}"), now));
    send(order.receive(ok(201, "n2", Some("https://ca.test/order/1"), ORDER), now));
    let step = order.receive(ok(200, "n3", None, &authz("pending")), now);
    let Step::Failed(why) = step else {
        panic!("{step:?}")
    };
    assert!(why.contains("no challenge we can answer"), "{why}");
    assert!(why.contains("tls-alpn-01, http-01, dns-01"), "{why}");
}

#[test]
fn retries_a_bad_nonce_with_the_new_one_then_gives_up() {
    let now = Instant::now();
    let mut order = Driver::new(settings(true, false), AccountKey::generate().unwrap(), now);
    send(order.start());
    send(order.receive(ok(200, "n0", None, DIRECTORY), now));
    let bad = r#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"stale"}"#;
    for round in 0..ACME_NONCE_RETRIES {
        let nonce = format!("retry{round}");
        let request = send(order.receive(ok(400, &nonce, None, bad), now));
        assert_eq!(request.url, "https://ca.test/acct");
        assert_eq!(signed(&request).0["nonce"], nonce.as_str());
    }
    let step = order.receive(ok(400, "last", None, bad), now);
    assert!(
        matches!(step, Step::Failed(ref why) if why.contains("badNonce: stale")),
        "{step:?}"
    );
}

#[test]
fn reports_an_invalid_authorization_with_its_challenge_error() {
    let (mut order, _, now) = up_to_answer(true, false);
    send(order.resume(now));
    order.receive(ok(200, "n5", None, "{}"), now);
    send(order.resume(now));
    let invalid = r#"{"status":"invalid","identifier":{"type":"dns","value":"mx.test"},"challenges":[
        {"type":"http-01","url":"u","token":"tokH","status":"invalid",
         "error":{"type":"urn:ietf:params:acme:error:connection","detail":"127.0.0.9: Connection refused"}}]}"#;
    let step = order.receive(ok(200, "n6", None, invalid), now);
    let Step::Failed(why) = step else {
        panic!("{step:?}")
    };
    assert!(
        why.contains("mx.test is invalid: http-01 connection: 127.0.0.9: Connection refused"),
        "{why}"
    );
}

#[test]
fn a_refusal_or_silence_ends_the_order() {
    let now = Instant::now();
    let mut order = Driver::new(settings(true, false), AccountKey::generate().unwrap(), now);
    send(order.start());
    let step = order.receive(ok(404, "", None, "not found"), now);
    assert!(
        matches!(step, Step::Failed(ref why) if why.contains("reading the directory: the service answered 404")),
        "{step:?}"
    );
    let mut order = Driver::new(settings(true, false), AccountKey::generate().unwrap(), now);
    send(order.start());
    let step = order.unreachable("connection refused".into());
    assert!(
        matches!(step, Step::Failed(ref why) if why == "reading the directory: connection refused")
    );
    // An order that takes too long is given up at the next event.
    let (mut order, _, now) = up_to_answer(true, false);
    let step = order.resume(now + ACME_ORDER_TIMEOUT);
    assert!(
        matches!(step, Step::Failed(ref why) if why.contains("no result within")),
        "{step:?}"
    );
}

#[test]
fn skips_authorizations_already_valid() {
    let now = Instant::now();
    let mut order = Driver::new(settings(true, false), AccountKey::generate().unwrap(), now);
    send(order.start());
    send(order.receive(ok(200, "n0", None, DIRECTORY), now));
    send(order.receive(ok(200, "n1", Some("https://ca.test/acct/1"), "{}"), now));
    send(order.receive(ok(201, "n2", Some("https://ca.test/order/1"), ORDER), now));
    let request = send(order.receive(ok(200, "n3", None, &authz("valid")), now));
    assert_eq!(request.url, "https://ca.test/order/1");
}
